/* SPDX-License-Identifier: MIT */
/*
 * tiers.h - the tier layer built into a cache (c->tiers): the host pool
 * (tier_host.h) holding records, its index and LRU, the disk tier
 * (tier_disk.h), the copy engine (tier_copy.h), and the mover thread that
 * runs spills and restores off the callers' threads.
 *
 * Files: tiers.c (enable, config, stats, public calls), tier_index.c
 * (entries, host LRU, slots, admission counts), tier_spill.c (eviction
 * hook, write-through, disk writes), tier_restore.c (prefetch).
 *
 * Locking: t->lock protects the index, the entries, the job queue and the
 * prefetch states.  It is a leaf: never held across a call into the cache,
 * the prefix tree, the disk tier's synchronous calls or a copy.  Entries
 * are kept stable by pins: a pinned entry's host slot is neither evicted
 * nor reused.
 */
#ifndef KVMM_TIERS_H
#define KVMM_TIERS_H

#include <pthread.h>
#include <stdatomic.h>

#include "cache_internal.h"
#include "prefix.h"
#include "tier_copy.h"
#include "tier_disk.h"
#include "tier_hashpool.h"
#include "tier_host.h"
#include "tier_record.h"
#include "u64map.h"

#define TIER_NIL UINT32_MAX

/* Entry flags. */
#define E_VALID	  (1u << 0) /* the host slot holds a sealed, verified record */
#define E_FILLING (1u << 1) /* being filled (device copy or disk read) */
#define E_ON_DISK (1u << 2) /* the disk tier has it (as far as we know) */
#define E_WRITING (1u << 3) /* a disk write from the slot is in flight */
#define E_COLD	  (1u << 4) /* marked COLD (kernel module pools): may be dropped */

/* A record in the host pool (or on its way there): entry i owns slot i. */
struct tier_entry {
	uint64_t key, parent;
	uint32_t flags;
	uint32_t pins;	     /* users of the slot's bytes: not evictable */
	uint32_t prev, next; /* host LRU (valid, unpinned entries) */
	uint8_t on_lru;
	uint64_t gen; /* the slot's generation when it was marked COLD */
};

struct kvmm_tiers;

/* Work for the mover thread. */
struct tier_job {
	void (*run)(struct kvmm_tiers *t, struct tier_job *j);
	struct tier_job *next;
};

struct tier_counters {
	uint64_t spills_host, spill_host_bytes, spills_disk, spill_disk_bytes;
	uint64_t restores_host, restores_disk, restore_bytes;
	uint64_t prefetches, prefetch_blocks;
	uint64_t spill_skipped, host_evictions, host_drops_unwritten;
	uint64_t disk_admit_rejects, verify_failures, io_errors, restore_failures;
	uint64_t host_reclaimed;
};

/*
 * Where the time goes: ns summed per stage over every thread, for the
 * benchmark's breakdown (kvmm-bench tiers reads it; not public API).  A
 * clock read costs ~20 ns; stages are per block or per batch.
 */
struct tier_prof {
	/* restore: records gathered, headers checked, payload hashes,
	 * device blocks allocated, copies queued, waits for copies, tree
	 * inserts; runs of blocks */
	_Atomic uint64_t r_gather, r_check, r_hash, r_alloc, r_queue, r_wait, r_insert, r_runs;
	/* spill: whole eviction hooks, slot claims, copies queued, waits for
	 * copies (evicting threads); payload hashes and seals (mover) */
	_Atomic uint64_t s_hook, s_claim, s_queue, s_wait, s_hash, s_seal, s_rounds;
};

static inline void tier_prof_add(_Atomic uint64_t *f, uint64_t t0)
{
	atomic_fetch_add_explicit(f, kvmm_now_ns() - t0, memory_order_relaxed);
}

struct kvmm_tiers {
	struct kvmm_cache *c;
	struct kvmm_prefix *p;
	struct kvmm_tiers_config cfg;
	char *disk_dir;
	char *pool_name;	   /* persistent host pool (kvmm.ko) */
	uint64_t geometry;	   /* tier_geometry_id of the cache */
	uint32_t hdr_bytes;	   /* header region of a block's record */
	uint64_t rec_bytes;	   /* a whole record */
	uint32_t enc;		   /* enum tier_rec_encoding of the records we write and read */
	uint64_t payload_bytes;	   /* of a record: block_bytes, or quantized */
	uint32_t dtype, row_elems; /* quantized records: tier_quant.h */
	void *qstage;		   /* CPU codec: the mover's block-sized staging */

	/*
	 * Bookkeeping only (the null backend): the host pool is capacity
	 * without bytes (tier_mem_null.c) and the disk tier has no storage
	 * (TIER_DISK_NO_STORAGE).  Records are index entries: the index, LRU,
	 * capacity, eviction, write policies, admission and prefetches run
	 * as usual and bytes are counted, but nothing is copied, hashed,
	 * sealed, written, read or verified.  Spills are sealed and disk
	 * operations done in the calling thread (nothing to hash or wait
	 * for), so what the tiers hold follows from the calls alone.
	 */
	bool bookkeeping;
	bool defer_writes;  /* disk writes wait (tiers_write_deferred) */
	uint32_t *deferred; /* their slots (E_WRITING meanwhile) */
	uint32_t ndeferred;
	struct tier_host *host;
	struct tier_disk *disk;
	struct tier_copy *copy;
	struct tier_hashpool *hashpool;

	pthread_mutex_t lock;
	pthread_cond_t cond;	     /* progress of anything: waiters recheck */
	struct tier_entry *ent;	     /* one per host slot */
	struct u64map index;	     /* key -> entry (slot) */
	struct u64map admit;	     /* key -> uses seen (disk admission) */
	uint32_t lru_head, lru_tail; /* coldest first */
	uint32_t nvalid, nfilling;
	uint64_t next_seq;
	struct tier_job *jobs, **jobs_tail;
	uint32_t busy;	   /* jobs queued or running, disk writes in flight */
	uint32_t inflight; /* blocks being spilled or restored */
	struct kvmm_prefetch *fill_waiters;
	bool stop;
	pthread_t mover;
	uint64_t published_ns;			/* residency last published to the module */
	uint64_t host_scan_found, host_scan_ns; /* a re-opened persistent pool */
	struct tier_counters n;
	struct tier_prof prof;
	_Atomic uint32_t logged;
};

static inline struct kvmm_tiers *kvmm_tiers_of(const struct kvmm_cache *c)
{
	return c ? (struct kvmm_tiers *)c->tiers : NULL;
}

/* tiers.c */
void tiers_log(struct kvmm_tiers *t, uint32_t kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum { TLOG_VERIFY = 1, TLOG_IO = 2, TLOG_FULL = 4, TLOG_COPY = 8 };
/* Queue a job for the mover (lock not held); a job calls tiers_job_done
 * when it is finished. */
void tiers_queue(struct kvmm_tiers *t, struct tier_job *j);
void tiers_job_done(struct kvmm_tiers *t);
/* Publish residency to the kernel module (at most every 100 ms unless
 * forced); lock not held. */
void tiers_publish(struct kvmm_tiers *t, bool force);
/* Keys of the blocks of tokens[0..nb * tpb) in ns: keys[i] for block i. */
void tiers_keys(const struct kvmm_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
		uint32_t nb, uint64_t *keys);

/* tier_index.c (lock held unless said otherwise) */
struct tier_entry *tidx_find(struct kvmm_tiers *t, uint64_t key, uint32_t *slot);
/* A slot for a new record of key: a free one, or the coldest clean
 * record's; may wait (a bounded time, dropping the lock) for write-backs
 * or seals in flight to make one droppable.  -ENOSPC when every slot is pinned or dirty;
 * -EEXIST when key is there already. */
enum tier_wait {
	TIER_WAIT_NONE,	  /* never */
	TIER_WAIT_WRITES, /* for disk writes (the mover: it seals records itself) */
	TIER_WAIT_ANY,	  /* for disk writes and records being sealed */
};
int tidx_claim(struct kvmm_tiers *t, uint64_t key, uint64_t parent, enum tier_wait wait,
	       uint32_t *slot);
#define TIER_CLAIM_WAIT_NS 1000000000ull /* at most, for a write-back to finish */
/* Write back cold records early when few slots are free or clean. */
void tidx_keep_clean(struct kvmm_tiers *t);
/* Is a disk write in flight (a record that will become droppable)? */
bool tidx_writes_in_flight(const struct kvmm_tiers *t);
/* Forget the record in slot (it must be unpinned). */
void tidx_drop(struct kvmm_tiers *t, uint32_t slot);
void tidx_pin(struct kvmm_tiers *t, uint32_t slot);
/* Pin a valid record to read it: false (and the record dropped) when the
 * kernel reclaimed some of its pages meanwhile. */
bool tidx_use(struct kvmm_tiers *t, uint32_t slot);
void tidx_unpin(struct kvmm_tiers *t, uint32_t slot);
/* The slot's record became valid (filled and sealed) or failed. */
void tidx_filled(struct kvmm_tiers *t, uint32_t slot, bool ok);
void tidx_touch(struct kvmm_tiers *t, uint32_t slot);
/* A verified record found in slot (a re-opened pool), now in the index:
 * 0, -ENOMEM (the slot stays the caller's). */
int tidx_adopt(struct kvmm_tiers *t, uint32_t slot, uint64_t key, uint64_t parent);
/* One more use of key; the count after. */
uint32_t tidx_admit_bump(struct kvmm_tiers *t, uint64_t key);
bool tidx_admitted(struct kvmm_tiers *t, uint64_t key);
int tidx_init(struct kvmm_tiers *t, uint32_t nslots);
void tidx_fini(struct kvmm_tiers *t);

/* tier_host_scan.c: a re-opened persistent pool's records, back in the
 * index (before the mover starts). */
int tiers_host_scan(struct kvmm_tiers *t);

/* tier_spill.c */
void tiers_evict_hook(void *arg, const struct pt_victim *v);
/* Blocks [first, first+n) of a path the prefix cache just cached
 * (write-through); takes references while it copies. */
void tiers_on_insert(struct kvmm_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
		     uint32_t first, uint32_t n, const uint64_t *blocks);
/* Write the record in slot to disk if policy and admission say so (lock
 * held; the slot is pinned for the write). */
void tiers_maybe_write(struct kvmm_tiers *t, uint32_t slot, bool evicting);
/* Start the disk writes held back while defer_writes was set, after read
 * (a disk read, or NULL) in one submission, so that the read starts first
 * whatever the threads' timing (lock held).  0, or the submission's error
 * (the read not submitted then). */
int tiers_write_deferred(struct kvmm_tiers *t, struct tier_disk_op *read);
/* Copy block blk (device) into slot's payload and seal the record. */
int tiers_fill_from_device(struct kvmm_tiers *t, uint32_t slot, kvmm_blk_t blk, uint64_t key,
			   uint64_t parent, const struct kvmm_ns *ns, const uint32_t *tokens);

/* tier_move.c: a block between the device and slot's payload */
/* Spill: queued on the D2H stream (the CPU codec: copied into staging, a
 * block_bytes buffer of the caller's, and encoded: done on return). */
int tiers_copy_out(struct kvmm_tiers *t, kvmm_blk_t blk, uint32_t slot, void *staging);
/* Restore: queued on the H2D stream (the CPU codec: decoded into the
 * mover's t->qstage and copied, done on return; the mover only). */
int tiers_copy_in(struct kvmm_tiers *t, uint32_t slot, kvmm_blk_t blk);

/* tier_restore.c */
/* A record finished filling (lock held): waiting prefetches look again. */
void tiers_fill_event(struct kvmm_tiers *t);
/* A prefetch nobody waits for (hints): frees itself when done. */
void tiers_prefetch_detached(struct kvmm_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
			     uint32_t n);

#endif /* KVMM_TIERS_H */
