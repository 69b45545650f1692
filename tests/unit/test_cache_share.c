// SPDX-License-Identifier: MIT
/*
 * test_cache_share.c - the internal interface the prefix cache and the
 * tiers build on: publishing blocks, aliasing them read-only into another
 * sequence, copies (snapshot, copy-in) that diverge, immutability of
 * shared blocks, unmapping shared blocks before a slot is reused, and the
 * reclaimer under pressure.  All layouts, with and without the mapper.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cachetest.h"
#include "testutil.h"

#define PG CT_PAGE

/* Blocks per sequence: 8 for every layout. */
static struct kvmm_cache *make(struct kvmm_backend *be, int i, uint64_t budget_blocks)
{
	return ct_make(be, i, 4, -8, budget_blocks);
}

static void write_u8(void *p)
{
	*(volatile uint8_t *)p = 0x5a;
}

static void read_u8(void *p)
{
	(void)*(volatile uint8_t *)p;
}

/* Address of token t of layer 0's K of sequence s. */
static void *tok_addr(struct kvmm_cache *c, uint32_t s, uint32_t t)
{
	struct kvmm_view v;

	ck_assert_int_eq(kvmm_cache_view(c, 0, KVMM_K, &v), 0);
	return (void *)(uintptr_t)kvmm_view_token(&v, s, t);
}

START_TEST(test_alias_and_copy)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 64);
	uint32_t tpb = c->g.tpb, ppb = c->g.ppb, a, b, plen = 3 * tpb + 5;
	kvmm_blk_t pub[3], snap;
	struct kvmm_seq_stats ss;

	/* A: a prompt of three full blocks and five tokens. */
	ck_assert_int_eq(kvmm_seq_open(c, plen, &a), 0);
	ck_assert_int_eq(ct_step1(c, a, plen), 0);
	ck_assert_int_eq(ct_write(c, a, 1, 0, plen), 0);
	/* Only full blocks can be published; then A cannot touch them. */
	ck_assert_int_eq(kvmm_seq_publish(c, a, 0, 4, pub), -EINVAL);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 0, 3, pub), 0);
	ck_assert_int_eq(kvmm_seq_write(c, a, 0, KVMM_K, 0, 1, tok_addr(c, a, 0)), -EPERM);
	ck_assert_int_eq(ct_step1(c, a, 2 * tpb), -EPERM);
	ck_assert_int_eq(kvmm_seq_len(c, a), plen);
	ck_assert_int_eq(kvmm_seq_snapshot(c, a, 3, &snap), 0);
	ck_assert_uint_eq(ct_stats(c).pages_shared, 4ull * ppb);

	/* B: own block 0 mapped first, so the alias must unmap it. */
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, b, 1), 0);
	ck_assert_int_eq(kvmm_seq_own_mapped(c, b, 0, 3), 1);
	ck_assert_int_eq(kvmm_seq_alias(c, b, 0, 3, pub), 0);
	ck_assert_int_eq(kvmm_seq_own_mapped(c, b, 0, 3), 0);
	ck_assert_int_eq(kvmm_seq_copy_in(c, b, 3, snap), 0);
	ck_assert_int_eq(ct_step1(c, b, plen), 0);
	ct_check(c, b, 1, 0, plen); /* A's KV, seen through B */
	ck_assert_int_eq(kvmm_seq_stats(c, b, &ss), 0);
	ck_assert_uint_eq(ss.shared_tokens, 3 * tpb);

	/* Shared blocks are immutable for B: by the API and by the MMU. */
	ck_assert_int_eq(kvmm_seq_write(c, b, 0, KVMM_K, tpb, 1, tok_addr(c, a, 0)), -EPERM);
	ck_assert_int_eq(tu_faults(write_u8, tok_addr(c, b, tpb)), 1);
	ck_assert_int_eq(tu_faults(read_u8, tok_addr(c, b, tpb)), 0);
	/* B's copy of the partial block is its own: writes diverge. */
	ck_assert_int_eq(ct_write(c, b, 2, 3 * tpb, 5), 0);
	ct_check(c, b, 2, 3 * tpb, 5);
	ct_check(c, a, 1, 0, plen);
	/* B grows past the prefix; A grows too; neither sees the other. */
	ck_assert_int_eq(ct_step1(c, b, plen + tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, plen, tpb), 0);
	ck_assert_int_eq(ct_step1(c, a, plen + tpb), 0);
	ck_assert_int_eq(ct_write(c, a, 1, plen, tpb), 0);
	ct_check(c, a, 1, 0, plen + tpb);
	ct_check(c, b, 1, 0, 3 * tpb);
	ct_check(c, b, 2, 3 * tpb, 5 + tpb);
	ct_verify(c);

	/* Closing B unmaps the shared blocks from its slot before reuse. */
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	kvmm_cache_quiesce(c);
	for (uint32_t i = 0; i < 3; i++)
		ck_assert_uint_eq(kvmm_bte(c, b, i)->flags, 0);
	ck_assert_int_eq(tu_faults(read_u8, tok_addr(c, b, 0)), 1);
	ct_verify(c);
	ck_assert_int_eq(kvmm_seq_open(c, 2 * tpb, &b), 0);
	ck_assert_int_eq(ct_step1(c, b, 2 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 3, 0, 2 * tpb), 0);
	ct_check(c, b, 3, 0, 2 * tpb);
	ct_check(c, a, 1, 0, plen + tpb); /* the cached blocks untouched */

	/* Dropping the cache's references: A's published blocks become its
	 * own again when it closes; the snapshot goes back to the pool. */
	kvmm_blk_put(c, pub, 3);
	kvmm_blk_put(c, &snap, 1);
	ck_assert_uint_eq(ct_stats(c).pages_shared, 0);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ct_verify(c);
	ck_assert_uint_ge(ct_stats(c).pages_deferred, 4ull * ppb);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_share_errors)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 64);
	uint32_t tpb = c->g.tpb, a, b;
	kvmm_blk_t pub[2], bad = 12345, x;

	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(ct_step1(c, a, 2 * tpb), 0);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 0, 2, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 7, 2, pub), -EINVAL);
	ck_assert_int_eq(kvmm_seq_publish(c, 3, 0, 1, pub), -EINVAL);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 0, 2, pub), 0);
	/* Alias needs live, referenced blocks and an empty range. */
	ck_assert_int_eq(kvmm_seq_alias(c, b, 0, 1, &bad), -EINVAL);
	ck_assert_int_eq(ct_step1(c, b, 1), 0);
	ck_assert_int_eq(kvmm_seq_alias(c, b, 0, 2, pub), -EINVAL);
	ck_assert_int_eq(kvmm_seq_alias(c, b, 1, 2, pub), 0);
	ck_assert_int_eq(kvmm_seq_alias(c, b, 1, 1, pub), -EBUSY);
	ck_assert_int_eq(kvmm_seq_copy_in(c, b, 1, pub[0]), -EBUSY);
	ck_assert_int_eq(kvmm_seq_copy_in(c, b, 0, bad), -EINVAL);
	ck_assert_int_eq(kvmm_seq_snapshot(c, b, 7, &x), -EBUSY);
	ck_assert_int_eq(kvmm_seq_snapshot(c, b, 0, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_seq_own_mapped(c, 9, 0, 1), -EINVAL);
	/* Length cannot roll back into the aliased blocks. */
	ck_assert_int_eq(ct_step1(c, b, 3 * tpb), 0);
	ck_assert_int_eq(ct_step1(c, b, 2 * tpb), -EPERM);
	kvmm_blk_put(c, &bad, 1); /* ignored, not a crash */
	ct_verify(c);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	kvmm_blk_put(c, pub, 2);
	ct_verify(c);
	ck_assert_uint_eq(ct_stats(c).pages_shared, 0);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* Cached blocks live in home memory with no sequence mapping them; a
 * fresh block for the tiers has a home too. */
START_TEST(test_home_and_alloc)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 64);
	uint32_t tpb = c->g.tpb, a, b;
	kvmm_blk_t pub, fresh;
	uint8_t *buf = malloc(c->g.block_bytes);

	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(ct_step1(c, a, tpb), 0);
	ck_assert_int_eq(ct_write(c, a, 7, 0, tpb), 0);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 0, 1, &pub), 0);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	kvmm_cache_quiesce(c);
	/* "Spill" through home, "restore" into a fresh block, attach it. */
	ck_assert_int_eq(kvmm_blk_alloc(c, &fresh), 0);
	ck_assert_int_eq(kvmm_memcpy_to_host(be, buf, kvmm_blk_home(c, pub), c->g.block_bytes), 0);
	kvmm_blk_put(c, &pub, 1);
	ck_assert_int_eq(kvmm_memcpy_to_dev(be, kvmm_blk_home(c, fresh), buf, c->g.block_bytes), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(kvmm_seq_alias(c, b, 0, 1, &fresh), 0);
	ck_assert_int_eq(ct_step1(c, b, tpb), 0);
	ct_check(c, b, 7, 0, tpb);
	kvmm_blk_put(c, &fresh, 1);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ct_verify(c);
	ck_assert_uint_eq(ct_stats(c).pages_shared, 0);
	free(buf);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* The publisher closes after the prefix cache let go of its block while
 * another sequence still aliases it: the block must not become the
 * writable own block of the next sequence in the publisher's slot. */
START_TEST(test_close_publisher_with_alias)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 64);
	uint32_t tpb = c->g.tpb, a, b, a2;
	kvmm_blk_t pub;

	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(ct_step1(c, a, tpb), 0);
	ck_assert_int_eq(ct_write(c, a, 1, 0, tpb), 0);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 0, 1, &pub), 0);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(kvmm_seq_alias(c, b, 0, 1, &pub), 0);
	ck_assert_int_eq(ct_step1(c, b, tpb), 0);
	kvmm_blk_put(c, &pub, 1);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ct_verify(c);
	ck_assert_uint_eq(kvmm_bte(c, a, 0)->flags, 0); /* unmapped from a */
	/* Admit until the publisher's slot is handed out again. */
	do
		ck_assert_int_eq(kvmm_seq_open(c, tpb, &a2), 0);
	while (a2 != a);
	ck_assert_int_eq(ct_step1(c, a2, tpb), 0);
	ck_assert_int_eq(ct_write(c, a2, 2, 0, tpb), 0);
	ct_check(c, b, 1, 0, tpb);
	ct_check(c, a2, 2, 0, tpb);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* kvmm_seq_unalias takes aliases back: the entries are empty, the
 * rollback floor falls, the sequence can map own blocks and write there;
 * its own entries and published blocks are left alone. */
START_TEST(test_unalias)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 64);
	uint32_t tpb = c->g.tpb, a, b, d;
	kvmm_blk_t pub[3];

	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(ct_step1(c, a, 3 * tpb), 0);
	ck_assert_int_eq(ct_write(c, a, 1, 0, 3 * tpb), 0);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 0, 3, pub), 0);
	/* D holds tokens over its aliases: they are its prefix now */
	ck_assert_int_eq(kvmm_seq_open(c, 0, &d), 0);
	ck_assert_int_eq(kvmm_seq_alias(c, d, 0, 3, pub), 0);
	ck_assert_int_eq(ct_step1(c, d, 3 * tpb), 0);
	ck_assert_int_eq(kvmm_seq_unalias(c, d, 0, 3), -EINVAL);
	ck_assert_int_eq(kvmm_seq_unalias(c, d, 2, 1), -EINVAL);
	ct_check(c, d, 1, 0, 3 * tpb);
	/* B: an own block at 0 (mapped, no tokens), aliases at 1..3 */
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, b, 1), 0);
	ck_assert_int_eq(kvmm_seq_alias(c, b, 1, 3, pub), 0);
	ck_assert_uint_eq(c->slots[b].immut_end, 4);
	ck_assert_int_eq(ct_step1(c, b, tpb), -EPERM); /* below its aliases */
	ck_assert_int_eq(kvmm_seq_unalias(c, b, 7, 2), -EINVAL);
	ck_assert_int_eq(kvmm_seq_unalias(c, 3, 0, 1), -EINVAL);
	ck_assert_int_eq(kvmm_seq_unalias(NULL, b, 0, 1), -EINVAL);
	/* the last alias only: the floor follows the highest one left */
	ck_assert_int_eq(kvmm_seq_unalias(c, b, 3, 1), 0);
	ck_assert_uint_eq(kvmm_bte(c, b, 3)->flags, 0);
	ck_assert_uint_eq(c->slots[b].immut_end, 3);
	ct_verify(c);
	/* the rest; the own block at 0 is left alone */
	ck_assert_int_eq(kvmm_seq_unalias(c, b, 0, 8), 0);
	for (uint32_t i = 1; i < 8; i++)
		ck_assert_uint_eq(kvmm_bte(c, b, i)->flags, 0);
	ck_assert_uint_eq(kvmm_bte(c, b, 0)->flags & (BT_MAPPED | BT_SHARED), BT_MAPPED);
	ck_assert_uint_eq(c->slots[b].immut_end, 0);
	ck_assert_int_eq(tu_faults(read_u8, tok_addr(c, b, tpb)), 1);
	ct_verify(c);
	/* B is an ordinary sequence again: it grows over those indices,
	 * writes there and can roll back; the cached blocks are intact. */
	ck_assert_int_eq(ct_step1(c, b, 4 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, 0, 4 * tpb), 0);
	ck_assert_int_eq(ct_step1(c, b, 1), 0);
	ck_assert_int_eq(ct_step1(c, b, 4 * tpb), 0);
	ck_assert_int_eq(ct_write(c, b, 2, 0, 4 * tpb), 0);
	ct_check(c, b, 2, 0, 4 * tpb);
	ct_check(c, a, 1, 0, 3 * tpb);
	ct_check(c, d, 1, 0, 3 * tpb);
	/* A's published blocks are not aliases: a no-op above its tokens */
	ck_assert_int_eq(kvmm_seq_unalias(c, a, 3, 5), 0);
	ck_assert_uint_eq(c->slots[a].immut_end, 3);
	ct_verify(c);
	kvmm_blk_put(c, pub, 3);
	ck_assert_int_eq(kvmm_seq_close(c, d), 0);
	ck_assert_int_eq(kvmm_seq_close(c, b), 0);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ct_verify(c);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

struct closed_rec {
	struct kvmm_cache *c;
	uint32_t seq, calls;
	uint64_t gen;
	bool locked; /* the cache lock was held during the call */
};

static struct closed_rec closed_rec;

static void on_closed(struct kvmm_cache *c, uint32_t seq, uint64_t gen)
{
	closed_rec.calls++;
	closed_rec.seq = seq;
	closed_rec.gen = gen;
	if (pthread_mutex_trylock(&c->lock)) {
		closed_rec.locked = true;
	} else {
		pthread_mutex_unlock(&c->lock);
	}
}

/* The close hook is called once per close, with the closed sequence's
 * generation, after the cache lock is dropped (so it may call into the
 * cache); a failed close calls nothing. */
START_TEST(test_close_hook)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 64);
	uint32_t a, a2;
	uint64_t gen;

	memset(&closed_rec, 0, sizeof(closed_rec));
	c->prefix_seq_closed = on_closed;
	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	gen = c->slots[a].gen;
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ck_assert_uint_eq(closed_rec.calls, 1);
	ck_assert_uint_eq(closed_rec.seq, a);
	ck_assert_uint_eq(closed_rec.gen, gen);
	ck_assert(!closed_rec.locked);
	ck_assert_int_eq(kvmm_seq_close(c, a), -EINVAL);
	ck_assert_uint_eq(closed_rec.calls, 1);
	do
		ck_assert_int_eq(kvmm_seq_open(c, 0, &a2), 0);
	while (a2 != a);
	ck_assert_uint_gt(c->slots[a].gen, gen);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ck_assert_uint_eq(closed_rec.gen, c->slots[a].gen);
	c->prefix_seq_closed = NULL;
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

/* Publishing many blocks at once keeps the slot's bookkeeping right
 * (the mapped prefix count is not rescanned per block). */
START_TEST(test_publish_many)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 64);
	uint32_t tpb = c->g.tpb, a;
	kvmm_blk_t pub[8];
	struct kvmm_seq_stats ss;

	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(ct_step1(c, a, 8 * tpb), 0);
	ck_assert_int_eq(ct_write(c, a, 4, 0, 8 * tpb), 0);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 2, 5, pub + 2), 0);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 0, 8, pub), 0); /* 2..6 again */
	ck_assert_uint_eq(c->slots[a].cap, 8);
	ck_assert_uint_eq(c->slots[a].immut_end, 8);
	ck_assert_int_eq(kvmm_seq_stats(c, a, &ss), 0);
	ck_assert_uint_eq(ss.shared_tokens, 8 * tpb);
	ct_verify(c);
	ct_check(c, a, 4, 0, 8 * tpb);
	kvmm_blk_put(c, pub + 2, 5);
	kvmm_blk_put(c, pub, 8);
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	ct_verify(c);
	ck_assert_uint_eq(ct_stats(c).pages_shared, 0);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

struct reclaimer {
	kvmm_blk_t blks[16];
	uint32_t n, calls;
};

static uint32_t reclaim(void *arg, struct kvmm_cache *c, uint32_t nblocks)
{
	struct reclaimer *r = arg;
	uint32_t k = nblocks < r->n ? nblocks : r->n;

	r->calls++;
	r->n -= k;
	kvmm_blk_put(c, r->blks + r->n, k);
	return k;
}

/* When the budget is used up by cached blocks, a sequence that needs a
 * block gets one by asking the reclaimer, not -ENOMEM. */
START_TEST(test_reclaimer)
{
	struct kvmm_backend *be = ct_backend(PG);
	struct kvmm_cache *c = make(be, _i, 8);
	struct reclaimer r = {0};
	uint32_t tpb = c->g.tpb, a, b;

	kvmm_cache_set_reclaimer(c, reclaim, &r);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(ct_step1(c, a, 4 * tpb), 0);
	ck_assert_int_eq(kvmm_seq_publish(c, a, 0, 4, r.blks), 0);
	r.n = 4;
	ck_assert_int_eq(kvmm_seq_close(c, a), 0);
	kvmm_cache_quiesce(c);
	ck_assert_uint_eq(ct_stats(c).pages_shared, 4ull * c->g.ppb);
	ck_assert_int_eq(kvmm_seq_open(c, 0, &b), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, b, 8 * tpb), 0);
	ck_assert_uint_ge(r.calls, 1);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_uint_eq(ct_stats(c).pages_shared, 0);
	ck_assert_uint_ge(ct_stats(c).reclaim_calls, 1);
	ck_assert_uint_le(ct_stats(c).pages_peak, 8ull * c->g.ppb);
	/* Nothing left to reclaim: now it is -ENOMEM. */
	ck_assert_int_eq(kvmm_seq_open(c, 0, &a), 0);
	ck_assert_int_eq(kvmm_seq_reserve(c, a, 1), -ENOMEM);
	ct_verify(c);
	kvmm_cache_set_reclaimer(c, NULL, NULL);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cache_share");
	TCase *tc = tcase_create("share");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_alias_and_copy, 0, 6);
	tcase_add_loop_test(tc, test_share_errors, 0, 6);
	tcase_add_loop_test(tc, test_home_and_alloc, 0, 6);
	tcase_add_loop_test(tc, test_close_publisher_with_alias, 0, 6);
	tcase_add_loop_test(tc, test_reclaimer, 0, 6);
	tcase_add_loop_test(tc, test_unalias, 0, 6);
	tcase_add_loop_test(tc, test_close_hook, 0, 6);
	tcase_add_loop_test(tc, test_publish_many, 0, 6);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
