/* SPDX-License-Identifier: MIT */
/*
 * tier_hashpool.h - payload checksums of many records at once, on several
 * threads.  One thread hashes 20-30 GB/s; a pinned copy moves ~53 GB/s
 * each way, so spills and restores that verify every byte need the chunks
 * of a batch spread over a few cores to keep up with the copy engine.
 */
#ifndef KVMM_TIER_HASHPOOL_H
#define KVMM_TIER_HASHPOOL_H

#include <stdint.h>

struct tier_hashpool;

/* nthreads helpers (0: none, the caller hashes alone). */
int tier_hashpool_create(uint32_t nthreads, struct tier_hashpool **out);
void tier_hashpool_destroy(struct tier_hashpool *hp);
/* out[i] = tier_hash_payload(bufs[i], lens[i], shift) for i < n, the
 * chunks shared by the helpers and the caller.  Thread-safe (callers take
 * turns). */
void tier_hashpool_payloads(struct tier_hashpool *hp, const void *const *bufs, const uint64_t *lens,
			    uint32_t n, unsigned int shift, uint64_t *out);

#endif /* KVMM_TIER_HASHPOOL_H */
