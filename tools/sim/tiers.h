/* SPDX-License-Identifier: MIT */
/*
 * tiers.h - kvmm-sim's side of kvmm's tiers (pinned host RAM, disk): set
 * them up for a policy, read where hits came from, prefetch for queued
 * requests, charge transfer time to the virtual clock, and check and
 * sample each tier's usage against its budget.
 */
#ifndef KVMM_SIM_TIERS_H
#define KVMM_SIM_TIERS_H

#include <stdint.h>

#include "engine.h"
#include "err.h"
#include "kvmm.h"
#include "result.h"

struct sim_tiers {
	struct kvmm_cache *c;
	const struct sim_engine_cfg *cfg;
	bool host, disk;
	double wait_s; /* transfer time to charge at the next iteration */
};

/* Whether this build of kvmm has host and disk tiers. */
bool sim_tiers_available(void);

/* Enable the tiers the policy asks for on c.  -ENOTSUP (with a message)
 * where this build of kvmm has no tiers. */
int sim_tiers_open(struct sim_tiers *t, struct kvmm_cache *c, const struct sim_engine_cfg *cfg,
		   const struct sim_policy *p, struct sim_err *err);
void sim_tiers_close(struct sim_tiers *t);
/* Split a match of `matched` tokens (pinned by h) by the tier each block
 * was on; by_tier[GPU] holds all of it on entry. */
void sim_tiers_hit_split(struct sim_tiers *t, const struct kvmm_prefix_handle *h, uint32_t matched,
			 uint64_t by_tier[SIM_TIERS]);
/* Start bringing tokens[0..n) toward the GPU (look-ahead). */
int sim_tiers_prefetch(struct sim_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
		       uint32_t n);
/* Seconds of transfers the scheduler had to wait for since the last call. */
double sim_tiers_take_wait(struct sim_tiers *t);
/* Check host and disk usage against their budgets (counted in res). */
void sim_tiers_check(struct sim_tiers *t, struct sim_result *res);
/* bytes[HOST], bytes[DISK] = current usage. */
void sim_tiers_usage(struct sim_tiers *t, uint64_t bytes[SIM_TIERS]);
/* Bytes moved by path, at the end of a run. */
void sim_tiers_collect(struct sim_tiers *t, struct sim_result *res);

#endif /* KVMM_SIM_TIERS_H */
