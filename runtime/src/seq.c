// SPDX-License-Identifier: MIT
/*
 * seq.c - sequences: admitting into slots (best fit over deferred pages),
 * closing (deferred reclamation), reserving room for a prefill.
 *
 * A closed slot keeps its own blocks mapped for the next sequence
 * (vAttention's deferred reclamation): a new sequence that fits in them
 * starts with no driver call at all.  Blocks it shared with the prefix
 * cache are different: they must never stay mapped where the next
 * sequence would write, so they are queued for the mapper to unmap, and a
 * slot with such entries left is cleaned before it is handed out again.
 */
#include <errno.h>

#include "cache_internal.h"

int kvmm_seq_check(const struct kvmm_cache *c, uint32_t seq)
{
	if (seq >= c->g.max_seqs || c->slots[seq].state != SLOT_ACTIVE)
		return -EINVAL;
	return 0;
}

static void lru_unlink(struct kvmm_cache *c, uint32_t s)
{
	struct kvmm_slot *sl = &c->slots[s];

	if (sl->lru_prev != KVMM_NONE)
		c->slots[sl->lru_prev].lru_next = sl->lru_next;
	else
		c->lru_head = sl->lru_next;
	if (sl->lru_next != KVMM_NONE)
		c->slots[sl->lru_next].lru_prev = sl->lru_prev;
	else
		c->lru_tail = sl->lru_prev;
	sl->lru_prev = sl->lru_next = KVMM_NONE;
}

static void lru_append(struct kvmm_cache *c, uint32_t s)
{
	struct kvmm_slot *sl = &c->slots[s];

	sl->lru_next = KVMM_NONE;
	sl->lru_prev = c->lru_tail;
	if (c->lru_tail != KVMM_NONE)
		c->slots[c->lru_tail].lru_next = s;
	else
		c->lru_head = s;
	c->lru_tail = s;
}

/* Move a slot's mapped-entry counts between the active and idle totals. */
static void slot_set_state(struct kvmm_cache *c, struct kvmm_slot *sl, uint32_t state)
{
	if (sl->state == SLOT_ACTIVE) {
		c->own_active -= sl->nown;
		c->shared_active -= sl->nshared;
		c->seqs_active--;
	} else {
		c->own_idle -= sl->nown;
		c->shared_idle -= sl->nshared;
	}
	sl->state = state;
	if (state == SLOT_ACTIVE) {
		c->own_active += sl->nown;
		c->shared_active += sl->nshared;
		c->seqs_active++;
	} else {
		c->own_idle += sl->nown;
		c->shared_idle += sl->nshared;
	}
}

/*
 * Best fit over idle slots (vAttention's alloc_new_batch_idx): the slot
 * with the fewest deferred blocks that still cover need, else the one with
 * the most.  Slots with shared entries left to unmap come last.
 */
static uint32_t pick_slot(const struct kvmm_cache *c, uint32_t need)
{
	uint32_t best = KVMM_NONE, best_cap = 0;
	bool best_clean = false;

	for (uint32_t s = c->lru_head; s != KVMM_NONE; s = c->slots[s].lru_next) {
		const struct kvmm_slot *sl = &c->slots[s];
		bool clean = !sl->npending;
		uint32_t cap = sl->cap;
		bool better;

		if (best == KVMM_NONE || clean != best_clean)
			better = best == KVMM_NONE || clean;
		else if (cap >= need)
			better = best_cap < need || cap < best_cap;
		else
			better = best_cap < need && cap > best_cap;
		if (better) {
			best = s;
			best_cap = cap;
			best_clean = clean;
			if (clean && cap == need)
				break;
		}
	}
	return best;
}

int kvmm_seq_open(struct kvmm_cache *c, uint32_t expected_tokens, uint32_t *seq)
{
	struct kvmm_op op = {0};
	struct kvmm_slot *sl;
	uint32_t s, need;
	int ret;

	if (!c || !seq || expected_tokens > c->g.max_tokens)
		return -EINVAL;
	need = kvmm_blocks_for(c, expected_tokens ? expected_tokens : 1);
	kvmm_lock(c);
	s = pick_slot(c, need);
	if (s == KVMM_NONE) {
		kvmm_unlock(c);
		return -ENOSPC;
	}
	sl = &c->slots[s];
	lru_unlink(c, s);
	if (sl->npending) {
		/* Take it out of the idle list first so nobody else picks it
		 * while we unmap its shared entries. */
		ret = kvmm_slot_clean(c, s, &op);
		if (ret) {
			lru_append(c, s);
			kvmm_unlock(c);
			return ret;
		}
	}
	slot_set_state(c, sl, SLOT_ACTIVE);
	sl->len = 0;
	sl->reserved = 0;
	sl->hint = expected_tokens;
	sl->step_need = 0;
	sl->map_err = 0;
	sl->immut_end = 0;
	sl->gen++;
	c->n.pages_reused += (uint64_t)(sl->cap < need ? sl->cap : need) * c->g.ppb;
	if (kvmm_slot_target(c, sl) > sl->cap)
		kvmm_mapper_queue(c, s, Q_AHEAD);
	*seq = s;
	kvmm_unlock(c);
	return 0;
}

int kvmm_seq_close(struct kvmm_cache *c, uint32_t seq)
{
	void (*closed)(struct kvmm_cache * c, uint32_t seq, uint64_t gen);
	struct kvmm_op op = {0};
	struct kvmm_slot *sl;
	uint64_t gen;

	if (!c)
		return -EINVAL;
	kvmm_lock(c);
	if (kvmm_seq_check(c, seq)) {
		kvmm_unlock(c);
		return -EINVAL;
	}
	sl = &c->slots[seq];
	gen = sl->gen;
	closed = c->prefix_seq_closed;
	c->tokens_used -= sl->len;
	slot_set_state(c, sl, SLOT_IDLE);
	sl->len = sl->reserved = sl->hint = 0;
	sl->immut_end = 0;
	for (uint32_t b = 0; b < sl->hi; b++) {
		struct kvmm_bte *e = kvmm_bte(c, seq, b);

		if ((e->flags & (BT_MAPPED | BT_SHARED)) != (BT_MAPPED | BT_SHARED))
			continue;
		if (!(e->flags & BT_RO) && !kvmm_blk(c, e->blk)->xrefs &&
		    kvmm_blk(c, e->blk)->maps == 1) {
			/* Published, but the prefix cache let go since and no
			 * other sequence maps it: an ordinary own block again,
			 * kept for the next one. */
			kvmm_bte_unmapping(c, seq, b);
			kvmm_bte_mapped(c, seq, b, e->blk, 0);
			continue;
		}
		e->flags |= BT_PENDING;
		sl->npending++;
	}
	lru_append(c, seq);
	c->pool_events++;
	if (sl->npending) {
		if (c->has_mapper)
			kvmm_mapper_queue(c, seq, Q_DIRTY);
		else
			kvmm_slot_clean(c, seq, &op);
	}
	if (kvmm_pool_over_budget(c)) {
		if (c->has_mapper)
			kvmm_mapper_kick(c);
		else
			kvmm_background_sync(c, &op);
	}
	kvmm_unlock(c);
	/* The prefix cache drops the sequence's pin now, not at the next
	 * eviction: a closed sequence protects nothing. */
	if (closed)
		closed(c, seq, gen);
	return 0;
}

int kvmm_seq_reserve(struct kvmm_cache *c, uint32_t seq, uint32_t ntokens)
{
	struct kvmm_op op = {0};
	struct kvmm_slot *sl;
	uint32_t old, need;
	kvmm_pressure_fn fn = NULL;
	uint64_t short_pages = 0;
	int ret;

	if (!c)
		return -EINVAL;
	if (ntokens > c->g.max_tokens)
		return -EFBIG;
	kvmm_lock(c);
	ret = kvmm_seq_check(c, seq);
	if (ret)
		goto out;
	sl = &c->slots[seq];
	old = sl->reserved;
	if (ntokens > old)
		sl->reserved = ntokens; /* what we map now is not map-ahead */
	need = kvmm_blocks_for(c, ntokens);
	ret = kvmm_slot_fill(c, seq, need, need, &op);
	if (ret) {
		sl->reserved = old;
		c->n.alloc_failures++;
		if (ret == -ENOMEM && c->cfg.pressure) {
			fn = c->cfg.pressure;
			short_pages = (uint64_t)(need - sl->cap) * c->g.ppb;
			c->n.pressure_calls++;
		}
	}
out:
	kvmm_unlock(c);
	if (fn)
		fn(c->cfg.pressure_arg, short_pages);
	return ret;
}

int64_t kvmm_seq_len(const struct kvmm_cache *c, uint32_t seq)
{
	int64_t ret;

	if (!c)
		return -EINVAL;
	kvmm_lock(c);
	ret = kvmm_seq_check(c, seq);
	if (!ret)
		ret = c->slots[seq].len;
	kvmm_unlock(c);
	return ret;
}

int kvmm_seq_stats(const struct kvmm_cache *c, uint32_t seq, struct kvmm_seq_stats *st)
{
	const struct kvmm_slot *sl;
	uint64_t mapped;
	int ret;

	if (!c || !st)
		return -EINVAL;
	kvmm_lock(c);
	ret = kvmm_seq_check(c, seq);
	if (!ret) {
		sl = &c->slots[seq];
		mapped = (uint64_t)sl->cap * c->g.tpb;
		st->len = sl->len;
		st->mapped_tokens = (uint32_t)(mapped < c->g.max_tokens ? mapped : c->g.max_tokens);
		mapped = (uint64_t)sl->immut_end * c->g.tpb;
		st->shared_tokens = (uint32_t)(mapped < sl->len ? mapped : sl->len);
		st->blocks_mapped = sl->nown + sl->nshared;
		st->bytes_used = (uint64_t)sl->len * c->g.token_bytes;
		st->bytes_mapped = (uint64_t)st->blocks_mapped * c->g.block_bytes;
	}
	kvmm_unlock(c);
	return ret;
}
