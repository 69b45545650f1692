// SPDX-License-Identifier: MIT
/*
 * tier_quant.c - quantize-on-spill on the CPU (tier_quant.h): the same
 * layout and arithmetic as the GPU's pack kernels (kernels/pack.cuh), for
 * backends without them.  Every conversion is exact scaling by powers of
 * two plus one round-to-nearest-even (rintf in the default rounding mode),
 * the way the GPU's conversions round.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "tier_le.h"
#include "tier_quant.h"

static uint32_t f2u(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float u2f(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

float tier_f16_to_f32(uint16_t h)
{
	uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;

	if (!e) {
		float f = ldexpf((float)m, -24);

		return s ? -f : f;
	}
	if (e == 31)
		return u2f(s | 0x7f800000u | m << 13);
	return u2f(s | (e + 112) << 23 | m << 13);
}

uint16_t tier_f32_to_f16(float x)
{
	uint32_t u = f2u(x), sign = (u >> 16) & 0x8000, e, m, r, rem;

	u &= 0x7fffffffu;
	if (u > 0x7f800000u)
		return (uint16_t)(sign | 0x7e00); /* NaN */
	if (u >= 0x477ff000u)
		return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to infinity */
	if (u < 0x38800000u)			  /* below 2^-14: a subnormal half (or 0) */
		return (uint16_t)(sign | (uint32_t)rintf(u2f(u) * 16777216.0f));
	e = (u >> 23) - 112;
	m = u & 0x7fffff;
	r = e << 10 | m >> 13;
	rem = m & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (r & 1)))
		r++; /* a carry into the exponent is right */
	return (uint16_t)(sign | r);
}

float tier_bf16_to_f32(uint16_t h)
{
	return u2f((uint32_t)h << 16);
}

uint16_t tier_f32_to_bf16(float x)
{
	uint32_t u = f2u(x);

	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
	return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

float tier_e4m3_to_f32(uint8_t q)
{
	uint32_t e = (q >> 3) & 15, m = q & 7;
	float f;

	if (e == 15 && m == 7)
		return NAN;
	f = e ? ldexpf(1.0f + (float)m / 8.0f, (int)e - 7) : ldexpf((float)m, -9);
	return q & 0x80 ? -f : f;
}

uint8_t tier_f32_to_e4m3(float x)
{
	uint8_t sign = (f2u(x) >> 24) & 0x80;
	float a = fabsf(x), m;
	int e;

	if (isnan(x))
		return sign | 0x7f;
	if (isinf(x))
		return sign | 0x7e; /* saturating */
	if (a < 0.015625f) {
		/* subnormals: multiples of 2^-9 (8 of them make 2^-6, the
		 * smallest normal, code 0x08) */
		return sign | (uint8_t)rintf(a * 512.0f);
	}
	m = frexpf(a, &e); /* a = m 2^e, m in [0.5, 1) */
	e -= 1;
	m = rintf((2.0f * m - 1.0f) * 8.0f);
	if (m == 8.0f) {
		m = 0;
		e++;
	}
	if (e > 8 || (e == 8 && m == 7.0f))
		return sign | 0x7e; /* 448, the largest finite */
	return sign | (uint8_t)((e + 7) << 3) | (uint8_t)m;
}

static uint64_t round16(uint64_t v)
{
	return (v + 15) & ~15ull;
}

uint64_t tier_quant_scale_off(uint64_t raw_bytes)
{
	return round16(raw_bytes / 2);
}

uint64_t tier_quant_bytes(uint64_t raw_bytes, uint32_t row_elems)
{
	if (row_elems < 8 || row_elems > 256 || (row_elems & (row_elems - 1)) ||
	    raw_bytes % (2ull * row_elems))
		return 0;
	return tier_quant_scale_off(raw_bytes) + round16(raw_bytes / (2ull * row_elems) * 4);
}

static int check(uint32_t kind, uint32_t dtype, uint32_t row_elems, uint64_t raw_bytes)
{
	if ((kind != TIER_QUANT_INT8 && kind != TIER_QUANT_FP8) ||
	    (dtype != TIER_DTYPE_FP16 && dtype != TIER_DTYPE_BF16) ||
	    !tier_quant_bytes(raw_bytes, row_elems))
		return -EINVAL;
	return 0;
}

static float load(const unsigned char *p, uint32_t dtype)
{
	uint16_t h = (uint16_t)(p[0] | p[1] << 8);

	return dtype == TIER_DTYPE_BF16 ? tier_bf16_to_f32(h) : tier_f16_to_f32(h);
}

static void store(unsigned char *p, uint32_t dtype, float x)
{
	uint16_t h = dtype == TIER_DTYPE_BF16 ? tier_f32_to_bf16(x) : tier_f32_to_f16(x);

	p[0] = (unsigned char)h;
	p[1] = (unsigned char)(h >> 8);
}

int tier_quant_encode(uint32_t kind, uint32_t dtype, uint32_t row_elems, const void *raw,
		      uint64_t raw_bytes, void *out)
{
	const unsigned char *in = raw;
	unsigned char *q = out, *scales;
	const float qmax = kind == TIER_QUANT_FP8 ? 448.f : 127.f;
	uint64_t rows = raw_bytes / (2ull * row_elems), total;
	int ret = check(kind, dtype, row_elems, raw_bytes);

	if (ret)
		return ret;
	total = tier_quant_bytes(raw_bytes, row_elems);
	scales = q + tier_quant_scale_off(raw_bytes);
	/* the pads are zero */
	memset(q + raw_bytes / 2, 0, tier_quant_scale_off(raw_bytes) - raw_bytes / 2);
	memset(scales + rows * 4, 0, total - tier_quant_scale_off(raw_bytes) - rows * 4);
	for (uint64_t r = 0; r < rows; r++) {
		const unsigned char *row = in + r * 2 * row_elems;
		unsigned char *qr = q + r * row_elems;
		float amax = 0.f, inv;

		for (uint32_t i = 0; i < row_elems; i++)
			amax = fmaxf(amax, fabsf(load(row + 2 * i, dtype)));
		inv = amax > 0.f ? qmax / amax : 0.f;
		for (uint32_t i = 0; i < row_elems; i++) {
			float v = load(row + 2 * i, dtype) * inv;

			if (kind == TIER_QUANT_FP8) {
				qr[i] = tier_f32_to_e4m3(v);
			} else {
				long iv = isnan(v) ? 0 : lrintf(v);

				iv = iv < -127 ? -127 : iv > 127 ? 127 : iv;
				qr[i] = (unsigned char)(iv & 0xff);
			}
		}
		tier_put_le32(scales + 4 * r, f2u(amax / qmax));
	}
	return 0;
}

int tier_quant_decode(uint32_t kind, uint32_t dtype, uint32_t row_elems, const void *in,
		      uint64_t raw_bytes, void *raw)
{
	const unsigned char *q = in, *scales;
	unsigned char *outp = raw;
	uint64_t rows = raw_bytes / (2ull * row_elems);
	int ret = check(kind, dtype, row_elems, raw_bytes);

	if (ret)
		return ret;
	scales = q + tier_quant_scale_off(raw_bytes);
	for (uint64_t r = 0; r < rows; r++) {
		const unsigned char *qr = q + r * row_elems;
		unsigned char *row = outp + r * 2 * row_elems;
		float s = u2f(tier_get_le32(scales + 4 * r));

		for (uint32_t i = 0; i < row_elems; i++) {
			float v = kind == TIER_QUANT_FP8 ? tier_e4m3_to_f32(qr[i])
							 : (float)(int8_t)qr[i];

			store(row + 2 * i, dtype, v * s);
		}
	}
	return 0;
}

int tier_quant_within(uint32_t kind, uint32_t dtype, float x, float y, float amax)
{
	double u = dtype == TIER_DTYPE_BF16 ? 1.0 / 256 : 1.0 / 2048;
	double nu = dtype == TIER_DTYPE_BF16 ? ldexp(1.0, -134) : ldexp(1.0, -25);
	double err = fabs((double)y - x), b;

	if (kind == TIER_QUANT_INT8)
		b = amax / 254.0 + u * fabs(y) + nu;
	else
		b = fmax(fabs(x) / 16.0, amax / 458752.0) + u * fabs(y) + nu;
	/* the bound's own arithmetic rounds: a relative slack of 1e-6 */
	return err <= b * (1 + 1e-6);
}
