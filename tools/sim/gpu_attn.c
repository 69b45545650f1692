// SPDX-License-Identifier: MIT
/* gpu_attn.c - decode attention timed on kvmm's kernels (see gpu_attn.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_attn.h"

#ifdef KVMM_HAVE_CUDA
#include "cuda_driver.h"

struct sim_gpu_attn {
	struct kvmm_kernels *k;
	const struct kvmm_cuda_driver *drv;
	CUcontext ctx;
	CUevent ev[2];
	CUdeviceptr q, out, lens, ids;
	int32_t *hlens, *hids;
	struct kvmm_view kv, vv;
	uint32_t layers, q_heads, head_dim, elem_size, max_seqs;
	bool have_ev[2];
};

static int cu(struct sim_gpu_attn *g, CUresult r, const char *what, struct sim_err *err)
{
	char msg[160];

	if (r == CUDA_SUCCESS)
		return 0;
	kvmm_cuda_strerror(g->drv, r, msg, sizeof(msg));
	return sim_errf(err, kvmm_cuda_errno(r) ? kvmm_cuda_errno(r) : -EIO, "--gpu: %s: %s", what,
			msg);
}

int sim_gpu_attn_open(struct sim_gpu_attn **out, struct kvmm_backend *be, struct kvmm_cache *c,
		      const struct sim_model *m, uint32_t max_seqs, struct sim_err *err)
{
	struct sim_gpu_attn *g = calloc(1, sizeof(*g));
	struct sim_model_gpu mg;
	uint64_t qbytes;
	int ret;

	if (!g)
		return sim_errf(err, -ENOMEM, "--gpu: out of memory");
	*out = g;
	sim_model_per_gpu(m, &mg);
	g->layers = m->layers;
	g->q_heads = mg.q_heads;
	g->head_dim = m->head_dim;
	g->elem_size = m->elem_size;
	g->max_seqs = max_seqs;
	g->drv = kvmm_cuda_backend_driver(be, &g->ctx, NULL);
	if (!g->drv)
		return sim_errf(err, -ENOTSUP, "--gpu needs the CUDA backend");
	ret = kvmm_kernels_open(be, &g->k);
	if (ret)
		return sim_errf(err, ret, "--gpu: kvmm_kernels_open: %s", kvmm_strerror(ret));
	ret = kvmm_cuda_ctx_enter(g->drv, g->ctx);
	if (ret)
		return sim_errf(err, ret, "--gpu: entering the CUDA context: %s",
				kvmm_strerror(ret));
	ret = kvmm_cache_view(c, 0, KVMM_K, &g->kv);
	if (!ret)
		ret = kvmm_cache_view(c, 0, KVMM_V, &g->vv);
	if (ret)
		return sim_errf(err, ret, "--gpu: kvmm_cache_view: %s", kvmm_strerror(ret));
	qbytes = (uint64_t)max_seqs * g->q_heads * g->head_dim * g->elem_size;
	g->hlens = calloc(max_seqs, sizeof(*g->hlens));
	g->hids = calloc(max_seqs, sizeof(*g->hids));
	if (!g->hlens || !g->hids)
		return sim_errf(err, -ENOMEM, "--gpu: out of memory");
	if ((ret = cu(g, g->drv->cuMemAlloc(&g->q, qbytes), "cuMemAlloc", err)) ||
	    (ret = cu(g, g->drv->cuMemAlloc(&g->out, qbytes), "cuMemAlloc", err)) ||
	    (ret = cu(g, g->drv->cuMemAlloc(&g->lens, 4ull * max_seqs), "cuMemAlloc", err)) ||
	    (ret = cu(g, g->drv->cuMemAlloc(&g->ids, 4ull * max_seqs), "cuMemAlloc", err)) ||
	    (ret = cu(g, g->drv->cuMemsetD8(g->q, 0, qbytes), "cuMemsetD8", err)))
		return ret;
	for (int i = 0; i < 2; i++) {
		ret = cu(g, g->drv->cuEventCreate(&g->ev[i], CU_EVENT_DEFAULT), "cuEventCreate",
			 err);
		if (ret)
			return ret;
		g->have_ev[i] = true;
	}
	return 0;
}

int sim_gpu_attn_decode(struct sim_gpu_attn *g, const uint32_t *slots, const uint32_t *lens,
			uint32_t n, double *seconds, struct sim_err *err)
{
	struct kvmm_attn_params p = {
		.batch = n,
		.num_q_heads = g->q_heads,
		.head_dim = g->head_dim,
		.dtype = KVMM_DTYPE_BF16,
		.max_len = 1,
		.q = g->q,
		.out = g->out,
		.seq_lens = g->lens,
		.seq_ids = g->ids,
	};
	float ms = 0;
	int ret;

	*seconds = 0;
	if (!n)
		return 0;
	if (n > g->max_seqs)
		return sim_errf(err, -EINVAL, "--gpu: batch of %u over %u slots", n, g->max_seqs);
	for (uint32_t i = 0; i < n; i++) {
		g->hlens[i] = (int32_t)lens[i];
		g->hids[i] = (int32_t)slots[i];
		/* the longest sequence sizes the split across the context */
		if (lens[i] > p.max_len)
			p.max_len = lens[i];
	}
	ret = kvmm_cuda_ctx_enter(g->drv, g->ctx);
	if (ret)
		return sim_errf(err, ret, "--gpu: entering the CUDA context: %s",
				kvmm_strerror(ret));
	if ((ret = cu(g, g->drv->cuMemcpyHtoD(g->lens, g->hlens, 4ull * n), "cuMemcpyHtoD", err)) ||
	    (ret = cu(g, g->drv->cuMemcpyHtoD(g->ids, g->hids, 4ull * n), "cuMemcpyHtoD", err)) ||
	    (ret = cu(g, g->drv->cuEventRecord(g->ev[0], 0), "cuEventRecord", err)))
		return ret;
	ret = kvmm_attn_decode(g->k, &g->kv, &g->vv, &p, 0);
	if (ret)
		return sim_errf(err, ret, "--gpu: kvmm_attn_decode: %s",
				kvmm_kernels_last_error(g->k));
	if ((ret = cu(g, g->drv->cuEventRecord(g->ev[1], 0), "cuEventRecord", err)) ||
	    (ret = cu(g, g->drv->cuEventSynchronize(g->ev[1]), "decode attention", err)) ||
	    (ret = cu(g, g->drv->cuEventElapsedTime(&ms, g->ev[0], g->ev[1]), "cuEventElapsedTime",
		      err)))
		return ret;
	*seconds = (double)ms * 1e-3 * g->layers;
	return 0;
}

void sim_gpu_attn_close(struct sim_gpu_attn *g)
{
	if (!g)
		return;
	if (g->drv && !kvmm_cuda_ctx_enter(g->drv, g->ctx)) {
		for (int i = 0; i < 2; i++)
			if (g->have_ev[i])
				g->drv->cuEventDestroy(g->ev[i]);
		if (g->q)
			g->drv->cuMemFree(g->q);
		if (g->out)
			g->drv->cuMemFree(g->out);
		if (g->lens)
			g->drv->cuMemFree(g->lens);
		if (g->ids)
			g->drv->cuMemFree(g->ids);
	}
	kvmm_kernels_close(g->k);
	free(g->hlens);
	free(g->hids);
	free(g);
}

#else /* !KVMM_HAVE_CUDA */

struct sim_gpu_attn {
	int unused;
};

int sim_gpu_attn_open(struct sim_gpu_attn **out, struct kvmm_backend *be, struct kvmm_cache *c,
		      const struct sim_model *m, uint32_t max_seqs, struct sim_err *err)
{
	*out = NULL;
	return sim_errf(err, -ENOTSUP, "--gpu: this build of kvmm has no CUDA support");
}

int sim_gpu_attn_decode(struct sim_gpu_attn *g, const uint32_t *slots, const uint32_t *lens,
			uint32_t n, double *seconds, struct sim_err *err)
{
	return -ENOTSUP;
}

void sim_gpu_attn_close(struct sim_gpu_attn *g)
{
}

#endif /* KVMM_HAVE_CUDA */
