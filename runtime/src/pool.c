// SPDX-License-Identifier: MIT
/*
 * pool.c - physical blocks: creation ahead of need, the free list, the
 * budget, and taking blocks back from where they are not needed.
 *
 * A block is created whole (ppb pages) and mapped once at its home address
 * (cache_internal.h says why), then lives on the free list, in slots or in
 * the prefix cache until the budget shrinks.  The budget counts pages that
 * exist or are being created, and is checked under the lock before any
 * creation, so it is never overshot even with several creators.
 *
 * Where a block comes from, cheapest first (kvmm_pool_get):
 *   1. the free list (while blocks in use stay within the budget);
 *   2. a new block, if the budget has room;
 *   3. the unused deferred block of an idle slot, oldest slot first;
 *   and only for a block a sequence needs now (GET_NEEDED):
 *   4. a map-ahead block of an active slot above what that slot needs;
 *   5. the reclaimer (the prefix cache evicts);
 *   6. an operation in flight that may free or create one: wait for it.
 * Map-ahead never takes another slot's block, so it cannot thrash.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"

static uint32_t chunk_of(const struct kvmm_cache *c, kvmm_blk_t id, uint64_t *off)
{
	uint64_t q = id / c->chunk0 + 1;
	uint32_t k = 63 - (uint32_t)__builtin_clzll(q);

	*off = id - c->chunk0 * ((1ull << k) - 1);
	return k;
}

struct kvmm_blk *kvmm_blk(const struct kvmm_cache *c, kvmm_blk_t id)
{
	uint64_t off;
	uint32_t k = chunk_of(c, id, &off);

	return &c->chunks[k]->blks[off];
}

kvmm_phys_t *kvmm_blk_phys(const struct kvmm_cache *c, kvmm_blk_t id)
{
	uint64_t off;
	uint32_t k = chunk_of(c, id, &off);

	return &c->chunks[k]->phys[off * c->g.ppb];
}

static uint64_t blk_home(const struct kvmm_cache *c, kvmm_blk_t id)
{
	uint64_t off;
	uint32_t k = chunk_of(c, id, &off);

	return c->chunks[k]->home_va + off * c->g.block_bytes;
}

static uint64_t budget_blocks(const struct kvmm_cache *c)
{
	return c->budget_pages / c->g.ppb;
}

bool kvmm_pool_over_budget(const struct kvmm_cache *c)
{
	return c->committed_pages > c->budget_pages;
}

uint32_t kvmm_pool_refill_want(const struct kvmm_cache *c)
{
	uint64_t room;

	if (c->nfree >= c->low_water || c->committed_pages >= c->budget_pages)
		return 0;
	room = (c->budget_pages - c->committed_pages) / c->g.ppb;
	return (uint32_t)(room < c->low_water - c->nfree ? room : c->low_water - c->nfree);
}

static void free_push(struct kvmm_cache *c, kvmm_blk_t id)
{
	struct kvmm_blk *b = kvmm_blk(c, id);

	b->state = BLK_FREE;
	c->pool_events++;
	b->next = c->free_head;
	c->free_head = id;
	c->nfree++;
}

static kvmm_blk_t free_pop(struct kvmm_cache *c)
{
	kvmm_blk_t id = c->free_head;
	struct kvmm_blk *b = kvmm_blk(c, id);

	c->free_head = b->next;
	c->nfree--;
	b->state = BLK_USED;
	b->held = 1;
	b->next = KVMM_NONE;
	return id;
}

void kvmm_blk_maybe_free(struct kvmm_cache *c, kvmm_blk_t id)
{
	struct kvmm_blk *b = kvmm_blk(c, id);

	if (b->maps || b->xrefs || b->held)
		return;
	free_push(c, id);
	if (kvmm_pool_over_budget(c))
		kvmm_mapper_kick(c);
}

/* Reserve the home range and the arrays of chunk k.  Lock held; drops it
 * for the reservation (a driver call). */
static int chunk_install(struct kvmm_cache *c, uint32_t k, struct kvmm_op *op)
{
	struct kvmm_chunk *ch;
	uint64_t nb = c->chunk0 << k;
	int ret;

	if (c->chunks[k])
		return 0;
	ch = calloc(1, sizeof(*ch));
	if (ch) {
		ch->blks = calloc(nb, sizeof(*ch->blks));
		ch->phys = calloc(nb * c->g.ppb, sizeof(*ch->phys));
	}
	if (!ch || !ch->blks || !ch->phys) {
		ret = -ENOMEM;
		goto fail;
	}
	ch->nblocks = nb;
	kvmm_unlock(c);
	op->driver_calls++;
	ret = kvmm_be_reserve(c->be, nb * c->g.block_bytes, c->g.page, &ch->home_va);
	kvmm_lock(c);
	if (ret)
		goto fail;
	if (c->chunks[k]) { /* another creator won the race */
		kvmm_unlock(c);
		kvmm_be_release_va(c->be, ch->home_va, nb * c->g.block_bytes);
		kvmm_lock(c);
		ret = 0;
		goto fail;
	}
	c->chunks[k] = ch;
	return 0;
fail:
	if (ch) {
		free(ch->blks);
		free(ch->phys);
		free(ch);
	}
	return ret;
}

/* Unmap a block's home and destroy its pages (unlocked; the caller holds
 * the block).  npages: how many of its pages exist (all, unless creation
 * failed part way); nmapped of them are mapped at home. */
static void blk_teardown(struct kvmm_cache *c, kvmm_blk_t id, uint64_t home, uint32_t npages,
			 uint32_t nmapped, struct kvmm_op *op)
{
	kvmm_phys_t *ph = kvmm_blk_phys(c, id);

	for (uint32_t j = 0; j < nmapped; j++)
		kvmm_cop_unmap(c, op, home + j * c->g.page, c->g.page);
	for (uint32_t j = 0; j < npages; j++) {
		op->driver_calls++;
		kvmm_be_destroy(c->be, ph[j]);
	}
}

/* Create one block's pages and map them at home, read-write (unlocked). */
static int blk_build(struct kvmm_cache *c, kvmm_blk_t id, uint64_t home, struct kvmm_op *op)
{
	kvmm_phys_t *ph = kvmm_blk_phys(c, id);
	uint32_t made = 0, mapped = 0;
	int ret = 0;

	for (; made < c->g.ppb && !ret; made += !ret) {
		op->driver_calls++;
		ret = kvmm_be_create(c->be, &ph[made]);
	}
	for (; mapped < made && !ret; mapped += !ret)
		ret = kvmm_cop_map(c, op, home + mapped * c->g.page, ph[mapped]);
	if (!ret)
		ret = kvmm_cop_access(c, op, home, c->g.block_bytes, KVMM_PROT_RW);
	if (ret)
		blk_teardown(c, id, home, made, mapped, op);
	return ret;
}

/* Create up to n blocks within the budget, held for the caller in out[].
 * Lock held; drops it.  Returns the count, or a negative errno when none
 * could be created for a reason other than the budget. */
static int create_blocks(struct kvmm_cache *c, kvmm_blk_t *out, uint32_t n, struct kvmm_op *op)
{
	kvmm_blk_t ids[64];
	int rets[64];
	uint64_t room, off;
	uint32_t got = 0, i;
	int err = 0;

	if (c->committed_pages >= c->budget_pages)
		return 0;
	/* New ids need their chunk (home range and arrays) first. */
	if (c->dead_head == KVMM_NONE && c->next_id < KVMM_NONE - 1) {
		err = chunk_install(c, chunk_of(c, c->next_id, &off), op);
		if (err)
			return err;
		if (c->committed_pages >= c->budget_pages)
			return 0;
	}
	room = (c->budget_pages - c->committed_pages) / c->g.ppb;
	if (n > room)
		n = (uint32_t)room;
	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++) {
		if (c->dead_head != KVMM_NONE) {
			ids[i] = c->dead_head;
			c->dead_head = kvmm_blk(c, ids[i])->next;
		} else if (c->next_id < KVMM_NONE - 1 && c->chunks[chunk_of(c, c->next_id, &off)]) {
			ids[i] = c->next_id++;
		} else {
			break;
		}
	}
	n = i;
	if (!n)
		return 0;
	/* Count the pages before creating them: concurrent creators then
	 * cannot overshoot the budget together. */
	c->committed_pages += (uint64_t)n * c->g.ppb;
	c->inflight++;
	c->creating++;
	kvmm_unlock(c);
	for (i = 0; i < n; i++)
		rets[i] = blk_build(c, ids[i], blk_home(c, ids[i]), op);
	kvmm_lock(c);
	c->inflight--;
	c->creating--;
	for (i = 0; i < n; i++) {
		struct kvmm_blk *b = kvmm_blk(c, ids[i]);

		if (rets[i]) {
			c->committed_pages -= c->g.ppb;
			b->state = BLK_DEAD;
			b->next = c->dead_head;
			c->dead_head = ids[i];
			err = rets[i];
			continue;
		}
		memset(b, 0, sizeof(*b));
		b->home = blk_home(c, ids[i]);
		b->state = BLK_USED;
		b->held = 1;
		b->next = KVMM_NONE;
		c->nblocks++;
		out[got++] = ids[i];
	}
	if ((uint64_t)c->nblocks * c->g.ppb > c->n.pages_peak)
		c->n.pages_peak = (uint64_t)c->nblocks * c->g.ppb;
	pthread_cond_broadcast(&c->done_cv);
	return got ? (int)got : err;
}

int kvmm_pool_create(struct kvmm_cache *c, uint32_t n, struct kvmm_op *op)
{
	kvmm_blk_t ids[64];
	int got = create_blocks(c, ids, n, op);

	for (int i = 0; i < got; i++) {
		kvmm_blk(c, ids[i])->held = 0;
		free_push(c, ids[i]);
	}
	return got;
}

/* Unmap a slot's own block at the highest index at or above floor that is
 * not busy; it goes to the free list.  With top_only (active slots) only
 * the slot's last entry may go, so an active slot never gets a hole below
 * blocks it keeps.  Lock held; drops it when it finds one.  1 freed, 0
 * found but the unmap failed, -1 nothing to take. */
static int steal_from(struct kvmm_cache *c, uint32_t s, uint32_t floor, bool top_only,
		      struct kvmm_op *op)
{
	struct kvmm_slot *sl = &c->slots[s];

	for (uint32_t b = sl->hi; b-- > floor;) {
		struct kvmm_bte *e = kvmm_bte(c, s, b);

		if (!e->flags)
			continue;
		if ((e->flags & (BT_MAPPED | BT_SHARED | BT_BUSY)) != BT_MAPPED) {
			if (top_only)
				return -1;
			continue;
		}
		kvmm_bte_unmapping(c, s, b);
		return kvmm_bte_unmap(c, s, b, op) == 0;
	}
	return -1;
}

int kvmm_pool_steal_idle(struct kvmm_cache *c, struct kvmm_op *op)
{
	for (uint32_t s = c->lru_head; s != KVMM_NONE; s = c->slots[s].lru_next) {
		int r;

		if (c->slots[s].state != SLOT_IDLE || !c->slots[s].nown)
			continue;
		r = steal_from(c, s, 0, false, op);
		if (r < 0)
			continue;
		c->n.steals_idle += (uint64_t)r;
		return r; /* the lock was dropped: the list may have changed */
	}
	return 0;
}

static int steal_ahead(struct kvmm_cache *c, uint32_t for_slot, uint32_t keep, struct kvmm_op *op)
{
	for (uint32_t s = 0; s < c->g.max_seqs; s++) {
		struct kvmm_slot *sl = &c->slots[s];
		uint32_t need;
		int r;

		if (sl->state != SLOT_ACTIVE || !sl->nown)
			continue;
		need = kvmm_slot_needed(c, sl);
		if (s == for_slot && need < keep)
			need = keep;
		if (sl->hi <= need)
			continue;
		r = steal_from(c, s, need, true, op);
		if (r < 0)
			continue;
		c->n.steals_ahead += (uint64_t)r;
		return r;
	}
	return 0;
}

static uint32_t call_reclaim(struct kvmm_cache *c, uint32_t nblocks)
{
	kvmm_reclaim_fn fn = c->reclaim;
	void *arg = c->reclaim_arg;
	uint32_t r;

	if (!fn)
		return 0;
	c->n.reclaim_calls++;
	c->inflight++;
	kvmm_unlock(c);
	r = fn(arg, c, nblocks);
	kvmm_lock(c);
	c->inflight--;
	pthread_cond_broadcast(&c->done_cv);
	return r;
}

uint32_t kvmm_pool_get(struct kvmm_cache *c, kvmm_blk_t *out, uint32_t n, enum kvmm_get_mode mode,
		       uint32_t for_slot, uint32_t keep, struct kvmm_op *op)
{
	uint32_t got = 0;
	int r;

	while (got < n) {
		/* Reusing a free block must not push the blocks in use over a
		 * budget that shrank: those are destroyed instead. */
		if (c->free_head != KVMM_NONE && c->nblocks - c->nfree < budget_blocks(c)) {
			out[got++] = free_pop(c);
			continue;
		}
		r = create_blocks(c, out + got, n - got, op);
		if (r > 0) {
			got += (uint32_t)r;
			continue;
		}
		if (kvmm_pool_steal_idle(c, op))
			continue;
		if (mode == GET_AHEAD)
			break;
		if (steal_ahead(c, for_slot, keep, op))
			continue;
		if (call_reclaim(c, n - got))
			continue;
		if (c->inflight) {
			pthread_cond_wait(&c->done_cv, &c->lock);
			continue;
		}
		break;
	}
	return got;
}

static void destroy_held(struct kvmm_cache *c, kvmm_blk_t id, struct kvmm_op *op)
{
	uint64_t home = kvmm_blk(c, id)->home;
	struct kvmm_blk *b;

	c->inflight++;
	kvmm_unlock(c);
	blk_teardown(c, id, home, c->g.ppb, c->g.ppb, op);
	kvmm_lock(c);
	c->inflight--;
	b = kvmm_blk(c, id);
	b->state = BLK_DEAD;
	b->held = 0;
	b->next = c->dead_head;
	c->dead_head = id;
	c->nblocks--;
	c->committed_pages -= c->g.ppb;
	c->n.pages_destroyed += c->g.ppb;
	c->pool_events++;
	pthread_cond_broadcast(&c->done_cv);
}

int kvmm_pool_trim_one(struct kvmm_cache *c, struct kvmm_op *op)
{
	if (!kvmm_pool_over_budget(c))
		return 0;
	if (c->free_head != KVMM_NONE) {
		destroy_held(c, free_pop(c), op);
		return 1;
	}
	/* Deferred blocks of idle slots, then map-ahead blocks, go to the free
	 * list; the next call destroys them. */
	return kvmm_pool_steal_idle(c, op) || steal_ahead(c, KVMM_NONE, 0, op);
}

/* Pages the cache cannot give back by itself: blocks sequences need and
 * blocks the prefix cache references.  (Free, deferred and map-ahead
 * blocks go on their own, at once or by the mapper.) */
static uint64_t pinned_pages(const struct kvmm_cache *c)
{
	uint64_t n = c->ncached;

	for (uint32_t s = 0; s < c->g.max_seqs; s++) {
		const struct kvmm_slot *sl = &c->slots[s];
		uint32_t need = kvmm_slot_needed(c, sl);

		if (sl->state != SLOT_ACTIVE)
			continue;
		for (uint32_t b = 0; b < need && b < sl->hi; b++) {
			const struct kvmm_bte *e = kvmm_bte(c, s, b);

			if (!e->flags)
				continue;
			/* Shared blocks are counted in ncached, unless the
			 * prefix cache let go while sequences still map it. */
			if (!(e->flags & BT_SHARED) || !kvmm_blk(c, e->blk)->xrefs)
				n++;
		}
	}
	return n * c->g.ppb;
}

int kvmm_cache_set_budget(struct kvmm_cache *c, uint64_t budget_bytes, uint64_t *pages_short)
{
	struct kvmm_op op = {0};
	uint64_t short_pages = 0;
	kvmm_pressure_fn fn;
	void *arg;

	if (!c)
		return -EINVAL;
	kvmm_lock(c);
	c->cfg.budget_bytes = budget_bytes;
	c->budget_pages = budget_bytes / c->g.page;
	c->pool_events++;
	/* Pages being created were counted against the old budget; once
	 * this returns, none may appear beyond the new one, so let them land
	 * and be trimmed with the rest. */
	while (c->creating && kvmm_pool_over_budget(c))
		pthread_cond_wait(&c->done_cv, &c->lock);
	/* Free blocks, then deferred and map-ahead ones, then what the
	 * reclaimer gives back; what is left is the caller's to free. */
	while (kvmm_pool_trim_one(c, &op) > 0)
		;
	if (kvmm_pool_over_budget(c) && c->reclaim) {
		uint64_t over = (c->committed_pages - c->budget_pages + c->g.ppb - 1) / c->g.ppb;

		call_reclaim(c, over > UINT32_MAX ? UINT32_MAX : (uint32_t)over);
		while (kvmm_pool_trim_one(c, &op) > 0)
			;
	}
	if (pinned_pages(c) > c->budget_pages)
		short_pages = pinned_pages(c) - c->budget_pages;
	kvmm_mapper_kick(c); /* a larger budget: refill */
	fn = short_pages ? c->cfg.pressure : NULL;
	arg = c->cfg.pressure_arg;
	if (fn)
		c->n.pressure_calls++;
	kvmm_unlock(c);
	if (pages_short)
		*pages_short = short_pages;
	if (fn)
		fn(arg, short_pages);
	return 0;
}

void kvmm_pool_fini(struct kvmm_cache *c)
{
	struct kvmm_op op = {0};

	for (uint32_t k = 0; k < KVMM_MAX_CHUNKS; k++) {
		struct kvmm_chunk *ch = c->chunks[k];

		if (!ch)
			continue;
		for (uint64_t i = 0; i < ch->nblocks; i++) {
			kvmm_blk_t id = (kvmm_blk_t)(c->chunk0 * ((1ull << k) - 1) + i);

			if (ch->blks[i].state != BLK_DEAD)
				blk_teardown(c, id, ch->blks[i].home, c->g.ppb, c->g.ppb, &op);
		}
		kvmm_be_release_va(c->be, ch->home_va, ch->nblocks * c->g.block_bytes);
		free(ch->blks);
		free(ch->phys);
		free(ch);
		c->chunks[k] = NULL;
	}
}
