/* SPDX-License-Identifier: MIT */
/*
 * prefix.h - the prefix cache built into a KV cache (c->prefix): the radix
 * tree (prefix_tree.h) over the cache's blocks, the pins that keep blocks
 * used by running sequences out of eviction, and the attach policy.
 * For prefix.c, prefix_policy.c and the tier layer.
 */
#ifndef KVMM_PREFIX_H
#define KVMM_PREFIX_H

#include <stdatomic.h>

#include "cache_internal.h"
#include "prefix_tree.h"

/* Per-page costs the AUTO attach policy weighs (ns). */
struct kvmm_attach_costs {
	uint64_t map_ns;   /* map + set_access of one page */
	uint64_t unmap_ns; /* unmap of one page */
	uint64_t copy_ns;  /* device-to-device copy of one page */
	bool measured;	   /* false: given, or taken from counters or defaults */
};

/*
 * A sequence's pin on the tree path its KV continues: what it attached, or
 * what it inserted last.  Its inserts continue from there (pt_insert_from)
 * instead of walking the whole history again.  Strong when the sequence
 * maps some of the path's blocks (an alias attach, its own published
 * blocks): eviction could free nothing there.  Weak when it maps none (a
 * copy attach): pressure may drop it, and the next insert then walks from
 * the root.  Dropped when the sequence closes (kvmm_seq_close's hook).
 */
struct kvmm_seq_pin {
	uint64_t gen; /* the slot's generation it was made for */
	struct pt_pin pin;
	bool weak;
};

struct kvmm_prefix_handle {
	struct kvmm_prefix_handle *prev, *next; /* live handles, freed at destroy */
	struct kvmm_prefix *p;
	struct pt_handle *h;
};

/* What the tier layer (tiers.c) hears from the prefix cache, without any
 * lock held: blocks[0..n) were just cached as blocks [first, first + n) of
 * the path tokens[0..(first + n) * tpb) (write-through spills them), and a
 * hint named tokens[0..n) (the tiers prefetch them). */
struct kvmm_prefix_tier_hooks {
	void (*inserted)(void *arg, const struct kvmm_ns *ns, const uint32_t *tokens,
			 uint32_t first, uint32_t n, const uint64_t *blocks);
	void (*hinted)(void *arg, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n);
};

struct kvmm_prefix {
	struct kvmm_cache *c;
	struct pt_tree *tree;
	struct kvmm_prefix_config cfg;
	struct kvmm_attach_costs costs;
	pthread_mutex_t lock;	   /* pins and the handle list; never held across
			       * a call into the cache or the tree's puts */
	struct kvmm_seq_pin *pins; /* max_seqs */
	struct kvmm_prefix_handle *handles;
	const struct kvmm_prefix_tier_hooks *hooks; /* under lock */
	void *hooks_arg;
	_Atomic uint64_t attach_alias, attach_copy, attach_auto;
};

static inline struct kvmm_prefix *kvmm_prefix_of(const struct kvmm_cache *c)
{
	return c ? (struct kvmm_prefix *)c->prefix : NULL;
}

/* Install (NULL: remove) the tier layer's hooks. */
void kvmm_prefix_set_tier_hooks(struct kvmm_cache *c, const struct kvmm_prefix_tier_hooks *h,
				void *arg);

/* prefix_policy.c */
void kvmm_attach_costs_measure(struct kvmm_cache *c, struct kvmm_attach_costs *k);
/* The costs AUTO weighs: cfg's where given (non-zero), the rest measured
 * (nothing measured when cfg gives all three). */
void kvmm_attach_costs_init(struct kvmm_cache *c, const struct kvmm_prefix_config *cfg,
			    struct kvmm_attach_costs *k);
/* AUTO's choice for attaching nfull full blocks to a sequence that holds
 * own_mapped own blocks at those indices already. */
enum kvmm_attach_mode kvmm_attach_choose(struct kvmm_cache *c, const struct kvmm_attach_costs *k,
					 uint32_t nfull, uint32_t own_mapped);

#endif /* KVMM_PREFIX_H */
