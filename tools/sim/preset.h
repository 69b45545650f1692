/* SPDX-License-Identifier: MIT */
/*
 * preset.h - model and machine presets of kvmm-sim.
 *
 * A model preset is the shape of a transformer (what decides KV bytes per
 * token and compute per token) and its tensor-parallel degree: kvmm-sim
 * simulates one GPU of a TP group, holding kv_heads / tp heads of every
 * layer.  A machine preset is what one GPU offers: memory, peak compute
 * and bandwidths, and the measured costs of kvmm's memory operations.
 * Sources of every number: docs/sim.md.
 */
#ifndef KVMM_SIM_PRESET_H
#define KVMM_SIM_PRESET_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"

struct sim_model {
	const char *name;
	const char *desc;
	uint32_t layers;
	uint32_t q_heads;  /* whole model */
	uint32_t kv_heads; /* whole model */
	uint32_t head_dim;
	uint32_t hidden;
	uint32_t intermediate; /* MLP width (gate, up, down) */
	uint32_t vocab;
	uint32_t tp;	    /* tensor-parallel degree */
	uint32_t elem_size; /* bytes per weight and KV element (bf16: 2) */
	double params;	    /* total parameters */
};

struct sim_machine {
	const char *name;
	const char *desc;
	uint64_t mem_bytes;    /* device memory */
	double mem_util;       /* share the engine may use (vLLM's 0.9) */
	uint64_t act_reserve;  /* activations, graphs, workspace */
	double flops;	       /* dense bf16 FLOP/s */
	double flops_eff;      /* achieved share of flops in GEMMs */
	double mem_bw;	       /* device memory bandwidth, B/s */
	double mem_bw_eff;     /* achieved share when streaming weights */
	double attn_bw_b1;     /* decode attention B/s of KV at batch 1 */
	double attn_bw;	       /* ... at batch >= 8 */
	double link_bw;	       /* per-GPU NVLink B/s (TP all-reduce) */
	double h2d_bw, d2h_bw; /* pinned host <-> device copies, B/s */
	double d2d_bw;	       /* device-to-device copy, B/s of data */
	double disk_read_bw;   /* disk tier, B/s */
	double disk_write_bw;
	double create_us; /* one 2 MiB physical page */
	double map_us;	  /* map + set access of one page */
	double unmap_us;
	double iter_overhead_us; /* fixed cost per engine iteration */
};

/* Per-GPU figures derived from a model. */
struct sim_model_gpu {
	uint32_t q_heads, kv_heads; /* on one GPU */
	uint64_t kv_bytes_per_token;
	uint64_t weight_bytes;	 /* on one GPU */
	double linear_flops_tok; /* matmul FLOPs per token, one GPU */
	double lm_head_flops;	 /* per sampled token */
};

/* The presets (NULL-terminated lists for --help). */
extern const struct sim_model *const sim_models[];
extern const struct sim_machine *const sim_machines[];

const struct sim_model *sim_model_find(const char *name);
/* "this machine" is measured from sysconf and /proc: filled into *buf. */
const struct sim_machine *sim_machine_find(const char *name, struct sim_machine *buf);

void sim_model_per_gpu(const struct sim_model *m, struct sim_model_gpu *g);

/*
 * What attaching a cached prefix costs per page of page_size bytes on g, in
 * ns (at least 1 each): map + set access, unmap, and a device copy of the
 * page.  The prefix cache's AUTO rule weighs these on the null backend,
 * whose own maps and copies are bookkeeping.
 */
void sim_machine_attach_costs(const struct sim_machine *g, uint64_t page_size, uint64_t *map_ns,
			      uint64_t *unmap_ns, uint64_t *copy_ns);

/*
 * KV bytes one GPU can give the cache: mem * util - weights - activations.
 * -ENOSPC (with a message) when the model does not fit.
 */
int sim_kv_capacity(const struct sim_model *m, const struct sim_machine *g, uint64_t *bytes,
		    struct sim_err *err);

/* One line per preset (for --help and --list-presets). */
void sim_presets_print(FILE *f);

#endif /* KVMM_SIM_PRESET_H */
