// SPDX-License-Identifier: MIT
/*
 * test_model.c - 100,000 random operations (admit, grow, roll back, step a
 * batch, reserve, free, shrink and grow the budget) against a plain
 * reference model of every sequence's length, reservation and contents,
 * for each layout, with and without the mapper thread.
 *
 * The model also predicts -ENOMEM: a request succeeds exactly when the
 * blocks every sequence needs (its length or reservation, rounded up to
 * blocks) fit in the budget; while the cache is over a budget that shrank
 * below what is in use, either answer is allowed.  Budget: pages are never
 * created beyond it (checked after every operation).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cachetest.h"
#include "testutil.h"

enum { SEQS = 8, MAXB = 12 };

struct model {
	bool on[SEQS];
	uint32_t id[SEQS], len[SEQS], res[SEQS];
	uint32_t next_id, nopen;
	uint64_t budget; /* blocks */
	uint64_t peak_budget;
	uint64_t prev_created; /* pages, after the last operation */
};

struct ctx {
	struct kvmm_cache *c;
	struct model m;
	struct tu_rng r;
	uint32_t tpb, ppb, maxt;
	uint64_t enomem, ops_ok;
};

static uint64_t blocks(const struct ctx *x, uint64_t tok)
{
	return (tok + x->tpb - 1) / x->tpb;
}

/* Blocks all sequences need if seq s had length len and reservation res. */
static uint64_t needed_with(const struct ctx *x, const uint32_t *len, const uint32_t *res)
{
	uint64_t n = 0;

	for (int s = 0; s < SEQS; s++)
		if (x->m.on[s])
			n += blocks(x, len[s] > res[s] ? len[s] : res[s]);
	return n;
}

/* Did the operation's outcome match the model's prediction? */
static void expect(struct ctx *x, int ret, uint64_t need, bool over)
{
	if (need <= x->m.budget)
		ck_assert_msg(ret == 0, "needed %llu of %llu blocks, got %d",
			      (unsigned long long)need, (unsigned long long)x->m.budget, ret);
	else if (!over)
		ck_assert_msg(ret == -ENOMEM, "needed %llu of %llu blocks, got %d",
			      (unsigned long long)need, (unsigned long long)x->m.budget, ret);
	else
		ck_assert(ret == 0 || ret == -ENOMEM);
	if (ret == -ENOMEM)
		x->enomem++;
}

static bool over_budget(const struct ctx *x)
{
	return ct_stats(x->c).pages_created > x->m.budget * x->ppb;
}

static void op_step(struct ctx *x)
{
	struct kvmm_step_entry batch[SEQS];
	uint32_t nlen[SEQS], big[SEQS], n = 0;
	bool over = over_budget(x);
	int ret;

	memcpy(nlen, x->m.len, sizeof(nlen));
	for (uint32_t s = 0; s < SEQS; s++) {
		uint32_t l = x->m.len[s];

		if (!x->m.on[s] || tu_rng_below(&x->r, 2))
			continue;
		if (tu_rng_below(&x->r, 8) == 0 && l) /* roll back */
			l -= (uint32_t)tu_rng_below(&x->r, l) + 1;
		else
			l += (uint32_t)tu_rng_below(&x->r, 2 * x->tpb + 1);
		nlen[s] = l > x->maxt ? x->maxt : l;
		batch[n++] = (struct kvmm_step_entry){s, nlen[s]};
	}
	if (n && tu_rng_below(&x->r, 50) == 0) {
		/* A closed sequence in the batch: -EINVAL, nothing changes. */
		for (uint32_t s = 0; s < SEQS; s++)
			if (!x->m.on[s]) {
				batch[tu_rng_below(&x->r, n)].seq = s;
				ck_assert_int_eq(kvmm_step(x->c, batch, n), -EINVAL);
				return;
			}
	}
	ret = kvmm_step(x->c, batch, n);
	/* A sequence that shrinks keeps its blocks until the step succeeds:
	 * room is needed for the larger of old and new length. */
	for (uint32_t s = 0; s < SEQS; s++)
		if (x->m.len[s] > nlen[s])
			big[s] = x->m.len[s];
		else
			big[s] = nlen[s];
	expect(x, ret, needed_with(x, big, x->m.res), over);
	if (ret)
		return;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = batch[i].seq;

		if (nlen[s] > x->m.len[s])
			ck_assert_int_eq(
				ct_write(x->c, s, x->m.id[s], x->m.len[s], nlen[s] - x->m.len[s]),
				0);
		x->m.len[s] = nlen[s];
	}
}

static void op_reserve(struct ctx *x, uint32_t s)
{
	uint32_t res[SEQS], t = (uint32_t)tu_rng_below(&x->r, x->maxt + 1);
	bool over = over_budget(x);
	int ret;

	memcpy(res, x->m.res, sizeof(res));
	if (t > res[s])
		res[s] = t;
	ret = kvmm_seq_reserve(x->c, s, t);
	expect(x, ret, needed_with(x, x->m.len, res), over);
	if (!ret)
		x->m.res[s] = res[s];
}

static void op_open(struct ctx *x)
{
	uint32_t s, hint = (uint32_t)tu_rng_below(&x->r, x->maxt + 1);
	int ret = kvmm_seq_open(x->c, hint, &s);

	if (x->m.nopen == SEQS) {
		ck_assert_int_eq(ret, -ENOSPC);
		return;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert(s < SEQS && !x->m.on[s]);
	x->m.on[s] = true;
	x->m.id[s] = ++x->m.next_id;
	x->m.len[s] = x->m.res[s] = 0;
	x->m.nopen++;
}

static void op_budget(struct ctx *x)
{
	uint64_t b = 4 + tu_rng_below(&x->r, SEQS * MAXB), left = 0;

	ck_assert_int_eq(kvmm_cache_set_budget(x->c, b * x->c->g.block_bytes, &left), 0);
	x->m.budget = b;
	if (b > x->m.peak_budget)
		x->m.peak_budget = b;
	/* What is left over the budget is no more than what is in use. */
	ck_assert_uint_le(left, ct_stats(x->c).pages_created);
	/* The mapper may have started creating pages under the old budget
	 * since the last look; they are counted now that set_budget has
	 * returned, and from here on the count may only fall while at or
	 * over the new budget. */
	x->m.prev_created = ct_stats(x->c).pages_created;
}

static void check_all(struct ctx *x)
{
	ct_verify(x->c);
	for (uint32_t s = 0; s < SEQS; s++) {
		if (!x->m.on[s]) {
			ck_assert_int_eq(kvmm_seq_len(x->c, s), -EINVAL);
			continue;
		}
		ck_assert_int_eq(kvmm_seq_len(x->c, s), x->m.len[s]);
		ct_check(x->c, s, x->m.id[s], 0, x->m.len[s]);
	}
}

START_TEST(test_model)
{
	struct kvmm_backend *be = ct_backend(CT_PAGE);
	struct ctx x = {0};
	uint64_t n = tu_scaled(100000);
	struct kvmm_cache_stats st;

	x.c = ct_make(be, _i, SEQS, -MAXB, SEQS * MAXB / 2);
	x.tpb = x.c->g.tpb;
	x.ppb = x.c->g.ppb;
	x.maxt = x.c->g.max_tokens;
	x.m.budget = x.m.peak_budget = SEQS * MAXB / 2;
	tu_rng_init(&x.r, tu_seed() * 31 + (uint64_t)_i);
	for (uint64_t op = 0; op < n; op++) {
		uint32_t s = (uint32_t)tu_rng_below(&x.r, SEQS);
		uint64_t k = tu_rng_below(&x.r, 100);

		if (k < 8) {
			op_open(&x);
		} else if (k < 14) {
			if (x.m.on[s]) {
				ck_assert_int_eq(kvmm_seq_close(x.c, s), 0);
				x.m.on[s] = false;
				x.m.nopen--;
			} else {
				ck_assert_int_eq(kvmm_seq_close(x.c, s), -EINVAL);
			}
		} else if (k < 20) {
			if (x.m.on[s])
				op_reserve(&x, s);
		} else if (k < 22) {
			op_budget(&x);
		} else if (k < 25) {
			if (x.m.on[s] && x.m.len[s]) {
				uint32_t t0 = (uint32_t)tu_rng_below(&x.r, x.m.len[s]);

				ct_check(x.c, s, x.m.id[s], t0,
					 (uint32_t)tu_rng_below(&x.r, x.m.len[s] - t0) + 1);
			}
		} else {
			op_step(&x);
		}
		/* Pages are never created beyond the budget: at or over it,
		 * the count can only fall. */
		st = ct_stats(x.c);
		if (x.m.prev_created >= x.m.budget * x.ppb)
			ck_assert_uint_le(st.pages_created, x.m.prev_created);
		else
			ck_assert_uint_le(st.pages_created, x.m.budget * x.ppb);
		ck_assert_uint_le(st.pages_peak, x.m.peak_budget * x.ppb);
		x.m.prev_created = st.pages_created;
		if (op % 5000 == 4999)
			check_all(&x);
	}
	check_all(&x);
	st = ct_stats(x.c);
	/* The run went through pressure, not around it. */
	ck_assert_uint_gt(x.enomem, 0);
	ck_assert_uint_eq(st.alloc_failures >= x.enomem, 1);
	if (_i < 3)
		ck_assert_uint_gt(st.critical_path_driver_calls, 0);
	else
		ck_assert_uint_eq(st.critical_path_driver_calls, 0);
	kvmm_cache_destroy(x.c);
	kvmm_backend_close(be);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("random");

	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc, test_model, 0, 6);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
