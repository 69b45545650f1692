/* SPDX-License-Identifier: MIT */
/*
 * result.h - what one policy's run measured; filled by the engine, read by
 * the report, the table and the plot.
 */
#ifndef KVMM_SIM_RESULT_H
#define KVMM_SIM_RESULT_H

#include <stdint.h>

#include "kvmm.h"
#include "policy.h"
#include "stats.h"

enum sim_tier { SIM_TIER_GPU = 0, SIM_TIER_HOST = 1, SIM_TIER_DISK = 2, SIM_TIERS };

/* Bytes moved, by path. */
enum sim_move {
	SIM_MOVE_GPU_TO_HOST = 0, /* spill */
	SIM_MOVE_HOST_TO_DISK,	  /* spill */
	SIM_MOVE_DISK_TO_HOST,	  /* restore */
	SIM_MOVE_HOST_TO_GPU,	  /* restore */
	SIM_MOVE_ATTACH_COPY,	  /* GPU->GPU copies of attached prefixes */
	SIM_MOVES
};

extern const char *const sim_tier_names[SIM_TIERS];
extern const char *const sim_move_names[SIM_MOVES];

/* Memory by tier at one moment of simulated time. */
struct sim_mem_sample {
	double t;		   /* seconds */
	uint64_t bytes[SIM_TIERS]; /* GPU: KV pages in use; host, disk: used */
	uint64_t gpu_running;	   /* GPU bytes mapped for running sequences */
	uint64_t gpu_cached;	   /* GPU bytes held by the prefix cache */
};

struct sim_result {
	struct sim_policy policy;
	uint32_t requests;
	uint32_t finished;
	uint64_t input_tokens;
	uint64_t output_tokens;
	/* first admission of each request: tokens reused from the cache */
	uint64_t hit_tokens;
	uint64_t hit_by_tier[SIM_TIERS];
	uint64_t computed_tokens;   /* prompt tokens through prefill, recomputes included */
	uint64_t recomputed_tokens; /* of those, after a preemption */
	uint64_t preemptions;
	uint64_t iterations;
	double duration_s;	       /* simulated: time 0 to the last token */
	double compute_s;	       /* simulated: model compute (roofline) */
	double memops_s;	       /* simulated: kvmm calls on the critical path */
	double transfer_s;	       /* simulated: waits for restores */
	double attn_decode_s;	       /* of compute_s: decode attention (--gpu: measured) */
	double attn_decode_roofline_s; /* the roofline's decode attention, same batches */
	struct sim_samples ttft;       /* seconds, one per finished request */
	struct sim_hist itl;	       /* seconds between tokens of a request */
	struct sim_hist e2e;	       /* seconds, arrival to last token */
	uint64_t bytes_moved[SIM_MOVES];
	double kv_util_time; /* integral of bytes_used / bytes_mapped over time */
	double kv_util_span; /* time it was sampled over */
	uint64_t peak[SIM_TIERS];
	struct sim_mem_sample *mem;
	uint32_t nmem, capmem;
	/* conservation checks */
	uint64_t checks;
	uint64_t violations;
	char first_violation[256];
	/* runtime counters at the end */
	uint64_t attach_alias, attach_copy;
	/* what AUTO weighed, ns per page: map + access, unmap, copy (given on
	 * null, measured otherwise: not in the report, which has no wall-clock
	 * figures) */
	uint64_t attach_cost_ns[3];
	uint64_t evictions;
	uint64_t driver_calls; /* backend calls of every kind */
	uint64_t mapper_waits;
	uint64_t idle_waits; /* 1 ms idles: the queue's head waited for memory the mapper frees */
	uint64_t spills_skipped;       /* tiers: evictions not spilled (host pool full) */
	uint64_t tier_verify_failures; /* tiers: records that failed a check */
	uint64_t tier_io_errors;
	bool tiers_on;	       /* the policy ran kvmm's host (and disk) tiers */
	bool tier_bookkeeping; /* kvmm's tiers kept no bytes (null backend): nothing verified */
	/* the cache's geometry */
	char layout[24];
	uint32_t tokens_per_block;
	uint64_t block_bytes;
	double wall_s; /* real time the run took (not in the report) */
};

/* Derived numbers (what the table and the report print). */
struct sim_summary {
	double ttft_p50, ttft_p99, ttft_mean; /* seconds */
	double itl_p50, itl_p99;
	double e2e_p50, e2e_p99;
	double hit_rate; /* hit tokens / input tokens */
	double hit_rate_tier[SIM_TIERS];
	double throughput;	 /* output tokens per simulated second */
	double input_throughput; /* prompt tokens per simulated second */
	double kv_util;		 /* time-average of used / mapped bytes */
};
int sim_result_summarize(const struct sim_result *r, struct sim_summary *s);

void sim_result_init(struct sim_result *r, const struct sim_policy *p);
void sim_result_free(struct sim_result *r);
int sim_result_add_mem(struct sim_result *r, const struct sim_mem_sample *s);
/* Record a failed conservation check (printf-style message). */
void sim_result_violation(struct sim_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* KVMM_SIM_RESULT_H */
