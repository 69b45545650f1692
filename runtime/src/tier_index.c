// SPDX-License-Identifier: MIT
/*
 * tier_index.c - what the host pool holds: one entry per slot, a key ->
 * slot index, an LRU of valid records, and the use counts that decide
 * which records are worth a disk write (disk_admit_hits).
 *
 * Claiming a slot for a new record takes a free slot, else the coldest
 * record nobody uses whose loss costs nothing: one the disk has, or one
 * not admitted to disk.  A record that should go to disk first is written
 * (write-back) and skipped this time; the caller gets -ENOSPC only when
 * every record is in use or on its way to disk.  Everything here runs with
 * t->lock held.
 */
#include <errno.h>
#include <stdlib.h>

#include "tiers.h"

#define ADMIT_MAX 65536u /* use counts kept; forgotten all at once beyond */

int tidx_init(struct kvmm_tiers *t, uint32_t nslots)
{
	t->ent = calloc(nslots, sizeof(*t->ent));
	if (!t->ent)
		return -ENOMEM;
	t->deferred = malloc(nslots * sizeof(*t->deferred));
	if (!t->deferred)
		return -ENOMEM;
	for (uint32_t i = 0; i < nslots; i++)
		t->ent[i].prev = t->ent[i].next = TIER_NIL;
	t->lru_head = t->lru_tail = TIER_NIL;
	u64map_init(&t->index);
	u64map_init(&t->admit);
	return 0;
}

void tidx_fini(struct kvmm_tiers *t)
{
	u64map_free(&t->index);
	u64map_free(&t->admit);
	free(t->ent);
	t->ent = NULL;
	free(t->deferred);
	t->deferred = NULL;
}

static void lru_remove(struct kvmm_tiers *t, uint32_t s)
{
	struct tier_entry *e = &t->ent[s];

	if (!e->on_lru)
		return;
	if (e->prev != TIER_NIL)
		t->ent[e->prev].next = e->next;
	else
		t->lru_head = e->next;
	if (e->next != TIER_NIL)
		t->ent[e->next].prev = e->prev;
	else
		t->lru_tail = e->prev;
	e->prev = e->next = TIER_NIL;
	e->on_lru = 0;
}

static void lru_push(struct kvmm_tiers *t, uint32_t s)
{
	struct tier_entry *e = &t->ent[s];

	e->prev = t->lru_tail;
	e->next = TIER_NIL;
	if (t->lru_tail != TIER_NIL)
		t->ent[t->lru_tail].next = s;
	else
		t->lru_head = s;
	t->lru_tail = s;
	e->on_lru = 1;
}

struct tier_entry *tidx_find(struct kvmm_tiers *t, uint64_t key, uint32_t *slot)
{
	uint64_t v;

	if (!u64map_get(&t->index, key, &v))
		return NULL;
	if (slot)
		*slot = (uint32_t)v;
	return &t->ent[v];
}

void tidx_touch(struct kvmm_tiers *t, uint32_t s)
{
	if (t->ent[s].on_lru) {
		lru_remove(t, s);
		lru_push(t, s);
	}
}

/* A record nobody uses whose bytes are on disk may be dropped by the
 * kernel (module pools; a no-op elsewhere). */
static void maybe_cold(struct kvmm_tiers *t, uint32_t s)
{
	struct tier_entry *e = &t->ent[s];

	if (e->pins || (e->flags & (E_COLD | E_WRITING)) ||
	    (e->flags & (E_VALID | E_ON_DISK)) != (E_VALID | E_ON_DISK))
		return;
	e->gen = tier_host_generation(t->host, s);
	if (!tier_host_set_state(t->host, s, TIER_MEM_COLD))
		e->flags |= E_COLD;
}

void tidx_pin(struct kvmm_tiers *t, uint32_t s)
{
	struct tier_entry *e = &t->ent[s];

	if (e->flags & E_COLD) {
		tier_host_set_state(t->host, s, TIER_MEM_HOT);
		e->flags &= ~E_COLD;
	}
	e->pins++;
}

bool tidx_use(struct kvmm_tiers *t, uint32_t s)
{
	struct tier_entry *e = &t->ent[s];
	bool was_cold = e->flags & E_COLD;

	tidx_pin(t, s);
	/* HOT again now: if no page went while it was COLD, none will */
	if (was_cold && tier_host_generation(t->host, s) != e->gen) {
		t->n.host_reclaimed++;
		e->pins--;
		tidx_drop(t, s);
		return false;
	}
	return true;
}

void tidx_unpin(struct kvmm_tiers *t, uint32_t s)
{
	if (t->ent[s].pins)
		t->ent[s].pins--;
	maybe_cold(t, s);
	pthread_cond_broadcast(&t->cond);
}

void tidx_drop(struct kvmm_tiers *t, uint32_t s)
{
	struct tier_entry *e = &t->ent[s];
	uint64_t v;

	lru_remove(t, s);
	if (u64map_get(&t->index, e->key, &v) && v == s)
		u64map_del(&t->index, e->key, NULL);
	if (e->flags & E_COLD)
		tier_host_set_state(t->host, s, TIER_MEM_HOT); /* reused: keep */
	if (e->flags & E_VALID)
		t->nvalid--;
	if (e->flags & E_FILLING)
		t->nfilling--;
	e->flags = 0;
	e->pins = 0;
	tier_host_free(t->host, s);
}

void tidx_filled(struct kvmm_tiers *t, uint32_t s, bool ok)
{
	struct tier_entry *e = &t->ent[s];

	if (e->flags & E_FILLING) {
		e->flags &= ~E_FILLING;
		t->nfilling--;
	}
	if (e->pins)
		e->pins--;
	if (!ok) {
		tidx_drop(t, s);
	} else {
		e->flags |= E_VALID;
		t->nvalid++;
		lru_push(t, s);
		maybe_cold(t, s);
	}
	tiers_fill_event(t);
	pthread_cond_broadcast(&t->cond);
}

int tidx_adopt(struct kvmm_tiers *t, uint32_t s, uint64_t key, uint64_t parent)
{
	struct tier_entry *e = &t->ent[s];

	if (u64map_get(&t->index, key, NULL))
		return -EEXIST;
	if (u64map_put(&t->index, key, s))
		return -ENOMEM;
	*e = (struct tier_entry){
		.key = key, .parent = parent, .flags = E_VALID, .prev = TIER_NIL, .next = TIER_NIL};
	if (t->disk && tier_disk_contains(t->disk, key))
		e->flags |= E_ON_DISK;
	t->nvalid++;
	lru_push(t, s);
	maybe_cold(t, s);
	return 0;
}

uint32_t tidx_admit_bump(struct kvmm_tiers *t, uint64_t key)
{
	uint64_t n = 0;

	u64map_get(&t->admit, key, &n);
	if (!n && t->admit.len >= ADMIT_MAX) {
		/* forget every count: admission only gets slower to start */
		u64map_free(&t->admit);
		u64map_init(&t->admit);
	}
	if (n < UINT32_MAX)
		n++;
	u64map_put(&t->admit, key, n);
	return (uint32_t)n;
}

bool tidx_admitted(struct kvmm_tiers *t, uint64_t key)
{
	uint64_t n = 0;

	if (t->cfg.disk_admit_hits <= 1)
		return true;
	u64map_get(&t->admit, key, &n);
	return n >= t->cfg.disk_admit_hits;
}

/* May the record in slot s be dropped now without losing what the policy
 * keeps?  Starts its disk write when it should be written first. */
static bool evictable(struct kvmm_tiers *t, uint32_t s)
{
	struct tier_entry *e = &t->ent[s];

	if (e->pins || !(e->flags & E_VALID))
		return false;
	if (!t->disk || (e->flags & E_ON_DISK) || tier_disk_contains(t->disk, e->key))
		return true;
	if (!tidx_admitted(t, e->key)) {
		t->n.host_drops_unwritten++;
		return true;
	}
	/* write-back: to disk first; another record goes this time (with
	 * bookkeeping only the write is done already: still another goes,
	 * as while a real write is in flight) */
	tiers_maybe_write(t, s, true);
	return !t->bookkeeping && !(e->flags & E_WRITING) && !e->pins;
}

/* Free one slot by dropping the coldest record that may go. */
static bool evict_one(struct kvmm_tiers *t)
{
	for (uint32_t i = t->lru_head; i != TIER_NIL;) {
		uint32_t next = t->ent[i].next;

		if (evictable(t, i)) {
			tidx_drop(t, i);
			t->n.host_evictions++;
			return true;
		}
		i = next;
	}
	return false;
}

/* Will waiting make a record droppable: a disk write in flight, or (when
 * the caller is not the mover) a record the mover is sealing? */
bool tidx_writes_in_flight(const struct kvmm_tiers *t)
{
	for (uint32_t i = t->lru_head; i != TIER_NIL; i = t->ent[i].next)
		if (t->ent[i].flags & E_WRITING)
			return true;
	return false;
}

static bool worth_waiting(struct kvmm_tiers *t, enum tier_wait wait)
{
	if (wait == TIER_WAIT_NONE)
		return false;
	if (wait == TIER_WAIT_ANY && t->nfilling)
		return true;
	return tidx_writes_in_flight(t);
}

int tidx_claim(struct kvmm_tiers *t, uint64_t key, uint64_t parent, enum tier_wait wait,
	       uint32_t *slot)
{
	uint64_t deadline = kvmm_now_ns() + TIER_CLAIM_WAIT_NS;
	struct tier_entry *e;
	uint32_t s = TIER_NIL;
	bool looked_again = false;

	if (u64map_get(&t->index, key, NULL))
		return -EEXIST;
	while (tier_host_alloc(t->host, &s)) {
		uint64_t writes = t->n.spills_disk + t->n.io_errors;

		if (evict_one(t))
			continue;
		/* Bookkeeping only: the writes just started are done; where
		 * a real spill would wait for them (below), look again. */
		if (t->bookkeeping && wait != TIER_WAIT_NONE && !looked_again &&
		    t->n.spills_disk + t->n.io_errors != writes) {
			looked_again = true;
			continue;
		}
		/* Full of records on their way to disk (write-back): like
		 * the page cache under dirty data, a spill waits for the
		 * disk, a little, rather than lose the block. */
		if (!worth_waiting(t, wait) || kvmm_now_ns() >= deadline)
			return -ENOSPC;
		{
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10000000; /* recheck every 10 ms */
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&t->cond, &t->lock, &ts);
		}
		if (u64map_get(&t->index, key, NULL))
			return -EEXIST; /* someone else spilled it meanwhile */
	}
	if (u64map_put(&t->index, key, s)) {
		tier_host_free(t->host, s);
		return -ENOMEM;
	}
	e = &t->ent[s];
	*e = (struct tier_entry){.key = key,
				 .parent = parent,
				 .flags = E_FILLING,
				 .pins = 1, /* the filler's */
				 .prev = TIER_NIL,
				 .next = TIER_NIL};
	t->nfilling++;
	*slot = s;
	return 0;
}

void tidx_keep_clean(struct kvmm_tiers *t)
{
	uint32_t nslots = tier_host_nslots(t->host), free = nslots - t->nvalid - t->nfilling;
	uint32_t looked = 0;

	if (!t->disk || t->cfg.disk_policy != KVMM_WRITE_BACK || free >= nslots / 4)
		return;
	/* write back the coldest records ahead of need, a few at a time */
	for (uint32_t i = t->lru_head; i != TIER_NIL && looked < 16; i = t->ent[i].next, looked++) {
		struct tier_entry *e = &t->ent[i];

		if (!e->pins && (e->flags & E_VALID) && !(e->flags & (E_ON_DISK | E_WRITING)))
			tiers_maybe_write(t, i, true);
	}
}
