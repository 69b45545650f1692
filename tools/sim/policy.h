/* SPDX-License-Identifier: MIT */
/*
 * policy.h - the cache policies kvmm-sim compares in one run.
 *
 *   none           no prefix cache: every prompt token is computed
 *   gpu-lru        prefix cache in GPU memory only, leaf-first LRU
 *   gpu-host       + spill of evicted prefixes to pinned host RAM
 *   gpu-host-disk  + spill from host to the disk tier
 *   lookahead      gpu-host-disk + hints for queued requests (evicted last)
 *                  and prefetch of their prefixes from host/disk
 *
 * Modifiers after a colon: ":alias" / ":copy" force how a hit is attached
 * (default: the runtime's choice), ":lfu" evicts least-frequently-used.
 * "all" is none,gpu-lru,gpu-host,gpu-host-disk,lookahead,lookahead:alias,
 * lookahead:copy (none,gpu-lru,gpu-lru:alias,gpu-lru:copy without tiers).
 */
#ifndef KVMM_SIM_POLICY_H
#define KVMM_SIM_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "kvmm.h"

struct sim_policy {
	char name[48];
	bool prefix;
	bool host;
	bool disk;
	bool lookahead;
	enum kvmm_attach_mode attach;
	enum kvmm_evict_policy evict;
};

#define SIM_POLICY_ALL \
	"none,gpu-lru,gpu-host,gpu-host-disk,lookahead,lookahead:alias,lookahead:copy"
#define SIM_POLICY_ALL_N 7
/* "all" where kvmm has no tiers */
#define SIM_POLICY_ALL_GPU "none,gpu-lru,gpu-lru:alias,gpu-lru:copy"
#define SIM_MAX_POLICIES   16

int sim_policy_parse(const char *name, struct sim_policy *p, struct sim_err *err);
/* Comma-separated list ("all" expands); duplicates rejected. */
int sim_policy_list(const char *list, struct sim_policy *out, uint32_t *n, struct sim_err *err);

#endif /* KVMM_SIM_POLICY_H */
