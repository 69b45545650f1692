// SPDX-License-Identifier: MIT
/* table.c - the readable tables (see report.h). */
#include <math.h>

#include "report.h"
#include "size.h"

static const char *ms(double s, char *buf, size_t len)
{
	if (isnan(s))
		snprintf(buf, len, "-");
	else if (s < 1)
		snprintf(buf, len, "%.1f ms", s * 1e3);
	else
		snprintf(buf, len, "%.2f s", s);
	return buf;
}

static const char *gb(uint64_t b, char *buf, size_t len)
{
	if (!b)
		snprintf(buf, len, "0");
	else
		snprintf(buf, len, "%.1f GB", (double)b / 1e9);
	return buf;
}

void sim_table_print(FILE *f, const struct sim_result *res, uint32_t n)
{
	char a[6][32];

	fprintf(f, "%-18s %10s %10s %9s %9s %11s %11s %8s %6s\n", "policy", "TTFT p50", "TTFT p99",
		"ITL p50", "ITL p99", "out tok/s", "in tok/s", "preempt", "check");
	for (uint32_t i = 0; i < n; i++) {
		const struct sim_result *r = &res[i];
		struct sim_summary s;

		sim_result_summarize(r, &s);
		fprintf(f, "%-18s %10s %10s %9s %9s %11.0f %11.0f %8llu %6s\n", r->policy.name,
			ms(s.ttft_p50, a[0], 32), ms(s.ttft_p99, a[1], 32), ms(s.itl_p50, a[2], 32),
			ms(s.itl_p99, a[3], 32), s.throughput, s.input_throughput,
			(unsigned long long)r->preemptions, r->violations ? "FAIL" : "ok");
	}
	fprintf(f, "\n%-18s %6s %17s %9s %9s %9s %9s %9s %6s %10s\n", "policy", "hit%",
		"gpu/host/disk %", "GPU->host", "host->dsk", "dsk->host", "host->GPU", "attach cp",
		"KVutil", "GPU peak");
	for (uint32_t i = 0; i < n; i++) {
		const struct sim_result *r = &res[i];
		struct sim_summary s;
		char tiers[32];

		sim_result_summarize(r, &s);
		snprintf(tiers, sizeof(tiers), "%.0f/%.0f/%.0f", s.hit_rate_tier[0] * 100,
			 s.hit_rate_tier[1] * 100, s.hit_rate_tier[2] * 100);
		fprintf(f, "%-18s %6.1f %17s %9s %9s %9s %9s %9s %6.3f %10s\n", r->policy.name,
			s.hit_rate * 100, tiers, gb(r->bytes_moved[SIM_MOVE_GPU_TO_HOST], a[0], 32),
			gb(r->bytes_moved[SIM_MOVE_HOST_TO_DISK], a[1], 32),
			gb(r->bytes_moved[SIM_MOVE_DISK_TO_HOST], a[2], 32),
			gb(r->bytes_moved[SIM_MOVE_HOST_TO_GPU], a[3], 32),
			gb(r->bytes_moved[SIM_MOVE_ATTACH_COPY], a[4], 32), s.kv_util,
			gb(r->peak[SIM_TIER_GPU], a[5], 32));
	}
}
