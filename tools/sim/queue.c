// SPDX-License-Identifier: MIT
/* queue.c - the engine's pending arrivals (a binary heap by arrival time,
 * then index, so equal times keep file order) and its FIFO of queued
 * requests (a ring: preempted requests go back to the head). */
#include "engine_internal.h"

static bool before(const struct engine *e, uint32_t a, uint32_t b)
{
	return e->r[a].arrival != e->r[b].arrival ? e->r[a].arrival < e->r[b].arrival : a < b;
}

void eng_heap_push(struct engine *e, uint32_t i)
{
	uint32_t k = e->nheap++;

	e->heap[k] = i;
	while (k && before(e, e->heap[k], e->heap[(k - 1) / 2])) {
		uint32_t p = (k - 1) / 2, tmp = e->heap[p];

		e->heap[p] = e->heap[k];
		e->heap[k] = tmp;
		k = p;
	}
}

uint32_t eng_heap_pop(struct engine *e)
{
	uint32_t top = e->heap[0], k = 0;

	e->heap[0] = e->heap[--e->nheap];
	for (;;) {
		uint32_t l = 2 * k + 1, m = k, tmp;

		if (l < e->nheap && before(e, e->heap[l], e->heap[m]))
			m = l;
		if (l + 1 < e->nheap && before(e, e->heap[l + 1], e->heap[m]))
			m = l + 1;
		if (m == k)
			break;
		tmp = e->heap[m];
		e->heap[m] = e->heap[k];
		e->heap[k] = tmp;
		k = m;
	}
	return top;
}

uint32_t eng_q_at(const struct engine *e, uint32_t k)
{
	return e->q[(e->qhead + k) % e->qcap];
}

void eng_q_push_back(struct engine *e, uint32_t i)
{
	e->q[(e->qhead + e->qlen++) % e->qcap] = i;
}

void eng_q_push_front(struct engine *e, uint32_t i)
{
	e->qhead = (e->qhead + e->qcap - 1) % e->qcap;
	e->q[e->qhead] = i;
	e->qlen++;
}

void eng_q_pop_front(struct engine *e)
{
	e->qhead = (e->qhead + 1) % e->qcap;
	e->qlen--;
}
