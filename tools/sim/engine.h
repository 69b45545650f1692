/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the simulated serving engine: a continuous-batching scheduler
 * (vLLM/SGLang style) that drives kvmm's real cache, prefix cache and tiers
 * while a virtual clock advances by the roofline compute time of each
 * iteration plus the time of kvmm's memory operations.
 *
 * One iteration: release arrived requests into a FIFO queue; hint (and
 * prefetch) the prefixes of the first queued requests (look-ahead
 * policies); schedule one token for every decoding sequence and prefill
 * chunks within a token budget (chunked prefill), admitting queued requests
 * in order while KV memory and sequence slots last (prefix match and attach
 * at admission); grow the batch with kvmm_step, evicting cached prefixes
 * and then preempting the newest sequence when memory runs out (recompute
 * on re-admission); charge the time; emit tokens; publish finished prefixes
 * to the prefix cache.
 */
#ifndef KVMM_SIM_ENGINE_H
#define KVMM_SIM_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "kvmm.h"
#include "policy.h"
#include "preset.h"
#include "result.h"
#include "trace.h"

/* Where the time of memory operations comes from. */
enum sim_time_source {
	SIM_TIME_MODEL = 0,    /* driver calls and bytes priced by the machine preset */
	SIM_TIME_MEASURED = 1, /* wall time of kvmm's calls on this backend */
};

typedef void (*sim_progress_fn)(void *arg, const struct sim_policy *p, uint32_t done,
				uint32_t total, double sim_s);

struct sim_engine_cfg {
	const struct sim_trace *trace;
	const struct sim_model *model;
	const struct sim_machine *machine;
	enum kvmm_backend_type backend;
	uint64_t gpu_kv_bytes;
	uint64_t host_bytes; /* 0: no host tier; SIM_UNLIMITED allowed */
	uint64_t disk_bytes;
	const char *disk_dir;
	bool disk_write_through; /* host -> disk at once, not when leaving the host pool */
	enum kvmm_layout layout;
	enum sim_time_source time_source;
	bool mapper;		  /* background mapper thread (host/cuda) */
	bool gpu_kernels;	  /* decode attention timed on kvmm's kernels (--gpu) */
	uint32_t max_seqs;	  /* running sequences (vLLM max_num_seqs) */
	uint32_t chunk_tokens;	  /* token budget per iteration (chunked prefill) */
	uint32_t lookahead;	  /* queued requests hinted by look-ahead policies */
	double sample_interval_s; /* memory samples for the plot */
	double time_scale;	  /* arrival times divided by this (speed-up) */
	sim_progress_fn progress;
	void *progress_arg;
};

/* Defaults for everything but trace, presets and sizes. */
void sim_engine_defaults(struct sim_engine_cfg *cfg);

/*
 * Replay the trace under one policy on a fresh cache.  0 with res filled
 * (conservation violations are recorded in res, not returned); negative
 * errno with a message when the run cannot proceed (budget cannot hold a
 * request, backend unavailable, kvmm error).
 */
int sim_engine_run(const struct sim_engine_cfg *cfg, const struct sim_policy *p,
		   struct sim_result *res, struct sim_err *err);

#endif /* KVMM_SIM_ENGINE_H */
