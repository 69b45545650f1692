# The tiers' VM test: a static program put in the VM bench's directory of
# extra programs (mk/vm.mk), so `make test-vm` runs it on the VM's NVMe disk
# and device-mapper targets, with kvmm.ko loaded.
TIERS_VM_BIN := $(VM_EXTRA_DIR)/test_tiers_vm
$(TIERS_VM_BIN): $(B)/tests/vm-tiers/test_tiers_vm.o $(LIBKVMM_A)
	@mkdir -p $(dir $@)
	$(qecho) LDSTATIC $@
	$(Q)$(CC) -static $(LDFLAGS) -o $@ $< $(LIBKVMM_A) -luring -lnuma -lm
vm-bins: $(TIERS_VM_BIN)
-include $(B)/tests/vm-tiers/test_tiers_vm.d
