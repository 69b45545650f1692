// SPDX-License-Identifier: MIT
/*
 * test_sim_engine.c - kvmm-sim's engine over kvmm's real cache and prefix
 * cache: determinism, conservation under memory pressure, and a small
 * scenario whose hit rate and bytes moved are computed by hand.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "tools/sim/cli.h"
#include "tools/sim/engine.h"
#include "tools/sim/report.h"
#include "tools/sim/roofline.h"
#include "tools/sim/workload.h"

static const struct sim_model *model(void)
{
	return sim_model_find("llama3-8b");
}

static const struct sim_machine *machine(void)
{
	static struct sim_machine buf;

	return sim_machine_find("h100", &buf);
}

static void cfg_for(struct sim_engine_cfg *cfg, const struct sim_trace *t, uint64_t gpu,
		    enum kvmm_backend_type be)
{
	sim_engine_defaults(cfg);
	cfg->trace = t;
	cfg->model = model();
	cfg->machine = machine();
	cfg->backend = be;
	cfg->gpu_kv_bytes = gpu;
	cfg->max_seqs = 64;
	cfg->chunk_tokens = 2048;
}

static void gen(const char *spec, struct sim_trace *t)
{
	struct sim_workload w;
	struct sim_err err = {0};

	ck_assert_msg(sim_workload_parse(spec, &w, &err) == 0, "%s", err.msg);
	sim_trace_init(t, SIM_FMT_KVMM);
	ck_assert_int_eq(sim_workload_generate(&w, t, &err), 0);
}

static void run(const struct sim_engine_cfg *cfg, const char *policy, struct sim_result *res)
{
	struct sim_policy p;
	struct sim_err err = {0};

	ck_assert_int_eq(sim_policy_parse(policy, &p, &err), 0);
	ck_assert_msg(sim_engine_run(cfg, &p, res, &err) == 0, "%s: %s", policy, err.msg);
	ck_assert_msg(res->violations == 0, "%s: %s", policy, res->first_violation);
	ck_assert_uint_gt(res->checks, 0);
	ck_assert_uint_eq(res->finished, res->requests);
}

/* The report's bytes for a set of results (--time model: no wall clock). */
static char *report(const struct sim_trace *t, const struct sim_result *res, uint32_t n,
		    uint64_t gpu)
{
	struct sim_options o;
	struct sim_err err = {0};
	char *args[] = {"kvmm-sim", NULL}, *buf = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_int_eq(sim_cli_parse(1, args, &o, &err), 0);
	o.gpu_kv_bytes = gpu;
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(sim_report_write(f, &o, t, res, n), 0);
	fclose(f);
	return buf;
}

/* Same seed, same report; another seed, another report. */
START_TEST(test_determinism)
{
	static const char *const policies[] = {"none", "gpu-lru", "gpu-lru:copy"};
	struct sim_result a[3], b[3], c[3];
	struct sim_trace t1, t2, t3;
	struct sim_engine_cfg cfg;
	char *ra, *rb, *rc;
	uint64_t gpu = 1ull << 30;

	gen("chat:sessions=24,turns=2-4,system=2x512,user=16-128,output=8-64,rate=4,seed=11", &t1);
	gen("chat:sessions=24,turns=2-4,system=2x512,user=16-128,output=8-64,rate=4,seed=11", &t2);
	gen("chat:sessions=24,turns=2-4,system=2x512,user=16-128,output=8-64,rate=4,seed=12", &t3);
	for (int i = 0; i < 3; i++) {
		cfg_for(&cfg, &t1, gpu, KVMM_BACKEND_NULL);
		run(&cfg, policies[i], &a[i]);
		cfg_for(&cfg, &t2, gpu, KVMM_BACKEND_NULL);
		run(&cfg, policies[i], &b[i]);
		cfg_for(&cfg, &t3, gpu, KVMM_BACKEND_NULL);
		run(&cfg, policies[i], &c[i]);
	}
	ra = report(&t1, a, 3, gpu);
	rb = report(&t2, b, 3, gpu);
	rc = report(&t3, c, 3, gpu);
	ck_assert_str_eq(ra, rb);
	ck_assert_str_ne(ra, rc);
	/* The prefix cache found the shared system prompts and histories. */
	ck_assert_uint_eq(a[0].hit_tokens, 0);
	ck_assert_uint_gt(a[1].hit_tokens, a[1].input_tokens / 4);
	ck_assert_uint_eq(a[1].hit_tokens, a[1].hit_by_tier[SIM_TIER_GPU]);
	free(ra);
	free(rb);
	free(rc);
	for (int i = 0; i < 3; i++) {
		sim_result_free(&a[i]);
		sim_result_free(&b[i]);
		sim_result_free(&c[i]);
	}
	sim_trace_free(&t1);
	sim_trace_free(&t2);
	sim_trace_free(&t3);
}
END_TEST

/* A GPU budget far below the working set: preemptions and evictions, and
 * still every token reused or computed, memory never over budget. */
static void pressure(enum kvmm_backend_type be, const char *policy)
{
	struct sim_trace t;
	struct sim_engine_cfg cfg;
	struct sim_result r;
	uint64_t gpu = 160ull << 20, out = 0; /* 80 blocks of 16 tokens */
	char dir[] = "/var/tmp/kvmm-test-sim-XXXXXX";
	bool disk = be == KVMM_BACKEND_HOST && strstr(policy, "disk");

	gen("chat:sessions=40,turns=2-5,system=2x256,user=64-256,output=32-128,rate=50,"
	    "think=0.1,max-context=1024,seed=5",
	    &t);
	for (uint32_t i = 0; i < t.n; i++)
		out += t.req[i].output_len;
	cfg_for(&cfg, &t, gpu, be);
	cfg.host_bytes = 256ull << 20; /* 128 blocks: the host pool overflows too */
	cfg.disk_bytes = 1ull << 30;
	cfg.max_seqs = 16;
	cfg.chunk_tokens = 512;
	cfg.mapper = be != KVMM_BACKEND_NULL; /* as kvmm-sim's default */
	cfg.time_source = be == KVMM_BACKEND_NULL ? SIM_TIME_MODEL : SIM_TIME_MEASURED;
	if (disk)
		cfg.disk_dir = mkdtemp(dir);
	run(&cfg, policy, &r);
	if (disk) {
		/* DIR/<policy> and its --disk-bytes file are gone */
		ck_assert_int_eq(rmdir(dir), 0);
	}
	ck_assert_uint_gt(r.preemptions, 0);
	ck_assert_uint_gt(r.recomputed_tokens, 0);
	ck_assert_uint_eq(r.hit_tokens + r.computed_tokens - r.recomputed_tokens, r.input_tokens);
	ck_assert_uint_eq(r.output_tokens, out);
	ck_assert_uint_le(r.peak[SIM_TIER_GPU], gpu);
	ck_assert_uint_le(r.peak[SIM_TIER_HOST], cfg.host_bytes);
	ck_assert_uint_le(r.peak[SIM_TIER_DISK], cfg.disk_bytes);
	ck_assert_uint_eq(r.hit_tokens, r.hit_by_tier[SIM_TIER_GPU] + r.hit_by_tier[SIM_TIER_HOST] +
						r.hit_by_tier[SIM_TIER_DISK]);
	ck_assert_uint_eq(r.tier_verify_failures + r.tier_io_errors, 0);
	/* kvmm's tiers ran where the policy has them: bookkeeping only on
	 * the null backend (which the report must say), real bytes else */
	ck_assert(r.tiers_on == (strstr(policy, "host") || strstr(policy, "lookahead")));
	ck_assert(r.tier_bookkeeping == (r.tiers_on && be == KVMM_BACKEND_NULL));
	if (r.tiers_on)
		ck_assert_uint_gt(r.hit_by_tier[SIM_TIER_HOST] + r.hit_by_tier[SIM_TIER_DISK], 0);
	ck_assert_uint_eq(r.ttft.n, t.n);
	ck_assert_uint_gt(r.itl.count, 0);
	sim_result_free(&r);
	sim_trace_free(&t);
}

START_TEST(test_conservation_null)
{
	pressure(KVMM_BACKEND_NULL, "none");
	pressure(KVMM_BACKEND_NULL, "gpu-lru");
	pressure(KVMM_BACKEND_NULL, "gpu-lru:alias");
	/* the tiers as bookkeeping: their real index, budgets and eviction */
	pressure(KVMM_BACKEND_NULL, "gpu-host");
	pressure(KVMM_BACKEND_NULL, "gpu-host-disk");
	pressure(KVMM_BACKEND_NULL, "lookahead");
}
END_TEST

/* Tiers on the null backend: same seed, same report (no thread timing in
 * what the tiers hold), and the report says they verified nothing. */
START_TEST(test_determinism_tiers_null)
{
	static const char *const policies[] = {"gpu-host", "gpu-host-disk", "lookahead"};
	struct sim_result a[3], b[3];
	struct sim_trace t1, t2;
	struct sim_engine_cfg cfg;
	uint64_t gpu = 160ull << 20;
	char *ra, *rb;

	gen("chat:sessions=30,turns=2-4,system=2x256,user=64-256,output=16-64,rate=20,"
	    "think=0.5,max-context=1024,seed=21",
	    &t1);
	gen("chat:sessions=30,turns=2-4,system=2x256,user=64-256,output=16-64,rate=20,"
	    "think=0.5,max-context=1024,seed=21",
	    &t2);
	for (int i = 0; i < 3; i++) {
		cfg_for(&cfg, &t1, gpu, KVMM_BACKEND_NULL);
		cfg.host_bytes = 64ull << 20; /* 32 blocks: the pool overflows to disk */
		cfg.disk_bytes = 1ull << 30;
		cfg.max_seqs = 16;
		cfg.chunk_tokens = 512;
		run(&cfg, policies[i], &a[i]);
		cfg.trace = &t2;
		run(&cfg, policies[i], &b[i]);
		ck_assert(a[i].tier_bookkeeping);
		ck_assert_uint_gt(a[i].hit_by_tier[SIM_TIER_HOST], 0);
		ck_assert_uint_gt(a[i].bytes_moved[SIM_MOVE_GPU_TO_HOST], 0);
		ck_assert_uint_gt(a[i].bytes_moved[SIM_MOVE_HOST_TO_GPU], 0);
		if (i) {
			ck_assert_uint_gt(a[i].hit_by_tier[SIM_TIER_DISK], 0);
			ck_assert_uint_gt(a[i].bytes_moved[SIM_MOVE_HOST_TO_DISK], 0);
		}
	}
	ra = report(&t1, a, 3, gpu);
	rb = report(&t2, b, 3, gpu);
	ck_assert_str_eq(ra, rb);
	ck_assert_ptr_nonnull(strstr(ra, "\"data\": \"bookkeeping only"));
	ck_assert_ptr_nonnull(strstr(ra, "\"verify_failures\": null"));
	ck_assert_ptr_null(strstr(ra, "checksummed"));
	free(ra);
	free(rb);
	for (int i = 0; i < 3; i++) {
		sim_result_free(&a[i]);
		sim_result_free(&b[i]);
	}
	sim_trace_free(&t1);
	sim_trace_free(&t2);
}
END_TEST

START_TEST(test_conservation_host)
{
	/* Under valgrind (KVMM_TEST_SCALE > 1) every block copy is ~50x slower:
	 * keep the policy that exercises every tier, the others run natively. */
	bool full = tu_scaled(2) == 2;

	pressure(KVMM_BACKEND_HOST, "gpu-host-disk");
	if (full) {
		pressure(KVMM_BACKEND_HOST, "gpu-lru");
		pressure(KVMM_BACKEND_HOST, "gpu-host");
		pressure(KVMM_BACKEND_HOST, "lookahead");
	}
}
END_TEST

/*
 * By hand.  Llama-3-8B: 128 KiB of KV per token, 16 tokens (2 MiB) per
 * block.  Three requests, far apart in time, each 4 output tokens:
 *   A  t=0   2084 prompt tokens: S (2048 shared = 128 blocks) + a (36)
 *   B  t=10  2084 prompt tokens: S + b (36)       -> reuses S: 2048 tokens
 *   C  t=20  A's prompt + A's 4 outputs + 20 more -> 2108 tokens
 * A publishes its full blocks after its prefill and when it finishes with
 * KV for 2084 + 4 - 1 = 2087 tokens: 130 blocks = 2080 tokens.  C's first
 * 2088 tokens are A's, so C reuses 2080 (the rest of A's 131st block was
 * never published: it was not full).  B's own blocks (129, 130) differ from
 * A's at their first token, so nothing partial matches either.
 * Hits: 0 + 2048 + 2080 = 4128 of 2084 + 2084 + 2108 = 6276 prompt tokens.
 * Bytes moved by attaching: alias maps whole blocks and copies nothing
 * (both matches end on a block boundary); copy copies 128 + 130 = 258
 * blocks = 516 MiB.
 */
#define HAND_S 2048

static void hand_trace(struct sim_trace *t)
{
	static char line[65536];
	struct sim_err err = {0};
	int n;

	sim_trace_init(t, SIM_FMT_KVMM);
	for (int r = 0; r < 3; r++) {
		n = snprintf(line, sizeof(line),
			     "{\"session\": \"%s\", \"timestamp_ms\": %d, \"%s\": [",
			     r == 1 ? "B" : "A", r * 10000, r == 2 ? "append" : "input");
		/* S: 1000.., a: 100000.., b: 200000.., C's new tokens: 300000.. */
		for (int i = 0; r < 2 && i < HAND_S + 36; i++)
			n += snprintf(line + n, sizeof(line) - n, i ? ",%d" : "%d",
				      i < HAND_S ? 1000 + i : (r + 1) * 100000 + i);
		for (int i = 0; r == 2 && i < 20; i++)
			n += snprintf(line + n, sizeof(line) - n, i ? ",%d" : "%d", 300000 + i);
		snprintf(line + n, sizeof(line) - n, "], \"output_length\": 4}");
		ck_assert_int_eq(sim_trace_parse_line(t, line, strlen(line), "hand", r + 1, &err),
				 0);
	}
	ck_assert_uint_eq(t->req[2].input_len, HAND_S + 36 + 4 + 20);
}

static void hand_run(enum kvmm_backend_type be, const char *policy, struct sim_result *r)
{
	struct sim_trace t;
	struct sim_engine_cfg cfg;

	hand_trace(&t);
	cfg_for(&cfg, &t, 1ull << 30, be);
	cfg.max_seqs = 4;
	cfg.chunk_tokens = 4096;
	cfg.time_source = SIM_TIME_MODEL;
	run(&cfg, policy, r);
	ck_assert_uint_eq(r->requests, 3);
	ck_assert_uint_eq(r->input_tokens, 6276);
	ck_assert_uint_eq(r->output_tokens, 12);
	ck_assert_uint_eq(r->tokens_per_block, 16);
	ck_assert_uint_eq(r->block_bytes, 2u << 20);
	sim_trace_free(&t);
}

START_TEST(test_hand_checked)
{
	const enum kvmm_backend_type backends[] = {KVMM_BACKEND_NULL, KVMM_BACKEND_HOST};
	struct sim_result r;
	struct sim_summary s;

	for (int k = 0; k < 2; k++) {
		hand_run(backends[k], "none", &r);
		ck_assert_uint_eq(r.hit_tokens, 0);
		ck_assert_uint_eq(r.computed_tokens, 6276);
		ck_assert_uint_eq(r.bytes_moved[SIM_MOVE_ATTACH_COPY], 0);
		sim_result_free(&r);

		hand_run(backends[k], "gpu-lru:alias", &r);
		ck_assert_uint_eq(r.hit_tokens, 4128);
		ck_assert_uint_eq(r.hit_by_tier[SIM_TIER_GPU], 4128);
		ck_assert_uint_eq(r.computed_tokens, 6276 - 4128);
		ck_assert_uint_eq(r.bytes_moved[SIM_MOVE_ATTACH_COPY], 0);
		ck_assert_uint_eq(r.attach_alias, 2);
		sim_result_summarize(&r, &s);
		ck_assert(fabs(s.hit_rate - 4128.0 / 6276) < 1e-12);
		sim_result_free(&r);

		hand_run(backends[k], "gpu-lru:copy", &r);
		ck_assert_uint_eq(r.hit_tokens, 4128);
		ck_assert_uint_eq(r.attach_copy, 2);
		ck_assert_uint_eq(r.bytes_moved[SIM_MOVE_ATTACH_COPY], 258ull * (2u << 20));
		sim_result_free(&r);
	}

	/* On null, AUTO weighs the preset's (H100) costs, not the backend's
	 * bookkeeping times. */
	hand_run(KVMM_BACKEND_NULL, "gpu-lru", &r);
	ck_assert_uint_eq(r.attach_cost_ns[0], 26500);
	ck_assert_uint_eq(r.attach_cost_ns[1], 15600);
	ck_assert_uint_eq(r.attach_cost_ns[2], 1398);
	ck_assert_uint_eq(r.attach_alias + r.attach_copy, 2);
	sim_result_free(&r);

	/* Time: A's first token comes after at least its prefill's compute;
	 * B, which computes 36 tokens instead of 2084, is much faster. */
	struct sim_work w = {0};

	hand_run(KVMM_BACKEND_NULL, "gpu-lru", &r);
	sim_work_add(&w, HAND_S + 36, HAND_S + 36, 1);
	ck_assert(r.ttft.v[0] >= sim_roofline(model(), machine(), &w, NULL));
	ck_assert(r.ttft.v[1] < r.ttft.v[0] / 2);
	sim_result_free(&r);
}
END_TEST

/*
 * By hand, with tiers.  GPU budget 256 blocks (512 MiB):
 *   A  t=0   2084 prompt tokens, 4 out: caches 130 blocks (2080 tokens)
 *   D  t=10  4093 unrelated tokens, 4 out: KV 4096 tokens = all 256 blocks,
 *            so every one of A's cached blocks is evicted, spilled to the
 *            host pool (and, with a small pool, on to disk)
 *   C  t=20  A's follow-up (2108 tokens): A's 130 blocks come back from the
 *            tiers: 2080 hit tokens, none of them from the GPU
 * Bytes: 130 blocks = 260 MiB restored to the GPU; at least A's 130 blocks
 * spilled (D's go down too, to make room for the restore).
 */
static void tier_trace(struct sim_trace *t)
{
	static char line[65536];
	struct sim_err err = {0};
	int n;

	sim_trace_init(t, SIM_FMT_KVMM);
	for (int r = 0; r < 3; r++) {
		const char *sess = r == 1 ? "D" : "A";
		int len = r == 0 ? HAND_S + 36 : r == 1 ? 4093 : 20;

		n = snprintf(line, sizeof(line),
			     "{\"session\": \"%s\", \"timestamp_ms\": %d, \"%s\": [", sess,
			     r * 10000, r == 2 ? "append" : "input");
		for (int i = 0; i < len; i++)
			n += snprintf(line + n, sizeof(line) - n, i ? ",%d" : "%d",
				      r == 0 ? (i < HAND_S ? 1000 + i : 100000 + i)
					     : (r + 4) * 100000 + i);
		snprintf(line + n, sizeof(line) - n, "], \"output_length\": 4}");
		ck_assert_int_eq(sim_trace_parse_line(t, line, strlen(line), "tiers", r + 1, &err),
				 0);
	}
}

static void tier_run(enum kvmm_backend_type be, const char *policy, uint64_t host,
		     struct sim_result *r)
{
	struct sim_trace t;
	struct sim_engine_cfg cfg;

	tier_trace(&t);
	cfg_for(&cfg, &t, 512ull << 20, be);
	cfg.host_bytes = host;
	cfg.disk_bytes = 1ull << 30;
	cfg.max_seqs = 4;
	cfg.chunk_tokens = 4096;
	cfg.time_source = SIM_TIME_MODEL;
	run(&cfg, policy, r);
	sim_trace_free(&t);
}

/* The same scenario on the null backend: the tiers' bookkeeping gives
 * the hand-checked hits and bytes, and the same as the host backend's. */
static void hand_tiers(enum kvmm_backend_type be, struct sim_result out[2])
{
	struct sim_result r;

	/* GPU only: A's prefix is gone by the time C comes. */
	tier_run(be, "gpu-lru", 1ull << 30, &r);
	ck_assert_uint_eq(r.hit_tokens, 0);
	sim_result_free(&r);

	/* A host pool of 1 GiB holds all of it. */
	tier_run(be, "gpu-host", 1ull << 30, &out[0]);
	r = out[0];
	ck_assert_uint_eq(r.hit_tokens, 2080);
	ck_assert_uint_eq(r.hit_by_tier[SIM_TIER_HOST], 2080);
	ck_assert_uint_eq(r.hit_by_tier[SIM_TIER_GPU] + r.hit_by_tier[SIM_TIER_DISK], 0);
	ck_assert_uint_eq(r.bytes_moved[SIM_MOVE_HOST_TO_GPU], 130ull << 21);
	ck_assert_uint_ge(r.bytes_moved[SIM_MOVE_GPU_TO_HOST], 130ull << 21);
	ck_assert_uint_eq(r.bytes_moved[SIM_MOVE_DISK_TO_HOST], 0);
	ck_assert(r.transfer_s > 0); /* C waited for its restore */

	/* A 64 MiB pool (32 blocks) keeps only the last spilled blocks: the
	 * rest come back from disk. */
	tier_run(be, "gpu-host-disk", 64ull << 20, &out[1]);
	r = out[1];
	ck_assert_uint_eq(r.hit_tokens, 2080);
	ck_assert_uint_eq(r.hit_by_tier[SIM_TIER_GPU], 0);
	ck_assert_uint_le(r.hit_by_tier[SIM_TIER_HOST], 32 * 16);
	ck_assert_uint_gt(r.hit_by_tier[SIM_TIER_DISK], 0);
	ck_assert_uint_eq(r.hit_by_tier[SIM_TIER_HOST] + r.hit_by_tier[SIM_TIER_DISK], 2080);
	ck_assert_uint_eq(r.bytes_moved[SIM_MOVE_HOST_TO_GPU], 130ull << 21);
	ck_assert_uint_eq(r.bytes_moved[SIM_MOVE_DISK_TO_HOST],
			  (uint64_t)r.hit_by_tier[SIM_TIER_DISK] / 16 << 21);
	ck_assert_uint_ge(r.bytes_moved[SIM_MOVE_HOST_TO_DISK],
			  r.bytes_moved[SIM_MOVE_DISK_TO_HOST]);
	for (int k = 0; k < 2; k++)
		ck_assert(out[k].tier_bookkeeping == (be == KVMM_BACKEND_NULL));
}

START_TEST(test_hand_checked_tiers)
{
	struct sim_result host[2], null[2];

	hand_tiers(KVMM_BACKEND_HOST, host);
	hand_tiers(KVMM_BACKEND_NULL, null);
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < SIM_TIERS; i++)
			ck_assert_uint_eq(null[k].hit_by_tier[i], host[k].hit_by_tier[i]);
		/* restores: the same; spills: on the host backend how much is
		 * spilled again depends on when the mover seals and the disk
		 * writes (each policy checked above), on null on nothing */
		for (int i = SIM_MOVE_DISK_TO_HOST; i <= SIM_MOVE_HOST_TO_GPU; i++)
			ck_assert_msg(null[k].bytes_moved[i] == host[k].bytes_moved[i],
				      "policy %d, bytes moved %d: null %llu, host %llu", k, i,
				      (unsigned long long)null[k].bytes_moved[i],
				      (unsigned long long)host[k].bytes_moved[i]);
		ck_assert_uint_eq(null[k].peak[SIM_TIER_HOST], host[k].peak[SIM_TIER_HOST]);
		sim_result_free(&host[k]);
		sim_result_free(&null[k]);
	}
}
END_TEST

/* The budget check names the flag and the request that cannot fit. */
START_TEST(test_impossible_budget)
{
	struct sim_trace t;
	struct sim_engine_cfg cfg;
	struct sim_policy p;
	struct sim_result r;
	struct sim_err err = {0};

	hand_trace(&t);
	cfg_for(&cfg, &t, 256ull << 20, KVMM_BACKEND_NULL); /* 128 blocks: 2048 tokens */
	ck_assert_int_eq(sim_policy_parse("gpu-lru", &p, &err), 0);
	ck_assert_int_eq(sim_engine_run(&cfg, &p, &r, &err), -ENOSPC);
	ck_assert_msg(strstr(err.msg, "--gpu-kv-bytes 256.00 MiB cannot hold request 0 (trace "
				      "line 1): 2087 tokens need 262.00 MiB"),
		      "%s", err.msg);
	sim_result_free(&r);
	sim_trace_free(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sim_engine");
	TCase *tc = tcase_create("engine");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_determinism);
	tcase_add_test(tc, test_conservation_null);
	tcase_add_test(tc, test_determinism_tiers_null);
	tcase_add_test(tc, test_conservation_host);
	tcase_add_test(tc, test_hand_checked);
	tcase_add_test(tc, test_hand_checked_tiers);
	tcase_add_test(tc, test_impossible_budget);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
