// SPDX-License-Identifier: MIT
/*
 * tier_disk_io.c - the disk tier's I/O thread.
 *
 * It owns the engine (one ring, so no ring lock), turns queued puts and
 * gets into requests of at most io_bytes, keeps up to queue_depth of them
 * in flight, submits each batch with one system call, and finishes an
 * operation when its last request completes: a put becomes readable only
 * then, a get is verified (header, key, payload checksum) before it is
 * reported good.  Gets are issued before puts: a restore is on someone's
 * critical path, a spill is not.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache_internal.h"
#include "tier_disk_internal.h"
#include "tier_hash.h"
#include "tier_hashpool.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_DEFINED
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void)(p), (void)(n))
#endif

void disk_submit_raw(struct tier_disk *d, struct tier_disk_op *const *ops, uint32_t n)
{
	pthread_mutex_lock(&d->lock);
	for (uint32_t i = 0; i < n; i++) {
		ops[i]->kind = (enum tier_disk_opkind)OP_READRAW;
		ops[i]->next = NULL;
		ops[i]->err = 0;
		*d->getq_tail = ops[i];
		d->getq_tail = &ops[i]->next;
	}
	d->busy += n;
	pthread_mutex_unlock(&d->lock);
	disk_io_wake(d);
}

void disk_io_wake(struct tier_disk *d)
{
	uint64_t one = 1;

	while (write(d->evfd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* Start the engine the configuration asks for; io_uring falls back to
 * pread/pwrite when the kernel or a seccomp profile refuses it. */
int disk_engine_init(struct tier_disk *d, struct tier_io *io, bool with_bufs, int notify_fd)
{
	struct tier_io_params p = {
		.depth = d->depth,
		.nfiles = d->max_segs,
		.bufs = with_bufs ? d->bufs : NULL,
		.nbufs = with_bufs ? d->nbufs : 0,
		.notify_fd = notify_fd,
	};
	const struct tier_io_ops *ops = d->cfg.io_ops;
	int ret;

	if (!ops)
		ops = d->cfg.flags & TIER_DISK_PSYNC ? &tier_io_psync_ops : &tier_io_uring_ops;
	memset(io, 0, sizeof(*io));
	io->ops = ops;
	io->wrap_arg = d->cfg.io_arg;
	ret = ops->init(io, &p);
	if (ret && ops == &tier_io_uring_ops && !d->cfg.io_ops) {
		disk_log(d, LOG_ENGINE, "io_uring unavailable (%s): using pread/pwrite",
			 strerror(-ret));
		ops = &tier_io_psync_ops;
		memset(io, 0, sizeof(*io));
		io->ops = ops;
		ret = ops->init(io, &p);
	}
	if (!ret)
		d->io_ops = ops;
	return ret;
}

static void finish_list(struct tier_disk *d, struct tier_disk_op *fin)
{
	struct tier_disk_op *rev = NULL;
	uint32_t n = 0;

	/* the list was built newest first: tell the owners in the order the
	 * operations finished (a write-back that waits for the coldest
	 * record's write then sees it done first) */
	while (fin) {
		struct tier_disk_op *op = fin;

		fin = op->next;
		op->next = rev;
		rev = op;
	}
	fin = rev;
	while (fin) {
		struct tier_disk_op *op = fin;

		fin = op->next;
		if (op->kind == (enum tier_disk_opkind)OP_SEGHDR) {
			munmap(op->buf, SEG_HDR);
			free(op);
		} else {
			op->done(op);
		}
		n++;
	}
	if (!n)
		return;
	pthread_mutex_lock(&d->lock);
	d->busy -= n;
	if (!d->busy)
		pthread_cond_broadcast(&d->idle);
	pthread_mutex_unlock(&d->lock);
}

static void push_active(struct tier_disk *d, struct tier_disk_op *op)
{
	struct tier_disk_op **pp = &d->active;

	/* gets first, in arrival order; then puts */
	if (op->kind == TIER_DISK_GET)
		while (*pp && (*pp)->kind == TIER_DISK_GET)
			pp = &(*pp)->next;
	else
		while (*pp)
			pp = &(*pp)->next;
	op->next = *pp;
	*pp = op;
}

/* Create the next segment file (lock not held). */
static int create_segment(struct tier_disk *d, uint32_t idx)
{
	struct tier_disk_op *op;
	void *page;
	int fd, ret;

	page = mmap(NULL, SEG_HDR, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	op = calloc(1, sizeof(*op));
	if (page == MAP_FAILED || !op) {
		if (page != MAP_FAILED)
			munmap(page, SEG_HDR);
		free(op);
		return -ENOMEM;
	}
	ret = disk_seg_create(d, &d->io, idx, &fd);
	if (ret) {
		munmap(page, SEG_HDR);
		free(op);
		return ret;
	}
	disk_seg_header(d, page, idx);
	op->kind = (enum tier_disk_opkind)OP_SEGHDR;
	op->buf = page;
	op->bytes = SEG_HDR;
	op->file = idx;
	op->base = disk_seg_base(d, idx);
	pthread_mutex_lock(&d->lock);
	d->segs[idx].fd = fd;
	d->nsegs_live++;
	for (uint32_t i = d->slots_per_seg; i-- > 0;)
		disk_free_slot(d, idx * d->slots_per_seg + i);
	d->busy++;
	pthread_mutex_unlock(&d->lock);
	push_active(d, op);
	return 0;
}

/* A free slot for a put: a free one, one of a new segment, or the coldest
 * leaf's.  Called with the lock held; may drop it to create a segment. */
static int alloc_slot(struct tier_disk *d, uint32_t *slot)
{
	for (;;) {
		uint32_t idx = d->max_segs;

		if (d->nfree) {
			*slot = d->free_slots[--d->nfree];
			return 0;
		}
		if (d->cfg.flags & TIER_DISK_NO_STORAGE && d->nsegs_live < d->max_segs) {
			/* capacity only: a segment is its slots, at once */
			idx = d->nsegs_live++;
			for (uint32_t i = d->slots_per_seg; i-- > 0;)
				disk_free_slot(d, idx * d->slots_per_seg + i);
			continue;
		}
		if (d->nsegs_live < d->max_segs && kvmm_now_ns() >= d->seg_retry_ns) {
			for (idx = 0; idx < d->max_segs && d->segs[idx].fd >= 0; idx++)
				;
		}
		if (idx < d->max_segs) {
			int ret;

			pthread_mutex_unlock(&d->lock);
			ret = create_segment(d, idx);
			pthread_mutex_lock(&d->lock);
			if (!ret)
				continue;
			/* try again in a second, not on every put */
			d->seg_retry_ns = kvmm_now_ns() + 1000000000ull;
			if (ret == -ENOSPC || ret == -EDQUOT) {
				/* The filesystem is full: live within what exists. */
				d->st.err_nospace++;
				disk_log(d, LOG_NOSPACE,
					 "cannot preallocate segment %u (%s): capacity limited "
					 "to %u segments",
					 idx, strerror(-ret), d->nsegs_live);
			} else {
				disk_log(d, LOG_SEGMENT, "cannot create segment %u: %s", idx,
					 strerror(-ret));
				if (!d->nsegs_live)
					return ret;
			}
			continue;
		}
		/* Evict the coldest leaf that nobody is reading. */
		for (uint32_t s = d->lru_head; s != NIL; s = d->slots[s].next) {
			if (d->slots[s].readers || d->slots[s].state != SLOT_VALID)
				continue;
			disk_drop_locked(d, s);
			d->st.evictions++;
			break;
		}
		if (!d->nfree)
			return -ENOSPC;
	}
}

/* Turn a queued op into an active one, or finish it at once (lock held). */
static void start_op(struct tier_disk *d, struct tier_disk_op *op, struct tier_disk_op **fin)
{
	struct tier_rec rec;
	uint64_t v;
	uint32_t slot = NIL;
	int ret;

	op->pending = 0;
	op->issued = 0;
	if (op->kind == (enum tier_disk_opkind)OP_READRAW) {
		push_active(d, op);
		return;
	}
	if (op->kind == TIER_DISK_GET) {
		d->st.gets++;
		if (!u64map_get(&d->index, op->key, &v) || d->slots[v].state != SLOT_VALID) {
			d->st.get_misses++;
			ret = -ENOENT;
		} else if (op->len < d->slots[v].bytes) {
			ret = -EMSGSIZE;
		} else {
			d->slots[v].readers++;
			op->slot = (uint32_t)v;
			op->file = disk_slot_seg(d, op->slot);
			op->base = disk_slot_off(d, op->slot);
			op->bytes = d->slots[v].bytes;
			push_active(d, op);
			return;
		}
		goto finish;
	}
	/* A put: the buffer must hold one valid record of this key. */
	ret = tier_rec_decode(op->buf, op->len, &rec);
	if (ret || rec.key != op->key ||
	    tier_rec_bytes(rec.ntokens, rec.payload_bytes) != op->len || op->len > d->slot_bytes) {
		ret = -EINVAL;
		goto finish_put;
	}
	if (u64map_get(&d->index, op->key, &v)) {
		d->st.put_exists++;
		ret = -EEXIST;
		goto finish;
	}
	ret = alloc_slot(d, &slot);
	if (ret)
		goto finish_put;
	/* The lock may have been dropped: a concurrent remove cannot add the
	 * key, only puts (this thread) do. */
	ret = u64map_put(&d->index, op->key, slot);
	if (ret) {
		disk_free_slot(d, slot);
		goto finish_put;
	}
	d->slots[slot] = (struct dslot){.key = rec.key,
					.parent = rec.parent,
					.seq = rec.seq,
					.bytes = op->len,
					.prev = NIL,
					.next = NIL,
					.state = SLOT_WRITING};
	disk_index_link(d, slot);
	if (rec.seq > d->seq_max)
		d->seq_max = rec.seq;
	op->slot = slot;
	op->file = disk_slot_seg(d, slot);
	op->base = disk_slot_off(d, slot);
	op->bytes = op->len;
	push_active(d, op);
	return;
finish_put:
	d->st.put_fail++;
finish:
	op->result = ret;
	op->next = *fin;
	*fin = op;
}

static void complete(struct tier_disk *d, struct tier_io_req *r, struct tier_disk_op **fin);

/* A GET of a disk tier without storage starts: the record is found and
 * held (it is not evicted until the GET ends), as start_op does. */
static int account_get(struct tier_disk *d, struct tier_disk_op *op)
{
	struct dslot *x;
	uint64_t v;

	d->st.gets++;
	if (!u64map_get(&d->index, op->key, &v) || d->slots[v].state != SLOT_VALID) {
		d->st.get_misses++;
		return -ENOENT;
	}
	x = &d->slots[v];
	if (op->len < x->bytes)
		return -EMSGSIZE;
	x->readers++;
	op->slot = (uint32_t)v;
	memset(&op->rec, 0, sizeof(op->rec));
	op->rec.key = x->key;
	op->rec.parent = x->parent;
	op->rec.seq = x->seq;
	return 0;
}

/* A PUT of a disk tier without storage starts: a slot taken (evicting if
 * need be), the record indexed and in the leaf LRU, as start_op does. */
static int account_put(struct tier_disk *d, struct tier_disk_op *op)
{
	uint32_t slot;
	int ret;

	if (op->rec.key != op->key || op->len > d->slot_bytes) {
		d->st.put_fail++;
		return -EINVAL;
	}
	if (u64map_get(&d->index, op->key, NULL)) {
		d->st.put_exists++;
		return -EEXIST;
	}
	ret = alloc_slot(d, &slot);
	if (!ret) {
		ret = u64map_put(&d->index, op->key, slot);
		if (ret)
			disk_free_slot(d, slot);
	}
	if (ret) {
		d->st.put_fail++;
		return ret;
	}
	d->slots[slot] = (struct dslot){.key = op->key,
					.parent = op->rec.parent,
					.seq = op->rec.seq,
					.bytes = op->len,
					.prev = NIL,
					.next = NIL,
					.state = SLOT_WRITING};
	disk_index_link(d, slot);
	if (op->rec.seq > d->seq_max)
		d->seq_max = op->rec.seq;
	op->slot = slot;
	return 0;
}

int tier_disk_account(struct tier_disk *d, struct tier_disk_op *op)
{
	int ret;

	if (!d || !op || !(d->cfg.flags & TIER_DISK_NO_STORAGE) || !op->len ||
	    op->len % TIER_REC_ALIGN || (op->kind != TIER_DISK_PUT && op->kind != TIER_DISK_GET))
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	ret = op->kind == TIER_DISK_GET ? account_get(d, op) : account_put(d, op);
	pthread_mutex_unlock(&d->lock);
	op->result = ret;
	op->bytes = ret ? 0 : op->len;
	return ret;
}

void tier_disk_account_end(struct tier_disk *d, struct tier_disk_op *op)
{
	struct dslot *x;

	if (!d || !op || op->result || !op->bytes)
		return;
	op->bytes = 0;
	x = &d->slots[op->slot];
	pthread_mutex_lock(&d->lock);
	if (op->kind == TIER_DISK_PUT) {
		disk_index_add_valid(d, op->slot);
		d->st.puts++;
		d->st.put_bytes += x->bytes;
	} else {
		x->readers--;
		d->st.get_hits++;
		d->st.get_bytes += x->bytes;
		if (x->state == SLOT_VALID)
			disk_lru_touch(d, op->slot);
		else if (x->state == SLOT_DEAD && !x->readers)
			disk_free_slot(d, op->slot);
	}
	pthread_mutex_unlock(&d->lock);
}

/* Ops with everything issued (or failed) leave the active list. */
static void prune_active(struct tier_disk *d)
{
	struct tier_disk_op **pp = &d->active;

	while (*pp) {
		struct tier_disk_op *op = *pp;

		if (op->issued == op->bytes || op->err)
			*pp = op->next;
		else
			pp = &op->next;
	}
}

/* Fill free requests from the active ops and submit them as one batch. */
static void issue(struct tier_disk *d, struct tier_disk_op **fin)
{
	uint32_t nb = 0;
	int taken;

	for (struct tier_disk_op *op = d->active; op && d->nfree_reqs; op = op->next) {
		while (op->issued < op->bytes && !op->err && d->nfree_reqs) {
			struct tier_io_req *r = d->free_reqs[--d->nfree_reqs];
			uint64_t len = op->bytes - op->issued;
			int bi;

			if (len > d->cfg.io_bytes)
				len = d->cfg.io_bytes;
			r->op = op->kind == TIER_DISK_GET ||
						op->kind == (enum tier_disk_opkind)OP_READRAW
					? TIER_IO_READ
					: TIER_IO_WRITE;
			r->file = op->file;
			r->off = op->base + op->issued;
			r->buf = (char *)op->buf + op->issued;
			r->len = (uint32_t)len;
			bi = d->io.bufs_registered ? disk_buf_index(d, r->buf, len) : -1;
			r->fixed = bi >= 0;
			r->buf_index = bi >= 0 ? (uint16_t)bi : 0;
			r->res = 0;
			r->user = op;
			op->issued += len;
			op->pending++;
			d->batch[nb++] = r;
		}
	}
	if (!nb)
		return;
	taken = d->io.ops->submit(&d->io, d->batch, nb);
	if (taken < 0) {
		/* The engine failed to submit: these requests failed. */
		d->inflight += nb;
		for (uint32_t i = 0; i < nb; i++) {
			d->batch[i]->res = taken;
			complete(d, d->batch[i], fin);
		}
		prune_active(d);
		return;
	}
	/* Not taken (engine full): undo, newest first, to issue again. */
	for (uint32_t i = nb; i-- > (uint32_t)taken;) {
		struct tier_io_req *r = d->batch[i];
		struct tier_disk_op *op = r->user;

		op->issued -= r->len;
		op->pending--;
		d->free_reqs[d->nfree_reqs++] = r;
	}
	d->inflight += (uint32_t)taken;
	prune_active(d);
	pthread_mutex_lock(&d->lock);
	d->st.submit_calls++;
	d->st.requests += (uint32_t)taken;
	if (d->inflight > d->st.inflight_max)
		d->st.inflight_max = d->inflight;
	pthread_mutex_unlock(&d->lock);
}

static void finish_op(struct tier_disk *d, struct tier_disk_op *op, struct tier_disk_op **fin)
{
	struct dslot *x = &d->slots[op->slot];
	int err = op->err;

	if (op->kind == (enum tier_disk_opkind)OP_READRAW) {
		/* the scan judges what it read */
		op->result = err;
		op->next = *fin;
		*fin = op;
		return;
	}
	if (op->kind == TIER_DISK_GET && !err && !op->verified) {
		/* checked after the next requests are on their way */
		op->next = d->verify;
		d->verify = op;
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (op->kind == (enum tier_disk_opkind)OP_SEGHDR) {
		/* A segment without a good header is discarded by the next
		 * scan; this run can use it. */
		if (err)
			disk_log(d, LOG_SEGMENT, "segment header write failed: %s", strerror(-err));
	} else if (op->kind == TIER_DISK_PUT) {
		if (err) {
			disk_index_unlink(d, op->slot);
			u64map_del(&d->index, op->key, NULL);
			disk_free_slot(d, op->slot);
			d->st.put_fail++;
		} else {
			disk_index_add_valid(d, op->slot);
			d->st.puts++;
			d->st.put_bytes += op->bytes;
		}
	} else {
		x->readers--;
		if (err) {
			if (err == -EBADMSG)
				d->st.err_checksum++;
			d->st.get_fail++;
			if (x->state == SLOT_VALID) {
				disk_drop_locked(d, op->slot);
				d->st.dropped++;
			}
		} else {
			d->st.get_hits++;
			d->st.get_bytes += op->bytes;
			disk_lru_touch(d, op->slot);
		}
		if (x->state == SLOT_DEAD && !x->readers)
			disk_free_slot(d, op->slot);
	}
	pthread_mutex_unlock(&d->lock);
	op->result = err;
	op->next = *fin;
	*fin = op;
}

static void complete(struct tier_disk *d, struct tier_io_req *r, struct tier_disk_op **fin)
{
	struct tier_disk_op *op = r->user;

	if (r->res != (int32_t)r->len) {
		int err = r->res < 0 ? r->res : -EIO;

		pthread_mutex_lock(&d->lock);
		if (r->res == -ENOSPC || r->res == -EDQUOT)
			d->st.err_nospace++;
		else if (r->res < 0)
			d->st.err_io++;
		else
			d->st.err_short++;
		pthread_mutex_unlock(&d->lock);
		if (r->res >= 0)
			disk_log(d, LOG_SHORT, "short %s: %d of %u bytes at offset %llu",
				 r->op == TIER_IO_READ ? "read" : "write", r->res, r->len,
				 (unsigned long long)r->off);
		else
			disk_log(d, r->res == -ENOSPC ? LOG_NOSPACE : LOG_IO, "%s failed: %s",
				 r->op == TIER_IO_READ ? "read" : "write", strerror(-r->res));
		if (!op->err)
			op->err = err;
	} else if (r->op == TIER_IO_READ) {
		/* the kernel wrote it: tell memcheck */
		VALGRIND_MAKE_MEM_DEFINED(r->buf, r->len);
	}
	d->free_reqs[d->nfree_reqs++] = r;
	d->inflight--;
	op->pending--;
	if (!op->pending && (op->issued == op->bytes || op->err))
		finish_op(d, op, fin);
}

/*
 * Never trust what came back: header, key and payload of every record
 * read.  Done once the next requests are submitted, so the device works
 * while we hash; the payloads of one batch hashed together (in parallel
 * with a hash pool).
 */
static void verify_reads(struct tier_disk *d, struct tier_disk_op **fin)
{
	const void *bufs[64] = {NULL};
	uint64_t lens[64] = {0}, got[64];
	struct tier_disk_op *batch[64], *hashed[64];

	while (d->verify) {
		uint32_t n = 0, m = 0;

		while (d->verify && n < 64) {
			struct tier_disk_op *op = d->verify;

			d->verify = op->next;
			op->verified = true;
			batch[n++] = op;
			if (tier_rec_decode(op->buf, op->bytes, &op->rec) ||
			    op->rec.key != op->key || op->rec.hash_shift != TIER_HASH_CHUNK_SHIFT ||
			    op->rec.payload_bytes > op->bytes - op->rec.hdr_bytes) {
				op->err = -EBADMSG;
				continue;
			}
			bufs[m] = (char *)op->buf + op->rec.hdr_bytes;
			lens[m] = op->rec.payload_bytes;
			hashed[m++] = op;
		}
		tier_hashpool_payloads(d->cfg.hashpool, bufs, lens, m, TIER_HASH_CHUNK_SHIFT, got);
		for (uint32_t i = 0; i < m; i++)
			if (got[i] != hashed[i]->rec.payload_hash)
				hashed[i]->err = -EBADMSG;
		for (uint32_t i = 0; i < n; i++) {
			if (batch[i]->err == -EBADMSG)
				disk_log(d, LOG_CHECKSUM,
					 "record %016llx read back corrupt: dropped (further ones "
					 "are counted, not logged)",
					 (unsigned long long)batch[i]->key);
			finish_op(d, batch[i], fin);
		}
	}
}

/* The engine is created on the I/O thread: the ring is single-issuer. */
static int io_thread_init(struct tier_disk *d)
{
	int ret = disk_engine_init(d, &d->io, true, d->evfd);

	for (uint32_t i = 0; i < d->max_segs && !ret; i++)
		if (d->segs[i].fd >= 0)
			ret = d->io.ops->set_file(&d->io, i, d->segs[i].fd);
	if (ret && d->io.priv)
		d->io.ops->exit(&d->io);
	return ret;
}

static void *io_main(void *arg)
{
	struct tier_disk *d = arg;
	int ret = io_thread_init(d);

	pthread_mutex_lock(&d->lock);
	d->init_ret = ret;
	d->started = true;
	d->st.bufs_registered = !ret && d->io.bufs_registered;
	pthread_cond_broadcast(&d->idle);
	pthread_mutex_unlock(&d->lock);
	if (ret)
		return NULL;
	for (;;) {
		struct tier_disk_op *fin = NULL, *q;
		bool quit;
		int n;

		pthread_mutex_lock(&d->lock);
		/* gets first */
		while ((q = d->getq)) {
			d->getq = q->next;
			if (!d->getq)
				d->getq_tail = &d->getq;
			start_op(d, q, &fin);
		}
		/* start_op may drop the lock (to create a segment): the queue
		 * stays consistent for submitters meanwhile */
		while ((q = d->putq)) {
			d->putq = q->next;
			if (!d->putq)
				d->putq_tail = &d->putq;
			start_op(d, q, &fin);
		}
		quit = d->stop && !d->active && !d->inflight && !d->getq && !d->putq && !fin;
		pthread_mutex_unlock(&d->lock);
		finish_list(d, fin);
		if (quit)
			break;
		fin = NULL;
		issue(d, &fin);
		/* the device has work: now check what was read */
		verify_reads(d, &fin);
		finish_list(d, fin);
		fin = NULL;
		/* sleeps until a completion, or new work written to evfd */
		n = d->io.ops->reap(&d->io, d->done, d->depth, true);
		for (int i = 0; i < n; i++)
			complete(d, d->done[i], &fin);
		finish_list(d, fin);
	}
	d->io.ops->exit(&d->io);
	return NULL;
}

static void free_reqs(struct tier_disk *d)
{
	free(d->reqs);
	free(d->free_reqs);
	free(d->batch);
	free(d->done);
	d->reqs = NULL;
	d->free_reqs = d->batch = d->done = NULL;
}

int disk_io_start(struct tier_disk *d)
{
	int ret;

	d->reqs = calloc(d->depth, sizeof(*d->reqs));
	d->free_reqs = malloc(d->depth * sizeof(*d->free_reqs));
	d->batch = malloc(d->depth * sizeof(*d->batch));
	d->done = malloc(d->depth * sizeof(*d->done));
	if (!d->reqs || !d->free_reqs || !d->batch || !d->done) {
		free_reqs(d);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < d->depth; i++)
		d->free_reqs[i] = &d->reqs[i];
	d->nfree_reqs = d->depth;
	ret = -pthread_create(&d->thread, NULL, io_main, d);
	if (ret) {
		free_reqs(d);
		return ret;
	}
	pthread_mutex_lock(&d->lock);
	while (!d->started)
		pthread_cond_wait(&d->idle, &d->lock);
	ret = d->init_ret;
	pthread_mutex_unlock(&d->lock);
	if (ret) {
		pthread_join(d->thread, NULL);
		d->started = false;
		free_reqs(d);
	}
	return ret;
}

void disk_io_stop(struct tier_disk *d)
{
	if (!d->started)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_mutex_unlock(&d->lock);
	disk_io_wake(d);
	pthread_join(d->thread, NULL);
	free_reqs(d);
	d->started = false;
}
