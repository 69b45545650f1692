# kvmm.ko: built from the top-level Kbuild against a kernel's build tree.
#   make module         build kmod/kvmm.ko with W=1 (for $(KVER), see below)
#   make module-lint    rebuild everything with W=1 under sparse (C=1);
#                       any compiler or sparse warning fails
#   make module-clean
# KVER picks the kernel (default: scripts/vm/kver.sh, the newest installed
# kernel with headers, which is also what the VM boots); KDIR its build tree.
KVER ?= $(shell scripts/vm/kver.sh 2>/dev/null)
KDIR ?= /lib/modules/$(KVER)/build
KMOD := kmod/kvmm.ko
KMOD_SRCS := Kbuild kmod/Kbuild $(wildcard kmod/*.c kmod/*.h) uapi/kvmm.h
# KMOD_ARGS: more kbuild variables, e.g. CONFIG_DEBUG_INFO_BTF_MODULES= for
# a newer kernel's headers on a machine without pahole
KBUILD_ARGS := -C $(KDIR) M=$(CURDIR) W=1 $(KMOD_ARGS)

# the kernel it was built for: another KVER, KDIR or KMOD_ARGS rebuilds it
KMOD_STAMP := build/kmod/target
KMOD_TARGET := $(KVER) $(KDIR) $(KMOD_ARGS)
$(KMOD_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(KMOD_TARGET)' | cmp -s - $@ || echo '$(KMOD_TARGET)' > $@

module: $(KMOD)
$(KMOD): $(KMOD_SRCS) $(KMOD_STAMP)
	@test -d "$(KDIR)" || { echo "module: no kernel build tree '$(KDIR)' (KVER=$(KVER))" >&2; exit 1; }
	$(qecho) KBUILD $@
	@mkdir -p build/logs
	$(Q)$(MAKE) --no-print-directory $(KBUILD_ARGS) $(if $(Q),,V=1) modules >build/logs/kmod.log 2>&1 || \
		{ cat build/logs/kmod.log; exit 1; }
	$(Q)if grep -E 'warning:|error:' build/logs/kmod.log; then \
		echo "module: warnings (build/logs/kmod.log)"; rm -f $@; exit 1; fi
	@touch $@

module-lint:
	@test -d "$(KDIR)" || { echo "module-lint: no kernel build tree '$(KDIR)'" >&2; exit 1; }
	@mkdir -p build/logs/lint
	@$(MAKE) --no-print-directory -C $(KDIR) M=$(CURDIR) clean >/dev/null 2>&1
	@$(MAKE) --no-print-directory $(KBUILD_ARGS) C=1 CHECK="sparse -Wsparse-error" modules \
		> build/logs/lint/module-W1-sparse.log 2>&1; rc=$$?; \
	if [ $$rc -ne 0 ] || grep -E 'warning:|error:' build/logs/lint/module-W1-sparse.log; then \
		echo "module-lint: failed (build/logs/lint/module-W1-sparse.log)"; tail -20 build/logs/lint/module-W1-sparse.log; exit 1; fi; \
	echo "module-lint: W=1 and sparse clean ($(KVER))"

# make install-kmod [DESTDIR=...]: kvmm.ko into /lib/modules/$(KVER)/extra
# (depmod), the udev rule giving the kvmm group /dev/kvmm (mode 0660), the
# kvmm system group, and kvmmctl into $(PREFIX)/bin.  With DESTDIR only
# files are written (for packaging); without it, groupadd, depmod and udev
# reload run too (root).
PREFIX ?= /usr/local
UDEV_RULES_DIR ?= /etc/udev/rules.d
install-kmod: module $(B)/bin/kvmmctl
	$(MAKE) --no-print-directory -C $(KDIR) M=$(CURDIR) INSTALL_MOD_DIR=extra CONFIG_MODULE_SIG_ALL= \
		$(if $(DESTDIR),INSTALL_MOD_PATH=$(DESTDIR) DEPMOD=true) modules_install
	install -D -m 0644 kmod/60-kvmm.rules $(DESTDIR)$(UDEV_RULES_DIR)/60-kvmm.rules
	install -D -m 0755 $(B)/bin/kvmmctl $(DESTDIR)$(PREFIX)/bin/kvmmctl
ifeq ($(DESTDIR),)
	getent group kvmm >/dev/null || groupadd --system kvmm
	-udevadm control --reload-rules 2>/dev/null && udevadm trigger --subsystem-match=misc --sysname-match=kvmm 2>/dev/null
	@echo "install-kmod: done; load with: modprobe kvmm; add users to the kvmm group"
endif

module-clean:
	-$(Q)$(MAKE) --no-print-directory -C $(KDIR) M=$(CURDIR) clean >/dev/null 2>&1

.PHONY: module module-lint module-clean install-kmod FORCE
FORCE:
