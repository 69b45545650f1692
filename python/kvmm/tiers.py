# SPDX-License-Identifier: MIT
"""Tiers under the prefix cache: enable, prefetches (restores), flush, stats.

Evicted prefix blocks spill to a pinned host pool and on to disk; a
prefetch brings a prefix back into the prefix cache (docs/tiers.md).
"""
import ctypes
import os

from . import _capi
from ._capi import lib
from ._owner import Closing
from ._util import U64_MAX, tokens_array, u32, u64
from .errors import check

POLICIES = {"write-back": _capi.WRITE_BACK, "write-through": _capi.WRITE_THROUGH}
ENCODINGS = {"raw": _capi.SPILL_RAW, "fp8": _capi.SPILL_FP8, "int8": _capi.SPILL_INT8}
HOST_PAGES = {None: 0, "thp": _capi.TIERS_HOST_THP, "4k": _capi.TIERS_HOST_NO_THP,
              "hugetlb": _capi.TIERS_HOST_HUGETLB}
_KV_DTYPES = {"float16": _capi.DTYPE_FP16, "bfloat16": _capi.DTYPE_BF16}


def _choice(table, name, v):
    if v not in table:
        raise ValueError(f"{name}: {v!r} is not one of {', '.join(map(str, table))}")
    return table[v]


def _placement(cfg, host_node):
    if host_node is None:
        cfg.host_placement = _capi.HOST_GPU_NODE
    elif host_node == "any":
        cfg.host_placement = _capi.HOST_ANY_NODE
    elif isinstance(host_node, int) and not isinstance(host_node, bool) and \
            0 <= host_node < 1 << 31:
        cfg.host_placement = _capi.HOST_NODE
        cfg.host_node = host_node
    else:
        raise ValueError(f"host_node: expected None (the GPU's node), 'any' or a node number "
                         f">= 0, got {host_node!r}")


def enable(cache, host_bytes, *, host_node=None, host_threads=0, host_policy="write-back",
           host_pages=None, kmod=True, verify_host=True, host_pool_name=None, disk_dir=None,
           disk_bytes=0, disk_queue_depth=0, disk_policy="write-back", disk_admit_hits=0,
           disk_buffered=False, disk_discard=False, disk_scan_headers=False, encoding="raw",
           log=None):
    cfg = _capi.TiersConfig.new()
    cfg.host_bytes = u64("host_bytes", host_bytes)
    _placement(cfg, host_node)
    cfg.host_threads = u32("host_threads", host_threads)
    cfg.host_policy = _choice(POLICIES, "host_policy", host_policy)
    cfg.disk_bytes = u64("disk_bytes", disk_bytes)
    cfg.disk_queue_depth = u32("disk_queue_depth", disk_queue_depth)
    cfg.disk_policy = _choice(POLICIES, "disk_policy", disk_policy)
    cfg.disk_admit_hits = u32("disk_admit_hits", disk_admit_hits)
    cfg.encoding = _choice(ENCODINGS, "encoding", encoding)
    if cfg.encoding != _capi.SPILL_RAW:
        # libkvmm sees only the element size; the binding knows the type
        cfg.kv_dtype = _KV_DTYPES.get(cache.dtype, 0)
        if not cfg.kv_dtype:
            raise ValueError(f"encoding: {encoding!r} needs a float16 or bfloat16 cache, "
                             f"not {cache.dtype}")
    flags = _choice(HOST_PAGES, "host_pages", host_pages)
    for on, flag in ((not kmod, _capi.TIERS_NO_KMOD), (not verify_host, _capi.TIERS_NO_VERIFY_HOST),
                     (disk_buffered, _capi.TIERS_DISK_BUFFERED),
                     (disk_discard, _capi.TIERS_DISK_DISCARD),
                     (disk_scan_headers, _capi.TIERS_DISK_SCAN_HEADERS)):
        if on:
            flags |= flag
    cfg.flags = flags
    # libkvmm copies both strings; these keep them alive for the call
    ddir = os.fsencode(disk_dir) if disk_dir is not None else None
    pname = os.fsencode(host_pool_name) if host_pool_name is not None else None
    cfg.disk_dir = ddir
    cfg.host_pool_name = pname
    thunk = None
    if log is not None:
        if not callable(log):
            raise TypeError("log: expected a callable(message)")

        def _log(_arg, msg, fn=log):
            fn(msg.decode(errors="replace"))
        thunk = _capi.LOG_FN(_log)
        cfg.log = thunk
    check(lib.kvmm_tiers_enable(cache.handle, ctypes.byref(cfg)), "kvmm_tiers_enable")
    # libkvmm logs for the cache's lifetime (its mover thread too): keep the thunk as long
    cache._tiers_log = thunk


def stats(cache):
    st = _capi.TiersStats.new()
    check(lib.kvmm_tiers_stats(cache.handle, ctypes.byref(st)), "kvmm_tiers_stats")
    return st.to_dict()


def timeout_ns(timeout):
    """Seconds (None: no limit) -> the C API's nanoseconds (UINT64_MAX: no limit)."""
    if timeout is None:
        return U64_MAX
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
        raise ValueError(f"timeout: expected seconds >= 0 or None, got {timeout!r}")
    return min(int(timeout * 1e9), U64_MAX - 1)


class Prefetch(Closing):
    """A restore of a prefix from the host pool or disk (kvmm_prefix_prefetch).

    ``found`` is the number of tokens the prefix cache will hold once the
    prefetch completes (what it held already included).  While the
    prefetch is held the prefix stays pinned; release() (or ``with``, or
    garbage collection, or closing the cache) lets it go, waiting for copies
    in flight.  When nothing needed restoring there is no C handle: wait()
    returns ``found`` at once.
    """

    def __init__(self, cache, handle, found, layerwise):
        self.cache = cache
        self._h = handle
        self.found = found
        self.layerwise = layerwise
        self.active = bool(handle)  # something was restored (has a C handle)
        if handle:
            cache._prefetches[handle] = True

    def _handle(self):
        if not self._h:
            raise ValueError("prefetch is released" if self.active else
                             "prefetch restored nothing (no handle)")
        return self._h

    def wait(self, tokens=None, timeout=None):
        """Wait until the first tokens (default: all found) are back in the
        prefix cache, the prefetch stopped (a miss, a failed read or
        checksum) or timeout seconds passed (None: no limit, 0: poll).
        Returns the tokens in the prefix cache now: fewer than asked means
        it stopped or timed out."""
        tokens = self.found if tokens is None else u32("tokens", tokens)
        tns = timeout_ns(timeout)
        if not self.active:
            return self.found
        c = self.cache
        return check(lib.kvmm_prefetch_wait(c.handle, self._handle(), tokens, tns),
                     "kvmm_prefetch_wait")

    def wait_layer(self, layer):
        """Layer-wise: wait until layer's copies are on the device (raises
        EIO if a copy failed: the attached sequence must then be closed)."""
        c = self.cache
        check(lib.kvmm_prefetch_wait_layer(c.handle, self._handle(), u32("layer", layer)),
              "kvmm_prefetch_wait_layer", f"layer {layer} of {c.num_layers}")

    def layer_event(self, layer):
        """Layer-wise, CUDA: the CUevent (an int) recorded after layer's
        copies, for a stream to wait on (cuStreamWaitEvent); 0 once
        complete and on other backends.  Valid until release()."""
        c = self.cache
        ev = ctypes.c_uint64()
        check(lib.kvmm_prefetch_layer_event(c.handle, self._handle(), u32("layer", layer),
                                            ctypes.byref(ev)),
              "kvmm_prefetch_layer_event", f"layer {layer} of {c.num_layers}")
        return ev.value

    def release(self):
        h, self._h = self._h, None
        c = self.cache
        # the cache releases what is still held before it is destroyed
        if h and c._prefetches.pop(h, None) and c._h:
            lib.kvmm_prefetch_release(c._h, h)

    close = release

    def __repr__(self):
        state = "" if self._h else " (released)" if self.active else " (nothing to restore)"
        kind = " layer-wise" if self.layerwise else ""
        return f"<kvmm.Prefetch{kind} {self.found} tokens{state}>"


def prefetch(cache, tokens, ns, layerwise):
    from .prefix import _ns
    t = tokens_array(tokens)
    h = ctypes.c_void_p()
    found = ctypes.c_uint32()
    nsc = _ns(ns)
    flags = _capi.PREFETCH_LAYERWISE if layerwise else 0
    check(lib.kvmm_prefix_prefetch(cache.handle, ctypes.byref(nsc), t, len(t), flags,
                                   ctypes.byref(h), ctypes.byref(found)), "kvmm_prefix_prefetch")
    return Prefetch(cache, h.value, found.value, bool(layerwise))


def attach(seq, pf):
    c = seq.cache
    if not isinstance(pf, Prefetch) or pf.cache is not c:
        raise ValueError("prefetch: expected a Prefetch of this sequence's cache")
    detail = None if pf.layerwise else ("the prefetch is not layer-wise: attach a "
                                        "prefix_match() once it is waited for")
    return check(lib.kvmm_seq_attach_prefetch(c.handle, seq.slot, pf._handle()),
                 "kvmm_seq_attach_prefetch", detail)


def release_all(cache, h):
    """Release every prefetch still held (the cache is about to be destroyed)."""
    for p in list(cache._prefetches):
        if cache._prefetches.pop(p, None):
            lib.kvmm_prefetch_release(h, p)

