#!/bin/bash
# test-all.sh: what `make test` runs after deps.  Every stage runs even when
# an earlier one failed, so one run shows everything that is broken; the last
# line is the summary "N passed, N failed, N skipped" and the exit status is
# non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
export KVMM_RESULTS=build/results
rm -rf "$KVMM_RESULTS"
mkdir -p "$KVMM_RESULTS" build/logs
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)

stage() {
	local name=$1 t0 rc
	shift
	t0=$(date +%s)
	echo "=== $name"
	"$@"
	rc=$?
	if [ $rc -ne 0 ] && ! grep -qs '^FAIL ' "$KVMM_RESULTS/$name.res"; then
		echo "FAIL $name (make target failed with status $rc)" >> "$KVMM_RESULTS/$name.res"
	fi
	echo "    ($name took $(( $(date +%s) - t0 )) s)"
}

build() {
	make --no-print-directory -j"$jobs" all > build/logs/build.log 2>&1
	local rc=$?
	if [ $rc -eq 0 ]; then echo "PASS build/all" > "$KVMM_RESULTS/build.res"
	else echo "FAIL build/all (see build/logs/build.log)" > "$KVMM_RESULTS/build.res"; tail -30 build/logs/build.log; fi
	return $rc
}

stage build build
stage lint make --no-print-directory lint
stage unit make --no-print-directory test-unit
stage asan make --no-print-directory test-asan
stage tsan make --no-print-directory test-tsan
stage valgrind make --no-print-directory test-valgrind
if grep -q '^test-vm:' mk/vm.mk 2>/dev/null; then
	stage vm make --no-print-directory test-vm
fi
stage gpu make --no-print-directory test-gpu
if ls tests/python/test_*.py >/dev/null 2>&1; then
	stage python make --no-print-directory test-python
fi

echo "=== summary (all stages took $(( $(date +%s) - start )) s)"
scripts/summary.sh
