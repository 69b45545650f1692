#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A real model on kvmm: a small random Llama (transformers) whose KV cache
is kvmm.hf.KvmmCache.  Greedy generation of 64 tokens for a batch gives the
same tokens, and logits within tolerance, as the model's default cache,
through generate() and through a forward() loop, on both uniform layouts;
the KV kvmm holds equals the default cache's; a second request sharing a
prompt prefix hits the prefix cache (alias and copy) and gives the same
output as recomputing it.  Also: the host backend with CPU torch."""
from pygpu import require_cuda, require_torch, skip_program

require_cuda().close()
torch = require_torch()
try:
    import transformers  # noqa: F401
except ImportError:
    skip_program("transformers is not installed")

from tap import run, skip  # noqa: E402

from kvmm import hf  # noqa: E402

MiB = 1 << 20
B, N, NEW = 4, 300, 64
print(f"# torch {torch.__version__}, transformers {transformers.__version__}", flush=True)

MODEL = hf.random_llama(seed=0, dtype=torch.float32, device="cuda")
VOCAB = MODEL.config.vocab_size


def prompts(b, n, seed, device="cuda"):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (b, n), generator=g).to(device)


def store(model=MODEL, **kw):
    kw.setdefault("max_seqs", 8)
    kw.setdefault("max_tokens", 4096)
    kw.setdefault("budget_bytes", 1024 * MiB)
    kw.setdefault("reserve_bytes", 64 * MiB)
    return hf.KvmmStore.for_model(model, **kw)


def generate(model, ids, cache=None, mask_len=None):
    return hf.generate(model, ids, NEW, cache, mask_len)


REF = {}


def reference(model, ids, key):
    """The default cache's greedy output (memoized per prompt set)."""
    if key not in REF:
        REF[key] = generate(model, ids)
    return REF[key]


def compare(name, ref_tok, ref_logits, tok, logits, tol):
    """Tokens must agree; if they ever differ, it must be where the
    reference's top-2 logits were closer than tol (a legitimate near-tie), and
    logits must agree within tol up to and including that step."""
    if isinstance(logits, list):
        logits = torch.stack(logits)
    same = (ref_tok == tok).all(0)  # per step, over the batch
    first = int((~same).nonzero()[0]) if not bool(same.all()) else NEW
    upto = min(first + 1, NEW)  # (the diverging step's logits still share a prefix)
    diff = float((ref_logits[:upto] - logits[:upto]).abs().max())
    print(f"# {name}: {first}/{NEW} steps identical for all rows, max |logit diff| "
          f"{diff:.2e} (tol {tol})", flush=True)
    assert diff <= tol, f"{name}: logits differ by {diff} > {tol}"
    if first < NEW:
        top2 = ref_logits[first].topk(2, -1).values
        margin = float((top2[:, 0] - top2[:, 1])[~(ref_tok[:, first] == tok[:, first])].min())
        assert margin < tol, f"{name}: token {first} differs with a top-2 margin {margin}"
    return first


def test_generate_matches_default_cache():
    ids = prompts(B, N, 1)
    ref_tok, ref_logits, ref_out = reference(MODEL, ids, "a")
    for layout in ("token-major", "layer-major"):
        with store(layout=layout) as st, st.new_cache(batch_size=B) as c:
            tok, logits, out = generate(MODEL, ids, c)
            assert compare(f"generate/{layout}", ref_tok, ref_logits, tok, logits, 1e-3) == NEW
            assert c.get_seq_length() == N + NEW - 1
            # The KV kvmm holds is the default cache's, layer by layer.
            ref_cache = ref_out.past_key_values
            for layer in range(MODEL.config.num_hidden_layers):
                rk = ref_cache.layers[layer].keys
                rv = ref_cache.layers[layer].values
                for s, row in zip(c.seqs, range(B)):
                    k = st.k[layer][s.slot, :N + NEW - 1].transpose(0, 1)
                    v = st.v[layer][s.slot, :N + NEW - 1].transpose(0, 1)
                    assert torch.allclose(k, rk[row], atol=1e-5, rtol=1e-5), (layout, layer)
                    assert torch.allclose(v, rv[row], atol=1e-5, rtol=1e-5), (layout, layer)
            stats = st.stats()["cache"]
            print(f"# {layout}: {stats['step_calls']} steps, {stats['mapper_waits']} mapper "
                  f"waits, {stats['critical_path_driver_calls']} driver calls in kvmm_step",
                  flush=True)
            assert st.gathers == 0  # consecutive slots: strided views, no gather


def test_forward_loop_matches_default_cache():
    ids = prompts(B, N, 1)
    ref_tok, ref_logits, _ = reference(MODEL, ids, "a")
    with store() as st, st.new_cache(batch_size=B) as c:
        tok, logits = hf.greedy(MODEL, c, ids, NEW)
        assert compare("forward loop", ref_tok, ref_logits, tok, logits, 1e-3) == NEW


def test_bfloat16():
    model = hf.random_llama(seed=0, dtype=torch.bfloat16, device="cuda")
    ids = prompts(B, N, 2)
    ref_tok, ref_logits, _ = generate(model, ids)
    with store(model) as st, st.new_cache(batch_size=B) as c:
        tok, logits, _ = generate(model, ids, c)
        compare("bf16 generate", ref_tok, ref_logits, tok, logits, 0.1)
    del model


def test_decode_with_the_kvmm_kernel():
    """attention="kernel": decode steps run kvmm_attn_decode over the views."""
    if not hf._has_kernels():
        skip("libkvmm has no kernels API")
    model = hf.random_llama(seed=0, dtype=torch.bfloat16, device="cuda")
    ids = prompts(B, N, 2)
    ref_tok, ref_logits, _ = generate(model, ids)
    with store(model, attention="kernel") as st, st.new_cache(batch_size=B) as c:
        tok, logits, _ = generate(model, ids, c)
        layers = model.config.num_hidden_layers
        print(f"# {st.kernel_calls} kernel launches for {NEW - 1} decode steps x {layers} "
              "layers", flush=True)
        assert st.kernel_calls == (NEW - 1) * layers
        compare("bf16 generate, kvmm decode kernel", ref_tok, ref_logits, tok, logits, 0.1)
    # the wrapper leaves every other cache on SDPA: the reference is unchanged
    again, _, _ = generate(model, ids)
    assert torch.equal(again, ref_tok)
    del model


def _prefix_requests(mode, via_generate=False):
    with store(attach=mode) as st:
        if not st.prefix:
            skip("the prefix cache is not in this libkvmm")
        tpb = st.cache.tokens_per_block
        system = prompts(1, 3 * tpb + 17, 10).expand(B, -1)
        first = torch.cat([system, prompts(B, 40, 11)], 1)
        second = torch.cat([system, prompts(B, 40, 12)], 1)
        n = second.shape[1]
        # request 1: cold, then published
        with st.new_cache(prompts=first) as c:
            assert c.prefix_tokens == 0
            hf.greedy(MODEL, c, first, 8)
            # (rows share the system prompt: the first row publishes its blocks)
            assert sum(c.publish(first)) >= 3 * tpb
        before = st.cache.prefix_stats()
        # request 2: the system prompt comes from the prefix cache
        ref_tok, ref_logits, _ = reference(MODEL, second, "prefix")
        with st.new_cache(prompts=second) as c:
            m = c.prefix_tokens
            assert 3 * tpb <= m < n, (m, tpb)
            tok, logits = hf.greedy(MODEL, c, second, NEW)
            compare(f"prefix hit ({mode}, {m}/{n} tokens cached)", ref_tok, ref_logits, tok,
                    logits, 1e-3)
            assert torch.equal(tok, ref_tok)
        after = st.cache.prefix_stats()
        assert after["hit_tokens"] - before["hit_tokens"] >= B * m
        key = {"alias": "attach_alias", "copy": "attach_copy"}.get(mode)
        if key:
            assert after[key] > before[key], (mode, after)
        if via_generate:
            # generate(): only the uncached tokens go in, the mask spans the
            # whole prompt (transformers 5.x's way to reuse a filled cache)
            with st.new_cache(prompts=second) as c:
                m = c.prefix_tokens
                tok, logits, _ = generate(MODEL, second[:, m:], c, mask_len=n)
                compare(f"prefix hit via generate ({mode})", ref_tok, ref_logits, tok, logits,
                        1e-3)
                assert torch.equal(tok, ref_tok)


def test_prefix_hit_alias():
    _prefix_requests("alias")


def test_prefix_hit_copy():
    _prefix_requests("copy")


def test_prefix_hit_via_generate():
    _prefix_requests("auto", via_generate=True)


def test_host_backend_on_cpu():
    model = hf.random_llama(seed=3, dtype=torch.float32, device="cpu", num_hidden_layers=2,
                            hidden_size=256, intermediate_size=512, num_attention_heads=4,
                            num_key_value_heads=2, vocab_size=1024)
    ids = torch.randint(3, 1024, (2, 40), generator=torch.Generator().manual_seed(4))
    ref_tok, ref_logits, _ = generate(model, ids)
    with store(model, budget_bytes=64 * MiB, reserve_bytes=0) as st:
        assert st.backend.name == "host" and st.device.type == "cpu"
        with st.new_cache(batch_size=2) as c:
            tok, logits, _ = generate(model, ids, c)
            compare("host backend, CPU torch", ref_tok, ref_logits, tok, logits, 1e-3)


def test_misuse_is_refused():
    with store() as st:
        try:
            st.new_cache(prompts=[[5, 6, 7], [5, 6]])
        except ValueError as e:
            assert "differ in length" in str(e)
        else:
            raise AssertionError("ragged prompts accepted")
        try:
            hf.KvmmStore.for_model(MODEL, max_seqs=2, max_tokens=64, budget_bytes=64 * MiB,
                                   layout="page-major")
        except ValueError as e:
            assert "uniform token stride" in str(e)
        else:
            raise AssertionError("page-major accepted")
        with st.new_cache(batch_size=2) as c:
            try:
                c.reorder_cache(torch.tensor([1, 0]))
            except NotImplementedError:
                pass
            else:
                raise AssertionError("reorder_cache accepted")


if __name__ == "__main__":
    run(globals())
