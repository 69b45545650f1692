#!/bin/sh
# test-stage.sh STAGE: run one test stage over what `make` built and record
# its results (build/results/STAGE.res); prints the stage's summary line.
# Stages: unit asan valgrind tsan gpu python (vm and lint have their own
# scripts, which record results the same way).
set -u
stage=$1
res_dir=${KVMM_RESULTS:-build/results}
mkdir -p "$res_dir"
rm -f "$res_dir/$stage.res"
run=scripts/tap-run.sh
rc=0

case $stage in
unit)
	for t in build/default/tests/unit/test_*; do
		[ -x "$t" ] || continue
		$run unit "$(basename "$t")" 600 "$t" || rc=1
	done ;;
asan)
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	for t in build/asan/tests/unit/test_*; do
		[ -x "$t" ] || continue
		$run asan "$(basename "$t")" 900 "$t" || rc=1
	done ;;
tsan)
	export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
	for t in build/tsan/tests/unit/test_*; do
		[ -x "$t" ] || continue
		case "$(basename "$t")" in *_mt|*concurren*|*thread*|*mapper*) ;; *) continue ;; esac
		$run tsan "$(basename "$t")" 900 "$t" || rc=1
	done
	[ -f "$res_dir/tsan.res" ] || echo "SKIP tsan (no multi-threaded unit tests)" > "$res_dir/tsan.res" ;;
valgrind)
	# No fork, so valgrind sees the tests themselves; smaller random runs
	# keep the stage short (KVMM_TEST_SCALE divides iteration counts).
	export CK_FORK=no KVMM_TEST_SCALE=${KVMM_TEST_SCALE:-20}
	if ! command -v valgrind >/dev/null; then
		echo "SKIP  valgrind: not installed"; echo "SKIP valgrind (valgrind not installed)" >> "$res_dir/valgrind.res"
	else
		for t in build/default/tests/unit/test_*; do
			[ -x "$t" ] || continue
			$run valgrind "$(basename "$t")" 1200 valgrind -q --error-exitcode=99 \
				--leak-check=full --show-leak-kinds=definite,indirect \
				--errors-for-leak-kinds=definite,indirect --track-fds=no "$t" || rc=1
		done
	fi ;;
gpu)
	for t in build/default/tests/gpu/test_*; do
		[ -x "$t" ] || continue
		$run gpu "$(basename "$t")" 600 "$t" || rc=1
	done
	for t in tests/gpu/test_*.py; do
		[ -f "$t" ] || continue
		$run gpu "$(basename "$t" .py)" 600 env PYTHONPATH=python:${PYTHONPATH:-} \
			KVMM_LIB=build/default/lib/libkvmm.so.0 ${GPU_PYTHON:-python3} "$t" || rc=1
	done ;;
python)
	for t in tests/python/test_*.py; do
		[ -f "$t" ] || continue
		$run python "$(basename "$t" .py)" 600 env PYTHONPATH=python \
			KVMM_LIB=build/default/lib/libkvmm.so.0 ${PYTHON:-/usr/bin/python3} "$t" || rc=1
	done ;;
*)
	echo "test-stage.sh: unknown stage '$stage'" >&2; exit 2 ;;
esac

if [ ! -f "$res_dir/$stage.res" ]; then
	echo "$stage: no test programs found (was the stage built?)"
	echo "FAIL $stage (no test programs found)" > "$res_dir/$stage.res"
	exit 1
fi
printf '%-9s' "$stage:"; KVMM_SHOW_SKIPS= scripts/summary.sh "$stage" | tail -1
! grep -q '^FAIL ' "$res_dir/$stage.res"
