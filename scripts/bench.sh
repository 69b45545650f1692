#!/bin/sh
# bench.sh [GROUP]: run kvmm-bench (every group, or one) and append the JSON
# lines to $BENCH_JSON (default build/bench/results.jsonl).  `make bench`
# and `make bench BENCH=<group>` call this.
set -eu
cd "$(dirname "$0")/.."
out=${BENCH_JSON:-build/bench/results.jsonl}
mkdir -p "$(dirname "$out")"
bin=build/default/bin/kvmm-bench
[ -x "$bin" ] || { echo "bench: $bin not built (make all)" >&2; exit 1; }
# shellcheck disable=SC2086
"$bin" --json "$out" ${BENCH_ARGS:-} ${1:+"$1"}
echo "bench: JSON lines appended to $out"
# The kmod group needs kvmm.ko: where this kernel cannot load it, it runs
# in the test VM (mk/vm.mk; BENCH_VM=0 skips that).
if [ "${1:-kmod}" = kmod ] && [ ! -e /dev/kvmm ] && [ "${BENCH_VM:-1}" != 0 ] &&
	grep -qs '^bench-vm:' mk/vm.mk; then
	BENCH_JSON=$out make --no-print-directory bench-vm BENCH_ARGS="${BENCH_ARGS:-}"
fi
