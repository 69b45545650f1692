// SPDX-License-Identifier: MIT
/*
 * prefix.c - the public prefix-cache API (kvmm_prefix_*, attach): the
 * radix tree over the cache's blocks, joined to the block sharing of
 * share.c.
 *
 * References: the tree holds one reference (xref) on each cached block and
 * drops it through kvmm_blk_put when the block is evicted or the cache is
 * destroyed.  A sequence that aliases cached blocks maps them, which keeps
 * them alive on its own whatever the tree does; on top of that the
 * sequence pins the tree path it maps (and the path of the blocks it
 * published), so eviction never picks blocks a running sequence uses: it
 * could free no memory and would only lose the entry.  A pin is dropped
 * once its sequence has closed (its slot's generation moved on), checked
 * before every eviction, so a closed sequence never protects anything.
 *
 * Lock order: p->lock is a leaf; it is never held across a call into the
 * cache or into the tree (whose puts take the cache lock).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "prefix.h"

static const struct kvmm_ns default_ns;

static void put_block(void *arg, uint64_t id)
{
	kvmm_blk_t b = (kvmm_blk_t)id;

	kvmm_blk_put(arg, &b, 1);
}

/* ---- sequence pins -------------------------------------------------------- */

/* Drop the pins of sequences that have closed since they pinned. */
static void pins_sweep(struct kvmm_prefix *p)
{
	struct kvmm_cache *c = p->c;
	uint32_t n = c->g.max_seqs, nstale = 0;
	struct pt_handle **stale;
	uint64_t *gen;

	gen = malloc(n * sizeof(*gen));
	stale = malloc(n * sizeof(*stale));
	if (!gen || !stale)
		goto out; /* pins stay until a later sweep: only less eviction */
	kvmm_lock(c);
	for (uint32_t s = 0; s < n; s++)
		gen[s] = c->slots[s].state == SLOT_ACTIVE ? c->slots[s].gen : 0;
	kvmm_unlock(c);
	pthread_mutex_lock(&p->lock);
	for (uint32_t s = 0; s < n; s++) {
		if (p->pins[s].h && p->pins[s].gen != gen[s]) {
			stale[nstale++] = p->pins[s].h;
			p->pins[s].h = NULL;
		}
	}
	pthread_mutex_unlock(&p->lock);
	for (uint32_t i = 0; i < nstale; i++)
		pt_release(p->tree, stale[i]);
out:
	free(gen);
	free(stale);
}

/* Make h (may be NULL: keep the old one) seq's pin; releases what it
 * replaces.  h is consumed. */
static void pin_set(struct kvmm_prefix *p, uint32_t seq, struct pt_handle *h)
{
	struct kvmm_cache *c = p->c;
	struct pt_handle *old = NULL;
	uint64_t gen;

	kvmm_lock(c);
	gen = c->slots[seq].state == SLOT_ACTIVE ? c->slots[seq].gen : 0;
	kvmm_unlock(c);
	pthread_mutex_lock(&p->lock);
	if (p->pins[seq].h && (h || p->pins[seq].gen != gen)) {
		old = p->pins[seq].h;
		p->pins[seq].h = NULL;
	}
	if (h && gen) {
		p->pins[seq].h = h;
		p->pins[seq].gen = gen;
		h = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	pt_release(p->tree, old);
	pt_release(p->tree, h); /* the sequence closed meanwhile */
}

/* ---- enable / destroy ----------------------------------------------------- */

static uint32_t reclaim(void *arg, struct kvmm_cache *c, uint32_t nblocks)
{
	struct kvmm_prefix *p = arg;
	int64_t got;

	pins_sweep(p);
	got = pt_evict(p->tree, nblocks, KVMM_EVICT_PRESSURE);
	return got > 0 ? (uint32_t)got : 0;
}

static void prefix_fini(struct kvmm_cache *c)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);

	if (!p)
		return;
	kvmm_cache_set_reclaimer(c, NULL, NULL);
	for (uint32_t s = 0; s < c->g.max_seqs; s++)
		pt_release(p->tree, p->pins[s].h);
	/* Handles the user never released die with the cache. */
	while (p->handles) {
		struct kvmm_prefix_handle *h = p->handles;

		p->handles = h->next;
		pt_release(p->tree, h->h);
		free(h);
	}
	pt_destroy(p->tree);
	pthread_mutex_destroy(&p->lock);
	free(p->pins);
	free(p);
	c->prefix = NULL;
	c->prefix_fini = NULL;
}

int kvmm_prefix_enable(struct kvmm_cache *c, const struct kvmm_prefix_config *cfg)
{
	struct kvmm_prefix_config def = {0};
	struct pt_config tc = {0};
	struct kvmm_prefix *p;
	int ret;

	if (!c)
		return -EINVAL;
	if (!cfg)
		cfg = &def;
	if ((cfg->policy != KVMM_EVICT_LRU && cfg->policy != KVMM_EVICT_LFU) ||
	    (unsigned)cfg->attach > KVMM_ATTACH_COPY || cfg->flags)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->c = c;
	p->cfg = *cfg;
	p->pins = calloc(c->g.max_seqs, sizeof(*p->pins));
	tc.tokens_per_block = c->g.tpb;
	tc.policy = cfg->policy;
	tc.admit_hits = cfg->admit_hits;
	tc.max_blocks = cfg->max_bytes / c->g.block_bytes;
	if (cfg->max_bytes && !tc.max_blocks) {
		ret = -EINVAL; /* a cap below one block */
		goto fail;
	}
	tc.hint_ttl_ns = cfg->hint_ttl_ns;
	tc.clock = cfg->clock;
	tc.clock_arg = cfg->clock_arg;
	tc.put = put_block;
	tc.put_arg = c;
	ret = p->pins ? pt_create(&tc, &p->tree) : -ENOMEM;
	if (ret)
		goto fail;
	pthread_mutex_init(&p->lock, NULL);
	kvmm_lock(c);
	if (c->prefix) {
		kvmm_unlock(c);
		pthread_mutex_destroy(&p->lock);
		pt_destroy(p->tree);
		ret = -EEXIST;
		goto fail;
	}
	c->prefix = p;
	c->prefix_fini = prefix_fini;
	kvmm_unlock(c);
	kvmm_attach_costs_measure(c, &p->costs);
	kvmm_cache_set_reclaimer(c, reclaim, p);
	return 0;
fail:
	free(p->pins);
	free(p);
	return ret;
}

/* ---- match / release ------------------------------------------------------ */

int kvmm_prefix_match(struct kvmm_cache *c, const struct kvmm_ns *ns, const uint32_t *tokens,
		      uint32_t n, struct kvmm_prefix_handle **h, uint32_t *matched)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);
	struct kvmm_prefix_handle *ph;
	struct pt_handle *th;
	int ret;

	if (!p || !h || !matched || (n && !tokens))
		return -EINVAL;
	*h = NULL;
	ph = malloc(sizeof(*ph));
	if (!ph)
		return -ENOMEM;
	ret = pt_match(p->tree, ns ? ns : &default_ns, tokens, n, &th, matched);
	if (ret || !th) {
		free(ph);
		return ret;
	}
	ph->p = p;
	ph->h = th;
	ph->prev = NULL;
	pthread_mutex_lock(&p->lock);
	ph->next = p->handles;
	if (p->handles)
		p->handles->prev = ph;
	p->handles = ph;
	pthread_mutex_unlock(&p->lock);
	*h = ph;
	return 0;
}

void kvmm_prefix_release(struct kvmm_cache *c, struct kvmm_prefix_handle *h)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);

	if (!p || !h || h->p != p)
		return;
	pthread_mutex_lock(&p->lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		p->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&p->lock);
	pt_release(p->tree, h->h);
	free(h);
}

/* ---- attach ----------------------------------------------------------------- */

/*
 * Undo an alias attach whose later steps failed (length still 0): unmap
 * seq's read-only entries [0, n), with the block-table primitives of
 * cache_internal.h, so that the sequence is left as it was.
 */
static int unalias(struct kvmm_cache *c, uint32_t seq, uint32_t n)
{
	struct kvmm_slot *sl = &c->slots[seq];
	struct kvmm_op op = {0};
	int ret = 0;

	kvmm_lock(c);
	for (uint32_t b = 0; b < n && !ret; b++) {
		struct kvmm_bte *e = kvmm_bte(c, seq, b);

		while (e->flags & BT_BUSY)
			pthread_cond_wait(&c->done_cv, &c->lock);
		if ((e->flags & (BT_MAPPED | BT_RO)) != (BT_MAPPED | BT_RO))
			continue;
		kvmm_bte_unmapping(c, seq, b);
		ret = kvmm_bte_unmap(c, seq, b, &op);
	}
	/* Nothing shared is left below the length (0): no rollback floor. */
	sl->immut_end = 0;
	for (uint32_t b = sl->hi; b-- > 0;)
		if (kvmm_bte(c, seq, b)->flags & BT_SHARED) {
			sl->immut_end = b + 1;
			break;
		}
	kvmm_unlock(c);
	return ret;
}

static int set_len(struct kvmm_cache *c, uint32_t seq, uint32_t len)
{
	struct kvmm_step_entry e = {.seq = seq, .len = len};

	return kvmm_step(c, &e, 1);
}

int kvmm_seq_attach_prefix(struct kvmm_cache *c, uint32_t seq, struct kvmm_prefix_handle *h,
			   enum kvmm_attach_mode mode)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);
	const struct pt_handle *th;
	uint32_t nfull, own;
	kvmm_blk_t *blks;
	int64_t len;
	int ret = 0;

	if (!p || !h || h->p != p || (unsigned)mode > KVMM_ATTACH_COPY)
		return -EINVAL;
	th = h->h;
	len = kvmm_seq_len(c, seq);
	if (len < 0)
		return (int)len;
	if (len)
		return -EBUSY; /* the prefix must be the sequence's start */
	nfull = th->nblocks - (th->partial ? 1 : 0);
	if (mode == KVMM_ATTACH_AUTO)
		mode = p->cfg.attach;
	if (mode == KVMM_ATTACH_AUTO) {
		own = nfull ? (uint32_t)kvmm_seq_own_mapped(c, seq, 0, nfull) : 0;
		mode = kvmm_attach_choose(c, &p->costs, nfull, own);
		atomic_fetch_add(&p->attach_auto, 1);
	}
	blks = malloc(th->nblocks * sizeof(*blks));
	if (!blks)
		return -ENOMEM;
	for (uint32_t i = 0; i < th->nblocks; i++)
		blks[i] = (kvmm_blk_t)th->blocks[i];
	if (mode == KVMM_ATTACH_ALIAS) {
		ret = kvmm_seq_alias(c, seq, 0, nfull, blks);
	} else {
		for (uint32_t i = 0; i < nfull && !ret; i++)
			ret = kvmm_seq_copy_in(c, seq, i, blks[i]);
	}
	/* The partial last block is the sequence's to write: always a copy. */
	if (!ret && th->partial)
		ret = kvmm_seq_copy_in(c, seq, nfull, blks[nfull]);
	if (!ret)
		ret = set_len(c, seq, th->matched);
	free(blks);
	if (ret) {
		/* No half-attached prefix: aliases would make the sequence's
		 * first blocks unwritable.  (Copies into its own blocks are
		 * harmless: the length stays 0.) */
		if (mode == KVMM_ATTACH_ALIAS && nfull)
			unalias(c, seq, nfull);
		return ret;
	}
	if (mode == KVMM_ATTACH_ALIAS && nfull) {
		struct pt_handle *pin;

		atomic_fetch_add(&p->attach_alias, 1);
		/* the partial block was copied: the sequence pins what it maps */
		if (!pt_handle_dup(p->tree, th, nfull, &pin))
			pin_set(p, seq, pin);
	} else {
		atomic_fetch_add(&p->attach_copy, 1);
	}
	return 0;
}

/* ---- the tier layer's hooks --------------------------------------------- */

void kvmm_prefix_set_tier_hooks(struct kvmm_cache *c, const struct kvmm_prefix_tier_hooks *h,
				void *arg)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->hooks = h;
	p->hooks_arg = arg;
	pthread_mutex_unlock(&p->lock);
}

static const struct kvmm_prefix_tier_hooks *tier_hooks(struct kvmm_prefix *p, void **arg)
{
	const struct kvmm_prefix_tier_hooks *h;

	pthread_mutex_lock(&p->lock);
	h = p->hooks;
	*arg = p->hooks_arg;
	pthread_mutex_unlock(&p->lock);
	return h;
}

/* ---- insert ----------------------------------------------------------------- */

int kvmm_prefix_insert(struct kvmm_cache *c, uint32_t seq, const struct kvmm_ns *ns,
		       const uint32_t *tokens, uint32_t n)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);
	struct pt_insert_result res = {0};
	struct pt_handle *pin = NULL;
	uint32_t nb, lo;
	kvmm_blk_t *pub = NULL;
	uint64_t *ids = NULL;
	int64_t len;
	int ret = 0;

	if (!p || (n && !tokens))
		return -EINVAL;
	if (!ns)
		ns = &default_ns;
	len = kvmm_seq_len(c, seq);
	if (len < 0)
		return (int)len;
	if (n > len)
		return -EINVAL;
	nb = n / c->g.tpb;
	/* A capped insert may evict: closed sequences must not protect. */
	if (p->cfg.max_bytes)
		pins_sweep(p);
	/* Publish only what the tree lacks: a published block is immutable
	 * for the sequence from then on. */
	lo = pt_probe(p->tree, ns, tokens, n);
	if (lo >= nb)
		return 0;
	pub = malloc(nb * sizeof(*pub));
	ids = malloc(nb * sizeof(*ids));
	if (!pub || !ids) {
		ret = -ENOMEM;
		goto out;
	}
	ret = kvmm_seq_publish(c, seq, lo, nb - lo, pub + lo);
	if (ret)
		goto out;
	for (int tries = 0;; tries++) {
		for (uint32_t i = 0; i < nb; i++)
			ids[i] = i >= lo ? pub[i] : PT_NO_BLOCK;
		ret = pt_insert(p->tree, ns, tokens, n, ids, &res, &pin);
		if (ret < 0 || res.added || res.first >= lo || tries == 3)
			break;
		/* Evicted between the probe and the insert: offer the blocks
		 * now missing in front of ours too. */
		pt_release(p->tree, pin);
		pin = NULL;
		if (kvmm_seq_publish(c, seq, res.first, lo - res.first, pub + res.first))
			break;
		lo = res.first;
	}
	/* Give back what the tree did not adopt (cached meanwhile, not
	 * admitted, no room). */
	for (uint32_t i = lo; i < nb; i++)
		if (ret < 0 || i < res.first || i >= res.first + res.added)
			kvmm_blk_put(c, pub + i, 1);
	if (ret >= 0) {
		const struct kvmm_prefix_tier_hooks *hk;
		void *harg;

		pin_set(p, seq, pin);
		hk = res.added ? tier_hooks(p, &harg) : NULL;
		if (hk && hk->inserted)
			hk->inserted(harg, ns, tokens, res.first, res.added, ids + res.first);
		ret = (int)(res.added * c->g.tpb);
	}
out:
	free(pub);
	free(ids);
	return ret;
}

/* ---- hints, eviction, stats ------------------------------------------------- */

int kvmm_prefix_hint(struct kvmm_cache *c, const struct kvmm_ns *ns, const uint32_t *tokens,
		     uint32_t n, uint64_t when_ns)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);
	const struct kvmm_prefix_tier_hooks *hk;
	void *harg;
	int ret;

	if (!p)
		return -EINVAL;
	ret = pt_hint(p->tree, ns ? ns : &default_ns, tokens, n, when_ns);
	hk = ret >= 0 ? tier_hooks(p, &harg) : NULL;
	if (hk && hk->hinted)
		hk->hinted(harg, ns ? ns : &default_ns, tokens, n);
	return ret;
}

int kvmm_prefix_evict(struct kvmm_cache *c, uint32_t nblocks)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);
	int64_t got;

	if (!p)
		return -EINVAL;
	pins_sweep(p);
	got = pt_evict(p->tree, nblocks, KVMM_EVICT_EXPLICIT);
	return (int)got;
}

/* Cached blocks mapped by active sequences, and how many mappings. */
static void sharing(struct kvmm_cache *c, uint64_t *blocks, uint64_t *refs)
{
	uint8_t *seen;

	*blocks = *refs = 0;
	kvmm_lock(c);
	seen = calloc(c->next_id ? c->next_id : 1, 1);
	for (uint32_t s = 0; seen && s < c->g.max_seqs; s++) {
		const struct kvmm_slot *sl = &c->slots[s];

		if (sl->state != SLOT_ACTIVE)
			continue;
		for (uint32_t b = 0; b < sl->hi; b++) {
			const struct kvmm_bte *e = kvmm_bte(c, s, b);

			if (!(e->flags & BT_MAPPED) || !kvmm_blk(c, e->blk)->xrefs)
				continue;
			(*refs)++;
			if (!seen[e->blk]++)
				(*blocks)++;
		}
	}
	kvmm_unlock(c);
	free(seen);
}

int kvmm_prefix_stats(const struct kvmm_cache *cc, struct kvmm_prefix_stats *st)
{
	struct kvmm_cache *c = (struct kvmm_cache *)cc;
	struct kvmm_prefix *p = kvmm_prefix_of(c);
	struct pt_stats ts;

	if (!p || !st)
		return -EINVAL;
	pins_sweep(p);
	pt_stats(p->tree, &ts);
	memset(st, 0, sizeof(*st));
	st->lookups = ts.lookups;
	st->lookup_tokens = ts.lookup_tokens;
	st->hit_tokens = ts.hit_tokens;
	st->inserts = ts.inserts;
	st->inserted_tokens = ts.inserted_blocks * c->g.tpb;
	st->nodes = ts.nodes;
	st->blocks_cached = ts.blocks_cached;
	st->blocks_pinned = ts.blocks_pinned;
	sharing(c, &st->blocks_shared, &st->sharing_refs);
	memcpy(st->evictions, ts.evictions, sizeof(st->evictions));
	st->attach_alias = atomic_load(&p->attach_alias);
	st->attach_copy = atomic_load(&p->attach_copy);
	st->admission_rejects = ts.admission_rejects;
	st->cap_rejects = ts.cap_rejects;
	st->hints = ts.hints;
	st->blocks_hinted = ts.blocks_hinted;
	st->namespaces = ts.namespaces;
	st->attach_auto = atomic_load(&p->attach_auto);
	st->cost_map_ns = p->costs.map_ns;
	st->cost_unmap_ns = p->costs.unmap_ns;
	st->cost_copy_ns = p->costs.copy_ns;
	return 0;
}
