# SPDX-License-Identifier: MIT
"""A minimal TAP runner for the binding's tests (scripts/tap-run.sh counts
"ok N - name" / "not ok N - name"; a failure also makes the exit status 1).

    from tap import run, skip
    def test_something(): assert ...
    if __name__ == "__main__": run(globals())

A test calls skip("why") to be reported "ok N - name # SKIP why".  Tests run
in definition order; a test that raises fails with its traceback as TAP
comments.  KVMM_TEST_FILTER=substr runs only the matching tests.
"""
import os
import sys
import traceback


class Skip(Exception):
    pass


def skip(why):
    raise Skip(why)


def seed():
    """The random seed: KVMM_TEST_SEED, else a fixed default (failures replay)."""
    return int(os.environ.get("KVMM_TEST_SEED", "20240611"))


def scaled(n):
    """n divided by KVMM_TEST_SCALE (at least 1), like tests/unit's tu_scaled."""
    return max(1, n // max(1, int(os.environ.get("KVMM_TEST_SCALE", "1"))))


def run(ns):
    tests = [(k, v) for k, v in ns.items() if k.startswith("test_") and callable(v)]
    flt = os.environ.get("KVMM_TEST_FILTER")
    if flt:
        tests = [t for t in tests if flt in t[0]]
    print(f"1..{len(tests)}", flush=True)
    failed = 0
    for i, (name, fn) in enumerate(tests, 1):
        label = name[len("test_"):]
        try:
            fn()
        except Skip as e:
            print(f"ok {i} - {label} # SKIP {e}", flush=True)
        except BaseException:  # noqa: B036 - report everything, then go on
            failed += 1
            print(f"not ok {i} - {label}", flush=True)
            for line in traceback.format_exc().rstrip().splitlines():
                print(f"# {line}", flush=True)
        else:
            print(f"ok {i} - {label}", flush=True)
    sys.exit(1 if failed else 0)
