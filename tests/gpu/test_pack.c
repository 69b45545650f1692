// SPDX-License-Identifier: MIT
/*
 * test_pack.c - pack/unpack on the GPU.
 *  - plain: random runs (sizes from 16 bytes to several tiles, scattered,
 *    more than one launch's worth) gather into staging exactly (checked
 *    against the host's concatenation) and scatter back bit for bit into a
 *    poisoned cache, touching nothing else; also with pinned host memory as
 *    the staging buffer;
 *  - quantized (INT8, FP8 e4m3; fp16, bf16; rows of 8..256): every restored
 *    element within the bound documented in kvmm.h, scales as documented,
 *    zero rows restored as zeros;
 *  - bad arguments: -EINVAL / -ENOSPC, nothing launched.
 */
#include <math.h>
#include <string.h>

#include "kvtest.h"

#ifdef KVMM_HAVE_CUDA

#define CACHE (64u << 20)

/* n runs of whole rows (row_bytes, 16 when plain) at distinct, non-
 * overlapping places of the cache, starting on row boundaries (a row is one
 * token of one head, and KV runs are made of whole rows). */
static uint32_t make_runs(struct kvt_rng *r, struct kvmm_pack_run *runs, uint32_t n, uint64_t base,
			  uint64_t row_bytes)
{
	uint64_t off = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint64_t rows;
		switch (kvt_rng_below(r, 4)) {
		case 0:
			rows = 1;
			break;
		case 1:
			rows = 1 + kvt_rng_below(r, 64);
			break;
		default:
			rows = 1 + kvt_rng_below(r, (uint32_t)((3 * 16384) / row_bytes + 2));
		}
		off += row_bytes * kvt_rng_below(r, 64); /* a gap (runs are whole rows) */
		if (off + rows * row_bytes > CACHE / 2)
			break;
		runs[i].addr = base + off;
		runs[i].bytes = rows * row_bytes;
		off += rows * row_bytes;
	}
	/* scatter: swap the order, so staging order is not memory order */
	for (uint32_t j = i; j > 1; j--) {
		uint32_t k = kvt_rng_below(r, j);
		struct kvmm_pack_run x = runs[j - 1];
		runs[j - 1] = runs[k];
		runs[k] = x;
	}
	return i;
}

static void test_plain(struct gt *t, struct kvmm_kernels *k, struct kvt_rng *r, int pinned)
{
	uint8_t *orig = malloc(CACHE), *back = malloc(CACHE), *stage_h = malloc(CACHE), *exp;
	struct kvmm_pack_run runs[300];
	CUdeviceptr cache, stage;
	void *host = NULL;
	uint32_t n;
	int64_t need;
	int ret;

	for (uint32_t i = 0; i < CACHE; i++)
		orig[i] = (uint8_t)kvt_rng_next(r);
	CU(kvt_drv->cuMemAlloc(&cache, CACHE));
	CU(kvt_drv->cuMemcpyHtoD(cache, orig, CACHE));
	n = make_runs(r, runs, 300, cache, 16);
	struct kvmm_pack_params p = {.runs = runs, .nruns = n};
	need = kvmm_pack_size(&p);
	if (pinned) { /* unified addressing: the host pointer is a device pointer */
		CU(kvt_drv->cuMemAllocHost(&host, (size_t)need));
		stage = (CUdeviceptr)(uintptr_t)host;
	} else {
		CU(kvt_drv->cuMemAlloc(&stage, (size_t)need));
	}
	p.staging = stage;
	p.staging_bytes = (uint64_t)need;
	ret = kvmm_pack(k, &p, 0);
	if (!ret)
		ret = kvmm_cuda_errno(kvt_drv->cuCtxSynchronize());
	if (pinned)
		memcpy(stage_h, host, (size_t)need);
	else
		CU(kvt_drv->cuMemcpyDtoH(stage_h, stage, (size_t)need));
	/* expected staging: the runs' bytes in order, each 16-aligned */
	exp = calloc(1, (size_t)need);
	int same = 1;
	uint64_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(exp + off, orig + (runs[i].addr - cache), runs[i].bytes);
		same &= !memcmp(stage_h + off, exp + off, runs[i].bytes);
		off += (runs[i].bytes + 15) / 16 * 16;
	}
	GT_CHECK(t, ret == 0 && same,
		 "pack %u runs (%lld bytes, %s staging): staging holds the runs", n,
		 (long long)need, pinned ? "pinned host" : "device");
	/* poison the runs in the cache, unpack, compare the whole cache */
	for (uint32_t i = 0; i < n; i++)
		CU(kvt_drv->cuMemsetD8(runs[i].addr, 0xa5, runs[i].bytes));
	ret = kvmm_unpack(k, &p, 0);
	if (!ret)
		ret = kvmm_cuda_errno(kvt_drv->cuCtxSynchronize());
	CU(kvt_drv->cuMemcpyDtoH(back, cache, CACHE));
	GT_CHECK(t, ret == 0 && !memcmp(orig, back, CACHE),
		 "unpack restores every run bit for bit and nothing else changes");
	if (pinned)
		kvt_drv->cuMemFreeHost(host);
	else
		kvt_drv->cuMemFree(stage);
	kvt_drv->cuMemFree(cache);
	free(orig);
	free(back);
	free(stage_h);
	free(exp);
}

static void test_quant(struct gt *t, struct kvmm_kernels *k, struct kvt_rng *r, uint32_t quant,
		       bool bf16, uint32_t row_elems)
{
	const uint64_t row_bytes = 2ull * row_elems;
	const double u = bf16 ? 1.0 / 256 : 1.0 / 2048;
	uint16_t *orig = malloc(CACHE), *back = malloc(CACHE);
	struct kvmm_pack_run runs[200];
	CUdeviceptr cache, stage;
	uint32_t n;
	uint64_t nzero = 0, nbad = 0, checked = 0;
	double worst = 0;
	int ret;

	/* rows of varied magnitude (1e-3 .. 1e3); some rows all zero */
	for (uint64_t row = 0; row < CACHE / row_bytes; row++) {
		float mag = powf(10.f, (float)kvt_rng_below(r, 7) - 3.f);
		int zero = kvt_rng_below(r, 50) == 0;
		for (uint32_t i = 0; i < row_elems; i++)
			orig[row * row_elems + i] =
				kvt_f2h(zero ? 0.f : kvt_rng_unit(r) * mag, bf16);
	}
	CU(kvt_drv->cuMemAlloc(&cache, CACHE));
	CU(kvt_drv->cuMemcpyHtoD(cache, orig, CACHE));
	n = make_runs(r, runs, 200, cache, row_bytes);
	struct kvmm_pack_params p = {.runs = runs,
				     .nruns = n,
				     .quant = quant,
				     .dtype = bf16 ? KVMM_DTYPE_BF16 : KVMM_DTYPE_FP16,
				     .row_elems = row_elems};
	int64_t need = kvmm_pack_size(&p);
	CU(kvt_drv->cuMemAlloc(&stage, (size_t)need));
	p.staging = stage;
	p.staging_bytes = (uint64_t)need;
	ret = kvmm_pack(k, &p, 0);
	for (uint32_t i = 0; !ret && i < n; i++)
		CU(kvt_drv->cuMemsetD8(runs[i].addr, 0xff, runs[i].bytes)); /* NaN */
	if (!ret)
		ret = kvmm_unpack(k, &p, 0);
	if (!ret)
		ret = kvmm_cuda_errno(kvt_drv->cuCtxSynchronize());
	CU(kvt_drv->cuMemcpyDtoH(back, cache, CACHE));
	/* every element of every run within the bound; the rest untouched */
	uint8_t *in_run = calloc(CACHE / row_bytes, 1);
	for (uint32_t i = 0; i < n; i++)
		for (uint64_t b = 0; b < runs[i].bytes; b += row_bytes)
			in_run[(runs[i].addr - cache + b) / row_bytes] = 1;
	for (uint64_t row = 0; row < CACHE / row_bytes; row++) {
		const uint16_t *o = orig + row * row_elems, *x = back + row * row_elems;
		double amax = 0;
		if (!in_run[row]) {
			nbad += memcmp(o, x, row_bytes) != 0;
			continue;
		}
		for (uint32_t i = 0; i < row_elems; i++)
			amax = fmax(amax, fabs(kvt_h2f(o[i], bf16)));
		nzero += amax == 0;
		for (uint32_t i = 0; i < row_elems; i++) {
			double a = kvt_h2f(o[i], bf16), b = kvt_h2f(x[i], bf16), bound;
			if (quant == KVMM_QUANT_INT8)
				bound = amax / 254 + u * fabs(b);
			else
				bound = fmax(fabs(a) / 16, amax / 458752) + u * fabs(b);
			bound = bound * (1 + 1e-5) + 1e-30 +
				(bf16 ? 0 : 6e-8); /* fp16 subnormals */
			checked++;
			if (!(fabs(a - b) <= bound))
				nbad++;
			if (amax > 0)
				worst = fmax(worst, fabs(a - b) / amax);
		}
	}
	GT_CHECK(t, ret == 0 && nbad == 0 && checked > 0,
		 "%s %s rows of %u: %llu elements in %u runs within the bound (worst |err|/amax "
		 "%.2e, %llu zero rows), %llu bad",
		 quant == KVMM_QUANT_INT8 ? "int8" : "fp8-e4m3", bf16 ? "bf16" : "fp16", row_elems,
		 (unsigned long long)checked, n, worst, (unsigned long long)nzero,
		 (unsigned long long)nbad);
	free(in_run);
	kvt_drv->cuMemFree(stage);
	kvt_drv->cuMemFree(cache);
	free(orig);
	free(back);
}

static void test_errors(struct gt *t, struct kvmm_kernels *k)
{
	CUdeviceptr mem;
	struct kvmm_pack_run runs[2];
	int ret;

	CU(kvt_drv->cuMemAlloc(&mem, 1 << 20));
	runs[0] = (struct kvmm_pack_run){mem, 4096};
	runs[1] = (struct kvmm_pack_run){mem + 8192, 4096};
	struct kvmm_pack_params p = {
		.runs = runs, .nruns = 2, .staging = mem + 65536, .staging_bytes = 8192};
	struct kvmm_pack_params x = p;
	x.staging_bytes = 8000;
	ret = kvmm_pack(k, &x, 0);
	GT_CHECK(t, ret == -ENOSPC, "staging too small: -ENOSPC (%d: %s)", ret,
		 kvmm_kernels_last_error(k));
	x = p;
	x.staging += 8;
	GT_CHECK(t, kvmm_pack(k, &x, 0) == -EINVAL, "misaligned staging: -EINVAL");
	runs[1].addr += 4;
	GT_CHECK(t, kvmm_unpack(k, &p, 0) == -EINVAL, "misaligned run: -EINVAL");
	runs[1].addr -= 4;
	x = p;
	x.quant = KVMM_QUANT_INT8;
	x.dtype = KVMM_DTYPE_BF16;
	x.row_elems = 96;
	GT_CHECK(t, kvmm_pack(k, &x, 0) == -EINVAL, "rows of 96: -EINVAL");
	x.row_elems = 128;
	x.dtype = 0;
	GT_CHECK(t, kvmm_pack(k, &x, 0) == -EINVAL, "quantized without a dtype: -EINVAL");
	x = p;
	x.nruns = 0;
	GT_CHECK(t, kvmm_pack(k, &x, 0) == 0, "no runs: nothing to do");
	GT_CHECK(t, kvmm_pack(k, NULL, 0) == -EINVAL, "NULL params: -EINVAL");
	GT_CHECK(t, kvmm_cuda_errno(kvt_drv->cuCtxSynchronize()) == 0, "nothing bad was launched");
	kvt_drv->cuMemFree(mem);
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
	{ /* cuCtxSynchronize has a new ABI in CUDA 13: the backend syncs with it */
		CUdeviceptr m;
		int ret;
		uint8_t h[64];
		CU(kvt_drv->cuMemAlloc(&m, 8192));
		ret = kvmm_memset_dev(be, m, 0x5a, 4096);
		if (!ret)
			ret = kvmm_memcpy_dev(be, m + 4096, m, 4096);
		if (!ret)
			ret = kvmm_memcpy_to_host(be, h, m + 4096 + 100, sizeof(h));
		GT_CHECK(&t, ret == 0 && h[0] == 0x5a && h[63] == 0x5a,
			 "backend fill and device copy (cuCtxSynchronize) work (%d %s)", ret,
			 kvmm_backend_last_error(be));
		kvt_drv->cuMemFree(m);
	}
	test_errors(&t, k);
	test_plain(&t, k, &r, 0);
	test_plain(&t, k, &r, 1);
	static const uint32_t rows[] = {128, 64, 8, 256, 16};
	for (int q = KVMM_QUANT_INT8; q <= KVMM_QUANT_FP8_E4M3; q++)
		for (int b = 0; b < 2; b++)
			for (size_t i = 0; i < (b ? 5 : 2); i++)
				test_quant(&t, k, &r, (uint32_t)q, b, rows[i]);
	return kvt_close(&t, k, be);
}
#endif /* KVMM_HAVE_CUDA (without it, kvtest.c's main skips) */
