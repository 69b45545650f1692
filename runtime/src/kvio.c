// SPDX-License-Identifier: MIT
/*
 * kvio.c - copying KV between host memory and a sequence, through the
 * same view formula the kernels use (so a test that writes here and reads
 * through a view checks the layout itself).
 */
#include <errno.h>

#include "cache_internal.h"

static int seq_io(struct kvmm_cache *c, uint32_t seq, uint32_t layer, enum kvmm_kv kv,
		  uint32_t tok0, uint32_t ntok, void *buf, bool write)
{
	const struct kvmm_geom *g;
	const struct kvmm_slot *sl;
	struct kvmm_view v;
	uint64_t end = (uint64_t)tok0 + ntok, declared, mapped;
	int ret;

	if (!c || (!buf && ntok) || (kv != KVMM_K && kv != KVMM_V))
		return -EINVAL;
	g = &c->g;
	if (layer >= g->num_layers)
		return -EINVAL;
	kvmm_lock(c);
	ret = kvmm_seq_check(c, seq);
	if (ret)
		goto out;
	sl = &c->slots[seq];
	/* Tokens above the length and the reservation are map-ahead, which
	 * the pool may take back at any time: not addressable. */
	declared = sl->len > sl->reserved ? sl->len : sl->reserved;
	if ((uint64_t)sl->immut_end * g->tpb > declared)
		declared = (uint64_t)sl->immut_end * g->tpb;
	mapped = (uint64_t)sl->cap * g->tpb;
	if (end > declared || end > mapped) {
		ret = -ERANGE;
		goto out;
	}
	if (write)
		for (uint64_t b = tok0 / g->tpb; ntok && b <= (end - 1) / g->tpb; b++)
			if (kvmm_bte(c, seq, (uint32_t)b)->flags & BT_SHARED) {
				ret = -EPERM; /* shared blocks are immutable */
				goto out;
			}
out:
	kvmm_unlock(c);
	if (ret || !ntok)
		return ret;
	kvmm_geom_view(g, c->va, layer, kv, &v);
	for (uint64_t t = tok0; t < end;) {
		/* Tokens of one page are contiguous in a layer's view except in
		 * token-major, whose rows are a token apart. */
		uint64_t run = v.token_stride == g->row_bytes ? g->tpb - t % g->tpb : 1;
		uint64_t addr = kvmm_view_token(&v, seq, (uint32_t)t);
		char *p = (char *)buf + (t - tok0) * g->row_bytes;

		if (run > end - t)
			run = end - t;
		ret = write ? kvmm_be_copy_htod(c->be, addr, p, run * g->row_bytes)
			    : kvmm_be_copy_dtoh(c->be, p, addr, run * g->row_bytes);
		if (ret)
			return ret;
		t += run;
	}
	return 0;
}

int kvmm_seq_write(struct kvmm_cache *c, uint32_t seq, uint32_t layer, enum kvmm_kv kv,
		   uint32_t tok0, uint32_t ntok, const void *src)
{
	return seq_io(c, seq, layer, kv, tok0, ntok, (void *)src, true);
}

int kvmm_seq_read(struct kvmm_cache *c, uint32_t seq, uint32_t layer, enum kvmm_kv kv,
		  uint32_t tok0, uint32_t ntok, void *dst)
{
	return seq_io(c, seq, layer, kv, tok0, ntok, dst, false);
}
