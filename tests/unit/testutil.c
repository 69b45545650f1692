// SPDX-License-Identifier: MIT
/* testutil.c - helpers shared by the unit tests. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

uint64_t tu_scaled(uint64_t n)
{
	const char *s = getenv("KVMM_TEST_SCALE");
	uint64_t d = s ? strtoull(s, NULL, 10) : 1;

	if (!d)
		d = 1;
	return n / d ? n / d : 1;
}

uint64_t tu_seed(void)
{
	const char *s = getenv("KVMM_TEST_SEED");

	return s ? strtoull(s, NULL, 0) : 0x6b766d6d5eedull;
}

void tu_rng_init(struct tu_rng *r, uint64_t seed)
{
	r->s = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t tu_rng_next(struct tu_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dull;
}

uint64_t tu_rng_below(struct tu_rng *r, uint64_t n)
{
	return n ? tu_rng_next(r) % n : 0;
}

int tu_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

static void on_fault(int sig)
{
	_exit(99);
}

int tu_faults(void (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sigaction sa = {.sa_handler = on_fault};

		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
		fn(arg);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 99)
		return 1;
	if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS))
		return 1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
