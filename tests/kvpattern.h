/* SPDX-License-Identifier: MIT */
/*
 * kvpattern.h - the test pattern of KV rows, shared by the unit tests
 * (Check) and the GPU tests (plain TAP): distinct bytes for every
 * (sequence identity, token, layer, K/V) row, so a row written to the wrong
 * place or overwritten by another sequence is always seen.
 */
#ifndef KVMM_KVPATTERN_H
#define KVMM_KVPATTERN_H

#include <stdint.h>

static inline uint64_t kvp_mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	return x ^ (x >> 33);
}

static inline void kvp_row(uint8_t *row, uint64_t n, uint32_t id, uint32_t tok, uint32_t layer,
			   uint32_t kv)
{
	uint64_t k = kvp_mix(((uint64_t)id << 32) ^ ((uint64_t)tok << 9) ^ (layer << 1) ^ kv);

	for (uint64_t i = 0; i < n; i++)
		row[i] = (uint8_t)(kvp_mix(k + i / 8) >> (8 * (i % 8)));
}

#endif /* KVMM_KVPATTERN_H */
