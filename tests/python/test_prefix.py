#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The prefix cache through the binding, on the host backend: insert, match
(namespaces, whole and partial blocks), attach by alias and by copy with the
content checked through numpy views, immutability of shared blocks (the API
refuses writes; an alias mapping faults), handles' lifetimes, eviction and
stats.  Skipped while libkvmm has no prefix cache."""
import errno
import gc
import os
import signal
import subprocess
import sys

import numpy as np
from kvtest import MiB, pattern
from tap import run, skip

import kvmm

# 4 layers x 8 heads x 128 x fp16 = 16 KiB a token: 128 tokens per 2 MiB block
LAYERS, HEADS, DIM = 4, 8, 128


def need_prefix():
    if not kvmm.has("kvmm_prefix_match"):
        skip("libkvmm has no prefix cache yet")


def cache(be, **kw):
    c = kvmm.Cache(be, num_layers=LAYERS, num_kv_heads=HEADS, head_dim=DIM, dtype="float16",
                   layout=kw.pop("layout", "token-major"), max_seqs=kw.pop("seqs", 6),
                   max_tokens=4096, budget_bytes=kw.pop("budget", 256 * MiB), **kw)
    return c


def fill(s, n, salt=0):
    """Write a pattern for tokens [0, n) of every layer, K and V."""
    s.step(n)
    for layer in range(LAYERS):
        for kv in "kv":
            s.write(layer, kv, 0, pattern(s.slot + salt, layer, kv, 0, n, HEADS, DIM))


def expect_tokens(s, n, owner_slot, salt=0, through_view=True):
    """s holds owner_slot's pattern for tokens [0, n), in every layer."""
    for layer in range(LAYERS):
        for kv in "kv":
            want = pattern(owner_slot + salt, layer, kv, 0, n, HEADS, DIM)
            if through_view:
                got = np.from_dlpack(s.view(layer, kv, 0, n))
            else:
                got = np.frombuffer(s.read(layer, kv, 0, n), np.float16).reshape(n, HEADS, DIM)
            assert (got == want).all(), (layer, kv)


def tokens(n, start=1000):
    return list(range(start, start + n))


def test_enable_once_and_bad_config():
    need_prefix()
    with kvmm.Backend("host") as be, cache(be) as c:
        try:
            c.enable_prefix(policy="mru")
        except ValueError as e:
            assert "policy" in str(e)
        c.enable_prefix(policy="lfu", attach="copy")
        try:
            c.enable_prefix()
        except kvmm.KvmmError as e:
            assert e.errno == errno.EEXIST, e
        else:
            raise AssertionError("prefix cache enabled twice")


def test_insert_match_namespaces():
    need_prefix()
    with kvmm.Backend("host") as be, cache(be) as c:
        c.enable_prefix()
        tpb = c.tokens_per_block
        toks = tokens(3 * tpb + 40)
        ns = kvmm.Namespace(model_id=7)
        with c.open() as a:
            fill(a, len(toks))
            assert c.prefix_insert(a, toks, ns) == 3 * tpb  # whole blocks only
            assert c.prefix_insert(a, toks, ns) == 0  # already cached
        with c.prefix_match(toks, ns) as m:
            assert len(m) == 3 * tpb and m
        with c.prefix_match(toks[:2 * tpb + 5], ns) as m:
            assert len(m) >= 2 * tpb
        for other in (kvmm.Namespace(model_id=8), kvmm.Namespace(model_id=7, tenant_salt=1),
                      None):
            with c.prefix_match(toks, other) as m:
                assert len(m) == 0 and not m, other
        with c.prefix_match([1, 2, 3] + toks, ns) as m:
            assert len(m) == 0
        st = c.prefix_stats()
        assert st["lookups"] >= 6 and st["hit_tokens"] >= 5 * tpb
        assert st["blocks_cached"] >= 3 and st["inserted_tokens"] >= 3 * tpb


def _attach(mode):
    with kvmm.Backend("host") as be, cache(be) as c:
        c.enable_prefix()
        tpb = c.tokens_per_block
        toks = tokens(2 * tpb + 30)
        a = c.open()
        fill(a, len(toks))
        c.prefix_insert(a, toks, None)
        before = c.prefix_stats()
        with c.prefix_match(toks) as m, c.open() as b:
            assert len(m) == 2 * tpb
            b.attach_prefix(m, mode)
            assert b.len == 2 * tpb
            expect_tokens(b, 2 * tpb, a.slot, through_view=True)
            expect_tokens(b, 2 * tpb, a.slot, through_view=False)
            # Published blocks are immutable through the API for the publisher,
            # and so are aliased ones for b (a copy is b's own).
            for s in (a, b) if mode == "alias" else (a,):
                try:
                    s.write(0, "k", 5, np.zeros((1, HEADS, DIM), np.float16))
                except kvmm.KvmmError as e:
                    assert e.errno == errno.EPERM
                else:
                    raise AssertionError("a shared block was written")
            if mode == "alias":
                assert b.stats()["shared_tokens"] == 2 * tpb
            # b grows past the prefix into blocks of its own
            b.step(2 * tpb + 10)
            b.write(1, "v", 2 * tpb, np.full((10, HEADS, DIM), 9, np.float16))
            a_slot = a.slot
            a.close()  # the publisher goes; what b sees stays
            expect_tokens(b, 2 * tpb, a_slot)
        after = c.prefix_stats()
        key = {"alias": "attach_alias", "copy": "attach_copy"}[mode]
        assert after[key] == before[key] + 1, (before, after)


def test_attach_alias():
    need_prefix()
    _attach("alias")


def test_attach_copy():
    need_prefix()
    _attach("copy")


def test_partial_block_is_copied_on_write():
    need_prefix()
    with kvmm.Backend("host") as be, cache(be) as c:
        c.enable_prefix(attach="alias")
        tpb = c.tokens_per_block
        toks = tokens(3 * tpb)
        with c.open() as a:
            fill(a, len(toks))
            assert c.prefix_insert(a, toks) == 3 * tpb
            query = toks[:2 * tpb + 10] + [5, 5, 5]
            with c.prefix_match(query) as m, c.open() as b:
                got = len(m)
                assert 2 * tpb <= got <= 2 * tpb + 10, got
                print(f"# matched {got} of {len(query)} (blocks of {tpb})")
                b.attach_prefix(m)
                assert b.len == got
                expect_tokens(b, got, a.slot)
                if got > 2 * tpb:
                    # the partial block is b's own copy: writing it leaves a alone
                    b.step(got + 3)
                    b.write(2, "k", got, np.full((3, HEADS, DIM), -1, np.float16))
                    expect_tokens(a, 3 * tpb, a.slot)


def test_alias_mapping_is_read_only():
    """Writing through a view into an alias-attached block faults (in a child)."""
    need_prefix()
    code = r'''
import numpy as np, kvmm, sys
sys.path.insert(0, sys.argv[1])
from test_prefix import cache, fill, tokens
be = kvmm.Backend("host"); c = cache(be); c.enable_prefix(attach="alias")
tpb = c.tokens_per_block; toks = tokens(tpb)
a = c.open(); fill(a, tpb); c.prefix_insert(a, toks)
m = c.prefix_match(toks); b = c.open(); b.attach_prefix(m, "alias")
v = b.view(0, "k").numpy()
print("attached", flush=True)
v[3] = 1.0
print("written", flush=True)
'''
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-c", code, here], env=env, capture_output=True,
                       text=True, timeout=120)
    assert "attached" in r.stdout, r.stderr
    assert "written" not in r.stdout and r.returncode == -signal.SIGSEGV, (r.returncode,
                                                                          r.stderr[-500:])


def test_match_handles_and_eviction():
    need_prefix()
    with kvmm.Backend("host") as be, cache(be) as c:
        c.enable_prefix()
        tpb = c.tokens_per_block
        toks = tokens(4 * tpb)
        with c.open() as a:
            fill(a, len(toks))
            c.prefix_insert(a, toks)
        m = c.prefix_match(toks)
        assert c.prefix_stats()["blocks_pinned"] >= 4
        assert c.prefix_evict(100) == 0  # pinned: nothing to evict
        del m
        gc.collect()  # garbage collection releases the handle
        assert c.prefix_stats()["blocks_pinned"] == 0
        assert c.prefix_evict(2) == 2
        with c.prefix_match(toks) as m:
            assert len(m) == 2 * tpb  # leaf first: the tail went
        assert c.prefix_evict(100) == 2
        assert c.prefix_stats()["blocks_cached"] == 0
        st = c.prefix_stats()
        assert st["evictions"]["explicit"] == 4


def test_handles_die_with_the_cache():
    need_prefix()
    be = kvmm.Backend("host")
    c = cache(be)
    c.enable_prefix()
    tpb = c.tokens_per_block
    with c.open() as a:
        fill(a, tpb)
        c.prefix_insert(a, tokens(tpb))
    m = c.prefix_match(tokens(tpb))
    assert len(m) == tpb
    c.close()  # frees the handle's pins with everything else
    m.release()  # a no-op now, not a use-after-free
    be.close()


def test_hints_on_a_virtual_clock():
    """Hinted blocks are evicted after unhinted ones; the clock is ours."""
    need_prefix()
    now = [1_000_000]
    with kvmm.Backend("host") as be, cache(be) as c:
        c.enable_prefix(hint_ttl_ns=500, clock=lambda: now[0])
        tpb = c.tokens_per_block
        hinted, other = tokens(tpb, 1000), tokens(tpb, 9000)
        for toks in (hinted, other):
            with c.open() as s:
                fill(s, tpb)
                assert c.prefix_insert(s, toks) == tpb
        # the hinted prefix is the LRU one, yet the other goes first
        assert c.prefix_hint(hinted, None, now[0] + 100) == tpb
        assert c.prefix_stats()["hints"] >= 1
        assert c.prefix_evict(1) == 1
        with c.prefix_match(hinted) as m:
            assert len(m) == tpb
        with c.prefix_match(other) as m:
            assert len(m) == 0
        c.prefix_evict(1)
        assert c.prefix_stats()["blocks_cached"] == 0


def test_given_attach_costs():
    """Costs given at enable are what the auto rule weighs (and reports)."""
    need_prefix()
    with kvmm.Backend("host") as be, cache(be) as c:
        try:
            c.enable_prefix(cost_copy_ns=-1)
        except ValueError as e:
            assert "cost_copy_ns" in str(e)
        else:
            raise AssertionError("a negative cost was taken")
        try:
            c.enable_prefix(cost_map_ns=10**9 + 1)
        except kvmm.KvmmError as e:
            assert e.errno == errno.EINVAL, e
        else:
            raise AssertionError("a cost over 1 s per page was taken")
        c.enable_prefix(cost_map_ns=26500, cost_unmap_ns=15600, cost_copy_ns=1400)
        st = c.prefix_stats()
        assert (st["cost_map_ns"], st["cost_unmap_ns"], st["cost_copy_ns"]) == \
            (26500, 15600, 1400), st


def test_hint_and_bad_arguments():
    need_prefix()
    with kvmm.Backend("host") as be, cache(be) as c:
        try:
            c.enable_prefix(clock=5)
        except TypeError as e:
            assert "clock" in str(e)
        c.enable_prefix()
        assert c.prefix_hint(tokens(10), None, 0) == 0  # nothing cached to hint
        for bad, exc in (([1, -2], ValueError), ([1 << 33], ValueError), ("abc", ValueError)):
            try:
                c.prefix_match(bad)
            except exc as e:
                assert "tokens" in str(e)
            else:
                raise AssertionError(f"tokens {bad!r} accepted")
        try:
            c.prefix_match([1], ns=(1, 2, 3))
        except TypeError as e:
            assert "ns" in str(e)
        with c.open() as s:
            try:
                s.attach_prefix("not a match")
            except ValueError as e:
                assert "match" in str(e)
        tok32 = np.arange(5, dtype=np.uint32)
        with c.prefix_match(tok32) as m:  # numpy token arrays go in as they are
            assert len(m) == 0


if __name__ == "__main__":
    run(globals())
