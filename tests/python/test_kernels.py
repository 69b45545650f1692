#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The kernels' binding without a GPU: the host backend refuses them
(ENOTSUP), argument checking happens before any call, and kvmm_pack_size
computes staging sizes.  (tests/gpu/test_py_kernels.py runs them.)"""
import errno

from kvtest import cache
from tap import run, skip

import kvmm


def need_kernels():
    if not kvmm.has("kvmm_kernels_open"):
        skip("libkvmm has no kernels API yet")


def test_host_backend_has_no_kernels():
    need_kernels()
    from kvmm.kernels import Kernels
    with kvmm.Backend("host") as be:
        try:
            Kernels(be)
        except kvmm.KvmmError as e:
            assert e.errno == errno.ENOTSUP, e
        else:
            raise AssertionError("kernels opened on the host backend")
        assert be._pins == 0  # the failed open let go of the backend


def test_pack_size():
    need_kernels()
    from kvmm.kernels import pack_size
    # unquantized: the runs' bytes, each run's start rounded up to 16
    assert pack_size([(0x1000, 64), (0x2000, 32)]) == 96
    # int8: one byte an element (2-byte elements in) plus one fp32 scale a row
    q = pack_size([(0x1000, 2 * 128 * 4)], quant="int8", dtype="bfloat16", row_elems=128)
    assert q >= 128 * 4 + 4 * 4, q
    for bad in ([(0x1000, 15)], [(0x1001, 16)]):
        try:
            pack_size(bad)
        except kvmm.KvmmError as e:
            assert e.errno == errno.EINVAL
        else:
            raise AssertionError(f"{bad} accepted")
    try:
        pack_size([(0, 16)], quant="int4")
    except ValueError as e:
        assert "quant" in str(e)


def test_attn_decode_checks_dtype_first():
    need_kernels()
    from kvmm import kernels
    with kvmm.Backend("host") as be, cache(be, dtype="float32") as c:
        k = kernels.Kernels.__new__(kernels.Kernels)  # no device: only the checks run
        k._owner_init()
        k._h = None
        try:
            k.attn_decode(c.view(0, "k"), c.view(0, "v"), q=0, out=0, seq_lens=0, batch=1,
                          num_q_heads=2, max_len=1)
        except ValueError as e:
            assert "float16 or bfloat16" in str(e)
        else:
            raise AssertionError("float32 KV accepted")


if __name__ == "__main__":
    run(globals())
