# SPDX-License-Identifier: MIT
"""Exceptions: every failing libkvmm call raises KvmmError with its errno."""
import errno as _errno


class KvmmError(OSError):
    """A libkvmm call failed.

    ``errno`` is the positive errno value (libkvmm returns it negated),
    ``strerror`` libkvmm's own description (kvmm_strerror), ``func`` the C
    function that failed.
    """

    def __init__(self, err, func, detail=None):
        err = abs(int(err))
        from ._capi import lib  # late: errors must import without the library
        try:
            msg = lib.kvmm_strerror(-err).decode()
        except Exception:  # the library itself could not be loaded
            msg = _errno.errorcode.get(err, "unknown error")
        super().__init__(err, msg)
        self.func = func
        self.detail = detail

    def __str__(self):
        name = _errno.errorcode.get(self.errno, str(self.errno))
        s = f"{self.func}: {self.strerror} ({name})"
        return f"{s}: {self.detail}" if self.detail else s


class Unavailable(KvmmError):
    """The loaded libkvmm does not export a function (built before it landed)."""

    def __init__(self, symbol, path):
        OSError.__init__(self, _errno.ENOSYS, "not in this build of libkvmm")
        self.func = symbol
        self.detail = f"{path} does not export it"


def check(ret, func, detail=None):
    """Raise KvmmError for a negative return value; pass others through."""
    if ret < 0:
        raise KvmmError(ret, func, detail)
    return ret
