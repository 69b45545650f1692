# Every folder tools/<dir>/ is one program built from all of its .c files and
# linked with libkvmm.a: tools/kvmmctl -> kvmmctl, tools/<dir> -> kvmm-<dir>.
TOOL_DIRS := $(sort $(patsubst %/,%,$(dir $(wildcard tools/*/*.c))))
tool_name = $(if $(filter kvmm%,$(notdir $(1))),$(notdir $(1)),kvmm-$(notdir $(1)))
TOOL_BINS := $(foreach d,$(TOOL_DIRS),$(B)/bin/$(call tool_name,$(d)))

define tool_rule
$(B)/bin/$(call tool_name,$(1)): $(patsubst %.c,$(B)/%.o,$(wildcard $(1)/*.c)) $(LIBKVMM_A)
	@mkdir -p $$(dir $$@)
	$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIBKVMM_A) $$(LDLIBS)
-include $(patsubst %.c,$(B)/%.d,$(wildcard $(1)/*.c))
endef
$(foreach d,$(TOOL_DIRS),$(eval $(call tool_rule,$(d))))

tools: $(TOOL_BINS)
.PHONY: tools
