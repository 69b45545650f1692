/* SPDX-License-Identifier: MIT */
/*
 * u64map.h - a small open-addressing hash map from uint64_t to uint64_t.
 *
 * Linear probing with backward-shift deletion (no tombstones), so lookups
 * stay short under churn.  UINT64_MAX is not a valid key.  Not thread-safe:
 * the owner holds its own lock.
 */
#ifndef KVMM_U64MAP_H
#define KVMM_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct u64map {
	uint64_t *keys;
	uint64_t *vals;
	size_t cap; /* power of two, or 0 */
	size_t len;
};

#define U64MAP_EMPTY UINT64_MAX

void u64map_init(struct u64map *m);
void u64map_free(struct u64map *m);
/* Insert or replace.  -ENOMEM, -EINVAL for the reserved key. */
int u64map_put(struct u64map *m, uint64_t key, uint64_t val);
/* True and *val (may be NULL) when present. */
bool u64map_get(const struct u64map *m, uint64_t key, uint64_t *val);
/* True when it was present (and *val, may be NULL, gets its value). */
bool u64map_del(struct u64map *m, uint64_t key, uint64_t *val);
/* Iterate: for (size_t i = 0; u64map_next(m, &i, &k, &v);) */
bool u64map_next(const struct u64map *m, size_t *pos, uint64_t *key, uint64_t *val);

#endif /* KVMM_U64MAP_H */
