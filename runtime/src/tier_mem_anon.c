// SPDX-License-Identifier: MIT
/*
 * tier_mem_anon.c - the host tier's own memory: one private anonymous
 * mapping, 2 MiB aligned (so transparent huge pages can back it), or
 * hugetlb pages on request.  Placement and pre-touch are the host tier's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "tier_mem.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif
#define HUGE (2ull << 20)

/* Does the kernel give transparent huge pages to madvised memory? */
static bool thp_available(void)
{
	char line[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return false; /* a kernel without THP */
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	return !strstr(line, "[never]");
}

static int anon_create(struct tier_mem *m, uint64_t bytes, int node, uint32_t flags)
{
	uint64_t total = bytes + HUGE, start, aligned;
	bool thp;
	void *p;

	if (!bytes || bytes % HUGE)
		return -EINVAL;
	if (flags & TIER_MEM_HUGETLB) {
		/* reserved now: fails at once when the pages are not there */
		p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
		if (p == MAP_FAILED)
			return -ENOMEM;
		m->base = p;
		m->page = HUGE;
		snprintf(m->desc, sizeof(m->desc), "anon hugetlb");
	} else {
		/* over-map and trim, for a 2 MiB aligned start */
		p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -ENOMEM;
		start = (uint64_t)(uintptr_t)p;
		aligned = (start + HUGE - 1) & ~(HUGE - 1);
		if (aligned > start)
			munmap(p, aligned - start);
		if (start + total > aligned + bytes)
			munmap((void *)(uintptr_t)(aligned + bytes),
			       start + total - aligned - bytes);
		m->base = (void *)(uintptr_t)aligned;
		m->page = 4096;
		/* THP where the kernel offers it; else 4 KiB pages, said so */
		thp = (flags & TIER_MEM_THP) && thp_available() &&
		      !madvise(m->base, bytes, MADV_HUGEPAGE);
		if (!thp)
			madvise(m->base, bytes, MADV_NOHUGEPAGE);
		snprintf(m->desc, sizeof(m->desc), "anon%s",
			 thp			? " thp"
			 : flags & TIER_MEM_THP ? " (no thp here)"
						: "");
	}
	m->bytes = bytes;
	m->populated = false;
	m->node_placed = false;
	return 0;
}

static void anon_destroy(struct tier_mem *m)
{
	if (m->base)
		munmap(m->base, m->bytes);
	m->base = NULL;
}

const struct tier_mem_ops tier_mem_anon_ops = {
	.name = "anon",
	.create = anon_create,
	.destroy = anon_destroy,
};
