// SPDX-License-Identifier: MIT
/* cachetest.c - helpers for the KV-cache tests (see cachetest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cachetest.h"
#include "tests/kvpattern.h"
#include "testutil.h"

struct kvmm_backend *ct_backend(uint64_t page)
{
	struct kvmm_backend_config cfg = {.type = KVMM_BACKEND_HOST, .page_size = page};
	struct kvmm_backend *be = NULL;

	ck_assert_int_eq(kvmm_backend_open(&cfg, &be), 0);
	return be;
}

struct kvmm_cache_config ct_config(enum kvmm_layout layout, uint32_t layers, uint32_t max_seqs,
				   uint32_t max_tokens, uint64_t budget, uint32_t flags)
{
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = layers, .num_kv_heads = 2, .head_dim = 8, .elem_size = 2},
		.layout = layout,
		.max_seqs = max_seqs,
		.max_tokens = max_tokens,
		.budget_bytes = budget,
		.flags = flags,
	};
	return cfg;
}

struct kvmm_cache *ct_make(struct kvmm_backend *be, int i, uint32_t max_seqs, int64_t max_tokens,
			   uint64_t budget_blocks)
{
	static const enum kvmm_layout layouts[] = {KVMM_LAYOUT_LAYER_MAJOR, KVMM_LAYOUT_TOKEN_MAJOR,
						   KVMM_LAYOUT_PAGE_MAJOR};
	struct kvmm_cache_config cfg =
		ct_config(layouts[i % 3], 3, max_seqs, 1, 0, i >= 3 ? 0 : KVMM_CACHE_NO_MAPPER);
	struct kvmm_geom g;
	struct kvmm_cache *c = NULL;

	ck_assert_int_eq(kvmm_geom_init(&g, &cfg, CT_PAGE), 0);
	cfg.max_tokens = (uint32_t)(max_tokens < 0 ? -max_tokens * g.tpb : max_tokens);
	cfg.budget_bytes = budget_blocks * g.block_bytes;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	return c;
}

void ct_row(uint8_t *row, uint64_t n, uint32_t id, uint32_t tok, uint32_t layer, uint32_t kv)
{
	kvp_row(row, n, id, tok, layer, kv);
}

static uint64_t row_bytes(const struct kvmm_cache *c)
{
	return c->g.row_bytes;
}

int ct_write(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n)
{
	uint64_t rb = row_bytes(c);
	uint8_t *buf = malloc(rb * (n ? n : 1));
	int ret = 0;

	ck_assert_ptr_nonnull(buf);
	for (uint32_t l = 0; l < c->g.num_layers && !ret; l++)
		for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
			for (uint32_t t = 0; t < n; t++)
				ct_row(buf + t * rb, rb, id, t0 + t, l, kv);
			ret = kvmm_seq_write(c, seq, l, kv, t0, n, buf);
		}
	free(buf);
	return ret;
}

static int compare(const uint8_t *got, uint64_t rb, uint32_t id, uint32_t t, uint32_t l,
		   uint32_t kv, char *why, size_t len)
{
	uint8_t want[4096];

	ct_row(want, rb, id, t, l, kv);
	if (!memcmp(got, want, rb))
		return 0;
	snprintf(why, len, "id %u token %u layer %u %s differs", id, t, l, kv ? "V" : "K");
	return -1;
}

int ct_check_read(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n,
		  char *why, size_t len)
{
	uint64_t rb = row_bytes(c);
	uint8_t *buf = malloc(rb * (n ? n : 1));
	int ret = 0;

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_le(rb, 4096);
	for (uint32_t l = 0; l < c->g.num_layers && !ret; l++)
		for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
			ret = kvmm_seq_read(c, seq, l, kv, t0, n, buf);
			if (ret) {
				snprintf(why, len, "kvmm_seq_read: %d", ret);
				break;
			}
			for (uint32_t t = 0; t < n && !ret; t++)
				ret = compare(buf + t * rb, rb, id, t0 + t, l, kv, why, len);
		}
	free(buf);
	return ret;
}

int ct_check_view(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n,
		  char *why, size_t len)
{
	uint64_t rb = row_bytes(c);
	uint8_t row[4096];

	for (uint32_t l = 0; l < c->g.num_layers; l++)
		for (uint32_t kv = 0; kv < 2; kv++) {
			struct kvmm_view v;

			ck_assert_int_eq(kvmm_cache_view(c, l, kv, &v), 0);
			for (uint32_t t = t0; t < t0 + n; t++) {
				/* The formula exactly as kvmm.h documents it,
				 * head by head, element by element. */
				for (uint32_t h = 0; h < v.num_heads; h++)
					for (uint32_t d = 0; d < v.head_dim; d++) {
						uint64_t a =
							v.base + seq * v.seq_stride +
							(t / v.tokens_per_page) * v.page_stride +
							(t % v.tokens_per_page) * v.token_stride +
							h * v.head_stride + d * v.elem_size;
						uint64_t o = ((uint64_t)h * v.head_dim + d) *
							     v.elem_size;

						memcpy(row + o, (const void *)(uintptr_t)a,
						       v.elem_size);
					}
				if (compare(row, rb, id, t, l, kv, why, len))
					return -1;
			}
		}
	return 0;
}

void ct_check(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n)
{
	char why[160] = "";

	ck_assert_msg(!ct_check_read(c, seq, id, t0, n, why, sizeof(why)), "read: %s", why);
	ck_assert_msg(!ct_check_view(c, seq, id, t0, n, why, sizeof(why)), "view: %s", why);
}

void ct_verify(struct kvmm_cache *c)
{
	char why[256] = "";
	int ret = kvmm_cache_verify(c, why, sizeof(why));

	ck_assert_msg(ret == 0, "cache inconsistent: %s", why);
}

struct kvmm_cache_stats ct_stats(const struct kvmm_cache *c)
{
	struct kvmm_cache_stats st;

	ck_assert_int_eq(kvmm_cache_stats(c, &st), 0);
	return st;
}

int ct_step1(struct kvmm_cache *c, uint32_t seq, uint32_t len)
{
	struct kvmm_step_entry e = {.seq = seq, .len = len};

	return kvmm_step(c, &e, 1);
}
