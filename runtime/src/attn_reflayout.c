// SPDX-License-Identifier: MIT
/*
 * attn_reflayout.c - KV of a model laid out in each kvmm layout over one
 * plain allocation, by the formulas of docs/layouts.md, and the view of one
 * layer's K or V over it.  The kernels' tests and benchmarks use it to run
 * the kernels on exactly the addresses a cache's views give, with or
 * without a cache; tests/gpu also checks it against real caches.
 */
#include <errno.h>
#include <string.h>

#include "attn_internal.h"

static uint64_t round_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b * b;
}

/*
 * The three layouts (docs/layouts.md), per cache of L layers:
 *  layer-major: region (layer, kv) = [seq][token][head][dim], each sequence
 *    rounded up to whole pages;
 *  token-major: per sequence [token][layer][kv][head][dim], the sequence's
 *    range rounded up to whole pages;
 *  page-major:  per sequence whole pages, each holding T = page / token_bytes
 *    tokens as [layer][kv][T tokens][head][dim].
 */
int kvmm_reflayout_init(struct kvmm_reflayout *l, enum kvmm_layout layout, uint32_t layers,
			uint32_t heads, uint32_t head_dim, uint32_t max_seqs, uint32_t max_tokens,
			uint64_t page)
{
	uint64_t tok_all;

	memset(l, 0, sizeof(*l));
	l->layout = layout;
	l->layers = layers;
	l->heads = heads;
	l->head_dim = head_dim;
	l->max_seqs = max_seqs;
	l->max_tokens = max_tokens;
	l->page = page;
	l->tok_layer = (uint64_t)heads * head_dim * 2;
	tok_all = l->tok_layer * 2 * layers;
	switch (layout) {
	case KVMM_LAYOUT_LAYER_MAJOR:
		l->bytes = 2ull * layers * max_seqs * round_up(max_tokens * l->tok_layer, page);
		return 0;
	case KVMM_LAYOUT_TOKEN_MAJOR:
		if (tok_all > page)
			return -EINVAL;
		l->bytes = (uint64_t)max_seqs * round_up(max_tokens * tok_all, page);
		return 0;
	case KVMM_LAYOUT_PAGE_MAJOR:
		if (tok_all > page)
			return -EINVAL;
		l->bytes = (uint64_t)max_seqs *
			   ((max_tokens + page / tok_all - 1) / (page / tok_all)) * page;
		return 0;
	default:
		return -EINVAL;
	}
}

void kvmm_reflayout_view(const struct kvmm_reflayout *l, uint64_t base, uint32_t layer,
			 enum kvmm_kv kv, struct kvmm_view *v)
{
	const uint64_t tok_all = l->tok_layer * 2 * l->layers;
	const uint32_t lk = layer * 2 + (uint32_t)kv;

	memset(v, 0, sizeof(*v));
	v->layout = l->layout;
	v->num_heads = l->heads;
	v->head_dim = l->head_dim;
	v->elem_size = 2;
	v->max_seqs = l->max_seqs;
	v->max_tokens = l->max_tokens;
	v->head_stride = (uint64_t)l->head_dim * 2;
	switch (l->layout) {
	case KVMM_LAYOUT_LAYER_MAJOR:
		v->seq_stride = round_up(l->max_tokens * l->tok_layer, l->page);
		v->base = base + lk * l->max_seqs * v->seq_stride;
		v->token_stride = l->tok_layer;
		v->tokens_per_page = (uint32_t)(l->page / l->tok_layer);
		if (!v->tokens_per_page)
			v->tokens_per_page = 1;
		v->page_stride = v->tokens_per_page * v->token_stride;
		break;
	case KVMM_LAYOUT_TOKEN_MAJOR:
		v->seq_stride = round_up(l->max_tokens * tok_all, l->page);
		v->base = base + lk * l->tok_layer;
		v->token_stride = tok_all;
		v->tokens_per_page = (uint32_t)(l->page / tok_all);
		v->page_stride = v->tokens_per_page * v->token_stride;
		break;
	default: { /* page-major */
		const uint32_t t = (uint32_t)(l->page / tok_all);

		v->tokens_per_page = t;
		v->page_stride = l->page;
		v->seq_stride = (uint64_t)((l->max_tokens + t - 1) / t) * l->page;
		v->base = base + lk * t * l->tok_layer;
		v->token_stride = l->tok_layer;
		break;
	}
	}
}

uint64_t kvmm_view_addr(const struct kvmm_view *v, uint32_t seq, uint32_t tok, uint32_t head)
{
	return v->base + seq * v->seq_stride +
	       (uint64_t)(tok / v->tokens_per_page) * v->page_stride +
	       (uint64_t)(tok % v->tokens_per_page) * v->token_stride + head * v->head_stride;
}
