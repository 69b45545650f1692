// SPDX-License-Identifier: MIT
/*
 * Group "kernels": decode attention over each kvmm layout and over the
 * paged baseline, the device copy bandwidth they are measured against, the
 * split count sweep the planner is calibrated with, pack/unpack against
 * plain copies, and (through tools/bench/bench_kernels_sdpa.py, when python3
 * with torch is there) torch SDPA on the same data.
 *
 * Timing: CUDA events around a run of launches that rotate over several
 * layers' KV (real decode reads each layer once per step, so L2 must not
 * serve it), median of 5 runs.  Inputs are random, never zeros.
 * Achieved bandwidth = KV bytes the launch must read / kernel time; it is
 * reported as a fraction of the device-to-device copy's traffic (bytes read
 * + bytes written per second) measured in the same run.  The launch floor
 * (a one-block kernel timed the same way) says what part of a short
 * launch's time no kernel can remove.
 *
 * Environment (to fit a short device lease; defaults run everything):
 * KVMM_BENCH_KERNELS = comma list of parts (attn,splits,pack,sdpa; the
 * ceilings always run), KVMM_BENCH_MAX_BATCH = the largest batch of the
 * attention grid (and of the SDPA comparison, unless
 * KVMM_BENCH_SDPA_MAX_BATCH says otherwise), KVMM_BENCH_GRAPH_MS = work per
 * timed graph (20).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn_internal.h"
#include "backend.h"
#include "bench.h"

#ifdef KVMM_HAVE_CUDA
#include "cuda_driver.h"

struct kb {
	struct bench_ctx *ctx;
	struct kvmm_backend *be;
	struct kvmm_kernels *k;
	const struct kvmm_cuda_driver *drv;
	CUstream st;
	CUevent ev[2];
	double copy_gbps; /* traffic: read + write, the better copy */
	double read_gbps; /* a read-only kernel */
	uint64_t budget;  /* bytes of KV one configuration may allocate */
	uint64_t seed;
	int graphs;	    /* time through CUDA graphs (cleared if capture fails) */
	uint32_t max_batch; /* of the attention grid */
	double graph_us;    /* work per timed graph */
};

/* Is part (attn, splits, pack, sdpa) selected by KVMM_BENCH_KERNELS? */
static bool part_on(const char *part)
{
	const char *sel = getenv("KVMM_BENCH_KERNELS");
	size_t n = strlen(part);

	if (!sel || !*sel)
		return true;
	for (const char *s = sel; (s = strstr(s, part)); s += n)
		if ((s == sel || s[-1] == ',') && (s[n] == ',' || !s[n]))
			return true;
	return false;
}

struct shape {
	const char *name;
	uint32_t layers, hq, hkv, d;
};

static const struct shape shapes[] = {
	{"llama3-8b", 32, 32, 8, 128},
	{"llama3-70b-tp8", 80, 8, 1, 128},
};

#define CK(b, x, what)                                                                     \
	do {                                                                               \
		CUresult __r = (x);                                                        \
		if (__r != CUDA_SUCCESS) {                                                 \
			const char *__s = NULL;                                            \
			(b)->drv->cuGetErrorString(__r, &__s);                             \
			fprintf(stderr, "bench kernels: %s: %s\n", what, __s ? __s : "?"); \
			return kvmm_cuda_errno(__r);                                       \
		}                                                                          \
	} while (0)

/*
 * Time calls of fn(arg, i), i rotating over rot inputs, on the stream:
 * n calls (about 20 ms of work, KVMM_BENCH_GRAPH_MS) are captured in a CUDA graph, as a decode
 * step runs in a serving engine, and the graph is replayed 5 times between
 * two events; *us is the median of the 5 means per call.  Without graph
 * support the calls are enqueued directly.
 */
typedef int (*launch_fn)(void *arg, uint32_t i);
static int time_launches(struct kb *b, launch_fn fn, void *arg, uint32_t rot, double *us)
{
	double runs[5], first;
	CUgraph g = NULL;
	CUgraphExec ge = NULL;
	float ms;
	uint32_t n;
	int ret;

	for (uint32_t i = 0; i < 2; i++) /* warm up: module, caches, clocks */
		if ((ret = fn(arg, i % rot)))
			return ret;
	CK(b, b->drv->cuEventRecord(b->ev[0], b->st), "event");
	if ((ret = fn(arg, 0)))
		return ret;
	CK(b, b->drv->cuEventRecord(b->ev[1], b->st), "event");
	CK(b, b->drv->cuEventSynchronize(b->ev[1]), "launch");
	CK(b, b->drv->cuEventElapsedTime(&ms, b->ev[0], b->ev[1]), "event");
	first = ms * 1e3;
	n = first > 0 ? (uint32_t)(b->graph_us / first) : 200;
	n = n < 3 ? 3 : n > 200 ? 200 : n;
	if (b->graphs && b->drv->cuStreamBeginCapture(b->st, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL) ==
				 CUDA_SUCCESS) {
		for (uint32_t i = 0; i < n && !ret; i++)
			ret = fn(arg, i % rot);
		if (b->drv->cuStreamEndCapture(b->st, &g) != CUDA_SUCCESS || ret ||
		    b->drv->cuGraphInstantiateWithFlags(&ge, g, 0) != CUDA_SUCCESS) {
			if (!ret)
				fprintf(stderr, "bench kernels: no CUDA graphs, timing launches\n");
			b->graphs = 0;
			ge = NULL;
		}
		if (ret)
			goto out;
	}
	for (int r = 0; r < 5; r++) {
		CK(b, b->drv->cuEventRecord(b->ev[0], b->st), "event");
		if (ge)
			CK(b, b->drv->cuGraphLaunch(ge, b->st), "graph");
		for (uint32_t i = 0; !ge && i < n; i++)
			if ((ret = fn(arg, i % rot)))
				goto out;
		CK(b, b->drv->cuEventRecord(b->ev[1], b->st), "event");
		CK(b, b->drv->cuEventSynchronize(b->ev[1]), "launch");
		CK(b, b->drv->cuEventElapsedTime(&ms, b->ev[0], b->ev[1]), "event");
		runs[r] = ms * 1e3 / n;
	}
	*us = bench_median(runs, 5);
out:
	if (ge)
		b->drv->cuGraphExecDestroy(ge);
	if (g)
		b->drv->cuGraphDestroy(g);
	return ret;
}

struct copy_arg {
	struct kb *b;
	CUdeviceptr src, dst;
	uint64_t n;
};

static int copy_once(void *arg, uint32_t i)
{
	struct copy_arg *c = arg;

	(void)i;
	return kvmm_cuda_errno(c->b->drv->cuMemcpyDtoDAsync(c->dst, c->src, c->n, c->b->st));
}

struct stream_arg {
	struct kb *b;
	bool copy;
	CUdeviceptr src, dst;
	uint64_t n;
};

static int stream_once(void *arg, uint32_t i)
{
	struct stream_arg *a = arg;

	(void)i;
	return kvmm_kernels_stream(a->b->k, a->copy, a->src, a->dst, a->n,
				   (uint64_t)(uintptr_t)a->b->st);
}

/*
 * The ceilings: the driver's device-to-device copy and a plain 16-byte copy
 * kernel (traffic = bytes read + written), and a read-only kernel.  Decode
 * attention only reads, so it can pass the copies' traffic rate; the issue's
 * fraction is against the better of the two copies.
 */
struct floor_arg {
	struct kb *b;
	CUdeviceptr dst;
};

static int floor_once(void *arg, uint32_t i)
{
	struct floor_arg *f = arg;

	/* one block writing 16 bytes */
	return kvmm_kernels_fill_random(f->b->k, f->dst, 8, KVMM_DTYPE_BF16, i, 1.f,
					(uint64_t)(uintptr_t)f->b->st);
}

static int bench_copy(struct kb *b)
{
	struct copy_arg c = {.b = b, .n = 1ull << 30};
	struct stream_arg a = {.b = b, .n = 1ull << 30};
	struct floor_arg fl = {.b = b};
	double us_drv, us_kcopy, us_read, us_floor = 0;
	CUdeviceptr sink;
	int ret;

	CK(b, b->drv->cuMemAlloc(&c.src, c.n), "alloc");
	CK(b, b->drv->cuMemAlloc(&c.dst, c.n), "alloc");
	CK(b, b->drv->cuMemAlloc(&sink, 1 << 20), "alloc");
	ret = kvmm_kernels_fill_random(b->k, c.src, c.n / 2, KVMM_DTYPE_BF16, b->seed, 1.f,
				       (uint64_t)(uintptr_t)b->st);
	if (!ret)
		ret = time_launches(b, copy_once, &c, 1, &us_drv);
	a.src = c.src;
	a.dst = c.dst;
	a.copy = true;
	if (!ret)
		ret = time_launches(b, stream_once, &a, 1, &us_kcopy);
	a.dst = sink;
	a.copy = false;
	if (!ret)
		ret = time_launches(b, stream_once, &a, 1, &us_read);
	fl.dst = sink;
	if (!ret)
		ret = time_launches(b, floor_once, &fl, 4, &us_floor);
	b->drv->cuMemFree(c.src);
	b->drv->cuMemFree(c.dst);
	b->drv->cuMemFree(sink);
	if (ret)
		return ret;
	const double drv = 2.0 * c.n / us_drv / 1e3, kc = 2.0 * c.n / us_kcopy / 1e3;
	b->copy_gbps = drv > kc ? drv : kc;
	b->read_gbps = (double)c.n / us_read / 1e3;
	bench_header("kernels: bandwidth ceilings, 1 GiB (copy: bytes read + written per second)");
	bench_result(b->ctx, "d2d-copy-driver-1GiB", "copy_traffic_GBps", drv, "GB/s", NULL, 0);
	bench_result(b->ctx, "d2d-copy-kernel-1GiB", "copy_traffic_GBps", kc, "GB/s", NULL, 0);
	bench_result(b->ctx, "read-kernel-1GiB", "read_GBps", b->read_gbps, "GB/s", NULL, 0);
	bench_result(b->ctx, "one-block-kernel", "launch_floor_us", us_floor, "us", NULL, 0);
	return 0;
}

/* One decode configuration over one layout (or the paged pool). */
struct attn_arg {
	struct kb *b;
	const struct shape *s;
	struct kvmm_reflayout l;
	uint32_t batch, ctx, splits;
	int paged; /* 1: the vLLM-style baseline */
	CUdeviceptr mem, q, out, lens, table;
	uint32_t nblk, per;
	struct kvmm_attn_params p;
};

static int attn_once(void *arg, uint32_t layer)
{
	struct attn_arg *a = arg;
	struct kvmm_view kv, vv;

	if (a->paged) {
		const uint64_t pool = (uint64_t)a->nblk * 16 * a->s->hkv * a->s->d * 2;
		struct kvmm_paged_kv pk = {.k_pool = a->mem + 2 * layer * pool,
					   .v_pool = a->mem + (2 * layer + 1) * pool,
					   .block_table = a->table,
					   .num_blocks = a->nblk,
					   .block_size = 16,
					   .num_kv_heads = a->s->hkv,
					   .table_stride = a->per};
		return kvmm_attn_decode_paged(a->b->k, &pk, &a->p, (uint64_t)(uintptr_t)a->b->st);
	}
	kvmm_reflayout_view(&a->l, a->mem, layer, KVMM_K, &kv);
	kvmm_reflayout_view(&a->l, a->mem, layer, KVMM_V, &vv);
	return kvmm_attn_decode(a->b->k, &kv, &vv, &a->p, (uint64_t)(uintptr_t)a->b->st);
}

static const char *layout_tag(enum kvmm_layout l, int paged)
{
	if (paged)
		return "paged16";
	return l == KVMM_LAYOUT_LAYER_MAJOR   ? "layer-major"
	       : l == KVMM_LAYOUT_TOKEN_MAJOR ? "token-major"
					      : "page-major";
}

/*
 * Set up a (shape, batch, context) in one layout, time it.  Layers to
 * rotate over: enough that the KV read between two uses of one layer is
 * well over the L2 (>= 512 MiB), all the model's layers for token- and
 * page-major (their strides need them).  *us = 0: does not fit.
 */
static int attn_config(struct kb *b, const struct shape *s, uint32_t batch, uint32_t ctx,
		       enum kvmm_layout layout, int paged, uint32_t splits, double *us)
{
	struct attn_arg a = {.b = b, .s = s, .batch = batch, .ctx = ctx, .paged = paged};
	const uint64_t tok = (uint64_t)s->hkv * s->d * 2;
	const uint64_t per_layer = 2ull * batch * ctx * tok;
	uint32_t rot = (uint32_t)((512ull << 20) / per_layer + 1), layers;
	uint64_t bytes;
	int32_t *lens = NULL, *table = NULL;
	int ret;

	*us = 0;
	if (rot > s->layers)
		rot = s->layers;
	if (paged || layout == KVMM_LAYOUT_LAYER_MAJOR) {
		while (rot > 1 && rot * per_layer > b->budget)
			rot--;
		layers = rot;
	} else {
		layers = s->layers;
		if (rot > 16)
			rot = 16;
	}
	if (paged) {
		a.per = (ctx + 15) / 16;
		a.nblk = batch * a.per;
		bytes = 2ull * layers * a.nblk * 16 * tok;
	} else {
		if (kvmm_reflayout_init(&a.l, layout, layers, s->hkv, s->d, batch, ctx, 2 << 20))
			return -EINVAL;
		bytes = a.l.bytes;
	}
	if (bytes > b->budget)
		return 0; /* does not fit with all its layers: reported as skipped */
	CK(b, b->drv->cuMemAlloc(&a.mem, bytes), "alloc kv");
	ret = kvmm_kernels_fill_random(b->k, a.mem, bytes / 2, KVMM_DTYPE_BF16, b->seed++, 1.f,
				       (uint64_t)(uintptr_t)b->st);
	CK(b, b->drv->cuMemAlloc(&a.q, 2ull * batch * s->hq * s->d), "alloc q");
	CK(b, b->drv->cuMemAlloc(&a.out, 2ull * batch * s->hq * s->d), "alloc out");
	CK(b, b->drv->cuMemAlloc(&a.lens, 4ull * batch), "alloc lens");
	if (!ret)
		ret = kvmm_kernels_fill_random(b->k, a.q, (uint64_t)batch * s->hq * s->d,
					       KVMM_DTYPE_BF16, b->seed++, 1.f,
					       (uint64_t)(uintptr_t)b->st);
	lens = malloc(4ull * batch);
	if (!lens)
		ret = -ENOMEM;
	for (uint32_t i = 0; !ret && i < batch; i++)
		lens[i] = (int32_t)ctx;
	if (!ret)
		ret = kvmm_cuda_errno(b->drv->cuMemcpyHtoD(a.lens, lens, 4ull * batch));
	if (!ret && paged) {
		/* a server after churn: every sequence's blocks anywhere in the pool */
		table = malloc(4ull * a.nblk);
		if (!table)
			ret = -ENOMEM;
		for (uint32_t i = 0; !ret && i < a.nblk; i++)
			table[i] = (int32_t)i;
		srand((unsigned)b->seed);
		for (uint32_t i = a.nblk; !ret && i > 1; i--) {
			uint32_t j = (uint32_t)(((uint64_t)rand() << 16 ^ (uint64_t)rand()) % i);
			int32_t x = table[i - 1];
			table[i - 1] = table[j];
			table[j] = x;
		}
		if (!ret)
			ret = kvmm_cuda_errno(b->drv->cuMemAlloc(&a.table, 4ull * a.nblk));
		if (!ret)
			ret = kvmm_cuda_errno(b->drv->cuMemcpyHtoD(a.table, table, 4ull * a.nblk));
	}
	a.p = (struct kvmm_attn_params){.batch = batch,
					.num_q_heads = s->hq,
					.head_dim = s->d,
					.dtype = KVMM_DTYPE_BF16,
					.max_len = ctx,
					.num_splits = splits,
					.q = a.q,
					.out = a.out,
					.seq_lens = a.lens};
	if (!ret)
		ret = time_launches(b, attn_once, &a, rot, us);
	if (ret)
		fprintf(stderr, "bench kernels: %s %s b%u ctx%u: %d %s\n", s->name,
			layout_tag(layout, paged), batch, ctx, ret, kvmm_kernels_last_error(b->k));
	b->drv->cuCtxSynchronize();
	b->drv->cuMemFree(a.mem);
	b->drv->cuMemFree(a.q);
	b->drv->cuMemFree(a.out);
	b->drv->cuMemFree(a.lens);
	if (a.table)
		b->drv->cuMemFree(a.table);
	free(lens);
	free(table);
	return ret;
}

/*
 * The grid of the issue: both shapes, batch 1..256, context 1K..32K, every
 * layout and the paged baseline with the default kernels (pipelined, the
 * planner's merge); then, where splits matter (batch <= 8), layer-major and
 * paged with the single-block merge only ("/block-merge": the kernels
 * before the cluster merge); then both with the plain kernels ("/plain").
 */
static int bench_attn(struct kb *b)
{
	static const uint32_t batches[] = {1, 8, 64, 256}, ctxs[] = {1024, 4096, 16384, 32768};
	static const enum kvmm_layout layouts[] = {KVMM_LAYOUT_LAYER_MAJOR, KVMM_LAYOUT_TOKEN_MAJOR,
						   KVMM_LAYOUT_PAGE_MAJOR};
	static const char *const suffix[] = {"", "/block-merge", "/plain"};
	char name[128];
	int ret = 0;

	bench_header("kernels: decode attention, bf16, uniform lengths (kvmm layouts vs paged)");
	for (int pass = 0; pass < 3; pass++) {
		kvmm_kernels_set_pipelined(b->k, pass < 2);
		kvmm_kernels_set_merge(b->k,
				       pass == 1 ? KVMM_ATTN_MERGE_BLOCK : KVMM_ATTN_MERGE_AUTO);
		for (size_t si = 0; si < 2; si++) {
			const struct shape *s = &shapes[si];
			for (size_t bi = 0; bi < 4; bi++) {
				for (size_t ci = 0; ci < 4; ci++) {
					const uint32_t batch = batches[bi], ctx = ctxs[ci];
					const double bytes = 2.0 * batch * ctx * s->hkv * s->d * 2;
					double paged = 0, t;

					if (b->ctx->quick && (bi % 2 || ci % 2))
						continue;
					if (batch > b->max_batch || (pass == 1 && batch > 8))
						continue;
					if ((ret = attn_config(b, s, batch, ctx, 0, 1, 0, &paged)))
						goto out;
					for (int li = -1; li < (pass ? 1 : 3); li++) {
						const int is_paged = li < 0;
						const enum kvmm_layout lay =
							is_paged ? 0 : layouts[li];
						if (is_paged)
							t = paged;
						else if ((ret = attn_config(b, s, batch, ctx, lay,
									    0, 0, &t)))
							goto out;
						snprintf(name, sizeof(name), "%s/%s/b%u/ctx%u%s",
							 s->name, layout_tag(lay, is_paged), batch,
							 ctx, suffix[pass]);
						if (t <= 0) {
							printf("%-60s skipped: the KV of all %u "
							       "layers "
							       "does not fit the budget\n",
							       name, s->layers);
							continue;
						}
						bench_result(b->ctx, name, "decode_attn_us", t,
							     "us", NULL, 0);
						bench_result_ratio(
							b->ctx, name, "decode_attn_bw_fraction",
							bytes / t / 1e3 / b->copy_gbps, "",
							"d2d_copy_traffic_GBps", b->copy_gbps,
							bytes / t / 1e3 / b->copy_gbps);
						if (!is_paged && paged > 0)
							bench_result_ratio(b->ctx, name,
									   "decode_attn_vs_paged",
									   t, "us", "paged16_us",
									   paged, paged / t);
					}
				}
			}
		}
	}
out:
	kvmm_kernels_set_pipelined(b->k, 1);
	kvmm_kernels_set_merge(b->k, KVMM_ATTN_MERGE_AUTO);
	return ret;
}

/*
 * Calibration of the split planner: forced split counts with each merge
 * (pipelined kernels, layer-major); "splits0" = the planner's choice.
 */
static int bench_splits(struct kb *b)
{
	static const struct {
		int shape;
		uint32_t batch, ctx;
	} cfgs[] = {{1, 1, 32768}, {1, 1, 16384}, {0, 1, 16384}, {1, 8, 16384}, {0, 1, 32768},
		    {0, 8, 32768}, {1, 1, 4096},  {1, 8, 4096},	 {0, 1, 1024}};
	static const uint32_t splits[] = {0, 1, 8, 16, 26, 32, 48, 64, 128, 176, 192, 256};
	static const char *const mname[] = {"", "/block", "/cluster"};
	char name[128];
	int ret = 0;

	bench_header("kernels: split count sweep, layer-major (splits0 = the planner's choice)");
	for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]) && !ret; i++) {
		if (b->ctx->quick && i > 1)
			break;
		for (int m = KVMM_ATTN_MERGE_AUTO; m <= KVMM_ATTN_MERGE_CLUSTER && !ret; m++) {
			kvmm_kernels_set_merge(b->k, (enum kvmm_attn_merge)m);
			for (size_t j = 0; j < sizeof(splits) / sizeof(splits[0]); j++) {
				double t;

				/* auto: only the planner's choice */
				if ((m == KVMM_ATTN_MERGE_AUTO) != (splits[j] == 0))
					continue;
				if (splits[j] * 64 > cfgs[i].ctx + 63)
					continue;
				ret = attn_config(b, &shapes[cfgs[i].shape], cfgs[i].batch,
						  cfgs[i].ctx, KVMM_LAYOUT_LAYER_MAJOR, 0,
						  splits[j], &t);
				if (ret)
					break;
				snprintf(name, sizeof(name), "%s/b%u/ctx%u/splits%u%s",
					 shapes[cfgs[i].shape].name, cfgs[i].batch, cfgs[i].ctx,
					 splits[j], mname[m]);
				bench_result(b->ctx, name, "decode_attn_split_us", t, "us", NULL,
					     0);
			}
		}
	}
	kvmm_kernels_set_merge(b->k, KVMM_ATTN_MERGE_AUTO);
	return ret;
}

struct pack_arg {
	struct kb *b;
	struct kvmm_pack_params p;
	int unpack;
	CUdeviceptr src, dst;
	uint64_t bytes;
	int copy; /* the baseline: one contiguous copy of the same bytes */
};

static int pack_once(void *arg, uint32_t i)
{
	struct pack_arg *a = arg;

	(void)i;
	if (a->copy)
		return kvmm_cuda_errno(
			a->b->drv->cuMemcpyDtoDAsync(a->dst, a->src, a->bytes, a->b->st));
	return a->unpack ? kvmm_unpack(a->b->k, &a->p, (uint64_t)(uintptr_t)a->b->st)
			 : kvmm_pack(a->b->k, &a->p, (uint64_t)(uintptr_t)a->b->st);
}

/* Pack 256 scattered 2 MiB pages (token-/page-major blocks) and 8192 runs
 * of 32 KiB (one layer's K or V of 16 tokens, layer-major), plain and
 * quantized, against one device copy of the same bytes. */
static int bench_pack(struct kb *b)
{
	static const struct {
		const char *name;
		uint64_t run;
		uint32_t nruns;
	} sets[] = {{"pages-2MiB", 2ull << 20, 256}, {"runs-32KiB", 32ull << 10, 8192}};
	static const uint32_t quants[] = {KVMM_QUANT_NONE, KVMM_QUANT_INT8, KVMM_QUANT_FP8_E4M3};
	static const char *const qname[] = {"none", "int8", "fp8"};
	const uint64_t region = 4ull << 30;
	CUdeviceptr cache, stage;
	char name[128];
	int ret = 0;

	CK(b, b->drv->cuMemAlloc(&cache, region), "alloc");
	CK(b, b->drv->cuMemAlloc(&stage, 1ull << 30), "alloc");
	ret = kvmm_kernels_fill_random(b->k, cache, region / 2, KVMM_DTYPE_BF16, b->seed++, 1.f,
				       (uint64_t)(uintptr_t)b->st);
	bench_header("kernels: pack/unpack vs one device copy of the same bytes");
	for (size_t si = 0; !ret && si < 2; si++) {
		struct kvmm_pack_run *runs = calloc(sets[si].nruns, sizeof(*runs));
		const uint64_t slots = region / sets[si].run;
		uint64_t total = (uint64_t)sets[si].nruns * sets[si].run;
		double tcopy = 0, t;

		if (!runs) {
			ret = -ENOMEM;
			break;
		}
		srand(7);
		for (uint32_t i = 0; i < sets[si].nruns; i++) /* distinct random slots */
			runs[i].addr = cache + ((uint64_t)i * 7919 % slots) * sets[si].run;
		for (uint32_t i = 0; i < sets[si].nruns; i++)
			runs[i].bytes = sets[si].run;
		struct pack_arg c = {.b = b, .copy = 1, .src = cache, .dst = stage, .bytes = total};
		ret = time_launches(b, pack_once, &c, 1, &tcopy);
		for (size_t qi = 0; !ret && qi < 3; qi++) {
			for (int un = 0; !ret && un < 2; un++) {
				struct pack_arg a = {.b = b, .unpack = un};
				a.p = (struct kvmm_pack_params){.runs = runs,
								.nruns = sets[si].nruns,
								.quant = quants[qi],
								.dtype = KVMM_DTYPE_BF16,
								.row_elems = 128,
								.staging = stage,
								.staging_bytes = 1ull << 30};
				if (un) /* something to restore */
					ret = kvmm_pack(b->k, &a.p, (uint64_t)(uintptr_t)b->st);
				if (!ret)
					ret = time_launches(b, pack_once, &a, 1, &t);
				if (ret)
					break;
				snprintf(name, sizeof(name), "%s/%s/%s", un ? "unpack" : "pack",
					 sets[si].name, qname[qi]);
				bench_result_ratio(b->ctx, name, "pack_GBps", total / t / 1e3,
						   "GB/s", "d2d_copy_same_bytes_GBps",
						   total / tcopy / 1e3, tcopy / t);
			}
		}
		free(runs);
	}
	b->drv->cuMemFree(cache);
	b->drv->cuMemFree(stage);
	return ret;
}

/* torch SDPA on the same data, measured by the Python script (same
 * process tree, same device); its result lines are re-emitted here. */
static void bench_sdpa(struct kb *b)
{
	char exe[PATH_MAX], cmd[3 * PATH_MAX], line[1024];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *py = getenv("KVMM_BENCH_PYTHON");
	char *slash;
	FILE *f;
	int found = 0;

	if (n <= 0)
		return;
	exe[n] = 0;
	/* <root>/build/<variant>/bin/kvmm-bench */
	for (int i = 0; i < 4 && (slash = strrchr(exe, '/')); i++)
		*slash = 0;
	snprintf(cmd, sizeof(cmd),
		 "%s '%s/tools/bench/bench_kernels_sdpa.py' --lib "
		 "'%s/build/default/lib/libkvmm.so.0'%s",
		 py ? py : "python3", exe, exe, b->ctx->quick ? " --quick" : "");
	bench_header("kernels: torch SDPA (flash) vs kvmm on the same tensors");
	fflush(stdout);
	f = popen(cmd, "r");
	if (!f) {
		printf("skipped: cannot run %s\n", cmd);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		char *fld[8], *s = line;
		int nf = 0;

		if (strncmp(line, "R\t", 2)) {
			fputs(line, stdout); /* notes and skips */
			continue;
		}
		line[strcspn(line, "\n")] = 0;
		for (char *tok; nf < 8 && (tok = strsep(&s, "\t"));) /* keeps empty fields */
			fld[nf++] = tok;
		if (nf != 8)
			continue;
		found++;
		if (!strcmp(fld[5], "-"))
			bench_result(b->ctx, fld[1], fld[2], atof(fld[3]), fld[4], NULL, 0);
		else
			bench_result_ratio(b->ctx, fld[1], fld[2], atof(fld[3]), fld[4], fld[5],
					   atof(fld[6]), atof(fld[7]));
	}
	if (pclose(f) || !found)
		printf("note: the SDPA comparison did not run (python3 with torch and a GPU "
		       "needed)\n");
}

static int run_kernels(struct bench_ctx *ctx)
{
	struct kvmm_backend_config cfg = {.type = KVMM_BACKEND_CUDA};
	struct kb b = {
		.ctx = ctx, .seed = 0x6b766d6d, .graphs = 1, .max_batch = 256, .graph_us = 20000};
	CUcontext cu;
	CUdevice devh;
	size_t free_b = 0, total_b = 0;
	char dev[128] = "";
	int ret;

	ret = kvmm_backend_open(&cfg, &b.be);
	if (ret == -ENODEV) {
		printf("kernels: skipped, no CUDA device\n");
		return 77;
	}
	if (ret)
		return ret;
	ret = kvmm_kernels_open(b.be, &b.k);
	if (ret) {
		fprintf(stderr, "bench kernels: %s\n", kvmm_backend_last_error(b.be));
		kvmm_backend_close(b.be);
		return ret;
	}
	b.drv = kvmm_cuda_backend_driver(b.be, &cu, &devh);
	kvmm_cuda_ctx_enter(b.drv, cu);
	ret = kvmm_cuda_errno(b.drv->cuStreamCreate(&b.st, CU_STREAM_NON_BLOCKING));
	if (!ret)
		ret = kvmm_cuda_errno(b.drv->cuEventCreate(&b.ev[0], CU_EVENT_DEFAULT));
	if (!ret)
		ret = kvmm_cuda_errno(b.drv->cuEventCreate(&b.ev[1], CU_EVENT_DEFAULT));
	if (!ret)
		ret = kvmm_cuda_errno(b.drv->cuMemGetInfo(&free_b, &total_b));
	if (ret)
		goto out;
	if (!b.drv->cuDeviceGetName(dev, sizeof(dev), devh))
		bench_add_machine(ctx, dev);
	/* leave room for the workspace, q/out and the driver */
	b.budget = free_b > (6ull << 30) ? free_b - (6ull << 30) : free_b / 2;
	if (getenv("KVMM_BENCH_KV_BUDGET"))
		b.budget = strtoull(getenv("KVMM_BENCH_KV_BUDGET"), NULL, 0);
	if (getenv("KVMM_BENCH_MAX_BATCH"))
		b.max_batch = (uint32_t)strtoul(getenv("KVMM_BENCH_MAX_BATCH"), NULL, 0);
	if (getenv("KVMM_BENCH_GRAPH_MS") && atof(getenv("KVMM_BENCH_GRAPH_MS")) > 0)
		b.graph_us = 1e3 * atof(getenv("KVMM_BENCH_GRAPH_MS"));
	ret = bench_copy(&b); /* the ceilings every ratio needs */
	if (!ret && part_on("attn"))
		ret = bench_attn(&b);
	if (!ret && part_on("splits"))
		ret = bench_splits(&b);
	if (!ret && part_on("pack"))
		ret = bench_pack(&b);
	if (!ret && part_on("sdpa") && !getenv("KVMM_BENCH_NO_SDPA"))
		bench_sdpa(&b);
out:
	if (ret)
		fprintf(stderr, "bench kernels: failed: %d %s\n", ret,
			kvmm_kernels_last_error(b.k));
	if (b.ev[0])
		b.drv->cuEventDestroy(b.ev[0]);
	if (b.ev[1])
		b.drv->cuEventDestroy(b.ev[1]);
	if (b.st)
		b.drv->cuStreamDestroy(b.st);
	kvmm_kernels_close(b.k);
	kvmm_backend_close(b.be);
	return ret;
}

#else

static int run_kernels(struct bench_ctx *ctx)
{
	(void)ctx;
	printf("kernels: skipped, built without CUDA\n");
	return 77;
}

#endif

BENCH_GROUP(kernels, "decode attention over kvmm layouts vs paged and SDPA; pack/unpack",
	    run_kernels);
