// SPDX-License-Identifier: MIT
/*
 * backend.c - open/close a backend and the counted wrappers around its ops.
 *
 * Every call into a backend goes through kvmm_be_*(), which count calls,
 * failures and wall time per kind.  The counters are what the benchmarks
 * and the "no driver call on the decode path" check read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void kvmm_be_set_error(struct kvmm_backend *be, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&be->err_lock);
	va_start(ap, fmt);
	vsnprintf(be->last_error, sizeof(be->last_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&be->err_lock);
}

static const struct kvmm_backend_ops *ops_for(enum kvmm_backend_type type)
{
	switch (type) {
	case KVMM_BACKEND_HOST:
		return &kvmm_host_backend_ops;
	case KVMM_BACKEND_NULL:
		return &kvmm_null_backend_ops;
	case KVMM_BACKEND_CUDA:
#ifdef KVMM_HAVE_CUDA
		return &kvmm_cuda_backend_ops;
#else
		return NULL;
#endif
	default:
		return NULL;
	}
}

static int try_open(const struct kvmm_backend_ops *ops, const struct kvmm_backend_config *cfg,
		    struct kvmm_backend *be)
{
	int ret;

	be->ops = ops;
	be->flags = cfg->flags;
	be->device = cfg->device;
	be->page_size = cfg->page_size;
	ret = ops->open(be, cfg);
	if (ret < 0)
		be->ops = NULL;
	return ret;
}

int kvmm_backend_open(const struct kvmm_backend_config *cfg, struct kvmm_backend **out)
{
	struct kvmm_backend_config def = {.type = KVMM_BACKEND_AUTO};
	struct kvmm_backend *be;
	char why[sizeof(be->last_error)] = "";
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg)
		cfg = &def;
	if (cfg->type > KVMM_BACKEND_NULL || cfg->device < 0 ||
	    (cfg->flags & ~KVMM_BACKEND_HUGETLB))
		return -EINVAL;
	if (cfg->page_size & (cfg->page_size - 1))
		return -EINVAL;

	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	pthread_mutex_init(&be->err_lock, NULL);

	if (cfg->type == KVMM_BACKEND_AUTO) {
		ret = -ENODEV;
#ifdef KVMM_HAVE_CUDA
		ret = try_open(&kvmm_cuda_backend_ops, cfg, be);
		if (ret < 0)
			snprintf(why, sizeof(why), "%s", be->last_error);
#else
		snprintf(why, sizeof(why), "built without CUDA");
#endif
		if (ret < 0)
			ret = try_open(&kvmm_host_backend_ops, cfg, be);
		if (ret == 0 && why[0])
			kvmm_be_set_error(be, "cuda backend not used: %s", why);
	} else {
		const struct kvmm_backend_ops *ops = ops_for(cfg->type);

		ret = ops ? try_open(ops, cfg, be) : -ENODEV;
	}
	if (ret < 0) {
		pthread_mutex_destroy(&be->err_lock);
		free(be);
		return ret;
	}
	*out = be;
	return 0;
}

void kvmm_backend_close(struct kvmm_backend *be)
{
	if (!be)
		return;
	if (be->ops)
		be->ops->close(be);
	pthread_mutex_destroy(&be->err_lock);
	free(be);
}

const char *kvmm_backend_name(const struct kvmm_backend *be)
{
	return be && be->ops ? be->ops->name : "none";
}

enum kvmm_backend_type kvmm_backend_get_type(const struct kvmm_backend *be)
{
	return be && be->ops ? be->ops->type : KVMM_BACKEND_AUTO;
}

uint64_t kvmm_backend_page_size(const struct kvmm_backend *be)
{
	return be ? be->page_size : 0;
}

int kvmm_backend_stats(const struct kvmm_backend *be, struct kvmm_backend_stats *st)
{
	if (!be || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	for (int i = 0; i < KVMM_OP__COUNT; i++) {
		st->calls[i] = atomic_load_explicit(&be->calls[i], memory_order_relaxed);
		st->errors[i] = atomic_load_explicit(&be->errors[i], memory_order_relaxed);
		st->time_ns[i] = atomic_load_explicit(&be->time_ns[i], memory_order_relaxed);
	}
	st->pages_live = atomic_load_explicit(&be->pages_live, memory_order_relaxed);
	st->va_reserved_bytes = atomic_load_explicit(&be->va_reserved, memory_order_relaxed);
	return 0;
}

const char *kvmm_backend_last_error(const struct kvmm_backend *be)
{
	/* The text is written under err_lock and read without it: it is
	 * informative only, and always NUL-terminated within the buffer. */
	return be ? be->last_error : "";
}

uint64_t kvmm_be_total_calls(const struct kvmm_backend *be)
{
	uint64_t n = 0;

	for (int i = 0; i < KVMM_OP__COUNT; i++)
		n += atomic_load_explicit(&be->calls[i], memory_order_relaxed);
	return n;
}

static inline uint64_t account_start(void)
{
	return now_ns();
}

static inline int account(struct kvmm_backend *be, enum kvmm_backend_op op, uint64_t t0, int ret)
{
	atomic_fetch_add_explicit(&be->calls[op], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&be->time_ns[op], now_ns() - t0, memory_order_relaxed);
	if (ret < 0)
		atomic_fetch_add_explicit(&be->errors[op], 1, memory_order_relaxed);
	return ret;
}

int kvmm_be_reserve(struct kvmm_backend *be, uint64_t size, uint64_t align, uint64_t *va)
{
	uint64_t t0 = account_start();
	int ret = be->ops->reserve(be, size, align, va);

	if (ret == 0)
		atomic_fetch_add_explicit(&be->va_reserved, size, memory_order_relaxed);
	return account(be, KVMM_OP_RESERVE, t0, ret);
}

int kvmm_be_release_va(struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	uint64_t t0 = account_start();
	int ret = be->ops->release_va(be, va, size);

	if (ret == 0)
		atomic_fetch_sub_explicit(&be->va_reserved, size, memory_order_relaxed);
	return account(be, KVMM_OP_RELEASE_VA, t0, ret);
}

int kvmm_be_create(struct kvmm_backend *be, kvmm_phys_t *page)
{
	uint64_t t0 = account_start();
	int ret = be->ops->create(be, page);

	if (ret == 0)
		atomic_fetch_add_explicit(&be->pages_live, 1, memory_order_relaxed);
	return account(be, KVMM_OP_CREATE, t0, ret);
}

int kvmm_be_destroy(struct kvmm_backend *be, kvmm_phys_t page)
{
	uint64_t t0 = account_start();
	int ret = be->ops->destroy(be, page);

	if (ret == 0)
		atomic_fetch_sub_explicit(&be->pages_live, 1, memory_order_relaxed);
	return account(be, KVMM_OP_DESTROY, t0, ret);
}

int kvmm_be_map(struct kvmm_backend *be, uint64_t va, kvmm_phys_t page)
{
	uint64_t t0 = account_start();

	return account(be, KVMM_OP_MAP, t0, be->ops->map(be, va, page));
}

int kvmm_be_set_access(struct kvmm_backend *be, uint64_t va, uint64_t size, enum kvmm_prot prot)
{
	uint64_t t0 = account_start();

	return account(be, KVMM_OP_SET_ACCESS, t0, be->ops->set_access(be, va, size, prot));
}

int kvmm_be_unmap(struct kvmm_backend *be, uint64_t va, uint64_t size)
{
	uint64_t t0 = account_start();

	return account(be, KVMM_OP_UNMAP, t0, be->ops->unmap(be, va, size));
}

int kvmm_be_copy_htod(struct kvmm_backend *be, uint64_t dst, const void *src, size_t n)
{
	uint64_t t0 = account_start();

	return account(be, KVMM_OP_COPY, t0, be->ops->copy_htod(be, dst, src, n));
}

int kvmm_be_copy_dtoh(struct kvmm_backend *be, void *dst, uint64_t src, size_t n)
{
	uint64_t t0 = account_start();

	return account(be, KVMM_OP_COPY, t0, be->ops->copy_dtoh(be, dst, src, n));
}

int kvmm_be_copy_dtod(struct kvmm_backend *be, uint64_t dst, uint64_t src, size_t n)
{
	uint64_t t0 = account_start();

	return account(be, KVMM_OP_COPY, t0, be->ops->copy_dtod(be, dst, src, n));
}

int kvmm_be_fill(struct kvmm_backend *be, uint64_t dst, int byte, size_t n)
{
	uint64_t t0 = account_start();

	return account(be, KVMM_OP_FILL, t0, be->ops->fill(be, dst, byte, n));
}

int kvmm_be_sync(struct kvmm_backend *be)
{
	uint64_t t0 = account_start();

	return account(be, KVMM_OP_SYNC, t0, be->ops->sync(be));
}

/* Public copy helpers: validated, then the counted wrappers. */
int kvmm_memcpy_to_dev(struct kvmm_backend *be, uint64_t dst, const void *src, size_t n)
{
	if (!be || !be->ops || (!src && n) || (!dst && n))
		return -EINVAL;
	return n ? kvmm_be_copy_htod(be, dst, src, n) : 0;
}

int kvmm_memcpy_to_host(struct kvmm_backend *be, void *dst, uint64_t src, size_t n)
{
	if (!be || !be->ops || (!dst && n) || (!src && n))
		return -EINVAL;
	return n ? kvmm_be_copy_dtoh(be, dst, src, n) : 0;
}

int kvmm_memcpy_dev(struct kvmm_backend *be, uint64_t dst, uint64_t src, size_t n)
{
	if (!be || !be->ops || ((!dst || !src) && n))
		return -EINVAL;
	return n ? kvmm_be_copy_dtod(be, dst, src, n) : 0;
}

int kvmm_memset_dev(struct kvmm_backend *be, uint64_t dst, int byte, size_t n)
{
	if (!be || !be->ops || (!dst && n))
		return -EINVAL;
	return n ? kvmm_be_fill(be, dst, byte, n) : 0;
}
