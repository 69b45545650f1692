// SPDX-License-Identifier: MIT
/*
 * step.c - kvmm_step, the decode critical path.
 *
 * In the steady state a step is one pass over the batch under the cache
 * lock: validate, compare each new length with the slot's mapped capacity,
 * set it, and queue the slots whose map-ahead fell short for the mapper.
 * No driver call, no allocation.  Only when the mapper fell behind does
 * the step wait for it (counted in mapper_waits); without a mapper it maps
 * in place and counts those calls as critical-path driver calls.
 */
#include <errno.h>

#include "cache_internal.h"

static int validate(struct kvmm_cache *c, const struct kvmm_step_entry *batch, uint32_t n,
		    uint32_t *nshort)
{
	uint32_t epoch = ++c->step_epoch;

	if (!epoch) { /* wrapped: forget old epochs so duplicates stay visible */
		for (uint32_t s = 0; s < c->g.max_seqs; s++)
			c->slots[s].epoch = 0;
		epoch = c->step_epoch = 1;
	}
	*nshort = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = batch[i].seq, len = batch[i].len;
		struct kvmm_slot *sl;

		if (s >= c->g.max_seqs)
			return -EINVAL;
		sl = &c->slots[s];
		if (sl->state != SLOT_ACTIVE || sl->epoch == epoch)
			return -EINVAL; /* closed, or twice in one batch */
		sl->epoch = epoch;
		if (len > c->g.max_tokens)
			return -EFBIG;
		if ((uint64_t)len < (uint64_t)sl->immut_end * c->g.tpb)
			return -EPERM; /* would roll back into shared blocks */
		if (len > (uint64_t)sl->cap * c->g.tpb)
			(*nshort)++;
	}
	return 0;
}

/* Make room for every short entry: wait for the mapper, or map here. */
static int make_room(struct kvmm_cache *c, const struct kvmm_step_entry *batch, uint32_t n,
		     struct kvmm_op *op, uint64_t *short_pages)
{
	uint64_t t0;
	int ret = 0;

	/* step_need first, for the whole batch: with the current length it is
	 * what the pool must not take back as map-ahead while the step is
	 * pending, so that a step that fails leaves every sequence as it
	 * was and one that succeeds finds every entry's blocks still there. */
	for (uint32_t i = 0; i < n; i++) {
		struct kvmm_slot *sl = &c->slots[batch[i].seq];
		uint32_t need = kvmm_blocks_for(c, batch[i].len);

		sl->step_need = need;
		sl->map_err = 0;
		if (need > sl->cap)
			kvmm_mapper_queue(c, batch[i].seq, Q_URGENT);
	}
	if (!c->has_mapper) {
		for (uint32_t i = 0; i < n && !ret; i++) {
			uint32_t need = c->slots[batch[i].seq].step_need;

			if (need > c->slots[batch[i].seq].cap)
				ret = kvmm_slot_fill(c, batch[i].seq, need, need, op);
		}
		goto out;
	}
	c->n.mapper_waits++;
	t0 = kvmm_now_ns();
	for (;;) {
		bool done = true;

		for (uint32_t i = 0; i < n && !ret; i++) {
			struct kvmm_slot *sl = &c->slots[batch[i].seq];

			if (sl->step_need > sl->cap)
				done = false;
			if (sl->map_err && sl->step_need > sl->cap)
				ret = sl->map_err;
		}
		if (done || ret)
			break;
		pthread_cond_wait(&c->done_cv, &c->lock);
	}
	c->n.mapper_wait_ns += kvmm_now_ns() - t0;
out:
	*short_pages = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct kvmm_slot *sl = &c->slots[batch[i].seq];
		uint32_t need = kvmm_blocks_for(c, batch[i].len);

		if (ret && need > sl->cap)
			*short_pages += (uint64_t)(need - sl->cap) * c->g.ppb;
		sl->step_need = 0;
		sl->map_err = 0;
	}
	return ret;
}

int kvmm_step(struct kvmm_cache *c, const struct kvmm_step_entry *batch, uint32_t n)
{
	struct kvmm_op op = {0};
	uint64_t short_pages = 0;
	kvmm_pressure_fn fn = NULL;
	uint32_t nshort;
	int ret;

	if (!c || (!batch && n))
		return -EINVAL;
	kvmm_lock(c);
	c->n.step_calls++;
	ret = validate(c, batch, n, &nshort);
	if (!ret && nshort)
		ret = make_room(c, batch, n, &op, &short_pages);
	if (ret) {
		if (ret == -ENOMEM) {
			c->n.alloc_failures++;
			if (c->cfg.pressure) {
				fn = c->cfg.pressure;
				c->n.pressure_calls++;
			}
		}
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct kvmm_slot *sl = &c->slots[batch[i].seq];

		c->tokens_used += (uint64_t)batch[i].len - sl->len;
		sl->len = batch[i].len;
		if (c->has_mapper && (uint64_t)sl->cap * c->g.tpb < (uint64_t)sl->len + c->ahead &&
		    sl->cap < c->g.bps)
			kvmm_mapper_queue(c, batch[i].seq, Q_AHEAD);
	}
out:
	c->n.critical_path_driver_calls += op.driver_calls;
	kvmm_unlock(c);
	if (fn)
		fn(c->cfg.pressure_arg, short_pages);
	return ret;
}
