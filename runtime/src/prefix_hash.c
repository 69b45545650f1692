// SPDX-License-Identifier: MIT
/*
 * prefix_hash.c - namespace and token-run hashes (see prefix_hash.h).
 *
 * A multiply-fold mixer over 64-bit words (two tokens at a time): fast
 * enough to run over every token of an insert when admission counting is
 * on, and every input bit reaches every output bit.
 */
#include <string.h>

#include "prefix_hash.h"

#define H_P0 0xa0761d6478bd642full
#define H_P1 0xe7037ed1a0b428dbull
#define H_P2 0x8ebc6af09c88c6e3ull

static inline uint64_t fold(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;

	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t word(uint64_t h, uint64_t w)
{
	return fold(h ^ w ^ H_P0, H_P1);
}

uint64_t kvmm_hash_tokens(uint64_t seed, const uint32_t *tok, size_t n)
{
	uint64_t h = seed ^ fold(n + 1, H_P2);
	size_t i = 0;

	for (; i + 2 <= n; i += 2) {
		uint64_t w;

		memcpy(&w, tok + i, sizeof(w));
		h = word(h, w);
	}
	if (i < n)
		h = word(h, (uint64_t)tok[i] | (1ull << 63));
	return fold(h, H_P2) ^ h;
}

uint64_t kvmm_hash_ns(const struct kvmm_ns *ns)
{
	uint64_t h = H_P2;

	h = word(h, ns->model_id);
	h = word(h, ns->adapter_id);
	h = word(h, ns->tenant_salt);
	return fold(h, H_P1) ^ h;
}

void kvmm_hash_chain(const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t tokens_per_block,
		     uint32_t nblocks, uint64_t *out)
{
	uint64_t h = kvmm_hash_ns(ns);

	for (uint32_t i = 0; i < nblocks; i++) {
		h = kvmm_hash_tokens(h, tokens + (size_t)i * tokens_per_block, tokens_per_block);
		out[i] = h;
	}
}
