/* SPDX-License-Identifier: MIT */
/*
 * report.h - kvmm-sim's outputs: report.json (the contract: docs/sim.md),
 * the table per policy, and the plot (gnuplot).
 */
#ifndef KVMM_SIM_REPORT_H
#define KVMM_SIM_REPORT_H

#include <stdio.h>

#include "cli.h"
#include "result.h"
#include "trace.h"

/* The whole report as JSON.  Deterministic: no wall-clock values, so the
 * same inputs and seed give the same bytes (with --time model).  -EIO. */
int sim_report_write(FILE *f, const struct sim_options *o, const struct sim_trace *t,
		     const struct sim_result *res, uint32_t n);
/* Same, into a file (written to a temporary name, then renamed). */
int sim_report_save(const char *path, const struct sim_options *o, const struct sim_trace *t,
		    const struct sim_result *res, uint32_t n, struct sim_err *err);

/* Readable tables: latency and throughput; cache and memory. */
void sim_table_print(FILE *f, const struct sim_result *res, uint32_t n);

/*
 * Write PATH.ttft.dat, PATH.mem.dat and PATH.gp next to the plot and run
 * gnuplot on them (its messages in PATH.log) (SVG or PNG by the plot's extension).  -ENOENT when
 * gnuplot is not installed (the data and script are still written), -EIO.
 */
int sim_plot(const char *path, const struct sim_result *res, uint32_t n, struct sim_err *err);

#endif /* KVMM_SIM_REPORT_H */
