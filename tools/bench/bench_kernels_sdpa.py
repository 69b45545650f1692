# SPDX-License-Identifier: MIT
"""torch SDPA (flash backend) against kvmm's decode attention on the same
KV, for kvmm-bench's "kernels" group (which runs this script and re-emits its
result lines: R<TAB>bench<TAB>metric<TAB>value<TAB>unit<TAB>baseline<TAB>
baseline_value<TAB>ratio).

The KV is kvmm's layer-major layout, [seq][token][head][dim] per layer,
held in torch tensors; kvmm reads it through a view, SDPA through
k.transpose(1, 2) (no copy).  SDPA is also timed on its preferred dense
[batch][head][token][dim] tensors and the faster of the two is the
baseline.  GQA goes to SDPA as the group's query heads being query tokens of
their KV head ([B, Hkv, G, D] x [B, Hkv, T, D]), which flash runs natively.
Both sides are timed the same way: CUDA graphs of n calls rotating over
several layers' KV (so L2 does not serve it), median of 5 replays.
"""
import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "gpu"))

SHAPES = [("llama3-8b", 32, 32, 8, 128), ("llama3-70b-tp8", 80, 8, 1, 128)]


def emit(bench, metric, value, unit, baseline="-", bvalue=0.0, ratio=0.0):
    print("R\t%s\t%s\t%.6g\t%s\t%s\t%.6g\t%.6g" % (bench, metric, value, unit, baseline, bvalue,
                                                  ratio), flush=True)


def time_us(torch, fn, rot):
    """Median over 5 replays of a graph of n calls (fn(i), i rotating)."""
    for i in range(2):
        fn(i % rot)
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    fn(0)
    e1.record()
    torch.cuda.synchronize()
    n = int(min(200, max(3, 20000.0 / max(e0.elapsed_time(e1) * 1e3, 1.0))))
    graph = None
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            fn(0)  # warm on the side stream, as capture wants
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for i in range(n):
                fn(i % rot)
    except RuntimeError as ex:
        print("note: no CUDA graph (%s), timing launches" % str(ex).splitlines()[0])
        graph = None
    runs = []
    for _ in range(5):
        e0.record()
        if graph is not None:
            graph.replay()
        else:
            for i in range(n):
                fn(i % rot)
        e1.record()
        torch.cuda.synchronize()
        runs.append(e0.elapsed_time(e1) * 1e3 / n)
    return statistics.median(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.path.join(ROOT, "build/default/lib/libkvmm.so.0"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--budget-gib", type=float, default=56.0)
    args = ap.parse_args()
    try:
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        print("skipped: torch is not installed")
        return 0
    import kvmm_kernels_ctypes as kc
    try:
        K = kc.Kernels(args.lib)
    except kc.Skip:
        print("skipped: no CUDA device")
        return 0
    budget = int(args.budget_gib * (1 << 30))
    batches, ctxs = [1, 8, 64, 256], [1024, 4096, 16384, 32768]
    # the largest batch: KVMM_BENCH_SDPA_MAX_BATCH, else kvmm-bench's
    # KVMM_BENCH_MAX_BATCH (to fit a short device lease)
    max_batch = int(os.environ.get("KVMM_BENCH_SDPA_MAX_BATCH") or
                    os.environ.get("KVMM_BENCH_MAX_BATCH") or 0)
    if max_batch > 0:
        batches = [b for b in batches if b <= max_batch]
    dt = torch.bfloat16
    for name, layers, hq, hkv, d in SHAPES:
        g = hq // hkv
        for bi, b in enumerate(batches):
            for ci, t in enumerate(ctxs):
                if args.quick and (bi % 2 or ci % 2):
                    continue
                per_layer = 2 * b * t * hkv * d * 2
                if per_layer > budget:
                    print("%s b%d ctx%d: skipped, one layer's KV is over the budget" % (name, b, t))
                    continue
                rot = max(1, min(layers, (512 << 20) // per_layer + 1, budget // per_layer))
                q = torch.randn(b, hq, d, device="cuda").to(dt)
                out = torch.empty(b, hq, d, dtype=dt, device="cuda")
                lens = torch.full((b,), t, dtype=torch.int32, device="cuda")
                # kvmm layer-major: per layer K and V [seq][token][head][dim]
                ks = [torch.randn(b, t, hkv, d, device="cuda", dtype=dt) for _ in range(rot)]
                vs = [torch.randn(b, t, hkv, d, device="cuda", dtype=dt) for _ in range(rot)]

                def view(x):
                    v = kc.View()
                    v.base, v.seq_stride = x.data_ptr(), t * hkv * d * 2
                    v.token_stride, v.head_stride = hkv * d * 2, d * 2
                    v.tokens_per_page, v.page_stride = t, t * hkv * d * 2
                    v.layout, v.num_heads, v.head_dim, v.elem_size = kc.LAYER_MAJOR, hkv, d, 2
                    v.max_seqs, v.max_tokens = b, t
                    return v
                kvs = [(view(ks[i]), view(vs[i])) for i in range(rot)]
                p = kc.AttnParams(batch=b, num_q_heads=hq, head_dim=d, dtype=kc.DTYPE_BF16,
                                  max_len=t, q=q.data_ptr(), out=out.data_ptr(),
                                  seq_lens=lens.data_ptr())

                def kvmm(i):
                    K.decode(kvs[i][0], kvs[i][1], p, torch.cuda.current_stream().cuda_stream)
                qg = q.view(b, hkv, g, d)

                def sdpa_nhd(i):
                    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                        return torch.nn.functional.scaled_dot_product_attention(
                            qg, ks[i].transpose(1, 2), vs[i].transpose(1, 2))
                try:
                    t_kvmm = time_us(torch, kvmm, rot)
                    t_nhd = time_us(torch, sdpa_nhd, rot)
                    ref = sdpa_nhd(0).reshape(b, hq, d)
                    kvmm(0)
                    torch.cuda.synchronize()
                    diff = ((out.double() - ref.double()).norm() / ref.double().norm()).item()
                except RuntimeError as ex:
                    print("%s b%d ctx%d: failed: %s" % (name, b, t, str(ex).splitlines()[0]))
                    ks = vs = None
                    torch.cuda.empty_cache()
                    continue
                ks = vs = None
                torch.cuda.empty_cache()
                # SDPA on its own dense layout [B, H, T, D]
                kd = [torch.randn(b, hkv, t, d, device="cuda", dtype=dt) for _ in range(rot)]
                vd = [torch.randn(b, hkv, t, d, device="cuda", dtype=dt) for _ in range(rot)]

                def sdpa_bhsd(i):
                    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                        return torch.nn.functional.scaled_dot_product_attention(qg, kd[i], vd[i])
                t_bhsd = time_us(torch, sdpa_bhsd, rot)
                kd = vd = None
                torch.cuda.empty_cache()
                bench = "%s/layer-major/b%d/ctx%d" % (name, b, t)
                best = min(t_nhd, t_bhsd)
                emit(bench, "sdpa_flash_nhd_us", t_nhd, "us")
                emit(bench, "sdpa_flash_bhsd_us", t_bhsd, "us")
                emit(bench, "kvmm_vs_sdpa_rel_diff", diff, "")
                emit(bench, "decode_attn_vs_sdpa", t_kvmm, "us", "sdpa_flash_best_us", best,
                     best / t_kvmm)
    K.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
