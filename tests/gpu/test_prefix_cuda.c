// SPDX-License-Identifier: MIT
/*
 * test_prefix_cuda.c - the prefix cache's content tests on the CUDA
 * backend, for every layout: a prefix attached by alias reads the cached
 * KV and is one physical page at two addresses; a partial block is copied
 * and diverges; a copy attach diverges; writes to shared blocks are refused
 * by the API; blocks a running sequence maps are not evicted; the AUTO rule
 * follows the costs measured on this GPU (printed).  The last check writes
 * through a read-only alias, which must fail (it may leave the context
 * unusable, so nothing runs after it).  Skips (exit 77) without a device.
 */
#include <stdint.h>
#include <string.h>

#include "gputest.h"
#include "prefix.h"

#define NTOK_MAX (64u * 1024u)

static uint32_t tokA[NTOK_MAX], tokB[NTOK_MAX];

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	return x ^ (x >> 33);
}

/* The bytes of token t of layer l, K or V, for identity id. */
static void row(uint8_t *r, uint64_t n, uint32_t id, uint32_t t, uint32_t l, uint32_t kv)
{
	uint64_t k = mix(((uint64_t)id << 32) ^ ((uint64_t)t << 9) ^ (l << 1) ^ kv);

	for (uint64_t i = 0; i < n; i++)
		r[i] = (uint8_t)(mix(k + i / 8) >> (8 * (i % 8)));
}

static int put_kv(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n)
{
	uint64_t rb = c->g.row_bytes;
	uint8_t *buf = malloc(rb * n);
	int ret = buf ? 0 : -ENOMEM;

	for (uint32_t l = 0; l < c->g.num_layers && !ret; l++)
		for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
			for (uint32_t t = 0; t < n; t++)
				row(buf + t * rb, rb, id, t0 + t, l, kv);
			ret = kvmm_seq_write(c, seq, l, kv, t0, n, buf);
		}
	free(buf);
	return ret;
}

/* 0 when tokens [t0, t0 + n) read back as identity id's. */
static int kv_is(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n)
{
	uint64_t rb = c->g.row_bytes;
	uint8_t *got = malloc(rb * n), *want = malloc(rb);
	int ret = got && want ? 0 : -ENOMEM;

	for (uint32_t l = 0; l < c->g.num_layers && !ret; l++)
		for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
			ret = kvmm_seq_read(c, seq, l, kv, t0, n, got);
			for (uint32_t t = 0; t < n && !ret; t++) {
				row(want, rb, id, t0 + t, l, kv);
				if (memcmp(got + t * rb, want, rb))
					ret = -1;
			}
		}
	free(got);
	free(want);
	return ret;
}

static uint64_t addr(struct kvmm_cache *c, uint32_t seq, uint32_t t)
{
	struct kvmm_view v;

	kvmm_cache_view(c, 0, KVMM_K, &v);
	return kvmm_view_token(&v, seq, t);
}

static uint32_t filled(struct gt *t, struct kvmm_cache *c, uint32_t id, uint32_t n)
{
	struct kvmm_step_entry e = {.len = n};
	int ret = kvmm_seq_open(c, n, &e.seq);

	if (!ret)
		ret = kvmm_seq_reserve(c, e.seq, n);
	if (!ret)
		ret = kvmm_step(c, &e, 1);
	if (!ret)
		ret = put_kv(c, e.seq, id, 0, n);
	GT_CHECK(t, ret == 0, "sequence of %u tokens written (%d)", n, ret);
	return e.seq;
}

static uint32_t attach(struct gt *t, struct kvmm_cache *c, const uint32_t *q, uint32_t n,
		       uint32_t want, enum kvmm_attach_mode mode, bool own)
{
	struct kvmm_prefix_handle *h = NULL;
	uint32_t m = 0, s = 0;
	int ret = kvmm_prefix_match(c, NULL, q, n, &h, &m);

	GT_CHECK(t, ret == 0 && m == want && h, "match %u of %u tokens (got %u, %d)", want, n, m,
		 ret);
	ret = kvmm_seq_open(c, n, &s);
	if (!ret && own)
		ret = kvmm_seq_reserve(c, s, n);
	if (!ret)
		ret = kvmm_seq_attach_prefix(c, s, h, mode);
	GT_CHECK(t, ret == 0 && kvmm_seq_len(c, s) == want, "attach (mode %d): %d", mode, ret);
	kvmm_prefix_release(c, h);
	return s;
}

static const char *const names[] = {"?", "layer-major", "token-major", "page-major"};

/* Returns the alias address of a read-only block for the last check. */
static uint64_t one_layout(struct gt *t, struct kvmm_backend *be, enum kvmm_layout layout,
			   struct kvmm_cache **keep)
{
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = 2, .num_kv_heads = 2, .head_dim = 64, .elem_size = 2},
		.layout = layout,
		.max_seqs = 6,
		.max_tokens = 1,
	};
	struct kvmm_prefix_stats st;
	struct kvmm_cache *c = NULL;
	struct kvmm_cache_info info;
	uint32_t tpb, plen, a, b, d, *q;
	uint8_t x[16], y[16], z[16];
	int ret;

	/* 8 blocks a sequence, 40 blocks of budget */
	cfg.max_tokens = 4096;
	ret = kvmm_cache_create(be, &cfg, &c);
	if (!ret) {
		kvmm_cache_get_info(c, &info);
		kvmm_cache_destroy(c);
		cfg.max_tokens = 8 * info.tokens_per_block;
		cfg.budget_bytes = 40 * info.block_bytes;
		ret = kvmm_cache_create(be, &cfg, &c);
	}
	GT_CHECK(t, ret == 0, "%s: cache (%d %s)", names[layout], ret, kvmm_backend_last_error(be));
	if (ret)
		return 0;
	ret = kvmm_prefix_enable(c, NULL);
	GT_CHECK(t, ret == 0, "%s: prefix cache enabled (%d)", names[layout], ret);
	tpb = c->g.tpb;
	plen = 3 * tpb + 5;
	if (4 * tpb + tpb > NTOK_MAX) {
		GT_CHECK(t, 0, "%s: %u tokens a block is more than the test holds", names[layout],
			 tpb);
		kvmm_cache_destroy(c);
		return 0;
	}
	kvmm_prefix_stats(c, &st);
	printf("# %s: %u tokens/block, %u pages/block; measured per page: map+access %llu ns, "
	       "unmap %llu ns, copy %llu ns\n",
	       names[layout], tpb, c->g.ppb, (unsigned long long)st.cost_map_ns,
	       (unsigned long long)st.cost_unmap_ns, (unsigned long long)st.cost_copy_ns);
	GT_CHECK(t, kvmm_prefix_of(c)->costs.measured, "%s: attach costs measured", names[layout]);

	a = filled(t, c, 1, 4 * tpb);
	ret = kvmm_prefix_insert(c, a, NULL, tokA, 4 * tpb);
	GT_CHECK(t, ret == (int)(4 * tpb), "%s: 4 blocks cached (%d)", names[layout], ret);

	/* alias attach with a partial last block */
	q = malloc((plen + tpb) * sizeof(*q));
	memcpy(q, tokA, plen * sizeof(*q));
	memcpy(q + plen, tokB, tpb * sizeof(*q));
	b = attach(t, c, q, plen + tpb, plen, KVMM_ATTACH_ALIAS, false);
	free(q);
	GT_CHECK(t, kv_is(c, b, 1, 0, plen) == 0, "%s: alias reads the cached KV", names[layout]);
	GT_CHECK(t,
		 kvmm_bte(c, b, 0)->blk == kvmm_bte(c, a, 0)->blk &&
			 (kvmm_bte(c, b, 0)->flags & BT_RO),
		 "%s: the full blocks are A's, read-only", names[layout]);
	/* one page, two addresses: a byte written at A's shows at B's */
	kvmm_memcpy_to_host(be, x, addr(c, a, tpb), sizeof(x));
	memset(y, 0xa5, sizeof(y));
	ret = kvmm_memcpy_to_dev(be, addr(c, a, tpb), y, sizeof(y));
	kvmm_memcpy_to_host(be, z, addr(c, b, tpb), sizeof(z));
	GT_CHECK(t, ret == 0 && !memcmp(y, z, sizeof(y)), "%s: an aliased page is one page",
		 names[layout]);
	kvmm_memcpy_to_dev(be, addr(c, a, tpb), x, sizeof(x));
	ret = kvmm_seq_write(c, b, 0, KVMM_K, tpb, 1, x);
	GT_CHECK(t, ret == -EPERM, "%s: the API refuses a write to a shared block (%d)",
		 names[layout], ret);
	/* copy-on-write of the partial block: B's rest is its own */
	ret = kvmm_step(c, &(struct kvmm_step_entry){.seq = b, .len = 4 * tpb}, 1);
	if (!ret)
		ret = put_kv(c, b, 2, plen, 4 * tpb - plen);
	GT_CHECK(t,
		 ret == 0 && kv_is(c, b, 2, plen, 4 * tpb - plen) == 0 &&
			 kv_is(c, b, 1, 0, plen) == 0 && kv_is(c, a, 1, 0, 4 * tpb) == 0,
		 "%s: the partial block was copied and diverges (%d)", names[layout], ret);
	/* A running sequence's blocks are not evicted. */
	kvmm_seq_close(c, a);
	ret = kvmm_prefix_evict(c, 100);
	GT_CHECK(t, ret == 1, "%s: only the unmapped block is evictable (%d)", names[layout], ret);

	/* copy attach (own blocks mapped first): its own copies, which
	 * diverge from the cached pages B maps */
	d = attach(t, c, tokA, 3 * tpb, 3 * tpb, KVMM_ATTACH_COPY, true);
	GT_CHECK(t,
		 kv_is(c, d, 1, 0, 3 * tpb) == 0 &&
			 kvmm_bte(c, d, 0)->blk != kvmm_bte(c, b, 0)->blk,
		 "%s: a copy attach reads the KV from its own blocks", names[layout]);
	kvmm_memcpy_to_host(be, x, addr(c, b, 1), sizeof(x));
	memset(y, 0x3c, sizeof(y));
	ret = kvmm_memcpy_to_dev(be, addr(c, d, 1), y, sizeof(y));
	kvmm_memcpy_to_host(be, z, addr(c, b, 1), sizeof(z));
	GT_CHECK(t, ret == 0 && !memcmp(x, z, sizeof(x)), "%s: the copies diverge", names[layout]);
	/* AUTO follows the rule on these costs: with own blocks mapped it is
	 * copy exactly when copying a page beats an unmap + map. */
	{
		const struct kvmm_attach_costs *k = &kvmm_prefix_of(c)->costs;
		enum kvmm_attach_mode want =
			k->copy_ns < k->map_ns + k->unmap_ns ? KVMM_ATTACH_COPY : KVMM_ATTACH_ALIAS;
		uint32_t e = attach(t, c, tokA, 3 * tpb, 3 * tpb, KVMM_ATTACH_AUTO, true);
		bool ro = kvmm_bte(c, e, 0)->flags & BT_RO;

		GT_CHECK(t, (want == KVMM_ATTACH_ALIAS) == ro, "%s: AUTO chose %s", names[layout],
			 ro ? "alias" : "copy");
		GT_CHECK(t, kv_is(c, e, 1, 0, 3 * tpb) == 0, "%s: AUTO's attach reads the KV",
			 names[layout]);
		kvmm_seq_close(c, e);
	}
	kvmm_seq_close(c, d);
	*keep = c;
	return addr(c, b, tpb + 1);
}

int main(void)
{
	struct kvmm_backend *be = gt_open_cuda_or_skip();
	struct kvmm_cache *c[4] = {0};
	struct gt t = {0};
	uint64_t ro = 0;
	uint8_t y[16];
	int ret;

	for (uint32_t i = 0; i < NTOK_MAX; i++) {
		tokA[i] = 1000 + i;
		tokB[i] = 900000 + i;
	}
	for (int l = KVMM_LAYOUT_LAYER_MAJOR; l <= KVMM_LAYOUT_PAGE_MAJOR; l++) {
		uint64_t a = one_layout(&t, be, (enum kvmm_layout)l, &c[l]);

		if (a)
			ro = a;
	}
	/* Last: a write through a read-only alias must not land. */
	memset(y, 0x77, sizeof(y));
	ret = ro ? kvmm_memcpy_to_dev(be, ro, y, sizeof(y)) : -EINVAL;
	printf("# write through a read-only alias: %d (%s)\n", ret, kvmm_backend_last_error(be));
	GT_CHECK(&t, ro && ret != 0, "a write through a read-only mapping is refused");
	for (int l = 1; l < 4; l++)
		kvmm_cache_destroy(c[l]);
	kvmm_backend_close(be);
	return gt_done(&t);
}
