// SPDX-License-Identifier: MIT
/* kvtest.c - see kvtest.h. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"

#ifdef KVMM_HAVE_CUDA
const struct kvmm_cuda_driver *kvt_drv;

struct kvmm_kernels *kvt_open(struct gt *t, struct kvmm_backend **be)
{
	struct kvmm_kernels *k = NULL;
	CUcontext ctx;
	int ret;

	*be = gt_open_cuda_or_skip();
	kvt_drv = kvmm_cuda_backend_driver(*be, &ctx, NULL);
	if (!kvt_drv || kvmm_cuda_ctx_enter(kvt_drv, ctx)) {
		printf("Bail out! no driver\n");
		exit(1);
	}
	ret = kvmm_kernels_open(*be, &k);
	GT_CHECK(t, ret == 0, "kvmm_kernels_open (%d %s)", ret, kvmm_backend_last_error(*be));
	return ret ? NULL : k;
}

int kvt_close(struct gt *t, struct kvmm_kernels *k, struct kvmm_backend *be)
{
	kvmm_kernels_close(k);
	kvmm_backend_close(be);
	return gt_done(t);
}
#else
#include <stdio.h>

/* Built without CUDA headers: every GPU test program skips (the test's
 * own main, when it has one, wins over this weak one). */
__attribute__((weak)) int main(void)
{
	printf("SKIP: no CUDA device (built without CUDA)\n");
	return 77;
}
#endif

uint16_t kvt_f2h(float f, bool bf16)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	if (bf16) {
		if ((x & 0x7fffffffu) > 0x7f800000u)
			return KVT_NAN16;
		return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
	}
	/* fp16: via the exponent, with subnormals and round to nearest even */
	uint32_t sign = (x >> 16) & 0x8000u, mag = x & 0x7fffffffu;
	if (mag > 0x7f800000u)
		return KVT_NAN16;
	if (mag >= 0x477ff000u) /* rounds to >= 65520: inf */
		return (uint16_t)(sign | 0x7c00u);
	if (mag < 0x38800000u) {		 /* below 2^-14: subnormal or zero */
		float a = fabsf(f) * 16777216.f; /* units of 2^-24 */
		uint32_t r = (uint32_t)nearbyintf(a);
		return (uint16_t)(sign | r);
	}
	uint32_t e = ((mag >> 23) - 112) << 10, m = mag & 0x7fffffu;
	uint32_t h = e | (m >> 13), rest = m & 0x1fffu;
	if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
		h++;
	return (uint16_t)(sign | h);
}

float kvt_h2f(uint16_t h, bool bf16)
{
	uint32_t x;
	float f;

	if (bf16) {
		x = (uint32_t)h << 16;
		memcpy(&f, &x, 4);
		return f;
	}
	uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu;
	if (e == 0) {
		f = ldexpf((float)m, -24);
		return sign ? -f : f;
	}
	if (e == 31)
		x = sign | 0x7f800000u | (m << 13);
	else
		x = sign | ((e + 112) << 23) | (m << 13);
	memcpy(&f, &x, 4);
	return f;
}

void kvt_rng_init(struct kvt_rng *r, uint64_t seed)
{
	r->s = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t kvt_rng_next(struct kvt_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 2685821657736338717ull;
}

uint32_t kvt_rng_below(struct kvt_rng *r, uint32_t n)
{
	return n ? (uint32_t)((kvt_rng_next(r) >> 32) % n) : 0;
}

float kvt_rng_unit(struct kvt_rng *r)
{
	return (float)((kvt_rng_next(r) >> 40) * (1.0 / 8388608.0) - 1.0);
}

void kvt_attn_ref(const uint16_t *q, uint64_t q_stride, const uint8_t *img,
		  const struct kvmm_view *kv, const struct kvmm_view *vv, uint32_t batch,
		  uint32_t hq, const int32_t *lens, const int32_t *ids, double scale, bool bf16,
		  double *out)
{
	const uint32_t d = kv->head_dim, group = hq / kv->num_heads;
	double *kd = NULL, *vd = NULL, *s = NULL, *qd = malloc(sizeof(double) * d);
	float *lut = malloc(sizeof(float) * 65536);
	int32_t cap = 0;

	if (!qd || !lut)
		abort();
	for (uint32_t i = 0; i < 65536; i++)
		lut[i] = kvt_h2f((uint16_t)i, bf16);
	for (uint32_t b = 0; b < batch; b++) {
		const uint32_t slot = ids ? (uint32_t)ids[b] : b;
		const int32_t len = lens[b];

		if (len > cap) {
			free(kd);
			free(vd);
			free(s);
			cap = len;
			kd = malloc(sizeof(double) * (size_t)cap * d);
			vd = malloc(sizeof(double) * (size_t)cap * d);
			s = malloc(sizeof(double) * (size_t)cap);
			if (!kd || !vd || !s)
				abort();
		}
		for (uint32_t kh = 0; kh < kv->num_heads; kh++) {
			for (int32_t t = 0; t < len; t++) {
				const uint16_t *k =
					(const uint16_t *)(img + kvmm_view_addr(kv, slot, t, kh));
				const uint16_t *v =
					(const uint16_t *)(img + kvmm_view_addr(vv, slot, t, kh));
				for (uint32_t i = 0; i < d; i++) {
					kd[(size_t)t * d + i] = lut[k[i]];
					vd[(size_t)t * d + i] = lut[v[i]];
				}
			}
			for (uint32_t h = kh * group; h < (kh + 1) * group; h++) {
				double *o = out + ((uint64_t)b * hq + h) * d, mx = -INFINITY,
				       sum = 0;

				for (uint32_t i = 0; i < d; i++)
					qd[i] = lut[q[b * q_stride + (uint64_t)h * d + i]];
				memset(o, 0, sizeof(*o) * d);
				for (int32_t t = 0; t < len; t++) {
					double dot = 0;
					for (uint32_t i = 0; i < d; i++)
						dot += qd[i] * kd[(size_t)t * d + i];
					s[t] = dot * scale;
					if (s[t] > mx)
						mx = s[t];
				}
				for (int32_t t = 0; t < len; t++) {
					double p = exp(s[t] - mx);
					sum += p;
					for (uint32_t i = 0; i < d; i++)
						o[i] += p * vd[(size_t)t * d + i];
				}
				for (uint32_t i = 0; i < d && len > 0; i++)
					o[i] /= sum;
			}
		}
	}
	free(kd);
	free(vd);
	free(s);
	free(qd);
	free(lut);
}

double kvt_rel_err(const uint16_t *got, uint64_t stride, const double *ref, uint32_t rows,
		   uint32_t row_elems, bool bf16, uint64_t *bad)
{
	double num = 0, den = 0;

	*bad = 0;
	for (uint32_t r = 0; r < rows; r++) {
		for (uint32_t i = 0; i < row_elems; i++) {
			double g = kvt_h2f(got[r * stride + i], bf16),
			       x = ref[(uint64_t)r * row_elems + i];
			if (!isfinite(g)) {
				(*bad)++;
				continue;
			}
			num += (g - x) * (g - x);
			den += x * x;
		}
	}
	return den > 0 ? sqrt(num / den) : sqrt(num);
}

uint64_t kvt_seed(void)
{
	const char *e = getenv("KVMM_TEST_SEED");

	return e && *e ? strtoull(e, NULL, 0) : 0x6b766d6dull;
}

uint32_t kvt_scaled(uint32_t n)
{
	const char *e = getenv("KVMM_TEST_SCALE");
	uint32_t d = e && *e ? (uint32_t)strtoul(e, NULL, 0) : 1;

	n = d > 1 ? n / d : n;
	return n ? n : 1;
}
