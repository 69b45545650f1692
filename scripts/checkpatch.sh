#!/bin/sh
# checkpatch.sh: print the path of a usable checkpatch.pl, extracting it
# (and the data files it reads) once from Debian's linux-source package.
set -eu
dir=build/checkpatch
if [ ! -x "$dir/scripts/checkpatch.pl" ]; then
	src=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -1)
	[ -n "$src" ] || { echo "checkpatch: no /usr/src/linux-source-*.tar.xz (package linux-source-6.1)" >&2; exit 1; }
	top=$(basename "$src" .tar.xz)
	mkdir -p "$dir"
	tar -xJf "$src" -C "$dir" --strip-components=1 \
		"$top/scripts/checkpatch.pl" "$top/scripts/spelling.txt" "$top/scripts/const_structs.checkpatch"
fi
echo "$dir/scripts/checkpatch.pl"
