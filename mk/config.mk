# Build configuration shared by every fragment.
# VARIANT picks the flavour: default, asan (ASan+UBSan) or tsan.  Each
# variant builds into its own folder so they never mix objects.
VARIANT ?= default
B := build/$(VARIANT)

CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
AR ?= ar
PYTHON ?= /usr/bin/python3

CUDA_HOME ?= /usr/local/cuda
HAVE_CUDA := $(shell test -f $(CUDA_HOME)/include/cuda.h && echo 1)
NVCC := $(shell test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc)
NVCC_ARCH ?= -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90

# Headers and static libraries carried to machines that lack the Debian
# packages (the GPU machine); see scripts/gpu-prep.sh.
GPU_DEPS ?= .gpu-deps

CPPFLAGS := -Iruntime/include -Iruntime/src -I. -D_GNU_SOURCE
ifneq ($(wildcard $(GPU_DEPS)/usr/include),)
CPPFLAGS += -I$(GPU_DEPS)/usr/include
DEP_LDFLAGS := -L$(GPU_DEPS)/usr/lib/x86_64-linux-gnu
endif
ifeq ($(HAVE_CUDA),1)
CPPFLAGS += -DKVMM_HAVE_CUDA=1 -isystem $(CUDA_HOME)/include
endif

WERROR ?= -Werror
CFLAGS := -std=gnu11 -O2 -g -fPIC -pthread -Wall -Wextra -Wshadow -Wstrict-prototypes \
	  -Wmissing-prototypes -Wno-unused-parameter -Wformat=2 $(WERROR) $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(DEP_LDFLAGS) $(EXTRA_LDFLAGS)
# liburing and libnuma are linked statically where only the archive exists
# (the GPU machine has no liburing.so); the system's shared ones elsewhere.
LDLIBS := -luring -lnuma -ldl -lm

ifeq ($(VARIANT),asan)
CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(VARIANT),tsan)
CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=thread
LDFLAGS += -fsanitize=thread
endif

CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)
ifneq ($(wildcard $(GPU_DEPS)/usr/lib/x86_64-linux-gnu/libcheck.a),)
CHECK_LIBS := -lcheck -lsubunit -lrt -lm
endif

# Generated dependency files keep incremental builds right.
DEPFLAGS = -MMD -MP

# V=1 shows whole command lines.
ifeq ($(V),1)
Q :=
qecho = @true
else
Q := @
qecho = @printf '  %-6s %s\n'
endif

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(qecho) CC $@
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<
