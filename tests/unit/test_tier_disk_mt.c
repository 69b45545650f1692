// SPDX-License-Identifier: MIT
/* test_tier_disk_mt.c - the disk tier under concurrent callers: puts,
 * gets, contains, removes and async batches from several threads, with
 * eviction going on; every successful get is byte-exact (runs under TSan). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "tier_disk.h"
#include "tier_fixture.h"

#define SLOT	(32u << 10)
#define PAYLOAD 20000u
#define NTHR	4

struct worker {
	struct tier_disk *d;
	int id;
	uint64_t ok, miss;
	int bad;
};

static _Atomic int async_left;

static void async_done(struct tier_disk_op *op)
{
	atomic_fetch_sub(&async_left, 1);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	char *buf = tf_alloc(4 * SLOT);
	uint64_t keys[32] = {0};
	struct tu_rng rng;
	int n = (int)tu_scaled(600);

	tu_rng_init(&rng, tu_seed() + (uint64_t)w->id);
	for (int i = 0; i < n && !w->bad; i++) {
		uint64_t k = tu_rng_below(&rng, 32), r = tu_rng_below(&rng, 10);
		/* a shared key space: threads race on the same keys */
		struct tf_rec rec = {.parent = 77, .ntokens = 8, .payload_bytes = PAYLOAD};
		uint64_t b = tf_make(buf, SLOT, &rec, 9, k);
		int ret;

		keys[k] = rec.key;
		if (r < 4) {
			ret = tier_disk_put(w->d, rec.key, buf, b);
			if (ret && ret != -EEXIST)
				w->bad = 1;
		} else if (r < 8) {
			ret = tier_disk_get(w->d, rec.key, buf + SLOT, SLOT, NULL);
			if (ret == 0) {
				w->ok++;
				if (!tf_check(buf + SLOT, rec.key, PAYLOAD))
					w->bad = 2;
			} else if (ret == -ENOENT) {
				w->miss++;
			} else {
				w->bad = 3;
			}
		} else if (r == 8) {
			tier_disk_contains(w->d, rec.key);
			ret = tier_disk_remove(w->d, rec.key);
			if (ret && ret != -ENOENT && ret != -EBUSY)
				w->bad = 4;
		} else {
			/* an async pair: a put and a get of another key */
			struct tier_disk_op ops[2] = {
				{.kind = TIER_DISK_PUT,
				 .key = rec.key,
				 .buf = buf,
				 .len = b,
				 .done = async_done},
				{.kind = TIER_DISK_GET,
				 .key = keys[(k + 1) % 32] ? keys[(k + 1) % 32] : rec.key,
				 .buf = buf + 2 * SLOT,
				 .len = 2 * SLOT,
				 .done = async_done}};
			struct tier_disk_op *opp[2] = {&ops[0], &ops[1]};

			atomic_fetch_add(&async_left, 2);
			if (tier_disk_submit(w->d, opp, 2))
				w->bad = 5;
			tier_disk_drain(w->d);
			if (ops[1].result == 0 && !tf_check(buf + 2 * SLOT, ops[1].key, PAYLOAD))
				w->bad = 6;
		}
	}
	tf_free(buf, 4 * SLOT);
	return NULL;
}

START_TEST(test_concurrent_callers)
{
	struct tier_disk_config cfg = {.dir = tf_dir,
				       .capacity_bytes = 2 * (4096 + 10 * SLOT),
				       .segment_bytes = 4096 + 10 * SLOT,
				       .slot_bytes = SLOT,
				       .queue_depth = 8,
				       .io_bytes = 8192};
	struct worker w[NTHR];
	pthread_t t[NTHR];
	struct tier_disk_stats st;
	struct tier_disk *d;
	uint64_t ok = 0;

	ck_assert_int_eq(tier_disk_open(&cfg, &d), 0);
	for (int i = 0; i < NTHR; i++) {
		w[i] = (struct worker){.d = d, .id = i};
		ck_assert_int_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < NTHR; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(!w[i].bad, "worker %d: failure kind %d", i, w[i].bad);
		ok += w[i].ok;
	}
	tier_disk_drain(d);
	ck_assert_int_eq(atomic_load(&async_left), 0);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_le(st.records, 20);
	ck_assert_uint_eq(st.err_io + st.err_short + st.err_checksum, 0);
	ck_assert_uint_gt(ok, 0);
	tier_disk_close(d);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {test_concurrent_callers};

	return tf_run_disk_tests("tier_disk_mt", 300, tests, 1);
}
