// SPDX-License-Identifier: MIT
/*
 * tier_host.c - the pinned host pool: create (map, place, pre-touch and
 * register in parallel), slots, destroy.
 *
 * Pool creation is what users of other systems wait minutes for (a 1 TB
 * pool in >10 min; 8 GiB cuMemHostAlloc 2.7 s): one thread faulting in
 * 4 KiB pages and one cuMemHostRegister over everything.  Here the work is
 * split in pieces that several threads, running on the pool's node,
 * populate with MADV_POPULATE_WRITE (no user fault per page); the thread
 * that populates a chunk's last piece registers that chunk while the others
 * go on populating.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cuda_driver.h"
#include "cache_internal.h"
#include "tier_host.h"
#include "tier_numa.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define DEFAULT_CHUNK (256ull << 20)
#define MAX_CHUNK     (1ull << 30) /* io_uring's limit on one buffer */
#define TOUCH_PIECE   (64ull << 20)
#define MAX_THREADS   256u

struct tier_host {
	struct tier_host_config cfg;
	struct tier_mem mem;
	uint64_t slot_bytes, chunk_bytes;
	uint32_t nslots, nchunks;
	struct iovec *chunks;
	bool *registered;
	int node;
	cpu_set_t cpus; /* the node's CPUs, when placed */
	bool bind_threads;
#ifdef KVMM_HAVE_CUDA
	const struct kvmm_cuda_driver *drv;
	CUcontext ctx;
#endif
	pthread_mutex_t lock;
	uint32_t *free;
	uint32_t nfree;
	struct tier_host_stats st;
};

static __attribute__((format(printf, 2, 3))) void host_log(struct tier_host *h, const char *fmt,
							   ...)
{
	char msg[256];
	va_list ap;

	if (!h->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	h->cfg.log(h->cfg.log_arg, msg);
}

/* ---- node ---------------------------------------------------------------- */

static int resolve_node(struct tier_host *h)
{
	int node = h->cfg.numa_node;

	if (node == TIER_NODE_OF_GPU) {
		node = TIER_NODE_ANY;
#ifdef KVMM_HAVE_CUDA
		CUdevice dev;
		CUcontext ctx;
		const struct kvmm_cuda_driver *drv =
			kvmm_cuda_backend_driver(h->cfg.be, &ctx, &dev);
		char busid[32];

		if (drv && drv->cuDeviceGetPCIBusId(busid, sizeof(busid), dev) == CUDA_SUCCESS) {
			int n = tier_numa_node_of_pci(h->cfg.sysfs, busid);

			if (n >= 0)
				node = n;
		}
#endif
	}
	h->node = node;
	if (node < 0)
		return 0;
	/* the node must exist; its CPUs run the pre-touch */
	if (tier_numa_node_cpus(h->cfg.sysfs, node, &h->cpus) < 0)
		return -EINVAL;
	h->bind_threads = CPU_COUNT(&h->cpus) > 0;
	return 0;
}

/* ---- parallel pre-touch and registration --------------------------------- */

/*
 * Pieces of the mapping are populated by every thread in turn; a chunk is
 * registered by the thread that populated its last piece, while the others
 * go on populating, so pinning overlaps population instead of following
 * it.
 */
struct work {
	struct tier_host *h;
	_Atomic uint64_t next_piece, next_chunk, touched;
	uint64_t npieces, t0;
	_Atomic uint32_t *left; /* per chunk: its pieces not populated yet */
	_Atomic uint64_t populate_ns;
	_Atomic int err;
};

/* The chunks that piece i overlaps: [*first, *last]; false if none. */
static bool piece_chunks(const struct tier_host *h, uint64_t i, uint32_t *first, uint32_t *last)
{
	uint64_t off = i * TOUCH_PIECE, end = off + TOUCH_PIECE;
	uint64_t used = (uint64_t)h->nslots * h->slot_bytes;

	if (off >= used)
		return false;
	if (end > used)
		end = used;
	*first = (uint32_t)(off / h->chunk_bytes);
	*last = (uint32_t)((end - 1) / h->chunk_bytes);
	return true;
}

static int touch(struct tier_host *h, char *p, uint64_t len)
{
	if (!madvise(p, len, MADV_POPULATE_WRITE))
		return 0;
	if (errno == ENOMEM || errno == EFAULT || errno == EHWPOISON)
		return -ENOMEM;
	/* kernels before 5.14: fault each page in by writing it */
	for (uint64_t off = 0; off < len; off += h->mem.page)
		((volatile char *)p)[off] = 0;
	return 0;
}

static int register_chunk(struct tier_host *h, uint32_t i)
{
#ifdef KVMM_HAVE_CUDA
	CUresult r;
	int ret;

	if (!h->drv)
		return 0;
	ret = kvmm_cuda_ctx_enter(h->drv, h->ctx);
	if (ret)
		return ret;
	r = h->drv->cuMemHostRegister(h->chunks[i].iov_base, h->chunks[i].iov_len,
				      CU_MEMHOSTREGISTER_PORTABLE);
	if (r != CUDA_SUCCESS)
		return kvmm_cuda_errno(r) ? kvmm_cuda_errno(r) : -EIO;
	h->registered[i] = true;
#endif
	return 0;
}

static void *worker(void *arg)
{
	struct work *w = arg;
	struct tier_host *h = w->h;
	uint64_t i;
	int ret;

	if (h->bind_threads)
		pthread_setaffinity_np(pthread_self(), sizeof(h->cpus), &h->cpus);
	if (!w->left) {
		/* nothing to populate: register chunk after chunk */
		while ((i = atomic_fetch_add(&w->next_chunk, 1)) < h->nchunks && !w->err) {
			ret = register_chunk(h, (uint32_t)i);
			if (ret)
				atomic_store(&w->err, ret);
		}
		return NULL;
	}
	while ((i = atomic_fetch_add(&w->next_piece, 1)) < w->npieces && !w->err) {
		uint64_t off = i * TOUCH_PIECE, len = h->mem.bytes - off;
		uint32_t c0, c1;

		ret = touch(h, (char *)h->mem.base + off, len < TOUCH_PIECE ? len : TOUCH_PIECE);
		if (ret) {
			atomic_store(&w->err, ret);
			break;
		}
		if (atomic_fetch_add(&w->touched, 1) + 1 == w->npieces)
			atomic_store(&w->populate_ns, kvmm_now_ns() - w->t0);
		if (!piece_chunks(h, i, &c0, &c1))
			continue;
		/* every page of a chunk is in before it is pinned */
		for (uint32_t c = c0; c <= c1 && !w->err; c++) {
			if (atomic_fetch_sub(&w->left[c], 1) != 1)
				continue;
			ret = register_chunk(h, c);
			if (ret)
				atomic_store(&w->err, ret);
		}
	}
	return NULL;
}

static int populate(struct tier_host *h, uint32_t nthreads)
{
	struct work w = {.h = h,
			 .npieces = (h->mem.bytes + TOUCH_PIECE - 1) / TOUCH_PIECE,
			 .t0 = kvmm_now_ns()};
	pthread_t *t = calloc(nthreads, sizeof(*t));
	uint32_t started = 0;

	if (!t)
		return -ENOMEM;
	if (!h->mem.populated && !(h->cfg.flags & TIER_HOST_NO_TOUCH)) {
		w.left = calloc(h->nchunks, sizeof(*w.left));
		if (!w.left) {
			free(t);
			return -ENOMEM;
		}
		for (uint64_t i = 0; i < w.npieces; i++) {
			uint32_t c0, c1;

			if (piece_chunks(h, i, &c0, &c1))
				for (uint32_t c = c0; c <= c1; c++)
					atomic_fetch_add(&w.left[c], 1);
		}
	}
	/* the calling thread is one of the workers; fewer threads than asked
	 * (creation failed) only makes it slower */
	for (uint32_t i = 1; i < nthreads; i++) {
		if (pthread_create(&t[started], NULL, worker, &w))
			break;
		started++;
	}
	worker(&w);
	for (uint32_t i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
	free((void *)w.left);
	h->st.threads = started + 1;
	h->st.populate_ns = atomic_load(&w.populate_ns);
	return atomic_load(&w.err);
}

/* ---- create / destroy ---------------------------------------------------- */

static int check_config(const struct tier_host_config *c)
{
	uint64_t chunk = c->chunk_bytes ? c->chunk_bytes : DEFAULT_CHUNK;

	if (!c->slot_bytes || c->slot_bytes % 4096 || chunk > MAX_CHUNK || chunk % 4096 ||
	    c->slot_bytes > chunk || c->bytes < c->slot_bytes || c->flags & ~TIER_HOST__FLAGS ||
	    c->threads > MAX_THREADS || c->__pad || c->numa_node < TIER_NODE_OF_GPU ||
	    c->bytes / c->slot_bytes >= UINT32_MAX)
		return -EINVAL;
	if ((c->flags & TIER_HOST_HUGETLB) && (c->flags & TIER_HOST_THP))
		return -EINVAL;
	return 0;
}

static uint32_t default_threads(const struct tier_host *h)
{
	long n = h->bind_threads ? CPU_COUNT(&h->cpus) : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return n > 16 ? 16 : (uint32_t)n;
}

static void unpin(struct tier_host *h)
{
#ifdef KVMM_HAVE_CUDA
	if (!h->drv || !h->registered || kvmm_cuda_ctx_enter(h->drv, h->ctx))
		return;
	for (uint32_t i = 0; i < h->nchunks; i++)
		if (h->registered[i])
			h->drv->cuMemHostUnregister(h->chunks[i].iov_base);
#endif
}

void tier_host_destroy(struct tier_host *h)
{
	if (!h)
		return;
	unpin(h);
	if (h->mem.ops)
		h->mem.ops->destroy(&h->mem);
	pthread_mutex_destroy(&h->lock);
	free(h->chunks);
	free(h->registered);
	free(h->free);
	free(h);
}

int tier_host_create(const struct tier_host_config *cfg, struct tier_host **out)
{
	uint64_t t0 = kvmm_now_ns(), t1, map_bytes, per;
	struct tier_host *h;
	uint32_t mflags = 0;
	int ret;

	if (!cfg || !out)
		return -EINVAL;
	*out = NULL;
	ret = check_config(cfg);
	if (ret)
		return ret;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->cfg = *cfg;
	h->slot_bytes = cfg->slot_bytes;
	per = (cfg->chunk_bytes ? cfg->chunk_bytes : DEFAULT_CHUNK) / cfg->slot_bytes;
	h->chunk_bytes = per * cfg->slot_bytes;
	h->nslots = (uint32_t)(cfg->bytes / cfg->slot_bytes);
	h->nchunks = (uint32_t)((h->nslots + per - 1) / per);
	ret = resolve_node(h);
	if (ret)
		goto fail;
#ifdef KVMM_HAVE_CUDA
	if (!(cfg->flags & TIER_HOST_NO_PIN))
		h->drv = kvmm_cuda_backend_driver(cfg->be, &h->ctx, NULL);
#endif
	h->chunks = calloc(h->nchunks, sizeof(*h->chunks));
	h->registered = calloc(h->nchunks, sizeof(*h->registered));
	h->free = malloc(h->nslots * sizeof(*h->free));
	if (!h->chunks || !h->registered || !h->free) {
		ret = -ENOMEM;
		goto fail;
	}
	map_bytes = ((uint64_t)h->nslots * h->slot_bytes + (2ull << 20) - 1) & ~((2ull << 20) - 1);
	if (cfg->flags & TIER_HOST_HUGETLB)
		mflags |= TIER_MEM_HUGETLB;
	if (cfg->flags & TIER_HOST_THP)
		mflags |= TIER_MEM_THP;
	if (cfg->flags & TIER_HOST_FALLBACK)
		mflags |= TIER_MEM_FALLBACK;
	h->mem.ops = cfg->mem ? cfg->mem : &tier_mem_anon_ops;
	h->mem.name = cfg->pool_name;
	ret = h->mem.ops->create(&h->mem, map_bytes, h->node, mflags);
	if (ret) {
		h->mem.ops = NULL;
		if (cfg->flags & TIER_HOST_HUGETLB)
			host_log(h,
				 "kvmm host tier: no room for %llu MiB of 2 MiB hugetlb pages "
				 "(see vm.nr_hugepages)",
				 (unsigned long long)(map_bytes >> 20));
		goto fail;
	}
	if (h->mem.nobytes)
		h->nchunks = 0; /* capacity only: nothing to place, touch, pin or register */
	for (uint32_t i = 0; i < h->nchunks; i++) {
		uint64_t off = (uint64_t)i * h->chunk_bytes;
		uint64_t len = (uint64_t)h->nslots * h->slot_bytes - off;

		h->chunks[i].iov_base = (char *)h->mem.base + off;
		h->chunks[i].iov_len = len < h->chunk_bytes ? len : h->chunk_bytes;
	}
	if (h->node >= 0 && !h->mem.node_placed) {
		ret = tier_numa_bind_memory(h->mem.base, h->mem.bytes, h->node);
		if (ret) {
			/* Containers often refuse mbind; first touch by threads
			 * running on the node still places the pages there. */
			h->st.numa_bind_failed = true;
			host_log(h, "kvmm host tier: mbind refused (%s); placing by first touch",
				 strerror(-ret));
		}
	}
	h->st.threads = h->mem.nobytes ? 0 : cfg->threads ? cfg->threads : default_threads(h);
	t1 = kvmm_now_ns();
	ret = h->mem.nobytes ? 0 : populate(h, h->st.threads);
	h->st.touch_ns = kvmm_now_ns() - t1;
	if (ret)
		goto fail;
	for (uint32_t i = 0; i < h->nslots; i++)
		h->free[i] = h->nslots - 1 - i;
	h->nfree = h->nslots;
	h->st.source = h->mem.desc;
	h->st.reopened = h->mem.reopened;
	h->st.bytes = (uint64_t)h->nslots * h->slot_bytes;
	h->st.slot_bytes = h->slot_bytes;
	h->st.slots = h->nslots;
	h->st.node = h->node;
	for (uint32_t i = 0; i < h->nchunks; i++) {
		h->st.pinned |= h->registered[i];
		h->st.pinned_bytes += h->registered[i] ? h->chunks[i].iov_len : 0;
	}
	h->st.create_ns = kvmm_now_ns() - t0;
	*out = h;
	return 0;
fail:
	tier_host_destroy(h);
	return ret;
}

/* ---- slots --------------------------------------------------------------- */

int tier_host_alloc(struct tier_host *h, uint32_t *slot)
{
	int ret = 0;

	pthread_mutex_lock(&h->lock);
	if (h->nfree) {
		*slot = h->free[--h->nfree];
	} else {
		h->st.alloc_fail++;
		ret = -ENOSPC;
	}
	pthread_mutex_unlock(&h->lock);
	return ret;
}

void tier_host_free(struct tier_host *h, uint32_t slot)
{
	pthread_mutex_lock(&h->lock);
	if (slot < h->nslots && h->nfree < h->nslots)
		h->free[h->nfree++] = slot;
	pthread_mutex_unlock(&h->lock);
}

void tier_host_set_used(struct tier_host *h, const uint8_t *used)
{
	pthread_mutex_lock(&h->lock);
	h->nfree = 0;
	for (uint32_t i = h->nslots; i-- > 0;)
		if (!used[i])
			h->free[h->nfree++] = i;
	pthread_mutex_unlock(&h->lock);
}

void *tier_host_slot(const struct tier_host *h, uint32_t slot)
{
	if (h->mem.nobytes || slot >= h->nslots)
		return NULL;
	return (char *)h->mem.base + (uint64_t)slot * h->slot_bytes;
}

bool tier_host_has_bytes(const struct tier_host *h)
{
	return !h->mem.nobytes;
}

uint32_t tier_host_nslots(const struct tier_host *h)
{
	return h->nslots;
}

uint64_t tier_host_slot_bytes(const struct tier_host *h)
{
	return h->slot_bytes;
}

const struct iovec *tier_host_chunks(const struct tier_host *h, uint32_t *n)
{
	*n = h->nchunks;
	return h->chunks;
}

void tier_host_get_stats(struct tier_host *h, struct tier_host_stats *st)
{
	pthread_mutex_lock(&h->lock);
	*st = h->st;
	st->slots_free = h->nfree;
	pthread_mutex_unlock(&h->lock);
}

int tier_host_set_state(struct tier_host *h, uint32_t slot, enum tier_mem_state st)
{
	if (!h->mem.ops->set_state || slot >= h->nslots)
		return 0;
	return h->mem.ops->set_state(&h->mem, (uint64_t)slot * h->slot_bytes, h->slot_bytes, st);
}

uint64_t tier_host_generation(struct tier_host *h, uint32_t slot)
{
	if (!h->mem.ops->generation || slot >= h->nslots)
		return 0;
	return h->mem.ops->generation(&h->mem, (uint64_t)slot * h->slot_bytes, h->slot_bytes);
}

int tier_host_publish(struct tier_host *h, const uint64_t pages[4])
{
	return h->mem.ops->publish ? h->mem.ops->publish(&h->mem, pages) : 0;
}
