# SPDX-License-Identifier: MIT
"""KV views: one layer's K or V as a strided tensor, exported through DLPack.

The byte address of element (seq s, token t, head h, dim d) is (kvmm.h)

    base + s*seq_stride + (t // tpp)*page_stride + (t % tpp)*token_stride
         + h*head_stride + d*elem_size

When page_stride == tpp * token_stride (layer-major and token-major whose
token size divides the page) tokens have one stride and a view is
[seq, token, head, dim]; otherwise (page-major) it is paged,
[seq, page, token-in-page, head, dim], with the identity page table.
"""
import array
import ctypes

from . import _capi, dlpack, dtypes
from ._capi import lib
from .errors import check

_LAYOUTS = {_capi.LAYOUT_LAYER_MAJOR: "layer-major", _capi.LAYOUT_TOKEN_MAJOR: "token-major",
            _capi.LAYOUT_PAGE_MAJOR: "page-major"}


class KVView:
    """A zero-copy view of one layer's K or V, over the whole cache or one sequence.

    Pass it to numpy.from_dlpack (host backend) or torch.from_dlpack (CUDA
    backend).  The exported tensor keeps the cache's memory alive.  Only
    tokens a sequence has declared (kvmm_step, reserve, an attached prefix)
    are guaranteed mapped: touching others faults (SIGSEGV on the host,
    an illegal address on the GPU), as for any vAttention-style cache.  Tokens
    of a prefix attached by alias are mapped read-only.
    """

    def __init__(self, cache, layer, kv, cview, seq=None, start=0, stop=None):
        self.cache = cache
        self.layer = layer
        self.kv = "k" if kv == _capi.K else "v"
        self.struct = cview  # the C struct kvmm_view (for kernels)
        self.dtype = cache.dtype
        self.seq = seq
        v = cview
        e = v.elem_size
        tpp = v.tokens_per_page
        self.tokens_per_page = tpp
        self.layout = _LAYOUTS.get(v.layout, str(v.layout))
        self.paged = v.page_stride != tpp * v.token_stride
        inner = [(v.num_heads, v.head_stride), (v.head_dim, e)]
        if seq is None:
            data = v.base
            if self.paged:
                outer = [(v.max_seqs, v.seq_stride), (v.seq_stride // v.page_stride,
                                                      v.page_stride), (tpp, v.token_stride)]
            else:
                outer = [(v.max_seqs, v.seq_stride), (v.max_tokens, v.token_stride)]
        else:
            data = v.base + seq * v.seq_stride
            if self.paged:
                if start % tpp:
                    raise ValueError(f"start: a paged ({self.layout}) view starts on a page "
                                     f"boundary (a multiple of {tpp}), got {start}")
                p0, p1 = start // tpp, -(-stop // tpp)
                data += p0 * v.page_stride
                outer = [(p1 - p0, v.page_stride), (tpp, v.token_stride)]
            else:
                data += start * v.token_stride
                outer = [(stop - start, v.token_stride)]
        dims = outer + inner
        for _, stride in dims:
            assert stride % e == 0, "kvmm strides are whole elements"
        self.data = data
        self.shape = tuple(n for n, _ in dims)
        self.strides = tuple(s for _, s in dims)  # bytes, like numpy
        self.start, self.stop = start, stop

    # -- DLPack --
    def __dlpack_device__(self):
        dev = self.cache.dlpack_device
        if dev is None:
            raise BufferError(f"a {self.cache.backend.name} backend has no memory to export")
        return dev

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        dev = self.__dlpack_device__()
        versioned = dlpack.check_request(dev, stream, max_version, dl_device, copy)
        e = self.struct.elem_size
        return dlpack.export(self.cache, self.data, dev, dtypes.dlpack(self.dtype), self.shape,
                             [s // e for s in self.strides], versioned)

    # -- conveniences --
    def numpy(self):
        """A writable numpy array over the view (host backend), zero-copy.

        numpy.from_dlpack(view) works too, but numpy < 2 marks what it
        imports through DLPack read-only; this goes through numpy's array
        interface instead, which says whether the memory is writable.  The
        array keeps the cache's memory alive, like a DLPack export.
        """
        import numpy
        if self.cache.dlpack_device != (dlpack.KDL_CPU, 0):
            raise BufferError("numpy() needs host memory; use torch() (or any DLPack "
                              "consumer of the device) on a CUDA cache")
        return numpy.asarray(_HostArray(self))

    def torch(self):
        """torch.from_dlpack(self)."""
        import torch
        return torch.from_dlpack(self)

    def page_table(self):
        """The block table of a paged view (kvmm_view_page_table) as array('i')."""
        n = check(lib.kvmm_view_page_table(ctypes.byref(self.struct), None, 0),
                  "kvmm_view_page_table")
        t = (ctypes.c_int32 * n)()
        check(lib.kvmm_view_page_table(ctypes.byref(self.struct), t, n), "kvmm_view_page_table")
        return array.array("i", t)

    def __repr__(self):
        where = f"seq {self.seq} [{self.start}:{self.stop})" if self.seq is not None else "all"
        return (f"<kvmm.KVView layer {self.layer} {self.kv.upper()} {where} {self.layout} "
                f"{self.dtype} shape={self.shape} strides={self.strides}>")


_TYPESTR = {"float16": "<f2", "float32": "<f4", "float64": "<f8", "int8": "|i1", "uint8": "|u1",
            "int16": "<i2", "int32": "<i4"}


class _HostArray:
    """numpy's __array_interface__ over a host view; pins the cache while the
    array (whose base this becomes) lives."""

    def __init__(self, view):
        typestr = _TYPESTR.get(view.dtype)
        if typestr is None:
            raise TypeError(f"numpy has no {view.dtype}; use a DLPack consumer that has")
        self._cache = view.cache
        self._cache._pin("cache")
        self.__array_interface__ = {"version": 3, "shape": view.shape, "typestr": typestr,
                                    "data": (view.data, False), "strides": view.strides}

    def __del__(self):
        try:
            self._cache._unpin()
        except Exception:
            pass
