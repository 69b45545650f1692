// SPDX-License-Identifier: MIT
/*
 * tier_copy.c - the tiers' copy engine: CUDA streams and events through
 * the dlopen'ed driver, or the backend's synchronous copies.
 *
 * With KVMM_TIER_COPY_ASYNC=1 in the environment, a backend without
 * streams gets two emulated ones instead: a worker thread per direction
 * runs the copies in order, later and with jitter, and events are the
 * sequence numbers of copies.  The tests use it to run the asynchronous
 * paths (completion notices, flights of restores, pieces of spills) on the
 * host backend, under ASan and TSan.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_driver.h"
#include "kvmm.h"
#include "tier_copy.h"

/* A marker waited for by the completion thread. */
struct notice {
	uint64_t ev;
	tier_copy_done_fn fn;
	void *arg;
	struct notice *next;
};

/* An emulated stream's copy. */
struct emu_op {
	uint64_t dev, n, seq;
	void *host;
	struct emu_op *next;
};

struct emu_stream {
	struct tier_copy *tc;
	enum tier_dir dir;
	struct emu_op *head, **tail;
	uint64_t queued, done; /* sequence numbers */
	pthread_t thread;
	bool started;
};

#define QUANT_MAX_SLOTS 16

#ifdef KVMM_HAVE_CUDA
/* One direction's quantizing pipeline (tier_copy_queue_quant). */
struct quant_dir {
	CUstream side; /* the pack kernels (D2H) or the staging copies (H2D) */
	CUdeviceptr staging;
	CUevent side_done[QUANT_MAX_SLOTS], main_done[QUANT_MAX_SLOTS];
	bool used[QUANT_MAX_SLOTS];
	uint32_t next;
};
#endif

struct tier_copy {
	struct kvmm_backend *be;
	bool emu; /* emulated streams (KVMM_TIER_COPY_ASYNC) */
	struct emu_stream es[2];
#ifdef KVMM_HAVE_CUDA
	const struct kvmm_cuda_driver *drv;
	CUcontext ctx;
	CUstream stream[2];
	/* quantizing copies */
	struct kvmm_kernels *kern;
	struct quant_dir qd[2];
	uint64_t qslot_bytes;
	uint32_t nq;
	pthread_mutex_t qlock;
	bool qlock_init;
#endif
	/* first error of a synchronous copy, per direction, until synced */
	_Atomic int err[2];
	/* completion thread (asynchronous engines): notices in order */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct notice *head, **tail;
	bool stop, has_thread;
	pthread_t thread;
};

/* ---- emulated streams ---------------------------------------------------- */

#define EMU_DIR_BIT (1ull << 62)

static uint64_t emu_ev(enum tier_dir dir, uint64_t seq)
{
	return (dir == TIER_H2D ? EMU_DIR_BIT : 0) | seq;
}

static void emu_fail(struct tier_copy *tc, enum tier_dir dir, int err)
{
	int zero = 0;

	atomic_compare_exchange_strong(&tc->err[dir], &zero, err);
}

static void *emu_worker(void *arg)
{
	struct emu_stream *es = arg;
	struct tier_copy *tc = es->tc;
	uint64_t jitter = 88172645463325252ull + es->dir;

	pthread_mutex_lock(&tc->lock);
	for (;;) {
		struct emu_op *op = es->head;
		int ret;

		if (!op) {
			if (tc->stop)
				break;
			pthread_cond_wait(&tc->cond, &tc->lock);
			continue;
		}
		pthread_mutex_unlock(&tc->lock);
		/* later than queued, by a varying amount: callers must wait */
		jitter ^= jitter << 13, jitter ^= jitter >> 7, jitter ^= jitter << 17;
		if (jitter % 4 == 0)
			usleep((useconds_t)(jitter >> 40) % 200);
		ret = es->dir == TIER_D2H ? kvmm_be_copy_dtoh(tc->be, op->host, op->dev, op->n)
					  : kvmm_be_copy_htod(tc->be, op->dev, op->host, op->n);
		if (ret)
			emu_fail(tc, es->dir, ret);
		pthread_mutex_lock(&tc->lock);
		es->head = op->next;
		if (!es->head)
			es->tail = &es->head;
		es->done = op->seq;
		free(op);
		pthread_cond_broadcast(&tc->cond);
	}
	pthread_mutex_unlock(&tc->lock);
	return NULL;
}

static int emu_queue(struct tier_copy *tc, enum tier_dir dir, uint64_t dev, void *host, uint64_t n)
{
	struct emu_stream *es = &tc->es[dir];
	struct emu_op *op = calloc(1, sizeof(*op));

	if (!op)
		return -ENOMEM;
	op->dev = dev;
	op->host = host;
	op->n = n;
	pthread_mutex_lock(&tc->lock);
	op->seq = ++es->queued;
	*es->tail = op;
	es->tail = &op->next;
	pthread_cond_broadcast(&tc->cond);
	pthread_mutex_unlock(&tc->lock);
	return 0;
}

/* Wait until the copies up to seq of dir are done. */
static int emu_wait(struct tier_copy *tc, enum tier_dir dir, uint64_t seq)
{
	pthread_mutex_lock(&tc->lock);
	while (tc->es[dir].done < seq)
		pthread_cond_wait(&tc->cond, &tc->lock);
	pthread_mutex_unlock(&tc->lock);
	return atomic_load(&tc->err[dir]);
}

static int emu_start(struct tier_copy *tc)
{
	for (int d = 0; d < 2; d++) {
		struct emu_stream *es = &tc->es[d];

		es->tc = tc;
		es->dir = (enum tier_dir)d;
		es->tail = &es->head;
		if (pthread_create(&es->thread, NULL, emu_worker, es))
			return -EAGAIN;
		es->started = true;
	}
	tc->emu = true;
	return 0;
}

/* ---- quantizing copies (CUDA) --------------------------------------------- */

#ifdef KVMM_HAVE_CUDA
static void quant_fini(struct tier_copy *tc)
{
	const struct kvmm_cuda_driver *d = tc->drv;

	for (int dir = 0; dir < 2; dir++) {
		struct quant_dir *q = &tc->qd[dir];

		if (q->side) {
			d->cuStreamSynchronize(q->side);
			d->cuStreamDestroy(q->side);
		}
		for (uint32_t k = 0; k < QUANT_MAX_SLOTS; k++) {
			if (q->side_done[k])
				d->cuEventDestroy(q->side_done[k]);
			if (q->main_done[k])
				d->cuEventDestroy(q->main_done[k]);
		}
		if (q->staging)
			d->cuMemFree(q->staging);
		memset(q, 0, sizeof(*q));
	}
	kvmm_kernels_close(tc->kern);
	tc->kern = NULL;
}
#endif

int tier_copy_quant_init(struct tier_copy *tc, uint64_t q_bytes, uint32_t nslots)
{
#ifdef KVMM_HAVE_CUDA
	const struct kvmm_cuda_driver *d = tc->drv;
	int ret;

	if (!d)
		return -ENOTSUP;
	if (!q_bytes || !nslots || nslots > QUANT_MAX_SLOTS)
		return -EINVAL;
	ret = kvmm_kernels_open(tc->be, &tc->kern);
	if (ret)
		return ret; /* -ENOTSUP: built without the kernels */
	ret = kvmm_cuda_ctx_enter(d, tc->ctx);
	tc->qslot_bytes = (q_bytes + 255) & ~255ull;
	tc->nq = nslots;
	for (int dir = 0; dir < 2 && !ret; dir++) {
		struct quant_dir *q = &tc->qd[dir];

		ret = kvmm_cuda_errno(d->cuStreamCreate(&q->side, CU_STREAM_NON_BLOCKING));
		if (!ret)
			ret = kvmm_cuda_errno(d->cuMemAlloc(&q->staging, tc->qslot_bytes * nslots));
		/* the payload's pads are never written by the kernels: zero
		 * once, they stay zero (records hash them) */
		if (!ret)
			ret = kvmm_cuda_errno(
				d->cuMemsetD8(q->staging, 0, tc->qslot_bytes * nslots));
		for (uint32_t k = 0; k < nslots && !ret; k++) {
			ret = kvmm_cuda_errno(
				d->cuEventCreate(&q->side_done[k], CU_EVENT_DISABLE_TIMING));
			if (!ret)
				ret = kvmm_cuda_errno(d->cuEventCreate(&q->main_done[k],
								       CU_EVENT_DISABLE_TIMING));
		}
	}
	if (ret) {
		quant_fini(tc);
		return ret;
	}
	pthread_mutex_init(&tc->qlock, NULL);
	tc->qlock_init = true;
	return 0;
#else
	(void)tc, (void)q_bytes, (void)nslots;
	return -ENOTSUP;
#endif
}

int tier_copy_has_quant(const struct tier_copy *tc)
{
#ifdef KVMM_HAVE_CUDA
	return tc->kern != NULL;
#else
	(void)tc;
	return 0;
#endif
}

int tier_copy_queue_quant(struct tier_copy *tc, enum tier_dir dir, uint64_t dev, void *host,
			  const struct tier_quant_copy *qc)
{
#ifdef KVMM_HAVE_CUDA
	const struct kvmm_cuda_driver *d = tc->drv;
	struct quant_dir *q = &tc->qd[dir];
	struct kvmm_pack_run run = {.addr = dev, .bytes = qc->raw_bytes};
	struct kvmm_pack_params p = {.runs = &run,
				     .nruns = 1,
				     .quant = qc->kind,
				     .dtype = qc->dtype,
				     .row_elems = qc->row_elems,
				     .staging_bytes = tc->qslot_bytes};
	CUstream main = tc->stream[dir];
	uint32_t k;
	int ret;

	if (!tc->kern || qc->q_bytes > tc->qslot_bytes)
		return -EINVAL;
	ret = kvmm_cuda_ctx_enter(d, tc->ctx);
	if (ret)
		return ret;
	/* Slot k's use: side then main, each waiting for the other's
	 * previous step on k; issued under the lock so the event records
	 * and waits of two callers never interleave. */
	pthread_mutex_lock(&tc->qlock);
	k = q->next;
	q->next = (k + 1) % tc->nq;
	p.staging = q->staging + (uint64_t)k * tc->qslot_bytes;
	if (q->used[k])
		ret = kvmm_cuda_errno(d->cuStreamWaitEvent(q->side, q->main_done[k], 0));
	if (!ret)
		ret = dir == TIER_D2H ? kvmm_pack(tc->kern, &p, (uint64_t)(uintptr_t)q->side)
				      : kvmm_cuda_errno(d->cuMemcpyHtoDAsync(p.staging, host,
									     qc->q_bytes, q->side));
	if (!ret)
		ret = kvmm_cuda_errno(d->cuEventRecord(q->side_done[k], q->side));
	if (!ret)
		ret = kvmm_cuda_errno(d->cuStreamWaitEvent(main, q->side_done[k], 0));
	if (!ret)
		ret = dir == TIER_D2H ? kvmm_cuda_errno(d->cuMemcpyDtoHAsync(host, p.staging,
									     qc->q_bytes, main))
				      : kvmm_unpack(tc->kern, &p, (uint64_t)(uintptr_t)main);
	if (!ret)
		ret = kvmm_cuda_errno(d->cuEventRecord(q->main_done[k], main));
	q->used[k] = true;
	pthread_mutex_unlock(&tc->qlock);
	return ret;
#else
	(void)tc, (void)dir, (void)dev, (void)host, (void)qc;
	return -ENOTSUP;
#endif
}

/* ---- completion notices ---------------------------------------------------- */

/* Waits for each notice's event in turn, then tells its owner. */
static void *completer(void *arg)
{
	struct tier_copy *tc = arg;

	pthread_mutex_lock(&tc->lock);
	for (;;) {
		struct notice *n = tc->head;
		int err;

		if (!n) {
			if (tc->stop)
				break;
			pthread_cond_wait(&tc->cond, &tc->lock);
			continue;
		}
		pthread_mutex_unlock(&tc->lock);
		err = tier_copy_wait(tc, n->ev);
		tier_copy_event_free(tc, n->ev);
		pthread_mutex_lock(&tc->lock);
		tc->head = n->next;
		if (!tc->head)
			tc->tail = &tc->head;
		pthread_mutex_unlock(&tc->lock);
		n->fn(n->arg, err);
		free(n);
		pthread_mutex_lock(&tc->lock);
	}
	pthread_mutex_unlock(&tc->lock);
	return NULL;
}

int tier_copy_create(struct kvmm_backend *be, struct tier_copy **out)
{
	struct tier_copy *tc = calloc(1, sizeof(*tc));

	if (!tc)
		return -ENOMEM;
	tc->be = be;
	pthread_mutex_init(&tc->lock, NULL);
	pthread_cond_init(&tc->cond, NULL);
	tc->tail = &tc->head;
#ifdef KVMM_HAVE_CUDA
	tc->drv = kvmm_cuda_backend_driver(be, &tc->ctx, NULL);
	if (tc->drv) {
		int ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);

		for (int i = 0; i < 2 && !ret; i++)
			ret = kvmm_cuda_errno(
				tc->drv->cuStreamCreate(&tc->stream[i], CU_STREAM_NON_BLOCKING));
		if (!ret) {
			ret = -pthread_create(&tc->thread, NULL, completer, tc);
			tc->has_thread = !ret;
		}
		if (ret) {
			tier_copy_destroy(tc);
			return ret;
		}
	}
#endif
	{
		const char *env = getenv("KVMM_TIER_COPY_ASYNC");
		int ret = 0;

		if (!tier_copy_is_async(tc) && env && *env == '1')
			ret = emu_start(tc);
		if (!ret && tc->emu) {
			ret = -pthread_create(&tc->thread, NULL, completer, tc);
			tc->has_thread = !ret;
		}
		if (ret) {
			tier_copy_destroy(tc);
			return ret;
		}
	}
	*out = tc;
	return 0;
}

void tier_copy_destroy(struct tier_copy *tc)
{
	if (!tc)
		return;
	/* every copy and notice still pending is done and delivered first */
	pthread_mutex_lock(&tc->lock);
	tc->stop = true;
	pthread_cond_broadcast(&tc->cond);
	pthread_mutex_unlock(&tc->lock);
	for (int d = 0; d < 2; d++)
		if (tc->es[d].started)
			pthread_join(tc->es[d].thread, NULL);
	if (tc->has_thread)
		pthread_join(tc->thread, NULL);
	pthread_cond_destroy(&tc->cond);
	pthread_mutex_destroy(&tc->lock);
#ifdef KVMM_HAVE_CUDA
	if (tc->drv && !kvmm_cuda_ctx_enter(tc->drv, tc->ctx)) {
		for (int i = 0; i < 2; i++) {
			if (!tc->stream[i])
				continue;
			tc->drv->cuStreamSynchronize(tc->stream[i]);
			tc->drv->cuStreamDestroy(tc->stream[i]);
		}
		quant_fini(tc);
	}
	if (tc->qlock_init)
		pthread_mutex_destroy(&tc->qlock);
#endif
	free(tc);
}

int tier_copy_is_async(const struct tier_copy *tc)
{
#ifdef KVMM_HAVE_CUDA
	if (tc->drv)
		return 1;
#endif
	return tc->emu;
}

int tier_copy_queue(struct tier_copy *tc, enum tier_dir dir, uint64_t dev, void *host, uint64_t n)
{
	int ret;

#ifdef KVMM_HAVE_CUDA
	if (tc->drv) {
		CUresult r;

		ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);
		if (ret)
			return ret;
		r = dir == TIER_D2H ? tc->drv->cuMemcpyDtoHAsync(host, dev, n, tc->stream[dir])
				    : tc->drv->cuMemcpyHtoDAsync(dev, host, n, tc->stream[dir]);
		return kvmm_cuda_errno(r);
	}
#endif
	if (tc->emu)
		return emu_queue(tc, dir, dev, host, n);
	ret = dir == TIER_D2H ? kvmm_be_copy_dtoh(tc->be, host, dev, n)
			      : kvmm_be_copy_htod(tc->be, dev, host, n);
	if (ret)
		emu_fail(tc, dir, ret);
	return ret;
}

#ifdef KVMM_HAVE_CUDA
/* A marker after everything queued in dir whose waiters sleep instead of
 * spinning (CU_EVENT_BLOCKING_SYNC): a thread waiting for a copy leaves
 * its core to the checksum threads.  The caller destroys *e. */
static int record_blocking(struct tier_copy *tc, enum tier_dir dir, CUevent *e)
{
	const struct kvmm_cuda_driver *d = tc->drv;
	int ret = kvmm_cuda_ctx_enter(d, tc->ctx);

	if (!ret)
		ret = kvmm_cuda_errno(
			d->cuEventCreate(e, CU_EVENT_DISABLE_TIMING | CU_EVENT_BLOCKING_SYNC));
	if (ret)
		return ret;
	ret = kvmm_cuda_errno(d->cuEventRecord(*e, tc->stream[dir]));
	/* and have the driver submit what is queued now: it may hold queued
	 * copies back until something waits (measured: restores hashed
	 * while their copies had not started) */
	if (!ret)
		d->cuStreamQuery(tc->stream[dir]);
	if (ret)
		d->cuEventDestroy(*e);
	return ret;
}
#endif

int tier_copy_sync(struct tier_copy *tc, enum tier_dir dir)
{
#ifdef KVMM_HAVE_CUDA
	if (tc->drv) {
		CUevent e;
		int ret = record_blocking(tc, dir, &e);

		if (ret) /* no event: the stream itself (spinning) */
			return kvmm_cuda_errno(tc->drv->cuStreamSynchronize(tc->stream[dir]));
		ret = kvmm_cuda_errno(tc->drv->cuEventSynchronize(e));
		tc->drv->cuEventDestroy(e);
		return ret;
	}
#endif
	if (tc->emu) {
		uint64_t seq;

		pthread_mutex_lock(&tc->lock);
		seq = tc->es[dir].queued;
		pthread_mutex_unlock(&tc->lock);
		emu_wait(tc, dir, seq);
	}
	return atomic_exchange(&tc->err[dir], 0);
}

int tier_copy_record(struct tier_copy *tc, enum tier_dir dir, uint64_t *ev)
{
	*ev = 0;
#ifdef KVMM_HAVE_CUDA
	if (tc->drv) {
		CUevent e;
		int ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);

		if (!ret)
			ret = kvmm_cuda_errno(tc->drv->cuEventCreate(&e, CU_EVENT_DISABLE_TIMING));
		if (ret)
			return ret;
		ret = kvmm_cuda_errno(tc->drv->cuEventRecord(e, tc->stream[dir]));
		if (ret) {
			tc->drv->cuEventDestroy(e);
			return ret;
		}
		*ev = (uint64_t)(uintptr_t)e;
	}
#endif
	if (tc->emu) {
		pthread_mutex_lock(&tc->lock);
		*ev = emu_ev(dir, tc->es[dir].queued);
		pthread_mutex_unlock(&tc->lock);
	}
	return 0;
}

int tier_copy_wait(struct tier_copy *tc, uint64_t ev)
{
#ifdef KVMM_HAVE_CUDA
	if (tc->drv && ev) {
		int ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);

		return ret ? ret
			   : kvmm_cuda_errno(tc->drv->cuEventSynchronize((CUevent)(uintptr_t)ev));
	}
#endif
	if (tc->emu && ev)
		return emu_wait(tc, ev & EMU_DIR_BIT ? TIER_H2D : TIER_D2H, ev & ~EMU_DIR_BIT);
	return 0;
}

int tier_copy_query(struct tier_copy *tc, uint64_t ev)
{
#ifdef KVMM_HAVE_CUDA
	if (tc->drv && ev) {
		CUresult r;
		int ret = kvmm_cuda_ctx_enter(tc->drv, tc->ctx);

		if (ret)
			return ret;
		r = tc->drv->cuEventQuery((CUevent)(uintptr_t)ev);
		if (r == CUDA_ERROR_NOT_READY)
			return 0;
		return r == CUDA_SUCCESS ? 1 : kvmm_cuda_errno(r);
	}
#endif
	if (tc->emu && ev) {
		enum tier_dir dir = ev & EMU_DIR_BIT ? TIER_H2D : TIER_D2H;
		int done;

		pthread_mutex_lock(&tc->lock);
		done = tc->es[dir].done >= (ev & ~EMU_DIR_BIT);
		pthread_mutex_unlock(&tc->lock);
		return done;
	}
	return 1;
}

void tier_copy_event_free(struct tier_copy *tc, uint64_t ev)
{
#ifdef KVMM_HAVE_CUDA
	if (tc->drv && ev && !kvmm_cuda_ctx_enter(tc->drv, tc->ctx))
		tc->drv->cuEventDestroy((CUevent)(uintptr_t)ev);
#endif
}

int tier_copy_notify(struct tier_copy *tc, enum tier_dir dir, tier_copy_done_fn fn, void *arg)
{
	struct notice *n;
	int ret;

	if (!tc->has_thread) {
		/* synchronous copies: all done, their errors collected (with
		 * emulated streams the completer runs it, as on CUDA) */
		fn(arg, atomic_exchange(&tc->err[dir], 0));
		return 0;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
#ifdef KVMM_HAVE_CUDA
	if (tc->drv) {
		CUevent e;

		ret = record_blocking(tc, dir, &e);
		n->ev = ret ? 0 : (uint64_t)(uintptr_t)e;
	} else
#endif
		ret = tier_copy_record(tc, dir, &n->ev);
	if (ret) {
		free(n);
		return ret;
	}
	n->fn = fn;
	n->arg = arg;
	pthread_mutex_lock(&tc->lock);
	*tc->tail = n;
	tc->tail = &n->next;
	pthread_cond_broadcast(&tc->cond);
	pthread_mutex_unlock(&tc->lock);
	return 0;
}
