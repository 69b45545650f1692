// SPDX-License-Identifier: MIT
/*
 * test_tiers_cuda.c - the tiers on a real GPU: blocks spilled through
 * pinned copies on the tiers' own CUDA streams to a host pool registered
 * with cuMemHostRegister (on the GPU's NUMA node) and on to disk, then
 * restored (prefetch; and layer-wise, waiting on per-layer CUDA events),
 * checked byte for byte through kvmm_seq_read, for the page-major and
 * layer-major layouts.  Skips (exit 77) without a CUDA device.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gputest.h"
#include "kvmm.h"

#define NPROMPT 3
#define NBLK	4

static uint8_t pat(uint32_t p, uint32_t t, uint32_t l, uint32_t kv, uint64_t i)
{
	uint64_t x =
		((uint64_t)p << 40) ^ ((uint64_t)t << 16) ^ (l << 4) ^ (kv << 2) ^ (i * 0x9e37);

	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return (uint8_t)(x >> 32);
}

static void fill_rows(uint8_t *buf, uint64_t row, uint32_t p, uint32_t t0, uint32_t n, uint32_t l,
		      uint32_t kv)
{
	for (uint32_t t = 0; t < n; t++)
		for (uint64_t i = 0; i < row; i++)
			buf[t * row + i] = pat(p, t0 + t, l, kv, i);
}

struct ctx {
	struct kvmm_cache *c;
	struct kvmm_cache_info info;
	uint32_t *tok[NPROMPT];
	uint8_t *rows, *back;
	uint64_t row;
};

/* Write prompt p's KV, insert it, close the sequence. */
static int fill(struct ctx *x, uint32_t p)
{
	uint32_t n = NBLK * x->info.tokens_per_block, s;
	struct kvmm_step_entry e;
	int ret = kvmm_seq_open(x->c, n, &s);

	if (ret)
		return ret;
	e.seq = s;
	e.len = n;
	ret = kvmm_step(x->c, &e, 1);
	for (uint32_t l = 0; l < x->info.shape.num_layers && !ret; l++)
		for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
			fill_rows(x->rows, x->row, p, 0, n, l, kv);
			ret = kvmm_seq_write(x->c, s, l, kv, 0, n, x->rows);
		}
	if (!ret)
		ret = kvmm_prefix_insert(x->c, s, NULL, x->tok[p], n) == (int)n ? 0 : -1;
	kvmm_seq_close(x->c, s);
	return ret;
}

/* Every byte of seq's first n tokens is prompt p's. */
static int check(struct ctx *x, uint32_t s, uint32_t p, uint32_t n)
{
	for (uint32_t l = 0; l < x->info.shape.num_layers; l++)
		for (uint32_t kv = 0; kv < 2; kv++) {
			if (kvmm_seq_read(x->c, s, l, kv, 0, n, x->back))
				return -1;
			fill_rows(x->rows, x->row, p, 0, n, l, kv);
			if (memcmp(x->rows, x->back, n * x->row))
				return -1;
		}
	return 0;
}

static void run_layout(struct gt *t, struct kvmm_backend *be, enum kvmm_layout layout,
		       const char *dir)
{
	struct kvmm_cache_config cc = {
		.shape = {.num_layers = 4, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.layout = layout,
		.max_seqs = 4,
		.max_tokens = 8192};
	struct kvmm_tiers_config tc = {.host_policy = KVMM_WRITE_BACK,
				       .disk_policy = KVMM_WRITE_THROUGH,
				       .disk_dir = dir,
				       .flags = KVMM_TIERS_DISK_DISCARD};
	struct kvmm_tiers_stats st;
	struct ctx x = {0};
	const char *name = kvmm_layout_name(layout);
	uint32_t n, found, m, s;
	int ret;

	{
		/* geometry first, then the budget in blocks */
		struct kvmm_cache *probe = NULL;

		cc.budget_bytes = 1ull << 40;
		ret = kvmm_cache_create(be, &cc, &probe);
		GT_CHECK(t, ret == 0, "%s: create a cache (%d)", name, ret);
		if (ret)
			return;
		kvmm_cache_get_info(probe, &x.info);
		kvmm_cache_destroy(probe);
	}
	cc.budget_bytes = (uint64_t)(NPROMPT * NBLK + 4 * NBLK + 4) * x.info.block_bytes;
	ret = kvmm_cache_create(be, &cc, &x.c);
	GT_CHECK(t, ret == 0, "%s: cache with budget (%d)", name, ret);
	if (ret)
		return;
	ret = kvmm_prefix_enable(x.c, NULL);
	GT_CHECK(t, ret == 0, "%s: prefix cache (%d)", name, ret);
	tc.host_bytes = 2ull * NBLK * (x.info.block_bytes + 65536); /* + headers */
	tc.disk_bytes = 4096 + 2ull * NPROMPT * NBLK * (x.info.block_bytes + 65536);
	ret = kvmm_tiers_enable(x.c, &tc);
	GT_CHECK(t, ret == 0, "%s: tiers (%d)", name, ret);
	if (ret)
		goto out;
	kvmm_tiers_stats(x.c, &st);
	GT_CHECK(t, st.host_pinned || kvmm_backend_get_type(be) != KVMM_BACKEND_CUDA,
		 "%s: host pool pinned with cuMemHostRegister (node %d, %.1f ms)", name,
		 st.host_node, st.host_create_ns / 1e6);
	n = NBLK * x.info.tokens_per_block;
	x.row = (uint64_t)x.info.shape.num_kv_heads * x.info.shape.head_dim *
		x.info.shape.elem_size;
	x.rows = malloc(n * x.row);
	x.back = malloc(n * x.row);
	for (uint32_t p = 0; p < NPROMPT; p++) {
		x.tok[p] = malloc(n * sizeof(uint32_t));
		for (uint32_t i = 0; i < n; i++)
			x.tok[p][i] = 7000000u * (p + 1) + i;
		ret = fill(&x, p);
		GT_CHECK(t, ret == 0, "%s: fill prompt %u (%d)", name, p, ret);
	}
	ret = kvmm_prefix_evict(x.c, 1000);
	kvmm_tiers_flush(x.c);
	kvmm_tiers_stats(x.c, &st);
	GT_CHECK(t, ret == NPROMPT * NBLK && st.blocks[KVMM_RES_GPU] == 0 && st.spill_skipped == 0,
		 "%s: %d blocks evicted and spilled (host %llu, disk %llu)", name, ret,
		 (unsigned long long)st.blocks[KVMM_RES_HOST],
		 (unsigned long long)st.blocks[KVMM_RES_DISK]);
	/* restore prompts 0 and 1: prefetch, match, attach, read back */
	for (uint32_t p = 0; p < 2; p++) {
		struct kvmm_prefetch *pf = NULL;
		struct kvmm_prefix_handle *h = NULL;

		ret = kvmm_prefix_prefetch(x.c, NULL, x.tok[p], n, 0, &pf, &found);
		m = pf ? (uint32_t)kvmm_prefetch_wait(x.c, pf, n, UINT64_MAX) : 0;
		kvmm_prefetch_release(x.c, pf);
		GT_CHECK(t, ret == 0 && found == n && m == n, "%s: prefetch prompt %u (%d, %u/%u)",
			 name, p, ret, m, n);
		ret = kvmm_prefix_match(x.c, NULL, x.tok[p], n, &h, &m);
		if (!ret && m == n && !kvmm_seq_open(x.c, n, &s)) {
			ret = kvmm_seq_attach_prefix(x.c, s, h, KVMM_ATTACH_AUTO);
			GT_CHECK(t, ret == 0 && check(&x, s, p, n) == 0,
				 "%s: prompt %u restored byte for byte (%d)", name, p, ret);
			kvmm_seq_close(x.c, s);
		} else {
			GT_CHECK(t, 0, "%s: prompt %u matched after restore (%d, %u)", name, p, ret,
				 m);
		}
		kvmm_prefix_release(x.c, h);
	}
	/* prompt 2 layer-wise: attach first, wait per layer, read */
	{
		struct kvmm_prefetch *pf = NULL;
		int bad = 0;

		ret = kvmm_prefix_prefetch(x.c, NULL, x.tok[2], n, KVMM_PREFETCH_LAYERWISE, &pf,
					   &found);
		GT_CHECK(t, ret == 0 && pf && found == n, "%s: layer-wise prefetch (%d)", name,
			 ret);
		if (pf && !kvmm_seq_open(x.c, n, &s)) {
			ret = kvmm_seq_attach_prefetch(x.c, s, pf);
			GT_CHECK(t, ret == (int)n, "%s: attached before the copies finish (%d)",
				 name, ret);
			for (uint32_t l = 0; l < x.info.shape.num_layers; l++) {
				uint64_t ev = 0;

				if (kvmm_prefetch_layer_event(x.c, pf, l, &ev) ||
				    kvmm_prefetch_wait_layer(x.c, pf, l))
					bad++;
				if (kvmm_backend_get_type(be) == KVMM_BACKEND_CUDA && !ev)
					bad++; /* events exist on CUDA only */
			}
			GT_CHECK(t, !bad, "%s: a CUDA event per layer, each waited for", name);
			GT_CHECK(t, check(&x, s, 2, n) == 0, "%s: layer-wise restore byte for byte",
				 name);
			kvmm_seq_close(x.c, s);
		}
		kvmm_prefetch_release(x.c, pf);
	}
	kvmm_tiers_stats(x.c, &st);
	GT_CHECK(t, st.verify_failures == 0 && st.io_errors == 0 && st.restore_failures == 0,
		 "%s: no failures (restored %llu from host, %llu from disk)", name,
		 (unsigned long long)st.restores_host, (unsigned long long)st.restores_disk);
out:
	kvmm_cache_destroy(x.c);
	for (uint32_t p = 0; p < NPROMPT; p++)
		free(x.tok[p]);
	free(x.rows);
	free(x.back);
}

int main(void)
{
	/* KVMM_GPUTEST_HOST=1 runs the same checks on the host backend, to
	 * test the test where there is no GPU */
	struct kvmm_backend_config hc = {.type = KVMM_BACKEND_HOST};
	struct kvmm_backend *be = NULL;
	struct gt t = {0};
	char dir[] = "/var/tmp/kvmm-gputiers-XXXXXX";
	char cmd[128];

	if (getenv("KVMM_GPUTEST_HOST")) {
		if (kvmm_backend_open(&hc, &be))
			return 1;
	} else {
		be = gt_open_cuda_or_skip();
	}
	if (!mkdtemp(dir)) {
		printf("not ok 1 - scratch directory\n");
		return 1;
	}
	run_layout(&t, be, KVMM_LAYOUT_PAGE_MAJOR, dir);
	run_layout(&t, be, KVMM_LAYOUT_LAYER_MAJOR, dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		printf("# could not remove %s\n", dir);
	kvmm_backend_close(be);
	return gt_done(&t);
}
