// SPDX-License-Identifier: MIT
/*
 * test_attn_plan.c - the host-side logic of the CUDA kernels, on any
 * machine: the page division the kernels use, the split planner, the view
 * and parameter checks, the pack staging layout, and that every kernel entry
 * point says -ENOTSUP (never crashes) where there is no CUDA backend.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attn_internal.h"
#include "testutil.h"

START_TEST(test_fastdiv)
{
	struct tu_rng r;
	static const uint32_t ds[] = {
		2,	 3,   5,   7,	 16,   17,    51,	64,
		100,	 256, 682, 1000, 4096, 65535, 1u << 20, (1u << 30) - 1,
		1u << 30};

	tu_rng_init(&r, tu_seed());
	for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]) + tu_scaled(2000); i++) {
		uint32_t d = i < sizeof(ds) / sizeof(ds[0])
				     ? ds[i]
				     : 2 + (uint32_t)tu_rng_below(&r, 1u << 30);
		uint32_t mul, shr;

		kvmm_fastdiv_init(d, &mul, &shr);
		/* edges: around multiples of d and the top of the range */
		for (uint32_t k = 0; k < 64; k++) {
			uint64_t base = (uint64_t)tu_rng_below(&r, (1u << 31) / d) * d;
			for (int64_t o = -2; o <= 2; o++) {
				int64_t n = (int64_t)base + o;
				if (n < 0 || n >= (1ll << 31))
					continue;
				ck_assert_uint_eq(kvmm_fastdiv_host((uint32_t)n, d, mul, shr),
						  (uint32_t)n / d);
			}
		}
		uint32_t top = (1u << 31) - 1;
		ck_assert_uint_eq(kvmm_fastdiv_host(top, d, mul, shr), top / d);
	}
}
END_TEST

static struct kvmm_attn_plan plan_m(uint32_t groups, uint32_t len, uint32_t forced, uint32_t rows,
				    uint32_t cluster_slots, uint32_t merge)
{
	struct kvmm_attn_plan_in in = {.groups = groups,
				       .max_len = len,
				       .rows = rows,
				       .head_dim = 128,
				       .num_sms = 132,
				       .occupancy = 2,
				       .cluster_slots = cluster_slots,
				       .ws_items = KVMM_ATTN_WS_ITEMS,
				       .forced = forced,
				       .merge = merge,
				       .step_us = KVMM_ATTN_STEP_US_PIPE};
	struct kvmm_attn_plan p;

	kvmm_attn_plan_make(&in, &p);
	return p;
}

/* No cluster kernel: the single-block merge only. */
static struct kvmm_attn_plan plan(uint32_t groups, uint32_t len, uint32_t forced)
{
	return plan_m(groups, len, forced, 4, 0, KVMM_ATTN_MERGE_AUTO);
}

START_TEST(test_plan_invariants)
{
	static const uint32_t groups[] = {1, 8, 64, 255, 512, 2048, 2049, 4096, 100000};
	static const uint32_t lens[] = {0,    1,    15,	   64,	  65,	  1000,
					1024, 4096, 16384, 32768, 131072, 1u << 30};
	static const uint32_t slots[] = {0, 8, 240, 256};

	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++)
			for (size_t k = 0; k < sizeof(slots) / sizeof(slots[0]); k++)
				for (uint32_t m = 0; m < 3; m++)
					for (uint32_t f = 0; f <= 300; f += 50) {
						struct kvmm_attn_plan p = plan_m(groups[i], lens[j],
										 f, 8, slots[k], m);

						ck_assert_uint_ge(p.nsplit, 1);
						ck_assert_uint_le(p.nsplit, KVMM_ATTN_MAX_SPLITS);
						ck_assert_uint_ge(p.nchunks, 1);
						ck_assert_uint_le(p.nchunks, p.nsplit);
						ck_assert_uint_eq(p.chunk % KVMM_ATTN_CHUNK_ALIGN,
								  0);
						/* the chunks cover the context, none is empty */
						ck_assert_uint_ge((uint64_t)p.chunk * p.nchunks,
								  lens[j]);
						if (lens[j])
							ck_assert_uint_lt((uint64_t)p.chunk *
										  (p.nchunks - 1),
									  lens[j]);
						if (p.cluster) {
							/* whole clusters, a kernel that exists, room for the partials
			 * and the counters */
							ck_assert_uint_ne(slots[k], 0);
							ck_assert_uint_ne(m, KVMM_ATTN_MERGE_BLOCK);
							ck_assert_uint_eq(
								p.nsplit % KVMM_ATTN_CLUSTER, 0);
							ck_assert_uint_lt(p.nsplit - p.nchunks,
									  KVMM_ATTN_CLUSTER);
							ck_assert_uint_le(
								(uint64_t)groups[i] *
									(p.nsplit /
									 KVMM_ATTN_CLUSTER),
								KVMM_ATTN_WS_ITEMS);
							ck_assert_uint_le(groups[i],
									  KVMM_ATTN_WS_ITEMS);
						} else {
							ck_assert_uint_eq(p.nsplit, p.nchunks);
							/* several splits only where the workspace holds them */
							if (p.nsplit > 1)
								ck_assert_uint_le(
									(uint64_t)groups[i] *
										p.nsplit,
									KVMM_ATTN_WS_ITEMS);
						}
						/* forcing the cluster merge gets it wherever it fits */
						if (m == KVMM_ATTN_MERGE_CLUSTER && slots[k] &&
						    lens[j] &&
						    groups[i] <= KVMM_ATTN_WS_ITEMS /
									 (f ? (f + 7) / 8 : 1))
							ck_assert(p.cluster);
					}
}
END_TEST

START_TEST(test_plan_choices)
{
	/* Enough groups to fill the GPU several times: no split, no merge. */
	ck_assert_uint_eq(plan(2048, 32768, 0).nsplit, 1);
	ck_assert_uint_eq(plan(4096, 4096, 0).nsplit, 1);
	ck_assert(!plan_m(4096, 4096, 0, 4, 256, 0).cluster);
	/* One sequence of 32K tokens over 8 KV heads: split to fill the GPU
	 * (measured best on the H100: 32 splits, kernels/NOTES.md). */
	ck_assert_uint_ge(plan(8, 32768, 0).nsplit, 16);
	ck_assert_uint_le(plan(8, 32768, 0).nsplit, 64);
	/* 8 sequences: measured best 16 splits, 2 was 33% slower */
	ck_assert_uint_ge(plan(64, 32768, 0).nsplit, 4);
	/* More splits never plans longer chains per warp for the same context. */
	ck_assert_uint_le(plan(1, 32768, 0).chunk, plan(64, 32768, 0).chunk);
	/* A forced count is obeyed (within the context). */
	ck_assert_uint_eq(plan(8, 32768, 7).nsplit, 7);
	ck_assert_uint_eq(plan(8, 100, 7).nsplit, 2); /* 100 tokens: 2 chunks of 64 */
	/* ... and rounded up to whole clusters when merging in clusters */
	struct kvmm_attn_plan p = plan_m(8, 32768, 7, 4, 256, KVMM_ATTN_MERGE_CLUSTER);
	ck_assert(p.cluster);
	ck_assert_uint_eq(p.nchunks, 7);
	ck_assert_uint_eq(p.nsplit, 8);
	/* One sequence, one KV head, 32K: the single-block merge of many
	 * partials is what made this slow; with clusters, split to fill the
	 * resident slots (H100: 240; measured best 176-192, kernels/NOTES.md). */
	p = plan_m(1, 32768, 0, 8, 240, KVMM_ATTN_MERGE_AUTO);
	ck_assert(p.cluster);
	ck_assert_uint_ge(p.nsplit, 128);
	ck_assert_uint_le(p.nsplit, 240);
	/* ... but not where clusters measured slower: many groups, or a
	 * sequence of fewer than 4 clusters (1K tokens: 2 at most) */
	ck_assert(!plan_m(8, 16384, 0, 4, 240, KVMM_ATTN_MERGE_AUTO).cluster);
	ck_assert(!plan_m(8, 1024, 0, 4, 240, KVMM_ATTN_MERGE_AUTO).cluster);
	ck_assert(!plan_m(1, 1024, 0, 8, 240, KVMM_ATTN_MERGE_AUTO).cluster);
	/* 8 groups of 16K: 32 splits (2 blocks on every SM) measured 4.5%
	 * faster than 26 (some SMs with one) */
	ck_assert_uint_eq(plan_m(8, 16384, 0, 4, 240, KVMM_ATTN_MERGE_AUTO).nsplit, 32);
	/* ... but never more clusters than are resident at once */
	p = plan_m(1, 32768, 0, 8, 128, KVMM_ATTN_MERGE_AUTO);
	ck_assert_uint_le(p.nsplit, 128);
	/* Without cluster kernels, or told not to: the block merge. */
	ck_assert(!plan_m(1, 32768, 0, 8, 0, KVMM_ATTN_MERGE_AUTO).cluster);
	ck_assert(!plan_m(1, 32768, 0, 8, 256, KVMM_ATTN_MERGE_BLOCK).cluster);
	ck_assert(!plan_m(1, 32768, 0, 8, 0, KVMM_ATTN_MERGE_CLUSTER).cluster);
}
END_TEST

static void view_init(struct kvmm_view *v)
{
	memset(v, 0, sizeof(*v));
	v->base = 1ull << 32;
	v->elem_size = 2;
	v->head_dim = 128;
	v->num_heads = 8;
	v->head_stride = 256;
	v->token_stride = 2048;
	v->tokens_per_page = 16;
	v->page_stride = 16 * 2048;
	v->seq_stride = 1 << 24;
	v->max_seqs = 4;
	v->max_tokens = 1000;
}

START_TEST(test_view_checks)
{
	struct kvmm_view v;
	struct kvmm_attn_side s;

	view_init(&v);
	ck_assert_int_eq(kvmm_attn_side_from_view(&v, 128, &s), 0);
	/* uniform: an effectively infinite page */
	ck_assert_uint_eq(s.tpp, 1u << 30);
	ck_assert_uint_eq(s.token_stride, 2048);
	ck_assert_uint_eq(kvmm_fastdiv_host(999999, s.tpp, s.div_mul, s.div_shr), 0);
	/* page-major-like: pages of 51 tokens 2 MiB apart */
	v.tokens_per_page = 51;
	v.page_stride = 2 << 20;
	ck_assert_int_eq(kvmm_attn_side_from_view(&v, 128, &s), 0);
	ck_assert_uint_eq(s.tpp, 51);
	ck_assert_uint_eq(s.page_stride, 2 << 20);
	ck_assert_uint_eq(kvmm_fastdiv_host(102, s.tpp, s.div_mul, s.div_shr), 2);
	/* one token per page: the page stride is the token stride */
	v.tokens_per_page = 1;
	ck_assert_int_eq(kvmm_attn_side_from_view(&v, 128, &s), 0);
	ck_assert_uint_eq(s.token_stride, 2 << 20);
	ck_assert_uint_eq(s.tpp, 1u << 30);

	view_init(&v);
	ck_assert_int_eq(kvmm_attn_side_from_view(&v, 64, &s), -EINVAL); /* head_dim */
	v.elem_size = 1;
	ck_assert_int_eq(kvmm_attn_side_from_view(&v, 128, &s), -EINVAL);
	view_init(&v);
	v.token_stride = 2056; /* not 16-aligned */
	ck_assert_int_eq(kvmm_attn_side_from_view(&v, 128, &s), -EINVAL);
	view_init(&v);
	v.base += 8;
	ck_assert_int_eq(kvmm_attn_side_from_view(&v, 128, &s), -EINVAL);
	view_init(&v);
	v.head_stride = 128; /* heads would overlap */
	ck_assert_int_eq(kvmm_attn_side_from_view(&v, 128, &s), -EINVAL);
	view_init(&v);
	v.tokens_per_page = 0;
	ck_assert_int_eq(kvmm_attn_side_from_view(&v, 128, &s), -EINVAL);
}
END_TEST

START_TEST(test_param_checks)
{
	struct kvmm_attn_params p = {.batch = 4,
				     .num_q_heads = 32,
				     .head_dim = 128,
				     .dtype = KVMM_DTYPE_BF16,
				     .max_len = 100,
				     .q = 1 << 20,
				     .out = 2 << 20,
				     .seq_lens = 3 << 20};
	struct kvmm_attn_params x;
	char err[160];

	ck_assert_int_eq(kvmm_attn_check_params(&p, 8, err, sizeof(err)), 0);
	ck_assert_int_eq(kvmm_attn_check_params(NULL, 8, err, sizeof(err)), -EINVAL);
#define BAD(field, value, word)                                                             \
	do {                                                                                \
		x = p;                                                                      \
		x.field = value;                                                            \
		ck_assert_int_eq(kvmm_attn_check_params(&x, 8, err, sizeof(err)), -EINVAL); \
		ck_assert_ptr_nonnull(strstr(err, word));                                   \
	} while (0)
	BAD(batch, 0, "batch");
	BAD(batch, 70000, "batch");
	BAD(head_dim, 96, "head_dim");
	BAD(dtype, 0, "dtype");
	BAD(num_q_heads, 30, "num_q_heads");
	BAD(num_q_heads, 0, "num_q_heads");
	BAD(max_len, (1u << 30) + 1, "max_len");
	BAD(num_splits, KVMM_ATTN_MAX_SPLITS + 1, "num_splits");
	BAD(scale, -1.f, "scale");
	BAD(flags, 1, "flags");
	BAD(q, 0, "q");
	BAD(q, (1 << 20) + 8, "aligned");
	BAD(q_stride, 4, "aligned");
	BAD(q_stride, 8, "q_stride"); /* aligned but shorter than a row */
	BAD(out_stride, 16, "out_stride");
	ck_assert_int_eq(kvmm_attn_check_params(&p, 0, err, sizeof(err)), -EINVAL);
	/* 65536 KV heads of one query head each: the grid cannot hold them */
	x = p;
	x.num_q_heads = 65536;
	ck_assert_int_eq(kvmm_attn_check_params(&x, 65536, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_pack_layout)
{
	struct kvmm_pack_run runs[3] = {{1 << 20, 4096}, {2 << 20, 48}, {3 << 20, 256 * 3}};
	struct kvmm_pack_params p = {.runs = runs, .nruns = 3};
	uint64_t off[3], row0[3], so, total;

	ck_assert_int_eq(kvmm_pack_layout(&p, off, row0, &so, &total), 0);
	ck_assert_uint_eq(off[0], 0);
	ck_assert_uint_eq(off[1], 4096);
	ck_assert_uint_eq(off[2], 4096 + 48);
	ck_assert_uint_eq(total, 4096 + 48 + 768);
	ck_assert_int_eq(kvmm_pack_size(&p), 4096 + 48 + 768);

	/* INT8 rows of 128 bf16: half the bytes, then one float per row */
	runs[1].bytes = 256;
	p.quant = KVMM_QUANT_INT8;
	p.dtype = KVMM_DTYPE_BF16;
	p.row_elems = 128;
	ck_assert_int_eq(kvmm_pack_layout(&p, off, row0, &so, &total), 0);
	ck_assert_uint_eq(off[1], 2048);
	ck_assert_uint_eq(off[2], 2048 + 128);
	ck_assert_uint_eq(row0[2], 16 + 1);
	ck_assert_uint_eq(so, 2048 + 128 + 384);
	ck_assert_uint_eq(total, so + (20 * 4 + 15) / 16 * 16);
	/* rows of 8 elements: 8 bytes of data per row, runs 16-aligned */
	p.row_elems = 8;
	runs[1].bytes = 16;
	ck_assert_int_eq(kvmm_pack_layout(&p, off, row0, &so, &total), 0);
	ck_assert_uint_eq(off[2], 2048 + 16);

	p.row_elems = 100;
	ck_assert_int_eq(kvmm_pack_size(&p), -EINVAL);
	p.row_elems = 128;
	runs[1].bytes = 48; /* not whole rows */
	ck_assert_int_eq(kvmm_pack_size(&p), -EINVAL);
	runs[1].bytes = 256;
	p.dtype = 9;
	ck_assert_int_eq(kvmm_pack_size(&p), -EINVAL);
	p.dtype = KVMM_DTYPE_FP16;
	p.quant = 3;
	ck_assert_int_eq(kvmm_pack_size(&p), -EINVAL);
	p.quant = KVMM_QUANT_NONE;
	runs[0].addr += 8;
	ck_assert_int_eq(kvmm_pack_size(&p), -EINVAL);
	ck_assert_int_eq(kvmm_pack_size(NULL), -EINVAL);
	p.runs = NULL;
	ck_assert_int_eq(kvmm_pack_size(&p), -EINVAL);
	p.nruns = 0;
	ck_assert_int_eq(kvmm_pack_size(&p), 0);
}
END_TEST

/* No CUDA backend here (or a host backend anywhere): clean -ENOTSUP. */
START_TEST(test_no_cuda)
{
	struct kvmm_backend_config cfg = {.type = KVMM_BACKEND_HOST};
	struct kvmm_backend *be;
	struct kvmm_kernels *k = (struct kvmm_kernels *)&cfg;
	struct kvmm_attn_params p = {0};
	struct kvmm_pack_params pp = {0};
	struct kvmm_view v = {0};
	struct kvmm_paged_kv pk = {0};

	ck_assert_int_eq(kvmm_backend_open(&cfg, &be), 0);
	ck_assert_int_eq(kvmm_kernels_open(be, &k), -ENOTSUP);
	ck_assert_ptr_null(k);
	ck_assert_ptr_nonnull(strstr(kvmm_backend_last_error(be), "kernels"));
	ck_assert_int_eq(kvmm_kernels_open(NULL, &k), -EINVAL);
	ck_assert_int_eq(kvmm_kernels_open(be, NULL), -EINVAL);
	kvmm_backend_close(be);
	/* NULL kernels objects are refused, never dereferenced */
	ck_assert_int_lt(kvmm_attn_decode(NULL, &v, &v, &p, 0), 0);
	ck_assert_int_lt(kvmm_attn_decode_paged(NULL, &pk, &p, 0), 0);
	ck_assert_int_lt(kvmm_pack(NULL, &pp, 0), 0);
	ck_assert_int_lt(kvmm_unpack(NULL, &pp, 0), 0);
	kvmm_kernels_close(NULL);
	ck_assert_str_eq(kvmm_kernels_last_error(NULL), "");
}
END_TEST

/* The reference layouts the kernel tests and benchmarks run on are the
 * caches' views, and every element has its own bytes inside the range. */
START_TEST(test_reflayout)
{
	static const enum kvmm_layout ls[] = {KVMM_LAYOUT_LAYER_MAJOR, KVMM_LAYOUT_TOKEN_MAJOR,
					      KVMM_LAYOUT_PAGE_MAJOR};
	struct kvmm_backend_config bc = {.type = KVMM_BACKEND_HOST};
	struct kvmm_backend *be;

	ck_assert_int_eq(kvmm_backend_open(&bc, &be), 0);
	for (int li = 0; li < 3; li++) {
		struct kvmm_cache_config cfg = {.shape = {3, 2, 64, 2},
						.layout = ls[li],
						.max_seqs = 3,
						.max_tokens = 5000,
						.budget_bytes = 64ull << 20,
						.flags = KVMM_CACHE_NO_MAPPER};
		struct kvmm_cache *c;
		struct kvmm_reflayout l;
		struct kvmm_view cv, rv, v0;

		ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
		ck_assert_int_eq(kvmm_reflayout_init(&l, ls[li], 3, 2, 64, 3, 5000, 2 << 20), 0);
		ck_assert_int_eq(kvmm_cache_view(c, 0, KVMM_K, &v0), 0);
		for (uint32_t layer = 0; layer < 3; layer++)
			for (int kv = 0; kv < 2; kv++) {
				ck_assert_int_eq(kvmm_cache_view(c, layer, kv, &cv), 0);
				kvmm_reflayout_view(&l, v0.base, layer, kv, &rv);
				ck_assert_mem_eq(&cv, &rv, sizeof(cv));
			}
		kvmm_cache_destroy(c);

		/* distinct 128-byte rows (64 bf16), all inside [0, bytes) */
		ck_assert_int_eq(kvmm_reflayout_init(&l, ls[li], 3, 2, 64, 3, 700, 48 << 10), 0);
		uint8_t *used = calloc(l.bytes / 128, 1);
		ck_assert_ptr_nonnull(used);
		for (uint32_t layer = 0; layer < 3; layer++)
			for (int kv = 0; kv < 2; kv++) {
				kvmm_reflayout_view(&l, 0, layer, kv, &rv);
				for (uint32_t sq = 0; sq < 3; sq++)
					for (uint32_t t = 0; t < 700; t++)
						for (uint32_t h = 0; h < 2; h++) {
							uint64_t a = kvmm_view_addr(&rv, sq, t, h);
							ck_assert_uint_eq(a % 128, 0);
							ck_assert_uint_lt(a, l.bytes);
							ck_assert(!used[a / 128]);
							used[a / 128] = 1;
						}
			}
		free(used);
	}
	kvmm_backend_close(be);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("attn_plan");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_fastdiv);
	tcase_add_test(tc, test_plan_invariants);
	tcase_add_test(tc, test_plan_choices);
	tcase_add_test(tc, test_view_checks);
	tcase_add_test(tc, test_param_checks);
	tcase_add_test(tc, test_pack_layout);
	tcase_add_test(tc, test_no_cuda);
	tcase_add_test(tc, test_reflayout);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
