/* SPDX-License-Identifier: MIT */
/*
 * prefix_hash.h - 64-bit hashes of namespaces and token runs.
 *
 * Used to find a namespace's tree, to key the admission counters and, by
 * the tier layer, as the content key of a block: the hash chained over the
 * namespace and every token from the start of the sequence through the end
 * of the block, so equal keys mean equal prefixes (up to 2^-64 collisions,
 * which the tiers guard against with their own checks).
 */
#ifndef KVMM_PREFIX_HASH_H
#define KVMM_PREFIX_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "kvmm.h"

/* Hash of a namespace; the seed of every chain in it. */
uint64_t kvmm_hash_ns(const struct kvmm_ns *ns);

/* Hash of tok[0..n) continuing from seed (a previous hash). */
uint64_t kvmm_hash_tokens(uint64_t seed, const uint32_t *tok, size_t n);

/*
 * Chained block keys: out[i] = key of block i of tokens, i.e. the hash of
 * ns and tokens[0 .. (i + 1) * tokens_per_block), for i < nblocks.
 */
void kvmm_hash_chain(const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t tokens_per_block,
		     uint32_t nblocks, uint64_t *out);

#endif /* KVMM_PREFIX_HASH_H */
