// SPDX-License-Identifier: MIT
/* cuda_driver.c - dlopen libcuda and resolve the entry points kvmm uses. */
#ifdef KVMM_HAVE_CUDA
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cuda_driver.h"

typedef CUresult (*get_proc_v2_fn)(const char *, void **, int, cuuint64_t,
				   CUdriverProcAddressQueryResult *);
typedef CUresult (*get_proc_v1_fn)(const char *, void **, int, cuuint64_t);

/*
 * The CUDA version whose ABI of a function matches the cuda.h prototype its
 * field is typed with.  cuGetProcAddress hands out the newest variant up to
 * the version asked for, and CUDA 13.0 gave cuCtxSynchronize a context
 * argument (cudaTypedefs.h: PFN_cuCtxSynchronize_v13000) that the plain
 * prototype in cuda.h does not have: calling that variant with no argument
 * fails with CUDA_ERROR_CONTEXT_IS_DESTROYED.  Every other function kvmm uses
 * has the same signature in its newest variant (checked against
 * cudaTypedefs.h of CUDA 13.0).
 */
static int abi_version(const char *name)
{
	return strcmp(name, "cuCtxSynchronize") ? CUDA_VERSION : 12000;
}

int kvmm_cuda_driver_load(struct kvmm_cuda_driver *drv, char *errbuf, size_t errlen)
{
	get_proc_v2_fn get2;
	get_proc_v1_fn get1;
	const char *missing = NULL;

	memset(drv, 0, sizeof(*drv));
	drv->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!drv->lib) {
		if (errbuf)
			snprintf(errbuf, errlen, "libcuda.so.1 not loadable: %s", dlerror());
		return -ENODEV;
	}
	get2 = (get_proc_v2_fn)dlsym(drv->lib, "cuGetProcAddress_v2");
	get1 = (get_proc_v1_fn)dlsym(drv->lib, "cuGetProcAddress");
	if (!get2 && !get1) {
		missing = "cuGetProcAddress";
		goto fail;
	}

	/* Ask for the ABI of the headers we compiled against. */
#define KVMM_CUDA_RESOLVE(name)                                                                  \
	do {                                                                                     \
		void *p = NULL;                                                                  \
		CUresult r =                                                                     \
			get2 ? get2(#name, &p, abi_version(#name), CU_GET_PROC_ADDRESS_DEFAULT,  \
				    NULL)                                                        \
			     : get1(#name, &p, abi_version(#name), CU_GET_PROC_ADDRESS_DEFAULT); \
		if (r != CUDA_SUCCESS || !p) {                                                   \
			missing = #name;                                                         \
			goto fail;                                                               \
		}                                                                                \
		*(void **)&drv->name = p;                                                        \
	} while (0);
	KVMM_CUDA_FUNCS(KVMM_CUDA_RESOLVE)
#undef KVMM_CUDA_RESOLVE

	if (drv->cuDriverGetVersion(&drv->version) != CUDA_SUCCESS)
		drv->version = 0;
	return 0;
fail:
	if (errbuf)
		snprintf(errbuf, errlen, "libcuda.so.1 lacks %s", missing);
	dlclose(drv->lib);
	memset(drv, 0, sizeof(*drv));
	return -ENODEV;
}

void kvmm_cuda_driver_unload(struct kvmm_cuda_driver *drv)
{
	if (drv && drv->lib)
		dlclose(drv->lib);
	if (drv)
		memset(drv, 0, sizeof(*drv));
}

int kvmm_cuda_errno(CUresult r)
{
	switch (r) {
	case CUDA_SUCCESS:
		return 0;
	case CUDA_ERROR_OUT_OF_MEMORY:
		return -ENOMEM;
	case CUDA_ERROR_INVALID_VALUE:
	case CUDA_ERROR_INVALID_HANDLE:
		return -EINVAL;
	case CUDA_ERROR_NO_DEVICE:
	case CUDA_ERROR_INVALID_DEVICE:
	case CUDA_ERROR_NOT_INITIALIZED:
	case CUDA_ERROR_DEINITIALIZED:
	case CUDA_ERROR_STUB_LIBRARY:
		return -ENODEV;
	case CUDA_ERROR_NOT_SUPPORTED:
	case CUDA_ERROR_NOT_PERMITTED:
		return -ENOTSUP;
	case CUDA_ERROR_NOT_READY:
		return -EAGAIN;
	case CUDA_ERROR_ALREADY_MAPPED:
	case CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED:
		return -EEXIST;
	case CUDA_ERROR_LAUNCH_TIMEOUT:
		return -ETIMEDOUT;
	case CUDA_ERROR_ILLEGAL_ADDRESS:
	case CUDA_ERROR_LAUNCH_FAILED:
	case CUDA_ERROR_ECC_UNCORRECTABLE:
		return -EFAULT;
	default:
		return -EIO;
	}
}

void kvmm_cuda_strerror(const struct kvmm_cuda_driver *drv, CUresult r, char *buf, size_t len)
{
	const char *name = NULL, *str = NULL;

	if (drv && drv->cuGetErrorName)
		drv->cuGetErrorName(r, &name);
	if (drv && drv->cuGetErrorString)
		drv->cuGetErrorString(r, &str);
	snprintf(buf, len, "%s: %s", name ? name : "CUDA error", str ? str : "unknown");
}

int kvmm_cuda_ctx_enter(const struct kvmm_cuda_driver *drv, CUcontext ctx)
{
	CUcontext cur = NULL;

	if (drv->cuCtxGetCurrent(&cur) == CUDA_SUCCESS && cur == ctx)
		return 0;
	return kvmm_cuda_errno(drv->cuCtxSetCurrent(ctx));
}
#endif /* KVMM_HAVE_CUDA */
