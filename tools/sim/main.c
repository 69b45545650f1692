// SPDX-License-Identifier: MIT
/*
 * kvmm-sim: replay a serving workload through kvmm's real cache, prefix
 * cache and tiers under several policies and report what each gives.
 * Usage: kvmm-sim --help; docs/sim.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine.h"
#include "progress.h"
#include "report.h"
#include "size.h"
#include "trace.h"

enum {
	EXIT_OK = 0,
	EXIT_INPUT = 1,	       /* bad flag, trace or budget */
	EXIT_CONSERVATION = 2, /* a conservation check failed */
	EXIT_RUN = 3,	       /* the run itself failed */
};

static int load(struct sim_options *o, struct sim_trace *t, struct sim_err *err)
{
	int ret;

	if (o->trace_path) {
		sim_trace_init(t, o->format);
		ret = sim_trace_load(t, o->trace_path, o->format, err);
	} else {
		sim_trace_init(t, SIM_FMT_KVMM);
		ret = sim_workload_generate(&o->workload, t, err);
	}
	if (ret)
		return ret;
	if (o->max_requests && o->max_requests < t->n) {
		/* Turns only refer to earlier lines: a prefix of the file is
		 * a complete trace. */
		for (uint32_t i = o->max_requests; i < t->n; i++) {
			free(t->req[i].hash_ids);
			free(t->req[i].tokens);
			free(t->req[i].out_tokens);
		}
		t->n = o->max_requests;
	}
	if (o->write_trace) {
		FILE *f = fopen(o->write_trace, "w");

		if (!f)
			return sim_errf(err, -errno, "--write-trace %s: %s", o->write_trace,
					strerror(errno));
		ret = sim_trace_write(t, f, o->write_format);
		if (fclose(f) && !ret)
			ret = -EIO;
		if (ret == -ENOTSUP)
			return sim_errf(err, ret,
					"--write-format mooncake: closed-loop turns have no fixed "
					"timestamp (generate with loop=open)");
		if (ret)
			return sim_errf(err, ret, "--write-trace %s: %s", o->write_trace,
					strerror(-ret));
	}
	return 0;
}

static void engine_cfg(const struct sim_options *o, const struct sim_trace *t,
		       struct sim_engine_cfg *cfg)
{
	sim_engine_defaults(cfg);
	cfg->trace = t;
	cfg->model = o->model;
	cfg->machine = o->machine;
	cfg->backend = o->backend;
	cfg->gpu_kv_bytes = o->gpu_kv_bytes;
	cfg->host_bytes = o->host_bytes;
	cfg->disk_bytes = o->disk_bytes;
	cfg->disk_dir = o->disk_dir;
	cfg->disk_write_through = o->disk_write_through;
	cfg->layout = o->layout;
	cfg->time_source = o->time_source;
	cfg->mapper = o->mapper;
	cfg->gpu_kernels = o->gpu_kernels;
	cfg->max_seqs = o->max_seqs;
	cfg->chunk_tokens = o->chunk_tokens;
	cfg->lookahead = o->lookahead;
	cfg->sample_interval_s = o->sample_interval_s;
	cfg->time_scale = o->time_scale;
}

static void header(const struct sim_options *o, const struct sim_trace *t)
{
	struct sim_trace_summary s;
	struct sim_model_gpu mg;
	char a[32], b[32], c[32], spec[512];

	sim_trace_summarize(t, &s);
	sim_model_per_gpu(o->model, &mg);
	if (o->trace_path) {
		printf("workload: %s (%s): ", o->trace_path, sim_trace_format_name(o->format));
	} else {
		sim_workload_format(&o->workload, spec, sizeof(spec));
		printf("workload: generated %s\n          ", spec);
	}
	printf("%u requests, %u sessions, %.1f M prompt + %.2f M output tokens, "
	       "longest context %u\n",
	       s.requests, s.sessions, s.input_tokens / 1e6, s.output_tokens / 1e6, s.max_context);
	if (t->length_mismatches)
		printf("          note: %u Mooncake rows whose hash_ids do not cover input_length "
		       "exactly (docs/traces.md)\n",
		       t->length_mismatches);
	printf("model:    %s, %llu KiB of KV per token per GPU; machine %s; backend %s; "
	       "time %s\n",
	       o->model->name, (unsigned long long)(mg.kv_bytes_per_token >> 10), o->machine->name,
	       sim_backend_name(o->backend),
	       o->time_source == SIM_TIME_MODEL ? "model" : "measured");
	if (o->skipped_tier_policies)
		printf("note:     %u host/disk tier policies of \"all\" skipped: this build of "
		       "kvmm "
		       "has no tiers\n",
		       o->skipped_tier_policies);
	if (o->backend == KVMM_BACKEND_NULL) {
		bool tiers = false;

		for (uint32_t i = 0; i < o->npolicies; i++)
			tiers |= o->policies[i].host || o->policies[i].disk;
		if (tiers)
			printf("note:     tiers on the null backend are bookkeeping only: real "
			       "index, capacity, eviction and write policies, bytes counted, none "
			       "stored or verified\n");
	}
	printf("memory:   GPU KV %s, host %s, disk %s\n",
	       sim_format_size(o->gpu_kv_bytes, a, sizeof(a)),
	       sim_format_size(o->host_bytes, b, sizeof(b)),
	       sim_format_size(o->disk_bytes, c, sizeof(c)));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sim_options o;
	struct sim_trace t = {0};
	struct sim_err err = {0};
	struct sim_result *res = NULL;
	struct sim_engine_cfg cfg;
	struct sim_progress prog;
	uint32_t done = 0;
	uint64_t violations = 0;
	int ret, status = EXIT_OK;

	ret = sim_cli_parse(argc, argv, &o, &err);
	if (ret == 1 && o.help) {
		sim_cli_usage(stdout);
		return EXIT_OK;
	}
	if (ret == 1) {
		sim_presets_print(stdout);
		return EXIT_OK;
	}
	if (!ret)
		ret = load(&o, &t, &err);
	if (!ret)
		ret = sim_cli_check_budget(&o, &err);
	if (ret) {
		fprintf(stderr, "kvmm-sim: %s\n", err.msg[0] ? err.msg : strerror(-ret));
		sim_trace_free(&t);
		return EXIT_INPUT;
	}
	header(&o, &t);
	if (o.dry_run) {
		printf("dry run: inputs are valid; nothing simulated\n");
		sim_trace_free(&t);
		return EXIT_OK;
	}
	res = calloc(o.npolicies, sizeof(*res));
	if (!res) {
		fprintf(stderr, "kvmm-sim: out of memory\n");
		sim_trace_free(&t);
		return EXIT_RUN;
	}
	engine_cfg(&o, &t, &cfg);
	sim_progress_init(&prog, o.quiet ? NULL : stderr, o.npolicies);
	cfg.progress = o.quiet ? NULL : sim_progress_update;
	cfg.progress_arg = &prog;
	for (; done < o.npolicies; done++) {
		sim_progress_begin(&prog, done);
		ret = sim_engine_run(&cfg, &o.policies[done], &res[done], &err);
		if (ret) {
			fprintf(stderr, "kvmm-sim: policy %s: %s\n", o.policies[done].name,
				err.msg[0] ? err.msg : strerror(-ret));
			sim_result_free(&res[done]);
			/* A bad budget is the user's input, not a crash. */
			status = ret == -ENOSPC || ret == -ENOTSUP ? EXIT_INPUT : EXIT_RUN;
			break;
		}
		sim_progress_end(&prog, &o.policies[done], res[done].wall_s);
		violations += res[done].violations;
		if (res[done].violations)
			fprintf(stderr, "kvmm-sim: policy %s: conservation check failed: %s\n",
				res[done].policy.name, res[done].first_violation);
	}
	if (done) {
		printf("\n");
		sim_table_print(stdout, res, done);
		memset(&err, 0, sizeof(err));
		ret = sim_report_save(o.report_path, &o, &t, res, done, &err);
		if (ret) {
			fprintf(stderr, "kvmm-sim: %s\n", err.msg);
			status = EXIT_RUN;
		} else {
			printf("\nreport: %s\n", o.report_path);
		}
		if (o.plot_path) {
			memset(&err, 0, sizeof(err));
			ret = sim_plot(o.plot_path, res, done, &err);
			if (ret)
				printf("plot:   not drawn: %s\n", err.msg);
			else
				printf("plot:   %s\n", o.plot_path);
		}
	}
	if (!status && violations)
		status = EXIT_CONSERVATION;
	for (uint32_t i = 0; i < done; i++)
		sim_result_free(&res[i]);
	free(res);
	sim_trace_free(&t);
	return status;
}
