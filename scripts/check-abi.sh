#!/bin/sh
# check-abi.sh: every function declared in runtime/include/kvmm.h is listed in
# runtime/libkvmm.map and the map lists nothing else.  With --print, print the
# functions the header declares (one per line) to help update the map.
set -eu
cd "$(dirname "$0")/.."
hdr=runtime/include/kvmm.h
map=runtime/libkvmm.map
decl=$(mktemp); listed=$(mktemp)
trap 'rm -f "$decl" "$listed"' EXIT
# A declaration: an identifier kvmm_xxx followed by '(' at the start of a
# declaration (after the return type), not inside a macro or comment.
sed -e 's://.*$::' "$hdr" | awk '
	/\/\*/ { incomment = 1 }
	incomment { if ($0 ~ /\*\//) incomment = 0; next }
	/^#/ { next }
	{ print }' | grep -oE '\<kvmm_[a-z0-9_]+\(' | tr -d '(' | sort -u > "$decl"
if [ "${1:-}" = "--print" ]; then cat "$decl"; exit 0; fi
grep -oE '^[[:space:]]+kvmm_[a-z0-9_]+;' "$map" | tr -d ' \t;' | sort -u > "$listed"
if ! diff -u "$listed" "$decl" > /dev/null; then
	echo "check-abi: $map and $hdr disagree (- map only, + header only):"
	diff -u "$listed" "$decl" | grep -E '^[-+]kvmm' || true
	exit 1
fi
