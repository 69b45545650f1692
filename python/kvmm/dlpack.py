# SPDX-License-Identifier: MIT
"""DLPack export: hand libkvmm memory to numpy, PyTorch, CuPy... without a copy.

A capsule wraps a DLManagedTensor (legacy, "dltensor") or a
DLManagedTensorVersioned ("dltensor_versioned", when the consumer passes
max_version >= (1, 0)).  The structs, the shape and stride arrays and a
reference to the exporting object (which keeps the libkvmm cache alive) live
in a registry keyed by the struct's address until the consumer calls the
deleter, or until an unconsumed capsule is garbage collected.
"""
import ctypes
from ctypes import (CFUNCTYPE, POINTER, Structure, c_int32, c_int64, c_uint8, c_uint16, c_uint32,
                    c_uint64, c_void_p)

KDL_CPU = 1
KDL_CUDA = 2
VERSION = (1, 0)  # the DLPack ABI we produce (1.x layout)


class DLDevice(Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class DLDataType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(Structure):
    _fields_ = [("data", c_void_p), ("device", DLDevice), ("ndim", c_int32),
                ("dtype", DLDataType), ("shape", POINTER(c_int64)),
                ("strides", POINTER(c_int64)), ("byte_offset", c_uint64)]


_DELETER = CFUNCTYPE(None, c_void_p)


class DLManagedTensor(Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", c_void_p), ("deleter", _DELETER)]


class DLPackVersion(Structure):
    _fields_ = [("major", c_uint32), ("minor", c_uint32)]


class DLManagedTensorVersioned(Structure):
    _fields_ = [("version", DLPackVersion), ("manager_ctx", c_void_p), ("deleter", _DELETER),
                ("flags", c_uint64), ("dl_tensor", DLTensor)]


# Capsule names must outlive every capsule, so they are never freed.
_NAME = ctypes.create_string_buffer(b"dltensor")
_NAME_V = ctypes.create_string_buffer(b"dltensor_versioned")

# A private handle on the C API: ctypes.pythonapi's function objects are
# shared, and whoever sets their argtypes changes them for everyone.
_api = ctypes.PyDLL(None)
_CAPSULE_DESTRUCTOR = CFUNCTYPE(None, c_void_p)
_api.PyCapsule_New.restype = ctypes.py_object
_api.PyCapsule_New.argtypes = [c_void_p, c_void_p, _CAPSULE_DESTRUCTOR]
# c_void_p, not py_object: the destructor runs on a capsule being freed,
# whose reference count must not be touched.
_api.PyCapsule_GetName.restype = c_void_p
_api.PyCapsule_GetName.argtypes = [c_void_p]
_api.PyCapsule_GetPointer.restype = c_void_p
_api.PyCapsule_GetPointer.argtypes = [c_void_p, c_void_p]

# address of the managed struct -> _Export
_live = {}


class _Export:
    __slots__ = ("managed", "shape", "strides", "owner")

    def __init__(self, managed, shape, strides, owner):
        self.managed, self.shape, self.strides, self.owner = managed, shape, strides, owner


def _release(addr):
    exp = _live.pop(addr, None)
    if exp is not None and exp.owner is not None:
        owner, exp.owner = exp.owner, None
        owner._export_released()


def _deleter_impl(addr):
    try:
        _release(addr)
    except BaseException:  # never let an exception escape into C
        pass


def _capsule_destructor_impl(cap):
    try:
        name = _api.PyCapsule_GetName(cap)
        if not name:
            return
        # A consumer renames the capsule ("used_dltensor") when it takes
        # ownership; only an unconsumed one is ours to delete.
        if name in (ctypes.addressof(_NAME), ctypes.addressof(_NAME_V)):
            _release(_api.PyCapsule_GetPointer(cap, name))
    except BaseException:
        pass


_deleter = _DELETER(_deleter_impl)
_capsule_destructor = _CAPSULE_DESTRUCTOR(_capsule_destructor_impl)
# Consumers may call the deleter at interpreter exit, after this module's
# globals are gone: keep the C thunks (and the names) alive for good.
for _o in (_deleter, _capsule_destructor, _NAME, _NAME_V):
    _api.Py_IncRef(ctypes.py_object(_o))


def check_request(my_device, stream=None, max_version=None, dl_device=None, copy=None):
    """Validate __dlpack__ arguments; returns whether to export versioned."""
    if copy:
        raise BufferError("kvmm views are zero-copy only (copy=True was requested)")
    if dl_device is not None and tuple(dl_device) != tuple(my_device):
        raise BufferError(f"kvmm view lives on device {tuple(my_device)}, "
                          f"not {tuple(dl_device)}")
    if my_device[0] == KDL_CPU and stream is not None and stream != -1:
        raise BufferError("stream must be None for host memory")
    # kvmm never leaves work pending on the device (its copies synchronize),
    # so there is nothing to order against the consumer's stream.
    return max_version is not None and tuple(max_version)[0] >= 1


def export(owner, data, device, dtype, shape, strides, versioned=False):
    """A DLPack capsule over data (an address).

    owner: object kept alive until the consumer is done; its
    _export_released() is called then.  device: (device_type, device_id).
    dtype: (code, bits, lanes).  shape, strides: in elements.
    """
    n = len(shape)
    if len(strides) != n:
        raise ValueError("shape and strides differ in length")
    shp = (c_int64 * n)(*shape)
    std = (c_int64 * n)(*strides)
    m = DLManagedTensorVersioned() if versioned else DLManagedTensor()
    t = m.dl_tensor
    t.data = data
    t.device = DLDevice(*device)
    t.ndim = n
    t.dtype = DLDataType(*dtype)
    t.shape = ctypes.cast(shp, POINTER(c_int64))
    t.strides = ctypes.cast(std, POINTER(c_int64))
    t.byte_offset = 0
    m.manager_ctx = None
    m.deleter = _deleter
    if versioned:
        m.version = DLPackVersion(*VERSION)
        m.flags = 0
    addr = ctypes.addressof(m)
    _live[addr] = _Export(m, shp, std, owner)
    owner._export_taken()
    try:
        return _api.PyCapsule_New(addr, ctypes.addressof(_NAME_V if versioned else _NAME),
                                  _capsule_destructor)
    except BaseException:
        _release(addr)
        raise


def live_exports():
    """Number of capsules or consumer tensors not yet released (for tests)."""
    return len(_live)
