// SPDX-License-Identifier: MIT
/*
 * backend_host.c - the CUDA VMM semantics on CPU memory.
 *
 *  - reserve:    mmap(PROT_NONE, MAP_NORESERVE), aligned by trimming
 *  - create:     a page-sized slot of one memfd, backed at once with
 *                fallocate (so a page is real memory, as cuMemCreate's is)
 *  - map:        mmap(MAP_SHARED|MAP_FIXED) of the slot, no access yet
 *  - set_access: mprotect (RW, or read-only for shared pages)
 *  - unmap:      back to a PROT_NONE reservation
 *  - destroy:    punch the slot's hole, so the memory returns to the kernel
 * The same slot mapped at two addresses is an alias: both see one page.
 *
 * Like the CUDA driver, it refuses to map over a mapping or to unmap what
 * is not mapped (a map of VA -> slot is kept for that), so logic errors in
 * the cache show up here, on machines without a GPU, as they would there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "u64map.h"

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21 << 26)
#endif

#define HOST_DEFAULT_PAGE (2ull << 20)

struct host_priv {
	int fd;
	pthread_mutex_t lock;
	uint64_t nslots; /* slots the file has room for */
	uint64_t *free;	 /* destroyed slots, reused first */
	size_t nfree, cap_free;
	struct u64map mapped; /* page VA -> slot */
	struct u64map live;   /* slot -> 1 for created pages */
};

static int host_open(struct kvmm_backend *be, const struct kvmm_backend_config *cfg)
{
	struct host_priv *p;
	long sys_page = sysconf(_SC_PAGESIZE);
	unsigned int mfd = MFD_CLOEXEC;

	if (!be->page_size)
		be->page_size = HOST_DEFAULT_PAGE;
	if (be->page_size < (uint64_t)sys_page || be->page_size % (uint64_t)sys_page)
		return -EINVAL;
	if (cfg->flags & KVMM_BACKEND_HUGETLB) {
		if (be->page_size % HOST_DEFAULT_PAGE)
			return -EINVAL;
		mfd |= MFD_HUGETLB | MFD_HUGE_2MB;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fd = memfd_create("kvmm-pages", mfd);
	if (p->fd < 0) {
		int err = -errno;

		kvmm_be_set_error(be, "memfd_create: %s", strerror(errno));
		free(p);
		return err;
	}
	pthread_mutex_init(&p->lock, NULL);
	u64map_init(&p->mapped);
	u64map_init(&p->live);
	be->priv = p;
	return 0;
}

static void host_close(struct kvmm_backend *be)
{
	struct host_priv *p = be->priv;

	if (!p)
		return;
	close(p->fd);
	u64map_free(&p->mapped);
	u64map_free(&p->live);
	free(p->free);
	pthread_mutex_destroy(&p->lock);
	free(p);
	be->priv = NULL;
}

static int host_reserve(struct kvmm_backend *be, uint64_t size, uint64_t align, uint64_t *va)
{
	uint64_t total, start, aligned;
	void *m;

	if (!size || size % be->page_size || !va)
		return -EINVAL;
	if (!align || align < be->page_size)
		align = be->page_size;
	if (align & (align - 1))
		return -EINVAL;
	if (size > UINT64_MAX - align)
		return -E2BIG;
	total = size + align;
	m = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		kvmm_be_set_error(be, "reserve %llu bytes: %s", (unsigned long long)total,
				  strerror(errno));
		return errno == ENOMEM ? -E2BIG : -errno;
	}
	start = (uint64_t)(uintptr_t)m;
	aligned = (start + align - 1) & ~(align - 1);
	if (aligned > start)
		munmap(m, aligned - start);
	if (start + total > aligned + size)
		munmap((void *)(uintptr_t)(aligned + size), start + total - aligned - size);
	*va = aligned;
	return 0;
}

static int check_range(struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	if (!va || !size || va % be->page_size || size % be->page_size || va + size < va)
		return -EINVAL;
	return 0;
}

static int host_release_va(struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	struct host_priv *p = be->priv;
	int busy = 0;

	if (check_range(be, va, size))
		return -EINVAL;
	/* The driver refuses to free a range that still has mappings. */
	pthread_mutex_lock(&p->lock);
	for (uint64_t a = va; a < va + size && !busy; a += be->page_size)
		busy = u64map_get(&p->mapped, a, NULL);
	pthread_mutex_unlock(&p->lock);
	if (busy)
		return -EBUSY;
	return munmap((void *)(uintptr_t)va, size) ? -errno : 0;
}

static int push_free(struct host_priv *p, uint64_t slot)
{
	if (p->nfree == p->cap_free) {
		size_t ncap = p->cap_free ? p->cap_free * 2 : 64;
		uint64_t *n = realloc(p->free, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->free = n;
		p->cap_free = ncap;
	}
	p->free[p->nfree++] = slot;
	return 0;
}

static int host_create(struct kvmm_backend *be, kvmm_phys_t *page)
{
	struct host_priv *p = be->priv;
	uint64_t slot;
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	/* Make sure the free list can take the slot back on any error below. */
	ret = push_free(p, 0);
	if (ret)
		goto out;
	p->nfree--;
	if (p->nfree) {
		slot = p->free[--p->nfree];
	} else {
		slot = p->nslots;
		if (ftruncate(p->fd, (off_t)((slot + 1) * be->page_size))) {
			ret = -errno;
			goto out;
		}
		p->nslots++;
	}
	/* Back the slot now: a created page is memory, not a promise. */
	if (fallocate(p->fd, 0, (off_t)(slot * be->page_size), (off_t)be->page_size)) {
		ret = (errno == ENOSPC || errno == ENOMEM) ? -ENOMEM : -errno;
		kvmm_be_set_error(be, "fallocate page: %s", strerror(errno));
		p->free[p->nfree++] = slot; /* room reserved above */
		goto out;
	}
	ret = u64map_put(&p->live, slot, 1);
	if (ret) {
		fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(slot * be->page_size), (off_t)be->page_size);
		p->free[p->nfree++] = slot;
		goto out;
	}
	*page = slot;
out:
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static int host_destroy(struct kvmm_backend *be, kvmm_phys_t page)
{
	struct host_priv *p = be->priv;
	int ret;

	pthread_mutex_lock(&p->lock);
	if (!u64map_get(&p->live, page, NULL)) {
		ret = -EINVAL;
		goto out;
	}
	/* Reserve room on the free list first so the error path is clean. */
	ret = push_free(p, page);
	if (ret)
		goto out;
	p->nfree--;
	fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(page * be->page_size),
		  (off_t)be->page_size);
	u64map_del(&p->live, page, NULL);
	p->free[p->nfree++] = page;
out:
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static int host_map(struct kvmm_backend *be, uint64_t va, kvmm_phys_t page)
{
	struct host_priv *p = be->priv;
	void *m;
	int ret;

	if (check_range(be, va, be->page_size))
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (!u64map_get(&p->live, page, NULL)) {
		ret = -EINVAL;
		goto out;
	}
	if (u64map_get(&p->mapped, va, NULL)) {
		ret = -EEXIST;
		goto out;
	}
	ret = u64map_put(&p->mapped, va, page);
	if (ret)
		goto out;
	/* No access until set_access, as with cuMemMap. */
	m = mmap((void *)(uintptr_t)va, be->page_size, PROT_NONE, MAP_SHARED | MAP_FIXED, p->fd,
		 (off_t)(page * be->page_size));
	if (m == MAP_FAILED) {
		ret = -errno;
		u64map_del(&p->mapped, va, NULL);
	}
out:
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static int all_mapped(struct host_priv *p, struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	for (uint64_t a = va; a < va + size; a += be->page_size)
		if (!u64map_get(&p->mapped, a, NULL))
			return 0;
	return 1;
}

static int host_set_access(struct kvmm_backend *be, uint64_t va, uint64_t size, enum kvmm_prot prot)
{
	struct host_priv *p = be->priv;
	int ret = 0;

	if (check_range(be, va, size) || (prot != KVMM_PROT_RW && prot != KVMM_PROT_READ))
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (!all_mapped(p, be, va, size))
		ret = -EINVAL;
	else if (mprotect((void *)(uintptr_t)va, size,
			  prot == KVMM_PROT_READ ? PROT_READ : PROT_READ | PROT_WRITE))
		ret = -errno;
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static int host_unmap(struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	struct host_priv *p = be->priv;
	void *m;
	int ret = 0;

	if (check_range(be, va, size))
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (!all_mapped(p, be, va, size)) {
		ret = -EINVAL;
		goto out;
	}
	m = mmap((void *)(uintptr_t)va, size, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		ret = -errno;
		goto out;
	}
	for (uint64_t a = va; a < va + size; a += be->page_size)
		u64map_del(&p->mapped, a, NULL);
out:
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static int host_copy_htod(struct kvmm_backend *be, uint64_t dst, const void *src, size_t n)
{
	memcpy((void *)(uintptr_t)dst, src, n);
	return 0;
}

static int host_copy_dtoh(struct kvmm_backend *be, void *dst, uint64_t src, size_t n)
{
	memcpy(dst, (const void *)(uintptr_t)src, n);
	return 0;
}

static int host_copy_dtod(struct kvmm_backend *be, uint64_t dst, uint64_t src, size_t n)
{
	memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
	return 0;
}

static int host_fill(struct kvmm_backend *be, uint64_t dst, int byte, size_t n)
{
	memset((void *)(uintptr_t)dst, byte, n);
	return 0;
}

static int host_sync(struct kvmm_backend *be)
{
	return 0;
}

const struct kvmm_backend_ops kvmm_host_backend_ops = {
	.name = "host",
	.type = KVMM_BACKEND_HOST,
	.open = host_open,
	.close = host_close,
	.reserve = host_reserve,
	.release_va = host_release_va,
	.create = host_create,
	.destroy = host_destroy,
	.map = host_map,
	.set_access = host_set_access,
	.unmap = host_unmap,
	.copy_htod = host_copy_htod,
	.copy_dtoh = host_copy_dtoh,
	.copy_dtod = host_copy_dtod,
	.fill = host_fill,
	.sync = host_sync,
};
