// SPDX-License-Identifier: MIT
/*
 * plot.c - gnuplot output (see report.h): the TTFT CDF per policy (log
 * time axis) and memory by tier over simulated time per policy.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "report.h"

extern char **environ;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One gnuplot data block per policy ("index i"). */
static int write_data(const char *ttft, const char *mem, const struct sim_result *res, uint32_t n)
{
	FILE *f = fopen(ttft, "w"), *g = fopen(mem, "w");
	int ret = 0;

	if (!f || !g) {
		ret = -errno;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct sim_result *r = &res[i];
		double *v = malloc(sizeof(*v) * (r->ttft.n + 1));

		if (!v) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(v, r->ttft.v, sizeof(*v) * r->ttft.n);
		qsort(v, r->ttft.n, sizeof(*v), cmp_double);
		fprintf(f, "# %s: ttft_ms cdf\n", r->policy.name);
		for (size_t k = 0; k < r->ttft.n; k++)
			fprintf(f, "%.6g %.6g\n", v[k] * 1e3, (double)(k + 1) / (double)r->ttft.n);
		fprintf(f, "\n\n");
		free(v);
		fprintf(g, "# %s: t_s gpu_gb host_gb disk_gb gpu_cached_gb\n", r->policy.name);
		for (uint32_t k = 0; k < r->nmem; k++) {
			const struct sim_mem_sample *s = &r->mem[k];

			fprintf(g, "%.3f %.4f %.4f %.4f %.4f\n", s->t, s->bytes[0] / 1e9,
				s->bytes[1] / 1e9, s->bytes[2] / 1e9, s->gpu_cached / 1e9);
		}
		fprintf(g, "\n\n");
	}
	if (ferror(f) || ferror(g))
		ret = -EIO;
out:
	if (f && fclose(f) && !ret)
		ret = -EIO;
	if (g && fclose(g) && !ret)
		ret = -EIO;
	return ret;
}

/* One panel: a line per policy from column y of its data block, and with
 * y2 > 0 a thin dashed line of the same colour from column y2. */
static void panel(FILE *f, const char *data, const struct sim_result *res, uint32_t n, int x, int y,
		  int y2)
{
	fputs("plot ", f);
	for (uint32_t i = 0; i < n; i++) {
		fprintf(f, "%s'%s' index %u using %d:%d with lines lw 2 lc %u title '%s'",
			i ? ", \\\n     " : "", data, i, x, y, i + 1, res[i].policy.name);
		if (y2 > 0)
			fprintf(f, ", '%s' index %u using %d:%d with lines lw 1 lc %u dt 2 notitle",
				data, i, x, y2, i + 1);
	}
	fputs("\n", f);
}

int sim_plot(const char *path, const struct sim_result *res, uint32_t n, struct sim_err *err)
{
	char ttft[4096], mem[4096], gp[4096], log[4096];
	posix_spawn_file_actions_t fa;
	const char *ext = strrchr(path, '.');
	bool png = ext && !strcmp(ext, ".png");
	char *argv[] = {"gnuplot", gp, NULL};
	pid_t pid;
	FILE *f;
	int ret, status;

	if (snprintf(ttft, sizeof(ttft), "%s.ttft.dat", path) >= (int)sizeof(ttft) ||
	    snprintf(mem, sizeof(mem), "%s.mem.dat", path) >= (int)sizeof(mem) ||
	    snprintf(gp, sizeof(gp), "%s.gp", path) >= (int)sizeof(gp) ||
	    snprintf(log, sizeof(log), "%s.log", path) >= (int)sizeof(log))
		return sim_errf(err, -ENAMETOOLONG, "--plot: path too long");
	ret = write_data(ttft, mem, res, n);
	if (ret)
		return sim_errf(err, ret, "--plot %s: writing the data: %s", path, strerror(-ret));
	f = fopen(gp, "w");
	if (!f)
		return sim_errf(err, -errno, "--plot %s: %s", gp, strerror(errno));
	fprintf(f, "# kvmm-sim plot: gnuplot %s\n", gp);
	if (png)
		fprintf(f, "set terminal png size 1200,1100\n");
	else
		fprintf(f, "set terminal svg size 1200,1100 dynamic background '#ffffff'\n");
	fprintf(f, "set output '%s'\n", path);
	fprintf(f, "set multiplot layout 3,1\nset grid\nset key outside right\n");
	fprintf(f, "set title 'TTFT CDF per policy'\nset logscale x\nset xlabel 'TTFT (ms)'\n"
		   "set ylabel 'fraction of requests'\nset yrange [0:1]\n");
	panel(f, ttft, res, n, 1, 2, 0);
	fprintf(f, "unset logscale x\nset yrange [0:*]\nset xlabel 'simulated time (s)'\n"
		   "set ylabel 'GB'\nset title 'GPU KV memory in use (solid: all; dashed: "
		   "prefix cache)'\n");
	panel(f, mem, res, n, 1, 2, 5);
	fprintf(f, "set title 'host tier (solid) and disk tier (dashed) in use'\n");
	panel(f, mem, res, n, 1, 3, 4);
	fputs("unset multiplot\n", f);
	if (fclose(f))
		return sim_errf(err, -EIO, "--plot %s: write error", gp);
	/* gnuplot's chatter (warnings about empty panels) goes to a log. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	ret = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret)
		return sim_errf(err, -ENOENT, "gnuplot not found: data in %s and %s, script %s",
				ttft, mem, gp);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return sim_errf(err, -EIO, "gnuplot %s failed", gp);
	if (WEXITSTATUS(status) == 127)
		return sim_errf(err, -ENOENT, "gnuplot not found: data in %s and %s, script %s",
				ttft, mem, gp);
	if (WEXITSTATUS(status))
		return sim_errf(err, -EIO, "gnuplot %s exited with %d (see %s)", gp,
				WEXITSTATUS(status), log);
	return 0;
}
