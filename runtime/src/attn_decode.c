// SPDX-License-Identifier: MIT
/*
 * attn_decode.c - kvmm_attn_decode() over kvmm views and the paged
 * baseline kvmm_attn_decode_paged(): argument checks, the split plan, one
 * launch of kernels/attn_decode.cuh.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "attn_internal.h"

#if defined(KVMM_HAVE_CUDA) && defined(KVMM_HAVE_KERNELS)

#define BAD(k, ...)                                       \
	do {                                              \
		kvmm_kernels_set_error((k), __VA_ARGS__); \
		return -EINVAL;                           \
	} while (0)

static int attn_launch(struct kvmm_kernels *k, struct kvmm_attn_kparams *kp,
		       const struct kvmm_attn_params *p, uint32_t num_kv_heads, bool table,
		       uint64_t stream)
{
	const uint32_t group = p->num_q_heads / num_kv_heads;
	const uint32_t mtiles = (group + KVMM_ATTN_MTILE - 1) / KVMM_ATTN_MTILE;
	const bool bf16 = p->dtype == KVMM_DTYPE_BF16;
	struct kvmm_attn_plan_in in = {
		.groups = p->batch * num_kv_heads * mtiles,
		.max_len = p->max_len,
		.rows = group < KVMM_ATTN_MTILE ? group : KVMM_ATTN_MTILE,
		.head_dim = p->head_dim,
		.num_sms = (uint32_t)k->num_sms,
		.occupancy = (uint32_t)k->attn_occ[bf16][p->head_dim == 128][table][k->pipe],
		/* the cluster kernels exist pipelined only */
		.cluster_slots =
			k->pipe ? (uint32_t)k->attn_cl_slots[bf16][p->head_dim == 128][table] : 0,
		.ws_items = KVMM_ATTN_WS_ITEMS,
		.forced = p->num_splits,
		.merge = (uint32_t)k->merge,
		.step_us = k->pipe ? KVMM_ATTN_STEP_US_PIPE : KVMM_ATTN_STEP_US,
	};
	CUfunction f;
	struct kvmm_attn_plan plan;
	const float scale = p->scale > 0.f ? p->scale : 1.f / sqrtf((float)p->head_dim);

	kvmm_attn_plan_make(&in, &plan);
	kp->q = p->q;
	kp->out = p->out;
	kp->q_bstride = p->q_stride ? p->q_stride : (uint64_t)p->num_q_heads * p->head_dim;
	kp->o_bstride = p->out_stride ? p->out_stride : (uint64_t)p->num_q_heads * p->head_dim;
	kp->seq_lens = p->seq_lens;
	kp->ws_acc = k->ws_acc;
	kp->ws_ml = k->ws_ml;
	kp->ws_count = k->ws_count;
	kp->batch = p->batch;
	kp->num_kv_heads = num_kv_heads;
	kp->group = group;
	kp->mtiles = mtiles;
	kp->nsplit = plan.nsplit;
	kp->chunk = plan.chunk;
	kp->max_len = p->max_len;
	kp->scale_log2 = scale * 1.4426950408889634f;
	f = plan.cluster ? k->attn_cl[bf16][p->head_dim == 128][table]
			 : k->attn[bf16][p->head_dim == 128][table][k->pipe];
	return kvmm_kernels_launch(k, f, plan.nsplit, num_kv_heads * mtiles, p->batch,
				   KVMM_ATTN_WARPS * 32, kp, stream,
				   table ? "attn_decode_paged" : "attn_decode");
}

int kvmm_attn_decode(struct kvmm_kernels *k, const struct kvmm_view *kv, const struct kvmm_view *vv,
		     const struct kvmm_attn_params *p, uint64_t stream)
{
	struct kvmm_attn_kparams kp;
	struct kvmm_attn_side ks, vs;
	int ret;

	if (!k)
		return -EINVAL;
	if (!kv || !vv)
		BAD(k, "the K and V views must not be NULL");
	ret = kvmm_attn_check_params(p, kv->num_heads, k->err, sizeof(k->err));
	if (ret)
		return ret;
	if (vv->num_heads != kv->num_heads || vv->max_seqs != kv->max_seqs)
		BAD(k, "the K and V views disagree in heads or sequences");
	if (kvmm_attn_side_from_view(kv, p->head_dim, &ks))
		BAD(k, "bad K view (element size 2, head_dim %u, 16-byte aligned strides)",
		    p->head_dim);
	if (kvmm_attn_side_from_view(vv, p->head_dim, &vs))
		BAD(k, "bad V view (element size 2, head_dim %u, 16-byte aligned strides)",
		    p->head_dim);
	if (p->max_len > kv->max_tokens || p->max_len > vv->max_tokens)
		BAD(k, "max_len %u is over the views' %u tokens", p->max_len, kv->max_tokens);
	if (!p->seq_ids && p->batch > kv->max_seqs)
		BAD(k, "batch %u without seq_ids needs %u slots, the view has %u", p->batch,
		    p->batch, kv->max_seqs);
	memset(&kp, 0, sizeof(kp));
	kp.k_base = ks.base;
	kp.k_seq_stride = ks.seq_stride;
	kp.k_page_stride = ks.page_stride;
	kp.k_token_stride = ks.token_stride;
	kp.k_head_stride = ks.head_stride;
	kp.k_tpp = ks.tpp;
	kp.k_div_mul = ks.div_mul;
	kp.k_div_shr = ks.div_shr;
	kp.v_base = vs.base;
	kp.v_seq_stride = vs.seq_stride;
	kp.v_page_stride = vs.page_stride;
	kp.v_token_stride = vs.token_stride;
	kp.v_head_stride = vs.head_stride;
	kp.v_tpp = vs.tpp;
	kp.v_div_mul = vs.div_mul;
	kp.v_div_shr = vs.div_shr;
	kp.seq_ids = p->seq_ids;
	kp.max_seqs = kv->max_seqs;
	return attn_launch(k, &kp, p, kv->num_heads, false, stream);
}

int kvmm_attn_decode_paged(struct kvmm_kernels *k, const struct kvmm_paged_kv *kv,
			   const struct kvmm_attn_params *p, uint64_t stream)
{
	struct kvmm_attn_kparams kp;
	uint64_t tok;
	int ret;

	if (!k)
		return -EINVAL;
	if (!kv)
		BAD(k, "the paged KV must not be NULL");
	ret = kvmm_attn_check_params(p, kv->num_kv_heads, k->err, sizeof(k->err));
	if (ret)
		return ret;
	if (!kv->k_pool || !kv->v_pool || !kv->block_table || (kv->k_pool | kv->v_pool) % 16 ||
	    kv->block_table % 4)
		BAD(k, "k_pool, v_pool (16-aligned) and block_table must be device addresses");
	if (kv->block_size < 16 || kv->block_size % 16 || !kv->num_blocks)
		BAD(k, "block_size %u is not a multiple of 16, or no blocks", kv->block_size);
	if ((uint64_t)kv->table_stride * kv->block_size < p->max_len)
		BAD(k, "table_stride %u blocks cannot hold max_len %u tokens", kv->table_stride,
		    p->max_len);
	if (p->seq_ids)
		BAD(k, "the paged baseline takes no seq_ids (the table says where KV is)");
	tok = (uint64_t)kv->num_kv_heads * p->head_dim * 2;
	memset(&kp, 0, sizeof(kp));
	kp.k_base = kv->k_pool;
	kp.v_base = kv->v_pool;
	kp.k_page_stride = kp.v_page_stride = tok * kv->block_size;
	kp.k_token_stride = kp.v_token_stride = tok;
	kp.k_head_stride = kp.v_head_stride = (uint64_t)p->head_dim * 2;
	kp.k_tpp = kp.v_tpp = kv->block_size;
	kvmm_fastdiv_init(kv->block_size, &kp.k_div_mul, &kp.k_div_shr);
	kp.v_div_mul = kp.k_div_mul;
	kp.v_div_shr = kp.k_div_shr;
	kp.block_table = kv->block_table;
	kp.table_stride = kv->table_stride;
	kp.max_seqs = p->batch;
	return attn_launch(k, &kp, p, kv->num_kv_heads, true, stream);
}

#else

int kvmm_attn_decode(struct kvmm_kernels *k, const struct kvmm_view *kv, const struct kvmm_view *vv,
		     const struct kvmm_attn_params *p, uint64_t stream)
{
	(void)k, (void)kv, (void)vv, (void)p, (void)stream;
	return -ENOTSUP;
}

int kvmm_attn_decode_paged(struct kvmm_kernels *k, const struct kvmm_paged_kv *kv,
			   const struct kvmm_attn_params *p, uint64_t stream)
{
	(void)k, (void)kv, (void)p, (void)stream;
	return -ENOTSUP;
}

#endif
