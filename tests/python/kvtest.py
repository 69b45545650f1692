# SPDX-License-Identifier: MIT
"""Fixtures shared by the binding's tests: small host caches, patterns."""
import numpy as np

import kvmm

MiB = 1 << 20


def cache(be, layout="token-major", layers=2, heads=2, dim=64, dtype="float16", seqs=4,
          tokens=4096, budget=64 * MiB, **kw):
    return kvmm.Cache(be, num_layers=layers, num_kv_heads=heads, head_dim=dim, dtype=dtype,
                      layout=layout, max_seqs=seqs, max_tokens=tokens, budget_bytes=budget, **kw)


def pattern(slot, layer, kv, tok0, ntok, heads, dim, dtype="float16"):
    """Distinct values for every (slot, layer, K/V, token, head, dim) that a
    float16 holds exactly (integers below 2048)."""
    t = np.arange(tok0, tok0 + ntok).reshape(-1, 1, 1)
    h = np.arange(heads).reshape(1, -1, 1)
    d = np.arange(dim).reshape(1, 1, -1)
    kvi = 0 if kv == "k" else 1
    v = (t * 7 + h * 131 + d * 3 + slot * 301 + layer * 53 + kvi * 29) % 2039
    return (v + np.zeros((ntok, heads, dim))).astype(dtype)
