// SPDX-License-Identifier: MIT
/* test_tier_record.c - the record format: encode, verify, every corruption
 * caught, content keys. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tier_hash.h"
#include "tier_record.h"

static void fill_rand(struct tu_rng *r, void *buf, size_t n)
{
	unsigned char *b = buf;

	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)tu_rng_next(r);
}

/* A sealed record of ntok tokens and plen payload bytes in a fresh buffer. */
static void *make_rec(struct tu_rng *rng, uint32_t ntok, uint64_t plen, struct tier_rec *r,
		      uint32_t **tokens_out)
{
	uint64_t total = tier_rec_bytes(ntok, plen);
	uint32_t *tokens = calloc(ntok + 1, sizeof(*tokens));
	unsigned char *buf;

	ck_assert_uint_gt(total, 0);
	buf = aligned_alloc(4096, total);
	ck_assert_ptr_nonnull(buf);
	memset(buf, 0, total);
	for (uint32_t i = 0; i < ntok; i++)
		tokens[i] = (uint32_t)tu_rng_next(rng);
	memset(r, 0, sizeof(*r));
	r->seq = tu_rng_next(rng);
	r->ns.model_id = 7;
	r->ns.adapter_id = 8;
	r->ns.tenant_salt = 9;
	r->geometry = 0x1234;
	r->parent = tu_rng_next(rng) >> 1;
	r->key = tier_key_next(r->parent, tokens, ntok);
	r->ntokens = ntok;
	r->payload_bytes = plen;
	fill_rand(rng, buf + tier_rec_hdr_bytes(ntok), plen);
	ck_assert_int_eq(tier_rec_seal(buf, total, r, tokens), 0);
	if (tokens_out)
		*tokens_out = tokens;
	else
		free(tokens);
	return buf;
}

/* Recompute the header hash after a test edits a field, so the semantic
 * checks are tested on their own. */
static void rehash(unsigned char *b)
{
	uint32_t hb = b[20] | b[21] << 8 | b[22] << 16 | (uint32_t)b[23] << 24;
	uint64_t h = tier_xxh3(b + 16, hb - 16);

	for (int i = 0; i < 8; i++)
		b[8 + i] = (unsigned char)(h >> (8 * i));
}

START_TEST(test_roundtrip)
{
	static const uint32_t ntoks[] = {0, 1, 16, 992, 993, 1024, 5000};
	static const uint64_t plens[] = {0, 1, 4096, 100000, 2u << 20, (2u << 20) + 12345};
	struct tu_rng rng;

	tu_rng_init(&rng, tu_seed());
	for (size_t i = 0; i < sizeof(ntoks) / sizeof(ntoks[0]); i++) {
		for (size_t j = 0; j < sizeof(plens) / sizeof(plens[0]); j++) {
			struct tier_rec r, d;
			uint32_t *tokens;
			unsigned char *buf = make_rec(&rng, ntoks[i], plens[j], &r, &tokens);
			uint64_t total = tier_rec_bytes(ntoks[i], plens[j]);

			ck_assert_uint_eq(total % 4096, 0);
			ck_assert_uint_eq(r.hdr_bytes, tier_rec_hdr_bytes(ntoks[i]));
			ck_assert_uint_eq(r.hdr_bytes % 4096, 0);
			ck_assert_uint_ge(r.hdr_bytes, 128 + 4 * ntoks[i]);
			ck_assert_int_eq(tier_rec_verify(buf, total, &d), 0);
			ck_assert_uint_eq(d.seq, r.seq);
			ck_assert_uint_eq(d.key, r.key);
			ck_assert_uint_eq(d.parent, r.parent);
			ck_assert_uint_eq(d.ns.model_id, 7);
			ck_assert_uint_eq(d.ns.adapter_id, 8);
			ck_assert_uint_eq(d.ns.tenant_salt, 9);
			ck_assert_uint_eq(d.geometry, 0x1234);
			ck_assert_uint_eq(d.payload_bytes, plens[j]);
			ck_assert_uint_eq(d.raw_bytes, plens[j]);
			ck_assert_uint_eq(d.payload_hash, r.payload_hash);
			ck_assert_uint_eq(d.hash_shift, TIER_HASH_CHUNK_SHIFT);
			ck_assert(tier_rec_tokens_equal(buf, &d, tokens, ntoks[i]));
			if (ntoks[i]) {
				tokens[ntoks[i] - 1] ^= 1;
				ck_assert(!tier_rec_tokens_equal(buf, &d, tokens, ntoks[i]));
				ck_assert(!tier_rec_tokens_equal(buf, &d, tokens, ntoks[i] - 1));
			}
			/* the payload follows the header region */
			ck_assert_ptr_eq(tier_rec_payload(buf, &d), buf + d.hdr_bytes);
			free(tokens);
			free(buf);
		}
	}
}
END_TEST

/* Any changed byte of the header region or the payload is caught. */
START_TEST(test_every_flip_caught)
{
	struct tu_rng rng;
	struct tier_rec r, d;
	unsigned char *buf;
	uint64_t total, plen = 3 * 4096 + 100;
	uint32_t ntok = 1000;

	tu_rng_init(&rng, tu_seed() + 1);
	buf = make_rec(&rng, ntok, plen, &r, NULL);
	total = tier_rec_bytes(ntok, plen);
	/* every byte of the header region, every bit position in turn */
	for (uint32_t off = 0; off < r.hdr_bytes; off++) {
		unsigned char bit = (unsigned char)(1u << (off % 8));

		buf[off] ^= bit;
		ck_assert_msg(tier_rec_verify(buf, total, &d) == -EBADMSG, "header byte %u", off);
		buf[off] ^= bit;
	}
	/* a sample of payload bytes (all of them under the default scale) */
	for (uint64_t off = r.hdr_bytes; off < r.hdr_bytes + plen;
	     off += 1 + tu_rng_below(&rng, tu_scaled(1) == 1 ? 3 : 300)) {
		buf[off] ^= 0x80;
		ck_assert_msg(tier_rec_verify(buf, total, &d) == -EBADMSG, "payload byte %llu",
			      (unsigned long long)off);
		buf[off] ^= 0x80;
	}
	/* the padding after the payload is not part of the record */
	buf[total - 1] ^= 1;
	ck_assert_int_eq(tier_rec_verify(buf, total, &d), 0);
	/* truncated: the payload does not fit in what was read */
	ck_assert_int_eq(tier_rec_verify(buf, r.hdr_bytes + plen - 1, &d), -EBADMSG);
	ck_assert_int_eq(tier_rec_verify(buf, r.hdr_bytes - 1, &d), -EBADMSG);
	ck_assert_int_eq(tier_rec_decode(buf, r.hdr_bytes - 4096, &d), -ENOSPC);
	ck_assert_int_eq(tier_rec_decode(buf, 100, &d), -ENOSPC);
	free(buf);
}
END_TEST

/* Each semantic check holds on its own (the header hash made valid). */
START_TEST(test_semantic_checks)
{
	static const int offs[] = {16, 17, 18, 19, 20, 80, 84, 104, 112, 116, 120, 128};
	struct tu_rng rng;
	struct tier_rec r, d;
	unsigned char *buf, *copy;
	uint64_t total;

	tu_rng_init(&rng, tu_seed() + 2);
	buf = make_rec(&rng, 16, 8192, &r, NULL);
	total = tier_rec_bytes(16, 8192);
	copy = malloc(total);
	memcpy(copy, buf, total);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		memcpy(buf, copy, total);
		buf[offs[i]] ^= 0x41;
		rehash(buf);
		ck_assert_msg(tier_rec_verify(buf, total, &d) == -EBADMSG, "field at %d", offs[i]);
	}
	/* a wrong key (not the hash of parent and tokens) */
	memcpy(buf, copy, total);
	buf[64] ^= 1;
	rehash(buf);
	ck_assert_int_eq(tier_rec_decode(buf, total, &d), -EBADMSG);
	/* a changed sequence number or namespace is only a different record */
	memcpy(buf, copy, total);
	buf[24] ^= 1;
	buf[40] ^= 1;
	rehash(buf);
	ck_assert_int_eq(tier_rec_verify(buf, total, &d), 0);
	ck_assert_uint_eq(d.seq, r.seq ^ 1);
	free(copy);
	free(buf);
}
END_TEST

START_TEST(test_encode_args)
{
	unsigned char *buf = aligned_alloc(4096, 16384);
	uint32_t tokens[4] = {1, 2, 3, 4};
	struct tier_rec r = {.ntokens = 4, .payload_bytes = 4096, .key = 1};

	ck_assert_int_eq(tier_rec_seal(NULL, 16384, &r, tokens), -EINVAL);
	ck_assert_int_eq(tier_rec_seal(buf, 16384, NULL, tokens), -EINVAL);
	ck_assert_int_eq(tier_rec_encode(buf, 16384, &r, NULL), -EINVAL);
	ck_assert_int_eq(tier_rec_seal(buf, 4096, &r, tokens), -ENOSPC);
	ck_assert_int_eq(tier_rec_encode(buf, 100, &r, tokens), -ENOSPC);
	r.encoding = TIER_ENC__COUNT;
	ck_assert_int_eq(tier_rec_seal(buf, 16384, &r, tokens), -EINVAL);
	r.encoding = TIER_ENC_RAW;
	r.flags = 1;
	ck_assert_int_eq(tier_rec_seal(buf, 16384, &r, tokens), -EINVAL);
	r.flags = 0;
	r.hash_shift = 40;
	ck_assert_int_eq(tier_rec_seal(buf, 16384, &r, tokens), -EINVAL);
	r.hash_shift = 0;
	r.raw_bytes = 5; /* raw payload must decode to itself */
	ck_assert_int_eq(tier_rec_seal(buf, 16384, &r, tokens), -EINVAL);
	r.raw_bytes = 0;
	r.ntokens = TIER_REC_MAX_TOKENS + 1;
	ck_assert_int_eq(tier_rec_seal(buf, 16384, &r, tokens), -EINVAL);
	ck_assert_uint_eq(tier_rec_hdr_bytes(TIER_REC_MAX_TOKENS + 1), 0);
	ck_assert_uint_eq(tier_rec_bytes(1, TIER_REC_MAX_PAYLOAD + 1), 0);
	ck_assert_int_eq(tier_rec_decode(NULL, 4096, &r), -EINVAL);
	ck_assert_int_eq(tier_rec_check_payload(buf, 16384, &(struct tier_rec){0}), -EINVAL);
	/* zeroes (a never-written slot) are not a record */
	memset(buf, 0, 16384);
	ck_assert_int_eq(tier_rec_verify(buf, 16384, &r), -EBADMSG);
	free(buf);
}
END_TEST

START_TEST(test_keys)
{
	struct kvmm_ns a = {1, 2, 3}, b = a;
	uint32_t t1[16], t2[16];
	uint64_t ra, rb, k1, k2;

	for (int i = 0; i < 16; i++)
		t1[i] = t2[i] = (uint32_t)i * 7919u;
	ra = tier_key_root(&a, 99);
	ck_assert_uint_eq(ra, tier_key_root(&a, 99));
	ck_assert_uint_ne(ra, tier_key_root(&a, 98));
	b.tenant_salt = 4;
	rb = tier_key_root(&b, 99);
	ck_assert_uint_ne(ra, rb);
	b = a;
	b.adapter_id = 5;
	ck_assert_uint_ne(ra, tier_key_root(&b, 99));
	b = a;
	b.model_id = 0;
	ck_assert_uint_ne(ra, tier_key_root(&b, 99));
	/* chained: same tokens after different prefixes differ */
	k1 = tier_key_next(ra, t1, 16);
	ck_assert_uint_eq(k1, tier_key_next(ra, t2, 16));
	ck_assert_uint_ne(k1, tier_key_next(rb, t1, 16));
	ck_assert_uint_ne(k1, tier_key_next(ra, t1, 15));
	t2[15]++;
	ck_assert_uint_ne(k1, tier_key_next(ra, t2, 16));
	k2 = tier_key_next(k1, t1, 16);
	ck_assert_uint_ne(k2, k1);
	ck_assert_uint_ne(k2, UINT64_MAX);
}
END_TEST

START_TEST(test_geometry)
{
	struct kvmm_cache_info i = {.shape = {32, 8, 128, 2},
				    .layout = KVMM_LAYOUT_PAGE_MAJOR,
				    .page_size = 2u << 20,
				    .tokens_per_block = 16,
				    .pages_per_block = 1,
				    .block_bytes = 2u << 20,
				    .token_bytes = 131072};
	struct kvmm_cache_info j = i;
	uint64_t g = tier_geometry_id(&i);

	ck_assert_uint_eq(g, tier_geometry_id(&j));
	j.layout = KVMM_LAYOUT_TOKEN_MAJOR;
	ck_assert_uint_ne(g, tier_geometry_id(&j));
	j = i;
	j.shape.elem_size = 1;
	ck_assert_uint_ne(g, tier_geometry_id(&j));
	j = i;
	j.max_seqs = 77; /* capacity is not geometry */
	ck_assert_uint_eq(g, tier_geometry_id(&j));
}
END_TEST

START_TEST(test_hash_paths)
{
	struct tu_rng rng;
	size_t n = 3u << 20;
	unsigned char *buf = malloc(n);
	uint64_t h[16];

	tu_rng_init(&rng, tu_seed() + 3);
	fill_rand(&rng, buf, n);
	for (int i = 0; i < (int)tu_scaled(200); i++) {
		size_t len = tu_rng_below(&rng, n), off = tu_rng_below(&rng, 64);

		if (off + len > n)
			len = n - off;
		ck_assert_uint_eq(tier_xxh3(buf + off, len), tier_xxh3_generic(buf + off, len));
		if (tier_xxh3_have_avx2())
			ck_assert_uint_eq(tier_xxh3_avx2(buf + off, len),
					  tier_xxh3_generic(buf + off, len));
	}
	/* chunked payload hash == combination of the chunk hashes */
	ck_assert_uint_eq(tier_hash_nchunks(0, 18), 1);
	ck_assert_uint_eq(tier_hash_nchunks(1, 18), 1);
	ck_assert_uint_eq(tier_hash_nchunks(1u << 18, 18), 1);
	ck_assert_uint_eq(tier_hash_nchunks((1u << 18) + 1, 18), 2);
	for (uint64_t i = 0; i < 12; i++)
		h[i] = tier_hash_chunk(buf, n, 18, i);
	ck_assert_uint_eq(tier_hash_payload(buf, n, 18), tier_hash_combine(h, 12));
	ck_assert_uint_eq(h[11], tier_xxh3(buf + 11 * (1u << 18), 1u << 18));
	ck_assert_uint_ne(tier_hash_payload(buf, n, 18), tier_hash_payload(buf, n, 19));
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tier_record");
	TCase *tc = tcase_create("record");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_every_flip_caught);
	tcase_add_test(tc, test_semantic_checks);
	tcase_add_test(tc, test_encode_args);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_geometry);
	tcase_add_test(tc, test_hash_paths);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
