#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A transformers model with kvmm as its KV cache.

Builds a small Llama with random weights (fixed seed; nothing downloaded),
then:
  1. greedy-generates NEW tokens for a batch with kvmm.hf.KvmmCache and with
     the model's default cache, and prints whether tokens and logits match;
  2. sends a second request sharing a long system prompt: it hits kvmm's
     prefix cache, and its output is compared with recomputing everything;
  3. measures time to first token (TTFT) for a prefix miss and a prefix hit,
     both through kvmm, next to the default cache, and prints the speedup.

Run from the repository after `make all` (on the GPU machine):
    PYTHONPATH=python python3 examples/hf_generate.py [--json results.jsonl]
Exit status: 0 when both outputs match, 1 otherwise, 77 without a GPU.  The
default float32 makes the comparison exact up to summation order; with
--dtype bfloat16 a near-tie between two tokens may legitimately differ.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import kvmm  # noqa: E402

MiB = 1 << 20


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--layout", default="auto", choices=("auto", "token-major", "layer-major"),
                   help="auto: token-major when a token's KV divides the page")
    p.add_argument("--attention", default="sdpa", choices=("sdpa", "kernel"),
                   help="kernel: decode steps on kvmm's attention kernel (bf16/fp16)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--system-tokens", type=int, default=3968,
                   help="shared prompt prefix (the prefix cache's part)")
    p.add_argument("--suffix-tokens", type=int, default=128, help="per-request prompt tail")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--reps", type=int, default=7, help="timed TTFT runs (median)")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--json", help="append JSON result lines (kvmm-bench format) here")
    return p.parse_args()


def main():
    a = parse()
    if a.device == "cuda":
        try:
            kvmm.Backend("cuda").close()
        except kvmm.KvmmError as e:
            print(f"SKIP: no CUDA device ({e})")
            return 77
    import torch

    from kvmm import hf
    dtype = getattr(torch, a.dtype)
    heads = a.hidden // 64
    model = hf.random_llama(seed=0, dtype=dtype, device=a.device, num_hidden_layers=a.layers,
                            hidden_size=a.hidden, intermediate_size=a.hidden * 11 // 4,
                            num_attention_heads=heads, num_key_value_heads=max(1, heads // 4),
                            head_dim=64, vocab_size=8192)
    vocab = model.config.vocab_size
    b, n_sys, n_suf, new = a.batch, a.system_tokens, a.suffix_tokens, a.new_tokens
    n = n_sys + n_suf
    gen = torch.Generator().manual_seed(1)

    def tokens(rows, count):
        return torch.randint(3, vocab, (rows, count), generator=gen).to(a.device)

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    layers, kv_heads, dim = hf.model_shape(model.config)
    token_bytes = layers * 2 * kv_heads * dim * torch.tensor([], dtype=dtype).element_size()
    store = hf.KvmmStore.for_model(model, layout=None if a.layout == "auto" else a.layout,
                                   max_seqs=2 * b,
                                   max_tokens=n + new + 16,
                                   budget_bytes=(2 * b + 1) * (n + new + 16) * token_bytes
                                   + 64 * MiB, reserve_bytes=64 * MiB,
                                   attention=a.attention)
    print(f"model: Llama {a.layers} layers, hidden {a.hidden}, {heads} heads "
          f"({model.config.num_key_value_heads} KV), vocab {vocab}, {a.dtype}, random weights")
    print(f"kvmm:  {store.cache!r}, {store.cache.tokens_per_block} tokens per block, "
          f"libkvmm {'.'.join(map(str, kvmm.library_version()))} from {kvmm.library_path()}")
    print(f"torch {torch.__version__}, transformers {_tf_version()}, device "
          f"{torch.cuda.get_device_name() if a.device == 'cuda' else 'cpu'}")

    def generate(ids, cache=None, mask_len=None):
        sync()
        t0 = time.perf_counter()
        tok, logits, _ = hf.generate(model, ids, new, cache, mask_len)
        sync()
        return tok, logits, time.perf_counter() - t0

    ok = True
    results = []

    # 1. the same batch through the default cache and through kvmm
    system = tokens(1, n_sys).expand(b, -1)
    req1 = torch.cat([system, tokens(b, n_suf)], 1)
    ref_tok, ref_logits, ref_t = generate(req1)
    with store.new_cache(prompts=req1) as c:
        assert c.prefix_tokens == 0
        tok, logits, kv_t = generate(req1, c)
        published = c.publish(req1) if store.prefix else [0]
    same = bool(torch.equal(tok, ref_tok))
    diff = float((logits - ref_logits).abs().max())
    ok &= same
    print(f"\n1. generate {new} tokens x {b} prompts of {n}: kvmm vs default cache: tokens "
          f"{'identical' if same else 'DIFFER'}, max |logit diff| {diff:.2e} "
          f"(end-to-end {kv_t * 1e3:.0f} ms vs {ref_t * 1e3:.0f} ms)")
    results.append(("hf_match_tokens", 1.0 if same else 0.0, "bool"))
    results.append(("hf_max_logit_diff", diff, "abs"))

    if not store.prefix:
        print("\n2./3. skipped: this libkvmm has no prefix cache (kvmm_prefix_match)")
        return _finish(a, results, ok)

    # 2. a second request with the same system prompt hits the prefix cache;
    # it decodes through forward() (an engine's loop; generate() works too:
    # give it req2[:, m:] and a mask over all n tokens)
    req2 = torch.cat([system, tokens(b, n_suf)], 1)
    ref2_tok, ref2_logits, _ = generate(req2)
    with store.new_cache(prompts=req2) as c:
        m = c.prefix_tokens
        tok2, logits2 = hf.greedy(model, c, req2, new)
        logits2 = torch.stack(logits2)
    same2 = bool(torch.equal(tok2, ref2_tok))
    diff2 = float((logits2 - ref2_logits).abs().max())
    ok &= same2 and m > 0
    print(f"2. second request, same {n_sys}-token system prompt: {m}/{n} prompt tokens from the "
          f"prefix cache (published {max(published)} from request 1); output vs recomputing "
          f"all: tokens {'identical' if same2 else 'DIFFER'}, max |logit diff| {diff2:.2e}")
    results.append(("hf_prefix_hit_tokens", m, "tokens"))
    results.append(("hf_prefix_hit_identical", 1.0 if same2 else 0.0, "bool"))

    # 3. TTFT: prefill + first token, miss vs hit (both through kvmm) and default
    @torch.no_grad()
    def first_token(ids, cache):
        past = cache.get_seq_length() if cache is not None else 0
        pos = torch.arange(past, ids.shape[1], device=ids.device).unsqueeze(0).expand(b, -1)
        out = model(input_ids=ids[:, past:], position_ids=pos, past_key_values=cache,
                    use_cache=True, logits_to_keep=1)
        return out.logits[:, -1].argmax(-1)

    def ttft(kind, rep):
        ids = torch.cat([system, tokens(b, n_suf)], 1)
        sync()
        t0 = time.perf_counter()
        if kind == "default":
            from transformers import DynamicCache
            first_token(ids, DynamicCache())
        else:
            # a miss looks its prompt up too, in a namespace nobody filled
            ns = kvmm.Namespace(tenant_salt=10_000 + rep) if kind == "miss" else None
            with store.new_cache(prompts=ids, ns=ns) as c:
                assert (c.prefix_tokens > 0) == (kind == "hit")
                first_token(ids, c)
                sync()
        sync()
        return time.perf_counter() - t0

    times = {}
    for kind in ("default", "miss", "hit"):
        for w in range(2):
            ttft(kind, -1 - w)  # warm-up (allocator, kernels, pages)
        times[kind] = [ttft(kind, r) for r in range(a.reps)]
    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = med["miss"] / med["hit"]
    print(f"\n3. TTFT, batch {b}, prompt {n} tokens ({n_sys} shared), median of {a.reps}:")
    print(f"   {'default cache, full prefill':34s} {med['default'] * 1e3:8.2f} ms")
    print(f"   {'kvmm, prefix miss (full prefill)':34s} {med['miss'] * 1e3:8.2f} ms")
    print(f"   {'kvmm, prefix hit (suffix only)':34s} {med['hit'] * 1e3:8.2f} ms")
    print(f"   prefix-hit TTFT speedup: {speedup:.2f}x over a miss "
          f"({med['default'] / med['hit']:.2f}x over the default cache)")
    results.append(("hf_ttft_miss_ms", med["miss"] * 1e3, "ms", "hf_ttft_default_ms",
                    med["default"] * 1e3, med["miss"] / med["default"]))
    results.append(("hf_ttft_hit_ms", med["hit"] * 1e3, "ms", "hf_ttft_miss_ms",
                    med["miss"] * 1e3, med["hit"] / med["miss"]))
    results.append(("hf_ttft_default_ms", med["default"] * 1e3, "ms"))
    # ratio = how many times faster the hit is than the miss (both kvmm)
    results.append(("hf_ttft_prefix_hit_speedup", speedup, "x", "hf_ttft_miss_ms",
                    med["miss"] * 1e3, speedup))

    st = store.stats()
    pst = st["prefix"]
    print(f"\nkvmm: prefix lookups {pst['lookups']}, hit tokens {pst['hit_tokens']} of "
          f"{pst['lookup_tokens']}, blocks cached {pst['blocks_cached']}, attach alias/copy "
          f"{pst['attach_alias']}/{pst['attach_copy']}; cache: {st['cache']['step_calls']} "
          f"steps, {st['cache']['mapper_waits']} mapper waits, "
          f"{st['cache']['critical_path_driver_calls']} driver calls in kvmm_step, "
          f"{st['gathers']} gathered updates, {store.kernel_calls} decode-kernel launches")
    store.close()
    return _finish(a, results, ok)


def _tf_version():
    import transformers
    return transformers.__version__


def _finish(a, results, ok):
    if a.json:
        machine = os.environ.get("KVMM_BENCH_MACHINE", platform.node())
        date = datetime.date.today().isoformat()
        with open(a.json, "a") as f:
            for metric, value, unit, *base in results:
                line = {"bench": "hf_generate", "metric": metric, "value": value, "unit": unit}
                if base:
                    line.update(baseline=base[0], baseline_value=base[1], ratio=base[2])
                line.update(machine=machine, date=date)
                f.write(json.dumps(line) + "\n")
    print("\nresult:", "outputs match" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
