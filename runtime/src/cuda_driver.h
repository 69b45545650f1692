/* SPDX-License-Identifier: MIT */
/*
 * cuda_driver.h - the CUDA driver API, loaded at run time.
 *
 * libkvmm never links libcuda: it dlopens libcuda.so.1 and resolves each
 * entry point with cuGetProcAddress (so the driver hands out the version of
 * each function that matches the headers we were built with), as PyTorch
 * does.  One build thus runs on machines with and without a GPU.  Types
 * come from cuda.h, so this file is compiled only with KVMM_HAVE_CUDA.
 */
#ifndef KVMM_CUDA_DRIVER_H
#define KVMM_CUDA_DRIVER_H

#ifdef KVMM_HAVE_CUDA
#include <cuda.h>

/* X(name): every driver function libkvmm uses. */
#define KVMM_CUDA_FUNCS(X)               \
	X(cuInit)                        \
	X(cuDriverGetVersion)            \
	X(cuDeviceGet)                   \
	X(cuDeviceGetCount)              \
	X(cuDeviceGetAttribute)          \
	X(cuDeviceGetName)               \
	X(cuDeviceGetPCIBusId)           \
	X(cuDeviceTotalMem)              \
	X(cuDevicePrimaryCtxRetain)      \
	X(cuDevicePrimaryCtxRelease)     \
	X(cuCtxSetCurrent)               \
	X(cuCtxGetCurrent)               \
	X(cuCtxSynchronize)              \
	X(cuGetErrorString)              \
	X(cuGetErrorName)                \
	X(cuMemGetAllocationGranularity) \
	X(cuMemAddressReserve)           \
	X(cuMemAddressFree)              \
	X(cuMemCreate)                   \
	X(cuMemRelease)                  \
	X(cuMemMap)                      \
	X(cuMemUnmap)                    \
	X(cuMemSetAccess)                \
	X(cuMemAlloc)                    \
	X(cuMemFree)                     \
	X(cuMemAllocHost)                \
	X(cuMemFreeHost)                 \
	X(cuMemHostRegister)             \
	X(cuMemHostUnregister)           \
	X(cuMemGetInfo)                  \
	X(cuMemcpyHtoD)                  \
	X(cuMemcpyDtoH)                  \
	X(cuMemcpyDtoD)                  \
	X(cuMemcpyHtoDAsync)             \
	X(cuMemcpyDtoHAsync)             \
	X(cuMemcpyDtoDAsync)             \
	X(cuMemsetD8)                    \
	X(cuMemsetD8Async)               \
	X(cuStreamCreate)                \
	X(cuStreamDestroy)               \
	X(cuStreamSynchronize)           \
	X(cuStreamQuery)                 \
	X(cuStreamWaitEvent)             \
	X(cuEventCreate)                 \
	X(cuEventDestroy)                \
	X(cuEventRecord)                 \
	X(cuEventSynchronize)            \
	X(cuEventQuery)                  \
	X(cuEventElapsedTime)            \
	X(cuModuleLoadData)              \
	X(cuModuleUnload)                \
	X(cuModuleGetFunction)           \
	X(cuFuncSetAttribute)            \
	X(cuLaunchKernel)                \
	X(cuStreamBeginCapture)          \
	X(cuStreamEndCapture)            \
	X(cuGraphInstantiateWithFlags)   \
	X(cuGraphLaunch)                 \
	X(cuGraphExecDestroy)            \
	X(cuGraphDestroy)                \
	X(cuOccupancyMaxActiveClusters)  \
	X(cuOccupancyMaxActiveBlocksPerMultiprocessor)

struct kvmm_cuda_driver {
	void *lib; /* dlopen handle */
	int version;
#define KVMM_CUDA_FIELD(name) __typeof__(&name) name;
	KVMM_CUDA_FUNCS(KVMM_CUDA_FIELD)
#undef KVMM_CUDA_FIELD
};

/*
 * Load libcuda.so.1 and resolve every function.  -ENODEV when the library
 * or a function is missing; errbuf (may be NULL) gets the reason.  Does not
 * call cuInit.
 */
int kvmm_cuda_driver_load(struct kvmm_cuda_driver *drv, char *errbuf, size_t errlen);
void kvmm_cuda_driver_unload(struct kvmm_cuda_driver *drv);

/* Map a CUresult to a negative errno (0 for CUDA_SUCCESS). */
int kvmm_cuda_errno(CUresult r);

/* "CUDA_ERROR_OUT_OF_MEMORY: out of memory" into buf. */
void kvmm_cuda_strerror(const struct kvmm_cuda_driver *drv, CUresult r, char *buf, size_t len);

/* Make ctx current on the calling thread if it is not (cheap when it is). */
int kvmm_cuda_ctx_enter(const struct kvmm_cuda_driver *drv, CUcontext ctx);

struct kvmm_backend;
/* The driver, context and device of a CUDA backend; NULL for any other
 * backend.  For libkvmm's kernels and tiers. */
const struct kvmm_cuda_driver *kvmm_cuda_backend_driver(struct kvmm_backend *be, CUcontext *ctx,
							CUdevice *dev);

#endif /* KVMM_HAVE_CUDA */
#endif /* KVMM_CUDA_DRIVER_H */
