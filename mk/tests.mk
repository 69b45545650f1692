# tests/unit/test_*.c: one Check program each; the other .c files in
# tests/unit/ are helpers linked into every program.
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_HELPERS := $(filter-out $(UNIT_SRCS),$(wildcard tests/unit/*.c))
UNIT_HELPER_OBJS := $(patsubst %.c,$(B)/%.o,$(UNIT_HELPERS))
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRCS))

$(B)/tests/unit/%.o: CFLAGS += $(CHECK_CFLAGS)
$(B)/tests/unit/%: $(B)/tests/unit/%.o $(UNIT_HELPER_OBJS) $(LIBKVMM_A)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(UNIT_HELPER_OBJS) $(LIBKVMM_A) $(CHECK_LIBS) $(LDLIBS)

# tests/gpu/*.c: programs that need a CUDA device; without one they print
# "SKIP: no CUDA device" and exit 77.  Helpers as above (non test_ files).
GPU_SRCS := $(sort $(wildcard tests/gpu/test_*.c))
GPU_HELPER_OBJS := $(patsubst %.c,$(B)/%.o,$(filter-out $(GPU_SRCS),$(wildcard tests/gpu/*.c)))
GPU_BINS := $(patsubst tests/gpu/%.c,$(B)/tests/gpu/%,$(GPU_SRCS))
$(B)/tests/gpu/%: $(B)/tests/gpu/%.o $(GPU_HELPER_OBJS) $(LIBKVMM_A)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(GPU_HELPER_OBJS) $(LIBKVMM_A) $(LDLIBS)

-include $(patsubst %.c,$(B)/%.d,$(UNIT_SRCS) $(UNIT_HELPERS) $(wildcard tests/gpu/*.c))

unit-bins: $(UNIT_BINS)
gpu-bins: $(GPU_BINS)
.PHONY: unit-bins gpu-bins
.SECONDARY:
