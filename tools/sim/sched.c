// SPDX-License-Identifier: MIT
/*
 * sched.c - the scheduler's decisions (see engine.h): grow the running
 * batch, evict then preempt when memory runs out, admit queued requests in
 * order with prefix match, restore and attach, and look ahead.
 */
#include <errno.h>
#include <string.h>

#include "engine_internal.h"

void eng_run_remove(struct engine *e, uint32_t i)
{
	for (uint32_t k = 0; k < e->nrun; k++)
		if (e->run[k] == i) {
			memmove(&e->run[k], &e->run[k + 1], sizeof(*e->run) * (e->nrun - k - 1));
			e->nrun--;
			return;
		}
}

/* Give up a running sequence: publish what it computed, free it, and put
 * it back at the head of the queue (vLLM's recompute preemption). */
static int preempt(struct engine *e, uint32_t i)
{
	struct req *r = &e->r[i];
	int ret;

	if (e->pol->prefix && r->kv_len) {
		struct kvmm_ns ns = eng_ns(e, i);

		ret = KV(e, kvmm_prefix_insert(e->c, r->seq, &ns, r->tok, r->kv_len));
		if (ret < 0)
			return eng_kverr(e, ret, "kvmm_prefix_insert (preemption)", i);
	}
	ret = KV(e, kvmm_seq_close(e->c, r->seq));
	if (ret)
		return eng_kverr(e, ret, "kvmm_seq_close (preemption)", i);
	eng_run_remove(e, i);
	e->admit_blocked = false;
	/* Computed before the first token and lost: done again later. */
	if (!r->first_tok)
		e->res->recomputed_tokens += r->computed;
	r->phase = P_QUEUED;
	r->kv_len = r->matched = r->computed = r->chunk = 0;
	eng_q_push_front(e, i);
	e->res->preemptions++;
	return 0;
}

/* Free memory for a growing batch: cached prefixes first, then the newest
 * running sequence.  1: something was freed; 0: nothing left to free. */
static int make_room(struct engine *e, int *err)
{
	int n;

	if (e->pol->prefix) {
		n = KV(e, kvmm_prefix_evict(e->c, 64));
		if (n > 0)
			return 1;
	}
	if (!e->nrun)
		return 0;
	*err = preempt(e, e->run[e->nrun - 1]);
	return *err ? 0 : 1;
}

/* Phase 1: every running sequence gets its next token or prefill chunk. */
int eng_grow_running(struct engine *e, uint32_t *budget, bool *preempted)
{
	uint32_t nb;
	int ret, err = 0;

	/* Decoding sequences first (one token each: chunk_tokens >= max_seqs
	 * leaves room), then prefill chunks, oldest first, in what is left. */
	for (uint32_t k = 0; k < e->nrun; k++) {
		struct req *r = &e->r[e->run[k]];

		r->chunk = r->kv_len >= r->target;
		*budget -= r->chunk;
	}
	for (uint32_t k = 0; k < e->nrun; k++) {
		struct req *r = &e->r[e->run[k]];

		if (r->kv_len < r->target) {
			r->chunk = r->target - r->kv_len;
			if (r->chunk > *budget)
				r->chunk = *budget;
			*budget -= r->chunk;
		}
	}
	/* Prefill chunks map synchronously. */
	for (uint32_t k = 0; k < e->nrun; k++) {
		uint32_t i = e->run[k];
		struct req *r = &e->r[i];

		if (!r->chunk || r->kv_len >= r->target)
			continue;
		while ((ret = KV(e, kvmm_seq_reserve(e->c, r->seq, r->kv_len + r->chunk))) ==
		       -ENOMEM) {
			*preempted = true;
			if (!make_room(e, &err))
				break;
			if (r->phase != P_RUNNING)
				break; /* it was the newest: preempted itself */
		}
		if (err)
			return err;
		if (r->phase != P_RUNNING) {
			k = (uint32_t)-1; /* the list changed: start over */
			continue;
		}
		if (ret)
			return eng_kverr(e, ret, "kvmm_seq_reserve", i);
	}
	for (;;) {
		nb = 0;
		for (uint32_t k = 0; k < e->nrun; k++) {
			struct req *r = &e->r[e->run[k]];

			if (!r->chunk)
				continue;
			e->batch_req[nb] = e->run[k];
			e->batch[nb++] = (struct kvmm_step_entry){r->seq, r->kv_len + r->chunk};
		}
		if (!nb)
			return 0;
		ret = KV(e, kvmm_step(e->c, e->batch, nb));
		if (ret != -ENOMEM)
			break;
		*preempted = true;
		if (!make_room(e, &err))
			return err ? err
				   : eng_kverr(e, ret, "kvmm_step with nothing left to free",
					       e->run[0]);
	}
	if (ret)
		return eng_kverr(e, ret, "kvmm_step", e->batch_req[0]);
	return 0;
}

static void undo_admission(struct engine *e, uint32_t i)
{
	KV(e, kvmm_seq_close(e->c, e->r[i].seq));
	/* Unpin what was restored: it may be what the head is short of. */
	sim_tiers_release(&e->tiers, &e->r[i].rs);
	e->r[i].kv_len = e->r[i].matched = 0;
}

/* Phase 2: admit queued requests in order while memory and slots last.
 * 1: admitted; 0: the head does not fit now; < 0 error. */
static int admit_one(struct engine *e, uint32_t i, uint32_t budget)
{
	const struct sim_request *q = &e->t->req[i];
	struct req *r = &e->r[i];
	struct kvmm_prefix_handle *h = NULL;
	struct kvmm_prefix_stats before, after;
	struct kvmm_ns ns = eng_ns(e, i);
	uint64_t by_tier[SIM_TIERS] = {0};
	uint32_t matched = 0, chunk, tpb = e->info.tokens_per_block;
	int ret;

	ret = eng_tokens(e, i);
	if (ret)
		return ret;
	r->target = q->input_len + r->generated;
	if (e->pol->prefix) {
		/* The last token is always computed: it gives the logits. */
		ret = KV(e, kvmm_prefix_match(e->c, &ns, r->tok, r->target - 1, &h, &matched));
		if (ret)
			return eng_kverr(e, ret, "kvmm_prefix_match", i);
		if (e->tiers.on && matched < r->target - 1 && !r->rs.pf) {
			/* Bring back what the host pool and the disk hold. */
			KV(e, (kvmm_prefix_release(e->c, h), 0));
			h = NULL;
			ret = sim_tiers_restore(&e->tiers, &ns, r->tok, r->target - 1, e->now,
						&r->rs);
			if (ret)
				return eng_kverr(e, ret, "restoring from the tiers", i);
			ret = KV(e,
				 kvmm_prefix_match(e->c, &ns, r->tok, r->target - 1, &h, &matched));
			if (ret)
				return eng_kverr(e, ret, "kvmm_prefix_match", i);
		}
		sim_tiers_split(&r->rs, matched, by_tier);
	}
	/* Hint: what this admission reserves now (the mapper maps that much
	 * ahead); decode growth comes later, a block at a time. */
	chunk = r->target - matched;
	if (chunk > budget)
		chunk = budget;
	ret = KV(e, kvmm_seq_open(e->c, matched + chunk, &r->seq));
	if (ret) {
		KV(e, (kvmm_prefix_release(e->c, h), 0));
		sim_tiers_release(&e->tiers, &r->rs);
		return ret == -ENOSPC ? 0 : eng_kverr(e, ret, "kvmm_seq_open", i);
	}
	if (h) {
		kvmm_prefix_stats(e->c, &before);
		while ((ret = KV(e, kvmm_seq_attach_prefix(e->c, r->seq, h, e->pol->attach))) ==
			       -ENOMEM &&
		       KV(e, kvmm_prefix_evict(e->c, 64)) > 0)
			;
		KV(e, (kvmm_prefix_release(e->c, h), 0));
		if (ret == -ENOMEM) {
			undo_admission(e, i);
			return 0;
		}
		if (ret)
			return eng_kverr(e, ret, "kvmm_seq_attach_prefix", i);
		/* A copy attach copies every block; an alias copies only a
		 * partial last block (copy-on-write). */
		kvmm_prefix_stats(e->c, &after);
		if (after.attach_copy > before.attach_copy)
			e->res->bytes_moved[SIM_MOVE_ATTACH_COPY] +=
				(uint64_t)((matched + tpb - 1) / tpb) * e->info.block_bytes;
		else if (matched % tpb)
			e->res->bytes_moved[SIM_MOVE_ATTACH_COPY] += e->info.block_bytes;
	}
	while ((ret = KV(e, kvmm_seq_reserve(e->c, r->seq, matched + chunk))) == -ENOMEM &&
	       e->pol->prefix && KV(e, kvmm_prefix_evict(e->c, 64)) > 0)
		;
	if (ret == -ENOMEM) {
		undo_admission(e, i);
		return 0;
	}
	if (ret)
		return eng_kverr(e, ret, "kvmm_seq_reserve", i);
	r->matched = matched;
	r->kv_len = matched;
	r->computed = 0;
	r->chunk = chunk;
	memcpy(r->by_tier, by_tier, sizeof(by_tier));
	/* Attached: the restore's pins are the sequence's now. */
	sim_tiers_admit(&e->tiers, e->now, &r->rs);
	sim_tiers_release(&e->tiers, &r->rs);
	r->phase = P_RUNNING;
	e->run[e->nrun++] = i;
	return 1;
}

int eng_admit(struct engine *e, uint32_t budget)
{
	uint32_t nb = 0;
	int ret = 0;

	while (e->qlen && e->nrun < e->cfg->max_seqs && budget && !e->admit_blocked) {
		uint32_t i = eng_q_at(e, 0);

		ret = admit_one(e, i, budget);
		if (ret < 0)
			return ret;
		if (!ret) {
			e->admit_blocked = true; /* the head waits: FIFO, no overtaking */
			break;
		}
		eng_q_pop_front(e);
		budget -= e->r[i].chunk;
		e->batch[nb] =
			(struct kvmm_step_entry){e->r[i].seq, e->r[i].kv_len + e->r[i].chunk};
		e->batch_req[nb++] = i;
	}
	if (nb) {
		/* Reserved above: declaring the lengths cannot run out. */
		ret = KV(e, kvmm_step(e->c, e->batch, nb));
		if (ret)
			return eng_kverr(e, ret, "kvmm_step (admission)", e->batch_req[0]);
	}
	return 0;
}

/* Look-ahead: hint the prefixes of the first queued requests so that they
 * are evicted last (AttentionStore's scheduler-aware eviction) and restore
 * what the tiers hold of them while they wait.  Restored blocks stay
 * pinned until admission, so only the first requests holding a quarter of
 * the GPU budget between them are served. */
int eng_lookahead(struct engine *e)
{
	uint32_t w = e->qlen < e->cfg->lookahead ? e->qlen : e->cfg->lookahead;
	uint64_t room = e->cfg->gpu_kv_bytes / 4 / e->mg.kv_bytes_per_token;
	int ret;

	for (uint32_t k = 0; k < w; k++) {
		uint32_t i = eng_q_at(e, k);
		struct req *r = &e->r[i];
		struct kvmm_ns ns = eng_ns(e, i);
		uint32_t n = e->t->req[i].input_len + r->generated - 1;

		if (n > room)
			break;
		room -= n;
		/* Hints expire; renew them every few (simulated) seconds. */
		if (r->hinted_at >= 0 && e->now - r->hinted_at < 5000000000ll)
			continue;
		ret = eng_tokens(e, i);
		if (ret)
			return ret;
		if (n) {
			/* our restore first, timed and counted by tier; the
			 * hint's own prefetch (kvmm's, for servers that only
			 * hint) then finds the prefix restored */
			if (!r->rs.tried) {
				ret = sim_tiers_restore(&e->tiers, &ns, r->tok, n, e->now, &r->rs);
				if (ret)
					return eng_kverr(e, ret, "prefetch", i);
			}
			ret = KV(e, kvmm_prefix_hint(e->c, &ns, r->tok, n, eng_clock(e)));
			if (ret < 0)
				return eng_kverr(e, ret, "kvmm_prefix_hint", i);
		}
		r->hinted_at = e->now;
	}
	return 0;
}
