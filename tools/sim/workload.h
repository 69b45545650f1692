/* SPDX-License-Identifier: MIT */
/*
 * workload.h - generator of multi-turn conversation traces.
 *
 * Sessions arrive as a Poisson process (or a burstier gamma process); each
 * opens with one of a few shared system prompts (Zipf popularity) and a
 * user message, and then runs several turns, each resending the whole
 * conversation so far plus a new user message, after a think time.  All
 * distributions, their parameters and the spec syntax are in
 * docs/traces.md; the same seed always gives the same trace.
 */
#ifndef KVMM_SIM_WORKLOAD_H
#define KVMM_SIM_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "trace.h"

struct sim_workload {
	uint64_t seed;
	uint32_t sessions;
	uint32_t turns_min, turns_max;	 /* turns per session, uniform */
	uint32_t system_prompts;	 /* distinct shared system prompts */
	uint32_t system_len;		 /* tokens of each */
	double system_zipf;		 /* popularity exponent (0: uniform) */
	uint32_t user_min, user_max;	 /* tokens per user message, uniform */
	uint32_t output_min, output_max; /* tokens per answer, uniform */
	double think_s;			 /* mean think time, exponential */
	double rate;			 /* new sessions per second */
	double burst_cv;		 /* CV of inter-arrival gaps: 1 Poisson, > 1 bursty */
	bool open_loop;			 /* next turn at prev arrival + think (fixed times) */
	uint32_t max_context;		 /* a session ends before its context passes this */
	uint32_t tenants;		 /* sessions round-robin over tenants */
};

/* Fill w with a named preset ("chat", "agent"); -EINVAL if unknown. */
int sim_workload_preset(const char *name, struct sim_workload *w);
/*
 * Parse a spec: a preset name optionally followed by ":" and overrides
 * "key=value,..." (sessions, turns=A-B, system=NxLEN, zipf, user=A-B,
 * output=A-B, think, rate, cv, loop=open|closed, max-context, tenants,
 * seed).  Errors name the key.
 */
int sim_workload_parse(const char *spec, struct sim_workload *w, struct sim_err *err);
/* Generate into t (initialised by the caller, format kvmm). */
int sim_workload_generate(const struct sim_workload *w, struct sim_trace *t, struct sim_err *err);
/* The spec that reproduces w (for the report). */
void sim_workload_format(const struct sim_workload *w, char *buf, size_t len);

#endif /* KVMM_SIM_WORKLOAD_H */
