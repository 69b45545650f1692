/* SPDX-License-Identifier: MIT */
/* testutil.h - helpers shared by the unit tests. */
#ifndef KVMM_TESTUTIL_H
#define KVMM_TESTUTIL_H

#include <check.h>
#include <stdint.h>

/* Iteration count n divided by $KVMM_TEST_SCALE (valgrind runs use 20),
 * never below 1. */
uint64_t tu_scaled(uint64_t n);

/* Seed from $KVMM_TEST_SEED or fixed; printed once so a failure can be
 * replayed. */
uint64_t tu_seed(void);

/* xorshift64* generator: deterministic for a seed. */
struct tu_rng {
	uint64_t s;
};
void tu_rng_init(struct tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(struct tu_rng *r);
/* Uniform in [0, n). */
uint64_t tu_rng_below(struct tu_rng *r, uint64_t n);

/* Run fn(arg) in a child process and report whether it died of a memory
 * access fault (SIGSEGV or SIGBUS): 1 yes, 0 it returned normally, -1 other.
 * Works under ASan and valgrind, which take over the default signal
 * handling. */
int tu_faults(void (*fn)(void *), void *arg);

/* Run the suite, return the process exit status (0 pass, 1 fail).  Suites
 * run in fork mode by default, so a crash is a failed test. */
int tu_run(Suite *s);

#endif /* KVMM_TESTUTIL_H */
