# SPDX-License-Identifier: MIT
"""kvmm decode attention against PyTorch, on the GPU machine.

- kvmm_attn_decode over each layout (KV in torch buffers laid out as
  docs/layouts.md says, NaN wherever the kernel must not read) equals a
  float64 reference and torch SDPA (flash backend);
- torch accepts the token-major and layer-major views as they are (no copy)
  through as_strided and through DLPack over the raw pointer, and SDPA's
  flash kernel runs on them (how an engine runs prefill over kvmm views);
- the kernel runs on torch's streams and inside a torch CUDA graph.
Prints TAP; "SKIP: no CUDA device" and exit 77 without a GPU.
"""
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvmm_kernels_ctypes as kc  # noqa: E402

n_test = 0
n_fail = 0


def check(ok, name):
    global n_test, n_fail
    n_test += 1
    if not ok:
        n_fail += 1
    print("%sok %d - %s" % ("" if ok else "not ", n_test, name), flush=True)


def fill_kv(torch, buf, v, data, lens, dt):
    """Write data[s, :lens[s]] ([seq][token][head][dim]) through view v."""
    t = kc.view_tensor(torch, buf.view(dt), v, dt)
    for s, n in enumerate(lens):
        if n == 0:
            continue
        if t.dim() == 4:
            t[s, :n] = data[s, :n]
        else:
            tpp = v.tokens_per_page
            full = n // tpp
            if full:
                t[s, :full] = data[s, :full * tpp].reshape(full, tpp, v.num_heads, v.head_dim)
            if n % tpp:
                t[s, full, :n % tpp] = data[s, full * tpp:n]


def reference(torch, q, k, v, lens, scale):
    """float64 decode attention: q [B, Hq, D], k/v [B, T, Hkv, D]."""
    B, Hq, D = q.shape
    g = Hq // k.shape[2]
    out = torch.zeros(B, Hq, D, dtype=torch.float64, device=q.device)
    for b, n in enumerate(lens):
        if n == 0:
            continue
        kb = k[b, :n].double().repeat_interleave(g, dim=1)  # [n, Hq, D]
        vb = v[b, :n].double().repeat_interleave(g, dim=1)
        s = torch.einsum("hd,nhd->hn", q[b].double(), kb) * scale
        p = torch.softmax(s, dim=-1)
        out[b] = torch.einsum("hn,nhd->hd", p, vb)
    return out


def rel(a, b):
    a, b = a.double(), b.double()
    den = b.norm().item()
    return (a - b).norm().item() / (den if den > 0 else 1.0)


def sdpa_flash(torch, q, kview, vview, g):
    """SDPA with only the flash backend over [1, Hkv, n, D] K/V views; the
    group's query heads go in as g query tokens of their KV head."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    hkv = kview.shape[1]
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        o = torch.nn.functional.scaled_dot_product_attention(
            q.view(1, hkv, g, q.shape[-1]), kview, vview)
    return o.reshape(hkv * g, q.shape[-1])


def run_cfg(torch, K, rng, layout, bf16, d, hkv, g, batch, layers, max_tokens, page, qamp):
    dt = torch.bfloat16 if bf16 else torch.float16
    hq = hkv * g
    lo = kc.Layout(layout, layers, hkv, d, batch, max_tokens, page)
    buf = torch.full((lo.bytes // 2,), 0x7FFF, dtype=torch.int16, device="cuda")  # NaN
    layer = rng.randrange(layers)
    kv, vv = lo.view(buf.data_ptr(), layer, 0), lo.view(buf.data_ptr(), layer, 1)
    lens = [rng.choice([0, 1, max_tokens, rng.randrange(max_tokens + 1)]) for _ in range(batch)]
    kd = torch.randn(batch, max_tokens, hkv, d, device="cuda").to(dt)
    vd = torch.randn(batch, max_tokens, hkv, d, device="cuda").to(dt)
    fill_kv(torch, buf, kv, kd, lens, dt)
    fill_kv(torch, buf, vv, vd, lens, dt)
    q = (torch.randn(batch, hq, d, device="cuda") * qamp).to(dt)
    out = torch.full((batch, hq, d), float("nan"), dtype=dt, device="cuda")
    lt = torch.tensor(lens, dtype=torch.int32, device="cuda")
    p = kc.AttnParams(batch=batch, num_q_heads=hq, head_dim=d,
                      dtype=kc.DTYPE_BF16 if bf16 else kc.DTYPE_FP16, max_len=max(lens),
                      q=q.data_ptr(), out=out.data_ptr(), seq_lens=lt.data_ptr())
    K.decode(kv, vv, p, torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    scale = 1.0 / math.sqrt(d)
    ref = reference(torch, q, kd, vd, lens, scale)
    name = "%s-major %s d%d hkv%d g%d b%d layers%d tpp%d maxlen%d" % (
        ["", "layer", "token", "page"][layout], "bf16" if bf16 else "fp16", d, hkv, g, batch,
        layers, kv.tokens_per_page, max(lens))
    tol = 1e-2 if bf16 else 2e-3
    e = rel(out, ref)
    check(not torch.isnan(out).any().item() and e <= tol,
          "%s: vs float64 rel err %.2e (tol %.0e)" % (name, e, tol))
    if not kc.uniform(kv):
        return out  # a paged view (page-major, or tokens that leave a page's tail unused)
    # SDPA (flash) straight on the view, sequence by sequence
    kt = kc.view_tensor(torch, buf.view(dt), kv, dt)
    vt = kc.view_tensor(torch, buf.view(dt), vv, dt)
    worst, ok = 0.0, True
    try:
        for b, n in enumerate(lens):
            if n == 0:
                continue
            ks = kt[b:b + 1, :n].transpose(1, 2)  # [1, Hkv, n, D], no copy
            vs = vt[b:b + 1, :n].transpose(1, 2)
            ok &= ks.data_ptr() == kv.base + b * kv.seq_stride
            o = sdpa_flash(torch, q[b], ks, vs, g)
            worst = max(worst, rel(out[b], o))
        check(ok and worst <= 1.5 * tol,
              "%s: torch SDPA flash accepts the view, max rel diff %.2e" % (name, worst))
    except RuntimeError as ex:
        check(False, "%s: torch SDPA flash on the view: %s" % (name, str(ex).splitlines()[0]))
    return out


def test_dlpack(torch, K, rng):
    """A token-major view handed to torch as a DLPack capsule over the raw
    pointer: same memory, same values, SDPA flash runs on it."""
    d, hkv, g, batch, layers, T = 128, 4, 4, 3, 4, 300
    dt = torch.bfloat16
    lo = kc.Layout(kc.TOKEN_MAJOR, layers, hkv, d, batch, T)
    buf = torch.zeros(lo.bytes // 2, dtype=torch.int16, device="cuda")
    kv, vv = lo.view(buf.data_ptr(), 1, 0), lo.view(buf.data_ptr(), 1, 1)
    kd = torch.randn(batch, T, hkv, d, device="cuda").to(dt)
    vd = torch.randn(batch, T, hkv, d, device="cuda").to(dt)
    lens = [T, 200, 77]
    fill_kv(torch, buf, kv, kd, lens, dt)
    fill_kv(torch, buf, vv, vd, lens, dt)
    ok = True
    views = []
    for v in (kv, vv):
        cap = kc.dlpack_capsule(v.base, [batch, T, hkv, d],
                                [v.seq_stride // 2, v.token_stride // 2, v.head_stride // 2, 1])
        t = torch.from_dlpack(cap)
        ok &= t.data_ptr() == v.base and t.dtype == dt and t.stride(1) == v.token_stride // 2
        ok &= torch.equal(t, kc.view_tensor(torch, buf.view(dt), v, dt))
        views.append(t)
    ok &= kc.uniform(kv) and kc.uniform(vv)
    check(ok, "DLPack: token-major K/V views become torch tensors without a copy")
    q = torch.randn(batch, hkv * g, d, device="cuda").to(dt)
    out = torch.empty(batch, hkv * g, d, dtype=dt, device="cuda")
    lt = torch.tensor(lens, dtype=torch.int32, device="cuda")
    p = kc.AttnParams(batch=batch, num_q_heads=hkv * g, head_dim=d, dtype=kc.DTYPE_BF16,
                      max_len=T, q=q.data_ptr(), out=out.data_ptr(), seq_lens=lt.data_ptr())
    K.decode(kv, vv, p, torch.cuda.current_stream().cuda_stream)
    worst = 0.0
    try:
        for b, n in enumerate(lens):
            o = sdpa_flash(torch, q[b], views[0][b:b + 1, :n].transpose(1, 2),
                           views[1][b:b + 1, :n].transpose(1, 2), g)
            worst = max(worst, rel(out[b], o))
        check(worst < 1.5e-2, "DLPack views: SDPA flash == kvmm (max rel diff %.2e)" % worst)
    except RuntimeError as ex:
        check(False, "DLPack views: SDPA flash: %s" % str(ex).splitlines()[0])


def test_streams_graphs(torch, K, rng):
    """Same inputs on torch's default stream, a side stream and a captured
    CUDA graph: identical outputs (the split plan is the same)."""
    dt, d, hkv, g, batch, T = torch.bfloat16, 128, 8, 4, 4, 5000
    lo = kc.Layout(kc.LAYER_MAJOR, 1, hkv, d, batch, T)
    buf = torch.randn(lo.bytes // 2, device="cuda").to(dt).view(torch.int16)
    kv, vv = lo.view(buf.data_ptr(), 0, 0), lo.view(buf.data_ptr(), 0, 1)
    q = torch.randn(batch, hkv * g, d, device="cuda").to(dt)
    lt = torch.tensor([T, 4097, 1000, 3], dtype=torch.int32, device="cuda")
    outs = [torch.empty(batch, hkv * g, d, dtype=dt, device="cuda") for _ in range(3)]
    ps = [kc.AttnParams(batch=batch, num_q_heads=hkv * g, head_dim=d, dtype=kc.DTYPE_BF16,
                        max_len=T, q=q.data_ptr(), out=o.data_ptr(), seq_lens=lt.data_ptr())
          for o in outs]
    K.decode(kv, vv, ps[0], torch.cuda.current_stream().cuda_stream)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        K.decode(kv, vv, ps[1], s.cuda_stream)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    check(torch.equal(outs[0], outs[1]), "a side stream gives the same output")
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            K.decode(kv, vv, ps[2], torch.cuda.current_stream().cuda_stream)
        outs[2].fill_(float("nan"))
        graph.replay()
        graph.replay()  # twice: the split counters reset between launches
        torch.cuda.synchronize()
        check(torch.equal(outs[0], outs[2]), "a captured CUDA graph gives the same output")
    except RuntimeError as ex:
        check(False, "CUDA graph capture: %s" % str(ex).splitlines()[0])


def main():
    try:
        K = kc.Kernels()
    except kc.Skip:
        print("SKIP: no CUDA device")
        return 77
    try:
        import torch
    except ImportError:
        print("SKIP: no CUDA device usable from Python (torch is not installed)")
        return 77
    seed = int(os.environ.get("KVMM_TEST_SEED", "0x6b766d6d"), 0)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    print("# seed 0x%x, torch %s" % (seed, torch.__version__))
    fixed = [
        # layout, bf16, d, hkv, g, batch, layers, max_tokens, page, qamp
        (kc.LAYER_MAJOR, True, 128, 8, 4, 8, 2, 1500, kc.PAGE, 1.0),
        (kc.TOKEN_MAJOR, True, 128, 8, 4, 8, 4, 1500, kc.PAGE, 1.0),
        (kc.PAGE_MAJOR, True, 128, 8, 4, 8, 4, 1500, kc.PAGE, 1.0),
        (kc.TOKEN_MAJOR, False, 64, 1, 8, 16, 3, 900, kc.PAGE, 6.0),
        (kc.LAYER_MAJOR, False, 128, 2, 1, 200, 1, 100, kc.PAGE, 1.0),
        (kc.PAGE_MAJOR, True, 64, 2, 5, 3, 2, 3000, 48 << 10, 1.0),
    ]
    for c in fixed:
        run_cfg(torch, K, rng, *c)
    for i in range(12):
        layout = [kc.LAYER_MAJOR, kc.TOKEN_MAJOR, kc.PAGE_MAJOR][i % 3]
        d = rng.choice([64, 128])
        hkv = rng.choice([1, 2, 4, 8])
        g = rng.choice([1, 2, 4, 6, 8, 16])
        layers = rng.randint(1, 3)
        tok_all = hkv * d * 4 * layers
        page = rng.choice([kc.PAGE, round_up16(tok_all * rng.randint(2, 90) // 2)])
        page = max(page, tok_all)
        run_cfg(torch, K, rng, layout, rng.random() < 0.5, d, hkv, g, rng.randint(1, 24), layers,
                rng.randint(1, 2500), page, rng.choice([1.0, 1.0, 8.0]))
    test_dlpack(torch, K, rng)
    test_streams_graphs(torch, K, rng)
    K.close()
    print("1..%d" % n_test)
    return 1 if n_fail else 0


def round_up16(x):
    return (x + 15) // 16 * 16


if __name__ == "__main__":
    sys.exit(main())
