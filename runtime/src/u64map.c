// SPDX-License-Identifier: MIT
/* u64map.c - open-addressing uint64 -> uint64 hash map (see u64map.h). */
#include <errno.h>
#include <stdlib.h>

#include "u64map.h"

static inline size_t slot_of(uint64_t key, size_t cap)
{
	/* Fibonacci-style mix: keys are often page-aligned addresses. */
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (size_t)key & (cap - 1);
}

void u64map_init(struct u64map *m)
{
	m->keys = NULL;
	m->vals = NULL;
	m->cap = 0;
	m->len = 0;
}

void u64map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	u64map_init(m);
}

static int grow(struct u64map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	uint64_t *nk = malloc(ncap * sizeof(*nk));
	uint64_t *nv = malloc(ncap * sizeof(*nv));

	if (!nk || !nv) {
		free(nk);
		free(nv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ncap; i++)
		nk[i] = U64MAP_EMPTY;
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;

		if (m->keys[i] == U64MAP_EMPTY)
			continue;
		j = slot_of(m->keys[i], ncap);
		while (nk[j] != U64MAP_EMPTY)
			j = (j + 1) & (ncap - 1);
		nk[j] = m->keys[i];
		nv[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = nk;
	m->vals = nv;
	m->cap = ncap;
	return 0;
}

int u64map_put(struct u64map *m, uint64_t key, uint64_t val)
{
	size_t i;

	if (key == U64MAP_EMPTY)
		return -EINVAL;
	if ((m->len + 1) * 4 > m->cap * 3) {
		int ret = grow(m);

		if (ret)
			return ret;
	}
	i = slot_of(key, m->cap);
	while (m->keys[i] != U64MAP_EMPTY && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	if (m->keys[i] == U64MAP_EMPTY) {
		m->keys[i] = key;
		m->len++;
	}
	m->vals[i] = val;
	return 0;
}

static bool find(const struct u64map *m, uint64_t key, size_t *pos)
{
	size_t i;

	if (!m->cap || key == U64MAP_EMPTY)
		return false;
	i = slot_of(key, m->cap);
	while (m->keys[i] != U64MAP_EMPTY) {
		if (m->keys[i] == key) {
			*pos = i;
			return true;
		}
		i = (i + 1) & (m->cap - 1);
	}
	return false;
}

bool u64map_get(const struct u64map *m, uint64_t key, uint64_t *val)
{
	size_t i;

	if (!find(m, key, &i))
		return false;
	if (val)
		*val = m->vals[i];
	return true;
}

bool u64map_del(struct u64map *m, uint64_t key, uint64_t *val)
{
	size_t i, j;

	if (!find(m, key, &i))
		return false;
	if (val)
		*val = m->vals[i];
	/* Backward-shift: pull later members of the probe run into the hole. */
	j = i;
	for (;;) {
		size_t home;

		j = (j + 1) & (m->cap - 1);
		if (m->keys[j] == U64MAP_EMPTY)
			break;
		home = slot_of(m->keys[j], m->cap);
		/* Move j into i if its home is not in the cyclic range (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->keys[i] = U64MAP_EMPTY;
	m->len--;
	return true;
}

bool u64map_next(const struct u64map *m, size_t *pos, uint64_t *key, uint64_t *val)
{
	for (size_t i = *pos; i < m->cap; i++) {
		if (m->keys[i] != U64MAP_EMPTY) {
			if (key)
				*key = m->keys[i];
			if (val)
				*val = m->vals[i];
			*pos = i + 1;
			return true;
		}
	}
	*pos = m->cap;
	return false;
}
