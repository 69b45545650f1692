// SPDX-License-Identifier: MIT
/*
 * tier_record.c - encode and verify records; chained content keys.
 *
 * All multi-byte fields are little-endian and accessed byte by byte, so
 * the format does not depend on struct layout.  docs/disk-format.md.
 */
#include <errno.h>
#include <string.h>

#include "tier_hash.h"
#include "tier_le.h"
#include "tier_quant.h"
#include "tier_record.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tier_record.c hashes token ids in place: little-endian hosts only"
#endif

/* Field offsets of the fixed header (docs/disk-format.md). */
enum {
	OFF_MAGIC = 0,
	OFF_HDR_HASH = 8,
	OFF_VERSION = 16,
	OFF_HASH_SHIFT = 18,
	OFF_RESERVED_19 = 19,
	OFF_HDR_BYTES = 20,
	OFF_SEQ = 24,
	OFF_NS_MODEL = 32,
	OFF_NS_ADAPTER = 40,
	OFF_NS_SALT = 48,
	OFF_GEOMETRY = 56,
	OFF_KEY = 64,
	OFF_PARENT = 72,
	OFF_NTOKENS = 80,
	OFF_ENCODING = 84,
	OFF_PAYLOAD_BYTES = 88,
	OFF_PAYLOAD_HASH = 96,
	OFF_RAW_BYTES = 104,
	OFF_FLAGS = 112,
	OFF_RESERVED_116 = 116, /* version 1: reserved */
	OFF_DTYPE = 116,	/* version 2: dtype (u8) */
	OFF_ROW_SHIFT = 117,	/* version 2: log2(row_elems) (u8), then 2 zero bytes */
	OFF_RESERVED_120 = 120,
	OFF_TOKENS = TIER_REC_FIXED_BYTES,
	/* the header hash covers [OFF_HASHED, hdr_bytes) */
	OFF_HASHED = 16,
};

#define HASH_SHIFT_MIN 12
#define HASH_SHIFT_MAX 30

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

uint32_t tier_rec_hdr_bytes(uint32_t ntokens)
{
	if (ntokens > TIER_REC_MAX_TOKENS)
		return 0;
	return (uint32_t)align_up(TIER_REC_FIXED_BYTES + 4ull * ntokens, TIER_REC_ALIGN);
}

uint64_t tier_rec_bytes(uint32_t ntokens, uint64_t payload_bytes)
{
	uint32_t h = tier_rec_hdr_bytes(ntokens);

	if (!h || payload_bytes > TIER_REC_MAX_PAYLOAD)
		return 0;
	return h + align_up(payload_bytes, TIER_REC_ALIGN);
}

uint64_t tier_key_root(const struct kvmm_ns *ns, uint64_t geometry)
{
	unsigned char b[40];
	uint64_t k;

	tier_put_le64(b, 0x31736e2d6d6d766bull); /* "kvmm-ns1": domain separation */
	tier_put_le64(b + 8, ns->model_id);
	tier_put_le64(b + 16, ns->adapter_id);
	tier_put_le64(b + 24, ns->tenant_salt);
	tier_put_le64(b + 32, geometry);
	k = tier_xxh3(b, sizeof(b));
	/* UINT64_MAX is the empty marker of the index maps. */
	return k == UINT64_MAX ? UINT64_MAX - 1 : k;
}

uint64_t tier_key_next(uint64_t parent, const uint32_t *tokens, uint32_t n)
{
	/* XXH3-64 of the token ids (little-endian u32) seeded with the
	 * parent's key. */
	uint64_t k = tier_xxh3_seed(tokens, 4ull * n, parent);

	return k == UINT64_MAX ? UINT64_MAX - 1 : k;
}

uint64_t tier_geometry_id(const struct kvmm_cache_info *info)
{
	unsigned char b[72];

	tier_put_le64(b, 0x316f65672d6d6d76ull); /* "vmm-geo1" */
	tier_put_le32(b + 8, info->shape.num_layers);
	tier_put_le32(b + 12, info->shape.num_kv_heads);
	tier_put_le32(b + 16, info->shape.head_dim);
	tier_put_le32(b + 20, info->shape.elem_size);
	tier_put_le32(b + 24, (uint32_t)info->layout);
	tier_put_le32(b + 28, info->tokens_per_block);
	tier_put_le32(b + 32, info->pages_per_block);
	tier_put_le32(b + 36, 0);
	tier_put_le64(b + 40, info->page_size);
	tier_put_le64(b + 48, info->block_bytes);
	tier_put_le64(b + 56, info->token_bytes);
	tier_put_le64(b + 64, 0);
	return tier_xxh3(b, sizeof(b));
}

static bool rec_fields_ok(const struct tier_rec *r)
{
	if (r->ntokens > TIER_REC_MAX_TOKENS || r->encoding >= TIER_ENC__COUNT ||
	    r->payload_bytes > TIER_REC_MAX_PAYLOAD || r->raw_bytes > TIER_REC_MAX_PAYLOAD ||
	    r->hash_shift < HASH_SHIFT_MIN || r->hash_shift > HASH_SHIFT_MAX || r->flags)
		return false;
	if (r->encoding == TIER_ENC_RAW)
		return r->raw_bytes == r->payload_bytes && !r->dtype && !r->row_elems;
	/* quantized: the payload is exactly what its shape gives */
	return (r->dtype == TIER_DTYPE_FP16 || r->dtype == TIER_DTYPE_BF16) &&
	       r->payload_bytes == tier_quant_bytes(r->raw_bytes, r->row_elems);
}

static uint32_t log2u(uint32_t v)
{
	return 31 - (uint32_t)__builtin_clz(v);
}

int tier_rec_encode(void *buf, size_t len, struct tier_rec *r, const uint32_t *tokens)
{
	unsigned char *b = buf;
	uint32_t hb;

	if (!buf || !r || (r->ntokens && !tokens))
		return -EINVAL;
	if (!r->hash_shift)
		r->hash_shift = TIER_HASH_CHUNK_SHIFT;
	if (r->encoding == TIER_ENC_RAW && !r->raw_bytes)
		r->raw_bytes = r->payload_bytes;
	if (!rec_fields_ok(r))
		return -EINVAL;
	hb = tier_rec_hdr_bytes(r->ntokens);
	if (hb > len)
		return -ENOSPC;
	memset(b, 0, hb);
	tier_put_le64(b + OFF_MAGIC, TIER_REC_MAGIC);
	{
		/* raw records stay version 1, which readers before quantized
		 * records read; those readers refuse version 2 */
		uint32_t v = r->encoding == TIER_ENC_RAW ? TIER_REC_VERSION : TIER_REC_VERSION_Q;

		b[OFF_VERSION] = v & 0xff;
		b[OFF_VERSION + 1] = (unsigned char)(v >> 8);
	}
	if (r->encoding != TIER_ENC_RAW) {
		b[OFF_DTYPE] = (unsigned char)r->dtype;
		b[OFF_ROW_SHIFT] = (unsigned char)log2u(r->row_elems);
	}
	b[OFF_HASH_SHIFT] = (unsigned char)r->hash_shift;
	tier_put_le32(b + OFF_HDR_BYTES, hb);
	tier_put_le64(b + OFF_SEQ, r->seq);
	tier_put_le64(b + OFF_NS_MODEL, r->ns.model_id);
	tier_put_le64(b + OFF_NS_ADAPTER, r->ns.adapter_id);
	tier_put_le64(b + OFF_NS_SALT, r->ns.tenant_salt);
	tier_put_le64(b + OFF_GEOMETRY, r->geometry);
	tier_put_le64(b + OFF_KEY, r->key);
	tier_put_le64(b + OFF_PARENT, r->parent);
	tier_put_le32(b + OFF_NTOKENS, r->ntokens);
	tier_put_le32(b + OFF_ENCODING, r->encoding);
	tier_put_le64(b + OFF_PAYLOAD_BYTES, r->payload_bytes);
	tier_put_le64(b + OFF_PAYLOAD_HASH, r->payload_hash);
	tier_put_le64(b + OFF_RAW_BYTES, r->raw_bytes);
	tier_put_le32(b + OFF_FLAGS, r->flags);
	for (uint32_t i = 0; i < r->ntokens; i++)
		tier_put_le32(b + OFF_TOKENS + 4 * i, tokens[i]);
	tier_put_le64(b + OFF_HDR_HASH, tier_xxh3(b + OFF_HASHED, hb - OFF_HASHED));
	r->hdr_bytes = hb;
	return 0;
}

int tier_rec_seal(void *buf, size_t len, struct tier_rec *r, const uint32_t *tokens)
{
	uint32_t hb;

	if (!buf || !r)
		return -EINVAL;
	hb = tier_rec_hdr_bytes(r->ntokens);
	if (!hb || r->payload_bytes > TIER_REC_MAX_PAYLOAD)
		return -EINVAL;
	if (hb + r->payload_bytes > len)
		return -ENOSPC;
	if (!r->hash_shift)
		r->hash_shift = TIER_HASH_CHUNK_SHIFT;
	if (r->hash_shift < HASH_SHIFT_MIN || r->hash_shift > HASH_SHIFT_MAX)
		return -EINVAL;
	r->payload_hash = tier_hash_payload((char *)buf + hb, r->payload_bytes, r->hash_shift);
	return tier_rec_encode(buf, len, r, tokens);
}

int tier_rec_decode(const void *buf, size_t len, struct tier_rec *r)
{
	const unsigned char *b = buf;
	struct tier_rec d = {0};
	uint32_t hb, version;

	if (!buf || !r)
		return -EINVAL;
	if (len < TIER_REC_FIXED_BYTES)
		return -ENOSPC;
	version = b[OFF_VERSION] | b[OFF_VERSION + 1] << 8;
	if (tier_get_le64(b + OFF_MAGIC) != TIER_REC_MAGIC ||
	    (version != TIER_REC_VERSION && version != TIER_REC_VERSION_Q) || b[OFF_RESERVED_19] ||
	    tier_get_le64(b + OFF_RESERVED_120))
		return -EBADMSG;
	if (version == TIER_REC_VERSION_Q) {
		if (b[OFF_ROW_SHIFT] > 31 || b[OFF_ROW_SHIFT + 1] || b[OFF_ROW_SHIFT + 2])
			return -EBADMSG;
		d.dtype = b[OFF_DTYPE];
		d.row_elems = 1u << b[OFF_ROW_SHIFT];
	} else if (tier_get_le32(b + OFF_RESERVED_116)) {
		return -EBADMSG;
	}
	d.hash_shift = b[OFF_HASH_SHIFT];
	hb = tier_get_le32(b + OFF_HDR_BYTES);
	d.seq = tier_get_le64(b + OFF_SEQ);
	d.ns.model_id = tier_get_le64(b + OFF_NS_MODEL);
	d.ns.adapter_id = tier_get_le64(b + OFF_NS_ADAPTER);
	d.ns.tenant_salt = tier_get_le64(b + OFF_NS_SALT);
	d.geometry = tier_get_le64(b + OFF_GEOMETRY);
	d.key = tier_get_le64(b + OFF_KEY);
	d.parent = tier_get_le64(b + OFF_PARENT);
	d.ntokens = tier_get_le32(b + OFF_NTOKENS);
	d.encoding = tier_get_le32(b + OFF_ENCODING);
	d.payload_bytes = tier_get_le64(b + OFF_PAYLOAD_BYTES);
	d.payload_hash = tier_get_le64(b + OFF_PAYLOAD_HASH);
	d.raw_bytes = tier_get_le64(b + OFF_RAW_BYTES);
	d.flags = tier_get_le32(b + OFF_FLAGS);
	/* version 2 is exactly the quantized encodings */
	if (!rec_fields_ok(&d) || hb != tier_rec_hdr_bytes(d.ntokens) ||
	    (version == TIER_REC_VERSION_Q) != (d.encoding != TIER_ENC_RAW))
		return -EBADMSG;
	if (hb > len)
		return -ENOSPC;
	if (tier_get_le64(b + OFF_HDR_HASH) != tier_xxh3(b + OFF_HASHED, hb - OFF_HASHED))
		return -EBADMSG;
	/* The key must be the one its parent and tokens give: a record can
	 * only ever answer for the prefix it holds. */
	if (d.key != tier_key_next(d.parent, (const uint32_t *)(b + OFF_TOKENS), d.ntokens))
		return -EBADMSG;
	d.hdr_bytes = hb;
	*r = d;
	return 0;
}

int tier_rec_check_payload(const void *buf, size_t len, const struct tier_rec *r)
{
	if (!buf || !r || !r->hdr_bytes)
		return -EINVAL;
	if (r->payload_bytes > len || r->hdr_bytes > len - r->payload_bytes)
		return -EBADMSG;
	if (tier_hash_payload((const char *)buf + r->hdr_bytes, r->payload_bytes, r->hash_shift) !=
	    r->payload_hash)
		return -EBADMSG;
	return 0;
}

int tier_rec_verify(const void *buf, size_t len, struct tier_rec *r)
{
	int ret = tier_rec_decode(buf, len, r);

	if (ret == -ENOSPC)
		ret = -EBADMSG;
	return ret ? ret : tier_rec_check_payload(buf, len, r);
}

bool tier_rec_tokens_equal(const void *buf, const struct tier_rec *r, const uint32_t *tokens,
			   uint32_t n)
{
	return r->ntokens == n && (!n || !memcmp((const char *)buf + OFF_TOKENS, tokens, 4ull * n));
}
