// SPDX-License-Identifier: MIT
/*
 * test_attn_cache.c - decode attention over real kvmm caches on the CUDA
 * backend (VMM pages mapped as sequences grow): for each layout, sequences
 * of different lengths are admitted, grown with kvmm_step, filled with
 * kvmm_seq_write, and kvmm_attn_decode over kvmm_cache_view() must equal the
 * float64 reference of the same data, with both kernel variants.  Also: the
 * views of a cache are the reference layouts the benchmarks run on.
 */
#include <math.h>
#include <string.h>

#include "kvtest.h"

#ifdef KVMM_HAVE_CUDA

struct shape {
	const char *name;
	uint32_t layers, hq, hkv, d;
	bool bf16;
};

static void run(struct gt *t, struct kvmm_backend *be, struct kvmm_kernels *k,
		const struct shape *sh, enum kvmm_layout layout, struct kvt_rng *r)
{
	const uint32_t nseq = 5, max_tokens = 4100,
		       layer = sh->layers / 2 + 1 < sh->layers ? sh->layers / 2 + 1 : 0;
	struct kvmm_cache_config cfg = {
		.shape = {sh->layers, sh->hkv, sh->d, 2},
		.layout = layout,
		.max_seqs = 8,
		.max_tokens = max_tokens,
		.budget_bytes = 8ull << 30,
		.flags = KVMM_CACHE_NO_MAPPER,
	};
	struct kvmm_cache *c = NULL;
	struct kvmm_cache_info info;
	struct kvmm_reflayout l;
	struct kvmm_view kv, vv, hkv, hvv, rk;
	struct kvmm_step_entry steps[5];
	int32_t lens[5] = {4100, 1, 777, 2049, 16}, ids[5];
	const uint64_t row = (uint64_t)sh->hkv * sh->d * 2;
	char name[160];
	int ret;

	snprintf(name, sizeof(name), "%s %s", sh->name, kvmm_layout_name(layout));
	ret = kvmm_cache_create(be, &cfg, &c);
	GT_CHECK(t, ret == 0, "%s: create a cache (%d %s)", name, ret, kvmm_backend_last_error(be));
	if (ret)
		return;
	kvmm_cache_get_info(c, &info);
	/* the benchmarks' reference layout is the cache's own geometry */
	kvmm_reflayout_init(&l, layout, sh->layers, sh->hkv, sh->d, cfg.max_seqs, max_tokens,
			    info.page_size);
	kvmm_cache_view(c, layer, KVMM_V, &vv);
	{
		struct kvmm_view c0;
		kvmm_cache_view(c, 0, KVMM_K, &c0);
		kvmm_reflayout_view(&l, c0.base, layer, KVMM_V, &rk);
		GT_CHECK(t, !memcmp(&rk, &vv, sizeof(rk)) && l.bytes <= info.va_bytes,
			 "%s: cache views == reference layout views", name);
	}
	kvmm_cache_view(c, layer, KVMM_K, &kv);
	kvmm_reflayout_view(&l, 0, layer, KVMM_K, &hkv);
	kvmm_reflayout_view(&l, 0, layer, KVMM_V, &hvv);

	/* host image of what the kernel will read, at view-relative offsets */
	uint8_t *img = malloc(l.bytes);
	uint16_t *buf = malloc(row * max_tokens);
	for (uint32_t s = 0; s < nseq; s++) {
		uint32_t seq;
		ret = kvmm_seq_open(c, (uint32_t)lens[s], &seq);
		if (!ret)
			ret = kvmm_seq_reserve(c, seq, (uint32_t)lens[s]);
		ids[s] = (int32_t)seq;
		steps[s] = (struct kvmm_step_entry){seq, (uint32_t)lens[s]};
		for (int side = 0; side < 2 && !ret; side++) {
			for (int32_t i = 0; i < lens[s]; i++)
				for (uint64_t e = 0; e < row / 2; e++)
					buf[i * row / 2 + e] = kvt_f2h(kvt_rng_unit(r), sh->bf16);
			ret = kvmm_seq_write(c, seq, layer, side ? KVMM_V : KVMM_K, 0,
					     (uint32_t)lens[s], buf);
			for (int32_t i = 0; i < lens[s] && !ret; i++)
				memcpy(img + kvmm_view_addr(side ? &hvv : &hkv, seq, (uint32_t)i,
							    0),
				       buf + i * row / 2, row);
		}
		if (ret)
			break;
	}
	if (!ret)
		ret = kvmm_step(c, steps, nseq);
	GT_CHECK(t, ret == 0, "%s: %u sequences admitted, grown and written (%d)", name, nseq, ret);

	const uint32_t hq = sh->hq, d = sh->d;
	uint16_t *q = malloc(2ull * nseq * hq * d), *out = malloc(2ull * nseq * hq * d);
	double *ref = malloc(sizeof(double) * nseq * hq * d);
	for (uint64_t i = 0; i < (uint64_t)nseq * hq * d; i++)
		q[i] = kvt_f2h(kvt_rng_unit(r), sh->bf16);
	CUdeviceptr dq, dout, dlens, dids;
	CU(kvt_drv->cuMemAlloc(&dq, 2ull * nseq * hq * d));
	CU(kvt_drv->cuMemAlloc(&dout, 2ull * nseq * hq * d));
	CU(kvt_drv->cuMemAlloc(&dlens, 4 * nseq));
	CU(kvt_drv->cuMemAlloc(&dids, 4 * nseq));
	CU(kvt_drv->cuMemcpyHtoD(dq, q, 2ull * nseq * hq * d));
	CU(kvt_drv->cuMemcpyHtoD(dlens, lens, 4 * nseq));
	CU(kvt_drv->cuMemcpyHtoD(dids, ids, 4 * nseq));
	kvt_attn_ref(q, (uint64_t)hq * d, img, &hkv, &hvv, nseq, hq, lens, ids,
		     1.0 / sqrt((double)d), sh->bf16, ref);
	/* pipelined with the cluster merge, with the block merge; plain */
	for (int var = 0; var < 3 && !ret; var++) {
		const int plain = var == 2;
		struct kvmm_attn_params p = {.batch = nseq,
					     .num_q_heads = hq,
					     .head_dim = d,
					     .dtype = sh->bf16 ? KVMM_DTYPE_BF16 : KVMM_DTYPE_FP16,
					     .max_len = max_tokens,
					     .q = dq,
					     .out = dout,
					     .seq_lens = dlens,
					     .seq_ids = dids};
		uint64_t bad;
		kvmm_kernels_set_pipelined(k, !plain);
		kvmm_kernels_set_merge(k, var ? KVMM_ATTN_MERGE_BLOCK : KVMM_ATTN_MERGE_CLUSTER);
		CU(kvt_drv->cuMemsetD8(dout, 0xff, 2ull * nseq * hq * d));
		ret = kvmm_attn_decode(k, &kv, &vv, &p, 0);
		if (!ret)
			ret = kvmm_cuda_errno(kvt_drv->cuCtxSynchronize());
		CU(kvt_drv->cuMemcpyDtoH(out, dout, 2ull * nseq * hq * d));
		double e = kvt_rel_err(out, d, ref, nseq * hq, d, sh->bf16, &bad);
		GT_CHECK(t, ret == 0 && bad == 0 && e < (sh->bf16 ? 1e-2 : 2e-3),
			 "%s%s: decode over the cache's views: rel err %.2e, %llu bad (%d %s)",
			 name,
			 var == 2 ? " plain"
			 : var	  ? " block-merge"
				  : "",
			 e, (unsigned long long)bad, ret, ret ? kvmm_kernels_last_error(k) : "");
	}
	kvmm_kernels_set_pipelined(k, 1);
	kvmm_kernels_set_merge(k, KVMM_ATTN_MERGE_AUTO);
	kvt_drv->cuMemFree(dq);
	kvt_drv->cuMemFree(dout);
	kvt_drv->cuMemFree(dlens);
	kvt_drv->cuMemFree(dids);
	free(q);
	free(out);
	free(ref);
	free(img);
	free(buf);
	kvmm_cache_destroy(c);
}

int main(void)
{
	struct kvmm_backend *be;
	struct gt t = {0};
	struct kvt_rng r;
	static const struct shape shapes[] = {
		{"llama3-8b", 32, 32, 8, 128, true},
		{"llama3-70b-tp8", 80, 8, 1, 128, true},
		{"small-d64-fp16", 3, 12, 2, 64, false},
	};
	static const enum kvmm_layout layouts[] = {KVMM_LAYOUT_LAYER_MAJOR, KVMM_LAYOUT_TOKEN_MAJOR,
						   KVMM_LAYOUT_PAGE_MAJOR};
	struct kvmm_kernels *k = kvt_open(&t, &be);

	if (!k)
		return gt_done(&t);
	kvt_rng_init(&r, kvt_seed());
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (size_t i = 0; i < 3; i++)
			run(&t, be, k, &shapes[s], layouts[i], &r);
	return kvt_close(&t, k, be);
}
#endif /* KVMM_HAVE_CUDA (without it, kvtest.c's main skips) */
