# SPDX-License-Identifier: MIT
"""Element types of KV: names, sizes and DLPack type codes.

libkvmm itself only knows the element size; the binding records the type
so that views export with the right DLPack dtype.
"""
# DLPack DLDataTypeCode values (dlpack.h, v1.1)
DL_INT, DL_UINT, DL_FLOAT, DL_BFLOAT = 0, 1, 2, 4
DL_FLOAT8_E4M3FN, DL_FLOAT8_E5M2 = 10, 12

# name -> (DLPack code, bits)
_TYPES = {
    "float16": (DL_FLOAT, 16),
    "bfloat16": (DL_BFLOAT, 16),
    "float32": (DL_FLOAT, 32),
    "float64": (DL_FLOAT, 64),
    "int8": (DL_INT, 8),
    "uint8": (DL_UINT, 8),
    "int16": (DL_INT, 16),
    "int32": (DL_INT, 32),
    "float8_e4m3fn": (DL_FLOAT8_E4M3FN, 8),
    "float8_e5m2": (DL_FLOAT8_E5M2, 8),
}
_ALIASES = {"half": "float16", "fp16": "float16", "bf16": "bfloat16", "float": "float32",
            "fp32": "float32", "double": "float64", "fp8": "float8_e4m3fn"}


def canonical(dtype):
    """The kvmm name of dtype: a name ("float16"), a numpy dtype or a torch dtype."""
    name = getattr(dtype, "name", None) if not isinstance(dtype, str) else dtype
    if name is None:
        name = str(dtype)  # torch.float16 -> "torch.float16"
    name = name.lower()
    if name.startswith("torch."):
        name = name[len("torch."):]
    name = _ALIASES.get(name, name)
    if name not in _TYPES:
        raise ValueError(f"dtype: unsupported element type {dtype!r} "
                         f"(one of {', '.join(sorted(_TYPES))})")
    return name


def size(name):
    """Bytes per element."""
    return _TYPES[canonical(name)][1] // 8


def dlpack(name):
    """(code, bits, lanes) of DLPack's DLDataType."""
    code, bits = _TYPES[canonical(name)]
    return code, bits, 1


def names():
    return sorted(_TYPES)
