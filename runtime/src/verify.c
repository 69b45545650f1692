// SPDX-License-Identifier: MIT
/*
 * verify.c - recount a cache from its tables and check every invariant the
 * counters and the rest of the code rely on.  Tests call it after random
 * operations; it is how "no two sequences share a physical page unless it
 * is shared" and "the budget is never overshot" are checked directly.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cache_internal.h"

static int __attribute__((format(printf, 3, 4))) fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return -EUCLEAN;
}

#define CHECK(cond, ...)                                   \
	do {                                               \
		if (!(cond)) {                             \
			ret = fail(why, len, __VA_ARGS__); \
			goto out;                          \
		}                                          \
	} while (0)

int kvmm_cache_verify(struct kvmm_cache *c, char *why, size_t len)
{
	uint32_t *maps = NULL, *owners = NULL;
	uint32_t own[2] = {0}, shared[2] = {0}, nfree = 0, nlive = 0, ncached = 0, active = 0;
	uint64_t tokens = 0;
	int ret = 0;

	kvmm_cache_quiesce(c);
	kvmm_lock(c);
	maps = calloc(c->next_id + 1, sizeof(*maps));
	owners = calloc(c->next_id + 1, sizeof(*owners));
	CHECK(maps && owners, "out of memory");
	for (uint32_t s = 0; s < c->g.max_seqs; s++) {
		struct kvmm_slot *sl = &c->slots[s];
		uint32_t cap = 0, hi = 0, nown = 0, nsh = 0, npend = 0, immut = 0;
		bool act = sl->state == SLOT_ACTIVE;

		for (uint32_t b = 0; b < c->g.bps; b++) {
			struct kvmm_bte *e = kvmm_bte(c, s, b);

			CHECK(!(e->flags & BT_BUSY), "slot %u block %u busy at rest", s, b);
			if (!(e->flags & BT_MAPPED)) {
				CHECK(!e->flags && e->blk == KVMM_BLK_NONE,
				      "slot %u block %u: unmapped entry not empty", s, b);
				continue;
			}
			CHECK(e->blk < c->next_id, "slot %u block %u: bad block id", s, b);
			CHECK(kvmm_blk(c, e->blk)->state == BLK_USED,
			      "slot %u block %u: block %u not in use", s, b, e->blk);
			maps[e->blk]++;
			hi = b + 1;
			if (cap == b)
				cap = b + 1;
			if (e->flags & BT_PENDING) {
				CHECK(!act, "active slot %u has a pending entry", s);
				npend++;
			}
			if (e->flags & BT_SHARED) {
				nsh++;
				immut = b + 1;
				if (e->flags & BT_RO)
					continue;
			} else {
				struct kvmm_blk *bk = kvmm_blk(c, e->blk);

				nown++;
				CHECK(!(e->flags & BT_RO), "own entry %u/%u is read-only", s, b);
				/* An own block is this slot's alone. */
				CHECK(bk->maps == 1 && !bk->xrefs,
				      "own block %u of slot %u shared (maps %u refs %u)", e->blk, s,
				      bk->maps, bk->xrefs);
			}
			/* A block mapped writable lives in exactly one place. */
			CHECK(!owners[e->blk], "block %u mapped writable twice", e->blk);
			owners[e->blk] = 1;
		}
		CHECK(sl->cap == cap, "slot %u cap %u, recount %u", s, sl->cap, cap);
		CHECK(sl->hi >= hi, "slot %u hi %u below %u", s, sl->hi, hi);
		CHECK(sl->nown == nown && sl->nshared == nsh && sl->npending == npend,
		      "slot %u counts own %u/%u shared %u/%u pending %u/%u", s, sl->nown, nown,
		      sl->nshared, nsh, sl->npending, npend);
		own[act] += nown;
		shared[act] += nsh;
		if (act) {
			active++;
			tokens += sl->len;
			CHECK(sl->immut_end == immut, "slot %u immut_end %u, recount %u", s,
			      sl->immut_end, immut);
			CHECK((uint64_t)sl->len <= (uint64_t)cap * c->g.tpb,
			      "slot %u length %u above its mapped capacity", s, sl->len);
			CHECK(sl->reserved <= cap * (uint64_t)c->g.tpb,
			      "slot %u reservation %u not mapped", s, sl->reserved);
		} else {
			CHECK(!sl->len, "idle slot %u has a length", s);
		}
	}
	for (kvmm_blk_t id = 0; id < c->next_id; id++) {
		struct kvmm_blk *b = kvmm_blk(c, id);

		if (b->state == BLK_DEAD)
			continue;
		nlive++;
		CHECK(!b->held, "block %u held at rest", id);
		CHECK(b->maps == maps[id], "block %u maps %u, recount %u", id, b->maps, maps[id]);
		if (b->state == BLK_FREE) {
			nfree++;
			CHECK(!b->maps && !b->xrefs, "free block %u in use", id);
		} else {
			CHECK(b->maps || b->xrefs, "block %u used by nothing but not free", id);
		}
		ncached += b->xrefs > 0;
	}
	CHECK(nlive == c->nblocks, "live blocks %u, recount %u", c->nblocks, nlive);
	CHECK(nfree == c->nfree, "free blocks %u, recount %u", c->nfree, nfree);
	CHECK(ncached == c->ncached, "cached blocks %u, recount %u", c->ncached, ncached);
	CHECK(own[1] == c->own_active && own[0] == c->own_idle, "own counts %u/%u vs %u/%u",
	      c->own_active, c->own_idle, own[1], own[0]);
	CHECK(shared[1] == c->shared_active && shared[0] == c->shared_idle,
	      "shared counts %u/%u vs %u/%u", c->shared_active, c->shared_idle, shared[1],
	      shared[0]);
	CHECK(active == c->seqs_active, "active %u, recount %u", c->seqs_active, active);
	CHECK(tokens == c->tokens_used, "tokens %llu, recount %llu",
	      (unsigned long long)c->tokens_used, (unsigned long long)tokens);
	CHECK((uint64_t)nlive * c->g.ppb == c->committed_pages, "committed %llu, live pages %llu",
	      (unsigned long long)c->committed_pages, (unsigned long long)nlive * c->g.ppb);
	{
		uint32_t n = 0;

		for (kvmm_blk_t id = c->free_head; id != KVMM_NONE; id = kvmm_blk(c, id)->next) {
			CHECK(kvmm_blk(c, id)->state == BLK_FREE, "free list holds block %u", id);
			CHECK(++n <= nfree, "free list longer than the free count");
		}
		CHECK(n == nfree, "free list has %u blocks, %u free", n, nfree);
	}
out:
	kvmm_unlock(c);
	free(maps);
	free(owners);
	return ret;
}
