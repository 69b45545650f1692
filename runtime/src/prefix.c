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
 * could free no memory and would only lose the entry.  The same pin is
 * where the sequence's next insert continues (struct kvmm_seq_pin).  A
 * pin is dropped when its sequence closes (the cache calls
 * prefix_seq_closed), so a closed sequence never protects anything.
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

/* seq's length and generation; -EINVAL unless it is active. */
static int seq_state(struct kvmm_cache *c, uint32_t seq, uint32_t *len, uint64_t *gen)
{
	int ret;

	kvmm_lock(c);
	ret = kvmm_seq_check(c, seq);
	if (!ret) {
		*len = c->slots[seq].len;
		*gen = c->slots[seq].gen;
	}
	kvmm_unlock(c);
	return ret;
}

/* Take seq's pin out of the table while an insert moves it (false: it
 * has none).  One made for an earlier occupant of the slot is dropped. */
static bool pin_take(struct kvmm_prefix *p, uint32_t seq, uint64_t gen, struct kvmm_seq_pin *out)
{
	struct kvmm_seq_pin *sp = &p->pins[seq];
	struct pt_pin stale = {0};
	bool got = false;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->lock);
	if (sp->pin.node && sp->gen == gen) {
		*out = *sp;
		got = true;
	} else {
		stale = sp->pin;
	}
	memset(sp, 0, sizeof(*sp));
	pthread_mutex_unlock(&p->lock);
	pt_unpin(p->tree, &stale);
	return got;
}

/* Make *pin (consumed; may be empty) seq's pin for generation gen,
 * dropping what it replaces. */
static void pin_put(struct kvmm_prefix *p, uint32_t seq, uint64_t gen, struct pt_pin *pin,
		    bool weak)
{
	struct kvmm_seq_pin *sp = &p->pins[seq];
	struct pt_pin old;

	pthread_mutex_lock(&p->lock);
	old = sp->pin;
	sp->pin = *pin;
	sp->gen = gen;
	sp->weak = pin->node && weak;
	pthread_mutex_unlock(&p->lock);
	memset(pin, 0, sizeof(*pin));
	pt_unpin(p->tree, &old);
}

/* The cache's hook: sequence seq of generation gen has closed. */
static void seq_closed(struct kvmm_cache *c, uint32_t seq, uint64_t gen)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);
	struct kvmm_seq_pin *sp;
	struct pt_pin old = {0};

	if (!p || seq >= c->g.max_seqs)
		return;
	sp = &p->pins[seq];
	pthread_mutex_lock(&p->lock);
	/* a later occupant may have pinned already: leave its pin */
	if (sp->pin.node && sp->gen == gen) {
		old = sp->pin;
		memset(sp, 0, sizeof(*sp));
	}
	pthread_mutex_unlock(&p->lock);
	pt_unpin(p->tree, &old);
}

/* Drop every weak pin (their sequences hold copies of what they pin);
 * returns whether there were any. */
static bool drop_weak(struct kvmm_prefix *p)
{
	struct pt_pin batch[32];
	uint32_t n, total = 0;

	do {
		n = 0;
		pthread_mutex_lock(&p->lock);
		for (uint32_t s = 0; s < p->c->g.max_seqs && n < 32; s++) {
			struct kvmm_seq_pin *sp = &p->pins[s];

			if (sp->pin.node && sp->weak) {
				batch[n++] = sp->pin;
				memset(sp, 0, sizeof(*sp));
			}
		}
		pthread_mutex_unlock(&p->lock);
		for (uint32_t i = 0; i < n; i++)
			pt_unpin(p->tree, &batch[i]);
		total += n;
	} while (n == 32);
	return total > 0;
}

/* Evict up to nblocks; when unpinned blocks do not suffice, weak pins go
 * and eviction goes on. */
static int64_t evict(struct kvmm_prefix *p, uint64_t nblocks, enum kvmm_evict_reason why)
{
	int64_t got = pt_evict(p->tree, nblocks, why), more;

	if (got >= 0 && (uint64_t)got < nblocks && drop_weak(p)) {
		more = pt_evict(p->tree, nblocks - (uint64_t)got, why);
		if (more > 0)
			got += more;
	}
	return got;
}

/* ---- enable / destroy ----------------------------------------------------- */

static uint32_t reclaim(void *arg, struct kvmm_cache *c, uint32_t nblocks)
{
	int64_t got = evict(arg, nblocks, KVMM_EVICT_PRESSURE);

	return got > 0 ? (uint32_t)got : 0;
}

static void prefix_fini(struct kvmm_cache *c)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);

	if (!p)
		return;
	kvmm_cache_set_reclaimer(c, NULL, NULL);
	kvmm_lock(c);
	c->prefix_seq_closed = NULL;
	kvmm_unlock(c);
	for (uint32_t s = 0; s < c->g.max_seqs; s++)
		pt_unpin(p->tree, &p->pins[s].pin);
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
	    (unsigned)cfg->attach > KVMM_ATTACH_COPY || cfg->flags ||
	    cfg->cost_map_ns > KVMM_PREFIX_COST_MAX_NS ||
	    cfg->cost_unmap_ns > KVMM_PREFIX_COST_MAX_NS ||
	    cfg->cost_copy_ns > KVMM_PREFIX_COST_MAX_NS)
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
	c->prefix_seq_closed = seq_closed;
	kvmm_unlock(c);
	kvmm_attach_costs_init(c, cfg, &p->costs);
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
	uint32_t nfull, own, len;
	kvmm_blk_t *blks;
	uint64_t gen;
	int ret = 0;

	if (!p || !h || h->p != p || (unsigned)mode > KVMM_ATTACH_COPY)
		return -EINVAL;
	th = h->h;
	ret = seq_state(c, seq, &len, &gen);
	if (ret)
		return ret;
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
			kvmm_seq_unalias(c, seq, 0, nfull);
		return ret;
	}
	atomic_fetch_add(mode == KVMM_ATTACH_ALIAS ? &p->attach_alias : &p->attach_copy, 1);
	if (nfull) {
		struct pt_pin pin = {0};

		/* The full blocks only (the partial one was copied): what the
		 * sequence maps after an alias, strongly; what its copies
		 * continue after a copy, weakly. */
		if (!pt_pin_handle(p->tree, th, nfull, &pin))
			pin_put(p, seq, gen, &pin, mode != KVMM_ATTACH_ALIAS);
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

/* Blocks an insert offers, and their ids as the tree takes them, on the
 * stack for a turn's worth. */
struct offer {
	uint32_t lo, cap; /* blocks [lo, lo + cap) fit */
	kvmm_blk_t *pub;
	uint64_t *ids;
	kvmm_blk_t pub_s[64];
	uint64_t ids_s[64];
};

/* Room for blocks [lo, nb), keeping what is held for [o->lo, nb). */
static int offer_room(struct offer *o, uint32_t lo, uint32_t nb)
{
	uint32_t keep = o->pub ? nb - o->lo : 0, need = nb - lo;
	kvmm_blk_t *pub;
	uint64_t *ids;

	if (need <= 64 && (!o->pub || o->pub == o->pub_s)) {
		pub = o->pub_s;
		ids = o->ids_s;
	} else {
		pub = malloc(need * sizeof(*pub));
		ids = malloc(need * sizeof(*ids));
		if (!pub || !ids) {
			free(pub);
			free(ids);
			return -ENOMEM;
		}
	}
	if (keep)
		memmove(pub + (need - keep), o->pub, keep * sizeof(*pub));
	if (o->pub && o->pub != o->pub_s && o->pub != pub) {
		free(o->pub);
		free(o->ids);
	}
	o->pub = pub;
	o->ids = ids;
	o->lo = lo;
	o->cap = need;
	return 0;
}

static void offer_free(struct offer *o)
{
	if (o->pub != o->pub_s) {
		free(o->pub);
		free(o->ids);
	}
}

int kvmm_prefix_insert(struct kvmm_cache *c, uint32_t seq, const struct kvmm_ns *ns,
		       const uint32_t *tokens, uint32_t n)
{
	struct kvmm_prefix *p = kvmm_prefix_of(c);
	struct pt_insert_result res = {0};
	struct kvmm_seq_pin sp;
	struct offer o = {0};
	uint32_t nb, lo, end, len;
	uint64_t gen;
	bool pinned;
	int ret;

	if (!p || (n && !tokens))
		return -EINVAL;
	if (!ns)
		ns = &default_ns;
	ret = seq_state(c, seq, &len, &gen);
	if (ret)
		return ret;
	if (n > len)
		return -EINVAL;
	nb = n / c->g.tpb;
	/* Continue from where the sequence's KV joins the tree, if known:
	 * only the tokens after that are walked. */
	pinned = pin_take(p, seq, gen, &sp);
	/* Publish only what the tree lacks: a published block is immutable
	 * for the sequence from then on. */
	ret = pt_probe_from(p->tree, ns, &sp.pin, tokens, n);
	if (ret < 0)
		goto out_pin;
	lo = (uint32_t)ret;
	ret = 0;
	if (lo >= nb)
		goto out_pin;
	ret = offer_room(&o, lo, nb);
	if (!ret)
		ret = kvmm_seq_publish(c, seq, lo, nb - lo, o.pub);
	if (ret)
		goto out_pin;
	/* o.pub[i] holds block lo + i, referenced for the tree */
	for (int tries = 0;; tries++) {
		for (uint32_t i = 0; i < nb - lo; i++)
			o.ids[i] = o.pub[i];
		ret = pt_insert_from(p->tree, ns, &sp.pin, tokens, n, lo, o.ids, &res);
		if (ret < 0 || res.added || res.first >= lo || tries == 3)
			break;
		/* Evicted between the probe and the insert: offer the blocks
		 * now missing in front of ours too. */
		if (offer_room(&o, res.first, nb))
			break;
		if (kvmm_seq_publish(c, seq, res.first, lo - res.first, o.pub)) {
			/* not published: only [lo, nb) hold references */
			memmove(o.pub, o.pub + (lo - res.first), (nb - lo) * sizeof(*o.pub));
			o.lo = lo;
			break;
		}
		lo = res.first;
	}
	/* Give back what the tree did not adopt (cached meanwhile, not
	 * admitted, no room).  What it adopted is [first, first + added),
	 * within [lo, nb). */
	if (ret < 0 || !res.added) {
		kvmm_blk_put(c, o.pub, nb - lo);
	} else {
		end = res.first + res.added;
		if (res.first > lo)
			kvmm_blk_put(c, o.pub, res.first - lo);
		if (end < nb)
			kvmm_blk_put(c, o.pub + (end - lo), nb - end);
	}
	if (ret >= 0) {
		const struct kvmm_prefix_tier_hooks *hk;
		void *harg;

		/* Once the sequence maps blocks of the path (it published
		 * them and the tree adopted them), its pin is strong. */
		pin_put(p, seq, gen, &sp.pin, (sp.weak || !pinned) && !res.added);
		hk = res.added ? tier_hooks(p, &harg) : NULL;
		if (hk && hk->inserted)
			hk->inserted(harg, ns, tokens, res.first, res.added,
				     o.ids + (res.first - lo));
		ret = (int)(res.added * c->g.tpb);
		offer_free(&o);
		return ret;
	}
out_pin:
	if (pinned)
		pin_put(p, seq, gen, &sp.pin, sp.weak);
	offer_free(&o);
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
	got = evict(p, nblocks, KVMM_EVICT_EXPLICIT);
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
