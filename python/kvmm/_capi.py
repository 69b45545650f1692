# SPDX-License-Identifier: MIT
"""ctypes mirror of runtime/include/kvmm.h: structs, enums and prototypes.

Every struct here must match the C layout field for field;
tests/python/test_abi.py compiles a C program that prints offsetof() of each
field and compares.  Functions are resolved on first use, so a library built
before a feature landed (e.g. the prefix cache) still serves everything
else, and the missing call raises kvmm.Unavailable naming the symbol.
"""
import ctypes
from ctypes import (POINTER, Structure, c_char_p, c_float, c_int, c_int32, c_int64, c_size_t,
                    c_uint32, c_uint64, c_void_p)

from . import _loader
from .errors import Unavailable

# enum kvmm_backend_type
BACKEND_AUTO, BACKEND_HOST, BACKEND_CUDA, BACKEND_NULL = 0, 1, 2, 3
BACKEND_HUGETLB = 1 << 0
# enum kvmm_layout
LAYOUT_DEFAULT, LAYOUT_LAYER_MAJOR, LAYOUT_TOKEN_MAJOR, LAYOUT_PAGE_MAJOR = 0, 1, 2, 3
K, V = 0, 1
CACHE_NO_MAPPER = 1 << 0
# enum kvmm_backend_op, in order
OP_NAMES = ("reserve", "release_va", "create", "destroy", "map", "set_access", "unmap", "copy",
            "fill", "sync")
OP_COUNT = len(OP_NAMES)
# prefix cache
EVICT_LRU, EVICT_LFU = 0, 1
ATTACH_AUTO, ATTACH_ALIAS, ATTACH_COPY = 0, 1, 2
EVICT_REASONS = ("pressure", "cap", "explicit")
# host pools (kvmm.ko, or ordinary memory as a fallback)
HOSTPOOL_NODE_ANY = -1
HOSTPOOL_CFG_PERSISTENT, HOSTPOOL_CFG_POPULATE, HOSTPOOL_CFG_GPU_NODE = 1 << 0, 1 << 2, 1 << 3
HOSTPOOL_CFG_FALLBACK, HOSTPOOL_CFG_FORCE_FALLBACK = 1 << 8, 1 << 9
HOSTPOOL_READ_ONLY = 1 << 0
PAGE_STATES = ("free", "hot", "cold")  # enum kvmm_hostpool_page_state, in order
HOSTPOOL_TIERS = ("gpu", "host", "disk", "inflight")  # enum kvmm_hostpool_tier
# kernels
DTYPE_FP16, DTYPE_BF16 = 1, 2
QUANT_NONE, QUANT_INT8, QUANT_FP8_E4M3 = 0, 1, 2
# tiers
RESIDENCY = ("gpu", "host", "disk", "inflight")  # enum kvmm_residency, in order
WRITE_BACK, WRITE_THROUGH = 0, 1
SPILL_RAW, SPILL_FP8, SPILL_INT8 = 0, 1, 2
HOST_GPU_NODE, HOST_ANY_NODE, HOST_NODE = 0, 1, 2
TIERS_HOST_THP, TIERS_HOST_HUGETLB, TIERS_NO_KMOD = 1 << 0, 1 << 1, 1 << 2
TIERS_DISK_BUFFERED, TIERS_DISK_DISCARD, TIERS_DISK_SCAN_HEADERS = 1 << 3, 1 << 4, 1 << 5
TIERS_NO_VERIFY_HOST, TIERS_HOST_NO_THP = 1 << 6, 1 << 7
PREFETCH_LAYERWISE = 1 << 0


# Spare zero bytes after every struct handed to libkvmm: structs only grow
# at their end (kvmm.h's rule), so a newer library reads zeros (defaults)
# past an older binding's config and writes its extra stats into the slack,
# never past the buffer.  (tests/python/test_abi.py still flags the drift.)
SLACK = 256


class Struct(Structure):
    @classmethod
    def new(cls, *args, **kw):
        """An instance inside a zeroed buffer SLACK bytes longer than the struct."""
        buf = (ctypes.c_char * (ctypes.sizeof(cls) + SLACK))()
        obj = cls.from_buffer(buf)
        obj._slack_buf = buf  # (from_buffer keeps it alive too; this names it)
        if args or kw:
            init = cls(*args, **kw)  # (held: memmove must not read a freed temporary)
            ctypes.memmove(ctypes.addressof(obj), ctypes.addressof(init), ctypes.sizeof(cls))
        return obj

    def to_dict(self):
        out = {}
        for name, _ in self._fields_:
            if name.startswith("_"):
                continue
            v = getattr(self, name)
            out[name] = v.to_dict() if isinstance(v, Struct) else v
        return out


class BackendConfig(Struct):
    _fields_ = [("type", c_int), ("device", c_int), ("flags", c_uint32), ("page_size", c_uint64)]


class BackendStats(Struct):
    _fields_ = [("calls", c_uint64 * OP_COUNT), ("errors", c_uint64 * OP_COUNT),
                ("time_ns", c_uint64 * OP_COUNT), ("pages_live", c_uint64),
                ("va_reserved_bytes", c_uint64)]

    def to_dict(self):
        d = {k: dict(zip(OP_NAMES, getattr(self, k))) for k in ("calls", "errors", "time_ns")}
        d["pages_live"] = self.pages_live
        d["va_reserved_bytes"] = self.va_reserved_bytes
        return d


class Shape(Struct):
    _fields_ = [("num_layers", c_uint32), ("num_kv_heads", c_uint32), ("head_dim", c_uint32),
                ("elem_size", c_uint32)]


PRESSURE_FN = ctypes.CFUNCTYPE(None, c_void_p, c_uint64)


class CacheConfig(Struct):
    _fields_ = [("shape", Shape), ("layout", c_int), ("max_seqs", c_uint32),
                ("max_tokens", c_uint32), ("budget_bytes", c_uint64), ("reserve_bytes", c_uint64),
                ("map_ahead_tokens", c_uint32), ("flags", c_uint32), ("pressure", PRESSURE_FN),
                ("pressure_arg", c_void_p), ("low_water_bytes", c_uint64)]


class CacheInfo(Struct):
    _fields_ = [("shape", Shape), ("layout", c_int), ("max_seqs", c_uint32),
                ("max_tokens", c_uint32), ("page_size", c_uint64), ("tokens_per_block", c_uint32),
                ("pages_per_block", c_uint32), ("block_bytes", c_uint64), ("token_bytes", c_uint64),
                ("va_bytes", c_uint64), ("blocks_per_seq", c_uint32), ("__pad", c_uint32)]


class StepEntry(Struct):
    _fields_ = [("seq", c_uint32), ("len", c_uint32)]


class View(Struct):
    _fields_ = [("base", c_uint64), ("seq_stride", c_uint64), ("page_stride", c_uint64),
                ("token_stride", c_uint64), ("head_stride", c_uint64),
                ("tokens_per_page", c_uint32), ("layout", c_uint32), ("num_heads", c_uint32),
                ("head_dim", c_uint32), ("elem_size", c_uint32), ("max_seqs", c_uint32),
                ("max_tokens", c_uint32), ("__pad", c_uint32)]


CACHE_STATS_FIELDS = (
    "budget_bytes", "pages_created", "pages_free", "pages_mapped", "pages_deferred",
    "pages_shared", "pages_peak", "seqs_active", "tokens_used", "bytes_used", "bytes_mapped",
    "step_calls", "mapper_waits", "mapper_wait_ns", "mapper_pages_mapped",
    "critical_path_driver_calls", "alloc_failures", "mapper_driver_calls", "pages_reused",
    "steals_idle", "steals_ahead", "pages_destroyed", "reclaim_calls", "pressure_calls")


class CacheStats(Struct):
    _fields_ = [(n, c_uint64) for n in CACHE_STATS_FIELDS] + [("backend", BackendStats)]


class SeqStats(Struct):
    _fields_ = [("len", c_uint32), ("mapped_tokens", c_uint32), ("shared_tokens", c_uint32),
                ("blocks_mapped", c_uint32), ("bytes_used", c_uint64), ("bytes_mapped", c_uint64)]


class PrefixConfig(Struct):
    _fields_ = [("policy", c_int), ("attach", c_int), ("admit_hits", c_uint32),
                ("flags", c_uint32), ("max_bytes", c_uint64), ("hint_ttl_ns", c_uint64),
                ("clock", c_void_p), ("clock_arg", c_void_p), ("cost_map_ns", c_uint64),
                ("cost_unmap_ns", c_uint64), ("cost_copy_ns", c_uint64)]


class Ns(Struct):
    _fields_ = [("model_id", c_uint64), ("adapter_id", c_uint64), ("tenant_salt", c_uint64)]


class PrefixStats(Struct):
    _fields_ = [("lookups", c_uint64), ("lookup_tokens", c_uint64), ("hit_tokens", c_uint64),
                ("inserts", c_uint64), ("inserted_tokens", c_uint64), ("nodes", c_uint64),
                ("blocks_cached", c_uint64), ("blocks_pinned", c_uint64),
                ("blocks_shared", c_uint64), ("sharing_refs", c_uint64),
                ("evictions", c_uint64 * len(EVICT_REASONS)), ("attach_alias", c_uint64),
                ("attach_copy", c_uint64), ("admission_rejects", c_uint64),
                ("cap_rejects", c_uint64), ("hints", c_uint64), ("blocks_hinted", c_uint64),
                ("namespaces", c_uint64), ("attach_auto", c_uint64), ("cost_map_ns", c_uint64),
                ("cost_unmap_ns", c_uint64), ("cost_copy_ns", c_uint64)]

    def to_dict(self):
        d = super().to_dict()
        d["evictions"] = dict(zip(EVICT_REASONS, self.evictions))
        return d


class AttnParams(Struct):
    _fields_ = [("batch", c_uint32), ("num_q_heads", c_uint32), ("head_dim", c_uint32),
                ("dtype", c_uint32), ("max_len", c_uint32), ("num_splits", c_uint32),
                ("scale", c_float), ("flags", c_uint32), ("q", c_uint64), ("q_stride", c_uint64),
                ("out", c_uint64), ("out_stride", c_uint64), ("seq_lens", c_uint64),
                ("seq_ids", c_uint64)]


class PagedKV(Struct):
    _fields_ = [("k_pool", c_uint64), ("v_pool", c_uint64), ("block_table", c_uint64),
                ("num_blocks", c_uint32), ("block_size", c_uint32), ("num_kv_heads", c_uint32),
                ("table_stride", c_uint32)]


class PackRun(Struct):
    _fields_ = [("addr", c_uint64), ("bytes", c_uint64)]


class PackParams(Struct):
    _fields_ = [("runs", POINTER(PackRun)), ("nruns", c_uint32), ("quant", c_uint32),
                ("dtype", c_uint32), ("row_elems", c_uint32), ("staging", c_uint64),
                ("staging_bytes", c_uint64)]


class KmodInfo(Struct):
    _fields_ = [("api_version", c_uint32), ("nr_node_ids", c_uint32), ("features", c_uint64),
                ("ioctls", c_uint64), ("page_sizes", c_uint64)]


class HostpoolConfig(Struct):
    _fields_ = [("name", c_char_p), ("bytes", c_uint64), ("node", c_int),
                ("page_size", c_uint32), ("flags", c_uint32), ("mode", c_uint32),
                ("pci_dev", c_uint32), ("__pad", c_uint32)]


class HostpoolRange(Struct):
    _fields_ = [("first", c_uint64), ("count", c_uint64)]


class HostpoolStat(Struct):
    _fields_ = [("bytes", c_uint64), ("page_size", c_uint64), ("pages", c_uint64),
                ("pages_present", c_uint64), ("pages_state", c_uint64 * len(PAGE_STATES)),
                ("pages_reclaimed", c_uint64), ("residency", c_uint64 * len(HOSTPOOL_TIERS)),
                ("node", c_int), ("attached", c_uint32), ("uid", c_uint32), ("mode", c_uint32),
                ("fallback", c_uint32), ("__pad", c_uint32)]

    def to_dict(self):
        d = super().to_dict()
        d["pages_state"] = dict(zip(PAGE_STATES, self.pages_state))
        d["residency"] = dict(zip(HOSTPOOL_TIERS, self.residency))
        d["fallback"] = bool(self.fallback)
        return d


LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_char_p)


class TiersConfig(Struct):
    _fields_ = [("host_bytes", c_uint64), ("host_placement", c_int), ("host_node", c_int32),
                ("host_threads", c_uint32), ("host_policy", c_int), ("disk_dir", c_char_p),
                ("disk_bytes", c_uint64), ("disk_queue_depth", c_uint32),
                ("disk_policy", c_int), ("disk_admit_hits", c_uint32), ("encoding", c_int),
                ("flags", c_uint32), ("log", LOG_FN), ("log_arg", c_void_p),
                ("kv_dtype", c_uint32), ("__pad", c_uint32), ("host_pool_name", c_char_p)]


class TiersStats(Struct):
    _fields_ = [("blocks", c_uint64 * len(RESIDENCY)), ("host_bytes", c_uint64),
                ("host_slot_bytes", c_uint64), ("host_slots", c_uint64),
                ("host_slots_free", c_uint64), ("host_node", c_int32), ("host_pinned", c_uint32),
                ("host_create_ns", c_uint64), ("disk_capacity_bytes", c_uint64),
                ("disk_used_bytes", c_uint64), ("disk_direct", c_uint32),
                ("disk_scan_found", c_uint32), ("disk_scan_ns", c_uint64),
                ("spills_host", c_uint64), ("spill_host_bytes", c_uint64),
                ("spills_disk", c_uint64), ("spill_disk_bytes", c_uint64),
                ("restores_host", c_uint64), ("restores_disk", c_uint64),
                ("restore_bytes", c_uint64), ("prefetches", c_uint64),
                ("prefetch_blocks", c_uint64), ("spill_skipped", c_uint64),
                ("host_evictions", c_uint64), ("host_drops_unwritten", c_uint64),
                ("disk_admit_rejects", c_uint64), ("disk_evictions", c_uint64),
                ("verify_failures", c_uint64), ("io_errors", c_uint64),
                ("restore_failures", c_uint64), ("host_reclaimed", c_uint64),
                ("encoding", c_uint32), ("quant_on_device", c_uint32),
                ("host_source", ctypes.c_char * 96), ("host_scan_found", c_uint64),
                ("host_scan_ns", c_uint64), ("bookkeeping_only", c_uint32),
                ("__pad2", c_uint32)]

    def to_dict(self):
        d = super().to_dict()
        d["blocks"] = dict(zip(RESIDENCY, self.blocks))
        d["host_source"] = self.host_source.decode(errors="replace")
        d["encoding"] = {SPILL_RAW: "raw", SPILL_FP8: "fp8",
                         SPILL_INT8: "int8"}.get(self.encoding, self.encoding)
        for k in ("host_pinned", "disk_direct", "quant_on_device", "bookkeeping_only"):
            d[k] = bool(d[k])
        return d


# Every struct the binding mirrors, by its C name (for the ABI test).
STRUCTS = {
    "kvmm_backend_config": BackendConfig, "kvmm_backend_stats": BackendStats,
    "kvmm_shape": Shape, "kvmm_cache_config": CacheConfig, "kvmm_cache_info": CacheInfo,
    "kvmm_step_entry": StepEntry, "kvmm_view": View, "kvmm_cache_stats": CacheStats,
    "kvmm_seq_stats": SeqStats, "kvmm_prefix_config": PrefixConfig, "kvmm_ns": Ns,
    "kvmm_prefix_stats": PrefixStats, "kvmm_attn_params": AttnParams,
    "kvmm_paged_kv": PagedKV, "kvmm_pack_run": PackRun, "kvmm_pack_params": PackParams,
    "kvmm_kmod_info": KmodInfo, "kvmm_hostpool_config": HostpoolConfig,
    "kvmm_hostpool_range": HostpoolRange, "kvmm_hostpool_stat": HostpoolStat,
    "kvmm_tiers_config": TiersConfig, "kvmm_tiers_stats": TiersStats,
}

_p = c_void_p  # opaque object pointers
_u32p = POINTER(c_uint32)
PROTOTYPES = {
    "kvmm_version": (c_int, []),
    "kvmm_strerror": (c_char_p, [c_int]),
    "kvmm_backend_open": (c_int, [POINTER(BackendConfig), POINTER(_p)]),
    "kvmm_backend_close": (None, [_p]),
    "kvmm_backend_name": (c_char_p, [_p]),
    "kvmm_backend_get_type": (c_int, [_p]),
    "kvmm_backend_page_size": (c_uint64, [_p]),
    "kvmm_backend_stats": (c_int, [_p, POINTER(BackendStats)]),
    "kvmm_backend_last_error": (c_char_p, [_p]),
    "kvmm_memcpy_to_dev": (c_int, [_p, c_uint64, c_void_p, c_size_t]),
    "kvmm_memcpy_to_host": (c_int, [_p, c_void_p, c_uint64, c_size_t]),
    "kvmm_memcpy_dev": (c_int, [_p, c_uint64, c_uint64, c_size_t]),
    "kvmm_memset_dev": (c_int, [_p, c_uint64, c_int, c_size_t]),
    "kvmm_cache_create": (c_int, [_p, POINTER(CacheConfig), POINTER(_p)]),
    "kvmm_cache_destroy": (None, [_p]),
    "kvmm_cache_get_info": (c_int, [_p, POINTER(CacheInfo)]),
    "kvmm_layout_name": (c_char_p, [c_int]),
    "kvmm_seq_open": (c_int, [_p, c_uint32, _u32p]),
    "kvmm_seq_close": (c_int, [_p, c_uint32]),
    "kvmm_seq_reserve": (c_int, [_p, c_uint32, c_uint32]),
    "kvmm_seq_len": (c_int64, [_p, c_uint32]),
    "kvmm_step": (c_int, [_p, POINTER(StepEntry), c_uint32]),
    "kvmm_cache_view": (c_int, [_p, c_uint32, c_int, POINTER(View)]),
    "kvmm_view_page_table": (c_int, [POINTER(View), POINTER(c_int32), c_size_t]),
    "kvmm_seq_write": (c_int, [_p, c_uint32, c_uint32, c_int, c_uint32, c_uint32, c_void_p]),
    "kvmm_seq_read": (c_int, [_p, c_uint32, c_uint32, c_int, c_uint32, c_uint32, c_void_p]),
    "kvmm_cache_set_budget": (c_int, [_p, c_uint64, POINTER(c_uint64)]),
    "kvmm_cache_stats": (c_int, [_p, POINTER(CacheStats)]),
    "kvmm_cache_stats_json": (c_int, [_p, c_char_p, c_size_t]),
    "kvmm_seq_stats": (c_int, [_p, c_uint32, POINTER(SeqStats)]),
    "kvmm_prefix_enable": (c_int, [_p, POINTER(PrefixConfig)]),
    "kvmm_prefix_match": (c_int, [_p, POINTER(Ns), _u32p, c_uint32, POINTER(_p), _u32p]),
    "kvmm_seq_attach_prefix": (c_int, [_p, c_uint32, _p, c_int]),
    "kvmm_prefix_insert": (c_int, [_p, c_uint32, POINTER(Ns), _u32p, c_uint32]),
    "kvmm_prefix_release": (None, [_p, _p]),
    "kvmm_prefix_hint": (c_int, [_p, POINTER(Ns), _u32p, c_uint32, c_uint64]),
    "kvmm_prefix_evict": (c_int, [_p, c_uint32]),
    "kvmm_prefix_stats": (c_int, [_p, POINTER(PrefixStats)]),
    "kvmm_tiers_enable": (c_int, [_p, POINTER(TiersConfig)]),
    "kvmm_prefix_prefetch": (c_int, [_p, POINTER(Ns), _u32p, c_uint32, c_uint32, POINTER(_p),
                                     _u32p]),
    "kvmm_prefetch_wait": (c_int64, [_p, _p, c_uint32, c_uint64]),
    "kvmm_prefetch_release": (None, [_p, _p]),
    "kvmm_seq_attach_prefetch": (c_int, [_p, c_uint32, _p]),
    "kvmm_prefetch_wait_layer": (c_int, [_p, _p, c_uint32]),
    "kvmm_prefetch_layer_event": (c_int, [_p, _p, c_uint32, POINTER(c_uint64)]),
    "kvmm_tiers_flush": (c_int, [_p]),
    "kvmm_tiers_stats": (c_int, [_p, POINTER(TiersStats)]),
    "kvmm_tiers_stats_json": (c_int, [_p, c_char_p, c_size_t]),
    "kvmm_probe": (c_int, [c_char_p, POINTER(KmodInfo)]),
    "kvmm_hostpool_create": (c_int, [POINTER(HostpoolConfig), POINTER(_p)]),
    "kvmm_hostpool_open": (c_int, [c_char_p, c_uint32, POINTER(_p)]),
    "kvmm_hostpool_destroy": (c_int, [c_char_p]),
    "kvmm_hostpool_close": (None, [_p]),
    "kvmm_hostpool_base": (c_void_p, [_p]),
    "kvmm_hostpool_page_size": (c_uint64, [_p]),
    "kvmm_hostpool_pages": (c_uint64, [_p]),
    "kvmm_hostpool_fd": (c_int, [_p]),
    "kvmm_hostpool_set_state": (c_int64, [_p, c_uint64, c_uint64, c_int]),
    "kvmm_hostpool_set_states": (c_int64, [_p, POINTER(HostpoolRange), c_uint32, c_int]),
    "kvmm_hostpool_populate": (c_int, [_p, c_uint64, c_uint64]),
    "kvmm_hostpool_page_gen": (c_uint32, [_p, c_uint64]),
    "kvmm_hostpool_drop_seq": (c_uint64, [_p]),
    "kvmm_hostpool_eventfd": (c_int, [_p]),
    "kvmm_hostpool_set_residency": (c_int, [_p, POINTER(c_uint64)]),
    "kvmm_hostpool_stat": (c_int, [_p, POINTER(HostpoolStat)]),
    "kvmm_kernels_open": (c_int, [_p, POINTER(_p)]),
    "kvmm_kernels_close": (None, [_p]),
    "kvmm_kernels_last_error": (c_char_p, [_p]),
    "kvmm_attn_decode": (c_int, [_p, POINTER(View), POINTER(View), POINTER(AttnParams),
                                 c_uint64]),
    "kvmm_attn_decode_paged": (c_int, [_p, POINTER(PagedKV), POINTER(AttnParams), c_uint64]),
    "kvmm_pack_size": (c_int64, [POINTER(PackParams)]),
    "kvmm_pack": (c_int, [_p, POINTER(PackParams), c_uint64]),
    "kvmm_unpack": (c_int, [_p, POINTER(PackParams), c_uint64]),
}

class _Lib:
    """The loaded library with prototypes set; functions resolve on first use."""

    def __getattr__(self, name):
        try:
            restype, argtypes = PROTOTYPES[name]
        except KeyError:
            raise AttributeError(f"kvmm binding has no prototype for {name}") from None
        lib = _loader.load()
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise Unavailable(name, _loader.path()) from None
        fn.restype = restype
        fn.argtypes = argtypes
        setattr(self, name, fn)
        return fn

    def has(self, name):
        """Whether the loaded library exports name (bound here or not)."""
        return hasattr(_loader.load(), name)


lib = _Lib()
