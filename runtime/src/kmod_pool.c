// SPDX-License-Identifier: MIT
/*
 * kmod_pool.c - kvmm_hostpool_*: a mapped host page pool, from kvmm.ko when it
 * is loaded, or (KVMM_HOSTPOOL_CFG_FALLBACK) ordinary shared memory bound to
 * the node with mbind(2), the way a process would do it without the
 * module.  Both behave the same to the caller, except that a fallback pool
 * has no name, is never reclaimed and lives as long as its handle.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kmod_client.h"
#include "kvmm.h"

#define KVMM_HOSTPOOL_CFG_ALL                                                                     \
	(KVMM_HOSTPOOL_CFG_PERSISTENT | KVMM_HOSTPOOL_CFG_POPULATE | KVMM_HOSTPOOL_CFG_GPU_NODE | \
	 KVMM_HOSTPOOL_CFG_FALLBACK | KVMM_HOSTPOOL_CFG_FORCE_FALLBACK)
#define TWO_MIB (2ull << 20)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define MPOL_BIND_ 2

_Static_assert(sizeof(struct kvmm_hostpool_range) == sizeof(struct kvmm_page_range),
	       "kvmm_hostpool_range is the uapi range");
_Static_assert((int)KVMM_HOSTPOOL_PAGE_FREE == (int)KVMM_PAGE_FREE &&
		       (int)KVMM_HOSTPOOL_PAGE_HOT == (int)KVMM_PAGE_HOT &&
		       (int)KVMM_HOSTPOOL_PAGE_COLD == (int)KVMM_PAGE_COLD,
	       "page states match the uapi");
_Static_assert((int)KVMM_HOSTPOOL_TIERS == (int)KVMM_TIER_COUNT &&
		       (int)KVMM_HOSTPOOL_TIER_DISK == (int)KVMM_TIER_DISK,
	       "tiers match the uapi");
_Static_assert(KVMM_HOSTPOOL_CFG_PERSISTENT == KVMM_POOL_PERSISTENT &&
		       KVMM_HOSTPOOL_CFG_POPULATE == KVMM_POOL_POPULATE &&
		       KVMM_HOSTPOOL_CFG_GPU_NODE == KVMM_POOL_NODE_OF_PCI,
	       "create flags match the uapi");

struct kvmm_hostpool {
	int fd; /* -1: fallback */
	bool read_only;
	char *base;
	size_t map_len;
	uint64_t bytes;
	uint64_t page_size;
	uint64_t pages;
	const struct kvmm_pool_status *status;
	size_t status_len;
	const uint32_t *gen;

	pthread_mutex_t lock; /* efd; the fallback's state below */
	int efd;
	int node;
	uint32_t mode;
	uint8_t *state;
	uint64_t nr_state[3];
	uint64_t residency[KVMM_HOSTPOOL_TIERS];
};

/* A mapping of len bytes aligned to align (a power of two). */
static void *kvmm_map_aligned(size_t len, size_t align, int prot, int flags, int fd, off_t off)
{
	size_t slack = align > 4096 ? align : 0;
	char *r, *a, *p;

	if (!slack)
		return mmap(NULL, len, prot, flags, fd, off);
	/* reserve more, map at the aligned address inside, trim the rest */
	r = mmap(NULL, len + slack, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return MAP_FAILED;
	a = (char *)(((uintptr_t)r + slack - 1) & ~(uintptr_t)(slack - 1));
	p = mmap(a, len, prot, flags | MAP_FIXED, fd, off);
	if (p == MAP_FAILED) {
		int e = errno;

		munmap(r, len + slack);
		errno = e;
		return MAP_FAILED;
	}
	if (a > r)
		munmap(r, (size_t)(a - r));
	if (r + len + slack > a + len)
		munmap(a + len, (size_t)(r + len + slack - (a + len)));
	return p;
}

static struct kvmm_hostpool *kvmm_hostpool_new(void)
{
	struct kvmm_hostpool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->fd = -1;
	p->efd = -1;
	pthread_mutex_init(&p->lock, NULL);
	return p;
}

void kvmm_hostpool_close(struct kvmm_hostpool *p)
{
	if (!p)
		return;
	if (p->base)
		munmap(p->base, p->map_len);
	if (p->status)
		munmap((void *)p->status, p->status_len);
	if (p->fd >= 0)
		close(p->fd);
	if (p->efd >= 0)
		close(p->efd);
	pthread_mutex_destroy(&p->lock);
	free(p->state);
	free(p);
}

/* Map the module pool behind fd (which p takes over). */
static int kvmm_hostpool_map(struct kvmm_hostpool *p, int fd, bool read_only)
{
	struct kvmm_pool_desc d;
	int r;

	p->fd = fd;
	p->read_only = read_only;
	r = kmod_pool_info(fd, &d);
	if (r)
		return r;
	p->bytes = d.bytes;
	p->page_size = 1ull << d.page_shift;
	p->pages = d.pages;
	p->node = d.node;
	p->mode = d.mode;
	p->map_len = d.bytes;
	p->base = kvmm_map_aligned(p->map_len, p->page_size,
				   PROT_READ | (read_only ? 0 : PROT_WRITE), MAP_SHARED, fd, 0);
	if (p->base == MAP_FAILED) {
		p->base = NULL;
		return -errno;
	}
	p->status_len = (KVMM_STATUS_SIZE(d.pages) + 4095) & ~(size_t)4095;
	p->status = mmap(NULL, p->status_len, PROT_READ, MAP_SHARED, fd, (off_t)KVMM_STATUS_OFFSET);
	if (p->status == MAP_FAILED) {
		p->status = NULL;
		return -errno;
	}
	if (p->status->magic != KVMM_STATUS_MAGIC || p->status->pages != d.pages)
		return -EPROTO;
	p->gen = (const uint32_t *)((const char *)p->status + p->status->gen_offset);
	return 0;
}

static int kvmm_node_of_pci(uint32_t id)
{
	char path[96];
	int node = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%04x:%02x:%02x.%x/numa_node", id >> 16,
		 (id >> 8) & 0xff, (id >> 3) & 0x1f, id & 7);
	f = fopen(path, "r");
	if (!f)
		return -ENODEV;
	if (fscanf(f, "%d", &node) != 1)
		node = -1;
	fclose(f);
	return node < 0 ? KVMM_HOSTPOOL_NODE_ANY : node;
}

/* Ordinary shared memory bound to the node: what the module replaces. */
static int kvmm_fallback_create(const struct kvmm_hostpool_config *cfg, uint64_t page_size,
				struct kvmm_hostpool *p)
{
	unsigned long mask[16] = {0};
	int node = cfg->node;

	if (cfg->flags & KVMM_HOSTPOOL_CFG_GPU_NODE) {
		node = kvmm_node_of_pci(cfg->pci_dev);
		if (node < KVMM_HOSTPOOL_NODE_ANY)
			return node;
	}
	if (node < KVMM_HOSTPOOL_NODE_ANY || node >= (int)(sizeof(mask) * CHAR_BIT))
		return -EINVAL;
	p->bytes = cfg->bytes;
	p->page_size = page_size;
	p->pages = cfg->bytes / page_size;
	p->node = node;
	p->mode = cfg->mode ? cfg->mode : 0600;
	p->state = calloc(p->pages, 1);
	if (!p->state)
		return -ENOMEM;
	p->nr_state[KVMM_HOSTPOOL_PAGE_FREE] = p->pages;
	p->map_len = cfg->bytes;
	p->base = kvmm_map_aligned(p->map_len, page_size, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->base == MAP_FAILED) {
		p->base = NULL;
		return -errno;
	}
	if (page_size >= TWO_MIB)
		madvise(p->base, p->map_len, MADV_HUGEPAGE); /* best effort */
	if (node >= 0) {
		mask[node / (sizeof(long) * CHAR_BIT)] |= 1ul << (node % (sizeof(long) * CHAR_BIT));
		if (syscall(SYS_mbind, p->base, p->map_len, MPOL_BIND_, mask,
			    sizeof(mask) * CHAR_BIT + 1, 0))
			return errno == EINVAL ? -ENODEV : -errno;
	}
	if (cfg->flags & KVMM_HOSTPOOL_CFG_POPULATE)
		return kvmm_hostpool_populate(p, 0, p->pages);
	return 0;
}

static int kvmm_check_config(const struct kvmm_hostpool_config *cfg, uint64_t *page_size)
{
	size_t n;

	if (!cfg || !cfg->name || (cfg->flags & ~KVMM_HOSTPOOL_CFG_ALL) || cfg->__pad)
		return -EINVAL;
	n = strlen(cfg->name);
	if (!n || n >= KVMM_NAME_MAX)
		return -EINVAL;
	*page_size = cfg->page_size ? cfg->page_size : TWO_MIB;
	if (*page_size != 4096 && *page_size != TWO_MIB)
		return -EINVAL;
	if (!cfg->bytes || cfg->bytes % *page_size || cfg->mode > 0777)
		return -EINVAL;
	if (!(cfg->flags & KVMM_HOSTPOOL_CFG_GPU_NODE) && cfg->pci_dev)
		return -EINVAL;
	return 0;
}

int kvmm_hostpool_create(const struct kvmm_hostpool_config *cfg, struct kvmm_hostpool **out)
{
	uint64_t page_size;
	struct kvmm_hostpool *p;
	int r, dev = -ENODEV, fd;

	if (!out)
		return -EINVAL;
	r = kvmm_check_config(cfg, &page_size);
	if (r)
		return r;
	if (!(cfg->flags & KVMM_HOSTPOOL_CFG_FORCE_FALLBACK)) {
		dev = kmod_dev_open(NULL);
		if (dev < 0 && (dev != -ENODEV || !(cfg->flags & KVMM_HOSTPOOL_CFG_FALLBACK)))
			return dev;
	}
	p = kvmm_hostpool_new();
	if (!p) {
		if (dev >= 0)
			close(dev);
		return -ENOMEM;
	}
	if (dev < 0) {
		r = kvmm_fallback_create(cfg, page_size, p);
	} else {
		struct kvmm_info info;

		r = kmod_get_info(dev, &info);
		fd = r ? r
		       : kmod_pool_create(dev, cfg->name, cfg->bytes,
					  (cfg->flags & KVMM_HOSTPOOL_CFG_GPU_NODE) ? KVMM_NODE_ANY
										    : cfg->node,
					  page_size == 4096 ? 12 : 21,
					  (cfg->flags & (KVMM_HOSTPOOL_CFG_PERSISTENT |
							 KVMM_HOSTPOOL_CFG_POPULATE |
							 KVMM_HOSTPOOL_CFG_GPU_NODE)) |
						  KVMM_POOL_CLOEXEC,
					  cfg->mode ? cfg->mode : 0600, cfg->pci_dev);
		r = fd < 0 ? fd : kvmm_hostpool_map(p, fd, false);
		/* nothing may be left behind when mapping failed */
		if (r && fd >= 0 && (cfg->flags & KVMM_HOSTPOOL_CFG_PERSISTENT))
			kmod_pool_destroy(dev, cfg->name);
		close(dev);
	}
	if (r) {
		kvmm_hostpool_close(p);
		return r;
	}
	*out = p;
	return 0;
}

int kvmm_hostpool_open(const char *name, uint32_t flags, struct kvmm_hostpool **out)
{
	bool ro = flags & KVMM_HOSTPOOL_READ_ONLY;
	struct kvmm_hostpool *p;
	struct kvmm_info info;
	int dev, fd, r;

	if (!name || !out || (flags & ~KVMM_HOSTPOOL_READ_ONLY))
		return -EINVAL;
	dev = kmod_dev_open(NULL);
	if (dev < 0)
		return dev;
	r = kmod_get_info(dev, &info);
	fd = r ? r : kmod_pool_open(dev, name, (ro ? KVMM_OPEN_RDONLY : 0) | KVMM_OPEN_CLOEXEC);
	close(dev);
	if (fd < 0)
		return fd;
	p = kvmm_hostpool_new();
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	r = kvmm_hostpool_map(p, fd, ro);
	if (r) {
		kvmm_hostpool_close(p);
		return r;
	}
	*out = p;
	return 0;
}

int kvmm_hostpool_destroy(const char *name)
{
	int dev, r;

	if (!name)
		return -EINVAL;
	dev = kmod_dev_open(NULL);
	if (dev < 0)
		return dev;
	r = kmod_pool_destroy(dev, name);
	close(dev);
	return r;
}

void *kvmm_hostpool_base(const struct kvmm_hostpool *p)
{
	return p ? p->base : NULL;
}

uint64_t kvmm_hostpool_page_size(const struct kvmm_hostpool *p)
{
	return p ? p->page_size : 0;
}

uint64_t kvmm_hostpool_pages(const struct kvmm_hostpool *p)
{
	return p ? p->pages : 0;
}

int kvmm_hostpool_fd(const struct kvmm_hostpool *p)
{
	return p ? p->fd : -1;
}

static int kvmm_check_ranges(const struct kvmm_hostpool *p, const struct kvmm_hostpool_range *r,
			     uint32_t n)
{
	if (!p || !r || !n || n > KVMM_MAX_RANGES)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++)
		if (!r[i].count || r[i].first >= p->pages || r[i].count > p->pages - r[i].first)
			return -EINVAL;
	return 0;
}

static void kvmm_fallback_set(struct kvmm_hostpool *p, uint64_t i, unsigned int state)
{
	p->nr_state[p->state[i]]--;
	p->nr_state[state]++;
	p->state[i] = (uint8_t)state;
}

int64_t kvmm_hostpool_set_states(struct kvmm_hostpool *p, const struct kvmm_hostpool_range *r,
				 uint32_t n, enum kvmm_hostpool_page_state state)
{
	int64_t changed = 0;
	int ret;

	if ((unsigned int)state > KVMM_HOSTPOOL_PAGE_COLD)
		return -EINVAL;
	ret = kvmm_check_ranges(p, r, n);
	if (ret)
		return ret;
	if (p->fd >= 0)
		return kmod_set_state(p->fd, (const struct kvmm_page_range *)r, n, state);
	pthread_mutex_lock(&p->lock);
	for (uint32_t k = 0; k < n; k++) {
		if (state == KVMM_HOSTPOOL_PAGE_FREE)
			madvise(p->base + r[k].first * p->page_size, r[k].count * p->page_size,
				MADV_REMOVE);
		for (uint64_t i = r[k].first; i < r[k].first + r[k].count; i++) {
			if (p->state[i] == state)
				continue;
			kvmm_fallback_set(p, i, state);
			changed++;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return changed;
}

int64_t kvmm_hostpool_set_state(struct kvmm_hostpool *p, uint64_t first, uint64_t count,
				enum kvmm_hostpool_page_state state)
{
	struct kvmm_hostpool_range r = {first, count};

	return kvmm_hostpool_set_states(p, &r, 1, state);
}

int kvmm_hostpool_populate(struct kvmm_hostpool *p, uint64_t first, uint64_t count)
{
	struct kvmm_hostpool_range r = {first, count};
	int64_t n;
	int ret = kvmm_check_ranges(p, &r, 1);

	if (ret)
		return ret;
	if (p->fd >= 0) {
		n = kmod_populate(p->fd, first, count);
		return n < 0 ? (int)n : 0;
	}
	if (madvise(p->base + first * p->page_size, count * p->page_size, MADV_POPULATE_WRITE)) {
		if (errno != EINVAL)
			return errno == EFAULT || errno == ENOMEM ? -ENOMEM : -errno;
		/* before 5.14: touch every page */
		for (uint64_t b = first * p->page_size; b < (first + count) * p->page_size;
		     b += 4096)
			((volatile char *)p->base)[b] = ((volatile char *)p->base)[b];
	}
	pthread_mutex_lock(&p->lock);
	for (uint64_t i = first; i < first + count; i++)
		if (p->state[i] == KVMM_HOSTPOOL_PAGE_FREE)
			kvmm_fallback_set(p, i, KVMM_HOSTPOOL_PAGE_HOT);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

uint32_t kvmm_hostpool_page_gen(const struct kvmm_hostpool *p, uint64_t page)
{
	if (!p || !p->gen || page >= p->pages)
		return 0;
	return __atomic_load_n(&p->gen[page], __ATOMIC_RELAXED);
}

uint64_t kvmm_hostpool_drop_seq(const struct kvmm_hostpool *p)
{
	if (!p || !p->status)
		return 0;
	/* pairs with the kernel's smp_wmb() between generation and seq */
	return __atomic_load_n(&p->status->seq, __ATOMIC_ACQUIRE);
}

int kvmm_hostpool_eventfd(struct kvmm_hostpool *p)
{
	int r = 0;

	if (!p)
		return -EINVAL;
	if (p->fd < 0)
		return -ENOTSUP;
	pthread_mutex_lock(&p->lock);
	if (p->efd < 0) {
		int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (efd < 0) {
			r = -errno;
		} else {
			r = kmod_set_eventfd(p->fd, efd);
			if (r)
				close(efd);
			else
				p->efd = efd;
		}
	}
	if (!r)
		r = p->efd;
	pthread_mutex_unlock(&p->lock);
	return r;
}

int kvmm_hostpool_set_residency(struct kvmm_hostpool *p, const uint64_t pages[KVMM_HOSTPOOL_TIERS])
{
	if (!p || !pages)
		return -EINVAL;
	if (p->fd >= 0)
		return kmod_set_residency(p->fd, pages);
	pthread_mutex_lock(&p->lock);
	memcpy(p->residency, pages, sizeof(p->residency));
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int kvmm_hostpool_stat(const struct kvmm_hostpool *p, struct kvmm_hostpool_stat *st)
{
	struct kvmm_pool_desc d;
	int r;

	if (!p || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->bytes = p->bytes;
	st->page_size = p->page_size;
	st->pages = p->pages;
	if (p->fd >= 0) {
		r = kmod_pool_info(p->fd, &d);
		if (r)
			return r;
		st->pages_present = d.pages_present;
		memcpy(st->pages_state, d.pages_state, sizeof(st->pages_state));
		st->pages_reclaimed = d.pages_reclaimed;
		memcpy(st->residency, d.residency, sizeof(st->residency));
		st->node = d.node;
		st->attached = d.attached;
		st->uid = d.uid;
		st->mode = d.mode;
		return 0;
	}
	pthread_mutex_lock((pthread_mutex_t *)&p->lock);
	memcpy(st->pages_state, p->nr_state, sizeof(st->pages_state));
	memcpy(st->residency, p->residency, sizeof(st->residency));
	pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
	{
		/* what is resident: one byte per PAGE_SIZE page */
		size_t n = p->map_len / 4096;
		unsigned char *vec = malloc(n);

		if (vec && !mincore(p->base, p->map_len, vec)) {
			uint64_t sub = p->page_size / 4096;

			for (uint64_t i = 0; i < p->pages; i++)
				for (uint64_t k = 0; k < sub; k++)
					if (vec[i * sub + k] & 1) {
						st->pages_present++;
						break;
					}
		}
		free(vec);
	}
	st->node = p->node;
	st->attached = 1;
	st->uid = (uint32_t)getuid();
	st->mode = p->mode;
	st->fallback = 1;
	return 0;
}
