// SPDX-License-Identifier: MIT
/*
 * cache.c - creating and destroying a KV cache, and its geometry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"

/* Blocks per driver round: large enough to batch set_access, small enough
 * that an urgent step is never stuck behind a long prefill for long. */
#define MAP_BATCH 32

int kvmm_cop_map(struct kvmm_cache *c, struct kvmm_op *op, uint64_t va, kvmm_phys_t p)
{
	op->driver_calls++;
	return kvmm_be_map(c->be, va, p);
}

int kvmm_cop_unmap(struct kvmm_cache *c, struct kvmm_op *op, uint64_t va, uint64_t size)
{
	op->driver_calls++;
	return kvmm_be_unmap(c->be, va, size);
}

int kvmm_cop_access(struct kvmm_cache *c, struct kvmm_op *op, uint64_t va, uint64_t size,
		    enum kvmm_prot prot)
{
	op->driver_calls++;
	return kvmm_be_set_access(c->be, va, size, prot);
}

int kvmm_cop_copy(struct kvmm_cache *c, struct kvmm_op *op, uint64_t dst, uint64_t src, uint64_t n)
{
	op->driver_calls++;
	return kvmm_be_copy_dtod(c->be, dst, src, n);
}

static int ring_init(struct kvmm_ring *r, uint32_t cap)
{
	r->ids = calloc(cap, sizeof(*r->ids));
	r->cap = cap;
	return r->ids ? 0 : -ENOMEM;
}

static uint64_t pow2_at_least(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static int check_config(const struct kvmm_backend *be, const struct kvmm_cache_config *cfg,
			struct kvmm_geom *g)
{
	int ret;

	if (!be || !be->ops || !cfg || (cfg->flags & ~KVMM_CACHE_NO_MAPPER))
		return -EINVAL;
	ret = kvmm_geom_init(g, cfg, be->page_size);
	if (ret)
		return ret;
	if (cfg->map_ahead_tokens > cfg->max_tokens)
		return -EINVAL;
	if (cfg->reserve_bytes > cfg->budget_bytes)
		return -ENOMEM;
	return 0;
}

static void cache_free(struct kvmm_cache *c)
{
	if (c->va)
		kvmm_be_release_va(c->be, c->va, c->g.va_bytes);
	free(c->urgent.ids);
	free(c->ahead_q.ids);
	free(c->dirty.ids);
	free(c->bt);
	free(c->slots);
	pthread_cond_destroy(&c->work_cv);
	pthread_cond_destroy(&c->done_cv);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int kvmm_cache_create(struct kvmm_backend *be, const struct kvmm_cache_config *cfg,
		      struct kvmm_cache **out)
{
	struct kvmm_op op = {0};
	struct kvmm_cache *c;
	struct kvmm_geom g;
	uint64_t nbt, reserve;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	ret = check_config(be, cfg, &g);
	if (ret)
		return ret;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->work_cv, NULL);
	pthread_cond_init(&c->done_cv, NULL);
	c->be = be;
	c->cfg = *cfg;
	c->g = g;
	c->cfg.layout = g.layout;
	/* Default map-ahead: a quarter block, at most 16 tokens.  Decode adds
	 * a token (a few, speculating) per step of tens of milliseconds, and
	 * the mapper maps a block in microseconds (one page) to a couple of
	 * milliseconds (layer-major: 2L pages), so that is many steps of
	 * slack, for at most a quarter block or 16 tokens of extra memory. */
	c->ahead = cfg->map_ahead_tokens ? cfg->map_ahead_tokens : g.tpb / 4;
	if (!cfg->map_ahead_tokens && c->ahead > 16)
		c->ahead = 16;
	if (!c->ahead)
		c->ahead = 1;
	c->batch = MAP_BATCH;
	c->budget_pages = cfg->budget_bytes / g.page;
	c->low_water =
		(uint32_t)((cfg->low_water_bytes ? cfg->low_water_bytes : cfg->reserve_bytes) /
			   g.block_bytes);
	c->chunk0 = pow2_at_least(cfg->budget_bytes / g.block_bytes);
	if (c->chunk0 < 16)
		c->chunk0 = 16;
	if (c->chunk0 > (1u << 20))
		c->chunk0 = 1u << 20;
	c->dead_head = c->free_head = KVMM_NONE;
	c->lru_head = c->lru_tail = KVMM_NONE;
	c->trim_stuck = c->refill_stuck = UINT64_MAX;
	nbt = (uint64_t)g.max_seqs * g.bps;
	c->slots = calloc(g.max_seqs, sizeof(*c->slots));
	c->bt = malloc(nbt * sizeof(*c->bt));
	if (!c->slots || !c->bt || ring_init(&c->urgent, g.max_seqs) ||
	    ring_init(&c->ahead_q, g.max_seqs) || ring_init(&c->dirty, g.max_seqs)) {
		ret = -ENOMEM;
		goto fail;
	}
	for (uint64_t i = 0; i < nbt; i++)
		c->bt[i] = (struct kvmm_bte){.blk = KVMM_BLK_NONE};
	for (uint32_t s = 0; s < g.max_seqs; s++) {
		c->slots[s].bt = &c->bt[(uint64_t)s * g.bps];
		c->slots[s].lru_prev = s ? s - 1 : KVMM_NONE;
		c->slots[s].lru_next = s + 1 < g.max_seqs ? s + 1 : KVMM_NONE;
	}
	c->lru_head = 0;
	c->lru_tail = g.max_seqs - 1;
	ret = kvmm_be_reserve(be, g.va_bytes, g.page, &c->va);
	if (ret) {
		c->va = 0;
		goto fail;
	}
	/* Pages asked for up front are created now, so the first sequences
	 * never wait for cuMemCreate. */
	reserve = cfg->reserve_bytes / g.block_bytes;
	kvmm_lock(c);
	while (reserve && !ret) {
		ret = kvmm_pool_create(c, reserve > 64 ? 64 : (uint32_t)reserve, &op);
		if (ret > 0) {
			reserve -= (uint64_t)ret;
			ret = 0;
		} else if (!ret) {
			ret = -ENOMEM;
		}
	}
	kvmm_unlock(c);
	if (!ret && !(cfg->flags & KVMM_CACHE_NO_MAPPER))
		ret = kvmm_mapper_start(c);
	if (ret)
		goto fail_pool;
	*out = c;
	return 0;
fail_pool:
	kvmm_pool_fini(c);
fail:
	cache_free(c);
	return ret;
}

void kvmm_cache_destroy(struct kvmm_cache *c)
{
	struct kvmm_op op = {0};

	if (!c)
		return;
	if (c->tiers_fini)
		c->tiers_fini(c);
	if (c->prefix_fini)
		c->prefix_fini(c);
	kvmm_mapper_stop(c);
	kvmm_cache_quiesce(c);
	/* Nothing else runs now: unmap every slot mapping, then the blocks. */
	for (uint32_t s = 0; s < c->g.max_seqs; s++)
		for (uint32_t b = 0; b < c->slots[s].hi; b++)
			if (kvmm_bte(c, s, b)->flags & BT_MAPPED)
				for (uint32_t j = 0; j < c->g.ppb; j++)
					kvmm_cop_unmap(c, &op, kvmm_slot_va(&c->g, c->va, s, b, j),
						       c->g.page);
	kvmm_pool_fini(c);
	cache_free(c);
}

int kvmm_cache_get_info(const struct kvmm_cache *c, struct kvmm_cache_info *info)
{
	if (!c || !info)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	info->shape = c->cfg.shape;
	info->layout = c->g.layout;
	info->max_seqs = c->g.max_seqs;
	info->max_tokens = c->g.max_tokens;
	info->page_size = c->g.page;
	info->tokens_per_block = c->g.tpb;
	info->pages_per_block = c->g.ppb;
	info->block_bytes = c->g.block_bytes;
	info->token_bytes = c->g.token_bytes;
	info->va_bytes = c->g.va_bytes;
	info->blocks_per_seq = c->g.bps;
	return 0;
}
