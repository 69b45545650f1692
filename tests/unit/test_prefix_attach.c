// SPDX-License-Identifier: MIT
/*
 * test_prefix_attach.c - the prefix cache's public API on the host backend,
 * every layout, with and without the mapper: bytes seen through aliases
 * and copies, copy-on-write of a partial block, immutability of shared
 * blocks (API and MMU), pins of running sequences against eviction and
 * pressure, the AUTO attach rule, insert/admission/cap semantics, stats.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cachetest.h"
#include "prefix.h"
#include "testutil.h"

#define PG   CT_PAGE
#define MAXT 4096

static uint32_t tokA[MAXT], tokB[MAXT];

static void init_tokens(void)
{
	for (uint32_t i = 0; i < MAXT; i++) {
		tokA[i] = 1000 + i;
		tokB[i] = 9000 + i;
	}
}

/* 8 blocks per sequence for every layout. */
static struct kvmm_cache *make(struct kvmm_backend *be, int i, uint64_t budget_blocks,
			       const struct kvmm_prefix_config *pc)
{
	struct kvmm_cache *c = ct_make(be, i, 6, -8, budget_blocks);

	ck_assert_int_eq(kvmm_prefix_enable(c, pc), 0);
	return c;
}

/* A sequence holding ntok tokens whose KV is identity id's pattern. */
static uint32_t filled(struct kvmm_cache *c, uint32_t id, uint32_t ntok)
{
	uint32_t s;

	ck_assert_int_eq(kvmm_seq_open(c, ntok, &s), 0);
	ck_assert_int_eq(ct_step1(c, s, ntok), 0);
	ck_assert_int_eq(ct_write(c, s, id, 0, ntok), 0);
	return s;
}

static uint8_t *tok_addr(struct kvmm_cache *c, uint32_t s, uint32_t t)
{
	struct kvmm_view v;

	ck_assert_int_eq(kvmm_cache_view(c, 0, KVMM_K, &v), 0);
	return (uint8_t *)(uintptr_t)kvmm_view_token(&v, s, t);
}

static void write_u8(void *p)
{
	*(volatile uint8_t *)p ^= 0xff;
}

static void read_u8(void *p)
{
	(void)*(volatile uint8_t *)p;
}

static struct kvmm_prefix_stats pstats(struct kvmm_cache *c)
{
	struct kvmm_prefix_stats st;

	ck_assert_int_eq(kvmm_prefix_stats(c, &st), 0);
	return st;
}

/* Tokens of q[0..n) cached now (match and release). */
static uint32_t cached_len(struct kvmm_cache *c, const uint32_t *q, uint32_t n)
{
	struct kvmm_prefix_handle *h;
	uint32_t m;

	ck_assert_int_eq(kvmm_prefix_match(c, NULL, q, n, &h, &m), 0);
	kvmm_prefix_release(c, h);
	return m;
}

/* Match query[0..n) and attach it to a new sequence with mode (after
 * mapping `own` tokens of own blocks there, as the mapper would). */
static uint32_t attached_own(struct kvmm_cache *c, const uint32_t *q, uint32_t n, uint32_t want,
			     enum kvmm_attach_mode mode, uint32_t own)
{
	struct kvmm_prefix_handle *h;
	uint32_t m, s;

	ck_assert_int_eq(kvmm_prefix_match(c, NULL, q, n, &h, &m), 0);
	ck_assert_uint_eq(m, want);
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(kvmm_seq_open(c, n, &s), 0);
	if (own)
		ck_assert_int_eq(kvmm_seq_reserve(c, s, own), 0);
	ck_assert_int_eq(kvmm_seq_attach_prefix(c, s, h, mode), 0);
	ck_assert_int_eq(kvmm_seq_len(c, s), want);
	kvmm_prefix_release(c, h);
	return s;
}

static uint32_t attached(struct kvmm_cache *c, const uint32_t *q, uint32_t n, uint32_t want,
			 enum kvmm_attach_mode mode)
{
	return attached_own(c, q, n, want, mode, 0);
}

START_TEST(test_alias_content)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 48, NULL);
	uint32_t tpb = c->g.tpb, plen = 3 * tpb + 5, a, b;
	uint32_t *q = malloc(2 * MAXT * sizeof(*q));
	uint8_t *pa, *pb, old;

	init_tokens();
	/* A: four full blocks cached. */
	a = filled(c, 1, 4 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 4 * tpb), (int)(4 * tpb));
	/* B asks for A's first 3 blocks + 5 tokens, then its own tokens: the
	 * fourth block matches partially and must be copied. */
	memcpy(q, tokA, plen * sizeof(*q));
	memcpy(q + plen, tokB, tpb * sizeof(*q));
	b = attached(c, q, plen + tpb, plen, KVMM_ATTACH_ALIAS);
	ck_assert_uint_eq(pstats(c).attach_alias, 1);
	for (uint32_t i = 0; i < 3; i++)
		ck_assert_uint_eq(kvmm_bte(c, b, i)->flags & (BT_SHARED | BT_RO),
				  BT_SHARED | BT_RO);
	ck_assert_uint_eq(kvmm_bte(c, b, 3)->flags & BT_SHARED, 0);
	ck_assert_uint_eq(kvmm_bte(c, b, 0)->blk, kvmm_bte(c, a, 0)->blk);
	/* B reads A's KV for its prefix, through the API and the view. */
	ct_check(c, b, 1, 0, plen);

	/* An aliased page is one page at two addresses: a byte changed
	 * through A's (read-write, published) mapping shows at B's. */
	pa = tok_addr(c, a, tpb + 1);
	pb = tok_addr(c, b, tpb + 1);
	ck_assert_ptr_ne(pa, pb);
	old = *pa;
	*pa = (uint8_t)(old + 1);
	ck_assert_uint_eq(*pb, (uint8_t)(old + 1));
	*pa = old;

	/* Shared blocks are immutable for B: the API refuses, the MMU
	 * faults, reading is fine. */
	ck_assert_int_eq(kvmm_seq_write(c, b, 0, KVMM_K, tpb, 1, pa), -EPERM);
	ck_assert_int_eq(tu_faults(write_u8, pb), 1);
	ck_assert_int_eq(tu_faults(read_u8, pb), 0);
	ck_assert_int_eq(ct_step1(c, b, tpb), -EPERM); /* no rollback into them */

	/* Copy-on-write: block 3 is B's own copy; B writes the rest of it
	 * and A does not see it, nor does B see A's later change. */
	ck_assert_int_eq(ct_step1(c, b, 4 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, plen, 4 * tpb - plen), 0);
	ct_check(c, b, 1, 0, plen);
	ct_check(c, b, 2, plen, 4 * tpb - plen);
	ct_check(c, a, 1, 0, 4 * tpb);
	pa = tok_addr(c, a, 3 * tpb);
	pb = tok_addr(c, b, 3 * tpb);
	old = *pb;
	*pa ^= 0x5a;
	ck_assert_uint_eq(*pb, old);
	*pa ^= 0x5a;
	ct_verify(c);
	/* With A gone, B pins the three blocks it maps, not the fourth it
	 * copied. */
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ck_assert_uint_eq(pstats(c).blocks_pinned, 3);
	ck_assert_int_eq(kvmm_prefix_evict(c, 100), 1);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
	free(q);
}
END_TEST

START_TEST(test_copy_content)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 48, NULL);
	uint32_t tpb = c->g.tpb, a, b;
	uint8_t *pa, *pb, old;

	init_tokens();
	a = filled(c, 1, 4 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 4 * tpb), (int)(4 * tpb));
	b = attached(c, tokA, 4 * tpb, 4 * tpb, KVMM_ATTACH_COPY);
	ck_assert_uint_eq(pstats(c).attach_copy, 1);
	for (uint32_t i = 0; i < 4; i++) {
		ck_assert_uint_eq(kvmm_bte(c, b, i)->flags & BT_SHARED, 0);
		ck_assert_uint_ne(kvmm_bte(c, b, i)->blk, kvmm_bte(c, a, i)->blk);
	}
	ct_check(c, b, 1, 0, 4 * tpb);
	/* Copies: a change through A's mapping does not reach B. */
	pa = tok_addr(c, a, 2);
	pb = tok_addr(c, b, 2);
	old = *pb;
	*pa ^= 0x33;
	ck_assert_uint_eq(*pb, old);
	*pa ^= 0x33;
	/* B's copies are its own to write; A's published blocks are not. */
	ck_assert_int_eq(ct_write(c, b, 3, 0, tpb), 0);
	ct_check(c, b, 3, 0, tpb);
	ct_check(c, b, 1, tpb, 3 * tpb);
	ct_check(c, a, 1, 0, 4 * tpb);
	ck_assert_int_eq(ct_write(c, a, 3, 0, 1), -EPERM);
	/* A copy-attached sequence pins nothing: with A gone, all can go. */
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ck_assert_int_eq(kvmm_prefix_evict(c, 100), 4);
	ct_check(c, b, 3, 0, tpb);
	ct_check(c, b, 1, tpb, 3 * tpb);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* Blocks a running sequence uses are never evicted, by pressure or by
 * request, and stay intact while other sequences churn the pool. */
START_TEST(test_running_blocks_kept)
{
	struct kvmm_backend *be = ct_backend(PG);
	/* budget: 4 cached + 8 for the churn sequence + slack */
	struct kvmm_cache *c = make(be, _i, 14, NULL);
	uint32_t tpb = c->g.tpb, a, b, d, e;
	struct kvmm_prefix_stats st;

	init_tokens();
	a = filled(c, 1, 4 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 4 * tpb), (int)(4 * tpb));
	/* A still runs: its published blocks are pinned for it. */
	ck_assert_int_eq(kvmm_prefix_evict(c, 100), 0);
	b = attached(c, tokA, 4 * tpb, 4 * tpb, KVMM_ATTACH_ALIAS);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	/* A is gone; B maps all four. */
	ck_assert_int_eq(kvmm_prefix_evict(c, 100), 0);
	st = pstats(c);
	ck_assert_uint_eq(st.blocks_pinned, 4);
	ck_assert_uint_eq(st.blocks_shared, 4);
	/* Pressure: sequences take every other block, repeatedly. */
	for (int round = 0; round < 3; round++) {
		d = filled(c, 10 + (uint32_t)round, 8 * tpb);
		ct_check(c, d, 10 + (uint32_t)round, 0, 8 * tpb);
		ck_assert_int_eq(kvmm_seq_close(c, d), 0);
		ct_check(c, b, 1, 0, 4 * tpb);
	}
	ck_assert_uint_eq(pstats(c).blocks_cached, 4);
	/* Real pressure: 4 cached + 8 + 4 wanted > 14.  The reclaimer is
	 * asked but may not take B's blocks: -ENOMEM, B intact. */
	ck_assert_int_eq(kvmm_seq_open(c, 0, &d), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, d, 8 * tpb), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &e), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, e, 4 * tpb), -ENOMEM);
	ck_assert_uint_ge(ct_stats(c).reclaim_calls, 1);
	ck_assert_uint_eq(pstats(c).evictions[KVMM_EVICT_PRESSURE], 0);
	ct_check(c, b, 1, 0, 4 * tpb);
	ck_assert_int_eq(kvmm_seq_close(c, d), 0);
	ck_assert_int_eq(kvmm_seq_close(c, e), 0);
	/* Once B closes, nothing protects them. */
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ck_assert_int_eq(kvmm_prefix_evict(c, 100), 4);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* Under pressure the least recently used prefix goes first, a hinted one
 * last, and a sequence that needs blocks gets them instead of -ENOMEM. */
START_TEST(test_pressure_lru_and_hint)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 10, NULL);
	uint32_t tpb = c->g.tpb, s, m;
	static uint32_t p1[512], p2[512], p3[512];
	struct kvmm_prefix_handle *h;
	struct kvmm_prefix_stats st;

	for (uint32_t i = 0; i < 512; i++) {
		p1[i] = 10000 + i;
		p2[i] = 20000 + i;
		p3[i] = 30000 + i;
	}
	ck_assert_uint_le(2 * tpb, 512);
	/* three 2-block prefixes from closed sequences: 6 of 10 blocks */
	s = filled(c, 1, 2 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, s, NULL, p1, 2 * tpb), (int)(2 * tpb));
	ck_assert_int_eq(kvmm_seq_close(c, s), 0);
	s = filled(c, 2, 2 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, s, NULL, p2, 2 * tpb), (int)(2 * tpb));
	ck_assert_int_eq(kvmm_seq_close(c, s), 0);
	s = filled(c, 3, 2 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, s, NULL, p3, 2 * tpb), (int)(2 * tpb));
	ck_assert_int_eq(kvmm_seq_close(c, s), 0);
	/* p1 is used again (most recent), p2 is hinted: p3 goes first. */
	ck_assert_uint_eq(cached_len(c, p1, 2 * tpb), 2 * tpb);
	ck_assert_int_eq(kvmm_prefix_hint(c, NULL, p2, 2 * tpb, kvmm_now_ns() + 1000000000ull),
			 (int)(2 * tpb));
	/* a sequence needing 6 blocks: the budget has 4 free, so 2 of the
	 * cached blocks must go */
	s = filled(c, 9, 6 * tpb);
	st = pstats(c);
	ck_assert_uint_ge(st.evictions[KVMM_EVICT_PRESSURE], 2);
	ck_assert_uint_lt(cached_len(c, p3, 2 * tpb), 2 * tpb);
	ck_assert_uint_eq(cached_len(c, p2, 2 * tpb), 2 * tpb);
	ct_check(c, s, 9, 0, 6 * tpb);
	ck_assert_int_eq(kvmm_seq_close(c, s), 0);
	ct_verify(c);
	/* a handle never released is freed with the cache */
	ck_assert_int_eq(kvmm_prefix_match(c, NULL, p2, 2 * tpb, &h, &m), 0);
	ck_assert_ptr_nonnull(h);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_auto_rule)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 48, NULL);
	struct kvmm_prefix *p = kvmm_prefix_of(c);
	uint32_t tpb = c->g.tpb, a, b;
	struct kvmm_prefix_stats st;

	init_tokens();
	st = pstats(c);
	ck_assert_uint_gt(st.cost_map_ns, 0);
	ck_assert_uint_gt(st.cost_copy_ns, 0);
	ck_assert(p->costs.measured);
	a = filled(c, 1, 4 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 4 * tpb), (int)(4 * tpb));

	/* H100-like costs (map 41 us, copy 1.4 us a page), plenty of room,
	 * and B's own blocks already mapped (as the mapper does for a
	 * sequence opened with its prompt length): copy. */
	p->costs.map_ns = 41000;
	p->costs.unmap_ns = 18000;
	p->costs.copy_ns = 1400;
	b = attached_own(c, tokA, 4 * tpb, 4 * tpb, KVMM_ATTACH_AUTO, 4 * tpb);
	ck_assert_uint_eq(kvmm_bte(c, b, 0)->flags & BT_RO, 0);
	ct_check(c, b, 1, 0, 4 * tpb);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	/* A copy dearer than a map and an unmap: alias. */
	p->costs.copy_ns = 1000000;
	b = attached_own(c, tokA, 4 * tpb, 4 * tpb, KVMM_ATTACH_AUTO, 4 * tpb);
	ck_assert_uint_eq(kvmm_bte(c, b, 0)->flags & BT_RO, BT_RO);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	st = pstats(c);
	ck_assert_uint_eq(st.attach_auto, 2);
	ck_assert_uint_eq(st.attach_alias, 1);
	ck_assert_uint_eq(st.attach_copy, 1);
	/* The rule as a function.  A copy into blocks not mapped yet pays
	 * the map too, so alias wins then; own blocks already mapped make
	 * the copy the cheap way; only a partial block: copy. */
	p->costs.copy_ns = 1400;
	ck_assert_int_eq(kvmm_attach_choose(c, &p->costs, 4, 0), KVMM_ATTACH_ALIAS);
	ck_assert_int_eq(kvmm_attach_choose(c, &p->costs, 4, 4), KVMM_ATTACH_COPY);
	ck_assert_int_eq(kvmm_attach_choose(c, &p->costs, 4, 2), KVMM_ATTACH_COPY);
	ck_assert_int_eq(kvmm_attach_choose(c, &p->costs, 0, 0), KVMM_ATTACH_COPY);
	p->costs.copy_ns = 60000;
	ck_assert_int_eq(kvmm_attach_choose(c, &p->costs, 4, 4), KVMM_ATTACH_ALIAS);
	/* Memory pressure: the two extra blocks a copy needs are not there
	 * without evicting, so alias even though copying is cheaper. */
	p->costs.copy_ns = 1400;
	ck_assert_int_eq(kvmm_cache_set_budget(c, 5 * c->g.block_bytes, NULL), 0);
	ck_assert_int_eq(kvmm_attach_choose(c, &p->costs, 4, 2), KVMM_ATTACH_ALIAS);
	ck_assert_int_eq(kvmm_attach_choose(c, &p->costs, 4, 4), KVMM_ATTACH_COPY);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* AUTO-attach a cached 4-block prefix to a sequence whose own blocks are
 * mapped there already: the flags of its first entry (BT_RO: aliased). */
static uint32_t auto_onto_mapped(struct kvmm_cache *c)
{
	uint32_t tpb = c->g.tpb, a = filled(c, 1, 4 * tpb), b, flags;

	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 4 * tpb), (int)(4 * tpb));
	b = attached_own(c, tokA, 4 * tpb, 4 * tpb, KVMM_ATTACH_AUTO, 4 * tpb);
	flags = kvmm_bte(c, b, 0)->flags;
	ct_check(c, b, 1, 0, 4 * tpb);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ct_verify(c);
	return flags;
}

/*
 * Costs given in the config (a simulator pricing an H100 on another
 * backend): AUTO follows them both ways, whatever this backend would
 * measure; given all three, enable measures nothing.
 */
START_TEST(test_given_costs)
{
	struct kvmm_backend *be = ct_backend(PG);
	/* the H100's: map + access 26.5 us, unmap 15.6 us, 2 MiB copy 1.4 us */
	struct kvmm_prefix_config h100 = {
		.cost_map_ns = 26500, .cost_unmap_ns = 15600, .cost_copy_ns = 1400};
	/* a copy dearer than a map and an unmap */
	struct kvmm_prefix_config slow_copy = {
		.cost_map_ns = 1000, .cost_unmap_ns = 1000, .cost_copy_ns = 1000000};
	struct kvmm_prefix_config bad = {.cost_copy_ns = KVMM_PREFIX_COST_MAX_NS + 1};
	struct kvmm_cache *c = ct_make(be, _i, 6, -8, 48);
	struct kvmm_cache_stats before;
	struct kvmm_prefix_stats st;

	init_tokens();
	ck_assert_int_eq(kvmm_prefix_enable(c, &bad), -EINVAL);
	bad = (struct kvmm_prefix_config){.cost_map_ns = UINT64_MAX};
	ck_assert_int_eq(kvmm_prefix_enable(c, &bad), -EINVAL);
	bad = (struct kvmm_prefix_config){.cost_unmap_ns = KVMM_PREFIX_COST_MAX_NS + 1};
	ck_assert_int_eq(kvmm_prefix_enable(c, &bad), -EINVAL);
	before = ct_stats(c);
	ck_assert_int_eq(kvmm_prefix_enable(c, &h100), 0);
	/* nothing measured: no copy, no map, no page made for it */
	ck_assert_uint_eq(ct_stats(c).backend.calls[KVMM_OP_COPY],
			  before.backend.calls[KVMM_OP_COPY]);
	ck_assert_uint_eq(ct_stats(c).backend.calls[KVMM_OP_RESERVE],
			  before.backend.calls[KVMM_OP_RESERVE]);
	st = pstats(c);
	ck_assert_uint_eq(st.cost_map_ns, 26500);
	ck_assert_uint_eq(st.cost_unmap_ns, 15600);
	ck_assert_uint_eq(st.cost_copy_ns, 1400);
	ck_assert(!kvmm_prefix_of(c)->costs.measured);
	/* own blocks mapped already: the copy is the cheap way */
	ck_assert_uint_eq(auto_onto_mapped(c) & BT_SHARED, 0);
	/* none mapped: a copy would pay the maps too, alias (the rule as a
	 * function: the mapper and the slot's deferred blocks would make
	 * "none mapped" racy end to end) */
	ck_assert_int_eq(kvmm_attach_choose(c, &kvmm_prefix_of(c)->costs, 4, 0), KVMM_ATTACH_ALIAS);
	st = pstats(c);
	ck_assert_uint_eq(st.attach_auto, 1);
	ck_assert_uint_eq(st.attach_copy, 1);
	ck_assert_uint_eq(st.attach_alias, 0);
	kvmm_cache_destroy(c);

	/* The other way: with a dear copy, alias even onto mapped blocks. */
	c = ct_make(be, _i, 6, -8, 48);
	ck_assert_int_eq(kvmm_prefix_enable(c, &slow_copy), 0);
	ck_assert_uint_eq(auto_onto_mapped(c) & BT_RO, BT_RO);
	st = pstats(c);
	ck_assert_uint_eq(st.attach_alias, 1);
	ck_assert_uint_eq(st.attach_copy, 0);
	kvmm_cache_destroy(c);

	/* Some given: those are used, the others measured. */
	c = ct_make(be, _i, 6, -8, 48);
	slow_copy = (struct kvmm_prefix_config){.cost_copy_ns = KVMM_PREFIX_COST_MAX_NS};
	ck_assert_int_eq(kvmm_prefix_enable(c, &slow_copy), 0);
	st = pstats(c);
	ck_assert_uint_eq(st.cost_copy_ns, KVMM_PREFIX_COST_MAX_NS);
	ck_assert_uint_gt(st.cost_map_ns, 0);
	ck_assert_uint_gt(st.cost_unmap_ns, 0);
	ck_assert(!kvmm_prefix_of(c)->costs.measured);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

static uint64_t fake_now = 1000;

static uint64_t fake_clock(void *arg)
{
	return *(uint64_t *)arg;
}

/* Hints run on the config's clock: one expires when that clock says so. */
START_TEST(test_hint_clock)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_prefix_config pc = {
		.hint_ttl_ns = 100, .clock = fake_clock, .clock_arg = &fake_now};
	struct kvmm_cache *c = make(be, _i, 48, &pc);
	uint32_t tpb = c->g.tpb, a, b;

	init_tokens();
	fake_now = 1000;
	a = filled(c, 1, tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, tpb), (int)tpb);
	b = filled(c, 2, tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, b, NULL, tokB, tpb), (int)tpb);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	/* A is older but hinted for t=1050: B goes first */
	ck_assert_int_eq(kvmm_prefix_hint(c, NULL, tokA, tpb, 1050), (int)tpb);
	ck_assert_uint_eq(pstats(c).blocks_hinted, 1);
	ck_assert_int_eq(kvmm_prefix_evict(c, 1), 1);
	ck_assert_uint_eq(cached_len(c, tokA, tpb), tpb);
	ck_assert_uint_eq(cached_len(c, tokB, tpb), 0);
	/* the hint is over at 1050 + 100 on that clock, not on the wall's */
	ck_assert_int_eq(kvmm_prefix_hint(c, NULL, tokA, tpb, 1050), (int)tpb);
	fake_now = 1151;
	ck_assert_int_eq(kvmm_prefix_evict(c, 0), 0);
	ck_assert_uint_eq(pstats(c).blocks_hinted, 0);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_forced_mode)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_prefix_config pc = {.attach = KVMM_ATTACH_COPY};
	struct kvmm_cache *c = make(be, _i, 48, &pc);
	uint32_t tpb = c->g.tpb, a, b;

	init_tokens();
	a = filled(c, 1, 2 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 2 * tpb), (int)(2 * tpb));
	kvmm_prefix_of(c)->costs.copy_ns = 1000000000; /* AUTO would alias */
	b = attached(c, tokA, 2 * tpb, 2 * tpb, KVMM_ATTACH_AUTO);
	ck_assert_uint_eq(kvmm_bte(c, b, 0)->flags & BT_SHARED, 0);
	ck_assert_uint_eq(pstats(c).attach_auto, 0);
	ct_check(c, b, 1, 0, 2 * tpb);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_insert_rules)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_prefix_config pc = {.admit_hits = 2};
	struct kvmm_cache *c = make(be, _i, 48, &pc);
	uint32_t tpb = c->g.tpb, a, b, d;
	struct kvmm_ns ns1 = {.model_id = 1}, ns2 = {.model_id = 1, .tenant_salt = 7};
	struct kvmm_prefix_handle *h;
	uint32_t m;

	init_tokens();
	a = filled(c, 1, 3 * tpb + 2);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, &ns1, tokA, 3 * tpb + 3), -EINVAL); /* > len */
	/* first offer: not admitted; the blocks were published (immutable) */
	ck_assert_int_eq(kvmm_prefix_insert(c, a, &ns1, tokA, 3 * tpb + 2), 0);
	ck_assert_uint_eq(pstats(c).admission_rejects, 3);
	ck_assert_int_eq(ct_write(c, a, 1, 0, 1), -EPERM);
	/* second offer (another request computed it too): cached */
	b = filled(c, 1, 3 * tpb + 2);
	ck_assert_int_eq(kvmm_prefix_insert(c, b, &ns1, tokA, 3 * tpb + 2), (int)(3 * tpb));
	/* a third sequence with the same tokens adds nothing and keeps its
	 * own blocks writable: nothing of it was published */
	d = filled(c, 1, 3 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, d, &ns1, tokA, 3 * tpb), 0);
	ck_assert_int_eq(ct_write(c, d, 1, 0, 3 * tpb), 0);
	/* namespaces never match each other; NULL is the zero namespace */
	ck_assert_int_eq(kvmm_prefix_match(c, &ns2, tokA, 3 * tpb, &h, &m), 0);
	ck_assert_uint_eq(m, 0);
	ck_assert_ptr_null(h);
	ck_assert_int_eq(kvmm_prefix_match(c, NULL, tokA, 3 * tpb, &h, &m), 0);
	ck_assert_uint_eq(m, 0);
	ck_assert_int_eq(kvmm_prefix_match(c, &ns1, tokA, 3 * tpb, &h, &m), 0);
	ck_assert_uint_eq(m, 3 * tpb);
	kvmm_prefix_release(c, h);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ck_assert_int_eq(kvmm_seq_close(c, d), 0);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_cap)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_prefix_config pc = {0};
	struct kvmm_cache *c;
	uint32_t tpb, a, b;
	struct kvmm_prefix_stats st;

	init_tokens();
	c = ct_make(be, _i, 6, -8, 48);
	tpb = c->g.tpb;
	pc.max_bytes = 3 * c->g.block_bytes;
	ck_assert_int_eq(kvmm_prefix_enable(c, &pc), 0);
	a = filled(c, 1, 5 * tpb);
	/* A runs (pins its blocks): only three fit */
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 5 * tpb), (int)(3 * tpb));
	st = pstats(c);
	ck_assert_uint_eq(st.blocks_cached, 3);
	ck_assert_uint_eq(st.cap_rejects, 2);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	/* B's prefix replaces A's, which nothing pins any more */
	b = filled(c, 2, 2 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, b, NULL, tokB, 2 * tpb), (int)(2 * tpb));
	st = pstats(c);
	ck_assert_uint_eq(st.blocks_cached, 3);
	ck_assert_uint_eq(st.evictions[KVMM_EVICT_CAP], 2);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_sharing_stats)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 48, NULL);
	uint32_t tpb = c->g.tpb, a, b, d;
	struct kvmm_prefix_stats st;

	init_tokens();
	a = filled(c, 1, 2 * tpb + 1);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 2 * tpb + 1), (int)(2 * tpb));
	b = attached(c, tokA, 2 * tpb, 2 * tpb, KVMM_ATTACH_ALIAS);
	d = attached(c, tokA, 2 * tpb + 1, 2 * tpb, KVMM_ATTACH_ALIAS);
	st = pstats(c);
	ck_assert_uint_eq(st.blocks_cached, 2);
	ck_assert_uint_eq(st.blocks_shared, 2);
	ck_assert_uint_eq(st.sharing_refs, 6); /* A's own, B's and D's alias */
	ck_assert_uint_eq(st.lookups, 2);
	ck_assert_uint_eq(st.hit_tokens, 4 * tpb);
	ck_assert_uint_eq(st.inserted_tokens, 2 * tpb);
	ck_assert_uint_eq(st.namespaces, 1);
	ck_assert_uint_eq(ct_stats(c).pages_shared, 2ull * c->g.ppb);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	st = pstats(c);
	ck_assert_uint_eq(st.sharing_refs, 2);
	ck_assert_int_eq(kvmm_seq_close(c, d), 0);
	st = pstats(c);
	ck_assert_uint_eq(st.blocks_shared, 0);
	ck_assert_uint_eq(st.blocks_pinned, 0);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* An alias attach whose partial-block copy cannot get a block fails with
 * -ENOMEM and leaves the sequence as it was (no read-only entries). */
START_TEST(test_attach_nomem_rolls_back)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 6, NULL);
	uint32_t tpb = c->g.tpb, plen = 3 * tpb + 5, a, b, d, m;
	uint32_t *q = malloc((plen + tpb) * sizeof(*q));
	struct kvmm_prefix_handle *h;

	init_tokens();
	/* A (4 blocks, running: pinned) and D (2 blocks) fill the budget. */
	a = filled(c, 1, 4 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 4 * tpb), (int)(4 * tpb));
	d = filled(c, 2, 2 * tpb);
	memcpy(q, tokA, plen * sizeof(*q));
	memcpy(q + plen, tokB, tpb * sizeof(*q));
	ck_assert_int_eq(kvmm_prefix_match(c, NULL, q, plen + tpb, &h, &m), 0);
	ck_assert_uint_eq(m, plen);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(kvmm_seq_attach_prefix(c, b, h, KVMM_ATTACH_ALIAS), -ENOMEM);
	ck_assert_int_eq(kvmm_seq_len(c, b), 0);
	for (uint32_t i = 0; i < 4; i++)
		ck_assert_uint_eq(kvmm_bte(c, b, i)->flags, 0);
	ck_assert_uint_eq(c->slots[b].immut_end, 0);
	ct_verify(c);
	/* With room again, the same handle attaches. */
	ck_assert_int_eq(kvmm_seq_close(c, d), 0);
	ck_assert_int_eq(kvmm_seq_attach_prefix(c, b, h, KVMM_ATTACH_ALIAS), 0);
	ct_check(c, b, 1, 0, plen);
	kvmm_prefix_release(c, h);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
	free(q);
}
END_TEST

START_TEST(test_errors)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = ct_make(be, _i, 6, -8, 48), *c2;
	struct kvmm_prefix_config bad = {.flags = 1};
	struct kvmm_prefix_handle *h;
	struct kvmm_prefix_stats st;
	uint32_t tpb = c->g.tpb, a, b, m;

	init_tokens();
	/* not enabled */
	ck_assert_int_eq(kvmm_prefix_match(c, NULL, tokA, 4, &h, &m), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_stats(c, &st), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_evict(c, 1), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_hint(c, NULL, tokA, 4, 0), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_enable(NULL, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_enable(c, &bad), -EINVAL);
	bad = (struct kvmm_prefix_config){.policy = 7};
	ck_assert_int_eq(kvmm_prefix_enable(c, &bad), -EINVAL);
	bad = (struct kvmm_prefix_config){.attach = 9};
	ck_assert_int_eq(kvmm_prefix_enable(c, &bad), -EINVAL);
	bad = (struct kvmm_prefix_config){.max_bytes = 1};
	ck_assert_int_eq(kvmm_prefix_enable(c, &bad), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_enable(c, NULL), 0);
	ck_assert_int_eq(kvmm_prefix_enable(c, NULL), -EEXIST);
	ck_assert_int_eq(kvmm_prefix_match(c, NULL, NULL, 4, &h, &m), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_match(c, NULL, tokA, 4, NULL, &m), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_insert(c, 5, NULL, tokA, 4), -EINVAL); /* closed */

	a = filled(c, 1, 2 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 2 * tpb), (int)(2 * tpb));
	ck_assert_int_eq(kvmm_prefix_match(c, NULL, tokA, 2 * tpb, &h, &m), 0);
	/* the sequence must be empty; modes and handles are checked */
	ck_assert_int_eq(kvmm_seq_attach_prefix(c, a, h, KVMM_ATTACH_ALIAS), -EBUSY);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(kvmm_seq_attach_prefix(c, b, h, (enum kvmm_attach_mode)5), -EINVAL);
	ck_assert_int_eq(kvmm_seq_attach_prefix(c, b, NULL, KVMM_ATTACH_ALIAS), -EINVAL);
	ck_assert_int_eq(kvmm_seq_attach_prefix(c, 77, h, KVMM_ATTACH_ALIAS), -EINVAL);
	c2 = ct_make(be, _i, 6, -8, 48);
	ck_assert_int_eq(kvmm_prefix_enable(c2, NULL), 0);
	ck_assert_int_eq(kvmm_seq_attach_prefix(c2, 0, h, KVMM_ATTACH_ALIAS), -EINVAL);
	kvmm_prefix_release(c2, h); /* not c2's: ignored */
	kvmm_cache_destroy(c2);
	/* nothing changed by the failures */
	ck_assert_int_eq(kvmm_seq_len(c, b), 0);
	ck_assert_int_eq(kvmm_seq_attach_prefix(c, b, h, KVMM_ATTACH_ALIAS), 0);
	ct_check(c, b, 1, 0, 2 * tpb);
	kvmm_prefix_release(c, h);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* q = tokA[0..a) then tokB[0..b). */
static uint32_t *joined(uint32_t a, uint32_t b)
{
	uint32_t *q = malloc((a + b) * sizeof(*q));

	ck_assert_ptr_nonnull(q);
	memcpy(q, tokA, a * sizeof(*q));
	memcpy(q + a, tokB, b * sizeof(*q));
	return q;
}

/* A sequence's insert continues from the prefix it attached (its pin),
 * whatever happened to the tree meanwhile: it publishes and caches only
 * what follows, keyed by the attached path; its last attached block must
 * be the caller's (else -EINVAL and nothing is published). */
START_TEST(test_insert_continues)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 64, NULL);
	uint32_t tpb = c->g.tpb, a, b, d, e, m, *q, *x;
	struct kvmm_prefix_handle *h;

	init_tokens();
	q = joined(3 * tpb, 2 * tpb);
	x = malloc(3 * tpb * sizeof(*x));
	memcpy(x, tokA, 2 * tpb * sizeof(*x));
	for (uint32_t i = 2 * tpb; i < 3 * tpb; i++)
		x[i] = 77;
	a = filled(c, 1, 3 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 3 * tpb), (int)(3 * tpb));
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ck_assert_uint_eq(pstats(c).blocks_pinned, 0); /* dropped at close */
	/* B attaches the three blocks and computes two more */
	b = attached(c, q, 3 * tpb + 1, 3 * tpb, KVMM_ATTACH_ALIAS);
	ck_assert_uint_eq(pstats(c).blocks_pinned, 3);
	ck_assert_int_eq(ct_step1(c, b, 5 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, 3 * tpb, 2 * tpb), 0);
	/* meanwhile: a sibling after block 1 (splitting B's path), and an
	 * eviction that may take all but B's path */
	d = filled(c, 3, 3 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, d, NULL, x, 3 * tpb), (int)tpb);
	ck_assert_int_eq(kvmm_seq_close(c, d), 0);
	ck_assert_int_eq(kvmm_prefix_evict(c, 100), 1);
	/* the last attached block differs: refused, nothing published */
	q[3 * tpb - 1] ^= 1;
	ck_assert_int_eq(kvmm_prefix_insert(c, b, NULL, q, 5 * tpb), -EINVAL);
	q[3 * tpb - 1] ^= 1;
	ck_assert_uint_eq(kvmm_bte(c, b, 3)->flags & BT_SHARED, 0);
	ck_assert_uint_eq(pstats(c).blocks_cached, 3);
	/* continued: only blocks 3 and 4 are published */
	ck_assert_int_eq(kvmm_prefix_insert(c, b, NULL, q, 5 * tpb), (int)(2 * tpb));
	ck_assert_uint_ne(kvmm_bte(c, b, 3)->flags & BT_SHARED, 0);
	ck_assert_uint_eq(pstats(c).blocks_cached, 5);
	ck_assert_uint_eq(pstats(c).blocks_pinned, 5);
	ct_verify(c);
	/* E gets all five, with the right KV */
	e = attached(c, q, 5 * tpb, 5 * tpb, KVMM_ATTACH_ALIAS);
	ct_check(c, e, 1, 0, 3 * tpb);
	ct_check(c, e, 2, 3 * tpb, 2 * tpb);
	ck_assert_int_eq(kvmm_seq_close(c, e), 0);
	/* tokens before the last attached block are not compared: B's next
	 * block is keyed by the path its KV continues */
	ck_assert_int_eq(ct_step1(c, b, 6 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, 5 * tpb, tpb), 0);
	free(q);
	q = joined(3 * tpb, 3 * tpb);
	q[0] ^= 1;
	ck_assert_int_eq(kvmm_prefix_insert(c, b, NULL, q, 6 * tpb), (int)tpb);
	ck_assert_uint_eq(cached_len(c, q, 6 * tpb), 0);
	q[0] ^= 1;
	ck_assert_uint_eq(cached_len(c, q, 6 * tpb), 6 * tpb);
	ck_assert_int_eq(kvmm_prefix_match(c, NULL, q, 6 * tpb, &h, &m), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &e), 0);
	ck_assert_int_eq(kvmm_seq_attach_prefix(c, e, h, KVMM_ATTACH_COPY), 0);
	kvmm_prefix_release(c, h);
	ct_check(c, e, 1, 0, 3 * tpb);
	ct_check(c, e, 2, 3 * tpb, 3 * tpb);
	ck_assert_int_eq(kvmm_seq_close(c, e), 0);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ck_assert_uint_eq(pstats(c).blocks_pinned, 0);
	ck_assert_int_eq(kvmm_prefix_evict(c, 100), 6);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
	free(q);
	free(x);
}
END_TEST

/* A copy-attached sequence pins its prefix weakly: an insert continues
 * from it while it lasts, eviction takes it when nothing else is left,
 * and the sequence then publishes its own copies instead. */
START_TEST(test_copy_pin_weak)
{
	struct kvmm_backend *be = ct_backend(PG);
	/* budget: A's 4 cached + B's 6 + 2 spare */
	struct kvmm_cache *c = make(be, _i, 12, NULL);
	uint32_t tpb = c->g.tpb, a, b, d, e, *q;

	init_tokens();
	q = joined(4 * tpb, 2 * tpb);
	a = filled(c, 1, 4 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 4 * tpb), (int)(4 * tpb));
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	b = attached(c, q, 4 * tpb + 1, 4 * tpb, KVMM_ATTACH_COPY);
	ck_assert_uint_eq(pstats(c).blocks_pinned, 4);
	ck_assert_int_eq(ct_step1(c, b, 5 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, 4 * tpb, tpb), 0);
	/* from the weak pin: block 4 only; B's copies stay its own */
	ck_assert_int_eq(kvmm_prefix_insert(c, b, NULL, q, 5 * tpb), (int)tpb);
	ck_assert_int_eq(ct_write(c, b, 1, 0, 1), 0);
	ck_assert_uint_eq(pstats(c).blocks_pinned, 5);
	/* now B maps a block of the path: the pin is strong */
	ck_assert_int_eq(kvmm_prefix_evict(c, 100), 0);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ck_assert_int_eq(kvmm_prefix_evict(c, 100), 5);
	ct_verify(c);

	/* again, and pressure: D needs 8 blocks, 4 free + 4 cached and
	 * weakly pinned by B, which holds copies: they go */
	a = filled(c, 1, 4 * tpb);
	ck_assert_int_eq(kvmm_prefix_insert(c, a, NULL, tokA, 4 * tpb), (int)(4 * tpb));
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	kvmm_cache_quiesce(c);
	b = attached(c, q, 4 * tpb + 1, 4 * tpb, KVMM_ATTACH_COPY);
	d = filled(c, 3, 4 * tpb);
	ck_assert_int_eq(kvmm_seq_close(c, d), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &d), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, d, 8 * tpb), 0);
	ck_assert_uint_eq(pstats(c).blocks_cached, 0);
	ck_assert_uint_eq(pstats(c).blocks_pinned, 0);
	ck_assert_uint_ge(pstats(c).evictions[KVMM_EVICT_PRESSURE], 4);
	ck_assert_int_eq(kvmm_seq_close(c, d), 0);
	/* B's insert walks from the root and publishes its copies */
	ck_assert_int_eq(ct_step1(c, b, 6 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, 4 * tpb, 2 * tpb), 0);
	ck_assert_int_eq(kvmm_prefix_insert(c, b, NULL, q, 6 * tpb), (int)(6 * tpb));
	ck_assert_int_eq(ct_write(c, b, 1, 0, 1), -EPERM);
	e = attached(c, q, 6 * tpb, 6 * tpb, KVMM_ATTACH_ALIAS);
	ct_check(c, e, 1, 0, 4 * tpb);
	ct_check(c, e, 2, 4 * tpb, 2 * tpb);
	ck_assert_int_eq(kvmm_seq_close(c, e), 0);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
	free(q);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("prefix_attach");
	TCase *tc = tcase_create("attach");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_alias_content, 0, 6);
	tcase_add_loop_test(tc, test_copy_content, 0, 6);
	tcase_add_loop_test(tc, test_running_blocks_kept, 0, 6);
	tcase_add_loop_test(tc, test_pressure_lru_and_hint, 0, 6);
	tcase_add_loop_test(tc, test_auto_rule, 0, 6);
	tcase_add_loop_test(tc, test_given_costs, 0, 6);
	tcase_add_loop_test(tc, test_forced_mode, 0, 6);
	tcase_add_loop_test(tc, test_hint_clock, 0, 3);
	tcase_add_loop_test(tc, test_insert_rules, 0, 6);
	tcase_add_loop_test(tc, test_cap, 0, 6);
	tcase_add_loop_test(tc, test_sharing_stats, 0, 6);
	tcase_add_loop_test(tc, test_errors, 0, 6);
	tcase_add_loop_test(tc, test_insert_continues, 0, 6);
	/* without the mapper: its map-ahead would make the budget fuzzy */
	tcase_add_loop_test(tc, test_attach_nomem_rolls_back, 0, 3);
	tcase_add_loop_test(tc, test_copy_pin_weak, 0, 3);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
