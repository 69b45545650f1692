// SPDX-License-Identifier: MIT
/*
 * test_cache.c - the KV cache on the host backend, for all three layouts,
 * with and without the mapper thread: every byte of a distinct pattern per
 * (sequence, token, layer, K/V) through kvmm_seq_write, kvmm_seq_read and
 * the views; growth and frees at random; the budget; deferred reuse and
 * best fit; error paths that must leave the cache usable.
 *
 * Pages are 4 KiB so that small shapes still have many blocks (and few
 * VMAs: every mapped page is one, see kvmm.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cachetest.h"
#include "testutil.h"

#define PG CT_PAGE

static const enum kvmm_layout layouts[] = {KVMM_LAYOUT_LAYER_MAJOR, KVMM_LAYOUT_TOKEN_MAJOR,
					   KVMM_LAYOUT_PAGE_MAJOR};

START_TEST(test_create_args)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache_config cfg = ct_config(KVMM_LAYOUT_PAGE_MAJOR, 2, 4, 64, 1 << 20, 0);
	struct kvmm_cache *c = (void *)1;

	ck_assert_int_eq(kvmm_cache_create(NULL, &cfg, &c), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(kvmm_cache_create(be, NULL, &c), -EINVAL);
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, NULL), -EINVAL);
	cfg.flags = 1u << 7;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	cfg.flags = 0;
	cfg.max_seqs = 0;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	cfg.max_seqs = 4;
	cfg.map_ahead_tokens = 65;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -EINVAL);
	cfg.map_ahead_tokens = 0;
	cfg.reserve_bytes = (1 << 20) + PG;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), -ENOMEM);
	cfg.reserve_bytes = 8 * PG;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	/* The reserve is created at once, and counted. */
	ck_assert_uint_eq(ct_stats(c).pages_created, 8);
	ck_assert_uint_eq(ct_stats(c).pages_free, 8);
	kvmm_cache_destroy(c);
	kvmm_cache_destroy(NULL);
	/* Nothing leaked into the backend. */
	struct kvmm_backend_stats bs;

	ck_assert_int_eq(kvmm_backend_stats(be, &bs), 0);
	ck_assert_uint_eq(bs.pages_live, 0);
	ck_assert_uint_eq(bs.va_reserved_bytes, 0);
	kvmm_backend_close(be);
}
END_TEST

/* Random growth, rollback, reservations and frees; every byte checked. */
START_TEST(test_patterns)
{
	enum { SEQS = 6, MAXT = 300 };
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c;
	uint32_t id[SEQS], len[SEQS], next_id = 1, bps;
	bool on[SEQS] = {0};
	struct tu_rng r;
	uint64_t n = tu_scaled(600);

	c = ct_make(be, _i, SEQS, MAXT, 0);
	bps = c->g.bps;
	kvmm_cache_destroy(c);
	/* Room for every sequence at its maximum: no -ENOMEM here. */
	c = ct_make(be, _i, SEQS, MAXT, (uint64_t)SEQS * bps);
	tu_rng_init(&r, tu_seed() + (uint64_t)_i);
	for (uint64_t op = 0; op < n; op++) {
		uint32_t s = (uint32_t)tu_rng_below(&r, SEQS), t;

		switch (tu_rng_below(&r, 6)) {
		case 0: /* open */
			if (on[s])
				break;
			ck_assert_int_eq(kvmm_seq_open(c, (uint32_t)tu_rng_below(&r, MAXT), &t), 0);
			ck_assert(!on[t]);
			on[t] = true;
			id[t] = next_id++;
			len[t] = 0;
			break;
		case 1: /* close */
			if (!on[s])
				break;
			ck_assert_int_eq(kvmm_seq_close(c, s), 0);
			on[s] = false;
			break;
		case 2: /* rollback */
			if (!on[s] || !len[s])
				break;
			len[s] -= (uint32_t)tu_rng_below(&r, len[s]) + 1;
			ck_assert_int_eq(ct_step1(c, s, len[s]), 0);
			break;
		case 3: /* reserve, then fill part of it before stepping */
			if (!on[s] || len[s] == MAXT)
				break;
			t = len[s] + (uint32_t)tu_rng_below(&r, MAXT - len[s]) + 1;
			ck_assert_int_eq(kvmm_seq_reserve(c, s, t), 0);
			ck_assert_int_eq(ct_write(c, s, id[s], len[s], t - len[s]), 0);
			len[s] = t;
			ck_assert_int_eq(ct_step1(c, s, t), 0);
			break;
		default: /* grow */
			if (!on[s] || len[s] == MAXT)
				break;
			t = len[s] + (uint32_t)tu_rng_below(&r, 40) + 1;
			if (t > MAXT)
				t = MAXT;
			ck_assert_int_eq(ct_step1(c, s, t), 0);
			ck_assert_int_eq(ct_write(c, s, id[s], len[s], t - len[s]), 0);
			len[s] = t;
		}
		if (on[s] && tu_rng_below(&r, 8) == 0)
			ct_check(c, s, id[s], 0, len[s]);
	}
	for (uint32_t s = 0; s < SEQS; s++) {
		if (!on[s])
			continue;
		ck_assert_int_eq(kvmm_seq_len(c, s), len[s]);
		ct_check(c, s, id[s], 0, len[s]);
	}
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

static uint64_t pressure_pages;
static int pressure_calls;

static void on_pressure(void *arg, uint64_t pages)
{
	(void)arg;
	pressure_pages = pages;
	pressure_calls++;
}

/* The budget is never overshot; -ENOMEM changes no length; the cache goes
 * on working after it. */
START_TEST(test_budget)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = ct_make(be, _i, 4, -20, 10);
	uint32_t tpb = c->g.tpb, ppb = c->g.ppb, a, b;
	struct kvmm_step_entry batch[2];
	struct kvmm_backend_stats bs;

	c->cfg.pressure = on_pressure;
	pressure_calls = 0;
	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(ct_step1(c, a, 6 * tpb), 0);
	ck_assert_int_eq(ct_write(c, a, 1, 0, 6 * tpb), 0);
	ck_assert_int_eq(ct_step1(c, b, 4 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, 0, 4 * tpb), 0);
	/* Ten blocks are in use: one token more cannot be had. */
	ck_assert_int_eq(ct_step1(c, b, 4 * tpb + 1), -ENOMEM);
	ck_assert_int_eq(kvmm_seq_len(c, b), 4 * tpb);
	ck_assert_int_eq(pressure_calls, 1);
	ck_assert_uint_eq(pressure_pages, ppb);
	ck_assert_int_eq(kvmm_seq_reserve(c, a, 7 * tpb), -ENOMEM);
	ck_assert_int_eq(pressure_calls, 2);
	/* A batch that fails changes no length, not even the one that fit. */
	batch[0] = (struct kvmm_step_entry){a, 6 * tpb - 1};
	batch[1] = (struct kvmm_step_entry){b, 9 * tpb};
	ck_assert_int_eq(kvmm_step(c, batch, 2), -ENOMEM);
	ck_assert_int_eq(kvmm_seq_len(c, a), 6 * tpb);
	ck_assert_uint_ge(ct_stats(c).alloc_failures, 3);
	ck_assert_uint_le(ct_stats(c).pages_peak, 10ull * ppb);
	ck_assert_int_eq(kvmm_backend_stats(be, &bs), 0);
	ck_assert_uint_le(bs.pages_live, 10ull * ppb);
	ct_verify(c);
	/* Closing a gives its deferred blocks to b. */
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ck_assert_int_eq(ct_step1(c, b, 9 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, 4 * tpb, 5 * tpb), 0);
	ct_check(c, b, 2, 0, 9 * tpb);
	ck_assert_uint_ge(ct_stats(c).steals_idle, 5);
	ck_assert_uint_le(ct_stats(c).pages_peak, 10ull * ppb);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* Bad arguments get -EINVAL (or their errno) and leave the cache usable. */
START_TEST(test_error_paths)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = ct_make(be, _i, 2, -4, 64);
	struct kvmm_step_entry dup[2];
	uint32_t a, b, tpb = c->g.tpb;
	char buf[64];

	uint32_t mt = c->g.max_tokens;

	ck_assert_int_eq(kvmm_seq_open(c, mt + 1, &a), -EINVAL);
	ck_assert_int_eq(kvmm_seq_open(c, 0, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_seq_open(NULL, 0, &a), -EINVAL);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), -ENOSPC);
	ck_assert_int_eq(ct_step1(c, a, mt + 1), -EFBIG);
	ck_assert_int_eq(ct_step1(c, 7, 1), -EINVAL);
	ck_assert_int_eq(kvmm_step(c, NULL, 1), -EINVAL);
	ck_assert_int_eq(kvmm_step(NULL, dup, 0), -EINVAL);
	ck_assert_int_eq(kvmm_step(c, NULL, 0), 0);
	dup[0] = dup[1] = (struct kvmm_step_entry){a, 5};
	ck_assert_int_eq(kvmm_step(c, dup, 2), -EINVAL);
	ck_assert_int_eq(kvmm_seq_len(c, a), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, a, mt + 1), -EFBIG);
	ck_assert_int_eq(kvmm_seq_reserve(c, 9, 1), -EINVAL);
	ck_assert_int_eq(ct_step1(c, a, 10), 0);
	/* Beyond the length (map-ahead, or nothing) is not addressable. */
	ck_assert_int_eq(kvmm_seq_write(c, a, 0, KVMM_K, 9, 2, buf), -ERANGE);
	ck_assert_int_eq(kvmm_seq_read(c, a, 0, KVMM_K, 10, 1, buf), -ERANGE);
	ck_assert_int_eq(kvmm_seq_write(c, a, 3, KVMM_K, 0, 1, buf), -EINVAL);
	ck_assert_int_eq(kvmm_seq_write(c, a, 0, (enum kvmm_kv)2, 0, 1, buf), -EINVAL);
	ck_assert_int_eq(kvmm_seq_write(c, a, 0, KVMM_K, 0, 1, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_seq_write(c, b, 0, KVMM_K, 0, 1, buf), -ERANGE);
	ck_assert_int_eq(kvmm_seq_read(c, a, 0, KVMM_V, UINT32_MAX, 2, buf), -ERANGE);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ck_assert_int_eq(kvmm_seq_close(c, b), -EINVAL);
	ck_assert_int_eq(kvmm_seq_len(c, b), -EINVAL);
	ck_assert_int_eq(ct_step1(c, b, 1), -EINVAL);
	ck_assert_int_eq(kvmm_cache_set_budget(NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_cache_stats(c, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_seq_stats(c, b, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_cache_get_info(c, NULL), -EINVAL);
	/* Still fully usable. */
	ct_verify(c);
	ck_assert_int_eq(ct_step1(c, a, 3 * tpb), 0);
	ck_assert_int_eq(ct_write(c, a, 9, 0, 3 * tpb), 0);
	ct_check(c, a, 9, 0, 3 * tpb);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* A closed sequence's pages stay mapped; the next one in the slot starts
 * with no driver call at all (deferred reclamation). */
START_TEST(test_deferred_reuse)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = ct_make(be, _i, 4, -8, 64);
	uint32_t a, b, tpb = c->g.tpb;
	struct kvmm_backend_stats b0, b1;
	kvmm_blk_t blk[5];

	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, a, 5 * tpb), 0);
	for (int i = 0; i < 5; i++)
		blk[i] = kvmm_bte(c, a, i)->blk;
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	kvmm_cache_quiesce(c);
	ck_assert_uint_ge(ct_stats(c).pages_deferred, 5ull * c->g.ppb);
	ck_assert_int_eq(kvmm_backend_stats(be, &b0), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 5 * tpb, &b), 0);
	ck_assert_uint_eq(b, a);
	ck_assert_int_eq(ct_step1(c, b, 5 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 3, 0, 5 * tpb), 0);
	ck_assert_int_eq(kvmm_backend_stats(be, &b1), 0);
	/* The same physical blocks, and no driver call on this thread (the
	 * mapper, when there is one, maps ahead past them). */
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(kvmm_bte(c, b, i)->blk, blk[i]);
	if (_i < 3) {
		ck_assert_uint_eq(b1.calls[KVMM_OP_MAP], b0.calls[KVMM_OP_MAP]);
		ck_assert_uint_eq(b1.calls[KVMM_OP_CREATE], b0.calls[KVMM_OP_CREATE]);
	}
	ck_assert_uint_eq(ct_stats(c).pages_reused, 5ull * c->g.ppb);
	ck_assert_uint_eq(ct_stats(c).critical_path_driver_calls, 0);
	ct_check(c, b, 3, 0, 5 * tpb);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* Best fit over idle slots' deferred blocks. */
START_TEST(test_best_fit)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = ct_make(be, _i, 4, 30 * 128, 200);
	uint32_t s[4], got, tpb = c->g.tpb, sizes[3] = {2, 5, 9};

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(kvmm_seq_open(c, 0, &s[i]), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(kvmm_seq_reserve(c, s[i], sizes[i] * tpb), 0);
	for (int i = 3; i >= 0; i--)
		ck_assert_int_eq(kvmm_seq_close(c, s[i]), 0);
	kvmm_cache_quiesce(c);
	ck_assert_int_eq(kvmm_seq_open(c, 4 * tpb, &got), 0);
	ck_assert_uint_eq(got, s[1]); /* 5 covers 4 most tightly */
	ck_assert_int_eq(kvmm_seq_open(c, 7 * tpb, &got), 0);
	ck_assert_uint_eq(got, s[2]);
	ck_assert_int_eq(kvmm_seq_open(c, 20 * tpb, &got), 0);
	ck_assert_uint_eq(got, s[0]); /* none covers 20: the most pages */
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* Shrinking the budget drops free, then deferred pages; what is left is
 * reported; closing sequences brings the cache under the budget. */
START_TEST(test_set_budget)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache_config cfg =
		ct_config(layouts[_i % 3], 3, 4, 128 * 20, 0, _i >= 3 ? 0 : KVMM_CACHE_NO_MAPPER);
	struct kvmm_cache *c;
	struct kvmm_geom g;
	uint64_t bb, ppb, left = 99;
	uint32_t a, b, tpb;

	ck_assert_int_eq(kvmm_geom_init(&g, &cfg, PG), 0);
	bb = g.block_bytes;
	ppb = g.ppb;
	tpb = g.tpb;
	cfg.budget_bytes = 20 * bb;
	cfg.reserve_bytes = 8 * bb;
	cfg.low_water_bytes = 1; /* no background refill */
	cfg.pressure = on_pressure;
	pressure_calls = 0;
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, a, 6 * tpb), 0);
	ck_assert_int_eq(ct_write(c, a, 5, 0, 6 * tpb), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, b, 4 * tpb), 0);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	kvmm_cache_quiesce(c);
	ck_assert_uint_ge(ct_stats(c).pages_created, 10 * ppb);
	/* 7 blocks: free and b's deferred blocks go, a's 6 stay. */
	ck_assert_int_eq(kvmm_cache_set_budget(c, 7 * bb, &left), 0);
	ck_assert_uint_eq(left, 0);
	ck_assert_int_eq(pressure_calls, 0);
	ck_assert_uint_le(ct_stats(c).pages_created, 7 * ppb);
	/* 3 blocks: a's 6 needed blocks cannot go; 3 blocks' pages short. */
	ck_assert_int_eq(kvmm_cache_set_budget(c, 3 * bb, &left), 0);
	ck_assert_uint_eq(left, 3 * ppb);
	ck_assert_int_eq(pressure_calls, 1);
	ck_assert_uint_eq(pressure_pages, 3 * ppb);
	ck_assert_uint_eq(ct_stats(c).budget_bytes, 3 * bb);
	/* Over the budget nothing new is created: growth fails. */
	ck_assert_int_eq(ct_step1(c, a, 7 * tpb), -ENOMEM);
	ct_check(c, a, 5, 0, 6 * tpb);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	kvmm_cache_quiesce(c);
	ck_assert_uint_le(ct_stats(c).pages_created, 3 * ppb);
	ct_verify(c);
	/* Growing the budget again lets sequences grow. */
	ck_assert_int_eq(kvmm_cache_set_budget(c, 20 * bb, NULL), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(ct_step1(c, a, 15 * tpb), 0);
	ck_assert_int_eq(ct_write(c, a, 6, 0, 15 * tpb), 0);
	ct_check(c, a, 6, 0, 15 * tpb);
	ck_assert_uint_le(ct_stats(c).pages_peak, 20 * ppb);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* With the mapper, decoding never calls the driver inside kvmm_step; the
 * mapper maps ahead in the background. */
START_TEST(test_mapper_decode)
{
	enum { SEQS = 8, STEPS = 160 };
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = ct_make(be, 3 + _i, SEQS, STEPS, 8ull * 64);
	struct kvmm_step_entry batch[SEQS];
	struct kvmm_cache_stats st;

	for (uint32_t i = 0; i < SEQS; i++) {
		ck_assert_int_eq(kvmm_seq_open(c, 0, &batch[i].seq), 0);
		batch[i].len = 0;
	}
	for (uint32_t t = 1; t <= STEPS; t++) {
		for (uint32_t i = 0; i < SEQS; i++)
			batch[i].len = t;
		ck_assert_int_eq(kvmm_step(c, batch, SEQS), 0);
		for (uint32_t i = 0; i < SEQS; i++)
			ck_assert_int_eq(ct_write(c, batch[i].seq, 100 + i, t - 1, 1), 0);
	}
	st = ct_stats(c);
	ck_assert_uint_eq(st.critical_path_driver_calls, 0);
	ck_assert_uint_eq(st.step_calls, STEPS);
	ck_assert_uint_gt(st.mapper_pages_mapped, 0);
	ck_assert_uint_gt(st.mapper_driver_calls, 0);
	ck_assert_uint_eq(st.tokens_used, (uint64_t)SEQS * STEPS);
	for (uint32_t i = 0; i < SEQS; i++)
		ct_check(c, batch[i].seq, 100 + i, 0, STEPS);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* Without a mapper, kvmm_step maps in place and says so. */
START_TEST(test_sync_step_counts)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = ct_make(be, _i, 2, -6, 64);
	struct kvmm_backend_stats b0, b1;
	uint32_t a;

	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(kvmm_backend_stats(be, &b0), 0);
	ck_assert_int_eq(ct_step1(c, a, 3 * c->g.tpb), 0);
	ck_assert_int_eq(kvmm_backend_stats(be, &b1), 0);
	ck_assert_uint_gt(ct_stats(c).critical_path_driver_calls, 0);
	/* Exactly the driver calls made: creates, maps, access changes. */
	uint64_t d = 0;

	for (int k = 0; k < KVMM_OP__COUNT; k++)
		d += b1.calls[k] - b0.calls[k];
	ck_assert_uint_eq(ct_stats(c).critical_path_driver_calls, d);
	ck_assert_uint_eq(ct_stats(c).mapper_waits, 0);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_stats_json)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = ct_make(be, _i, 2, 100, 16);
	char small[16], *big;
	int n;
	uint32_t a;
	struct kvmm_seq_stats ss;

	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(ct_step1(c, a, 30), 0);
	ck_assert_int_eq(kvmm_seq_stats(c, a, &ss), 0);
	ck_assert_uint_eq(ss.len, 30);
	ck_assert_uint_ge(ss.mapped_tokens, 30);
	ck_assert_uint_eq(ss.bytes_used, 30 * c->g.token_bytes);
	ck_assert_uint_eq(ss.bytes_mapped, ss.blocks_mapped * c->g.block_bytes);
	n = kvmm_cache_stats_json(c, NULL, 0);
	ck_assert_int_gt(n, 100);
	ck_assert_int_eq(kvmm_cache_stats_json(c, small, sizeof(small)), n);
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	big = malloc((size_t)n + 1);
	ck_assert_int_eq(kvmm_cache_stats_json(c, big, (size_t)n + 1), n);
	ck_assert_uint_eq(strlen(big), (size_t)n);
	ck_assert(big[0] == '{' && big[n - 1] == '}');
	ck_assert_ptr_nonnull(strstr(big, "\"tokens_used\":30,"));
	ck_assert_ptr_nonnull(strstr(big, "\"critical_path_driver_calls\":"));
	ck_assert_ptr_nonnull(strstr(big, "\"calls\":{\"reserve\":"));
	/* Balanced braces, no stray characters between fields. */
	int depth = 0;

	for (int i = 0; i < n; i++) {
		depth += big[i] == '{';
		depth -= big[i] == '}';
		ck_assert_int_ge(depth, i < n - 1 ? 1 : 0);
	}
	ck_assert_int_eq(kvmm_cache_stats_json(c, NULL, 5), -EINVAL);
	free(big);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("content");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_create_args);
	tcase_add_loop_test(tc, test_patterns, 0, 6);
	tcase_add_loop_test(tc, test_budget, 0, 6);
	tcase_add_loop_test(tc, test_error_paths, 0, 6);
	tcase_add_loop_test(tc, test_deferred_reuse, 0, 6);
	tcase_add_loop_test(tc, test_best_fit, 0, 3);
	tcase_add_loop_test(tc, test_set_budget, 0, 6);
	tcase_add_loop_test(tc, test_mapper_decode, 0, 3);
	tcase_add_loop_test(tc, test_sync_step_counts, 0, 3);
	tcase_add_loop_test(tc, test_stats_json, 0, 3);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
