// SPDX-License-Identifier: MIT
/*
 * tiers.c - kvmm-sim's glue to kvmm's tiers (see tiers.h).
 *
 * kvmm's tier API is not in kvmm.h yet (notes/sim-needs.md lists what the
 * simulator needs from it).  Until it is, policies that need a host or disk
 * tier are refused with a message, and GPU-only policies run without one.
 */
#include <errno.h>
#include <string.h>

#include "tiers.h"

bool sim_tiers_available(void)
{
	return false;
}

int sim_tiers_open(struct sim_tiers *t, struct kvmm_cache *c, const struct sim_engine_cfg *cfg,
		   const struct sim_policy *p, struct sim_err *err)
{
	memset(t, 0, sizeof(*t));
	t->c = c;
	t->cfg = cfg;
	if (p->host || p->disk)
		return sim_errf(err, -ENOTSUP,
				"--policy %s: this build of kvmm has no host/disk tiers yet "
				"(use none or gpu-lru)",
				p->name);
	return 0;
}

void sim_tiers_close(struct sim_tiers *t)
{
	memset(t, 0, sizeof(*t));
}

void sim_tiers_hit_split(struct sim_tiers *t, const struct kvmm_prefix_handle *h, uint32_t matched,
			 uint64_t by_tier[SIM_TIERS])
{
}

int sim_tiers_prefetch(struct sim_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
		       uint32_t n)
{
	return 0;
}

double sim_tiers_take_wait(struct sim_tiers *t)
{
	double s = t->wait_s;

	t->wait_s = 0;
	return s;
}

void sim_tiers_check(struct sim_tiers *t, struct sim_result *res)
{
}

void sim_tiers_usage(struct sim_tiers *t, uint64_t bytes[SIM_TIERS])
{
	bytes[SIM_TIER_HOST] = bytes[SIM_TIER_DISK] = 0;
}

void sim_tiers_collect(struct sim_tiers *t, struct sim_result *res)
{
}
