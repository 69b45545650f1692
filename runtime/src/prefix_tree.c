// SPDX-License-Identifier: MIT
/*
 * prefix_tree.c - the radix tree's structure: namespaces, walks, match,
 * insert, hint, splits, pins (see prefix_tree.h for the semantics).
 *
 * Children are kept sorted by their first block's tokens.  That gives the
 * exact child in O(log fan-out) block compares, and also the child sharing
 * the longest partial block with a query: in a sorted list the longest
 * common prefix with a probe is found at one of the probe's two neighbours,
 * so a partial match never scans a fan-out of thousands of sessions.
 *
 * Every operation that may fail allocates first and changes the tree only
 * once nothing can fail, so -ENOMEM always leaves the tree as it was.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prefix_hash.h"
#include "prefix_tree_int.h"

/* ---- token runs --------------------------------------------------------- */

static int tok_cmp(const uint32_t *a, const uint32_t *b, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

static uint32_t tok_lcp(const uint32_t *a, const uint32_t *b, uint32_t n)
{
	uint32_t i = 0;

	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* Order of a probe q (qlen <= B tokens) against a kid's first block; a
 * probe that is a proper prefix of the block sorts first. */
static int probe_cmp(const uint32_t *q, uint32_t qlen, const struct pt_node *kid, uint32_t B)
{
	int c = tok_cmp(q, kid->tokens, qlen);

	if (c)
		return c;
	return qlen < B ? -1 : 0;
}

/* The key of a first block (struct pt_kid). */
static uint64_t kid_key(const uint32_t *tok, uint32_t B)
{
	return (uint64_t)tok[0] << 32 | (B > 1 ? tok[1] : 0);
}

/* A probe's key and how much of it counts (qlen tokens of a block). */
struct probe {
	const uint32_t *q;
	uint32_t qlen;
	uint64_t key, mask;
};

static struct probe probe_of(const uint32_t *q, uint32_t qlen, uint32_t B)
{
	struct probe p = {.q = q, .qlen = qlen};

	if (qlen >= 2 || B == 1) {
		p.key = kid_key(q, B);
		p.mask = UINT64_MAX;
	} else {
		p.key = (uint64_t)q[0] << 32; /* one token of a longer block */
		p.mask = (uint64_t)UINT32_MAX << 32;
	}
	return p;
}

/* probe_cmp through the key first: the kid's tokens are read only when
 * its first two tokens are the probe's. */
static int probe_cmp_kid(const struct probe *p, const struct pt_kid *k, uint32_t B)
{
	uint64_t kk = k->key & p->mask;

	if (p->key != kk)
		return p->key < kk ? -1 : 1;
	if (p->qlen <= 2)
		return p->qlen < B ? -1 : 0; /* the key held all of the probe */
	return probe_cmp(p->q, p->qlen, k->node, B);
}

/* First kid position whose first block is >= the probe. */
static uint32_t kid_lower(const struct pt_node *n, const uint32_t *q, uint32_t qlen, uint32_t B)
{
	struct probe p = probe_of(q, qlen, B);
	uint32_t lo = 0, hi = n->nkids;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (probe_cmp_kid(&p, &n->kids[mid], B) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct pt_node *kid_exact(const struct pt_node *n, const uint32_t *q, uint32_t B)
{
	uint32_t i = kid_lower(n, q, B, B);

	/* a full probe equal in its key: the blocks' walk compares the rest */
	if (i < n->nkids && n->kids[i].key == kid_key(q, B))
		return n->kids[i].node;
	return NULL;
}

/* Leading equal blocks of node n from its block `from` on and q (qblocks
 * full blocks). */
static uint32_t blocks_eq(const struct pt_node *n, uint32_t from, const uint32_t *q,
			  uint32_t qblocks, uint32_t B)
{
	uint32_t lim = n->nblocks - from < qblocks ? n->nblocks - from : qblocks;
	const uint32_t *nt = n->tokens + (size_t)from * B;
	size_t bb = (size_t)B * sizeof(uint32_t);

	/* Long shared prefixes are the common case: one memcmp for all. */
	if (!memcmp(nt, q, lim * bb))
		return lim;
	for (uint32_t j = 0; j < lim; j++)
		if (memcmp(nt + (size_t)j * B, q + (size_t)j * B, bb))
			return j;
	return lim;
}

/* ---- nodes and namespaces ---------------------------------------------- */

static void kids_init(struct pt_node *n)
{
	n->kids = n->kid_inline;
	n->kcap = PT_KIDS_INLINE;
}

static void kids_free(struct pt_node *n)
{
	if (n->kids != n->kid_inline)
		free(n->kids);
}

static struct pt_node *node_alloc(struct pt_tree *t, uint32_t nblocks)
{
	size_t tok = ((size_t)nblocks * t->B * sizeof(uint32_t) + 7) & ~(size_t)7;
	struct pt_node *n =
		malloc(sizeof(struct pt_node) + tok + (size_t)nblocks * sizeof(uint64_t));

	if (!n)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->tokens = (uint32_t *)(n + 1);
	n->blocks = (uint64_t *)((char *)n->tokens + tok);
	n->heap_idx = PT_NO_HEAP;
	kids_init(n);
	return n;
}

/* Free a node that was never counted (NULL: nothing). */
static void node_discard(struct pt_node *n)
{
	if (n) {
		kids_free(n);
		free(n);
	}
}

void pt_node_free(struct pt_tree *t, struct pt_node *n)
{
	node_discard(n);
	t->st.nodes--;
}

static int kids_reserve(struct pt_node *n, uint32_t extra)
{
	uint32_t ncap = n->kcap;
	struct pt_kid *k;

	if (n->nkids + extra <= n->kcap)
		return 0;
	while (ncap < n->nkids + extra)
		ncap *= 2;
	if (n->kids == n->kid_inline) {
		k = malloc(ncap * sizeof(*k));
		if (k)
			memcpy(k, n->kids, n->nkids * sizeof(*k));
	} else {
		k = realloc(n->kids, ncap * sizeof(*k));
	}
	if (!k)
		return -ENOMEM;
	n->kids = k;
	n->kcap = ncap;
	return 0;
}

/* Room was reserved by kids_reserve(). */
static void kid_add(struct pt_tree *t, struct pt_node *parent, struct pt_node *kid)
{
	uint32_t i = kid_lower(parent, kid->tokens, t->B, t->B);

	memmove(parent->kids + i + 1, parent->kids + i,
		(parent->nkids - i) * sizeof(*parent->kids));
	parent->kids[i].key = kid_key(kid->tokens, t->B);
	parent->kids[i].node = kid;
	parent->nkids++;
	kid->parent = parent;
}

/* Siblings have distinct first blocks, so the search lands on kid.  An
 * emptied kid (evicted to 0 blocks) still has its tokens in memory. */
static uint32_t kid_index(const struct pt_node *parent, const struct pt_node *kid, uint32_t B)
{
	return kid_lower(parent, kid->tokens, B, B);
}

void pt_kid_remove(struct pt_tree *t, struct pt_node *parent, struct pt_node *kid)
{
	uint32_t i = kid_index(parent, kid, t->B);

	memmove(parent->kids + i, parent->kids + i + 1,
		(parent->nkids - i - 1) * sizeof(*parent->kids));
	parent->nkids--;
	kid->parent = NULL;
}

static int ns_eq(const struct kvmm_ns *a, const struct kvmm_ns *b)
{
	return a->model_id == b->model_id && a->adapter_id == b->adapter_id &&
	       a->tenant_salt == b->tenant_salt;
}

static uint64_t root_key(uint64_t hash)
{
	return hash == U64MAP_EMPTY ? hash - 1 : hash;
}

static struct pt_root *root_find(struct pt_tree *t, const struct kvmm_ns *ns, uint64_t hash)
{
	uint64_t v;

	if (!u64map_get(&t->roots, root_key(hash), &v))
		return NULL;
	for (struct pt_root *r = (struct pt_root *)(uintptr_t)v; r; r = r->next)
		if (ns_eq(&r->ns, ns))
			return r;
	return NULL;
}

static struct pt_root *root_get(struct pt_tree *t, const struct kvmm_ns *ns, bool *created)
{
	uint64_t hash = kvmm_hash_ns(ns), v;
	struct pt_root *r = root_find(t, ns, hash);

	*created = false;
	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	kids_init(&r->node);
	r->node.is_root = true;
	r->node.heap_idx = PT_NO_HEAP;
	r->ns = *ns;
	r->hash = hash;
	if (u64map_get(&t->roots, root_key(hash), &v)) {
		struct pt_root *head = (struct pt_root *)(uintptr_t)v;

		r->next = head->next;
		head->next = r;
	} else if (u64map_put(&t->roots, root_key(hash), (uint64_t)(uintptr_t)r)) {
		free(r);
		return NULL;
	}
	t->st.namespaces++;
	*created = true;
	return r;
}

void pt_root_remove(struct pt_tree *t, struct pt_root *r)
{
	uint64_t v;
	struct pt_root *head;

	u64map_get(&t->roots, root_key(r->hash), &v);
	head = (struct pt_root *)(uintptr_t)v;
	if (head == r) {
		if (r->next)
			u64map_put(&t->roots, root_key(r->hash), (uint64_t)(uintptr_t)r->next);
		else
			u64map_del(&t->roots, root_key(r->hash), NULL);
	} else {
		while (head->next != r)
			head = head->next;
		head->next = r->next;
	}
	kids_free(&r->node);
	free(r);
	t->st.namespaces--;
}

/* ---- walks ------------------------------------------------------------- */

struct pt_walk {
	struct pt_node *node;  /* deepest node with full blocks matched (a root if none) */
	uint32_t in_node;      /* full blocks matched in node */
	uint32_t full;	       /* full blocks matched in all */
	struct pt_node *pnode; /* node of the partial block, or NULL */
	uint32_t pidx;	       /* its index in pnode */
	uint32_t partial;      /* tokens matched of it (1 .. B-1) */
};

/* A node with one child (a conversation's next turn) tells where a walk
 * goes next: fetch that child and its first tokens while this node's
 * tokens are compared.  A walk is a chain of cache misses otherwise. */
static inline void prefetch_next(const struct pt_node *n)
{
	if (n->nkids == 1) {
		const char *k = (const char *)n->kids[0].node;

		for (size_t off = 0; off < sizeof(struct pt_node) + 128; off += 64)
			__builtin_prefetch(k + off);
	}
}

/*
 * Walk tok[0..n) down the tree from block `in_node` of `node`, the first i
 * full blocks of tok being matched already (the path to there).  A walk
 * from a namespace's root starts at (root, 0, 0).
 */
static void walk_from(struct pt_tree *t, struct pt_node *node, uint32_t in_node, uint32_t i,
		      const uint32_t *tok, uint32_t n, bool want_partial, struct pt_walk *w)
{
	const uint32_t B = t->B, nb = n / B;
	struct pt_node *kid;

	if (in_node < node->nblocks && i < nb) {
		uint32_t m = blocks_eq(node, in_node, tok + (size_t)i * B, nb - i, B);

		i += m;
		in_node += m;
	}
	while (in_node == node->nblocks && i < nb) {
		uint32_t m;

		kid = kid_exact(node, tok + (size_t)i * B, B);
		if (!kid)
			break;
		prefetch_next(kid);
		m = blocks_eq(kid, 0, tok + (size_t)i * B, nb - i, B);
		if (!m)
			break; /* its first two tokens only were the query's */
		i += m;
		node = kid;
		in_node = m;
	}
	w->node = node;
	w->in_node = in_node;
	w->full = i;
	w->pnode = NULL;
	w->pidx = 0;
	w->partial = 0;
	if (want_partial) {
		const uint32_t *q = tok + (size_t)i * B;
		uint32_t qlen = i < nb ? B : n - i * B, k = 0;

		if (!qlen)
			return;
		if (in_node < node->nblocks) {
			k = tok_lcp(node->tokens + (size_t)in_node * B, q, qlen);
			w->pnode = node;
			w->pidx = in_node;
		} else if (node->nkids) {
			uint32_t pos = kid_lower(node, q, qlen, B);

			if (pos < node->nkids) {
				k = tok_lcp(node->kids[pos].node->tokens, q, qlen);
				w->pnode = node->kids[pos].node;
			}
			if (pos > 0) {
				uint32_t k2 = tok_lcp(node->kids[pos - 1].node->tokens, q, qlen);

				if (k2 > k) {
					k = k2;
					w->pnode = node->kids[pos - 1].node;
				}
			}
		}
		if (!k)
			w->pnode = NULL;
		w->partial = k;
	}
}

static void walk(struct pt_tree *t, struct pt_root *root, const uint32_t *tok, uint32_t n,
		 bool want_partial, struct pt_walk *w)
{
	walk_from(t, &root->node, 0, 0, tok, n, want_partial, w);
}

/* The node holding block k - 1 of the path pinned at pinned (k >= 1,
 * within that path), and k's offset in it.  A pin keeps its node's end
 * where it is (splits give the pinned node's head to a new parent), so
 * the node is found by climbing. */
static struct pt_node *path_node(struct pt_node *pinned, uint32_t k, uint32_t *in_node)
{
	struct pt_node *n = pinned;

	while (n->depth >= k)
		n = n->parent;
	*in_node = k - n->depth;
	return n;
}

/* ---- splits, touches, pins --------------------------------------------- */

/* A head node for splitting a node after j blocks; nothing changes yet. */
static struct pt_node *split_prepare(struct pt_tree *t, uint32_t j, uint32_t kids)
{
	struct pt_node *h;

	if (pt_heap_reserve(t, t->st.nodes + 2))
		return NULL;
	h = node_alloc(t, j);
	if (!h)
		return NULL;
	if (kids_reserve(h, kids)) {
		node_discard(h);
		return NULL;
	}
	return h;
}

/* Move n's first j blocks into h, which takes n's place under its parent
 * and gets n as its only kid.  Cannot fail. */
static void split_commit(struct pt_tree *t, struct pt_node *n, uint32_t j, struct pt_node *h)
{
	const uint32_t B = t->B;
	struct pt_node *parent = n->parent;
	uint32_t slot = kid_index(parent, n, B);

	memcpy(h->blocks, n->blocks, j * sizeof(uint64_t));
	memcpy(h->tokens, n->tokens, (size_t)j * B * sizeof(uint32_t));
	h->nblocks = j;
	/* n keeps its allocation; its tail moves to the front. */
	memmove(n->blocks, n->blocks + j, (n->nblocks - j) * sizeof(uint64_t));
	memmove(n->tokens, n->tokens + (size_t)j * B,
		(size_t)(n->nblocks - j) * B * sizeof(uint32_t));
	n->nblocks -= j;
	h->parent = parent;
	/* h has n's first block: n's key in parent is h's */
	parent->kids[slot].node = h;
	h->kids[0].key = kid_key(n->tokens, B);
	h->kids[0].node = n;
	h->nkids = 1;
	n->parent = h;
	h->depth = n->depth;
	n->depth += j;
	h->tick = n->tick;
	h->hits = n->hits;
	h->held = n->held; /* pinned blocks are only partitioned */
	if (n->hinted) {
		/* Both halves keep the hint; the block count moves with them. */
		t->st.blocks_hinted -= j;
		pt_hint_set(t, h, n->hint_soon, n->hint_last);
	}
	t->st.nodes++;
	t->st.splits++;
}

/* An access of the path through n.  Only n can be in the eviction heap
 * (the others have children); the caller tells the heap
 * (pt_evictable_touched, or a pin or a child that take n out of it). */
static void touch_path(struct pt_tree *t, struct pt_node *n)
{
	uint64_t tick = ++t->tick;

	for (struct pt_node *p = n; !p->is_root; p = p->parent) {
		p->tick = tick;
		p->hits++;
	}
}

static void pin(struct pt_tree *t, struct pt_node *n)
{
	n->pins++;
	for (struct pt_node *p = n; !p->is_root; p = p->parent)
		if (p->held++ == 0)
			t->st.blocks_pinned += p->nblocks;
	pt_evictable_update(t, n);
}

static void unpin(struct pt_tree *t, struct pt_node *n)
{
	n->pins--;
	for (struct pt_node *p = n; !p->is_root; p = p->parent)
		if (--p->held == 0)
			t->st.blocks_pinned -= p->nblocks;
	pt_evictable_update(t, n);
}

/* Block ids of the path ending with n's first `used` blocks. */
static void collect(const struct pt_node *n, uint32_t used, uint64_t *out, uint32_t total)
{
	uint32_t end = total - used;

	memcpy(out + end, n->blocks, used * sizeof(uint64_t));
	for (const struct pt_node *p = n->parent; !p->is_root; p = p->parent) {
		end -= p->nblocks;
		memcpy(out + end, p->blocks, p->nblocks * sizeof(uint64_t));
	}
}

static struct pt_handle *handle_alloc(uint32_t nblocks)
{
	return malloc(sizeof(struct pt_handle) + (size_t)nblocks * sizeof(uint64_t));
}

/*
 * Make the path end exactly after `used` blocks of n (splitting n when it
 * has more), so that a touch, pin or hint covers exactly those blocks.
 * Returns the node the path now ends with.  On -ENOMEM (only when
 * must_split) nothing changed; otherwise a failed split keeps n whole,
 * which only makes the touch or pin cover a little more.
 */
static struct pt_node *end_path_at(struct pt_tree *t, struct pt_node *n, uint32_t used,
				   bool must_split, int *err)
{
	struct pt_node *h;

	*err = 0;
	if (n->is_root || used >= n->nblocks)
		return n;
	h = split_prepare(t, used, 1);
	if (!h) {
		if (must_split)
			*err = -ENOMEM;
		return n;
	}
	split_commit(t, n, used, h);
	return h;
}

/* ---- public operations -------------------------------------------------- */

int pt_create(const struct pt_config *cfg, struct pt_tree **out)
{
	struct pt_tree *t;

	if (!cfg || !out || !cfg->tokens_per_block || !cfg->put ||
	    (cfg->policy != KVMM_EVICT_LRU && cfg->policy != KVMM_EVICT_LFU))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->cfg = *cfg;
	if (!t->cfg.hint_ttl_ns)
		t->cfg.hint_ttl_ns = 10ull * 1000 * 1000 * 1000;
	t->B = cfg->tokens_per_block;
	t->next_expiry = UINT64_MAX;
	u64map_init(&t->roots);
	if (pt_admit_init(&t->admit, cfg->admit_slots)) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void pt_destroy(struct pt_tree *t)
{
	size_t pos = 0;
	uint64_t key, v;

	if (!t)
		return;
	while (u64map_next(&t->roots, &pos, &key, &v)) {
		struct pt_root *r = (struct pt_root *)(uintptr_t)v;

		while (r) {
			struct pt_root *next = r->next;
			struct pt_node *n = &r->node;

			/* Post-order without a stack: descend to a leaf, free
			 * it, climb to its parent. */
			while (!n->is_root || n->nkids) {
				if (n->nkids) {
					n = n->kids[--n->nkids].node;
					continue;
				}
				struct pt_node *parent = n->parent;

				for (uint32_t i = 0; i < n->nblocks; i++)
					t->cfg.put(t->cfg.put_arg, n->blocks[i]);
				kids_free(n);
				free(n);
				n = parent;
			}
			kids_free(&r->node);
			free(r);
			r = next;
		}
	}
	u64map_free(&t->roots);
	pt_admit_free(&t->admit);
	free(t->heap);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void pt_set_evict_hook(struct pt_tree *t, pt_evict_fn fn, void *arg)
{
	pthread_mutex_lock(&t->lock);
	t->cfg.on_evict = fn;
	t->cfg.evict_arg = arg;
	pthread_mutex_unlock(&t->lock);
}

uint32_t pt_tokens_per_block(const struct pt_tree *t)
{
	return t->B;
}

/* The longest match of tokens[0..n) in ns into *w (a read-only walk);
 * false when nothing matched.  Counts the lookup.  Lock held. */
static bool match_walk(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens,
		       uint32_t n, bool want_partial, struct pt_walk *w)
{
	struct pt_root *root;

	t->st.lookups++;
	t->st.lookup_tokens += n;
	root = root_find(t, ns, kvmm_hash_ns(ns));
	if (!root)
		return false;
	walk(t, root, tokens, n, want_partial, w);
	return w->full || w->pnode;
}

/* Commit a match found by match_walk: end the path where the match ends,
 * pin it if asked, and touch it (an access).  Returns the deepest node
 * matched (the partial block's, if any) and in *used how many of its
 * blocks the match uses.  Lock held. */
static struct pt_node *match_commit(struct pt_tree *t, const struct pt_walk *w, bool pin_it,
				    uint32_t *used)
{
	struct pt_node *deep;
	int err; /* a failed split only widens the touch or pin */

	if (w->pnode) {
		deep = w->pnode;
		*used = w->pidx + 1;
	} else {
		deep = w->node;
		*used = w->in_node;
	}
	deep = end_path_at(t, deep, *used, false, &err);
	touch_path(t, deep);
	if (pin_it)
		pin(t, deep); /* out of the heap, if it was there */
	else
		pt_evictable_touched(t, deep);
	t->st.hit_tokens += w->full * t->B + w->partial;
	return deep;
}

int pt_match(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
	     struct pt_handle **h, uint32_t *matched)
{
	struct pt_walk w = {0};
	struct pt_node *deep;
	struct pt_handle *hd = NULL;
	uint32_t used = 0, total;

	if (!t || !ns || !matched || (n && !tokens))
		return -EINVAL;
	if (h)
		*h = NULL;
	*matched = 0;
	pthread_mutex_lock(&t->lock);
	if (!match_walk(t, ns, tokens, n, true, &w))
		goto out;
	total = w.full + (w.pnode ? 1 : 0);
	if (h) {
		hd = handle_alloc(total);
		if (!hd) {
			pthread_mutex_unlock(&t->lock);
			return -ENOMEM;
		}
	}
	deep = match_commit(t, &w, hd != NULL, &used);
	*matched = w.full * t->B + w.partial;
	if (hd) {
		/* After a failed split deep has more than `used` blocks: the
		 * handle still names only the blocks it uses. */
		hd->matched = *matched;
		hd->nblocks = total;
		hd->partial = w.partial;
		hd->__pad = 0;
		collect(deep, used, hd->blocks, total);
		hd->pin = deep;
		*h = hd;
	}
out:
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int pt_match_pin(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
		 struct pt_pin *p, uint32_t *matched)
{
	struct pt_walk w = {0};
	struct pt_node *deep, *old;
	uint32_t used = 0;

	if (!t || !ns || !matched || !p || (n && !tokens))
		return -EINVAL;
	*matched = 0;
	pthread_mutex_lock(&t->lock);
	old = p->node;
	memset(p, 0, sizeof(*p));
	/* whole blocks only: without a handle there is no partial block to
	 * copy, so it is neither touched nor pinned */
	if (match_walk(t, ns, tokens, n, false, &w)) {
		deep = match_commit(t, &w, true, &used);
		*matched = w.full * t->B;
		p->node = deep;
		p->root = pt_root_of(deep);
		p->nblocks = w.full;
	}
	if (old)
		unpin(t, old);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* The node to pin for the first nblocks blocks of the path pinned at n
 * (ending the path there if it can: a failed split pins a little more,
 * never less).  Lock held. */
static struct pt_node *pin_point(struct pt_tree *t, struct pt_node *n, uint32_t nblocks)
{
	uint32_t in_node;
	int err;

	n = path_node(n, nblocks, &in_node);
	return end_path_at(t, n, in_node, false, &err);
}

int pt_handle_dup(struct pt_tree *t, const struct pt_handle *h, uint32_t nblocks,
		  struct pt_handle **out)
{
	struct pt_handle *d;
	struct pt_node *n;

	if (!t || !h || !out || !nblocks || nblocks > h->nblocks)
		return -EINVAL;
	d = handle_alloc(nblocks);
	if (!d)
		return -ENOMEM;
	memcpy(d->blocks, h->blocks, nblocks * sizeof(uint64_t));
	d->nblocks = nblocks;
	d->partial = nblocks == h->nblocks ? h->partial : 0;
	d->matched = nblocks == h->nblocks ? h->matched : nblocks * t->B;
	d->__pad = 0;
	pthread_mutex_lock(&t->lock);
	/* h's pin keeps its whole path in place */
	n = pin_point(t, h->pin, nblocks);
	d->pin = n;
	pin(t, n);
	pthread_mutex_unlock(&t->lock);
	*out = d;
	return 0;
}

int pt_pin_handle(struct pt_tree *t, const struct pt_handle *h, uint32_t nblocks, struct pt_pin *p)
{
	struct pt_node *n, *old;

	if (!t || !h || !p || !nblocks || nblocks > h->nblocks ||
	    (nblocks == h->nblocks && h->partial))
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	n = pin_point(t, h->pin, nblocks);
	pin(t, n);
	old = p->node;
	p->node = n;
	p->root = pt_root_of(n);
	p->nblocks = nblocks;
	if (old)
		unpin(t, old);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void pt_unpin(struct pt_tree *t, struct pt_pin *p)
{
	if (!t || !p || !p->node)
		return;
	pthread_mutex_lock(&t->lock);
	unpin(t, p->node);
	pthread_mutex_unlock(&t->lock);
	memset(p, 0, sizeof(*p));
}

void pt_release(struct pt_tree *t, struct pt_handle *h)
{
	if (!t || !h)
		return;
	pthread_mutex_lock(&t->lock);
	unpin(t, h->pin);
	pthread_mutex_unlock(&t->lock);
	free(h);
}

/*
 * Admission: how many of blocks [p, end) lead with enough inserts seen.
 * keys[] gets their chained hashes (to forget the counters of what is
 * admitted).  The chain runs over the cached path [0, p), which ends with
 * node `end_node` (stack: room for a pointer per node of it), then over
 * tok[p .. end): the path's own tokens key it, as they key its blocks.
 */
static uint32_t admit_count(struct pt_tree *t, struct pt_root *root, struct pt_node *end_node,
			    struct pt_node **stack, const uint32_t *tok, uint32_t p, uint32_t end,
			    uint64_t *keys)
{
	uint64_t h = root->hash;
	uint32_t ok = 0, d = 0;
	bool leading = true;

	for (struct pt_node *n = end_node; !n->is_root; n = n->parent)
		stack[d++] = n;
	while (d--)
		for (uint32_t j = 0; j < stack[d]->nblocks; j++)
			h = kvmm_hash_tokens(h, stack[d]->tokens + (size_t)j * t->B, t->B);
	for (uint32_t i = p; i < end; i++) {
		h = kvmm_hash_tokens(h, tok + (size_t)i * t->B, t->B);
		keys[i - p] = h;
		if (pt_admit_bump(&t->admit, h) >= t->cfg.admit_hits && leading)
			ok++;
		else
			leading = false;
	}
	return ok;
}

/* Nodes on the path from the root through n. */
static uint32_t path_nodes(const struct pt_node *n)
{
	uint32_t d = 0;

	for (; !n->is_root; n = n->parent)
		d++;
	return d;
}

/*
 * Pin the cached path after an insert, [0, len), which ends with deep (a
 * root when empty): by a new handle hd (freed if the path is empty) and/or
 * by moving *move there.  The new end is pinned before the old one is
 * unpinned, so a shared path never looks evictable in between.  Lock held.
 */
static void pin_result(struct pt_tree *t, struct pt_root *root, struct pt_node *deep, uint32_t len,
		       struct pt_handle *hd, struct pt_handle **pin_out, struct pt_pin *move)
{
	if (hd && deep->is_root) {
		free(hd);
	} else if (hd) {
		hd->matched = len * t->B;
		hd->nblocks = len;
		hd->partial = 0;
		hd->__pad = 0;
		collect(deep, deep->nblocks, hd->blocks, len);
		hd->pin = deep;
		pin(t, deep);
		*pin_out = hd;
	}
	if (move) {
		struct pt_node *old = move->node;

		move->node = deep->is_root ? NULL : deep;
		move->root = deep->is_root ? NULL : root;
		move->nblocks = deep->is_root ? 0 : len;
		if (move->node)
			pin(t, move->node);
		if (old)
			unpin(t, old);
	}
}

/*
 * Where a walk of tokens continuing the path `from` pins starts: false
 * when from is empty or of another namespace (walk from the root).
 * -EINVAL in *err when tokens' last block of that path differs from the
 * path's: the caller's tokens are not that path's.  Lock held.
 */
static bool from_start(struct pt_tree *t, const struct kvmm_ns *ns, const struct pt_pin *from,
		       const uint32_t *tokens, uint32_t n, struct pt_node **node, uint32_t *in_node,
		       int *err)
{
	const uint32_t B = t->B;
	struct pt_node *nd;
	uint32_t k;

	*err = 0;
	if (!from || !from->node || !ns_eq(&from->root->ns, ns))
		return false;
	k = from->nblocks;
	nd = path_node(from->node, k, in_node);
	/* A guard, not the key: what the tree keys new blocks by is the
	 * path itself (the blocks the caller's KV continues). */
	if (n / B >= k && memcmp(nd->tokens + (size_t)(*in_node - 1) * B,
				 tokens + (size_t)(k - 1) * B, B * sizeof(uint32_t)))
		*err = -EINVAL;
	*node = nd;
	return true;
}

/*
 * The insert behind pt_insert and pt_insert_from: block i >= lo of
 * tokens is given[i - lo] (PT_NO_BLOCK: not given); none below lo.  The
 * walk starts at the end of from's path when from is usable.  The cached
 * path after the insert is pinned by a new handle (*pin_out) and/or by
 * moving *move (which may be from).  flags: PT_INSERT_*.
 */
static int insert_common(struct pt_tree *t, const struct kvmm_ns *ns, const struct pt_pin *from,
			 const uint32_t *tokens, uint32_t n, uint32_t lo, const uint64_t *given,
			 uint32_t flags, struct pt_insert_result *res, struct pt_handle **pin_out,
			 struct pt_pin *move)
{
	const uint32_t B = t->B, nb = n / B;
	struct pt_insert_result r = {0};
	struct pt_victim_rec *victims = NULL, **vtail = &victims;
	struct pt_root *root = NULL;
	struct pt_walk w;
	struct pt_node *attach, *head = NULL, *nn = NULL, *start;
	struct pt_handle *hd = NULL;
	struct pt_node **stack = NULL;
	uint64_t *keys = NULL;
	uint32_t k, in_node;
	bool created, split, admit;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	t->st.inserts++;
	if (from_start(t, ns, from, tokens, n, &start, &in_node, &ret)) {
		if (ret)
			goto out;
		if (nb <= from->nblocks) {
			r.first = nb; /* nothing beyond the path */
			goto out;
		}
		root = from->root;
		walk_from(t, start, in_node, from->nblocks, tokens, n, false, &w);
	} else {
		root = root_get(t, ns, &created);
		if (!root) {
			ret = -ENOMEM;
			goto out;
		}
		walk(t, root, tokens, n, false, &w);
	}
	r.first = w.full;
	for (k = 0; w.full + k < nb && w.full + k >= lo && given[w.full + k - lo] != PT_NO_BLOCK;)
		k++;
	attach = w.node;
	split = w.in_node < attach->nblocks;

	/* Allocate everything first: from here on nothing may fail. */
	if (pt_heap_reserve(t, t->st.nodes + 2))
		goto nomem;
	if (split && !(head = split_prepare(t, w.in_node, 2)))
		goto nomem;
	if (!split && k && kids_reserve(attach, 1))
		goto nomem;
	if (k && !(nn = node_alloc(t, k)))
		goto nomem;
	admit = k && t->cfg.admit_hits > 1 && !(flags & PT_INSERT_ADMITTED);
	if (admit && (!(keys = malloc(k * sizeof(*keys))) ||
		      !(stack = malloc((path_nodes(w.node) + 1) * sizeof(*stack)))))
		goto nomem;
	if (pin_out && w.full + k && !(hd = handle_alloc(w.full + k)))
		goto nomem;

	if (split) {
		split_commit(t, attach, w.in_node, head);
		attach = head;
	}
	if (!attach->is_root)
		touch_path(t, attach); /* its heap place is fixed below */
	if (admit) {
		uint32_t ok = admit_count(t, root, attach, stack, tokens, w.full, w.full + k, keys);

		r.rejected_admit = k - ok;
		k = ok;
	}
	if (k && t->cfg.max_blocks && t->st.blocks_cached + k > t->cfg.max_blocks) {
		uint64_t room;

		/* The path being extended is protected while making room. */
		if (!attach->is_root)
			pin(t, attach);
		t->busy_root = root;
		pt_evict_locked(t, t->st.blocks_cached + k - t->cfg.max_blocks, KVMM_EVICT_CAP,
				&vtail);
		t->busy_root = NULL;
		if (!attach->is_root)
			unpin(t, attach);
		room = t->cfg.max_blocks > t->st.blocks_cached
			       ? t->cfg.max_blocks - t->st.blocks_cached
			       : 0;
		if (k > room) {
			r.rejected_cap = k - (uint32_t)room;
			k = (uint32_t)room;
		}
	}
	t->st.admission_rejects += r.rejected_admit;
	t->st.cap_rejects += r.rejected_cap;
	if (k) {
		memcpy(nn->blocks, given + (w.full - lo), k * sizeof(uint64_t));
		/* nn was sized for every candidate; its tokens follow its
		 * allocated block slots, not just the k used ones. */
		memcpy(nn->tokens, tokens + (size_t)w.full * B, (size_t)k * B * sizeof(uint32_t));
		nn->nblocks = k;
		nn->depth = attach->depth + attach->nblocks;
		nn->tick = attach->is_root ? ++t->tick : attach->tick;
		nn->hits = 1;
		kid_add(t, attach, nn);
		t->st.nodes++;
		t->st.blocks_cached += k;
		t->st.inserted_blocks += k;
		for (uint32_t i = 0; keys && i < k; i++)
			pt_admit_forget(&t->admit, keys[i]);
		r.added = k;
	} else {
		node_discard(nn);
		nn = NULL;
	}
	/* Pin first: a pinned node does not enter the heap only to leave. */
	pin_result(t, root, nn ? nn : attach, w.full + k, hd, pin_out, move);
	if (!attach->is_root)
		pt_evictable_touched(t, attach);
	if (nn)
		pt_evictable_update(t, nn);
	ret = (int)k;
	goto out;
nomem:
	node_discard(head);
	node_discard(nn);
	free(hd);
	ret = -ENOMEM;
out:
	if (root && !root->node.nkids)
		pt_root_remove(t, root);
	free(keys);
	free(stack);
	if (res)
		*res = r;
	pthread_mutex_unlock(&t->lock);
	pt_victims_deliver(t, victims);
	return ret;
}

int pt_insert(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
	      const uint64_t *blocks, struct pt_insert_result *res, struct pt_handle **pin_out)
{
	return pt_insert_flags(t, ns, tokens, n, blocks, 0, res, pin_out);
}

int pt_insert_flags(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
		    const uint64_t *blocks, uint32_t flags, struct pt_insert_result *res,
		    struct pt_handle **pin_out)
{
	if (!t || !ns || (n && !tokens) || (n >= t->B && !blocks) || (flags & ~PT_INSERT_ADMITTED))
		return -EINVAL;
	if (pin_out)
		*pin_out = NULL;
	return insert_common(t, ns, NULL, tokens, n, 0, blocks, flags, res, pin_out, NULL);
}

int pt_insert_from(struct pt_tree *t, const struct kvmm_ns *ns, struct pt_pin *from,
		   const uint32_t *tokens, uint32_t n, uint32_t lo, const uint64_t *blocks,
		   struct pt_insert_result *res)
{
	if (!t || !ns || !from || (n && !tokens) || (lo < n / t->B && !blocks))
		return -EINVAL;
	return insert_common(t, ns, from, tokens, n, lo, blocks, 0, res, NULL, from);
}

uint32_t pt_probe(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n)
{
	int ret = pt_probe_from(t, ns, NULL, tokens, n);

	return ret > 0 ? (uint32_t)ret : 0;
}

int pt_probe_from(struct pt_tree *t, const struct kvmm_ns *ns, const struct pt_pin *from,
		  const uint32_t *tokens, uint32_t n)
{
	struct pt_root *root;
	struct pt_node *start;
	struct pt_walk w = {0};
	uint32_t in_node;
	int err = 0;

	if (!t || !ns || (n && !tokens))
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	if (from_start(t, ns, from, tokens, n, &start, &in_node, &err)) {
		if (!err && n / t->B > from->nblocks)
			walk_from(t, start, in_node, from->nblocks, tokens, n, false, &w);
		else
			w.full = n / t->B;
	} else {
		root = root_find(t, ns, kvmm_hash_ns(ns));
		if (root)
			walk(t, root, tokens, n, false, &w);
	}
	pthread_mutex_unlock(&t->lock);
	return err ? err : (int)w.full;
}

int pt_hint(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
	    uint64_t when_ns)
{
	struct pt_root *root;
	struct pt_walk w;
	struct pt_node *deep;
	uint64_t now;
	int ret = 0;

	if (!t || !ns || (n && !tokens))
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	root = root_find(t, ns, kvmm_hash_ns(ns));
	if (!root)
		goto out;
	walk(t, root, tokens, n, false, &w);
	if (!w.full)
		goto out;
	deep = end_path_at(t, w.node, w.in_node, true, &ret);
	if (ret)
		goto out;
	now = pt_now(t);
	for (struct pt_node *p = deep; !p->is_root; p = p->parent) {
		uint64_t soon = when_ns, last = when_ns;

		if (p->hinted && !pt_hint_expired(t, p, now)) {
			soon = p->hint_soon < when_ns ? p->hint_soon : when_ns;
			last = p->hint_last > when_ns ? p->hint_last : when_ns;
		}
		pt_hint_set(t, p, soon, last);
	}
	t->st.hints++;
	ret = (int)(w.full * t->B);
out:
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int64_t pt_evict(struct pt_tree *t, uint64_t nblocks, enum kvmm_evict_reason why)
{
	struct pt_victim_rec *victims = NULL, **vtail = &victims;
	int64_t got;

	if (!t || (unsigned)why >= KVMM_EVICT__COUNT)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	got = pt_evict_locked(t, nblocks, why, &vtail);
	pthread_mutex_unlock(&t->lock);
	pt_victims_deliver(t, victims);
	return got;
}

void pt_stats(struct pt_tree *t, struct pt_stats *st)
{
	pthread_mutex_lock(&t->lock);
	*st = t->st;
	pthread_mutex_unlock(&t->lock);
}

/* ---- invariants (tests) ------------------------------------------------- */

struct check_sums {
	uint64_t nodes, blocks, pinned, hinted, heap;
};

#define FAIL(...)                                \
	do {                                     \
		snprintf(why, len, __VA_ARGS__); \
		return -EUCLEAN;                 \
	} while (0)

static int check_node(struct pt_tree *t, struct pt_node *n, struct check_sums *s, char *why,
		      size_t len)
{
	uint32_t held = n->pins;
	bool want_heap;

	for (uint32_t i = 0; i < n->nkids; i++) {
		struct pt_node *k = n->kids[i].node;
		int ret;

		if (k->parent != n)
			FAIL("kid %u of a node has a wrong parent", i);
		if (k->depth != n->depth + n->nblocks)
			FAIL("depth %u, parent ends at %u", k->depth, n->depth + n->nblocks);
		if (i && probe_cmp(n->kids[i - 1].node->tokens, t->B, k, t->B) >= 0)
			FAIL("kids %u and %u out of order", i - 1, i);
		if (n->kids[i].key != kid_key(k->tokens, t->B))
			FAIL("kid %u's key is not its first block's", i);
		ret = check_node(t, k, s, why, len);
		if (ret)
			return ret;
		held += k->held;
	}
	if (n->is_root) {
		if (n->nblocks || n->pins)
			FAIL("root with blocks or pins");
		return 0;
	}
	if (!n->nblocks)
		FAIL("empty node");
	if (held != n->held)
		FAIL("held %u, pins below %u", n->held, held);
	s->nodes++;
	s->blocks += n->nblocks;
	if (n->held)
		s->pinned += n->nblocks;
	if (n->hinted)
		s->hinted += n->nblocks;
	want_heap = !n->nkids && !n->held;
	if (want_heap != (n->heap_idx != PT_NO_HEAP))
		FAIL("heap membership %d, evictable %d", n->heap_idx != PT_NO_HEAP, want_heap);
	if (want_heap) {
		if (n->heap_idx >= t->heap_len || t->heap[n->heap_idx].node != n)
			FAIL("heap slot %u does not point back", n->heap_idx);
		s->heap++;
	}
	for (const struct pt_node *p = n->parent; !p->is_root; p = p->parent)
		if (p->tick < n->tick)
			FAIL("ancestor touched before its descendant");
	return 0;
}

int pt_check(struct pt_tree *t, char *why, size_t len)
{
	struct check_sums s = {0};
	size_t pos = 0, nroots = 0;
	uint64_t key, v;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	while (!ret && u64map_next(&t->roots, &pos, &key, &v)) {
		for (struct pt_root *r = (struct pt_root *)(uintptr_t)v; r && !ret; r = r->next) {
			nroots++;
			if (!r->node.nkids) {
				snprintf(why, len, "empty namespace root");
				ret = -EUCLEAN;
				break;
			}
			if (root_key(r->hash) != key) {
				snprintf(why, len, "root under a wrong hash");
				ret = -EUCLEAN;
				break;
			}
			ret = check_node(t, &r->node, &s, why, len);
		}
	}
	for (struct pt_node *h = t->hinted; !ret && h; h = h->hnext) {
		if (!h->hinted || (h->hnext && h->hnext->hprev != h))
			ret = -EUCLEAN, snprintf(why, len, "hint list broken");
	}
	if (!ret)
		ret = pt_heap_check(t, why, len);
	if (!ret && (s.nodes != t->st.nodes || s.blocks != t->st.blocks_cached ||
		     s.pinned != t->st.blocks_pinned || s.hinted != t->st.blocks_hinted ||
		     s.heap != t->heap_len || nroots != t->st.namespaces)) {
		snprintf(why, len,
			 "counters: nodes %llu/%llu blocks %llu/%llu pinned %llu/%llu "
			 "hinted %llu/%llu heap %llu/%u roots %zu/%llu",
			 (unsigned long long)s.nodes, (unsigned long long)t->st.nodes,
			 (unsigned long long)s.blocks, (unsigned long long)t->st.blocks_cached,
			 (unsigned long long)s.pinned, (unsigned long long)t->st.blocks_pinned,
			 (unsigned long long)s.hinted, (unsigned long long)t->st.blocks_hinted,
			 (unsigned long long)s.heap, t->heap_len, nroots,
			 (unsigned long long)t->st.namespaces);
		ret = -EUCLEAN;
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}
