/* SPDX-License-Identifier: MIT */
/*
 * tier_quant.h - quantize-on-spill on the CPU: a block's KV (fp16 or bf16,
 * in rows of row_elems elements: one token of one head) to 1-byte values
 * (INT8, or FP8 e4m3) and one fp32 scale per row, and back.
 *
 * The quantized payload has exactly the layout of kvmm_pack() over one run
 * of the whole block (kernels/pack.cuh), and the same arithmetic, so a
 * record written by the GPU's pack kernel decodes here and the other way
 * round, to the same bits:
 *
 *   [row 0's values | row 1's | ... ] zero pad to 16 | [scale of row 0 | ...] zero pad to 16
 *    rows * row_elems bytes                             rows * 4 bytes (fp32 LE)
 *
 *   scale s = amax / qmax (qmax 127 or 448; amax = max |x| of the row)
 *   INT8: q = clamp(rint(x * (qmax / amax)), -127, 127)   x' = q * s
 *   FP8:  q = e4m3_rn_satfinite(x * (qmax / amax))         x' = float(q) * s
 *   x' rounded to the cache's type (round to nearest even).  A zero row
 *   stores s = 0 and zeros.
 *
 * Error bounds (u = 2^-8 for bf16, 2^-11 for fp16; docs/kernels.md derives
 * the first terms), for every element x of a row with amax:
 *   INT8: |x' - x| <= amax / 254 + u |x'| + nu
 *   FP8:  |x' - x| <= max(|x| / 16, amax / 458752) + u |x'| + nu
 * where nu is half the cache type's smallest subnormal step (2^-25 for
 * fp16, 2^-134 for bf16): the rounding of a result that is subnormal.
 */
#ifndef KVMM_TIER_QUANT_H
#define KVMM_TIER_QUANT_H

#include <stdint.h>

enum tier_quant_kind {
	TIER_QUANT_INT8 = 1, /* as enum kvmm_quant */
	TIER_QUANT_FP8 = 2,
};

enum tier_quant_dtype {
	TIER_DTYPE_FP16 = 1, /* as enum kvmm_dtype */
	TIER_DTYPE_BF16 = 2,
};

/* Bytes of the quantized payload of raw_bytes of KV in rows of row_elems
 * 2-byte elements; 0 if raw_bytes is not whole rows or row_elems is not a
 * power of two in [8, 256]. */
uint64_t tier_quant_bytes(uint64_t raw_bytes, uint32_t row_elems);
/* Offset of the scales in a quantized payload. */
uint64_t tier_quant_scale_off(uint64_t raw_bytes);

/* raw (raw_bytes) -> out (tier_quant_bytes(raw_bytes, row_elems)).  0 or
 * -EINVAL (bad kind, dtype or sizes). */
int tier_quant_encode(uint32_t kind, uint32_t dtype, uint32_t row_elems, const void *raw,
		      uint64_t raw_bytes, void *out);
/* in (a quantized payload) -> raw (raw_bytes).  0 or -EINVAL. */
int tier_quant_decode(uint32_t kind, uint32_t dtype, uint32_t row_elems, const void *in,
		      uint64_t raw_bytes, void *raw);

/* Is y, the restored value of element x of a row whose largest magnitude
 * is amax, within the bound above?  (Tests of the CPU and GPU paths.) */
int tier_quant_within(uint32_t kind, uint32_t dtype, float x, float y, float amax);

/* The element conversions (round to nearest even), for tests. */
uint8_t tier_f32_to_e4m3(float x); /* saturating to +-448; NaN -> 0x7f */
float tier_e4m3_to_f32(uint8_t q);
float tier_f16_to_f32(uint16_t h);
uint16_t tier_f32_to_f16(float x);
float tier_bf16_to_f32(uint16_t h);
uint16_t tier_f32_to_bf16(float x);

#endif /* KVMM_TIER_QUANT_H */
