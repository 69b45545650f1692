/* SPDX-License-Identifier: MIT */
/*
 * tier_mem.h - where the host tier's bytes come from.
 *
 * A small interface so that the host tier runs the same way on its own
 * anonymous mapping (tier_mem_anon.c) and on a pool of the kvmm kernel
 * module when /dev/kvmm exists: the source maps the memory; the host tier
 * places it (mbind), pre-touches it in parallel and registers it for DMA.
 */
#ifndef KVMM_TIER_MEM_H
#define KVMM_TIER_MEM_H

#include <stdbool.h>
#include <stdint.h>

/* Flags of a source request. */
#define TIER_MEM_HUGETLB (1u << 0) /* 2 MiB hugetlb pages (fail without them) */
#define TIER_MEM_THP	 (1u << 1) /* transparent huge pages where possible */

struct tier_mem {
	const struct tier_mem_ops *ops;
	void *base;	  /* the mapping */
	uint64_t bytes;	  /* its size */
	uint64_t page;	  /* its page size (4 KiB, 2 MiB) */
	bool populated;	  /* the source gave memory to every page already */
	bool node_placed; /* the source placed the pages on the node itself */
	char desc[96];	  /* e.g. "anon", "kvmm pool kvmm-host-1234" */
	void *priv;
};

struct tier_mem_ops {
	const char *name;
	/* Map bytes (a multiple of 2 MiB) for node (-1: any). */
	int (*create)(struct tier_mem *m, uint64_t bytes, int node, uint32_t flags);
	void (*destroy)(struct tier_mem *m);
};

extern const struct tier_mem_ops tier_mem_anon_ops;

#endif /* KVMM_TIER_MEM_H */
