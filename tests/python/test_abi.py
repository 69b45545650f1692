#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The binding's ctypes mirror against the real header: every struct's size
and field offsets and every constant, as a C compiler sees kvmm.h; and every
bound prototype's parameter count against its declaration."""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tap import run, skip

from kvmm import _capi

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "runtime" / "include" / "kvmm.h"
CONSTANTS = {
    "KVMM_BACKEND_AUTO": _capi.BACKEND_AUTO, "KVMM_BACKEND_HOST": _capi.BACKEND_HOST,
    "KVMM_BACKEND_CUDA": _capi.BACKEND_CUDA, "KVMM_BACKEND_NULL": _capi.BACKEND_NULL,
    "KVMM_BACKEND_HUGETLB": _capi.BACKEND_HUGETLB,
    "KVMM_LAYOUT_DEFAULT": _capi.LAYOUT_DEFAULT,
    "KVMM_LAYOUT_LAYER_MAJOR": _capi.LAYOUT_LAYER_MAJOR,
    "KVMM_LAYOUT_TOKEN_MAJOR": _capi.LAYOUT_TOKEN_MAJOR,
    "KVMM_LAYOUT_PAGE_MAJOR": _capi.LAYOUT_PAGE_MAJOR,
    "KVMM_K": _capi.K, "KVMM_V": _capi.V, "KVMM_CACHE_NO_MAPPER": _capi.CACHE_NO_MAPPER,
    "KVMM_OP__COUNT": _capi.OP_COUNT, "KVMM_OP_RESERVE": 0, "KVMM_OP_SYNC": _capi.OP_COUNT - 1,
    "KVMM_EVICT_LRU": _capi.EVICT_LRU, "KVMM_EVICT_LFU": _capi.EVICT_LFU,
    "KVMM_ATTACH_AUTO": _capi.ATTACH_AUTO, "KVMM_ATTACH_ALIAS": _capi.ATTACH_ALIAS,
    "KVMM_ATTACH_COPY": _capi.ATTACH_COPY, "KVMM_EVICT__COUNT": len(_capi.EVICT_REASONS),
    "KVMM_VERSION_MAJOR": 0,
    "KVMM_DTYPE_FP16": _capi.DTYPE_FP16, "KVMM_DTYPE_BF16": _capi.DTYPE_BF16,
    "KVMM_QUANT_NONE": _capi.QUANT_NONE, "KVMM_QUANT_INT8": _capi.QUANT_INT8,
    "KVMM_QUANT_FP8_E4M3": _capi.QUANT_FP8_E4M3,
    "KVMM_HOSTPOOL_NODE_ANY": _capi.HOSTPOOL_NODE_ANY,
    "KVMM_HOSTPOOL_CFG_PERSISTENT": _capi.HOSTPOOL_CFG_PERSISTENT,
    "KVMM_HOSTPOOL_CFG_POPULATE": _capi.HOSTPOOL_CFG_POPULATE,
    "KVMM_HOSTPOOL_CFG_GPU_NODE": _capi.HOSTPOOL_CFG_GPU_NODE,
    "KVMM_HOSTPOOL_CFG_FALLBACK": _capi.HOSTPOOL_CFG_FALLBACK,
    "KVMM_HOSTPOOL_CFG_FORCE_FALLBACK": _capi.HOSTPOOL_CFG_FORCE_FALLBACK,
    "KVMM_HOSTPOOL_READ_ONLY": _capi.HOSTPOOL_READ_ONLY,
    "KVMM_HOSTPOOL_PAGE_FREE": 0, "KVMM_HOSTPOOL_PAGE_HOT": 1, "KVMM_HOSTPOOL_PAGE_COLD": 2,
    "KVMM_HOSTPOOL_TIER_GPU": 0, "KVMM_HOSTPOOL_TIER_DISK": 2,
    "KVMM_HOSTPOOL_TIERS": len(_capi.HOSTPOOL_TIERS),
    "KVMM_RES_GPU": 0, "KVMM_RES_INFLIGHT": len(_capi.RESIDENCY) - 1,
    "KVMM_RES__COUNT": len(_capi.RESIDENCY),
    "KVMM_WRITE_BACK": _capi.WRITE_BACK, "KVMM_WRITE_THROUGH": _capi.WRITE_THROUGH,
    "KVMM_SPILL_RAW": _capi.SPILL_RAW, "KVMM_SPILL_FP8": _capi.SPILL_FP8,
    "KVMM_SPILL_INT8": _capi.SPILL_INT8,
    "KVMM_HOST_GPU_NODE": _capi.HOST_GPU_NODE, "KVMM_HOST_ANY_NODE": _capi.HOST_ANY_NODE,
    "KVMM_HOST_NODE": _capi.HOST_NODE,
    "KVMM_TIERS_HOST_THP": _capi.TIERS_HOST_THP, "KVMM_TIERS_HOST_HUGETLB": _capi.TIERS_HOST_HUGETLB,
    "KVMM_TIERS_NO_KMOD": _capi.TIERS_NO_KMOD,
    "KVMM_TIERS_DISK_BUFFERED": _capi.TIERS_DISK_BUFFERED,
    "KVMM_TIERS_DISK_DISCARD": _capi.TIERS_DISK_DISCARD,
    "KVMM_TIERS_DISK_SCAN_HEADERS": _capi.TIERS_DISK_SCAN_HEADERS,
    "KVMM_TIERS_NO_VERIFY_HOST": _capi.TIERS_NO_VERIFY_HOST,
    "KVMM_TIERS_HOST_NO_THP": _capi.TIERS_HOST_NO_THP,
    "KVMM_PREFETCH_LAYERWISE": _capi.PREFETCH_LAYERWISE,
}


def _fields(cls, prefix=""):
    """(C member designator, ctypes offset) of every field, nested structs too."""
    out = []
    for name, typ in cls._fields_:
        off = getattr(cls, name).offset
        out.append((prefix + name, off))
        if isinstance(typ, type) and issubclass(typ, _capi.Struct):
            out += [(n, off + o) for n, o in _fields(typ, prefix + name + ".")]
    return out


def _compile_and_run(src):
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        skip("no C compiler")
    with tempfile.TemporaryDirectory() as d:
        c, exe = Path(d) / "abi.c", Path(d) / "abi"
        c.write_text(src)
        subprocess.run([cc, "-std=gnu11", "-I", str(HEADER.parent), "-o", str(exe), str(c)],
                       check=True)
        return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout


def test_structs_match_the_header():
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "kvmm.h"', "int main(void) {"]
    expect = {}
    for cname, cls in _capi.STRUCTS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof(struct {cname}));')
        expect[cname] = _ctypes_sizeof(cls)
        for member, off in _fields(cls):
            key = f"{cname}.{member}"
            lines.append(f'printf("{key} %zu\\n", offsetof(struct {cname}, {member}));')
            expect[key] = off
    lines += ["return 0; }"]
    got = dict(ln.split() for ln in _compile_and_run("\n".join(lines)).splitlines())
    bad = [f"{k}: C {got[k]}, ctypes {v}" for k, v in expect.items() if int(got[k]) != v]
    assert not bad, "binding out of step with kvmm.h: " + "; ".join(bad)


def _ctypes_sizeof(cls):
    import ctypes
    return ctypes.sizeof(cls)


def test_constants_match_the_header():
    lines = ["#include <stdio.h>", '#include "kvmm.h"', "int main(void) {"]
    lines += [f'printf("{k} %lld\\n", (long long)({k}));' for k in CONSTANTS]
    lines += ["return 0; }"]
    got = dict(ln.split() for ln in _compile_and_run("\n".join(lines)).splitlines())
    bad = [f"{k}: C {got[k]}, binding {v}" for k, v in CONSTANTS.items() if int(got[k]) != v]
    assert not bad, "; ".join(bad)


def _declarations():
    """name -> parameter count of every function declared in kvmm.h."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    out = {}
    for m in re.finditer(r"\b(kvmm_\w+)\s*\(([^;{]*?)\)\s*;", text):
        params = m.group(2).strip()
        out[m.group(1)] = 0 if params in ("", "void") else params.count(",") + 1
    return out


def test_prototypes_match_declarations():
    decl = _declarations()
    assert "kvmm_step" in decl and decl["kvmm_step"] == 3
    bad = []
    for name, (_, args) in _capi.PROTOTYPES.items():
        if name not in decl:
            bad.append(f"{name}: not declared in kvmm.h")
        elif decl[name] != len(args):
            bad.append(f"{name}: {decl[name]} parameters in kvmm.h, {len(args)} bound")
    assert not bad, "; ".join(bad)


def test_structs_passed_with_slack():
    """Structs handed to libkvmm sit in zeroed buffers with room to grow, so a
    newer library's extra trailing fields read zeros and write no further."""
    import ctypes
    for cls in _capi.STRUCTS.values():
        obj = cls.new()
        base = obj._slack_buf
        assert ctypes.addressof(base) == ctypes.addressof(obj)
        assert ctypes.sizeof(base) == ctypes.sizeof(cls) + _capi.SLACK, cls
        assert bytes(base) == bytes(len(bytes(base)))
    ns = _capi.Ns.new(1, 2, 3)
    assert (ns.model_id, ns.adapter_id, ns.tenant_salt) == (1, 2, 3)


def test_every_public_function_is_bound():
    # The binding covers the whole public API: a function added to kvmm.h
    # lands with its prototype here (and its Python wrapper).
    missing = sorted(set(_declarations()) - set(_capi.PROTOTYPES))
    assert not missing, "not bound: " + ", ".join(missing)


if __name__ == "__main__":
    run(globals())
