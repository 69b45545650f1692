# kvmm top-level Makefile.  The two commands a new user needs:
#   make run    installs what is missing, builds, runs the main job
#   make test   installs what is missing, builds, runs every test stage
# The module is built from the top-level Kbuild:  make module  (or
# make -C <kernel build dir> M=$PWD).
#
# When invoked by Kbuild (M=...), only the Kbuild file matters.
ifneq ($(KERNELRELEASE),)
include $(src)/Kbuild
else

.DEFAULT_GOAL := all
SHELL := /bin/bash
MAKEFLAGS += --no-builtin-rules
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

include mk/config.mk
include mk/runtime.mk
include mk/tools.mk
include mk/tests.mk
-include mk/sim.mk
-include mk/kmod.mk
-include mk/vm.mk
-include mk/tiers.mk

all: runtime tools unit-bins gpu-bins
	@if [ "$(HAVE_CUDA)" != 1 ]; then echo "note: no CUDA headers in $(CUDA_HOME): built without the CUDA backend"; \
	elif [ -z "$(NVCC)" ]; then echo "note: no nvcc: built without the CUDA kernels"; fi

deps:
	@scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@scripts/run.sh

test: deps
	@scripts/test-all.sh

test-unit: runtime unit-bins
	@scripts/test-stage.sh unit
test-asan:
	@$(MAKE) --no-print-directory -j$(JOBS) VARIANT=asan runtime unit-bins
	@scripts/test-stage.sh asan
test-tsan:
	@$(MAKE) --no-print-directory -j$(JOBS) VARIANT=tsan runtime unit-bins
	@scripts/test-stage.sh tsan
test-valgrind: runtime unit-bins
	@scripts/test-stage.sh valgrind
test-gpu: runtime gpu-bins
	@scripts/test-stage.sh gpu
test-python: runtime
	@scripts/test-stage.sh python

lint:
	@scripts/lint.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h' | grep -v '^kmod/' | grep -v '^uapi/')

bench: all
	@scripts/bench.sh $(BENCH)

# kvmm.ko, its udev rule and kvmmctl (mk/kmod.mk); DESTDIR= for packaging
install: install-kmod

gpu-test:
	@scripts/gpu-test.sh $(GPU_TEST_ARGS)

clean:
	rm -rf build
	-$(MAKE) --no-print-directory module-clean 2>/dev/null

.PHONY: all deps run test test-unit test-asan test-tsan test-valgrind test-gpu test-python \
	lint format bench gpu-test clean install
endif
