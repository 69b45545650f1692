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
