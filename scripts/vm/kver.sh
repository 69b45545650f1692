#!/bin/sh
# kver.sh: print the kernel release the module is built for and the VM boots:
# $KVER when set, else the newest /boot/vmlinuz-* whose /lib/modules/<ver>/build
# exists (Debian's linux-image-amd64 + linux-headers-amd64).  Exit 1 if none.
set -eu
if [ -n "${KVER:-}" ]; then
	echo "$KVER"
	exit 0
fi
best=""
for k in /boot/vmlinuz-*; do
	[ -e "$k" ] || continue
	v=${k#/boot/vmlinuz-}
	[ -d "/lib/modules/$v/build" ] && best="$best $v"
done
[ -n "$best" ] || { echo "kver: no /boot/vmlinuz-<ver> with /lib/modules/<ver>/build (install linux-image-amd64 linux-headers-amd64)" >&2; exit 1; }
# shellcheck disable=SC2086
printf '%s\n' $best | sort -V | tail -1
