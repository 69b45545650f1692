#!/bin/sh
# mkinitramfs.sh KVER STAGE_DIR OUT.cpio
#
# Builds the test VM's initramfs: busybox (static), scripts/vm/init.sh as
# /init, the kernel modules named in $VM_KMODS (default: NVMe and
# device-mapper) with their dependencies (modinfo -F depends, recursively)
# from /lib/modules/KVER, listed in load order in /etc/kvmm-vm/kmods; then
# everything under STAGE_DIR (tests, kvmm.ko, the plan) on top.  The archive
# is uncompressed: unpacking is faster than decompressing under TCG.
set -eu
kver=$1; stage=$2; out=$3
cd "$(dirname "$0")/../.."
kmods=${VM_KMODS:-crct10dif_generic crc64_rocksoft_generic nvme dm-mod dm-delay dm-flakey}
# VM_KROOT: modules from <dir>/lib/modules/KVER instead (run.sh)
kroot=${VM_KROOT:-/}
bb=/bin/busybox  # busybox-static's: no shared libraries in the VM
[ -x "$bb" ] || { echo "mkinitramfs: no $bb (apt-get install busybox-static)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/sbin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" \
	"$root/etc/kvmm-vm" "$root/lib/kvmm/kmods" "$root/mnt"
cp "$bb" "$root/bin/busybox"
cp scripts/vm/init.sh "$root/init"
chmod 755 "$root/init"

# Kernel modules in dependency order (each after what it depends on, hard
# dependencies and "pre:" soft dependencies alike).
seen=" "
order=""
add_mod() {
	local name=$1 path f d
	case "$seen" in *" $name "*) return ;; esac
	seen="$seen$name "
	# an alias may name several modules: the generic one loads on any CPU
	path=$(modinfo -b "$kroot" -k "$kver" -n "$name" 2> /dev/null | awk '/generic/ { g = $0 } NR == 1 { f = $0 } END { print g ? g : f }')
	[ -n "$path" ] || {
		[ "${2:-}" = soft ] && return
		echo "mkinitramfs: module $name not found for $kver" >&2
		exit 1
	}
	case "$path" in /*) ;; *) return ;; esac # built in
	for d in $(modinfo -b "$kroot" -k "$kver" -F depends "$name" | tr ',' ' '); do
		add_mod "$d"
	done
	for d in $(modinfo -b "$kroot" -k "$kver" -F softdep "$name" | sed -n 's/.*pre: *\([^:]*\)\( post:.*\)\?$/\1/p'); do
		add_mod "$d" soft
	done
	f=$(basename "$path")
	case "$seen" in *" /$f "*) return ;; esac # reached through an alias before
	seen="$seen/$f "
	case "$f" in
	*.ko.xz) xz -dc "$path" > "$root/lib/kvmm/kmods/${f%.xz}" && f=${f%.xz} ;;
	*.ko.zst) zstd -qdc "$path" > "$root/lib/kvmm/kmods/${f%.zst}" && f=${f%.zst} ;;
	*.ko.gz) gzip -dc "$path" > "$root/lib/kvmm/kmods/${f%.gz}" && f=${f%.gz} ;;
	*) cp "$path" "$root/lib/kvmm/kmods/$f" ;;
	esac
	order="$order$f
"
}
for m in $kmods; do add_mod "$m"; done
printf '%s' "$order" > "$root/etc/kvmm-vm/kmods"

cp -a "$stage/." "$root/"
(cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) > "$out"
