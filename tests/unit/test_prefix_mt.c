// SPDX-License-Identifier: MIT
/*
 * test_prefix_mt.c - the prefix tree under several threads (run by the
 * tsan stage too).
 *
 * Threads match, insert (with a cap, so inserts evict; also continuing a
 * pinned match, as an engine does), release, hint, dup and evict over
 * shared system prompts.  Test-side state per block id
 * (offered / adopted / returned / put, pins held by test handles, and the
 * tokens it was inserted for) checks while everything runs that:
 *  - a block is put only once, only if the tree adopted it, and never while
 *    a handle pins it;
 *  - every handle names blocks whose tokens are the query's;
 *  - the eviction hook sees the right tokens for its victims, before put.
 * A second case runs the public API the same way against a real cache on
 * the host backend with a tight budget, so eviction by the reclaimer, the
 * mapper and attaches of every mode race each other; every sequence checks
 * the bytes of its attached prefix and its own tokens.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cachetest.h"
#include "prefix_tree.h"
#include "testutil.h"

#define B	 4
#define NTHREADS 4
#define MAXTOK	 128
#define MAXBLK	 (MAXTOK / B)

enum { ADOPTED = 1, RETURNED, PUT };

struct shared {
	struct pt_tree *t;
	uint64_t max_ids;
	_Atomic uint64_t next_id;
	_Atomic uint8_t *state;
	_Atomic uint32_t *pins;
	uint32_t *tokens; /* id * B: the block's tokens (written before insert) */
	uint32_t *depth;
	_Atomic uint64_t errors;
	_Atomic uint64_t clk; /* the tree's clock: one tick per reading */
	_Atomic uint64_t evicted, hooked, matched_tokens;
	uint32_t stems[4][64];
	uint64_t ops;
	int seed;
};

static void bad(struct shared *s)
{
	atomic_fetch_add(&s->errors, 1);
}

static uint64_t ticks(void *arg)
{
	return atomic_fetch_add(&((struct shared *)arg)->clk, 1);
}

static void on_put(void *arg, uint64_t id)
{
	struct shared *s = arg;
	uint8_t want = ADOPTED;

	if (id >= s->max_ids || !atomic_compare_exchange_strong(&s->state[id], &want, PUT))
		bad(s);
	else if (atomic_load(&s->pins[id]))
		bad(s);
}

static void on_evict(void *arg, const struct pt_victim *v)
{
	struct shared *s = arg;

	atomic_fetch_add(&s->hooked, v->nblocks);
	for (uint32_t i = 0; i < v->nblocks; i++) {
		uint64_t id = v->blocks[i];

		if (id >= s->max_ids || atomic_load(&s->state[id]) != ADOPTED ||
		    atomic_load(&s->pins[id]) || s->depth[id] != v->first + i ||
		    memcmp(s->tokens + id * B, v->tokens + (size_t)(v->first + i) * B,
			   B * sizeof(uint32_t)))
			bad(s);
	}
}

struct worker {
	struct shared *s;
	int idx;
	struct tu_rng r;
	struct pt_handle *held[8];
	int nheld;
	struct pt_pin pins[4];
	uint32_t pin_tok[4][MAXTOK];
};

static uint32_t gen(struct worker *w, uint32_t *tok)
{
	uint32_t n = (uint32_t)tu_rng_below(&w->r, 64);

	memcpy(tok, w->s->stems[tu_rng_below(&w->r, 4)], n * sizeof(*tok));
	while (n < MAXTOK && tu_rng_below(&w->r, 16))
		tok[n++] = (uint32_t)tu_rng_below(&w->r, 3);
	return n;
}

static void check_handle(struct shared *s, const struct pt_handle *h, const uint32_t *tok)
{
	for (uint32_t i = 0; i < h->nblocks; i++) {
		uint64_t id = h->blocks[i];
		uint32_t n = (i == h->nblocks - 1 && h->partial) ? h->partial : B;

		if (id >= s->max_ids || s->depth[id] != i ||
		    memcmp(s->tokens + id * B, tok + (size_t)i * B, n * sizeof(uint32_t)))
			bad(s);
	}
}

static void pin_blocks(struct shared *s, const struct pt_handle *h, int d)
{
	for (uint32_t i = 0; i < h->nblocks; i++)
		atomic_fetch_add(&s->pins[h->blocks[i]], (uint32_t)d);
}

static void drop(struct worker *w, int k)
{
	pin_blocks(w->s, w->held[k], -1);
	pt_release(w->s->t, w->held[k]);
	w->held[k] = w->held[--w->nheld];
}

static void do_insert(struct worker *w)
{
	struct shared *s = w->s;
	uint32_t tok[MAXTOK], n = gen(w, tok), nb = n / B;
	uint64_t ids[MAXBLK], first = atomic_fetch_add(&s->next_id, nb);
	struct pt_insert_result res;
	struct pt_handle *h = NULL;
	int ret;

	if (first + nb > s->max_ids)
		return;
	for (uint32_t i = 0; i < nb; i++) {
		ids[i] = first + i;
		memcpy(s->tokens + ids[i] * B, tok + (size_t)i * B, B * sizeof(uint32_t));
		s->depth[ids[i]] = i;
		/* before the tree can adopt, evict and put it */
		atomic_store(&s->state[ids[i]], ADOPTED);
	}
	ret = pt_insert(s->t, &(struct kvmm_ns){.model_id = 1}, tok, n, ids, &res,
			w->nheld < 8 ? &h : NULL);
	if (ret < 0 || (uint32_t)ret != res.added)
		bad(s);
	for (uint32_t i = 0; i < nb; i++) {
		uint8_t want = ADOPTED;

		if (i >= res.first && i < res.first + res.added)
			continue;
		/* not adopted: the tree must never have put it */
		if (!atomic_compare_exchange_strong(&s->state[ids[i]], &want, RETURNED))
			bad(s);
	}
	if (h) {
		pin_blocks(s, h, 1);
		check_handle(s, h, tok);
		w->held[w->nheld++] = h;
	}
}

/* Offer ids for blocks [lo, nb) of tok: they may be adopted from now on. */
static bool offer(struct shared *s, const uint32_t *tok, uint32_t lo, uint32_t nb, uint64_t *ids)
{
	uint64_t first = atomic_fetch_add(&s->next_id, nb - lo);

	if (first + (nb - lo) > s->max_ids)
		return false;
	for (uint32_t i = lo; i < nb; i++) {
		ids[i - lo] = first + (i - lo);
		memcpy(s->tokens + ids[i - lo] * B, tok + (size_t)i * B, B * sizeof(uint32_t));
		s->depth[ids[i - lo]] = i;
		atomic_store(&s->state[ids[i - lo]], ADOPTED);
	}
	return true;
}

/* Blocks of an insert the tree did not adopt: it must never have put them. */
static void not_adopted(struct shared *s, const uint64_t *ids, uint32_t lo, uint32_t nb,
			const struct pt_insert_result *res)
{
	for (uint32_t i = lo; i < nb; i++) {
		uint8_t want = ADOPTED;

		if (i >= res->first && i < res->first + res->added)
			continue;
		if (!atomic_compare_exchange_strong(&s->state[ids[i - lo]], &want, RETURNED))
			bad(s);
	}
}

/* An engine's request: a match pins its whole blocks, the turn continues
 * from there (pt_insert_from) while others insert, split and evict; the
 * pin stays a while, or is replaced by the next request's. */
static void do_insert_from(struct worker *w)
{
	struct shared *s = w->s;
	const struct kvmm_ns ns = {.model_id = 1};
	int k = (int)tu_rng_below(&w->r, 4);
	struct pt_pin *pin = &w->pins[k];
	uint32_t tok[MAXTOK], n, nb, lo, m;
	uint64_t ids[MAXBLK];
	struct pt_insert_result res;
	int ret;

	if (!pin->node || tu_rng_below(&w->r, 2)) {
		n = gen(w, tok);
		if (pt_match_pin(s->t, &ns, tok, n, pin, &m) || m % B || m / B != pin->nblocks)
			bad(s);
		memcpy(w->pin_tok[k], tok, n * sizeof(*tok));
	}
	/* the pinned path, then more */
	n = pin->nblocks * B;
	memcpy(tok, w->pin_tok[k], n * sizeof(*tok));
	while (n < MAXTOK && tu_rng_below(&w->r, 12))
		tok[n++] = (uint32_t)tu_rng_below(&w->r, 3);
	nb = n / B;
	lo = pin->nblocks;
	if (nb <= lo || !offer(s, tok, lo, nb, ids))
		return;
	ret = pt_insert_from(s->t, &ns, pin, tok, n, lo, ids, &res);
	if (ret < 0 || (uint32_t)ret != res.added || res.first < lo ||
	    (pin->node && pin->nblocks != res.first + res.added))
		bad(s);
	not_adopted(s, ids, lo, nb, &res);
	memcpy(w->pin_tok[k], tok, (size_t)pin->nblocks * B * sizeof(*tok));
	if (tu_rng_below(&w->r, 3) == 0)
		pt_unpin(s->t, pin);
}

static void do_match(struct worker *w)
{
	struct shared *s = w->s;
	uint32_t tok[MAXTOK], n = gen(w, tok), matched;
	struct pt_handle *h;

	if (pt_match(s->t, &(struct kvmm_ns){.model_id = 1}, tok, n, &h, &matched)) {
		bad(s);
		return;
	}
	atomic_fetch_add(&s->matched_tokens, matched);
	if (!h)
		return;
	/* The pin must hold from here: racing evictions cannot take these. */
	pin_blocks(s, h, 1);
	check_handle(s, h, tok);
	if (w->nheld < 8 && tu_rng_below(&w->r, 2)) {
		w->held[w->nheld++] = h;
	} else {
		struct pt_handle *d;

		if (!pt_handle_dup(s->t, h, h->nblocks, &d)) {
			pin_blocks(s, d, 1);
			pin_blocks(s, h, -1);
			pt_release(s->t, h);
			check_handle(s, d, tok);
			pin_blocks(s, d, -1);
			pt_release(s->t, d);
		} else {
			bad(s);
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *s = w->s;

	for (uint64_t i = 0; i < s->ops; i++) {
		uint64_t op = tu_rng_below(&w->r, 100);
		uint32_t tok[MAXTOK], n;

		if (op < 35) {
			do_match(w);
		} else if (op < 60) {
			do_insert(w);
		} else if (op < 75) {
			do_insert_from(w);
		} else if (op < 88) {
			if (w->nheld)
				drop(w, (int)tu_rng_below(&w->r, (uint64_t)w->nheld));
		} else if (op < 94) {
			n = gen(w, tok);
			/* some hints expire (ttl 100 ticks) before they are used */
			if (pt_hint(s->t, &(struct kvmm_ns){.model_id = 1}, tok, n,
				    atomic_load(&s->clk) + tu_rng_below(&w->r, 200)) < 0)
				bad(s);
		} else if (op < 99) {
			int64_t got =
				pt_evict(s->t, tu_rng_below(&w->r, 8) + 1, KVMM_EVICT_PRESSURE);

			if (got < 0)
				bad(s);
			else
				atomic_fetch_add(&s->evicted, (uint64_t)got);
		} else {
			struct pt_stats st;

			pt_stats(s->t, &st);
			if (st.blocks_cached > 400)
				bad(s);
		}
	}
	while (w->nheld)
		drop(w, w->nheld - 1);
	for (int k = 0; k < 4; k++)
		pt_unpin(s->t, &w->pins[k]);
	return NULL;
}

START_TEST(test_threads)
{
	struct shared *s = calloc(1, sizeof(*s));
	struct pt_config cfg = {.tokens_per_block = B,
				.policy = KVMM_EVICT_LRU,
				.max_blocks = 400,
				.hint_ttl_ns = 100};
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];
	struct tu_rng r;
	char why[256];

	ck_assert_ptr_nonnull(s);
	s->ops = tu_scaled(20000);
	/* about 7 blocks offered per operation; inserts stop when out */
	s->max_ids = NTHREADS * s->ops * 8 + 1;
	s->state = calloc(s->max_ids, sizeof(*s->state));
	s->pins = calloc(s->max_ids, sizeof(*s->pins));
	s->tokens = calloc(s->max_ids * B, sizeof(*s->tokens));
	s->depth = calloc(s->max_ids, sizeof(*s->depth));
	ck_assert(s->state && s->pins && s->tokens && s->depth);
	atomic_init(&s->next_id, 1);
	tu_rng_init(&r, tu_seed());
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 64; j++)
			s->stems[i][j] =
				j < 8 ? 100 + (uint32_t)j : (uint32_t)tu_rng_below(&r, 50) + 10;
	cfg.put = on_put;
	cfg.put_arg = s;
	cfg.on_evict = on_evict;
	cfg.evict_arg = s;
	cfg.clock = ticks;
	cfg.clock_arg = s;
	ck_assert_int_eq(pt_create(&cfg, &s->t), 0);
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){.s = s, .idx = i};
		tu_rng_init(&w[i].r, tu_seed() + 77 * (uint64_t)(i + 1));
		ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_uint_eq(atomic_load(&s->errors), 0);
	ck_assert_msg(!pt_check(s->t, why, sizeof(why)), "invariant: %s", why);
	{
		struct pt_stats st;

		pt_stats(s->t, &st);
		ck_assert_uint_eq(st.blocks_pinned, 0);
		ck_assert_uint_le(st.blocks_cached, 400);
		/* the run did share, evict and hint */
		ck_assert_uint_gt(st.hit_tokens, 0);
		ck_assert_uint_gt(st.evictions[KVMM_EVICT_CAP], 0);
		ck_assert_uint_gt(atomic_load(&s->evicted), 0);
		ck_assert_uint_eq(atomic_load(&s->hooked),
				  st.evictions[KVMM_EVICT_CAP] + st.evictions[KVMM_EVICT_PRESSURE]);
	}
	pt_destroy(s->t);
	/* every adopted block was put once; nothing else was */
	for (uint64_t id = 1; id < atomic_load(&s->next_id) && id < s->max_ids; id++) {
		uint8_t st = atomic_load(&s->state[id]);

		ck_assert_msg(st == PUT || st == RETURNED || st == 0, "block %llu left in state %u",
			      (unsigned long long)id, st);
	}
	ck_assert_uint_eq(atomic_load(&s->errors), 0);
	free(s->state);
	free(s->pins);
	free(s->tokens);
	free(s->depth);
	free(s);
}
END_TEST

/* ---- the public API over a real cache ------------------------------------ */

#define API_THREADS 4
#define NSTEMS	    3

struct api_shared {
	struct kvmm_cache *c;
	uint32_t tpb;
	uint32_t stem_len[NSTEMS];
	uint32_t *stems[NSTEMS];
	uint64_t iters;
	_Atomic uint64_t errors, hits, attaches, inserts, nomem;
	pthread_mutex_t first_lock;
	char first[200]; /* the first failure, for the report */
};

struct api_worker {
	struct api_shared *s;
	uint32_t idx;
	struct tu_rng r;
	uint32_t open[2];
	uint32_t nopen;
};

static void api_bad(struct api_shared *s, const char *what, int ret)
{
	if (atomic_fetch_add(&s->errors, 1) == 0) {
		pthread_mutex_lock(&s->first_lock);
		snprintf(s->first, sizeof(s->first), "%s: %d", what, ret);
		pthread_mutex_unlock(&s->first_lock);
	}
}

static void api_close_one(struct api_worker *w)
{
	if (kvmm_seq_close(w->s->c, w->open[0]))
		api_bad(w->s, "close", 0);
	w->open[0] = w->open[1];
	w->nopen--;
}

/* One request: match, attach, prefill the rest, check, insert. */
static void api_request(struct api_worker *w, uint64_t it)
{
	struct api_shared *s = w->s;
	struct kvmm_cache *c = s->c;
	uint32_t st = (uint32_t)tu_rng_below(&w->r, NSTEMS), L = s->stem_len[st];
	uint32_t n = L + 1 + (uint32_t)tu_rng_below(&w->r, 2 * s->tpb), m = 0, seq, own;
	uint32_t *q = malloc(n * sizeof(*q));
	struct kvmm_prefix_handle *h = NULL;
	char why[160];
	int ret;

	if (!q) {
		api_bad(s, "malloc", 0);
		return;
	}
	memcpy(q, s->stems[st], L * sizeof(*q));
	/* a tail nobody else ever sends */
	own = 100 + w->idx;
	for (uint32_t i = L; i < n; i++)
		q[i] = 1000000u + w->idx * 100000u + (uint32_t)(it % 1000) * 64u + (i - L);
	if (w->nopen == 2)
		api_close_one(w);
	ret = kvmm_prefix_match(c, NULL, q, n, &h, &m);
	if (ret || m > L)
		api_bad(s, "match", ret);
	ret = kvmm_seq_open(c, n, &seq);
	if (ret) {
		kvmm_prefix_release(c, h);
		free(q);
		if (ret != -ENOSPC)
			api_bad(s, "open", ret);
		return;
	}
	if (h) {
		atomic_fetch_add(&s->hits, m);
		ret = kvmm_seq_attach_prefix(c, seq, h,
					     (enum kvmm_attach_mode)tu_rng_below(&w->r, 3));
		kvmm_prefix_release(c, h);
		if (ret == -ENOMEM) {
			atomic_fetch_add(&s->nomem, 1);
			m = 0;
		} else if (ret) {
			api_bad(s, "attach", ret);
			m = 0;
		} else {
			atomic_fetch_add(&s->attaches, 1);
		}
		if (ret && kvmm_seq_len(c, seq) != 0)
			api_bad(s, "attach left a length", ret);
	}
	/* Half the prefills reserve room for the prompt first, as an engine
	 * does; the others let kvmm_step map what it lacks (with the mapper,
	 * the path that could livelock before the core's fix 4ab2678). */
	ret = tu_rng_below(&w->r, 2) ? kvmm_seq_reserve(c, seq, n) : 0;
	if (!ret)
		ret = ct_step1(c, seq, n);
	if (ret == -ENOMEM) {
		atomic_fetch_add(&s->nomem, 1);
		goto close;
	}
	if (ret || ct_write(c, seq, st, m, L - m) || ct_write(c, seq, own, L, n - L))
		api_bad(s, "prefill", ret);
	/* The attached prefix is the stem's KV, whoever computed it. */
	if (ct_check_read(c, seq, st, 0, L, why, sizeof(why)) ||
	    ct_check_read(c, seq, own, L, n - L, why, sizeof(why)))
		api_bad(s, why, 0);
	ret = kvmm_prefix_insert(c, seq, NULL, q, n);
	if (ret < 0 && ret != -ENOMEM)
		api_bad(s, "insert", ret);
	atomic_fetch_add(&s->inserts, ret > 0 ? 1 : 0);
	w->open[w->nopen++] = seq;
	free(q);
	return;
close:
	if (kvmm_seq_close(c, seq))
		api_bad(s, "close", 0);
	free(q);
}

static void *api_main(void *arg)
{
	struct api_worker *w = arg;

	for (uint64_t it = 0; it < w->s->iters; it++) {
		api_request(w, it);
		if (tu_rng_below(&w->r, 8) == 0 && kvmm_prefix_evict(w->s->c, 2) < 0)
			api_bad(w->s, "evict", 0);
	}
	while (w->nopen)
		api_close_one(w);
	return NULL;
}

START_TEST(test_api_threads)
{
	struct kvmm_backend *be = ct_backend(CT_PAGE);
	/* 10 slots, 8 blocks each, 24 blocks of budget: always short */
	struct kvmm_cache *c = ct_make(be, _i, 10, -8, 24);
	struct api_shared s = {.c = c, .tpb = c->g.tpb, .first_lock = PTHREAD_MUTEX_INITIALIZER};
	struct api_worker w[API_THREADS];
	pthread_t th[API_THREADS];
	struct kvmm_prefix_stats st;
	struct tu_rng r;

	ck_assert_int_eq(kvmm_prefix_enable(c, NULL), 0);
	tu_rng_init(&r, tu_seed());
	s.iters = tu_scaled(400);
	for (uint32_t i = 0; i < NSTEMS; i++) {
		s.stem_len[i] = s.tpb * (2 + i) + 3 * i + 1;
		s.stems[i] = malloc(s.stem_len[i] * sizeof(uint32_t));
		ck_assert_ptr_nonnull(s.stems[i]);
		for (uint32_t j = 0; j < s.stem_len[i]; j++)
			s.stems[i][j] = 10 * i + (uint32_t)tu_rng_below(&r, 8);
	}
	for (uint32_t i = 0; i < API_THREADS; i++) {
		w[i] = (struct api_worker){.s = &s, .idx = i};
		tu_rng_init(&w[i].r, tu_seed() * 31 + i);
		ck_assert_int_eq(pthread_create(&th[i], NULL, api_main, &w[i]), 0);
	}
	for (uint32_t i = 0; i < API_THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert_msg(atomic_load(&s.errors) == 0, "%llu failures, first: %s",
		      (unsigned long long)atomic_load(&s.errors), s.first);
	ck_assert_uint_gt(atomic_load(&s.attaches), 0);
	ck_assert_uint_gt(atomic_load(&s.inserts), 0);
	ck_assert_int_eq(kvmm_prefix_stats(c, &st), 0);
	ck_assert_uint_gt(st.evictions[KVMM_EVICT_PRESSURE] + st.evictions[KVMM_EVICT_EXPLICIT], 0);
	ck_assert_uint_eq(st.blocks_pinned, 0);
	ck_assert_uint_eq(st.blocks_shared, 0);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
	for (uint32_t i = 0; i < NSTEMS; i++)
		free(s.stems[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("prefix_mt");
	TCase *tc = tcase_create("threads");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_threads);
	/* The three layouts without the mapper thread (0..2) and with it. */
	tcase_add_loop_test(tc, test_api_threads, 0, 6);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
