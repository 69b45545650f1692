#!/bin/sh
# tap-run.sh STAGE NAME TIMEOUT_S CMD [ARGS...]
#
# Runs one test program under a hard timeout and records its results as
# lines "PASS|FAIL|SKIP STAGE/NAME/TEST" in build/results/STAGE.res.
# Results come from TAP ("ok N - x", "not ok N - x", "ok N - x # SKIP why"),
# read from the program's output and, for Check programs, from the TAP file
# Check writes when CK_TAP_LOG_FILE_NAME is set.  Exit status 77 with no TAP
# means the whole program skipped.  A non-zero exit with no failing TAP line
# is one failure: a crash or a timeout never passes.
set -u
stage=$1; name=$2; tmo=$3; shift 3
res_dir=${KVMM_RESULTS:-build/results}
log_dir=build/logs/$stage
mkdir -p "$res_dir" "$log_dir"
log=$log_dir/$name.log
tap=$log_dir/$name.tap
rm -f "$tap"
: > "$tap"

CK_TAP_LOG_FILE_NAME=$tap timeout -k 10 "$tmo" "$@" > "$log" 2>&1
rc=$?

out=$(mktemp)
{ grep -hE '^(not )?ok [0-9]+' "$tap" "$log" 2>/dev/null || true; } > "$out"
awk -v pre="$stage/$name" -v rc="$rc" -v logf="$log" '
	/^not ok/ { sub(/^not ok [0-9]+ *-? */, ""); print "FAIL " pre "/" $0; nf++; n++; next }
	/^ok/ {
		line = $0; sub(/^ok [0-9]+ *-? */, "", line)
		if (line ~ /# *(SKIP|skip)/) { print "SKIP " pre "/" line; ns++ }
		else { print "PASS " pre "/" line; np++ }
		n++; next
	}
	END {
		if (rc == 77 && n == 0) { print "SKIP " pre; exit }
		if (rc != 0 && rc != 77 && nf == 0) {
			why = (rc == 124 || rc == 137) ? "timeout" : "exit " rc
			print "FAIL " pre " (" why ", see " logf ")"
		} else if (rc == 0 && n == 0) print "PASS " pre
	}' "$out" >> "$res_dir/$stage.res"
rm -f "$out"

p=$(grep -c "^PASS $stage/$name" "$res_dir/$stage.res")
f=$(grep -c "^FAIL $stage/$name" "$res_dir/$stage.res")
s=$(grep -c "^SKIP $stage/$name" "$res_dir/$stage.res")
if [ "$f" -gt 0 ]; then
	echo "FAIL  $stage/$name ($p passed, $f failed) -- log: $log"
	grep -E '^(not ok|.*(Assertion|Failure|failed|ERROR|error:|SUMMARY))' "$log" | head -20 | sed 's/^/      /'
elif [ "$p" -eq 0 ] && [ "$s" -gt 0 ]; then
	echo "SKIP  $stage/$name: $(grep -m1 -E 'SKIP' "$log" || echo "exit 77")"
else
	if [ "$s" -gt 0 ]; then echo "ok    $stage/$name ($p passed, $s skipped)"; else echo "ok    $stage/$name ($p passed)"; fi
fi
[ "$f" -eq 0 ]
