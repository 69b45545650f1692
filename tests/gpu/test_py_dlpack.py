#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""kvmm views on the CUDA backend through torch.from_dlpack: device, dtype,
shape and strides, zero-copy in both directions (torch writes / kvmm reads,
kvmm writes / torch reads), lifetimes, and SDPA over the views."""
from pygpu import require_cuda, require_torch

BE = require_cuda()
torch = require_torch()

import gc  # noqa: E402

from tap import run, skip  # noqa: E402

import kvmm  # noqa: E402
from kvmm import dlpack  # noqa: E402

MiB = 1 << 20


def cache(layout, dtype="float16", heads=4, dim=128, layers=2, seqs=4, tokens=4096):
    return kvmm.Cache(BE, num_layers=layers, num_kv_heads=heads, head_dim=dim, dtype=dtype,
                      layout=layout, max_seqs=seqs, max_tokens=tokens, budget_bytes=512 * MiB)


def tokens_of(t, view, n):
    """Tokens [0, n) of a sequence tensor from view (paged or not), [n, H, D]."""
    if view.paged:
        return t[:-(-n // view.tokens_per_page)].reshape(-1, *t.shape[2:])[:n]
    return t[:n]


def test_tensor_geometry():
    for layout in ("layer-major", "token-major", "page-major"):
        with cache(layout) as c:
            for layer in range(2):
                for kv in "kv":
                    v = c.view(layer, kv)
                    t = torch.from_dlpack(v)
                    assert t.device == torch.device("cuda", 0), t.device
                    assert t.dtype == torch.float16
                    assert t.data_ptr() == v.data
                    assert tuple(t.shape) == v.shape
                    assert tuple(s * 2 for s in t.stride()) == v.strides, (layout, t.stride())


def test_zero_copy_both_ways():
    for layout in ("layer-major", "token-major", "page-major"):
        for dtype, tdt in (("float16", torch.float16), ("bfloat16", torch.bfloat16),
                           ("float32", torch.float32)):
            with cache(layout, dtype) as c, c.open() as s:
                n = 700
                s.step(n)
                v = s.view(1, "v")
                t = torch.from_dlpack(v)
                assert t.dtype == tdt
                # torch writes, kvmm reads
                src = torch.randn(n, 4, 128, device="cuda").to(tdt)
                if v.paged:
                    tpp = v.tokens_per_page
                    for p in range(-(-n // tpp)):
                        m = min(tpp, n - p * tpp)
                        t[p, :m].copy_(src[p * tpp:p * tpp + m])
                else:
                    t.copy_(src)
                torch.cuda.synchronize()
                back = torch.frombuffer(s.read(1, "v", 0, n), dtype=tdt).view(n, 4, 128)
                assert torch.equal(back, src.cpu()), (layout, dtype)
                # kvmm writes, the same tensor sees it
                new = torch.full((5, 4, 128), 3.0, dtype=tdt)
                s.write(1, "v", 100, new.view(torch.uint8).numpy())
                got = tokens_of(t, v, n)[100:105]
                assert torch.equal(got.cpu(), new), (layout, dtype)


def test_export_keeps_cache_alive():
    c = cache("token-major")
    s = c.open()
    s.step(64)
    t = torch.from_dlpack(s.view(0, "k"))
    t.fill_(1.5)
    live = BE.stats()["pages_live"]
    assert live > 0
    c.close()
    assert c._h is not None  # the tensor holds it
    assert float(t.float().sum()) == 1.5 * t.numel()
    del t
    gc.collect()
    assert c._h is None and BE.stats()["pages_live"] == 0
    assert dlpack.live_exports() == 0


def test_legacy_and_versioned_capsules():
    with cache("layer-major") as c, c.open() as s:
        s.step(10)
        v = s.view(0, "k")
        a = torch.utils.dlpack.from_dlpack(v.__dlpack__())  # legacy "dltensor"
        b = torch.from_dlpack(v)  # torch asks for max_version, gets "dltensor_versioned"
        assert a.data_ptr() == b.data_ptr() == v.data
        a.fill_(2.0)
        assert float(b.float().mean()) == 2.0
        del a, b


def test_sdpa_over_views_matches_contiguous():
    with cache("token-major", heads=2, dim=64, layers=1) as c:
        seqs = [c.open() for _ in range(3)]
        n = 333
        c.batch(seqs).step(n)
        k = torch.from_dlpack(c.view(0, "k"))
        v = torch.from_dlpack(c.view(0, "v"))
        slots = [s.slot for s in seqs]
        assert slots == [0, 1, 2]
        k[:3, :n].copy_(torch.randn(3, n, 2, 64, device="cuda", dtype=torch.float16))
        v[:3, :n].copy_(torch.randn(3, n, 2, 64, device="cuda", dtype=torch.float16))
        q = torch.randn(3, 2, 1, 64, device="cuda", dtype=torch.float16)
        kv_k, kv_v = k[:3, :n].transpose(1, 2), v[:3, :n].transpose(1, 2)  # kvmm memory
        out = torch.nn.functional.scaled_dot_product_attention(q, kv_k, kv_v)
        ref = torch.nn.functional.scaled_dot_product_attention(q, kv_k.contiguous(),
                                                               kv_v.contiguous())
        assert torch.allclose(out, ref, atol=2e-3, rtol=2e-3)
        for s in seqs:
            s.close()


def test_prefix_alias_visible_through_torch():
    if not kvmm.has("kvmm_prefix_match"):
        skip("the prefix cache is not in this libkvmm")
    with cache("token-major") as c:  # 4 KiB a token: 512-token blocks
        c.enable_prefix(attach="alias")
        tpb = c.tokens_per_block
        toks = list(range(1, 2 * tpb + 1))
        with c.open() as a:
            a.step(len(toks))
            ta = torch.from_dlpack(a.view(0, "k"))
            ta.copy_(torch.randn_like(ta))
            torch.cuda.synchronize()
            assert c.prefix_insert(a, toks) == 2 * tpb
            with c.prefix_match(toks + [7]) as m, c.open() as b:
                assert len(m) == 2 * tpb
                b.attach_prefix(m, "alias")
                tb = torch.from_dlpack(b.view(0, "k"))
                assert tb.data_ptr() != ta.data_ptr()
                assert torch.equal(ta, tb)  # same pages at two addresses


if __name__ == "__main__":
    run(globals())
