#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The ctypes binding on the host backend: lifetimes, errors, sequences,
steps, copies, budget and stats."""
import errno
import gc
import json
import threading
import weakref

import numpy as np
from kvtest import MiB, cache, pattern
from tap import run

import kvmm


def expect_error(err, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except kvmm.KvmmError as e:
        assert e.errno == err, f"{fn.__name__}: errno {e.errno}, expected {err}: {e}"
        assert e.strerror == kvmm.strerror(err), e.strerror
        return e
    raise AssertionError(f"{fn.__name__} did not fail with {errno.errorcode[err]}")


def expect(exc, text, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc as e:
        assert text in str(e), f"{e!r} does not mention {text!r}"
        return e
    raise AssertionError(f"{fn.__name__} did not raise {exc.__name__}")


def test_library_found_and_versioned():
    assert kvmm.library_version()[0] == 0
    assert kvmm.library_path().endswith("libkvmm.so.0")
    assert kvmm.has("kvmm_step") and not kvmm.has("kvmm_no_such_function")
    expect(AttributeError, "no prototype", getattr, kvmm._lib, "kvmm_no_such_function")


def test_backend_host():
    with kvmm.Backend("host") as be:
        assert be.name == "host" and be.kind == "host"
        assert be.page_size == 2 * MiB
        st = be.stats()
        assert st["pages_live"] == 0 and set(st["calls"]) >= {"map", "unmap", "create"}
        assert be.last_error == ""
    assert be.closed
    expect(ValueError, "closed", lambda: be.name)


def test_backend_bad_arguments():
    expect(ValueError, "kind", kvmm.Backend, "tpu")
    expect(ValueError, "page_size", kvmm.Backend, "host", page_size=-1)
    e = expect_error(errno.EINVAL, kvmm.Backend, "host", page_size=12345)
    assert "kvmm_backend_open" in str(e)


def test_backend_cuda_absent_is_enodev():
    try:
        kvmm.Backend("cuda").close()
    except kvmm.KvmmError as e:
        assert e.errno == errno.ENODEV and "kind=cuda" in str(e)
    # (on a GPU machine this opens: nothing to check here then)


def test_backend_copies():
    with kvmm.Backend("host") as be, cache(be, layers=1, heads=1, dim=64) as c:
        with c.open(10) as s:
            s.step(10)
            addr = s.view(0, "k").data
            be.memcpy_to_dev(addr, b"\x01\x02\x03\x04")
            out = bytearray(4)
            be.memcpy_to_host(out, addr)
            assert out == b"\x01\x02\x03\x04"
            be.memset_dev(addr, 9, 2)
            be.memcpy_to_host(out, addr)
            assert out == b"\x09\x09\x03\x04"
            be.memcpy_dev(addr + 2, addr, 2)
            be.memcpy_to_host(out, addr)
            assert out == b"\x09\x09\x09\x09"
            expect(ValueError, "byte", be.memset_dev, addr, 256, 1)
            expect(ValueError, "read-only", be.memcpy_to_host, b"abcd", addr)


def test_cache_info_and_layouts():
    with kvmm.Backend("host") as be:
        for layout in ("layer-major", "token-major", "page-major"):
            with cache(be, layout=layout, layers=3, heads=2, dim=64) as c:
                i = c.info
                assert i["layout"] == layout == c.layout
                assert i["shape"] == {"num_layers": 3, "num_kv_heads": 2, "head_dim": 64,
                                      "elem_size": 2}
                assert i["token_bytes"] == 3 * 2 * 2 * 64 * 2
                assert c.tokens_per_block == i["tokens_per_block"] > 0
        with cache(be, layout="default") as c:
            assert c.layout in ("layer-major", "token-major", "page-major")


def test_cache_bad_arguments():
    with kvmm.Backend("host") as be:
        expect(ValueError, "layout", cache, be, layout="row-major")
        expect(ValueError, "dtype", cache, be, dtype="complex64")
        expect(ValueError, "num_layers", cache, be, layers=-2)
        expect(TypeError, "max_seqs", cache, be, seqs=2.5)
        expect(TypeError, "pressure", cache, be, pressure=3)
        expect_error(errno.EINVAL, cache, be, layers=0)
        expect_error(errno.ENOMEM, cache, be, budget=2 * MiB, reserve_bytes=4 * MiB)
        # a failed create leaves the backend usable and unpinned
        assert be._pins == 0
        with cache(be) as c:
            assert c.open() is not None


def test_dtypes():
    assert kvmm.dtypes.canonical("fp16") == "float16"
    assert kvmm.dtypes.canonical(np.dtype("float32")) == "float32"
    assert kvmm.dtypes.size("bfloat16") == 2 and kvmm.dtypes.size("float8_e4m3fn") == 1
    with kvmm.Backend("host") as be:
        for dt, es in (("float32", 4), ("bfloat16", 2), ("uint8", 1), ("float64", 8)):
            with cache(be, dtype=dt) as c:
                assert c.elem_size == es and c.dtype == dt


def test_sequences_open_step_close():
    with kvmm.Backend("host") as be, cache(be, seqs=2, tokens=2048) as c:
        a = c.open(100)
        b = c.open()
        assert a.slot != b.slot and {a.slot, b.slot} == {0, 1}
        expect_error(errno.ENOSPC, c.open)
        expect(ValueError, "expected_tokens", c.open, -1)
        expect_error(errno.EINVAL, c.open, 4096)  # over max_tokens
        c.step([(a, 100), (b, 5)])
        assert a.len == 100 and b.len == 5 and len(a) == 100
        c.step({a: 101})
        assert a.len == 101
        expect_error(errno.EFBIG, a.step, 4096)
        expect_error(errno.EINVAL, c.step, [(a, 1), (a, 2)])  # listed twice
        assert a.len == 101 and b.len == 5  # nothing changed on error
        st = a.stats()
        assert st["len"] == 101 and st["mapped_tokens"] >= 101
        assert c.stats()["seqs_active"] == 2 and c.stats()["tokens_used"] == 106
        a.close()
        a.close()  # idempotent
        assert a.closed
        expect(ValueError, "closed", lambda: a.len)
        assert c.stats()["seqs_active"] == 1
        with c.open() as d:  # the freed slot is reused
            assert d.slot in (0, 1)
        assert c.stats()["seqs_active"] == 1


def test_sequence_closed_by_garbage_collection():
    with kvmm.Backend("host") as be, cache(be, seqs=1) as c:
        s = c.open()
        s.step(10)
        del s
        gc.collect()
        assert c.stats()["seqs_active"] == 0
        c.open().close()


def test_batch_step():
    with kvmm.Backend("host") as be, cache(be, seqs=4) as c:
        seqs = [c.open() for _ in range(4)]
        bt = c.batch(seqs)
        assert len(bt) == 4 and bt.slots == [s.slot for s in seqs]
        bt.step(10)
        assert [s.len for s in seqs] == [10] * 4
        bt.step([11, 12, 13, 14])
        assert [s.len for s in seqs] == [11, 12, 13, 14]
        expect(ValueError, "lens", bt.step, [1, 2])
        expect(ValueError, "len", bt.step, -3)
        calls = c.stats()["step_calls"]
        for n in range(15, 40):
            bt.step(n)
        assert c.stats()["step_calls"] == calls + 25


def test_write_read_roundtrip_and_errors():
    with kvmm.Backend("host") as be, cache(be, layout="layer-major", seqs=2, heads=2,
                                           dim=64) as c:
        with c.open(64) as s:
            s.step(64)
            for layer in range(2):
                for kv in "kv":
                    s.write(layer, kv, 0, pattern(s.slot, layer, kv, 0, 64, 2, 64))
            for layer in range(2):
                for kv in "kv":
                    got = np.frombuffer(s.read(layer, kv, 0, 64), np.float16).reshape(64, 2, 64)
                    assert (got == pattern(s.slot, layer, kv, 0, 64, 2, 64)).all()
            out = np.empty((3, 2, 64), np.float16)
            s.read(1, "v", 10, 3, out=out)
            assert (out == pattern(s.slot, 1, "v", 10, 3, 2, 64)).all()
            expect_error(errno.ERANGE, s.read, 0, "k", 60, 5)  # past the length
            expect_error(errno.ERANGE, s.write, 0, "k", 64, np.zeros((1, 2, 64), np.float16))
            expect_error(errno.EINVAL, s.read, 2, "k", 0, 1)  # no layer 2
            expect(ValueError, "kv", s.read, 0, "q", 0, 1)
            expect(ValueError, "whole number of tokens", s.write, 0, "k", 0, b"abc")
            expect(ValueError, "out", s.read, 0, "k", 0, 2, out=bytearray(10))
            expect(ValueError, "read-only", s.read, 0, "k", 0, 1, out=bytes(256))
            expect(TypeError, "buffer", s.write, 0, "k", 0, [1, 2, 3])
            expect(ValueError, "C-contiguous", s.write, 0, "k", 0,
                   np.zeros((2, 64, 2), np.float16).transpose(0, 2, 1))


def test_reserve_makes_tokens_addressable():
    with kvmm.Backend("host") as be, cache(be) as c:
        with c.open() as s:
            s.reserve(300)
            assert s.len == 0
            s.write(0, "k", 0, pattern(s.slot, 0, "k", 0, 300, 2, 64))
            assert s.view(0, "k", 0, 300).shape == (300, 2, 64)
            expect_error(errno.EFBIG, s.reserve, 1 << 20)


def test_budget_enomem_and_pressure_callback():
    calls = []
    with kvmm.Backend("host") as be:
        # token-major, 2 layers x 2 heads x 64 x fp16 = 1 KiB a token: 2048 a page
        with cache(be, budget=4 * MiB, pressure=calls.append) as c:
            a = c.open()
            a.step(2048 * 2)  # both pages of the budget
            b = c.open()
            expect_error(errno.ENOMEM, b.reserve, 10)
            assert calls and calls[-1] >= 1, calls
            assert b.len == 0 and c.stats()["alloc_failures"] >= 1
            assert c.stats()["pages_created"] * 2 * MiB <= 4 * MiB
            a.close()
            b.reserve(10)  # a's pages come back through the slot's reuse/steal
            short = c.set_budget(2 * MiB)
            assert short >= 0
            assert c.set_budget(64 * MiB) == 0
            expect(ValueError, "budget_bytes", c.set_budget, -1)


def test_stats_json_matches_struct():
    with kvmm.Backend("host") as be, cache(be) as c:
        with c.open() as s:
            s.step(77)
            j = json.loads(c.stats_json())
            st = c.stats()
            assert j["backend"] == "host" and j["layout"] == "token-major"
            for k in ("tokens_used", "seqs_active", "pages_created", "budget_bytes"):
                assert j[k] == st[k], k
            assert j["tokens_used"] == 77
            assert st["backend"]["pages_live"] == be.stats()["pages_live"] > 0


def test_deterministic_free_with_context_managers():
    be = kvmm.Backend("host")
    with be:
        with cache(be, reserve_bytes=4 * MiB) as c:
            assert be.stats()["pages_live"] > 0
        assert c.closed and c._h is None
        assert be.stats()["pages_live"] == 0
        assert be.stats()["va_reserved_bytes"] == 0
    assert be._h is None


def test_free_on_garbage_collection():
    be = kvmm.Backend("host")
    c = cache(be, reserve_bytes=4 * MiB)
    s = c.open()
    s.step(5)
    ref = weakref.ref(c)
    assert be.stats()["pages_live"] > 0
    del c, s
    gc.collect()
    assert ref() is None
    assert be.stats()["pages_live"] == 0
    bref = weakref.ref(be)
    del be
    gc.collect()
    assert bref() is None


def test_backend_close_waits_for_its_caches():
    be = kvmm.Backend("host")
    c = cache(be)
    be.close()  # deferred: c still uses it
    assert be.closed and be._h is not None
    expect(ValueError, "closed", cache, be)  # but no new cache on it
    with c.open() as s:
        s.step(3)
    c.close()
    assert be._h is None


def test_operations_on_closed_cache_fail_cleanly():
    with kvmm.Backend("host") as be:
        c = cache(be)
        s = c.open()
        c.close()
        expect(ValueError, "closed", c.open)
        expect(ValueError, "closed", c.stats)
        expect(ValueError, "closed", c.view, 0, "k")
        expect(ValueError, "closed", lambda: s.len)
        s.close()  # a no-op: the cache took it


def test_threads_share_a_cache():
    errors = []
    with kvmm.Backend("host") as be, cache(be, seqs=8, tokens=8192, budget=256 * MiB) as c:
        def worker(k):
            try:
                for i in range(30):
                    with c.open(50) as s:
                        s.step(50 + i)
                        data = pattern(s.slot, 1, "v", 0, 50 + i, 2, 64)
                        s.write(1, "v", 0, data)
                        got = np.frombuffer(s.read(1, "v", 0, 50 + i), np.float16)
                        assert (got.reshape(data.shape) == data).all()
            except BaseException as e:  # report in the main thread
                errors.append(e)
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors
        assert c.stats()["seqs_active"] == 0


if __name__ == "__main__":
    run(globals())
