// SPDX-License-Identifier: MIT
/*
 * test_layout.c - the geometry of the three layouts: block sizes, strides
 * and the view formula against addresses computed independently from each
 * layout's definition (docs/layouts.md), and that no two rows overlap.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cachetest.h"
#include "testutil.h"

static const enum kvmm_layout layouts[] = {KVMM_LAYOUT_LAYER_MAJOR, KVMM_LAYOUT_TOKEN_MAJOR,
					   KVMM_LAYOUT_PAGE_MAJOR};

static struct kvmm_backend *null_be(void)
{
	struct kvmm_backend_config cfg = {.type = KVMM_BACKEND_NULL};
	struct kvmm_backend *be = NULL;

	ck_assert_int_eq(kvmm_backend_open(&cfg, &be), 0);
	return be;
}

static struct kvmm_cache_config llama(enum kvmm_layout layout)
{
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = 32, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.layout = layout,
		.max_seqs = 256,
		.max_tokens = 8192,
		.budget_bytes = 1ull << 30,
		.flags = KVMM_CACHE_NO_MAPPER,
	};
	return cfg;
}

/* Llama-3-8B on 2 MiB pages: the numbers docs/layouts.md quotes. */
START_TEST(test_llama_geometry)
{
	struct kvmm_backend *be = null_be();
	struct kvmm_cache_config cfg = llama(layouts[_i]);
	struct kvmm_cache_info info;
	struct kvmm_cache *c;
	uint64_t mib2 = 2ull << 20;

	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	ck_assert_int_eq(kvmm_cache_get_info(c, &info), 0);
	ck_assert_int_eq(info.layout, layouts[_i]);
	ck_assert_uint_eq(info.token_bytes, 128 << 10);
	ck_assert_uint_eq(info.page_size, mib2);
	if (layouts[_i] == KVMM_LAYOUT_LAYER_MAJOR) {
		ck_assert_uint_eq(info.tokens_per_block, 1024);
		ck_assert_uint_eq(info.pages_per_block, 64);
		ck_assert_uint_eq(info.blocks_per_seq, 8);
	} else {
		ck_assert_uint_eq(info.tokens_per_block, 16);
		ck_assert_uint_eq(info.pages_per_block, 1);
		ck_assert_uint_eq(info.blocks_per_seq, 512);
	}
	ck_assert_uint_eq(info.block_bytes, info.pages_per_block * mib2);
	/* Both reserve exactly max_seqs * max_tokens tokens of KV. */
	ck_assert_uint_eq(info.va_bytes, 256ull * 8192 * (128 << 10));
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_default_layout)
{
	struct kvmm_backend *be = null_be();
	struct kvmm_cache_config cfg = llama(KVMM_LAYOUT_DEFAULT);
	struct kvmm_cache_info info;
	struct kvmm_cache *c;

	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	ck_assert_int_eq(kvmm_cache_get_info(c, &info), 0);
	ck_assert_int_eq(info.layout, KVMM_LAYOUT_TOKEN_MAJOR);
	ck_assert_str_eq(kvmm_layout_name(info.layout), "token-major");
	ck_assert_str_eq(kvmm_layout_name(KVMM_LAYOUT_PAGE_MAJOR), "page-major");
	ck_assert_str_eq(kvmm_layout_name(KVMM_LAYOUT_LAYER_MAJOR), "layer-major");
	ck_assert_str_eq(kvmm_layout_name(KVMM_LAYOUT_TOKEN_MAJOR), "token-major");
	ck_assert_str_eq(kvmm_layout_name(KVMM_LAYOUT_DEFAULT), "default");
	ck_assert_str_eq(kvmm_layout_name((enum kvmm_layout)42), "unknown");
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* Address of (s, t, layer, kv) from each layout's definition alone. */
static uint64_t expected(const struct kvmm_cache_info *in, uint64_t va, uint32_t s, uint32_t t,
			 uint32_t l, uint32_t kv)
{
	uint64_t P = in->page_size, T = in->tokens_per_block, bps = in->blocks_per_seq;
	uint64_t row = in->token_bytes / (2ull * in->shape.num_layers), part = 2ull * l + kv;

	switch (in->layout) {
	case KVMM_LAYOUT_LAYER_MAJOR: /* tensors [part][seq][token] */
		return va + (part * in->max_seqs + s) * bps * P + (t / T) * P + (t % T) * row;
	case KVMM_LAYOUT_TOKEN_MAJOR: /* per seq [token][layer][K/V] */
		return va + s * bps * P + (t / T) * P + (t % T) * in->token_bytes + part * row;
	default: /* per page [layer][K/V][T tokens] */
		return va + s * bps * P + (t / T) * P + part * T * row + (t % T) * row;
	}
}

START_TEST(test_view_formula)
{
	struct kvmm_backend *be = null_be();
	struct kvmm_cache_config cfg = llama(layouts[_i]);
	struct kvmm_cache_info in;
	struct kvmm_view v, v0;
	struct kvmm_cache *c;
	struct tu_rng r;

	/* A shape whose token does not divide the page: padding. */
	cfg.shape.num_layers = 5;
	cfg.shape.num_kv_heads = 3;
	cfg.max_tokens = 1000;
	cfg.max_seqs = 7;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	ck_assert_int_eq(kvmm_cache_get_info(c, &in), 0);
	ck_assert_int_eq(kvmm_cache_view(c, 0, KVMM_K, &v0), 0);
	tu_rng_init(&r, tu_seed());
	for (int i = 0; i < 2000; i++) {
		uint32_t s = (uint32_t)tu_rng_below(&r, 7), t = (uint32_t)tu_rng_below(&r, 1000);
		uint32_t l = (uint32_t)tu_rng_below(&r, 5), kv = (uint32_t)tu_rng_below(&r, 2);
		uint32_t h = (uint32_t)tu_rng_below(&r, 3), d = (uint32_t)tu_rng_below(&r, 128);

		ck_assert_int_eq(kvmm_cache_view(c, l, kv, &v), 0);
		ck_assert_uint_eq(kvmm_view_token(&v, s, t) + h * v.head_stride + d * v.elem_size,
				  expected(&in, v0.base, s, t, l, kv) + (h * 128ull + d) * 2);
		ck_assert_uint_eq(v.tokens_per_page, in.tokens_per_block);
		ck_assert_uint_eq(v.layout, in.layout);
		ck_assert_uint_eq(v.num_heads, 3);
		ck_assert_uint_eq(v.max_seqs, 7);
	}
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* With a token that divides the page, layer- and token-major views have a
 * uniform token stride (page_stride == tokens_per_page * token_stride). */
START_TEST(test_uniform_stride)
{
	struct kvmm_backend *be = null_be();
	struct kvmm_cache_config cfg = llama(layouts[_i]);
	struct kvmm_cache *c;
	struct kvmm_view v;

	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	for (uint32_t l = 0; l < 32; l++) {
		ck_assert_int_eq(kvmm_cache_view(c, l, KVMM_V, &v), 0);
		if (layouts[_i] != KVMM_LAYOUT_PAGE_MAJOR)
			ck_assert_uint_eq(v.page_stride, v.tokens_per_page * v.token_stride);
		else /* each layer reads runs of T contiguous tokens */
			ck_assert_uint_eq(v.token_stride, 8 * 128 * 2);
	}
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

struct range {
	uint64_t a, b;
};

static int cmp_range(const void *x, const void *y)
{
	const struct range *p = x, *q = y;

	return p->a < q->a ? -1 : p->a > q->a;
}

/* Every row of every (seq, token, layer, K/V) is its own bytes, inside the
 * reservation, and never straddles a page (a page is the unit mapped). */
START_TEST(test_rows_disjoint)
{
	struct kvmm_backend *be = null_be();
	struct kvmm_cache_config cfg =
		ct_config(layouts[_i], 3, 3, 50, 1 << 20, KVMM_CACHE_NO_MAPPER);
	struct kvmm_cache_info in;
	struct kvmm_cache *c;
	struct range *rg;
	uint64_t n = 0, row, va;
	struct kvmm_view v;

	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	ck_assert_int_eq(kvmm_cache_get_info(c, &in), 0);
	row = in.token_bytes / 6;
	rg = calloc(3ull * 50 * 6, sizeof(*rg));
	ck_assert_ptr_nonnull(rg);
	ck_assert_int_eq(kvmm_cache_view(c, 0, KVMM_K, &v), 0);
	va = v.base;
	for (uint32_t l = 0; l < 3; l++)
		for (uint32_t kv = 0; kv < 2; kv++) {
			ck_assert_int_eq(kvmm_cache_view(c, l, kv, &v), 0);
			for (uint32_t s = 0; s < 3; s++)
				for (uint32_t t = 0; t < 50; t++) {
					uint64_t a = kvmm_view_token(&v, s, t);

					rg[n++] = (struct range){a, a + row};
					ck_assert_uint_ge(a, va);
					ck_assert_uint_le(a + row, va + in.va_bytes);
					ck_assert_uint_eq(a / in.page_size,
							  (a + row - 1) / in.page_size);
				}
		}
	qsort(rg, n, sizeof(*rg), cmp_range);
	for (uint64_t i = 1; i < n; i++)
		ck_assert_uint_le(rg[i - 1].b, rg[i].a);
	free(rg);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_page_table)
{
	struct kvmm_backend *be = null_be();
	struct kvmm_cache_config cfg = llama(layouts[_i]);
	struct kvmm_cache *c;
	struct kvmm_view v;
	int32_t *t;
	int n;

	cfg.max_seqs = 4;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	ck_assert_int_eq(kvmm_cache_view(c, 3, KVMM_V, &v), 0);
	n = kvmm_view_page_table(&v, NULL, 0);
	ck_assert_int_eq(n, 4 * (int)(v.seq_stride / v.page_stride));
	t = calloc((size_t)n, sizeof(*t));
	ck_assert_int_eq(kvmm_view_page_table(&v, t, (size_t)n - 1), -EINVAL);
	ck_assert_int_eq(kvmm_view_page_table(&v, t, (size_t)n), n);
	/* Page p of sequence s through the table is where the formula puts
	 * token p * tokens_per_page of s. */
	for (int i = 0; i < n; i++) {
		uint32_t per = (uint32_t)(v.seq_stride / v.page_stride);
		uint32_t s = (uint32_t)i / per, p = (uint32_t)i % per;

		ck_assert_uint_eq(v.base + (uint64_t)t[i] * v.page_stride,
				  kvmm_view_token(&v, s, p * v.tokens_per_page));
	}
	ck_assert_int_eq(kvmm_view_page_table(NULL, t, (size_t)n), -EINVAL);
	free(t);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_geometry_errors)
{
	struct kvmm_backend *be = null_be();
	struct kvmm_cache_config cfg = llama(KVMM_LAYOUT_TOKEN_MAJOR);
	struct kvmm_cache *c = (void *)1;
	struct kvmm_view v;

	/* 4 MiB per token (all layers) cannot live in a 2 MiB page... */
	cfg.shape.num_layers = 512;
	cfg.shape.num_kv_heads = 16;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	ck_assert_ptr_null(c);
	cfg.layout = KVMM_LAYOUT_PAGE_MAJOR;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	/* ...but layer-major keeps one layer's row per page. */
	cfg.layout = KVMM_LAYOUT_LAYER_MAJOR;
	cfg.max_seqs = 2;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	ck_assert_int_eq(kvmm_cache_view(c, 512, KVMM_K, &v), -EINVAL);
	ck_assert_int_eq(kvmm_cache_view(c, 0, (enum kvmm_kv)2, &v), -EINVAL);
	ck_assert_int_eq(kvmm_cache_view(c, 0, KVMM_K, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_cache_view(NULL, 0, KVMM_K, &v), -EINVAL);
	kvmm_cache_destroy(c);

	cfg = llama(KVMM_LAYOUT_PAGE_MAJOR);
	cfg.shape.elem_size = 3;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	cfg = llama(KVMM_LAYOUT_PAGE_MAJOR);
	cfg.shape.head_dim = 0;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	cfg = llama((enum kvmm_layout)4);
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	cfg = llama(KVMM_LAYOUT_PAGE_MAJOR);
	cfg.max_tokens = 0;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	/* 2^20 sequences of 2^32 tokens is no cache anyone means. */
	cfg = llama(KVMM_LAYOUT_LAYER_MAJOR);
	cfg.max_seqs = 1u << 20;
	cfg.max_tokens = UINT32_MAX;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -E2BIG);
	cfg = llama(KVMM_LAYOUT_PAGE_MAJOR);
	cfg.shape.num_kv_heads = UINT32_MAX;
	cfg.shape.head_dim = UINT32_MAX;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	kvmm_backend_close(be);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("layout");
	TCase *tc = tcase_create("geometry");

	tcase_add_loop_test(tc, test_llama_geometry, 0, 3);
	tcase_add_test(tc, test_default_layout);
	tcase_add_loop_test(tc, test_view_formula, 0, 3);
	tcase_add_loop_test(tc, test_uniform_stride, 0, 3);
	tcase_add_loop_test(tc, test_rows_disjoint, 0, 3);
	tcase_add_loop_test(tc, test_page_table, 0, 3);
	tcase_add_test(tc, test_geometry_errors);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
