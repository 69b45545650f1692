# SPDX-License-Identifier: MIT
"""Minimal ctypes access to libkvmm's kernels for the GPU tests and the SDPA
benchmark (the full Python binding is python/kvmm; this helper needs only
the standard library and torch).

Also: kvmm views over torch buffers laid out in each kvmm layout (the
formulas of docs/layouts.md), and a DLPack capsule over a raw device pointer
with arbitrary strides, which is how an engine hands a kvmm view to PyTorch.
"""
import ctypes
import os

ENODEV = 19
LAYER_MAJOR, TOKEN_MAJOR, PAGE_MAJOR = 1, 2, 3
DTYPE_FP16, DTYPE_BF16 = 1, 2
BACKEND_CUDA = 2
PAGE = 2 << 20


class View(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64), ("seq_stride", ctypes.c_uint64),
                ("page_stride", ctypes.c_uint64), ("token_stride", ctypes.c_uint64),
                ("head_stride", ctypes.c_uint64), ("tokens_per_page", ctypes.c_uint32),
                ("layout", ctypes.c_uint32), ("num_heads", ctypes.c_uint32),
                ("head_dim", ctypes.c_uint32), ("elem_size", ctypes.c_uint32),
                ("max_seqs", ctypes.c_uint32), ("max_tokens", ctypes.c_uint32),
                ("pad", ctypes.c_uint32)]


class AttnParams(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_uint32), ("num_q_heads", ctypes.c_uint32),
                ("head_dim", ctypes.c_uint32), ("dtype", ctypes.c_uint32),
                ("max_len", ctypes.c_uint32), ("num_splits", ctypes.c_uint32),
                ("scale", ctypes.c_float), ("flags", ctypes.c_uint32),
                ("q", ctypes.c_uint64), ("q_stride", ctypes.c_uint64),
                ("out", ctypes.c_uint64), ("out_stride", ctypes.c_uint64),
                ("seq_lens", ctypes.c_uint64), ("seq_ids", ctypes.c_uint64)]


class BackendConfig(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("device", ctypes.c_int),
                ("flags", ctypes.c_uint32), ("page_size", ctypes.c_uint64)]


class Skip(Exception):
    pass


class Kernels:
    """libkvmm's CUDA backend and kernels on device 0 (the primary context,
    shared with torch)."""

    def __init__(self, lib=None):
        path = lib or os.environ.get("KVMM_LIB", "build/default/lib/libkvmm.so.0")
        self.lib = ctypes.CDLL(os.path.abspath(path))
        L = self.lib
        L.kvmm_backend_open.argtypes = [ctypes.POINTER(BackendConfig), ctypes.POINTER(ctypes.c_void_p)]
        L.kvmm_backend_last_error.restype = ctypes.c_char_p
        L.kvmm_backend_last_error.argtypes = [ctypes.c_void_p]
        L.kvmm_backend_close.argtypes = [ctypes.c_void_p]
        L.kvmm_kernels_open.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        L.kvmm_kernels_close.argtypes = [ctypes.c_void_p]
        L.kvmm_kernels_last_error.restype = ctypes.c_char_p
        L.kvmm_kernels_last_error.argtypes = [ctypes.c_void_p]
        L.kvmm_attn_decode.argtypes = [ctypes.c_void_p, ctypes.POINTER(View), ctypes.POINTER(View),
                                       ctypes.POINTER(AttnParams), ctypes.c_uint64]
        self.be = ctypes.c_void_p()
        cfg = BackendConfig(BACKEND_CUDA, 0, 0, 0)
        r = L.kvmm_backend_open(ctypes.byref(cfg), ctypes.byref(self.be))
        if r == -ENODEV:
            raise Skip("no CUDA device")
        if r:
            raise OSError(-r, "kvmm_backend_open: %s" % L.kvmm_backend_last_error(self.be))
        self.k = ctypes.c_void_p()
        r = L.kvmm_kernels_open(self.be, ctypes.byref(self.k))
        if r:
            raise OSError(-r, "kvmm_kernels_open: %s" % L.kvmm_backend_last_error(self.be))

    def decode(self, kv, vv, p, stream=0):
        r = self.lib.kvmm_attn_decode(self.k, ctypes.byref(kv), ctypes.byref(vv), ctypes.byref(p),
                                      stream)
        if r:
            raise OSError(-r, "kvmm_attn_decode: %s" % self.lib.kvmm_kernels_last_error(self.k).decode())

    def close(self):
        if self.k:
            self.lib.kvmm_kernels_close(self.k)
            self.k = None
        if self.be:
            self.lib.kvmm_backend_close(self.be)
            self.be = None


class Layout:
    """One cache's slot range in a kvmm layout, with the geometry of
    runtime/src/layout.c: bytes, and the view of (layer, kv) over an
    allocation at base."""

    def __init__(self, layout, layers, heads, head_dim, max_seqs, max_tokens, page=PAGE):
        self.layout, self.layers, self.heads, self.d = layout, layers, heads, head_dim
        self.max_seqs, self.max_tokens, self.page = max_seqs, max_tokens, page
        self.row = heads * head_dim * 2
        self.tok_all = self.row * 2 * layers
        self.tpb = page // (self.row if layout == LAYER_MAJOR else self.tok_all)
        self.seq_stride = -(-max_tokens // self.tpb) * page
        parts = 2 * layers if layout == LAYER_MAJOR else 1
        self.part_stride = self.seq_stride * max_seqs
        self.bytes = self.part_stride * parts

    def view(self, base, layer, kv):
        lk = layer * 2 + kv
        v = View()
        v.layout, v.num_heads, v.head_dim, v.elem_size = self.layout, self.heads, self.d, 2
        v.max_seqs, v.max_tokens, v.head_stride = self.max_seqs, self.max_tokens, self.d * 2
        v.seq_stride, v.page_stride, v.tokens_per_page = self.seq_stride, self.page, self.tpb
        if self.layout == LAYER_MAJOR:
            v.base, v.token_stride = base + lk * self.part_stride, self.row
        elif self.layout == TOKEN_MAJOR:
            v.base, v.token_stride = base + lk * self.row, self.tok_all
        else:
            v.base, v.token_stride = base + lk * self.tpb * self.row, self.row
        return v


def uniform(v):
    """A view with one token stride (a plain strided tensor)?"""
    return v.page_stride == v.tokens_per_page * v.token_stride


def view_tensor(torch, buf, v, dtype):
    """The view as a torch tensor over buf (a 1-D tensor of 2-byte elements):
    [seq][token][head][dim] for uniform views (layer-/token-major),
    [seq][page][token in page][head][dim] for page-major."""
    off = (v.base - buf.data_ptr()) // 2
    if uniform(v):
        return torch.as_strided(buf, (v.max_seqs, v.max_tokens, v.num_heads, v.head_dim),
                                (v.seq_stride // 2, v.token_stride // 2, v.head_stride // 2, 1), off)
    pages = -(-v.max_tokens // v.tokens_per_page)
    return torch.as_strided(buf, (v.max_seqs, pages, v.tokens_per_page, v.num_heads, v.head_dim),
                            (v.seq_stride // 2, v.page_stride // 2, v.token_stride // 2,
                             v.head_stride // 2, 1), off)


# --- DLPack over a raw device pointer (what an engine does with a kvmm view) ---

class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_DLManagedTensor))
_DLManagedTensor._fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                             ("deleter", _DELETER)]
_keep = {}


@_DELETER
def _dl_delete(p):
    _keep.pop(ctypes.addressof(p.contents), None)


def dlpack_capsule(ptr, shape, strides, bf16=True, device=0):
    """A legacy 'dltensor' capsule over device memory at ptr (elements of 2
    bytes, strides in elements).  The memory must outlive the tensor made
    from it (kvmm views live as long as their cache)."""
    m = _DLManagedTensor()
    sh = (ctypes.c_int64 * len(shape))(*shape)
    st = (ctypes.c_int64 * len(strides))(*strides)
    m.dl_tensor = _DLTensor(ptr, _DLDevice(2, device), len(shape),
                            _DLDataType(4 if bf16 else 2, 16, 1), sh, st, 0)
    m.manager_ctx = None
    m.deleter = _dl_delete
    _keep[ctypes.addressof(m)] = (m, sh, st)
    new = ctypes.pythonapi.PyCapsule_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return new(ctypes.addressof(m), b"dltensor", None)
