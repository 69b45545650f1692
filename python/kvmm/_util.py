# SPDX-License-Identifier: MIT
"""Argument checking shared by the binding: ctypes silently wraps a negative
int into a uint32, so every integer is checked here, by name."""
import array
import ctypes
import operator

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1


def _int(name, v):
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(v).__name__}") from None


def u32(name, v):
    v = _int(name, v)
    if not 0 <= v <= U32_MAX:
        raise ValueError(f"{name}: must be in 0..{U32_MAX}, got {v}")
    return v


def u64(name, v):
    v = _int(name, v)
    if not 0 <= v <= U64_MAX:
        raise ValueError(f"{name}: must be in 0..{U64_MAX}, got {v}")
    return v


def as_buffer(obj, name, writable=False):
    """(address, nbytes, keepalive) of a C-contiguous buffer (bytes, bytearray,
    memoryview, array.array, numpy array...): the buffer itself when it is
    writable, a copy of a read-only one (only ever read from)."""
    try:
        mv = memoryview(obj)
    except TypeError:
        raise TypeError(f"{name}: expected a buffer (bytes, bytearray, numpy array...), "
                        f"got {type(obj).__name__}") from None
    if not mv.c_contiguous:
        raise ValueError(f"{name}: buffer must be C-contiguous")
    if writable and mv.readonly:
        raise ValueError(f"{name}: buffer is read-only")
    mv = mv.cast("B") if mv.ndim != 1 or mv.format != "B" else mv
    n = mv.nbytes
    if n == 0:
        return None, 0, mv
    if mv.readonly:
        # ctypes maps only writable buffers in place.
        c = (ctypes.c_char * n).from_buffer_copy(mv)
        return ctypes.addressof(c), n, c
    c = (ctypes.c_char * n).from_buffer(mv)
    return ctypes.addressof(c), n, (c, mv)


def tokens_array(tokens, name="tokens"):
    """A ctypes uint32 array of token ids (a list, array('I'/'L'), numpy array...)."""
    try:
        mv = memoryview(tokens)
    except TypeError:
        mv = None
    if (mv is not None and mv.ndim == 1 and mv.itemsize == 4 and mv.c_contiguous
            and mv.format in ("I", "L", "=I", "<I")):
        return (ctypes.c_uint32 * len(mv)).from_buffer_copy(mv)
    try:
        a = array.array("I", tokens)
    except (TypeError, OverflowError) as e:
        raise ValueError(f"{name}: expected token ids in 0..{U32_MAX} ({e})") from None
    return (ctypes.c_uint32 * len(a)).from_buffer(a)
