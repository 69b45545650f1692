// SPDX-License-Identifier: MIT
/*
 * tier_move.c - one block's KV between the device and a host slot's
 * payload: raw, or quantized (quantize-on-spill) by libkvmm's pack kernels
 * on the device, or by the CPU codec (tier_quant.c) where there are none.
 * With bookkeeping only (the null backend) neither side has bytes: nothing
 * moves, and the caller counts the bytes as if they had.
 */
#include <errno.h>

#include "tier_quant.h"
#include "tiers.h"

static struct tier_quant_copy qshape(const struct kvmm_tiers *t)
{
	return (struct tier_quant_copy){
		.kind = t->enc == TIER_ENC_FP8 ? TIER_QUANT_FP8 : TIER_QUANT_INT8,
		.dtype = t->dtype,
		.row_elems = t->row_elems,
		.raw_bytes = t->c->g.block_bytes,
		.q_bytes = t->payload_bytes,
	};
}

int tiers_copy_out(struct kvmm_tiers *t, kvmm_blk_t blk, uint32_t slot, void *staging)
{
	char *payload;
	uint64_t dev = kvmm_blk_home(t->c, blk);
	struct tier_quant_copy q;
	int ret;

	if (t->bookkeeping)
		return 0;
	payload = (char *)tier_host_slot(t->host, slot) + t->hdr_bytes;
	if (t->enc == TIER_ENC_RAW)
		return tier_copy_queue(t->copy, TIER_D2H, dev, payload, t->c->g.block_bytes);
	q = qshape(t);
	if (tier_copy_has_quant(t->copy))
		return tier_copy_queue_quant(t->copy, TIER_D2H, dev, payload, &q);
	if (!staging)
		return -ENOMEM;
	ret = tier_copy_queue(t->copy, TIER_D2H, dev, staging, q.raw_bytes);
	if (!ret)
		ret = tier_copy_sync(t->copy, TIER_D2H);
	return ret ? ret
		   : tier_quant_encode(q.kind, q.dtype, q.row_elems, staging, q.raw_bytes, payload);
}

int tiers_copy_in(struct kvmm_tiers *t, uint32_t slot, kvmm_blk_t blk)
{
	const char *payload;
	uint64_t dev = kvmm_blk_home(t->c, blk);
	struct tier_quant_copy q;
	int ret;

	if (t->bookkeeping)
		return 0;
	payload = (const char *)tier_host_slot(t->host, slot) + t->hdr_bytes;
	if (t->enc == TIER_ENC_RAW)
		return tier_copy_queue(t->copy, TIER_H2D, dev, (void *)payload,
				       t->c->g.block_bytes);
	q = qshape(t);
	if (tier_copy_has_quant(t->copy))
		return tier_copy_queue_quant(t->copy, TIER_H2D, dev, (void *)payload, &q);
	/* the CPU codec: the mover's staging, reused once the copy is done */
	ret = tier_quant_decode(q.kind, q.dtype, q.row_elems, payload, q.raw_bytes, t->qstage);
	if (!ret)
		ret = tier_copy_queue(t->copy, TIER_H2D, dev, t->qstage, q.raw_bytes);
	if (!ret)
		ret = tier_copy_sync(t->copy, TIER_H2D);
	return ret;
}
