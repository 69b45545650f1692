#!/bin/busybox sh
# /init of the kvmm test VM (scripts/vm/mkinitramfs.sh puts it there).
#
# Runs the plan /etc/kvmm-vm/plan, one line per step:
#   test  NAME TIMEOUT CMD [ARGS]   insmod kvmm.ko, run CMD, rmmod, check
#   bench NAME TIMEOUT CMD [ARGS]   the same, for a benchmark
#   dump  PATH                      copy a file out (e.g. benchmark JSON)
# and reports on the second serial port (ttyS1; ttyS0 is the kernel
# console) in lines that start with "KVMM-VM ", which scripts/vm/parse.sh
# reads.  After every step the module must unload, report 0 pages still
# allocated and leave no BUG/WARNING/Oops/lockdep text in the kernel log.
# Finally the VM powers off through isa-debug-exit: QEMU exits with 1 when
# every step passed, 3 otherwise.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=256m tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup
[ -f /etc/kvmm-vm/env ] && . /etc/kvmm-vm/env
exec 3>/dev/ttyS1
say() { echo "KVMM-VM $*" >&3; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

say BOOT "$(uname -r) at $(uptime_s) s, $(grep -c ^processor /proc/cpuinfo) cpus, nodes $(cat /sys/devices/system/node/has_memory)"
while read -r m; do
	insmod "/lib/kvmm/kmods/$m" || say WARN "insmod $m failed"
done < /etc/kvmm-vm/kmods
# NVMe probes asynchronously
i=0
while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/nvme0n1 ] || say WARN "no /dev/nvme0n1"

bad_kmsg='BUG:|WARNING:|Oops|lockdep|possible recursive locking|circular locking|list_add corruption|list_del corruption|refcount_t:|general protection fault|Kernel panic|kernel BUG|Bad page|UBSAN:|scheduling while atomic|INFO: task'
failed=0

run() {
	kind=$1 name=$2 tmo=$3
	shift 3
	dmesg -c > /dev/null
	if ! insmod /lib/kvmm/kvmm.ko 2> /tmp/insmod.err; then
		say BEGIN "$name"
		say END "$name" rc=1
		say KCHECK "$name" fail "insmod kvmm.ko: $(cat /tmp/insmod.err)"
		failed=1
		return
	fi
	say BEGIN "$name"
	t0=$(uptime_s)
	# stdin is not the plan; the test's own output goes out as it comes
	timeout -s KILL "$tmo" "$@" < /dev/null >&3 2>&1
	rc=$?
	echo >&3  # in case the output did not end in a newline
	say END "$name" "rc=$rc" "start=$t0" "end=$(uptime_s)"
	why=""
	n=0
	until rmmod kvmm 2> /tmp/rmmod.err; do
		n=$((n + 1))
		if [ $n -ge 20 ]; then
			why="rmmod kvmm: $(cat /tmp/rmmod.err)"
			break
		fi
		sleep 0.1
	done
	dmesg > /tmp/dmesg
	if [ -z "$why" ] && ! grep -q 'kvmm: unloaded, 0 pages still allocated' /tmp/dmesg; then
		why="page counter after unload: $(grep 'kvmm: unloaded' /tmp/dmesg)"
	fi
	bad=$(grep -E "$bad_kmsg" /tmp/dmesg | head -3 | tr '\n' ' ')
	[ -n "$bad" ] && why="${why:+$why; }kernel log: $bad"
	if [ -n "$why" ]; then
		say KCHECK "$name" fail "$why"
		tail -60 /tmp/dmesg | sed 's/^/KVMM-VM DMESG /' >&3
		failed=1
		# leave the module out of the next step's way
		[ -d /sys/module/kvmm ] && rmmod -f kvmm 2> /dev/null
	else
		say KCHECK "$name" ok
	fi
	[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || failed=1
}

while read -r kind name rest <&4; do
	case $kind in
	test | bench)
		# shellcheck disable=SC2086
		run "$kind" "$name" $rest ;;
	dump)
		say FILE "$name"
		[ -f "$name" ] && cat "$name" >&3
		say EOF "$name" ;;
	esac
done 4< /etc/kvmm-vm/plan

say DONE "failed=$failed" "at $(uptime_s) s"
exec 3>&-   # closing the tty waits until everything went out
sync
printf "\\$(printf '%03o' "$failed")" | dd of=/dev/port bs=1 seek=244 count=1 2> /dev/null
poweroff -f
