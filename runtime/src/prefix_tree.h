/* SPDX-License-Identifier: MIT */
/*
 * prefix_tree.h - the prefix cache's radix tree over token ids.
 *
 * Edges are runs of whole blocks (tokens_per_block tokens each), so every
 * node owns whole blocks; a block is an opaque 64-bit id whose reference
 * the tree holds while the block is cached and drops through cfg.put.
 * Each namespace (struct kvmm_ns) has its own root: namespaces never match
 * each other.
 *
 * Semantics the rest of kvmm relies on (and the property test checks
 * against a brute-force model):
 *  - match: the longest cached prefix of a token run, which may end inside
 *    a block (the first k < tokens_per_block tokens of a cached block
 *    equal the query's next k tokens); that last block is then "partial"
 *    and must be copied, never aliased, by the user.
 *  - The cached set stays prefix-closed: eviction takes blocks only from
 *    the tail of leaves (leaf-first), so a cached block's whole prefix is
 *    always cached (no missing head page zeroing a prefix).
 *  - Nodes are split where a match, insert or hint ends, so every block of
 *    a node has the same access history: eviction order is exact per block.
 *  - A handle pins its deepest node; pinned blocks (and, since only leaves
 *    are evicted, all their ancestors) are never evicted.
 *  - Eviction order among evictable leaves: unhinted before hinted; among
 *    unhinted, least recently used (LRU) or least frequently used, then
 *    least recently used (LFU); among hinted, the one whose soonest hinted
 *    use is furthest away first.  A hint expires hint_ttl_ns after the
 *    latest time it was hinted for.
 *  - Admission (admit_hits > 1): a block position is cached only on its
 *    admit_hits-th insert (counted per chained prefix hash), and only as a
 *    leading run after the cached part, so the set stays prefix-closed.
 *
 * Locking: one mutex per tree; every function below is thread-safe unless
 * it says otherwise.  No callback (put, on_evict, clock excepted) is ever
 * called with the tree's lock held, so callbacks may take other locks and
 * call back into the tree.
 */
#ifndef KVMM_PREFIX_TREE_H
#define KVMM_PREFIX_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmm.h"

struct pt_tree;
struct pt_node;
struct pt_root;

/* Blocks leaving the tree, handed to the eviction hook before they are put. */
struct pt_victim {
	const struct kvmm_ns *ns;
	/* Tokens of the whole path, from the root through the last victim
	 * block: (first + nblocks) * tokens_per_block of them. */
	const uint32_t *tokens;
	uint32_t first;	  /* block index (from the root) of blocks[0] */
	uint32_t nblocks; /* >= 1 */
	const uint64_t *blocks;
	enum kvmm_evict_reason reason;
};

/* The tier layer's hook: sees victims (without the tree lock) before the
 * tree drops its references.  It may take its own references to keep or
 * spill the blocks. */
typedef void (*pt_evict_fn)(void *arg, const struct pt_victim *v);
/* Drop the tree's reference to a block. */
typedef void (*pt_put_fn)(void *arg, uint64_t block);
/* Current time in ns (CLOCK_MONOTONIC by default; tests inject their own). */
typedef uint64_t (*pt_clock_fn)(void *arg);

struct pt_config {
	uint32_t tokens_per_block; /* >= 1 */
	enum kvmm_evict_policy policy;
	uint32_t admit_hits;  /* 0 or 1: admit on first insert */
	uint32_t admit_slots; /* admission counters kept (0: 65536) */
	uint64_t max_blocks;  /* cap on cached blocks (0: none) */
	uint64_t hint_ttl_ns; /* 0: 10 s */
	pt_put_fn put;	      /* required */
	void *put_arg;
	pt_evict_fn on_evict; /* optional; also pt_set_evict_hook() */
	void *evict_arg;
	pt_clock_fn clock; /* optional */
	void *clock_arg;
};

/*
 * What a match (or an insert's pin) covers: blocks[0..nblocks) are the ids
 * of the blocks holding tokens [0, matched), in order.  When partial != 0
 * the last block is used only for its first `partial` tokens.  Read-only
 * for users; valid until pt_release().
 */
struct pt_handle {
	struct pt_node *pin; /* private: the pinned deepest node */
	uint32_t matched;    /* tokens */
	uint32_t nblocks;
	uint32_t partial; /* tokens used of the last block if partial, else 0 */
	uint32_t __pad;
	uint64_t blocks[];
};

/*
 * A pin without a block list, embedded where it is kept (a sequence's pin
 * on the path its KV continues): it keeps the path [0, nblocks) of its
 * namespace cached and is where pt_insert_from continues.  All zero: no
 * pin.  Read-only for users.
 */
struct pt_pin {
	struct pt_node *node; /* private: the pinned node (NULL: none) */
	struct pt_root *root; /* private: its namespace (no climb to find it) */
	uint32_t nblocks;     /* blocks of the path pinned (at least these) */
	uint32_t __pad;
};

/* Result of an insert: blocks [first, first + added) of the caller's array
 * were adopted; the rest stay the caller's. */
struct pt_insert_result {
	uint32_t first;		 /* blocks that were cached already (path length) */
	uint32_t added;		 /* blocks adopted */
	uint32_t rejected_admit; /* not admitted yet (admission counting) */
	uint32_t rejected_cap;	 /* no room under max_blocks (all else pinned) */
};

struct pt_stats {
	uint64_t lookups;
	uint64_t lookup_tokens;
	uint64_t hit_tokens;
	uint64_t inserts;
	uint64_t inserted_blocks;
	uint64_t hints;
	uint64_t namespaces;
	uint64_t nodes;
	uint64_t splits;
	uint64_t blocks_cached;
	uint64_t blocks_pinned;
	uint64_t blocks_hinted;
	uint64_t evictions[KVMM_EVICT__COUNT]; /* blocks */
	uint64_t admission_rejects;	       /* blocks */
	uint64_t cap_rejects;		       /* blocks */
};

/* -EINVAL bad config, -ENOMEM. */
int pt_create(const struct pt_config *cfg, struct pt_tree **out);
/* Put every cached block (no eviction hook).  Single caller; every handle
 * must have been released.  NULL is a no-op. */
void pt_destroy(struct pt_tree *t);
/* Install or replace the eviction hook (NULL removes it). */
void pt_set_evict_hook(struct pt_tree *t, pt_evict_fn fn, void *arg);
uint32_t pt_tokens_per_block(const struct pt_tree *t);

/*
 * Longest cached prefix of tokens[0..n) in ns.  *matched gets its length.
 * With h != NULL, *h gets a handle pinning it, or NULL when nothing
 * matched; with h == NULL nothing is pinned (a probe).  Counts as an access
 * of every matched block.  -EINVAL, -ENOMEM (no handle could be made).
 */
int pt_match(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
	     struct pt_handle **h, uint32_t *matched);
/* A second pin, of h's first nblocks blocks (<= h->nblocks; e.g. only the
 * full blocks a sequence aliased, not the partial one it copied). */
int pt_handle_dup(struct pt_tree *t, const struct pt_handle *h, uint32_t nblocks,
		  struct pt_handle **out);
/* Unpin and free; NULL is a no-op. */
void pt_release(struct pt_tree *t, struct pt_handle *h);

/*
 * pt_match of whole blocks that pins into *p (replacing what it held)
 * instead of making a handle: *matched counts the full blocks matched
 * only, which are touched and pinned (none: *p is left empty); a partial
 * block is neither (without a handle there is nothing to copy it from).
 * Cannot fail for want of memory.  -EINVAL.
 */
int pt_match_pin(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
		 struct pt_pin *p, uint32_t *matched);
/* Pin h's first nblocks full blocks into *p (replacing what it held);
 * -EINVAL when they are not full blocks of h. */
int pt_pin_handle(struct pt_tree *t, const struct pt_handle *h, uint32_t nblocks, struct pt_pin *p);
/* Drop a pin and empty *p; an empty pin is a no-op. */
void pt_unpin(struct pt_tree *t, struct pt_pin *p);

/* An entry of pt_insert's blocks[] that the caller does not supply. */
#define PT_NO_BLOCK UINT64_MAX

/*
 * Full blocks of tokens[0..n) cached now (a read-only walk: not an access,
 * not counted as a lookup).  Another thread may change it at once; it
 * tells an inserter which blocks it needs to offer.
 */
uint32_t pt_probe(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n);
/* pt_probe continuing from's path as pt_insert_from does: full blocks
 * cached, or -EINVAL where pt_insert_from would refuse the tokens. */
int pt_probe_from(struct pt_tree *t, const struct kvmm_ns *ns, const struct pt_pin *from,
		  const uint32_t *tokens, uint32_t n);

/*
 * Cache the full blocks of tokens[0..n): blocks[i] holds block i (n /
 * tokens_per_block entries; PT_NO_BLOCK where the caller has none to give:
 * only a leading run of given blocks after the cached path is adopted).  Blocks already cached are left alone (the
 * caller keeps its own), new ones are adopted as a leading run (see
 * struct pt_insert_result); evicts under max_blocks first if needed
 * (reason KVMM_EVICT_CAP, never the path being extended).  Counts as an
 * access of the whole path.  With pin != NULL, *pin gets a handle pinning
 * the cached path [0, first + added) (NULL if empty).  Returns added, or
 * -EINVAL, -ENOMEM (nothing changed).
 */
int pt_insert(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
	      const uint64_t *blocks, struct pt_insert_result *res, struct pt_handle **pin);
/* pt_insert with flags: PT_INSERT_ADMITTED skips admission counting (the
 * tier layer restoring blocks that were admitted before they were
 * spilled: restored KV is always taken back). */
#define PT_INSERT_ADMITTED (1u << 0)
int pt_insert_flags(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
		    const uint64_t *blocks, uint32_t flags, struct pt_insert_result *res,
		    struct pt_handle **pin);

/*
 * pt_insert continuing the path *from pins (k = from->nblocks blocks), for
 * a caller whose KV continues that path (it attached it, or inserted it
 * before): the walk starts at the path's end instead of the root, so it
 * reads only the tokens after it.  tokens[0 .. k * tokens_per_block) are
 * taken to be the path's and are not compared, except the last block, as a
 * guard (-EINVAL, nothing changed, when it differs): the new blocks are
 * keyed by the path they continue, which is what their KV was computed
 * on.  With *from empty or of another namespace, the walk starts at the
 * root as in pt_insert.  Blocks: blocks[i] is block lo + i, for i <
 * n / tokens_per_block - lo (PT_NO_BLOCK where none; none below lo).  On
 * success *from is moved to pin the cached path [0, first + added) (left
 * as it was when n ends within its path).  Returns added, -EINVAL, -ENOMEM
 * (nothing changed).
 */
int pt_insert_from(struct pt_tree *t, const struct kvmm_ns *ns, struct pt_pin *from,
		   const uint32_t *tokens, uint32_t n, uint32_t lo, const uint64_t *blocks,
		   struct pt_insert_result *res);

/*
 * tokens[0..n) in ns will be needed at when_ns (the tree's clock): its
 * cached full blocks are evicted after every unhinted block.  Not an
 * access.  Returns the number of tokens hinted (whole blocks), -EINVAL,
 * -ENOMEM.
 */
int pt_hint(struct pt_tree *t, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n,
	    uint64_t when_ns);

/* Evict up to nblocks unpinned blocks, leaf first, by policy, handing them
 * to the hook.  Returns the number evicted, or -ENOMEM if none could be. */
int64_t pt_evict(struct pt_tree *t, uint64_t nblocks, enum kvmm_evict_reason why);

/* Consistent snapshot. */
void pt_stats(struct pt_tree *t, struct pt_stats *st);

/*
 * Check every structural invariant (sorted children, depths, pin counts,
 * heap and hint-list membership, counters).  0, or -EUCLEAN with a
 * description in why.  O(size of the tree); for tests.
 */
int pt_check(struct pt_tree *t, char *why, size_t len);

#endif /* KVMM_PREFIX_TREE_H */
