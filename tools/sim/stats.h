/* SPDX-License-Identifier: MIT */
/*
 * stats.h - latency statistics: exact percentiles over a sample array, and
 * a log-bucketed histogram for samples too many to keep (inter-token
 * latencies: one per generated token).
 */
#ifndef KVMM_SIM_STATS_H
#define KVMM_SIM_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Growable array of doubles. */
struct sim_samples {
	double *v;
	size_t n, cap;
};
int sim_samples_add(struct sim_samples *s, double v);
void sim_samples_free(struct sim_samples *s);
/* Nearest-rank percentile (p in [0, 100]) of v[0..n); sorts v in place.
 * NaN when n == 0. */
double sim_percentile(double *v, size_t n, double p);
double sim_mean(const double *v, size_t n);

/*
 * Histogram of positive values (seconds) in buckets 1% wide from 1 ns to
 * ~18 hours (larger values share an overflow bucket that reports the max); a percentile is exact to the bucket (<= 1% relative error).
 * Zero and negative values go to bucket 0.
 */
#define SIM_HIST_BUCKETS 3200
struct sim_hist {
	uint64_t count;
	double sum;
	double min, max;
	uint64_t bucket[SIM_HIST_BUCKETS];
};
void sim_hist_init(struct sim_hist *h);
void sim_hist_add(struct sim_hist *h, double v);
/* Nearest-rank percentile; the bucket's geometric middle, clamped to
 * [min, max]; NaN when empty. */
double sim_hist_percentile(const struct sim_hist *h, double p);

#endif /* KVMM_SIM_STATS_H */
