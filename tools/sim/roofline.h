/* SPDX-License-Identifier: MIT */
/*
 * roofline.h - compute time of one engine iteration from the model's shape
 * and the machine's peaks.
 *
 * An iteration runs some new tokens (prefill chunks and one token per
 * decoding sequence) through every layer.  Each part costs the larger of
 * its FLOPs over the achieved FLOP rate and its bytes over the achieved
 * bandwidth:
 *   linear:    new_tokens * linear_flops_tok (+ LM head per sampled token)
 *              vs. the weights streamed once per iteration;
 *   attention: 4 * layers * q_heads * head_dim FLOPs per (query, key) pair
 *              vs. the KV read (decode attention at the measured kernel
 *              bandwidth, interpolated between batch 1 and batch 8);
 *   TP:        two all-reduces per layer of the new tokens' activations.
 * Formulas and sources: docs/sim.md.
 */
#ifndef KVMM_SIM_ROOFLINE_H
#define KVMM_SIM_ROOFLINE_H

#include <stdint.h>

#include "preset.h"

struct sim_work {
	uint64_t new_tokens;	  /* tokens through the model */
	uint32_t sampled;	  /* sequences producing a token (LM head) */
	uint32_t decode_seqs;	  /* sequences with one new token */
	double decode_pairs;	  /* (query, key) pairs of decode tokens */
	double decode_kv_tokens;  /* KV tokens read by decode attention */
	double prefill_pairs;	  /* (query, key) pairs of prefill chunks */
	double prefill_kv_tokens; /* KV tokens read by prefill chunks */
};

struct sim_time_parts {
	double linear_s;
	double attn_s;	      /* decode and prefill attention */
	double attn_decode_s; /* of which decode (what --gpu measures) */
	double comm_s;
	double overhead_s;
};

/* Add one sequence that runs q new tokens and has ctx tokens after them
 * (q == 1: a decode step).  sampled: it produces a token this iteration. */
void sim_work_add(struct sim_work *w, uint32_t q, uint32_t ctx, int sampled);

/* Seconds for the iteration; parts (may be NULL) gets the split. */
double sim_roofline(const struct sim_model *m, const struct sim_machine *g,
		    const struct sim_work *w, struct sim_time_parts *parts);

/* Decode attention bandwidth at a batch of b sequences. */
double sim_attn_bw(const struct sim_machine *g, uint32_t b);

#endif /* KVMM_SIM_ROOFLINE_H */
