/* SPDX-License-Identifier: MIT */
/*
 * cache_internal.h - the KV cache's internals, shared by the cache's own
 * files and by the prefix cache and the tiers that build on it.
 *
 * Vocabulary
 *  - page:  one physical page of the backend (2 MiB on the H100).
 *  - block: the unit of growth, sharing and spilling: the pages that hold
 *           tokens_per_block (tpb) consecutive tokens of one sequence for
 *           every layer, K and V.  One page (token-/page-major) or 2 * L
 *           pages (layer-major, one per layer and K/V).  A block has an id
 *           (kvmm_blk_t) and reference counts.
 *  - slot:  a sequence's place in the cache's virtual range; a sequence id
 *           is its slot number.  Each slot has a block table: per block
 *           index, which block is mapped there and how.
 *  - home:  every live block is also mapped, read-write, at a fixed "home"
 *           address outside the slots for its whole life.  Copies (copy
 *           attach, copy-on-write, spill and restore) go through the home
 *           address, so a block needs no temporary mapping to be read or
 *           written even when no sequence maps it (a cached prefix).
 *
 * Locking: one mutex per cache (c->lock) protects every field below unless
 * a comment says otherwise.  Driver calls are never made under it: an
 * operation marks the block-table entries it works on BUSY and the blocks
 * it works with as held, drops the lock, calls the driver, retakes the lock
 * and commits.  Anyone else who needs a BUSY entry waits on c->done_cv.
 * Block structs and page handles live in chunks that never move, so a
 * holder may read a held block's page handles without the lock.
 */
#ifndef KVMM_CACHE_INTERNAL_H
#define KVMM_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "backend.h"
#include "kvmm.h"

/* ---- geometry (layout.c) ------------------------------------------------ */

struct kvmm_geom {
	enum kvmm_layout layout; /* never DEFAULT */
	uint32_t num_layers, num_heads, head_dim, elem_size;
	uint32_t max_seqs, max_tokens;
	uint32_t tpb; /* tokens per block (= tokens per page of every view) */
	uint32_t ppb; /* pages per block */
	uint32_t bps; /* blocks per sequence */
	uint64_t page;
	uint64_t row_bytes;   /* one token of one layer's K or V: heads*dim*elem */
	uint64_t token_bytes; /* one token, all layers, K and V */
	uint64_t seq_stride;  /* bps * page */
	uint64_t part_stride; /* layer-major: one (layer, K/V) tensor; else 0 */
	uint64_t block_bytes; /* ppb * page */
	uint64_t va_bytes;
};

/* The layout a cache gets for KVMM_LAYOUT_DEFAULT: token-major wastes no
 * more than page-major and reads faster when the cache fills the GPU
 * (docs/layouts.md has both measurements). */
#define KVMM_LAYOUT_CHOSEN KVMM_LAYOUT_TOKEN_MAJOR

/* Check the shape and limits of cfg and compute the geometry for pages of
 * page bytes.  -EINVAL, -E2BIG (virtual range or tables too large). */
int kvmm_geom_init(struct kvmm_geom *g, const struct kvmm_cache_config *cfg, uint64_t page);
/* The view of one layer's K or V of a cache whose slot range starts at va. */
void kvmm_geom_view(const struct kvmm_geom *g, uint64_t va, uint32_t layer, enum kvmm_kv kv,
		    struct kvmm_view *v);

/* Address of part j (0..ppb-1) of block b of slot s. */
static inline uint64_t kvmm_slot_va(const struct kvmm_geom *g, uint64_t va, uint32_t s, uint32_t b,
				    uint32_t j)
{
	return va + j * g->part_stride + s * g->seq_stride + (uint64_t)b * g->page;
}

/* The one address formula of kvmm.h: token t of sequence s in view v. */
static inline uint64_t kvmm_view_token(const struct kvmm_view *v, uint32_t s, uint32_t t)
{
	return v->base + s * v->seq_stride + (uint64_t)(t / v->tokens_per_page) * v->page_stride +
	       (uint64_t)(t % v->tokens_per_page) * v->token_stride;
}

/* ---- blocks (pool.c) ---------------------------------------------------- */

typedef uint32_t kvmm_blk_t;
#define KVMM_BLK_NONE UINT32_MAX
#define KVMM_NONE     UINT32_MAX

enum kvmm_blk_state {
	BLK_DEAD = 0, /* id not in use: no pages */
	BLK_FREE,     /* pages created, mapped at home only, on the free list */
	BLK_USED,     /* mapped in slots, referenced, or held by an operation */
};

struct kvmm_blk {
	uint64_t home;	/* where the block's ppb pages are mapped, contiguous */
	uint32_t state; /* enum kvmm_blk_state */
	uint32_t maps;	/* slot mappings (own or alias) */
	uint32_t xrefs; /* references by the prefix cache and the tiers */
	uint32_t held;	/* operations holding it (taken from the pool, not yet
			 * mapped or referenced) */
	uint32_t next;	/* free or dead list link */
	uint32_t __pad;
};

/* Block ids are grouped in chunks that never move: chunk k holds
 * chunk0 << k ids starting at chunk0 * (2^k - 1), with their structs, page
 * handles and home range (one reservation per chunk). */
#define KVMM_MAX_CHUNKS 40
struct kvmm_chunk {
	uint64_t home_va;
	uint64_t nblocks;
	struct kvmm_blk *blks;
	kvmm_phys_t *phys; /* nblocks * ppb */
};

/* ---- slots and block tables (seq.c, blocktable.c) ----------------------- */

/* Block-table entry flags. */
#define BT_MAPPED  (1u << 0) /* mapped at the slot and usable */
#define BT_SHARED  (1u << 1) /* immutable for this sequence: alias or published */
#define BT_RO	   (1u << 2) /* mapped with KVMM_PROT_READ (alias) */
#define BT_BUSY	   (1u << 3) /* an operation owns the entry; wait on done_cv */
#define BT_PENDING (1u << 4) /* closed slot: unmap before the slot is reused */

struct kvmm_bte {
	kvmm_blk_t blk; /* KVMM_BLK_NONE when empty */
	uint32_t flags;
};

enum kvmm_slot_state {
	SLOT_IDLE = 0,
	SLOT_ACTIVE,
};

/* Mapper queue membership (slot->queued). */
#define Q_URGENT (1u << 0) /* kvmm_step waits for it */
#define Q_AHEAD	 (1u << 1) /* map ahead of its length */
#define Q_DIRTY	 (1u << 2) /* closed with shared blocks to unmap */

struct kvmm_slot {
	uint32_t state;
	uint32_t len;
	uint32_t reserved;	     /* tokens made room for by kvmm_seq_reserve */
	uint32_t hint;		     /* expected tokens given at open */
	uint32_t step_need;	     /* blocks a waiting kvmm_step needs (0: none) */
	int32_t map_err;	     /* mapper's error for step_need, reported once */
	uint32_t cap;		     /* leading BT_MAPPED entries */
	uint32_t hi;		     /* no mapped or busy entry at or above this index */
	uint32_t nown;		     /* BT_MAPPED without BT_SHARED */
	uint32_t nshared;	     /* BT_MAPPED with BT_SHARED */
	uint32_t npending;	     /* BT_PENDING entries */
	uint32_t immut_end;	     /* 1 + highest BT_SHARED index while active */
	uint32_t epoch;		     /* kvmm_step call that last saw it (duplicates) */
	uint32_t queued;	     /* Q_* */
	uint32_t lru_prev, lru_next; /* idle list, oldest first */
	uint64_t gen;		     /* opens of this slot */
	struct kvmm_bte *bt;	     /* bps entries */
};

/* A FIFO of slot ids (capacity max_seqs; membership in slot->queued). */
struct kvmm_ring {
	uint32_t *ids;
	uint32_t head, count, cap;
};

/* ---- the cache ---------------------------------------------------------- */

/* Called under pressure, without the cache lock: release (kvmm_blk_put)
 * up to nblocks cached blocks, spilling them first if a lower tier wants
 * them.  Returns how many references it dropped. */
typedef uint32_t (*kvmm_reclaim_fn)(void *arg, struct kvmm_cache *c, uint32_t nblocks);

struct kvmm_cache_counters {
	uint64_t step_calls, mapper_waits, mapper_wait_ns;
	uint64_t mapper_pages_mapped, mapper_driver_calls, critical_path_driver_calls;
	uint64_t alloc_failures, pages_peak;
	uint64_t pages_reused, steals_idle, steals_ahead, pages_destroyed;
	uint64_t reclaim_calls, pressure_calls;
};

struct kvmm_cache {
	struct kvmm_backend *be;
	struct kvmm_cache_config cfg; /* as given, layout resolved */
	struct kvmm_geom g;
	uint64_t va;	/* slot range */
	uint32_t ahead; /* tokens mapped ahead of a sequence's length */
	uint32_t batch; /* blocks per driver batch */

	pthread_mutex_t lock;
	pthread_cond_t work_cv; /* the mapper sleeps here */
	pthread_cond_t done_cv; /* an operation finished: waiters recheck */

	/* slots */
	struct kvmm_slot *slots;
	struct kvmm_bte *bt; /* max_seqs * bps, slot s at s * bps */
	uint32_t lru_head, lru_tail;
	struct kvmm_ring urgent, ahead_q, dirty;
	uint32_t step_epoch;

	/* blocks and pages */
	struct kvmm_chunk *chunks[KVMM_MAX_CHUNKS];
	uint64_t chunk0;
	uint32_t next_id;   /* ids below it have been used */
	uint32_t dead_head; /* ids without pages, for reuse */
	uint32_t free_head; /* free blocks, most recently freed first */
	uint64_t budget_pages;
	uint64_t committed_pages; /* created + being created */
	uint32_t low_water;	  /* blocks the mapper keeps free */
	uint32_t nblocks;	  /* live blocks (state != DEAD) */
	uint32_t nfree, ncached;
	uint32_t own_active, own_idle, shared_active, shared_idle;
	uint64_t tokens_used;
	uint32_t seqs_active;
	uint32_t inflight;		   /* threads in an unlocked driver phase */
	uint32_t creating;		   /* of those, threads creating pages */
	uint64_t pool_events;		   /* bumped by every change of where blocks are */
	uint64_t trim_stuck, refill_stuck; /* pool_events at the last futile try */

	/* mapper */
	pthread_t mapper;
	bool has_mapper, stop, mapper_busy;

	struct kvmm_cache_counters n;

	/* users built on the cache */
	kvmm_reclaim_fn reclaim;
	void *reclaim_arg;
	void *prefix;				   /* prefix cache state */
	void (*prefix_fini)(struct kvmm_cache *c); /* called first by destroy */
	/* Sequence seq (the slot's generation gen) has closed: called by
	 * kvmm_seq_close without the cache lock, so the slot may already
	 * have a new occupant (a later generation). */
	void (*prefix_seq_closed)(struct kvmm_cache *c, uint32_t seq, uint64_t gen);
	void *tiers;
	void (*tiers_fini)(struct kvmm_cache *c);
};

/* Driver-call accounting for one operation: every driver call the cache
 * makes goes through kvmm_cop_*(), so kvmm_step can say exactly how many
 * calls it made itself (the mapper runs concurrently, so the backend's
 * global counters cannot tell). */
struct kvmm_op {
	uint64_t driver_calls;
	bool mapper; /* the mapper thread's own operation */
};

int kvmm_cop_map(struct kvmm_cache *c, struct kvmm_op *op, uint64_t va, kvmm_phys_t p);
int kvmm_cop_unmap(struct kvmm_cache *c, struct kvmm_op *op, uint64_t va, uint64_t size);
int kvmm_cop_access(struct kvmm_cache *c, struct kvmm_op *op, uint64_t va, uint64_t size,
		    enum kvmm_prot prot);
int kvmm_cop_copy(struct kvmm_cache *c, struct kvmm_op *op, uint64_t dst, uint64_t src, uint64_t n);

static inline struct kvmm_bte *kvmm_bte(const struct kvmm_cache *c, uint32_t s, uint32_t b)
{
	return &c->bt[(uint64_t)s * c->g.bps + b];
}

static inline uint32_t kvmm_blocks_for(const struct kvmm_cache *c, uint64_t tokens)
{
	return (uint32_t)((tokens + c->g.tpb - 1) / c->g.tpb);
}

static inline uint64_t kvmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Lock for logically-const readers (stats, lengths). */
static inline void kvmm_lock(const struct kvmm_cache *c)
{
	pthread_mutex_lock((pthread_mutex_t *)&c->lock);
}

static inline void kvmm_unlock(const struct kvmm_cache *c)
{
	pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
}

/* ---- pool.c: blocks, budget ---------------------------------------------- */

struct kvmm_blk *kvmm_blk(const struct kvmm_cache *c, kvmm_blk_t id);
kvmm_phys_t *kvmm_blk_phys(const struct kvmm_cache *c, kvmm_blk_t id);

enum kvmm_get_mode {
	GET_AHEAD = 0,	/* best effort: free list, creation, idle slots */
	GET_NEEDED = 1, /* also steal unused blocks of active slots, ask the
			 * reclaimer, and wait for operations in flight */
};
/* Take up to n blocks (held) for the caller, who is filling slot for_slot
 * (KVMM_NONE: no slot) and needs its blocks below keep: that slot's own
 * blocks are taken back only at or above keep.  Lock held; may drop it.
 * Returns how many it got. */
uint32_t kvmm_pool_get(struct kvmm_cache *c, kvmm_blk_t *out, uint32_t n, enum kvmm_get_mode mode,
		       uint32_t for_slot, uint32_t keep, struct kvmm_op *op);
/* Drop a hold/mapping/reference bookkeeping and free the block if nothing
 * uses it any more.  Lock held. */
void kvmm_blk_maybe_free(struct kvmm_cache *c, kvmm_blk_t id);
/* Create up to n blocks onto the free list (within the budget).  Lock held;
 * drops it.  Returns how many were created, or a negative errno. */
int kvmm_pool_create(struct kvmm_cache *c, uint32_t n, struct kvmm_op *op);
/* Destroy one free block, or unmap and destroy one deferred block, while
 * the cache is over its budget.  Lock held; may drop it.  1 progress. */
int kvmm_pool_trim_one(struct kvmm_cache *c, struct kvmm_op *op);
/* Unmap an idle slot's unused block for reuse (1 when one was freed). */
int kvmm_pool_steal_idle(struct kvmm_cache *c, struct kvmm_op *op);
/* Destroy every block and release the home ranges (destroy only). */
void kvmm_pool_fini(struct kvmm_cache *c);
bool kvmm_pool_over_budget(const struct kvmm_cache *c);
uint32_t kvmm_pool_refill_want(const struct kvmm_cache *c);

/* ---- blocktable.c: driver work on block tables --------------------------- */

/* Map own blocks at slot s so that the first need blocks are mapped
 * (GET_NEEDED) and, best effort, up to want blocks; at most c->batch blocks
 * per driver round.  Lock held; drops it.  0, -ENOMEM (need not met) or a
 * driver error. */
int kvmm_slot_fill(struct kvmm_cache *c, uint32_t s, uint32_t need, uint32_t want,
		   struct kvmm_op *op);
/* Unmap the pending (shared) entries of closed slot s.  Lock held; drops it.
 * Waits for entries other operations hold. */
int kvmm_slot_clean(struct kvmm_cache *c, uint32_t s, struct kvmm_op *op);
/* Unmap entry (s, b), which the caller marked BUSY (MAPPED cleared), and
 * drop the slot's mapping of its block.  Lock held; drops it. */
int kvmm_bte_unmap(struct kvmm_cache *c, uint32_t s, uint32_t b, struct kvmm_op *op);
/* Bookkeeping of an entry gaining or losing BT_MAPPED.  Lock held. */
void kvmm_bte_mapped(struct kvmm_cache *c, uint32_t s, uint32_t b, kvmm_blk_t blk, uint32_t flags);
void kvmm_bte_unmapping(struct kvmm_cache *c, uint32_t s, uint32_t b);
/* Blocks a slot must keep: its length, reservation, shared prefix and a
 * waiting step.  Blocks above are map-ahead and may be stolen. */
uint32_t kvmm_slot_needed(const struct kvmm_cache *c, const struct kvmm_slot *sl);
/* Blocks the mapper should map for slot s (needed + ahead + hint). */
uint32_t kvmm_slot_target(const struct kvmm_cache *c, const struct kvmm_slot *sl);

/* ---- seq.c --------------------------------------------------------------- */

/* Validate a sequence id: -EINVAL unless an active slot.  Lock held. */
int kvmm_seq_check(const struct kvmm_cache *c, uint32_t seq);

/* ---- mapper.c ------------------------------------------------------------ */

int kvmm_mapper_start(struct kvmm_cache *c);
void kvmm_mapper_stop(struct kvmm_cache *c);
/* Queue slot s (Q_URGENT, Q_AHEAD or Q_DIRTY) and wake the mapper.  Without
 * a mapper nothing is queued (callers work synchronously).  Lock held. */
void kvmm_mapper_queue(struct kvmm_cache *c, uint32_t s, uint32_t q);
/* Wake the mapper for pool work (refill, budget).  Lock held. */
void kvmm_mapper_kick(struct kvmm_cache *c);
void kvmm_ring_push(struct kvmm_ring *r, uint32_t id);
uint32_t kvmm_ring_pop(struct kvmm_ring *r);
/* Run the background duties synchronously (caches without a mapper, and
 * set_budget).  Lock held; drops it. */
void kvmm_background_sync(struct kvmm_cache *c, struct kvmm_op *op);

/* Wait until the mapper has nothing left to do and no operation is in
 * flight (tests, benchmarks, destroy).  Thread-safe. */
void kvmm_cache_quiesce(struct kvmm_cache *c);

/* ---- for the prefix cache and the tiers (share.c) -----------------------
 *
 * A block's content is immutable once it has an external reference: the
 * sequence that published it can no longer write it through the API nor
 * shrink below it, and every other sequence maps it read-only.  A closed
 * slot's shared entries are unmapped (by the mapper, or by whoever reopens
 * the slot first) before the slot is used again.  All functions are
 * thread-safe; calls on one sequence are serialised by the caller.
 */

/* Publish seq's full blocks [first, first + n) (each below its length):
 * take one reference on each for the caller and mark them immutable for
 * seq.  out[i] gets the ids.  -EINVAL bad range, -EBUSY entry in use. */
int kvmm_seq_publish(struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n,
		     kvmm_blk_t *out);
/* Copy block b of seq (typically its partial last block) into a fresh
 * block that no sequence maps; *out gets it with one reference for the
 * caller.  -ENOMEM when no block can be had. */
int kvmm_seq_snapshot(struct kvmm_cache *c, uint32_t seq, uint32_t b, kvmm_blk_t *out);
/* Map blocks blks[0..n) read-only at seq's block indices [first, first+n)
 * (zero-copy attach).  seq must not hold tokens there (len <= first * tpb);
 * own blocks already mapped there are unmapped and freed first.  Each
 * mapping takes a reference of its own; the caller keeps its references.
 * Synchronous (driver calls in the caller's thread). */
int kvmm_seq_alias(struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n,
		   const kvmm_blk_t *blks);
/* Undo aliases: unmap the read-only (aliased) entries among seq's block
 * indices [first, first+n), where seq holds no tokens (len <= first *
 * tpb), so that it can map own blocks there again; other entries are left
 * alone.  seq's rollback floor is recomputed from the shared entries left.
 * -EINVAL bad range or tokens there, or the first driver error (that entry
 * stays mapped). */
int kvmm_seq_unalias(struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n);
/* Copy block src into seq's own block at index b, mapping one first if
 * needed (copy attach and copy-on-write of a partial last block).  Raises
 * seq's reservation to cover block b, so the copy cannot be reclaimed
 * before the caller sets the length with kvmm_step. */
int kvmm_seq_copy_in(struct kvmm_cache *c, uint32_t seq, uint32_t b, kvmm_blk_t src);
/* How many of seq's block indices [first, first+n) hold an own, mapped
 * block (a copy there costs no mapping; an alias there costs an unmap). */
int kvmm_seq_own_mapped(const struct kvmm_cache *c, uint32_t seq, uint32_t first, uint32_t n);
/* Extra references on blocks the caller already references. */
void kvmm_blk_get(struct kvmm_cache *c, const kvmm_blk_t *blks, uint32_t n);
/* Drop references; a block nothing uses returns to the pool. */
void kvmm_blk_put(struct kvmm_cache *c, const kvmm_blk_t *blks, uint32_t n);
/* A fresh block no sequence maps, with one reference (tier restore).
 * GET_NEEDED semantics: may reclaim.  -ENOMEM. */
int kvmm_blk_alloc(struct kvmm_cache *c, kvmm_blk_t *out);
/* Home address of a block the caller references: block_bytes contiguous,
 * part j (layer-major: layer j / 2, K or V by j % 2) at home + j * page. */
uint64_t kvmm_blk_home(const struct kvmm_cache *c, kvmm_blk_t b);
/* Install the reclaimer (the prefix cache; one per cache; NULL removes). */
void kvmm_cache_set_reclaimer(struct kvmm_cache *c, kvmm_reclaim_fn fn, void *arg);

/* ---- verify.c ------------------------------------------------------------ */

/* Recount everything from the tables and compare with the counters and
 * invariants (no block mapped own in two places, reference counts, budget).
 * Quiesces first.  0 or -EUCLEAN with a reason in why.  For tests. */
int kvmm_cache_verify(struct kvmm_cache *c, char *why, size_t len);

#endif /* KVMM_CACHE_INTERNAL_H */
