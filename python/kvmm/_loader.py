# SPDX-License-Identifier: MIT
"""Finding and loading libkvmm.so.

Order: $KVMM_LIB (a path), else the in-tree build next to this package
(<repo>/build/default/lib/libkvmm.so.0, when the package runs from the
tree), else the system's dynamic loader ("libkvmm.so.0").  The library is
loaded once, on first use, so that ``import kvmm`` works (and tells what is
missing) on a machine without it.
"""
import ctypes
import os
import threading
from pathlib import Path

SONAME = "libkvmm.so.0"
# The ABI this binding was written against: major must match, minor >= it.
ABI_MAJOR = 0
ABI_MINOR = 1


class LibraryNotFoundError(ImportError):
    """libkvmm.so could not be found or loaded; the message lists where it looked."""


_lock = threading.Lock()
_lib = None


def candidates():
    """Where libkvmm is looked for, in order, as (how, path-or-name) pairs."""
    env = os.environ.get("KVMM_LIB")
    if env:
        # An explicit choice is final: never fall back behind the user's back.
        return [("$KVMM_LIB", env)]
    out = []
    tree = Path(__file__).resolve().parent.parent.parent
    built = tree / "build" / "default" / "lib" / SONAME
    if (tree / "runtime" / "include" / "kvmm.h").is_file():
        out.append(("in-tree build", str(built)))
    out.append(("system loader", SONAME))
    return out


def _open(path):
    # RTLD_LOCAL: libkvmm's symbols stay out of the global namespace (it may
    # be loaded next to another copy, e.g. a test build).
    return ctypes.CDLL(path, mode=os.RTLD_LOCAL | os.RTLD_NOW)


def load():
    """The loaded library (a ctypes.CDLL), loading it on the first call."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for how, path in candidates():
            if how != "system loader" and not os.path.exists(path):
                tried.append(f"{how}: {path} (no such file)")
                continue
            try:
                lib = _open(path)
            except OSError as e:
                tried.append(f"{how}: {path} ({e})")
                continue
            _check_abi(lib, path)
            lib._kvmm_path = path
            _lib = lib
            return lib
        raise LibraryNotFoundError(
            "libkvmm not found; build it with `make all` or point $KVMM_LIB at "
            "libkvmm.so.0.  Tried: " + "; ".join(tried))


def _check_abi(lib, path):
    lib.kvmm_version.restype = ctypes.c_int
    lib.kvmm_version.argtypes = []
    v = lib.kvmm_version()
    major, minor = v // 10000, v // 100 % 100
    if major != ABI_MAJOR or minor < ABI_MINOR:
        raise LibraryNotFoundError(
            f"{path} is libkvmm {major}.{minor}.{v % 100}; this binding needs "
            f"{ABI_MAJOR}.{ABI_MINOR} or a later {ABI_MAJOR}.x")


def path():
    """Path (or soname) of the loaded library."""
    return load()._kvmm_path
