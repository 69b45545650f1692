// SPDX-License-Identifier: MIT
/*
 * test_tier_quant.c - quantize-on-spill: the CPU codec's conversions (every
 * fp16, bf16 and e4m3 value; rounding to nearest even), the round trip
 * within the documented error bound for INT8 and FP8 over fp16 and bf16,
 * quantized records (format version 2), and the tiers end to end with
 * FP8/INT8 for every layout: spilled to the host pool and disk, restored
 * within the bound, checksums over the quantized payload, a restart, a
 * corrupt payload never served; with synchronous and emulated asynchronous
 * copies.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cachetest.h"
#include "testutil.h"
#include "tier_fixture.h"
#include "tier_quant.h"
#include "tier_record.h"
#include "tiers.h"

/* ---- conversions ----------------------------------------------------------- */

START_TEST(test_f16_bf16_exhaustive)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float f = tier_f16_to_f32((uint16_t)h), g = tier_bf16_to_f32((uint16_t)h);

		if (!isnan(f))
			ck_assert_msg(tier_f32_to_f16(f) == h, "f16 %04x", h);
		if (!isnan(g))
			ck_assert_msg(tier_f32_to_bf16(g) == h, "bf16 %04x", h);
	}
	/* rounding: ties to even, overflow, subnormals */
	ck_assert_uint_eq(tier_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie: even */
	ck_assert_uint_eq(tier_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02); /* tie: even up */
	ck_assert_uint_eq(tier_f32_to_f16(1.0f + 1.0f / 2048 + 1e-6f), 0x3c01);
	ck_assert_uint_eq(tier_f32_to_f16(65519.0f), 0x7bff);
	ck_assert_uint_eq(tier_f32_to_f16(65520.0f), 0x7c00);
	ck_assert_uint_eq(tier_f32_to_f16(-1e9f), 0xfc00);
	ck_assert_uint_eq(tier_f32_to_f16(ldexpf(1.5f, -24)), 0x0002); /* tie: even */
	ck_assert_uint_eq(tier_f32_to_f16(ldexpf(1.0f, -26)), 0x0000);
	ck_assert_uint_eq(tier_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80); /* tie: even */
	ck_assert_uint_eq(tier_f32_to_bf16(1.0f + ldexpf(3.0f, -8)), 0x3f82);
}
END_TEST

START_TEST(test_e4m3)
{
	float prev = -INFINITY;

	/* every code decodes and encodes back; positive codes increase */
	for (uint32_t q = 0; q < 256; q++) {
		float f = tier_e4m3_to_f32((uint8_t)q);

		if ((q & 0x7f) == 0x7f) {
			ck_assert(isnan(f));
			continue;
		}
		ck_assert_msg(tier_f32_to_e4m3(f) == (q == 0x80 ? 0x80 : q), "code %02x", q);
		if (q < 0x7f) {
			ck_assert(f > prev || q == 0);
			prev = f;
		}
	}
	ck_assert(tier_e4m3_to_f32(0x7e) == 448.0f);
	ck_assert(tier_e4m3_to_f32(0x08) == 0.015625f); /* smallest normal */
	ck_assert(tier_e4m3_to_f32(0x01) == ldexpf(1.0f, -9));
	/* nearest, ties to even, between each pair of neighbours */
	for (uint32_t q = 0; q < 0x7e; q++) {
		float a = tier_e4m3_to_f32((uint8_t)q), b = tier_e4m3_to_f32((uint8_t)(q + 1));
		float mid = (a + b) / 2;

		ck_assert_uint_eq(tier_f32_to_e4m3(nextafterf(mid, a)), q);
		ck_assert_uint_eq(tier_f32_to_e4m3(nextafterf(mid, b)), q + 1);
		ck_assert_uint_eq(tier_f32_to_e4m3(mid), q % 2 ? q + 1 : q);
		ck_assert_uint_eq(tier_f32_to_e4m3(-mid), 0x80 | (q % 2 ? q + 1 : q));
	}
	/* saturating */
	ck_assert_uint_eq(tier_f32_to_e4m3(449.0f), 0x7e);
	ck_assert_uint_eq(tier_f32_to_e4m3(1e30f), 0x7e);
	ck_assert_uint_eq(tier_f32_to_e4m3(-INFINITY), 0xfe);
	ck_assert_uint_eq(tier_f32_to_e4m3(NAN) & 0x7f, 0x7f);
	ck_assert_uint_eq(tier_f32_to_e4m3(ldexpf(1.0f, -11)), 0); /* tie below 2^-9: even */
}
END_TEST

/* ---- the round trip and its bound ------------------------------------------- */

static uint16_t to_dtype(uint32_t dtype, float x)
{
	return dtype == TIER_DTYPE_BF16 ? tier_f32_to_bf16(x) : tier_f32_to_f16(x);
}

static float from_dtype(uint32_t dtype, uint16_t h)
{
	return dtype == TIER_DTYPE_BF16 ? tier_bf16_to_f32(h) : tier_f16_to_f32(h);
}

static bool within(uint32_t kind, uint32_t dtype, float x, float y, float amax)
{
	return tier_quant_within(kind, dtype, x, y, amax);
}

/* A row of n values of magnitude around amp, with a chosen shape. */
static void make_row(struct tu_rng *r, uint32_t dtype, uint16_t *row, uint32_t n, float amp,
		     int shape)
{
	for (uint32_t i = 0; i < n; i++) {
		double u = (double)(tu_rng_next(r) >> 11) / 9007199254740992.0;
		float x = (float)((2 * u - 1) * amp);

		if (shape == 1)
			x = 0; /* a zero row */
		else if (shape == 2)
			x = i == n / 2 ? amp : 0; /* one spike */
		else if (shape == 3)
			x = (float)((2 * u - 1) * amp * 1e-6); /* tiny: subnormal in fp16 */
		row[i] = to_dtype(dtype, x);
	}
}

START_TEST(test_roundtrip_bound)
{
	static const uint32_t rows_e[] = {8, 16, 64, 128, 256};
	struct tu_rng rng;

	tu_rng_init(&rng, tu_seed() + 3);
	for (uint32_t kind = TIER_QUANT_INT8; kind <= TIER_QUANT_FP8; kind++)
		for (uint32_t dtype = TIER_DTYPE_FP16; dtype <= TIER_DTYPE_BF16; dtype++)
			for (size_t e = 0; e < sizeof(rows_e) / sizeof(rows_e[0]); e++) {
				uint32_t E = rows_e[e], nrows = 40;
				uint64_t raw = 2ull * E * nrows, qb = tier_quant_bytes(raw, E);
				uint16_t *in = malloc(raw), *out = malloc(raw);
				unsigned char *q = malloc(qb), *q2 = malloc(qb);

				ck_assert_uint_eq(qb, ((raw / 2 + 15) & ~15ull) +
							      ((nrows * 4 + 15) & ~15ull));
				for (uint32_t r = 0; r < nrows; r++) {
					float amp = (float)pow(10.0, -3.0 + 6.0 * r / nrows);

					make_row(&rng, dtype, in + (size_t)r * E, E, amp,
						 r % 7 == 1   ? 1
						 : r % 7 == 2 ? 2
						 : r % 7 == 3 ? 3
							      : 0);
				}
				memset(q, 0xee, qb);
				ck_assert_int_eq(tier_quant_encode(kind, dtype, E, in, raw, q), 0);
				ck_assert_int_eq(tier_quant_decode(kind, dtype, E, q, raw, out), 0);
				/* deterministic, pads zero */
				memset(q2, 0x11, qb);
				ck_assert_int_eq(tier_quant_encode(kind, dtype, E, in, raw, q2), 0);
				ck_assert(!memcmp(q, q2, qb));
				for (uint64_t i = raw / 2; i < tier_quant_scale_off(raw); i++)
					ck_assert_uint_eq(q[i], 0);
				for (uint64_t i = tier_quant_scale_off(raw) + 4ull * nrows; i < qb;
				     i++)
					ck_assert_uint_eq(q[i], 0);
				for (uint32_t r = 0; r < nrows; r++) {
					float amax = 0;

					for (uint32_t i = 0; i < E; i++)
						amax = fmaxf(amax, fabsf(from_dtype(
									   dtype, in[r * E + i])));
					for (uint32_t i = 0; i < E; i++) {
						float x = from_dtype(dtype, in[r * E + i]);
						float y = from_dtype(dtype, out[r * E + i]);

						ck_assert_msg(
							within(kind, dtype, x, y, amax),
							"kind %u dtype %u E %u row %u: %g -> %g "
							"(amax %g)",
							kind, dtype, E, r, x, y, amax);
						if (amax == 0)
							ck_assert(y == 0);
					}
				}
				free(in);
				free(out);
				free(q);
				free(q2);
			}
}
END_TEST

START_TEST(test_bad_args)
{
	unsigned char buf[256] = {0}, out[256];

	ck_assert_uint_eq(tier_quant_bytes(256, 7), 0);
	ck_assert_uint_eq(tier_quant_bytes(256, 512), 0);
	ck_assert_uint_eq(tier_quant_bytes(250, 8), 0);
	ck_assert_uint_eq(tier_quant_bytes(256, 8), 128 + 64);
	ck_assert_int_eq(tier_quant_encode(0, TIER_DTYPE_FP16, 8, buf, 64, out), -EINVAL);
	ck_assert_int_eq(tier_quant_encode(3, TIER_DTYPE_FP16, 8, buf, 64, out), -EINVAL);
	ck_assert_int_eq(tier_quant_encode(TIER_QUANT_FP8, 0, 8, buf, 64, out), -EINVAL);
	ck_assert_int_eq(tier_quant_decode(TIER_QUANT_FP8, 3, 8, buf, 64, out), -EINVAL);
	ck_assert_int_eq(tier_quant_decode(TIER_QUANT_INT8, TIER_DTYPE_BF16, 8, buf, 60, out),
			 -EINVAL);
}
END_TEST

/* ---- quantized records (format version 2) ------------------------------------ */

START_TEST(test_record_v2)
{
	uint32_t tokens[16], E = 128;
	uint64_t raw = 2u << 20, qb = tier_quant_bytes(raw, E), total = tier_rec_bytes(16, qb);
	unsigned char *buf = calloc(1, total);
	struct tier_rec r = {.ns = {.model_id = 5},
			     .parent = 9,
			     .ntokens = 16,
			     .encoding = TIER_ENC_FP8,
			     .payload_bytes = qb,
			     .raw_bytes = raw,
			     .dtype = TIER_DTYPE_BF16,
			     .row_elems = E},
			d;

	for (int i = 0; i < 16; i++)
		tokens[i] = 100u + (uint32_t)i;
	r.key = tier_key_next(r.parent, tokens, 16);
	ck_assert_int_eq(tier_rec_seal(buf, total, &r, tokens), 0);
	ck_assert_uint_eq(buf[16], 2); /* version 2 */
	ck_assert_int_eq(tier_rec_verify(buf, total, &d), 0);
	ck_assert_uint_eq(d.encoding, TIER_ENC_FP8);
	ck_assert_uint_eq(d.dtype, TIER_DTYPE_BF16);
	ck_assert_uint_eq(d.row_elems, E);
	ck_assert_uint_eq(d.raw_bytes, raw);
	/* every bit of the header region still counts */
	for (uint32_t off = 0; off < d.hdr_bytes; off += 1 + off / 64) {
		buf[off] ^= (unsigned char)(1u << (off % 8));
		ck_assert_msg(tier_rec_verify(buf, total, &d) == -EBADMSG, "header byte %u", off);
		buf[off] ^= (unsigned char)(1u << (off % 8));
	}
	/* inconsistent fields are refused when writing */
	r.payload_bytes = qb - 16;
	ck_assert_int_eq(tier_rec_seal(buf, total, &r, tokens), -EINVAL);
	r.payload_bytes = qb;
	r.dtype = 0;
	ck_assert_int_eq(tier_rec_seal(buf, total, &r, tokens), -EINVAL);
	r.dtype = TIER_DTYPE_FP16;
	r.row_elems = 12;
	ck_assert_int_eq(tier_rec_seal(buf, total, &r, tokens), -EINVAL);
	/* a raw record is version 1, with no quantization fields */
	r = (struct tier_rec){.parent = 9, .ntokens = 16, .payload_bytes = 4096};
	r.key = tier_key_next(r.parent, tokens, 16);
	ck_assert_int_eq(tier_rec_seal(buf, total, &r, tokens), 0);
	ck_assert_uint_eq(buf[16], 1);
	r.row_elems = 8;
	ck_assert_int_eq(tier_rec_seal(buf, total, &r, tokens), -EINVAL);
	free(buf);
}
END_TEST

/* ---- the tiers end to end ------------------------------------------------------ */

#define NPROMPT 3
#define NBLK	4

struct qenv {
	struct kvmm_backend *be;
	struct kvmm_cache *c;
	struct kvmm_cache_info info;
	uint32_t tpb, kind, dtype;
	uint32_t tok[NPROMPT][NBLK * 128];
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	return x ^ (x >> 33);
}

/* Element i of token t, layer l, K/V kv of prompt p: real values, of a
 * magnitude that changes from row to row (one row = one token of one
 * head), some rows zero. */
static float value(uint32_t p, uint32_t t, uint32_t l, uint32_t kv, uint32_t i, uint32_t hd)
{
	uint64_t h = mix(((uint64_t)p << 48) ^ ((uint64_t)t << 20) ^ (l << 8) ^ (kv << 4) ^ i);
	uint64_t row = mix(((uint64_t)p << 48) ^ ((uint64_t)t << 20) ^ (l << 8) ^ (kv << 4) ^
			   (i / hd << 1) ^ 0x5555);
	double amp = pow(10.0, -2.0 + (double)(row % 500) / 100.0);

	if (row % 13 == 0)
		return 0;
	return (float)((((double)(h >> 11) / 9007199254740992.0) * 2 - 1) * amp);
}

static uint64_t row_elems_bytes(const struct qenv *e)
{
	return (uint64_t)e->info.shape.num_kv_heads * e->info.shape.head_dim * 2;
}

static void write_prompt(struct qenv *e, uint32_t s, uint32_t p, uint32_t n)
{
	uint32_t hd = e->info.shape.head_dim, per = e->info.shape.num_kv_heads * hd;
	uint16_t *buf = malloc(row_elems_bytes(e) * n);

	for (uint32_t l = 0; l < e->info.shape.num_layers; l++)
		for (uint32_t kv = 0; kv < 2; kv++) {
			for (uint32_t t = 0; t < n; t++)
				for (uint32_t i = 0; i < per; i++)
					buf[(size_t)t * per + i] =
						to_dtype(e->dtype, value(p, t, l, kv, i, hd));
			ck_assert_int_eq(kvmm_seq_write(e->c, s, l, kv, 0, n, buf), 0);
		}
	free(buf);
}

/* Tokens [0, n) of seq s hold prompt p's values within the bound. */
static void check_prompt(struct qenv *e, uint32_t s, uint32_t p, uint32_t n)
{
	uint32_t hd = e->info.shape.head_dim, per = e->info.shape.num_kv_heads * hd;
	uint16_t *buf = malloc(row_elems_bytes(e) * n);
	uint64_t bad = 0, exact = 0, total = 0;

	for (uint32_t l = 0; l < e->info.shape.num_layers; l++)
		for (uint32_t kv = 0; kv < 2; kv++) {
			ck_assert_int_eq(kvmm_seq_read(e->c, s, l, kv, 0, n, buf), 0);
			for (uint32_t t = 0; t < n; t++)
				for (uint32_t h0 = 0; h0 < per; h0 += hd) {
					float amax = 0;

					for (uint32_t i = h0; i < h0 + hd; i++)
						amax = fmaxf(
							amax,
							fabsf(from_dtype(e->dtype,
									 to_dtype(e->dtype,
										  value(p, t, l, kv,
											i, hd)))));
					for (uint32_t i = h0; i < h0 + hd; i++) {
						float x = from_dtype(
							e->dtype,
							to_dtype(e->dtype,
								 value(p, t, l, kv, i, hd)));
						float y = from_dtype(e->dtype,
								     buf[(size_t)t * per + i]);

						bad += !within(e->kind, e->dtype, x, y, amax);
						exact += x == y;
						total++;
					}
				}
		}
	free(buf);
	ck_assert_msg(!bad, "%llu of %llu elements outside the bound", (unsigned long long)bad,
		      (unsigned long long)total);
	/* quantized, not copied: most elements changed a little */
	ck_assert_uint_lt(exact, total);
}

static void qenv_open(struct qenv *e, int i, uint32_t host_recs, uint32_t disk_recs, uint32_t flags)
{
	struct kvmm_tiers_config tc = {.host_placement = KVMM_HOST_ANY_NODE,
				       .disk_policy = KVMM_WRITE_THROUGH,
				       .encoding = e->kind == TIER_QUANT_FP8 ? KVMM_SPILL_FP8
									     : KVMM_SPILL_INT8,
				       .kv_dtype = e->dtype,
				       .flags = flags};
	uint64_t rec;

	if (!e->be)
		e->be = ct_backend(CT_PAGE);
	e->c = ct_make(e->be, i, 3, -(NBLK + 2), 3 * (NBLK + 2) + NPROMPT * NBLK);
	ck_assert_int_eq(kvmm_prefix_enable(e->c, NULL), 0);
	kvmm_cache_get_info(e->c, &e->info);
	e->tpb = e->info.tokens_per_block;
	for (uint32_t p = 0; p < NPROMPT; p++)
		for (uint32_t t = 0; t < NBLK * e->tpb; t++)
			e->tok[p][t] = 300000u * (p + 1) + t;
	rec = tier_rec_bytes(e->tpb, tier_quant_bytes(e->info.block_bytes, e->info.shape.head_dim));
	tc.host_bytes = host_recs * rec;
	tc.disk_dir = disk_recs ? tf_dir : NULL;
	tc.disk_bytes = 4096 + disk_recs * rec;
	ck_assert_int_eq(kvmm_tiers_enable(e->c, &tc), 0);
}

static void qfill(struct qenv *e, uint32_t p)
{
	uint32_t n = NBLK * e->tpb, s;

	ck_assert_int_eq(kvmm_seq_open(e->c, n, &s), 0);
	ck_assert_int_eq(ct_step1(e->c, s, n), 0);
	write_prompt(e, s, p, n);
	ck_assert_int_eq(kvmm_prefix_insert(e->c, s, NULL, e->tok[p], n), (int)n);
	ck_assert_int_eq(kvmm_seq_close(e->c, s), 0);
}

/* Prefetch prompt p, attach what the prefix cache has, check it; returns
 * the tokens attached. */
static uint32_t qrestore(struct qenv *e, uint32_t p)
{
	uint32_t n = NBLK * e->tpb, found, m = 0, s;
	struct kvmm_prefetch *pf = NULL;
	struct kvmm_prefix_handle *h;

	ck_assert_int_eq(kvmm_prefix_prefetch(e->c, NULL, e->tok[p], n, 0, &pf, &found), 0);
	if (pf)
		kvmm_prefetch_wait(e->c, pf, n, UINT64_MAX);
	kvmm_prefetch_release(e->c, pf);
	ck_assert_int_eq(kvmm_prefix_match(e->c, NULL, e->tok[p], n, &h, &m), 0);
	if (m) {
		ck_assert_int_eq(kvmm_seq_open(e->c, m, &s), 0);
		ck_assert_int_eq(kvmm_seq_attach_prefix(e->c, s, h, KVMM_ATTACH_COPY), 0);
		check_prompt(e, s, p, m);
		ck_assert_int_eq(kvmm_seq_close(e->c, s), 0);
	}
	kvmm_prefix_release(e->c, h);
	return m;
}

/* i: layout i % 3, mapper when i >= 3 (as ct_make); both encodings and
 * both element types in turn. */
START_TEST(test_tiers_quant_roundtrip)
{
	for (uint32_t kind = TIER_QUANT_INT8; kind <= TIER_QUANT_FP8; kind++) {
		for (uint32_t dtype = TIER_DTYPE_FP16; dtype <= TIER_DTYPE_BF16; dtype++) {
			struct qenv e = {.kind = kind, .dtype = dtype};
			struct kvmm_tiers_stats st;
			uint32_t n, total = NPROMPT * NBLK;
			uint64_t qb;

			/* a host pool smaller than what is spilled: the rest
			 * is read back from disk (this turn's alone) */
			qenv_open(&e, _i, NBLK + 2, total + 4, KVMM_TIERS_DISK_DISCARD);
			n = NBLK * e.tpb;
			qb = tier_quant_bytes(e.info.block_bytes, e.info.shape.head_dim);
			for (uint32_t p = 0; p < NPROMPT; p++)
				qfill(&e, p);
			ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), (int)total);
			ck_assert_int_eq(kvmm_tiers_flush(e.c), 0);
			ck_assert_int_eq(kvmm_tiers_stats(e.c, &st), 0);
			ck_assert_uint_eq(st.spill_skipped, 0);
			ck_assert_uint_eq(st.encoding, kind == TIER_QUANT_FP8 ? KVMM_SPILL_FP8
									      : KVMM_SPILL_INT8);
			ck_assert_uint_eq(st.quant_on_device, 0);
			/* fewer bytes went down: (E + 4) / 2E of them, and
			 * some padding (75% here, E = 8; 52% for E = 128) */
			ck_assert_uint_eq(st.spill_host_bytes, (uint64_t)total * qb);
			ck_assert_uint_le(qb * 4, e.info.block_bytes * 3 + 64);
			for (uint32_t p = 0; p < NPROMPT; p++)
				ck_assert_uint_eq(qrestore(&e, p), n);
			ck_assert_int_eq(kvmm_tiers_stats(e.c, &st), 0);
			ck_assert_uint_eq(st.restores_host + st.restores_disk, total);
			ck_assert_uint_gt(st.restores_disk, 0);
			ck_assert_uint_eq(st.verify_failures + st.io_errors + st.restore_failures,
					  0);
			ct_verify(e.c);
			kvmm_cache_destroy(e.c);
			e.c = NULL;
			/* a restart finds the quantized records on disk */
			qenv_open(&e, _i, NBLK + 2, total + 4, 0);
			ck_assert_int_eq(kvmm_tiers_stats(e.c, &st), 0);
			ck_assert_uint_ge(st.disk_scan_found, total - (NBLK + 2));
			ck_assert_uint_eq(qrestore(&e, 0), n);
			kvmm_cache_destroy(e.c);
			kvmm_backend_close(e.be);
		}
	}
}
END_TEST

/* A flipped byte in a quantized payload (in the host pool) is caught by
 * the checksum over the quantized bytes: the restore stops before it. */
START_TEST(test_tiers_quant_corrupt)
{
	struct qenv e = {.kind = TIER_QUANT_FP8, .dtype = TIER_DTYPE_BF16};
	struct kvmm_tiers_stats st;
	struct kvmm_tiers *t;
	uint64_t keys[NBLK];
	uint32_t slot;

	qenv_open(&e, _i, 2 * NBLK, 0, 0);
	qfill(&e, 1);
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	kvmm_tiers_flush(e.c);
	t = kvmm_tiers_of(e.c);
	tiers_keys(t, &(struct kvmm_ns){0}, e.tok[1], NBLK, keys);
	pthread_mutex_lock(&t->lock);
	ck_assert_ptr_nonnull(tidx_find(t, keys[2], &slot));
	/* a scale byte: the last part of the payload */
	((unsigned char *)tier_host_slot(t->host, slot))[t->hdr_bytes + t->payload_bytes - 20] ^= 4;
	pthread_mutex_unlock(&t->lock);
	ck_assert_uint_eq(qrestore(&e, 1), 2 * e.tpb);
	ck_assert_int_eq(kvmm_tiers_stats(e.c, &st), 0);
	ck_assert_uint_eq(st.verify_failures, 1);
	ct_verify(e.c);
	kvmm_cache_destroy(e.c);
	kvmm_backend_close(e.be);
}
END_TEST

/* Layer-wise attach of quantized records (one event covers every layer). */
START_TEST(test_tiers_quant_layerwise)
{
	struct qenv e = {.kind = TIER_QUANT_INT8, .dtype = TIER_DTYPE_FP16};
	struct kvmm_prefetch *pf = NULL;
	uint32_t n, found, s;

	qenv_open(&e, _i, 2 * NBLK, 0, 0);
	n = NBLK * e.tpb;
	qfill(&e, 2);
	ck_assert_int_eq(kvmm_prefix_evict(e.c, 1000), NBLK);
	kvmm_tiers_flush(e.c);
	ck_assert_int_eq(
		kvmm_prefix_prefetch(e.c, NULL, e.tok[2], n, KVMM_PREFETCH_LAYERWISE, &pf, &found),
		0);
	ck_assert_ptr_nonnull(pf);
	ck_assert_int_eq(kvmm_seq_open(e.c, n, &s), 0);
	ck_assert_int_eq(kvmm_seq_attach_prefetch(e.c, s, pf), (int)n);
	for (uint32_t l = 0; l < e.info.shape.num_layers; l++)
		ck_assert_int_eq(kvmm_prefetch_wait_layer(e.c, pf, l), 0);
	check_prompt(&e, s, 2, n);
	ck_assert_int_eq(kvmm_seq_close(e.c, s), 0);
	kvmm_prefetch_release(e.c, pf);
	ct_verify(e.c);
	kvmm_cache_destroy(e.c);
	kvmm_backend_close(e.be);
}
END_TEST

START_TEST(test_tiers_quant_config)
{
	struct kvmm_backend *be = ct_backend(CT_PAGE);
	struct kvmm_cache *c = ct_make(be, 0, 2, -4, 16);
	struct kvmm_tiers_config tc = {.host_bytes = 1u << 20,
				       .host_placement = KVMM_HOST_ANY_NODE,
				       .encoding = KVMM_SPILL_FP8};

	ck_assert_int_eq(kvmm_prefix_enable(c, NULL), 0);
	/* which 2-byte type the cache holds must be said */
	ck_assert_int_eq(kvmm_tiers_enable(c, &tc), -EINVAL);
	tc.kv_dtype = 3;
	ck_assert_int_eq(kvmm_tiers_enable(c, &tc), -EINVAL);
	tc.kv_dtype = KVMM_DTYPE_BF16;
	tc.encoding = 3;
	ck_assert_int_eq(kvmm_tiers_enable(c, &tc), -EINVAL);
	tc.encoding = KVMM_SPILL_INT8;
	tc.flags = KVMM_TIERS_HOST_THP | KVMM_TIERS_HOST_NO_THP;
	ck_assert_int_eq(kvmm_tiers_enable(c, &tc), -EINVAL);
	tc.flags = 0;
	ck_assert_int_eq(kvmm_tiers_enable(c, &tc), 0);
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tier_quant");
	TCase *tc = tcase_create("codec"), *te, *ta;

	if (tf_need_direct())
		return 77;
	tcase_add_test(tc, test_f16_bf16_exhaustive);
	tcase_add_test(tc, test_e4m3);
	tcase_add_test(tc, test_roundtrip_bound);
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_record_v2);
	suite_add_tcase(s, tc);
	te = tcase_create("tiers");
	tcase_set_timeout(te, 300);
	tcase_add_checked_fixture(te, tf_setup, tf_teardown);
	tcase_add_loop_test(te, test_tiers_quant_roundtrip, 0, 6);
	tcase_add_loop_test(te, test_tiers_quant_corrupt, 0, 3);
	tcase_add_loop_test(te, test_tiers_quant_layerwise, 0, 3);
	tcase_add_test(te, test_tiers_quant_config);
	suite_add_tcase(s, te);
	ta = tcase_create("tiers-async");
	tcase_set_timeout(ta, 300);
	tcase_add_checked_fixture(ta, tf_async_setup, tf_async_teardown);
	tcase_add_loop_test(ta, test_tiers_quant_roundtrip, 0, 3);
	tcase_add_loop_test(ta, test_tiers_quant_corrupt, 0, 3);
	tcase_add_loop_test(ta, test_tiers_quant_layerwise, 0, 3);
	suite_add_tcase(s, ta);
	return tu_run(s);
}
