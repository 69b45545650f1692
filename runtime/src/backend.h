/* SPDX-License-Identifier: MIT */
/*
 * backend.h - the backend ops table behind struct kvmm_backend.
 *
 * Each backend (host, cuda, null) fills one const struct kvmm_backend_ops.
 * Callers inside libkvmm go through the kvmm_be_*() wrappers below, which
 * count every call, its failures and its time in be->stats, so the cache can
 * prove that its critical path makes no driver call.
 */
#ifndef KVMM_BACKEND_H
#define KVMM_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "kvmm.h"

/* An opaque physical page handle (CUmemGenericAllocationHandle, or a
 * backend-private page number). */
typedef uint64_t kvmm_phys_t;

/* Access for a mapping. */
enum kvmm_prot {
	KVMM_PROT_RW = 0,
	KVMM_PROT_READ = 1, /* shared (aliased) pages: immutable by construction */
};

struct kvmm_backend_ops {
	const char *name;
	enum kvmm_backend_type type;
	/* open/close the backend's private state (be->priv) */
	int (*open)(struct kvmm_backend *be, const struct kvmm_backend_config *cfg);
	void (*close)(struct kvmm_backend *be);
	/* reserve/free a virtual range of size bytes aligned to align */
	int (*reserve)(struct kvmm_backend *be, uint64_t size, uint64_t align, uint64_t *va);
	int (*release_va)(struct kvmm_backend *be, uint64_t va, uint64_t size);
	/* create/destroy one physical page of be->page_size bytes */
	int (*create)(struct kvmm_backend *be, kvmm_phys_t *page);
	int (*destroy)(struct kvmm_backend *be, kvmm_phys_t page);
	/* map one page at va (page aligned, inside a reservation), then set
	 * its access; the CUDA API needs both, the host backend does both in
	 * map and set_access only changes protection. */
	int (*map)(struct kvmm_backend *be, uint64_t va, kvmm_phys_t page);
	int (*set_access)(struct kvmm_backend *be, uint64_t va, uint64_t size, enum kvmm_prot prot);
	int (*unmap)(struct kvmm_backend *be, uint64_t va, uint64_t size);
	/* data movement; dir says which side is host memory */
	int (*copy_htod)(struct kvmm_backend *be, uint64_t dst, const void *src, size_t n);
	int (*copy_dtoh)(struct kvmm_backend *be, void *dst, uint64_t src, size_t n);
	int (*copy_dtod)(struct kvmm_backend *be, uint64_t dst, uint64_t src, size_t n);
	int (*fill)(struct kvmm_backend *be, uint64_t dst, int byte, size_t n);
	int (*sync)(struct kvmm_backend *be);
};

struct kvmm_backend {
	const struct kvmm_backend_ops *ops;
	uint64_t page_size;
	uint32_t flags;
	int device;
	void *priv;
	/* counters, updated with relaxed atomics by the wrappers */
	_Atomic uint64_t calls[KVMM_OP__COUNT];
	_Atomic uint64_t errors[KVMM_OP__COUNT];
	_Atomic uint64_t time_ns[KVMM_OP__COUNT];
	_Atomic uint64_t pages_live;
	_Atomic uint64_t va_reserved;
	/* last driver error text, for kvmm_backend_last_error() */
	pthread_mutex_t err_lock;
	char last_error[160];
};

extern const struct kvmm_backend_ops kvmm_host_backend_ops;
extern const struct kvmm_backend_ops kvmm_null_backend_ops;
#ifdef KVMM_HAVE_CUDA
extern const struct kvmm_backend_ops kvmm_cuda_backend_ops;
#endif

/* Record a driver error text (printf-style) for kvmm_backend_last_error(). */
void kvmm_be_set_error(struct kvmm_backend *be, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Counted wrappers: every internal use goes through these. */
int kvmm_be_reserve(struct kvmm_backend *be, uint64_t size, uint64_t align, uint64_t *va);
int kvmm_be_release_va(struct kvmm_backend *be, uint64_t va, uint64_t size);
int kvmm_be_create(struct kvmm_backend *be, kvmm_phys_t *page);
int kvmm_be_destroy(struct kvmm_backend *be, kvmm_phys_t page);
int kvmm_be_map(struct kvmm_backend *be, uint64_t va, kvmm_phys_t page);
int kvmm_be_set_access(struct kvmm_backend *be, uint64_t va, uint64_t size, enum kvmm_prot prot);
int kvmm_be_unmap(struct kvmm_backend *be, uint64_t va, uint64_t size);
int kvmm_be_copy_htod(struct kvmm_backend *be, uint64_t dst, const void *src, size_t n);
int kvmm_be_copy_dtoh(struct kvmm_backend *be, void *dst, uint64_t src, size_t n);
int kvmm_be_copy_dtod(struct kvmm_backend *be, uint64_t dst, uint64_t src, size_t n);
int kvmm_be_fill(struct kvmm_backend *be, uint64_t dst, int byte, size_t n);
int kvmm_be_sync(struct kvmm_backend *be);

/* Total driver calls so far (all kinds): the cache samples it around its
 * critical path. */
uint64_t kvmm_be_total_calls(const struct kvmm_backend *be);

#endif /* KVMM_BACKEND_H */
