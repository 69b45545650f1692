/* SPDX-License-Identifier: MIT */
/*
 * kvtest.h - helpers of the kernel tests and benchmarks: KV laid out in each
 * fp16/bf16 conversions, a random generator and the float64 reference of
 * decode attention.  (The reference layouts are kvmm_reflayout_*, in
 * runtime/src/attn_reflayout.c.)
 */
#ifndef KVMM_KVTEST_H
#define KVMM_KVTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "attn_internal.h"
#include "kvmm.h"

/* Conversions (round to nearest even; NaN kept). */
uint16_t kvt_f2h(float f, bool bf16);
float kvt_h2f(uint16_t h, bool bf16);
#define KVT_NAN16 0x7fffu /* a NaN in both fp16 and bf16 */

/* Deterministic uniform floats in [-1, 1). */
struct kvt_rng {
	uint64_t s;
};
void kvt_rng_init(struct kvt_rng *r, uint64_t seed);
uint64_t kvt_rng_next(struct kvt_rng *r);
uint32_t kvt_rng_below(struct kvt_rng *r, uint32_t n);
float kvt_rng_unit(struct kvt_rng *r);

/*
 * float64 decode attention over a host image of the KV: q [batch][hq][d]
 * (rows q_stride elements apart), K/V through views whose base is an offset
 * into img, entry i reading slot ids ? ids[i] : i over lens[i] tokens.
 * out [batch][hq][d] doubles.
 */
void kvt_attn_ref(const uint16_t *q, uint64_t q_stride, const uint8_t *img,
		  const struct kvmm_view *kv, const struct kvmm_view *vv, uint32_t batch,
		  uint32_t hq, const int32_t *lens, const int32_t *ids, double scale, bool bf16,
		  double *out);

/* ||got - ref|| / ||ref|| over n outputs (got as fp16/bf16 rows of stride
 * elements); *bad counts NaN/inf outputs. */
double kvt_rel_err(const uint16_t *got, uint64_t stride, const double *ref, uint32_t rows,
		   uint32_t row_elems, bool bf16, uint64_t *bad);

/* Seed: $KVMM_TEST_SEED or a fixed one. */
uint64_t kvt_seed(void);
/* $KVMM_TEST_SCALE divides iteration counts (>= 1). */
uint32_t kvt_scaled(uint32_t n);

#ifdef KVMM_HAVE_CUDA
#include "cuda_driver.h"
#include "gputest.h"

/* The driver of the CUDA backend kvt_open() opened. */
extern const struct kvmm_cuda_driver *kvt_drv;

/* A driver call the test itself makes: any failure ends the program. */
#define CU(x)                                                                               \
	do {                                                                                \
		CUresult __r = (x);                                                         \
		if (__r != CUDA_SUCCESS) {                                                  \
			const char *__s = NULL;                                             \
			kvt_drv->cuGetErrorString(__r, &__s);                               \
			printf("Bail out! %s: %s (%s:%d)\n", #x, __s ? __s : "?", __FILE__, \
			       __LINE__);                                                   \
			exit(1);                                                            \
		}                                                                           \
	} while (0)

/* Open the CUDA backend (or skip the program: exit 77), make its context
 * current and open the kernels; NULL (a failed check in t) if they do not
 * load. */
struct kvmm_kernels *kvt_open(struct gt *t, struct kvmm_backend **be);
/* Close both and print the plan; the exit status of the program. */
int kvt_close(struct gt *t, struct kvmm_kernels *k, struct kvmm_backend *be);
#endif

#endif /* KVMM_KVTEST_H */
