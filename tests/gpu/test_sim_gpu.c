// SPDX-License-Identifier: MIT
/*
 * test_sim_gpu.c - kvmm-sim on the CUDA backend: the engine over real VMM
 * pages on the GPU, and --gpu (decode attention timed on kvmm's kernels).
 * Without a CUDA device: "SKIP: no CUDA device", exit 77.
 */
#include <math.h>
#include <string.h>

#include "gputest.h"
#include "tools/sim/engine.h"
#include "tools/sim/workload.h"

static int run(struct gt *t, const struct sim_trace *tr, const char *policy, bool gpu,
	       struct sim_result *r)
{
	struct sim_machine buf;
	struct sim_engine_cfg cfg;
	struct sim_policy p;
	struct sim_err err = {0};
	int ret;

	sim_engine_defaults(&cfg);
	cfg.trace = tr;
	cfg.model = sim_model_find("llama3-8b");
	cfg.machine = sim_machine_find("h100", &buf);
	cfg.backend = KVMM_BACKEND_CUDA;
	cfg.gpu_kv_bytes = 2ull << 30;
	cfg.time_source = SIM_TIME_MEASURED;
	cfg.gpu_kernels = gpu;
	cfg.max_seqs = 64;
	sim_policy_parse(policy, &p, &err);
	ret = sim_engine_run(&cfg, &p, r, &err);
	GT_CHECK(t, ret == 0, "%s%s on the cuda backend runs (%s)", policy, gpu ? " --gpu" : "",
		 ret ? err.msg : "ok");
	if (ret)
		return ret;
	GT_CHECK(t, r->violations == 0 && r->checks > 0,
		 "%s: %llu conservation checks, %llu violations (%s)", policy,
		 (unsigned long long)r->checks, (unsigned long long)r->violations,
		 r->violations ? r->first_violation : "none");
	GT_CHECK(t, r->finished == r->requests, "%s: %u of %u requests finished", policy,
		 r->finished, r->requests);
	return 0;
}

int main(void)
{
	struct kvmm_backend *be = gt_open_cuda_or_skip();
	struct gt t = {0};
	struct sim_workload w;
	struct sim_trace tr;
	struct sim_err err = {0};
	struct sim_result none, lru, gpu;

	kvmm_backend_close(be); /* the engine opens its own */
	sim_workload_parse("chat:sessions=40,turns=2-4,system=2x1024,rate=4,think=1,seed=3", &w,
			   &err);
	sim_trace_init(&tr, SIM_FMT_KVMM);
	GT_CHECK(&t, sim_workload_generate(&w, &tr, &err) == 0, "workload: %u requests", tr.n);
	if (!run(&t, &tr, "none", false, &none)) {
		GT_CHECK(&t, none.hit_tokens == 0, "none: no hits");
		sim_result_free(&none);
	}
	if (!run(&t, &tr, "gpu-lru", false, &lru)) {
		GT_CHECK(&t, lru.hit_tokens > lru.input_tokens / 4,
			 "gpu-lru: %llu of %llu prompt tokens reused",
			 (unsigned long long)lru.hit_tokens, (unsigned long long)lru.input_tokens);
		sim_result_free(&lru);
	}
	if (!run(&t, &tr, "gpu-lru", true, &gpu)) {
		double ratio = gpu.attn_decode_s / gpu.attn_decode_roofline_s;

		/* The kernels reach ~0.5 to ~3 TB/s, the roofline assumes the
		 * same: anything far off means the timing path is broken. */
		GT_CHECK(&t, gpu.attn_decode_s > 0 && ratio > 0.2 && ratio < 5,
			 "--gpu: decode attention %.3f s measured vs %.3f s roofline (x%.2f)",
			 gpu.attn_decode_s, gpu.attn_decode_roofline_s, ratio);
		sim_result_free(&gpu);
	}
	sim_trace_free(&tr);
	return gt_done(&t);
}
