#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tiers through the binding, on the host backend: prefixes spilled to
a small host pool and a disk directory under pressure, prefetched back,
attached (by match, and layer-wise) and their KV compared through numpy
DLPack views with what was written; stats and their JSON; bad arguments
raise with the errno; prefetch handles released by ``with``, garbage
collection and the cache's close; the null backend's bookkeeping tiers.
Skipped while libkvmm has no tiers."""
import errno
import gc
import json
import os
import shutil
import tempfile

import numpy as np
from kvtest import MiB, pattern
from tap import run, skip

import kvmm

# 4 layers x 8 heads x 128 x fp16: 128 tokens per 2 MiB block (token-major)
LAYERS, HEADS, DIM = 4, 8, 128
NBLK = 4  # blocks per prompt
REC = 2 * MiB + 64 * 1024  # room for one record (block + header) in host_bytes


def need_tiers():
    if not kvmm.has("kvmm_tiers_enable"):
        skip("libkvmm has no tiers yet")


class Env:
    """A host backend, a cache with the prefix cache and tiers (host pool of
    host_recs records, a disk of disk_recs in a scratch directory)."""

    def __init__(self, host_recs=2, disk_recs=16, budget_blocks=64, **tiers):
        self.dir = tempfile.mkdtemp(prefix="kvmm-pytest-",
                                    dir=os.environ.get("KVMM_TEST_DISK_DIR") or "/var/tmp")
        self.be = kvmm.Backend("host")
        self.c = kvmm.Cache(self.be, num_layers=LAYERS, num_kv_heads=HEADS, head_dim=DIM,
                            dtype="float16", layout="token-major", max_seqs=4,
                            max_tokens=NBLK * 128, budget_bytes=budget_blocks * 2 * MiB,
                            mapper=False)
        assert self.c.tokens_per_block == 128
        self.c.enable_prefix()
        self.log = []
        if disk_recs:
            tiers.update(disk_dir=self.dir, disk_bytes=disk_recs * REC,
                         disk_buffered=not direct_io(self.dir))
        self.c.enable_tiers(host_recs * REC, host_node="any", log=self.log.append, **tiers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.c.close()
        self.be.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def direct_io(d):
    """Whether d's filesystem takes O_DIRECT (else the tiers run buffered)."""
    p = os.path.join(d, "probe")
    try:
        os.close(os.open(p, os.O_RDWR | os.O_CREAT | getattr(os, "O_DIRECT", 0), 0o600))
    except OSError:
        return False
    os.unlink(p)
    return True


def prompt(i):
    return list(range(100000 * (i + 1), 100000 * (i + 1) + NBLK * 128))


def fill(c, i, ns):
    """Prompt i's KV, written through writable numpy views, then published."""
    n = NBLK * 128
    with c.open(n) as s:
        s.step(n)
        for layer in range(LAYERS):
            for kv in "kv":
                s.view(layer, kv).numpy()[:] = pattern(i, layer, kv, 0, n, HEADS, DIM)
        assert c.prefix_insert(s, prompt(i), ns) == n


def expect(s, i, n=NBLK * 128):
    """s holds prompt i's KV for tokens [0, n), read through numpy.from_dlpack."""
    assert s.len == n
    for layer in range(LAYERS):
        for kv in "kv":
            got = np.from_dlpack(s.view(layer, kv, 0, n))
            assert (got == pattern(i, layer, kv, 0, n, HEADS, DIM)).all(), (i, layer, kv)


def cached(c, i, ns):
    with c.prefix_match(prompt(i), ns) as m:
        return len(m)


def restore(c, i, ns, whole=True):
    """Prefetch prompt i, wait for what was found (all of it when whole),
    attach it by match to a new sequence and check every byte; returns the
    tokens restored."""
    n = NBLK * 128
    with c.prefix_prefetch(prompt(i), ns) as pf:
        assert pf.found == n or not whole, pf
        assert pf.found >= cached(c, i, ns)
        got = pf.wait(timeout=30)
        assert got == pf.found, (got, pf, c.tiers_stats(), c.prefix_stats())
        with c.prefix_match(prompt(i), ns) as m, c.open(n) as s:
            assert len(m) == pf.found
            if m:
                s.attach_prefix(m)
                expect(s, i, len(m))
        return pf.found


def test_spill_under_pressure_and_restore():
    """A budget of 6 blocks and 3 prompts of 4: each prefill evicts older
    prompts' blocks into a 2-record host pool, which writes them through to
    disk; the first prompt then comes back whole, from the disk.  Later
    restores evict in turn, and a spill that finds the tiny pool busy with
    the restore's own records is skipped (the block is recomputed on its
    next use): what they find must still be exactly what was written.
    (Write-through: with write-back, a prefetch that finds the pool full of
    records not yet on disk stops at once, restoring nothing.)"""
    need_tiers()
    ns = kvmm.Namespace(model_id=3)
    with Env(host_recs=2, budget_blocks=6, disk_policy="write-through") as e:
        c = e.c
        st = c.tiers_stats()
        assert st["host_slots"] == 2 and st["host_slots_free"] == 2, st
        assert st["disk_capacity_bytes"] > 0 and st["encoding"] == "raw"
        for i in range(3):
            fill(c, i, ns)
        c.tiers_flush()
        st = c.tiers_stats()
        assert st["spills_host"] >= 2 * NBLK - 2, st  # what is not on the device
        assert st["spill_host_bytes"] == st["spills_host"] * 2 * MiB, st
        assert st["spills_disk"] >= 2 * NBLK - 4 and st["host_evictions"] >= 2 * NBLK - 4, st
        assert st["blocks"]["host"] + st["blocks"]["disk"] >= NBLK, st
        assert st["spill_skipped"] == 0 and st["verify_failures"] == 0, st
        assert cached(c, 0, ns) < NBLK * 128  # prompt 0 left the device
        restore(c, 0, ns)
        st = c.tiers_stats()
        assert st["restores_host"] + st["restores_disk"] == NBLK and st["restores_disk"] > 0, st
        for i in (1, 2, 0):
            restore(c, i, ns, whole=False)
            c.tiers_flush()
        st = c.tiers_stats()
        assert st["prefetches"] >= 3 and st["io_errors"] == 0 and st["restore_failures"] == 0
        assert st["verify_failures"] == 0, st
        js = json.loads(c.tiers_stats_json())
        st = c.tiers_stats()
        for k in ("spills_host", "spills_disk", "restores_host", "restores_disk", "host_slots",
                  "disk_capacity_bytes", "host_evictions"):
            assert js[k] == st[k], k
        assert js["blocks_host"] == st["blocks"]["host"] and js["host_source"] == st["host_source"]
        assert st["bookkeeping_only"] is False and js["bookkeeping_only"] == 0
        assert e.log == [], e.log


def test_explicit_eviction_and_nothing_to_restore():
    need_tiers()
    with Env(host_recs=NBLK, disk_recs=0, host_policy="write-through") as e:
        c = e.c
        fill(c, 0, None)
        c.tiers_flush()  # write-through: the records are on the host already
        assert c.tiers_stats()["blocks"]["host"] == NBLK
        # cached: nothing to restore, no handle; unknown: nothing found
        with c.prefix_prefetch(prompt(0)) as pf:
            assert not pf.active and pf.found == NBLK * 128 and pf.wait() == NBLK * 128
        pf = c.prefix_prefetch(prompt(5))
        assert pf.found == 0 and pf.wait(timeout=0) == 0
        # another namespace is another prefix
        assert c.prefix_prefetch(prompt(0), kvmm.Namespace(tenant_salt=1)).found == 0
        assert c.prefix_evict(2 * NBLK) == NBLK
        assert cached(c, 0, None) == 0
        # half of it (whole blocks of what was asked)
        with c.prefix_prefetch(prompt(0)[:2 * 128 + 7]) as pf:
            assert pf.found == 2 * 128 and pf.wait(2 * 128, timeout=30) == 2 * 128
        assert cached(c, 0, None) == 2 * 128
        restore(c, 0, None)


def test_layerwise_attach():
    need_tiers()
    with Env(host_recs=2 * NBLK, disk_recs=0) as e:
        c = e.c
        fill(c, 0, None)
        fill(c, 1, None)
        assert c.prefix_evict(4 * NBLK) == 2 * NBLK
        with c.prefix_prefetch(prompt(0), layerwise=True) as pf, c.open() as s:
            assert pf.layerwise and pf.found == NBLK * 128
            assert s.attach_prefetch(pf) == NBLK * 128
            for layer in reversed(range(LAYERS)):
                pf.wait_layer(layer)
                if c.backend.kind != "cuda":
                    assert pf.layer_event(layer) == 0  # no events off CUDA
            expect(s, 0)
            for bad in (lambda: pf.wait_layer(LAYERS), lambda: pf.layer_event(LAYERS)):
                try:
                    bad()
                except kvmm.KvmmError as err:
                    assert err.errno == errno.EINVAL and "layer 4 of 4" in str(err), err
                else:
                    raise AssertionError("a layer past the last was accepted")
            with c.open() as busy:  # only into an empty sequence
                busy.step(1)
                try:
                    busy.attach_prefetch(pf)
                except kvmm.KvmmError as err:
                    assert err.errno == errno.EBUSY, err
                else:
                    raise AssertionError("attached into a sequence with tokens")
        # once complete, the blocks are in the prefix cache as usual
        assert cached(c, 0, None) == NBLK * 128
        with c.prefix_prefetch(prompt(1)) as pf, c.open() as s:
            try:
                s.attach_prefetch(pf)
            except kvmm.KvmmError as err:
                assert err.errno == errno.EINVAL and "not layer-wise" in str(err), err
            else:
                raise AssertionError("a progressive prefetch was attached layer-wise")
            assert pf.wait() == NBLK * 128


def test_null_backend_bookkeeping():
    """On the null backend the tiers keep their index and counters with no
    bytes behind them (disk_dir only names the tier): the same calls work
    and the stats say so."""
    need_tiers()
    with kvmm.Backend("null") as be, \
            kvmm.Cache(be, num_layers=LAYERS, num_kv_heads=HEADS, head_dim=DIM,
                       dtype="float16", layout="token-major", max_seqs=4,
                       max_tokens=NBLK * 128, budget_bytes=64 * MiB) as c:
        c.enable_prefix()
        c.enable_tiers(2 * REC, disk_dir="/nonexistent/kvmm-null-tier", disk_bytes=16 * REC,
                       disk_policy="write-through")
        with c.open(NBLK * 128) as s:
            s.step(NBLK * 128)
            assert c.prefix_insert(s, prompt(0)) == NBLK * 128
        assert c.prefix_evict(2 * NBLK) == NBLK
        c.tiers_flush()
        st = c.tiers_stats()
        assert st["bookkeeping_only"] is True, st
        assert st["spills_host"] == NBLK and st["spills_disk"] == NBLK, st
        assert st["blocks"]["host"] == 2 and st["blocks"]["disk"] == NBLK, st
        assert json.loads(c.tiers_stats_json())["bookkeeping_only"] == 1
        with c.prefix_prefetch(prompt(0)) as pf:
            assert pf.found == NBLK * 128 and pf.wait() == NBLK * 128
        assert cached(c, 0, None) == NBLK * 128


def test_bad_arguments():
    need_tiers()
    d = tempfile.mkdtemp(prefix="kvmm-pytest-", dir="/var/tmp")
    try:
        with kvmm.Backend("host") as be, \
                kvmm.Cache(be, num_layers=2, num_kv_heads=2, head_dim=64, dtype="float32",
                           max_seqs=2, max_tokens=256, budget_bytes=16 * MiB) as c:
            def errno_of(fn, *a, **kw):
                try:
                    fn(*a, **kw)
                except kvmm.KvmmError as err:
                    return err.errno, err.func
                raise AssertionError(f"{fn.__name__}{a} {kw} did not fail")

            # no prefix cache yet, then no tiers yet
            assert errno_of(c.enable_tiers, 8 * MiB) == (errno.EINVAL, "kvmm_tiers_enable")
            c.enable_prefix()
            for fn, func in ((c.tiers_stats, "kvmm_tiers_stats"),
                             (c.tiers_stats_json, "kvmm_tiers_stats_json"),
                             (lambda: c.prefix_prefetch([1, 2]), "kvmm_prefix_prefetch")):
                assert errno_of(fn) == (errno.EINVAL, func)
            # the C side's checks
            for kw in ({"host_bytes": 0}, {"host_bytes": 4096},  # less than a record
                       {"host_bytes": 8 * MiB, "disk_dir": d},  # a disk without a size
                       {"host_bytes": 8 * MiB, "host_pages": "thp",
                        "host_pool_name": "x"}):
                assert errno_of(c.enable_tiers, **kw) == (errno.EINVAL, "kvmm_tiers_enable"), kw
            # the binding's, naming the argument before any C call
            for kw, word in (({"host_policy": "lazy"}, "host_policy"),
                             ({"host_node": -1}, "host_node"),
                             ({"encoding": "fp8"}, "encoding"),  # a float32 cache
                             ({"host_pages": "1g"}, "host_pages"),
                             ({"disk_bytes": -1}, "disk_bytes")):
                try:
                    c.enable_tiers(8 * MiB, **kw)
                except ValueError as err:
                    assert word in str(err), err
                else:
                    raise AssertionError(f"{kw} accepted")
            try:
                c.enable_tiers(8 * MiB, log="not callable")
            except TypeError as err:
                assert "log" in str(err)
            c.enable_tiers(8 * MiB, disk_dir=d, disk_bytes=16 * MiB,
                           disk_buffered=not direct_io(d))
            assert errno_of(c.enable_tiers, 8 * MiB) == (errno.EEXIST, "kvmm_tiers_enable")
            c.tiers_flush()
            # one process (cache) per disk directory
            with kvmm.Cache(be, num_layers=2, num_kv_heads=2, head_dim=64, dtype="float32",
                            max_seqs=2, max_tokens=256, budget_bytes=16 * MiB) as c2:
                c2.enable_prefix()
                assert errno_of(c2.enable_tiers, 8 * MiB, disk_dir=d, disk_bytes=16 * MiB,
                                disk_buffered=True)[0] == errno.EBUSY
            pf = c.prefix_prefetch([1, 2, 3])
            try:
                pf.wait(timeout=-1)
            except ValueError as err:
                assert "timeout" in str(err)
            else:
                raise AssertionError("a negative timeout was accepted")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def pinned(c):
    return c.prefix_stats()["blocks_pinned"]


def test_prefetch_released_by_with_gc_and_close():
    """A prefetch pins its prefix until released: by ``with``, by garbage
    collection, by release(), and by closing the cache (a released one is
    then never released twice)."""
    need_tiers()
    with Env(host_recs=NBLK, disk_recs=0) as e:
        c = e.c
        fill(c, 0, None)

        def spilled_prefetch():
            assert c.prefix_evict(2 * NBLK) == NBLK and pinned(c) == 0
            pf = c.prefix_prefetch(prompt(0))
            assert pf.wait() == NBLK * 128
            assert pinned(c) == NBLK, c.prefix_stats()
            return pf

        with spilled_prefetch() as pf:
            pass
        assert pinned(c) == 0 and "released" in repr(pf)
        try:
            pf.wait()
        except ValueError as err:
            assert "released" in str(err)
        else:
            raise AssertionError("a released prefetch was waited for")
        pf.release()  # twice: a no-op
        pf = spilled_prefetch()
        del pf
        gc.collect()
        assert pinned(c) == 0
        pf = spilled_prefetch()
        pf.release()
        assert pinned(c) == 0 and not c._prefetches
        pf = spilled_prefetch()
        assert len(c._prefetches) == 1
    # the cache closed with pf held: it released it before destroying itself
    assert not c._prefetches and c.closed
    pf.release()
    try:
        pf.wait()
    except ValueError:
        pass
    else:
        raise AssertionError("a prefetch of a closed cache was waited for")


if __name__ == "__main__":
    run(globals())
