# SPDX-License-Identifier: MIT
"""Backends: where KV pages live (CUDA VMM, host memory, or bookkeeping only)."""
import ctypes

from . import _capi
from ._capi import lib
from ._owner import Owner
from .errors import KvmmError, check
from ._util import as_buffer, u64

_KINDS = {"auto": _capi.BACKEND_AUTO, "host": _capi.BACKEND_HOST, "cuda": _capi.BACKEND_CUDA,
          "null": _capi.BACKEND_NULL}
_NAMES = {v: k for k, v in _KINDS.items()}


class Backend(Owner):
    """A libkvmm backend (kvmm_backend_open).

    kind: "auto" (CUDA when a device is usable, else host), "host", "cuda" or
    "null".  device: CUDA ordinal.  hugetlb: host pages from MFD_HUGETLB.
    page_size: 0 for the backend's granularity (2 MiB), else a multiple.

    Raises KvmmError(ENODEV) when the backend is not usable here.  Closing
    it (close(), ``with``, garbage collection) is deferred until every cache
    created on it is gone.  Thread-safe, like the C functions it wraps.
    """

    _kind, _destroy = "backend", "kvmm_backend_close"

    def __init__(self, kind="auto", device=0, hugetlb=False, page_size=0):
        self._owner_init()
        if kind not in _KINDS:
            raise ValueError(f"kind: {kind!r} is not one of {', '.join(_KINDS)}")
        cfg = _capi.BackendConfig.new(_KINDS[kind], int(device),
                                  _capi.BACKEND_HUGETLB if hugetlb else 0,
                                  u64("page_size", page_size))
        if device < 0:
            raise ValueError(f"device: must be >= 0, got {device}")
        h = ctypes.c_void_p()
        check(lib.kvmm_backend_open(ctypes.byref(cfg), ctypes.byref(h)), "kvmm_backend_open",
              f"kind={kind}" + (f", device={device}" if kind in ("cuda", "auto") else ""))
        self._h = h.value
        self.device = device

    @property
    def name(self):
        """"cuda", "host" or "null": the backend actually opened."""
        return lib.kvmm_backend_name(self.handle).decode()

    @property
    def kind(self):
        return _NAMES[lib.kvmm_backend_get_type(self.handle)]

    @property
    def page_size(self):
        return lib.kvmm_backend_page_size(self.handle)

    @property
    def last_error(self):
        """The last driver error on this backend ("" if none)."""
        return lib.kvmm_backend_last_error(self.handle).decode(errors="replace")

    def stats(self):
        """Call counters by kind: {"calls": {op: n}, "errors": ..., "time_ns": ...,
        "pages_live": n, "va_reserved_bytes": n}."""
        st = _capi.BackendStats.new()
        check(lib.kvmm_backend_stats(self.handle, ctypes.byref(st)), "kvmm_backend_stats")
        return st.to_dict()

    # -- raw copies between host buffers and backend (device) addresses --
    def memcpy_to_dev(self, dst, src):
        """Copy the bytes of src (any buffer) to device address dst."""
        ptr, n, _keep = as_buffer(src, "src")
        self._copy_check(lib.kvmm_memcpy_to_dev(self.handle, u64("dst", dst), ptr, n),
                         "kvmm_memcpy_to_dev")

    def memcpy_to_host(self, dst, src):
        """Fill dst (a writable buffer) from device address src."""
        ptr, n, _keep = as_buffer(dst, "dst", writable=True)
        self._copy_check(lib.kvmm_memcpy_to_host(self.handle, ptr, u64("src", src), n),
                         "kvmm_memcpy_to_host")

    def memcpy_dev(self, dst, src, n):
        self._copy_check(lib.kvmm_memcpy_dev(self.handle, u64("dst", dst), u64("src", src),
                                             u64("n", n)), "kvmm_memcpy_dev")

    def memset_dev(self, dst, byte, n):
        if not 0 <= byte <= 255:
            raise ValueError(f"byte: must be 0..255, got {byte}")
        self._copy_check(lib.kvmm_memset_dev(self.handle, u64("dst", dst), byte, u64("n", n)),
                         "kvmm_memset_dev")

    def _copy_check(self, ret, func):
        if ret < 0:
            raise KvmmError(ret, func, self.last_error or None)

    def __repr__(self):
        if self._closing:
            return "<kvmm.Backend closed>"
        return f"<kvmm.Backend {self.name} page_size={self.page_size}>"
