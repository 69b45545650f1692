# SPDX-License-Identifier: MIT
"""libkvmm's CUDA kernels: decode attention over kvmm views, the paged
baseline, and the tier path's pack/unpack (kvmm.h, "Kernels").

Pointers and streams are plain ints (torch: tensor.data_ptr(),
torch.cuda.current_stream().cuda_stream); the kernels run in the device's
primary context, the one PyTorch uses.  Every launch is asynchronous on its
stream.  One Kernels object per concurrently used stream (its workspace is
reused by every launch).
"""
import ctypes

from . import _capi
from ._capi import lib
from ._owner import Owner
from ._util import u32, u64
from .errors import KvmmError

DTYPES = {"float16": _capi.DTYPE_FP16, "bfloat16": _capi.DTYPE_BF16}
QUANT = {None: _capi.QUANT_NONE, "none": _capi.QUANT_NONE, "int8": _capi.QUANT_INT8,
         "fp8_e4m3": _capi.QUANT_FP8_E4M3}


class Kernels(Owner):
    """kvmm_kernels_open on a CUDA backend (KvmmError ENOTSUP elsewhere, or
    when libkvmm was built without nvcc).  Closing waits for the device."""

    _kind, _destroy = "kernels", "kvmm_kernels_close"

    def __init__(self, backend):
        self._owner_init()
        self.backend = backend
        backend._pin("backend")
        h = ctypes.c_void_p()
        ret = lib.kvmm_kernels_open(backend.handle, ctypes.byref(h))
        if ret < 0:
            backend._unpin()
            raise KvmmError(ret, "kvmm_kernels_open", backend.last_error or None)
        self._h = h.value
        self._parent = backend

    @property
    def last_error(self):
        return lib.kvmm_kernels_last_error(self.handle).decode(errors="replace")

    def _check(self, ret, func):
        if ret < 0:
            raise KvmmError(ret, func, self.last_error or None)
        return ret

    def attn_decode(self, k, v, *, q, out, seq_lens, batch, num_q_heads, max_len, seq_ids=0,
                    q_stride=0, out_stride=0, scale=0.0, num_splits=0, stream=0):
        """Decode attention (kvmm_attn_decode) over KVViews k and v of one
        layer (whole-cache views: seq_ids picks each entry's slot).  q, out:
        device addresses of [batch][num_q_heads][head_dim]; seq_lens, seq_ids:
        of int32[batch] (seq_ids 0: entry i reads slot i)."""
        if k.dtype != v.dtype or k.dtype not in DTYPES:
            raise ValueError(f"k, v: the kernels take float16 or bfloat16 KV, not {k.dtype}")
        p = _capi.AttnParams.new()
        p.batch = u32("batch", batch)
        p.num_q_heads = u32("num_q_heads", num_q_heads)
        p.head_dim = k.struct.head_dim
        p.dtype = DTYPES[k.dtype]
        p.max_len = u32("max_len", max_len)
        p.num_splits = u32("num_splits", num_splits)
        p.scale = float(scale)
        p.q, p.q_stride = u64("q", q), u64("q_stride", q_stride)
        p.out, p.out_stride = u64("out", out), u64("out_stride", out_stride)
        p.seq_lens, p.seq_ids = u64("seq_lens", seq_lens), u64("seq_ids", seq_ids)
        return self._check(lib.kvmm_attn_decode(self.handle, ctypes.byref(k.struct),
                                                ctypes.byref(v.struct), ctypes.byref(p),
                                                u64("stream", stream)), "kvmm_attn_decode")

    def pack(self, runs, staging, staging_bytes, *, quant=None, dtype=None, row_elems=0,
             stream=0, unpack=False):
        """Gather runs [(addr, bytes)] of cache memory into the staging buffer
        (kvmm_pack), or scatter it back with unpack=True."""
        p, keep = _pack_params(runs, staging, staging_bytes, quant, dtype, row_elems)
        fn, name = (lib.kvmm_unpack, "kvmm_unpack") if unpack else (lib.kvmm_pack, "kvmm_pack")
        return self._check(fn(self.handle, ctypes.byref(p), u64("stream", stream)), name)

    def unpack(self, runs, staging, staging_bytes, **kw):
        return self.pack(runs, staging, staging_bytes, unpack=True, **kw)


def pack_size(runs, quant=None, dtype=None, row_elems=0):
    """Staging bytes a pack of runs needs (kvmm_pack_size)."""
    p, keep = _pack_params(runs, 0, 0, quant, dtype, row_elems)
    ret = lib.kvmm_pack_size(ctypes.byref(p))
    if ret < 0:
        raise KvmmError(ret, "kvmm_pack_size")
    return ret


def _pack_params(runs, staging, staging_bytes, quant, dtype, row_elems):
    runs = list(runs)
    arr = (_capi.PackRun * max(1, len(runs)))()
    for i, (addr, nbytes) in enumerate(runs):
        arr[i].addr, arr[i].bytes = u64("addr", addr), u64("bytes", nbytes)
    if quant not in QUANT:
        raise ValueError(f"quant: {quant!r} is not one of {', '.join(map(str, QUANT))}")
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype: {dtype!r} is not float16 or bfloat16")
    p = _capi.PackParams.new()
    p.runs = ctypes.cast(arr, ctypes.POINTER(_capi.PackRun))
    p.nruns = len(runs)
    p.quant = QUANT[quant]
    p.dtype = DTYPES[dtype] if dtype else 0
    p.row_elems = u32("row_elems", row_elems)
    p.staging, p.staging_bytes = u64("staging", staging), u64("staging_bytes", staging_bytes)
    return p, arr
