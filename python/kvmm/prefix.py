# SPDX-License-Identifier: MIT
"""The prefix cache: namespaces, matches (pinned prefixes), attach, insert."""
import ctypes

from . import _capi
from ._capi import lib
from ._owner import Closing
from ._util import tokens_array, u32, u64
from .errors import check

POLICIES = {"lru": _capi.EVICT_LRU, "lfu": _capi.EVICT_LFU}
ATTACH = {"auto": _capi.ATTACH_AUTO, "alias": _capi.ATTACH_ALIAS, "copy": _capi.ATTACH_COPY}


class Namespace:
    """Where prefixes live: entries of different namespaces never match
    (model, adapter, tenant salt)."""

    __slots__ = ("model_id", "adapter_id", "tenant_salt")

    def __init__(self, model_id=0, adapter_id=0, tenant_salt=0):
        self.model_id = u64("model_id", model_id)
        self.adapter_id = u64("adapter_id", adapter_id)
        self.tenant_salt = u64("tenant_salt", tenant_salt)

    def _c(self):
        return _capi.Ns.new(self.model_id, self.adapter_id, self.tenant_salt)

    def __eq__(self, other):
        return isinstance(other, Namespace) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def _key(self):
        return (self.model_id, self.adapter_id, self.tenant_salt)

    def __repr__(self):
        return "Namespace(model_id={}, adapter_id={}, tenant_salt={})".format(*self._key())


def _ns(ns):
    if ns is None:
        ns = Namespace()
    elif not isinstance(ns, Namespace):
        raise TypeError(f"ns: expected a kvmm.Namespace, got {type(ns).__name__}")
    return ns._c()


def _mode(table, name, v):
    if v not in table:
        raise ValueError(f"{name}: {v!r} is not one of {', '.join(table)}")
    return table[v]


class PrefixMatch(Closing):
    """The longest cached prefix of a token list (kvmm_prefix_match).

    len(match) is the number of tokens matched; while the match is held its
    blocks are pinned (never evicted).  release() (or ``with``, or garbage
    collection) unpins them; attach it to sequences before that.
    """

    def __init__(self, cache, handle, tokens):
        self.cache = cache
        self._h = handle
        self.tokens = tokens

    def __len__(self):
        return self.tokens

    def __bool__(self):
        return self.tokens > 0

    def release(self):
        h, self._h = self._h, None
        c = self.cache
        if h and c._h:  # a destroyed cache took its handles with it
            lib.kvmm_prefix_release(c._h, h)

    close = release

    def __repr__(self):
        return f"<kvmm.PrefixMatch {self.tokens} tokens{'' if self._h else ' (released)'}>"


CLOCK_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)


def enable(cache, policy, attach, admit_hits, max_bytes, hint_ttl_ns, clock, costs=(0, 0, 0)):
    cfg = _capi.PrefixConfig.new(_mode(POLICIES, "policy", policy),
                                 _mode(ATTACH, "attach", attach), u32("admit_hits", admit_hits),
                                 0, u64("max_bytes", max_bytes))
    cfg.hint_ttl_ns = u64("hint_ttl_ns", hint_ttl_ns)
    for name, v in zip(("cost_map_ns", "cost_unmap_ns", "cost_copy_ns"), costs):
        setattr(cfg, name, u64(name, v))
    thunk = None
    if clock is not None:
        if not callable(clock):
            raise TypeError("clock: expected a callable returning nanoseconds")

        def _clock(_arg, fn=clock):
            return fn()
        thunk = CLOCK_FN(_clock)
        cfg.clock = ctypes.cast(thunk, ctypes.c_void_p)
    check(lib.kvmm_prefix_enable(cache.handle, ctypes.byref(cfg)), "kvmm_prefix_enable")
    # libkvmm calls the clock for the cache's lifetime: keep the thunk as long
    cache._prefix_clock = thunk


def match(cache, tokens, ns):
    t = tokens_array(tokens)
    h = ctypes.c_void_p()
    n = ctypes.c_uint32()
    nsc = _ns(ns)
    check(lib.kvmm_prefix_match(cache.handle, ctypes.byref(nsc), t, len(t), ctypes.byref(h),
                                ctypes.byref(n)), "kvmm_prefix_match")
    return PrefixMatch(cache, h.value, n.value)


def attach(seq, m, mode):
    c = seq.cache
    if not isinstance(m, PrefixMatch) or m.cache is not c:
        raise ValueError("match: expected a PrefixMatch of this sequence's cache")
    md = _mode(ATTACH, "mode", mode)
    if not m.tokens:
        return  # nothing matched: nothing to attach
    if not m._h:
        raise ValueError("match: already released")
    check(lib.kvmm_seq_attach_prefix(c.handle, seq.slot, m._h, md), "kvmm_seq_attach_prefix")


def insert(cache, seq, tokens, ns):
    t = tokens_array(tokens)
    nsc = _ns(ns)
    return check(lib.kvmm_prefix_insert(cache.handle, cache._slot_of(seq), ctypes.byref(nsc), t,
                                        len(t)), "kvmm_prefix_insert")


def hint(cache, tokens, ns, when_ns):
    t = tokens_array(tokens)
    nsc = _ns(ns)
    return check(lib.kvmm_prefix_hint(cache.handle, ctypes.byref(nsc), t, len(t),
                                      u64("when_ns", when_ns)), "kvmm_prefix_hint")
