/* SPDX-License-Identifier: MIT */
/*
 * gputest.h - minimal TAP helpers for the GPU test programs.
 *
 * GPU tests run where Check is not installed, so they print TAP directly:
 * "ok N - name" / "not ok N - name", and exit 1 on any failure.  Without a
 * CUDA device a program prints "SKIP: no CUDA device" and exits 77.
 */
#ifndef KVMM_GPUTEST_H
#define KVMM_GPUTEST_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "kvmm.h"

struct gt {
	int n, failed;
};

#define GT_CHECK(t, cond, ...)                                                         \
	do {                                                                           \
		int __ok = !!(cond);                                                   \
		(t)->n++;                                                              \
		if (!__ok)                                                             \
			(t)->failed++;                                                 \
		printf("%sok %d - ", __ok ? "" : "not ", (t)->n);                      \
		printf(__VA_ARGS__);                                                   \
		printf("\n");                                                          \
		if (!__ok)                                                             \
			printf("#   failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
		fflush(stdout);                                                        \
	} while (0)

/* Open the CUDA backend or skip the whole program (exit 77). */
static inline struct kvmm_backend *gt_open_cuda_or_skip(void)
{
	struct kvmm_backend_config cfg = {.type = KVMM_BACKEND_CUDA};
	struct kvmm_backend *be = NULL;
	int ret = kvmm_backend_open(&cfg, &be);

	if (ret == -ENODEV) {
		printf("SKIP: no CUDA device\n");
		exit(77);
	}
	if (ret) {
		printf("not ok 1 - open cuda backend: %s\n", kvmm_strerror(ret));
		exit(1);
	}
	return be;
}

static inline int gt_done(struct gt *t)
{
	printf("1..%d\n", t->n);
	return t->failed ? 1 : 0;
}

#endif /* KVMM_GPUTEST_H */
