# kernels/kernels.mk: build rules for the GPU kernel library, included by the top-level Makefile.
#
#   make kernels                          hipcc for AMD, HIP_ARCH (default gfx942)
#   make kernels HIP_PLATFORM=nvidia      nvcc for NVIDIA, NV_ARCH (default sm_90)
#   make kernels-test                     the C test driver (kernels/test) against the library
#   make test-rocm                        kernels, then go test -tags rocm ./...
#
# Both platforms build the same sources into kernels/build/libgreta_kernels.so with the same
# C ABI (kernels/greta_kernels.h), so a Go binary built against one runs over the other.

HIP_PLATFORM ?= amd
HIP_ARCH     ?= gfx942
NV_ARCH      ?= sm_90
HIPCC        ?= hipcc
NVCC         ?= nvcc
CXX          ?= g++
GO           ?= go

KERNELS_DIR   := kernels
KERNELS_BUILD := $(KERNELS_DIR)/build
KERNELS_LIB   := $(KERNELS_BUILD)/libgreta_kernels.so
KERNELS_SRC   := $(wildcard $(KERNELS_DIR)/*.hip)
KERNELS_HDR   := $(wildcard $(KERNELS_DIR)/*.h)
KERNELS_TEST  := $(KERNELS_BUILD)/kernel_test

ifeq ($(HIP_PLATFORM),nvidia)
KERNELS_CC    := $(NVCC) -x cu -D__HIP_PLATFORM_NVIDIA__ -arch=$(NV_ARCH) -O3 -std=c++17 \
	-Xcompiler -fPIC,-Wall -shared -Xlinker -soname=libgreta_kernels.so
else ifeq ($(HIP_PLATFORM),amd)
KERNELS_CC    := $(HIPCC) --offload-arch=$(HIP_ARCH) -O3 -std=c++17 -fPIC -Wall -shared \
	-Wl,-soname,libgreta_kernels.so
else
$(error HIP_PLATFORM=$(HIP_PLATFORM): want amd or nvidia)
endif

.PHONY: kernels kernels-test test-rocm kernels-clean

kernels: $(KERNELS_LIB) ## the GPU kernel library (HIP_PLATFORM=amd|nvidia, HIP_ARCH, NV_ARCH)

# The platform and target are part of the recipe: a stamp rebuilds when they change.
$(KERNELS_BUILD)/.config-$(HIP_PLATFORM)-$(HIP_ARCH)-$(NV_ARCH):
	@mkdir -p $(KERNELS_BUILD)
	@rm -f $(KERNELS_BUILD)/.config-*
	@touch $@

$(KERNELS_LIB): $(KERNELS_SRC) $(KERNELS_HDR) $(KERNELS_BUILD)/.config-$(HIP_PLATFORM)-$(HIP_ARCH)-$(NV_ARCH)
	$(KERNELS_CC) -o $@ $(KERNELS_SRC)

kernels-test: $(KERNELS_TEST) ## the C test driver of the kernels (run it on a GPU machine)

$(KERNELS_TEST): $(KERNELS_DIR)/test/kernel_test.cpp $(KERNELS_DIR)/greta_kernels.h $(KERNELS_LIB)
	$(CXX) -O2 -std=c++17 -Wall -ffp-contract=off -I$(KERNELS_DIR) -o $@ $< -L$(KERNELS_BUILD) -lgreta_kernels -lm

test-rocm: kernels ## kernels, then the whole suite with the HIP backend
	LD_LIBRARY_PATH=$(abspath $(KERNELS_BUILD))$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH} $(GO) test -tags rocm $(PKGS)

kernels-clean:
	rm -rf $(KERNELS_BUILD)
