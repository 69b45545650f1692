/* SPDX-License-Identifier: MIT */
/*
 * tier_hash.h - the checksums of spilled KV: XXH3-64, with the fastest
 * vector path this CPU has, and the chunked payload hash of the record
 * format (docs/disk-format.md).
 *
 * A payload's hash is the XXH3-64 of the array of XXH3-64 hashes of its
 * consecutive chunks (little-endian), so that several threads can hash one
 * 2 MiB block at PCIe speed: one thread does ~20-30 GB/s, a pinned copy
 * moves ~53 GB/s.
 */
#ifndef KVMM_TIER_HASH_H
#define KVMM_TIER_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-64 (seed 0) of buf[0..len).  Same value on every vector path. */
uint64_t tier_xxh3(const void *buf, size_t len);
/* XXH3-64 with a seed (short inputs: token ids, key material). */
uint64_t tier_xxh3_seed(const void *buf, size_t len, uint64_t seed);
/* The AVX2 path, for tests and benchmarks; 0 when this CPU lacks AVX2. */
uint64_t tier_xxh3_avx2(const void *buf, size_t len);
int tier_xxh3_have_avx2(void);
/* The portable (SSE2/scalar) path. */
uint64_t tier_xxh3_generic(const void *buf, size_t len);

/* Chunk size of the payload hash: 2^shift bytes. */
#define TIER_HASH_CHUNK_SHIFT 18 /* 256 KiB */

/* Number of chunks of a payload of len bytes (at least 1). */
static inline uint64_t tier_hash_nchunks(uint64_t len, unsigned int shift)
{
	return len ? (len + (1ull << shift) - 1) >> shift : 1;
}

/* Hash of chunk i of buf[0..len) (chunk i starts at i << shift). */
uint64_t tier_hash_chunk(const void *buf, uint64_t len, unsigned int shift, uint64_t i);
/* Combine the chunk hashes h[0..n) into the payload hash. */
uint64_t tier_hash_combine(const uint64_t *h, uint64_t n);
/* The payload hash, computed serially. */
uint64_t tier_hash_payload(const void *buf, uint64_t len, unsigned int shift);

#endif /* KVMM_TIER_HASH_H */
