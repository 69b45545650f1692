/* SPDX-License-Identifier: MIT */
/*
 * tier_host.h - the host tier's memory: a pinned pool of fixed-size slots
 * on the GPU's NUMA node.
 *
 * Created fast: the memory source maps it (tier_mem.h), it is bound to the
 * node with mbind, then pre-touched by several threads running on that
 * node's CPUs, each also registering its chunks with the CUDA driver
 * (cuMemHostRegister) when the backend is CUDA.  The chunks (slot aligned,
 * at most 1 GiB) are also what the disk tier registers with io_uring, so
 * no copy or I/O ever spans two registrations.
 *
 * The pool knows nothing of keys: it hands out slots; the tier layer keeps
 * what is in them.  All functions are thread-safe except create/destroy.
 */
#ifndef KVMM_TIER_HOST_H
#define KVMM_TIER_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backend.h"
#include "tier_mem.h"

#define TIER_NODE_ANY (-1) /* no placement */
#define TIER_NODE_OF_GPU \
	(-2) /* the node of the CUDA backend's device (any
			       * without a CUDA backend or when unknown) */

/* Flags. */
#define TIER_HOST_HUGETLB  (1u << 0) /* 2 MiB hugetlb pages (fail without) */
#define TIER_HOST_THP	   (1u << 1) /* transparent huge pages */
#define TIER_HOST_NO_PIN   (1u << 2) /* do not register with the CUDA driver */
#define TIER_HOST_NO_TOUCH (1u << 3) /* no pre-touch (pages fault on use) */
#define TIER_HOST_FALLBACK \
	(1u << 4) /* kmod source: ordinary memory without
				      * the module (same code, for tests) */
#define TIER_HOST__FLAGS 0x1fu

typedef void (*tier_host_log_fn)(void *arg, const char *msg);

struct tier_host_config {
	uint64_t bytes;	      /* pool size; rounded down to whole slots */
	uint64_t slot_bytes;  /* multiple of 4 KiB, at most chunk_bytes */
	uint64_t chunk_bytes; /* registration chunk (0: 256 MiB; max 1 GiB) */
	int numa_node;	      /* a node, TIER_NODE_ANY or TIER_NODE_OF_GPU */
	uint32_t threads;     /* pre-touch threads (0: the node's CPUs, <= 16) */
	uint32_t flags;	      /* TIER_HOST_* */
	uint32_t __pad;
	struct kvmm_backend *be;	/* CUDA: pin with cuMemHostRegister */
	const struct tier_mem_ops *mem; /* NULL: the anonymous mapping */
	const char *sysfs;		/* NULL: "/sys" (tests fake it) */
	tier_host_log_fn log;		/* placement problems, once each */
	void *log_arg;
	const char *pool_name; /* kmod source: a persistent pool (tier_mem.h) */
};

struct tier_host_stats {
	const char *source; /* the memory source's description */
	uint64_t bytes;
	uint64_t slot_bytes;
	uint32_t slots, slots_free;
	int node;	       /* where the memory was placed, -1 none */
	uint32_t threads;      /* pre-touch threads used */
	bool numa_bind_failed; /* mbind refused (threads on the node still
				  * place it by first touch) */
	bool pinned;	       /* registered with the CUDA driver */
	uint64_t pinned_bytes;
	uint64_t create_ns;   /* whole creation */
	uint64_t touch_ns;    /* pre-touch + registration (parallel, overlapped) */
	uint64_t populate_ns; /* until every page was populated (0: none to do) */
	uint64_t alloc_fail;  /* -ENOSPC from tier_host_alloc */
	bool reopened;	      /* a persistent pool found again: slots may hold records */
};

struct tier_host;

/* -EINVAL bad config, -ENOMEM, or the driver's error from registration. */
int tier_host_create(const struct tier_host_config *cfg, struct tier_host **out);
void tier_host_destroy(struct tier_host *h);

/* A free slot into *slot, or -ENOSPC. */
int tier_host_alloc(struct tier_host *h, uint32_t *slot);
void tier_host_free(struct tier_host *h, uint32_t slot);
/* Right after create: the slots with used[i] set hold records (found in a
 * re-opened pool) and are not free. */
void tier_host_set_used(struct tier_host *h, const uint8_t *used);
/* The slot's bytes; NULL for a pool without bytes (tier_host_has_bytes). */
void *tier_host_slot(const struct tier_host *h, uint32_t slot);
/* false: a pool of capacity only (the null source, for the null backend):
 * slots are accounted for, nothing is behind them. */
bool tier_host_has_bytes(const struct tier_host *h);
uint32_t tier_host_nslots(const struct tier_host *h);
uint64_t tier_host_slot_bytes(const struct tier_host *h);
/* The registration chunks (for the disk tier's registered buffers). */
const struct iovec *tier_host_chunks(const struct tier_host *h, uint32_t *n);
void tier_host_get_stats(struct tier_host *h, struct tier_host_stats *st);

/* The kernel module's page states for a slot (a no-op for other sources):
 * COLD when its record is also on disk, HOT when in use.  0 or -errno. */
int tier_host_set_state(struct tier_host *h, uint32_t slot, enum tier_mem_state st);
/* Changes when the kernel dropped any page of the slot (0 for sources
 * that never drop). */
uint64_t tier_host_generation(struct tier_host *h, uint32_t slot);
/* Publish residency (pages per tier) where the source shows it. */
int tier_host_publish(struct tier_host *h, const uint64_t pages[4]);

#endif /* KVMM_TIER_HOST_H */
