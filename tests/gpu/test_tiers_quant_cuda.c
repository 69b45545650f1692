// SPDX-License-Identifier: MIT
/*
 * test_tiers_quant_cuda.c - quantize-on-spill on a real GPU:
 *  - the pack kernels and the CPU codec (tier_quant.c) quantize to the same
 *    bytes and dequantize to the same values (INT8 and FP8, fp16 and bf16),
 *    so a record is the same whoever wrote it;
 *  - the tiers with FP8 and INT8 on the CUDA backend, every layout: blocks
 *    spilled through the pack kernels (half the bytes over PCIe), restored
 *    progressively and layer-wise, every element within the documented
 *    bound; a restart finds the quantized records on disk;
 *  - records the GPU wrote restore on the host backend (CPU codec) to the
 *    same values.
 * KVMM_GPUTEST_HOST=1 runs the tiers part on the host backend.  Skips
 * (exit 77) without a CUDA device.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_driver.h"
#include "gputest.h"
#include "kvmm.h"
#include "tier_quant.h"

#define NPROMPT 3
#define NBLK	4

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	return x ^ (x >> 33);
}

/* Element i (of a token's heads * head_dim) of token t, layer l, K/V kv
 * of prompt p: magnitudes from 1e-2 to 1e3 by row (token x head), some
 * rows zero. */
static float value(uint32_t p, uint32_t t, uint32_t l, uint32_t kv, uint32_t i, uint32_t hd)
{
	uint64_t base = ((uint64_t)p << 48) ^ ((uint64_t)t << 20) ^ (l << 8) ^ (kv << 4);
	uint64_t h = mix(base ^ i), row = mix(base ^ (i / hd << 1) ^ 0x5555);
	double amp = pow(10.0, -2.0 + (double)(row % 500) / 100.0);

	if (row % 13 == 0)
		return 0;
	return (float)((((double)(h >> 11) / 9007199254740992.0) * 2 - 1) * amp);
}

static uint16_t to_bf16(float x)
{
	return tier_f32_to_bf16(x);
}

/* ---- the kernels and the CPU codec agree --------------------------------- */

#ifdef KVMM_HAVE_CUDA
static void codecs_agree(struct gt *t, struct kvmm_backend *be)
{
	CUcontext ctx;
	const struct kvmm_cuda_driver *d = kvmm_cuda_backend_driver(be, &ctx, NULL);
	const uint32_t E = 128, rows = 8192; /* 2 MiB of KV */
	const uint64_t raw = 2ull * E * rows, qb = tier_quant_bytes(raw, E);
	uint16_t *in = malloc(raw), *out_gpu = malloc(raw), *out_cpu = malloc(raw);
	unsigned char *q_gpu = malloc(qb), *q_cpu = malloc(qb);
	struct kvmm_kernels *k = NULL;
	CUdeviceptr dblk = 0, dstage = 0;
	int ret = d ? kvmm_cuda_ctx_enter(d, ctx) : -ENODEV;

	if (!ret)
		ret = kvmm_kernels_open(be, &k);
	if (ret == -ENOTSUP) {
		printf("# built without the kernels: the codec comparison is not run\n");
		goto out;
	}
	if (!ret)
		ret = kvmm_cuda_errno(d->cuMemAlloc(&dblk, raw));
	if (!ret)
		ret = kvmm_cuda_errno(d->cuMemAlloc(&dstage, qb + 256));
	GT_CHECK(t, ret == 0, "kernels and device buffers (%d)", ret);
	for (uint32_t kind = TIER_QUANT_INT8; !ret && kind <= TIER_QUANT_FP8; kind++) {
		for (uint32_t dtype = TIER_DTYPE_FP16; !ret && dtype <= TIER_DTYPE_BF16; dtype++) {
			struct kvmm_pack_run run = {.addr = dblk, .bytes = raw};
			struct kvmm_pack_params p = {.runs = &run,
						     .nruns = 1,
						     .quant = kind,
						     .dtype = dtype,
						     .row_elems = E,
						     .staging = dstage,
						     .staging_bytes = qb};
			uint64_t qdiff = 0, vdiff = 0, bad = 0;

			for (uint32_t r = 0; r < rows; r++)
				for (uint32_t i = 0; i < E; i++) {
					float x = value(kind, r, dtype, 0, r * E + i, E);

					in[r * E + i] = dtype == TIER_DTYPE_BF16
								? to_bf16(x)
								: tier_f32_to_f16(x);
				}
			/* device: pack; the CPU: encode the same bytes */
			ret = kvmm_cuda_errno(d->cuMemcpyHtoD(dblk, in, raw));
			if (!ret)
				ret = kvmm_cuda_errno(d->cuMemsetD8(dstage, 0, qb));
			if (!ret)
				ret = kvmm_pack(k, &p, 0);
			if (!ret)
				ret = kvmm_cuda_errno(d->cuMemcpyDtoH(q_gpu, dstage, qb));
			if (!ret)
				ret = tier_quant_encode(kind, dtype, E, in, raw, q_cpu);
			for (uint64_t b = 0; !ret && b < qb; b++)
				qdiff += q_gpu[b] != q_cpu[b];
			/* the CPU payload unpacked on the device, the device's
			 * decoded on the CPU */
			if (!ret)
				ret = kvmm_cuda_errno(d->cuMemcpyHtoD(dstage, q_cpu, qb));
			if (!ret)
				ret = kvmm_unpack(k, &p, 0);
			if (!ret)
				ret = kvmm_cuda_errno(d->cuMemcpyDtoH(out_gpu, dblk, raw));
			if (!ret)
				ret = tier_quant_decode(kind, dtype, E, q_gpu, raw, out_cpu);
			for (uint64_t e = 0, amax_row = UINT64_MAX; !ret && e < raw / 2; e++) {
				static float amax;
				float x = dtype == TIER_DTYPE_BF16 ? tier_bf16_to_f32(in[e])
								   : tier_f16_to_f32(in[e]);
				float y = dtype == TIER_DTYPE_BF16 ? tier_bf16_to_f32(out_gpu[e])
								   : tier_f16_to_f32(out_gpu[e]);

				if (e / E != amax_row) {
					amax_row = e / E;
					amax = 0;
					for (uint32_t i = 0; i < E; i++) {
						uint16_t h = in[amax_row * E + i];

						amax = fmaxf(amax,
							     fabsf(dtype == TIER_DTYPE_BF16
									   ? tier_bf16_to_f32(h)
									   : tier_f16_to_f32(h)));
					}
				}
				vdiff += out_gpu[e] != out_cpu[e];
				bad += !tier_quant_within(kind, dtype, x, y, amax);
			}
			GT_CHECK(t, !ret && !qdiff,
				 "%s %s: the pack kernel and the CPU codec write the same %llu "
				 "bytes (%llu differ, %d)",
				 kind == TIER_QUANT_FP8 ? "FP8" : "INT8",
				 dtype == TIER_DTYPE_BF16 ? "bf16" : "fp16", (unsigned long long)qb,
				 (unsigned long long)qdiff, ret);
			GT_CHECK(t, !ret && !vdiff && !bad,
				 "%s %s: unpack on the GPU and decode on the CPU give the same "
				 "values, within the bound (%llu differ, %llu outside)",
				 kind == TIER_QUANT_FP8 ? "FP8" : "INT8",
				 dtype == TIER_DTYPE_BF16 ? "bf16" : "fp16",
				 (unsigned long long)vdiff, (unsigned long long)bad);
		}
	}
out:
	if (dblk)
		d->cuMemFree(dblk);
	if (dstage)
		d->cuMemFree(dstage);
	kvmm_kernels_close(k);
	free(in);
	free(out_gpu);
	free(out_cpu);
	free(q_gpu);
	free(q_cpu);
}
#endif

/* ---- the tiers with quantized records ---------------------------------- */

struct ctx {
	struct kvmm_cache *c;
	struct kvmm_cache_info info;
	uint32_t kind;
	uint32_t *tok[NPROMPT];
	uint16_t *buf;
};

static uint32_t per_token(const struct ctx *x)
{
	return x->info.shape.num_kv_heads * x->info.shape.head_dim;
}

static int fill(struct ctx *x, uint32_t p)
{
	uint32_t n = NBLK * x->info.tokens_per_block, s, hd = x->info.shape.head_dim;
	struct kvmm_step_entry e;
	int ret = kvmm_seq_open(x->c, n, &s);

	if (ret)
		return ret;
	e.seq = s;
	e.len = n;
	ret = kvmm_step(x->c, &e, 1);
	for (uint32_t l = 0; l < x->info.shape.num_layers && !ret; l++)
		for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
			for (uint32_t tk = 0; tk < n; tk++)
				for (uint32_t i = 0; i < per_token(x); i++)
					x->buf[(size_t)tk * per_token(x) + i] =
						to_bf16(value(p, tk, l, kv, i, hd));
			ret = kvmm_seq_write(x->c, s, l, kv, 0, n, x->buf);
		}
	if (!ret)
		ret = kvmm_prefix_insert(x->c, s, NULL, x->tok[p], n) == (int)n ? 0 : -1;
	kvmm_seq_close(x->c, s);
	return ret;
}

/* Elements of tokens [0, n) of seq s outside the bound (or -1). */
static int64_t outside(struct ctx *x, uint32_t s, uint32_t p, uint32_t n)
{
	uint32_t hd = x->info.shape.head_dim, per = per_token(x);
	int64_t bad = 0;

	for (uint32_t l = 0; l < x->info.shape.num_layers; l++)
		for (uint32_t kv = 0; kv < 2; kv++) {
			if (kvmm_seq_read(x->c, s, l, kv, 0, n, x->buf))
				return -1;
			for (uint32_t tk = 0; tk < n; tk++)
				for (uint32_t h0 = 0; h0 < per; h0 += hd) {
					float amax = 0;

					for (uint32_t i = h0; i < h0 + hd; i++)
						amax = fmaxf(amax,
							     fabsf(tier_bf16_to_f32(to_bf16(
								     value(p, tk, l, kv, i, hd)))));
					for (uint32_t i = h0; i < h0 + hd; i++) {
						float v = tier_bf16_to_f32(
							to_bf16(value(p, tk, l, kv, i, hd)));
						float y = tier_bf16_to_f32(
							x->buf[(size_t)tk * per + i]);

						bad += !tier_quant_within(x->kind, TIER_DTYPE_BF16,
									  v, y, amax);
					}
				}
		}
	return bad;
}

static struct kvmm_cache *make_cache(struct kvmm_backend *be, enum kvmm_layout layout,
				     struct kvmm_cache_info *info)
{
	struct kvmm_cache_config cc = {
		.shape = {.num_layers = 4, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.layout = layout,
		.max_seqs = 4,
		.max_tokens = 8192,
		.budget_bytes = 1ull << 40};
	struct kvmm_cache *c = NULL;

	/* geometry first, then the budget in blocks */
	if (kvmm_cache_create(be, &cc, &c))
		return NULL;
	kvmm_cache_get_info(c, info);
	kvmm_cache_destroy(c);
	c = NULL;
	cc.budget_bytes = (uint64_t)(NPROMPT * NBLK + 4 * NBLK + 4) * info->block_bytes;
	if (kvmm_cache_create(be, &cc, &c) || kvmm_prefix_enable(c, NULL)) {
		kvmm_cache_destroy(c);
		return NULL;
	}
	return c;
}

static int enable(struct ctx *x, const char *dir, uint32_t flags)
{
	uint64_t rec = x->info.block_bytes / 2 + (1u << 20);
	struct kvmm_tiers_config tc = {.host_bytes = 2ull * NBLK * rec,
				       .host_policy = KVMM_WRITE_BACK,
				       .disk_policy = KVMM_WRITE_THROUGH,
				       .disk_dir = dir,
				       .disk_bytes = 4096 + 2ull * NPROMPT * NBLK * rec,
				       .encoding = x->kind == TIER_QUANT_FP8 ? KVMM_SPILL_FP8
									     : KVMM_SPILL_INT8,
				       .kv_dtype = KVMM_DTYPE_BF16,
				       .flags = flags};

	return kvmm_tiers_enable(x->c, &tc);
}

/* Restore prompt p (progressive, or layer-wise) and count the elements
 * outside the bound (-1: not all restored). */
static int64_t restore(struct ctx *x, uint32_t p, bool layered)
{
	uint32_t n = NBLK * x->info.tokens_per_block, found = 0, m = 0, s;
	struct kvmm_prefetch *pf = NULL;
	struct kvmm_prefix_handle *h = NULL;
	int64_t bad = -1;

	if (kvmm_prefix_prefetch(x->c, NULL, x->tok[p], n, layered ? KVMM_PREFETCH_LAYERWISE : 0,
				 &pf, &found) ||
	    !pf || found != n)
		goto out;
	if (layered) {
		if (kvmm_seq_open(x->c, n, &s))
			goto out;
		if (kvmm_seq_attach_prefetch(x->c, s, pf) == (int)n) {
			int err = 0;

			for (uint32_t l = 0; l < x->info.shape.num_layers; l++)
				err |= kvmm_prefetch_wait_layer(x->c, pf, l);
			bad = err ? -1 : outside(x, s, p, n);
		}
		kvmm_seq_close(x->c, s);
		goto out;
	}
	if (kvmm_prefetch_wait(x->c, pf, n, UINT64_MAX) != n ||
	    kvmm_prefix_match(x->c, NULL, x->tok[p], n, &h, &m) || m != n ||
	    kvmm_seq_open(x->c, n, &s))
		goto out;
	if (!kvmm_seq_attach_prefix(x->c, s, h, KVMM_ATTACH_COPY))
		bad = outside(x, s, p, n);
	kvmm_seq_close(x->c, s);
out:
	kvmm_prefix_release(x->c, h);
	kvmm_prefetch_release(x->c, pf);
	return bad;
}

static void run_layout(struct gt *t, struct kvmm_backend *be, struct kvmm_backend *host_be,
		       enum kvmm_layout layout, uint32_t kind, const char *dir)
{
	struct ctx x = {.kind = kind};
	const char *name = kvmm_layout_name(layout), *kn = kind == TIER_QUANT_FP8 ? "FP8" : "INT8";
	struct kvmm_tiers_stats st;
	uint64_t qb;
	int64_t bad;
	int ret;

	x.c = make_cache(be, layout, &x.info);
	GT_CHECK(t, x.c != NULL, "%s %s: cache", name, kn);
	if (!x.c)
		return;
	qb = tier_quant_bytes(x.info.block_bytes, x.info.shape.head_dim);
	x.buf = malloc((size_t)NBLK * x.info.tokens_per_block * per_token(&x) * 2);
	for (uint32_t p = 0; p < NPROMPT; p++) {
		uint32_t n = NBLK * x.info.tokens_per_block;

		x.tok[p] = malloc(n * sizeof(uint32_t));
		for (uint32_t i = 0; i < n; i++)
			x.tok[p][i] = 9000000u * (p + 1) + i + 1000 * kind;
	}
	ret = enable(&x, dir, KVMM_TIERS_DISK_DISCARD);
	GT_CHECK(t, ret == 0, "%s %s: tiers (%d)", name, kn, ret);
	if (ret)
		goto out;
	ret = 0;
	for (uint32_t p = 0; p < NPROMPT && !ret; p++)
		ret = fill(&x, p);
	ret = ret ? ret : kvmm_prefix_evict(x.c, 1000) == NPROMPT * NBLK ? 0 : -1;
	kvmm_tiers_flush(x.c);
	kvmm_tiers_stats(x.c, &st);
	GT_CHECK(t,
		 !ret && st.spill_skipped == 0 &&
			 st.spill_host_bytes == (uint64_t)NPROMPT * NBLK * qb &&
			 (st.quant_on_device || kvmm_backend_get_type(be) != KVMM_BACKEND_CUDA),
		 "%s %s: spilled %llu bytes for %llu of KV (%s)", name, kn,
		 (unsigned long long)st.spill_host_bytes,
		 (unsigned long long)NPROMPT * NBLK * x.info.block_bytes,
		 st.quant_on_device ? "pack kernels" : "CPU codec");
	bad = restore(&x, 0, false);
	GT_CHECK(t, bad == 0, "%s %s: progressive restore within the bound (%lld outside)", name,
		 kn, (long long)bad);
	bad = restore(&x, 1, true);
	GT_CHECK(t, bad == 0, "%s %s: layer-wise restore within the bound (%lld outside)", name, kn,
		 (long long)bad);
	kvmm_tiers_stats(x.c, &st);
	GT_CHECK(t, !st.verify_failures && !st.io_errors && !st.restore_failures,
		 "%s %s: no failures", name, kn);
	/* a restart: the quantized records on disk */
	kvmm_cache_destroy(x.c);
	x.c = make_cache(be, layout, &x.info);
	ret = x.c ? enable(&x, dir, 0) : -1;
	bad = ret ? -1 : restore(&x, 2, false);
	GT_CHECK(t, bad == 0, "%s %s: after a restart, restored from disk within the bound (%lld)",
		 name, kn, (long long)bad);
	/* and the CPU codec reads what the GPU wrote */
	if (host_be) {
		kvmm_cache_destroy(x.c);
		x.c = make_cache(host_be, layout, &x.info);
		ret = x.c ? enable(&x, dir, 0) : -1;
		bad = ret ? -1 : restore(&x, 0, false);
		GT_CHECK(t, bad == 0,
			 "%s %s: the host backend (CPU codec) restores the GPU's records within "
			 "the bound (%lld)",
			 name, kn, (long long)bad);
	}
out:
	kvmm_cache_destroy(x.c);
	for (uint32_t p = 0; p < NPROMPT; p++)
		free(x.tok[p]);
	free(x.buf);
}

int main(void)
{
	struct kvmm_backend_config hc = {.type = KVMM_BACKEND_HOST};
	struct kvmm_backend *be = NULL, *host_be = NULL;
	static const enum kvmm_layout layouts[] = {KVMM_LAYOUT_PAGE_MAJOR, KVMM_LAYOUT_LAYER_MAJOR,
						   KVMM_LAYOUT_TOKEN_MAJOR};
	struct gt t = {0};
	char dir[] = "/var/tmp/kvmm-gpuquant-XXXXXX";
	char cmd[128];
	bool cuda = !getenv("KVMM_GPUTEST_HOST");

	if (!cuda) {
		if (kvmm_backend_open(&hc, &be))
			return 1;
	} else {
		be = gt_open_cuda_or_skip();
		if (kvmm_backend_open(&hc, &host_be))
			host_be = NULL;
	}
	if (!mkdtemp(dir)) {
		printf("not ok 1 - scratch directory\n");
		return 1;
	}
#ifdef KVMM_HAVE_CUDA
	if (cuda)
		codecs_agree(&t, be);
#endif
	for (uint32_t i = 0; i < 3; i++)
		run_layout(&t, be, host_be, layouts[i], i == 1 ? TIER_QUANT_INT8 : TIER_QUANT_FP8,
			   dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		printf("# could not remove %s\n", dir);
	kvmm_backend_close(host_be);
	kvmm_backend_close(be);
	return gt_done(&t);
}
