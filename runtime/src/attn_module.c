// SPDX-License-Identifier: MIT
/*
 * attn_module.c - struct kvmm_kernels: the embedded fatbin loaded into the
 * device's primary context with cuModuleLoadData (no cudart), its kernels
 * looked up by name, the attention workspace, and launching.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_internal.h"
#include "backend.h"

#if defined(KVMM_HAVE_CUDA) && defined(KVMM_HAVE_KERNELS)

extern const unsigned char kvmm_kernels_image[];
extern const size_t kvmm_kernels_image_size;

void kvmm_kernels_set_error(struct kvmm_kernels *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(k->err, sizeof(k->err), fmt, ap);
	va_end(ap);
}

int kvmm_kernels_cu(struct kvmm_kernels *k, CUresult r, const char *what)
{
	char msg[128];

	if (r == CUDA_SUCCESS)
		return 0;
	kvmm_cuda_strerror(k->drv, r, msg, sizeof(msg));
	kvmm_kernels_set_error(k, "%s: %s", what, msg);
	if (r == CUDA_ERROR_NO_BINARY_FOR_GPU)
		return -ENOTSUP;
	return kvmm_cuda_errno(r);
}

int kvmm_kernels_launch(struct kvmm_kernels *k, CUfunction f, unsigned gx, unsigned gy, unsigned gz,
			unsigned threads, void *params, uint64_t stream, const char *what)
{
	void *args[1] = {params};
	int ret = kvmm_cuda_ctx_enter(k->drv, k->ctx);

	if (ret) {
		kvmm_kernels_set_error(k, "%s: cannot make the device's context current", what);
		return ret;
	}
	return kvmm_kernels_cu(k,
			       k->drv->cuLaunchKernel(f, gx, gy, gz, threads, 1, 1, 0,
						      (CUstream)(uintptr_t)stream, args, NULL),
			       what);
}

static int get_fn(struct kvmm_kernels *k, CUfunction *f, const char *name)
{
	return kvmm_kernels_cu(k, k->drv->cuModuleGetFunction(f, k->mod, name), name);
}

/*
 * A cluster kernel and how many of its blocks can be resident at once.  The
 * clusters of a launch never wait for each other, so this only informs the
 * planner; a device or driver that cannot run them gets 0 (never planned).
 */
static int load_cluster_fn(struct kvmm_kernels *k, int b, int d, int t, const char *name)
{
	CUlaunchConfig cfg;
	int ncl = 0, ret = get_fn(k, &k->attn_cl[b][d][t], name);

	if (ret)
		return ret;
	memset(&cfg, 0, sizeof(cfg));
	cfg.gridDimX = KVMM_ATTN_CLUSTER * 64;
	cfg.gridDimY = cfg.gridDimZ = 1;
	cfg.blockDimX = KVMM_ATTN_WARPS * 32;
	cfg.blockDimY = cfg.blockDimZ = 1;
	if (k->drv->cuOccupancyMaxActiveClusters(&ncl, k->attn_cl[b][d][t], &cfg) != CUDA_SUCCESS)
		ncl = 0;
	k->attn_cl_slots[b][d][t] = ncl * KVMM_ATTN_CLUSTER;
	return 0;
}

static int load_functions(struct kvmm_kernels *k)
{
	static const char *const dt[2] = {"f16", "bf16"};
	static const char *const qn[2] = {"int8", "fp8"};
	char name[64];
	int ret = 0;

	for (int b = 0; b < 2 && !ret; b++) {
		for (int d = 0; d < 2 && !ret; d++) {
			for (int t = 0; t < 4 && !ret; t++) {
				const int tb = t & 1, pp = t >> 1;
				snprintf(name, sizeof(name), "kvmm_attn_decode_%s_d%d_%s%s", dt[b],
					 d ? 128 : 64, tb ? "table" : "view", pp ? "_pipe" : "");
				ret = get_fn(k, &k->attn[b][d][tb][pp], name);
				if (!ret)
					ret = kvmm_kernels_cu(
						k,
						k->drv->cuOccupancyMaxActiveBlocksPerMultiprocessor(
							&k->attn_occ[b][d][tb][pp],
							k->attn[b][d][tb][pp], KVMM_ATTN_WARPS * 32,
							0),
						"occupancy");
				if (!ret && k->attn_occ[b][d][tb][pp] < 1)
					k->attn_occ[b][d][tb][pp] = 1;
				if (!ret && pp) {
					snprintf(name, sizeof(name),
						 "kvmm_attn_decode_%s_d%d_%s_pipe_cl%d", dt[b],
						 d ? 128 : 64, tb ? "table" : "view",
						 KVMM_ATTN_CLUSTER);
					ret = load_cluster_fn(k, b, d, tb, name);
				}
			}
		}
		for (int q = 0; q < 2 && !ret; q++) {
			snprintf(name, sizeof(name), "kvmm_pack_%s_%s", qn[q], dt[b]);
			ret = get_fn(k, &k->pack_q[q][b], name);
			snprintf(name, sizeof(name), "kvmm_unpack_%s_%s", qn[q], dt[b]);
			if (!ret)
				ret = get_fn(k, &k->unpack_q[q][b], name);
		}
		snprintf(name, sizeof(name), "kvmm_fill_random_%s", dt[b]);
		if (!ret)
			ret = get_fn(k, &k->fill[b], name);
	}
	if (!ret)
		ret = get_fn(k, &k->pack_copy, "kvmm_pack_copy");
	if (!ret)
		ret = get_fn(k, &k->stream_copy, "kvmm_stream_copy");
	if (!ret)
		ret = get_fn(k, &k->stream_read, "kvmm_stream_read");
	if (!ret)
		ret = get_fn(k, &k->unpack_copy, "kvmm_unpack_copy");
	return ret;
}

/* Partials (blocks' or clusters'), their (max, sum) rows (one copy per
 * block of a cluster: each merges its own slice) and the arrival counters
 * (one per group, or per group and cluster rank). */
static int alloc_workspace(struct kvmm_kernels *k)
{
	const uint64_t acc = (uint64_t)KVMM_ATTN_WS_ITEMS * KVMM_ATTN_MTILE * 128 * 4;
	const uint64_t ml = (uint64_t)KVMM_ATTN_WS_ITEMS * KVMM_ATTN_CLUSTER * KVMM_ATTN_MTILE * 8;
	const uint64_t cnt = (uint64_t)KVMM_ATTN_WS_ITEMS * KVMM_ATTN_CLUSTER * 4;
	int ret;

	ret = kvmm_kernels_cu(k, k->drv->cuMemAlloc(&k->ws, acc + ml + cnt), "workspace");
	if (ret)
		return ret;
	k->ws_acc = k->ws;
	k->ws_ml = k->ws + acc;
	k->ws_count = k->ws + acc + ml;
	/* The counters reset themselves after each launch; they start at 0. */
	ret = kvmm_kernels_cu(k, k->drv->cuMemsetD8(k->ws_count, 0, cnt), "workspace");
	if (!ret)
		ret = kvmm_kernels_cu(k, k->drv->cuCtxSynchronize(), "workspace");
	return ret;
}

int kvmm_kernels_open(struct kvmm_backend *be, struct kvmm_kernels **out)
{
	struct kvmm_kernels *k;
	int ret;

	if (!be || !out)
		return -EINVAL;
	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->be = be;
	k->pipe = 1;
	k->drv = kvmm_cuda_backend_driver(be, &k->ctx, &k->dev);
	if (!k->drv) {
		kvmm_be_set_error(be, "kvmm kernels: the %s backend is not a CUDA device",
				  kvmm_backend_name(be));
		free(k);
		return -ENOTSUP;
	}
	ret = kvmm_cuda_ctx_enter(k->drv, k->ctx);
	if (ret) {
		kvmm_kernels_set_error(k, "cannot make the device's context current");
		goto fail;
	}
	ret = kvmm_kernels_cu(k, k->drv->cuModuleLoadData(&k->mod, kvmm_kernels_image),
			      "loading the kernels");
	if (ret)
		goto fail;
	ret = kvmm_kernels_cu(k,
			      k->drv->cuDeviceGetAttribute(&k->num_sms,
							   CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
							   k->dev),
			      "device attributes");
	if (!ret)
		ret = load_functions(k);
	if (!ret)
		ret = alloc_workspace(k);
	if (ret)
		goto fail;
	*out = k;
	return 0;
fail:
	/* No object to hold the text: the backend's last error does. */
	kvmm_be_set_error(be, "kvmm kernels: %s", k->err);
	if (k->ws)
		k->drv->cuMemFree(k->ws);
	if (k->mod)
		k->drv->cuModuleUnload(k->mod);
	free(k);
	return ret;
}

void kvmm_kernels_close(struct kvmm_kernels *k)
{
	if (!k)
		return;
	if (!kvmm_cuda_ctx_enter(k->drv, k->ctx)) {
		k->drv->cuCtxSynchronize();
		if (k->ws)
			k->drv->cuMemFree(k->ws);
		k->drv->cuModuleUnload(k->mod);
	}
	free(k);
}

const char *kvmm_kernels_last_error(const struct kvmm_kernels *k)
{
	return k ? k->err : "";
}

void kvmm_kernels_set_pipelined(struct kvmm_kernels *k, int on)
{
	k->pipe = !!on;
}

void kvmm_kernels_set_merge(struct kvmm_kernels *k, enum kvmm_attn_merge m)
{
	k->merge = m;
}

int kvmm_kernels_stream(struct kvmm_kernels *k, bool copy, uint64_t src, uint64_t dst, uint64_t n,
			uint64_t stream)
{
	struct kvmm_stream_kparams kp = {.src = src, .dst = dst, .n16 = n / 16};

	if (!src || !dst || (src | dst | n) % 16)
		return -EINVAL;
	/* 4 blocks of 256 per SM: 1 MiB of sink holds every thread's word */
	return kvmm_kernels_launch(k, copy ? k->stream_copy : k->stream_read,
				   (unsigned)k->num_sms * 4, 1, 1, 256, &kp, stream,
				   copy ? "stream copy" : "stream read");
}

int kvmm_kernels_fill_random(struct kvmm_kernels *k, uint64_t dst, uint64_t n,
			     enum kvmm_dtype dtype, uint64_t seed, float amp, uint64_t stream)
{
	struct kvmm_fill_kparams kp = {.dst = dst, .n = n, .seed = seed, .amp = amp};
	uint64_t blocks = (n / 8 + 255) / 256, cap = (uint64_t)k->num_sms * 8;

	if (!dst || dst % 16 || n % 8 || (dtype != KVMM_DTYPE_FP16 && dtype != KVMM_DTYPE_BF16))
		return -EINVAL;
	if (!n)
		return 0;
	return kvmm_kernels_launch(k, k->fill[dtype == KVMM_DTYPE_BF16],
				   (unsigned)(blocks < cap ? blocks : cap), 1, 1, 256, &kp, stream,
				   "fill");
}

#else /* no CUDA kernels in this build */

int kvmm_kernels_open(struct kvmm_backend *be, struct kvmm_kernels **out)
{
	if (!be || !out)
		return -EINVAL;
	*out = NULL;
	kvmm_be_set_error(be, "kvmm kernels: libkvmm was built without CUDA kernels (no nvcc)");
	return -ENOTSUP;
}

void kvmm_kernels_close(struct kvmm_kernels *k)
{
	(void)k;
}

const char *kvmm_kernels_last_error(const struct kvmm_kernels *k)
{
	(void)k;
	return "";
}

#endif
