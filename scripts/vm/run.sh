#!/bin/bash
# run.sh [--bench [GROUP_ARGS...]]
#
# The kernel-module bench: boots the installed Debian kernel (KVER, default
# scripts/vm/kver.sh) in QEMU under TCG with 2 vCPUs, two NUMA nodes, an
# emulated NVMe disk and isa-debug-exit, runs the VM test programs (or, with
# --bench, kvmm-bench's kmod group) and turns the serial log into results.
#
# Tests: build/default/tests/vm/test_* (from tests/vm/test_*.c),
# tests/vm/test_*.sh, and executables named test_* in build/default/vm-extra/
# (other executables there are copied to /bin in the VM).  A program's
# timeout in the VM is 60 s unless its source has a line "vm-timeout: N".
# Results: build/results/vm.res (PASS/FAIL/SKIP lines as scripts/tap-run.sh
# writes them), program output in build/logs/vm/, the kernel console in
# build/vm/console.log, the raw result channel in build/vm/results.log.
#
# Environment: VM_FILTER=substring (only matching programs), VM_MEM (MiB,
# default 1024, split over the two nodes), VM_TIMEOUT (hard limit for the
# whole VM in seconds, default: sum of the program timeouts + 60, at most
# 900), VM_KMODS (kernel modules loaded at boot, see mkinitramfs.sh),
# VM_ENV ("NAME=value ..." exported to the tests in the VM, e.g.
# "KVMM_TEST_SEED=7 KVMM_FUZZ_CALLS=1000000"), VM_KROOT (boot another
# kernel unpacked under that directory, with KVER; docs/kmod.md).
set -u
cd "$(dirname "$0")/../.."
mode=test
if [ "${1:-}" = "--bench" ]; then
	mode=bench
	shift
fi
res_dir=${KVMM_RESULTS:-build/results}
mkdir -p "$res_dir" build/vm build/logs
[ "$mode" = test ] && rm -f "$res_dir/vm.res"

die() {
	echo "vm: $*" >&2
	[ "$mode" = test ] && echo "FAIL vm/setup ($*)" >> "$res_dir/vm.res"
	exit 1
}

kver=$(scripts/vm/kver.sh) || die "no kernel with headers installed"
# VM_KROOT: a directory holding another kernel's boot/ and lib/modules/
# (an unpacked linux-image package; set KVER too), for a run on that kernel
vmlinuz=${VM_KROOT:-}/boot/vmlinuz-$kver
[ -r "$vmlinuz" ] || die "$vmlinuz not readable"
command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 missing (scripts/deps.sh)"
[ -f kmod/kvmm.ko ] || die "kmod/kvmm.ko not built (make module)"

stage=build/vm/stage
rm -rf "$stage"
mkdir -p "$stage/tests" "$stage/bin" "$stage/lib/kvmm" "$stage/etc/kvmm-vm"
cp kmod/kvmm.ko "$stage/lib/kvmm/"
plan=$stage/etc/kvmm-vm/plan
: > "$plan"
for kv in ${VM_ENV:-}; do
	echo "export $kv"
done > "$stage/etc/kvmm-vm/env"
total_tmo=0

# vm_timeout SOURCE: the "vm-timeout: N" of a test source, else 60
vm_timeout() {
	local t
	t=$(grep -ohE 'vm-timeout: *[0-9]+' "$@" 2> /dev/null | head -1 | grep -oE '[0-9]+$')
	echo "${t:-60}"
}

add_test() { # NAME TIMEOUT CMD...
	local name=$1 tmo=$2
	shift 2
	case "$name" in *"${VM_FILTER:-}"*) ;; *) return ;; esac
	echo "test $name $tmo $*" >> "$plan"
	total_tmo=$((total_tmo + tmo + 2))
}

for extra in ${VM_EXTRA_DIR:-build/default/vm-extra}/*; do
	[ -f "$extra" ] && [ -x "$extra" ] && cp "$extra" "$stage/bin/"
done
for b in build/default/bin/kvmmctl-static build/default/bin/kvmm-bench-static; do
	[ -x "$b" ] && cp "$b" "$stage/bin/$(basename "$b" -static)"
done
# kvmmctl --help as docs/kmod.md has it (test_kvmmctl compares the two)
sed -n '/<!-- kvmmctl-help: begin -->/,/<!-- kvmmctl-help: end -->/p' docs/kmod.md |
	sed '1,2d;$d' | sed '$d' > "$stage/etc/kvmm-vm/kvmmctl-help.txt"
# the sysfs files docs/ABI documents (test_pool compares them with sysfs)
sed -n 's/^What:[[:space:]]*//p' docs/ABI/testing/sysfs-kernel-kvmm > "$stage/etc/kvmm-vm/sysfs-what.txt"

if [ "$mode" = test ]; then
	for t in build/default/tests/vm/test_*; do
		case "$t" in *.o | *.d) continue ;; esac
		[ -x "$t" ] || continue
		n=$(basename "$t")
		cp "$t" "$stage/tests/"
		add_test "$n" "$(vm_timeout "tests/vm/$n.c")" "/tests/$n"
	done
	for t in tests/vm/test_*.sh; do
		[ -f "$t" ] || continue
		n=$(basename "$t" .sh)
		cp "$t" "$stage/tests/"
		add_test "$n" "$(vm_timeout "$t")" sh "/tests/$n.sh"
	done
	for t in "$stage"/bin/test_*; do
		[ -x "$t" ] || continue
		n=$(basename "$t")
		add_test "$n" "$(vm_timeout "tests/vm/$n.c")" "/bin/$n"
	done
	[ -s "$plan" ] || die "no VM test programs (make vm-bins)${VM_FILTER:+ matching '$VM_FILTER'}"
else
	[ -x "$stage/bin/kvmm-bench" ] || die "no static kvmm-bench (make bench-vm builds it)"
	host=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
	echo "export KVMM_BENCH_MACHINE='QEMU TCG VM (2 vCPUs, ${VM_MEM:-1024} MiB, 2 NUMA nodes) on $host, $(nproc) cores'" \
		>> "$stage/etc/kvmm-vm/env"
	echo "bench kvmm-bench 500 /bin/kvmm-bench --json /tmp/bench.jsonl kmod $*" >> "$plan"
	echo "dump /tmp/bench.jsonl" >> "$plan"
	total_tmo=500
fi

cpio=build/vm/initramfs.cpio
VM_KMODS=${VM_KMODS:-} scripts/vm/mkinitramfs.sh "$kver" "$stage" "$cpio" || die "initramfs build failed"

# A fresh sparse disk for every run.
disk=build/vm/nvme.img
rm -f "$disk"
truncate -s "${VM_DISK_SIZE:-2G}" "$disk"

mem=${VM_MEM:-1024}
half=$((mem / 2))
limit=${VM_TIMEOUT:-$((total_tmo + 60))}
[ "$limit" -gt 900 ] && limit=900
console=build/vm/console.log
results=build/vm/results.log
rm -f "$console" "$results"
echo "vm: booting $kver (TCG, 2 vCPUs, ${mem} MiB on 2 NUMA nodes, NVMe), limit ${limit} s"
t0=$(date +%s)
timeout -k 5 "$limit" qemu-system-x86_64 \
	-accel tcg -smp 2 -m "${mem}M" -nodefaults -display none -no-reboot \
	-object "memory-backend-ram,id=m0,size=${half}M" \
	-object "memory-backend-ram,id=m1,size=$((mem - half))M" \
	-numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1 \
	-kernel "$vmlinuz" -initrd "$cpio" \
	-append "console=ttyS0 quiet panic=-1 mitigations=off tsc=reliable no_timer_check" \
	-serial "file:$console" -serial "file:$results" \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	-drive "file=$disk,if=none,id=nvme0,format=raw" -device nvme,serial=kvmm-nvme0,drive=nvme0 \
	< /dev/null > build/vm/qemu.log 2>&1
qrc=$?
echo "vm: QEMU exited with $qrc after $(($(date +%s) - t0)) s"

scripts/vm/parse.sh "$mode" "$qrc" "$plan" "$results"
