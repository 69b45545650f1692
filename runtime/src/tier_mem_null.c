// SPDX-License-Identifier: MIT
/*
 * tier_mem_null.c - a host pool of capacity only, for the null backend.
 *
 * The null backend keeps the cache's bookkeeping with no bytes behind its
 * pages; its host tier does the same: the pool has its size, slots and
 * accounting, and nothing is mapped (a terabyte pool costs the index's few
 * bytes per slot).  There is nothing to place, touch or pin, and no slot
 * has an address: the tier layer, seeing nobytes, moves, hashes and checks
 * nothing (tiers.h, "bookkeeping").
 */
#include <errno.h>
#include <stdio.h>

#include "tier_mem.h"

static int null_create(struct tier_mem *m, uint64_t bytes, int node, uint32_t flags)
{
	/* no memory: no node and no kind of page to ask for */
	(void)node, (void)flags;
	if (!bytes)
		return -EINVAL;
	m->base = NULL;
	m->bytes = bytes;
	m->page = 2ull << 20;
	m->populated = true;
	m->node_placed = true;
	m->nobytes = true;
	m->reopened = false;
	snprintf(m->desc, sizeof(m->desc), "null (bookkeeping only, no bytes)");
	return 0;
}

static void null_destroy(struct tier_mem *m)
{
	m->bytes = 0;
}

const struct tier_mem_ops tier_mem_null_ops = {
	.name = "null",
	.create = null_create,
	.destroy = null_destroy,
};
