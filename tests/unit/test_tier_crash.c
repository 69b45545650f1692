// SPDX-License-Identifier: MIT
/* test_tier_crash.c - kill -9 a process in the middle of heavy spilling,
 * many times at random moments; after each, restart and rescan: every
 * record the tier restores is byte-exact, the others are absent. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tier_disk.h"
#include "tier_fixture.h"

#define SLOT	(128u << 10)
#define PAYLOAD (100000u)
#define NTOK	32
#define BATCH	16

/* A shallow queue in odd rounds: a record's pieces then go out in several
 * submissions, so a kill can land between them and tear it. */
static struct tier_disk_config cfg(uint32_t flags, uint64_t round)
{
	return (struct tier_disk_config){.dir = tf_dir,
					 .capacity_bytes = 6 * (4096 + 12 * SLOT),
					 .segment_bytes = 4096 + 12 * SLOT,
					 .slot_bytes = SLOT,
					 .queue_depth = round % 2 ? 3 : 64,
					 .io_bytes = 16384,
					 .flags = flags};
}

static void put_done(struct tier_disk_op *op)
{
}

/* The child: spill chains of records, BATCH at a time, until killed. */
static void spill_forever(int ready_fd, uint64_t round)
{
	struct tier_disk_config c = cfg(0, round);
	struct tier_disk *d;
	struct tier_disk_op ops[BATCH], *opp[BATCH];
	char *mem = tf_alloc((size_t)BATCH * SLOT);
	uint64_t parent = 0, stream = round << 32, idx = 0;

	if (!mem || tier_disk_open(&c, &d))
		_exit(3);
	if (write(ready_fd, "x", 1) != 1)
		_exit(3);
	for (;;) {
		for (int i = 0; i < BATCH; i++) {
			struct tf_rec r = {.parent = parent,
					   .ntokens = NTOK,
					   .payload_bytes = PAYLOAD,
					   .seq = tier_disk_seq_next(d)};
			char *buf = mem + (size_t)i * SLOT;
			uint64_t b = tf_make(buf, SLOT, &r, stream, idx++);

			if (!b)
				_exit(4);
			ops[i] = (struct tier_disk_op){.kind = TIER_DISK_PUT,
						       .key = r.key,
						       .buf = buf,
						       .len = b,
						       .done = put_done};
			opp[i] = &ops[i];
			/* chains of up to 8, then a new prefix */
			parent = idx % 8 ? r.key : ++stream;
		}
		if (tier_disk_submit(d, opp, BATCH))
			_exit(5);
		tier_disk_drain(d);
		for (int i = 0; i < BATCH; i++)
			if (ops[i].result && ops[i].result != -EEXIST)
				_exit(6);
	}
}

struct verify {
	struct tier_disk *d;
	uint64_t *keys;
	uint64_t n, cap;
};

static void collect(void *arg, uint64_t key, uint64_t parent)
{
	struct verify *v = arg;

	if (v->n < v->cap)
		v->keys[v->n++] = key;
}

START_TEST(test_kill9_restart)
{
	struct tu_rng rng;
	char *buf = tf_alloc(SLOT);
	uint64_t restored = 0, reclaimed = 0, rounds = tu_scaled(40);
	uint64_t keys[6 * 12];

	tu_rng_init(&rng, tu_seed());
	for (uint64_t round = 1; round <= rounds; round++) {
		struct tier_disk_config c = cfg(round % 3 == 0 ? TIER_DISK_SCAN_HEADER : 0, round);
		struct verify v = {.keys = keys, .cap = 6 * 12};
		struct tier_disk_stats st;
		struct timespec ts;
		int fds[2], status;
		char x;
		pid_t pid;

		ck_assert_int_eq(pipe(fds), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(fds[0]);
			spill_forever(fds[1], round);
		}
		close(fds[1]);
		ck_assert_int_eq(read(fds[0], &x, 1), 1);
		close(fds[0]);
		/* a random moment of heavy spilling: 0 to 40 ms */
		ts.tv_sec = 0;
		ts.tv_nsec = (long)tu_rng_below(&rng, 40000000);
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			      "the spilling child stopped on its own (status %d)", status);

		/* restart: rescan, then read back everything indexed */
		ck_assert_int_eq(tier_disk_open(&c, &v.d), 0);
		tier_disk_for_each(v.d, collect, &v);
		for (uint64_t i = 0; i < v.n; i++) {
			int ret;

			memset(buf, 0x5c, SLOT);
			ret = tier_disk_get(v.d, keys[i], buf, SLOT, NULL);
			if (c.flags & TIER_DISK_SCAN_HEADER) {
				/* payloads are checked at read: torn ones drop */
				ck_assert(ret == 0 || ret == -EBADMSG);
			} else {
				ck_assert_int_eq(ret, 0);
			}
			if (ret == 0) {
				ck_assert_msg(tf_check(buf, keys[i], PAYLOAD),
					      "round %llu: record %016llx restored wrong",
					      (unsigned long long)round,
					      (unsigned long long)keys[i]);
				restored++;
			}
		}
		tier_disk_get_stats(v.d, &st);
		reclaimed += st.scan_reclaimed + st.err_checksum;
		tier_disk_close(v.d);
	}
	printf("# %llu rounds: %llu records restored byte-exact, %llu torn reclaimed\n",
	       (unsigned long long)rounds, (unsigned long long)restored,
	       (unsigned long long)reclaimed);
	/* not under valgrind (slower, fewer rounds) */
	if (tu_scaled(1000) == 1000)
		ck_assert_uint_gt(restored, 0);
	tf_free(buf, SLOT);
}
END_TEST

int main(void)
{
	const TTest *const tests[] = {test_kill9_restart};

	return tf_run_disk_tests("tier_crash", 600, tests, 1);
}
