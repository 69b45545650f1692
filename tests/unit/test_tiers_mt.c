// SPDX-License-Identifier: MIT
/*
 * test_tiers_mt.c - the tiers end to end on the host backend, every layout,
 * with and without the mapper: fill prefixes, evict them (spill to the
 * host pool and on to disk), restore them (prefetch, then match/attach, or
 * layer-wise attach) and compare every byte; restart from disk; write
 * policies and disk admission; a corrupt record on disk is never served;
 * hints prefetch; concurrent users (TSan).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cachetest.h"
#include "testutil.h"
#include "tier_fixture.h"
#include "tier_record.h"
#include "tiers.h"

#define NPROMPT 6
#define NBLK	6 /* blocks per prompt */

struct env {
	struct kvmm_backend *be;
	struct kvmm_cache *c;
	uint32_t tpb;
	uint64_t rec_bytes;
	uint32_t tok[NPROMPT][NBLK * 128];
};

static struct kvmm_tiers_config tiers_cfg(struct env *e, uint32_t host_recs, uint32_t disk_recs)
{
	return (struct kvmm_tiers_config){
		.host_bytes = host_recs * e->rec_bytes,
		.host_placement = KVMM_HOST_ANY_NODE,
		.disk_dir = disk_recs ? tf_dir : NULL,
		.disk_bytes = (4096 + disk_recs * e->rec_bytes),
	};
}

/* A cache (layout/mapper by i) with the prefix cache and the tiers. */
static void env_open(struct env *e, int i, const struct kvmm_tiers_config *tc_in,
		     uint32_t host_recs, uint32_t disk_recs)
{
	struct kvmm_cache_info info;
	struct kvmm_tiers_config tc;

	if (!e->be)
		e->be = ct_backend(CT_PAGE);
	/* room for every prompt cached and three sequences */
	e->c = ct_make(e->be, i, 3, -(NBLK + 2), 3 * (NBLK + 2) + NPROMPT * NBLK);
	ck_assert_int_eq(kvmm_prefix_enable(e->c, NULL), 0);
	kvmm_cache_get_info(e->c, &info);
	e->tpb = info.tokens_per_block;
	e->rec_bytes = tier_rec_bytes(e->tpb, info.block_bytes);
	for (uint32_t p = 0; p < NPROMPT; p++)
		for (uint32_t t = 0; t < NBLK * e->tpb; t++)
			e->tok[p][t] = 100000u * (p + 1) + t;
	tc = tc_in ? *tc_in : tiers_cfg(e, host_recs, disk_recs);
	if (tc_in) {
		tc.host_bytes = host_recs * e->rec_bytes;
		tc.disk_dir = disk_recs ? tf_dir : NULL;
		tc.disk_bytes = 4096 + disk_recs * e->rec_bytes;
	}
	ck_assert_int_eq(kvmm_tiers_enable(e->c, &tc), 0);
}

static void env_close(struct env *e, bool backend_too)
{
	kvmm_cache_destroy(e->c);
	e->c = NULL;
	if (backend_too) {
		kvmm_backend_close(e->be);
		e->be = NULL;
	}
}

static uint32_t cached(struct env *e, uint32_t p);

/* Prompt p's KV (identity p) written and inserted into the prefix cache. */
static void fill(struct env *e, uint32_t p)
{
	uint32_t n = NBLK * e->tpb, s;

	ck_assert_int_eq(kvmm_seq_open(e->c, n, &s), 0);
	ck_assert_int_eq(ct_step1(e->c, s, n), 0);
	ck_assert_int_eq(ct_write(e->c, s, p, 0, n), 0);
	/* what was cached already (restored) is not inserted again */
	ck_assert_int_ge(kvmm_prefix_insert(e->c, s, NULL, e->tok[p], n), 0);
	ck_assert_uint_eq(cached(e, p), n);
	ck_assert_int_eq(kvmm_seq_close(e->c, s), 0);
}

static struct kvmm_tiers_stats tstats(struct env *e)
{
	struct kvmm_tiers_stats st;

	ck_assert_int_eq(kvmm_tiers_stats(e->c, &st), 0);
	return st;
}

static uint32_t cached(struct env *e, uint32_t p)
{
	struct kvmm_prefix_handle *h;
	uint32_t m = 0;

	ck_assert_int_eq(kvmm_prefix_match(e->c, NULL, e->tok[p], NBLK * e->tpb, &h, &m), 0);
	kvmm_prefix_release(e->c, h);
	return m;
}

/* Restore prompt p (prefetch, wait, match, attach) and check every byte of
 * the first `want` tokens; returns the tokens restored. */
static uint32_t restore_check(struct env *e, uint32_t p, uint32_t want)
{
	uint32_t n = NBLK * e->tpb, found = 0, m = 0, s;
	struct kvmm_prefetch *pf = NULL;
	struct kvmm_prefix_handle *h;
	int64_t got;

	ck_assert_int_eq(kvmm_prefix_prefetch(e->c, NULL, e->tok[p], n, 0, &pf, &found), 0);
	got = kvmm_prefetch_wait(e->c, pf, n, UINT64_MAX);
	if (!pf)
		got = found;
	ck_assert_int_ge(got, 0);
	ck_assert_uint_le((uint64_t)got, found);
	kvmm_prefetch_release(e->c, pf);
	ck_assert_int_eq(kvmm_prefix_match(e->c, NULL, e->tok[p], n, &h, &m), 0);
	ck_assert_uint_ge(m, (uint64_t)got);
	if (want)
		ck_assert_uint_ge(m, want);
	if (!m)
		return 0;
	ck_assert_int_eq(kvmm_seq_open(e->c, m, &s), 0);
	ck_assert_int_eq(kvmm_seq_attach_prefix(e->c, s, h, KVMM_ATTACH_AUTO), 0);
	kvmm_prefix_release(e->c, h);
	ct_check(e->c, s, p, 0, m);
	ck_assert_int_eq(kvmm_seq_close(e->c, s), 0);
	return m;
}

/* Fill every prompt, evict everything (spill), check it is all gone from
 * the device and restore it byte for byte. */
static void roundtrip(int i, enum kvmm_write_policy hp, enum kvmm_write_policy dp)
{
	struct env e = {0};
	struct kvmm_tiers_config tc = {
		.host_placement = KVMM_HOST_ANY_NODE, .host_policy = hp, .disk_policy = dp};
	struct kvmm_tiers_stats st;
	uint32_t total = NPROMPT * NBLK;

	env_open(&e, i, &tc, 8, total + 8);
	for (uint32_t p = 0; p < NPROMPT; p++)
		fill(&e, p);
	ck_assert_int_eq(kvmm_tiers_flush(e.c), 0);
	st = tstats(&e);
	if (hp == KVMM_WRITE_THROUGH) {
		/* copied while still cached */
		ck_assert_uint_eq(st.spills_host, total);
		if (dp == KVMM_WRITE_THROUGH)
			ck_assert_uint_eq(st.spills_disk, total);
	} else {
		ck_assert_uint_eq(st.spills_host, 0);
	}
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), (int)total);
	ck_assert_int_eq(kvmm_tiers_flush(e.c), 0);
	st = tstats(&e);
	ck_assert_uint_eq(st.blocks[KVMM_RES_GPU], 0);
	ck_assert_uint_eq(st.blocks[KVMM_RES_INFLIGHT], 0);
	ck_assert_uint_le(st.blocks[KVMM_RES_HOST], 8);
	/* nothing lost: every block is on the host pool or on disk */
	ck_assert_uint_eq(st.spill_skipped, 0);
	ck_assert_uint_ge(st.blocks[KVMM_RES_DISK] + st.blocks[KVMM_RES_HOST], total);
	for (uint32_t p = 0; p < NPROMPT; p++)
		ck_assert_uint_eq(cached(&e, p), 0);
	for (uint32_t p = 0; p < NPROMPT; p++)
		ck_assert_uint_eq(restore_check(&e, p, NBLK * e.tpb), NBLK * e.tpb);
	st = tstats(&e);
	ck_assert_uint_eq(st.restores_host + st.restores_disk, total);
	ck_assert_uint_gt(st.restores_disk, 0);
	ck_assert_uint_eq(st.verify_failures + st.io_errors + st.restore_failures, 0);
	ct_verify(e.c);
	env_close(&e, true);
}

START_TEST(test_roundtrip_write_back)
{
	roundtrip(_i, KVMM_WRITE_BACK, KVMM_WRITE_BACK);
}
END_TEST

START_TEST(test_roundtrip_write_through)
{
	roundtrip(_i, KVMM_WRITE_THROUGH, KVMM_WRITE_THROUGH);
}
END_TEST

/* A restarted server finds its prefixes on disk. */
START_TEST(test_restart_from_disk)
{
	struct env e = {0};
	struct kvmm_tiers_stats st;

	env_open(&e, _i, NULL, 4, NPROMPT * NBLK + 8);
	for (uint32_t p = 0; p < NPROMPT; p++)
		fill(&e, p);
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NPROMPT * NBLK);
	kvmm_tiers_flush(e.c);
	st = tstats(&e);
	ck_assert_uint_eq(st.spill_skipped, 0);
	ck_assert_uint_ge(st.blocks[KVMM_RES_HOST] + st.blocks[KVMM_RES_DISK], NPROMPT * NBLK);
	env_close(&e, false); /* the host pool's records are written back */
	env_open(&e, _i, NULL, 4, NPROMPT * NBLK + 8);
	st = tstats(&e);
	ck_assert_uint_eq(st.disk_scan_found, NPROMPT * NBLK);
	for (uint32_t p = 0; p < NPROMPT; p++)
		ck_assert_uint_eq(restore_check(&e, p, NBLK * e.tpb), NBLK * e.tpb);
	st = tstats(&e);
	ck_assert_uint_eq(st.restores_disk, NPROMPT * NBLK);
	env_close(&e, true);
}
END_TEST

/* disk_admit_hits: a block goes to disk only after it was used again. */
START_TEST(test_disk_admission)
{
	struct env e = {0};
	struct kvmm_tiers_config tc = {.host_placement = KVMM_HOST_ANY_NODE,
				       .disk_policy = KVMM_WRITE_THROUGH,
				       .disk_admit_hits = 2};
	struct kvmm_tiers_stats st;

	env_open(&e, _i, &tc, 2 * NBLK, 4 * NBLK);
	fill(&e, 0);
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	kvmm_tiers_flush(e.c);
	st = tstats(&e);
	ck_assert_uint_eq(st.spills_host, NBLK);
	ck_assert_uint_eq(st.spills_disk, 0);
	ck_assert_uint_ge(st.disk_admit_rejects, NBLK);
	/* used again (restored, evicted once more): now admitted */
	ck_assert_uint_eq(restore_check(&e, 0, NBLK * e.tpb), NBLK * e.tpb);
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	kvmm_tiers_flush(e.c);
	st = tstats(&e);
	ck_assert_uint_eq(st.spills_disk, NBLK);
	ck_assert_uint_eq(st.blocks[KVMM_RES_DISK], NBLK);
	env_close(&e, true);
}
END_TEST

/* Corrupt a record on disk: the restore stops before it, the rest is
 * exact, the cache stays usable. */
static void scribble_all_segments(size_t at)
{
	char path[700];

	for (int seg = 0; seg < 4; seg++) {
		int fd;

		snprintf(path, sizeof(path), "%s/seg-%05d.kvmm", tf_dir, seg);
		fd = open(path, O_RDWR);
		if (fd < 0)
			continue;
		ck_assert_int_eq(pwrite(fd, "\xff\xfe", 2, (off_t)at), 2);
		close(fd);
	}
}

START_TEST(test_corrupt_record_not_served)
{
	struct env e = {0};
	struct kvmm_tiers_config tc = {.host_placement = KVMM_HOST_ANY_NODE,
				       .host_policy = KVMM_WRITE_THROUGH,
				       .disk_policy = KVMM_WRITE_THROUGH,
				       .flags = KVMM_TIERS_DISK_SCAN_HEADERS};
	struct kvmm_tiers_stats st;
	uint32_t got;

	env_open(&e, _i, &tc, NBLK, 4 * NBLK);
	fill(&e, 0);
	kvmm_tiers_flush(e.c);
	env_close(&e, false);
	/* block 3 of prompt 0 sits in slot 3 of segment 0 (written in order):
	 * flip two payload bytes behind the tier's back */
	scribble_all_segments(4096 + 4 * e.rec_bytes - 100);
	env_open(&e, _i, &tc, NBLK, 4 * NBLK);
	got = restore_check(&e, 0, 0);
	ck_assert_uint_eq(got, 3 * e.tpb);
	st = tstats(&e);
	ck_assert_uint_ge(st.verify_failures + st.io_errors, 1);
	ck_assert_uint_ge(st.restore_failures, 1);
	/* usable: the prompt is filled again, evicted, restored whole */
	fill(&e, 0);
	ck_assert_int_ge(kvmm_prefix_evict(e.c, 1000), NBLK);
	kvmm_tiers_flush(e.c);
	ck_assert_uint_eq(restore_check(&e, 0, NBLK * e.tpb), NBLK * e.tpb);
	env_close(&e, true);
}
END_TEST

/* A prefix cache with admit_hits > 1 caches a prefix only on its
 * admit_hits-th insert; restored KV was admitted before it was spilled and
 * must always be taken back (progressive and layer-wise restores). */
START_TEST(test_restore_bypasses_admission)
{
	struct kvmm_prefix_config pc = {.admit_hits = 3};
	struct kvmm_tiers_config tc;
	struct env e = {0};
	uint32_t n, found, s;
	struct kvmm_prefetch *pf;

	e.be = ct_backend(CT_PAGE);
	e.c = ct_make(e.be, _i, 3, -(NBLK + 2), 3 * (NBLK + 2) + NPROMPT * NBLK);
	ck_assert_int_eq(kvmm_prefix_enable(e.c, &pc), 0);
	{
		struct kvmm_cache_info info;

		kvmm_cache_get_info(e.c, &info);
		e.tpb = info.tokens_per_block;
		e.rec_bytes = tier_rec_bytes(e.tpb, info.block_bytes);
	}
	n = NBLK * e.tpb;
	for (uint32_t p = 0; p < 2; p++)
		for (uint32_t t = 0; t < n; t++)
			e.tok[p][t] = 100000u * (p + 1) + t;
	tc = tiers_cfg(&e, 4 * NBLK, 0);
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), 0);
	for (uint32_t p = 0; p < 2; p++) {
		/* offered admit_hits times: cached on the last offer */
		ck_assert_int_eq(kvmm_seq_open(e.c, n, &s), 0);
		ck_assert_int_eq(ct_step1(e.c, s, n), 0);
		ck_assert_int_eq(ct_write(e.c, s, p, 0, n), 0);
		for (uint32_t k = 0; k < pc.admit_hits; k++)
			kvmm_prefix_insert(e.c, s, NULL, e.tok[p], n);
		ck_assert_int_eq(kvmm_seq_close(e.c, s), 0);
		ck_assert_uint_eq(cached(&e, p), n);
	}
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), 2 * NBLK);
	kvmm_tiers_flush(e.c);
	ck_assert_uint_eq(cached(&e, 0), 0);
	/* progressive */
	ck_assert_uint_eq(restore_check(&e, 0, n), n);
	ck_assert_uint_eq(cached(&e, 0), n);
	/* layer-wise */
	ck_assert_int_eq(
		kvmm_prefix_prefetch(e.c, NULL, e.tok[1], n, KVMM_PREFETCH_LAYERWISE, &pf, &found),
		0);
	ck_assert_ptr_nonnull(pf);
	ck_assert_int_eq(kvmm_prefetch_wait(e.c, pf, n, UINT64_MAX), (int64_t)n);
	kvmm_prefetch_release(e.c, pf);
	ck_assert_uint_eq(cached(&e, 1), n);
	ck_assert_uint_eq(tstats(&e).restore_failures, 0);
	ct_verify(e.c);
	env_close(&e, true);
}
END_TEST

/* A host record whose payload went bad in memory: its copy to the device
 * runs while the checksum is computed, yet the block is never inserted
 * (its device block goes back to the pool) and the restore stops before
 * it; the blocks before it are exact, nothing leaks, the cache stays
 * usable.  Progressive (i < 3) and layer-wise (i >= 3) restores. */
START_TEST(test_corrupt_host_record_not_served)
{
	struct env e = {0};
	struct kvmm_tiers_stats st;
	struct kvmm_tiers *t;
	uint64_t keys[NBLK];
	uint32_t slot, n, found, got;
	struct kvmm_prefetch *pf = NULL;
	bool layered = _i >= 3;

	env_open(&e, _i % 3, NULL, 2 * NBLK, 0);
	n = NBLK * e.tpb;
	fill(&e, 0);
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	kvmm_tiers_flush(e.c);
	t = kvmm_tiers_of(e.c);
	tiers_keys(t, &(struct kvmm_ns){0}, e.tok[0], NBLK, keys);
	pthread_mutex_lock(&t->lock);
	ck_assert_ptr_nonnull(tidx_find(t, keys[3], &slot));
	((unsigned char *)tier_host_slot(t->host, slot))[t->hdr_bytes + 77] ^= 0x10;
	pthread_mutex_unlock(&t->lock);
	ck_assert_int_eq(kvmm_prefix_prefetch(e.c, NULL, e.tok[0], n,
					      layered ? KVMM_PREFETCH_LAYERWISE : 0, &pf, &found),
			 0);
	ck_assert_uint_eq(found, n);
	got = (uint32_t)kvmm_prefetch_wait(e.c, pf, n, UINT64_MAX);
	kvmm_prefetch_release(e.c, pf);
	ck_assert_uint_eq(got, 3 * e.tpb);
	ck_assert_uint_eq(cached(&e, 0), 3 * e.tpb);
	st = tstats(&e);
	ck_assert_uint_eq(st.verify_failures, 1);
	ck_assert_uint_ge(st.restore_failures, 1);
	ck_assert_uint_eq(st.blocks[KVMM_RES_INFLIGHT], 0);
	ct_verify(e.c);
	/* the three blocks are exact; the bad record is gone */
	ck_assert_uint_eq(restore_check(&e, 0, 3 * e.tpb), 3 * e.tpb);
	pthread_mutex_lock(&t->lock);
	ck_assert_ptr_null(tidx_find(t, keys[3], NULL));
	pthread_mutex_unlock(&t->lock);
	/* usable: filled again, evicted, restored whole */
	fill(&e, 0);
	ck_assert_int_ge(kvmm_prefix_evict(e.c, 1000), NBLK);
	kvmm_tiers_flush(e.c);
	ck_assert_uint_eq(restore_check(&e, 0, n), n);
	ct_verify(e.c);
	env_close(&e, true);
}
END_TEST

/* Layer-wise: attach at once, wait per layer, read every layer. */
START_TEST(test_layerwise_attach)
{
	struct env e = {0};
	uint32_t n, found, s;
	struct kvmm_prefetch *pf;
	struct kvmm_cache_info info;
	int ret;

	env_open(&e, _i, NULL, 2 * NBLK, NPROMPT * NBLK);
	n = NBLK * e.tpb;
	fill(&e, 1);
	/* keep the first two blocks on the device: a mixed attach */
	ck_assert_int_eq(kvmm_prefix_evict(e.c, NBLK - 2), NBLK - 2);
	kvmm_tiers_flush(e.c);
	ck_assert_uint_eq(cached(&e, 1), 2 * e.tpb);
	ck_assert_int_eq(
		kvmm_prefix_prefetch(e.c, NULL, e.tok[1], n, KVMM_PREFETCH_LAYERWISE, &pf, &found),
		0);
	ck_assert_ptr_nonnull(pf);
	ck_assert_uint_eq(found, n);
	ck_assert_int_eq(kvmm_seq_open(e.c, n, &s), 0);
	ret = kvmm_seq_attach_prefetch(e.c, s, pf);
	ck_assert_int_eq(ret, (int)n);
	kvmm_cache_get_info(e.c, &info);
	/* copies on streams: every layer has an event to wait for, also
	 * where one (layer 0's) covers all of them (0 would say complete) */
	for (uint32_t l = info.shape.num_layers; getenv("KVMM_TIER_COPY_ASYNC") && l-- > 0;) {
		uint64_t ev = 0;

		ck_assert_int_eq(kvmm_prefetch_layer_event(e.c, pf, l, &ev), 0);
		ck_assert_uint_ne(ev, 0);
	}
	for (uint32_t l = 0; l < info.shape.num_layers; l++) {
		uint64_t ev = 1;

		ck_assert_int_eq(kvmm_prefetch_wait_layer(e.c, pf, l), 0);
		ck_assert_int_eq(kvmm_prefetch_layer_event(e.c, pf, l, &ev), 0);
		if (!getenv("KVMM_TIER_COPY_ASYNC"))
			ck_assert_uint_eq(ev, 0); /* no events on the host backend */
	}
	ct_check(e.c, s, 1, 0, n);
	ck_assert_int_eq(kvmm_prefetch_wait(e.c, pf, n, UINT64_MAX), (int64_t)n);
	kvmm_prefetch_release(e.c, pf);
	ck_assert_int_eq(kvmm_seq_close(e.c, s), 0);
	/* and the restored blocks are in the prefix cache */
	ck_assert_uint_eq(cached(&e, 1), n);
	ct_verify(e.c);
	env_close(&e, true);
}
END_TEST

/*
 * Write-back, and a host pool full of records not yet on disk: a restore
 * from disk needs their slots, so it writes them back and waits for the
 * writes instead of stopping at its first block.
 */
START_TEST(test_restore_waits_for_write_back)
{
	struct env e = {0};
	struct kvmm_tiers_config tc = {.host_placement = KVMM_HOST_ANY_NODE,
				       .host_policy = KVMM_WRITE_BACK,
				       .disk_policy = KVMM_WRITE_BACK};
	struct kvmm_tiers_stats st;
	uint32_t n;

	env_open(&e, _i, &tc, 2, 4 * NBLK);
	n = NBLK * e.tpb;
	fill(&e, 0);
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	fill(&e, 1);
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	ck_assert_int_eq(kvmm_tiers_flush(e.c), 0);
	st = tstats(&e);
	/* prompt 0 wholly on disk; the pool holds prompt 1's last blocks,
	 * unwritten (when the mover's timing let them stay so) */
	ck_assert_uint_eq(st.blocks[KVMM_RES_HOST], 2);
	ck_assert_uint_ge(st.blocks[KVMM_RES_DISK], 2 * NBLK - 2);
	ck_assert_uint_eq(restore_check(&e, 0, n), n);
	/* and prompt 1's records were written, not lost */
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	ck_assert_int_eq(kvmm_tiers_flush(e.c), 0);
	ck_assert_uint_eq(restore_check(&e, 1, n), n);
	st = tstats(&e);
	ck_assert_uint_eq(st.verify_failures + st.io_errors + st.restore_failures, 0);
	ct_verify(e.c);
	env_close(&e, true);
}
END_TEST

/* The same on the null backend (bookkeeping only: the claim's writes are
 * done at once, so the restore claims again at once). */
START_TEST(test_restore_waits_for_write_back_null)
{
	struct kvmm_backend_config bc = {.type = KVMM_BACKEND_NULL, .page_size = CT_PAGE};
	struct env e = {0};
	struct kvmm_tiers_config tc = {.host_placement = KVMM_HOST_ANY_NODE,
				       .host_policy = KVMM_WRITE_BACK,
				       .disk_policy = KVMM_WRITE_BACK};
	struct kvmm_prefetch *pf = NULL;
	uint32_t n, found = 0, s;

	ck_assert_int_eq(kvmm_backend_open(&bc, &e.be), 0);
	env_open(&e, _i, &tc, 2, 4 * NBLK);
	n = NBLK * e.tpb;
	for (uint32_t p = 0; p < 2; p++) {
		ck_assert_int_eq(kvmm_seq_open(e.c, n, &s), 0);
		ck_assert_int_eq(ct_step1(e.c, s, n), 0);
		ck_assert_int_ge(kvmm_prefix_insert(e.c, s, NULL, e.tok[p], n), 0);
		ck_assert_int_eq(kvmm_seq_close(e.c, s), 0);
		ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	}
	ck_assert_int_eq(kvmm_tiers_flush(e.c), 0);
	ck_assert_uint_eq(tstats(&e).blocks[KVMM_RES_HOST], 2);
	ck_assert_int_eq(kvmm_prefix_prefetch(e.c, NULL, e.tok[0], n, 0, &pf, &found), 0);
	ck_assert_ptr_nonnull(pf);
	ck_assert_uint_eq(found, n);
	ck_assert_int_eq(kvmm_prefetch_wait(e.c, pf, n, UINT64_MAX), (int64_t)n);
	kvmm_prefetch_release(e.c, pf);
	ck_assert_uint_eq(cached(&e, 0), n);
	env_close(&e, true);
}
END_TEST

/* A hint prefetches: later matches hit without an explicit prefetch. */
START_TEST(test_hint_prefetches)
{
	struct env e = {0};
	uint32_t n;

	env_open(&e, _i, NULL, 2 * NBLK, 4 * NBLK);
	n = NBLK * e.tpb;
	fill(&e, 2);
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	kvmm_tiers_flush(e.c);
	ck_assert_uint_eq(cached(&e, 2), 0);
	ck_assert_int_ge(kvmm_prefix_hint(e.c, NULL, e.tok[2], n, 0), 0);
	kvmm_tiers_flush(e.c);
	ck_assert_uint_eq(cached(&e, 2), n);
	env_close(&e, true);
}
END_TEST

START_TEST(test_bad_args)
{
	struct env e = {0};
	struct kvmm_tiers_config tc;
	struct kvmm_prefetch *pf = (void *)1;
	uint32_t found;
	struct kvmm_tiers_stats st;
	char buf[64];

	e.be = ct_backend(CT_PAGE);
	e.c = ct_make(e.be, 0, 2, -4, 16);
	tc = (struct kvmm_tiers_config){.host_bytes = 1u << 20,
					.host_placement = KVMM_HOST_ANY_NODE};
	/* no prefix cache yet */
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_enable(e.c, NULL), 0);
	ck_assert_int_eq(kvmm_tiers_enable(NULL, &tc), -EINVAL);
	ck_assert_int_eq(kvmm_tiers_enable(e.c, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_tiers_stats(e.c, &st), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_prefetch(e.c, NULL, e.tok[0], 8, 0, &pf, &found), -EINVAL);
	tc.host_bytes = 0;
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -EINVAL);
	tc.host_bytes = 1u << 20;
	tc.flags = 1u << 30;
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -EINVAL);
	tc.flags = 0;
	tc.host_placement = KVMM_HOST_NODE;
	tc.host_node = -5;
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -EINVAL);
	tc.host_placement = KVMM_HOST_ANY_NODE;
	tc.disk_dir = tf_dir; /* without a capacity */
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -EINVAL);
	tc.disk_dir = NULL;
	tc.host_policy = 7;
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -EINVAL);
	tc.host_policy = KVMM_WRITE_BACK;
	/* a persistent host pool: the module's or nothing */
	tc.host_pool_name = "kvmm-test-persist";
	tc.flags = KVMM_TIERS_NO_KMOD;
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -EINVAL);
	tc.flags = 0;
	if (kvmm_probe(NULL, NULL) == -ENODEV)
		ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -ENODEV);
	tc.host_pool_name = NULL;
	tc.host_bytes = 4096; /* less than one record */
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -EINVAL);
	tc.host_bytes = 1u << 20;
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), 0);
	ck_assert_int_eq(kvmm_tiers_enable(e.c, &tc), -EEXIST);
	ck_assert_int_eq(kvmm_prefix_prefetch(e.c, NULL, NULL, 8, 0, &pf, &found), -EINVAL);
	ck_assert_int_eq(kvmm_prefix_prefetch(e.c, NULL, e.tok[0], 8, 1u << 9, &pf, &found),
			 -EINVAL);
	ck_assert_int_eq(kvmm_prefetch_wait(e.c, NULL, 8, 0), -EINVAL);
	kvmm_prefetch_release(e.c, NULL);
	ck_assert_int_eq(kvmm_seq_attach_prefetch(e.c, 0, NULL), -EINVAL);
	ck_assert_int_eq(kvmm_tiers_stats(e.c, NULL), -EINVAL);
	ck_assert_int_gt(kvmm_tiers_stats_json(e.c, buf, sizeof(buf)), (int)sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "{\"host_node\":"));
	/* nothing anywhere: found 0, no handle */
	ck_assert_int_eq(kvmm_prefix_prefetch(e.c, NULL, e.tok[0], 8, 0, &pf, &found), 0);
	ck_assert_ptr_null(pf);
	ck_assert_uint_eq(found, 0);
	env_close(&e, true);
}
END_TEST

/* Several threads fill, evict, prefetch and restore their own prompts
 * while sharing the tiers (TSan). */
struct worker {
	struct env *e;
	uint32_t p;
	int bad;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct env *e = w->e;
	uint32_t n = NBLK * e->tpb;

	for (int r = 0; r < (int)tu_scaled(6) && !w->bad; r++) {
		struct kvmm_prefetch *pf = NULL;
		struct kvmm_prefix_handle *h;
		uint32_t found = 0, m = 0, s;
		char why[200];

		if (kvmm_prefix_evict(e->c, 2) < 0)
			w->bad = 1;
		if (kvmm_prefix_prefetch(e->c, NULL, e->tok[w->p], n, 0, &pf, &found))
			w->bad = 2;
		if (pf) {
			kvmm_prefetch_wait(e->c, pf, n, UINT64_MAX);
			kvmm_prefetch_release(e->c, pf);
		}
		if (kvmm_prefix_match(e->c, NULL, e->tok[w->p], n, &h, &m))
			w->bad = 3;
		if (!h)
			continue;
		if (kvmm_seq_open(e->c, m, &s)) {
			kvmm_prefix_release(e->c, h);
			continue; /* all slots busy: another round */
		}
		if (kvmm_seq_attach_prefix(e->c, s, h, KVMM_ATTACH_AUTO) == 0 &&
		    ct_check_read(e->c, s, w->p, 0, m, why, sizeof(why)))
			w->bad = 4;
		kvmm_prefix_release(e->c, h);
		kvmm_seq_close(e->c, s);
	}
	return NULL;
}

START_TEST(test_concurrent)
{
	struct env e = {0};
	struct worker w[3];
	pthread_t t[3];

	env_open(&e, _i, NULL, 6, NPROMPT * NBLK);
	for (uint32_t p = 0; p < 3; p++)
		fill(&e, p);
	for (int i = 0; i < 3; i++) {
		w[i] = (struct worker){.e = &e, .p = (uint32_t)i};
		ck_assert_int_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(!w[i].bad, "worker %d failed (%d)", i, w[i].bad);
	}
	kvmm_tiers_flush(e.c);
	ck_assert_uint_eq(tstats(&e).verify_failures, 0);
	ct_verify(e.c);
	env_close(&e, true);
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc, *ta;

	if (tf_need_direct())
		return 77;
	s = suite_create("tiers");
	tc = tcase_create("tiers");
	tcase_set_timeout(tc, 300);
	tcase_add_checked_fixture(tc, tf_setup, tf_teardown);
	/* i: layout i % 3 (layer-, token-, page-major), mapper when i >= 3 */
	tcase_add_loop_test(tc, test_roundtrip_write_back, 0, 6);
	tcase_add_loop_test(tc, test_roundtrip_write_through, 0, 6);
	tcase_add_loop_test(tc, test_restart_from_disk, 0, 3);
	tcase_add_loop_test(tc, test_disk_admission, 0, 3);
	tcase_add_loop_test(tc, test_corrupt_record_not_served, 0, 3);
	tcase_add_loop_test(tc, test_layerwise_attach, 0, 6);
	tcase_add_loop_test(tc, test_restore_bypasses_admission, 0, 3);
	tcase_add_loop_test(tc, test_corrupt_host_record_not_served, 0, 6);
	tcase_add_loop_test(tc, test_hint_prefetches, 0, 3);
	tcase_add_loop_test(tc, test_restore_waits_for_write_back, 0, 6);
	tcase_add_loop_test(tc, test_restore_waits_for_write_back_null, 0, 3);
	tcase_add_test(tc, test_bad_args);
	tcase_add_loop_test(tc, test_concurrent, 3, 6);
	suite_add_tcase(s, tc);
	ta = tcase_create("tiers-async");
	tcase_set_timeout(ta, 300);
	tcase_add_checked_fixture(ta, tf_async_setup, tf_async_teardown);
	tcase_add_loop_test(ta, test_roundtrip_write_back, 0, 6);
	tcase_add_loop_test(ta, test_roundtrip_write_through, 0, 3);
	tcase_add_loop_test(ta, test_restart_from_disk, 0, 3);
	tcase_add_loop_test(ta, test_corrupt_host_record_not_served, 0, 6);
	tcase_add_loop_test(ta, test_layerwise_attach, 0, 3);
	tcase_add_loop_test(ta, test_restore_waits_for_write_back, 0, 3);
	tcase_add_loop_test(ta, test_restore_bypasses_admission, 0, 3);
	tcase_add_loop_test(ta, test_concurrent, 3, 6);
	suite_add_tcase(s, ta);
	return tu_run(s);
}
