// SPDX-License-Identifier: MIT
/*
 * attn_reflayout.c - a model's KV in one kvmm layout over one plain
 * allocation, with the cache's own geometry (layout.c), so the kernels'
 * tests and benchmarks run on exactly the addresses a cache's views give,
 * without VMM pages behind them.  tests/gpu/test_attn_cache runs the same
 * kernels over real caches.
 */
#include <errno.h>
#include <string.h>

#include "attn_internal.h"

int kvmm_reflayout_init(struct kvmm_reflayout *l, enum kvmm_layout layout, uint32_t layers,
			uint32_t heads, uint32_t head_dim, uint32_t max_seqs, uint32_t max_tokens,
			uint64_t page)
{
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = layers,
			  .num_kv_heads = heads,
			  .head_dim = head_dim,
			  .elem_size = 2},
		.layout = layout,
		.max_seqs = max_seqs,
		.max_tokens = max_tokens,
	};
	int ret;

	memset(l, 0, sizeof(*l));
	if (layout == KVMM_LAYOUT_DEFAULT)
		return -EINVAL;
	ret = kvmm_geom_init(&l->g, &cfg, page);
	if (ret)
		return ret;
	l->layout = layout;
	l->layers = layers;
	l->heads = heads;
	l->head_dim = head_dim;
	l->max_seqs = max_seqs;
	l->max_tokens = max_tokens;
	l->page = page;
	l->bytes = l->g.va_bytes;
	l->tok_layer = l->g.row_bytes;
	return 0;
}

void kvmm_reflayout_view(const struct kvmm_reflayout *l, uint64_t base, uint32_t layer,
			 enum kvmm_kv kv, struct kvmm_view *v)
{
	kvmm_geom_view(&l->g, base, layer, kv, v);
}

uint64_t kvmm_view_addr(const struct kvmm_view *v, uint32_t seq, uint32_t tok, uint32_t head)
{
	return v->base + seq * v->seq_stride +
	       (uint64_t)(tok / v->tokens_per_page) * v->page_stride +
	       (uint64_t)(tok % v->tokens_per_page) * v->token_stride + head * v->head_stride;
}
