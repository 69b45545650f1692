#!/bin/sh
# Install what kvmm needs to build and test, from Debian's packages only.
# Idempotent: asks dpkg first and runs apt-get only when something is missing.
# Usage: scripts/deps.sh [--check]   (--check: report missing packages, install nothing)
set -eu

PKGS="build-essential pkg-config check liburing-dev libnuma-dev libxxhash-dev
python3 python3-numpy python3-pip python3-pyflakes valgrind sparse clang-format gnuplot-nox
qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static cpio kmod
xz-utils linux-source-6.1 numactl fio"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	[ "${1:-}" = "--check" ] && echo "deps: all present"
	exit 0
fi
if [ "${1:-}" = "--check" ]; then
	echo "deps: missing:$missing"
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$missing; run as root (or: sudo $0)" >&2
	exit 1
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: done"
