// SPDX-License-Identifier: MIT
/*
 * layout.c - where every byte of KV lives: the geometry of the three
 * layouts and the views kernels use.  docs/layouts.md has the pictures.
 *
 * The slot range is [part][seq][block][page] pages, where a part is one
 * (layer, K/V) tensor for layer-major and the whole range otherwise.  All
 * three layouts then fit one view formula (kvmm.h); they differ only in
 * the view's base and token stride:
 *   layer-major  base = va + (2l+kv) * part_stride   token_stride = row
 *   token-major  base = va + (2l+kv) * row           token_stride = token
 *   page-major   base = va + (2l+kv) * tpb * row     token_stride = row
 * with seq_stride = blocks per sequence * page and page_stride = page.
 */
#include <errno.h>
#include <string.h>

#include "cache_internal.h"

/* Generous limits: larger asks are almost certainly unit mistakes, and
 * the block tables (8 bytes per block of every slot) must fit in memory. */
#define MAX_VA_BYTES   (1ull << 56)
#define MAX_BT_ENTRIES (1ull << 28)

const char *kvmm_layout_name(enum kvmm_layout layout)
{
	switch (layout) {
	case KVMM_LAYOUT_DEFAULT:
		return "default";
	case KVMM_LAYOUT_LAYER_MAJOR:
		return "layer-major";
	case KVMM_LAYOUT_TOKEN_MAJOR:
		return "token-major";
	case KVMM_LAYOUT_PAGE_MAJOR:
		return "page-major";
	}
	return "unknown";
}

static int mul(uint64_t a, uint64_t b, uint64_t *out)
{
	return __builtin_mul_overflow(a, b, out) ? -E2BIG : 0;
}

int kvmm_geom_init(struct kvmm_geom *g, const struct kvmm_cache_config *cfg, uint64_t page)
{
	const struct kvmm_shape *sh = &cfg->shape;
	uint64_t row, tok, bps, ss, va, parts, ent;
	uint32_t e = sh->elem_size;

	memset(g, 0, sizeof(*g));
	if (!sh->num_layers || !sh->num_kv_heads || !sh->head_dim || !page)
		return -EINVAL;
	if (e != 1 && e != 2 && e != 4 && e != 8)
		return -EINVAL;
	if ((unsigned)cfg->layout > KVMM_LAYOUT_PAGE_MAJOR || !cfg->max_seqs || !cfg->max_tokens)
		return -EINVAL;
	if (mul((uint64_t)sh->num_kv_heads * sh->head_dim, e, &row) ||
	    mul(row, 2ull * sh->num_layers, &tok))
		return -EINVAL;
	g->layout = cfg->layout == KVMM_LAYOUT_DEFAULT ? KVMM_LAYOUT_CHOSEN : cfg->layout;
	g->num_layers = sh->num_layers;
	g->num_heads = sh->num_kv_heads;
	g->head_dim = sh->head_dim;
	g->elem_size = e;
	g->max_seqs = cfg->max_seqs;
	g->max_tokens = cfg->max_tokens;
	g->page = page;
	g->row_bytes = row;
	g->token_bytes = tok;
	if (g->layout == KVMM_LAYOUT_LAYER_MAJOR) {
		/* A block is one page of every (layer, K/V) tensor. */
		if (row > page)
			return -EINVAL;
		g->tpb = (uint32_t)(page / row > UINT32_MAX ? UINT32_MAX : page / row);
		g->ppb = 2 * sh->num_layers;
		if (g->ppb < sh->num_layers) /* 2 * L wrapped */
			return -EINVAL;
	} else {
		/* A block is one page holding all layers of tpb tokens; a token
		 * larger than a page needs layer-major or a larger page. */
		if (tok > page)
			return -EINVAL;
		g->tpb = (uint32_t)(page / tok > UINT32_MAX ? UINT32_MAX : page / tok);
		g->ppb = 1;
	}
	bps = ((uint64_t)cfg->max_tokens + g->tpb - 1) / g->tpb;
	parts = g->layout == KVMM_LAYOUT_LAYER_MAJOR ? g->ppb : 1;
	if (mul(bps, page, &ss) || mul(ss, cfg->max_seqs, &va) || mul(va, parts, &va) ||
	    va > MAX_VA_BYTES)
		return -E2BIG;
	if (mul(bps, cfg->max_seqs, &ent) || ent > MAX_BT_ENTRIES)
		return -E2BIG;
	g->bps = (uint32_t)bps;
	g->seq_stride = ss;
	g->part_stride = parts > 1 ? ss * cfg->max_seqs : 0;
	g->block_bytes = page * g->ppb;
	g->va_bytes = va;
	return 0;
}

void kvmm_geom_view(const struct kvmm_geom *g, uint64_t va, uint32_t layer, enum kvmm_kv kv,
		    struct kvmm_view *v)
{
	uint64_t part = 2ull * layer + (unsigned)kv;

	memset(v, 0, sizeof(*v));
	switch (g->layout) {
	case KVMM_LAYOUT_LAYER_MAJOR:
		v->base = va + part * g->part_stride;
		v->token_stride = g->row_bytes;
		break;
	case KVMM_LAYOUT_TOKEN_MAJOR:
		v->base = va + part * g->row_bytes;
		v->token_stride = g->token_bytes;
		break;
	default: /* page-major */
		v->base = va + part * g->tpb * g->row_bytes;
		v->token_stride = g->row_bytes;
		break;
	}
	v->seq_stride = g->seq_stride;
	v->page_stride = g->page;
	v->head_stride = (uint64_t)g->head_dim * g->elem_size;
	v->tokens_per_page = g->tpb;
	v->layout = g->layout;
	v->num_heads = g->num_heads;
	v->head_dim = g->head_dim;
	v->elem_size = g->elem_size;
	v->max_seqs = g->max_seqs;
	v->max_tokens = g->max_tokens;
}

int kvmm_cache_view(const struct kvmm_cache *c, uint32_t layer, enum kvmm_kv kv,
		    struct kvmm_view *view)
{
	if (!c || !view || layer >= c->g.num_layers || (kv != KVMM_K && kv != KVMM_V))
		return -EINVAL;
	kvmm_geom_view(&c->g, c->va, layer, kv, view);
	return 0;
}

int kvmm_view_page_table(const struct kvmm_view *view, int32_t *table, size_t n)
{
	uint64_t per_seq, need;

	if (!view || !view->page_stride || !view->max_seqs || view->seq_stride % view->page_stride)
		return -EINVAL;
	per_seq = view->seq_stride / view->page_stride;
	need = per_seq * view->max_seqs;
	if (need > INT32_MAX)
		return -EOVERFLOW;
	if (!table && !n)
		return (int)need; /* a size query */
	if (!table || n < need)
		return -EINVAL;
	/* Every kvmm layout places page p of sequence s at s * per_seq + p
	 * page strides from the view's base: the identity table. */
	for (uint64_t i = 0; i < need; i++)
		table[i] = (int32_t)i;
	return (int)need;
}
