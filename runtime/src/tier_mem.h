/* SPDX-License-Identifier: MIT */
/*
 * tier_mem.h - where the host tier's bytes come from.
 *
 * A small interface so that the host tier runs the same way on its own
 * anonymous mapping (tier_mem_anon.c) and on a pool of the kvmm kernel
 * module when /dev/kvmm exists: the source maps the memory; the host tier
 * places it (mbind), pre-touches it in parallel and registers it for DMA.
 *
 * The null source (tier_mem_null.c) is capacity without memory, for the
 * null backend: the pool has slots to account for but no bytes behind
 * them (base NULL, nobytes set), so the tier layer keeps its records as
 * bookkeeping only (docs/tiers.md, "Bookkeeping only").
 */
#ifndef KVMM_TIER_MEM_H
#define KVMM_TIER_MEM_H

#include <stdbool.h>
#include <stdint.h>

/* Flags of a source request. */
#define TIER_MEM_HUGETLB (1u << 0) /* 2 MiB hugetlb pages (fail without them) */
#define TIER_MEM_THP	 (1u << 1) /* transparent huge pages where possible */
#define TIER_MEM_FALLBACK \
	(1u << 2) /* kmod: ordinary memory without the module
				     * (tests run the same code without it) */

/* States of the memory behind a record (the kernel module's page states). */
enum tier_mem_state {
	TIER_MEM_FREE = 0, /* no data: the memory may go now */
	TIER_MEM_HOT = 1,  /* in use: kept */
	TIER_MEM_COLD = 2, /* a copy is on disk: the kernel may drop it */
};

struct tier_mem {
	const struct tier_mem_ops *ops;
	void *base;	  /* the mapping */
	uint64_t bytes;	  /* its size */
	uint64_t page;	  /* its page size (4 KiB, 2 MiB) */
	bool populated;	  /* the source gave memory to every page already */
	bool node_placed; /* the source placed the pages on the node itself */
	bool nobytes;	  /* capacity only: no memory behind it (base NULL) */
	char desc[96];	  /* e.g. "anon", "kvmm pool kvmm-host-1234" */
	void *priv;
	/* kmod: a persistent pool of this name, created or re-opened (set
	 * before create; NULL: a private pool) */
	const char *name;
	bool reopened; /* an existing pool: its bytes may hold records */
};

struct tier_mem_ops {
	const char *name;
	/* Map bytes (a multiple of 2 MiB) for node (-1: any). */
	int (*create)(struct tier_mem *m, uint64_t bytes, int node, uint32_t flags);
	void (*destroy)(struct tier_mem *m);
	/* Optional (kernel module pools): */
	/* the state of [off, off + len) */
	int (*set_state)(struct tier_mem *m, uint64_t off, uint64_t len, enum tier_mem_state st);
	/* a number that changes when any page of [off, off + len) is dropped */
	uint64_t (*generation)(struct tier_mem *m, uint64_t off, uint64_t len);
	/* publish residency (pages per tier: GPU, host, disk, in flight) */
	int (*publish)(struct tier_mem *m, const uint64_t pages[4]);
};

extern const struct tier_mem_ops tier_mem_anon_ops;
extern const struct tier_mem_ops tier_mem_kmod_ops;
extern const struct tier_mem_ops tier_mem_null_ops;

#endif /* KVMM_TIER_MEM_H */
