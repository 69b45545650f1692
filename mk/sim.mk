# kvmm-sim's modules (tools/sim/*.c except main.c) in one archive that the
# unit tests tests/unit/test_sim*.c link, so each module is tested on its
# own.  The program kvmm-sim itself is built by tools.mk like every tool.
SIM_SRCS := $(filter-out tools/sim/main.c,$(sort $(wildcard tools/sim/*.c)))
SIM_OBJS := $(patsubst %.c,$(B)/%.o,$(SIM_SRCS))
SIM_LIB := $(B)/tools/sim/libsim.a
SIM_TEST_BINS := $(filter $(B)/tests/unit/test_sim%,$(UNIT_BINS))

$(SIM_LIB): $(SIM_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(SIM_TEST_BINS): $(B)/tests/unit/%: $(B)/tests/unit/%.o $(UNIT_HELPER_OBJS) $(SIM_LIB) $(LIBKVMM_A)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(UNIT_HELPER_OBJS) $(SIM_LIB) $(LIBKVMM_A) $(CHECK_LIBS) $(LDLIBS)

-include $(SIM_OBJS:.o=.d)

# kvmm-bench's group "sim" (tools/bench/bench_sim.c) runs the engine: the
# tools rule links every .o prerequisite, so these join its link line.
$(B)/bin/kvmm-bench: $(SIM_OBJS)

# GPU tests of kvmm-sim (tests/gpu/test_sim*.c) link the same archive.
SIM_GPU_BINS := $(filter $(B)/tests/gpu/test_sim%,$(GPU_BINS))
$(SIM_GPU_BINS): $(B)/tests/gpu/%: $(B)/tests/gpu/%.o $(GPU_HELPER_OBJS) $(SIM_LIB) $(LIBKVMM_A)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(GPU_HELPER_OBJS) $(SIM_LIB) $(LIBKVMM_A) $(LDLIBS)
