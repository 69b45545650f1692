// SPDX-License-Identifier: MIT
/*
 * test_prefix_tree.c - the prefix tree against a naive reference.
 *
 * The reference is a flat list of cached blocks, each with its whole token
 * prefix, namespace, id, last access, access count, hint and pin count.
 * Longest-prefix match is brute force over that list; eviction picks, one
 * block at a time, the evictable leaf block (no cached extension, no pin)
 * first in the documented order.  Random operations with shared prefixes,
 * small alphabets (partial blocks), multi-turn extensions (splits), hints,
 * admission, a block cap and explicit evictions are replayed on both, and
 * every answer, handle, victim and put is compared.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "prefix_tree.h"
#include "testutil.h"
#include "u64map.h"

#define MAXTOK 96
#define NSTEMS 8
#define NHIST  32
#define MAXH   16
#define NNS    3

/*
 * Check's ck_assert_*() records a checkpoint per call (one write(2) each);
 * the model checks millions of facts, so it tests plainly and reports
 * through Check only on failure.
 */
#define MUST(c)                                                            \
	do {                                                               \
		if (!(c))                                                  \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c); \
	} while (0)
#define MUST_MSG(c, ...)                           \
	do {                                       \
		if (!(c))                          \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)
#define MUST_CMP(a, op, b)                                                                         \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (!(a_ op b_))                                                                   \
			ck_abort_msg("%s:%d: %s %s %s: %lld vs %lld", __FILE__, __LINE__, #a, #op, \
				     #b, a_, b_);                                                  \
	} while (0)

struct ref_blk {
	bool live;
	uint32_t ns;
	uint32_t depth;	  /* block index */
	uint32_t *prefix; /* (depth + 1) * B tokens */
	uint64_t id;
	int parent; /* entry of block depth - 1, or -1 */
	uint32_t nkids;
	uint64_t tick, hits;
	bool hinted;
	uint64_t soon, last;
	uint32_t pins;
};

struct live_handle {
	struct pt_handle *h;
	int ent[MAXTOK];
	uint32_t n;
};

/* A pin (pt_pin) and what it should hold: the path's entries and tokens. */
struct live_pin {
	struct pt_pin pin;
	int ent[MAXTOK];
	uint32_t n; /* blocks */
	uint32_t ns;
	uint32_t tok[MAXTOK];
};

struct got_victim {
	uint64_t id;
	uint32_t ns_model;
	uint32_t depth;
	uint32_t tokens[MAXTOK];
	enum kvmm_evict_reason why;
};

struct model {
	uint32_t B;
	struct pt_config cfg;
	struct pt_tree *t;
	struct ref_blk *e;
	size_t ne, cap_e;
	uint32_t *free_e; /* dead slots, reused */
	size_t nfree;
	struct u64map by_id; /* id -> entry */
	struct u64map admit; /* ref_key(ns, prefix) -> count */
	uint64_t tick, now, next_id;
	struct live_handle hs[MAXH];
	uint32_t nh;
	struct live_pin ps[MAXH];
	uint32_t np;
	/* test-side block state */
	struct u64map adopted; /* id -> 1 adopted, 2 put */
	struct got_victim *got;
	size_t ngot, cap_got;
	uint32_t stems[NSTEMS][MAXTOK];
	uint32_t hist[NHIST][MAXTOK];
	uint32_t hist_len[NHIST];
	struct tu_rng r;
	bool destroying;
	int last_added;
	uint64_t n_partial, n_split_ops, n_evicted, n_hinted_evicted, n_admit_rej, n_cap_rej;
	uint64_t n_from, n_from_added, n_from_guard, n_from_other;
};

static const struct kvmm_ns nss[NNS] = {
	{.model_id = 7, .adapter_id = 0, .tenant_salt = 0},
	{.model_id = 7, .adapter_id = 0, .tenant_salt = 1},
	{.model_id = 8, .adapter_id = 0, .tenant_salt = 0},
};

static uint32_t ns_index(const struct kvmm_ns *ns)
{
	for (uint32_t i = 0; i < NNS; i++)
		if (!memcmp(ns, &nss[i], sizeof(*ns)))
			return i;
	ck_abort_msg("unknown namespace in a victim");
	return 0;
}

static uint64_t fake_clock(void *arg)
{
	return ((struct model *)arg)->now;
}

static void on_put(void *arg, uint64_t id)
{
	struct model *m = arg;
	uint64_t v = 0, ent;

	MUST_MSG(u64map_get(&m->adopted, id, &v) && v == 1,
		 "put of block %llu that the tree did not own (state %llu)", (unsigned long long)id,
		 (unsigned long long)v);
	u64map_put(&m->adopted, id, 2);
	if (m->destroying)
		return;
	/* otherwise only an evicted block is put, after the hook saw it */
	MUST_MSG(u64map_get(&m->by_id, id, &ent), "put of an unknown block");
	for (size_t i = 0; i < m->ngot; i++)
		if (m->got[i].id == id)
			return;
	ck_abort_msg("put of block %llu before (or without) the eviction hook",
		     (unsigned long long)id);
}

static void on_evict(void *arg, const struct pt_victim *v)
{
	struct model *m = arg;

	MUST_CMP(v->nblocks, >=, 1);
	/* blocks come in path order; they leave tail first */
	for (uint32_t i = v->nblocks; i-- > 0;) {
		struct got_victim *g;

		if (m->ngot == m->cap_got) {
			m->cap_got = m->cap_got ? m->cap_got * 2 : 64;
			m->got = realloc(m->got, m->cap_got * sizeof(*m->got));
			MUST(NULL != m->got);
		}
		g = &m->got[m->ngot++];
		g->id = v->blocks[i];
		g->depth = v->first + i;
		g->why = v->reason;
		g->ns_model = (uint32_t)ns_index(v->ns);
		MUST_CMP((g->depth + 1) * m->B, <=, MAXTOK);
		memcpy(g->tokens, v->tokens, (size_t)(g->depth + 1) * m->B * sizeof(uint32_t));
	}
}

static uint32_t lcp(const uint32_t *a, const uint32_t *b, uint32_t n)
{
	uint32_t i = 0;

	while (i < n && a[i] == b[i])
		i++;
	return i;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The reference's own key of (namespace, prefix): independent of the
 * tree's hash, so a weakness in either shows up as a mismatch. */
static uint64_t ref_key(uint32_t ns, const uint32_t *t, uint32_t n)
{
	uint64_t h = mix64(ns + 0x1234567ull);

	for (uint32_t i = 0; i < n; i++)
		h = mix64(h ^ mix64(t[i] + 0x9e3779b97f4a7c15ull));
	return h == U64MAP_EMPTY ? h - 1 : h;
}

/* ---- reference ---------------------------------------------------------- */

static int ref_find(struct model *m, uint32_t ns, const uint32_t *tok, uint32_t depth)
{
	for (size_t i = 0; i < m->ne; i++) {
		struct ref_blk *b = &m->e[i];

		if (b->live && b->ns == ns && b->depth == depth &&
		    !memcmp(b->prefix, tok, (size_t)(depth + 1) * m->B * sizeof(uint32_t)))
			return (int)i;
	}
	return -1;
}

/* Longest match: brute force over every cached block. */
static uint32_t ref_match(struct model *m, uint32_t ns, const uint32_t *tok, uint32_t n)
{
	uint32_t best = 0;

	for (size_t i = 0; i < m->ne; i++) {
		struct ref_blk *b = &m->e[i];
		uint32_t len = (b->depth + 1) * m->B, l;

		if (!b->live || b->ns != ns)
			continue;
		l = lcp(b->prefix, tok, len < n ? len : n);
		if (l > best)
			best = l;
	}
	return best;
}

static void ref_add(struct model *m, uint32_t ns, const uint32_t *tok, uint32_t depth, uint64_t id,
		    int parent)
{
	struct ref_blk *b;
	size_t slot;

	if (m->nfree) {
		slot = m->free_e[--m->nfree];
	} else {
		if (m->ne == m->cap_e) {
			m->cap_e = m->cap_e ? m->cap_e * 2 : 256;
			m->e = realloc(m->e, m->cap_e * sizeof(*m->e));
			m->free_e = realloc(m->free_e, m->cap_e * sizeof(*m->free_e));
			MUST(m->e && m->free_e);
		}
		slot = m->ne++;
	}
	b = &m->e[slot];
	memset(b, 0, sizeof(*b));
	b->live = true;
	b->ns = ns;
	b->depth = depth;
	b->prefix = malloc((size_t)(depth + 1) * m->B * sizeof(uint32_t));
	MUST(NULL != b->prefix);
	memcpy(b->prefix, tok, (size_t)(depth + 1) * m->B * sizeof(uint32_t));
	b->id = id;
	b->parent = parent;
	b->tick = m->tick;
	b->hits = 1;
	if (parent >= 0)
		m->e[parent].nkids++;
	u64map_put(&m->by_id, id, slot);
	m->last_added = (int)slot;
}

static bool ref_before(struct model *m, const struct ref_blk *a, const struct ref_blk *b)
{
	if (a->hinted != b->hinted)
		return !a->hinted;
	if (a->hinted) {
		if (a->soon != b->soon)
			return a->soon > b->soon;
	} else if (m->cfg.policy == KVMM_EVICT_LFU && a->hits != b->hits) {
		return a->hits < b->hits;
	}
	MUST_MSG(a->tick != b->tick || a == b, "reference tie between two leaves");
	return a->tick < b->tick;
}

static uint64_t ttl_end(struct model *m, const struct ref_blk *b)
{
	return b->last > UINT64_MAX - m->cfg.hint_ttl_ns ? UINT64_MAX
							 : b->last + m->cfg.hint_ttl_ns;
}

static void ref_sweep(struct model *m)
{
	for (size_t i = 0; i < m->ne; i++)
		if (m->e[i].live && m->e[i].hinted && ttl_end(m, &m->e[i]) < m->now)
			m->e[i].hinted = false;
}

/* The next block to go, skipping the entries in `keep` (an insert's path). */
static int ref_victim(struct model *m, const int *keep, uint32_t nkeep)
{
	int best = -1;

	for (size_t i = 0; i < m->ne; i++) {
		struct ref_blk *b = &m->e[i];
		bool kept = false;

		if (!b->live || b->nkids || b->pins)
			continue;
		for (uint32_t k = 0; k < nkeep; k++)
			kept |= keep[k] == (int)i;
		if (kept)
			continue;
		if (best < 0 || ref_before(m, b, &m->e[best]))
			best = (int)i;
	}
	return best;
}

static void ref_drop(struct model *m, int i)
{
	struct ref_blk *b = &m->e[i];

	b->live = false;
	if (b->parent >= 0)
		m->e[b->parent].nkids--;
	free(b->prefix);
	b->prefix = NULL;
	u64map_del(&m->by_id, b->id, NULL);
	m->free_e[m->nfree++] = (uint32_t)i;
}

/* Replay `need` evictions on the reference and compare with the victims the
 * tree reported since m->got was last cleared. */
static uint64_t ref_evict(struct model *m, uint64_t need, const int *keep, uint32_t nkeep,
			  enum kvmm_evict_reason why)
{
	uint64_t done = 0;

	ref_sweep(m);
	while (done < need) {
		int v = ref_victim(m, keep, nkeep);
		struct got_victim *g;
		struct ref_blk *b;

		if (v < 0)
			break;
		b = &m->e[v];
		MUST_MSG(done < m->ngot, "tree evicted %zu blocks, reference expects more",
			 m->ngot);
		g = &m->got[done];
		MUST_MSG(g->id == b->id,
			 "victim %llu: tree evicted block %llu, reference expects %llu "
			 "(depth %u, tick %llu, hinted %d)",
			 (unsigned long long)done, (unsigned long long)g->id,
			 (unsigned long long)b->id, b->depth, (unsigned long long)b->tick,
			 b->hinted);
		MUST_CMP(g->depth, ==, b->depth);
		MUST_CMP(g->ns_model, ==, b->ns);
		MUST_CMP(g->why, ==, why);
		MUST(!memcmp(g->tokens, b->prefix,
			     (size_t)(b->depth + 1) * m->B * sizeof(uint32_t)));
		if (b->hinted)
			m->n_hinted_evicted++;
		ref_drop(m, v);
		done++;
	}
	MUST_CMP(m->ngot, ==, done);
	m->ngot = 0;
	m->n_evicted += done;
	return done;
}

static uint64_t ref_cached(struct model *m)
{
	uint64_t n = 0;

	for (size_t i = 0; i < m->ne; i++)
		n += m->e[i].live;
	return n;
}

/* ---- operations --------------------------------------------------------- */

static uint32_t gen_tokens(struct model *m, uint32_t *tok)
{
	uint32_t n = 0, kind = (uint32_t)tu_rng_below(&m->r, 10);

	if (kind < 4) {
		/* a system prompt, then a user turn */
		const uint32_t *s = m->stems[tu_rng_below(&m->r, NSTEMS)];
		uint32_t l = (uint32_t)tu_rng_below(&m->r, MAXTOK / 2);

		memcpy(tok, s, l * sizeof(*tok));
		n = l;
	} else if (kind < 8) {
		/* a conversation continues: an earlier sequence, cut, plus more */
		uint32_t h = (uint32_t)tu_rng_below(&m->r, NHIST);
		uint32_t l = m->hist_len[h];

		if (tu_rng_below(&m->r, 3) == 0 && l)
			l = (uint32_t)tu_rng_below(&m->r, l + 1);
		memcpy(tok, m->hist[h], l * sizeof(*tok));
		n = l;
	}
	/* a tail from a tiny alphabet: partial blocks and near misses */
	{
		uint32_t more = (uint32_t)tu_rng_below(&m->r, MAXTOK - n + 1);

		if (more > 3 * m->B && tu_rng_below(&m->r, 2))
			more = (uint32_t)tu_rng_below(&m->r, 3 * m->B);
		for (uint32_t i = 0; i < more; i++)
			tok[n + i] = (uint32_t)tu_rng_below(&m->r, 3);
		n += more;
	}
	return n;
}

static void remember(struct model *m, const uint32_t *tok, uint32_t n)
{
	uint32_t h = (uint32_t)tu_rng_below(&m->r, NHIST);

	memcpy(m->hist[h], tok, n * sizeof(*tok));
	m->hist_len[h] = n;
}

static void op_match(struct model *m)
{
	uint32_t tok[MAXTOK], n = gen_tokens(m, tok), ns = (uint32_t)tu_rng_below(&m->r, NNS);
	uint32_t matched, want, B = m->B;
	struct pt_handle *h;
	struct live_handle lh;
	int prev = -1;

	want = ref_match(m, ns, tok, n);
	MUST_CMP(pt_match(m->t, &nss[ns], tok, n, &h, &matched), ==, 0);
	MUST_CMP(matched, ==, want);
	if (!matched) {
		MUST(NULL == h);
		return;
	}
	MUST(NULL != h);
	MUST_CMP(h->matched, ==, matched);
	MUST_CMP(h->partial, ==, matched % B);
	MUST_CMP(h->nblocks, ==, (matched + B - 1) / B);
	m->n_partial += h->partial != 0;
	m->tick++;
	lh.h = h;
	lh.n = h->nblocks;
	for (uint32_t i = 0; i < h->nblocks; i++) {
		uint64_t ent;
		struct ref_blk *b;
		uint32_t need = (i + 1) * B < matched ? (i + 1) * B : matched;

		MUST_MSG(u64map_get(&m->by_id, h->blocks[i], &ent),
			 "handle names an unknown block");
		b = &m->e[ent];
		MUST_MSG(b->live, "handle names an evicted block");
		MUST_CMP(b->ns, ==, ns);
		MUST_CMP(b->depth, ==, i);
		MUST_CMP(b->parent, ==, prev);
		MUST_CMP(lcp(b->prefix, tok, need), >=, need);
		b->tick = m->tick;
		b->hits++;
		b->pins++;
		lh.ent[i] = (int)ent;
		prev = (int)ent;
	}
	if (m->nh < MAXH && tu_rng_below(&m->r, 2)) {
		m->hs[m->nh++] = lh;
	} else {
		for (uint32_t i = 0; i < lh.n; i++)
			m->e[lh.ent[i]].pins--;
		pt_release(m->t, h);
	}
}

static void release_one(struct model *m, uint32_t k)
{
	struct live_handle *lh = &m->hs[k];

	for (uint32_t i = 0; i < lh->n; i++) {
		MUST(m->e[lh->ent[i]].live);
		m->e[lh->ent[i]].pins--;
	}
	pt_release(m->t, lh->h);
	m->hs[k] = m->hs[--m->nh];
}

static void unpin_one(struct model *m, uint32_t k);

static void op_release(struct model *m)
{
	if (m->nh && tu_rng_below(&m->r, 3))
		release_one(m, (uint32_t)tu_rng_below(&m->r, m->nh));
	else if (m->np)
		unpin_one(m, (uint32_t)tu_rng_below(&m->r, m->np));
}

/*
 * The reference's side of an insert of tok[0..n) in ns whose blocks
 * i >= lo were given as ids[i - lo] (none below lo), after the tree's
 * (ret, *res).  Checks the answer, replays the access, admission and cap
 * evictions, and records what was adopted.  path[] gets the entries of
 * the cached path after the insert; returns its length.
 */
static uint32_t ref_insert(struct model *m, uint32_t ns, const uint32_t *tok, uint32_t n,
			   uint32_t lo, const uint64_t *ids, int ret,
			   const struct pt_insert_result *res, int *path)
{
	uint32_t B = m->B, nb = n / B, p = 0, k, ok = 0;
	uint64_t keys[MAXTOK];
	bool leading = true;

	for (uint32_t i = 0; i < nb; i++) {
		int e = ref_find(m, ns, tok, i);

		if (e < 0)
			break;
		path[p++] = e;
	}
	m->tick++;
	for (uint32_t i = 0; i < p; i++) {
		m->e[path[i]].tick = m->tick;
		m->e[path[i]].hits++;
	}
	k = p >= lo ? nb - p : 0;
	if (m->cfg.admit_hits > 1) {
		for (uint32_t i = p; i < p + k; i++) {
			uint64_t c = 0;

			keys[i] = ref_key(ns, tok, (i + 1) * B);
			u64map_get(&m->admit, keys[i], &c);
			u64map_put(&m->admit, keys[i], ++c);
			if (leading && c >= m->cfg.admit_hits)
				ok++;
			else
				leading = false;
		}
	} else {
		ok = k;
	}
	MUST_CMP(ret, >=, 0);
	MUST_CMP(res->first, ==, p);
	MUST_CMP(res->rejected_admit, ==, k - ok);
	k = ok;
	if (k && m->cfg.max_blocks && ref_cached(m) + k > m->cfg.max_blocks) {
		uint64_t room;

		ref_evict(m, ref_cached(m) + k - m->cfg.max_blocks, path, p, KVMM_EVICT_CAP);
		room = ref_cached(m) < m->cfg.max_blocks ? m->cfg.max_blocks - ref_cached(m) : 0;
		if (k > room)
			k = (uint32_t)room;
		m->n_split_ops++;
	}
	MUST_CMP(m->ngot, ==, 0);
	MUST_CMP(res->rejected_cap, ==, ok - k);
	MUST_CMP(ret, ==, (int)k);
	MUST_CMP(res->added, ==, k);
	m->n_admit_rej += res->rejected_admit;
	m->n_cap_rej += res->rejected_cap;
	for (uint32_t i = p; i < p + k; i++) {
		ref_add(m, ns, tok, i, ids[i - lo], i ? path[i - 1] : -1);
		path[i] = m->last_added;
		u64map_put(&m->adopted, ids[i - lo], 1);
		if (m->cfg.admit_hits > 1)
			u64map_del(&m->admit, keys[i], NULL);
	}
	return p + k;
}

static void op_insert(struct model *m)
{
	uint32_t tok[MAXTOK], n = gen_tokens(m, tok), ns = (uint32_t)tu_rng_below(&m->r, NNS);
	uint32_t B = m->B, nb = n / B, len;
	uint64_t ids[MAXTOK];
	int path[MAXTOK], ret;
	struct pt_insert_result res;
	struct pt_handle *h = NULL;
	bool want_pin = m->nh < MAXH && tu_rng_below(&m->r, 4) == 0;

	for (uint32_t i = 0; i < nb; i++) {
		ids[i] = m->next_id++;
		u64map_put(&m->adopted, ids[i], 0);
	}
	ret = pt_insert(m->t, &nss[ns], tok, n, ids, &res, want_pin ? &h : NULL);
	len = ref_insert(m, ns, tok, n, 0, ids, ret, &res, path);
	if (want_pin) {
		if (!len) {
			MUST(NULL == h);
		} else {
			struct live_handle lh = {.h = h, .n = len};

			MUST(NULL != h);
			MUST_CMP(h->nblocks, ==, len);
			MUST_CMP(h->matched, ==, len * B);
			for (uint32_t i = 0; i < len; i++) {
				MUST_CMP(h->blocks[i], ==, m->e[path[i]].id);
				m->e[path[i]].pins++;
				lh.ent[i] = path[i];
			}
			m->hs[m->nh++] = lh;
		}
	}
	remember(m, tok, n);
}

/* Point a live pin at the path ent[0..n) of tok in ns (pins moved). */
static void pin_to(struct model *m, struct live_pin *lp, uint32_t ns, const uint32_t *tok,
		   const int *ent, uint32_t n)
{
	for (uint32_t i = 0; i < lp->n; i++)
		m->e[lp->ent[i]].pins--;
	for (uint32_t i = 0; i < n; i++) {
		m->e[ent[i]].pins++;
		lp->ent[i] = ent[i];
	}
	memcpy(lp->tok, tok, (size_t)n * m->B * sizeof(*tok));
	lp->n = n;
	lp->ns = ns;
	MUST_CMP(lp->pin.nblocks, ==, n);
	MUST((n != 0) == (lp->pin.node != NULL));
}

/* A live pin to use: a new one, or (replacing its path) an old one. */
static struct live_pin *pick_pin(struct model *m, bool prefer_old)
{
	if (m->np && (prefer_old || m->np == MAXH))
		return &m->ps[tu_rng_below(&m->r, m->np)];
	memset(&m->ps[m->np], 0, sizeof(m->ps[m->np]));
	return &m->ps[m->np++];
}

static void unpin_one(struct model *m, uint32_t k)
{
	struct live_pin *lp = &m->ps[k];

	for (uint32_t i = 0; i < lp->n; i++) {
		MUST(m->e[lp->ent[i]].live);
		m->e[lp->ent[i]].pins--;
	}
	pt_unpin(m->t, &lp->pin);
	MUST(NULL == lp->pin.node);
	m->ps[k] = m->ps[--m->np];
}

/* pt_match_pin: a match of whole blocks, pinned without a handle. */
static void op_match_pin(struct model *m)
{
	uint32_t tok[MAXTOK], n = gen_tokens(m, tok), ns = (uint32_t)tu_rng_below(&m->r, NNS);
	uint32_t matched, B = m->B, full = ref_match(m, ns, tok, n) / B;
	struct live_pin *lp = pick_pin(m, tu_rng_below(&m->r, 4) == 0);
	int ent[MAXTOK] = {0};

	MUST_CMP(pt_match_pin(m->t, &nss[ns], tok, n, &lp->pin, &matched), ==, 0);
	MUST_CMP(matched, ==, full * B);
	if (full)
		m->tick++;
	for (uint32_t i = 0; i < full; i++) {
		ent[i] = ref_find(m, ns, tok, i);
		MUST(ent[i] >= 0);
		m->e[ent[i]].tick = m->tick;
		m->e[ent[i]].hits++;
	}
	pin_to(m, lp, ns, tok, ent, full);
	if (!full)
		m->ps[lp - m->ps] = m->ps[--m->np];
}

/*
 * pt_insert_from a live pin: mostly its path and more, sometimes with a
 * token before the path's last block changed (not compared: the path is
 * the key), the last block changed (refused), another namespace or other
 * tokens altogether (a walk from the root).
 */
static void op_insert_from(struct model *m)
{
	struct live_pin *lp = pick_pin(m, tu_rng_below(&m->r, 8) != 0);
	uint32_t B = m->B, k = lp->n, tok[MAXTOK], eff[MAXTOK], n, nb, lo, len, ns;
	uint32_t kind = (uint32_t)tu_rng_below(&m->r, 16);
	struct pt_insert_result res;
	struct pt_pin before = lp->pin;
	uint64_t ids[MAXTOK];
	int path[MAXTOK], ret;
	bool usable;

	ns = k ? lp->ns : (uint32_t)tu_rng_below(&m->r, NNS);
	if (k && kind == 15)
		ns = (ns + 1) % NNS;
	if (k && kind < 12) {
		n = k * B;
		memcpy(tok, lp->tok, n * sizeof(*tok));
		/* more: from a tiny alphabet or a stem's continuation */
		for (uint32_t more = (uint32_t)tu_rng_below(&m->r, MAXTOK - n + 1); more;
		     more--, n++)
			tok[n] = kind & 1 ? (uint32_t)tu_rng_below(&m->r, 3)
					  : m->stems[kind % NSTEMS][n];
		if (kind < 3 && k > 1)
			tok[tu_rng_below(&m->r, (k - 1) * B)] += 5000;
		else if (kind == 3)
			tok[(k - 1) * B + tu_rng_below(&m->r, B)] += 5000;
	} else {
		n = gen_tokens(m, tok);
	}
	nb = n / B;
	usable = k && ns == lp->ns;
	memcpy(eff, tok, n * sizeof(*tok));
	if (usable)
		memcpy(eff, lp->tok, (size_t)(k < nb ? k : nb) * B * sizeof(*tok));
	/* the caller gives the blocks after what it knows is cached */
	lo = usable ? k : (uint32_t)tu_rng_below(&m->r, 2) * (nb / 2);
	for (uint32_t i = lo; i < nb; i++) {
		ids[i - lo] = m->next_id++;
		u64map_put(&m->adopted, ids[i - lo], 0);
	}
	m->n_from++;
	ret = pt_insert_from(m->t, &nss[ns], &lp->pin, tok, n, lo, ids, &res);
	if (usable && nb >= k &&
	    memcmp(tok + (k - 1) * B, lp->tok + (k - 1) * B, B * sizeof(*tok))) {
		/* the guard: nothing changed */
		MUST_CMP(ret, ==, -EINVAL);
		MUST(lp->pin.node == before.node && lp->pin.nblocks == before.nblocks);
		MUST_CMP(m->ngot, ==, 0);
		m->n_from_guard++;
		return;
	}
	if (usable && nb <= k) {
		MUST_CMP(ret, ==, 0);
		MUST_CMP(res.first, ==, nb);
		MUST_CMP(res.added, ==, 0);
		MUST(lp->pin.node == before.node && lp->pin.nblocks == before.nblocks);
		return;
	}
	m->n_from_other += !usable;
	len = ref_insert(m, ns, eff, n, lo, ids, ret, &res, path);
	m->n_from_added += res.added;
	pin_to(m, lp, ns, eff, path, len);
	if (!len)
		m->ps[lp - m->ps] = m->ps[--m->np];
	remember(m, eff, n);
}

static void op_hint(struct model *m)
{
	uint32_t tok[MAXTOK], n = gen_tokens(m, tok), ns = (uint32_t)tu_rng_below(&m->r, NNS);
	uint64_t when = m->now + tu_rng_below(&m->r, 4 * m->cfg.hint_ttl_ns);
	uint32_t f = 0;

	if (tu_rng_below(&m->r, 4) == 0 && m->now > m->cfg.hint_ttl_ns)
		when = m->now - tu_rng_below(&m->r, m->cfg.hint_ttl_ns); /* late */
	for (uint32_t i = 0; i < n / m->B; i++) {
		int e = ref_find(m, ns, tok, i);
		struct ref_blk *b;

		if (e < 0)
			break;
		b = &m->e[e];
		if (b->hinted && !(ttl_end(m, b) < m->now)) {
			b->soon = b->soon < when ? b->soon : when;
			b->last = b->last > when ? b->last : when;
		} else {
			b->soon = b->last = when;
		}
		b->hinted = true;
		f++;
	}
	MUST_CMP(pt_hint(m->t, &nss[ns], tok, n, when), ==, (int)(f * m->B));
}

static void op_evict(struct model *m)
{
	uint64_t need = tu_rng_below(&m->r, 3 * m->B) + 1;
	int64_t got = pt_evict(m->t, need, KVMM_EVICT_EXPLICIT);

	MUST_CMP(got, >=, 0);
	MUST_CMP(ref_evict(m, need, NULL, 0, KVMM_EVICT_EXPLICIT), ==, (uint64_t)got);
}

static void check_all(struct model *m)
{
	char why[256];
	struct pt_stats st;
	uint64_t pinned = 0;

	MUST_MSG(!pt_check(m->t, why, sizeof(why)), "invariant: %s", why);
	pt_stats(m->t, &st);
	MUST_CMP(st.blocks_cached, ==, ref_cached(m));
	for (size_t i = 0; i < m->ne; i++)
		pinned += m->e[i].live && m->e[i].pins;
	MUST_CMP(st.blocks_pinned, ==, pinned);
}

static void model_init(struct model *m, const struct pt_config *cfg)
{
	memset(m, 0, sizeof(*m));
	m->cfg = *cfg;
	m->B = cfg->tokens_per_block;
	m->cfg.put = on_put;
	m->cfg.put_arg = m;
	m->cfg.on_evict = on_evict;
	m->cfg.evict_arg = m;
	m->cfg.clock = fake_clock;
	m->cfg.clock_arg = m;
	if (!m->cfg.hint_ttl_ns)
		m->cfg.hint_ttl_ns = 1000;
	m->cfg.admit_slots = 1u << 22; /* never ages in this test */
	u64map_init(&m->by_id);
	u64map_init(&m->admit);
	u64map_init(&m->adopted);
	m->next_id = 1;
	m->now = 1;
	tu_rng_init(&m->r, tu_seed() ^ (cfg->tokens_per_block * 0x9e37ull) ^ cfg->policy ^
				   ((uint64_t)cfg->admit_hits << 20) ^ cfg->max_blocks);
	for (int s = 0; s < NSTEMS; s++)
		for (int i = 0; i < MAXTOK; i++)
			/* stems share their first tokens in pairs: deep splits */
			m->stems[s][i] = i < 2 * (int)m->B
						 ? (uint32_t)(s / 2) * 7 + 100 + (uint32_t)i
						 : (uint32_t)tu_rng_below(&m->r, 1000) + 100;
	MUST_CMP(pt_create(&m->cfg, &m->t), ==, 0);
}

static void model_fini(struct model *m)
{
	size_t pos = 0;
	uint64_t id, v;

	while (m->nh)
		release_one(m, m->nh - 1);
	while (m->np)
		unpin_one(m, m->np - 1);
	check_all(m);
	m->destroying = true;
	pt_destroy(m->t);
	/* every block the tree adopted was put exactly once */
	while (u64map_next(&m->adopted, &pos, &id, &v))
		MUST_MSG(v != 1, "block %llu adopted but never put", (unsigned long long)id);
	for (size_t i = 0; i < m->ne; i++)
		free(m->e[i].prefix);
	free(m->e);
	free(m->free_e);
	free(m->got);
	u64map_free(&m->by_id);
	u64map_free(&m->admit);
	u64map_free(&m->adopted);
}

static void run_model(const struct pt_config *cfg, uint64_t ops)
{
	struct model *m = malloc(sizeof(*m));

	MUST(NULL != m);
	model_init(m, cfg);
	for (uint64_t i = 0; i < ops; i++) {
		uint64_t op = tu_rng_below(&m->r, 100);

		if (op < 25)
			op_match(m);
		else if (op < 30)
			op_match_pin(m);
		else if (op < 40)
			op_release(m);
		else if (op < 75)
			op_insert(m);
		else if (op < 88)
			op_insert_from(m);
		else if (op < 92)
			op_hint(m);
		else if (op < 96)
			op_evict(m);
		else
			m->now += tu_rng_below(&m->r, m->cfg.hint_ttl_ns / 2);
		if (i % 101 == 0)
			check_all(m);
	}
	/* the run exercised what it claims to */
	MUST_CMP(m->n_partial, >, 0);
	MUST_CMP(m->n_from_added, >, 0);
	MUST_CMP(m->n_from_guard, >, 0);
	MUST_CMP(m->n_from_other, >, 0);
	MUST_CMP(m->n_evicted, >, 0);
	if (cfg->max_blocks)
		MUST_CMP(m->n_split_ops, >, 0);
	if (cfg->admit_hits > 1)
		MUST_CMP(m->n_admit_rej, >, 0);
	model_fini(m);
	free(m);
}

START_TEST(test_model_lru)
{
	struct pt_config cfg = {.tokens_per_block = 4, .policy = KVMM_EVICT_LRU, .max_blocks = 160};

	run_model(&cfg, tu_scaled(100000));
}
END_TEST

START_TEST(test_model_lfu_admit)
{
	struct pt_config cfg = {.tokens_per_block = 4,
				.policy = KVMM_EVICT_LFU,
				.admit_hits = 2,
				.max_blocks = 120};

	run_model(&cfg, tu_scaled(50000));
}
END_TEST

START_TEST(test_model_odd_blocks)
{
	/* B = 7: blocks straddle the tiny-alphabet tails; no cap */
	struct pt_config cfg = {.tokens_per_block = 7, .policy = KVMM_EVICT_LRU};

	run_model(&cfg, tu_scaled(30000));
}
END_TEST

START_TEST(test_model_one_token_blocks)
{
	/* B = 1: a plain token radix tree, never a partial block */
	struct pt_config cfg = {.tokens_per_block = 1, .policy = KVMM_EVICT_LFU, .max_blocks = 200};
	struct model *m = malloc(sizeof(*m));

	MUST(NULL != m);
	model_init(m, &cfg);
	for (uint64_t i = 0; i < tu_scaled(20000); i++) {
		uint64_t op = tu_rng_below(&m->r, 10);

		if (op < 4)
			op_match(m);
		else if (op < 5)
			op_release(m);
		else if (op < 9)
			op_insert(m);
		else
			op_evict(m);
	}
	MUST_CMP(m->n_partial, ==, 0);
	model_fini(m);
	free(m);
}
END_TEST

/* ---- directed cases ------------------------------------------------------ */

struct puts {
	uint64_t ids[64];
	int n;
};

static void count_put(void *arg, uint64_t id)
{
	struct puts *p = arg;

	if (p->n < 64)
		p->ids[p->n] = id;
	p->n++;
}

static struct pt_tree *mk(uint32_t B, struct puts *p)
{
	struct pt_config cfg = {.tokens_per_block = B, .put = count_put, .put_arg = p};
	struct pt_tree *t;

	ck_assert_int_eq(pt_create(&cfg, &t), 0);
	return t;
}

START_TEST(test_bad_args)
{
	struct puts p = {0};
	struct pt_config cfg = {.tokens_per_block = 0, .put = count_put};
	struct pt_tree *t;
	struct pt_handle *h;
	uint32_t tok[8] = {1, 2, 3, 4, 5, 6, 7, 8}, m;
	uint64_t ids[2] = {1, 2};
	struct kvmm_ns ns = {0};

	ck_assert_int_eq(pt_create(&cfg, &t), -EINVAL);
	cfg.tokens_per_block = 4;
	cfg.put = NULL;
	ck_assert_int_eq(pt_create(&cfg, &t), -EINVAL);
	cfg.put = count_put;
	cfg.policy = (enum kvmm_evict_policy)9;
	ck_assert_int_eq(pt_create(&cfg, &t), -EINVAL);
	t = mk(4, &p);
	ck_assert_int_eq(pt_match(t, NULL, tok, 8, &h, &m), -EINVAL);
	ck_assert_int_eq(pt_match(t, &ns, NULL, 8, &h, &m), -EINVAL);
	ck_assert_int_eq(pt_match(t, &ns, tok, 8, &h, NULL), -EINVAL);
	ck_assert_int_eq(pt_insert(t, &ns, tok, 8, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pt_insert(t, NULL, tok, 8, ids, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pt_hint(t, &ns, NULL, 3, 0), -EINVAL);
	ck_assert_int_eq(pt_evict(t, 1, KVMM_EVICT__COUNT), -EINVAL);
	/* empty runs are fine and cache nothing */
	ck_assert_int_eq(pt_insert(t, &ns, tok, 3, NULL, NULL, NULL), 0);
	ck_assert_int_eq(pt_match(t, &ns, tok, 0, &h, &m), 0);
	ck_assert_ptr_null(h);
	pt_release(t, NULL);
	pt_destroy(t);
	pt_destroy(NULL);
	ck_assert_int_eq(p.n, 0);
}
END_TEST

START_TEST(test_namespaces_isolated)
{
	struct puts p = {0};
	struct pt_tree *t = mk(2, &p);
	uint32_t tok[6] = {1, 2, 3, 4, 5, 6}, m;
	uint64_t ids[3] = {10, 11, 12};
	struct kvmm_ns a = {.model_id = 1}, b = {.model_id = 1, .adapter_id = 1};
	struct pt_handle *h;
	char why[128];

	ck_assert_int_eq(pt_insert(t, &a, tok, 6, ids, NULL, NULL), 3);
	ck_assert_int_eq(pt_match(t, &b, tok, 6, &h, &m), 0);
	ck_assert_uint_eq(m, 0);
	ck_assert_ptr_null(h);
	ck_assert_int_eq(pt_match(t, &a, tok, 6, &h, &m), 0);
	ck_assert_uint_eq(m, 6);
	ck_assert_uint_eq(h->blocks[2], 12);
	/* pinned: nothing can go */
	ck_assert_int_eq(pt_evict(t, 10, KVMM_EVICT_EXPLICIT), 0);
	pt_release(t, h);
	ck_assert_int_eq(pt_evict(t, 10, KVMM_EVICT_EXPLICIT), 3);
	ck_assert_int_eq(p.n, 3);
	/* tail first */
	ck_assert_uint_eq(p.ids[0], 12);
	ck_assert_uint_eq(p.ids[2], 10);
	ck_assert_msg(!pt_check(t, why, sizeof(why)), "%s", why);
	pt_destroy(t);
}
END_TEST

START_TEST(test_partial_block_and_split)
{
	struct puts p = {0};
	struct pt_tree *t = mk(4, &p);
	uint32_t a[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	uint32_t q[9] = {1, 2, 3, 4, 5, 6, 99, 99, 99}, m;
	uint64_t ids[3] = {1, 2, 3};
	struct kvmm_ns ns = {0};
	struct pt_handle *h, *d;
	struct pt_stats st;
	char why[128];

	ck_assert_int_eq(pt_insert(t, &ns, a, 12, ids, NULL, NULL), 3);
	ck_assert_int_eq(pt_match(t, &ns, q, 9, &h, &m), 0);
	/* block 0 in full, then 2 tokens of block 1: that block is partial */
	ck_assert_uint_eq(m, 6);
	ck_assert_uint_eq(h->nblocks, 2);
	ck_assert_uint_eq(h->partial, 2);
	ck_assert_uint_eq(h->blocks[1], 2);
	pt_stats(t, &st);
	ck_assert_uint_eq(st.splits, 1); /* the node ends where the match did */
	ck_assert_uint_eq(st.blocks_pinned, 2);
	/* a second pin of the full block only (a sequence that copied the
	 * partial one) */
	ck_assert_int_eq(pt_handle_dup(t, h, 3, &d), -EINVAL);
	ck_assert_int_eq(pt_handle_dup(t, h, 1, &d), 0);
	ck_assert_uint_eq(d->nblocks, 1);
	ck_assert_uint_eq(d->matched, 4);
	ck_assert_uint_eq(d->partial, 0);
	ck_assert_uint_eq(d->blocks[0], 1);
	pt_release(t, h);
	/* the unpinned tail blocks go, the partial one included */
	ck_assert_int_eq(pt_evict(t, 3, KVMM_EVICT_EXPLICIT), 2);
	ck_assert_uint_eq(p.ids[0], 3);
	ck_assert_uint_eq(p.ids[1], 2);
	pt_release(t, d);
	ck_assert_msg(!pt_check(t, why, sizeof(why)), "%s", why);
	pt_stats(t, &st);
	ck_assert_uint_eq(st.blocks_pinned, 0);
	pt_destroy(t);
	ck_assert_int_eq(p.n, 3);
}
END_TEST

static uint64_t clock_at_1s(void *arg)
{
	return 1000000000ull;
}

START_TEST(test_lru_vs_hint)
{
	struct puts p = {0};
	struct pt_config cfg = {
		.tokens_per_block = 1, .put = count_put, .put_arg = &p, .clock = clock_at_1s};
	struct pt_tree *t;
	struct kvmm_ns ns = {0};
	uint32_t x[1] = {1}, y[1] = {2}, z[1] = {3}, m;
	uint64_t i1 = 1, i2 = 2, i3 = 3;
	struct pt_handle *h;

	ck_assert_int_eq(pt_create(&cfg, &t), 0);
	pt_insert(t, &ns, x, 1, &i1, NULL, NULL);
	pt_insert(t, &ns, y, 1, &i2, NULL, NULL);
	pt_insert(t, &ns, z, 1, &i3, NULL, NULL);
	/* x is used again: y is now the least recently used */
	ck_assert_int_eq(pt_match(t, &ns, x, 1, NULL, &m), 0);
	ck_assert_uint_eq(m, 1);
	/* but y is hinted: z goes first, then x, then y */
	ck_assert_int_eq(pt_hint(t, &ns, y, 1, 0), 1);
	ck_assert_int_eq(pt_match(t, &ns, y, 1, &h, &m), 0);
	pt_release(t, h);
	ck_assert_int_eq(pt_evict(t, 3, KVMM_EVICT_PRESSURE), 3);
	ck_assert_uint_eq(p.ids[0], 3);
	ck_assert_uint_eq(p.ids[1], 1);
	ck_assert_uint_eq(p.ids[2], 2);
	pt_destroy(t);
}
END_TEST

START_TEST(test_admission_aging)
{
	struct puts p = {0};
	struct pt_config cfg = {.tokens_per_block = 1,
				.admit_hits = 2,
				.admit_slots = 8,
				.put = count_put,
				.put_arg = &p};
	struct pt_tree *t;
	struct kvmm_ns ns = {0};
	uint32_t tok[1];
	uint64_t id = 1;
	struct pt_insert_result r;
	struct pt_stats st;

	ck_assert_int_eq(pt_create(&cfg, &t), 0);
	tok[0] = 5;
	ck_assert_int_eq(pt_insert(t, &ns, tok, 1, &id, &r, NULL), 0);
	ck_assert_uint_eq(r.rejected_admit, 1);
	ck_assert_int_eq(pt_insert(t, &ns, tok, 1, &id, &r, NULL), 1);
	/* many one-off prefixes: the table ages instead of growing */
	for (uint32_t i = 0; i < 1000; i++) {
		tok[0] = 100 + i;
		ck_assert_int_eq(pt_insert(t, &ns, tok, 1, &id, NULL, NULL), 0);
	}
	pt_stats(t, &st);
	ck_assert_uint_eq(st.admission_rejects, 1001);
	ck_assert_uint_eq(st.blocks_cached, 1);
	pt_destroy(t);
	ck_assert_int_eq(p.n, 1);
}
END_TEST

static void late_hook(void *arg, const struct pt_victim *v)
{
	int *n = arg;

	*n += (int)v->nblocks;
}

START_TEST(test_hook_install_and_deep_chain)
{
	struct puts p = {0};
	struct pt_tree *t = mk(2, &p);
	struct kvmm_ns ns = {0};
	enum { N = 4000 };
	uint32_t *tok = malloc(N * sizeof(*tok)), m;
	uint64_t *ids = malloc(N / 2 * sizeof(*ids));
	int hooked = 0;
	char why[128];

	/* a very deep tree (one node per turn) is destroyed without
	 * recursion and evicted leaf first */
	for (uint32_t i = 0; i < N; i++)
		tok[i] = i;
	for (uint32_t i = 0; i < N / 2; i++)
		ids[i] = i + 1;
	for (uint32_t turn = 1; turn <= 100; turn++)
		ck_assert_int_ge(pt_insert(t, &ns, tok, turn * (N / 100), ids, NULL, NULL), 0);
	ck_assert_int_eq(pt_match(t, &ns, tok, N, NULL, &m), 0);
	ck_assert_uint_eq(m, N);
	pt_set_evict_hook(t, late_hook, &hooked);
	ck_assert_int_eq(pt_evict(t, 30, KVMM_EVICT_EXPLICIT), 30);
	ck_assert_int_eq(hooked, 30);
	ck_assert_uint_eq(p.ids[0], N / 2);
	ck_assert_msg(!pt_check(t, why, sizeof(why)), "%s", why);
	pt_destroy(t);
	ck_assert_int_eq(p.n, N / 2);
	free(tok);
	free(ids);
}
END_TEST

/* An insert continuing a pin after the tree changed under it: the pinned
 * path split above and at its end, siblings added, everything else
 * evicted.  It adds only what follows the path, keys it by the path, and
 * refuses tokens whose last pinned block is not the path's. */
START_TEST(test_insert_from_after_changes)
{
	struct puts p = {0};
	struct pt_tree *t = mk(2, &p);
	struct kvmm_ns ns = {0}, other = {.model_id = 3};
	uint32_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, x[8] = {1, 2, 3, 4, 50, 51, 52, 53};
	uint32_t q[12] = {1, 2, 3, 4, 5, 6, 60, 61, 62, 63, 64, 65}, m;
	uint64_t ids[4] = {1, 2, 3, 4}, xid[4] = {5, 6, 20, 21}, nid[3] = {10, 11, 12},
		 wid[1] = {30};
	struct pt_insert_result r;
	struct pt_pin pin = {0}, pin2 = {0};
	struct pt_handle *h;
	struct pt_stats st;
	char why[128];

	ck_assert_int_eq(pt_insert(t, &ns, a, 8, ids, NULL, NULL), 4);
	/* whole blocks only: 7 tokens match 3 blocks */
	ck_assert_int_eq(pt_match_pin(t, &ns, a, 7, &pin, &m), 0);
	ck_assert_uint_eq(m, 6);
	ck_assert_uint_eq(pin.nblocks, 3);
	pt_stats(t, &st);
	ck_assert_uint_eq(st.blocks_pinned, 3);
	/* the tree changes: a split above the pin's end, a sibling after
	 * block 2, and everything unpinned evicted (A's block 4, X's) */
	ck_assert_int_eq(pt_match(t, &ns, a, 2, NULL, &m), 0);
	ck_assert_int_eq(pt_insert(t, &ns, x, 8, xid, &r, NULL), 2);
	ck_assert_uint_eq(r.first, 2);
	ck_assert_int_eq(pt_evict(t, 100, KVMM_EVICT_EXPLICIT), 3);
	ck_assert_msg(!pt_check(t, why, sizeof(why)), "%s", why);
	/* within the path: nothing to do, the pin stays */
	ck_assert_int_eq(pt_insert_from(t, &ns, &pin, q, 5, 3, NULL, &r), 0);
	ck_assert_uint_eq(r.first, 2);
	ck_assert_uint_eq(pin.nblocks, 3);
	/* the path's last block differs: refused, nothing changed */
	q[5] = 99;
	ck_assert_int_eq(pt_insert_from(t, &ns, &pin, q, 10, 3, nid, &r), -EINVAL);
	ck_assert_int_eq(pt_probe_from(t, &ns, &pin, q, 10), -EINVAL);
	q[5] = 6;
	ck_assert_uint_eq(pin.nblocks, 3);
	/* continued: blocks 3 and 4 adopted, the pin moves to their end */
	ck_assert_int_eq(pt_probe_from(t, &ns, &pin, q, 10), 3);
	ck_assert_int_eq(pt_insert_from(t, &ns, &pin, q, 10, 3, nid, &r), 2);
	ck_assert_uint_eq(r.first, 3);
	ck_assert_uint_eq(r.added, 2);
	ck_assert_uint_eq(pin.nblocks, 5);
	pt_stats(t, &st);
	ck_assert_uint_eq(st.blocks_pinned, 5);
	ck_assert_int_eq(pt_match(t, &ns, q, 12, &h, &m), 0);
	ck_assert_uint_eq(m, 10);
	ck_assert_uint_eq(h->blocks[2], 3);
	ck_assert_uint_eq(h->blocks[4], 11);
	pt_release(t, h);
	ck_assert_msg(!pt_check(t, why, sizeof(why)), "%s", why);
	/* tokens before the last pinned block are not the key: the new
	 * block goes under the path, where the path's tokens find it */
	q[0] = 77;
	ck_assert_int_eq(pt_insert_from(t, &ns, &pin, q, 12, 5, nid + 2, &r), 1);
	ck_assert_uint_eq(pin.nblocks, 6);
	ck_assert_int_eq(pt_match(t, &ns, q, 12, NULL, &m), 0);
	ck_assert_uint_eq(m, 0);
	q[0] = 1;
	ck_assert_int_eq(pt_match(t, &ns, q, 12, NULL, &m), 0);
	ck_assert_uint_eq(m, 12);
	/* another namespace: a walk from its root, the pin follows */
	ck_assert_int_eq(pt_insert_from(t, &other, &pin, a, 2, 0, wid, &r), 1);
	ck_assert_uint_eq(pin.nblocks, 1);
	pt_stats(t, &st);
	ck_assert_uint_eq(st.blocks_pinned, 1);
	ck_assert_uint_eq(st.namespaces, 2);
	/* an empty pin is a walk from the root too */
	ck_assert_int_eq(pt_insert_from(t, &ns, &pin2, q, 12, 6, NULL, &r), 0);
	ck_assert_uint_eq(r.first, 6);
	ck_assert_uint_eq(pin2.nblocks, 6);
	ck_assert_int_eq(pt_insert_from(t, &ns, NULL, q, 12, 0, NULL, &r), -EINVAL);
	pt_unpin(t, &pin);
	pt_unpin(t, &pin2);
	pt_unpin(t, &pin2); /* empty: a no-op */
	pt_stats(t, &st);
	ck_assert_uint_eq(st.blocks_pinned, 0);
	ck_assert_msg(!pt_check(t, why, sizeof(why)), "%s", why);
	pt_destroy(t);
	ck_assert_int_eq(p.n, 4 + 2 + 3 + 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("prefix_tree");
	TCase *tc = tcase_create("model");
	TCase *td = tcase_create("directed");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_model_lru);
	tcase_add_test(tc, test_model_lfu_admit);
	tcase_add_test(tc, test_model_odd_blocks);
	tcase_add_test(tc, test_model_one_token_blocks);
	suite_add_tcase(s, tc);
	tcase_set_timeout(td, 60);
	tcase_add_test(td, test_bad_args);
	tcase_add_test(td, test_namespaces_isolated);
	tcase_add_test(td, test_partial_block_and_split);
	tcase_add_test(td, test_lru_vs_hint);
	tcase_add_test(td, test_admission_aging);
	tcase_add_test(td, test_hook_install_and_deep_chain);
	tcase_add_test(td, test_insert_from_after_changes);
	suite_add_tcase(s, td);
	return tu_run(s);
}
