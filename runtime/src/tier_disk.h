/* SPDX-License-Identifier: MIT */
/*
 * tier_disk.h - the disk tier: records in preallocated segment files under
 * one directory, read and written with O_DIRECT through io_uring.
 *
 * Storage: seg-NNNNN.kvmm files of segment_bytes each (preallocated when
 * created, created as capacity is needed, never more than capacity_bytes
 * in all), each a 4 KiB segment header and then fixed-size slots holding
 * one record each (tier_record.h).  The index (key -> slot) lives in
 * memory and is rebuilt at open by scanning the segments: a record counts
 * only if its header and payload checksums verify; anything else (torn,
 * partial, never written) is reclaimed.  Eviction is leaf-first LRU: a
 * record whose child (the next block of its prefix) is on disk is not
 * evicted before the child, so a stored prefix is never cut at the head.
 *
 * All I/O goes through one struct tier_io_ops (tier_io.h) on one I/O
 * thread per tier; requests are batched, queue_depth deep, split into
 * io_bytes pieces, and use registered files and (for the host pool's
 * memory) registered buffers.  Restores (gets) go before spills (puts).
 *
 * Thread-safety: every function is thread-safe except open and close.
 * Completion callbacks run on the I/O thread and must not block or call
 * the synchronous functions of the same tier.
 */
#ifndef KVMM_TIER_DISK_H
#define KVMM_TIER_DISK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tier_hashpool.h"
#include "tier_io.h"
#include "tier_record.h"

/* Flags.  SCAN_HEADER: the restart scan checks headers only (payloads are
 * still checked at every read). */
#define TIER_DISK_BUFFERED    (1u << 0) /* no O_DIRECT (a filesystem without it) */
#define TIER_DISK_SCAN_HEADER (1u << 1) /* restart scan reads headers only */
#define TIER_DISK_DISCARD     (1u << 2) /* drop what is stored, start empty */
#define TIER_DISK_PSYNC	      (1u << 3) /* pread/pwrite engine, not io_uring */
/* No storage (the null backend's tiers): the index, capacity, segments and
 * leaf-first eviction as usual, but no directory, file, I/O thread or byte;
 * operations run in the caller (tier_disk_account).  dir only names it. */
#define TIER_DISK_NO_STORAGE (1u << 4)
#define TIER_DISK__FLAGS     0x1fu

typedef void (*tier_log_fn)(void *arg, const char *msg);

struct tier_disk_config {
	const char *dir;	 /* storage directory (created if missing) */
	uint64_t capacity_bytes; /* cap on the segment files' total size */
	uint64_t segment_bytes;	 /* size of one segment file (0: 1 GiB or less
				  * to fit capacity) */
	uint64_t slot_bytes;	 /* the largest record (multiple of 4 KiB) */
	uint32_t queue_depth;	 /* requests in flight (0: 64) */
	uint32_t io_bytes;	 /* largest single request (0: 1 MiB; 4 KiB multiple) */
	uint32_t flags;		 /* TIER_DISK_* */
	uint32_t __pad;
	/* memory to register with the engine (the host pool's chunks) */
	const struct iovec *bufs;
	uint32_t nbufs;
	/* hashes the records read back in parallel (NULL: the I/O thread
	 * alone); shared, not owned */
	struct tier_hashpool *hashpool;
	/* the I/O seam: NULL picks io_uring (psync where it is unavailable) */
	const struct tier_io_ops *io_ops;
	void *io_arg; /* the wrapper's configuration (fault injector) */
	/* called once per kind of error (then only counted); may be NULL */
	tier_log_fn log;
	void *log_arg;
};

struct tier_disk;

enum tier_disk_opkind {
	TIER_DISK_PUT = 0, /* store the sealed record in buf under key */
	TIER_DISK_GET = 1, /* read and verify the record of key into buf */
};

/*
 * One asynchronous request.  The caller owns it until done() runs (on the
 * I/O thread).  result: PUT 0, -EEXIST (key already stored or being
 * stored), -EINVAL (not a valid record, or larger than a slot), -ENOSPC
 * (nothing evictable), -EIO; GET 0 (buf holds a verified record whose
 * header is in rec), -ENOENT (not stored), -EMSGSIZE (buf too small),
 * -EBADMSG (checksum: record dropped), -EIO (I/O error or short read:
 * record dropped).  A GET that fails never leaves a half-read record
 * looking valid: callers use buf only on 0.
 */
struct tier_disk_op {
	enum tier_disk_opkind kind;
	uint64_t key;
	void *buf;    /* 4 KiB aligned */
	uint64_t len; /* PUT: record bytes; GET: room in buf */
	void (*done)(struct tier_disk_op *op);
	void *arg;
	int result;
	struct tier_rec rec; /* GET: the verified header */
	/* private to the disk tier */
	struct tier_disk_op *next;
	uint64_t bytes;	 /* bytes to transfer */
	uint64_t issued; /* bytes handed to requests */
	uint64_t base;	 /* file offset of the first byte */
	uint32_t file;	 /* segment */
	uint32_t slot;
	uint32_t pending; /* requests in flight */
	int err;
	bool verified; /* a GET's record was checked */
};

struct tier_disk_stats {
	const char *engine; /* "io_uring" or "psync" (or the seam's name) */
	bool direct;	    /* O_DIRECT in use */
	bool bufs_registered;
	uint64_t capacity_bytes;
	uint64_t slot_bytes;
	uint64_t slots_total; /* in segments created so far */
	uint64_t slots_max;   /* at full capacity */
	uint64_t records;     /* valid records indexed */
	uint64_t bytes_stored;
	uint64_t segments;
	uint64_t puts, put_bytes, put_exists, put_fail;
	uint64_t gets, get_hits, get_misses, get_bytes, get_fail;
	uint64_t evictions;
	uint64_t dropped;	  /* records dropped after a failed read */
	uint64_t err_io;	  /* requests that failed with an errno */
	uint64_t err_nospace;	  /* -ENOSPC from the medium or preallocation */
	uint64_t err_short;	  /* requests that transferred less than asked */
	uint64_t err_checksum;	  /* records read back that did not verify */
	uint64_t scan_records;	  /* valid records found by the restart scan */
	uint64_t scan_reclaimed;  /* slots with torn/partial/invalid contents */
	uint64_t scan_duplicates; /* older copies of a key, reclaimed */
	uint64_t scan_segments_discarded;
	uint64_t scan_ns;
	uint64_t inflight_max; /* most requests in flight at once */
	uint64_t submit_calls; /* batched submissions */
	uint64_t requests;     /* requests submitted */
};

/* Open (or create) the tier in cfg->dir, scanning what is stored.
 * -EBUSY: another process has the directory open (flock); -EINVAL bad
 * config, or O_DIRECT refused by the filesystem (TIER_DISK_BUFFERED
 * allows that); other -errno from the filesystem. */
int tier_disk_open(const struct tier_disk_config *cfg, struct tier_disk **out);
/* Finish what is in flight, stop the I/O thread, close.  NULL: no-op. */
void tier_disk_close(struct tier_disk *d);

/* Queue n requests with one wakeup of the I/O thread (-EINVAL without
 * storage: tier_disk_account). */
int tier_disk_submit(struct tier_disk *d, struct tier_disk_op *const *ops, uint32_t n);
/* Synchronous forms: return op->result. */
int tier_disk_put(struct tier_disk *d, uint64_t key, const void *rec, uint64_t len);
int tier_disk_get(struct tier_disk *d, uint64_t key, void *buf, uint64_t len, struct tier_rec *rec);
/*
 * A disk tier without storage (TIER_DISK_NO_STORAGE): op's bookkeeping in
 * the caller, in two steps as the I/O thread would: tier_disk_account
 * starts it (a PUT takes a slot for op->rec's key, parent and seq as a
 * record of op->len bytes, evicting the coldest leaf if need be; a GET
 * finds the record, holds it against eviction and fills op->rec's key,
 * parent and seq) and returns op->result, as tier_disk_submit's results (a
 * GET is never -EBADMSG or -EIO: there is nothing to read or verify);
 * tier_disk_account_end completes a started op (the PUT's record becomes
 * readable, the GET's is let go and counted as used).  op->done is not
 * called, op->buf is not used.  -EINVAL with storage (use submit).
 */
int tier_disk_account(struct tier_disk *d, struct tier_disk_op *op);
void tier_disk_account_end(struct tier_disk *d, struct tier_disk_op *op);
/* Is key stored (a complete, indexed record)? */
bool tier_disk_contains(struct tier_disk *d, uint64_t key);
/* Drop key (no I/O: the slot is reused later).  -ENOENT if absent. */
int tier_disk_remove(struct tier_disk *d, uint64_t key);
/* Visit every stored key (under the tier's lock: fn must be quick and not
 * call into the tier). */
void tier_disk_for_each(struct tier_disk *d, void (*fn)(void *arg, uint64_t key, uint64_t parent),
			void *arg);
/* A sequence number for the next record written (above every record found
 * by the restart scan, so the newest copy of a key wins a later scan). */
uint64_t tier_disk_seq_next(struct tier_disk *d);
/* Wait until nothing is queued or in flight. */
void tier_disk_drain(struct tier_disk *d);
void tier_disk_get_stats(struct tier_disk *d, struct tier_disk_stats *st);

#endif /* KVMM_TIER_DISK_H */
