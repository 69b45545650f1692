# The kernel-module bench: tests that run inside a QEMU VM booting the
# installed Debian kernel (scripts/vm/run.sh; docs/kmod.md "VM tests").
#   make test-vm                 build, boot, run every VM test, results in
#                                build/results/vm.res
#   make test-vm VM_FILTER=pool  only the programs whose name contains "pool"
#   make vm-bins                 just build the static test programs
#
# VM test programs: every tests/vm/test_*.c is one static program (the
# other tests/vm/*.c are helpers linked into each, with libkvmm.a); every
# tests/vm/test_*.sh runs under the VM's busybox sh.  Other work adds its own
# VM programs by building static executables into $(VM_EXTRA_DIR): those
# named test_* run as tests, the rest are copied to /bin in the VM.
VM_EXTRA_DIR := build/default/vm-extra
VM_SRCS := $(sort $(wildcard tests/vm/test_*.c))
VM_HELPERS := $(filter-out $(VM_SRCS),$(wildcard tests/vm/*.c))
VM_HELPER_OBJS := $(patsubst %.c,$(B)/%.o,$(VM_HELPERS))
VM_BINS := $(patsubst tests/vm/%.c,$(B)/tests/vm/%,$(VM_SRCS))

$(B)/tests/vm/%: $(B)/tests/vm/%.o $(VM_HELPER_OBJS) $(LIBKVMM_A)
	$(qecho) LDSTATIC $@
	$(Q)$(CC) -static $(LDFLAGS) -o $@ $< $(VM_HELPER_OBJS) $(LIBKVMM_A) -lm

-include $(patsubst %.c,$(B)/%.d,$(wildcard tests/vm/*.c))

# kvmmctl, linked statically for the VM (the VM has no shared libraries)
$(B)/bin/kvmmctl-static: $(patsubst %.c,$(B)/%.o,$(wildcard tools/kvmmctl/*.c)) $(LIBKVMM_A)
	@mkdir -p $(dir $@)
	$(qecho) LDSTATIC $@
	$(Q)$(CC) -static $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBKVMM_A) -lm

vm-bins: $(VM_BINS) $(B)/bin/kvmmctl-static

# kvmm-bench with its kmod group only, static, for the VM:
#   make bench-vm [BENCH_ARGS=--quick]   JSON lines to $(BENCH_JSON) too
VM_BENCH_OBJS := $(patsubst %.c,$(B)/%.o,tools/bench/bench_kmod.c \
	$(filter-out tools/bench/bench_kmod.c,$(wildcard tools/bench/bench_main.c tools/bench/bench_common.c)))
$(B)/bin/kvmm-bench-static: $(VM_BENCH_OBJS) $(LIBKVMM_A)
	@mkdir -p $(dir $@)
	$(qecho) LDSTATIC $@
	$(Q)$(CC) -static $(LDFLAGS) -o $@ $(VM_BENCH_OBJS) $(LIBKVMM_A) -lm

bench-vm: module $(B)/bin/kvmm-bench-static
	@scripts/vm/run.sh --bench $(BENCH_ARGS)

test-vm: module vm-bins
	@scripts/vm/run.sh

.PHONY: vm-bins test-vm bench-vm
