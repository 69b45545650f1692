#!/bin/sh
# summary.sh [STAGE...]: totals over build/results/*.res (or the named
# stages) as one line "N passed, N failed, N skipped"; exit 1 on any failure
# or when nothing ran at all.
set -u
res_dir=${KVMM_RESULTS:-build/results}
if [ $# -gt 0 ]; then
	files=""
	for s in "$@"; do files="$files $res_dir/$s.res"; done
else
	files=$(ls "$res_dir"/*.res 2>/dev/null)
fi
# shellcheck disable=SC2086
all=$(cat $files 2>/dev/null)
p=$(printf '%s\n' "$all" | grep -c '^PASS ')
f=$(printf '%s\n' "$all" | grep -c '^FAIL ')
s=$(printf '%s\n' "$all" | grep -c '^SKIP ')
if [ "$f" -gt 0 ]; then
	echo "failures:"
	printf '%s\n' "$all" | grep '^FAIL ' | sed 's/^FAIL /  /'
fi
if [ "$s" -gt 0 ] && [ -n "${KVMM_SHOW_SKIPS:-1}" ]; then
	echo "skipped:"
	printf '%s\n' "$all" | grep '^SKIP ' | sed 's/^SKIP /  /' | head -20
fi
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ] && [ $((p + s)) -gt 0 ]
