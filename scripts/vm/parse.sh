#!/bin/bash
# parse.sh MODE QEMU_STATUS PLAN RESULTS_LOG
#
# Reads the VM's result channel (lines "KVMM-VM BEGIN|END|KCHECK|DMESG|FILE|
# EOF|DONE ...", with each program's own output between BEGIN and END) and
# records every planned program through scripts/tap-run.sh, so build/results/
# vm.res has the same PASS/FAIL/SKIP lines as every other stage.  Each
# program gets one more result, "module unload clean", from the checks init
# ran after it (rmmod, page counter 0, kernel log).  A program the VM never
# finished fails; so does a VM that did not exit through isa-debug-exit.
# MODE bench: prints the benchmark's output and appends its JSON lines to
# $BENCH_JSON (default build/bench/results.jsonl).
set -u
cd "$(dirname "$0")/../.."
mode=$1 qrc=$2 plan=$3 log=$4
res_dir=${KVMM_RESULTS:-build/results}
out=build/vm/out
rm -rf "$out"
mkdir -p "$out" build/logs/vm
[ -f "$log" ] || : > "$log"

# Split the channel into per-program files: NAME.out (output + synthesized
# TAP), NAME.rc, NAME.kcheck; FILE blocks into out/files/.
tr -d '\r' < "$log" | awk -v out="$out" '
	function flush() { if (cur != "") close(out "/" cur ".out") }
	/^KVMM-VM BEGIN / { cur = $3; printf "" > (out "/" cur ".out"); next }
	/^KVMM-VM END / {
		rc = $4; sub(/^rc=/, "", rc)
		print rc > (out "/" $3 ".rc"); close(out "/" $3 ".rc")
		start = $5; end = $6; sub(/^start=/, "", start); sub(/^end=/, "", end)
		if (end != "") printf "# took %.1f s in the VM\n", end - start >> (out "/" $3 ".out")
		flush(); cur = ""; next
	}
	/^KVMM-VM KCHECK / {
		name = $3; st = $4
		line = $0; sub(/^KVMM-VM KCHECK [^ ]+ [^ ]+ ?/, "", line)
		print st " " line > (out "/" name ".kcheck"); close(out "/" name ".kcheck"); last = name; next
	}
	/^KVMM-VM DMESG / { line = $0; sub(/^KVMM-VM DMESG /, "# dmesg: ", line); print line >> (out "/" last ".dmesg"); next }
	/^KVMM-VM FILE / { file = $3; gsub("/", "_", file); inf = out "/files/" file; system("mkdir -p " out "/files"); printf "" > inf; next }
	/^KVMM-VM EOF / { close(inf); inf = ""; next }
	/^KVMM-VM / { print > (out "/vm.msgs"); next }
	{ if (inf != "") print > inf; else if (cur != "") print >> (out "/" cur ".out") }
' || true

grep -h '^KVMM-VM BOOT\|^KVMM-VM WARN' "$log" | sed 's/^KVMM-VM /vm: /'
done_line=$(grep -a '^KVMM-VM DONE' "$log" | tail -1)
rc_all=0

while read -r kind name tmo _; do
	case $kind in test | bench) ;; *) continue ;; esac
	o=$out/$name.out
	if [ ! -f "$o" ]; then
		echo "not ok 1 - did not run (the VM stopped before it: see build/vm/console.log)" > "$o"
		rc=1
	elif [ ! -f "$out/$name.rc" ]; then
		echo "not ok 1000 - $name did not finish (VM crash or VM time limit: see build/vm/console.log)" >> "$o"
		rc=1
	else
		rc=$(cat "$out/$name.rc")
		[ "$rc" = 137 ] && echo "# killed by its time limit in the VM ($tmo s)" >> "$o"
	fi
	if [ -f "$out/$name.kcheck" ]; then
		read -r st why < "$out/$name.kcheck"
		if [ "$st" = ok ]; then
			echo "ok 1001 - module unload clean" >> "$o"
		else
			echo "not ok 1001 - module unload clean: $why" >> "$o"
			[ -f "$out/$name.dmesg" ] && cat "$out/$name.dmesg" >> "$o"
		fi
	elif [ -f "$out/$name.rc" ]; then
		echo "not ok 1001 - module unload clean: not checked (VM stopped)" >> "$o"
	fi
	if [ "$mode" = bench ]; then
		grep -v '^ok 1001' "$o"
		grep -q '^not ok' "$o" && rc_all=1
		[ "$rc" = 0 ] || rc_all=1
		continue
	fi
	scripts/tap-run.sh vm "$name" 30 sh -c 'cat "$0"; exit "$1"' "$o" "$rc" || rc_all=1
done < "$plan"

# The VM itself: isa-debug-exit gives (code << 1) | 1.
qfail=""
case $qrc in
1) [ -n "$done_line" ] || qfail="no DONE line" ;;
3) grep -qs '^FAIL ' "$res_dir/vm.res" || [ "$mode" = bench ] || qfail="the VM reported a failure that no result shows" ;;
124 | 137) qfail="hard time limit hit (QEMU killed; see build/vm/console.log)" ;;
*) qfail="QEMU exit status $qrc (see build/vm/qemu.log, build/vm/console.log)" ;;
esac
if [ -n "$qfail" ]; then
	echo "vm: $qfail"
	[ "$mode" = test ] && echo "FAIL vm/qemu ($qfail)" >> "$res_dir/vm.res"
	rc_all=1
fi

if [ "$mode" = bench ]; then
	json=${BENCH_JSON:-build/bench/results.jsonl}
	mkdir -p "$(dirname "$json")"
	if [ -s "$out/files/_tmp_bench.jsonl" ]; then
		cat "$out/files/_tmp_bench.jsonl" >> "$json"
		cp "$out/files/_tmp_bench.jsonl" build/vm/bench-kmod.jsonl
		echo "vm: $(wc -l < "$out/files/_tmp_bench.jsonl") JSON lines appended to $json"
	else
		echo "vm: the benchmark wrote no JSON"
		rc_all=1
	fi
	exit $rc_all
fi
[ -f "$res_dir/vm.res" ] || echo "FAIL vm (no results)" >> "$res_dir/vm.res"
printf '%-9s' "vm:"
KVMM_SHOW_SKIPS= KVMM_RESULTS=$res_dir scripts/summary.sh vm | tail -1
! grep -q '^FAIL ' "$res_dir/vm.res" && [ $rc_all -eq 0 ]
