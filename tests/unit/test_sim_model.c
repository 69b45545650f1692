// SPDX-License-Identifier: MIT
/* test_sim_model.c - kvmm-sim's generator, presets, roofline, statistics,
 * policies and command line. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tools/sim/cli.h"
#include "tools/sim/policy.h"
#include "tools/sim/preset.h"
#include "tools/sim/roofline.h"
#include "tools/sim/size.h"
#include "tools/sim/stats.h"
#include "tools/sim/tiers.h"
#include "tools/sim/workload.h"

static void gen(const char *spec, struct sim_trace *t)
{
	struct sim_workload w;
	struct sim_err err = {0};

	ck_assert_msg(sim_workload_parse(spec, &w, &err) == 0, "%s: %s", spec, err.msg);
	sim_trace_init(t, SIM_FMT_KVMM);
	ck_assert_int_eq(sim_workload_generate(&w, t, &err), 0);
}

static uint32_t *input_of(const struct sim_trace *t, uint32_t i)
{
	uint32_t *b = malloc(sizeof(*b) * t->req[i].input_len);

	ck_assert_ptr_nonnull(b);
	sim_request_input(t, i, b);
	return b;
}

/* Sessions grow by whole turns, share system prompts, follow the bounds. */
START_TEST(test_generator_shape)
{
	struct sim_trace t;
	uint32_t firsts = 0, prompts_seen = 0;
	uint32_t *first_of_prompt[4] = {0};

	gen("chat:sessions=60,turns=2-5,system=4x256,user=10-40,output=5-20,max-context=2048", &t);
	ck_assert_uint_eq(t.nsessions, 60);
	for (uint32_t i = 0; i < t.n; i++) {
		const struct sim_request *r = &t.req[i];
		uint32_t *in = input_of(&t, i);

		ck_assert_uint_ge(r->output_len, 5);
		ck_assert_uint_le(r->output_len, 20);
		ck_assert_uint_le(r->input_len + r->output_len, 2048);
		if (r->prev < 0) {
			firsts++;
			ck_assert_int_ge(r->arrival_ns, 0);
			ck_assert_uint_ge(r->input_len, 256 + 10);
			ck_assert_uint_le(r->input_len, 256 + 40);
			/* The system prompt is one of four shared runs. */
			int found = -1;

			for (int p = 0; p < 4; p++)
				if (first_of_prompt[p] && !memcmp(first_of_prompt[p], in, 256 * 4))
					found = p;
			if (found < 0) {
				ck_assert_uint_lt(prompts_seen, 4);
				first_of_prompt[prompts_seen++] = in;
				in = NULL;
			}
		} else {
			const struct sim_request *p = &t.req[r->prev];
			uint32_t *pin = input_of(&t, (uint32_t)r->prev), *pout;

			/* Closed loop: the turn follows the previous one's answer. */
			ck_assert_int_eq(r->arrival_ns, -1);
			ck_assert_uint_eq(r->session, p->session);
			ck_assert_uint_eq(r->turn, p->turn + 1);
			ck_assert_uint_ge(r->input_len - p->input_len - p->output_len, 10);
			ck_assert_uint_le(r->input_len - p->input_len - p->output_len, 40);
			ck_assert_int_eq(memcmp(in, pin, sizeof(*in) * p->input_len), 0);
			pout = malloc(sizeof(*pout) * p->output_len);
			sim_request_output(&t, (uint32_t)r->prev, pout);
			ck_assert_int_eq(
				memcmp(in + p->input_len, pout, sizeof(*in) * p->output_len), 0);
			free(pout);
			free(pin);
		}
		free(in);
	}
	ck_assert_uint_eq(firsts, 60);
	ck_assert_uint_ge(prompts_seen, 2);
	for (int p = 0; p < 4; p++)
		free(first_of_prompt[p]);
	sim_trace_free(&t);
}
END_TEST

/* Same seed, same trace; another seed, another trace. */
START_TEST(test_generator_seed)
{
	struct sim_trace a, b, c;
	char *x = NULL, *y = NULL, *z = NULL;
	size_t lx, ly, lz;
	FILE *f;

	gen("chat:sessions=30,seed=7", &a);
	gen("chat:sessions=30,seed=7", &b);
	gen("chat:sessions=30,seed=8", &c);
	f = open_memstream(&x, &lx);
	ck_assert_int_eq(sim_trace_write(&a, f, SIM_FMT_KVMM), 0);
	fclose(f);
	f = open_memstream(&y, &ly);
	ck_assert_int_eq(sim_trace_write(&b, f, SIM_FMT_KVMM), 0);
	fclose(f);
	f = open_memstream(&z, &lz);
	ck_assert_int_eq(sim_trace_write(&c, f, SIM_FMT_KVMM), 0);
	fclose(f);
	ck_assert_uint_eq(lx, ly);
	ck_assert_int_eq(memcmp(x, y, lx), 0);
	ck_assert(lx != lz || memcmp(x, z, lx));
	free(x);
	free(y);
	free(z);
	sim_trace_free(&a);
	sim_trace_free(&b);
	sim_trace_free(&c);
}
END_TEST

/* Arrival process: mean gap 1/rate; cv > 1 is burstier than Poisson. */
START_TEST(test_generator_arrivals)
{
	struct sim_trace p, b;
	double m[2], v[2];
	struct sim_trace *ts[2] = {&p, &b};

	gen("chat:sessions=4000,turns=1-1,rate=10,cv=1,seed=3", &p);
	gen("chat:sessions=4000,turns=1-1,rate=10,cv=4,seed=3", &b);
	for (int k = 0; k < 2; k++) {
		double s = 0, s2 = 0;
		uint32_t n = ts[k]->n - 1;

		for (uint32_t i = 1; i < ts[k]->n; i++) {
			double g = (ts[k]->req[i].arrival_ns - ts[k]->req[i - 1].arrival_ns) / 1e9;

			s += g;
			s2 += g * g;
		}
		m[k] = s / n;
		v[k] = s2 / n - m[k] * m[k];
	}
	/* mean 0.1 s within 10%; CV about 1 and about 4 */
	ck_assert(fabs(m[0] - 0.1) < 0.01);
	ck_assert(fabs(m[1] - 0.1) < 0.02);
	ck_assert(fabs(sqrt(v[0]) / m[0] - 1) < 0.15);
	ck_assert(sqrt(v[1]) / m[1] > 2.5);
	sim_trace_free(&p);
	sim_trace_free(&b);

	/* Open loop: every turn has a fixed time after its predecessor. */
	gen("agent:sessions=5,loop=open", &p);
	for (uint32_t i = 0; i < p.n; i++) {
		ck_assert_int_ge(p.req[i].arrival_ns, 0);
		if (p.req[i].prev >= 0)
			ck_assert_int_ge(p.req[i].arrival_ns, p.req[p.req[i].prev].arrival_ns);
	}
	sim_trace_free(&p);
}
END_TEST

START_TEST(test_workload_errors)
{
	static const struct {
		const char *spec, *msg;
	} bad[] = {
		{"chatty", "--workload: unknown preset \"chatty\""},
		{"chat:sessions=0", "--workload: sessions must be >= 1"},
		{"chat:turns=5-2", "--workload: turns=A-B needs"},
		{"chat:turns=x", "--workload: bad value \"x\" for turns"},
		{"chat:system=4", "--workload: bad value \"4\" for system"},
		{"chat:colour=red", "--workload: unknown key \"colour\""},
		{"chat:rate=0", "--workload: rate must be > 0"},
		{"chat:loop=sideways", "--workload: bad value \"sideways\" for loop"},
		{"chat:max-context=100", "--workload: max-context 100 cannot hold"},
		{"chat:sessions", "--workload: \"sessions\" is not key=value"},
	};
	struct sim_workload w;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sim_err err = {0};

		ck_assert_int_eq(sim_workload_parse(bad[i].spec, &w, &err), -EINVAL);
		ck_assert_msg(!strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)), "%s: got \"%s\"",
			      bad[i].spec, err.msg);
	}
	/* Overrides without a preset name apply to chat; the format round-trips. */
	struct sim_err err = {0};
	struct sim_workload w2;
	char buf[512];

	ck_assert_int_eq(sim_workload_parse("sessions=3,think=0.5", &w, &err), 0);
	ck_assert_uint_eq(w.sessions, 3);
	ck_assert(w.think_s == 0.5);
	sim_workload_format(&w, buf, sizeof(buf));
	ck_assert_int_eq(sim_workload_parse(buf, &w2, &err), 0);
	ck_assert_int_eq(memcmp(&w, &w2, sizeof(w)), 0);
}
END_TEST

START_TEST(test_presets)
{
	const struct sim_model *m8 = sim_model_find("llama3-8b");
	const struct sim_model *m70 = sim_model_find("llama3-70b-tp8");
	const struct sim_model *m1 = sim_model_find("llama3.2-1b");
	struct sim_machine buf;
	const struct sim_machine *h = sim_machine_find("h100", &buf);
	const struct sim_machine *l = sim_machine_find("local", &buf);
	struct sim_model_gpu g;
	struct sim_err err = {0};
	uint64_t cap;

	ck_assert_ptr_nonnull(m8);
	ck_assert_ptr_nonnull(m70);
	ck_assert_ptr_nonnull(m1);
	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_null(sim_model_find("gpt-5"));
	ck_assert_ptr_null(sim_machine_find("tpu", &buf));
	/* KV per token from the shape: 2 (K,V) * layers * kv heads * dim * 2 B. */
	sim_model_per_gpu(m8, &g);
	ck_assert_uint_eq(g.kv_bytes_per_token, 2ull * 32 * 8 * 128 * 2);
	/* Linear FLOPs per token ~ 2 * non-embedding parameters (6.98 B). */
	ck_assert(fabs(g.linear_flops_tok / 2 - 6.98e9) < 0.01e9);
	sim_model_per_gpu(m70, &g);
	ck_assert_uint_eq(g.kv_heads, 1);
	ck_assert_uint_eq(g.q_heads, 8);
	ck_assert_uint_eq(g.kv_bytes_per_token, 2ull * 80 * 1 * 128 * 2);
	ck_assert(fabs((double)g.weight_bytes - 70.55e9 * 2 / 8) < 1e6);
	sim_model_per_gpu(m1, &g);
	ck_assert_uint_eq(g.kv_bytes_per_token, 2ull * 16 * 8 * 64 * 2);
	/* H100 after Llama-3-8B's weights: 0.9 * 79.65 GiB - 14.96 - 2 GiB. */
	ck_assert_int_eq(sim_kv_capacity(m8, h, &cap, &err), 0);
	ck_assert(fabs(cap / 1073741824.0 - (0.9 * 81559 / 1024 - 8.03e9 * 2 / 1073741824.0 - 2)) <
		  0.01);
	/* Attach costs per 2 MiB page on the H100: map + access 26.5 us,
	 * unmap 15.6 us, a copy at 1.5 TB/s 1.398 us; never 0 ("measure"). */
	uint64_t map_ns, unmap_ns, copy_ns;

	sim_machine_attach_costs(h, 2u << 20, &map_ns, &unmap_ns, &copy_ns);
	ck_assert_uint_eq(map_ns, 26500);
	ck_assert_uint_eq(unmap_ns, 15600);
	ck_assert_uint_eq(copy_ns, 1398);
	sim_machine_attach_costs(h, 64, &map_ns, &unmap_ns, &copy_ns);
	ck_assert_uint_eq(copy_ns, 1);
	/* A machine too small for the weights is an error that names both. */
	struct sim_machine tiny = *h;

	tiny.name = "tiny";
	tiny.mem_bytes = 8ull << 30;
	ck_assert_int_eq(sim_kv_capacity(m8, &tiny, &cap, &err), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "--model llama3-8b does not fit --machine tiny"));
}
END_TEST

/* The roofline against hand-computed numbers. */
START_TEST(test_roofline)
{
	const struct sim_model *m = sim_model_find("llama3-8b");
	struct sim_machine buf;
	const struct sim_machine *h = sim_machine_find("h100", &buf);
	struct sim_model_gpu g;
	struct sim_work w = {0};
	struct sim_time_parts p;
	double t, want;

	sim_model_per_gpu(m, &g);
	/* Decode, batch 1, context 1000: weights stream (memory-bound) and
	 * 1000 tokens of KV at batch-1 attention bandwidth. */
	sim_work_add(&w, 1, 1000, 1);
	t = sim_roofline(m, h, &w, &p);
	want = 8.03e9 * 2 / (3.35e12 * 0.9);
	ck_assert(fabs(p.linear_s - want) / want < 1e-9);
	want = 1000.0 * 131072 / 0.5e12;
	ck_assert(fabs(p.attn_s - want) / want < 1e-9);
	ck_assert(p.attn_decode_s == p.attn_s); /* all of it is decode */
	ck_assert(p.comm_s == 0);
	ck_assert(fabs(t - p.linear_s - p.attn_s) < 1e-15);

	/* Prefill of 4096 tokens from empty: compute-bound. */
	memset(&w, 0, sizeof(w));
	sim_work_add(&w, 4096, 4096, 1);
	sim_roofline(m, h, &w, &p);
	want = (4096 * g.linear_flops_tok + g.lm_head_flops) / (989e12 * 0.65);
	ck_assert(fabs(p.linear_s - want) / want < 1e-9);
	/* causal pairs: 4096 * 4097 / 2 */
	want = 4.0 * 32 * 32 * 128 * (4096.0 * 4097 / 2) / (989e12 * 0.65);
	ck_assert(fabs(p.attn_s - want) / want < 1e-9);
	ck_assert(p.attn_decode_s == 0);

	/* A chunk that continues a prefill sees the earlier tokens too. */
	memset(&w, 0, sizeof(w));
	sim_work_add(&w, 2, 10, 0);
	ck_assert(w.prefill_pairs == 9 + 10);
	ck_assert_uint_eq(w.sampled, 0);

	/* Decode attention bandwidth: 0.5 TB/s at 1, 3.0 from 8, linear between. */
	ck_assert(sim_attn_bw(h, 1) == 0.5e12);
	ck_assert(sim_attn_bw(h, 8) == 3.0e12);
	ck_assert(sim_attn_bw(h, 64) == 3.0e12);
	ck_assert(fabs(sim_attn_bw(h, 4) - (0.5e12 + 2.5e12 * 3 / 7)) < 1);

	/* TP8: two all-reduces per layer of the new tokens' activations. */
	m = sim_model_find("llama3-70b-tp8");
	memset(&w, 0, sizeof(w));
	sim_work_add(&w, 1, 100, 1);
	sim_roofline(m, h, &w, &p);
	want = 80 * 2.0 * 8192 * 2 * 2.0 * 7 / 8 / 450e9;
	ck_assert(fabs(p.comm_s - want) / want < 1e-9);

	/* Nothing to run costs nothing. */
	memset(&w, 0, sizeof(w));
	ck_assert(sim_roofline(m, h, &w, NULL) == 0);
}
END_TEST

START_TEST(test_stats)
{
	double v[] = {5, 1, 4, 2, 3};
	struct sim_hist *h = malloc(sizeof(*h));
	struct sim_samples s = {0};

	ck_assert(sim_percentile(v, 5, 50) == 3);
	ck_assert(sim_percentile(v, 5, 99) == 5);
	ck_assert(sim_percentile(v, 5, 0) == 1);
	ck_assert(isnan(sim_percentile(v, 0, 50)));
	ck_assert(sim_mean(v, 5) == 3);
	for (int i = 0; i < 3000; i++)
		ck_assert_int_eq(sim_samples_add(&s, i), 0);
	ck_assert_uint_eq(s.n, 3000);
	sim_samples_free(&s);

	sim_hist_init(h);
	ck_assert(isnan(sim_hist_percentile(h, 50)));
	for (int i = 1; i <= 1000; i++)
		sim_hist_add(h, i * 1e-3); /* 1 ms .. 1 s */
	ck_assert_uint_eq(h->count, 1000);
	/* within the 1% bucket width */
	ck_assert(fabs(sim_hist_percentile(h, 50) - 0.5) / 0.5 < 0.011);
	ck_assert(fabs(sim_hist_percentile(h, 99) - 0.99) / 0.99 < 0.011);
	ck_assert(sim_hist_percentile(h, 100) <= 1.0);
	ck_assert(sim_hist_percentile(h, 0) >= 1e-3);
	sim_hist_add(h, 0);
	sim_hist_add(h, 1e9); /* clamps to the last bucket, max stays exact */
	ck_assert(sim_hist_percentile(h, 100) == 1e9);
	free(h);
}
END_TEST

START_TEST(test_policies)
{
	struct sim_policy p[SIM_MAX_POLICIES];
	struct sim_err err = {0};
	uint32_t n;

	ck_assert_int_eq(sim_policy_list("all", p, &n, &err), 0);
	ck_assert_uint_eq(n, SIM_POLICY_ALL_N);
	ck_assert(!p[0].prefix);
	ck_assert(p[1].prefix && !p[1].host);
	ck_assert(p[2].host && !p[2].disk);
	ck_assert(p[3].disk && !p[3].lookahead);
	ck_assert(p[4].lookahead);
	ck_assert_int_eq(p[5].attach, KVMM_ATTACH_ALIAS);
	ck_assert_int_eq(p[6].attach, KVMM_ATTACH_COPY);
	ck_assert_int_eq(sim_policy_list("gpu-lru:copy:lfu,none", p, &n, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(p[0].attach, KVMM_ATTACH_COPY);
	ck_assert_int_eq(p[0].evict, KVMM_EVICT_LFU);
	ck_assert_str_eq(p[0].name, "gpu-lru:copy:lfu");

	static const struct {
		const char *list, *msg;
	} bad[] = {
		{"gpu-lru,gpu-lru", "--policy: \"gpu-lru\" given twice"},
		{"lru", "--policy: unknown policy \"lru\""},
		{"gpu-lru:fast", "--policy gpu-lru:fast: unknown modifier \":fast\""},
		{"none:copy", "--policy none:copy: \"none\" has no prefix cache"},
		{",", "--policy: no policy named"},
		{"all,all,all", "--policy: more than"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_int_lt(sim_policy_list(bad[i].list, p, &n, &err), 0);
		ck_assert_msg(!strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)), "%s: got \"%s\"",
			      bad[i].list, err.msg);
	}
}
END_TEST

static int parse(struct sim_options *o, struct sim_err *err, const char *args)
{
	/* static: the options point into the arguments after the call */
	static char buf[1024], *argv[64];
	char *save = NULL;
	int argc = 0;

	snprintf(buf, sizeof(buf), "kvmm-sim %s", args);
	for (char *t = strtok_r(buf, " ", &save); t && argc < 63; t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	memset(err, 0, sizeof(*err));
	return sim_cli_parse(argc, argv, o, err);
}

START_TEST(test_cli)
{
	struct sim_options *o = malloc(sizeof(*o));
	struct sim_err err;

	/* The contract's flags. */
	ck_assert_int_eq(parse(o, &err,
			       "--trace t.jsonl --format mooncake --model llama3-70b-tp8 "
			       "--backend null --gpu-kv-bytes 40G --host-bytes 1T "
			       "--disk-bytes unlimited --policy gpu-lru,none "
			       "--report out/r.json"),
			 0);
	ck_assert_str_eq(o->trace_path, "t.jsonl");
	ck_assert_int_eq(o->format, SIM_FMT_MOONCAKE);
	ck_assert_str_eq(o->model->name, "llama3-70b-tp8");
	ck_assert_int_eq(o->backend, KVMM_BACKEND_NULL);
	ck_assert_uint_eq(o->gpu_kv_bytes, 40ull << 30);
	ck_assert_uint_eq(o->host_bytes, 1ull << 40);
	ck_assert_uint_eq(o->disk_bytes, SIM_UNLIMITED);
	ck_assert_uint_eq(o->npolicies, 2);
	ck_assert_str_eq(o->plot_path, "out/r.svg");
	ck_assert_int_eq(o->time_source, SIM_TIME_MODEL);
	ck_assert(!o->mapper);
	ck_assert_int_eq(sim_cli_check_budget(o, &err), 0);

	/* Defaults: generated chat, sizes from the machine. */
	ck_assert_int_eq(parse(o, &err, "--backend host --plot none --report r"), 0);
	ck_assert_ptr_null(o->trace_path);
	ck_assert_uint_eq(o->workload.sessions, 400);
	ck_assert_ptr_null(o->plot_path);
	ck_assert_int_eq(o->time_source, SIM_TIME_MEASURED);
	ck_assert(o->mapper);
	ck_assert_int_eq(parse(o, &err, "--report dir.x/report"), 0);
	ck_assert_str_eq(o->plot_path, "dir.x/report.svg");
	ck_assert_int_eq(parse(o, &err, ""), 0);
	ck_assert_int_eq(sim_cli_check_budget(o, &err), 0);
	ck_assert_uint_gt(o->gpu_kv_bytes, 50ull << 30);
	ck_assert_uint_eq(o->host_bytes, 2 * o->gpu_kv_bytes);
	ck_assert_uint_eq(o->disk_bytes, 8 * o->host_bytes);
	ck_assert_int_eq(parse(o, &err, "--help"), 1);
	ck_assert(o->help);

	static const struct {
		const char *args, *msg;
	} bad[] = {
		{"--trace t.jsonl", "--trace needs --format"},
		{"--trace t.jsonl --format sharegpt",
		 "--format: \"sharegpt\" is not mooncake or kvmm"},
		{"--format kvmm", "--format applies to --trace"},
		{"--model gpt-5", "--model: unknown preset \"gpt-5\""},
		{"--machine tpu", "--machine: unknown preset \"tpu\""},
		{"--backend gpu", "--backend: \"gpu\" is not null, host or cuda"},
		{"--gpu-kv-bytes 12X", "--gpu-kv-bytes: \"12X\" is not a size"},
		{"--host-bytes -1", "--host-bytes: \"-1\" is not a size"},
		{"--disk-bytes 99999P", "--disk-bytes: \"99999P\" is too large"},
		{"--policy fastest", "--policy: unknown policy \"fastest\""},
		{"--max-seqs 0", "--max-seqs: \"0\" is not an integer"},
		{"--max-seqs 512 --chunk-tokens 256",
		 "--chunk-tokens 256 is smaller than --max-seqs"},
		{"--time-scale -2", "--time-scale: \"-2\" is not a positive number"},
		{"--mapper maybe", "--mapper: \"maybe\" is not on or off"},
		{"--disk-write sideways", "--disk-write: \"sideways\" is not through or back"},
		{"--layout diagonal", "--layout: \"diagonal\" is not"},
		{"--gpu", "--gpu needs --backend cuda"},
		{"--frobnicate", "unknown option --frobnicate"},
		{"--report", "--report: needs a value"},
		{"extra", "unexpected argument \"extra\""},
		{"--workload chat:turns=0-1", "--workload: turns=A-B needs"},
		{"--trace t --format kvmm --workload chat", "give --trace or --workload, not both"},
		{"--policy gpu-lru --gpu-kv-bytes 1G --max-seqs 4 --chunk-tokens 2",
		 "--chunk-tokens 2"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_lt(parse(o, &err, bad[i].args), 0);
		ck_assert_msg(strstr(err.msg, bad[i].msg), "%s: got \"%s\"", bad[i].args, err.msg);
	}

	/* Budgets the machine or the policies cannot have. */
	static const struct {
		const char *args, *msg;
	} budget[] = {
		{"--gpu-kv-bytes 70G",
		 "--gpu-kv-bytes 70.00 GiB is more than --machine h100 leaves"},
		{"--gpu-kv-bytes 0", "--gpu-kv-bytes: must be > 0"},
		{"--backend host --gpu-kv-bytes unlimited", "a what-if for --backend null only"},
	};
	for (size_t i = 0; i < sizeof(budget) / sizeof(budget[0]); i++) {
		ck_assert_int_eq(parse(o, &err, budget[i].args), 0);
		ck_assert_int_lt(sim_cli_check_budget(o, &err), 0);
		ck_assert_msg(strstr(err.msg, budget[i].msg), "%s: got \"%s\"", budget[i].args,
			      err.msg);
	}
	/* Tier policies need kvmm's tiers; on the null backend they run as
	 * bookkeeping, with sizes (their index has an entry per record). */
	if (sim_tiers_available()) {
		ck_assert_int_eq(parse(o, &err, "--policy gpu-host"), 0);
		ck_assert_int_eq(parse(o, &err, "--policy all"), 0);
		ck_assert_uint_eq(o->npolicies, SIM_POLICY_ALL_N);
		ck_assert_uint_eq(o->skipped_tier_policies, 0);
		ck_assert_int_eq(parse(o, &err, "--gpu-kv-bytes unlimited --policy gpu-host"), 0);
		ck_assert_int_lt(sim_cli_check_budget(o, &err), 0);
		ck_assert_ptr_nonnull(
			strstr(err.msg, "--host-bytes unlimited: the host tier needs"));
		ck_assert_int_eq(
			parse(o, &err,
			      "--host-bytes 1T --disk-bytes unlimited --policy gpu-host-disk"),
			0);
		ck_assert_int_lt(sim_cli_check_budget(o, &err), 0);
		ck_assert_ptr_nonnull(
			strstr(err.msg, "--disk-bytes unlimited: the disk tier needs"));
		ck_assert_int_eq(parse(o, &err, "--host-bytes 1T --disk-bytes 10T --policy all"),
				 0);
		ck_assert_int_eq(sim_cli_check_budget(o, &err), 0);
		ck_assert_int_eq(parse(o, &err, "--gpu-kv-bytes unlimited --policy none,gpu-lru"),
				 0);
		ck_assert_int_eq(sim_cli_check_budget(o, &err), 0); /* no tier: no size needed */
	} else {
		ck_assert_int_lt(parse(o, &err, "--policy gpu-host"), 0);
		ck_assert_ptr_nonnull(strstr(err.msg, "--policy gpu-host: "));
		ck_assert_int_eq(parse(o, &err, "--policy all"), 0);
		ck_assert_uint_eq(o->npolicies, 4); /* none, gpu-lru, gpu-lru:alias, gpu-lru:copy */
		ck_assert_uint_eq(o->skipped_tier_policies, 3);
	}
	if (sim_tiers_available()) {
		ck_assert_int_eq(parse(o, &err, "--backend host --gpu-kv-bytes 1G --policy all"),
				 0);
		ck_assert_uint_eq(o->npolicies, SIM_POLICY_ALL_N);
		ck_assert_int_eq(parse(o, &err,
				       "--backend host --gpu-kv-bytes 1G --host-bytes 0 "
				       "--policy gpu-host"),
				 0);
		ck_assert_int_lt(sim_cli_check_budget(o, &err), 0);
		ck_assert_ptr_nonnull(strstr(err.msg, "--host-bytes 0 leaves no host tier"));
		ck_assert_int_eq(parse(o, &err, "--backend host --gpu-kv-bytes 1G --disk-bytes 0"),
				 0);
		ck_assert_int_lt(sim_cli_check_budget(o, &err), 0);
		ck_assert_ptr_nonnull(strstr(err.msg, "--disk-bytes 0 leaves no disk tier"));
		ck_assert_int_eq(parse(o, &err, "--backend host --gpu-kv-bytes 1G --host-bytes 1P"),
				 0);
		ck_assert_int_lt(sim_cli_check_budget(o, &err), 0);
		ck_assert_ptr_nonnull(strstr(err.msg, "must fit in 3/4 of this machine's RAM"));
	}
	/* Host and disk can be left out when no policy needs them. */
	ck_assert_int_eq(parse(o, &err, "--host-bytes 0 --disk-bytes 0 --policy none,gpu-lru"), 0);
	ck_assert_int_eq(sim_cli_check_budget(o, &err), 0);
	free(o);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sim_model");
	TCase *tc = tcase_create("model");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_generator_shape);
	tcase_add_test(tc, test_generator_seed);
	tcase_add_test(tc, test_generator_arrivals);
	tcase_add_test(tc, test_workload_errors);
	tcase_add_test(tc, test_presets);
	tcase_add_test(tc, test_roofline);
	tcase_add_test(tc, test_stats);
	tcase_add_test(tc, test_policies);
	tcase_add_test(tc, test_cli);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
