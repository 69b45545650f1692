/* SPDX-License-Identifier: MIT */
/*
 * tier_record.h - the record: how one spilled block is stored on the host
 * tier and on disk (the same bytes in both places, so spilling to disk is
 * one write from the host slot and restoring is one read into one).
 *
 *   [header region: fixed header + the block's token ids, zero padded to
 *    4 KiB][payload: the block's KV bytes, padded to 4 KiB]
 *
 * A record is content-addressed: its key is a hash chained over the token
 * ids of its block and of every block before it, seeded by the namespace
 * and the cache geometry, so a key names one prefix of one model's KV.
 * The header carries its own XXH3-64 and the payload's, and the token ids
 * and parent key, so a hash collision or a stale or torn record is caught
 * before any byte is served.  docs/disk-format.md is the specification.
 */
#ifndef KVMM_TIER_RECORD_H
#define KVMM_TIER_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvmm.h"

#define TIER_REC_MAGIC	     0x314345524d4d564bull /* "KVMMREC1" little-endian */
#define TIER_REC_VERSION     1			   /* raw records */
#define TIER_REC_VERSION_Q   2			   /* quantized records (encoding FP8 or INT8) */
#define TIER_REC_ALIGN	     4096u
#define TIER_REC_FIXED_BYTES 128u
/* Limits that keep every size computation in range. */
#define TIER_REC_MAX_TOKENS  (1u << 20)
#define TIER_REC_MAX_PAYLOAD (1ull << 40)

/* Payload encodings (quantize-on-spill). */
enum tier_rec_encoding {
	TIER_ENC_RAW = 0,  /* the block's bytes as the cache holds them */
	TIER_ENC_FP8 = 1,  /* FP8 e4m3 values + per-token-per-head scales */
	TIER_ENC_INT8 = 2, /* INT8 values + per-token-per-head scales */
	TIER_ENC__COUNT
};

/* A decoded header. */
struct tier_rec {
	uint64_t seq;	   /* writer's sequence number (newest wins at scan) */
	struct kvmm_ns ns; /* namespace */
	uint64_t geometry; /* hash of the cache geometry (tier_geometry_id) */
	uint64_t key;	   /* chained content key of this block */
	uint64_t parent;   /* key of the block before (the root key for the first) */
	uint32_t ntokens;  /* token ids stored in the header */
	uint32_t encoding; /* enum tier_rec_encoding */
	uint64_t payload_bytes;
	uint64_t payload_hash; /* tier_hash_payload(payload, payload_bytes, hash_shift) */
	uint64_t raw_bytes;    /* bytes once decoded (== payload_bytes for RAW) */
	uint32_t flags;	       /* reserved, 0 */
	uint32_t hash_shift;   /* chunk size of the payload hash: 2^hash_shift */
	uint32_t hdr_bytes;    /* filled by encode/decode */
	/* quantized records (tier_quant.h's payload): */
	uint32_t dtype;	    /* of the decoded KV: enum tier_quant_dtype (0 for RAW) */
	uint32_t row_elems; /* elements per scale (one token of one head; 0 for RAW) */
};

/* Bytes of the header region for ntokens token ids. */
uint32_t tier_rec_hdr_bytes(uint32_t ntokens);
/* Bytes of a whole record (header region + padded payload). */
uint64_t tier_rec_bytes(uint32_t ntokens, uint64_t payload_bytes);

/*
 * Write the header region of r (with tokens[0..r->ntokens)) at buf, whose
 * room is len bytes; r->payload_hash must be set.  Sets r->hdr_bytes.
 * -EINVAL bad fields, -ENOSPC header region larger than len.
 */
int tier_rec_encode(void *buf, size_t len, struct tier_rec *r, const uint32_t *tokens);
/* Hash the payload that follows the header region in buf, then encode. */
int tier_rec_seal(void *buf, size_t len, struct tier_rec *r, const uint32_t *tokens);

/*
 * Decode and check the header at buf (len bytes available, at least the
 * header region): magic, version, sizes, header hash.  -EBADMSG when any
 * check fails, -ENOSPC when len is shorter than the header region says
 * (read more and retry).  The payload is not checked.
 */
int tier_rec_decode(const void *buf, size_t len, struct tier_rec *r);
/* Check the payload of a decoded record: 0 or -EBADMSG. */
int tier_rec_check_payload(const void *buf, size_t len, const struct tier_rec *r);
/* decode + check_payload. */
int tier_rec_verify(const void *buf, size_t len, struct tier_rec *r);
/* Do the record's token ids equal tokens[0..n)? */
bool tier_rec_tokens_equal(const void *buf, const struct tier_rec *r, const uint32_t *tokens,
			   uint32_t n);
/* The payload of a record at buf. */
static inline void *tier_rec_payload(void *buf, const struct tier_rec *r)
{
	return (char *)buf + r->hdr_bytes;
}

/* ---- content keys ---- */

/* Key of the empty prefix of namespace ns for a cache of this geometry. */
uint64_t tier_key_root(const struct kvmm_ns *ns, uint64_t geometry);
/* Key of the block holding tokens[0..n) that follows the prefix parent. */
uint64_t tier_key_next(uint64_t parent, const uint32_t *tokens, uint32_t n);
/* Identity of a cache geometry (shape, layout, block size; not the
 * encoding, which a restore undoes): records of another geometry never
 * match. */
uint64_t tier_geometry_id(const struct kvmm_cache_info *info);

#endif /* KVMM_TIER_RECORD_H */
