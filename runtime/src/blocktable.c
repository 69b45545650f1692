// SPDX-License-Identifier: MIT
/*
 * blocktable.c - mapping and unmapping blocks in a slot's block table.
 *
 * Every change of an entry follows one protocol: under the lock, mark the
 * entries BUSY and hold the blocks; drop the lock; call the driver; retake
 * the lock; commit (or undo) and wake waiters.  So the cache lock is never
 * held across a driver call, and two threads (the mapper and a caller of
 * kvmm_seq_reserve, say) never work on one entry.
 *
 * Runs of consecutive entries are mapped with one set_access per part: a
 * run of k blocks is contiguous in every (layer, K/V) tensor, and the
 * driver's access call costs far more than its map call (H100: ~39 us vs
 * ~2.5 us per 2 MiB page), so batching it is where the mapper wins.
 */
#include <errno.h>

#include "cache_internal.h"

uint32_t kvmm_slot_needed(const struct kvmm_cache *c, const struct kvmm_slot *sl)
{
	uint32_t tok = sl->len > sl->reserved ? sl->len : sl->reserved;
	uint32_t need = kvmm_blocks_for(c, tok);

	if (sl->immut_end > need)
		need = sl->immut_end;
	if (sl->step_need > need)
		need = sl->step_need;
	return need;
}

uint32_t kvmm_slot_target(const struct kvmm_cache *c, const struct kvmm_slot *sl)
{
	uint64_t tok = (uint64_t)sl->len + c->ahead;
	uint32_t want, need = kvmm_slot_needed(c, sl);

	if (tok < sl->hint)
		tok = sl->hint;
	if (tok > c->g.max_tokens)
		tok = c->g.max_tokens;
	want = kvmm_blocks_for(c, tok);
	return want > need ? want : need;
}

static void count_entry(struct kvmm_cache *c, struct kvmm_slot *sl, uint32_t flags, int d)
{
	bool active = sl->state == SLOT_ACTIVE;

	if (flags & BT_SHARED) {
		sl->nshared += (uint32_t)d;
		if (active)
			c->shared_active += (uint32_t)d;
		else
			c->shared_idle += (uint32_t)d;
	} else {
		sl->nown += (uint32_t)d;
		if (active)
			c->own_active += (uint32_t)d;
		else
			c->own_idle += (uint32_t)d;
	}
}

void kvmm_bte_mapped(struct kvmm_cache *c, uint32_t s, uint32_t b, kvmm_blk_t blk, uint32_t flags)
{
	struct kvmm_slot *sl = &c->slots[s];
	struct kvmm_bte *e = kvmm_bte(c, s, b);

	e->blk = blk;
	e->flags = (flags & ~BT_BUSY) | BT_MAPPED;
	c->pool_events++;
	count_entry(c, sl, e->flags, 1);
	if (b == sl->cap)
		while (sl->cap < c->g.bps && (kvmm_bte(c, s, sl->cap)->flags & BT_MAPPED))
			sl->cap++;
	if (b >= sl->hi)
		sl->hi = b + 1;
	if ((e->flags & BT_SHARED) && sl->state == SLOT_ACTIVE && b >= sl->immut_end)
		sl->immut_end = b + 1;
}

void kvmm_bte_unmapping(struct kvmm_cache *c, uint32_t s, uint32_t b)
{
	struct kvmm_slot *sl = &c->slots[s];
	struct kvmm_bte *e = kvmm_bte(c, s, b);

	count_entry(c, sl, e->flags, -1);
	e->flags = (e->flags & ~BT_MAPPED) | BT_BUSY;
	if (b < sl->cap)
		sl->cap = b;
}

/* Commit of an unmap: the entry is empty, the block lost one mapping. */
static void bte_unmapped(struct kvmm_cache *c, uint32_t s, uint32_t b)
{
	struct kvmm_slot *sl = &c->slots[s];
	struct kvmm_bte *e = kvmm_bte(c, s, b);
	kvmm_blk_t blk = e->blk;

	if (e->flags & BT_PENDING)
		sl->npending--;
	e->blk = KVMM_BLK_NONE;
	e->flags = 0;
	while (sl->hi && !kvmm_bte(c, s, sl->hi - 1)->flags)
		sl->hi--;
	kvmm_blk(c, blk)->maps--;
	kvmm_blk_maybe_free(c, blk);
}

int kvmm_bte_unmap(struct kvmm_cache *c, uint32_t s, uint32_t b, struct kvmm_op *op)
{
	int ret = 0, r;

	c->inflight++;
	kvmm_unlock(c);
	/* Unmap every part even if one fails, so as little as possible stays
	 * mapped behind the bookkeeping's back. */
	for (uint32_t j = 0; j < c->g.ppb; j++) {
		r = kvmm_cop_unmap(c, op, kvmm_slot_va(&c->g, c->va, s, b, j), c->g.page);
		if (r && !ret)
			ret = r;
	}
	kvmm_lock(c);
	c->inflight--;
	if (ret) {
		/* The driver refused: keep the entry as it was. */
		kvmm_bte_mapped(c, s, b, kvmm_bte(c, s, b)->blk, kvmm_bte(c, s, b)->flags);
	} else {
		bte_unmapped(c, s, b);
	}
	pthread_cond_broadcast(&c->done_cv);
	return ret;
}

/* Map blocks ids[0..k) read-write at entries [b, b + k) of slot s, which
 * the caller marked BUSY.  Lock held; drops it. */
static int map_run(struct kvmm_cache *c, uint32_t s, uint32_t b, const kvmm_blk_t *ids, uint32_t k,
		   struct kvmm_op *op)
{
	const struct kvmm_geom *g = &c->g;
	uint32_t i = 0, j = 0, done = 0;
	int ret = 0;

	c->inflight++;
	kvmm_unlock(c);
	for (i = 0; i < k && !ret; i++)
		for (j = 0; j < g->ppb && !ret; j++)
			ret = kvmm_cop_map(c, op, kvmm_slot_va(g, c->va, s, b + i, j),
					   kvmm_blk_phys(c, ids[i])[j]);
	if (ret) {
		done = (i - 1) * g->ppb + (j - 1); /* pages mapped before the failure */
	} else {
		done = k * g->ppb;
		for (j = 0; j < g->ppb && !ret; j++)
			ret = kvmm_cop_access(c, op, kvmm_slot_va(g, c->va, s, b, j),
					      (uint64_t)k * g->page, KVMM_PROT_RW);
	}
	if (ret)
		for (uint32_t p = 0; p < done; p++)
			kvmm_cop_unmap(c, op, kvmm_slot_va(g, c->va, s, b + p / g->ppb, p % g->ppb),
				       g->page);
	kvmm_lock(c);
	c->inflight--;
	for (i = 0; i < k; i++) {
		struct kvmm_blk *bk = kvmm_blk(c, ids[i]);

		bk->held--;
		if (ret) {
			kvmm_bte(c, s, b + i)->flags = 0;
			kvmm_blk_maybe_free(c, ids[i]);
			continue;
		}
		bk->maps++;
		kvmm_bte_mapped(c, s, b + i, ids[i], 0);
	}
	if (!ret && op->mapper)
		c->n.mapper_pages_mapped += (uint64_t)k * g->ppb;
	pthread_cond_broadcast(&c->done_cv);
	return ret;
}

int kvmm_slot_fill(struct kvmm_cache *c, uint32_t s, uint32_t need, uint32_t want,
		   struct kvmm_op *op)
{
	struct kvmm_slot *sl = &c->slots[s];
	kvmm_blk_t ids[64];
	uint32_t b, k, got, batch = c->batch < 64 ? c->batch : 64;
	bool waited;
	int ret;

	if (want < need)
		want = need;
	if (want > c->g.bps)
		want = c->g.bps;
	if (need > want)
		need = want;
	for (;;) {
		/* The mapper works for a step that may have given up (and
		 * cleared what it needed) while the lock was dropped. */
		if (op->mapper) {
			uint32_t now = kvmm_slot_needed(c, sl);

			if (sl->state != SLOT_ACTIVE)
				return 0;
			if (need > now)
				need = now;
		}
		/* The first empty entry we may work on; entries another
		 * operation owns are waited for when needed, skipped if not. */
		waited = false;
		for (b = sl->cap; b < want; b++) {
			uint32_t f = kvmm_bte(c, s, b)->flags;

			if (f & BT_MAPPED)
				continue;
			if (!(f & BT_BUSY))
				break;
			if (b < need) {
				pthread_cond_wait(&c->done_cv, &c->lock);
				waited = true;
				break;
			}
		}
		if (waited)
			continue;
		if (b >= want)
			return sl->cap >= need ? 0 : -EAGAIN;
		for (k = 0; k < batch && b + k < want && !kvmm_bte(c, s, b + k)->flags; k++)
			kvmm_bte(c, s, b + k)->flags = BT_BUSY;
		/* Our own map-ahead above need may go to a needed block. */
		got = kvmm_pool_get(c, ids, k, b < need ? GET_NEEDED : GET_AHEAD, s, need, op);
		for (uint32_t i = got; i < k; i++)
			kvmm_bte(c, s, b + i)->flags = 0;
		if (got < k)
			pthread_cond_broadcast(&c->done_cv);
		if (!got)
			return b < need ? -ENOMEM : 0;
		ret = map_run(c, s, b, ids, got, op);
		if (ret)
			return ret;
		if (op->mapper && b >= need)
			return 0; /* one batch of map-ahead per turn: the mapper
				   * comes back for more after urgent work */
	}
}

int kvmm_slot_clean(struct kvmm_cache *c, uint32_t s, struct kvmm_op *op)
{
	struct kvmm_slot *sl = &c->slots[s];
	int ret = 0;

	while (sl->npending && !ret) {
		uint32_t b;

		for (b = 0; b < sl->hi; b++) {
			uint32_t f = kvmm_bte(c, s, b)->flags;

			if ((f & BT_PENDING) && !(f & BT_BUSY))
				break;
		}
		if (b == sl->hi) { /* all held by another operation */
			pthread_cond_wait(&c->done_cv, &c->lock);
			continue;
		}
		kvmm_bte_unmapping(c, s, b);
		ret = kvmm_bte_unmap(c, s, b, op);
	}
	return ret;
}
