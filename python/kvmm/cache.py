# SPDX-License-Identifier: MIT
"""KV caches and their sequences."""
import ctypes
import errno
import weakref

from . import _capi, dlpack, dtypes
from ._capi import lib
from ._owner import Closing, Owner
from ._util import as_buffer, u32, u64
from .errors import KvmmError, check
from .view import KVView

LAYOUTS = {"default": _capi.LAYOUT_DEFAULT, "layer-major": _capi.LAYOUT_LAYER_MAJOR,
           "token-major": _capi.LAYOUT_TOKEN_MAJOR, "page-major": _capi.LAYOUT_PAGE_MAJOR}
_KV = {"k": _capi.K, "v": _capi.V, _capi.K: _capi.K, _capi.V: _capi.V}


def kv_index(kv):
    """"k"/"v" (or kvmm.K / kvmm.V) -> enum kvmm_kv."""
    try:
        return _KV[kv.lower() if isinstance(kv, str) else kv]
    except (KeyError, TypeError):
        raise ValueError(f"kv: expected 'k' or 'v', got {kv!r}") from None


class Cache(Owner):
    """A KV cache (kvmm_cache_create) on a backend.

    Shape: num_layers, num_kv_heads, head_dim and dtype (any name in
    kvmm.dtypes.names(), a numpy or a torch dtype; it sets the element size
    and the DLPack type of views).  layout: "default", "layer-major",
    "token-major" or "page-major".  Limits: max_seqs, max_tokens (per
    sequence), budget_bytes (hard cap on physical memory), reserve_bytes
    (pages created up front), map_ahead_tokens, low_water_bytes.
    mapper=False runs without the background thread (kvmm_step maps
    synchronously).  pressure: optional callable(pages_needed), called from
    the thread that ran out of pages.

    close() (or the end of a ``with`` block, or garbage collection) destroys
    the cache; sequences and prefix handles die with it.  While tensors
    exported from its views are alive the destruction waits for the last of
    them, so no tensor ever points at unmapped memory.  Thread-safety is the
    C API's: every method may be called from any thread except close(),
    which must not race with other calls.
    """

    _kind = "cache"

    def __init__(self, backend, *, num_layers, num_kv_heads, head_dim, dtype="float16",
                 layout="default", max_seqs, max_tokens, budget_bytes, reserve_bytes=0,
                 map_ahead_tokens=0, low_water_bytes=0, mapper=True, pressure=None):
        self._owner_init()
        self.dtype = dtypes.canonical(dtype)
        if layout not in LAYOUTS:
            raise ValueError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
        if pressure is not None and not callable(pressure):
            raise TypeError("pressure: expected a callable(pages_needed)")
        cfg = _capi.CacheConfig.new()
        cfg.shape = _capi.Shape(u32("num_layers", num_layers), u32("num_kv_heads", num_kv_heads),
                                u32("head_dim", head_dim), dtypes.size(self.dtype))
        cfg.layout = LAYOUTS[layout]
        cfg.max_seqs = u32("max_seqs", max_seqs)
        cfg.max_tokens = u32("max_tokens", max_tokens)
        cfg.budget_bytes = u64("budget_bytes", budget_bytes)
        cfg.reserve_bytes = u64("reserve_bytes", reserve_bytes)
        cfg.map_ahead_tokens = u32("map_ahead_tokens", map_ahead_tokens)
        cfg.low_water_bytes = u64("low_water_bytes", low_water_bytes)
        cfg.flags = 0 if mapper else _capi.CACHE_NO_MAPPER
        self._pressure = None
        if pressure is not None:
            def _pressure(_arg, pages, fn=pressure):
                fn(pages)
            # Kept on the object: C holds the thunk's address.
            self._pressure = _capi.PRESSURE_FN(_pressure)
            cfg.pressure = self._pressure
        self.backend = backend
        backend._pin("backend")
        h = ctypes.c_void_p()
        try:
            check(lib.kvmm_cache_create(backend.handle, ctypes.byref(cfg), ctypes.byref(h)),
                  "kvmm_cache_create")
        except BaseException:
            backend._unpin()
            raise
        self._h = h.value
        info = _capi.CacheInfo.new()
        check(lib.kvmm_cache_get_info(self._h, ctypes.byref(info)), "kvmm_cache_get_info")
        self._info = info
        self.num_layers = info.shape.num_layers
        self.num_kv_heads = info.shape.num_kv_heads
        self.head_dim = info.shape.head_dim
        self.elem_size = info.shape.elem_size
        self.max_seqs = info.max_seqs
        self.max_tokens = info.max_tokens
        self.tokens_per_block = info.tokens_per_block
        self.layout = lib.kvmm_layout_name(info.layout).decode()
        self.row_bytes = self.num_kv_heads * self.head_dim * self.elem_size
        kind = backend.kind
        self.dlpack_device = ((dlpack.KDL_CUDA, _cuda_ordinal(backend)) if kind == "cuda"
                              else (dlpack.KDL_CPU, 0) if kind == "host" else None)
        self._seqs = weakref.WeakValueDictionary()  # slot -> open Sequence
        self._prefix_clock = None  # the prefix cache's clock thunk, if any
        self._tiers_log = None  # the tiers' log thunk, if any
        self._prefetches = {}  # C handles of prefetches not yet released

    def _free(self):
        h, self._h = self._h, None
        for s in list(self._seqs.values()):
            s._slot = None
        self._seqs.clear()
        if h:
            if self._prefetches:  # libkvmm's destroy does not end them
                from . import tiers
                tiers.release_all(self, h)
            lib.kvmm_cache_destroy(h)
            self.backend._unpin()

    @property
    def info(self):
        """Geometry (kvmm_cache_get_info) as a dict."""
        d = self._info.to_dict()
        d["layout"] = self.layout
        d["dtype"] = self.dtype
        return d

    # -- sequences --
    def open(self, expected_tokens=0):
        """Admit a sequence (kvmm_seq_open); returns a Sequence.  KvmmError
        ENOSPC when every slot is in use."""
        slot = ctypes.c_uint32()
        check(lib.kvmm_seq_open(self.handle, u32("expected_tokens", expected_tokens),
                                ctypes.byref(slot)), "kvmm_seq_open")
        s = Sequence(self, slot.value)
        self._seqs[slot.value] = s
        return s

    def step(self, entries):
        """Declare new lengths (kvmm_step): entries is an iterable of
        (Sequence or slot, new_len) pairs, or a dict {Sequence: new_len}.
        For a fixed batch stepped every iteration, batch() is cheaper."""
        if isinstance(entries, dict):
            entries = entries.items()
        entries = list(entries)
        arr = (_capi.StepEntry * len(entries))()
        for i, (s, n) in enumerate(entries):
            arr[i].seq = self._slot_of(s)
            arr[i].len = u32("len", n)
        check(lib.kvmm_step(self.handle, arr, len(entries)), "kvmm_step")

    def batch(self, seqs):
        """A Batch over these sequences, for stepping them every iteration."""
        return Batch(self, seqs)

    def _slot_of(self, s):
        if isinstance(s, Sequence):
            if s.cache is not self:
                raise ValueError("sequence belongs to another cache")
            return s.slot
        return u32("seq", s)

    # -- views --
    def view(self, layer, kv):
        """KVView of layer's K or V over every sequence slot (kvmm_cache_view)."""
        return KVView(self, layer, kv_index(kv), self._cview(layer, kv))

    def _cview(self, layer, kv):
        v = _capi.View.new()
        check(lib.kvmm_cache_view(self.handle, u32("layer", layer), kv_index(kv),
                                  ctypes.byref(v)), "kvmm_cache_view",
              f"layer {layer} of {self.num_layers}")
        return v

    # -- budget and stats --
    def set_budget(self, budget_bytes):
        """Change the physical budget (kvmm_cache_set_budget); returns the
        number of pages the caller must still free (0 when it already holds)."""
        short = ctypes.c_uint64()
        check(lib.kvmm_cache_set_budget(self.handle, u64("budget_bytes", budget_bytes),
                                        ctypes.byref(short)), "kvmm_cache_set_budget")
        return short.value

    def stats(self):
        """A consistent snapshot of the counters (kvmm_cache_stats) as a dict."""
        st = _capi.CacheStats.new()
        check(lib.kvmm_cache_stats(self.handle, ctypes.byref(st)), "kvmm_cache_stats")
        return st.to_dict()

    def stats_json(self):
        """The library's own JSON rendering (kvmm_cache_stats_json), as a string."""
        return self._json("kvmm_cache_stats_json")

    def _json(self, func):
        h, fn = self.handle, getattr(lib, func)
        n = check(fn(h, None, 0), func)
        while True:
            buf = ctypes.create_string_buffer(n + 1)
            m = check(fn(h, buf, n + 1), func)
            if m <= n:  # counters may grow digits between the two calls
                return buf.value.decode()
            n = m

    # -- prefix cache (kvmm.prefix holds the details) --
    def enable_prefix(self, policy="lru", attach="auto", admit_hits=0, max_bytes=0,
                      hint_ttl_ns=0, clock=None, cost_map_ns=0, cost_unmap_ns=0,
                      cost_copy_ns=0):
        """Enable the prefix cache (kvmm_prefix_enable), once (EEXIST after).

        policy: "lru" or "lfu" (leaf first).  attach: what "auto" means at
        attach time: "auto" (libkvmm's measured cost rule), "alias" or "copy".
        admit_hits: cache a prefix only once offered that many times.
        max_bytes: cap on the prefix cache's blocks (0: only the budget).
        hint_ttl_ns: how long a hint protects its prefix past the time it
        named (0: 10 s).  clock: optional callable returning nanoseconds,
        the clock of hint times (default CLOCK_MONOTONIC; a simulator passes
        its virtual clock).  libkvmm calls it with the prefix cache's lock
        held: it must not call into kvmm.  cost_map_ns, cost_unmap_ns,
        cost_copy_ns: per-page costs the "auto" rule weighs, given instead of
        measured on the backend (0: measured; each at most 1e9)."""
        from . import prefix
        prefix.enable(self, policy, attach, admit_hits, max_bytes, hint_ttl_ns, clock,
                      (cost_map_ns, cost_unmap_ns, cost_copy_ns))

    def prefix_match(self, tokens, ns=None):
        """Longest cached prefix of tokens: a PrefixMatch (len 0 when none)."""
        from . import prefix
        return prefix.match(self, tokens, ns)

    def prefix_insert(self, seq, tokens, ns=None):
        """Publish seq's full blocks holding tokens; returns tokens newly cached."""
        from . import prefix
        return prefix.insert(self, seq, tokens, ns)

    def prefix_hint(self, tokens, ns=None, when_ns=0):
        """Say tokens will be needed at when_ns (on the prefix cache's clock):
        their blocks are evicted last.  Returns the number of tokens hinted."""
        from . import prefix
        return prefix.hint(self, tokens, ns, when_ns)

    def prefix_evict(self, nblocks):
        """Evict up to nblocks unpinned blocks now; returns how many were."""
        return check(lib.kvmm_prefix_evict(self.handle, u32("nblocks", nblocks)),
                     "kvmm_prefix_evict")

    def prefix_stats(self):
        st = _capi.PrefixStats.new()
        check(lib.kvmm_prefix_stats(self.handle, ctypes.byref(st)), "kvmm_prefix_stats")
        return st.to_dict()

    # -- tiers (kvmm.tiers holds the details) --
    def enable_tiers(self, host_bytes, **kw):
        """Enable the tiers under the prefix cache (kvmm_tiers_enable), once
        (EEXIST after; EINVAL before enable_prefix()).  Evicted prefix blocks
        then spill to a pinned host pool of host_bytes and, with disk_dir
        and disk_bytes, on to disk.  Keywords (docs/python.md lists them):
        host_node (None: the GPU's node, "any", or a node number),
        host_threads, host_policy and disk_policy ("write-back" or
        "write-through"), host_pages (None, "thp", "4k", "hugetlb"), kmod,
        verify_host, host_pool_name, disk_dir, disk_bytes,
        disk_queue_depth, disk_admit_hits, disk_buffered, disk_discard,
        disk_scan_headers, encoding ("raw", "fp8", "int8"), log
        (callable(message), called from libkvmm's threads too)."""
        from . import tiers
        tiers.enable(self, host_bytes, **kw)

    def prefix_prefetch(self, tokens, ns=None, layerwise=False):
        """Start restoring tokens' spilled blocks into the prefix cache: a
        Prefetch (found = tokens cached once it completes; wait() for them,
        then prefix_match()).  layerwise=True gathers every record on the
        host first, for Sequence.attach_prefetch() and wait_layer()."""
        from . import tiers
        return tiers.prefetch(self, tokens, ns, layerwise)

    def tiers_flush(self):
        """Wait until every spill queued so far is done (kvmm_tiers_flush)."""
        check(lib.kvmm_tiers_flush(self.handle), "kvmm_tiers_flush")

    def tiers_stats(self):
        """A snapshot of the tiers (kvmm_tiers_stats) as a dict; blocks is
        {"gpu", "host", "disk", "inflight"}: residency now."""
        from . import tiers
        return tiers.stats(self)

    def tiers_stats_json(self):
        """kvmm_tiers_stats_json, as a string."""
        return self._json("kvmm_tiers_stats_json")

    def __repr__(self):
        if self._closing:
            return "<kvmm.Cache closed>"
        return (f"<kvmm.Cache {self.layout} {self.num_layers}x{self.num_kv_heads}x{self.head_dim} "
                f"{self.dtype} seqs={self.max_seqs} tokens={self.max_tokens} on "
                f"{self.backend.name}>")


def _cuda_ordinal(backend):
    # DLPack names the device by the ordinal the backend was opened on.
    return backend.device


class Sequence(Closing):
    """One sequence slot of a cache (kvmm_seq_open).  close() (or ``with``,
    or garbage collection) finishes it: its own pages stay mapped for the
    next sequence in the slot, shared ones are released."""

    def __init__(self, cache, slot):
        self.cache = cache
        self._slot = slot
        self._reserved = 0

    @property
    def slot(self):
        """The slot id: the s of the view formula."""
        if self._slot is None:
            raise ValueError("sequence is closed")
        return self._slot

    @property
    def closed(self):
        return self._slot is None

    def close(self):
        slot, self._slot = self._slot, None
        if slot is None:
            return
        c = self.cache
        if c._seqs.get(slot) is self:
            del c._seqs[slot]
        if c._h and not c._closing:
            check(lib.kvmm_seq_close(c._h, slot), "kvmm_seq_close")

    def __len__(self):
        return self.len

    @property
    def len(self):
        """Current length in tokens (kvmm_seq_len)."""
        return check(lib.kvmm_seq_len(self.cache.handle, self.slot), "kvmm_seq_len")

    def reserve(self, ntokens):
        """Map room for ntokens now (kvmm_seq_reserve), e.g. before a prefill."""
        check(lib.kvmm_seq_reserve(self.cache.handle, self.slot, u32("ntokens", ntokens)),
              "kvmm_seq_reserve")
        self._reserved = max(self._reserved, ntokens)

    def step(self, new_len):
        """kvmm_step for this sequence alone."""
        self.cache.step([(self, new_len)])

    def stats(self):
        st = _capi.SeqStats.new()
        check(lib.kvmm_seq_stats(self.cache.handle, self.slot, ctypes.byref(st)),
              "kvmm_seq_stats")
        return st.to_dict()

    def write(self, layer, kv, tok0, data):
        """Copy data (a buffer laid out [ntok][num_kv_heads][head_dim]) into
        tokens tok0.. of layer's K or V (kvmm_seq_write)."""
        c = self.cache
        ptr, n, _keep = as_buffer(data, "data")
        if n % c.row_bytes:
            raise ValueError(f"data: {n} bytes is not a whole number of tokens "
                             f"({c.row_bytes} bytes each)")
        check(lib.kvmm_seq_write(c.handle, self.slot, u32("layer", layer), kv_index(kv),
                                 u32("tok0", tok0), n // c.row_bytes, ptr), "kvmm_seq_write")

    def read(self, layer, kv, tok0, ntok, out=None):
        """Tokens tok0..tok0+ntok of layer's K or V (kvmm_seq_read): into out
        (a writable buffer of exactly that size) or a new bytearray."""
        c = self.cache
        ntok = u32("ntok", ntok)
        if out is None:
            out = bytearray(ntok * c.row_bytes)
        ptr, n, _keep = as_buffer(out, "out", writable=True)
        if n != ntok * c.row_bytes:
            raise ValueError(f"out: {n} bytes, expected {ntok * c.row_bytes}")
        check(lib.kvmm_seq_read(c.handle, self.slot, u32("layer", layer), kv_index(kv),
                                u32("tok0", tok0), ntok, ptr), "kvmm_seq_read")
        return out

    def view(self, layer, kv, start=0, stop=None):
        """KVView of this sequence's tokens [start, stop) of layer's K or V.
        stop defaults to the length; it may go up to the reservation."""
        c = self.cache
        n = self.len
        limit = max(n, self._reserved)
        stop = n if stop is None else stop
        if not 0 <= u32("start", start) <= u32("stop", stop) <= limit:
            raise KvmmError(errno.ERANGE, "KVView",
                            f"tokens [{start}, {stop}) of a sequence with {n} tokens "
                            f"and {self._reserved} reserved")
        return KVView(c, layer, kv_index(kv), c._cview(layer, kv), self.slot, start, stop)

    def attach_prefix(self, match, mode="auto"):
        """Make a matched prefix this (empty) sequence's first tokens."""
        from . import prefix
        prefix.attach(self, match, mode)

    def attach_prefetch(self, prefetch):
        """Layer-wise restore: make a layer-wise Prefetch's whole prefix this
        (empty) sequence's first tokens as soon as its records are verified
        on the host, before the copies finish (kvmm_seq_attach_prefetch).
        Read layer l only after prefetch.wait_layer(l).  Returns the tokens
        attached; ENOENT when nothing was restored, EIO when a record failed."""
        from . import tiers
        return tiers.attach(self, prefetch)

    def __repr__(self):
        if self._slot is None:
            return "<kvmm.Sequence closed>"
        return f"<kvmm.Sequence slot {self._slot}>"


class Batch:
    """A fixed set of sequences stepped together, with one preallocated
    kvmm_step_entry array (the per-iteration call of a decode loop)."""

    def __init__(self, cache, seqs):
        self.cache = cache
        self.seqs = list(seqs)
        self._arr = (_capi.StepEntry * len(self.seqs))()
        for i, s in enumerate(self.seqs):
            self._arr[i].seq = cache._slot_of(s)
        self.slots = [e.seq for e in self._arr]

    def __len__(self):
        return len(self.seqs)

    def step(self, lens):
        """New lengths: one int for all, or one per sequence."""
        arr = self._arr
        if isinstance(lens, int):
            u32("len", lens)
            for e in arr:
                e.len = lens
        else:
            lens = list(lens)
            if len(lens) != len(arr):
                raise ValueError(f"lens: {len(lens)} lengths for {len(arr)} sequences")
            for e, n in zip(arr, lens):
                e.len = u32("len", n)
        check(lib.kvmm_step(self.cache.handle, arr, len(arr)), "kvmm_step")
