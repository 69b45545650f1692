/* SPDX-License-Identifier: MIT */
/* tier_fixture.h - what the tier tests share: a scratch directory on a
 * filesystem that takes O_DIRECT, and records whose bytes follow from
 * their key (so a test, or a crash test's parent, can check any record it
 * reads back without remembering what was written). */
#ifndef KVMM_TIER_FIXTURE_H
#define KVMM_TIER_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include "tier_record.h"

/* The scratch directory of the running test (tf_run_disk_tests). */
extern char tf_dir[512];

/* 77 (after printing why, with "SKIP") where O_DIRECT cannot work. */
int tf_need_direct(void);
/* Per-test fixture: a fresh tf_dir, removed after. */
void tf_setup(void);
void tf_teardown(void);
/* The same, with the tiers' copies on emulated asynchronous streams
 * (KVMM_TIER_COPY_ASYNC=1: copies complete later, on other threads, as on
 * a GPU). */
void tf_async_setup(void);
void tf_async_teardown(void);
/*
 * Run tests[0..n) as one suite, each in a fresh tf_dir (removed after).
 * Where the scratch filesystem refuses O_DIRECT, prints the reason with
 * "SKIP" and returns 77; else the exit status of the run.
 */
int tf_run_disk_tests(const char *name, int timeout_s, const TTest *const *tests, int n);

/*
 * Make a fresh directory for a disk tier under $KVMM_TEST_DISK_DIR, else
 * /var/tmp (a disk filesystem here; /tmp may be tmpfs elsewhere).  Returns
 * 0, or -1 with why[] saying why (no O_DIRECT there): the test then skips.
 */
int tf_disk_dir(char *path, size_t len, char *why, size_t whylen);
/* Remove the directory and everything in it. */
void tf_rm_rf(const char *path);

/* An aligned buffer from mmap (defined for valgrind, no leak reports
 * from the kernel's writes into it). */
void *tf_alloc(size_t bytes);
void tf_free(void *p, size_t bytes);

/* A record of key chain: tokens from (stream, index), payload from the key.
 * Writes the sealed record into buf (room len); returns its bytes. */
struct tf_rec {
	uint64_t parent, key;
	uint32_t ntokens;
	uint64_t payload_bytes;
	uint64_t seq;
};
uint64_t tf_make(void *buf, size_t len, struct tf_rec *r, uint64_t stream, uint64_t index);
/* The payload bytes a record of this key must hold. */
void tf_payload(void *dst, uint64_t bytes, uint64_t key);
/* Does buf hold exactly the record tf_make made for key? */
bool tf_check(const void *buf, uint64_t key, uint64_t payload_bytes);

#endif /* KVMM_TIER_FIXTURE_H */
