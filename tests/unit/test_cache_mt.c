// SPDX-License-Identifier: MIT
/*
 * test_cache_mt.c - the cache under concurrency (run under ThreadSanitizer
 * by make test-tsan): worker threads admit, grow, write, check, publish
 * and alias, and close their own sequences while the mapper maps ahead, a
 * thread moves the budget up and down and another reads stats.  Threads
 * record failures; the main thread asserts after joining them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cachetest.h"
#include "testutil.h"

enum { WORKERS = 4, SEQS = 10, MAXB = 10, LOW = 16, HIGH = 64 };

struct shared {
	struct kvmm_cache *c;
	atomic_int stop;
	atomic_uint next_id;
	atomic_ulong steps, enomem, aliases;
	pthread_mutex_t err_lock;
	char err[256];
};

struct worker {
	struct shared *sh;
	pthread_t th;
	uint64_t seed;
};

static void report(struct shared *sh, const char *what, int ret, const char *why)
{
	pthread_mutex_lock(&sh->err_lock);
	if (!sh->err[0])
		snprintf(sh->err, sizeof(sh->err), "%s: %d %s", what, ret, why ? why : "");
	pthread_mutex_unlock(&sh->err_lock);
	atomic_store(&sh->stop, 1);
}

/* Publish a's first two blocks, alias them into a fresh sequence, check
 * it reads a's KV, and let everything go again. */
static void share_once(struct shared *sh, uint32_t a, uint32_t id)
{
	struct kvmm_cache *c = sh->c;
	uint32_t tpb = c->g.tpb, b;
	kvmm_blk_t blk[2];
	char why[160] = "";
	int ret;

	ret = kvmm_seq_publish(c, a, 0, 2, blk);
	if (ret) {
		report(sh, "publish", ret, NULL);
		return;
	}
	ret = kvmm_seq_open(c, 0, &b);
	if (!ret) {
		ret = kvmm_seq_alias(c, b, 0, 2, blk);
		if (!ret)
			ret = ct_step1(c, b, 2 * tpb);
		if (!ret && ct_check_read(c, b, id, 0, 2 * tpb, why, sizeof(why)))
			report(sh, "aliased KV", 0, why);
		if (ret && ret != -ENOMEM)
			report(sh, "alias", ret, NULL);
		atomic_fetch_add(&sh->aliases, 1);
		kvmm_seq_close(c, b);
	} else if (ret != -ENOSPC) {
		report(sh, "open for alias", ret, NULL);
	}
	kvmm_blk_put(c, blk, 2);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	struct kvmm_cache *c = sh->c;
	uint32_t tpb = c->g.tpb, maxt = c->g.max_tokens;
	uint64_t n = tu_scaled(300);
	struct tu_rng r;
	char why[160] = "";

	tu_rng_init(&r, w->seed);
	for (uint64_t i = 0; i < n && !atomic_load(&sh->stop); i++) {
		uint32_t s, len = 0, id = atomic_fetch_add(&sh->next_id, 1);
		uint32_t steps = 1 + (uint32_t)tu_rng_below(&r, 12);
		int ret = kvmm_seq_open(c, (uint32_t)tu_rng_below(&r, maxt), &s);

		if (ret == -ENOSPC)
			continue;
		if (ret) {
			report(sh, "open", ret, NULL);
			break;
		}
		for (uint32_t k = 0; k < steps && len < maxt; k++) {
			uint32_t nl = len + 1 + (uint32_t)tu_rng_below(&r, tpb);

			if (nl > maxt)
				nl = maxt;
			ret = tu_rng_below(&r, 4) ? ct_step1(c, s, nl) : kvmm_seq_reserve(c, s, nl);
			if (ret == -ENOMEM) {
				atomic_fetch_add(&sh->enomem, 1);
				break;
			}
			if (!ret)
				ret = ct_write(c, s, id, len, nl - len);
			if (!ret && nl > len && kvmm_seq_len(c, s) != nl)
				ret = ct_step1(c, s, nl); /* after a reserve */
			if (ret) {
				report(sh, "grow", ret, NULL);
				break;
			}
			len = nl;
			atomic_fetch_add(&sh->steps, 1);
		}
		if (ct_check_read(c, s, id, 0, len, why, sizeof(why)) ||
		    ct_check_view(c, s, id, 0, len, why, sizeof(why)))
			report(sh, "KV", 0, why);
		if (len >= 2 * tpb && tu_rng_below(&r, 3) == 0)
			share_once(sh, s, id);
		ret = kvmm_seq_close(c, s);
		if (ret)
			report(sh, "close", ret, NULL);
	}
	return NULL;
}

static void *budget_mover(void *arg)
{
	struct shared *sh = arg;
	uint64_t bb = sh->c->g.block_bytes;
	struct tu_rng r;

	tu_rng_init(&r, tu_seed() ^ 0xb0d6e7);
	while (!atomic_load(&sh->stop)) {
		uint64_t b = LOW + tu_rng_below(&r, HIGH - LOW + 1), left;
		int ret = kvmm_cache_set_budget(sh->c, b * bb, &left);

		if (ret)
			report(sh, "set_budget", ret, NULL);
		sched_yield();
	}
	return NULL;
}

static void *stats_reader(void *arg)
{
	struct shared *sh = arg;
	struct kvmm_cache_stats st;
	struct kvmm_seq_stats ss;
	char buf[2048];

	while (!atomic_load(&sh->stop)) {
		int ret = kvmm_cache_stats(sh->c, &st);

		if (!ret && st.pages_peak > (uint64_t)HIGH * sh->c->g.ppb)
			report(sh, "peak over the largest budget", (int)st.pages_peak, NULL);
		if (!ret && st.bytes_used > st.bytes_mapped)
			report(sh, "more bytes used than mapped", 0, NULL);
		if (kvmm_cache_stats_json(sh->c, buf, sizeof(buf)) <= 0)
			report(sh, "stats json", 0, NULL);
		for (uint32_t s = 0; s < SEQS; s++) {
			ret = kvmm_seq_stats(sh->c, s, &ss);
			if (!ret && ss.len > ss.mapped_tokens)
				report(sh, "length above mapped tokens", (int)s, NULL);
		}
		sched_yield();
	}
	return NULL;
}

START_TEST(test_concurrent)
{
	struct kvmm_backend *be = ct_backend(CT_PAGE);
	struct shared sh = {0};
	struct worker w[WORKERS];
	pthread_t bt, st;

	sh.c = ct_make(be, 3 + _i, SEQS, -MAXB, HIGH);
	pthread_mutex_init(&sh.err_lock, NULL);
	for (int i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){.sh = &sh, .seed = tu_seed() + 977u * (uint64_t)i + _i};
		ck_assert_int_eq(pthread_create(&w[i].th, NULL, work, &w[i]), 0);
	}
	ck_assert_int_eq(pthread_create(&bt, NULL, budget_mover, &sh), 0);
	ck_assert_int_eq(pthread_create(&st, NULL, stats_reader, &sh), 0);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(w[i].th, NULL);
	atomic_store(&sh.stop, 1);
	pthread_join(bt, NULL);
	pthread_join(st, NULL);
	ck_assert_msg(!sh.err[0], "%s", sh.err);
	ck_assert_uint_gt(atomic_load(&sh.steps), 0);
	ct_verify(sh.c);
	ck_assert_uint_eq(ct_stats(sh.c).seqs_active, 0);
	ck_assert_uint_eq(ct_stats(sh.c).pages_shared, 0);
	ck_assert_uint_eq(ct_stats(sh.c).critical_path_driver_calls, 0);
	pthread_mutex_destroy(&sh.err_lock);
	kvmm_cache_destroy(sh.c);
	kvmm_backend_close(be);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cache_mt");
	TCase *tc = tcase_create("threads");

	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_concurrent, 0, 3);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
