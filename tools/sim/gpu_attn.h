/* SPDX-License-Identifier: MIT */
/*
 * gpu_attn.h - `--gpu`: decode attention time from kvmm's own kernels.
 *
 * On the CUDA backend, each iteration's decode attention runs for real:
 * kvmm_attn_decode over the cache's layer-0 views, for the batch's decoding
 * sequences at their new lengths, timed with CUDA events; the time times
 * the number of layers replaces the roofline's decode-attention term (all
 * layers have the same shape and the same lengths).  The KV bytes are
 * whatever the pages hold (the simulator writes none): the time of the
 * kernel does not depend on them.
 */
#ifndef KVMM_SIM_GPU_ATTN_H
#define KVMM_SIM_GPU_ATTN_H

#include <stdint.h>

#include "err.h"
#include "kvmm.h"
#include "preset.h"

struct sim_gpu_attn;

/* -ENOTSUP (with a message) without CUDA kernels or on another backend. */
int sim_gpu_attn_open(struct sim_gpu_attn **out, struct kvmm_backend *be, struct kvmm_cache *c,
		      const struct sim_model *m, uint32_t max_seqs, struct sim_err *err);
/* Seconds of decode attention over every layer for n sequences (cache
 * slots and their lengths, all mapped).  0 or -errno with a message. */
int sim_gpu_attn_decode(struct sim_gpu_attn *g, const uint32_t *slots, const uint32_t *lens,
			uint32_t n, double *seconds, struct sim_err *err);
void sim_gpu_attn_close(struct sim_gpu_attn *g);

#endif /* KVMM_SIM_GPU_ATTN_H */
