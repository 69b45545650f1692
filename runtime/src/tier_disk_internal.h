/* SPDX-License-Identifier: MIT */
/*
 * tier_disk_internal.h - what the disk tier's files share: the tier
 * (tier_disk.c: open/close, index, eviction), its I/O thread
 * (tier_disk_io.c) and its restart scan (tier_disk_scan.c).
 */
#ifndef KVMM_TIER_DISK_INTERNAL_H
#define KVMM_TIER_DISK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "tier_disk.h"
#include "u64map.h"

#define SEG_MAGIC   0x314745534d4d564bull /* "KVMMSEG1" */
#define SEG_VERSION 1
#define SEG_HDR	    4096u
#define NIL	    UINT32_MAX

/* Internal operations, next to TIER_DISK_PUT and TIER_DISK_GET: the segment
 * header write, and the scan's raw reads (op->file, op->base, op->bytes
 * set by the submitter; no index involved). */
#define OP_SEGHDR  2
#define OP_READRAW 3

enum slot_state {
	SLOT_ABSENT = 0, /* its segment does not exist */
	SLOT_FREE,
	SLOT_WRITING, /* a put is writing it; indexed, not readable */
	SLOT_VALID,   /* a verified record; readable */
	SLOT_DEAD,    /* dropped while being read: freed by the last reader */
};

struct dslot {
	uint64_t key, parent, seq, bytes;
	uint32_t prev, next; /* leaf LRU links */
	uint32_t readers;
	uint8_t state;
	uint8_t on_lru;
	uint8_t linked; /* counted as its parent's child (disk_index_link) */
	uint8_t __pad;
};

struct dseg {
	int fd;
	void *hdr; /* the segment header page while its write is in flight */
};

/* Kinds of errors logged once each. */
enum {
	LOG_IO = 1u << 0,
	LOG_NOSPACE = 1u << 1,
	LOG_SHORT = 1u << 2,
	LOG_CHECKSUM = 1u << 3,
	LOG_ENGINE = 1u << 4,
	LOG_SEGMENT = 1u << 5,
};

struct tier_disk {
	struct tier_disk_config cfg; /* cfg.dir points at dir below */
	char *dir;
	int dirfd, lockfd;
	int devfd;	/* a block device as storage (raw), else -1 */
	int open_flags; /* O_DIRECT or 0 */
	uint64_t seg_bytes, slot_bytes;
	uint32_t slots_per_seg, max_segs;
	uint64_t seq_max;   /* highest sequence number seen by the scan */
	struct iovec *bufs; /* registered memory, sorted by address */
	uint32_t nbufs;
	const struct tier_io_ops *io_ops;

	pthread_mutex_t lock; /* everything below up to the I/O thread's part */
	pthread_cond_t idle;
	uint32_t nsegs_live; /* segments created */
	struct dseg *segs;
	struct dslot *slots;
	uint32_t *free_slots;
	uint32_t nfree;
	struct u64map index;	/* key -> slot (WRITING or VALID) */
	struct u64map children; /* parent key -> VALID records with that parent */
	uint32_t lru_head;	/* coldest leaf */
	uint32_t lru_tail;
	struct tier_disk_op *getq, **getq_tail, *putq, **putq_tail;
	uint64_t busy; /* ops submitted and not yet finished */
	bool stop;
	int init_ret; /* the I/O thread's engine start */
	bool started;
	uint64_t seg_retry_ns; /* segment creation failed: not before this */
	struct tier_disk_stats st;

	int evfd;
	pthread_t thread;
	_Atomic uint32_t logged;

	/* The I/O thread's own (no lock). */
	struct tier_io io;
	struct tier_io_req *reqs;
	struct tier_io_req **free_reqs, **batch, **done;
	uint32_t nfree_reqs, inflight, depth;
	struct tier_disk_op *active; /* ops with requests left to issue */
	struct tier_disk_op *verify; /* GETs read, to be checked */
};

/* tier_disk.c */
void disk_log(struct tier_disk *d, uint32_t kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
uint64_t disk_slot_off(const struct tier_disk *d, uint32_t slot);
/* Offset of segment idx's header in its file (0, or idx segments into a
 * block device). */
uint64_t disk_seg_base(const struct tier_disk *d, uint32_t idx);
uint32_t disk_slot_seg(const struct tier_disk *d, uint32_t slot);
/* Index changes, with d->lock held. */
/* A record being written counts as its parent's child at once: the parent
 * stops being an evictable leaf when the write starts, not when it
 * completes, so which record a later put evicts does not depend on I/O
 * timing (nor differ from a disk tier without storage). */
void disk_index_link(struct tier_disk *d, uint32_t slot);
void disk_index_unlink(struct tier_disk *d, uint32_t slot);
void disk_index_add_valid(struct tier_disk *d, uint32_t slot);
void disk_drop_locked(struct tier_disk *d, uint32_t slot);
void disk_lru_touch(struct tier_disk *d, uint32_t slot);
void disk_free_slot(struct tier_disk *d, uint32_t slot);
/* Segment file name into buf. */
void disk_seg_name(char *buf, size_t len, uint32_t idx);
/* Create segment idx's file, preallocated, in the engine's file table. */
int disk_seg_create(struct tier_disk *d, struct tier_io *io, uint32_t idx, int *fd);
void disk_seg_header(const struct tier_disk *d, void *page, uint32_t idx);
bool disk_seg_header_ok(const struct tier_disk *d, const void *page, uint32_t idx);
/* Is [buf, buf+len) inside registered memory?  Its index or -1. */
int disk_buf_index(const struct tier_disk *d, const void *buf, uint64_t len);

/* tier_disk_io.c */
/* Queue internal operations (the scan's raw reads). */
void disk_submit_raw(struct tier_disk *d, struct tier_disk_op *const *ops, uint32_t n);
int disk_engine_init(struct tier_disk *d, struct tier_io *io, bool with_bufs, int notify_fd);
int disk_io_start(struct tier_disk *d);
void disk_io_stop(struct tier_disk *d);
void disk_io_wake(struct tier_disk *d);

/* tier_disk_scan.c: open the segment files found (before the I/O thread
 * starts, which registers them), then scan them through it. */
int disk_scan_open_segments(struct tier_disk *d);
int disk_scan(struct tier_disk *d);

#endif /* KVMM_TIER_DISK_INTERNAL_H */
