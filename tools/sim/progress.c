// SPDX-License-Identifier: MIT
/* progress.c - progress output (see progress.h). */
#include <time.h>
#include <unistd.h>

#include "progress.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sim_progress_init(struct sim_progress *p, FILE *f, uint32_t count)
{
	p->f = f;
	p->tty = f && isatty(fileno(f));
	p->count = count;
	p->index = 0;
	p->last_quarter = 0;
	p->last_ns = 0;
}

void sim_progress_begin(struct sim_progress *p, uint32_t index)
{
	p->index = index;
	p->last_quarter = 0;
	p->last_ns = 0;
}

void sim_progress_update(void *arg, const struct sim_policy *pol, uint32_t done, uint32_t total,
			 double sim_s)
{
	struct sim_progress *p = arg;
	int pct = total ? (int)((uint64_t)done * 100 / total) : 100;

	if (!p || !p->f)
		return;
	if (p->tty) {
		char bar[31];
		uint64_t now = mono_ns();
		int fill = pct * 30 / 100;

		if (done < total && now - p->last_ns < 100000000ull)
			return;
		p->last_ns = now;
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = 0;
		fprintf(p->f, "\r[%u/%u] %-18s [%s] %3d%%  %u/%u requests  %.0f s simulated ",
			p->index + 1, p->count, pol->name, bar, pct, done, total, sim_s);
		fflush(p->f);
		return;
	}
	if (pct / 25 > p->last_quarter) {
		p->last_quarter = pct / 25;
		fprintf(p->f, "[%u/%u] %s: %d%% (%u/%u requests, %.0f s simulated)\n", p->index + 1,
			p->count, pol->name, p->last_quarter * 25, done, total, sim_s);
		fflush(p->f);
	}
}

void sim_progress_end(struct sim_progress *p, const struct sim_policy *pol, double wall_s)
{
	if (!p->f)
		return;
	if (p->tty)
		fprintf(p->f, "\n");
	fprintf(p->f, "[%u/%u] %s: done in %.1f s\n", p->index + 1, p->count, pol->name, wall_s);
	fflush(p->f);
}
