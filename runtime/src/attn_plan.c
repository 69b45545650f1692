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
 *  - with more blocks than SMs, SMs holding one block more than others
 *    finish last: the read slows by ~25% of that imbalance (26 vs 32
 *    splits of 8 groups: 4.5-5.6% measured, 6.8% modelled);
 *  - the last block of a group merges all its partials alone: ~3 us
 *    (publishing fence, counter, fence, the (max, sum) pass, the store,
 *    from per-phase timestamps) plus the partials' bytes at ~75 GB/s (one
 *    SM's pull from L2);
 *  - the cluster kernels merge in shared memory (~2 us: the cluster
 *    barrier waits for the slowest of 8 blocks, then DSMEM reads), then,
 *    if the sequence spans several clusters, 8 blocks each merge 1/8 of
 *    the clusters' partials: ~3 us plus their bytes at the same rate.
 *    They are planned only where the sweeps show them ahead: one group
 *    (batch 1 of one KV head) spanning at least 4 clusters.  With more
 *    groups the clusters land unevenly on the GPU (8 groups: 18-50% slower
 *    than the block merge at equal splits), and 2 clusters cost more than
 *    they save.
 */
#define PLAN_BYTES_PER_US	  2.95e6
#define PLAN_IMBALANCE		  0.25
#define PLAN_MERGE_FIXED_US	  3.0
#define PLAN_MERGE_BYTES_PER_US	  0.75e5
#define PLAN_CLUSTER_REDUCE_US	  2.0
#define PLAN_CLUSTER_MERGE_US	  3.0
#define PLAN_CLUSTER_MAX_GROUPS	  1
#define PLAN_CLUSTER_MIN_CLUSTERS 4

static uint32_t div_up(uint64_t a, uint64_t b)
{
	return (uint32_t)((a + b - 1) / b);
}

/* Estimated time of s splits (before rounding) merged one way or the other;
 * fills in the plan.  Negative: not possible. */
static double plan_cost(const struct kvmm_attn_plan_in *in, uint32_t s, bool cluster,
			struct kvmm_attn_plan *out)
{
	const uint32_t align = KVMM_ATTN_CHUNK_ALIGN, cl = KVMM_ATTN_CLUSTER;
	const double step = in->step_us > 0 ? in->step_us : KVMM_ATTN_STEP_US;
	const uint32_t chunk = div_up(div_up(in->max_len, s), align) * align;
	const uint32_t ns = div_up(in->max_len, chunk); /* splits that read KV */
	const uint32_t grid = cluster ? div_up(ns, cl) * cl : ns;
	const double part = (double)in->rows * in->head_dim * 4.0; /* bytes */
	uint64_t slots = (uint64_t)in->num_sms * (in->occupancy ? in->occupancy : 1);
	double bytes, waves, t_bw, t_lat, t;

	if (cluster) {
		/* counters per (group, rank), partials per (group, cluster) */
		if (in->cluster_slots < cl || grid > KVMM_ATTN_MAX_SPLITS ||
		    in->groups > in->ws_items || (uint64_t)in->groups * (grid / cl) > in->ws_items)
			return -1;
		/* where the sweeps show them ahead, unless asked for */
		if (in->merge != KVMM_ATTN_MERGE_CLUSTER &&
		    (in->groups > PLAN_CLUSTER_MAX_GROUPS || grid / cl < PLAN_CLUSTER_MIN_CLUSTERS))
			return -1;
		slots = in->cluster_slots;
	} else if (ns > 1 && (uint64_t)in->groups * ns > in->ws_items) {
		return -1;
	}
	/* idle blocks of a working cluster hold their slots too */
	const uint64_t blocks = (uint64_t)in->groups * grid;
	const uint64_t sms = in->num_sms ? in->num_sms : 1;
	/* (clusters are placed by GPC, not round robin: no such term) */
	const double imb =
		!cluster && blocks > sms ? (double)div_up(blocks, sms) * sms / blocks : 1.0;
	bytes = (double)in->groups * in->max_len * in->head_dim * 2.0 * 2.0;
	waves = (double)((blocks + slots - 1) / slots);
	t_bw = bytes / PLAN_BYTES_PER_US * (1.0 + PLAN_IMBALANCE * (imb - 1.0));
	t_lat = waves * (double)chunk / align * step;
	t = cbrt(t_bw * t_bw * t_bw + t_lat * t_lat * t_lat);
	if (cluster) {
		const uint32_t ncl = grid / cl;
		t += PLAN_CLUSTER_REDUCE_US;
		if (ncl > 1)
			t += PLAN_CLUSTER_MERGE_US + ncl * part / cl / PLAN_MERGE_BYTES_PER_US;
	} else if (ns > 1) {
		t += PLAN_MERGE_FIXED_US + ns * part / PLAN_MERGE_BYTES_PER_US;
	}
	out->nsplit = grid;
	out->chunk = chunk;
	out->nchunks = ns;
	out->cluster = cluster;
	out->est_us = t;
	return t;
}

/* The best split count for one way of merging (or the forced one, clamped
 * to what the workspace holds); its cost, or -1 if none fits. */
static double plan_search(const struct kvmm_attn_plan_in *in, bool cluster,
			  struct kvmm_attn_plan *out)
{
	const uint64_t per = in->ws_items / in->groups; /* partials per group */
	uint64_t cap = div_up(in->max_len, KVMM_ATTN_CHUNK_ALIGN);
	struct kvmm_attn_plan cand;
	double best = -1;
	uint32_t lo = 1;

	if (cap > KVMM_ATTN_MAX_SPLITS)
		cap = KVMM_ATTN_MAX_SPLITS;
	if (cluster && cap > per * KVMM_ATTN_CLUSTER)
		cap = per * KVMM_ATTN_CLUSTER;
	if (!cluster && cap > per)
		cap = per ? per : 1;
	if (!cap)
		return -1;
	if (in->forced)
		lo = in->forced < cap ? in->forced : (uint32_t)cap;
	for (uint32_t s = lo; s <= (in->forced ? lo : cap); s++) {
		/* a real gain, not noise in the model: fewer splits win ties */
		double t = plan_cost(in, s, cluster, &cand);
		if (t >= 0 && (best < 0 || t < best * 0.98)) {
			best = t;
			*out = cand;
		}
	}
	return best;
}

void kvmm_attn_plan_make(const struct kvmm_attn_plan_in *in, struct kvmm_attn_plan *out)
{
	struct kvmm_attn_plan pc;
	double tc = -1, tb = -1;

	memset(out, 0, sizeof(*out));
	if (!in->max_len || !in->groups) {
		out->nsplit = out->nchunks = 1;
		out->chunk = KVMM_ATTN_CHUNK_ALIGN;
		return;
	}
	if (in->merge != KVMM_ATTN_MERGE_BLOCK)
		tc = plan_search(in, true, &pc);
	if (in->merge != KVMM_ATTN_MERGE_CLUSTER || tc < 0)
		tb = plan_search(in, false, out); /* s = 1 always fits */
	if (tc >= 0 && (tb < 0 || tc < tb * 0.98))
		*out = pc;
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
