// SPDX-License-Identifier: MIT
/* test_tier_fault.c - faults injected at the disk tier's I/O seam (EIO,
 * ENOSPC, short transfers, flipped bytes on reads and on the medium, full
 * disk at preallocation) all become errors or misses, counted; nothing
 * wrong is ever served; the tier stays usable and a restart keeps only
 * good records. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "tier_disk.h"
#include "tier_fixture.h"

#define SLOT	(64u << 10)
#define PAYLOAD (40000u)
#define NTOK	16
#define N	24

static int nlogs;
static void count_log(void *arg, const char *msg)
{
	nlogs++;
}

static struct tier_disk *open_faulty(struct tier_fault_config *f, const struct tier_io_ops *inner)
{
	struct tier_disk_config cfg = {.dir = tf_dir,
				       .capacity_bytes = 4 * (4096 + 16 * SLOT),
				       .segment_bytes = 4096 + 16 * SLOT,
				       .slot_bytes = SLOT,
				       .queue_depth = 32,
				       .io_bytes = 16384,
				       .io_ops = &tier_io_fault_ops,
				       .io_arg = f,
				       .log = count_log};
	struct tier_disk *d = NULL;

	f->inner = inner;
	ck_assert_int_eq(tier_disk_open(&cfg, &d), 0);
	return d;
}

static uint64_t make(void *buf, uint64_t stream, uint64_t i, uint64_t *key)
{
	struct tf_rec r = {.parent = stream, .ntokens = NTOK, .payload_bytes = PAYLOAD, .seq = i};
	uint64_t b = tf_make(buf, SLOT, &r, stream, i);

	*key = r.key;
	return b;
}

/* One read fault of each kind at a known read: the get fails the way it
 * should, the record is dropped and counted, the rest is untouched. */
static void one_read_fault(const struct tier_io_ops *inner)
{
	static const int want[] = {-EIO, -EIO, -EIO, -EBADMSG};
	struct tier_fault_config f = {.seed = tu_seed()};
	struct tier_disk *d = open_faulty(&f, inner);
	struct tier_disk_stats st;
	void *buf = tf_alloc(SLOT);
	uint64_t keys[N];

	nlogs = 0;
	for (uint64_t i = 0; i < N; i++) {
		uint64_t b = make(buf, 1, i, &keys[i]);

		ck_assert_int_eq(tier_disk_put(d, keys[i], buf, b), 0);
	}
	for (int k = 0; k < TIER_FAULT__COUNT; k++) {
		tier_disk_drain(d);
		/* the read after next is the second piece of record k's get */
		f.nth_read[k] = f.reads + 2;
		memset(buf, 0, SLOT);
		ck_assert_int_eq(tier_disk_get(d, keys[k], buf, SLOT, NULL), want[k]);
		ck_assert(!tier_disk_contains(d, keys[k]));
		ck_assert_int_eq(tier_disk_get(d, keys[k], buf, SLOT, NULL), -ENOENT);
		ck_assert_uint_eq(f.injected_read[k], 1);
	}
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.err_io, 2); /* EIO, and ENOSPC on a read is EIO */
	ck_assert_uint_eq(st.err_short, 1);
	ck_assert_uint_eq(st.err_checksum, 1);
	ck_assert_uint_eq(st.dropped, 4);
	ck_assert_uint_eq(st.get_fail, 4);
	ck_assert_int_eq(nlogs, 3); /* once per kind: io, short, checksum */
	/* everything else reads back exactly */
	for (int i = TIER_FAULT__COUNT; i < N; i++) {
		ck_assert_int_eq(tier_disk_get(d, keys[i], buf, SLOT, NULL), 0);
		ck_assert(tf_check(buf, keys[i], PAYLOAD));
	}
	/* and the dropped keys can be stored again */
	for (uint64_t i = 0; i < TIER_FAULT__COUNT; i++) {
		uint64_t b = make(buf, 1, i, &keys[i]);

		ck_assert_int_eq(tier_disk_put(d, keys[i], buf, b), 0);
		ck_assert_int_eq(tier_disk_get(d, keys[i], buf, SLOT, NULL), 0);
		ck_assert(tf_check(buf, keys[i], PAYLOAD));
	}
	tier_disk_close(d);
	tf_free(buf, SLOT);
}

START_TEST(test_read_faults_uring)
{
	one_read_fault(NULL);
}
END_TEST

START_TEST(test_read_faults_psync)
{
	one_read_fault(&tier_io_psync_ops);
}
END_TEST

START_TEST(test_write_faults)
{
	static const int want[] = {-EIO, -ENOSPC, -EIO, 0};
	struct tier_fault_config f = {.seed = tu_seed()};
	struct tier_disk *d = open_faulty(&f, NULL);
	struct tier_disk_stats st;
	void *buf = tf_alloc(SLOT);
	uint64_t keys[TIER_FAULT__COUNT], key;

	for (int k = 0; k < TIER_FAULT__COUNT; k++) {
		uint64_t b = make(buf, 2, (uint64_t)k, &keys[k]);

		tier_disk_drain(d);
		f.nth_write[k] = f.writes + 2;
		ck_assert_int_eq(tier_disk_put(d, keys[k], buf, b), want[k]);
		ck_assert_uint_eq(f.injected_write[k], 1);
		/* a failed put is not stored */
		ck_assert_int_eq(tier_disk_contains(d, keys[k]), want[k] == 0);
	}
	/* the write that landed a flipped byte is caught at read */
	ck_assert_int_eq(tier_disk_get(d, keys[TIER_FAULT_FLIP], buf, SLOT, NULL), -EBADMSG);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.put_fail, 3);
	ck_assert_uint_eq(st.err_io, 1);
	ck_assert_uint_eq(st.err_nospace, 1);
	ck_assert_uint_eq(st.err_short, 1);
	ck_assert_uint_eq(st.err_checksum, 1);
	ck_assert_uint_eq(st.records, 0);
	/* usable: the same keys store and read back fine now */
	for (int k = 0; k < TIER_FAULT__COUNT; k++) {
		uint64_t b = make(buf, 2, (uint64_t)k, &key);

		ck_assert_int_eq(tier_disk_put(d, key, buf, b), 0);
		ck_assert_int_eq(tier_disk_get(d, key, buf, SLOT, NULL), 0);
		ck_assert(tf_check(buf, key, PAYLOAD));
	}
	tier_disk_close(d);
	tf_free(buf, SLOT);
}
END_TEST

/* A flipped byte left on the medium is reclaimed by the restart scan. */
START_TEST(test_flip_on_disk_then_restart)
{
	struct tier_fault_config f = {.seed = tu_seed()};
	struct tier_disk *d = open_faulty(&f, NULL);
	struct tier_fault_config none = {0};
	struct tier_disk_stats st;
	void *buf = tf_alloc(SLOT);
	uint64_t keys[8];

	for (uint64_t i = 0; i < 8; i++) {
		uint64_t b = make(buf, 3, i, &keys[i]);

		tier_disk_drain(d);
		if (i == 3) /* its first piece, the header */
			f.nth_write[TIER_FAULT_FLIP] = f.writes + 1;
		ck_assert_int_eq(tier_disk_put(d, keys[i], buf, b), 0);
	}
	tier_disk_close(d);
	d = open_faulty(&none, NULL);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.scan_records, 7);
	ck_assert_uint_eq(st.scan_reclaimed, 1);
	ck_assert(!tier_disk_contains(d, keys[3]));
	tier_disk_close(d);
	tf_free(buf, SLOT);
}
END_TEST

/* Full disk at preallocation: with no segment, puts fail with -ENOSPC;
 * with some, the tier lives within them (evicting). */
START_TEST(test_disk_full)
{
	struct tier_fault_config none = {0};
	struct tier_fault_config f = {.seed = tu_seed(), .alloc_ppm = 1000000};
	struct tier_disk *d = open_faulty(&f, NULL);
	struct tier_disk_stats st;
	void *buf = tf_alloc(SLOT);
	uint64_t key, b;

	b = make(buf, 999, 0, &key);
	ck_assert_int_eq(tier_disk_put(d, key, buf, b), -ENOSPC);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.err_nospace, 1);
	ck_assert_uint_eq(st.put_fail, 1);
	tier_disk_close(d);
	/* one segment made without faults, then the disk is full */
	d = open_faulty(&none, NULL);
	ck_assert_int_eq(tier_disk_put(d, key, buf, b), 0);
	tier_disk_close(d);
	d = open_faulty(&f, NULL);
	for (uint64_t i = 0; i < 40; i++) {
		b = make(buf, 1000 + i, 0, &key);
		ck_assert_int_eq(tier_disk_put(d, key, buf, b), 0);
	}
	tier_disk_get_stats(d, &st);
	ck_assert_uint_ge(f.injected_alloc, 1);
	ck_assert_uint_eq(st.segments, 1);
	ck_assert_uint_eq(st.records, 16);
	ck_assert_uint_eq(st.evictions, 25);
	ck_assert(tier_disk_contains(d, key));
	tier_disk_close(d);
	tf_free(buf, SLOT);
}
END_TEST

/* Heavy random faults everywhere: every successful get is byte-exact, the
 * counters add up, and after a restart without faults everything indexed
 * reads back exactly. */
START_TEST(test_random_faults)
{
	struct tier_fault_config f = {.seed = tu_seed()};
	struct tier_fault_config none = {0};
	struct tier_disk *d;
	struct tier_disk_stats st;
	struct tu_rng rng;
	void *buf = tf_alloc(SLOT);
	uint64_t keys[64], nkeys = 0, ok = 0, fails = 0;
	int rounds = (int)tu_scaled(2000);

	for (int k = 0; k < TIER_FAULT__COUNT; k++) {
		f.read_ppm[k] = 20000;
		f.write_ppm[k] = 20000;
	}
	d = open_faulty(&f, NULL);
	tu_rng_init(&rng, tu_seed());
	for (int i = 0; i < rounds; i++) {
		uint64_t key;

		if (nkeys < 64 && (tu_rng_below(&rng, 3) == 0 || !nkeys)) {
			uint64_t b = make(buf, 4, (uint64_t)i, &key);
			int ret = tier_disk_put(d, key, buf, b);

			ck_assert(ret == 0 || ret == -EIO || ret == -ENOSPC);
			keys[nkeys++] = key;
			continue;
		}
		key = keys[tu_rng_below(&rng, nkeys)];
		memset(buf, 0xab, SLOT);
		switch (tier_disk_get(d, key, buf, SLOT, NULL)) {
		case 0:
			ck_assert(tf_check(buf, key, PAYLOAD));
			ok++;
			break;
		case -ENOENT:
			break;
		case -EIO:
		case -EBADMSG:
			fails++;
			break;
		default:
			ck_abort_msg("unexpected get result");
		}
		if (tu_rng_below(&rng, 8) == 0) {
			/* forget one key, so new ones keep coming */
			uint64_t at = tu_rng_below(&rng, nkeys);

			nkeys--;
			keys[at] = keys[nkeys];
		}
	}
	tier_disk_drain(d);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.get_hits, ok);
	ck_assert_uint_eq(st.get_fail, fails);
	/* every injected request error is counted as what it was */
	ck_assert_uint_eq(st.err_io, f.injected_read[TIER_FAULT_EIO] +
					     f.injected_read[TIER_FAULT_ENOSPC] +
					     f.injected_write[TIER_FAULT_EIO]);
	ck_assert_uint_eq(st.err_nospace, f.injected_write[TIER_FAULT_ENOSPC]);
	ck_assert_uint_eq(st.err_short,
			  f.injected_read[TIER_FAULT_SHORT] + f.injected_write[TIER_FAULT_SHORT]);
	/* a flipped byte fails its record's check (unless another fault
	 * failed that read first) */
	ck_assert_uint_le(st.err_checksum,
			  f.injected_read[TIER_FAULT_FLIP] + f.injected_write[TIER_FAULT_FLIP]);
	/* not under valgrind (slower, fewer rounds) */
	if (tu_scaled(1000) == 1000) {
		ck_assert_uint_gt(ok, 100);
		ck_assert_uint_gt(fails, 5);
	}
	tier_disk_close(d);
	/* restart without faults: whatever is indexed is exact */
	d = open_faulty(&none, NULL);
	for (uint64_t i = 0; i < nkeys; i++) {
		if (!tier_disk_contains(d, keys[i]))
			continue;
		ck_assert_int_eq(tier_disk_get(d, keys[i], buf, SLOT, NULL), 0);
		ck_assert(tf_check(buf, keys[i], PAYLOAD));
	}
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.get_fail, 0);
	tier_disk_close(d);
	tf_free(buf, SLOT);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
		test_read_faults_uring,		test_read_faults_psync, test_write_faults,
		test_flip_on_disk_then_restart, test_disk_full,		test_random_faults,
	};

	return tf_run_disk_tests("tier_fault", 300, tests, sizeof(tests) / sizeof(tests[0]));
}
