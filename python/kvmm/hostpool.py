# SPDX-License-Identifier: MIT
"""Host page pools (kvmm.h, "Host page pools"): pinned-host tier memory from
kvmm.ko (named, shared between processes, reclaimable, visible in sysfs and
kvmmctl) or, with fallback=True where the module is absent, ordinary
NUMA-bound shared memory with the same calls."""
import ctypes

from . import _capi, dlpack
from ._capi import lib
from ._owner import Owner
from ._util import u32, u64
from .errors import check

STATES = {name: i for i, name in enumerate(_capi.PAGE_STATES)}


def probe(path=None):
    """Is kvmm.ko there and speaking this library's ABI (kvmm_probe)?  Returns
    its info as a dict; KvmmError ENODEV (no /dev/kvmm), EACCES, EPROTO."""
    info = _capi.KmodInfo.new()
    check(lib.kvmm_probe(None if path is None else str(path).encode(), ctypes.byref(info)),
          "kvmm_probe", path)
    return info.to_dict()


def destroy(name):
    """Remove a pool's name; its memory goes with its last user."""
    check(lib.kvmm_hostpool_destroy(_name(name)), "kvmm_hostpool_destroy", name)


def _name(name):
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a pool name, got {name!r}")
    return name.encode()


def _state(state):
    if state not in STATES:
        raise ValueError(f"state: {state!r} is not one of {', '.join(STATES)}")
    return STATES[state]


class HostPool(Owner):
    """A mapped host page pool.  HostPool.create(...) or HostPool.open(name);
    close() (or ``with``, or garbage collection) unmaps it, once no tensor
    exported from it is left.  Thread-safety is the C API's."""

    _kind, _destroy = "host pool", "kvmm_hostpool_close"

    def __init__(self, handle, name):
        self._owner_init()
        self._h = handle
        self.name = name
        self.base = lib.kvmm_hostpool_base(handle)
        self.page_size = lib.kvmm_hostpool_page_size(handle)
        self.pages = lib.kvmm_hostpool_pages(handle)
        self.nbytes = self.page_size * self.pages

    @classmethod
    def create(cls, name, nbytes, *, node=None, page_size=0, persistent=False,
               populate=False, pci_dev=None, fallback=False, force_fallback=False, mode=0):
        """kvmm_hostpool_create.  name: 1-63 of [A-Za-z0-9._-] (a fallback
        pool is not registered under it).  node: NUMA node (None: any).  pci_dev:
        place the pool on the node of this PCI device (domain << 16 | bus << 8
        | devfn).  fallback: ordinary memory when the module is absent;
        force_fallback: even when it is there."""
        cfg = _capi.HostpoolConfig.new()
        cfg.name = _name(name)
        cfg.bytes = u64("nbytes", nbytes)
        if node is not None and not 0 <= node < 1 << 16:
            raise ValueError(f"node: expected a NUMA node number, got {node}")
        cfg.node = _capi.HOSTPOOL_NODE_ANY if node is None else node
        cfg.page_size = u32("page_size", page_size)
        cfg.mode = u32("mode", mode)
        flags = ((_capi.HOSTPOOL_CFG_PERSISTENT if persistent else 0)
                 | (_capi.HOSTPOOL_CFG_POPULATE if populate else 0)
                 | (_capi.HOSTPOOL_CFG_FALLBACK if fallback or force_fallback else 0)
                 | (_capi.HOSTPOOL_CFG_FORCE_FALLBACK if force_fallback else 0))
        if pci_dev is not None:
            cfg.pci_dev = u32("pci_dev", pci_dev)
            flags |= _capi.HOSTPOOL_CFG_GPU_NODE
        cfg.flags = flags
        h = ctypes.c_void_p()
        check(lib.kvmm_hostpool_create(ctypes.byref(cfg), ctypes.byref(h)),
              "kvmm_hostpool_create", name)
        return cls(h.value, name)

    @classmethod
    def open(cls, name, read_only=False):
        """Open an existing module pool by name (kvmm_hostpool_open)."""
        h = ctypes.c_void_p()
        check(lib.kvmm_hostpool_open(_name(name), _capi.HOSTPOOL_READ_ONLY if read_only else 0,
                                     ctypes.byref(h)), "kvmm_hostpool_open", name)
        return cls(h.value, name)

    @property
    def fd(self):
        """The pool's fd (-1 for a fallback pool)."""
        return lib.kvmm_hostpool_fd(self.handle)

    def _range(self, first, count):
        first, count = u64("first", first), u64("count", count)
        if first + count > self.pages:
            raise ValueError(f"pages [{first}, {first + count}) past the pool's {self.pages}")
        return first, count

    def set_state(self, first, count, state):
        """Make pages [first, first + count) "hot", "cold" (the kernel may
        drop them) or "free"; returns how many changed state."""
        first, count = self._range(first, count)
        return check(lib.kvmm_hostpool_set_state(self.handle, first, count, _state(state)),
                     "kvmm_hostpool_set_state")

    def set_states(self, ranges, state):
        """set_state over [(first, count), ...] at once (all or nothing)."""
        ranges = [self._range(f, c) for f, c in ranges]
        arr = (_capi.HostpoolRange * max(1, len(ranges)))(*ranges)
        return check(lib.kvmm_hostpool_set_states(self.handle, arr, len(ranges), _state(state)),
                     "kvmm_hostpool_set_states")

    def populate(self, first=0, count=None):
        """Give pages memory now (free ones become hot)."""
        first, count = self._range(first, self.pages - first if count is None else count)
        check(lib.kvmm_hostpool_populate(self.handle, first, count), "kvmm_hostpool_populate")

    def page_gen(self, page):
        """The page's generation: it changes when the kernel drops the page."""
        self._range(page, 1)
        return lib.kvmm_hostpool_page_gen(self.handle, page)

    @property
    def drop_seq(self):
        """Bumped after every drop in the pool."""
        return lib.kvmm_hostpool_drop_seq(self.handle)

    def eventfd(self):
        """An eventfd readable when pages are dropped (owned by the pool);
        KvmmError ENOTSUP for a fallback pool."""
        return check(lib.kvmm_hostpool_eventfd(self.handle), "kvmm_hostpool_eventfd")

    def set_residency(self, **pages):
        """Publish the owner's pages per tier: gpu=, host=, disk=, inflight=."""
        bad = set(pages) - set(_capi.HOSTPOOL_TIERS)
        if bad:
            raise ValueError(f"tiers: {', '.join(sorted(bad))} not in "
                             f"{', '.join(_capi.HOSTPOOL_TIERS)}")
        arr = (ctypes.c_uint64 * len(_capi.HOSTPOOL_TIERS))(
            *(u64(t, pages.get(t, 0)) for t in _capi.HOSTPOOL_TIERS))
        check(lib.kvmm_hostpool_set_residency(self.handle, arr), "kvmm_hostpool_set_residency")

    def stat(self):
        st = _capi.HostpoolStat.new()
        check(lib.kvmm_hostpool_stat(self.handle, ctypes.byref(st)), "kvmm_hostpool_stat")
        return st.to_dict()

    # -- the memory, zero-copy --
    def __dlpack_device__(self):
        return (dlpack.KDL_CPU, 0)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """The whole pool as a uint8 tensor [pages, page_size]."""
        versioned = dlpack.check_request((dlpack.KDL_CPU, 0), stream, max_version, dl_device,
                                         copy)
        self.handle  # (raises on a closed pool)
        return dlpack.export(self, self.base, (dlpack.KDL_CPU, 0), (1, 8, 1),
                             (self.pages, self.page_size), (self.page_size, 1), versioned)

    def numpy(self):
        """A writable numpy uint8 array [pages, page_size] over the pool."""
        import numpy
        return numpy.asarray(_PoolArray(self))

    def __repr__(self):
        if self._closing:
            return "<kvmm.HostPool closed>"
        return f"<kvmm.HostPool {self.name} {self.pages} x {self.page_size} bytes>"


class _PoolArray:
    """numpy's array interface over a pool; pins it while the array lives."""

    def __init__(self, pool):
        pool._pin("host pool")
        self._pool = pool
        self.__array_interface__ = {"version": 3, "shape": (pool.pages, pool.page_size),
                                    "typestr": "|u1", "data": (pool.base, False)}

    def __del__(self):
        try:
            self._pool._unpin()
        except Exception:
            pass
