# libkvmm: runtime/src/*.c (+ the embedded CUDA kernel image when nvcc exists)
# into $(B)/lib/libkvmm.a and $(B)/lib/libkvmm.so.$(KVMM_SOVERSION).
KVMM_SOVERSION := 0
RT_SRCS := $(sort $(wildcard runtime/src/*.c))
RT_OBJS := $(patsubst %.c,$(B)/%.o,$(RT_SRCS))

ifneq ($(NVCC),)
ifeq ($(HAVE_CUDA),1)
KERNEL_SRCS := $(sort $(wildcard kernels/*.cu))
ifneq ($(KERNEL_SRCS),)
# The kernels are compiled once into a fat binary and linked into libkvmm as
# data; the runtime loads it with cuModuleLoadData through the dlopen'ed
# driver, so libkvmm has no link-time dependency on CUDA at all.
RT_OBJS += $(B)/kernels/kvmm_kernels_image.o
CPPFLAGS += -DKVMM_HAVE_KERNELS=1
$(B)/kernels/kvmm_kernels.fatbin: $(KERNEL_SRCS) $(wildcard kernels/*.cuh kernels/*.h) runtime/include/kvmm.h
	@mkdir -p $(dir $@)
	$(Q)$(NVCC) -fatbin $(NVCC_ARCH) -O3 -std=c++17 -Iruntime/include -Ikernels \
		-o $@ kernels/kvmm_kernels.cu
$(B)/kernels/kvmm_kernels_image.o: $(B)/kernels/kvmm_kernels.fatbin scripts/embed.sh
	$(Q)scripts/embed.sh $< kvmm_kernels_image $(B)/kernels/kvmm_kernels_image.c
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $(B)/kernels/kvmm_kernels_image.c
endif
endif
endif

LIBKVMM_A := $(B)/lib/libkvmm.a
LIBKVMM_SO := $(B)/lib/libkvmm.so.$(KVMM_SOVERSION)

$(LIBKVMM_A): $(RT_OBJS)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(LIBKVMM_SO): $(RT_OBJS) runtime/libkvmm.map
	@mkdir -p $(dir $@)
	$(Q)$(CC) -shared -Wl,-soname,libkvmm.so.$(KVMM_SOVERSION) -Wl,--version-script=runtime/libkvmm.map \
		-Wl,-z,defs $(LDFLAGS) -o $@ $(RT_OBJS) $(LDLIBS)
	$(Q)ln -sf libkvmm.so.$(KVMM_SOVERSION) $(B)/lib/libkvmm.so

runtime: $(LIBKVMM_A) $(LIBKVMM_SO)
.PHONY: runtime

-include $(RT_OBJS:.o=.d)
