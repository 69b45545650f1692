#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tiers through the binding on the CUDA backend, for every layout: a
prefix written through torch, evicted into the pinned host pool, restored
by a prefetch (attached by match) and layer-wise (attach_prefetch, then
from the last layer down a stream waiting on layer_event's CUevent, and
wait_layer for layer 0), compared with what torch wrote."""
from pygpu import require_cuda, require_torch

BE = require_cuda()
torch = require_torch()

import ctypes  # noqa: E402

from tap import run  # noqa: E402

import kvmm  # noqa: E402

MiB = 1 << 20
LAYERS, HEADS, DIM = 4, 8, 128
NBLK = 3
_cuda = ctypes.CDLL("libcuda.so.1")
_cuda.cuStreamWaitEvent.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]


def setup(layout):
    # the block size depends on the layout: size the cache from a probe
    probe = kvmm.Cache(BE, num_layers=LAYERS, num_kv_heads=HEADS, head_dim=DIM,
                       dtype="float16", layout=layout, max_seqs=1, max_tokens=4096,
                       budget_bytes=64 * MiB)
    tpb, block = probe.tokens_per_block, probe.info["block_bytes"]
    probe.close()
    c = kvmm.Cache(BE, num_layers=LAYERS, num_kv_heads=HEADS, head_dim=DIM, dtype="float16",
                   layout=layout, max_seqs=4, max_tokens=NBLK * tpb,
                   budget_bytes=8 * NBLK * block)
    c.enable_prefix()
    c.enable_tiers(2 * NBLK * (block + MiB), host_node="any")
    return c, NBLK * tpb


def seq_tensor(s, layer, kv, n):
    """Tokens [0, n) of s as a [n, heads, dim] tensor: in place, or (paged
    views: reshape copies) a copy, to read."""
    v = s.view(layer, kv, 0, n)
    t = torch.from_dlpack(v)
    return t.reshape(-1, *t.shape[2:])[:n] if v.paged else t


def put(s, layer, kv, data):
    """Write data [n, heads, dim] into s's tokens [0, n) through torch."""
    t = torch.from_dlpack(s.view(layer, kv, 0, data.shape[0]))
    t.copy_(data.reshape(t.shape))  # paged: n is whole pages


def fill(c, n, toks):
    torch.manual_seed(7)
    want = {}
    with c.open(n) as s:
        s.step(n)
        for layer in range(LAYERS):
            for kv in "kv":
                want[layer, kv] = torch.randn(n, HEADS, DIM, device="cuda").half()
                put(s, layer, kv, want[layer, kv])
        torch.cuda.synchronize()
        assert c.prefix_insert(s, toks) == n
    return want


def check_layer(s, layer, n, want):
    for kv in "kv":
        assert torch.equal(seq_tensor(s, layer, kv, n), want[layer, kv]), (layer, kv)


def test_spill_and_restore_every_layout():
    for layout in ("layer-major", "token-major", "page-major"):
        c, n = setup(layout)
        with c:
            toks = list(range(5000, 5000 + n))
            want = fill(c, n, toks)
            # progressive: prefetch, wait, match, attach
            assert c.prefix_evict(4 * NBLK) == NBLK
            c.tiers_flush()
            st = c.tiers_stats()
            assert st["spills_host"] >= NBLK and st["host_pinned"], st
            with c.prefix_prefetch(toks) as pf:
                assert pf.found == n and pf.wait(timeout=30) == n
                with c.prefix_match(toks) as m, c.open(n) as s:
                    assert len(m) == n
                    s.attach_prefix(m)
                    for layer in range(LAYERS):
                        check_layer(s, layer, n, want)
            # layer-wise: from the last layer down, a stream waits for each
            # layer's event (0: complete, kvmm.h says), and the host for
            # layer 0 (wait_layer)
            assert c.prefix_evict(4 * NBLK) == NBLK
            c.tiers_flush()
            stream = torch.cuda.current_stream()
            with c.prefix_prefetch(toks, layerwise=True) as pf, c.open() as s:
                assert s.attach_prefetch(pf) == n
                events = 0
                for layer in reversed(range(LAYERS)):
                    if not layer:
                        pf.wait_layer(layer)
                    else:
                        ev = pf.layer_event(layer)
                        events += ev != 0
                        if ev:
                            assert _cuda.cuStreamWaitEvent(stream.cuda_stream, ev, 0) == 0
                    check_layer(s, layer, n, want)
                torch.cuda.synchronize()
                print(f"# {layout}: {events} layer events pending at attach")
            st = c.tiers_stats()
            assert st["restores_host"] >= 2 * NBLK and st["verify_failures"] == 0, st


if __name__ == "__main__":
    run(globals())
