// SPDX-License-Identifier: MIT
/*
 * share.c - what the prefix cache and the tiers build on: references to
 * blocks, publishing a sequence's blocks, attaching cached blocks to a
 * sequence by alias (read-only mapping) or by copy, and snapshots.
 *
 * Why shared blocks are immutable by construction:
 *  - a sequence that attached a block by alias maps it with
 *    KVMM_PROT_READ, so the MMU (or the GPU's) refuses any write;
 *  - the sequence that published a block keeps it mapped read-write until
 *    it closes, but kvmm_seq_write refuses it (-EPERM) and kvmm_step
 *    refuses to roll its length back into it, so its own kernels, which
 *    write only at positions at or above the length, never reach it;
 *  - a partial last block is never shared: kvmm_seq_snapshot copies it,
 *    and an attach copies it into the new sequence's own block.
 */
#include <errno.h>

#include "cache_internal.h"

static bool blk_live(const struct kvmm_cache *c, kvmm_blk_t id)
{
	return id < c->next_id && kvmm_blk(c, id)->state == BLK_USED;
}

static void xref_get(struct kvmm_cache *c, kvmm_blk_t id)
{
	if (!kvmm_blk(c, id)->xrefs++)
		c->ncached++;
}

void kvmm_blk_get(struct kvmm_cache *c, const kvmm_blk_t *blks, uint32_t n)
{
	kvmm_lock(c);
	for (uint32_t i = 0; i < n; i++)
		if (blk_live(c, blks[i]) && kvmm_blk(c, blks[i])->xrefs)
			xref_get(c, blks[i]);
	kvmm_unlock(c);
}

void kvmm_blk_put(struct kvmm_cache *c, const kvmm_blk_t *blks, uint32_t n)
{
	kvmm_lock(c);
	for (uint32_t i = 0; i < n; i++) {
		struct kvmm_blk *b;

		if (!blk_live(c, blks[i]) || !kvmm_blk(c, blks[i])->xrefs)
			continue; /* not referenced: a caller bug, not a crash */
		b = kvmm_blk(c, blks[i]);
		if (!--b->xrefs)
			c->ncached--;
		kvmm_blk_maybe_free(c, blks[i]);
	}
	pthread_cond_broadcast(&c->done_cv);
	if (!c->has_mapper && kvmm_pool_over_budget(c)) {
		struct kvmm_op op = {0};

		kvmm_background_sync(c, &op);
	}
	kvmm_unlock(c);
}

uint64_t kvmm_blk_home(const struct kvmm_cache *c, kvmm_blk_t b)
{
	/* Fixed from creation on; the caller's reference keeps it alive. */
	return kvmm_blk(c, b)->home;
}

int kvmm_blk_alloc(struct kvmm_cache *c, kvmm_blk_t *out)
{
	struct kvmm_op op = {0};
	kvmm_blk_t id;

	if (!c || !out)
		return -EINVAL;
	kvmm_lock(c);
	if (!kvmm_pool_get(c, &id, 1, GET_NEEDED, KVMM_NONE, 0, &op)) {
		c->n.alloc_failures++;
		kvmm_unlock(c);
		return -ENOMEM;
	}
	kvmm_blk(c, id)->held--;
	xref_get(c, id);
	*out = id;
	kvmm_unlock(c);
	return 0;
}

void kvmm_cache_set_reclaimer(struct kvmm_cache *c, kvmm_reclaim_fn fn, void *arg)
{
	kvmm_lock(c);
	c->reclaim = fn;
	c->reclaim_arg = arg;
	kvmm_unlock(c);
}

static int check_range(const struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n)
{
	if (kvmm_seq_check(c, seq) || first > c->g.bps || n > c->g.bps - first)
		return -EINVAL;
	return 0;
}

int kvmm_seq_publish(struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n,
		     kvmm_blk_t *out)
{
	struct kvmm_slot *sl;
	int ret;

	if (!c || (!out && n))
		return -EINVAL;
	kvmm_lock(c);
	ret = check_range(c, seq, first, n);
	sl = ret ? NULL : &c->slots[seq];
	if (sl && (uint64_t)(first + n) * c->g.tpb > sl->len)
		ret = -EINVAL; /* only full blocks; snapshot a partial one */
	for (uint32_t b = first; !ret && b < first + n; b++)
		if ((kvmm_bte(c, seq, b)->flags & (BT_MAPPED | BT_BUSY)) != BT_MAPPED)
			ret = -EBUSY;
	for (uint32_t b = first; !ret && b < first + n; b++) {
		struct kvmm_bte *e = kvmm_bte(c, seq, b);

		xref_get(c, e->blk);
		if (!(e->flags & BT_SHARED)) {
			/* The entry stays mapped throughout: keep the slot's
			 * leading-mapped count, which the bookkeeping pair would
			 * otherwise rescan from b on (quadratic in n). */
			uint32_t cap = sl->cap;

			kvmm_bte_unmapping(c, seq, b);
			sl->cap = cap;
			kvmm_bte_mapped(c, seq, b, e->blk, e->flags | BT_SHARED);
		}
		out[b - first] = e->blk;
	}
	kvmm_unlock(c);
	return ret;
}

/* Copy a block's parts from home address src to dst_of(j) (unlocked). */
static int copy_parts(struct kvmm_cache *c, struct kvmm_op *op, uint32_t seq, uint32_t b,
		      uint64_t src, bool into_slot)
{
	const struct kvmm_geom *g = &c->g;
	int ret = 0;

	/* Token- and page-major blocks are one page; a layer-major block's
	 * parts lie one tensor apart in the slot range. */
	for (uint32_t j = 0; j < g->ppb && !ret; j++) {
		uint64_t sva = kvmm_slot_va(g, c->va, seq, b, j);

		ret = into_slot ? kvmm_cop_copy(c, op, sva, src + j * g->page, g->page)
				: kvmm_cop_copy(c, op, src + j * g->page, sva, g->page);
	}
	return ret;
}

int kvmm_seq_snapshot(struct kvmm_cache *c, uint32_t seq, uint32_t b, kvmm_blk_t *out)
{
	struct kvmm_op op = {0};
	struct kvmm_bte *e;
	kvmm_blk_t id;
	int ret;

	if (!c || !out)
		return -EINVAL;
	kvmm_lock(c);
	ret = check_range(c, seq, b, 1);
	if (ret)
		goto out;
	e = kvmm_bte(c, seq, b);
	if ((e->flags & (BT_MAPPED | BT_BUSY)) != BT_MAPPED) {
		ret = -EBUSY;
		goto out;
	}
	e->flags |= BT_BUSY; /* pinned: not stolen while we copy */
	if (!kvmm_pool_get(c, &id, 1, GET_NEEDED, KVMM_NONE, 0, &op)) {
		c->n.alloc_failures++;
		ret = -ENOMEM;
	} else {
		uint64_t dst = kvmm_blk(c, id)->home;

		c->inflight++;
		kvmm_unlock(c);
		ret = copy_parts(c, &op, seq, b, dst, false);
		kvmm_lock(c);
		c->inflight--;
		kvmm_blk(c, id)->held--;
		if (ret) {
			kvmm_blk_maybe_free(c, id);
		} else {
			xref_get(c, id);
			*out = id;
		}
	}
	e->flags &= ~BT_BUSY;
	pthread_cond_broadcast(&c->done_cv);
out:
	kvmm_unlock(c);
	return ret;
}

/* Wait until no entry of [first, first + n) is busy.  Lock held. */
static void wait_idle_range(struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n)
{
	for (uint32_t b = first; b < first + n;) {
		if (kvmm_bte(c, seq, b)->flags & BT_BUSY) {
			pthread_cond_wait(&c->done_cv, &c->lock);
			b = first;
			continue;
		}
		b++;
	}
}

int kvmm_seq_alias(struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n,
		   const kvmm_blk_t *blks)
{
	const struct kvmm_geom *g;
	struct kvmm_op op = {0};
	uint32_t i, j, mapped = 0, kept = n;
	int ret;

	if (!c || (!blks && n))
		return -EINVAL;
	g = &c->g;
	kvmm_lock(c);
	ret = check_range(c, seq, first, n);
	if (!ret && c->slots[seq].len > (uint64_t)first * g->tpb)
		ret = -EINVAL; /* those tokens are the sequence's own */
	for (i = 0; !ret && i < n; i++)
		if (!blk_live(c, blks[i]) || !kvmm_blk(c, blks[i])->xrefs)
			ret = -EINVAL; /* the caller must hold a reference */
	if (ret)
		goto out;
	wait_idle_range(c, seq, first, n);
	for (i = 0; i < n; i++)
		if (kvmm_bte(c, seq, first + i)->flags & BT_SHARED)
			ret = -EBUSY;
	if (ret)
		goto out;
	/* Claim the entries; own blocks already there are unmapped first
	 * (the caller chose alias over a copy into them). */
	for (i = 0; i < n; i++) {
		struct kvmm_bte *e = kvmm_bte(c, seq, first + i);

		if (e->flags & BT_MAPPED)
			kvmm_bte_unmapping(c, seq, first + i);
		else
			e->flags = BT_BUSY;
		kvmm_blk(c, blks[i])->held++;
	}
	c->inflight++;
	kvmm_unlock(c);
	for (i = 0; i < n && !ret; i++) {
		struct kvmm_bte *e = kvmm_bte(c, seq, first + i);

		/* e->blk is ours to read: the entry is BUSY. */
		for (j = 0; e->blk != KVMM_BLK_NONE && j < g->ppb && !ret; j++)
			ret = kvmm_cop_unmap(c, &op, kvmm_slot_va(g, c->va, seq, first + i, j),
					     g->page);
		if (ret)
			kept = i; /* this one and those after keep their block */
	}
	for (i = 0; i < n && !ret; i++)
		for (j = 0; j < g->ppb && !ret; j++, mapped += !ret)
			ret = kvmm_cop_map(c, &op, kvmm_slot_va(g, c->va, seq, first + i, j),
					   kvmm_blk_phys(c, blks[i])[j]);
	for (j = 0; j < g->ppb && !ret && n; j++)
		ret = kvmm_cop_access(c, &op, kvmm_slot_va(g, c->va, seq, first, j),
				      (uint64_t)n * g->page, KVMM_PROT_READ);
	if (ret)
		for (uint32_t p = 0; p < mapped; p++)
			kvmm_cop_unmap(c, &op,
				       kvmm_slot_va(g, c->va, seq, first + p / g->ppb, p % g->ppb),
				       g->page);
	kvmm_lock(c);
	c->inflight--;
	for (i = 0; i < n; i++) {
		struct kvmm_bte *e = kvmm_bte(c, seq, first + i);
		kvmm_blk_t old = e->blk;

		kvmm_blk(c, blks[i])->held--;
		if (old != KVMM_BLK_NONE && i >= kept) {
			/* Its unmap failed or never ran: it stays as it was. */
			kvmm_bte_mapped(c, seq, first + i, old, e->flags);
			continue;
		}
		e->blk = KVMM_BLK_NONE;
		e->flags = 0;
		if (old != KVMM_BLK_NONE) {
			kvmm_blk(c, old)->maps--;
			kvmm_blk_maybe_free(c, old);
		}
		if (!ret) {
			kvmm_blk(c, blks[i])->maps++;
			kvmm_bte_mapped(c, seq, first + i, blks[i], BT_SHARED | BT_RO);
		}
	}
	while (c->slots[seq].hi && !kvmm_bte(c, seq, c->slots[seq].hi - 1)->flags)
		c->slots[seq].hi--;
	pthread_cond_broadcast(&c->done_cv);
out:
	kvmm_unlock(c);
	return ret;
}

int kvmm_seq_unalias(struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n)
{
	struct kvmm_op op = {0};
	struct kvmm_slot *sl;
	int ret, r;

	if (!c)
		return -EINVAL;
	kvmm_lock(c);
	ret = check_range(c, seq, first, n);
	if (!ret && c->slots[seq].len > (uint64_t)first * c->g.tpb)
		ret = -EINVAL; /* tokens there: only kvmm_step changes them */
	if (ret)
		goto out;
	sl = &c->slots[seq];
	for (uint32_t b = first; b < first + n; b++) {
		struct kvmm_bte *e = kvmm_bte(c, seq, b);

		while (e->flags & BT_BUSY)
			pthread_cond_wait(&c->done_cv, &c->lock);
		if ((e->flags & (BT_MAPPED | BT_RO)) != (BT_MAPPED | BT_RO))
			continue;
		kvmm_bte_unmapping(c, seq, b);
		r = kvmm_bte_unmap(c, seq, b, &op);
		if (r && !ret)
			ret = r;
	}
	/* The rollback floor: 1 + the highest shared entry left (mapping
	 * only ever raises it). */
	sl->immut_end = 0;
	for (uint32_t b = sl->hi; b-- > 0;)
		if (kvmm_bte(c, seq, b)->flags & BT_SHARED) {
			sl->immut_end = b + 1;
			break;
		}
	pthread_cond_broadcast(&c->done_cv);
out:
	kvmm_unlock(c);
	return ret;
}

int kvmm_seq_copy_in(struct kvmm_cache *c, uint32_t seq, uint32_t b, kvmm_blk_t src)
{
	struct kvmm_op op = {0};
	struct kvmm_slot *sl;
	struct kvmm_bte *e;
	uint32_t old;
	uint64_t home, tok;
	int ret;

	if (!c)
		return -EINVAL;
	kvmm_lock(c);
	ret = check_range(c, seq, b, 1);
	if (!ret && (!blk_live(c, src) || !kvmm_blk(c, src)->xrefs))
		ret = -EINVAL;
	if (ret)
		goto out;
	sl = &c->slots[seq];
	e = kvmm_bte(c, seq, b);
	wait_idle_range(c, seq, b, 1);
	if (e->flags & BT_SHARED) {
		ret = -EBUSY;
		goto out;
	}
	/* The copy is the sequence's from now on: reserve it so the pool
	 * cannot take the block back before the length covers it. */
	old = sl->reserved;
	tok = (uint64_t)(b + 1) * c->g.tpb;
	if (tok > c->g.max_tokens)
		tok = c->g.max_tokens;
	if (tok > sl->reserved)
		sl->reserved = (uint32_t)tok;
	ret = kvmm_slot_fill(c, seq, b + 1, b + 1, &op);
	if (!ret) {
		wait_idle_range(c, seq, b, 1);
		if (!(e->flags & BT_MAPPED) || (e->flags & BT_SHARED))
			ret = -EBUSY;
	}
	if (ret) {
		sl->reserved = old;
		goto out;
	}
	e->flags |= BT_BUSY;
	kvmm_blk(c, src)->held++;
	home = kvmm_blk(c, src)->home;
	c->inflight++;
	kvmm_unlock(c);
	ret = copy_parts(c, &op, seq, b, home, true);
	kvmm_lock(c);
	c->inflight--;
	kvmm_blk(c, src)->held--;
	e->flags &= ~BT_BUSY;
	pthread_cond_broadcast(&c->done_cv);
out:
	kvmm_unlock(c);
	return ret;
}

int kvmm_seq_own_mapped(const struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n)
{
	int ret, cnt = 0;

	if (!c)
		return -EINVAL;
	kvmm_lock(c);
	ret = check_range(c, seq, first, n);
	for (uint32_t b = first; !ret && b < first + n; b++)
		cnt += (kvmm_bte(c, seq, b)->flags & (BT_MAPPED | BT_SHARED)) == BT_MAPPED;
	kvmm_unlock(c);
	return ret ? ret : cnt;
}
