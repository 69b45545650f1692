// SPDX-License-Identifier: MIT
/*
 * engine.c - the continuous-batching scheduler over kvmm (see engine.h).
 *
 * Token accounting, per admission of a request (the first, and again after
 * each preemption):
 *   target   = input_len + generated  tokens whose KV the prefill rebuilds
 *              (after a preemption that includes the tokens generated so far)
 *   matched  = prefix reused from the cache, attached at admission
 *   computed = tokens run through prefill chunks
 * and matched + computed == target when the prefill ends (checked).  Once
 * decoding, kv_len == input_len + generated - 1 (checked against the
 * runtime's own kvmm_seq_len after every iteration).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_internal.h"
#include "roofline.h"
#include "size.h"
#include "tokens.h"

void sim_engine_defaults(struct sim_engine_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->backend = KVMM_BACKEND_NULL;
	cfg->layout = KVMM_LAYOUT_DEFAULT;
	cfg->time_source = SIM_TIME_MODEL;
	cfg->max_seqs = 256;
	cfg->chunk_tokens = 8192;
	cfg->lookahead = 32;
	cfg->sample_interval_s = 1.0;
	cfg->time_scale = 1.0;
}

/* ---- helpers ------------------------------------------------------------------ */

struct kvmm_ns eng_ns(const struct engine *e, uint32_t i)
{
	return (struct kvmm_ns){.model_id = e->model_id, .tenant_salt = e->t->req[i].tenant};
}

int eng_tokens(struct engine *e, uint32_t i)
{
	const struct sim_request *q = &e->t->req[i];
	struct req *r = &e->r[i];

	if (r->tok)
		return 0;
	r->tok = malloc(sizeof(uint32_t) * ((size_t)q->input_len + q->output_len));
	if (!r->tok)
		return sim_errf(e->err, -ENOMEM, "out of memory for request %u's tokens", i);
	sim_request_input(e->t, i, r->tok);
	sim_request_output(e->t, i, r->tok + q->input_len);
	return 0;
}

/* The prefix cache runs on the simulated clock (hint times, their expiry).
 * It starts a second in, so no time it sees is 0. */
uint64_t eng_clock(void *arg)
{
	const uint64_t origin = 1000000000ull;

	const struct engine *e = arg;

	return origin + (uint64_t)e->now;
}

/* "request 12 (trace line 14)" or "request 12 (generated)". */
const char *eng_req_name(const struct engine *e, uint32_t i, char *buf, size_t len)
{
	uint32_t line = e->t->req[i].line;

	if (line)
		snprintf(buf, len, "request %u (trace line %u)", i, line);
	else
		snprintf(buf, len, "request %u (generated)", i);
	return buf;
}

int eng_kverr(struct engine *e, int ret, const char *what, uint32_t i)
{
	const struct sim_request *q = &e->t->req[i];
	char name[64];

	return sim_errf(e->err, ret, "%s for %s, %u+%u tokens: %s", what,
			eng_req_name(e, i, name, sizeof(name)), q->input_len, q->output_len,
			kvmm_strerror(ret));
}

/* ---- setup ------------------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static int open_cache(struct engine *e)
{
	const struct sim_engine_cfg *cfg = e->cfg;
	struct kvmm_backend_config bc = {.type = cfg->backend};
	struct kvmm_cache_config cc = {0};
	struct sim_trace_summary sum;
	int ret;

	sim_trace_summarize(e->t, &sum);
	ret = kvmm_backend_open(&bc, &e->be);
	if (ret)
		return sim_errf(e->err, ret, "--backend %s: %s",
				cfg->backend == KVMM_BACKEND_NULL   ? "null"
				: cfg->backend == KVMM_BACKEND_HOST ? "host"
				: cfg->backend == KVMM_BACKEND_CUDA ? "cuda"
								    : "auto",
				kvmm_strerror(ret));
	cc.shape.num_layers = e->cfg->model->layers;
	cc.shape.num_kv_heads = e->mg.kv_heads;
	cc.shape.head_dim = e->cfg->model->head_dim;
	cc.shape.elem_size = e->cfg->model->elem_size;
	cc.layout = cfg->layout;
	cc.max_seqs = cfg->max_seqs;
	cc.max_tokens = sum.max_context;
	cc.budget_bytes = cfg->gpu_kv_bytes;
	cc.flags = cfg->mapper ? 0 : KVMM_CACHE_NO_MAPPER;
	ret = kvmm_cache_create(e->be, &cc, &e->c);
	if (ret)
		return sim_errf(e->err, ret,
				"creating the KV cache (--gpu-kv-bytes, --max-seqs): %s",
				kvmm_strerror(ret));
	ret = kvmm_cache_get_info(e->c, &e->info);
	if (ret)
		return sim_errf(e->err, ret, "kvmm_cache_get_info: %s", kvmm_strerror(ret));
	snprintf(e->res->layout, sizeof(e->res->layout), "%s", kvmm_layout_name(e->info.layout));
	e->res->tokens_per_block = e->info.tokens_per_block;
	e->res->block_bytes = e->info.block_bytes;
	/* Impossible budget: the longest request alone must fit. */
	for (uint32_t i = 0; i < e->t->n; i++) {
		const struct sim_request *q = &e->t->req[i];
		/* KV of every token but the last one generated */
		uint64_t kv = (uint64_t)q->input_len + q->output_len - 1;
		uint64_t blocks = (kv + e->info.tokens_per_block - 1) / e->info.tokens_per_block;
		char a[32], b[32], name[64];

		if (cfg->gpu_kv_bytes != SIM_UNLIMITED &&
		    blocks * e->info.block_bytes > cfg->gpu_kv_bytes)
			return sim_errf(
				e->err, -ENOSPC,
				"--gpu-kv-bytes %s cannot hold %s: %llu tokens need %s of KV",
				sim_format_size(cfg->gpu_kv_bytes, a, sizeof(a)),
				eng_req_name(e, i, name, sizeof(name)), (unsigned long long)kv,
				sim_format_size(blocks * e->info.block_bytes, b, sizeof(b)));
	}
	if (e->pol->prefix) {
		struct kvmm_prefix_config pc = {
			.policy = e->pol->evict,
			.attach = e->pol->attach,
			.clock = eng_clock,
			.clock_arg = e,
		};

		/* The null backend's maps and copies are bookkeeping: AUTO is
		 * priced with the machine preset, as the clock charges them
		 * (memops_time), and chooses the same in every run. */
		if (cfg->backend == KVMM_BACKEND_NULL)
			sim_machine_attach_costs(cfg->machine, e->info.page_size, &pc.cost_map_ns,
						 &pc.cost_unmap_ns, &pc.cost_copy_ns);
		ret = kvmm_prefix_enable(e->c, &pc);
		if (ret)
			return sim_errf(e->err, ret, "kvmm_prefix_enable: %s", kvmm_strerror(ret));
	}
	ret = sim_tiers_open(&e->tiers, e->c, cfg, e->pol, e->err);
	if (ret)
		return ret;
	if (cfg->gpu_kernels) {
		e->attn_slots = calloc(cfg->max_seqs, sizeof(*e->attn_slots));
		e->attn_lens = calloc(cfg->max_seqs, sizeof(*e->attn_lens));
		if (!e->attn_slots || !e->attn_lens)
			return sim_errf(e->err, -ENOMEM, "out of memory");
		ret = sim_gpu_attn_open(&e->attn, e->be, e->c, cfg->model, cfg->max_seqs, e->err);
		if (ret)
			return ret;
	}
	return kvmm_cache_stats(e->c, &e->last);
}

static int setup(struct engine *e)
{
	uint32_t n = e->t->n;

	e->r = calloc(n, sizeof(*e->r));
	e->heap = calloc(n, sizeof(*e->heap));
	e->q = calloc(n, sizeof(*e->q));
	e->run = calloc(e->cfg->max_seqs, sizeof(*e->run));
	e->batch = calloc(e->cfg->max_seqs, sizeof(*e->batch));
	e->batch_req = calloc(e->cfg->max_seqs, sizeof(*e->batch_req));
	if (!e->r || !e->heap || !e->q || !e->run || !e->batch || !e->batch_req)
		return sim_errf(e->err, -ENOMEM, "out of memory for %u requests", n);
	e->qcap = n;
	for (uint32_t i = 0; i < n; i++) {
		const struct sim_request *q = &e->t->req[i];

		e->r[i].next = -1;
		e->r[i].hinted_at = -1;
		if (q->arrival_ns >= 0) {
			e->r[i].arrival = (int64_t)((double)q->arrival_ns / e->cfg->time_scale);
			eng_heap_push(e, i);
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct sim_request *q = &e->t->req[i];

		if (q->arrival_ns < 0)
			e->r[q->prev].next = (int32_t)i;
	}
	e->progress_step = n / 200 ? n / 200 : 1;
	return open_cache(e);
}

static void teardown(struct engine *e)
{
	for (uint32_t i = 0; e->r && i < e->t->n; i++) {
		sim_tiers_release(&e->tiers, &e->r[i].rs);
		free(e->r[i].tok);
	}
	sim_gpu_attn_close(e->attn);
	free(e->attn_slots);
	free(e->attn_lens);
	kvmm_cache_destroy(e->c);
	sim_tiers_close(&e->tiers);
	kvmm_backend_close(e->be);
	free(e->r);
	free(e->heap);
	free(e->q);
	free(e->run);
	free(e->batch);
	free(e->batch_req);
}

/* ---- time ----------------------------------------------------------------------- */

/* Memory operations since the last call, in seconds of the virtual clock. */
static double memops_time(struct engine *e)
{
	struct kvmm_cache_stats st;
	const struct sim_machine *g = e->cfg->machine;
	double s;

	if (e->cfg->time_source == SIM_TIME_MEASURED) {
		s = (double)e->kv_ns * 1e-9;
	} else if (kvmm_cache_stats(e->c, &st)) {
		s = 0;
	} else {
		const uint64_t *a = st.backend.calls, *b = e->last.backend.calls;

		s = (double)(a[KVMM_OP_CREATE] - b[KVMM_OP_CREATE]) * g->create_us * 1e-6 +
		    (double)(a[KVMM_OP_MAP] - b[KVMM_OP_MAP]) * g->map_us * 1e-6 +
		    (double)(a[KVMM_OP_UNMAP] - b[KVMM_OP_UNMAP]) * g->unmap_us * 1e-6 +
		    (double)(a[KVMM_OP_DESTROY] - b[KVMM_OP_DESTROY]) * g->unmap_us * 1e-6 +
		    (double)(a[KVMM_OP_COPY] - b[KVMM_OP_COPY]) * (double)e->info.page_size /
			    g->d2d_bw +
		    sim_tiers_spill_time(&e->tiers);
		e->last = st;
	}
	e->kv_ns = 0;
	return s;
}

/* ---- one iteration --------------------------------------------------------------- */

static void sample(struct engine *e, double dt)
{
	struct kvmm_cache_stats st;
	struct sim_mem_sample s = {0};

	if (kvmm_cache_stats(e->c, &st))
		return;
	if (st.bytes_mapped && dt > 0) {
		e->res->kv_util_time += dt * (double)st.bytes_used / (double)st.bytes_mapped;
		e->res->kv_util_span += dt;
	}
	CHECK(e, st.pages_created * e->info.page_size <= st.budget_bytes,
	      "GPU tier over budget: %llu bytes of pages, budget %llu",
	      ULL(st.pages_created * e->info.page_size), ULL(st.budget_bytes));
	sim_tiers_check(&e->tiers, e->res);
	if (e->now < e->next_sample && dt >= 0)
		return;
	s.t = (double)e->now * 1e-9;
	/* In use: own pages of running sequences and the prefix cache's
	 * (free and deferred pages are kept for reuse, not in use). */
	s.bytes[SIM_TIER_GPU] = (st.pages_mapped + st.pages_shared) * e->info.page_size;
	s.gpu_running = st.bytes_mapped;
	s.gpu_cached = st.pages_shared * e->info.page_size;
	sim_tiers_usage(&e->tiers, s.bytes);
	sim_result_add_mem(e->res, &s);
	e->next_sample = e->now + (int64_t)(e->cfg->sample_interval_s * 1e9);
}

static int finish(struct engine *e, uint32_t i)
{
	const struct sim_request *q = &e->t->req[i];
	struct req *r = &e->r[i];
	int ret;

	if (e->pol->prefix) {
		struct kvmm_ns ns = eng_ns(e, i);

		ret = KV(e, kvmm_prefix_insert(e->c, r->seq, &ns, r->tok, r->kv_len));
		if (ret < 0)
			return eng_kverr(e, ret, "kvmm_prefix_insert", i);
	}
	ret = KV(e, kvmm_seq_close(e->c, r->seq));
	if (ret)
		return eng_kverr(e, ret, "kvmm_seq_close", i);
	CHECK(e, r->kv_len == q->input_len + q->output_len - 1,
	      "request %u finished with %u KV tokens, expected %u", i, r->kv_len,
	      q->input_len + q->output_len - 1);
	r->phase = P_DONE;
	e->admit_blocked = false;
	free(r->tok);
	r->tok = NULL;
	sim_hist_add(&e->res->e2e, (double)(e->now - r->arrival) * 1e-9);
	e->res->output_tokens += r->generated;
	e->finished++;
	if (r->next >= 0) {
		struct req *n = &e->r[r->next];

		n->arrival = e->now +
			     (int64_t)((double)e->t->req[r->next].think_ns / e->cfg->time_scale);
		eng_heap_push(e, (uint32_t)r->next);
	}
	return 0;
}

/* Tokens come out at the end of the iteration (now). */
static int emit(struct engine *e)
{
	uint32_t k = 0;
	int ret;

	while (k < e->nrun) {
		uint32_t i = e->run[k];
		const struct sim_request *q = &e->t->req[i];
		struct req *r = &e->r[i];
		bool produced = true;

		if (!r->chunk) {
			k++;
			continue;
		}
		if (r->kv_len < r->target) {
			r->kv_len += r->chunk;
			r->computed += r->chunk;
			e->res->computed_tokens += r->chunk;
			if (r->first_tok)
				e->res->recomputed_tokens += r->chunk;
			produced = r->kv_len == r->target;
			if (e->pol->prefix) {
				struct kvmm_ns ns = eng_ns(e, i);

				ret = KV(e,
					 kvmm_prefix_insert(e->c, r->seq, &ns, r->tok, r->kv_len));
				if (ret < 0)
					return eng_kverr(e, ret, "kvmm_prefix_insert", i);
			}
			if (produced)
				CHECK(e, r->matched + r->computed == r->target,
				      "request %u: prefill covered %u + %u tokens of %u", i,
				      r->matched, r->computed, r->target);
		} else {
			r->kv_len++;
		}
		r->chunk = 0;
		if (produced) {
			r->generated++;
			if (!r->first_tok) {
				/* Hits count at the admission that gives the
				 * first token. */
				e->res->hit_tokens += r->matched;
				for (int t = 0; t < SIM_TIERS; t++)
					e->res->hit_by_tier[t] += r->by_tier[t];
				r->first_tok = e->now;
				sim_samples_add(&e->res->ttft,
						(double)(e->now - r->arrival) * 1e-9);
			} else {
				sim_hist_add(&e->res->itl, (double)(e->now - r->last_tok) * 1e-9);
			}
			r->last_tok = e->now;
		}
		if (r->generated == q->output_len) {
			eng_run_remove(e, i);
			ret = finish(e, i);
			if (ret)
				return ret;
			continue;
		}
		k++;
	}
	return 0;
}

/* The runtime agrees with the scheduler on every length. */
static void check_lengths(struct engine *e)
{
	for (uint32_t k = 0; k < e->nrun; k++) {
		struct req *r = &e->r[e->run[k]];
		int64_t len = kvmm_seq_len(e->c, r->seq);

		CHECK(e, len == (int64_t)r->kv_len,
		      "request %u: kvmm_seq_len %lld, the scheduler's length %u", e->run[k],
		      (long long)len, r->kv_len);
	}
}

/* --gpu: the decode attention of this batch, run on kvmm's kernels,
 * replaces the roofline's. */
static int gpu_decode_time(struct engine *e, const struct sim_time_parts *parts, double *compute)
{
	uint32_t n = 0;
	double s;
	int ret;

	for (uint32_t k = 0; k < e->nrun; k++) {
		const struct req *r = &e->r[e->run[k]];

		if (r->chunk == 1 && r->kv_len >= r->target) {
			e->attn_slots[n] = r->seq;
			e->attn_lens[n++] = r->kv_len + 1;
		}
	}
	ret = sim_gpu_attn_decode(e->attn, e->attn_slots, e->attn_lens, n, &s, e->err);
	if (ret)
		return ret;
	*compute += s - parts->attn_decode_s;
	e->res->attn_decode_s += s - parts->attn_decode_s; /* the roofline's is added below */
	return 0;
}

static int iterate(struct engine *e)
{
	struct sim_work w = {0};
	struct sim_time_parts parts;
	uint32_t budget = e->cfg->chunk_tokens;
	bool preempted = false;
	double compute, mem, xfer, dt;
	int ret;

	ret = eng_grow_running(e, &budget, &preempted);
	if (ret)
		return ret;
	if (!preempted) {
		ret = eng_admit(e, budget);
		if (ret)
			return ret;
	}
	for (uint32_t k = 0; k < e->nrun; k++) {
		struct req *r = &e->r[e->run[k]];

		if (r->chunk)
			sim_work_add(&w, r->chunk, r->kv_len + r->chunk,
				     r->kv_len + r->chunk >= r->target);
	}
	if (!w.new_tokens) {
		uint32_t i = e->qlen ? eng_q_at(e, 0) : 0;
		char name[64];

		if (e->nrun || !e->qlen)
			return sim_errf(e->err, -EDEADLK, "internal: an iteration with no work");
		/* With the mapper thread, memory it is still giving back
		 * may free up: idle a millisecond and try again. */
		if (e->cfg->mapper && e->idle_retries < 1000) {
			e->idle_retries++;
			e->res->idle_waits++;
			e->admit_blocked = false;
			e->now += 1000000;
			usleep(1000);
			return 0;
		}
		return sim_errf(e->err, -ENOSPC,
				"--gpu-kv-bytes: %s cannot be admitted even with nothing else "
				"running",
				eng_req_name(e, i, name, sizeof(name)));
	}
	compute = sim_roofline(e->cfg->model, e->cfg->machine, &w, &parts);
	e->res->attn_decode_s += parts.attn_decode_s;
	e->res->attn_decode_roofline_s += parts.attn_decode_s;
	if (e->attn) {
		ret = gpu_decode_time(e, &parts, &compute);
		if (ret)
			return ret;
	}
	mem = memops_time(e);
	xfer = sim_tiers_take_wait(&e->tiers);
	dt = compute + mem + xfer;
	e->res->compute_s += compute;
	e->res->memops_s += mem;
	e->res->transfer_s += xfer;
	e->now += (int64_t)ceil(dt * 1e9);
	e->res->iterations++;
	e->idle_retries = 0;
	ret = emit(e);
	if (ret)
		return ret;
	ret = sim_tiers_flush(&e->tiers);
	if (ret)
		return sim_errf(e->err, ret, "kvmm_tiers_flush: %s", kvmm_strerror(ret));
	check_lengths(e);
	sample(e, dt);
	return 0;
}

static int loop(struct engine *e)
{
	uint32_t n = e->t->n;
	int ret;

	while (e->finished < n) {
		while (e->nheap && e->r[e->heap[0]].arrival <= e->now) {
			uint32_t i = eng_heap_pop(e);

			e->r[i].phase = P_QUEUED;
			eng_q_push_back(e, i);
		}
		if (!e->nrun && !e->qlen) {
			if (!e->nheap)
				return sim_errf(e->err, -EDEADLK, "internal: nothing left to run");
			e->now = e->r[e->heap[0]].arrival;
			continue;
		}
		if (e->pol->lookahead) {
			ret = eng_lookahead(e);
			if (ret)
				return ret;
		}
		ret = iterate(e);
		if (ret)
			return ret;
		if (e->cfg->progress && (e->finished >= e->progress_next || e->finished == n)) {
			e->cfg->progress(e->cfg->progress_arg, e->pol, e->finished, n,
					 (double)e->now * 1e-9);
			e->progress_next = e->finished + e->progress_step;
		}
	}
	return 0;
}

int sim_engine_run(const struct sim_engine_cfg *cfg, const struct sim_policy *p,
		   struct sim_result *res, struct sim_err *err)
{
	struct engine e = {.cfg = cfg, .pol = p, .t = cfg->trace, .res = res, .err = err};
	uint64_t t0 = wall_ns();
	int ret;

	sim_result_init(res, p);
	sim_model_per_gpu(cfg->model, &e.mg);
	e.model_id = name_hash(cfg->model->name);
	if (!cfg->trace || !cfg->trace->n || !cfg->max_seqs || cfg->chunk_tokens < cfg->max_seqs ||
	    !(cfg->time_scale > 0))
		return sim_errf(err, -EINVAL,
				"bad engine configuration (--chunk-tokens must be >= --max-seqs)");
	ret = setup(&e);
	if (!ret) {
		for (uint32_t i = 0; i < e.t->n; i++)
			res->input_tokens += e.t->req[i].input_len;
		res->requests = e.t->n;
		sample(&e, -1);
		ret = loop(&e);
	}
	if (!ret) {
		struct kvmm_cache_stats st;
		struct kvmm_prefix_stats ps;

		res->finished = e.finished;
		res->duration_s = (double)e.now * 1e-9;
		sample(&e, -1);
		/* Every prompt token of every first admission was reused or
		 * computed; recomputes come on top. */
		CHECK(&e,
		      res->hit_tokens + res->computed_tokens - res->recomputed_tokens ==
			      res->input_tokens,
		      "tokens reused + computed = %llu, prompts hold %llu",
		      ULL(res->hit_tokens + res->computed_tokens - res->recomputed_tokens),
		      ULL(res->input_tokens));
		CHECK(&e, res->finished == res->requests, "%u of %u requests finished",
		      res->finished, res->requests);
		sim_tiers_collect(&e.tiers, res);
		if (!kvmm_cache_stats(e.c, &st)) {
			for (int k = 0; k < KVMM_OP__COUNT; k++)
				res->driver_calls += st.backend.calls[k];
			res->mapper_waits = st.mapper_waits;
		}
		if (p->prefix && !kvmm_prefix_stats(e.c, &ps)) {
			res->attach_alias = ps.attach_alias;
			res->attach_copy = ps.attach_copy;
			res->attach_cost_ns[0] = ps.cost_map_ns;
			res->attach_cost_ns[1] = ps.cost_unmap_ns;
			res->attach_cost_ns[2] = ps.cost_copy_ns;
			for (int k = 0; k < KVMM_EVICT__COUNT; k++)
				res->evictions += ps.evictions[k];
		}
	}
	teardown(&e);
	res->wall_s = (double)(wall_ns() - t0) * 1e-9;
	return ret;
}
