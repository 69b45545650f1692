/* SPDX-License-Identifier: MIT */
/*
 * prefix_tree_int.h - structures shared by the prefix tree's files
 * (prefix_tree.c: structure and walks; prefix_evict.c: eviction order,
 * hints and victims; prefix_admit.c: admission counters).  Nobody else
 * includes it.  Everything here runs under pt_tree.lock.
 */
#ifndef KVMM_PREFIX_TREE_INT_H
#define KVMM_PREFIX_TREE_INT_H

#include <pthread.h>

#include "prefix_tree.h"
#include "u64map.h"

#define PT_NO_HEAP UINT32_MAX

/*
 * A child in its parent's array, which is sorted by the children's first
 * blocks.  key holds the block's first two tokens (token 0 in the high
 * half; the low half is 0 when a block has one token), so that ordering
 * the array compares keys in one contiguous array and reads a child's
 * tokens only when two first blocks share their first two tokens.
 */
struct pt_kid {
	uint64_t key;
	struct pt_node *node;
};

/* Children kept in the node itself: a conversation's turns form chains of
 * one child each, and a split makes a head with two. */
#define PT_KIDS_INLINE 2

struct pt_node {
	struct pt_node *parent; /* NULL for a namespace root */
	struct pt_kid *kids;	/* sorted by their first block's tokens;
				 * kid_inline until it outgrows it */
	uint32_t nkids, kcap;
	uint32_t nblocks; /* 0 only for roots */
	uint32_t depth;	  /* blocks from the root to this node's first block */
	uint32_t pins;	  /* handles whose deepest node this is */
	uint32_t held;	  /* pins on this node and below */
	uint32_t heap_idx;
	uint32_t *tokens; /* nblocks * B, right after the node (a walk reads
			   * the node, then its tokens), then the ids: */
	uint64_t *blocks; /* nblocks */
	uint64_t tick;	  /* last access (tree's logical clock) */
	uint64_t hits;	  /* accesses */
	uint64_t hint_soon, hint_last;
	struct pt_node *hprev, *hnext; /* list of hinted nodes */
	bool hinted;
	bool is_root;
	struct pt_kid kid_inline[PT_KIDS_INLINE];
};

/*
 * An evictable node in the heap, with its eviction key as of when it was
 * last placed: (hinted, then for hinted nodes UINT64_MAX - hint_soon, for
 * LFU the accesses, else 0, then the last access tick), smallest first.
 * Keys only grow with accesses, so a touch leaves the heap alone and the
 * key stale (never above the node's own): eviction refreshes a stale top
 * before taking it.  What lowers a key (a hint cleared) replaces it at once.
 */
struct pt_heap_ent {
	struct pt_node *node;
	uint64_t k1, k2, k3;
};

struct pt_root {
	struct pt_node node; /* first: a root is a node */
	struct kvmm_ns ns;
	uint64_t hash;
	struct pt_root *next; /* roots whose namespaces hash alike */
};

struct pt_admit {
	struct u64map counts; /* chained prefix hash -> inserts seen */
	uint32_t max;
};

/* Blocks taken out under the lock, handed out after it is dropped. */
struct pt_victim_rec {
	struct pt_victim_rec *next;
	pt_evict_fn hook; /* as installed when the blocks were taken */
	void *hook_arg;
	struct pt_victim v;
	struct kvmm_ns ns;
	/* blocks, then tokens, follow */
};

struct pt_tree {
	pthread_mutex_t lock;
	struct pt_config cfg;
	uint32_t B;
	struct u64map roots; /* namespace hash -> struct pt_root * */
	/* evictable nodes (leaves with no pin), a binary min-heap by
	 * eviction order; room for every node is kept, so adding never
	 * fails */
	struct pt_heap_ent *heap;
	uint32_t heap_len, heap_cap;
	struct pt_node *hinted; /* list head */
	uint64_t next_expiry;	/* no hint expires before this */
	struct pt_admit admit;
	struct pt_root *busy_root; /* an insert is using it: keep it if emptied */
	uint64_t tick;
	struct pt_stats st;
};

static inline struct pt_root *pt_root_of(struct pt_node *n)
{
	while (n->parent)
		n = n->parent;
	return (struct pt_root *)n;
}

/* prefix_evict.c */
int pt_heap_reserve(struct pt_tree *t, uint64_t nodes);
/* Put n in the heap or take it out as its state requires (leaf, unpinned,
 * not a root), or restore the heap order after its key changed. */
void pt_evictable_update(struct pt_tree *t, struct pt_node *n);
/* The same after an access of n, which only made its key grow: in the
 * heap already, it is left where it is (see struct pt_heap_ent). */
void pt_evictable_touched(struct pt_tree *t, struct pt_node *n);
void pt_heap_remove(struct pt_tree *t, struct pt_node *n);
/* Mark n hinted with exactly these times (callers merge). */
void pt_hint_set(struct pt_tree *t, struct pt_node *n, uint64_t soon, uint64_t last);
void pt_hint_clear(struct pt_tree *t, struct pt_node *n);
bool pt_hint_expired(const struct pt_tree *t, const struct pt_node *n, uint64_t now);
/* Check the heap: order, back pointers, keys never above the nodes'. */
int pt_heap_check(struct pt_tree *t, char *why, size_t len);
/* Take up to need blocks, appending their records at **tail; never touches
 * pinned nodes.  Returns the number taken, or -ENOMEM when none could be. */
int64_t pt_evict_locked(struct pt_tree *t, uint64_t need, enum kvmm_evict_reason why,
			struct pt_victim_rec ***tail);
/* After the lock is dropped: hook, put, free. */
void pt_victims_deliver(struct pt_tree *t, struct pt_victim_rec *list);
uint64_t pt_now(struct pt_tree *t);

/* prefix_tree.c */
void pt_node_free(struct pt_tree *t, struct pt_node *n);
void pt_kid_remove(struct pt_tree *t, struct pt_node *parent, struct pt_node *kid);
void pt_root_remove(struct pt_tree *t, struct pt_root *r);

/* prefix_admit.c */
int pt_admit_init(struct pt_admit *a, uint32_t max);
void pt_admit_free(struct pt_admit *a);
/* Count one more insert of the prefix with this key; returns the count. */
uint32_t pt_admit_bump(struct pt_admit *a, uint64_t key);
void pt_admit_forget(struct pt_admit *a, uint64_t key);

#endif /* KVMM_PREFIX_TREE_INT_H */
