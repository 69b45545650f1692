// SPDX-License-Identifier: MIT
/*
 * tier_spill.c - blocks going down: device -> host pool -> disk.
 *
 * Device -> host happens when the prefix cache evicts a block (write-back:
 * the eviction hook copies it out before the tree lets go of it) or as
 * soon as a block is inserted (write-through: the mover copies it while
 * the block is still cached, holding a reference).  The copy goes to a host
 * slot; the slot becomes a record once the mover has hashed the payload
 * and sealed the header, so the evicting thread pays only for the copy.
 * Host -> disk is a write of the whole record from its slot (registered
 * buffers): at once (write-through) or when the record is about to leave
 * the host pool (write-back), and only for records used disk_admit_hits
 * times, to spare the SSD.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tier_hash.h"
#include "tiers.h"

#define SEAL_BLOCKS 8		/* at most, per seal job; pieces per round */
#define SEAL_BYTES  (16u << 20) /* a seal job's payloads, at most (one block at least) */

/* A batch of slots whose payload is copied and whose header waits for the
 * payload hash. */
struct seal_job {
	struct tier_job job;
	struct kvmm_tiers *t;
	struct kvmm_ns ns;
	uint32_t n;
	kvmm_blk_t *blks; /* write-through: references to put once copied */
	uint32_t nblks;
	uint32_t *slots; /* TIER_NIL: skipped */
	uint64_t *keys, *parents;
	uint32_t *tokens; /* n * tpb */
	int copy_err;
};

static void seal_free(struct seal_job *j)
{
	free(j->slots);
	free(j->keys);
	free(j->parents);
	free(j->tokens);
	free(j->blks);
	free(j);
}

static struct seal_job *seal_alloc(struct kvmm_tiers *t, uint32_t n)
{
	uint32_t tpb = t->c->g.tpb;
	struct seal_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->slots = malloc(n * sizeof(*j->slots));
	j->keys = malloc(n * sizeof(*j->keys));
	j->parents = malloc(n * sizeof(*j->parents));
	j->tokens = malloc((size_t)n * tpb * sizeof(*j->tokens));
	j->blks = malloc(n * sizeof(*j->blks));
	if (!j->slots || !j->keys || !j->parents || !j->tokens || !j->blks) {
		seal_free(j);
		return NULL;
	}
	j->n = n;
	return j;
}

/* The record's payload is in the slot, its hash known: write the header. */
static int seal(struct kvmm_tiers *t, uint32_t slot, const struct kvmm_ns *ns, uint64_t key,
		uint64_t parent, const uint32_t *tokens, uint64_t payload_hash)
{
	struct tier_rec r = {.ns = *ns,
			     .geometry = t->geometry,
			     .key = key,
			     .parent = parent,
			     .ntokens = t->c->g.tpb,
			     .encoding = t->enc,
			     .payload_bytes = t->payload_bytes,
			     .raw_bytes = t->c->g.block_bytes,
			     .payload_hash = payload_hash,
			     .hash_shift = TIER_HASH_CHUNK_SHIFT,
			     .dtype = t->dtype,
			     .row_elems = t->row_elems};

	pthread_mutex_lock(&t->lock);
	r.seq = t->next_seq++;
	pthread_mutex_unlock(&t->lock);
	if (t->bookkeeping)
		return 0; /* no bytes: the index entry is the whole record */
	return tier_rec_encode(tier_host_slot(t->host, slot), t->rec_bytes, &r, tokens);
}

/* A disk write of slot's record ended with result (lock held). */
static void write_result(struct kvmm_tiers *t, uint32_t slot, int result)
{
	t->ent[slot].flags &= ~E_WRITING;
	tiers_fill_event(t); /* restores waiting for room look again */
	if (!result) {
		t->ent[slot].flags |= E_ON_DISK; /* COLD once unpinned */
		t->n.spills_disk++;
		t->n.spill_disk_bytes += t->payload_bytes;
	} else if (result != -EEXIST) {
		t->n.io_errors++;
	} else {
		t->ent[slot].flags |= E_ON_DISK; /* it was there already */
	}
}

static void write_done(struct tier_disk_op *op)
{
	struct kvmm_tiers *t = op->arg;
	uint32_t slot = (uint32_t)(((char *)op->buf - (char *)tier_host_slot(t->host, 0)) /
				   tier_host_slot_bytes(t->host));

	pthread_mutex_lock(&t->lock);
	write_result(t, slot, op->result);
	tidx_unpin(t, slot);
	t->busy--;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	free(op);
}

/* Bookkeeping only: the disk tier stores the record's key at once. */
static void write_now(struct kvmm_tiers *t, uint32_t slot)
{
	struct tier_entry *e = &t->ent[slot];
	struct tier_disk_op op = {.kind = TIER_DISK_PUT, .key = e->key, .len = t->rec_bytes};

	op.rec.key = e->key;
	op.rec.parent = e->parent;
	op.rec.seq = t->next_seq++;
	write_result(t, slot, tier_disk_account(t->disk, &op));
	tier_disk_account_end(t->disk, &op);
}

/* A disk write of slot's record, ready to submit: the slot pinned for it
 * (NULL: no memory; nothing done). */
static struct tier_disk_op *write_op(struct kvmm_tiers *t, uint32_t slot)
{
	struct tier_entry *e = &t->ent[slot];
	struct tier_disk_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	*op = (struct tier_disk_op){.kind = TIER_DISK_PUT,
				    .key = e->key,
				    .buf = tier_host_slot(t->host, slot),
				    .len = t->rec_bytes,
				    .done = write_done,
				    .arg = t};
	e->flags |= E_WRITING;
	tidx_pin(t, slot);
	t->busy++;
	return op;
}

/* A write_op that was not submitted. */
static void write_undo(struct kvmm_tiers *t, uint32_t slot, struct tier_disk_op *op)
{
	t->ent[slot].flags &= ~E_WRITING;
	tidx_unpin(t, slot);
	t->busy--;
	free(op);
	tiers_fill_event(t); /* a restore waiting for this write: stop waiting */
}

int tiers_write_deferred(struct kvmm_tiers *t, struct tier_disk_op *read)
{
	struct tier_disk_op **ops;
	uint32_t n = 0, k;
	int ret;

	if (t->bookkeeping) {
		for (k = 0; k < t->ndeferred; k++) {
			t->ent[t->deferred[k]].flags &= ~E_WRITING;
			write_now(t, t->deferred[k]);
		}
		t->ndeferred = 0;
		return 0;
	}
	ops = malloc((t->ndeferred + 1) * sizeof(*ops));
	if (read && ops)
		ops[n++] = read;
	for (k = 0; k < t->ndeferred; k++) {
		uint32_t slot = t->deferred[k];

		t->ent[slot].flags &= ~E_WRITING;
		if (ops && (ops[n] = write_op(t, slot)))
			n++;
	}
	t->ndeferred = 0;
	if (!ops)
		return -ENOMEM;
	/* one submission: the I/O thread starts the read before the writes */
	ret = n ? tier_disk_submit(t->disk, ops, n) : 0;
	for (k = read ? 1 : 0; ret && k < n; k++)
		write_undo(t,
			   (uint32_t)(((char *)ops[k]->buf - (char *)tier_host_slot(t->host, 0)) /
				      tier_host_slot_bytes(t->host)),
			   ops[k]);
	free(ops);
	return ret;
}

void tiers_maybe_write(struct kvmm_tiers *t, uint32_t slot, bool evicting)
{
	struct tier_entry *e = &t->ent[slot];
	struct tier_disk_op *op;

	if (!t->disk || !(e->flags & E_VALID) || (e->flags & (E_WRITING | E_ON_DISK)))
		return;
	if (t->cfg.disk_policy == KVMM_WRITE_BACK && !evicting)
		return;
	if (!tidx_admitted(t, e->key)) {
		t->n.disk_admit_rejects++;
		return;
	}
	if (t->defer_writes) {
		e->flags |= E_WRITING; /* neither evicted nor written twice */
		t->deferred[t->ndeferred++] = slot;
		return;
	}
	if (t->bookkeeping) {
		write_now(t, slot);
		return;
	}
	op = write_op(t, slot);
	if (op && tier_disk_submit(t->disk, &op, 1))
		write_undo(t, slot, op);
}

/* Mover: hash the copied payloads (in parallel), seal the records, then
 * let the policy write them. */
static void seal_run(struct kvmm_tiers *t, struct tier_job *job)
{
	struct seal_job *j = (struct seal_job *)job;
	uint32_t tpb = t->c->g.tpb, m = 0;
	const void **bufs = malloc(j->n * sizeof(*bufs));
	uint64_t *lens = malloc(j->n * sizeof(*lens)), *hashes = malloc(j->n * sizeof(*hashes));
	uint64_t t0 = kvmm_now_ns();

	if (!bufs || !lens || !hashes) {
		j->copy_err = j->copy_err ? j->copy_err : -ENOMEM;
	} else if (!j->copy_err && !t->bookkeeping) {
		for (uint32_t i = 0; i < j->n; i++) {
			if (j->slots[i] == TIER_NIL)
				continue;
			bufs[m] = (char *)tier_host_slot(t->host, j->slots[i]) + t->hdr_bytes;
			lens[m++] = t->payload_bytes;
		}
		tier_hashpool_payloads(t->hashpool, bufs, lens, m, TIER_HASH_CHUNK_SHIFT, hashes);
	}
	tier_prof_add(&t->prof.s_hash, t0);
	t0 = kvmm_now_ns();
	m = 0;
	for (uint32_t i = 0; i < j->n; i++) {
		uint32_t s = j->slots[i];
		int ret;

		if (s == TIER_NIL)
			continue;
		ret = j->copy_err
			      ? j->copy_err
			      : seal(t, s, &j->ns, j->keys[i], j->parents[i],
				     j->tokens + (size_t)i * tpb, t->bookkeeping ? 0 : hashes[m++]);
		pthread_mutex_lock(&t->lock);
		t->inflight--;
		tidx_filled(t, s, !ret);
		if (!ret) {
			t->n.spills_host++;
			t->n.spill_host_bytes += t->payload_bytes;
			tidx_admit_bump(t, j->keys[i]);
			tiers_maybe_write(t, s, false);
			tidx_keep_clean(t);
		}
		pthread_mutex_unlock(&t->lock);
	}
	tier_prof_add(&t->prof.s_seal, t0);
	if (j->copy_err)
		tiers_log(t, TLOG_COPY,
			  "kvmm tiers: device to host copy failed (%s): blocks not "
			  "spilled",
			  strerror(-j->copy_err));
	free(bufs);
	free(lens);
	free(hashes);
	seal_free(j);
	tiers_job_done(t);
}

/* A seal job for entries [from, to) of j (their slots claimed, payloads
 * copied), sharing nothing with j. */
static struct seal_job *seal_split(struct kvmm_tiers *t, const struct seal_job *j, uint32_t from,
				   uint32_t to)
{
	uint32_t tpb = t->c->g.tpb, n = to - from;
	struct seal_job *k = seal_alloc(t, n);

	if (!k)
		return NULL;
	k->job.run = seal_run;
	k->t = t;
	k->ns = j->ns;
	memcpy(k->slots, j->slots + from, n * sizeof(*k->slots));
	memcpy(k->keys, j->keys + from, n * sizeof(*k->keys));
	memcpy(k->parents, j->parents + from, n * sizeof(*k->parents));
	memcpy(k->tokens, j->tokens + (size_t)from * tpb, (size_t)n * tpb * sizeof(*k->tokens));
	k->copy_err = j->copy_err;
	return k;
}

/* The copies of a piece completed (copy engine): hash and seal it on the
 * mover. */
static void seal_copied(void *arg, int err)
{
	struct seal_job *j = arg;
	struct kvmm_tiers *t = j->t;

	if (!j->copy_err)
		j->copy_err = err;
	tiers_queue(t, &j->job);
	pthread_mutex_lock(&t->lock);
	t->busy--; /* the notice's */
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

/* The most blocks sealed as one job: a piece is hashed while the copies of
 * the next ones run. */
static uint32_t piece_max(const struct kvmm_tiers *t)
{
	uint64_t n = SEAL_BYTES / t->c->g.block_bytes;

	return n < 1 ? 1 : n > SEAL_BLOCKS ? SEAL_BLOCKS : (uint32_t)n;
}

/* Slots claimed for [from, to) of j given up (no job, or no copy). */
static void give_up(struct kvmm_tiers *t, const struct seal_job *j, uint32_t from, uint32_t to)
{
	pthread_mutex_lock(&t->lock);
	for (uint32_t k = from; k < to; k++) {
		if (j->slots[k] == TIER_NIL)
			continue;
		t->inflight--;
		tidx_filled(t, j->slots[k], false);
	}
	pthread_mutex_unlock(&t->lock);
}

/*
 * Copy blocks blks[i] (keys, parents and tokens in j) out to host slots, in
 * rounds: claim what is free or cheaply freed, then copy it piece by piece;
 * each piece is handed to the mover to hash and seal as soon as its copies
 * complete (the mover, write-through, seals its pieces itself once the
 * round is copied); when nothing can be claimed, wait (bounded) for
 * records in flight to become droppable.  Returns when every copy is
 * done: the caller may let go of the blocks then.
 */
static void spill_blocks(struct kvmm_tiers *t, struct seal_job *j, const kvmm_blk_t *blks,
			 enum tier_wait wait)
{
	struct seal_job *pieces[SEAL_BLOCKS];
	uint32_t i = 0;
	/* the CPU codec quantizes from a copy of the block */
	void *staging = t->enc != TIER_ENC_RAW && !tier_copy_has_quant(t->copy)
				? malloc(t->c->g.block_bytes)
				: NULL;

	while (i < j->n) {
		uint32_t from = i, claimed = 0, npieces = 0;
		uint64_t t0 = kvmm_now_ns();
		int sret;

		pthread_mutex_lock(&t->lock);
		for (; i < j->n && claimed < SEAL_BLOCKS * piece_max(t); i++) {
			int r = tidx_claim(t, j->keys[i], j->parents[i],
					   i == from ? wait : TIER_WAIT_NONE, &j->slots[i]);

			if (r == -ENOSPC && i > from)
				break; /* this round is full: copy it first */
			if (r == 0) {
				t->inflight++;
				claimed++;
				continue;
			}
			j->slots[i] = TIER_NIL;
			if (r == -ENOSPC) {
				t->n.spill_skipped++;
			} else if (r == -EEXIST) {
				uint32_t s;
				struct tier_entry *e = tidx_find(t, j->keys[i], &s);

				/* spilled again: a use, which may admit it */
				tidx_admit_bump(t, j->keys[i]);
				if (e && (e->flags & E_VALID))
					tiers_maybe_write(t, s, false);
			}
		}
		pthread_mutex_unlock(&t->lock);
		tier_prof_add(&t->prof.s_claim, t0);
		if (!claimed)
			continue;
		for (uint32_t a = from; a < i;) {
			uint32_t b = a, m = 0;
			struct seal_job *piece;
			int ret = 0;

			while (b < i && m < piece_max(t))
				m += j->slots[b++] != TIER_NIL;
			if (!m) {
				a = b;
				continue;
			}
			piece = seal_split(t, j, a, b);
			if (!piece) {
				give_up(t, j, a, b); /* no memory for the job */
				a = b;
				continue;
			}
			t0 = kvmm_now_ns();
			for (uint32_t k = a; k < b && !ret; k++)
				if (j->slots[k] != TIER_NIL)
					ret = tiers_copy_out(t, blks[k], j->slots[k], staging);
			tier_prof_add(&t->prof.s_queue, t0);
			piece->copy_err = ret;
			if (wait == TIER_WAIT_WRITES || t->bookkeeping) {
				/* the mover seals its own; with bookkeeping
				 * only there is nothing to hash: at once */
				pieces[npieces++] = piece; /* sealed below */
			} else {
				pthread_mutex_lock(&t->lock);
				t->busy++; /* until the notice */
				pthread_mutex_unlock(&t->lock);
				ret = tier_copy_notify(t->copy, TIER_D2H, seal_copied, piece);
				if (ret) {
					sret = tier_copy_sync(t->copy, TIER_D2H);
					seal_copied(piece, sret ? sret : ret);
				}
			}
			a = b;
		}
		/* every copy of the round done before the blocks go */
		t0 = kvmm_now_ns();
		sret = tier_copy_sync(t->copy, TIER_D2H);
		tier_prof_add(&t->prof.s_wait, t0);
		atomic_fetch_add_explicit(&t->prof.s_rounds, 1, memory_order_relaxed);
		for (uint32_t k = 0; k < npieces; k++) {
			/* the mover itself: seal now, so the next round can
			 * make room (accounted as a job) */
			if (!pieces[k]->copy_err)
				pieces[k]->copy_err = sret;
			pthread_mutex_lock(&t->lock);
			t->busy++;
			pthread_mutex_unlock(&t->lock);
			seal_run(t, &pieces[k]->job);
		}
	}
	free(staging);
}

void tiers_keys(const struct kvmm_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
		uint32_t nb, uint64_t *keys)
{
	uint32_t tpb = t->c->g.tpb;
	uint64_t k = tier_key_root(ns, t->geometry);

	for (uint32_t i = 0; i < nb; i++) {
		k = tier_key_next(k, tokens + (size_t)i * tpb, tpb);
		keys[i] = k;
	}
}

/* Fill a seal job for path blocks [first, first + n) of tokens. */
static struct seal_job *seal_prepare(struct kvmm_tiers *t, const struct kvmm_ns *ns,
				     const uint32_t *tokens, uint32_t first, uint32_t n)
{
	uint32_t tpb = t->c->g.tpb;
	struct seal_job *j = seal_alloc(t, n);
	uint64_t *path;

	if (!j)
		return NULL;
	path = malloc((size_t)(first + n) * sizeof(*path));
	if (!path) {
		seal_free(j);
		return NULL;
	}
	tiers_keys(t, ns, tokens, first + n, path);
	j->job.run = seal_run;
	j->ns = *ns;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t b = first + i;

		j->keys[i] = path[b];
		j->parents[i] = b ? path[b - 1] : tier_key_root(ns, t->geometry);
		memcpy(j->tokens + (size_t)i * tpb, tokens + (size_t)b * tpb,
		       tpb * sizeof(*tokens));
	}
	free(path);
	return j;
}

void tiers_evict_hook(void *arg, const struct pt_victim *v)
{
	struct kvmm_tiers *t = arg;
	uint64_t t0 = kvmm_now_ns();
	struct seal_job *j = seal_prepare(t, v->ns, v->tokens, v->first, v->nblocks);

	if (!j) {
		pthread_mutex_lock(&t->lock);
		t->n.spill_skipped += v->nblocks;
		pthread_mutex_unlock(&t->lock);
		return;
	}
	for (uint32_t i = 0; i < v->nblocks; i++)
		j->blks[i] = (kvmm_blk_t)v->blocks[i];
	/* The tree holds the blocks until we return: copy them out now.  (On
	 * the mover itself, evicting for a restore, only disk writes can make
	 * room: it seals records itself.) */
	spill_blocks(t, j, j->blks,
		     pthread_equal(pthread_self(), t->mover) ? TIER_WAIT_WRITES : TIER_WAIT_ANY);
	seal_free(j);
	tier_prof_add(&t->prof.s_hook, t0);
}

/* Mover: a write-through copy of blocks the tree still caches. */
static void through_run(struct kvmm_tiers *t, struct tier_job *job)
{
	struct seal_job *j = (struct seal_job *)job;

	spill_blocks(t, j, j->blks, TIER_WAIT_WRITES);
	kvmm_blk_put(t->c, j->blks, j->nblks);
	seal_free(j);
	tiers_job_done(t);
}

void tiers_on_insert(struct kvmm_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
		     uint32_t first, uint32_t n, const uint64_t *blocks)
{
	struct seal_job *j;

	if (t->cfg.host_policy != KVMM_WRITE_THROUGH || !n)
		return;
	j = seal_prepare(t, ns, tokens, first, n);
	if (!j)
		return;
	for (uint32_t i = 0; i < n; i++)
		j->blks[i] = (kvmm_blk_t)blocks[i];
	/* ours until copied: the tree may evict them meanwhile */
	kvmm_blk_get(t->c, j->blks, n);
	j->nblks = n;
	j->job.run = through_run;
	if (t->bookkeeping) {
		/* nothing to copy in the background: done on return, so
		 * what the tiers hold follows from the calls alone */
		pthread_mutex_lock(&t->lock);
		t->busy++;
		pthread_mutex_unlock(&t->lock);
		through_run(t, &j->job);
		return;
	}
	tiers_queue(t, &j->job);
}
