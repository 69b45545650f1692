// SPDX-License-Identifier: MIT
/* tokens.c - deterministic token runs (see tokens.h). */
#include "tokens.h"

uint64_t sim_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

uint32_t sim_token(uint64_t salt, uint64_t key, uint64_t i, uint32_t vocab)
{
	uint64_t h = sim_mix64(salt ^ sim_mix64(key + 0x9e3779b97f4a7c15ull) ^
			       (i * 0xd1b54a32d192ed03ull));

	return (uint32_t)((h >> 32) * (uint64_t)(vocab ? vocab : SIM_VOCAB) >> 32);
}

void sim_tokens_run(uint64_t salt, uint64_t key, uint64_t off, uint32_t n, uint32_t vocab,
		    uint32_t *out)
{
	for (uint32_t i = 0; i < n; i++)
		out[i] = sim_token(salt, key, off + i, vocab);
}
