// SPDX-License-Identifier: MIT
/*
 * attn_plan.c - the host-side logic of kvmm's kernels that needs no GPU:
 * the split planner of decode attention, view and parameter checks, and the
 * staging layout of pack/unpack.  Unit-tested on every machine
 * (tests/unit/test_attn_plan.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attn_internal.h"

/*
 * Model constants, H100 (kernels/NOTES.md has the measurements):
 *  - a launch reads at most ~2.95 TB/s (big decode batches reach it);
 *  - when too few warps are in flight, each warp's chain of dependent
 *    16-token steps bounds the time (in->step_us per step);
 *  - the two limits blend (cube-root of the sum of cubes fits the split
 *    sweeps within ~5%);
 *  - the last block of a group merges all its partials alone: ~1 us plus
 *    the partials' bytes; ~50 GB/s measured with 8 loads in flight per
 *    thread, ~100 GB/s expected with 16 (kernels/NOTES.md).
 */
#define PLAN_BYTES_PER_US	2.95e6
#define PLAN_MERGE_FIXED_US	1.0
#define PLAN_MERGE_BYTES_PER_US 1.0e5

static uint32_t div_up(uint64_t a, uint64_t b)
{
	return (uint32_t)((a + b - 1) / b);
}

static double plan_cost(const struct kvmm_attn_plan_in *in, uint32_t s, uint32_t *chunk_out,
			uint32_t *nsplit_out)
{
	const uint32_t align = KVMM_ATTN_CHUNK_ALIGN;
	const double step = in->step_us > 0 ? in->step_us : KVMM_ATTN_STEP_US;
	uint32_t chunk = div_up(div_up(in->max_len, s), align) * align;
	uint32_t ns = div_up(in->max_len, chunk); /* splits really used */
	uint64_t slots = (uint64_t)in->num_sms * (in->occupancy ? in->occupancy : 1);
	uint64_t blocks = (uint64_t)in->groups * ns;
	double bytes = (double)in->groups * in->max_len * in->head_dim * 2.0 * 2.0;
	double waves = (double)((blocks + slots - 1) / slots);
	double t_bw = bytes / PLAN_BYTES_PER_US;
	double t_lat = waves * (double)chunk / align * step;
	double t = cbrt(t_bw * t_bw * t_bw + t_lat * t_lat * t_lat);

	if (ns > 1)
		t += PLAN_MERGE_FIXED_US +
		     (double)ns * in->rows * in->head_dim * 4.0 / PLAN_MERGE_BYTES_PER_US;
	*chunk_out = chunk;
	*nsplit_out = ns;
	return t;
}

void kvmm_attn_plan_make(const struct kvmm_attn_plan_in *in, struct kvmm_attn_plan *out)
{
	uint32_t max_s, best_s = 1, chunk, ns;
	double best;

	memset(out, 0, sizeof(*out));
	if (!in->max_len || !in->groups) {
		out->nsplit = 1;
		out->chunk = KVMM_ATTN_CHUNK_ALIGN;
		return;
	}
	max_s = div_up(in->max_len, KVMM_ATTN_CHUNK_ALIGN);
	if (max_s > KVMM_ATTN_MAX_SPLITS)
		max_s = KVMM_ATTN_MAX_SPLITS;
	if ((uint64_t)in->groups * max_s > in->ws_items)
		max_s = in->ws_items / in->groups ? in->ws_items / in->groups : 1;
	if (in->forced) {
		best_s = in->forced < max_s ? in->forced : max_s;
		best = plan_cost(in, best_s, &chunk, &ns);
	} else {
		best = plan_cost(in, 1, &chunk, &ns);
		for (uint32_t s = 2; s <= max_s; s++) {
			double t = plan_cost(in, s, &chunk, &ns);
			if (t < best * 0.98) { /* a real gain, not noise in the model */
				best = t;
				best_s = s;
			}
		}
		best = plan_cost(in, best_s, &chunk, &ns);
	}
	out->nsplit = ns;
	out->chunk = chunk;
	out->est_us = best;
}

int kvmm_attn_side_from_view(const struct kvmm_view *v, uint32_t head_dim,
			     struct kvmm_attn_side *out)
{
	const uint64_t a =
		v->base | v->seq_stride | v->page_stride | v->token_stride | v->head_stride;

	if (v->elem_size != 2 || v->head_dim != head_dim || !v->num_heads || !v->tokens_per_page ||
	    !v->max_seqs || !v->base)
		return -EINVAL;
	if (a % 16)
		return -EINVAL;
	/* a token's head_dim elements must not overlap the next head's */
	if (v->num_heads > 1 && v->head_stride < 2ull * head_dim)
		return -EINVAL;
	out->base = v->base;
	out->seq_stride = v->seq_stride;
	out->head_stride = v->head_stride;
	if (v->tokens_per_page == 1 ||
	    v->page_stride == (uint64_t)v->tokens_per_page * v->token_stride) {
		out->token_stride = v->tokens_per_page == 1 ? v->page_stride : v->token_stride;
		out->page_stride = 0;
		out->tpp = 1u << 30; /* t / tpp == 0 for every t < 2^30 */
	} else {
		out->token_stride = v->token_stride;
		out->page_stride = v->page_stride;
		out->tpp = v->tokens_per_page;
	}
	kvmm_fastdiv_init(out->tpp, &out->div_mul, &out->div_shr);
	return 0;
}

#define ERR(...)                                            \
	do {                                                \
		if (err)                                    \
			snprintf(err, errlen, __VA_ARGS__); \
		return -EINVAL;                             \
	} while (0)

int kvmm_attn_check_params(const struct kvmm_attn_params *p, uint32_t num_kv_heads, char *err,
			   size_t errlen)
{
	uint32_t group, mtiles;

	if (!p)
		ERR("params is NULL");
	if (!p->batch || p->batch > 65535)
		ERR("batch %u is not in 1..65535", p->batch);
	if (p->head_dim != 64 && p->head_dim != 128)
		ERR("head_dim %u is not 64 or 128", p->head_dim);
	if (p->dtype != KVMM_DTYPE_FP16 && p->dtype != KVMM_DTYPE_BF16)
		ERR("dtype %u is not fp16 or bf16", p->dtype);
	if (!num_kv_heads || !p->num_q_heads || p->num_q_heads % num_kv_heads)
		ERR("num_q_heads %u is not a multiple of the %u KV heads", p->num_q_heads,
		    num_kv_heads);
	group = p->num_q_heads / num_kv_heads;
	mtiles = (group + KVMM_ATTN_MTILE - 1) / KVMM_ATTN_MTILE;
	if ((uint64_t)num_kv_heads * mtiles > 65535)
		ERR("%u KV heads x %u query heads each is too many", num_kv_heads, group);
	if (p->max_len > (1u << 30))
		ERR("max_len %u is over 2^30", p->max_len);
	if (p->num_splits > KVMM_ATTN_MAX_SPLITS)
		ERR("num_splits %u is over %u", p->num_splits, KVMM_ATTN_MAX_SPLITS);
	if (!(p->scale >= 0.f) || isinf(p->scale))
		ERR("scale must be finite and >= 0");
	if (p->flags)
		ERR("unknown flags 0x%x", p->flags);
	if (!p->q || !p->out || !p->seq_lens)
		ERR("q, out and seq_lens must be device addresses");
	if ((p->q | p->out) % 16 || (p->q_stride * 2) % 16 || (p->out_stride * 2) % 16)
		ERR("q, out and their strides must be 16-byte aligned");
	if (p->q_stride && p->q_stride < (uint64_t)p->num_q_heads * p->head_dim)
		ERR("q_stride %llu is shorter than a row", (unsigned long long)p->q_stride);
	if (p->out_stride && p->out_stride < (uint64_t)p->num_q_heads * p->head_dim)
		ERR("out_stride %llu is shorter than a row", (unsigned long long)p->out_stride);
	return 0;
}

int kvmm_pack_layout(const struct kvmm_pack_params *p, uint64_t *data_off, uint64_t *row0,
		     uint64_t *scale_off, uint64_t *total)
{
	uint64_t off = 0, rows = 0, row_bytes = 0;

	if (!p || (!p->runs && p->nruns))
		return -EINVAL;
	if (p->quant > KVMM_QUANT_FP8_E4M3)
		return -EINVAL;
	if (p->quant) {
		if (p->dtype != KVMM_DTYPE_FP16 && p->dtype != KVMM_DTYPE_BF16)
			return -EINVAL;
		if (p->row_elems < 8 || p->row_elems > 256 || (p->row_elems & (p->row_elems - 1)))
			return -EINVAL;
		row_bytes = 2ull * p->row_elems;
	}
	for (uint32_t i = 0; i < p->nruns; i++) {
		const struct kvmm_pack_run *r = &p->runs[i];

		if (!r->addr || r->addr % 16 || r->bytes % 16 || r->bytes > (1ull << 40))
			return -EINVAL;
		if (row_bytes && r->bytes % row_bytes)
			return -EINVAL;
		if (data_off)
			data_off[i] = off;
		if (row0)
			row0[i] = rows;
		off += ((p->quant ? r->bytes / 2 : r->bytes) + 15) / 16 * 16;
		if (row_bytes)
			rows += r->bytes / row_bytes;
	}
	if (scale_off)
		*scale_off = off;
	off += (rows * 4 + 15) / 16 * 16;
	if (total)
		*total = off;
	return 0;
}

int64_t kvmm_pack_size(const struct kvmm_pack_params *p)
{
	uint64_t total;
	int ret = kvmm_pack_layout(p, NULL, NULL, NULL, &total);

	return ret ? ret : (int64_t)total;
}
