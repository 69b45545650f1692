# SPDX-License-Identifier: MIT
"""kvmm: Python binding of libkvmm, the KV-cache memory manager.

Standard library only (ctypes).  KV views export through DLPack, so
numpy.from_dlpack (host backend) and torch.from_dlpack (CUDA backend) see
libkvmm's memory without a copy.  The library is found through $KVMM_LIB,
else the in-tree build, else the system's loader.  See docs/python.md.

    import kvmm, numpy as np
    with kvmm.Backend("host") as be, kvmm.Cache(be, num_layers=2, num_kv_heads=4,
            head_dim=64, dtype="float16", layout="token-major", max_seqs=4,
            max_tokens=1024, budget_bytes=64 << 20) as c:
        with c.open(100) as s:
            s.step(100)
            k0 = np.from_dlpack(s.view(0, "k"))   # [100, 4, 64] float16, in place
"""
from . import dtypes
from ._capi import lib as _lib
from ._loader import LibraryNotFoundError
from .backend import Backend
from .cache import LAYOUTS, Batch, Cache, Sequence
from .errors import KvmmError, Unavailable
from .hostpool import HostPool, probe
from .prefix import Namespace, PrefixMatch
from .tiers import Prefetch
from .view import KVView

__version__ = "0.1.0"

K = "k"
V = "v"


def library_version():
    """Run-time version of libkvmm as (major, minor, patch)."""
    v = _lib.kvmm_version()
    return (v // 10000, v // 100 % 100, v % 100)


def library_path():
    """Where libkvmm was loaded from."""
    from . import _loader
    return _loader.path()


def has(symbol):
    """Whether the loaded libkvmm exports symbol (e.g. "kvmm_prefix_match")."""
    return _lib.has(symbol)


def strerror(err):
    """libkvmm's description of an errno value (either sign)."""
    return _lib.kvmm_strerror(-abs(int(err))).decode()


__all__ = ["Backend", "Batch", "Cache", "HostPool", "KVView", "KvmmError", "LAYOUTS",
           "LibraryNotFoundError", "Namespace", "Prefetch", "PrefixMatch",
           "Sequence", "Unavailable", "K", "V",
           "dtypes", "has", "library_path", "library_version", "probe", "strerror"]
