// SPDX-License-Identifier: MIT
/*
 * kvmm-bench: kvmm's benchmarks.
 *   kvmm-bench [--json FILE] [--quick] [GROUP [ARGS...]]
 * Without GROUP, runs every group.  Exit status 0 when every group that ran
 * succeeded (a group with nothing to measure on this machine skips).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

extern const struct bench_group __start_kvmm_bench[];
extern const struct bench_group __stop_kvmm_bench[];

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(double *v, int n)
{
	if (n <= 0)
		return NAN;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_header(const char *title)
{
	printf("\n## %s\n", title);
	printf("%-28s %-30s %14s %-8s %-26s %14s %8s\n", "bench", "metric", "value", "unit",
	       "baseline", "baseline_val", "ratio");
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

void bench_result_ratio(struct bench_ctx *ctx, const char *bench, const char *metric, double value,
			const char *unit, const char *baseline, double baseline_value, double ratio)
{
	printf("%-28s %-30s %14.4g %-8s %-26s ", bench, metric, value, unit ? unit : "",
	       baseline ? baseline : "-");
	if (baseline)
		printf("%14.4g %8.3f\n", baseline_value, ratio);
	else
		printf("%14s %8s\n", "-", "-");
	fflush(stdout);
	if (!ctx->json)
		return;
	fputs("{\"bench\":", ctx->json);
	json_str(ctx->json, bench);
	fputs(",\"metric\":", ctx->json);
	json_str(ctx->json, metric);
	fputs(",\"value\":", ctx->json);
	json_num(ctx->json, value);
	fputs(",\"unit\":", ctx->json);
	json_str(ctx->json, unit ? unit : "");
	fputs(",\"baseline\":", ctx->json);
	if (baseline)
		json_str(ctx->json, baseline);
	else
		fputs("null", ctx->json);
	fputs(",\"baseline_value\":", ctx->json);
	if (baseline)
		json_num(ctx->json, baseline_value);
	else
		fputs("null", ctx->json);
	fputs(",\"ratio\":", ctx->json);
	if (baseline)
		json_num(ctx->json, ratio);
	else
		fputs("null", ctx->json);
	fputs(",\"machine\":", ctx->json);
	json_str(ctx->json, ctx->machine);
	fputs(",\"date\":", ctx->json);
	json_str(ctx->json, ctx->date);
	fputs("}\n", ctx->json);
	fflush(ctx->json);
}

void bench_result(struct bench_ctx *ctx, const char *bench, const char *metric, double value,
		  const char *unit, const char *baseline, double baseline_value)
{
	double ratio = baseline && baseline_value != 0 ? value / baseline_value : NAN;

	bench_result_ratio(ctx, bench, metric, value, unit, baseline, baseline_value, ratio);
}

void bench_add_machine(struct bench_ctx *ctx, const char *extra)
{
	size_t n = strlen(ctx->machine);

	snprintf(ctx->machine + n, sizeof(ctx->machine) - n, " + %s", extra);
}

static void describe_machine(struct bench_ctx *ctx)
{
	const char *env = getenv("KVMM_BENCH_MACHINE");
	char model[96] = "unknown cpu";
	FILE *f;

	if (env) {
		snprintf(ctx->machine, sizeof(ctx->machine), "%s", env);
		return;
	}
	f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[256];

		while (fgets(line, sizeof(line), f)) {
			char *c = strchr(line, ':');

			if (!strncmp(line, "model name", 10) && c) {
				c += 2;
				c[strcspn(c, "\n")] = 0;
				snprintf(model, sizeof(model), "%s", c);
				break;
			}
		}
		fclose(f);
	}
	snprintf(ctx->machine, sizeof(ctx->machine), "%s, %ld cores", model,
		 sysconf(_SC_NPROCESSORS_ONLN));
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kvmm-bench [--json FILE] [--quick] [GROUP [ARGS...]]\ngroups:\n");
	for (const struct bench_group *g = __start_kvmm_bench; g < __stop_kvmm_bench; g++)
		fprintf(f, "  %-10s %s\n", g->name, g->desc);
}

int main(int argc, char **argv)
{
	struct bench_ctx ctx = {0};
	const char *only = NULL;
	time_t t = time(NULL);
	int i, failed = 0, ran = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			ctx.json = fopen(argv[++i], "a");
			if (!ctx.json) {
				fprintf(stderr, "kvmm-bench: --json %s: %s\n", argv[i],
					strerror(errno));
				return 2;
			}
		} else if (!strcmp(argv[i], "--quick")) {
			ctx.quick = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "kvmm-bench: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		} else {
			only = argv[i++];
			break;
		}
	}
	ctx.argc = argc - i;
	ctx.argv = argv + i;
	describe_machine(&ctx);
	strftime(ctx.date, sizeof(ctx.date), "%Y-%m-%d", gmtime(&t));

	for (const struct bench_group *g = __start_kvmm_bench; g < __stop_kvmm_bench; g++) {
		int ret;

		if (only && strcmp(only, g->name))
			continue;
		ran++;
		printf("# kvmm-bench %s (%s) on %s, %s\n", g->name, g->desc, ctx.machine, ctx.date);
		ret = g->run(&ctx);
		if (ret == 77)
			printf("# %s: skipped\n", g->name);
		else if (ret)
			failed++, printf("# %s: FAILED (%d)\n", g->name, ret);
	}
	if (only && !ran) {
		fprintf(stderr, "kvmm-bench: unknown group '%s'\n", only);
		usage(stderr);
		return 2;
	}
	if (ctx.json)
		fclose(ctx.json);
	return failed ? 1 : 0;
}
