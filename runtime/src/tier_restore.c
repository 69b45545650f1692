// SPDX-License-Identifier: MIT
/*
 * tier_restore.c - blocks coming back: disk -> host pool -> device, into
 * the prefix cache.
 *
 * A prefetch walks the prefix's chained keys past what the prefix cache
 * holds (which it pins), and for each block in order: uses the host pool's
 * record, or reads the disk's into a host slot (the disk tier verifies it),
 * stopping at the first block no tier has.  The mover thread then takes
 * the gathered blocks in runs ("flights"): it checks each record's header
 * against what was asked (key, parent, namespace, geometry, encoding, token
 * ids), queues the copies into fresh device blocks, and hashes the
 * payloads of host records on the hash pool while the copies run, so the
 * checksum costs no copy time.  A flight is done when its copies completed
 * (the copy engine's notice); the mover then inserts the leading run of
 * blocks that were copied and verified into the prefix tree: only then can
 * any request match them, so a block being restored is never visible
 * half-copied, and one that failed its checksum or its copy never at all
 * (its device block goes back to the pool once no copy writes to it).
 * Several flights are in flight at once, of one prefetch and of several,
 * so the copy engine always has the next copies queued.
 *
 * Layer-wise prefetches gather and verify every record first (a sequence
 * maps the blocks before the copies finish), then copy layer by layer
 * across all blocks with an event after each layer, so a sequence attached
 * to them computes layer 0 while later layers arrive.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tier_hash.h"
#include "tier_hashpool.h"
#include "tiers.h"

#define READ_WINDOW   64	  /* blocks gathered ahead of the finished copies */
#define RESTORE_BATCH 8		  /* layer-wise: blocks hashed at once */
#define FLIGHT_BLOCKS 64	  /* at most, in one flight */
#define FLIGHT_BYTES  (32u << 20) /* a flight's copies, at most (one block at least) */
#define ROOM_WAITS    64	  /* a restore's waits for write-backs, per block */

enum pb_state {
	PB_WAIT = 0, /* not started */
	PB_READING,  /* disk -> host slot */
	PB_ON_HOST,  /* the host slot holds it (pinned) */
	PB_DONE,     /* copied to blks[i] */
};

/* Blocks [from, to) whose copies are queued. */
struct pf_flight {
	struct kvmm_prefetch *pf;
	uint32_t from, to;
	uint32_t bad; /* first block whose payload failed its checksum (to: none) */
	int err;      /* of the copies */
	bool done;    /* the copies completed (err says how) */
	struct pf_flight *next;
};

struct kvmm_prefetch {
	struct kvmm_tiers *t;
	struct tier_job job;
	struct kvmm_ns ns;
	uint32_t flags;
	uint32_t *tokens;
	uint32_t g;	    /* full blocks cached on the device at the start */
	uint32_t nb;	    /* blocks found in some tier */
	uint32_t stop_at;   /* nothing at or after it will be restored */
	uint32_t next;	    /* next block to gather */
	uint32_t queued_to; /* blocks [copied, queued_to) in flights */
	uint32_t copied;    /* blocks [g, copied) copied and verified */
	uint32_t inserted;  /* blocks [0, inserted) in the tree */
	uint64_t *keys;
	uint32_t *slots;
	kvmm_blk_t *blks;
	uint8_t *st, *from_disk;
	struct tier_disk_op *ops;
	struct pt_handle *pin; /* the path [0, inserted) */
	/* layer-wise */
	uint64_t *events;  /* one per layer, once the copies are queued */
	kvmm_blk_t *lblks; /* the whole path's blocks, for the attach */
	uint32_t nlblks;   /* [0, nlblks) set; ours referenced from g on */
	bool layers_queued;
	int err;
	bool queued, finished, cancel, waiting_fill, detached;
	uint32_t room_waits;	     /* for write-backs to make room, this block */
	uint32_t reads;		     /* disk reads in flight */
	struct kvmm_prefetch *wnext; /* on t's list of prefetches waiting for a fill */
	struct pf_flight *flights, **flights_tail; /* oldest first */
};

static void pf_kick(struct kvmm_tiers *t, struct kvmm_prefetch *pf);
static void pf_free(struct kvmm_tiers *t, struct kvmm_prefetch *pf);

/* Lock held: prefetches waiting for a record being filled look again. */
void tiers_fill_event(struct kvmm_tiers *t)
{
	struct kvmm_prefetch *pf = t->fill_waiters;

	t->fill_waiters = NULL;
	while (pf) {
		struct kvmm_prefetch *next = pf->wnext;

		pf->waiting_fill = false;
		pf->wnext = NULL;
		pf_kick(t, pf);
		pf = next;
	}
}

static uint64_t root_key(const struct kvmm_prefetch *pf)
{
	return tier_key_root(&pf->ns, pf->t->geometry);
}

/* Lock held. */
static void pf_kick(struct kvmm_tiers *t, struct kvmm_prefetch *pf)
{
	if (pf->queued || pf->finished)
		return;
	pf->queued = true;
	t->busy++;
	pf->job.next = NULL;
	*t->jobs_tail = &pf->job;
	t->jobs_tail = &pf->job.next;
	pthread_cond_broadcast(&t->cond);
}

/* Block i's disk read ended with result (lock held). */
static void read_result(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t i, int result)
{
	uint32_t s = pf->slots[i];
	bool ok = !result;

	pf->reads--;
	if (ok) {
		/* a host record now: ours pinned until copied */
		tidx_pin(t, s);
		t->ent[s].flags |= E_ON_DISK;
		pf->st[i] = PB_ON_HOST;
		pf->from_disk[i] = 1;
	} else {
		pf->slots[i] = TIER_NIL;
		pf->st[i] = PB_WAIT;
		if (result != -ENOENT) {
			if (result == -EBADMSG)
				t->n.verify_failures++;
			else
				t->n.io_errors++;
			t->n.restore_failures++;
		}
		if (i < pf->stop_at)
			pf->stop_at = i;
	}
	tidx_filled(t, s, ok);
}

static void read_done(struct tier_disk_op *op)
{
	struct kvmm_prefetch *pf = op->arg;
	struct kvmm_tiers *t = pf->t;

	pthread_mutex_lock(&t->lock);
	read_result(t, pf, (uint32_t)(op - pf->ops), op->result);
	pf_kick(t, pf);
	t->busy--; /* the read's */
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

/*
 * Bookkeeping only: block i read from disk at once into a slot claimed for
 * it (lock held; 0 or the claim's error).  Disk writes the claim starts
 * (write-back of the records it evicts) are done after the read, as the
 * disk tier's I/O thread serves reads before writes: they cannot evict
 * the record being read.
 */
/* A host slot for block i's disk read; writes the claim starts are held
 * back (tiers_write_deferred() starts them after the read).  Lock held. */
static int claim_deferred(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t i,
			  uint64_t parent, uint32_t *s)
{
	int r;

	t->defer_writes = true;
	r = tidx_claim(t, pf->keys[i], parent, TIER_WAIT_NONE, s);
	t->defer_writes = false;
	return r;
}

static int gather_now(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t i, uint64_t parent)
{
	struct tier_disk_op *op = &pf->ops[i];
	uint32_t s;
	int r;

	r = claim_deferred(t, pf, i, parent, &s);
	if (r) {
		bool wrote = t->ndeferred > 0;

		tiers_write_deferred(t, NULL);
		/* write-back: those writes are done, so their records may go
		 * now (a real restore waits for them: see gather()) */
		if (r != -ENOSPC || !wrote || pf->room_waits >= ROOM_WAITS)
			return r;
		pf->room_waits++;
		r = claim_deferred(t, pf, i, parent, &s);
		if (r) {
			tiers_write_deferred(t, NULL);
			return r;
		}
	}
	*op = (struct tier_disk_op){.kind = TIER_DISK_GET, .key = pf->keys[i], .len = t->rec_bytes};
	pf->slots[i] = s;
	pf->st[i] = PB_READING;
	pf->reads++;
	/* the read starts, the writes start and end, the read ends */
	tier_disk_account(t->disk, op);
	tiers_write_deferred(t, NULL);
	tier_disk_account_end(t->disk, op);
	read_result(t, pf, i, op->result);
	return 0;
}

/* Look again at the next fill or disk write that ends (lock held). */
static void wait_fill(struct kvmm_tiers *t, struct kvmm_prefetch *pf)
{
	if (pf->waiting_fill)
		return;
	pf->waiting_fill = true;
	pf->wnext = t->fill_waiters;
	t->fill_waiters = pf;
}

/* Gather: pin host records, start disk reads (lock held). */
static void gather(struct kvmm_tiers *t, struct kvmm_prefetch *pf)
{
	while (pf->next < pf->stop_at && pf->next < pf->copied + 2 * READ_WINDOW &&
	       pf->next < pf->queued_to + READ_WINDOW && !pf->cancel) {
		uint32_t i = pf->next, s;
		struct tier_entry *e = tidx_find(t, pf->keys[i], &s);
		uint64_t parent = i ? pf->keys[i - 1] : root_key(pf);

		if (e && (e->flags & E_VALID)) {
			if (!tidx_use(t, s))
				continue; /* the kernel dropped it: look on disk */
			tidx_touch(t, s);
			pf->slots[i] = s;
			pf->st[i] = PB_ON_HOST;
		} else if (e) {
			/* being filled right now (spill or another read):
			 * look again when it is done */
			wait_fill(t, pf);
			return;
		} else if (t->disk && tier_disk_contains(t->disk, pf->keys[i])) {
			struct tier_disk_op *op = &pf->ops[i];
			int r;

			/* claim again once every write-back started for
			 * room has ended, as the bookkeeping tiers do (a
			 * bounded number of them: other writes may follow) */
			if (pf->room_waits && pf->room_waits < ROOM_WAITS &&
			    tidx_writes_in_flight(t)) {
				pf->room_waits++;
				wait_fill(t, pf);
				return;
			}
			if (t->bookkeeping) {
				r = gather_now(t, pf, i, parent);
			} else {
				/* writes the claim starts go after the read */
				r = claim_deferred(t, pf, i, parent, &s);
				if (r)
					tiers_write_deferred(t, NULL);
			}
			if (r == -ENOSPC && (pf->reads || pf->next > pf->copied))
				return; /* room comes back as our copies finish */
			if (r == -ENOSPC && tidx_writes_in_flight(t) &&
			    pf->room_waits < ROOM_WAITS) {
				/* write-back: the pool is full of records not yet
				 * on disk; the claim started their writes, and
				 * each one that ends makes its record droppable */
				pf->room_waits++;
				wait_fill(t, pf);
				return;
			}
			if (r) {
				pf->stop_at = i; /* no room in the host pool now */
				break;
			}
			pf->room_waits = 0;
			if (t->bookkeeping) {
				pf->next++;
				continue;
			}
			*op = (struct tier_disk_op){.kind = TIER_DISK_GET,
						    .key = pf->keys[i],
						    .buf = tier_host_slot(t->host, s),
						    .len = tier_host_slot_bytes(t->host),
						    .done = read_done,
						    .arg = pf};
			pf->slots[i] = s;
			pf->st[i] = PB_READING;
			pf->reads++;
			t->busy++; /* a flush waits for the prefetch past its reads */
			if (tiers_write_deferred(t, op)) {
				t->busy--;
				pf->reads--;
				pf->st[i] = PB_WAIT;
				pf->slots[i] = TIER_NIL;
				tidx_filled(t, s, false);
				pf->stop_at = i;
				break;
			}
		} else {
			/* gone meanwhile */
			pf->stop_at = i;
			break;
		}
		pf->next++;
	}
}

/* Are the headers of blocks [from, to) exactly those blocks of this
 * prefix (key, parent, namespace, geometry, encoding, size, token ids)?
 * The first bad block, or to.  (No lock.) */
static uint32_t check_headers(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from,
			      uint32_t to)
{
	uint32_t tpb = t->c->g.tpb, i;
	uint64_t t0 = kvmm_now_ns();

	if (t->bookkeeping)
		return to; /* no headers: the index entries are the records */
	for (i = from; i < to; i++) {
		const void *buf = tier_host_slot(t->host, pf->slots[i]);
		struct tier_rec r;

		if (tier_rec_decode(buf, t->rec_bytes, &r) || r.key != pf->keys[i] ||
		    r.parent != (i ? pf->keys[i - 1] : root_key(pf)) || r.geometry != t->geometry ||
		    memcmp(&r.ns, &pf->ns, sizeof(r.ns)) || r.encoding != t->enc ||
		    r.payload_bytes != t->payload_bytes || r.raw_bytes != t->c->g.block_bytes ||
		    r.dtype != t->dtype || r.row_elems != t->row_elems ||
		    r.hash_shift != TIER_HASH_CHUNK_SHIFT ||
		    !tier_rec_tokens_equal(buf, &r, pf->tokens + (size_t)i * tpb, tpb))
			break;
	}
	tier_prof_add(&t->prof.r_check, t0);
	return i;
}

/* Payload checksums of the host records of blocks [from, to) (the disk
 * tier checked its own), at most FLIGHT_BLOCKS, as one parallel batch; the
 * headers were checked.  The first bad block, or to.  (No lock.) */
static uint32_t check_payloads(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from,
			       uint32_t to)
{
	const void *bufs[FLIGHT_BLOCKS];
	uint64_t lens[FLIGHT_BLOCKS], want[FLIGHT_BLOCKS], got[FLIGHT_BLOCKS];
	uint32_t idx[FLIGHT_BLOCKS], n = 0, first_bad = to;
	uint64_t t0 = kvmm_now_ns();

	if (t->cfg.flags & KVMM_TIERS_NO_VERIFY_HOST || t->bookkeeping)
		return to; /* (bookkeeping: no payloads to hash) */
	for (uint32_t i = from; i < to && n < FLIGHT_BLOCKS; i++) {
		const char *buf = tier_host_slot(t->host, pf->slots[i]);
		struct tier_rec r;

		if (pf->from_disk[i])
			continue;
		if (tier_rec_decode(buf, t->rec_bytes, &r)) {
			first_bad = i; /* checked already: cannot happen */
			break;
		}
		bufs[n] = buf + r.hdr_bytes;
		lens[n] = r.payload_bytes;
		want[n] = r.payload_hash;
		idx[n++] = i;
	}
	tier_hashpool_payloads(t->hashpool, bufs, lens, n, TIER_HASH_CHUNK_SHIFT, got);
	for (uint32_t k = 0; k < n; k++)
		if (got[k] != want[k] && idx[k] < first_bad)
			first_bad = idx[k];
	tier_prof_add(&t->prof.r_hash, t0);
	return first_bad;
}

/* Headers, then payloads, of blocks [from, to): the first bad one, or to. */
static uint32_t check_records(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from,
			      uint32_t to)
{
	uint32_t bad = check_headers(t, pf, from, to);

	return check_payloads(t, pf, from, bad);
}

/* Layer l's byte range inside a block, for layouts that keep it together. */
static bool layer_range(const struct kvmm_cache *c, uint32_t l, uint64_t *off, uint64_t *len)
{
	switch (c->g.layout) {
	case KVMM_LAYOUT_PAGE_MAJOR:
		*len = 2ull * c->g.tpb * c->g.row_bytes;
		*off = l * *len;
		return true;
	case KVMM_LAYOUT_LAYER_MAJOR:
		*len = 2 * c->g.page;
		*off = l * *len;
		return true;
	default:
		return false; /* token-major: layers interleave per token */
	}
}

/* A record failed its check: drop it everywhere (lock not held). */
static void bad_record(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t i)
{
	uint32_t s = pf->slots[i];

	tiers_log(t, TLOG_VERIFY,
		  "kvmm tiers: record %016llx failed verification on restore: dropped (further "
		  "ones are counted, not logged)",
		  (unsigned long long)pf->keys[i]);
	if (t->disk)
		tier_disk_remove(t->disk, pf->keys[i]);
	pthread_mutex_lock(&t->lock);
	t->n.verify_failures++;
	t->n.restore_failures++;
	tidx_unpin(t, s);
	if (!t->ent[s].pins)
		tidx_drop(t, s);
	pf->slots[i] = TIER_NIL;
	pf->st[i] = PB_WAIT;
	if (i < pf->stop_at)
		pf->stop_at = i;
	pthread_mutex_unlock(&t->lock);
}

/* Give device blocks [from, to) back (a failed restore). */
static void put_blocks(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++) {
		if (pf->blks[i] != KVMM_BLK_NONE)
			kvmm_blk_put(t->c, &pf->blks[i], 1);
		pf->blks[i] = KVMM_BLK_NONE;
	}
}

/* Fresh device blocks for [from, to) and their copies queued (records
 * checked); layer by layer with an event per layer when layered. */
static int queue_copies(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from, uint32_t to,
			bool layered)
{
	struct kvmm_cache *c = t->c;
	uint64_t off, len, t0 = kvmm_now_ns();
	int ret = 0;

	for (uint32_t i = from; i < to && !ret; i++)
		ret = kvmm_blk_alloc(c, &pf->blks[i]);
	tier_prof_add(&t->prof.r_alloc, t0);
	t0 = kvmm_now_ns();
	if (ret)
		return ret;
	if (layered) {
		/* an attached sequence maps them: keep our own reference
		 * whatever the tree does with them later */
		for (uint32_t i = from; i < to; i++)
			pf->lblks[i] = pf->blks[i];
		kvmm_blk_get(c, pf->lblks + from, to - from);
		pf->nlblks = to;
	}
	if (layered && t->enc == TIER_ENC_RAW && !t->bookkeeping && layer_range(c, 0, &off, &len)) {
		for (uint32_t l = 0; l < c->g.num_layers && !ret; l++) {
			layer_range(c, l, &off, &len);
			for (uint32_t i = from; i < to && !ret; i++)
				ret = tier_copy_queue(
					t->copy, TIER_H2D, kvmm_blk_home(c, pf->blks[i]) + off,
					(char *)tier_host_slot(t->host, pf->slots[i]) +
						t->hdr_bytes + off,
					len);
			if (!ret)
				ret = tier_copy_record(t->copy, TIER_H2D, &pf->events[l]);
		}
		tier_prof_add(&t->prof.r_queue, t0);
		return ret;
	}
	for (uint32_t i = from; i < to && !ret; i++)
		ret = tiers_copy_in(t, pf->slots[i], pf->blks[i]);
	if (layered && !ret) {
		/* token-major, or quantized records (a block is unpacked
		 * whole): one event stands for every layer */
		ret = tier_copy_record(t->copy, TIER_H2D, &pf->events[0]);
		for (uint32_t l = 1; l < c->g.num_layers; l++)
			pf->events[l] = 0;
	}
	tier_prof_add(&t->prof.r_queue, t0);
	return ret;
}

/*
 * Layer-wise: check blocks [from, *to) (in batches) and copy them to the
 * device layer by layer, then wait.  A bad record ends the run before it
 * (*to moves back) and the rest is copied progressively.  0, or the error
 * of a copy (every block of the run given back).
 */
static int restore_run(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from, uint32_t *to,
		       bool layered)
{
	uint32_t cur = from;
	bool bad_found = false;
	int ret = 0, sret;
	uint64_t t0;

	while (cur < *to && !ret) {
		uint32_t end = *to - cur > RESTORE_BATCH ? cur + RESTORE_BATCH : *to;
		uint32_t bad = check_records(t, pf, cur, end);

		if (bad < end) {
			bad_record(t, pf, bad);
			*to = end = bad;
			bad_found = true;
		}
		/* layer-wise: every record checked before any copy */
		if (!layered && end > cur)
			ret = queue_copies(t, pf, cur, end, false);
		cur = end;
	}
	if (layered && !ret && *to > from) {
		if (bad_found) {
			/* a bad record: nothing of a layer-wise restore is
			 * attached then, the rest goes progressively */
			pf->flags &= ~KVMM_PREFETCH_LAYERWISE;
			layered = false;
			ret = queue_copies(t, pf, from, *to, false);
		} else {
			ret = queue_copies(t, pf, from, *to, true);
		}
	}
	if (layered) {
		pthread_mutex_lock(&t->lock);
		pf->layers_queued = true;
		if (ret)
			pf->err = ret;
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
	}
	t0 = kvmm_now_ns();
	sret = tier_copy_sync(t->copy, TIER_H2D);
	tier_prof_add(&t->prof.r_wait, t0);
	atomic_fetch_add_explicit(&t->prof.r_runs, 1, memory_order_relaxed);
	ret = ret ? ret : sret;
	if (ret) {
		tiers_log(t, TLOG_COPY, "kvmm tiers: host to device copy failed (%s)",
			  strerror(-ret));
		put_blocks(t, pf, from, *to);
	}
	return ret;
}

/* Insert the finished run [inserted, upto) into the tree (no lock). */
static void insert_run(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t upto)
{
	struct kvmm_cache *c = t->c;
	struct pt_insert_result res = {0};
	struct pt_handle *pin = NULL;
	uint64_t *ids = malloc(upto * sizeof(*ids)), t0 = kvmm_now_ns();
	uint32_t lo = pf->inserted, got;
	int ret;

	if (!ids) {
		ret = -ENOMEM;
	} else {
		for (uint32_t i = 0; i < upto; i++)
			ids[i] = i >= lo ? pf->blks[i] : PT_NO_BLOCK;
		/* restored KV was admitted before it was spilled */
		ret = pt_insert_flags(t->p->tree, &pf->ns, pf->tokens, upto * c->g.tpb, ids,
				      PT_INSERT_ADMITTED, &res, &pin);
	}
	free(ids);
	/* ours that the tree did not adopt go back (cached by someone else
	 * meanwhile: the prefix is there all the same) */
	for (uint32_t i = lo; i < upto; i++) {
		if (ret < 0 || i < res.first || i >= res.first + res.added)
			kvmm_blk_put(c, &pf->blks[i], 1);
		pf->blks[i] = KVMM_BLK_NONE;
	}
	got = ret < 0 ? lo : res.first + res.added;
	pthread_mutex_lock(&t->lock);
	if (pin) {
		struct pt_handle *old = pf->pin;

		pf->pin = pin;
		pin = old;
	}
	if (got > pf->inserted)
		pf->inserted = got;
	if (got < upto && pf->stop_at > got) {
		/* the tree would not take them (a gap evicted, or its cap) */
		pf->stop_at = got;
		t->n.restore_failures += upto - got;
	}
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pt_release(t->p->tree, pin);
	tier_prof_add(&t->prof.r_insert, t0);
}

/* Nothing more will happen: let go of host records gathered but not
 * copied (a later block failed, or cancelled).  Lock held. */
static void pf_finish(struct kvmm_tiers *t, struct kvmm_prefetch *pf)
{
	for (uint32_t i = pf->copied; i < pf->nb; i++) {
		if (pf->st[i] == PB_ON_HOST) {
			tidx_unpin(t, pf->slots[i]);
			pf->st[i] = PB_WAIT;
		}
	}
	t->inflight -= pf->nb - pf->g;
	pf->finished = true;
	pthread_cond_broadcast(&t->cond);
}

/* Blocks [from, to) restored (copied and verified): counted, their host
 * records unpinned.  Lock held. */
static void restored(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from, uint32_t to)
{
	uint32_t ndisk = 0;

	for (uint32_t i = from; i < to; i++) {
		tidx_unpin(t, pf->slots[i]);
		pf->st[i] = PB_DONE;
		ndisk += pf->from_disk[i];
		tidx_admit_bump(t, pf->keys[i]); /* a use */
	}
	pf->copied = to;
	t->n.restores_disk += ndisk;
	t->n.restores_host += to - from - ndisk;
	t->n.restore_bytes += (uint64_t)(to - from) * t->c->g.block_bytes;
}

/* Host records of blocks [from, to) that will not be restored (lock held). */
static void let_go(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++) {
		if (pf->st[i] != PB_ON_HOST)
			continue;
		tidx_unpin(t, pf->slots[i]);
		pf->st[i] = PB_WAIT;
	}
}

/* The copy engine: a flight's copies completed (any thread). */
static void flight_copied(void *arg, int err)
{
	struct pf_flight *f = arg;
	struct kvmm_prefetch *pf = f->pf;
	struct kvmm_tiers *t = pf->t;

	pthread_mutex_lock(&t->lock);
	if (!f->err)
		f->err = err;
	f->done = true;
	pf_kick(t, pf);
	t->busy--; /* the flight's */
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

/*
 * Mover: start a flight of the gathered blocks [from, to): check their
 * headers, allocate device blocks, queue the copies, then hash the
 * payloads while the copies run.  Nothing of it is visible until the
 * flight is finished (finish_flight).
 */
static void start_flight(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from, uint32_t to)
{
	struct pf_flight *f;
	uint32_t bad = check_headers(t, pf, from, to), end = bad;
	uint64_t t0;
	int ret = 0;

	if (bad < to)
		bad_record(t, pf, bad); /* nothing queued for it: dropped now */
	f = end > from ? calloc(1, sizeof(*f)) : NULL;
	if (end > from && !f)
		ret = -ENOMEM;
	t0 = kvmm_now_ns();
	for (uint32_t i = from; i < end && !ret; i++) {
		ret = kvmm_blk_alloc(t->c, &pf->blks[i]);
		if (ret && i > from) {
			end = i; /* the device is full: restore what fits */
			ret = 0;
		}
	}
	tier_prof_add(&t->prof.r_alloc, t0);
	if (ret || end == from) {
		pthread_mutex_lock(&t->lock);
		if (ret)
			pf->err = ret;
		if (from < pf->stop_at)
			pf->stop_at = from;
		pthread_mutex_unlock(&t->lock);
		free(f);
		return;
	}
	*f = (struct pf_flight){.pf = pf, .from = from, .to = end, .bad = end};
	t0 = kvmm_now_ns();
	for (uint32_t i = from; i < end && !f->err; i++)
		f->err = tiers_copy_in(t, pf->slots[i], pf->blks[i]);
	tier_prof_add(&t->prof.r_queue, t0);
	atomic_fetch_add_explicit(&t->prof.r_runs, 1, memory_order_relaxed);
	pthread_mutex_lock(&t->lock);
	*pf->flights_tail = f;
	pf->flights_tail = &f->next;
	pf->queued_to = end;
	if (end < pf->stop_at && end < to)
		pf->stop_at = end;
	t->busy++; /* until the copies complete */
	pthread_mutex_unlock(&t->lock);
	ret = tier_copy_notify(t->copy, TIER_H2D, flight_copied, f);
	if (ret) {
		/* no notice: wait here instead */
		int sret = tier_copy_sync(t->copy, TIER_H2D);

		flight_copied(f, sret ? sret : ret);
	}
	/* the copies run: verify meanwhile (only the mover finishes a
	 * flight, after this returns) */
	f->bad = check_payloads(t, pf, from, end);
}

/*
 * Mover: a flight's copies are done.  Its blocks before the first failure
 * (a checksum, a copy, or an earlier flight that failed) go into the
 * prefix tree; the rest go back to the pool, now that nothing writes to
 * them.
 */
static void finish_flight(struct kvmm_tiers *t, struct kvmm_prefetch *pf, struct pf_flight *f)
{
	uint32_t ok, stop;

	pthread_mutex_lock(&t->lock);
	stop = pf->stop_at;
	pthread_mutex_unlock(&t->lock);
	ok = f->err ? f->from : f->bad;
	if (ok > stop)
		ok = stop > f->from ? stop : f->from;
	if (f->err)
		tiers_log(t, TLOG_COPY, "kvmm tiers: host to device copy failed (%s)",
			  strerror(-f->err));
	if (f->bad < f->to)
		bad_record(t, pf, f->bad); /* a bad record goes, whatever else failed */
	put_blocks(t, pf, ok, f->to);
	pthread_mutex_lock(&t->lock);
	if (ok > f->from)
		restored(t, pf, f->from, ok);
	let_go(t, pf, ok, f->to);
	if (f->err) {
		pf->err = f->err;
		t->n.restore_failures += f->to - f->from - (f->bad < f->to);
	}
	if (ok < f->to && ok < pf->stop_at)
		pf->stop_at = ok; /* nothing after a failure */
	pthread_mutex_unlock(&t->lock);
	if (ok > f->from)
		insert_run(t, pf, ok);
	free(f);
}

/* Mover: a layer-wise prefetch, every record gathered: verify them all,
 * queue the copies layer by layer, wait, insert. */
static void run_layered(struct kvmm_tiers *t, struct kvmm_prefetch *pf, uint32_t from, uint32_t to)
{
	int ret = restore_run(t, pf, from, &to, true);

	pthread_mutex_lock(&t->lock);
	if (ret) {
		let_go(t, pf, from, to);
		pf->err = ret;
		pf->stop_at = from;
		t->n.restore_failures += to - from;
	} else {
		restored(t, pf, from, to);
	}
	pf->queued_to = pf->copied;
	pthread_mutex_unlock(&t->lock);
	if (!ret)
		insert_run(t, pf, to);
}

/* The most blocks of one flight. */
static uint32_t flight_max(const struct kvmm_tiers *t)
{
	uint64_t n = FLIGHT_BYTES / t->c->g.block_bytes;

	return n < 1 ? 1 : n > FLIGHT_BLOCKS ? FLIGHT_BLOCKS : (uint32_t)n;
}

/* Mover: one step of a prefetch: finish the flights whose copies are done,
 * gather, start the next flight. */
static void pf_run(struct kvmm_tiers *t, struct tier_job *job)
{
	struct kvmm_prefetch *pf =
		(struct kvmm_prefetch *)((char *)job - offsetof(struct kvmm_prefetch, job));
	bool layered = pf->flags & KVMM_PREFETCH_LAYERWISE;
	uint32_t from, to;
	uint64_t t0 = kvmm_now_ns();
	int ret;

	pthread_mutex_lock(&t->lock);
	pf->queued = false;
	while (pf->flights && pf->flights->done) {
		struct pf_flight *f = pf->flights;

		pf->flights = f->next;
		if (!pf->flights)
			pf->flights_tail = &pf->flights;
		pthread_mutex_unlock(&t->lock);
		finish_flight(t, pf, f);
		pthread_mutex_lock(&t->lock);
	}
	t0 = kvmm_now_ns();
	gather(t, pf);
	tier_prof_add(&t->prof.r_gather, t0);
	/* the run of gathered blocks right after what is in flight */
	from = pf->queued_to;
	for (to = from; to < pf->stop_at && pf->st[to] == PB_ON_HOST; to++)
		;
	if (layered && (to < pf->stop_at || pf->reads))
		to = from; /* layer-wise: all of them at once */
	if (!layered && to - from > flight_max(t))
		to = from + flight_max(t);
	if (pf->cancel)
		to = from;
	pthread_mutex_unlock(&t->lock);

	if (to > from && layered)
		run_layered(t, pf, from, to);
	else if (to > from)
		start_flight(t, pf, from, to);
	pthread_mutex_lock(&t->lock);
	gather(t, pf);
	if (!pf->cancel && pf->queued_to < pf->stop_at && pf->st[pf->queued_to] == PB_ON_HOST &&
	    !(layered && pf->reads))
		pf_kick(t, pf); /* more to start */
	if (pf->flights && pf->flights->done)
		pf_kick(t, pf); /* more to finish */
	if (!pf->queued && !pf->reads && !pf->waiting_fill && !pf->flights &&
	    (pf->copied >= pf->stop_at || pf->cancel))
		pf_finish(t, pf);
	ret = pf->finished && pf->detached;
	if (!ret) {
		t->busy--;
		pthread_cond_broadcast(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
	if (!ret)
		return;
	/* nobody holds a detached prefetch: unpinned before a flush returns */
	pf_free(t, pf);
	pthread_mutex_lock(&t->lock);
	t->busy--;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void pf_free(struct kvmm_tiers *t, struct kvmm_prefetch *pf)
{
	if (pf->lblks && pf->nlblks > pf->g)
		kvmm_blk_put(t->c, pf->lblks + pf->g, pf->nlblks - pf->g);
	if (pf->events)
		for (uint32_t l = 0; l < t->c->g.num_layers; l++)
			tier_copy_event_free(t->copy, pf->events[l]);
	pt_release(t->p->tree, pf->pin);
	free(pf->tokens);
	free(pf->keys);
	free(pf->slots);
	free(pf->blks);
	free(pf->st);
	free(pf->from_disk);
	free(pf->ops);
	free(pf->events);
	free(pf->lblks);
	free(pf);
}

int kvmm_prefix_prefetch(struct kvmm_cache *c, const struct kvmm_ns *ns, const uint32_t *tokens,
			 uint32_t n, uint32_t flags, struct kvmm_prefetch **out, uint32_t *found)
{
	static const struct kvmm_ns zero_ns;
	struct kvmm_tiers *t = kvmm_tiers_of(c);
	struct kvmm_prefetch *pf;
	uint32_t tpb, nb, matched = 0, g, r;
	struct pt_handle *pin = NULL;
	int ret;

	if (!t || !out || !found || (n && !tokens) || flags & ~KVMM_PREFETCH_LAYERWISE)
		return -EINVAL;
	*out = NULL;
	*found = 0;
	tpb = c->g.tpb;
	nb = n / tpb;
	pf = calloc(1, sizeof(*pf));
	if (!pf)
		return -ENOMEM;
	pf->t = t;
	pf->flights_tail = &pf->flights;
	pf->ns = ns ? *ns : zero_ns;
	pf->flags = flags;
	pf->keys = malloc((nb + 1) * sizeof(*pf->keys));
	pf->tokens = malloc(((size_t)nb * tpb + 1) * sizeof(*pf->tokens));
	if (!pf->keys || !pf->tokens) {
		ret = -ENOMEM;
		goto fail;
	}
	memcpy(pf->tokens, tokens, (size_t)nb * tpb * sizeof(*tokens));
	tiers_keys(t, &pf->ns, tokens, nb, pf->keys);
	/* what the device has, pinned while we build on it */
	ret = pt_match(t->p->tree, &pf->ns, tokens, nb * tpb, &pin, &matched);
	if (ret)
		goto fail;
	g = matched / tpb;
	pf->pin = pin;
	/* what the lower tiers have: a contiguous run after it */
	pthread_mutex_lock(&t->lock);
	for (r = g; r < nb; r++) {
		struct tier_entry *e = tidx_find(t, pf->keys[r], NULL);

		if (!e && (!t->disk || !tier_disk_contains(t->disk, pf->keys[r])))
			break;
	}
	/* layer-wise gathers every record before copying: it must fit in
	 * the host pool with room to spare for everyone else */
	if ((flags & KVMM_PREFETCH_LAYERWISE) && r - g > tier_host_nslots(t->host) / 2)
		r = g + tier_host_nslots(t->host) / 2;
	t->n.prefetches++;
	t->n.prefetch_blocks += nb - g;
	pthread_mutex_unlock(&t->lock);
	*found = r * tpb;
	if (r == g) {
		/* nothing to restore: the device has all there is */
		pf_free(t, pf);
		return 0;
	}
	pf->g = pf->copied = pf->queued_to = pf->inserted = pf->next = g;
	pf->nb = pf->stop_at = r;
	pf->slots = malloc(r * sizeof(*pf->slots));
	pf->blks = malloc(r * sizeof(*pf->blks));
	pf->st = calloc(r, 1);
	pf->from_disk = calloc(r, 1);
	pf->ops = calloc(r, sizeof(*pf->ops));
	pf->events = calloc(c->g.num_layers, sizeof(*pf->events));
	pf->lblks = malloc(r * sizeof(*pf->lblks));
	if (!pf->slots || !pf->blks || !pf->st || !pf->from_disk || !pf->ops || !pf->events ||
	    !pf->lblks) {
		ret = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < r; i++) {
		pf->slots[i] = TIER_NIL;
		pf->blks[i] = KVMM_BLK_NONE;
		pf->lblks[i] = i < g ? (kvmm_blk_t)pin->blocks[i] : KVMM_BLK_NONE;
	}
	pf->job.run = pf_run;
	pthread_mutex_lock(&t->lock);
	t->inflight += r - g;
	pf_kick(t, pf);
	pthread_mutex_unlock(&t->lock);
	*out = pf;
	return 0;
fail:
	pf_free(t, pf);
	return ret;
}

static bool wait_until(struct kvmm_tiers *t, const struct timespec *dl)
{
	if (!dl)
		return pthread_cond_wait(&t->cond, &t->lock) == 0;
	return pthread_cond_timedwait(&t->cond, &t->lock, dl) == 0;
}

static struct timespec *deadline(uint64_t timeout_ns, struct timespec *ts)
{
	if (timeout_ns == UINT64_MAX)
		return NULL;
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += (time_t)(timeout_ns / 1000000000ull);
	ts->tv_nsec += (long)(timeout_ns % 1000000000ull);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
	return ts;
}

int64_t kvmm_prefetch_wait(struct kvmm_cache *c, struct kvmm_prefetch *pf, uint32_t tokens,
			   uint64_t timeout_ns)
{
	struct kvmm_tiers *t = kvmm_tiers_of(c);
	struct timespec ts, *dl;
	uint32_t want, tpb;
	int64_t got;

	if (!t || !pf || pf->t != t)
		return -EINVAL;
	tpb = c->g.tpb;
	want = (tokens + tpb - 1) / tpb;
	dl = deadline(timeout_ns, &ts);
	pthread_mutex_lock(&t->lock);
	while (pf->inserted < want && !pf->finished && timeout_ns)
		if (!wait_until(t, dl) && dl)
			break;
	got = (int64_t)pf->inserted * tpb;
	pthread_mutex_unlock(&t->lock);
	return got;
}

void kvmm_prefetch_release(struct kvmm_cache *c, struct kvmm_prefetch *pf)
{
	struct kvmm_tiers *t = kvmm_tiers_of(c);

	if (!t || !pf || pf->t != t)
		return;
	pthread_mutex_lock(&t->lock);
	pf->cancel = true;
	if (pf->waiting_fill) {
		/* off the waiters' list: it finishes now */
		struct kvmm_prefetch **pp = &t->fill_waiters;

		while (*pp && *pp != pf)
			pp = &(*pp)->wnext;
		if (*pp)
			*pp = pf->wnext;
		pf->waiting_fill = false;
	}
	pf_kick(t, pf);
	while (!pf->finished)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
	pf_free(t, pf);
}

/* ---- layer-wise attach ---------------------------------------------------- */

int kvmm_seq_attach_prefetch(struct kvmm_cache *c, uint32_t seq, struct kvmm_prefetch *pf)
{
	struct kvmm_tiers *t = kvmm_tiers_of(c);
	struct kvmm_step_entry e = {.seq = seq};
	uint32_t n;
	int64_t len;
	int ret;

	if (!t || !pf || pf->t != t || !(pf->flags & KVMM_PREFETCH_LAYERWISE))
		return -EINVAL;
	len = kvmm_seq_len(c, seq);
	if (len < 0)
		return (int)len;
	if (len)
		return -EBUSY;
	/* every record verified on the host and its copies queued */
	pthread_mutex_lock(&t->lock);
	while (!pf->layers_queued && !pf->finished)
		pthread_cond_wait(&t->cond, &t->lock);
	n = pf->layers_queued && !pf->err ? pf->nlblks : 0;
	ret = pf->err;
	pthread_mutex_unlock(&t->lock);
	if (ret)
		return -EIO;
	if (n <= pf->g)
		return -ENOENT;
	ret = kvmm_seq_alias(c, seq, 0, n, pf->lblks);
	if (ret)
		return ret;
	e.len = n * c->g.tpb;
	ret = kvmm_step(c, &e, 1);
	return ret ? ret : (int)e.len;
}

int kvmm_prefetch_layer_event(struct kvmm_cache *c, struct kvmm_prefetch *pf, uint32_t layer,
			      uint64_t *event)
{
	struct kvmm_tiers *t = kvmm_tiers_of(c);

	if (!t || !pf || pf->t != t || !event || layer >= c->g.num_layers)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	while (!pf->layers_queued && !pf->finished)
		pthread_cond_wait(&t->cond, &t->lock);
	*event = pf->layers_queued ? pf->events[layer] : 0;
	/* token-major and quantized records: one event (layer 0's) covers
	 * every layer; 0 would tell the caller the layer is complete */
	if (pf->layers_queued && !*event)
		*event = pf->events[0];
	pthread_mutex_unlock(&t->lock);
	return pf->layers_queued ? 0 : -ENOENT;
}

int kvmm_prefetch_wait_layer(struct kvmm_cache *c, struct kvmm_prefetch *pf, uint32_t layer)
{
	struct kvmm_tiers *t = kvmm_tiers_of(c);
	uint64_t ev = 0;
	int ret;

	if (!t || !pf || pf->t != t || layer >= c->g.num_layers)
		return -EINVAL;
	ret = kvmm_prefetch_layer_event(c, pf, layer, &ev);
	if (ret)
		return ret;
	ret = tier_copy_wait(t->copy, ev);
	if (!ret) {
		pthread_mutex_lock(&t->lock);
		ret = pf->err ? -EIO : 0;
		pthread_mutex_unlock(&t->lock);
	}
	return ret;
}

void tiers_prefetch_detached(struct kvmm_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
			     uint32_t n)
{
	struct kvmm_prefetch *pf;
	uint32_t found;

	if (kvmm_prefix_prefetch(t->c, ns, tokens, n, 0, &pf, &found) || !pf)
		return;
	if (t->bookkeeping) {
		/* bookkeeping only: nothing to wait for but the mover's
		 * turn, so the hint's restore is done when the hint returns
		 * and what the tiers hold does not depend on thread timing */
		kvmm_prefetch_wait(t->c, pf, found, UINT64_MAX);
		kvmm_prefetch_release(t->c, pf);
		return;
	}
	pthread_mutex_lock(&t->lock);
	pf->detached = true;
	if (pf->finished) {
		pthread_mutex_unlock(&t->lock);
		pf_free(t, pf);
		return;
	}
	pthread_mutex_unlock(&t->lock);
}
