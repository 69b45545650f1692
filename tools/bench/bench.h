/* SPDX-License-Identifier: MIT */
/*
 * bench.h - shared helpers of kvmm-bench.
 *
 * Each group lives in its own file and registers itself with BENCH_GROUP();
 * the linker collects the registrations (section "kvmm_bench"), so adding a
 * group touches no shared table.  A group prints readable tables and reports
 * every number through bench_result(), which also writes the JSON line.
 */
#ifndef KVMM_BENCH_H
#define KVMM_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct bench_ctx {
	FILE *json;	   /* JSON lines go here when --json was given */
	char machine[160]; /* "host: <cpu model>, <n> cores" (+ GPU name when known) */
	char date[32];	   /* YYYY-MM-DD */
	bool quick;	   /* --quick: smaller sizes, for smoke runs */
	int argc;	   /* group-specific arguments after the group name */
	char **argv;
};

struct bench_group {
	const char *name;
	const char *desc;
	/* 0 ran, 77 skipped (nothing to measure here; say why), else failed */
	int (*run)(struct bench_ctx *ctx);
};

#define BENCH_GROUP(id, descr, fn)                         \
	static const struct bench_group __bench_group_##id \
		__attribute__((used, section("kvmm_bench"), aligned(8))) = {#id, descr, fn}

/*
 * Report one number.  baseline may be NULL (no baseline: a plain value);
 * otherwise ratio = value / baseline_value (both measured in this run, in
 * the same unit).  Prints a table row and appends the JSON line.
 */
void bench_result(struct bench_ctx *ctx, const char *bench, const char *metric, double value,
		  const char *unit, const char *baseline, double baseline_value);
/* Same with an explicit ratio (when "better" is not value/baseline). */
void bench_result_ratio(struct bench_ctx *ctx, const char *bench, const char *metric, double value,
			const char *unit, const char *baseline, double baseline_value,
			double ratio);
/* Append " + extra" to the machine description (e.g. the GPU's name). */
void bench_add_machine(struct bench_ctx *ctx, const char *extra);

uint64_t bench_now_ns(void);
/* Median of n values (sorts v in place). */
double bench_median(double *v, int n);
/* Print a group's table header. */
void bench_header(const char *title);

#endif /* KVMM_BENCH_H */
