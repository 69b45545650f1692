#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Host page pools through the binding.  Without kvmm.ko (this machine,
CI) the fallback pool runs for real: mapping, zero-copy numpy and DLPack
access, page states, residency and stats; module pools are refused with
ENODEV.  Where /dev/kvmm exists the module path runs too."""
import errno
import gc

import numpy as np
from tap import run, skip

import kvmm
from kvmm import dlpack

MiB = 1 << 20


def need_hostpool():
    if not kvmm.has("kvmm_hostpool_create"):
        skip("libkvmm has no host pools yet")


def module_present():
    try:
        kvmm.probe()
        return True
    except kvmm.KvmmError as e:
        assert e.errno in (errno.ENODEV, errno.EACCES, errno.EPROTO), e
        return False


def test_probe_and_module_pools():
    need_hostpool()
    if module_present():
        info = kvmm.probe()
        assert info["api_version"] >= 1 and info["nr_node_ids"] >= 1
        with kvmm.HostPool.create("pytest-pool", 8 * MiB) as p:
            assert p.fd >= 0 and not p.stat()["fallback"]
            with kvmm.HostPool.open("pytest-pool", read_only=True) as q:
                assert q.pages == p.pages
        kvmm.hostpool.destroy("pytest-pool")
        return
    try:
        kvmm.HostPool.create("pytest-pool", 8 * MiB)
    except kvmm.KvmmError as e:
        assert e.errno == errno.ENODEV and "pytest-pool" in str(e)
    else:
        raise AssertionError("a module pool without the module")


def test_fallback_pool_memory():
    need_hostpool()
    base = dlpack.live_exports()
    with kvmm.HostPool.create("pytest-fb", 8 * MiB, force_fallback=True, populate=True) as p:
        st = p.stat()
        assert st["fallback"] and p.fd == -1
        assert p.page_size == 2 * MiB and p.pages == 4 and p.nbytes == 8 * MiB
        assert st["pages_state"]["hot"] == 4 and st["pages_present"] == 4
        a = p.numpy()
        assert a.shape == (4, 2 * MiB) and a.flags.writeable
        a[1, :16] = np.arange(16, dtype=np.uint8)
        b = np.from_dlpack(p)  # the same bytes, through DLPack
        assert (b[1, :16] == np.arange(16)).all()
        assert dlpack.live_exports() == base + 1
        p.close()  # deferred: both arrays still point into it
        assert p._h is not None
        a[2, 0] = 7
        del a, b
        gc.collect()
        assert p._h is None and dlpack.live_exports() == base


def test_fallback_page_states_and_residency():
    need_hostpool()
    with kvmm.HostPool.create("pytest-fb", 8 * MiB, fallback=True, node=None) as p:
        assert p.set_state(0, 4, "hot") >= 0
        a = p.numpy()
        a[3, 100] = 42
        assert p.set_state(3, 1, "free") == 1
        assert a[3, 100] == 0  # a freed page's memory is gone
        assert p.set_states([(0, 1), (2, 1)], "cold") == 2
        st = p.stat()
        assert st["pages_state"] == {"free": 1, "hot": 1, "cold": 2}, st
        p.populate(3, 1)
        assert p.stat()["pages_state"]["hot"] == 2
        assert p.page_gen(0) == 0 and p.drop_seq == 0  # fallback pools never drop
        p.set_residency(gpu=10, host=4, disk=2)
        assert p.stat()["residency"] == {"gpu": 10, "host": 4, "disk": 2, "inflight": 0}
        try:
            p.eventfd()
        except kvmm.KvmmError as e:
            assert e.errno == errno.ENOTSUP
        for bad in (lambda: p.set_state(3, 2, "hot"), lambda: p.set_state(0, 1, "warm"),
                    lambda: p.set_residency(ssd=1), lambda: p.page_gen(4)):
            try:
                bad()
            except ValueError:
                pass
            else:
                raise AssertionError("bad argument accepted")
        del a


def test_bad_configs():
    need_hostpool()
    for kw, exc in (({"nbytes": 3 * MiB, "fallback": True}, kvmm.KvmmError),
                    ({"nbytes": 2 * MiB, "name": "x" * 64, "fallback": True}, kvmm.KvmmError),
                    ({"nbytes": 2 * MiB, "name": ""}, ValueError),
                    ({"nbytes": -1}, ValueError), ({"nbytes": 2 * MiB, "node": -5}, ValueError)):
        kw.setdefault("name", "pytest-bad")
        try:
            kvmm.HostPool.create(**kw).close()
        except exc:
            pass
        else:
            raise AssertionError(f"{kw} accepted")


if __name__ == "__main__":
    run(globals())
