#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Randomized model-based test of the binding: random admits, steps (growing
and shrinking), writes and reads through both kvmm_seq_write/read and the
zero-copy views, and closes, checked against a plain numpy reference of what
every sequence holds.  Fixed seed (KVMM_TEST_SEED replays another);
KVMM_TEST_SCALE divides the operation count."""
import errno

import numpy as np
from kvtest import MiB, cache
from tap import run, scaled, seed

import kvmm

LAYERS, HEADS, DIM, MAXTOK, SEQS = 2, 2, 32, 3000, 5


def one_layout(layout, ops):
    rng = np.random.default_rng(seed() + hash(layout) % 1000)
    with kvmm.Backend("host") as be, cache(be, layout=layout, layers=LAYERS, heads=HEADS,
                                           dim=DIM, seqs=SEQS, tokens=MAXTOK,
                                           budget=48 * MiB) as c:
        # Sequence -> float16 [LAYERS, 2, MAXTOK, HEADS, DIM], and which of
        # those tokens hold known data (written, and not shrunk away since:
        # what a step gives back above the length is map-ahead, reclaimable)
        ref, known = {}, {}
        # Room for one sequence less than the slots: steps meet -ENOMEM.
        budget = (SEQS - 1) * c.info["block_bytes"]
        assert c.set_budget(budget) == 0
        lens = {}
        counts = dict.fromkeys(("open", "step", "write", "read", "close", "enomem", "verified"),
                               0)

        def check(s, layer, kvi, t0, t1, through_view):
            kv = "kv"[kvi]
            want = ref[s][layer, kvi, t0:t1]
            mask = known[s][layer, kvi, t0:t1]
            if through_view:
                v = s.view(layer, kv)
                a = v.numpy()
                if v.paged:
                    tpp = v.tokens_per_page
                    got = np.stack([a[t // tpp, t % tpp] for t in range(t0, t1)]) if t1 > t0 \
                        else want
                else:
                    got = a[t0:t1]
            else:
                got = np.frombuffer(s.read(layer, kv, t0, t1 - t0), np.float16)
                got = got.reshape(t1 - t0, HEADS, DIM)
            assert (got[mask] == want[mask]).all(), (layout, s.slot, layer, kv, t0, t1,
                                                     through_view)
            counts["verified"] += int(mask.sum())

        for _ in range(ops):
            op = rng.integers(100)
            live = list(lens)
            if op < 12 or not live:
                if len(live) == SEQS:
                    continue
                s = c.open(int(rng.integers(0, 600)))
                ref[s] = np.zeros((LAYERS, 2, MAXTOK, HEADS, DIM), np.float16)
                known[s] = np.zeros((LAYERS, 2, MAXTOK), bool)
                lens[s] = 0
                counts["open"] += 1
                continue
            s = live[rng.integers(len(live))]
            n = lens[s]
            if op < 35:
                new = int(min(MAXTOK, max(0, n + rng.integers(-40, 300))))
                try:
                    s.step(new)
                except kvmm.KvmmError as e:
                    assert e.errno == errno.ENOMEM, e
                    counts["enomem"] += 1
                    assert s.len == n  # no partial state
                    continue
                lens[s] = new
                known[s][:, :, new:] = False
                counts["step"] += 1
            elif op < 65 and n:
                layer, kvi = int(rng.integers(LAYERS)), int(rng.integers(2))
                t0 = int(rng.integers(n))
                t1 = int(min(n, t0 + rng.integers(1, 200)))
                data = rng.integers(-2000, 2000, (t1 - t0, HEADS, DIM)).astype(np.float16)
                if rng.integers(2):
                    s.write(layer, "kv"[kvi], t0, data)
                else:
                    v = s.view(layer, "kv"[kvi])
                    a = v.numpy()
                    if v.paged:
                        tpp = v.tokens_per_page
                        for i, t in enumerate(range(t0, t1)):
                            a[t // tpp, t % tpp] = data[i]
                    else:
                        a[t0:t1] = data
                ref[s][layer, kvi, t0:t1] = data
                known[s][layer, kvi, t0:t1] = True
                counts["write"] += 1
            elif op < 92 and n:
                layer, kvi = int(rng.integers(LAYERS)), int(rng.integers(2))
                t0 = int(rng.integers(n))
                t1 = int(min(n, t0 + rng.integers(1, 300)))
                check(s, layer, kvi, t0, t1, bool(rng.integers(2)))
                counts["read"] += 1
            elif op >= 92:
                # everything the sequence holds, then close it
                for layer in range(LAYERS):
                    for kvi in range(2):
                        check(s, layer, kvi, 0, n, False)
                s.close()
                del lens[s], ref[s], known[s]
                counts["close"] += 1
            assert c.stats()["pages_created"] * c.info["page_size"] <= budget
        assert c.stats()["seqs_active"] == len(lens)
        assert counts["write"] and counts["read"] and counts["close"] and counts["enomem"], counts
        assert counts["verified"] > ops, counts  # reads did compare known tokens
        print(f"# {layout}: {counts}")
        return counts


def test_layer_major():
    one_layout("layer-major", scaled(3000))


def test_token_major():
    one_layout("token-major", scaled(3000))


def test_page_major():
    one_layout("page-major", scaled(3000))


if __name__ == "__main__":
    run(globals())
