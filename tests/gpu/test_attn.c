// SPDX-License-Identifier: MIT
/*
 * test_attn.c - decode attention against a float64 CPU reference.
 *
 * Random configurations: every layout (with pages of 2 MiB and of odd
 * sizes, so tokens per page is anything from a few to hundreds and 16-token
 * steps cross pages), fp16 and bf16, head_dim 64 and 128, GQA ratios 1..32,
 * batch 1..256, lengths 0..max (rarely multiples of anything), slot
 * indirection, padded q/out rows, forced split counts.  Memory the kernel
 * must not read (other layers, tokens past a sequence's end, gaps) holds
 * NaNs, and the output is poisoned with NaNs before each launch, so a wrong
 * address or an unwritten output cannot pass.  The paged baseline is checked
 * the same way and must equal the view kernel bit for bit at equal splits.
 * Every configuration runs the pipelined kernel with both merges of split
 * partials (the last block alone, and the cluster kernels) and the plain
 * kernel; many splits over odd lengths (clusters partly or wholly past a
 * sequence's end, one cluster, many) have their own set.
 * Argument errors: -EINVAL with a message, nothing launched.
 */
#include <math.h>
#include <string.h>

#include "kvtest.h"

#ifdef KVMM_HAVE_CUDA

struct cfg {
	bool bf16;
	uint32_t d, hkv, group, batch, layers, max_tokens, max_seqs, splits;
	enum kvmm_layout layout;
	uint64_t page;
	float qamp;
	bool ids, pad;
	const int32_t *lens; /* [batch], or NULL: random lengths */
};

static const char *lname(enum kvmm_layout l)
{
	return l == KVMM_LAYOUT_LAYER_MAJOR   ? "layer"
	       : l == KVMM_LAYOUT_TOKEN_MAJOR ? "token"
					      : "page";
}

static CUdeviceptr dalloc(uint64_t n)
{
	CUdeviceptr p = 0;

	CU(kvt_drv->cuMemAlloc(&p, n ? n : 16));
	return p;
}

/* Host image of the whole allocation: NaN everywhere, then random K/V of
 * one layer for the tokens each used slot holds. */
static uint8_t *make_image(const struct kvmm_reflayout *l, const struct kvmm_view *kv,
			   const struct kvmm_view *vv, const int32_t *lens, const int32_t *ids,
			   uint32_t batch, bool bf16, struct kvt_rng *r)
{
	uint8_t *img = malloc(l->bytes);
	uint16_t *w = (uint16_t *)img;

	if (!img)
		return NULL;
	for (uint64_t i = 0; i < l->bytes / 2; i++)
		w[i] = KVT_NAN16;
	for (uint32_t b = 0; b < batch; b++) {
		uint32_t slot = ids ? (uint32_t)ids[b] : b;
		for (int32_t t = 0; t < lens[b]; t++)
			for (uint32_t h = 0; h < l->heads; h++)
				for (int s = 0; s < 2; s++) {
					uint16_t *e =
						(uint16_t *)(img + kvmm_view_addr(s ? vv : kv, slot,
										  (uint32_t)t, h));
					for (uint32_t i = 0; i < l->head_dim; i++)
						e[i] = kvt_f2h(kvt_rng_unit(r), bf16);
				}
	}
	return img;
}

/* Relative error of a batch of outputs whose rows are os elements apart. */
static double batch_err(const uint16_t *out, uint64_t os, const double *ref, uint32_t b,
			uint32_t hq, uint32_t d, bool bf16, uint64_t *bad)
{
	double num = 0, den = 0;

	*bad = 0;
	for (uint32_t i = 0; i < b; i++) {
		uint64_t bb;
		double e =
			kvt_rel_err(out + i * os, d, ref + (uint64_t)i * hq * d, hq, d, bf16, &bb);
		double rn = 0;
		for (uint64_t j = 0; j < (uint64_t)hq * d; j++)
			rn += ref[(uint64_t)i * hq * d + j] * ref[(uint64_t)i * hq * d + j];
		num += e * e * (rn > 0 ? rn : 1);
		den += rn;
		*bad += bb;
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Run one configuration through kvmm_attn_decode (and, for layer-major,
 * the paged baseline over the same logical KV). */
static void run_cfg(struct gt *t, struct kvmm_kernels *k, const struct cfg *c, struct kvt_rng *r)
{
	const uint32_t hq = c->hkv * c->group, d = c->d, b = c->batch;
	const uint64_t qs = (uint64_t)hq * d + (c->pad ? 8 * (1 + kvt_rng_below(r, 4)) : 0);
	const uint64_t os = (uint64_t)hq * d + (c->pad ? 8 * (1 + kvt_rng_below(r, 4)) : 0);
	struct kvmm_reflayout l;
	struct kvmm_view kv, vv, hkv, hvv;
	int32_t *lens = calloc(b, 4), *ids = calloc(b, 4), maxlen = 0;
	uint16_t *q = malloc(2 * qs * b), *out = malloc(2 * os * b);
	double *ref = malloc(sizeof(double) * b * hq * d);
	uint32_t layer;
	uint8_t *img;
	char name[200];
	int ret;

	if (kvmm_reflayout_init(&l, c->layout, c->layers, c->hkv, d, c->max_seqs, c->max_tokens,
				c->page)) {
		printf("Bail out! layout\n");
		exit(1);
	}
	for (uint32_t i = 0; i < b; i++) {
		uint32_t x = kvt_rng_below(r, 10);
		lens[i] = c->lens  ? c->lens[i]
			  : x == 0 ? 0
			  : x == 1 ? 1
			  : x == 2 ? (int32_t)c->max_tokens
				   : (int32_t)kvt_rng_below(r, c->max_tokens + 1);
		if (lens[i] > maxlen)
			maxlen = lens[i];
		ids[i] = (int32_t)i;
	}
	for (uint32_t i = b; c->ids && i > 1; i--) { /* shuffle slots */
		uint32_t j = kvt_rng_below(r, i);
		int32_t x = ids[i - 1];
		ids[i - 1] = ids[j];
		ids[j] = x;
	}
	if (c->ids) /* slots beyond the batch too */
		for (uint32_t i = 0; i < b; i++)
			ids[i] = (ids[i] + (int32_t)(c->max_seqs - b)) % (int32_t)c->max_seqs;
	layer = kvt_rng_below(r, c->layers);
	kvmm_reflayout_view(&l, 0, layer, KVMM_K, &hkv);
	kvmm_reflayout_view(&l, 0, layer, KVMM_V, &hvv);
	img = make_image(&l, &hkv, &hvv, lens, c->ids ? ids : NULL, b, c->bf16, r);
	for (uint64_t i = 0; i < qs * b; i++)
		q[i] = kvt_f2h(kvt_rng_unit(r) * c->qamp, c->bf16);

	CUdeviceptr dimg = dalloc(l.bytes), dq = dalloc(2 * qs * b), dout = dalloc(2 * os * b);
	CUdeviceptr dlens = dalloc(4 * b), dids = dalloc(4 * b);
	CU(kvt_drv->cuMemcpyHtoD(dimg, img, l.bytes));
	CU(kvt_drv->cuMemcpyHtoD(dq, q, 2 * qs * b));
	CU(kvt_drv->cuMemcpyHtoD(dlens, lens, 4 * b));
	CU(kvt_drv->cuMemcpyHtoD(dids, ids, 4 * b));
	CU(kvt_drv->cuMemsetD8(dout, 0xff, 2 * os * b)); /* NaN in fp16 and bf16 */
	kvmm_reflayout_view(&l, dimg, layer, KVMM_K, &kv);
	kvmm_reflayout_view(&l, dimg, layer, KVMM_V, &vv);

	struct kvmm_attn_params p = {
		.batch = b,
		.num_q_heads = hq,
		.head_dim = d,
		.dtype = c->bf16 ? KVMM_DTYPE_BF16 : KVMM_DTYPE_FP16,
		.max_len = (uint32_t)maxlen + kvt_rng_below(r, 3) * 17, /* a loose bound is fine */
		.num_splits = c->splits,
		.q = dq,
		.q_stride = c->pad ? qs : 0,
		.out = dout,
		.out_stride = c->pad ? os : 0,
		.seq_lens = dlens,
		.seq_ids = c->ids ? dids : 0,
	};
	if (p.max_len > c->max_tokens)
		p.max_len = c->max_tokens;
	kvt_attn_ref(q, qs, img, &hkv, &hvv, b, hq, lens, c->ids ? ids : NULL,
		     1.0 / sqrt((double)d), c->bf16, ref);
	const double tol = c->bf16 ? 1e-2 : 2e-3;
	uint64_t bad = 0;
	double err = 0;
	/* the kernel variants: pipelined (the default) with the cluster merge
	 * and with the single-block one, and plain */
	static const char *const vname[3] = {"", " block-merge", " plain"};
	for (int var = 0; var < 3; var++) {
		kvmm_kernels_set_pipelined(k, var < 2);
		kvmm_kernels_set_merge(k, var ? KVMM_ATTN_MERGE_BLOCK : KVMM_ATTN_MERGE_CLUSTER);
		CU(kvt_drv->cuMemsetD8(dout, 0xff, 2 * os * b));
		ret = kvmm_attn_decode(k, &kv, &vv, &p, 0);
		if (!ret)
			ret = kvmm_cuda_errno(kvt_drv->cuCtxSynchronize());
		CU(kvt_drv->cuMemcpyDtoH(out, dout, 2 * os * b));
		err = batch_err(out, os, ref, b, hq, d, c->bf16, &bad);
		snprintf(name, sizeof(name),
			 "%s-major %s d%u hkv%u g%u b%u maxlen%d tpp%u layers%u splits%u%s%s "
			 "qamp%.0f%s",
			 lname(c->layout), c->bf16 ? "bf16" : "fp16", d, c->hkv, c->group, b,
			 maxlen, kv.tokens_per_page, c->layers, c->splits, c->ids ? " ids" : "",
			 c->pad ? " padded" : "", c->qamp, vname[var]);
		GT_CHECK(t, ret == 0 && bad == 0 && err <= tol,
			 "%s: rel err %.2e (tol %.0e), %llu bad, ret %d %s", name, err, tol,
			 (unsigned long long)bad, ret, ret ? kvmm_kernels_last_error(k) : "");
	}
	kvmm_kernels_set_pipelined(k, 1);
	kvmm_kernels_set_merge(k, KVMM_ATTN_MERGE_AUTO);

	/* The paged baseline over the same logical KV (vLLM layout, shuffled
	 * blocks, NaN in unused blocks and block tails). */
	if (c->layout == KVMM_LAYOUT_LAYER_MAJOR && !c->ids && !c->pad) {
		const uint32_t bs = 16 * (1 + kvt_rng_below(r, 2));
		const uint32_t per = (c->max_tokens + bs - 1) / bs, nblk = b * per + 3;
		const uint64_t tok = (uint64_t)c->hkv * d * 2, blk = tok * bs;
		uint16_t *pool = malloc(2 * blk * nblk);
		int32_t *table = malloc(4ull * b * per), *perm = malloc(4ull * nblk);
		uint16_t *out2 = malloc(2 * os * b);

		for (uint32_t i = 0; i < nblk; i++)
			perm[i] = (int32_t)i;
		for (uint32_t i = nblk; i > 1; i--) {
			uint32_t j = kvt_rng_below(r, i);
			int32_t x = perm[i - 1];
			perm[i - 1] = perm[j];
			perm[j] = x;
		}
		for (uint64_t i = 0; i < blk * nblk; i++) /* 2 pools of blk*nblk bytes */
			pool[i] = KVT_NAN16;
		for (uint32_t i = 0; i < b; i++)
			for (uint32_t j = 0; j < per; j++)
				table[i * per + j] = perm[i * per + j];
		for (uint32_t i = 0; i < b; i++)
			for (int32_t tt = 0; tt < lens[i]; tt++)
				for (int s = 0; s < 2; s++) {
					uint8_t *dst = (uint8_t *)pool + (s ? blk * nblk : 0) +
						       (uint64_t)table[i * per + tt / bs] * blk +
						       (uint64_t)(tt % bs) * tok;
					memcpy(dst,
					       img + kvmm_view_addr(s ? &hvv : &hkv, i,
								    (uint32_t)tt, 0),
					       tok);
				}
		CUdeviceptr dpool = dalloc(2 * blk * nblk), dtab = dalloc(4ull * b * per);
		CU(kvt_drv->cuMemcpyHtoD(dpool, pool, 2 * blk * nblk));
		CU(kvt_drv->cuMemcpyHtoD(dtab, table, 4ull * b * per));
		CU(kvt_drv->cuMemsetD8(dout, 0xff, 2 * os * b));
		struct kvmm_paged_kv pk = {.k_pool = dpool,
					   .v_pool = dpool + blk * nblk,
					   .block_table = dtab,
					   .num_blocks = nblk,
					   .block_size = bs,
					   .num_kv_heads = c->hkv,
					   .table_stride = per};
		/* equal splits on both sides, so both must round identically;
		 * both merges (the paged kernel has cluster variants too) */
		struct kvmm_attn_params p2 = p;
		p2.num_splits = c->splits ? c->splits : 1 + kvt_rng_below(r, 8);
		for (int m = KVMM_ATTN_MERGE_BLOCK; m <= KVMM_ATTN_MERGE_CLUSTER; m++) {
			kvmm_kernels_set_merge(k, (enum kvmm_attn_merge)m);
			CU(kvt_drv->cuMemsetD8(dout, 0xff, 2 * os * b));
			ret = kvmm_attn_decode_paged(k, &pk, &p2, 0);
			if (!ret)
				ret = kvmm_cuda_errno(kvt_drv->cuCtxSynchronize());
			CU(kvt_drv->cuMemcpyDtoH(out2, dout, 2 * os * b));
			err = kvt_rel_err(out2, d, ref, b * hq, d, c->bf16, &bad);
			GT_CHECK(t, ret == 0 && bad == 0 && err <= tol,
				 "paged baseline bs%u %s%s: rel err %.2e, %llu bad, ret %d %s", bs,
				 name, m == KVMM_ATTN_MERGE_BLOCK ? " block-merge" : "", err,
				 (unsigned long long)bad, ret,
				 ret ? kvmm_kernels_last_error(k) : "");
			CU(kvt_drv->cuMemsetD8(dout, 0xff, 2 * os * b));
			ret = kvmm_attn_decode(k, &kv, &vv, &p2, 0);
			if (!ret)
				ret = kvmm_cuda_errno(kvt_drv->cuCtxSynchronize());
			CU(kvt_drv->cuMemcpyDtoH(out, dout, 2 * os * b));
			GT_CHECK(t, ret == 0 && !memcmp(out, out2, 2 * os * b),
				 "paged baseline == kvmm view bit for bit at %u splits%s (%s)",
				 p2.num_splits, m == KVMM_ATTN_MERGE_BLOCK ? " block-merge" : "",
				 name);
		}
		kvmm_kernels_set_merge(k, KVMM_ATTN_MERGE_AUTO);
		kvt_drv->cuMemFree(dpool);
		kvt_drv->cuMemFree(dtab);
		free(pool);
		free(table);
		free(perm);
		free(out2);
	}
	kvt_drv->cuMemFree(dimg);
	kvt_drv->cuMemFree(dq);
	kvt_drv->cuMemFree(dout);
	kvt_drv->cuMemFree(dlens);
	kvt_drv->cuMemFree(dids);
	free(img);
	free(lens);
	free(ids);
	free(q);
	free(out);
	free(ref);
}

static void random_cfg(struct cfg *c, struct kvt_rng *r, uint32_t i)
{
	static const uint32_t groups[] = {1, 2, 3, 4, 5, 8, 16, 20, 32};
	static const uint32_t hkvs[] = {1, 2, 4, 8};
	uint64_t tok_all;

	memset(c, 0, sizeof(*c));
	c->bf16 = kvt_rng_below(r, 2);
	c->d = kvt_rng_below(r, 2) ? 128 : 64;
	c->hkv = hkvs[kvt_rng_below(r, 4)];
	c->group = groups[kvt_rng_below(r, 9)];
	while (c->hkv * c->group > 64)
		c->hkv /= 2;
	c->layout = (enum kvmm_layout)(1 + i % 3);
	c->layers = 1 + kvt_rng_below(r, 3);
	switch (kvt_rng_below(r, 8)) {
	case 0:
		c->batch = 64 + kvt_rng_below(r, 193); /* up to 256 */
		c->max_tokens = 16 + kvt_rng_below(r, 300);
		break;
	case 1:
		c->batch = 1;
		c->max_tokens = 2000 + kvt_rng_below(r, 7000);
		break;
	default:
		c->batch = 1 + kvt_rng_below(r, 16);
		c->max_tokens = 1 + kvt_rng_below(r, 1500);
	}
	c->max_seqs = c->batch + kvt_rng_below(r, 4);
	tok_all = (uint64_t)c->hkv * c->d * 2 * 2 * c->layers;
	/* 2 MiB pages, or pages of 1.5..70 tokens (odd, not powers of two);
	 * large batches keep to small pages, so the host image stays small */
	if (c->batch < 64 && kvt_rng_below(r, 3) == 0)
		c->page = 2ull << 20;
	else
		c->page = (tok_all * (3 + kvt_rng_below(r, 137)) / 2 + 15) / 16 * 16;
	if (c->page < tok_all)
		c->page = tok_all;
	c->qamp = kvt_rng_below(r, 3) ? 1.f : 8.f; /* 8: peaky softmax */
	c->ids = kvt_rng_below(r, 3) == 0;
	c->pad = kvt_rng_below(r, 4) == 0;
	c->splits = kvt_rng_below(r, 4) == 0 ? 1 + kvt_rng_below(r, KVMM_ATTN_MAX_SPLITS) : 0;
}

static void test_errors(struct gt *t, struct kvmm_backend *be, struct kvmm_kernels *k)
{
	struct kvmm_backend_config hc = {.type = KVMM_BACKEND_HOST};
	struct kvmm_backend *host = NULL;
	struct kvmm_kernels *hk = (struct kvmm_kernels *)1;
	struct kvmm_reflayout l;
	struct kvmm_view kv, vv, bad;
	CUdeviceptr mem = dalloc(1 << 20);
	struct kvmm_attn_params p = {.batch = 2,
				     .num_q_heads = 8,
				     .head_dim = 128,
				     .dtype = KVMM_DTYPE_BF16,
				     .max_len = 64,
				     .q = mem,
				     .out = mem + 8192,
				     .seq_lens = mem + 16384};
	int ret;

	GT_CHECK(t, kvmm_kernels_open(NULL, &hk) == -EINVAL, "open(NULL) is -EINVAL");
	GT_CHECK(t, kvmm_backend_open(&hc, &host) == 0, "open a host backend");
	ret = kvmm_kernels_open(host, &hk);
	GT_CHECK(t, ret == -ENOTSUP && hk == NULL, "kernels on the host backend: -ENOTSUP (%d)",
		 ret);
	kvmm_backend_close(host);

	kvmm_reflayout_init(&l, KVMM_LAYOUT_TOKEN_MAJOR, 2, 2, 128, 4, 64, 2 << 20);
	kvmm_reflayout_view(&l, mem + 32768, 0, KVMM_K, &kv);
	kvmm_reflayout_view(&l, mem + 32768, 0, KVMM_V, &vv);
	/* (the views point past the 1 MiB buffer: nothing may launch) */
#define EXPECT_EINVAL(what, expr, word)                                                 \
	do {                                                                            \
		int __r = (expr);                                                       \
		GT_CHECK(t, __r == -EINVAL && strstr(kvmm_kernels_last_error(k), word), \
			 "%s: -EINVAL naming '%s' (%d: %s)", what, word, __r,           \
			 kvmm_kernels_last_error(k));                                   \
	} while (0)
	struct kvmm_attn_params x = p;
	x.head_dim = 96;
	EXPECT_EINVAL("head_dim 96", kvmm_attn_decode(k, &kv, &vv, &x, 0), "head_dim");
	x = p;
	x.num_q_heads = 7;
	EXPECT_EINVAL("7 query heads over 2 KV heads", kvmm_attn_decode(k, &kv, &vv, &x, 0),
		      "num_q_heads");
	x = p;
	x.q = mem + 2;
	EXPECT_EINVAL("misaligned q", kvmm_attn_decode(k, &kv, &vv, &x, 0), "aligned");
	x = p;
	x.max_len = 65;
	EXPECT_EINVAL("max_len over the view", kvmm_attn_decode(k, &kv, &vv, &x, 0), "max_len");
	x = p;
	x.flags = 4;
	EXPECT_EINVAL("unknown flags", kvmm_attn_decode(k, &kv, &vv, &x, 0), "flags");
	x = p;
	x.batch = 5;
	EXPECT_EINVAL("batch over the slots", kvmm_attn_decode(k, &kv, &vv, &x, 0), "batch");
	x = p;
	x.dtype = 7;
	EXPECT_EINVAL("dtype 7", kvmm_attn_decode(k, &kv, &vv, &x, 0), "dtype");
	x = p;
	x.seq_lens = 0;
	EXPECT_EINVAL("no seq_lens", kvmm_attn_decode(k, &kv, &vv, &x, 0), "seq_lens");
	bad = kv;
	bad.elem_size = 1;
	EXPECT_EINVAL("fp8 view", kvmm_attn_decode(k, &bad, &vv, &p, 0), "K view");
	bad = vv;
	bad.token_stride += 2;
	EXPECT_EINVAL("misaligned V stride", kvmm_attn_decode(k, &kv, &bad, &p, 0), "V view");
	bad = vv;
	bad.num_heads = 4;
	EXPECT_EINVAL("K/V head mismatch", kvmm_attn_decode(k, &kv, &bad, &p, 0), "disagree");
	EXPECT_EINVAL("NULL view", kvmm_attn_decode(k, NULL, &vv, &p, 0), "NULL");
	EXPECT_EINVAL("NULL params", kvmm_attn_decode(k, &kv, &vv, NULL, 0), "NULL");
	struct kvmm_paged_kv pk = {.k_pool = mem,
				   .v_pool = mem,
				   .block_table = mem,
				   .num_blocks = 4,
				   .block_size = 24,
				   .num_kv_heads = 2,
				   .table_stride = 8};
	EXPECT_EINVAL("block size 24", kvmm_attn_decode_paged(k, &pk, &p, 0), "block_size");
	pk.block_size = 16;
	pk.table_stride = 3;
	EXPECT_EINVAL("short block table", kvmm_attn_decode_paged(k, &pk, &p, 0), "table_stride");
	GT_CHECK(t, kvmm_cuda_errno(kvt_drv->cuCtxSynchronize()) == 0, "nothing bad was launched");
	kvt_drv->cuMemFree(mem);
	(void)be;
}

/* Entries longer than max_len or with a slot out of range get NaN; the
 * others are right and the next launch is unaffected (counters reset). */
static void test_bad_lengths(struct gt *t, struct kvmm_kernels *k, struct kvt_rng *r)
{
	struct kvmm_reflayout l;
	struct kvmm_view kv, vv, hkv, hvv;
	const uint32_t b = 4, hq = 8, d = 128;
	int32_t lens[4] = {300, 500, 250, 0}, ids[4] = {0, 1, 2, 7};
	uint16_t q[4 * 8 * 128], out[4 * 8 * 128];
	double ref[4 * 8 * 128];
	uint64_t bad;

	kvmm_reflayout_init(&l, KVMM_LAYOUT_LAYER_MAJOR, 1, 2, d, 8, 512, 2 << 20);
	kvmm_reflayout_view(&l, 0, 0, KVMM_K, &hkv);
	kvmm_reflayout_view(&l, 0, 0, KVMM_V, &hvv);
	int32_t full[8] = {500, 500, 500, 500, 500, 500, 500, 500};
	uint8_t *img = make_image(&l, &hkv, &hvv, full, NULL, 8, true, r);
	for (uint32_t i = 0; i < b * hq * d; i++)
		q[i] = kvt_f2h(kvt_rng_unit(r), true);
	CUdeviceptr dimg = dalloc(l.bytes), dq = dalloc(sizeof(q)), dout = dalloc(sizeof(out));
	CUdeviceptr dlens = dalloc(16), dids = dalloc(16);
	CU(kvt_drv->cuMemcpyHtoD(dimg, img, l.bytes));
	CU(kvt_drv->cuMemcpyHtoD(dq, q, sizeof(q)));
	CU(kvt_drv->cuMemcpyHtoD(dlens, lens, 16));
	CU(kvt_drv->cuMemcpyHtoD(dids, ids, 16));
	kvmm_reflayout_view(&l, dimg, 0, KVMM_K, &kv);
	kvmm_reflayout_view(&l, dimg, 0, KVMM_V, &vv);
	ids[3] = 9; /* out of range for 8 slots */
	CU(kvt_drv->cuMemcpyHtoD(dids, ids, 16));
	lens[3] = 20;
	CU(kvt_drv->cuMemcpyHtoD(dlens, lens, 16));
	struct kvmm_attn_params p = {.batch = b,
				     .num_q_heads = hq,
				     .head_dim = d,
				     .dtype = KVMM_DTYPE_BF16,
				     .max_len = 400,
				     .num_splits = 4,
				     .q = dq,
				     .out = dout,
				     .seq_lens = dlens,
				     .seq_ids = dids};
	for (int round = 0; round < 6; round++) {
		/* every variant (cluster merge, block merge, plain), twice each */
		kvmm_kernels_set_pipelined(k, round < 4);
		kvmm_kernels_set_merge(k,
				       round < 2 ? KVMM_ATTN_MERGE_CLUSTER : KVMM_ATTN_MERGE_BLOCK);
		p.num_splits = round & 1 ? 4 : 7;
		CU(kvt_drv->cuMemsetD8(dout, 0, sizeof(out)));
		int ret = kvmm_attn_decode(k, &kv, &vv, &p, 0);
		GT_CHECK(t, ret == 0 && kvmm_cuda_errno(kvt_drv->cuCtxSynchronize()) == 0,
			 "launch with bad entries, round %d", round);
		CU(kvt_drv->cuMemcpyDtoH(out, dout, sizeof(out)));
		int nan1 = 1, nan3 = 1;
		for (uint32_t i = 0; i < hq * d; i++) {
			nan1 &= isnan(kvt_h2f(out[1 * hq * d + i], true));
			nan3 &= isnan(kvt_h2f(out[3 * hq * d + i], true));
		}
		GT_CHECK(t, nan1 && nan3, "len over max_len and slot out of range give NaN");
		int32_t rl[2] = {300, 250}, ri[2] = {0, 2};
		uint16_t q2[2 * 8 * 128], o2[2 * 8 * 128];
		memcpy(q2, q, sizeof(q2) / 2);
		memcpy(q2 + hq * d, q + 2 * hq * d, sizeof(q2) / 2);
		memcpy(o2, out, sizeof(o2) / 2);
		memcpy(o2 + hq * d, out + 2 * hq * d, sizeof(o2) / 2);
		kvt_attn_ref(q2, hq * d, img, &hkv, &hvv, 2, hq, rl, ri, 1 / sqrt(128.0), true,
			     ref);
		double e = kvt_rel_err(o2, d, ref, 2 * hq, d, true, &bad);
		GT_CHECK(t, bad == 0 && e < 1e-2, "the good entries are right (%.2e)", e);
	}
	kvmm_kernels_set_pipelined(k, 1);
	kvmm_kernels_set_merge(k, KVMM_ATTN_MERGE_AUTO);
	kvt_drv->cuMemFree(dimg);
	kvt_drv->cuMemFree(dq);
	kvt_drv->cuMemFree(dout);
	kvt_drv->cuMemFree(dlens);
	kvt_drv->cuMemFree(dids);
	free(img);
}

/*
 * Many splits over odd lengths: sequences of 0, 1, 63, 65 tokens next to
 * ones of thousands, so that with 64-token chunks and up to 256 splits some
 * sequences fill one cluster partly, some end inside a cluster (idle blocks
 * that take part in its merge), some leave whole clusters idle, some span
 * up to 32 clusters; split counts that are not multiples of the cluster,
 * more than 16 query heads per KV head (two m tiles), head_dim 64 and 128.
 */
static void test_many_splits(struct gt *t, struct kvmm_kernels *k, struct kvt_rng *r)
{
	static const int32_t lens[6] = {16383, 0, 63, 1, 4097, 65};
	static const uint32_t splits[] = {0, 8, 9, 17, 63, 200, 256};
	static const uint32_t groups[] = {8, 4, 20, 1};

	for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
		struct cfg c = {.bf16 = i % 2 == 0,
				.d = i % 3 ? 128 : 64,
				.hkv = i % 2 ? 2 : 1,
				.group = groups[i % 4],
				.batch = 6,
				.layers = 1,
				.max_tokens = 16384,
				.max_seqs = 6,
				.splits = splits[i],
				.layout = (enum kvmm_layout)(1 + i % 3),
				.page = i % 3 == 2 ? 200 * 1024 : 2 << 20,
				.qamp = i == 3 ? 8.f : 1.f,
				.lens = lens};
		run_cfg(t, k, &c, r);
	}
}

int main(void)
{
	struct kvmm_backend *be;
	struct gt t = {0};
	struct kvt_rng r;
	struct kvmm_kernels *k = kvt_open(&t, &be);

	if (!k)
		return gt_done(&t);
	kvt_rng_init(&r, kvt_seed());
	printf("# seed 0x%llx\n", (unsigned long long)kvt_seed());
	/* the H100 runs the cluster kernels: they must be there */
	printf("# cluster kernels: %d / %d blocks resident (bf16 d128 view / table)\n",
	       k->attn_cl_slots[1][1][0], k->attn_cl_slots[1][1][1]);
	GT_CHECK(&t, k->attn_cl_slots[1][1][0] >= KVMM_ATTN_CLUSTER,
		 "the cluster kernels can run on this device");
	test_errors(&t, be, k);
	test_bad_lengths(&t, k, &r);
	test_many_splits(&t, k, &r);

	/* A fixed set first (the shapes of the benchmarks, short), then random. */
	struct cfg fixed[] = {
		{true, 128, 8, 4, 8, 2, 700, 8, 0, KVMM_LAYOUT_LAYER_MAJOR, 2 << 20, 1, false,
		 false, NULL},
		{true, 128, 8, 4, 8, 4, 700, 8, 0, KVMM_LAYOUT_TOKEN_MAJOR, 2 << 20, 1, false,
		 false, NULL},
		{true, 128, 8, 4, 8, 4, 700, 8, 0, KVMM_LAYOUT_PAGE_MAJOR, 128 << 10, 1, false,
		 false, NULL},
		{true, 128, 1, 8, 3, 5, 3000, 3, 0, KVMM_LAYOUT_PAGE_MAJOR, 2 << 20, 1, false,
		 false, NULL},
		{false, 64, 2, 1, 256, 1, 200, 256, 0, KVMM_LAYOUT_LAYER_MAJOR, 2 << 20, 1, true,
		 false, NULL},
		{false, 128, 4, 32, 2, 1, 1000, 2, 128, KVMM_LAYOUT_TOKEN_MAJOR, 2 << 20, 8, false,
		 true, NULL},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		run_cfg(&t, k, &fixed[i], &r);
	const uint32_t n = kvt_scaled(60);
	for (uint32_t i = 0; i < n; i++) {
		struct cfg c;
		random_cfg(&c, &r, i);
		run_cfg(&t, k, &c, &r);
	}
	return kvt_close(&t, k, be);
}
#endif /* KVMM_HAVE_CUDA (without it, kvtest.c's main skips) */
