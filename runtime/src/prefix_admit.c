// SPDX-License-Identifier: MIT
/*
 * prefix_admit.c - admission counters: how many times a block position (a
 * chained prefix hash) was offered for caching before it is admitted.
 *
 * The table is bounded: when full, every count is halved and the zeros
 * dropped (TinyLFU-style aging), so one-off prefixes cannot grow it without
 * bound and old popularity fades.
 */
#include <errno.h>

#include "prefix_tree_int.h"

int pt_admit_init(struct pt_admit *a, uint32_t max)
{
	u64map_init(&a->counts);
	a->max = max ? max : 65536;
	return 0;
}

void pt_admit_free(struct pt_admit *a)
{
	u64map_free(&a->counts);
}

static void age(struct pt_admit *a)
{
	struct u64map next;
	size_t pos = 0;
	uint64_t k, v;

	u64map_init(&next);
	while (u64map_next(&a->counts, &pos, &k, &v))
		if (v / 2 && u64map_put(&next, k, v / 2))
			break; /* out of memory: forgetting is always safe */
	/* Still full (everything was seen often): start over. */
	if (next.len >= a->max)
		u64map_free(&next);
	u64map_free(&a->counts);
	a->counts = next;
}

uint32_t pt_admit_bump(struct pt_admit *a, uint64_t key)
{
	uint64_t v = 0;

	if (key == U64MAP_EMPTY)
		key--;
	if (!u64map_get(&a->counts, key, &v) && a->counts.len >= a->max)
		age(a);
	if (v < UINT32_MAX)
		v++;
	/* Failing to remember only delays admission. */
	u64map_put(&a->counts, key, v);
	return (uint32_t)v;
}

void pt_admit_forget(struct pt_admit *a, uint64_t key)
{
	if (key == U64MAP_EMPTY)
		key--;
	u64map_del(&a->counts, key, NULL);
}
