// SPDX-License-Identifier: MIT
/*
 * tier_disk.c - the disk tier: open/close, segment files, the index and
 * its leaf-first LRU eviction, the public calls.  The I/O thread is in
 * tier_disk_io.c, the restart scan in tier_disk_scan.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier_disk_internal.h"
#include "tier_hash.h"
#include "tier_le.h"

#define DEFAULT_SEGMENT (1ull << 30)
#define DEFAULT_DEPTH	64u
#define DEFAULT_IO	(1u << 20)
#define MAX_DEPTH	4096u
#define MAX_IO		(64u << 20)
#define MAX_SLOT	(1ull << 30)

void disk_log(struct tier_disk *d, uint32_t kind, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	int n;

	if (!d->cfg.log || (atomic_fetch_or(&d->logged, kind) & kind))
		return;
	n = snprintf(msg, sizeof(msg), "kvmm disk tier %s: ", d->dir);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(msg))
		vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	d->cfg.log(d->cfg.log_arg, msg);
}

uint32_t disk_slot_seg(const struct tier_disk *d, uint32_t slot)
{
	return slot / d->slots_per_seg;
}

uint64_t disk_seg_base(const struct tier_disk *d, uint32_t idx)
{
	return d->devfd >= 0 ? (uint64_t)idx * d->seg_bytes : 0;
}

uint64_t disk_slot_off(const struct tier_disk *d, uint32_t slot)
{
	return disk_seg_base(d, slot / d->slots_per_seg) + SEG_HDR +
	       (uint64_t)(slot % d->slots_per_seg) * d->slot_bytes;
}

void disk_seg_name(char *buf, size_t len, uint32_t idx)
{
	snprintf(buf, len, "seg-%05u.kvmm", idx);
}

/* Segment header: magic, XXH3-64 of [16, 4096), version, index, segment
 * and slot sizes (docs/disk-format.md). */
void disk_seg_header(const struct tier_disk *d, void *page, uint32_t idx)
{
	unsigned char *p = page;

	memset(p, 0, SEG_HDR);
	tier_put_le64(p, SEG_MAGIC);
	tier_put_le64(p + 16, SEG_VERSION | (uint64_t)idx << 32);
	tier_put_le64(p + 24, d->seg_bytes);
	tier_put_le64(p + 32, d->slot_bytes);
	tier_put_le64(p + 8, tier_xxh3(p + 16, SEG_HDR - 16));
}

bool disk_seg_header_ok(const struct tier_disk *d, const void *page, uint32_t idx)
{
	const unsigned char *p = page;

	return tier_get_le64(p) == SEG_MAGIC &&
	       tier_get_le64(p + 8) == tier_xxh3(p + 16, SEG_HDR - 16) &&
	       tier_get_le64(p + 16) == (SEG_VERSION | (uint64_t)idx << 32) &&
	       tier_get_le64(p + 24) == d->seg_bytes && tier_get_le64(p + 32) == d->slot_bytes;
}

int disk_seg_create(struct tier_disk *d, struct tier_io *io, uint32_t idx, int *out)
{
	char name[32];
	int fd, ret;

	if (d->devfd >= 0) {
		/* a block device: the segment is there, its header is
		 * written next */
		ret = io->ops->set_file(io, idx, d->devfd);
		if (!ret)
			*out = d->devfd;
		return ret;
	}
	disk_seg_name(name, sizeof(name), idx);
	fd = openat(d->dirfd, name, O_RDWR | O_CLOEXEC | O_CREAT | O_TRUNC | d->open_flags, 0600);
	if (fd < 0)
		return -errno;
	ret = io->ops->allocate(io, fd, d->seg_bytes);
	if (!ret)
		ret = io->ops->set_file(io, idx, fd);
	if (ret) {
		close(fd);
		unlinkat(d->dirfd, name, 0);
		return ret;
	}
	*out = fd;
	return 0;
}

int disk_buf_index(const struct tier_disk *d, const void *buf, uint64_t len)
{
	uintptr_t a = (uintptr_t)buf;
	uint32_t lo = 0, hi = d->nbufs;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		uintptr_t b = (uintptr_t)d->bufs[mid].iov_base;

		if (a < b) {
			hi = mid;
		} else if (a >= b + d->bufs[mid].iov_len) {
			lo = mid + 1;
		} else {
			if (len <= b + d->bufs[mid].iov_len - a)
				return (int)mid;
			return -1;
		}
	}
	return -1;
}

/* ---- index: leaf-first LRU ---------------------------------------------- */

static void lru_remove(struct tier_disk *d, uint32_t s)
{
	struct dslot *x = &d->slots[s];

	if (!x->on_lru)
		return;
	if (x->prev != NIL)
		d->slots[x->prev].next = x->next;
	else
		d->lru_head = x->next;
	if (x->next != NIL)
		d->slots[x->next].prev = x->prev;
	else
		d->lru_tail = x->prev;
	x->prev = x->next = NIL;
	x->on_lru = 0;
}

static void lru_push(struct tier_disk *d, uint32_t s, bool hot)
{
	struct dslot *x = &d->slots[s];

	if (x->on_lru)
		return;
	x->on_lru = 1;
	if (hot) {
		x->prev = d->lru_tail;
		x->next = NIL;
		if (d->lru_tail != NIL)
			d->slots[d->lru_tail].next = s;
		else
			d->lru_head = s;
		d->lru_tail = s;
	} else {
		x->next = d->lru_head;
		x->prev = NIL;
		if (d->lru_head != NIL)
			d->slots[d->lru_head].prev = s;
		else
			d->lru_tail = s;
		d->lru_head = s;
	}
}

void disk_lru_touch(struct tier_disk *d, uint32_t s)
{
	if (!d->slots[s].on_lru)
		return;
	lru_remove(d, s);
	lru_push(d, s, true);
}

static uint64_t nchildren(struct tier_disk *d, uint64_t key)
{
	uint64_t n = 0;

	u64map_get(&d->children, key, &n);
	return n;
}

static bool valid_slot_of(struct tier_disk *d, uint64_t key, uint32_t *slot)
{
	uint64_t v;

	if (!u64map_get(&d->index, key, &v) || d->slots[v].state != SLOT_VALID)
		return false;
	*slot = (uint32_t)v;
	return true;
}

void disk_free_slot(struct tier_disk *d, uint32_t slot)
{
	d->slots[slot].state = SLOT_FREE;
	d->slots[slot].readers = 0;
	d->free_slots[d->nfree++] = slot;
}

/* The slot of key, valid or being written. */
static bool slot_of(struct tier_disk *d, uint64_t key, uint32_t *slot)
{
	uint64_t v;

	if (!u64map_get(&d->index, key, &v) ||
	    (d->slots[v].state != SLOT_VALID && d->slots[v].state != SLOT_WRITING))
		return false;
	*slot = (uint32_t)v;
	return true;
}

/*
 * A record takes its place in the leaf LRU when its write starts (newest
 * last), not when the write completes: the order of records, and so which
 * one a later put evicts, follows the order of the puts, not of their
 * completions (nor differs from a disk tier without storage).  Records
 * being written are skipped by eviction.
 */
void disk_index_link(struct tier_disk *d, uint32_t s)
{
	struct dslot *x = &d->slots[s];
	uint64_t n = nchildren(d, x->parent);
	uint32_t p;

	if (x->linked)
		return;
	x->linked = 1;
	/* The children map may fail to grow only on -ENOMEM; the record
	 * then just is not protected from eviction before its child. */
	u64map_put(&d->children, x->parent, n + 1);
	if (slot_of(d, x->parent, &p))
		lru_remove(d, p);
	if (!nchildren(d, x->key))
		lru_push(d, s, true);
}

void disk_index_unlink(struct tier_disk *d, uint32_t s)
{
	struct dslot *x = &d->slots[s];
	uint64_t n;
	uint32_t p;

	if (!x->linked)
		return;
	x->linked = 0;
	lru_remove(d, s);
	n = nchildren(d, x->parent);
	if (n > 1) {
		u64map_put(&d->children, x->parent, n - 1);
	} else {
		u64map_del(&d->children, x->parent, NULL);
		/* The parent lost its last child on disk: it is a leaf now,
		 * and likely cold (its child was evicted first). */
		if (slot_of(d, x->parent, &p))
			lru_push(d, p, false);
	}
}

void disk_index_add_valid(struct tier_disk *d, uint32_t s)
{
	struct dslot *x = &d->slots[s];

	x->state = SLOT_VALID;
	if (!x->linked)
		disk_index_link(d, s); /* (the restart scan's records) */
	d->st.records++;
	d->st.bytes_stored += x->bytes;
}

void disk_drop_locked(struct tier_disk *d, uint32_t s)
{
	struct dslot *x = &d->slots[s];
	uint64_t v;

	if (x->state != SLOT_VALID)
		return;
	if (u64map_get(&d->index, x->key, &v) && v == s)
		u64map_del(&d->index, x->key, NULL);
	lru_remove(d, s);
	disk_index_unlink(d, s);
	d->st.records--;
	d->st.bytes_stored -= x->bytes;
	if (x->readers)
		x->state = SLOT_DEAD;
	else
		disk_free_slot(d, s);
}

/* ---- open / close ------------------------------------------------------ */

static int cmp_iov(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct iovec *)a)->iov_base;
	uintptr_t y = (uintptr_t)((const struct iovec *)b)->iov_base;

	return x < y ? -1 : x > y;
}

static int check_config(const struct tier_disk_config *c)
{
	if (!c->dir || !c->dir[0] || !c->slot_bytes || c->slot_bytes % TIER_REC_ALIGN ||
	    c->slot_bytes > MAX_SLOT || c->flags & ~TIER_DISK__FLAGS ||
	    c->queue_depth > MAX_DEPTH || c->io_bytes % TIER_REC_ALIGN || c->io_bytes > MAX_IO ||
	    (c->nbufs && !c->bufs) || c->nbufs > 16384 || c->__pad)
		return -EINVAL;
	if (c->segment_bytes && c->segment_bytes < SEG_HDR + c->slot_bytes)
		return -EINVAL;
	if (c->capacity_bytes < SEG_HDR + c->slot_bytes)
		return -EINVAL;
	return 0;
}

static int geometry(struct tier_disk *d, const struct tier_disk_config *c)
{
	uint64_t seg = c->segment_bytes ? c->segment_bytes : DEFAULT_SEGMENT;
	uint64_t per, total;

	if (seg > c->capacity_bytes)
		seg = c->capacity_bytes;
	per = (seg - SEG_HDR) / c->slot_bytes;
	if (!per)
		return -EINVAL;
	d->slot_bytes = c->slot_bytes;
	d->seg_bytes = SEG_HDR + per * c->slot_bytes;
	total = c->capacity_bytes / d->seg_bytes;
	if (total * per >= NIL || per >= NIL || total > 65536)
		return -E2BIG;
	d->slots_per_seg = (uint32_t)per;
	d->max_segs = (uint32_t)total;
	return 0;
}

/* Can this directory's filesystem do O_DIRECT?  tmpfs cannot. */
static int probe_direct(struct tier_disk *d)
{
	int fd = openat(d->dirfd, ".kvmm-direct-probe", O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC,
			0600);

	if (fd < 0)
		return -errno;
	close(fd);
	unlinkat(d->dirfd, ".kvmm-direct-probe", 0);
	return 0;
}

/* A block device as the storage: opened exclusively (O_EXCL: nobody else,
 * no mounted filesystem), segments laid end to end on it. */
static int open_device(struct tier_disk *d)
{
	uint64_t size = 0;

	d->open_flags = d->cfg.flags & TIER_DISK_BUFFERED ? 0 : O_DIRECT;
	d->devfd = open(d->dir, O_RDWR | O_EXCL | O_CLOEXEC | d->open_flags);
	if (d->devfd < 0)
		return -errno;
	if (ioctl(d->devfd, BLKGETSIZE64, &size))
		return -errno;
	if (d->cfg.capacity_bytes > size)
		d->cfg.capacity_bytes = size;
	return 0;
}

static int open_dir(struct tier_disk *d)
{
	int ret;

	if (d->devfd >= 0)
		return 0;
	if (mkdir(d->dir, 0700) && errno != EEXIST)
		return -errno;
	d->dirfd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dirfd < 0)
		return -errno;
	d->lockfd = openat(d->dirfd, "kvmm-disk.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->lockfd < 0)
		return -errno;
	/* One process per directory: two would overwrite each other's slots. */
	if (flock(d->lockfd, LOCK_EX | LOCK_NB))
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	d->open_flags = O_DIRECT;
	if (d->cfg.flags & TIER_DISK_BUFFERED) {
		d->open_flags = 0;
	} else {
		ret = probe_direct(d);
		if (ret) {
			disk_log(d, LOG_ENGINE,
				 "the filesystem refuses O_DIRECT (%s); use a directory on a "
				 "disk filesystem, or allow buffered I/O",
				 strerror(-ret));
			return -EINVAL;
		}
	}
	return 0;
}

static void disk_free(struct tier_disk *d)
{
	if (d->segs && d->devfd < 0) {
		for (uint32_t i = 0; i < d->max_segs; i++)
			if (d->segs[i].fd >= 0)
				close(d->segs[i].fd);
	}
	if (d->devfd >= 0)
		close(d->devfd);
	if (d->lockfd >= 0)
		close(d->lockfd);
	if (d->dirfd >= 0)
		close(d->dirfd);
	if (d->evfd >= 0)
		close(d->evfd);
	u64map_free(&d->index);
	u64map_free(&d->children);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->idle);
	free(d->segs);
	free(d->slots);
	free(d->free_slots);
	free(d->bufs);
	free(d->dir);
	free(d);
}

int tier_disk_open(const struct tier_disk_config *cfg, struct tier_disk **out)
{
	struct tier_disk *d;
	uint64_t nslots;
	int ret;

	if (!cfg || !out)
		return -EINVAL;
	*out = NULL;
	ret = check_config(cfg);
	if (ret)
		return ret;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->cfg = *cfg;
	d->dirfd = d->lockfd = d->evfd = d->devfd = -1;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->idle, NULL);
	u64map_init(&d->index);
	u64map_init(&d->children);
	d->lru_head = d->lru_tail = NIL;
	d->getq_tail = &d->getq;
	d->putq_tail = &d->putq;
	if (!d->cfg.queue_depth)
		d->cfg.queue_depth = DEFAULT_DEPTH;
	if (!d->cfg.io_bytes)
		d->cfg.io_bytes = DEFAULT_IO;
	d->depth = d->cfg.queue_depth;
	d->dir = strdup(cfg->dir);
	if (!d->dir) {
		ret = -ENOMEM;
		goto fail;
	}
	d->cfg.dir = d->dir;
	if (cfg->flags & TIER_DISK_NO_STORAGE) {
		/* nothing to register, open or scan: it starts empty */
		d->cfg.nbufs = 0;
		d->cfg.bufs = NULL;
	} else {
		struct stat stb;

		if (!stat(d->dir, &stb) && S_ISBLK(stb.st_mode)) {
			ret = open_device(d);
			if (ret)
				goto fail;
		}
	}
	ret = geometry(d, &d->cfg);
	if (ret)
		goto fail;
	if (d->cfg.nbufs) {
		d->bufs = malloc(cfg->nbufs * sizeof(*d->bufs));
		if (!d->bufs) {
			ret = -ENOMEM;
			goto fail;
		}
		memcpy(d->bufs, cfg->bufs, cfg->nbufs * sizeof(*d->bufs));
		qsort(d->bufs, cfg->nbufs, sizeof(*d->bufs), cmp_iov);
		d->nbufs = cfg->nbufs;
		d->cfg.bufs = d->bufs;
	}
	nslots = (uint64_t)d->max_segs * d->slots_per_seg;
	d->segs = calloc(d->max_segs, sizeof(*d->segs));
	d->slots = calloc(nslots, sizeof(*d->slots));
	d->free_slots = malloc(nslots * sizeof(*d->free_slots));
	if (!d->segs || !d->slots || !d->free_slots) {
		ret = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < d->max_segs; i++)
		d->segs[i].fd = -1;
	for (uint64_t i = 0; i < nslots; i++)
		d->slots[i].prev = d->slots[i].next = NIL;
	if (cfg->flags & TIER_DISK_NO_STORAGE) {
		*out = d;
		return 0;
	}
	d->evfd = eventfd(0, EFD_CLOEXEC);
	if (d->evfd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = open_dir(d);
	if (ret)
		goto fail;
	ret = disk_scan_open_segments(d);
	if (ret)
		goto fail;
	ret = disk_io_start(d);
	if (ret)
		goto fail;
	ret = disk_scan(d);
	if (ret)
		goto fail_io;
	*out = d;
	return 0;
fail_io:
	disk_io_stop(d);
fail:
	disk_free(d);
	return ret;
}

void tier_disk_close(struct tier_disk *d)
{
	if (!d)
		return;
	disk_io_stop(d);
	disk_free(d);
}

/* ---- requests ---------------------------------------------------------- */

int tier_disk_submit(struct tier_disk *d, struct tier_disk_op *const *ops, uint32_t n)
{
	if (!d || (!ops && n) || d->cfg.flags & TIER_DISK_NO_STORAGE)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		const struct tier_disk_op *op = ops[i];

		if (!op || !op->buf || (uintptr_t)op->buf % TIER_REC_ALIGN || !op->len ||
		    op->len % TIER_REC_ALIGN || !op->done ||
		    (op->kind != TIER_DISK_PUT && op->kind != TIER_DISK_GET))
			return -EINVAL;
	}
	pthread_mutex_lock(&d->lock);
	for (uint32_t i = 0; i < n; i++) {
		struct tier_disk_op *op = ops[i];

		op->next = NULL;
		op->result = 0;
		op->err = 0;
		op->verified = false;
		if (op->kind == TIER_DISK_GET) {
			*d->getq_tail = op;
			d->getq_tail = &op->next;
		} else {
			*d->putq_tail = op;
			d->putq_tail = &op->next;
		}
	}
	d->busy += n;
	pthread_mutex_unlock(&d->lock);
	if (n)
		disk_io_wake(d);
	return 0;
}

struct sync_wait {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
};

static void sync_done(struct tier_disk_op *op)
{
	struct sync_wait *w = op->arg;

	pthread_mutex_lock(&w->m);
	w->done = true;
	pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

static int run_sync(struct tier_disk *d, struct tier_disk_op *op)
{
	struct sync_wait w = {.done = false};
	int ret;

	pthread_mutex_init(&w.m, NULL);
	pthread_cond_init(&w.c, NULL);
	op->done = sync_done;
	op->arg = &w;
	ret = tier_disk_submit(d, &op, 1);
	if (!ret) {
		pthread_mutex_lock(&w.m);
		while (!w.done)
			pthread_cond_wait(&w.c, &w.m);
		pthread_mutex_unlock(&w.m);
		ret = op->result;
	}
	pthread_cond_destroy(&w.c);
	pthread_mutex_destroy(&w.m);
	return ret;
}

int tier_disk_put(struct tier_disk *d, uint64_t key, const void *rec, uint64_t len)
{
	struct tier_disk_op op = {
		.kind = TIER_DISK_PUT, .key = key, .buf = (void *)rec, .len = len};

	return run_sync(d, &op);
}

int tier_disk_get(struct tier_disk *d, uint64_t key, void *buf, uint64_t len, struct tier_rec *rec)
{
	struct tier_disk_op op = {.kind = TIER_DISK_GET, .key = key, .buf = buf, .len = len};
	int ret = run_sync(d, &op);

	if (!ret && rec)
		*rec = op.rec;
	return ret;
}

bool tier_disk_contains(struct tier_disk *d, uint64_t key)
{
	uint32_t s;
	bool r;

	if (!d)
		return false;
	pthread_mutex_lock(&d->lock);
	r = valid_slot_of(d, key, &s);
	pthread_mutex_unlock(&d->lock);
	return r;
}

int tier_disk_remove(struct tier_disk *d, uint64_t key)
{
	uint64_t v;
	int ret = -ENOENT;

	if (!d)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	if (u64map_get(&d->index, key, &v)) {
		if (d->slots[v].state == SLOT_VALID) {
			disk_drop_locked(d, (uint32_t)v);
			ret = 0;
		} else {
			ret = -EBUSY; /* being written */
		}
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void tier_disk_for_each(struct tier_disk *d, void (*fn)(void *arg, uint64_t key, uint64_t parent),
			void *arg)
{
	uint64_t k, v;

	if (!d || !fn)
		return;
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; u64map_next(&d->index, &i, &k, &v);)
		if (d->slots[v].state == SLOT_VALID)
			fn(arg, k, d->slots[v].parent);
	pthread_mutex_unlock(&d->lock);
}

void tier_disk_drain(struct tier_disk *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	while (d->busy)
		pthread_cond_wait(&d->idle, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

uint64_t tier_disk_seq_next(struct tier_disk *d)
{
	uint64_t s;

	pthread_mutex_lock(&d->lock);
	s = ++d->seq_max;
	pthread_mutex_unlock(&d->lock);
	return s;
}

void tier_disk_get_stats(struct tier_disk *d, struct tier_disk_stats *st)
{
	if (!d || !st)
		return;
	pthread_mutex_lock(&d->lock);
	*st = d->st;
	st->engine = d->io_ops				   ? d->io_ops->name
		     : d->cfg.flags & TIER_DISK_NO_STORAGE ? "none (no storage)"
							   : "none";
	st->direct = d->open_flags != 0;
	st->capacity_bytes = (uint64_t)d->max_segs * d->seg_bytes;
	st->slot_bytes = d->slot_bytes;
	st->slots_total = (uint64_t)d->nsegs_live * d->slots_per_seg;
	st->slots_max = (uint64_t)d->max_segs * d->slots_per_seg;
	st->segments = d->nsegs_live;
	pthread_mutex_unlock(&d->lock);
}
