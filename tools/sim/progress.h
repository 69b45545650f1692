/* SPDX-License-Identifier: MIT */
/* progress.h - a progress bar on a terminal, plain lines otherwise. */
#ifndef KVMM_SIM_PROGRESS_H
#define KVMM_SIM_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"

struct sim_progress {
	FILE *f;
	bool tty;
	uint32_t index, count; /* policy i of n */
	int last_quarter;      /* plain mode: the last 25% step printed */
	uint64_t last_ns;      /* tty: redraw at most every 100 ms */
};

void sim_progress_init(struct sim_progress *p, FILE *f, uint32_t count);
/* Start policy number index (0-based). */
void sim_progress_begin(struct sim_progress *p, uint32_t index);
/* An engine progress callback (arg: struct sim_progress). */
void sim_progress_update(void *arg, const struct sim_policy *pol, uint32_t done, uint32_t total,
			 double sim_s);
/* End the policy's line with its wall time. */
void sim_progress_end(struct sim_progress *p, const struct sim_policy *pol, double wall_s);

#endif /* KVMM_SIM_PROGRESS_H */
