/* SPDX-License-Identifier: MIT */
/*
 * cli.h - kvmm-sim's command line (the contract scripts rely on; see
 * docs/traces.md and `kvmm-sim --help`).
 */
#ifndef KVMM_SIM_CLI_H
#define KVMM_SIM_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "err.h"
#include "policy.h"
#include "preset.h"
#include "trace.h"
#include "workload.h"

struct sim_options {
	const char *trace_path; /* NULL: generate from workload */
	enum sim_trace_format format;
	bool format_set;
	struct sim_workload workload;
	char workload_spec[512];
	bool workload_set;
	const char *write_trace;
	enum sim_trace_format write_format;
	bool dry_run;
	const char *model_name;
	const char *machine_name;
	const struct sim_model *model;
	const struct sim_machine *machine;
	struct sim_machine machine_buf; /* for "local" */
	enum kvmm_backend_type backend;
	uint64_t gpu_kv_bytes, host_bytes, disk_bytes;
	bool gpu_set, host_set, disk_set;
	const char *disk_dir;
	bool disk_write_through;
	struct sim_policy policies[SIM_MAX_POLICIES];
	uint32_t npolicies;
	uint32_t skipped_tier_policies; /* of "all", without kvmm tiers */
	char policy_list[512];
	const char *report_path;
	const char *plot_path; /* NULL: none */
	bool plot_none;
	char plot_buf[4096];
	enum kvmm_layout layout;
	enum sim_time_source time_source;
	bool time_set;
	bool mapper, mapper_set;
	uint32_t max_seqs, chunk_tokens, lookahead;
	uint32_t max_requests; /* 0: all */
	double time_scale;
	double sample_interval_s;
	bool gpu_kernels; /* --gpu */
	bool quiet;
	bool help, list_presets;
};

/*
 * Parse argv into o (defaults first) and check every value on its own;
 * sizes against the machine come in sim_cli_check_budget once the trace is
 * known.  0, 1 when --help/--list-presets was asked, or -EINVAL with a
 * message naming the flag.
 */
int sim_cli_parse(int argc, char **argv, struct sim_options *o, struct sim_err *err);
/*
 * Resolve defaults that depend on the machine and check the budgets: GPU
 * KV no larger than what the machine leaves after weights, tiers the
 * policies need present, the host backend within this machine's RAM.
 */
int sim_cli_check_budget(struct sim_options *o, struct sim_err *err);
void sim_cli_usage(FILE *f);
const char *sim_backend_name(enum kvmm_backend_type t);

#endif /* KVMM_SIM_CLI_H */
