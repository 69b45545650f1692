// SPDX-License-Identifier: MIT
/*
 * backend_null.c - bookkeeping without bytes.
 *
 * Addresses and page handles are numbers only, so the cache, the prefix
 * cache and the tiers run their real logic over terabytes of "KV" in a few
 * megabytes of RAM (kvmm-sim replays production traces this way).  Reads and
 * writes of data return -ENOTSUP; mapping rules are checked as on the host
 * backend.
 */
#include <errno.h>
#include <stdlib.h>

#include "backend.h"
#include "u64map.h"

#define NULL_BASE (1ull << 46)

struct null_priv {
	pthread_mutex_t lock;
	uint64_t next_va;
	uint64_t next_page;
	struct u64map mapped; /* VA -> page */
	struct u64map live;   /* page -> 1 */
};

static int null_open(struct kvmm_backend *be, const struct kvmm_backend_config *cfg)
{
	struct null_priv *p;

	if (!be->page_size)
		be->page_size = 2ull << 20;
	if (be->page_size < 4096)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->next_va = NULL_BASE;
	u64map_init(&p->mapped);
	u64map_init(&p->live);
	be->priv = p;
	return 0;
}

static void null_close(struct kvmm_backend *be)
{
	struct null_priv *p = be->priv;

	u64map_free(&p->mapped);
	u64map_free(&p->live);
	pthread_mutex_destroy(&p->lock);
	free(p);
	be->priv = NULL;
}

static int null_reserve(struct kvmm_backend *be, uint64_t size, uint64_t align, uint64_t *va)
{
	struct null_priv *p = be->priv;
	int ret = 0;

	if (!size || size % be->page_size || !va)
		return -EINVAL;
	if (!align || align < be->page_size)
		align = be->page_size;
	if (align & (align - 1))
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	uint64_t a = (p->next_va + align - 1) & ~(align - 1);

	if (a < p->next_va || a + size < a || a + size > (1ull << 62)) {
		ret = -E2BIG;
	} else {
		*va = a;
		p->next_va = a + size;
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static int null_release_va(struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	return (!va || !size || size % be->page_size) ? -EINVAL : 0;
}

static int null_create(struct kvmm_backend *be, kvmm_phys_t *page)
{
	struct null_priv *p = be->priv;
	int ret;

	pthread_mutex_lock(&p->lock);
	ret = u64map_put(&p->live, p->next_page, 1);
	if (!ret)
		*page = p->next_page++;
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static int null_destroy(struct kvmm_backend *be, kvmm_phys_t page)
{
	struct null_priv *p = be->priv;
	bool ok;

	pthread_mutex_lock(&p->lock);
	ok = u64map_del(&p->live, page, NULL);
	pthread_mutex_unlock(&p->lock);
	return ok ? 0 : -EINVAL;
}

static int null_map(struct kvmm_backend *be, uint64_t va, kvmm_phys_t page)
{
	struct null_priv *p = be->priv;
	int ret = 0;

	if (!va || va % be->page_size)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	if (!u64map_get(&p->live, page, NULL))
		ret = -EINVAL;
	else if (u64map_get(&p->mapped, va, NULL))
		ret = -EEXIST;
	else
		ret = u64map_put(&p->mapped, va, page);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static int null_set_access(struct kvmm_backend *be, uint64_t va, uint64_t size, enum kvmm_prot prot)
{
	return (!va || !size || va % be->page_size || size % be->page_size) ? -EINVAL : 0;
}

static int null_unmap(struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	struct null_priv *p = be->priv;
	int ret = 0;

	if (!va || !size || va % be->page_size || size % be->page_size)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	for (uint64_t a = va; a < va + size; a += be->page_size)
		if (!u64map_get(&p->mapped, a, NULL))
			ret = -EINVAL;
	if (!ret)
		for (uint64_t a = va; a < va + size; a += be->page_size)
			u64map_del(&p->mapped, a, NULL);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static int null_copy_htod(struct kvmm_backend *be, uint64_t dst, const void *src, size_t n)
{
	return -ENOTSUP;
}

static int null_copy_dtoh(struct kvmm_backend *be, void *dst, uint64_t src, size_t n)
{
	return -ENOTSUP;
}

/* Device-side copies and fills are accepted (no bytes to move), so copy
 * attach and spill paths run their bookkeeping on the null backend. */
static int null_copy_dtod(struct kvmm_backend *be, uint64_t dst, uint64_t src, size_t n)
{
	return 0;
}

static int null_fill(struct kvmm_backend *be, uint64_t dst, int byte, size_t n)
{
	return 0;
}

static int null_sync(struct kvmm_backend *be)
{
	return 0;
}

const struct kvmm_backend_ops kvmm_null_backend_ops = {
	.name = "null",
	.type = KVMM_BACKEND_NULL,
	.open = null_open,
	.close = null_close,
	.reserve = null_reserve,
	.release_va = null_release_va,
	.create = null_create,
	.destroy = null_destroy,
	.map = null_map,
	.set_access = null_set_access,
	.unmap = null_unmap,
	.copy_htod = null_copy_htod,
	.copy_dtoh = null_copy_dtoh,
	.copy_dtod = null_copy_dtod,
	.fill = null_fill,
	.sync = null_sync,
};
