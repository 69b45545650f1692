// SPDX-License-Identifier: MIT
/* test_tier_disk.c - the disk tier: put/get, restart scan, torn records,
 * leaf-first eviction, engines, registered buffers, bad arguments. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "testutil.h"
#include "tier_disk.h"
#include "tier_fixture.h"

#define SLOT	(64u << 10)
#define PAYLOAD (SLOT - 4096u - 100u) /* not a 4 KiB multiple on purpose */
#define NTOK	16

static struct tier_disk_config base_cfg(uint64_t capacity)
{
	return (struct tier_disk_config){.dir = tf_dir,
					 .capacity_bytes = capacity,
					 .segment_bytes = 4096 + 8 * SLOT,
					 .slot_bytes = SLOT,
					 .queue_depth = 32,
					 .io_bytes = 16384};
}

static struct tier_disk *open_ok(const struct tier_disk_config *cfg)
{
	struct tier_disk *d = NULL;

	ck_assert_int_eq(tier_disk_open(cfg, &d), 0);
	ck_assert_ptr_nonnull(d);
	return d;
}

/* Put a chain of n records of stream s (parent-first); keys into keys[]. */
static void put_chain(struct tier_disk *d, void *buf, uint64_t s, uint32_t n, uint64_t *keys)
{
	struct tf_rec r = {.parent = 0x1000 + s, .ntokens = NTOK, .payload_bytes = PAYLOAD};

	for (uint32_t i = 0; i < n; i++) {
		uint64_t bytes;

		r.seq = tier_disk_seq_next(d);
		bytes = tf_make(buf, SLOT, &r, s, i);
		ck_assert_uint_gt(bytes, 0);
		ck_assert_int_eq(tier_disk_put(d, r.key, buf, bytes), 0);
		keys[i] = r.key;
		r.parent = r.key;
	}
}

static void get_ok(struct tier_disk *d, void *buf, uint64_t key)
{
	struct tier_rec rec;

	memset(buf, 0xee, SLOT);
	ck_assert_int_eq(tier_disk_get(d, key, buf, SLOT, &rec), 0);
	ck_assert_uint_eq(rec.key, key);
	ck_assert(tf_check(buf, key, PAYLOAD));
}

START_TEST(test_put_get)
{
	struct tier_disk_config cfg = base_cfg(4 * (4096 + 8 * SLOT));
	struct tier_disk *d = open_ok(&cfg);
	struct tier_disk_stats st;
	void *buf = tf_alloc(SLOT);
	uint64_t keys[20];

	put_chain(d, buf, 1, 20, keys);
	for (int i = 0; i < 20; i++) {
		ck_assert(tier_disk_contains(d, keys[i]));
		get_ok(d, buf, keys[i]);
	}
	/* store-if-not-exists */
	{
		struct tf_rec r = {.parent = 0x1001, .ntokens = NTOK, .payload_bytes = PAYLOAD};
		uint64_t bytes = tf_make(buf, SLOT, &r, 1, 0);

		ck_assert_uint_eq(r.key, keys[0]);
		ck_assert_int_eq(tier_disk_put(d, r.key, buf, bytes), -EEXIST);
	}
	ck_assert_int_eq(tier_disk_get(d, 12345, buf, SLOT, NULL), -ENOENT);
	ck_assert(!tier_disk_contains(d, 12345));
	ck_assert_int_eq(tier_disk_get(d, keys[0], buf, 4096, NULL), -EMSGSIZE);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.records, 20);
	ck_assert_uint_eq(st.puts, 20);
	ck_assert_uint_eq(st.put_exists, 1);
	ck_assert_uint_eq(st.get_hits, 20);
	ck_assert_uint_eq(st.get_misses, 1);
	ck_assert_uint_eq(st.segments, 3); /* 8 slots each */
	ck_assert_uint_eq(st.slots_max, 32);
	ck_assert(st.direct);
	ck_assert_str_eq(st.engine, "io_uring");
	ck_assert_uint_eq(st.err_io + st.err_short + st.err_checksum + st.dropped, 0);
	ck_assert_uint_ge(st.inflight_max, 2); /* records go out in pieces */
	/* remove */
	ck_assert_int_eq(tier_disk_remove(d, keys[19]), 0);
	ck_assert_int_eq(tier_disk_remove(d, keys[19]), -ENOENT);
	ck_assert_int_eq(tier_disk_get(d, keys[19], buf, SLOT, NULL), -ENOENT);
	tier_disk_close(d);
	tf_free(buf, SLOT);
}
END_TEST

static void count_key(void *arg, uint64_t key, uint64_t parent)
{
	(*(uint64_t *)arg)++;
}

START_TEST(test_restart)
{
	struct tier_disk_config cfg = base_cfg(4 * (4096 + 8 * SLOT));
	struct tier_disk *d = open_ok(&cfg);
	struct tier_disk_stats st;
	void *buf = tf_alloc(SLOT);
	uint64_t keys[25], seq, n = 0;

	put_chain(d, buf, 2, 25, keys);
	seq = tier_disk_seq_next(d);
	/* a second open of the same directory is refused */
	{
		struct tier_disk *d2 = NULL;

		ck_assert_int_eq(tier_disk_open(&cfg, &d2), -EBUSY);
		ck_assert_ptr_null(d2);
	}
	tier_disk_close(d);

	for (int pass = 0; pass < 2; pass++) {
		cfg.flags = pass ? TIER_DISK_SCAN_HEADER : 0;
		d = open_ok(&cfg);
		tier_disk_get_stats(d, &st);
		ck_assert_uint_eq(st.scan_records, 25);
		ck_assert_uint_eq(st.records, 25);
		ck_assert_uint_eq(st.scan_reclaimed, 0);
		ck_assert_uint_eq(st.segments, 4);
		/* above every record written (seq itself was never used) */
		ck_assert_uint_ge(tier_disk_seq_next(d), seq);
		for (int i = 0; i < 25; i++)
			get_ok(d, buf, keys[i]);
		n = 0;
		tier_disk_for_each(d, count_key, &n);
		ck_assert_uint_eq(n, 25);
		tier_disk_close(d);
	}
	/* DISCARD starts empty */
	cfg.flags = TIER_DISK_DISCARD;
	d = open_ok(&cfg);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.records, 0);
	ck_assert_uint_eq(st.scan_segments_discarded, 4);
	ck_assert(!tier_disk_contains(d, keys[0]));
	tier_disk_close(d);
	tf_free(buf, SLOT);
}
END_TEST

/* Write garbage over parts of records behind the tier's back. */
static void scribble(uint32_t seg, uint64_t off, size_t n, int byte)
{
	char path[600];
	void *b = tf_alloc(n);
	int fd;

	snprintf(path, sizeof(path), "%s/seg-%05u.kvmm", tf_dir, seg);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	memset(b, byte, n);
	ck_assert_int_eq(pwrite(fd, b, n, (off_t)off), (ssize_t)n);
	close(fd);
	tf_free(b, n);
}

START_TEST(test_torn_records_reclaimed)
{
	struct tier_disk_config cfg = base_cfg(2 * (4096 + 8 * SLOT));
	struct tier_disk *d = open_ok(&cfg);
	struct tier_disk_stats st;
	void *buf = tf_alloc(SLOT);
	uint64_t keys[16];

	put_chain(d, buf, 3, 16, keys);
	tier_disk_close(d);
	/* slot i of segment 0 holds record i (a fresh tier fills in order):
	 * tear record 2's payload tail, record 5's first header sector, zero record 7's
	 * last block (a write that never reached it) */
	scribble(0, 4096 + 2 * SLOT + 40000, 4096, 0x5a);
	scribble(0, 4096 + 5 * SLOT + 0, 512, 0x77);
	scribble(0, 4096 + 7 * SLOT + SLOT - 8192, 4096, 0x00);
	/* segment 1: a bad segment header discards the whole segment */
	scribble(1, 0, 512, 0x33);
	d = open_ok(&cfg);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.scan_records, 8 - 3);
	ck_assert_uint_eq(st.scan_reclaimed, 3);
	ck_assert_uint_eq(st.scan_segments_discarded, 1);
	for (int i = 0; i < 16; i++) {
		bool torn = i == 2 || i == 5 || i == 7 || i >= 8;

		ck_assert_int_eq(tier_disk_contains(d, keys[i]), !torn);
		if (!torn)
			get_ok(d, buf, keys[i]);
	}
	/* The reclaimed slots and the discarded segment are reused: the
	 * capacity holds 16 records again. */
	put_chain(d, buf, 4, 11, keys);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.records, 16);
	ck_assert_uint_eq(st.evictions, 0);
	tier_disk_close(d);
	tf_free(buf, SLOT);
}
END_TEST

/* The stored set stays prefix-closed under eviction: a record is never
 * evicted while its child is stored. */
static bool stored_prefix_closed(struct tier_disk *d, uint64_t (*chains)[8], int nchains)
{
	for (int c = 0; c < nchains; c++)
		for (int i = 1; i < 8; i++)
			if (tier_disk_contains(d, chains[c][i]) &&
			    !tier_disk_contains(d, chains[c][i - 1]))
				return false;
	return true;
}

START_TEST(test_eviction_leaf_first)
{
	struct tier_disk_config cfg = base_cfg(2 * (4096 + 8 * SLOT));
	struct tier_disk *d = open_ok(&cfg);
	struct tier_disk_stats st;
	void *buf = tf_alloc(SLOT);
	uint64_t chains[40][8];
	struct tu_rng rng;

	tu_rng_init(&rng, tu_seed());
	for (int c = 0; c < 40; c++)
		for (int i = 0; i < 8; i++)
			chains[c][i] = 0xdead0000 + (uint64_t)i; /* never stored */
	/* two chains fill the 16 slots */
	put_chain(d, buf, 100, 8, chains[0]);
	put_chain(d, buf, 101, 8, chains[1]);
	/* touch chain 0's leaf: chain 1's leaf is now the coldest leaf */
	get_ok(d, buf, chains[0][7]);
	put_chain(d, buf, 102, 1, chains[2]);
	ck_assert(!tier_disk_contains(d, chains[1][7]));
	ck_assert(tier_disk_contains(d, chains[1][6]));
	ck_assert(tier_disk_contains(d, chains[0][0]));
	ck_assert(tier_disk_contains(d, chains[0][7]));
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.evictions, 1);
	/* random chains, random reads: always prefix-closed, never full */
	for (int c = 3; c < 40; c++) {
		uint32_t len = 1 + (uint32_t)tu_rng_below(&rng, 8);

		put_chain(d, buf, 100 + (uint64_t)c, len, chains[c]);
		for (int k = 0; k < 3; k++) {
			int cc = (int)tu_rng_below(&rng, (uint64_t)c + 1);

			if (tier_disk_contains(d, chains[cc][0]))
				get_ok(d, buf, chains[cc][0]);
		}
		ck_assert(stored_prefix_closed(d, chains, c + 1));
		tier_disk_get_stats(d, &st);
		ck_assert_uint_le(st.records, 16);
	}
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.records, 16);
	ck_assert_uint_eq(st.put_fail, 0);
	tier_disk_close(d);
	tf_free(buf, SLOT);
}
END_TEST

START_TEST(test_engines_and_buffers)
{
	struct tier_disk_config cfg = base_cfg(4096 + 8 * SLOT);
	struct tier_disk_stats st;
	struct tier_disk *d;
	size_t pool = 4 * SLOT;
	char *mem = tf_alloc(pool);
	struct iovec iov[2] = {{mem, 2 * SLOT}, {mem + 2 * SLOT, 2 * SLOT}};
	uint64_t keys[6];

	/* pread/pwrite engine */
	cfg.flags = TIER_DISK_PSYNC;
	d = open_ok(&cfg);
	put_chain(d, mem, 5, 6, keys);
	for (int i = 0; i < 6; i++)
		get_ok(d, mem + SLOT, keys[i]);
	tier_disk_get_stats(d, &st);
	ck_assert_str_eq(st.engine, "psync");
	tier_disk_close(d);
	/* io_uring reading what psync wrote, with registered buffers */
	cfg.flags = 0;
	cfg.bufs = iov;
	cfg.nbufs = 2;
	d = open_ok(&cfg);
	for (int i = 0; i < 6; i++)
		get_ok(d, mem + (i % 4) * SLOT, keys[i]);
	tier_disk_get_stats(d, &st);
	ck_assert_str_eq(st.engine, "io_uring");
	if (geteuid() == 0)
		ck_assert(st.bufs_registered);
	/* a buffer across two registrations is not fixed but still works */
	get_ok(d, mem + SLOT + 4096 * 8, keys[0]);
	tier_disk_close(d);
	tf_free(mem, pool);
}
END_TEST

static char logbuf[512];
static void log_fn(void *arg, const char *msg)
{
	(*(int *)arg)++;
	snprintf(logbuf, sizeof(logbuf), "%s", msg);
}

START_TEST(test_tmpfs_needs_buffered)
{
	struct tier_disk_config cfg = base_cfg(4096 + 8 * SLOT);
	struct statfs sfs;
	char shm[128];
	struct tier_disk *d = NULL;
	void *buf;
	uint64_t keys[2];
	int logs = 0, fd;

	if (statfs("/dev/shm", &sfs) || sfs.f_type != 0x01021994 /* TMPFS_MAGIC */)
		return; /* nothing to check here without a tmpfs */
	snprintf(shm, sizeof(shm), "/dev/shm/kvmm-tier-%d", getpid());
	cfg.dir = shm;
	cfg.log = log_fn;
	cfg.log_arg = &logs;
	/* tmpfs takes O_DIRECT since Linux 6.6; before, the tier refuses it
	 * unless buffered I/O is allowed, and says why */
	mkdir(shm, 0700);
	snprintf(logbuf, sizeof(logbuf), "%s/probe", shm);
	fd = open(logbuf, O_RDWR | O_CREAT | O_DIRECT, 0600);
	if (fd >= 0) {
		close(fd);
		unlink(logbuf);
	} else {
		ck_assert_int_eq(tier_disk_open(&cfg, &d), -EINVAL);
		ck_assert_int_eq(logs, 1);
		ck_assert_ptr_nonnull(strstr(logbuf, "O_DIRECT"));
	}
	cfg.flags = TIER_DISK_BUFFERED;
	d = open_ok(&cfg);
	buf = tf_alloc(2 * SLOT);
	put_chain(d, buf, 6, 2, keys);
	get_ok(d, (char *)buf + SLOT, keys[1]);
	tier_disk_close(d);
	tf_free(buf, 2 * SLOT);
	tf_rm_rf(shm);
}
END_TEST

/* A block device as the storage (a loop device here; the NVMe disk in
 * the VM): segments end to end on it, found again after a restart. */
START_TEST(test_raw_device)
{
	char img[560], dev[64] = "", cmd[1200];
	struct tier_disk_config cfg = base_cfg(64u << 20);
	struct tier_disk *d, *d2 = NULL;
	struct tier_disk_stats st;
	void *buf = tf_alloc(SLOT);
	uint64_t keys[12];
	FILE *p;

	snprintf(img, sizeof(img), "%s/raw.img", tf_dir);
	snprintf(cmd, sizeof(cmd), "truncate -s 8M '%s' && losetup -f --show '%s' 2>/dev/null", img,
		 img);
	p = popen(cmd, "r");
	if (!p || !fgets(dev, sizeof(dev), p) || strncmp(dev, "/dev/", 5)) {
		if (p)
			pclose(p);
		printf("# no loop device here: raw device test not run\n");
		tf_free(buf, SLOT);
		return;
	}
	pclose(p);
	dev[strcspn(dev, "\n")] = 0;
	cfg.dir = dev;
	cfg.flags = TIER_DISK_DISCARD;
	d = open_ok(&cfg);
	tier_disk_get_stats(d, &st);
	/* capacity clamped to the device: 8 MiB */
	ck_assert_uint_le(st.capacity_bytes, 8u << 20);
	ck_assert_int_eq(tier_disk_open(&cfg, &d2), -EBUSY); /* O_EXCL */
	put_chain(d, buf, 9, 12, keys);
	for (int i = 0; i < 12; i++)
		get_ok(d, buf, keys[i]);
	tier_disk_close(d);
	cfg.flags = 0;
	d = open_ok(&cfg);
	tier_disk_get_stats(d, &st);
	ck_assert_uint_eq(st.scan_records, 12);
	for (int i = 0; i < 12; i++)
		get_ok(d, buf, keys[i]);
	tier_disk_close(d);
	snprintf(cmd, sizeof(cmd), "losetup -d '%s'", dev);
	ck_assert_int_eq(system(cmd), 0);
	tf_free(buf, SLOT);
}
END_TEST

static void nop_done(struct tier_disk_op *op)
{
}

START_TEST(test_bad_args)
{
	struct tier_disk_config cfg = base_cfg(4096 + 8 * SLOT), c;
	struct tier_disk *d = (void *)1;
	struct tier_disk_op op = {.kind = TIER_DISK_GET, .len = SLOT, .done = nop_done};
	struct tier_disk_op *ops[1] = {&op};
	void *buf = tf_alloc(2 * SLOT);
	struct tf_rec r = {.parent = 7, .ntokens = NTOK, .payload_bytes = PAYLOAD};
	uint64_t bytes;

	ck_assert_int_eq(tier_disk_open(NULL, &d), -EINVAL);
	ck_assert_int_eq(tier_disk_open(&cfg, NULL), -EINVAL);
	c = cfg, c.dir = NULL;
	ck_assert_int_eq(tier_disk_open(&c, &d), -EINVAL);
	ck_assert_ptr_null(d);
	c = cfg, c.slot_bytes = 5000;
	ck_assert_int_eq(tier_disk_open(&c, &d), -EINVAL);
	c = cfg, c.capacity_bytes = SLOT;
	ck_assert_int_eq(tier_disk_open(&c, &d), -EINVAL);
	c = cfg, c.flags = 1u << 20;
	ck_assert_int_eq(tier_disk_open(&c, &d), -EINVAL);
	c = cfg, c.io_bytes = 1000;
	ck_assert_int_eq(tier_disk_open(&c, &d), -EINVAL);
	c = cfg, c.segment_bytes = 4096;
	ck_assert_int_eq(tier_disk_open(&c, &d), -EINVAL);
	c = cfg, c.nbufs = 1;
	ck_assert_int_eq(tier_disk_open(&c, &d), -EINVAL);
	c = cfg, c.dir = "/proc/kvmm-no-such/dir";
	ck_assert_int_lt(tier_disk_open(&c, &d), 0);

	d = open_ok(&cfg);
	/* unaligned, empty, unknown kind, no callback */
	op.buf = (char *)buf + 8;
	ck_assert_int_eq(tier_disk_submit(d, ops, 1), -EINVAL);
	op.buf = buf;
	op.len = 0;
	ck_assert_int_eq(tier_disk_submit(d, ops, 1), -EINVAL);
	op.len = SLOT;
	op.kind = 7;
	ck_assert_int_eq(tier_disk_submit(d, ops, 1), -EINVAL);
	op.kind = TIER_DISK_GET;
	op.done = NULL;
	ck_assert_int_eq(tier_disk_submit(d, ops, 1), -EINVAL);
	ck_assert_int_eq(tier_disk_submit(NULL, ops, 1), -EINVAL);
	ck_assert_int_eq(tier_disk_submit(d, NULL, 1), -EINVAL);
	/* a put must hold a valid record of that key, no larger than a slot */
	bytes = tf_make(buf, 2 * SLOT, &r, 7, 0);
	ck_assert_int_eq(tier_disk_put(d, r.key + 1, buf, bytes), -EINVAL);
	ck_assert_int_eq(tier_disk_put(d, r.key, buf, bytes + 4096), -EINVAL);
	((char *)buf)[200] ^= 1;
	ck_assert_int_eq(tier_disk_put(d, r.key, buf, bytes), -EINVAL);
	((char *)buf)[200] ^= 1;
	r.payload_bytes = SLOT; /* one block too many */
	bytes = tf_make(buf, 2 * SLOT, &r, 7, 0);
	ck_assert_int_eq(tier_disk_put(d, r.key, buf, bytes), -EINVAL);
	r.payload_bytes = PAYLOAD;
	bytes = tf_make(buf, 2 * SLOT, &r, 7, 0);
	ck_assert_int_eq(tier_disk_put(d, r.key, buf, bytes), 0);
	ck_assert_int_eq(tier_disk_remove(NULL, 1), -EINVAL);
	tier_disk_close(d);
	tier_disk_close(NULL);
	tf_free(buf, 2 * SLOT);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {
		test_put_get,
		test_restart,
		test_torn_records_reclaimed,
		test_eviction_leaf_first,
		test_engines_and_buffers,
		test_tmpfs_needs_buffered,
		test_bad_args,
		test_raw_device,
	};

	return tf_run_disk_tests("tier_disk", 120, tests, sizeof(tests) / sizeof(tests[0]));
}
