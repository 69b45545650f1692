// SPDX-License-Identifier: MIT
/*
 * test_cache_cuda.c - the KV cache's content tests on the CUDA backend:
 * for every layout, sequences grow at random under the mapper while a
 * distinct pattern per (sequence, token, layer, K/V) is written with
 * kvmm_seq_write (cuMemcpyHtoD) and read back with kvmm_seq_read and at the
 * view formula's device addresses (cuMemcpyDtoH); no driver call inside
 * kvmm_step; the budget is never overshot; blocks published and aliased
 * read-only, copy-in that diverges; everything released on destroy.
 * Prints TAP; without a CUDA device prints "SKIP: no CUDA device", exit 77.
 */
#include <stdint.h>
#include <string.h>

#include "cache_internal.h"
#include "gputest.h"
#include "tests/kvpattern.h"

enum { SEQS = 4, ROUNDS = 40 };

static int write_rows(struct kvmm_cache *c, uint32_t s, uint32_t id, uint32_t t0, uint32_t n,
		      uint8_t *buf)
{
	uint64_t rb = c->g.row_bytes;
	int ret = 0;

	for (uint32_t l = 0; l < c->g.num_layers && !ret; l++)
		for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
			for (uint32_t t = 0; t < n; t++)
				kvp_row(buf + t * rb, rb, id, t0 + t, l, kv);
			ret = kvmm_seq_write(c, s, l, kv, t0, n, buf);
		}
	return ret;
}

/* 0 when rows [t0, t0 + n) read back right through kvmm_seq_read and, for
 * a sample, at the view formula's device addresses. */
static int check_rows(struct kvmm_cache *c, struct kvmm_backend *be, uint32_t s, uint32_t id,
		      uint32_t t0, uint32_t n, uint8_t *buf, uint8_t *want)
{
	uint64_t rb = c->g.row_bytes;

	for (uint32_t l = 0; l < c->g.num_layers; l++)
		for (uint32_t kv = 0; kv < 2; kv++) {
			struct kvmm_view v;

			if (kvmm_seq_read(c, s, l, kv, t0, n, buf) || kvmm_cache_view(c, l, kv, &v))
				return -1;
			for (uint32_t t = 0; t < n; t++) {
				kvp_row(want, rb, id, t0 + t, l, kv);
				if (memcmp(buf + t * rb, want, rb))
					return -1;
			}
			for (uint32_t t = t0; t < t0 + n; t += 1 + n / 7) {
				uint64_t a = v.base + s * v.seq_stride +
					     (t / v.tokens_per_page) * v.page_stride +
					     (t % v.tokens_per_page) * v.token_stride;

				kvp_row(want, rb, id, t, l, kv);
				if (kvmm_memcpy_to_host(be, buf, a, rb) || memcmp(buf, want, rb))
					return -1;
			}
		}
	return 0;
}

static void test_layout(struct gt *t, struct kvmm_backend *be, enum kvmm_layout layout)
{
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = 4, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.layout = layout,
		.max_seqs = SEQS,
		.max_tokens = 2048,
		.budget_bytes = 48ull << 21,
		.reserve_bytes = 8ull << 21,
	};
	const char *name = kvmm_layout_name(layout);
	struct kvmm_backend_stats bs;
	struct kvmm_cache_stats st;
	struct kvmm_cache *c = NULL;
	uint32_t seq[SEQS], id[SEQS], len[SEQS] = {0}, next = 1, bad = 0;
	uint64_t rng = 0x6b766d6d + layout;
	uint8_t *buf, *want;
	int ret;

	ret = kvmm_cache_create(be, &cfg, &c);
	GT_CHECK(t, ret == 0, "%s: create (%d %s)", name, ret, kvmm_backend_last_error(be));
	if (ret)
		return;
	buf = malloc(c->g.row_bytes * cfg.max_tokens);
	want = malloc(c->g.row_bytes);
	for (uint32_t i = 0; i < SEQS; i++) {
		ret |= kvmm_seq_open(c, 0, &seq[i]);
		id[i] = next++;
	}
	/* Random growth, with a sequence closed and readmitted now and then. */
	for (int r = 0; r < ROUNDS && !ret; r++) {
		struct kvmm_step_entry batch[SEQS];
		uint32_t nl[SEQS];

		for (uint32_t i = 0; i < SEQS; i++) {
			rng = kvp_mix(rng);
			nl[i] = len[i] + (uint32_t)(rng % 64);
			if (nl[i] > cfg.max_tokens / 2)
				nl[i] = cfg.max_tokens / 2;
			batch[i] = (struct kvmm_step_entry){seq[i], nl[i]};
		}
		ret = kvmm_step(c, batch, SEQS);
		for (uint32_t i = 0; i < SEQS && !ret; i++) {
			ret = write_rows(c, seq[i], id[i], len[i], nl[i] - len[i], buf);
			len[i] = nl[i];
		}
		if (r % 10 == 9 && !ret) {
			uint32_t i = (uint32_t)(rng % SEQS);

			bad += check_rows(c, be, seq[i], id[i], 0, len[i], buf, want) != 0;
			ret = kvmm_seq_close(c, seq[i]);
			if (!ret)
				ret = kvmm_seq_open(c, 0, &seq[i]);
			id[i] = next++;
			len[i] = 0;
		}
	}
	GT_CHECK(t, ret == 0, "%s: random growth and frees under the mapper (%d)", name, ret);
	for (uint32_t i = 0; i < SEQS; i++)
		bad += check_rows(c, be, seq[i], id[i], 0, len[i], buf, want) != 0;
	GT_CHECK(t, bad == 0, "%s: every byte reads back, by seq_read and by view (%u bad)", name,
		 bad);
	kvmm_cache_stats(c, &st);
	GT_CHECK(t, st.critical_path_driver_calls == 0,
		 "%s: no driver call inside kvmm_step (%llu; %llu mapper waits)", name,
		 (unsigned long long)st.critical_path_driver_calls,
		 (unsigned long long)st.mapper_waits);
	GT_CHECK(t, st.pages_peak <= cfg.budget_bytes / c->g.page, "%s: peak %llu pages <= budget",
		 name, (unsigned long long)st.pages_peak);

	/* Sharing: seq 0's first full block published, aliased read-only into
	 * seq 1 (closed and reopened empty), seq 0's next block copied in. */
	{
		uint32_t tpb = c->g.tpb, b;
		kvmm_blk_t pub, snap;

		ret = kvmm_seq_close(c, seq[1]);
		ret |= kvmm_seq_open(c, 0, &seq[1]);
		ret |= kvmm_step(c, &(struct kvmm_step_entry){seq[0], 2 * tpb}, 1);
		ret |= write_rows(c, seq[0], id[0], len[0] < 2 * tpb ? len[0] : 2 * tpb,
				  len[0] < 2 * tpb ? 2 * tpb - len[0] : 0, buf);
		len[0] = 2 * tpb;
		ret |= kvmm_seq_publish(c, seq[0], 0, 1, &pub);
		ret |= kvmm_seq_snapshot(c, seq[0], 1, &snap);
		b = seq[1];
		ret |= kvmm_seq_alias(c, b, 0, 1, &pub);
		ret |= kvmm_seq_copy_in(c, b, 1, snap);
		ret |= kvmm_step(c, &(struct kvmm_step_entry){b, 2 * tpb}, 1);
		GT_CHECK(t, ret == 0, "%s: publish, snapshot, alias, copy-in (%d)", name, ret);
		GT_CHECK(t, !check_rows(c, be, b, id[0], 0, 2 * tpb, buf, want),
			 "%s: the attached sequence reads the source's KV", name);
		ret = kvmm_seq_write(c, b, 0, KVMM_K, 0, 1, buf);
		GT_CHECK(t, ret == -EPERM, "%s: writing an aliased block: -EPERM (%d)", name, ret);
		ret = write_rows(c, b, 999, tpb, tpb, buf);
		GT_CHECK(t,
			 ret == 0 && !check_rows(c, be, b, 999, tpb, tpb, buf, want) &&
				 !check_rows(c, be, seq[0], id[0], 0, 2 * tpb, buf, want),
			 "%s: the copy diverges from its source (%d)", name, ret);
		kvmm_blk_put(c, &pub, 1);
		kvmm_blk_put(c, &snap, 1);
	}

	/* A budget below what is in use: reported, and growth gets -ENOMEM
	 * with no length changed. */
	{
		uint64_t left = 0;

		ret = kvmm_cache_set_budget(c, 4 * c->g.block_bytes, &left);
		GT_CHECK(t, ret == 0 && left > 0,
			 "%s: shrinking the budget reports %llu pages short", name,
			 (unsigned long long)left);
		ret = kvmm_seq_reserve(c, seq[3], cfg.max_tokens);
		GT_CHECK(t, ret == -ENOMEM && kvmm_seq_len(c, seq[3]) == len[3],
			 "%s: growing past the budget gives -ENOMEM (%d)", name, ret);
	}
	kvmm_backend_stats(be, &bs);
	GT_CHECK(t, bs.pages_live <= cfg.budget_bytes / c->g.page, "%s: %llu pages live <= budget",
		 name, (unsigned long long)bs.pages_live);
	ret = kvmm_cache_verify(c, (char *)buf, 256);
	GT_CHECK(t, ret == 0, "%s: internal consistency (%s)", name, ret ? (char *)buf : "ok");
	kvmm_cache_destroy(c);
	kvmm_backend_stats(be, &bs);
	GT_CHECK(t, bs.pages_live == 0 && bs.va_reserved_bytes == 0,
		 "%s: destroy releases every page and the VA (%llu, %llu)", name,
		 (unsigned long long)bs.pages_live, (unsigned long long)bs.va_reserved_bytes);
	free(buf);
	free(want);
}

int main(void)
{
	struct kvmm_backend *be = gt_open_cuda_or_skip();
	struct gt t = {0};

	printf("# cuda backend, page size %llu\n", (unsigned long long)kvmm_backend_page_size(be));
	test_layout(&t, be, KVMM_LAYOUT_LAYER_MAJOR);
	test_layout(&t, be, KVMM_LAYOUT_TOKEN_MAJOR);
	test_layout(&t, be, KVMM_LAYOUT_PAGE_MAJOR);
	kvmm_backend_close(be);
	return gt_done(&t);
}
