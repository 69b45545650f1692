// SPDX-License-Identifier: MIT
/*
 * mapper.c - the one background thread of a cache.
 *
 * It sleeps on work_cv and does, in this order of urgency:
 *   1. blocks a kvmm_step is waiting for (Q_URGENT);
 *   2. unmapping the shared entries of closed slots (Q_DIRTY), so cached
 *      pages never stay mapped where a later sequence would write;
 *   3. giving pages back while the cache is over a shrunk budget;
 *   4. mapping active sequences ahead of their length (Q_AHEAD), one
 *      batch per turn so urgent work never waits behind a long prefill;
 *   5. creating pages until the free list holds the low-water mark.
 * Unlike vAttention's thread-per-step joined by a spin-wait, the thread
 * lives as long as the cache and every hand-off is a queue under the cache
 * lock: a step either sees its blocks mapped or waits on done_cv for them.
 * On the CUDA backend each driver call makes the backend's context current
 * first, so the thread needs no set-up of its own.
 */
#include <errno.h>

#include "cache_internal.h"

void kvmm_ring_push(struct kvmm_ring *r, uint32_t id)
{
	r->ids[(r->head + r->count) % r->cap] = id;
	r->count++;
}

uint32_t kvmm_ring_pop(struct kvmm_ring *r)
{
	uint32_t id = r->ids[r->head];

	r->head = (r->head + 1) % r->cap;
	r->count--;
	return id;
}

static struct kvmm_ring *ring_for(struct kvmm_cache *c, uint32_t q)
{
	return q == Q_URGENT ? &c->urgent : q == Q_AHEAD ? &c->ahead_q : &c->dirty;
}

void kvmm_mapper_queue(struct kvmm_cache *c, uint32_t s, uint32_t q)
{
	struct kvmm_slot *sl = &c->slots[s];

	if (!c->has_mapper || (sl->queued & q))
		return;
	sl->queued |= q;
	kvmm_ring_push(ring_for(c, q), s);
	pthread_cond_signal(&c->work_cv);
}

void kvmm_mapper_kick(struct kvmm_cache *c)
{
	if (c->has_mapper)
		pthread_cond_signal(&c->work_cv);
}

/* Work the mapper can make progress on.  Trimming and refilling that
 * failed are retried only once the pool changed (c->pool_events). */
static bool has_work(const struct kvmm_cache *c)
{
	if (c->urgent.count || c->dirty.count || c->ahead_q.count)
		return true;
	if (kvmm_pool_over_budget(c) && c->pool_events != c->trim_stuck)
		return true;
	return kvmm_pool_refill_want(c) && c->pool_events != c->refill_stuck;
}

static uint32_t pop(struct kvmm_cache *c, uint32_t q)
{
	uint32_t s = kvmm_ring_pop(ring_for(c, q));

	c->slots[s].queued &= ~q;
	return s;
}

static void fill_turn(struct kvmm_cache *c, uint32_t s, struct kvmm_op *op)
{
	struct kvmm_slot *sl = &c->slots[s];
	uint32_t cap0 = sl->cap;
	int ret;

	if (sl->state != SLOT_ACTIVE)
		return;
	ret = kvmm_slot_fill(c, s, kvmm_slot_needed(c, sl), kvmm_slot_target(c, sl), op);
	if (sl->state != SLOT_ACTIVE)
		return;
	if (ret && sl->step_need > sl->cap) {
		sl->map_err = ret; /* the waiting step reports it */
		pthread_cond_broadcast(&c->done_cv);
	} else if (!ret && sl->cap > cap0 && sl->cap < kvmm_slot_target(c, sl)) {
		kvmm_mapper_queue(c, s, Q_AHEAD); /* more next turn */
	}
}

static void mapper_turn(struct kvmm_cache *c, struct kvmm_op *op)
{
	uint64_t gen = c->pool_events;

	if (c->urgent.count) {
		fill_turn(c, pop(c, Q_URGENT), op);
	} else if (c->dirty.count) {
		uint32_t s = pop(c, Q_DIRTY);

		if (c->slots[s].state == SLOT_IDLE)
			kvmm_slot_clean(c, s, op);
	} else if (kvmm_pool_over_budget(c) && gen != c->trim_stuck) {
		if (kvmm_pool_trim_one(c, op) <= 0)
			c->trim_stuck = gen;
	} else if (c->ahead_q.count) {
		fill_turn(c, pop(c, Q_AHEAD), op);
	} else if (kvmm_pool_refill_want(c)) {
		uint32_t n = kvmm_pool_refill_want(c);

		if (kvmm_pool_create(c, n < c->batch ? n : c->batch, op) <= 0)
			c->refill_stuck = gen;
	}
}

static void *mapper_main(void *arg)
{
	struct kvmm_cache *c = arg;
	struct kvmm_op op = {.mapper = true};

	kvmm_lock(c);
	while (!c->stop) {
		uint64_t calls = op.driver_calls;

		if (!has_work(c)) {
			c->mapper_busy = false;
			pthread_cond_broadcast(&c->done_cv); /* quiesce waiters */
			pthread_cond_wait(&c->work_cv, &c->lock);
			c->mapper_busy = true;
			continue;
		}
		mapper_turn(c, &op);
		c->n.mapper_driver_calls += op.driver_calls - calls;
	}
	c->mapper_busy = false;
	pthread_cond_broadcast(&c->done_cv);
	kvmm_unlock(c);
	return NULL;
}

int kvmm_mapper_start(struct kvmm_cache *c)
{
	int ret;

	c->has_mapper = true;
	c->mapper_busy = true;
	ret = pthread_create(&c->mapper, NULL, mapper_main, c);
	if (ret) {
		c->has_mapper = false;
		c->mapper_busy = false;
		return -ret;
	}
	return 0;
}

void kvmm_mapper_stop(struct kvmm_cache *c)
{
	if (!c->has_mapper)
		return;
	kvmm_lock(c);
	c->stop = true;
	pthread_cond_signal(&c->work_cv);
	kvmm_unlock(c);
	pthread_join(c->mapper, NULL);
	c->has_mapper = false;
}

void kvmm_background_sync(struct kvmm_cache *c, struct kvmm_op *op)
{
	while (kvmm_pool_trim_one(c, op) > 0)
		;
}

void kvmm_cache_quiesce(struct kvmm_cache *c)
{
	kvmm_lock(c);
	for (;;) {
		bool busy = c->inflight > 0;

		if (c->has_mapper)
			busy = busy || c->mapper_busy || has_work(c);
		if (!busy)
			break;
		pthread_cond_wait(&c->done_cv, &c->lock);
	}
	kvmm_unlock(c);
}
