// SPDX-License-Identifier: MIT
/*
 * tier_hash.c - XXH3-64 dispatch and the chunked payload hash.
 *
 * xxhash is used header-only (XXH_INLINE_ALL), so libkvmm needs no extra
 * shared library (the GPU machine has none).  The generic build uses SSE2;
 * tier_hash_avx2.c compiles the same code for AVX2, picked at run time.
 */
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tier_hash.h"

uint64_t tier_xxh3_generic(const void *buf, size_t len)
{
	return XXH3_64bits(buf, len);
}

uint64_t tier_xxh3(const void *buf, size_t len)
{
	/* Short inputs do not use the vector loop; skip the dispatch. */
	if (len >= 1024 && tier_xxh3_have_avx2())
		return tier_xxh3_avx2(buf, len);
	return XXH3_64bits(buf, len);
}

uint64_t tier_xxh3_seed(const void *buf, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(buf, len, seed);
}

uint64_t tier_hash_chunk(const void *buf, uint64_t len, unsigned int shift, uint64_t i)
{
	uint64_t off = i << shift, n;

	if (off >= len)
		return tier_xxh3(buf, 0);
	n = len - off < (1ull << shift) ? len - off : 1ull << shift;
	return tier_xxh3((const char *)buf + off, n);
}

static void update_le64(XXH3_state_t *st, uint64_t v)
{
	unsigned char le[8];

	for (int b = 0; b < 8; b++)
		le[b] = (unsigned char)(v >> (8 * b));
	XXH3_64bits_update(st, le, sizeof(le));
}

uint64_t tier_hash_combine(const uint64_t *h, uint64_t n)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	for (uint64_t i = 0; i < n; i++)
		update_le64(&st, h[i]);
	return XXH3_64bits_digest(&st);
}

uint64_t tier_hash_payload(const void *buf, uint64_t len, unsigned int shift)
{
	uint64_t n = tier_hash_nchunks(len, shift);
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	for (uint64_t i = 0; i < n; i++)
		update_le64(&st, tier_hash_chunk(buf, len, shift, i));
	return XXH3_64bits_digest(&st);
}
