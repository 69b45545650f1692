// SPDX-License-Identifier: MIT
/* stats.c - percentiles and histograms (see stats.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

int sim_samples_add(struct sim_samples *s, double v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		double *p = realloc(s->v, sizeof(*p) * cap);

		if (!p)
			return -ENOMEM;
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

void sim_samples_free(struct sim_samples *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double sim_percentile(double *v, size_t n, double p)
{
	size_t rank;

	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	rank = (size_t)ceil(p / 100.0 * (double)n);
	return v[rank ? rank - 1 : 0];
}

double sim_mean(const double *v, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += v[i];
	return n ? s / (double)n : NAN;
}

/* Bucket b >= 1 holds [1e-9 * 1.01^(b-1), 1e-9 * 1.01^b). */
#define HIST_BASE 1e-9
#define HIST_STEP 1.01

void sim_hist_init(struct sim_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = INFINITY;
	h->max = -INFINITY;
}

void sim_hist_add(struct sim_hist *h, double v)
{
	size_t b = 0;

	if (v > 0) {
		double x = log(v / HIST_BASE) / log(HIST_STEP);

		b = x < 0 ? 1 : (size_t)x + 1;
		if (b >= SIM_HIST_BUCKETS)
			b = SIM_HIST_BUCKETS - 1;
	}
	h->bucket[b]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

double sim_hist_percentile(const struct sim_hist *h, double p)
{
	uint64_t rank, seen = 0;
	double v;

	if (!h->count)
		return NAN;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (!rank)
		rank = 1;
	for (size_t b = 0; b < SIM_HIST_BUCKETS; b++) {
		seen += h->bucket[b];
		if (seen < rank)
			continue;
		if (b == SIM_HIST_BUCKETS - 1)
			return h->max; /* the overflow bucket */
		v = b ? HIST_BASE * pow(HIST_STEP, (double)b - 0.5) : 0;
		return v < h->min ? h->min : v > h->max ? h->max : v;
	}
	return h->max;
}
