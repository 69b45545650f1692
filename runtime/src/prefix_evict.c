// SPDX-License-Identifier: MIT
/*
 * prefix_evict.c - which cached blocks go first, and handing them out.
 *
 * Evictable nodes are the unpinned leaves, kept in a binary min-heap by
 * eviction order; taking blocks from a leaf's tail keeps the cached set
 * prefix-closed (a block is never dropped while a longer prefix through it
 * stays).  The order (key_of):
 *   1. unhinted before hinted (a scheduler said it will need the latter);
 *   2. unhinted: least recently used, or with LFU fewest accesses first and
 *      then least recently used;
 *   3. hinted: the one whose soonest announced use is furthest away first
 *      (AttentionStore's look-ahead), then least recently used.
 * Hints expire hint_ttl_ns after the latest announced use; expired hints
 * are swept lazily at the start of each eviction.  The heap keeps each
 * node's key with it: sifting reads one array, not the nodes, and an
 * access (which only delays a node's eviction) costs the heap nothing
 * until that node reaches the top (struct pt_heap_ent).
 *
 * Victims are taken out under the tree lock into records and handed to
 * the eviction hook and the put callback only after the lock is dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "prefix_tree_int.h"

uint64_t pt_now(struct pt_tree *t)
{
	struct timespec ts;

	if (t->cfg.clock)
		return t->cfg.clock(t->cfg.clock_arg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

bool pt_hint_expired(const struct pt_tree *t, const struct pt_node *n, uint64_t now)
{
	return sat_add(n->hint_last, t->cfg.hint_ttl_ns) < now;
}

/* ---- heap ---------------------------------------------------------------- */

/* n's eviction key now (struct pt_heap_ent). */
static void key_of(const struct pt_tree *t, const struct pt_node *n, struct pt_heap_ent *e)
{
	e->node = (struct pt_node *)n;
	e->k1 = n->hinted;
	e->k2 = n->hinted ? UINT64_MAX - n->hint_soon
			  : (t->cfg.policy == KVMM_EVICT_LFU ? n->hits : 0);
	e->k3 = n->tick;
}

static int key_cmp(const struct pt_heap_ent *a, const struct pt_heap_ent *b)
{
	if (a->k1 != b->k1)
		return a->k1 < b->k1 ? -1 : 1;
	if (a->k2 != b->k2)
		return a->k2 < b->k2 ? -1 : 1;
	if (a->k3 != b->k3)
		return a->k3 < b->k3 ? -1 : 1;
	return 0;
}

static bool ent_before(const struct pt_heap_ent *a, const struct pt_heap_ent *b)
{
	return key_cmp(a, b) < 0;
}

static void heap_set(struct pt_tree *t, uint32_t i, const struct pt_heap_ent *e)
{
	t->heap[i] = *e;
	e->node->heap_idx = i;
}

static void sift_up(struct pt_tree *t, uint32_t i)
{
	struct pt_heap_ent e = t->heap[i];

	while (i) {
		uint32_t up = (i - 1) / 2;

		if (!ent_before(&e, &t->heap[up]))
			break;
		heap_set(t, i, &t->heap[up]);
		i = up;
	}
	heap_set(t, i, &e);
}

static void sift_down(struct pt_tree *t, uint32_t i)
{
	struct pt_heap_ent e = t->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= t->heap_len)
			break;
		if (c + 1 < t->heap_len && ent_before(&t->heap[c + 1], &t->heap[c]))
			c++;
		if (!ent_before(&t->heap[c], &e))
			break;
		heap_set(t, i, &t->heap[c]);
		i = c;
	}
	heap_set(t, i, &e);
}

int pt_heap_reserve(struct pt_tree *t, uint64_t nodes)
{
	uint64_t ncap;
	struct pt_heap_ent *h;

	if (nodes <= t->heap_cap)
		return 0;
	if (nodes > UINT32_MAX / 2)
		return -ENOMEM;
	ncap = t->heap_cap ? (uint64_t)t->heap_cap * 2 : 64;
	while (ncap < nodes)
		ncap *= 2;
	h = realloc(t->heap, ncap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	t->heap = h;
	t->heap_cap = (uint32_t)ncap;
	return 0;
}

void pt_heap_remove(struct pt_tree *t, struct pt_node *n)
{
	uint32_t i = n->heap_idx;
	struct pt_node *m;

	if (i == PT_NO_HEAP)
		return;
	n->heap_idx = PT_NO_HEAP;
	if (i == --t->heap_len)
		return;
	m = t->heap[t->heap_len].node;
	heap_set(t, i, &t->heap[t->heap_len]);
	sift_up(t, i);
	sift_down(t, m->heap_idx);
}

static void evictable(struct pt_tree *t, struct pt_node *n, bool touched)
{
	bool want = !n->is_root && !n->nkids && !n->held && n->nblocks;
	struct pt_heap_ent e;

	if (want && n->heap_idx == PT_NO_HEAP) {
		/* room for every node was reserved when it was made */
		key_of(t, n, &e);
		heap_set(t, t->heap_len++, &e);
		sift_up(t, n->heap_idx);
	} else if (!want) {
		pt_heap_remove(t, n);
	} else if (!touched) {
		key_of(t, n, &e);
		t->heap[n->heap_idx] = e;
		sift_up(t, n->heap_idx);
		sift_down(t, n->heap_idx);
	}
}

void pt_evictable_update(struct pt_tree *t, struct pt_node *n)
{
	evictable(t, n, false);
}

void pt_evictable_touched(struct pt_tree *t, struct pt_node *n)
{
	evictable(t, n, true);
}

/* The node to evict first: the heap's top once its key is current (a
 * stale top is pushed down to its place and the next one looked at). */
static struct pt_node *heap_top(struct pt_tree *t)
{
	for (;;) {
		struct pt_heap_ent now;

		key_of(t, t->heap[0].node, &now);
		if (!key_cmp(&now, &t->heap[0]))
			return now.node;
		t->heap[0] = now;
		sift_down(t, 0);
	}
}

int pt_heap_check(struct pt_tree *t, char *why, size_t len)
{
	for (uint32_t i = 0; i < t->heap_len; i++) {
		struct pt_heap_ent now;

		if (t->heap[i].node->heap_idx != i) {
			snprintf(why, len, "heap slot %u does not point back", i);
			return -EUCLEAN;
		}
		key_of(t, t->heap[i].node, &now);
		if (key_cmp(&t->heap[i], &now) > 0) {
			snprintf(why, len, "heap key %u above its node's", i);
			return -EUCLEAN;
		}
		if (i && ent_before(&t->heap[i], &t->heap[(i - 1) / 2])) {
			snprintf(why, len, "heap order broken at %u", i);
			return -EUCLEAN;
		}
	}
	return 0;
}

/* ---- hints --------------------------------------------------------------- */

void pt_hint_set(struct pt_tree *t, struct pt_node *n, uint64_t soon, uint64_t last)
{
	uint64_t exp = sat_add(last, t->cfg.hint_ttl_ns);

	if (!n->hinted) {
		n->hinted = true;
		n->hprev = NULL;
		n->hnext = t->hinted;
		if (t->hinted)
			t->hinted->hprev = n;
		t->hinted = n;
		t->st.blocks_hinted += n->nblocks;
	}
	n->hint_soon = soon;
	n->hint_last = last;
	if (exp < t->next_expiry)
		t->next_expiry = exp;
	if (n->heap_idx != PT_NO_HEAP)
		pt_evictable_update(t, n);
}

void pt_hint_clear(struct pt_tree *t, struct pt_node *n)
{
	if (!n->hinted)
		return;
	if (n->hprev)
		n->hprev->hnext = n->hnext;
	else
		t->hinted = n->hnext;
	if (n->hnext)
		n->hnext->hprev = n->hprev;
	n->hprev = n->hnext = NULL;
	n->hinted = false;
	t->st.blocks_hinted -= n->nblocks;
	if (n->heap_idx != PT_NO_HEAP)
		pt_evictable_update(t, n);
}

static void sweep_hints(struct pt_tree *t, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	struct pt_node *n, *nx;

	/* next_expiry is a lower bound: nothing can have expired before. */
	if (now <= t->next_expiry)
		return;
	for (n = t->hinted; n; n = nx) {
		nx = n->hnext;
		if (pt_hint_expired(t, n, now)) {
			pt_hint_clear(t, n);
		} else {
			uint64_t exp = sat_add(n->hint_last, t->cfg.hint_ttl_ns);

			if (exp < next)
				next = exp;
		}
	}
	t->next_expiry = next;
}

/* ---- victims ------------------------------------------------------------- */

static struct pt_victim_rec *victim_take(struct pt_tree *t, struct pt_node *n, uint32_t take)
{
	const uint32_t B = t->B;
	uint32_t nblk = n->depth + n->nblocks; /* path length through n's end */
	struct pt_victim_rec *r;
	uint64_t *blocks;
	uint32_t *tok, end;

	r = malloc(sizeof(*r) + take * sizeof(uint64_t) + (size_t)nblk * B * sizeof(uint32_t));
	if (!r)
		return NULL;
	blocks = (uint64_t *)(r + 1);
	tok = (uint32_t *)(blocks + take);
	memcpy(blocks, n->blocks + n->nblocks - take, take * sizeof(uint64_t));
	end = nblk;
	for (const struct pt_node *p = n; !p->is_root; p = p->parent) {
		end -= p->nblocks;
		memcpy(tok + (size_t)end * B, p->tokens, (size_t)p->nblocks * B * sizeof(uint32_t));
	}
	r->next = NULL;
	r->hook = t->cfg.on_evict;
	r->hook_arg = t->cfg.evict_arg;
	r->ns = pt_root_of(n)->ns;
	r->v.ns = &r->ns;
	r->v.tokens = tok;
	r->v.first = nblk - take;
	r->v.nblocks = take;
	r->v.blocks = blocks;
	return r;
}

int64_t pt_evict_locked(struct pt_tree *t, uint64_t need, enum kvmm_evict_reason why,
			struct pt_victim_rec ***tail)
{
	uint64_t got = 0;

	sweep_hints(t, pt_now(t));
	while (got < need && t->heap_len) {
		struct pt_node *n = heap_top(t), *parent;
		uint64_t want = need - got;
		uint32_t take = want < n->nblocks ? (uint32_t)want : n->nblocks;
		struct pt_victim_rec *r = victim_take(t, n, take);

		if (!r)
			return got ? (int64_t)got : -ENOMEM;
		r->v.reason = why;
		**tail = r;
		*tail = &r->next;
		n->nblocks -= take;
		t->st.blocks_cached -= take;
		t->st.evictions[why] += take;
		if (n->hinted)
			t->st.blocks_hinted -= take;
		got += take;
		if (n->nblocks)
			continue; /* same key: still the first to go */
		parent = n->parent;
		pt_heap_remove(t, n);
		pt_hint_clear(t, n);
		pt_kid_remove(t, parent, n);
		pt_node_free(t, n);
		if (!parent->is_root)
			pt_evictable_update(t, parent);
		else if (!parent->nkids && (struct pt_root *)parent != t->busy_root)
			pt_root_remove(t, (struct pt_root *)parent);
	}
	return (int64_t)got;
}

void pt_victims_deliver(struct pt_tree *t, struct pt_victim_rec *list)
{
	while (list) {
		struct pt_victim_rec *next = list->next;

		if (list->hook)
			list->hook(list->hook_arg, &list->v);
		for (uint32_t i = list->v.nblocks; i-- > 0;)
			t->cfg.put(t->cfg.put_arg, list->v.blocks[i]);
		free(list);
		list = next;
	}
}
