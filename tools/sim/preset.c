// SPDX-License-Identifier: MIT
/*
 * preset.c - model and machine presets.  The numbers and where they come
 * from are listed in docs/sim.md ("Presets").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preset.h"

#define GiB (1024.0 * 1024 * 1024)

/* Meta's published configs (config.json of each model). */
static const struct sim_model llama3_8b = {
	.name = "llama3-8b",
	.desc = "Llama-3-8B, bf16, 1 GPU",
	.layers = 32,
	.q_heads = 32,
	.kv_heads = 8,
	.head_dim = 128,
	.hidden = 4096,
	.intermediate = 14336,
	.vocab = 128256,
	.tp = 1,
	.elem_size = 2,
	.params = 8.03e9,
};

static const struct sim_model llama3_70b_tp8 = {
	.name = "llama3-70b-tp8",
	.desc = "Llama-3-70B, bf16, tensor-parallel over 8 GPUs (one simulated)",
	.layers = 80,
	.q_heads = 64,
	.kv_heads = 8,
	.head_dim = 128,
	.hidden = 8192,
	.intermediate = 28672,
	.vocab = 128256,
	.tp = 8,
	.elem_size = 2,
	.params = 70.55e9,
};

static const struct sim_model llama32_1b = {
	.name = "llama3.2-1b",
	.desc = "Llama-3.2-1B (the small model), bf16, 1 GPU",
	.layers = 16,
	.q_heads = 32,
	.kv_heads = 8,
	.head_dim = 64,
	.hidden = 2048,
	.intermediate = 8192,
	.vocab = 128256,
	.tp = 1,
	.elem_size = 2,
	.params = 1.24e9,
};

const struct sim_model *const sim_models[] = {&llama3_8b, &llama3_70b_tp8, &llama32_1b, NULL};

/*
 * H100 SXM 80GB: datasheet peaks (989 TFLOP/s dense bf16, 3.35 TB/s HBM3,
 * 450 GB/s NVLink per direction); copy, attention and VMM call costs as
 * measured on the project's H100 (brief, bench/RESULTS.md); disk: one PCIe
 * Gen4 NVMe drive.
 */
static const struct sim_machine h100 = {
	.name = "h100",
	.desc = "NVIDIA H100 SXM 80GB + one Gen4 NVMe",
	.mem_bytes = 81559ull << 20,
	.mem_util = 0.90,
	.act_reserve = 2ull << 30,
	.flops = 989e12,
	.flops_eff = 0.65,
	.mem_bw = 3.35e12,
	.mem_bw_eff = 0.90,
	.attn_bw_b1 = 0.5e12,
	.attn_bw = 3.0e12,
	.link_bw = 450e9,
	.h2d_bw = 53e9,
	.d2h_bw = 53e9,
	.d2d_bw = 1.5e12,
	.disk_read_bw = 6.5e9,
	.disk_write_bw = 5.0e9,
	.create_us = 8.7,
	.map_us = 26.5,
	.unmap_us = 15.6,
	.iter_overhead_us = 0,
};

const struct sim_machine *const sim_machines[] = {&h100, NULL};

static double cpu_mhz(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	double mhz = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "cpu MHz", 7)) {
			char *c = strchr(line, ':');

			mhz = c ? atof(c + 1) : 0;
			break;
		}
	fclose(f);
	return mhz;
}

static int cpu_has(const char *flag)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		for (char *p = strstr(line, flag); p; p = strstr(p + 1, flag))
			if (p[-1] == ' ' && (p[strlen(flag)] == ' ' || p[strlen(flag)] == '\n'))
				found = 1;
		break;
	}
	fclose(f);
	return found;
}

/*
 * This machine, with its CPU as the "GPU" and the host backend's memfd
 * pages as device memory: cores and clock from /proc, FLOP/s from the
 * vector width, bandwidths as conservative estimates per core; VMM call
 * costs as measured by kvmm-bench backend on the dev machine.  Not measured
 * at run time, so that one machine always gives the same report.
 */
static void local_machine(struct sim_machine *g)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	double mhz = cpu_mhz(), per_cycle = 8;

	if (cores < 1)
		cores = 1;
	if (mhz <= 0)
		mhz = 2000;
	if (cpu_has("avx512f"))
		per_cycle = 64;
	else if (cpu_has("avx2") && cpu_has("fma"))
		per_cycle = 32;
	memset(g, 0, sizeof(*g));
	g->name = "local";
	g->desc = "this machine: the CPU as device, RAM as device memory (estimates)";
	g->mem_bytes = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 8ull << 30;
	g->mem_util = 0.50;
	g->act_reserve = 1ull << 30;
	g->flops = (double)cores * mhz * 1e6 * per_cycle;
	g->flops_eff = 0.50;
	g->mem_bw = (double)cores * 8e9;
	g->mem_bw_eff = 0.80;
	g->attn_bw_b1 = g->mem_bw * 0.5;
	g->attn_bw = g->mem_bw * 0.8;
	g->link_bw = g->mem_bw;
	g->h2d_bw = g->d2h_bw = g->d2d_bw = (double)cores * 4e9;
	g->disk_read_bw = 1.0e9;
	g->disk_write_bw = 0.8e9;
	g->create_us = 458;
	g->map_us = 6.1;
	g->unmap_us = 4.3;
	g->iter_overhead_us = 0;
}

const struct sim_model *sim_model_find(const char *name)
{
	for (int i = 0; name && sim_models[i]; i++)
		if (!strcmp(sim_models[i]->name, name))
			return sim_models[i];
	return NULL;
}

const struct sim_machine *sim_machine_find(const char *name, struct sim_machine *buf)
{
	if (name && !strcmp(name, "local")) {
		local_machine(buf);
		return buf;
	}
	for (int i = 0; name && sim_machines[i]; i++)
		if (!strcmp(sim_machines[i]->name, name))
			return sim_machines[i];
	return NULL;
}

static uint64_t ns_of(double us)
{
	return us * 1e3 < 1 ? 1 : (uint64_t)(us * 1e3 + 0.5);
}

void sim_machine_attach_costs(const struct sim_machine *g, uint64_t page_size, uint64_t *map_ns,
			      uint64_t *unmap_ns, uint64_t *copy_ns)
{
	*map_ns = ns_of(g->map_us);
	*unmap_ns = ns_of(g->unmap_us);
	*copy_ns = ns_of(g->d2d_bw > 0 ? (double)page_size / g->d2d_bw * 1e6 : 0);
}

void sim_model_per_gpu(const struct sim_model *m, struct sim_model_gpu *g)
{
	uint32_t tp = m->tp ? m->tp : 1;
	double qd, kvd, layer;

	g->q_heads = m->q_heads / tp ? m->q_heads / tp : 1;
	/* With more GPUs than KV heads, each GPU keeps a replica of one. */
	g->kv_heads = m->kv_heads / tp ? m->kv_heads / tp : 1;
	g->kv_bytes_per_token =
		2ull * m->layers * g->kv_heads * m->head_dim * (uint64_t)m->elem_size;
	g->weight_bytes = (uint64_t)(m->params * m->elem_size / tp);
	qd = (double)g->q_heads * m->head_dim;
	kvd = (double)g->kv_heads * m->head_dim;
	/* q, k, v, o projections and the gated MLP, sharded over tp. */
	layer = (double)m->hidden * (qd + 2 * kvd) + qd * m->hidden +
		3.0 * m->hidden * m->intermediate / tp;
	g->linear_flops_tok = 2.0 * m->layers * layer;
	g->lm_head_flops = 2.0 * m->hidden * (double)m->vocab / tp;
}

int sim_kv_capacity(const struct sim_model *m, const struct sim_machine *g, uint64_t *bytes,
		    struct sim_err *err)
{
	struct sim_model_gpu mg;
	double usable = (double)g->mem_bytes * g->mem_util, left;

	sim_model_per_gpu(m, &mg);
	left = usable - (double)mg.weight_bytes - (double)g->act_reserve;
	if (left < 64.0 * (1 << 20))
		return sim_errf(
			err, -ENOSPC,
			"--model %s does not fit --machine %s: %.1f GiB usable, %.1f GiB of "
			"weights per GPU",
			m->name, g->name, usable / GiB, mg.weight_bytes / GiB);
	*bytes = (uint64_t)left;
	return 0;
}

void sim_presets_print(FILE *f)
{
	struct sim_machine local;
	struct sim_model_gpu mg;

	fprintf(f, "models (--model):\n");
	for (int i = 0; sim_models[i]; i++) {
		sim_model_per_gpu(sim_models[i], &mg);
		fprintf(f, "  %-15s %s; KV %llu KiB/token/GPU, weights %.1f GiB/GPU\n",
			sim_models[i]->name, sim_models[i]->desc,
			(unsigned long long)(mg.kv_bytes_per_token >> 10), mg.weight_bytes / GiB);
	}
	fprintf(f, "machines (--machine):\n");
	for (int i = 0; sim_machines[i]; i++)
		fprintf(f, "  %-15s %s; %.0f GiB\n", sim_machines[i]->name, sim_machines[i]->desc,
			sim_machines[i]->mem_bytes / GiB);
	sim_machine_find("local", &local);
	fprintf(f, "  %-15s %s; %.0f GiB, %.2f TFLOP/s\n", local.name, local.desc,
		local.mem_bytes / GiB, local.flops / 1e12);
}
