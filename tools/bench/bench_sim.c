// SPDX-License-Identifier: MIT
/*
 * Group "sim": kvmm-sim's scenario as numbers.  A generated multi-turn chat
 * workload replays through kvmm's real cache and prefix cache on the null
 * backend (model time, so the numbers are the same on every machine) under
 * each policy; TTFT, throughput and hit rate are reported against the
 * no-cache baseline of the same run, and the simulator's own speed (requests
 * simulated per wall-clock second) against nothing.
 *
 * Then the scale case: a production-sized trace (20,000 requests of ~12 K
 * prompt tokens, 10 TB of KV for one GPU of Llama-3-70B TP8; --quick: a
 * tenth) with kvmm's host and disk tiers as bookkeeping on the null
 * backend (no memory or file behind them), its wall time against GPU-only LRU's in
 * the same run: what the tiers' real index, eviction and write policies
 * cost the simulator.
 *   kvmm-bench sim [--quick] [POLICY,...]
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "tools/sim/engine.h"
#include "tools/sim/policy.h"
#include "tools/sim/preset.h"
#include "tools/sim/result.h"
#include "tools/sim/workload.h"

/* An engine on the null backend, the H100 preset, model time. */
static void null_cfg(struct sim_engine_cfg *cfg, const struct sim_trace *t, const char *model,
		     struct sim_machine *mbuf, uint64_t gpu, uint64_t host, uint64_t disk)
{
	sim_engine_defaults(cfg);
	cfg->trace = t;
	cfg->model = sim_model_find(model);
	cfg->machine = sim_machine_find("h100", mbuf);
	cfg->backend = KVMM_BACKEND_NULL;
	cfg->gpu_kv_bytes = gpu;
	cfg->host_bytes = host;
	cfg->disk_bytes = disk;
}

/* The scale case (see the top): wall time per policy, gpu-lru the
 * baseline. */
static int run_scale(struct bench_ctx *ctx)
{
	static const char *const policies[] = {"gpu-lru", "gpu-host-disk"};
	struct sim_workload w;
	struct sim_machine mbuf;
	struct sim_engine_cfg cfg;
	struct sim_model_gpu mg;
	struct sim_trace t;
	struct sim_err err = {0};
	double base_wall = 0, tb;
	uint64_t tokens = 0;
	char spec[200];
	int ret;

	snprintf(spec, sizeof(spec),
		 "chat:sessions=%d,system=4x8192,user=256-2048,turns=2-8,rate=1.5,seed=1",
		 ctx->quick ? 400 : 4000);
	ret = sim_workload_parse(spec, &w, &err);
	sim_trace_init(&t, SIM_FMT_KVMM);
	if (!ret)
		ret = sim_workload_generate(&w, &t, &err);
	if (ret) {
		fprintf(stderr, "bench sim scale: %s\n", err.msg);
		sim_trace_free(&t);
		return ret;
	}
	/* a host tier smaller than the working set: the disk serves too */
	null_cfg(&cfg, &t, "llama3-70b-tp8", &mbuf, 16ull << 30, 16ull << 30, 10ull << 40);
	sim_model_per_gpu(cfg.model, &mg);
	for (uint32_t i = 0; i < t.n; i++)
		tokens += t.req[i].input_len;
	tb = (double)tokens * (double)mg.kv_bytes_per_token / 1e12;
	bench_header("sim scale: llama3-70b-tp8 on h100, 16 GiB GPU KV, 16 GiB host, 10 TiB "
		     "disk, null backend (tiers: bookkeeping only)");
	printf("# workload %s: %u requests, %.1f M prompt tokens, %.2f TB of KV\n", spec, t.n,
	       (double)tokens / 1e6, tb);
	for (uint32_t i = 0; i < sizeof(policies) / sizeof(policies[0]) && !ret; i++) {
		struct sim_policy p;
		struct sim_result r;
		struct sim_summary s;
		char name[64];

		memset(&r, 0, sizeof(r));
		ret = sim_policy_parse(policies[i], &p, &err);
		if (!ret)
			ret = sim_engine_run(&cfg, &p, &r, &err);
		if (ret || r.violations) {
			fprintf(stderr, "bench sim scale: %s: %s\n", policies[i],
				ret ? err.msg : r.first_violation);
			ret = ret ? ret : -EUCLEAN;
			sim_result_free(&r);
			break;
		}
		sim_result_summarize(&r, &s);
		snprintf(name, sizeof(name), "sim-scale-%s", policies[i]);
		if (!i)
			base_wall = r.wall_s;
		/* ratio = baseline / value: < 1, the tiers' bookkeeping costs time */
		bench_result_ratio(ctx, name, "wall_s", r.wall_s, "s", "sim-scale-gpu-lru",
				   base_wall, base_wall / r.wall_s);
		bench_result(ctx, name, "sim_requests_per_wall_s", r.requests / r.wall_s, "req/s",
			     NULL, 0);
		bench_result(ctx, name, "hit_rate", s.hit_rate, "", NULL, 0);
		bench_result(ctx, name, "hit_share_host",
			     (double)r.hit_by_tier[SIM_TIER_HOST] / (double)r.input_tokens, "",
			     NULL, 0);
		bench_result(ctx, name, "hit_share_disk",
			     (double)r.hit_by_tier[SIM_TIER_DISK] / (double)r.input_tokens, "",
			     NULL, 0);
		bench_result(ctx, name, "kv_tb", tb, "TB", NULL, 0);
		sim_result_free(&r);
	}
	sim_trace_free(&t);
	return ret;
}

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
	null_cfg(&cfg, &t, "llama3-8b", &mbuf, 16ull << 30, 64ull << 30, 512ull << 30);
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
		snprintf(name, sizeof(name), "sim-%.*s", (int)sizeof(name) - 5, pol[i].name);
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
	return ret ? ret : run_scale(ctx);
}

BENCH_GROUP(sim, "kvmm-sim's default chat scenario per policy (null backend)", run_sim);
