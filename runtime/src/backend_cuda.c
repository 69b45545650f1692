// SPDX-License-Identifier: MIT
/*
 * backend_cuda.c - the CUDA driver's virtual memory management API.
 *
 * Pages are cuMemCreate allocations of the granularity (2 MiB on the H100)
 * pinned on the device; a reservation is cuMemAddressReserve; map/unmap and
 * access are cuMemMap/cuMemUnmap/cuMemSetAccess.  The driver is dlopen'ed
 * (cuda_driver.c) and the device's primary context is used, so kvmm shares
 * memory and streams with PyTorch and any runtime-API code in the process.
 */
#ifdef KVMM_HAVE_CUDA
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda_driver.h"

struct cuda_priv {
	struct kvmm_cuda_driver drv;
	CUdevice dev;
	CUcontext ctx;
	CUmemAllocationProp prop;
};

/* Enter the context and turn a failing CUresult into -errno + error text. */
#define CU_CALL(be, p, call)                                                              \
	({                                                                                \
		int __ret = kvmm_cuda_ctx_enter(&(p)->drv, (p)->ctx);                     \
		if (!__ret) {                                                             \
			CUresult __r = (call);                                            \
			if (__r != CUDA_SUCCESS) {                                        \
				char __msg[128];                                          \
				kvmm_cuda_strerror(&(p)->drv, __r, __msg, sizeof(__msg)); \
				kvmm_be_set_error(be, "%s: %s", #call, __msg);            \
				__ret = kvmm_cuda_errno(__r);                             \
			}                                                                 \
		}                                                                         \
		__ret;                                                                    \
	})

static int cuda_open(struct kvmm_backend *be, const struct kvmm_backend_config *cfg)
{
	struct cuda_priv *p;
	char err[128];
	size_t gran = 0;
	int n = 0, ret;
	CUresult r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ret = kvmm_cuda_driver_load(&p->drv, err, sizeof(err));
	if (ret) {
		kvmm_be_set_error(be, "%s", err);
		free(p);
		return ret;
	}
	r = p->drv.cuInit(0);
	if (r == CUDA_SUCCESS)
		r = p->drv.cuDeviceGetCount(&n);
	if (r != CUDA_SUCCESS || n <= cfg->device) {
		if (r != CUDA_SUCCESS)
			kvmm_cuda_strerror(&p->drv, r, err, sizeof(err));
		else
			snprintf(err, sizeof(err), "no CUDA device %d (%d present)", cfg->device,
				 n);
		kvmm_be_set_error(be, "%s", err);
		ret = r != CUDA_SUCCESS ? kvmm_cuda_errno(r) : -ENODEV;
		if (ret != -ENOMEM)
			ret = -ENODEV;
		goto fail;
	}
	r = p->drv.cuDeviceGet(&p->dev, cfg->device);
	if (r == CUDA_SUCCESS)
		r = p->drv.cuDevicePrimaryCtxRetain(&p->ctx, p->dev);
	if (r != CUDA_SUCCESS) {
		kvmm_cuda_strerror(&p->drv, r, err, sizeof(err));
		kvmm_be_set_error(be, "device %d: %s", cfg->device, err);
		ret = -ENODEV;
		goto fail;
	}
	p->prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
	p->prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	p->prop.location.id = p->dev;
	be->priv = p;
	ret = CU_CALL(be, p,
		      p->drv.cuMemGetAllocationGranularity(&gran, &p->prop,
							   CU_MEM_ALLOC_GRANULARITY_MINIMUM));
	if (ret)
		goto fail_ctx;
	if (!be->page_size)
		be->page_size = gran;
	if (!gran || be->page_size % gran) {
		kvmm_be_set_error(be, "page size %llu is not a multiple of the granularity %zu",
				  (unsigned long long)be->page_size, gran);
		ret = -EINVAL;
		goto fail_ctx;
	}
	return 0;
fail_ctx:
	p->drv.cuDevicePrimaryCtxRelease(p->dev);
fail:
	be->priv = NULL;
	kvmm_cuda_driver_unload(&p->drv);
	free(p);
	return ret;
}

static void cuda_close(struct kvmm_backend *be)
{
	struct cuda_priv *p = be->priv;

	if (!p)
		return;
	p->drv.cuDevicePrimaryCtxRelease(p->dev);
	kvmm_cuda_driver_unload(&p->drv);
	free(p);
	be->priv = NULL;
}

static int cuda_reserve(struct kvmm_backend *be, uint64_t size, uint64_t align, uint64_t *va)
{
	struct cuda_priv *p = be->priv;
	CUdeviceptr ptr = 0;
	int ret;

	if (!size || size % be->page_size || !va)
		return -EINVAL;
	if (align && (align & (align - 1)))
		return -EINVAL;
	ret = CU_CALL(be, p, p->drv.cuMemAddressReserve(&ptr, size, align, 0, 0));
	if (ret == -ENOMEM)
		ret = -E2BIG;
	if (!ret)
		*va = ptr;
	return ret;
}

static int cuda_release_va(struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	struct cuda_priv *p = be->priv;

	if (!va || !size)
		return -EINVAL;
	return CU_CALL(be, p, p->drv.cuMemAddressFree(va, size));
}

static int cuda_create(struct kvmm_backend *be, kvmm_phys_t *page)
{
	struct cuda_priv *p = be->priv;
	CUmemGenericAllocationHandle h = 0;
	int ret;

	ret = CU_CALL(be, p, p->drv.cuMemCreate(&h, be->page_size, &p->prop, 0));
	if (!ret)
		*page = h;
	return ret;
}

static int cuda_destroy(struct kvmm_backend *be, kvmm_phys_t page)
{
	struct cuda_priv *p = be->priv;

	return CU_CALL(be, p, p->drv.cuMemRelease(page));
}

static int cuda_map(struct kvmm_backend *be, uint64_t va, kvmm_phys_t page)
{
	struct cuda_priv *p = be->priv;

	if (!va || va % be->page_size)
		return -EINVAL;
	return CU_CALL(be, p, p->drv.cuMemMap(va, be->page_size, 0, page, 0));
}

static int cuda_set_access(struct kvmm_backend *be, uint64_t va, uint64_t size, enum kvmm_prot prot)
{
	struct cuda_priv *p = be->priv;
	CUmemAccessDesc d = {0};

	if (!va || !size || va % be->page_size || size % be->page_size)
		return -EINVAL;
	d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
	d.location.id = p->dev;
	d.flags = prot == KVMM_PROT_READ ? CU_MEM_ACCESS_FLAGS_PROT_READ
					 : CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
	return CU_CALL(be, p, p->drv.cuMemSetAccess(va, size, &d, 1));
}

static int cuda_unmap(struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	struct cuda_priv *p = be->priv;

	if (!va || !size || va % be->page_size || size % be->page_size)
		return -EINVAL;
	return CU_CALL(be, p, p->drv.cuMemUnmap(va, size));
}

static int cuda_copy_htod(struct kvmm_backend *be, uint64_t dst, const void *src, size_t n)
{
	struct cuda_priv *p = be->priv;

	return CU_CALL(be, p, p->drv.cuMemcpyHtoD(dst, src, n));
}

static int cuda_copy_dtoh(struct kvmm_backend *be, void *dst, uint64_t src, size_t n)
{
	struct cuda_priv *p = be->priv;

	return CU_CALL(be, p, p->drv.cuMemcpyDtoH(dst, src, n));
}

static int cuda_copy_dtod(struct kvmm_backend *be, uint64_t dst, uint64_t src, size_t n)
{
	struct cuda_priv *p = be->priv;
	int ret = CU_CALL(be, p, p->drv.cuMemcpyDtoD(dst, src, n));

	/* cuMemcpyDtoD is asynchronous with respect to the host; the ops
	 * contract is synchronous copies. */
	return ret ? ret : CU_CALL(be, p, p->drv.cuCtxSynchronize());
}

static int cuda_fill(struct kvmm_backend *be, uint64_t dst, int byte, size_t n)
{
	struct cuda_priv *p = be->priv;
	int ret = CU_CALL(be, p, p->drv.cuMemsetD8(dst, (unsigned char)byte, n));

	return ret ? ret : CU_CALL(be, p, p->drv.cuCtxSynchronize());
}

static int cuda_sync(struct kvmm_backend *be)
{
	struct cuda_priv *p = be->priv;

	return CU_CALL(be, p, p->drv.cuCtxSynchronize());
}

const struct kvmm_cuda_driver *kvmm_cuda_backend_driver(struct kvmm_backend *be, CUcontext *ctx,
							CUdevice *dev)
{
	struct cuda_priv *p;

	if (!be || be->ops != &kvmm_cuda_backend_ops)
		return NULL;
	p = be->priv;
	if (ctx)
		*ctx = p->ctx;
	if (dev)
		*dev = p->dev;
	return &p->drv;
}

const struct kvmm_backend_ops kvmm_cuda_backend_ops = {
	.name = "cuda",
	.type = KVMM_BACKEND_CUDA,
	.open = cuda_open,
	.close = cuda_close,
	.reserve = cuda_reserve,
	.release_va = cuda_release_va,
	.create = cuda_create,
	.destroy = cuda_destroy,
	.map = cuda_map,
	.set_access = cuda_set_access,
	.unmap = cuda_unmap,
	.copy_htod = cuda_copy_htod,
	.copy_dtoh = cuda_copy_dtoh,
	.copy_dtod = cuda_copy_dtod,
	.fill = cuda_fill,
	.sync = cuda_sync,
};
#endif /* KVMM_HAVE_CUDA */
