// SPDX-License-Identifier: MIT
/*
 * test_tiers_null.c - the tiers on the null backend: bookkeeping only (no
 * bytes in the host pool, no files for the disk tier), with the same
 * accounting as on the host backend.
 *
 * One random script of calls (fill a prompt, evict, prefetch, hint,
 * match) runs on a host-backend cache and on a null-backend cache of the
 * same geometry, each with the prefix cache and the tiers; after every
 * call (and a flush) the tier stats must be equal (residency per tier,
 * blocks and bytes spilled and restored per tier, evictions, capacity in
 * use, never over budget) and so must the host pool's LRU and the disk's
 * leaf LRU.  Write policies and disk admission vary by test.  The null
 * side must also say it verified nothing.
 *
 * The host side must not let its threads' timing decide: calls that spill
 * or restore go a block at a time and are flushed, so no two disk
 * operations of the host backend race (with several in flight, its order
 * is that of their completions; the null backend's is that of instant
 * I/O, which is what the host does when they do not race).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cachetest.h"
#include "testutil.h"
#include "tier_fixture.h"
#include "tier_record.h"
#include "tiers.h"
#include "tier_disk_internal.h"

#define NPROMPT	  8
#define NBLK	  6 /* blocks per prompt */
#define HOST_RECS 8 /* a prompt's blocks fit: one round of claims */
#define DISK_RECS 20

enum { SIDE_HOST = 0, SIDE_NULL = 1 };

struct side {
	struct kvmm_backend *be;
	struct kvmm_cache *c;
};

struct pair {
	struct side s[2];
	uint32_t tpb;
	uint64_t rec_bytes;
	struct kvmm_tiers_config tc;
	uint32_t tok[NPROMPT][NBLK * 128];
};

static struct kvmm_backend *backend(enum kvmm_backend_type type, uint64_t page)
{
	struct kvmm_backend_config cfg = {.type = type, .page_size = page};
	struct kvmm_backend *be = NULL;

	ck_assert_int_eq(kvmm_backend_open(&cfg, &be), 0);
	return be;
}

/* Both caches (layout by i, no mapper thread: the script alone decides),
 * the tiers as tc says. */
static void pair_open(struct pair *p, int i, const struct kvmm_tiers_config *tc, bool disk)
{
	struct kvmm_cache_info info;

	memset(p, 0, sizeof(*p));
	for (int k = 0; k < 2; k++) {
		struct side *s = &p->s[k];

		s->be = backend(k == SIDE_HOST ? KVMM_BACKEND_HOST : KVMM_BACKEND_NULL, CT_PAGE);
		/* room for every prompt: the script's evictions are the
		 * only ones (see script()) */
		s->c = ct_make(s->be, i % 3, 2, -(NBLK + 2), NPROMPT * NBLK + 2 * (NBLK + 2));
		ck_assert_int_eq(kvmm_prefix_enable(s->c, NULL), 0);
	}
	kvmm_cache_get_info(p->s[0].c, &info);
	p->tpb = info.tokens_per_block;
	p->rec_bytes = tier_rec_bytes(p->tpb, info.block_bytes);
	for (uint32_t q = 0; q < NPROMPT; q++)
		for (uint32_t t = 0; t < NBLK * p->tpb; t++)
			/* prompts share their first two blocks in pairs */
			p->tok[q][t] = t < 2 * p->tpb ? 1000u * (q / 2) + t : 100000u * (q + 1) + t;
	p->tc = *tc;
	p->tc.host_placement = KVMM_HOST_ANY_NODE;
	p->tc.host_bytes = HOST_RECS * p->rec_bytes;
	p->tc.disk_dir = disk ? tf_dir : NULL;
	p->tc.disk_bytes = disk ? 4096 + DISK_RECS * p->rec_bytes : 0;
	p->tc.flags |= KVMM_TIERS_NO_KMOD;
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(kvmm_tiers_enable(p->s[k].c, &p->tc), 0);
}

static void pair_close(struct pair *p)
{
	for (int k = 0; k < 2; k++) {
		kvmm_cache_destroy(p->s[k].c);
		kvmm_backend_close(p->s[k].be);
	}
}

static struct kvmm_tiers_stats tstats(struct kvmm_cache *c)
{
	struct kvmm_tiers_stats st;

	ck_assert_int_eq(kvmm_tiers_flush(c), 0);
	ck_assert_int_eq(kvmm_tiers_stats(c, &st), 0);
	return st;
}

/* Prompt q's KV computed and inserted (the part not cached already). */
static void fill(struct pair *p, int k, uint32_t q)
{
	struct kvmm_cache *c = p->s[k].c;
	uint32_t n = NBLK * p->tpb, s;

	ck_assert_int_eq(kvmm_seq_open(c, n, &s), 0);
	ck_assert_int_eq(ct_step1(c, s, n), 0);
	if (k == SIDE_HOST)
		ck_assert_int_eq(ct_write(c, s, q, 0, n), 0);
	ck_assert_int_ge(kvmm_prefix_insert(c, s, NULL, p->tok[q], n), 0);
	ck_assert_int_eq(kvmm_seq_close(c, s), 0);
}

static uint32_t matched(struct pair *p, int k, uint32_t q)
{
	struct kvmm_prefix_handle *h;
	uint32_t m = 0;

	ck_assert_int_eq(kvmm_prefix_match(p->s[k].c, NULL, p->tok[q], NBLK * p->tpb, &h, &m), 0);
	kvmm_prefix_release(p->s[k].c, h);
	return m;
}

/*
 * Prefetch prompt q and wait for it, a block longer each time (twice: a
 * prefetch stops where the host pool has no room yet, e.g. while records
 * are written back), each finished before the next: the host's disk reads
 * complete in any order and a record joins the host pool's LRU when its
 * read completes, so several in flight would order the LRU by thread
 * timing.  Returns the tokens found, summed; hint: by kvmm_prefix_hint's
 * prefetch instead.
 */
static int64_t restore(struct pair *p, int k, uint32_t q, bool hint)
{
	struct kvmm_cache *c = p->s[k].c;
	int64_t sum = 0;

	for (uint32_t b = 2; b < 2 * NBLK + 2; b++) {
		struct kvmm_prefetch *pf = NULL;
		uint32_t n = b / 2 * p->tpb, found = 0;
		int ret;

		if (hint) {
			ret = kvmm_prefix_hint(c, NULL, p->tok[q], n, 0);
			ck_assert_int_ge(ret, 0);
			sum += ret;
		} else {
			ck_assert_int_eq(
				kvmm_prefix_prefetch(c, NULL, p->tok[q], n, 0, &pf, &found), 0);
			sum += pf ? kvmm_prefetch_wait(c, pf, found, UINT64_MAX) : found;
			kvmm_prefetch_release(c, pf);
		}
		ck_assert_int_eq(kvmm_tiers_flush(c), 0);
	}
	return sum;
}

#define EQ(f)                                                                                 \
	ck_assert_msg(a->f == b->f, "step %u (%s): " #f ": host %llu, null %llu", step, what, \
		      (unsigned long long)a->f, (unsigned long long)b->f)

static void compare(const struct pair *p, const struct kvmm_tiers_stats *a,
		    const struct kvmm_tiers_stats *b, uint32_t step, const char *what)
{
	for (int r = 0; r < KVMM_RES__COUNT; r++)
		ck_assert_msg(a->blocks[r] == b->blocks[r], "step %u (%s): blocks[%d]: %llu, %llu",
			      step, what, r, (unsigned long long)a->blocks[r],
			      (unsigned long long)b->blocks[r]);
	EQ(host_bytes);
	EQ(host_slot_bytes);
	EQ(host_slots);
	EQ(host_slots_free);
	EQ(disk_capacity_bytes);
	EQ(disk_used_bytes);
	EQ(spills_host);
	EQ(spill_host_bytes);
	EQ(spills_disk);
	EQ(spill_disk_bytes);
	EQ(restores_host);
	EQ(restores_disk);
	EQ(restore_bytes);
	EQ(prefetches);
	EQ(prefetch_blocks);
	EQ(spill_skipped);
	EQ(host_evictions);
	EQ(host_drops_unwritten);
	/* (not disk_admit_rejects: it counts looks at records, which
	 * depend on when the host's mover sealed them) */
	EQ(disk_evictions);
	EQ(restore_failures);
	/* capacity: never over budget, on either side */
	for (int k = 0; k < 2; k++) {
		const struct kvmm_tiers_stats *st = k ? b : a;

		ck_assert_uint_le((st->host_slots - st->host_slots_free) * st->host_slot_bytes,
				  p->tc.host_bytes);
		ck_assert_uint_le(st->disk_used_bytes, p->tc.disk_bytes);
		ck_assert_uint_le(st->blocks[KVMM_RES_HOST], HOST_RECS);
		ck_assert_uint_le(st->blocks[KVMM_RES_DISK], DISK_RECS);
	}
	/* the host side checked real bytes and found them good; the null
	 * side had nothing to check and says so */
	ck_assert_uint_eq(a->bookkeeping_only, 0);
	ck_assert_uint_eq(a->verify_failures + a->io_errors, 0);
	ck_assert_uint_eq(b->bookkeeping_only, 1);
	ck_assert_uint_eq(b->verify_failures + b->io_errors, 0);
	ck_assert_ptr_nonnull(strstr(b->host_source, "bookkeeping only"));
	ck_assert_ptr_null(strstr(a->host_source, "bookkeeping"));
}

/* The host pool's records in LRU order (their keys and flags, but COLD:
 * the module's page state), as one number. */
static uint64_t lru_digest(struct kvmm_cache *c)
{
	struct kvmm_tiers *t = kvmm_tiers_of(c);
	uint64_t h = 1469598103934665603ull;

	pthread_mutex_lock(&t->lock);
	for (uint32_t i = t->lru_head; i != TIER_NIL; i = t->ent[i].next)
		h = (h ^ t->ent[i].key ^ ((uint64_t)(t->ent[i].flags & ~E_COLD) << 56)) *
		    1099511628211ull;
	pthread_mutex_unlock(&t->lock);
	return h;
}

/* The disk's evictable leaves in LRU order and its record count. */
static uint64_t disk_digest(struct kvmm_cache *c)
{
	struct tier_disk *d = kvmm_tiers_of(c)->disk;
	uint64_t h = 1469598103934665603ull;

	if (!d)
		return 0;
	pthread_mutex_lock(&d->lock);
	for (uint32_t i = d->lru_head; i != NIL; i = d->slots[i].next)
		h = (h ^ d->slots[i].key) * 1099511628211ull;
	h ^= d->st.records;
	pthread_mutex_unlock(&d->lock);
	return h;
}

/* The script: n random calls, the same on both sides. */
static void script(int i, const struct kvmm_tiers_config *tc, bool disk, uint32_t n)
{
	static const char *const names[] = {"fill", "evict", "restore", "hint", "match"};
	struct kvmm_tiers_stats a, b;
	struct tu_rng rng;
	struct pair p;
	uint64_t hits[3] = {0};

	pair_open(&p, i, tc, disk);
	tu_rng_init(&rng, tu_seed() + (uint64_t)i);
	for (uint32_t step = 0; step < n; step++) {
		uint32_t op = (uint32_t)tu_rng_below(&rng, 5),
			 q = (uint32_t)tu_rng_below(&rng, NPROMPT);
		uint32_t nev = 1 + (uint32_t)tu_rng_below(&rng, 2 * NBLK);
		int64_t r[2] = {0, 0};

		/* fills first, then everything spilled, the newest prompt (in
		 * the host pool) and the oldest (on disk) restored: the tiers
		 * are exercised however short the random part */
		if (step < NPROMPT)
			op = 0, q = step;
		else if (step == NPROMPT)
			op = 1, nev = NPROMPT * NBLK;
		else if (step <= NPROMPT + 2)
			op = 2, q = step == NPROMPT + 1 ? NPROMPT - 1 : 0;
		for (int k = 0; k < 2; k++) {
			struct kvmm_cache *c = p.s[k].c;

			switch (op) {
			case 0:
				fill(&p, k, q);
				break;
			case 1:
				/* a block at a time, each spill (and the disk
				 * writes it starts) finished before the next */
				for (uint32_t e = 0; e < nev; e++) {
					r[k] += kvmm_prefix_evict(c, 1);
					ck_assert_int_eq(kvmm_tiers_flush(c), 0);
				}
				break;
			case 2:
			case 3:
				r[k] = restore(&p, k, q, op == 3);
				break;
			default:
				break;
			}
			/* what the host's background threads do is done */
			ck_assert_int_eq(kvmm_tiers_flush(c), 0);
			r[k] = r[k] * 1000003 + matched(&p, k, q);
		}
		ck_assert_msg(r[0] == r[1], "step %u (%s %u): host %lld, null %lld", step,
			      names[op], q, (long long)r[0], (long long)r[1]);
		a = tstats(p.s[SIDE_HOST].c);
		b = tstats(p.s[SIDE_NULL].c);
		compare(&p, &a, &b, step, names[op]);
		/* and the same records, in the same eviction order */
		ck_assert_msg(lru_digest(p.s[SIDE_HOST].c) == lru_digest(p.s[SIDE_NULL].c),
			      "step %u (%s): the host pools' LRUs differ", step, names[op]);
		ck_assert_msg(disk_digest(p.s[SIDE_HOST].c) == disk_digest(p.s[SIDE_NULL].c),
			      "step %u (%s): the disks' leaf LRUs differ", step, names[op]);
		hits[0] = a.spills_host;
		hits[1] = a.restores_host;
		hits[2] = a.restores_disk;
	}
	/* the script did exercise the tiers */
	ck_assert_uint_gt(hits[0], 0);
	ck_assert_uint_gt(hits[1] + hits[2], 0);
	if (disk && tc->disk_admit_hits <= 1)
		ck_assert_uint_gt(hits[2], 0);
	pair_close(&p);
}

static uint32_t steps(void)
{
	return (uint32_t)tu_scaled(400) + NPROMPT + 8;
}

/* The write policies and disk admission compared, each on every layout. */
static const struct {
	enum kvmm_write_policy host, disk;
	uint32_t admit_hits;
	bool disk_on;
} policies[] = {
	{KVMM_WRITE_BACK, KVMM_WRITE_BACK, 0, false}, /* host pool only */
	{KVMM_WRITE_BACK, KVMM_WRITE_BACK, 0, true},  /* kvmm's default */
	{KVMM_WRITE_THROUGH, KVMM_WRITE_THROUGH, 0, true},
	{KVMM_WRITE_THROUGH, KVMM_WRITE_BACK, 0, true},
	{KVMM_WRITE_BACK, KVMM_WRITE_BACK, 2, true}, /* disk admission */
};
#define NPOLICIES (int)(sizeof(policies) / sizeof(policies[0]))

/* _i: policy _i / 3 on layout _i % 3 */
START_TEST(test_same_as_host)
{
	struct kvmm_tiers_config tc = {.host_policy = policies[_i / 3].host,
				       .disk_policy = policies[_i / 3].disk,
				       .disk_admit_hits = policies[_i / 3].admit_hits};

	script(_i % 3, &tc, policies[_i / 3].disk_on, steps());
}
END_TEST

/* Terabytes of tiers on the null backend cost their index, not their size:
 * no file in the disk directory (which need not exist), no host memory. */
START_TEST(test_null_scale)
{
	struct kvmm_backend *be = backend(KVMM_BACKEND_NULL, 2ull << 20);
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = 32, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.layout = KVMM_LAYOUT_TOKEN_MAJOR,
		.max_seqs = 4,
		.max_tokens = 1u << 16,
		.budget_bytes = 4ull << 30,
	};
	struct kvmm_tiers_config tc = {
		.host_bytes = 256ull << 30,
		.host_placement = KVMM_HOST_ANY_NODE,
		.disk_dir = "/nonexistent/kvmm-null-disk",
		.disk_bytes = 1ull << 40,
	};
	struct kvmm_tiers_stats st;
	struct kvmm_cache *c;
	struct rusage ru0, ru1;
	char json[4096];

	getrusage(RUSAGE_SELF, &ru0);
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	ck_assert_int_eq(kvmm_prefix_enable(c, NULL), 0);
	ck_assert_int_eq(kvmm_tiers_enable(c, &tc), 0);
	ck_assert_int_eq(kvmm_tiers_stats(c, &st), 0);
	getrusage(RUSAGE_SELF, &ru1);
	ck_assert_uint_eq(st.bookkeeping_only, 1);
	ck_assert_uint_le(st.host_bytes, tc.host_bytes);
	ck_assert_uint_gt(st.host_bytes, tc.host_bytes / 2);
	ck_assert_uint_gt(st.host_slots, 100000);
	ck_assert_uint_eq(st.host_slots_free, st.host_slots);
	ck_assert_uint_gt(st.disk_capacity_bytes, tc.disk_bytes / 2);
	ck_assert_uint_eq(st.disk_used_bytes, 0);
	/* the index only: well under a GiB of the 1.25 TiB (ru_maxrss in KiB) */
	ck_assert_int_lt(ru1.ru_maxrss - ru0.ru_maxrss, 1 << 20);
	ck_assert_int_gt(kvmm_tiers_stats_json(c, json, sizeof(json)), 0);
	ck_assert_ptr_nonnull(strstr(json, "\"bookkeeping_only\":1"));
	/* no persistent pool of nothing */
	kvmm_cache_destroy(c);
	ck_assert_int_eq(kvmm_cache_create(be, &cfg, &c), 0);
	ck_assert_int_eq(kvmm_prefix_enable(c, NULL), 0);
	tc.host_pool_name = "kvmm-null-test";
	ck_assert_int_eq(kvmm_tiers_enable(c, &tc), -EINVAL);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc;

	/* the host side's disk tier needs O_DIRECT */
	if (tf_need_direct())
		return 77;
	s = suite_create("tiers_null");
	tc = tcase_create("null");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, tf_setup, tf_teardown);
	tcase_add_loop_test(tc, test_same_as_host, 0, 3 * NPOLICIES);
	tcase_add_test(tc, test_null_scale);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
