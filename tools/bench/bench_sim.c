// SPDX-License-Identifier: MIT
/*
 * Group "sim": kvmm-sim's scenario as numbers.  A generated multi-turn chat
 * workload replays through kvmm's real cache and prefix cache on the null
 * backend (model time, so the numbers are the same on every machine) under
 * each policy; TTFT, throughput and hit rate are reported against the
 * no-cache baseline of the same run, and the simulator's own speed (requests
 * simulated per wall-clock second) against nothing.
 *   kvmm-bench sim [--quick] [POLICY,...]
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "tools/sim/engine.h"
#include "tools/sim/policy.h"
#include "tools/sim/workload.h"

static int run_sim(struct bench_ctx *ctx)
{
	const char *list = ctx->argc > 0 ? ctx->argv[0] : "none,gpu-lru,gpu-lru:alias,gpu-lru:copy";
	struct sim_policy pol[SIM_MAX_POLICIES];
	struct sim_result res[SIM_MAX_POLICIES];
	struct sim_summary base = {0}, s;
	struct sim_workload w;
	struct sim_machine mbuf;
	struct sim_engine_cfg cfg;
	struct sim_trace t;
	struct sim_err err = {0};
	uint32_t n = 0, done = 0;
	char spec[160], name[64], base_name[64] = "";
	int ret;

	/* 2 sessions/s: past what the H100 serves without a prefix cache */
	snprintf(spec, sizeof(spec), "chat:sessions=%d,rate=2,seed=1", ctx->quick ? 200 : 1500);
	ret = sim_policy_list(list, pol, &n, &err);
	if (!ret)
		ret = sim_workload_parse(spec, &w, &err);
	if (ret) {
		fprintf(stderr, "bench sim: %s\n", err.msg);
		return ret;
	}
	sim_trace_init(&t, SIM_FMT_KVMM);
	ret = sim_workload_generate(&w, &t, &err);
	if (ret) {
		sim_trace_free(&t);
		return ret;
	}
	sim_engine_defaults(&cfg);
	cfg.trace = &t;
	cfg.model = sim_model_find("llama3-8b");
	cfg.machine = sim_machine_find("h100", &mbuf);
	cfg.backend = KVMM_BACKEND_NULL;
	cfg.gpu_kv_bytes = 16ull << 30;
	cfg.host_bytes = 64ull << 30;
	cfg.disk_bytes = 512ull << 30;
	bench_header("sim: llama3-8b on h100, 16 GiB GPU KV, generated chat, null backend");
	printf("# workload %s: %u requests\n", spec, t.n);
	for (uint32_t i = 0; i < n; i++) {
		struct sim_result *r = &res[done];

		memset(&err, 0, sizeof(err));
		ret = sim_engine_run(&cfg, &pol[i], r, &err);
		if (ret == -ENOTSUP) {
			/* a tier this build lacks: say so, go on */
			printf("# %s skipped: %s\n", pol[i].name, err.msg);
			sim_result_free(r);
			ret = 0;
			continue;
		}
		if (ret || r->violations) {
			fprintf(stderr, "bench sim: %s: %s\n", pol[i].name,
				ret ? err.msg : r->first_violation);
			sim_result_free(r);
			ret = ret ? ret : -EUCLEAN;
			break;
		}
		sim_result_summarize(r, &s);
		snprintf(name, sizeof(name), "sim-%s", pol[i].name);
		if (!done) {
			/* the first policy is the baseline (none by default) */
			base = s;
			snprintf(base_name, sizeof(base_name), "%s", name);
		}
		done++;
		/* ratio = baseline / value for latencies: > 1 is better */
		bench_result_ratio(ctx, name, "ttft_p50_ms", s.ttft_p50 * 1e3, "ms", base_name,
				   base.ttft_p50 * 1e3, base.ttft_p50 / s.ttft_p50);
		bench_result_ratio(ctx, name, "ttft_p99_ms", s.ttft_p99 * 1e3, "ms", base_name,
				   base.ttft_p99 * 1e3, base.ttft_p99 / s.ttft_p99);
		bench_result(ctx, name, "throughput_tok_s", s.throughput, "tok/s", base_name,
			     base.throughput);
		bench_result(ctx, name, "hit_rate", s.hit_rate, "", NULL, 0);
		bench_result(ctx, name, "sim_requests_per_wall_s", r->requests / r->wall_s, "req/s",
			     NULL, 0);
	}
	for (uint32_t i = 0; i < done; i++)
		sim_result_free(&res[i]);
	sim_trace_free(&t);
	return ret;
}

BENCH_GROUP(sim, "kvmm-sim's default chat scenario per policy (null backend)", run_sim);
