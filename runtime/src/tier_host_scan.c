// SPDX-License-Identifier: MIT
/*
 * tier_host_scan.c - a re-opened persistent host pool (kvmm.ko): the
 * records a previous process left in its slots are found again, each
 * checked like a disk record (header, key, geometry, encoding, payload
 * checksum), so a restarted server hits on what it had in host RAM
 * without reading the disk.
 *
 * Why a slot can be trusted or is skipped: a slot is only ever written
 * whole-payload-then-header, a record dropped from the index keeps valid
 * bytes for its key, a slot being refilled when the process died has an
 * old header over a new payload (its checksum fails), and a page the
 * kernel dropped under pressure (COLD) reads as zeroes (it fails too).
 * Where a key is found twice, the higher sequence number wins.
 */
#include <errno.h>
#include <stdlib.h>

#include "tier_hash.h"
#include "tiers.h"

#define SCAN_BATCH 64

struct found {
	uint32_t slot;
	uint64_t seq, key, parent;
};

static int by_seq(const void *a, const void *b)
{
	const struct found *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Is the record in buf one of ours (geometry, encoding, sizes)? */
static bool ours(const struct kvmm_tiers *t, const void *buf, struct tier_rec *r)
{
	return !tier_rec_decode(buf, t->rec_bytes, r) && r->geometry == t->geometry &&
	       r->encoding == t->enc && r->payload_bytes == t->payload_bytes &&
	       r->raw_bytes == t->c->g.block_bytes && r->dtype == t->dtype &&
	       r->row_elems == t->row_elems && r->ntokens == t->c->g.tpb &&
	       r->hash_shift == TIER_HASH_CHUNK_SHIFT;
}

int tiers_host_scan(struct kvmm_tiers *t)
{
	uint32_t n = tier_host_nslots(t->host), nf = 0;
	uint64_t t0 = kvmm_now_ns(), maxseq = 0;
	struct found *f = calloc(n ? n : 1, sizeof(*f));
	uint8_t *used = calloc(n ? n : 1, 1);
	struct u64map newest;
	int ret = 0;

	if (!f || !used) {
		free(f);
		free(used);
		return -ENOMEM;
	}
	u64map_init(&newest);
	/* headers, then the payloads of a batch at once on the hash pool */
	for (uint32_t s = 0; s < n;) {
		const void *bufs[SCAN_BATCH];
		uint64_t lens[SCAN_BATCH], want[SCAN_BATCH], got[SCAN_BATCH];
		struct found cand[SCAN_BATCH];
		uint32_t m = 0;

		for (; s < n && m < SCAN_BATCH; s++) {
			const char *buf = tier_host_slot(t->host, s);
			struct tier_rec r;

			if (!ours(t, buf, &r))
				continue;
			bufs[m] = buf + r.hdr_bytes;
			lens[m] = r.payload_bytes;
			want[m] = r.payload_hash;
			cand[m++] = (struct found){s, r.seq, r.key, r.parent};
		}
		tier_hashpool_payloads(t->hashpool, bufs, lens, m, TIER_HASH_CHUNK_SHIFT, got);
		for (uint32_t k = 0; k < m; k++) {
			uint64_t prev;

			if (got[k] != want[k])
				continue; /* torn, or dropped by the kernel */
			/* the newest copy of a key wins */
			if (u64map_get(&newest, cand[k].key, &prev) && f[prev].seq >= cand[k].seq)
				continue;
			if (u64map_put(&newest, cand[k].key, nf)) {
				ret = -ENOMEM;
				goto out;
			}
			f[nf++] = cand[k];
		}
	}
	/* the winners' slots, then the oldest first: the LRU's cold end */
	for (uint32_t i = 0; i < nf; i++) {
		uint64_t at;

		if (u64map_get(&newest, f[i].key, &at) && at == i)
			used[f[i].slot] = 1;
	}
	qsort(f, nf, sizeof(*f), by_seq);
	tier_host_set_used(t->host, used);
	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < nf; i++) {
		if (!used[f[i].slot])
			continue; /* an older copy of a key */
		if (tidx_adopt(t, f[i].slot, f[i].key, f[i].parent)) {
			tier_host_free(t->host, f[i].slot);
			continue;
		}
		t->host_scan_found++;
		if (f[i].seq > maxseq)
			maxseq = f[i].seq;
	}
	if (maxseq >= t->next_seq)
		t->next_seq = maxseq + 1;
	t->host_scan_ns = kvmm_now_ns() - t0;
	pthread_mutex_unlock(&t->lock);
out:
	u64map_free(&newest);
	free(f);
	free(used);
	return ret;
}
