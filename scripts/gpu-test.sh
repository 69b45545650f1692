#!/bin/bash
# gpu-test.sh [--bench] [--bench-groups "g1 g2"] [--out DIR] [--quick]
#
# Run ON a machine with an NVIDIA GPU (the H100 machine), from a tree that
# carries .gpu-deps/ (made by scripts/gpu-prep.sh on a Debian machine):
# builds everything with the CUDA backend and kernels, runs the GPU test
# stage (tests/gpu: C programs and Python tests) and, with --bench, the
# benchmarks.  Logs, results and benchmark JSON go to DIR (default: $OUT if
# set, else build/gpu-out).  See docs/testing.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/gpu-out}
bench=0
groups=""
quick=""
while [ $# -gt 0 ]; do
	case $1 in
	--bench) bench=1 ;;
	--bench-groups) bench=1; groups=$2; shift ;;
	--out) out=$2; shift ;;
	--quick) quick=--quick ;;
	*) echo "gpu-test.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done
mkdir -p "$out"
jobs=$(nproc 2>/dev/null || echo 4)

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
[ -d .gpu-deps ] || echo "note: no .gpu-deps/ (run scripts/gpu-prep.sh here first if the build lacks liburing/Check)"

echo "== build"
t0=$(date +%s)
# A newer compiler than Debian's may warn where gcc 12 does not: build
# without -Werror here and show the warnings instead of stopping on them.
if ! make -j"$jobs" WERROR= all > "$out/build.log" 2>&1; then
	tail -40 "$out/build.log"
	echo "gpu-test: build failed (log: $out/build.log)"
	exit 1
fi
echo "built in $(( $(date +%s) - t0 )) s, $(grep -c 'warning:' "$out/build.log") compiler warnings"
grep -A3 'warning:' "$out/build.log" | head -40

echo "== gpu tests"
export KVMM_RESULTS=build/results
rm -f build/results/gpu.res
GPU_PYTHON=${GPU_PYTHON:-python3} scripts/test-stage.sh gpu
rc=$?
cp build/results/gpu.res "$out/" 2>/dev/null
tar -C build/logs -czf "$out/gpu-logs.tgz" gpu 2>/dev/null

if [ $bench = 1 ]; then
	echo "== benchmarks"
	export KVMM_BENCH_MACHINE="$(head -1 "$out/gpu.txt" | cut -d, -f1) ($(nproc) cores)"
	if [ -z "$groups" ]; then
		build/default/bin/kvmm-bench $quick --json "$out/bench.jsonl" || rc=1
	else
		for g in $groups; do
			build/default/bin/kvmm-bench $quick --json "$out/bench.jsonl" "$g" || rc=1
		done
	fi
fi
echo "== gpu-test done (status $rc); results in $out"
exit $rc
