// SPDX-License-Identifier: MIT
/* result.c - per-policy results (see result.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"

const char *const sim_tier_names[SIM_TIERS] = {"gpu", "host", "disk"};
const char *const sim_move_names[SIM_MOVES] = {"gpu_to_host", "host_to_disk", "disk_to_host",
					       "host_to_gpu", "attach_copy"};

void sim_result_init(struct sim_result *r, const struct sim_policy *p)
{
	memset(r, 0, sizeof(*r));
	r->policy = *p;
	sim_hist_init(&r->itl);
	sim_hist_init(&r->e2e);
}

void sim_result_free(struct sim_result *r)
{
	sim_samples_free(&r->ttft);
	free(r->mem);
	r->mem = NULL;
	r->nmem = r->capmem = 0;
}

int sim_result_add_mem(struct sim_result *r, const struct sim_mem_sample *s)
{
	if (r->nmem == r->capmem) {
		uint32_t cap = r->capmem ? r->capmem * 2 : 256;
		struct sim_mem_sample *p = realloc(r->mem, sizeof(*p) * cap);

		if (!p)
			return -ENOMEM;
		r->mem = p;
		r->capmem = cap;
	}
	r->mem[r->nmem++] = *s;
	for (int t = 0; t < SIM_TIERS; t++)
		if (s->bytes[t] > r->peak[t])
			r->peak[t] = s->bytes[t];
	return 0;
}

void sim_result_violation(struct sim_result *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->violations++) {
		va_start(ap, fmt);
		vsnprintf(r->first_violation, sizeof(r->first_violation), fmt, ap);
		va_end(ap);
	}
}

int sim_result_summarize(const struct sim_result *r, struct sim_summary *s)
{
	double *v = NULL;

	memset(s, 0, sizeof(*s));
	if (r->ttft.n) {
		v = malloc(sizeof(*v) * r->ttft.n);
		if (!v)
			return -ENOMEM;
		memcpy(v, r->ttft.v, sizeof(*v) * r->ttft.n);
	}
	s->ttft_mean = sim_mean(r->ttft.v, r->ttft.n);
	s->ttft_p50 = sim_percentile(v, r->ttft.n, 50);
	s->ttft_p99 = sim_percentile(v, r->ttft.n, 99);
	free(v);
	s->itl_p50 = sim_hist_percentile(&r->itl, 50);
	s->itl_p99 = sim_hist_percentile(&r->itl, 99);
	s->e2e_p50 = sim_hist_percentile(&r->e2e, 50);
	s->e2e_p99 = sim_hist_percentile(&r->e2e, 99);
	s->hit_rate = r->input_tokens ? (double)r->hit_tokens / (double)r->input_tokens : 0;
	for (int t = 0; t < SIM_TIERS; t++)
		s->hit_rate_tier[t] =
			r->input_tokens ? (double)r->hit_by_tier[t] / (double)r->input_tokens : 0;
	s->throughput = r->duration_s > 0 ? (double)r->output_tokens / r->duration_s : NAN;
	s->input_throughput = r->duration_s > 0 ? (double)r->input_tokens / r->duration_s : NAN;
	s->kv_util = r->kv_util_span > 0 ? r->kv_util_time / r->kv_util_span : NAN;
	return 0;
}
