// SPDX-License-Identifier: MIT
/*
 * tier_copy.c - the tiers' copy engine: CUDA streams and events through
 * the dlopen'ed driver, or the backend's synchronous copies.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cuda_driver.h"
#include "tier_copy.h"

struct tier_copy {
	struct kvmm_backend *be;
#ifdef KVMM_HAVE_CUDA
	const struct kvmm_cuda_driver *drv;
	CUcontext ctx;
	CUstream stream[2];
#endif
	/* first error of a synchronous copy, per direction, until synced */
	_Atomic int err[2];
};

int tier_copy_create(struct kvmm_backend *be, struct tier_copy **out)
{
	struct tier_copy *tc = calloc(1, sizeof(*tc));

	if (!tc)
		return -ENOMEM;
	tc->be = be;
#ifdef KVMM_HAVE_CUDA
	tc->drv = kvmm_cuda_backend_driver(be, &tc->ctx, NULL);
	if (tc->drv) {
		int ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);

		for (int i = 0; i < 2 && !ret; i++)
			ret = kvmm_cuda_errno(
				tc->drv->cuStreamCreate(&tc->stream[i], CU_STREAM_NON_BLOCKING));
		if (ret) {
			tier_copy_destroy(tc);
			return ret;
		}
	}
#endif
	*out = tc;
	return 0;
}

void tier_copy_destroy(struct tier_copy *tc)
{
	if (!tc)
		return;
#ifdef KVMM_HAVE_CUDA
	if (tc->drv && !kvmm_cuda_ctx_enter(tc->drv, tc->ctx)) {
		for (int i = 0; i < 2; i++) {
			if (!tc->stream[i])
				continue;
			tc->drv->cuStreamSynchronize(tc->stream[i]);
			tc->drv->cuStreamDestroy(tc->stream[i]);
		}
	}
#endif
	free(tc);
}

int tier_copy_is_async(const struct tier_copy *tc)
{
#ifdef KVMM_HAVE_CUDA
	return tc->drv != NULL;
#else
	return 0;
#endif
}

int tier_copy_queue(struct tier_copy *tc, enum tier_dir dir, uint64_t dev, void *host, uint64_t n)
{
	int ret;

#ifdef KVMM_HAVE_CUDA
	if (tc->drv) {
		CUresult r;

		ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);
		if (ret)
			return ret;
		r = dir == TIER_D2H ? tc->drv->cuMemcpyDtoHAsync(host, dev, n, tc->stream[dir])
				    : tc->drv->cuMemcpyHtoDAsync(dev, host, n, tc->stream[dir]);
		return kvmm_cuda_errno(r);
	}
#endif
	ret = dir == TIER_D2H ? kvmm_be_copy_dtoh(tc->be, host, dev, n)
			      : kvmm_be_copy_htod(tc->be, dev, host, n);
	if (ret) {
		int zero = 0;

		atomic_compare_exchange_strong(&tc->err[dir], &zero, ret);
	}
	return ret;
}

int tier_copy_sync(struct tier_copy *tc, enum tier_dir dir)
{
#ifdef KVMM_HAVE_CUDA
	if (tc->drv) {
		int ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);

		return ret ? ret : kvmm_cuda_errno(tc->drv->cuStreamSynchronize(tc->stream[dir]));
	}
#endif
	return atomic_exchange(&tc->err[dir], 0);
}

int tier_copy_record(struct tier_copy *tc, enum tier_dir dir, uint64_t *ev)
{
	*ev = 0;
#ifdef KVMM_HAVE_CUDA
	if (tc->drv) {
		CUevent e;
		int ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);

		if (!ret)
			ret = kvmm_cuda_errno(tc->drv->cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
		if (ret)
			return ret;
		ret = kvmm_cuda_errno(tc->drv->cuEventRecord(e, tc->stream[dir]));
		if (ret) {
			tc->drv->cuEventDestroy(e);
			return ret;
		}
		*ev = (uint64_t)(uintptr_t)e;
	}
#endif
	return 0;
}

int tier_copy_wait(struct tier_copy *tc, uint64_t ev)
{
#ifdef KVMM_HAVE_CUDA
	if (tc->drv && ev) {
		int ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);

		return ret ? ret
			   : kvmm_cuda_errno(tc->drv->cuEventSynchronize((CUevent)(uintptr_t)ev));
	}
#endif
	return 0;
}

int tier_copy_query(struct tier_copy *tc, uint64_t ev)
{
#ifdef KVMM_HAVE_CUDA
	if (tc->drv && ev) {
		CUresult r;
		int ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);

		if (ret)
			return ret;
		r = tc->drv->cuEventQuery((CUevent)(uintptr_t)ev);
		if (r == CUDA_ERROR_NOT_READY)
			return 0;
		return r == CUDA_SUCCESS ? 1 : kvmm_cuda_errno(r);
	}
#endif
	return 1;
}

void tier_copy_event_free(struct tier_copy *tc, uint64_t ev)
{
#ifdef KVMM_HAVE_CUDA
	if (tc->drv && ev && !kvmm_cuda_ctx_enter(tc->drv, tc->ctx))
		tc->drv->cuEventDestroy((CUevent)(uintptr_t)ev);
#endif
}
