#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""KV views through DLPack and numpy on the host backend: shapes, strides
(checked against kvmm.h's address formula), zero-copy in both directions,
lifetimes, and the capsule protocol itself."""
import ctypes
import gc

import numpy as np
from kvtest import MiB, cache, pattern
from tap import run

import kvmm
from kvmm import dlpack

# (layout, layers, heads, dim): the token-major case with 3 heads has a token
# size that does not divide the page, which makes its views paged too.
GEOMETRIES = [("layer-major", 2, 2, 64), ("token-major", 2, 2, 64), ("page-major", 2, 2, 64),
              ("token-major", 2, 3, 64), ("layer-major", 3, 1, 128)]


def addr(a, idx):
    """Address of element idx of numpy array a."""
    return a.__array_interface__["data"][0] + sum(i * s for i, s in zip(idx, a.strides))


def formula(v, s, t, h, d):
    """kvmm.h's byte address of (seq, token, head, dim) in view struct v."""
    tpp = v.tokens_per_page
    return (v.base + s * v.seq_stride + (t // tpp) * v.page_stride + (t % tpp) * v.token_stride
            + h * v.head_stride + d * v.elem_size)


def fill(c, seqs, ntok):
    """Write the pattern into every (seq, layer, K/V) through kvmm_seq_write."""
    for s in seqs:
        s.step(ntok)
        for layer in range(c.num_layers):
            for kv in "kv":
                s.write(layer, kv, 0, pattern(s.slot, layer, kv, 0, ntok, c.num_kv_heads,
                                              c.head_dim))


def test_views_follow_the_address_formula():
    rng = np.random.default_rng(1)
    with kvmm.Backend("host") as be:
        for layout, layers, heads, dim in GEOMETRIES:
            with cache(be, layout=layout, layers=layers, heads=heads, dim=dim, seqs=3,
                       tokens=3000, budget=256 * MiB) as c:
                for layer in range(layers):
                    for kv in "kv":
                        v = c.view(layer, kv)
                        a = np.from_dlpack(v)
                        cv = v.struct
                        tpp = cv.tokens_per_page
                        assert a.dtype == np.float16
                        if v.paged:
                            assert a.shape == (3, cv.seq_stride // cv.page_stride, tpp, heads, dim)
                        else:
                            assert a.shape == (3, 3000, heads, dim)
                            assert a.strides == (cv.seq_stride, cv.token_stride, cv.head_stride, 2)
                        for _ in range(50):
                            s, t = int(rng.integers(3)), int(rng.integers(3000))
                            h, d = int(rng.integers(heads)), int(rng.integers(dim))
                            idx = (s, t // tpp, t % tpp, h, d) if v.paged else (s, t, h, d)
                            assert addr(a, idx) == formula(cv, s, t, h, d), (layout, idx)
                paged = {c.view(0, "k").paged}
                assert paged == {layout == "page-major" or heads == 3}, (layout, heads)


def test_content_through_whole_cache_and_sequence_views():
    with kvmm.Backend("host") as be:
        for layout, layers, heads, dim in GEOMETRIES:
            with cache(be, layout=layout, layers=layers, heads=heads, dim=dim, seqs=3,
                       tokens=3000, budget=256 * MiB) as c:
                seqs = [c.open() for _ in range(3)]
                n = 1500  # crosses a page in every geometry but layer-major
                fill(c, seqs, n)
                for layer in range(layers):
                    for kv in "kv":
                        v = c.view(layer, kv)
                        full = np.from_dlpack(v)
                        for s in seqs:
                            want = pattern(s.slot, layer, kv, 0, n, heads, dim)
                            sv = s.view(layer, kv)
                            a = np.from_dlpack(sv)
                            if v.paged:
                                # (reshaping the whole slot would read its
                                # unmapped pages: take the mapped ones first)
                                tpp = v.tokens_per_page
                                got = full[s.slot, :-(-n // tpp)].reshape(-1, heads, dim)[:n]
                                assert a.shape[1:] == (tpp, heads, dim)
                                assert (a.reshape(-1, heads, dim)[:n] == want).all()
                            else:
                                got = full[s.slot, :n]
                                assert a.shape == (n, heads, dim)
                                assert (a == want).all()
                            assert (got == want).all(), (layout, layer, kv, s.slot)
                for s in seqs:
                    s.close()


def test_zero_copy_both_ways():
    with kvmm.Backend("host") as be:
        for layout in ("layer-major", "token-major", "page-major"):
            with cache(be, layout=layout, seqs=2) as c, c.open() as s:
                fill(c, [s], 100)
                seen = np.from_dlpack(s.view(1, "v"))  # read-only on numpy < 2
                mine = s.view(1, "v").numpy()  # writable
                assert mine.flags.writeable
                tpp = s.view(1, "v").tokens_per_page
                if s.view(1, "v").paged:
                    def tok(a, t):  # token t of a paged array, in place
                        return a[t // tpp, t % tpp]
                else:
                    def tok(a, t):
                        return a[t]
                # kvmm writes, both arrays see it without a new export
                s.write(1, "v", 10, np.full((3, 2, 64), 1234, np.float16))
                for t in (10, 11, 12):
                    assert (tok(seen, t) == 1234).all() and (tok(mine, t) == 1234).all()
                # numpy writes, kvmm reads it back
                tok(mine, 50)[:] = -7
                tok(mine, 51)[:] = -7
                got = np.frombuffer(s.read(1, "v", 50, 2), np.float16)
                assert (got == -7).all()
                # neighbours untouched
                got = np.frombuffer(s.read(1, "v", 49, 1), np.float16).reshape(2, 64)
                assert (got == pattern(s.slot, 1, "v", 49, 1, 2, 64)[0]).all()
                del seen, mine


def test_sequence_view_range():
    with kvmm.Backend("host") as be, cache(be, layout="page-major") as c, c.open() as s:
        s.step(10)
        try:
            s.view(0, "k", 0, 11)
        except kvmm.KvmmError as e:
            assert e.errno == 34  # ERANGE
        else:
            raise AssertionError("a view past the length was allowed")
        try:
            s.view(0, "k", 3, 10)
        except ValueError as e:
            assert "page boundary" in str(e)
        else:
            raise AssertionError("a paged view starting mid-page was allowed")
        s.reserve(500)
        assert np.from_dlpack(s.view(0, "k", 0, 500)).shape[0] * c.view(0, "k").tokens_per_page \
            >= 500


def test_page_table_is_identity():
    with kvmm.Backend("host") as be, cache(be, layout="page-major", seqs=3, tokens=5000) as c:
        v = c.view(0, "k")
        t = v.page_table()
        per = v.struct.seq_stride // v.struct.page_stride
        assert list(t) == list(range(3 * per))


def test_export_keeps_cache_alive_until_released():
    with kvmm.Backend("host") as be:
        c = cache(be)
        s = c.open()
        fill(c, [s], 20)
        base = dlpack.live_exports()
        a = np.from_dlpack(s.view(0, "k"))
        b = s.view(0, "v").numpy()
        assert dlpack.live_exports() == base + 1
        c.close()
        assert c.closed and c._h is not None  # deferred: arrays still point into it
        assert (a == pattern(s.slot, 0, "k", 0, 20, 2, 64)).all()
        b[0] = 1  # still mapped, still writable
        del a
        gc.collect()
        assert c._h is not None  # b holds it
        del b
        gc.collect()
        assert c._h is None and be.stats()["pages_live"] == 0
        assert dlpack.live_exports() == base


_api = ctypes.PyDLL(None)


def _capsule_struct(cap, versioned):
    api = _api
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    name = b"dltensor_versioned" if versioned else b"dltensor"
    p = api.PyCapsule_GetPointer(cap, name)
    cls = dlpack.DLManagedTensorVersioned if versioned else dlpack.DLManagedTensor
    return cls.from_address(p), p


def test_capsules_by_hand():
    with kvmm.Backend("host") as be, cache(be, dtype="bfloat16", layout="layer-major") as c:
        base = dlpack.live_exports()
        with c.open() as s:
            s.step(5)
            v = s.view(1, "k")
            for versioned in (False, True):
                cap = v.__dlpack__(max_version=(1, 1)) if versioned else v.__dlpack__()
                m, p = _capsule_struct(cap, versioned)
                t = m.dl_tensor
                if versioned:
                    assert (m.version.major, m.version.minor) == dlpack.VERSION and m.flags == 0
                assert (t.device.device_type, t.device.device_id) == (dlpack.KDL_CPU, 0)
                assert (t.dtype.code, t.dtype.bits, t.dtype.lanes) == (4, 16, 1)  # bfloat16
                assert t.ndim == 3 and [t.shape[i] for i in range(3)] == [5, 2, 64]
                assert [t.strides[i] for i in range(3)] == [128, 64, 1]
                assert t.data == v.data and t.byte_offset == 0
                assert dlpack.live_exports() == base + 1 and c._pins == 1
                # a consumer takes it: renames the capsule, calls the deleter when done
                _api.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]
                _api.PyCapsule_SetName(cap, b"used_dltensor")
                m.deleter(p)
                assert dlpack.live_exports() == base and c._pins == 0
                del cap, m
                gc.collect()
                assert dlpack.live_exports() == base
            # an unconsumed capsule releases its export when collected
            cap = v.__dlpack__()
            assert c._pins == 1
            del cap
            gc.collect()
            assert c._pins == 0 and dlpack.live_exports() == base


def test_dlpack_requests_that_cannot_be_met():
    with kvmm.Backend("host") as be, cache(be) as c:
        v = c.view(0, "k")
        assert v.__dlpack_device__() == (dlpack.KDL_CPU, 0)
        for kw, text in (({"copy": True}, "zero-copy"), ({"dl_device": (2, 0)}, "device"),
                         ({"stream": 5}, "stream")):
            try:
                v.__dlpack__(**kw)
            except BufferError as e:
                assert text in str(e), e
            else:
                raise AssertionError(f"{kw} was accepted")
        assert c._pins == 0
        np.from_dlpack(v)  # stream=None and friends are fine
    with kvmm.Backend("null") as be, cache(be) as c:
        try:
            np.from_dlpack(c.view(0, "k"))
        except BufferError as e:
            assert "null" in str(e)
        else:
            raise AssertionError("the null backend exported memory")


def test_float32_and_uint8_views():
    with kvmm.Backend("host") as be:
        for dt in ("float32", "uint8"):
            with cache(be, dtype=dt, layout="token-major") as c, c.open() as s:
                s.step(7)
                data = (np.arange(7 * 2 * 64) % 251).astype(dt).reshape(7, 2, 64)
                s.write(0, "v", 0, data)
                a = np.from_dlpack(s.view(0, "v"))
                assert a.dtype == np.dtype(dt) and (a == data).all()
                assert a.strides[-1] == np.dtype(dt).itemsize


if __name__ == "__main__":
    run(globals())
