# SPDX-License-Identifier: MIT
"""Hugging Face transformers on kvmm: a Cache whose K/V live in libkvmm.

    store = kvmm.hf.KvmmStore.for_model(model, max_seqs=8, max_tokens=8192,
                                       budget_bytes=2 << 30)
    with store.new_cache(prompts=input_ids) as cache:     # prefix hits attached
        out = model.generate(input_ids[:, cache.get_seq_length():],
                             attention_mask=torch.ones_like(input_ids),
                             past_key_values=cache, max_new_tokens=64)
        cache.publish(input_ids)                           # feed the prefix cache

Each batch row is one kvmm sequence.  Layer l's update() writes the new K/V
into the kvmm view of layer l (a torch tensor over libkvmm's memory, made
once through DLPack) and returns that memory itself, [batch, heads, tokens,
dim] with kvmm's strides: the model's attention (SDPA) reads the KV in
place.  The first layer of each forward declares the batch's new length with
one kvmm_step, which maps pages ahead of need in the steady state.

Needs torch and transformers (5.x; written against the Cache / CacheLayer
API of 5.17) and a uniform-stride layout (token-major or layer-major).
"""
import threading

import torch
from transformers.cache_utils import Cache, DynamicLayer

from . import dtypes as _dtypes
from ._owner import Closing
from .backend import Backend
from .cache import Cache as KvCache
from .prefix import Namespace

__all__ = ["KvmmStore", "KvmmCache", "KvmmLayer", "generate", "greedy", "model_shape",
           "random_llama"]


def model_shape(config):
    """(num_layers, num_kv_heads, head_dim) of a decoder config."""
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv, dim


class KvmmStore(Closing):
    """libkvmm storage for one model: a backend, a kvmm cache shaped for the
    model, its prefix cache, and torch tensors over every layer's K and V.

    backend: "cuda" (device = CUDA ordinal) or "host" (tensors on the CPU).
    layout: "token-major" or "layer-major", the layouts whose tokens have
    one stride (what a [batch, heads, tokens, dim] tensor needs); None picks
    token-major when a token's KV divides the page, else layer-major.
    prefix: enable the prefix cache (kvmm_prefix_enable) when libkvmm has it.
    attention: "sdpa" (the model's SDPA reads the kvmm views) or "kernel":
    decode steps run libkvmm's decode attention kernel over the views
    (CUDA, float16/bfloat16, head_dim 64 or 128; prefill stays on SDPA).
    """

    def __init__(self, *, num_layers, num_kv_heads, head_dim, dtype, max_seqs, max_tokens,
                 budget_bytes, reserve_bytes=0, layout=None, backend="cuda", device=0,
                 prefix=True, model_id=0, attach="auto", attention="sdpa"):
        if attention not in ("sdpa", "kernel"):
            raise ValueError(f"attention: {attention!r} is not 'sdpa' or 'kernel'")
        if layout not in (None, "token-major", "layer-major"):
            raise ValueError(f"layout: {layout!r}: the HF cache needs a uniform token stride "
                             "(token-major or layer-major)")
        self.backend = Backend(backend, device=device)
        if layout is None:
            # token-major (one page maps a block of every layer) when a token
            # divides the page; else layer-major, whose rows always do.
            token = num_layers * 2 * num_kv_heads * head_dim * _dtypes.size(dtype)
            layout = "token-major" if self.backend.page_size % token == 0 else "layer-major"
        self.cache = KvCache(self.backend, num_layers=num_layers, num_kv_heads=num_kv_heads,
                             head_dim=head_dim, dtype=dtype, layout=layout, max_seqs=max_seqs,
                             max_tokens=max_tokens, budget_bytes=budget_bytes,
                             reserve_bytes=reserve_bytes)
        self.torch_dtype = getattr(torch, self.cache.dtype)
        self.device = torch.device("cuda", device) if backend == "cuda" else torch.device("cpu")
        self.k, self.v = [], []
        for layer in range(num_layers):
            for kv, out in (("k", self.k), ("v", self.v)):
                view = self.cache.view(layer, kv)
                if view.paged:  # a token (or row) size that does not divide the page
                    self.close()
                    raise ValueError(f"{layout} with this shape has no uniform token stride; "
                                     "use layout=None")
                t = torch.from_dlpack(view)
                assert t.device == self.device and t.dtype == self.torch_dtype
                out.append(t)
        self.ns = Namespace(model_id=model_id)
        self.attach = attach
        self.prefix = bool(prefix) and _has_prefix()
        if self.prefix:
            self.cache.enable_prefix(attach=attach)
        self.gathers = 0  # updates that had to gather rows (non-strided slots)
        self.kernels = None
        self.kernel_calls = 0
        if attention == "kernel":
            self._open_kernels()

    def _open_kernels(self):
        from .kernels import DTYPES, Kernels
        c = self.cache
        if self.device.type != "cuda" or c.dtype not in DTYPES or c.head_dim not in (64, 128):
            self.close()
            raise ValueError("attention='kernel' needs the CUDA backend, float16 or bfloat16 "
                             f"and head_dim 64 or 128 (this store: {self.device.type}, "
                             f"{c.dtype}, head_dim {c.head_dim})")
        self.kernels = Kernels(self.backend)
        self.kview = [c.view(layer, "k") for layer in range(c.num_layers)]
        self.vview = [c.view(layer, "v") for layer in range(c.num_layers)]
        _install_decode_attention()

    @classmethod
    def for_model(cls, model, **kw):
        """A store shaped for model (its config, dtype and device)."""
        layers, kv, dim = model_shape(model.config)
        p = next(model.parameters())
        kw.setdefault("dtype", p.dtype)
        if p.device.type == "cuda":
            kw.setdefault("backend", "cuda")
            kw.setdefault("device", p.device.index or 0)
        else:
            kw.setdefault("backend", "host")
        return cls(num_layers=layers, num_kv_heads=kv, head_dim=dim, **kw)

    def new_cache(self, prompts=None, batch_size=None, ns=None, attach=None):
        """A KvmmCache for one batch.  With prompts ([batch, n] token ids,
        equal lengths, no padding) the longest prefix cached for every row
        (and at most n - 1 tokens, so the forward has a token to compute) is
        attached to each row's sequence: cache.get_seq_length() says how many
        tokens the model can skip.  Without prompts, batch_size rows start
        empty."""
        rows = None
        if prompts is not None:
            rows = _token_rows(prompts)
            if len({len(r) for r in rows}) != 1:
                raise ValueError("prompts: rows differ in length (pad-free batches only: "
                                 "a padded row's cache positions are not its token positions)")
            batch_size = len(rows)
        if not batch_size:
            raise ValueError("batch_size: give prompts or a batch size >= 1")
        n = len(rows[0]) if rows else 0
        seqs = []
        try:
            for _ in range(batch_size):
                seqs.append(self.cache.open(min(n, self.cache.max_tokens)))
            # Row i takes the i-th lowest slot: consecutive (or evenly spaced)
            # slots make the batch one strided tensor, no gather.
            seqs.sort(key=lambda s: s.slot)
            matched = 0
            ns = ns or self.ns
            if rows and self.prefix and n > 1:
                matched = self._attach(seqs, rows, ns, attach or self.attach)
            return KvmmCache(self, seqs, matched, ns)
        except BaseException:
            for s in seqs:
                s.close()
            raise

    def _attach(self, seqs, rows, ns, mode):
        """Match every row's prompt, agree on one length (the batch is
        rectangular), attach it to every row; returns that length."""
        want = len(rows[0]) - 1
        matches = []
        try:
            for _ in range(4):
                for m in matches:
                    m.release()
                matches = [self.cache.prefix_match(r[:want], ns) for r in rows]
                got = min(len(m) for m in matches)
                if all(len(m) == got for m in matches) or got == 0:
                    break
                # Rows matched different lengths: ask again for the shortest,
                # rounded down to whole blocks (what every row then has).
                tpb = self.cache.tokens_per_block
                want = got if got < tpb else got - got % tpb
            else:
                got = 0  # no agreement: recompute everything rather than guess
            if got:
                for s, m in zip(seqs, matches):
                    s.attach_prefix(m, mode)
            return got
        finally:
            for m in matches:
                m.release()

    def stats(self):
        """libkvmm's cache stats, plus the prefix cache's when enabled."""
        d = {"cache": self.cache.stats(), "gathers": self.gathers}
        if self.prefix:
            d["prefix"] = self.cache.prefix_stats()
        return d

    def close(self):
        """Wait for the device, then free the kvmm cache (once no tensor over
        it is left: KvmmCaches still alive keep it until they go)."""
        if self.device.type == "cuda" and self.k:
            torch.cuda.synchronize(self.device)
        self.k, self.v = [], []  # (each tensor pins the cache until freed)
        if self.kernels is not None:
            self.kernels.close()
        self.cache.close()
        self.backend.close()


def _has_prefix():
    from . import has
    return has("kvmm_prefix_match")


def _has_kernels():
    from . import has
    return has("kvmm_attn_decode")


def _token_rows(prompts):
    if isinstance(prompts, torch.Tensor):
        if prompts.dim() != 2:
            raise ValueError("prompts: expected [batch, tokens] token ids")
        return [list(map(int, r)) for r in prompts.cpu().tolist()]
    return [list(map(int, r)) for r in prompts]


class KvmmCache(Closing, Cache):
    """A transformers Cache over kvmm sequences (one per batch row).

    Works with model.generate() and with a model's forward().  close() (or
    ``with``) waits for the device and finishes the sequences; publish()
    feeds the prefix cache.  Beam search and cache offloading are not
    supported (reorder_cache etc. raise NotImplementedError).
    """

    def __init__(self, store, seqs, length, ns=None):
        self._kvmm_store = store
        self._kvmm_ns = ns or store.ns
        self._kvmm_seqs = list(seqs)
        self._kvmm_batch = store.cache.batch(self._kvmm_seqs)
        self._kvmm_len = length
        self._kvmm_prefix = length  # attached from the prefix cache
        slots = [s.slot for s in self._kvmm_seqs]
        step = slots[1] - slots[0] if len(slots) > 1 else 1
        if step > 0 and slots == list(range(slots[0], slots[0] + step * len(slots), step)):
            self._kvmm_rows = slice(slots[0], slots[-1] + 1, step)
        else:
            self._kvmm_rows = torch.tensor(slots, device=store.device)
        if store.kernels is not None:  # the kernel's per-entry slots and lengths
            self._kvmm_ids = torch.tensor(slots, dtype=torch.int32, device=store.device)
            self._kvmm_lens = torch.full((len(slots),), length, dtype=torch.int32,
                                         device=store.device)
        layers = [KvmmLayer(self, i) for i in range(len(store.k))]
        super().__init__(layers=layers)

    @property
    def seqs(self):
        """The kvmm Sequences, in batch-row order."""
        return self._kvmm_seqs

    @property
    def prefix_tokens(self):
        """Tokens of every row that came from the prefix cache."""
        return self._kvmm_prefix

    def _kvmm_grow(self, end):
        if end > self._kvmm_len:
            self._kvmm_batch.step(end)
            self._kvmm_len = end
            if self._kvmm_store.kernels is not None:
                self._kvmm_lens.fill_(end)  # (queued on the stream, like the forward)

    def _kvmm_decode(self, layer, query, scale):
        """One decode step's attention for layer with kvmm_attn_decode:
        query [batch, q heads, 1, dim] -> [batch, 1, q heads, dim]."""
        st = self._kvmm_store
        q = query[:, :, 0]
        if q.stride(2) != 1 or q.stride(1) != q.shape[2] or q.data_ptr() % 16:
            q = q.contiguous()
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        st.kernels.attn_decode(st.kview[layer], st.vview[layer], q=q.data_ptr(),
                               q_stride=q.stride(0), out=out.data_ptr(),
                               seq_lens=self._kvmm_lens.data_ptr(),
                               seq_ids=self._kvmm_ids.data_ptr(), batch=q.shape[0],
                               num_q_heads=q.shape[1], max_len=self._kvmm_len,
                               scale=scale or 0.0,
                               stream=torch.cuda.current_stream(q.device).cuda_stream)
        st.kernel_calls += 1
        return out.unsqueeze(1), None

    def _kvmm_set_len(self, n):
        self._kvmm_batch.step(n)  # may shrink (not below an attached prefix)
        self._kvmm_len = n
        if self._kvmm_store.kernels is not None:
            self._kvmm_lens.fill_(n)
        for layer in self.layers:
            layer._kvmm_length = n

    def crop(self, max_length):
        if max_length < 0:
            max_length = self._kvmm_len + max_length
        if max_length < self._kvmm_len:
            self._kvmm_sync()
            self._kvmm_set_len(max(0, max_length))

    def reset(self):
        self._kvmm_sync()
        self._kvmm_set_len(self._kvmm_prefix)

    def publish(self, tokens):
        """Insert every row's tokens (the first n of its sequence, as cached)
        into the prefix cache, in the namespace the cache matched in; returns
        the tokens newly cached per row."""
        st = self._kvmm_store
        if not st.prefix:
            return [0] * len(self._kvmm_seqs)
        rows = _token_rows(tokens)
        if len(rows) != len(self._kvmm_seqs):
            raise ValueError(f"tokens: {len(rows)} rows for a batch of {len(self._kvmm_seqs)}")
        self._kvmm_sync()  # the KV must be written before it is shared
        return [st.cache.prefix_insert(s, r[:self._kvmm_len], self._kvmm_ns)
                for s, r in zip(self._kvmm_seqs, rows)]

    def _kvmm_sync(self):
        if self._kvmm_store.device.type == "cuda":
            torch.cuda.synchronize(self._kvmm_store.device)

    def close(self):
        """Wait for kernels still reading the KV, then finish the sequences."""
        seqs, self._kvmm_seqs = self._kvmm_seqs, []
        if seqs:
            self._kvmm_sync()
            for s in seqs:
                s.close()


class KvmmLayer(DynamicLayer):
    """One layer of a KvmmCache: K/V in the layer's kvmm views."""

    is_sliding = False
    is_compileable = False

    def __init__(self, owner, idx):
        super().__init__()
        self._kvmm_owner = owner
        self._kvmm_idx = idx
        self._kvmm_length = owner._kvmm_len
        self.batch_size = len(owner._kvmm_seqs)

    def lazy_initialization(self, key_states, value_states=None, *args, **kwargs):
        st = self._kvmm_owner._kvmm_store
        b, h, _, d = key_states.shape
        want = (self.batch_size, st.cache.num_kv_heads, st.cache.head_dim)
        if (b, h, d) != want:
            raise ValueError(f"key_states: batch, heads, dim {(b, h, d)}; this cache holds "
                             f"{want}")
        if key_states.dtype != st.torch_dtype or key_states.device != st.device:
            raise TypeError(f"key_states: {key_states.dtype} on {key_states.device}; this "
                            f"cache holds {st.torch_dtype} on {st.device}")
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        o = self._kvmm_owner
        st = o._kvmm_store
        start = self._kvmm_length
        end = start + key_states.shape[-2]
        o._kvmm_grow(end)  # one kvmm_step per forward: the first layer to get there
        k_all, v_all = st.k[self._kvmm_idx], st.v[self._kvmm_idx]
        rows = o._kvmm_rows
        # [batch, heads, q, dim] -> kvmm's [slot, token, head, dim]
        if isinstance(rows, slice):
            k_all[rows, start:end].copy_(key_states.transpose(1, 2))
            v_all[rows, start:end].copy_(value_states.transpose(1, 2))
        else:
            k_all[rows, start:end] = key_states.transpose(1, 2)
            v_all[rows, start:end] = value_states.transpose(1, 2)
            st.gathers += 1  # the reads below copy the rows
        self._kvmm_length = end
        self.keys = k_all[rows, :end].transpose(1, 2)
        self.values = v_all[rows, :end].transpose(1, 2)
        if st.kernels is not None and end - start == 1:
            # The attention call that follows gets exactly these keys: it
            # may run kvmm's decode kernel instead of SDPA (see below).
            _DECODE.pending = (self.keys, o, self._kvmm_idx)
        return self.keys, self.values

    def get_seq_length(self, *args, **kwargs):
        return self._kvmm_length

    def get_mask_sizes(self, query, *args, **kwargs):
        # 5.x passes the query length; 4.x passed cache_position.
        q = query if isinstance(query, int) else int(query.shape[0])
        return self._kvmm_length + q, 0

    def get_max_length(self):
        return -1  # grows on demand (libkvmm enforces max_tokens itself)

    def get_max_cache_shape(self):
        return -1

    def crop(self, max_length):
        self._kvmm_owner.crop(max_length)

    def reset(self):
        self._kvmm_owner.reset()

    def _unsupported(self, *args, **kwargs):
        raise NotImplementedError("KvmmCache rows are kvmm sequences: beam search, batch "
                                  "reordering and offloading are not supported")

    reorder_cache = batch_repeat_interleave = batch_select_indices = _unsupported
    offload = prefetch = _unsupported


_DECODE = threading.local()


def _install_decode_attention():
    """Wrap transformers' "sdpa" attention once: a decode step whose keys are
    the ones a kernel-enabled KvmmCache just returned (and that needs no mask:
    no padding) runs kvmm_attn_decode over the cache's views; everything else
    (prefill, other caches, masked batches) goes to SDPA as before."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]
    if getattr(sdpa, "_kvmm_decode", False):
        return

    def sdpa_or_kvmm_decode(module, query, key, value, attention_mask, *args, **kwargs):
        pending = getattr(_DECODE, "pending", None)
        _DECODE.pending = None
        if (pending is not None and pending[0] is key and attention_mask is None
                and query.shape[2] == 1):
            return pending[1]._kvmm_decode(pending[2], query, kwargs.get("scaling"))
        return sdpa(module, query, key, value, attention_mask, *args, **kwargs)

    sdpa_or_kvmm_decode._kvmm_decode = True
    ALL_ATTENTION_FUNCTIONS["sdpa"] = sdpa_or_kvmm_decode


def generate(model, input_ids, max_new_tokens, cache=None, mask_len=None):
    """Greedy model.generate() that always runs max_new_tokens: returns
    (new tokens [batch, max_new_tokens], logits [max_new_tokens, batch, vocab]
    as float32, the generate output).  With a cache already holding a prefix,
    pass only the uncached tokens and mask_len = the whole prompt's length."""
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, output_logits=True,
              return_dict_in_generate=True)
    if cache is not None:
        kw["past_key_values"] = cache
    mask = torch.ones(input_ids.shape[0], mask_len or input_ids.shape[1], dtype=torch.long,
                      device=input_ids.device)
    out = model.generate(input_ids, attention_mask=mask, **kw)
    return (out.sequences[:, input_ids.shape[1]:], torch.stack([x.float() for x in out.logits]),
            out)


@torch.no_grad()
def greedy(model, cache, input_ids, max_new_tokens):
    """Greedy decoding through model forward() alone (no generate()).

    input_ids: [batch, n] prompts; the cache may already hold their first
    cache.get_seq_length() tokens (a prefix hit).  Returns (tokens [batch,
    max_new_tokens], logits: list of [batch, vocab] per new token).
    """
    past = cache.get_seq_length()
    b, n = input_ids.shape
    if past >= n:
        raise ValueError(f"input_ids: {n} tokens, {past} already cached: nothing to compute")
    dev = input_ids.device
    ids = input_ids[:, past:]
    pos = torch.arange(past, n, device=dev).unsqueeze(0).expand(b, -1)
    toks, logits = [], []
    for _ in range(max_new_tokens):
        out = _forward(model, ids, pos, cache)
        last = out.logits[:, -1, :].float()
        nxt = last.argmax(-1)
        toks.append(nxt)
        logits.append(last)
        ids = nxt.unsqueeze(1)
        pos = pos[:, -1:] + 1
    return torch.stack(toks, 1), logits


def _forward(model, ids, pos, cache):
    kw = dict(input_ids=ids, position_ids=pos, past_key_values=cache, use_cache=True)
    try:
        return model(**kw, logits_to_keep=1)
    except TypeError:  # a model without logits_to_keep
        return model(**kw)


def random_llama(seed=0, dtype=torch.float32, device="cuda", **overrides):
    """A small Llama with random weights from a fixed seed (tests and
    examples: nothing is downloaded).  No BOS/EOS/pad tokens, so greedy
    generation always runs its full length."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = dict(vocab_size=4096, hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
               num_attention_heads=8, num_key_value_heads=4, head_dim=64,
               max_position_embeddings=16384, rms_norm_eps=1e-5, bos_token_id=None,
               eos_token_id=None, pad_token_id=None, tie_word_embeddings=False,
               attn_implementation="sdpa")
    cfg.update(overrides)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.to(device=device, dtype=dtype).eval()
    gc = model.generation_config
    gc.bos_token_id = gc.eos_token_id = gc.pad_token_id = None
    return model
