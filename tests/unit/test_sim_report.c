// SPDX-License-Identifier: MIT
/* test_sim_report.c - kvmm-sim's report.json contract, tables and plot. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tools/sim/json.h"
#include "tools/sim/report.h"

static void fake(struct sim_result *r, const char *name, uint64_t hit, int violations)
{
	struct sim_policy p;
	struct sim_err err = {0};

	ck_assert_int_eq(sim_policy_parse(name, &p, &err), 0);
	sim_result_init(r, &p);
	r->requests = r->finished = 100;
	r->input_tokens = 10000;
	r->output_tokens = 2000;
	r->hit_tokens = hit;
	r->hit_by_tier[SIM_TIER_GPU] = hit / 2;
	r->hit_by_tier[SIM_TIER_HOST] = hit / 4;
	r->hit_by_tier[SIM_TIER_DISK] = hit - hit / 2 - hit / 4;
	r->duration_s = 20;
	r->bytes_moved[SIM_MOVE_GPU_TO_HOST] = 3ull << 30;
	for (int i = 1; i <= 100; i++)
		sim_samples_add(&r->ttft, i * 0.01); /* 10 ms .. 1 s */
	for (int i = 1; i <= 1000; i++)
		sim_hist_add(&r->itl, 0.005);
	r->checks = 1234;
	if (violations)
		sim_result_violation(r, "memory over budget by %d bytes", violations);
	for (int i = 0; i < 5; i++) {
		struct sim_mem_sample s = {.t = i, .bytes = {1ull << 30, 2ull << 30, 0}};

		ck_assert_int_eq(sim_result_add_mem(r, &s), 0);
	}
}

static void options(struct sim_options *o)
{
	/* (an unlimited disk needs policies without a disk tier) */
	char *args[] = {"kvmm-sim", "--gpu-kv-bytes",	     "8G", "--disk-bytes", "unlimited",
			"--policy", "none,gpu-lru,gpu-host", NULL};
	struct sim_err err = {0};

	ck_assert_int_eq(sim_cli_parse(7, args, o, &err), 0);
	ck_assert_int_eq(sim_cli_check_budget(o, &err), 0);
}

/* Find key in the object at j's position and leave j at its value. */
static int seek(struct sim_json *j, const char *key)
{
	const char *k;
	size_t kl;
	int r;

	if (sim_json_obj_begin(j))
		return -1;
	while ((r = sim_json_obj_next(j, &k, &kl)) > 0) {
		if (sim_json_key_is(k, kl, key))
			return 0;
		if (sim_json_skip(j))
			return -1;
	}
	return -1;
}

static double num_at(const char *obj, size_t len, const char *path)
{
	struct sim_json j;
	char buf[128], *save = NULL;
	double v;

	sim_json_init(&j, obj, len);
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
		ck_assert_msg(seek(&j, k) == 0, "no %s in %s", k, path);
	ck_assert_int_eq(sim_json_number(&j, &v), 0);
	return v;
}

START_TEST(test_report_contract)
{
	struct sim_options o;
	struct sim_trace t;
	struct sim_result r[2];
	char *buf = NULL, name[64];
	size_t len = 0;
	struct sim_json j;
	FILE *f;
	int n = 0, k;

	options(&o);
	sim_trace_init(&t, SIM_FMT_KVMM);
	ck_assert_int_eq(sim_workload_generate(&o.workload, &t, &(struct sim_err){0}), 0);
	fake(&r[0], "none", 0, 0);
	fake(&r[1], "lookahead:copy", 4000, 0);
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(sim_report_write(f, &o, &t, r, 2), 0);
	fclose(f);

	/* Valid JSON as a whole. */
	sim_json_init(&j, buf, len);
	ck_assert_int_eq(sim_json_skip(&j), 0);
	ck_assert_int_eq(sim_json_finish(&j), 0);
	ck_assert_int_eq(num_at(buf, len, "budgets.gpu_kv_bytes"), 8ull << 30);
	ck_assert_ptr_nonnull(strstr(buf, "\"disk_bytes\": \"unlimited\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"backend\": \"null\""));

	/* policies[]: every field of the contract, with the right values. */
	sim_json_init(&j, buf, len);
	ck_assert_int_eq(seek(&j, "policies"), 0);
	ck_assert_int_eq(sim_json_arr_begin(&j), 0);
	while ((k = sim_json_arr_next(&j)) > 0) {
		size_t start = j.pos;
		const char *obj;

		ck_assert_int_eq(sim_json_skip(&j), 0);
		obj = buf + start;
		len = j.pos - start;
		{
			struct sim_json jj;

			sim_json_init(&jj, obj, len);
			ck_assert_int_eq(seek(&jj, "name"), 0);
			ck_assert_int_eq(sim_json_string(&jj, name, sizeof(name)), 0);
		}
		ck_assert_str_eq(name, n ? "lookahead:copy" : "none");
		ck_assert(num_at(obj, len, "requests") == 100);
		ck_assert(num_at(obj, len, "input_tokens") == 10000);
		ck_assert(num_at(obj, len, "hit_tokens") == (n ? 4000 : 0));
		ck_assert(fabs(num_at(obj, len, "hit_rate") - (n ? 0.4 : 0)) < 1e-12);
		ck_assert(num_at(obj, len, "hit_tokens_by_tier.gpu") == (n ? 2000 : 0));
		ck_assert(num_at(obj, len, "hit_tokens_by_tier.host") == (n ? 1000 : 0));
		ck_assert(num_at(obj, len, "hit_tokens_by_tier.disk") == (n ? 1000 : 0));
		/* nearest rank over 10..1000 ms: p50 = 500 ms, p99 = 990 ms */
		ck_assert(fabs(num_at(obj, len, "ttft_ms.p50") - 500) < 1e-6);
		ck_assert(fabs(num_at(obj, len, "ttft_ms.p99") - 990) < 1e-6);
		ck_assert(fabs(num_at(obj, len, "ttft_ms.mean") - 505) < 1e-6);
		ck_assert(fabs(num_at(obj, len, "itl_ms.p50") - 5) < 0.05);
		ck_assert(num_at(obj, len, "throughput_tok_s") == 100);
		ck_assert(num_at(obj, len, "bytes_moved.gpu_to_host") == 3ull << 30);
		ck_assert(num_at(obj, len, "peak_bytes.host") == 2ull << 30);
		ck_assert(num_at(obj, len, "conservation.checks") == 1234);
		ck_assert(num_at(obj, len, "conservation.violations") == 0);
		n++;
	}
	ck_assert_int_eq(k, 0);
	ck_assert_int_eq(n, 2);
	free(buf);
	for (int i = 0; i < 2; i++)
		sim_result_free(&r[i]);
	sim_trace_free(&t);
}
END_TEST

START_TEST(test_table_and_plot)
{
	struct sim_result r[2];
	struct sim_err err = {0};
	char *buf = NULL, dir[] = "/tmp/kvmm-sim-plot-XXXXXX", path[256], gp[300];
	size_t len = 0;
	struct stat st;
	FILE *f;
	int ret;

	fake(&r[0], "none", 0, 0);
	fake(&r[1], "gpu-lru", 4000, 7);
	f = open_memstream(&buf, &len);
	sim_table_print(f, r, 2);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "none"));
	ck_assert_ptr_nonnull(strstr(buf, "gpu-lru"));
	ck_assert_ptr_nonnull(strstr(buf, "500.0 ms")); /* TTFT p50 */
	ck_assert_ptr_nonnull(strstr(buf, "FAIL"));	/* the violation shows */
	ck_assert_ptr_nonnull(strstr(buf, "40.0"));	/* hit % */
	ck_assert_str_eq(r[1].first_violation, "memory over budget by 7 bytes");
	free(buf);

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/p.svg", dir);
	ret = sim_plot(path, r, 2, &err);
	snprintf(gp, sizeof(gp), "%s.gp", path);
	ck_assert_int_eq(stat(gp, &st), 0); /* the script is always written */
	if (ret == -ENOENT) {
		printf("gnuplot not installed: plot not drawn (%s)\n", err.msg);
	} else {
		ck_assert_msg(ret == 0, "%s", err.msg);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_gt(st.st_size, 1000);
		unlink(path);
	}
	unlink(gp);
	snprintf(gp, sizeof(gp), "%s.ttft.dat", path);
	unlink(gp);
	snprintf(gp, sizeof(gp), "%s.mem.dat", path);
	unlink(gp);
	snprintf(gp, sizeof(gp), "%s.log", path);
	unlink(gp);
	rmdir(dir);
	for (int i = 0; i < 2; i++)
		sim_result_free(&r[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sim_report");
	TCase *tc = tcase_create("report");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_report_contract);
	tcase_add_test(tc, test_table_and_plot);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
