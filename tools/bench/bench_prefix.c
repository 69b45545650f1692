// SPDX-License-Identifier: MIT
/*
 * Group "prefix": the prefix cache.
 *
 * 1. A synthetic multi-turn workload (a few long system prompts shared by
 *    many sessions; every request is its session's history plus a new user
 *    turn; the finished turn, with the reply, is inserted), 16-token blocks
 *    (Llama-3-8B's tokens per 2 MiB page, token-/page-major):
 *    - match_tokens_per_s (matched tokens per second spent in match) and
 *      inserts_per_s of the radix tree, against a vLLM-style index in the
 *      same run: a hash map of chained block hashes, walked block by block
 *      (both unbounded, so both hold the same blocks);
 *    - hit_rate (hit tokens / looked-up tokens) with a capacity of a
 *      quarter of what the workload would keep, leaf-first LRU; and LFU;
 *    - the same match and insert through the public API (kvmm_prefix_*,
 *      with real sequences publishing their blocks) on the null backend.
 * 2. Attaching a 4K-token prefix of Llama-3-8B (32 layers, 8 KV heads, d
 *    128, bf16: 256 blocks of 2 MiB) on the default backend: alias, copy
 *    into blocks already mapped (what the mapper prepares), copy into
 *    unmapped blocks, and AUTO; with the extra memory each needs, next to
 *    an estimate of recomputing the prefix (prefill FLOPs of the model over
 *    the GPU's bf16 tensor peak at 60% utilisation; on a machine without a
 *    GPU, over an H100 SXM's 989 TFLOP/s).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "prefix.h"
#include "prefix_hash.h"
#include "u64map.h"
#ifdef KVMM_HAVE_CUDA
#include "cuda_driver.h"
#endif

#define BLK	 16   /* tokens per block */
#define HIST	 8192 /* a session ends when its history would pass this */
#define NPROMPTS 8

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dull;
}

static uint32_t below(struct rng *r, uint32_t n)
{
	return (uint32_t)(rnd(r) % n);
}

/* ---- the workload --------------------------------------------------------- */

struct session {
	uint32_t *tok;
	uint32_t len;
};

struct workload {
	struct rng r;
	uint32_t *prompts[NPROMPTS];
	uint32_t prompt_len[NPROMPTS];
	struct session *s;
	uint32_t nsessions;
	uint32_t next_tok; /* fresh token ids: every turn's text is new */
	uint32_t req[HIST];
	uint32_t req_len, turn_len; /* request; request + reply */
	uint32_t sess;
};

static void session_start(struct workload *w, struct session *s)
{
	uint32_t p = below(&w->r, NPROMPTS);

	memcpy(s->tok, w->prompts[p], w->prompt_len[p] * sizeof(uint32_t));
	s->len = w->prompt_len[p];
}

static int workload_init(struct workload *w, uint32_t nsessions, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->r.s = seed;
	w->nsessions = nsessions;
	w->next_tok = 1000000;
	for (int p = 0; p < NPROMPTS; p++) {
		/* system prompts of 1-4K tokens */
		w->prompt_len[p] = 1024 + below(&w->r, 3072);
		w->prompts[p] = malloc(w->prompt_len[p] * sizeof(uint32_t));
		if (!w->prompts[p])
			return -ENOMEM;
		for (uint32_t i = 0; i < w->prompt_len[p]; i++)
			w->prompts[p][i] = 100000 * (uint32_t)p + i;
	}
	w->s = calloc(nsessions, sizeof(*w->s));
	if (!w->s)
		return -ENOMEM;
	for (uint32_t i = 0; i < nsessions; i++) {
		w->s[i].tok = malloc(HIST * sizeof(uint32_t));
		if (!w->s[i].tok)
			return -ENOMEM;
		session_start(w, &w->s[i]);
	}
	return 0;
}

static void workload_free(struct workload *w)
{
	for (int p = 0; p < NPROMPTS; p++)
		free(w->prompts[p]);
	for (uint32_t i = 0; w->s && i < w->nsessions; i++)
		free(w->s[i].tok);
	free(w->s);
}

/* The next request (w->req, w->req_len) and its finished turn (the
 * session's history grows to w->turn_len tokens). */
static void workload_next(struct workload *w)
{
	struct session *s;
	uint32_t user = 32 + below(&w->r, 224), reply = 64 + below(&w->r, 448);

	/* a skewed choice: recent sessions come back more often */
	w->sess = below(&w->r, 4) ? below(&w->r, w->nsessions / 8 + 1) : below(&w->r, w->nsessions);
	s = &w->s[w->sess];
	if (s->len + user + reply > HIST)
		session_start(w, s);
	for (uint32_t i = 0; i < user + reply; i++)
		s->tok[s->len + i] = w->next_tok++;
	w->req_len = s->len + user;
	memcpy(w->req, s->tok, w->req_len * sizeof(uint32_t));
	s->len += user + reply;
	w->turn_len = s->len;
}

/* ---- the baseline: chained block hashes in a hash map ------------------------ */

struct hash_index {
	struct u64map map;
	uint64_t seed;
};

static uint32_t hash_match(struct hash_index *x, const uint32_t *tok, uint32_t n)
{
	uint64_t h = x->seed;
	uint32_t b;

	for (b = 0; b < n / BLK; b++) {
		h = kvmm_hash_tokens(h, tok + (size_t)b * BLK, BLK);
		if (!u64map_get(&x->map, h == U64MAP_EMPTY ? h - 1 : h, NULL))
			break;
	}
	return b * BLK;
}

static void hash_insert(struct hash_index *x, const uint32_t *tok, uint32_t n, uint64_t *id)
{
	uint64_t h = x->seed;

	for (uint32_t b = 0; b < n / BLK; b++) {
		h = kvmm_hash_tokens(h, tok + (size_t)b * BLK, BLK);
		if (!u64map_get(&x->map, h == U64MAP_EMPTY ? h - 1 : h, NULL))
			u64map_put(&x->map, h == U64MAP_EMPTY ? h - 1 : h, (*id)++);
	}
}

/* ---- the radix tree on the workload --------------------------------------- */

static void put_none(void *arg, uint64_t id)
{
	(void)arg;
	(void)id;
}

struct tree_run {
	uint64_t match_ns, insert_ns, matches, inserts, lookup_tokens, hit_tokens, blocks;
	uint64_t base_match_ns, base_insert_ns, base_hit_tokens;
};

static const struct kvmm_ns bench_ns = {.model_id = 1};

/*
 * The tree on the workload.  With from_match, as an engine runs it: the
 * request's match pins its prefix (pt_match_pin) and the finished turn is
 * inserted from there (pt_insert_from), then unpinned; otherwise the match
 * is a probe and the insert walks from the root (pt_insert).
 */
static int run_tree(uint32_t nsessions, uint64_t nreq, enum kvmm_evict_policy pol,
		    uint64_t max_blocks, bool baseline, bool from_match, struct tree_run *out)
{
	struct pt_config cfg = {
		.tokens_per_block = BLK, .policy = pol, .max_blocks = max_blocks, .put = put_none};
	struct hash_index hx = {.seed = kvmm_hash_ns(&bench_ns)};
	static uint64_t ids[HIST / BLK];
	struct pt_pin pin = {0};
	struct workload w;
	struct pt_tree *t;
	struct pt_stats st;
	uint64_t next_id = 1, hid = 1;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = workload_init(&w, nsessions, 0x5eed);
	if (!ret)
		ret = pt_create(&cfg, &t);
	if (ret) {
		workload_free(&w);
		return ret;
	}
	u64map_init(&hx.map);
	for (uint64_t i = 0; i < nreq; i++) {
		uint32_t m;
		uint64_t t0, t1, t2;
		int r;

		workload_next(&w);
		t0 = bench_now_ns();
		if (from_match)
			pt_match_pin(t, &bench_ns, w.req, w.req_len, &pin, &m);
		else
			pt_match(t, &bench_ns, w.req, w.req_len, NULL, &m);
		t1 = bench_now_ns();
		out->match_ns += t1 - t0;
		out->hit_tokens += m;
		out->lookup_tokens += w.req_len;
		for (uint32_t b = 0; b < w.turn_len / BLK; b++)
			ids[b] = next_id + b;
		t1 = bench_now_ns();
		if (from_match) {
			uint32_t lo = pin.nblocks;

			r = pt_insert_from(t, &bench_ns, &pin, w.s[w.sess].tok, w.turn_len, lo,
					   ids + lo, NULL);
			pt_unpin(t, &pin); /* the request is done */
		} else {
			r = pt_insert(t, &bench_ns, w.s[w.sess].tok, w.turn_len, ids, NULL, NULL);
		}
		t2 = bench_now_ns();
		if (r < 0) {
			ret = r;
			break;
		}
		next_id += w.turn_len / BLK;
		out->insert_ns += t2 - t1;
		if (baseline) {
			t0 = bench_now_ns();
			out->base_hit_tokens += hash_match(&hx, w.req, w.req_len);
			t1 = bench_now_ns();
			hash_insert(&hx, w.s[w.sess].tok, w.turn_len, &hid);
			t2 = bench_now_ns();
			out->base_match_ns += t1 - t0;
			out->base_insert_ns += t2 - t1;
		}
	}
	pt_stats(t, &st);
	out->matches = out->inserts = nreq;
	out->blocks = st.blocks_cached;
	pt_destroy(t);
	u64map_free(&hx.map);
	workload_free(&w);
	return ret;
}

/* ---- the public API on the null backend ------------------------------------- */

struct api_run {
	uint64_t match_ns, insert_ns, n, hit_tokens, attached;
	/* the same requests' matches replayed on the finished cache, through
	 * the API and through the tree (with a handle), in alternate passes */
	uint64_t replay_api_ns, replay_tree_ns, replay_tokens;
};

/* Replay the requests' matches on c's tree: API (kvmm_prefix_match and
 * release) or the tree's own match with a handle.  Nothing else runs in
 * between, so both see the caches alike: the difference is the API's. */
static int replay_matches(struct kvmm_cache *c, uint32_t nsessions, uint64_t nreq, bool api,
			  uint64_t *ns, uint64_t *tokens)
{
	struct pt_tree *t = kvmm_prefix_of(c)->tree;
	struct workload w;
	int ret = workload_init(&w, nsessions, 0x5eed);

	for (uint64_t i = 0; !ret && i < nreq; i++) {
		struct kvmm_prefix_handle *h;
		struct pt_handle *th;
		uint32_t m;
		uint64_t t0;

		workload_next(&w);
		t0 = bench_now_ns();
		if (api) {
			ret = kvmm_prefix_match(c, &bench_ns, w.req, w.req_len, &h, &m);
			kvmm_prefix_release(c, h);
		} else {
			ret = pt_match(t, &bench_ns, w.req, w.req_len, &th, &m);
			pt_release(t, th);
		}
		*ns += bench_now_ns() - t0;
		*tokens += m;
	}
	workload_free(&w);
	return ret;
}

/*
 * The public API on the workload: per request a match (and release), a
 * sequence for the turn, the turn's blocks published by an insert.  With
 * attach, as an engine runs it: the match is attached (AUTO) before the
 * rest of the turn is computed; otherwise the sequence computes the whole
 * turn itself.
 */
static int run_api(uint32_t nsessions, uint64_t nreq, bool attach, struct api_run *out)
{
	struct kvmm_backend_config bc = {.type = KVMM_BACKEND_NULL};
	struct kvmm_cache_config cc = {
		.shape = {.num_layers = 32, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.layout = KVMM_LAYOUT_PAGE_MAJOR,
		.max_seqs = 4,
		.max_tokens = HIST,
		.flags = KVMM_CACHE_NO_MAPPER,
	};
	struct kvmm_backend *be = NULL;
	struct kvmm_cache *c = NULL;
	struct workload w;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = workload_init(&w, nsessions, 0x5eed);
	/* room for everything: eviction is measured by the tree run */
	cc.budget_bytes = (nreq * 1024 / BLK + 4 * HIST / BLK) * (2ull << 20);
	if (!ret)
		ret = kvmm_backend_open(&bc, &be);
	if (!ret)
		ret = kvmm_cache_create(be, &cc, &c);
	if (!ret)
		ret = kvmm_prefix_enable(c, NULL);
	for (uint64_t i = 0; !ret && i < nreq; i++) {
		struct kvmm_prefix_handle *h;
		struct kvmm_step_entry e;
		uint64_t t0, t1;
		uint32_t m;

		workload_next(&w);
		t0 = bench_now_ns();
		ret = kvmm_prefix_match(c, &bench_ns, w.req, w.req_len, &h, &m);
		t1 = bench_now_ns();
		out->match_ns += t1 - t0;
		out->hit_tokens += m;
		/* the turn runs in a sequence, which then publishes its blocks */
		if (!ret)
			ret = kvmm_seq_open(c, w.turn_len, &e.seq);
		if (!ret && attach && h) {
			ret = kvmm_seq_attach_prefix(c, e.seq, h, KVMM_ATTACH_AUTO);
			out->attached += !ret;
		}
		t0 = bench_now_ns();
		kvmm_prefix_release(c, h);
		out->match_ns += bench_now_ns() - t0;
		if (!ret)
			ret = kvmm_seq_reserve(c, e.seq, w.turn_len);
		e.len = w.turn_len;
		if (!ret)
			ret = kvmm_step(c, &e, 1);
		t0 = bench_now_ns();
		if (!ret)
			ret = kvmm_prefix_insert(c, e.seq, &bench_ns, w.s[w.sess].tok, w.turn_len);
		t1 = bench_now_ns();
		out->insert_ns += t1 - t0;
		if (ret >= 0)
			ret = kvmm_seq_close(c, e.seq);
		out->n++;
	}
	for (int pass = 0; ret >= 0 && attach && pass < 4; pass++) {
		uint64_t tok = 0;

		ret = replay_matches(c, nsessions, nreq, pass % 2,
				     pass % 2 ? &out->replay_api_ns : &out->replay_tree_ns, &tok);
		out->replay_tokens = tok;
	}
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
	workload_free(&w);
	return ret;
}

/* ---- attaching 4K tokens ---------------------------------------------------- */

/* Llama-3-8B prefill FLOPs for T tokens: 2 per weight per token over the
 * layers' weights (q, k, v, o, and the 3 MLP matrices), plus causal
 * attention (QK^T and PV over T^2/2 pairs per head). */
static double llama8b_prefill_flops(double T)
{
	const double d = 4096, kv = 1024, ffn = 14336, L = 32, heads = 32, hd = 128;
	double weights = L * (d * d + 2 * d * kv + d * d + 3 * d * ffn);

	return 2 * weights * T + L * heads * 2 * 2 * hd * T * T / 2;
}

/* bf16 dense tensor FLOP/s of the GPU behind be, or of an H100 SXM. */
static double gpu_peak(struct kvmm_backend *be, struct bench_ctx *ctx, bool *measured)
{
	*measured = false;
#ifdef KVMM_HAVE_CUDA
	CUcontext cu;
	CUdevice dev;
	const struct kvmm_cuda_driver *drv = kvmm_cuda_backend_driver(be, &cu, &dev);
	int sms = 0, khz = 0, major = 0;
	char name[128];

	if (drv &&
	    !drv->cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev) &&
	    !drv->cuDeviceGetAttribute(&khz, CU_DEVICE_ATTRIBUTE_CLOCK_RATE, dev) &&
	    !drv->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)) {
		if (!drv->cuDeviceGetName(name, sizeof(name), dev))
			bench_add_machine(ctx, name);
		*measured = true;
		/* dense bf16 tensor FLOPs per SM per clock: 4096 on Hopper,
		 * 2048 on Ampere/Ada */
		return (double)sms * khz * 1e3 * (major >= 9 ? 4096 : 2048);
	}
#endif
	(void)be;
	(void)ctx;
	return 989e12;
}

struct attach_res {
	double us[4];	     /* alias, copy warm, copy cold, auto */
	double extra_mib[4]; /* own memory the attach made the sequence hold */
	int auto_mode;
};

/* Memory the attached prefix takes in the sequence on top of the cache:
 * its own blocks under the prefix. */
static double own_mib(struct kvmm_cache *c, uint32_t s, uint32_t ntok)
{
	int n = kvmm_seq_own_mapped(c, s, 0, kvmm_blocks_for(c, ntok));

	return n < 0 ? NAN : (double)n * c->g.block_bytes / (1 << 20);
}

static int attach_once(struct kvmm_cache *c, struct kvmm_prefix_handle *h, uint32_t ntok,
		       enum kvmm_attach_mode mode, bool premap, double *us, double *mib,
		       int *chosen)
{
	uint64_t budget = c->cfg.budget_bytes, t0;
	uint32_t s;
	int ret;

	/* Start from no idle pages: deferred blocks of an earlier run would
	 * sit where the prefix goes and make an alias pay their unmaps. */
	kvmm_cache_set_budget(c, (uint64_t)kvmm_blocks_for(c, ntok) * c->g.block_bytes, NULL);
	kvmm_cache_set_budget(c, budget, NULL);
	kvmm_cache_quiesce(c);
	ret = kvmm_seq_open(c, 0, &s);

	/* what the mapper does for a sequence opened with its prompt length,
	 * off the critical path */
	if (!ret && premap)
		ret = kvmm_seq_reserve(c, s, ntok);
	if (ret)
		return ret;
	t0 = bench_now_ns();
	ret = kvmm_seq_attach_prefix(c, s, h, mode);
	*us = (bench_now_ns() - t0) / 1e3;
	*mib = own_mib(c, s, ntok);
	if (chosen)
		*chosen = kvmm_bte(c, s, 0)->flags & BT_RO ? KVMM_ATTACH_ALIAS : KVMM_ATTACH_COPY;
	kvmm_seq_close(c, s);
	return ret;
}

static int run_attach(struct bench_ctx *ctx, struct kvmm_backend *be, enum kvmm_layout layout,
		      uint32_t ntok, struct attach_res *res)
{
	struct kvmm_cache_config cc = {
		.shape = {.num_layers = 32, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.layout = layout,
		.max_seqs = 4,
		.max_tokens = ntok,
		/* what is mapped where is the measurement's to decide */
		.flags = KVMM_CACHE_NO_MAPPER,
	};
	const int reps = ctx->quick ? 2 : 5;
	struct kvmm_cache *c = NULL;
	struct kvmm_prefix_handle *h = NULL;
	uint32_t *tok = malloc(ntok * sizeof(uint32_t)), a, m;
	uint64_t kv_bytes = (uint64_t)ntok * 32 * 2 * 8 * 128 * 2;
	double v[4][8], x[4] = {0};
	int ret = tok ? 0 : -ENOMEM;

	/* the cached prefix, one copy of it, and room to spare */
	cc.budget_bytes = 2 * kv_bytes + kv_bytes / 2;
	if (!ret)
		ret = kvmm_cache_create(be, &cc, &c);
	if (!ret)
		ret = kvmm_prefix_enable(c, NULL);
	for (uint32_t i = 0; tok && i < ntok; i++)
		tok[i] = 7 + i;
	if (!ret)
		ret = kvmm_seq_open(c, ntok, &a);
	if (!ret)
		ret = kvmm_seq_reserve(c, a, ntok);
	if (!ret)
		ret = kvmm_step(c, &(struct kvmm_step_entry){.seq = a, .len = ntok}, 1);
	if (!ret)
		ret = kvmm_prefix_insert(c, a, NULL, tok, ntok) == (int)ntok ? 0 : -EIO;
	if (!ret)
		ret = kvmm_seq_close(c, a);
	if (!ret)
		ret = kvmm_prefix_match(c, NULL, tok, ntok, &h, &m);
	if (!ret && m != ntok)
		ret = -EIO;
	for (int r = 0; r < reps && !ret; r++) {
		ret = attach_once(c, h, ntok, KVMM_ATTACH_ALIAS, false, &v[0][r], &x[0], NULL);
		if (!ret)
			ret = attach_once(c, h, ntok, KVMM_ATTACH_COPY, true, &v[1][r], &x[1],
					  NULL);
		if (!ret)
			ret = attach_once(c, h, ntok, KVMM_ATTACH_COPY, false, &v[2][r], &x[2],
					  NULL);
		if (!ret)
			ret = attach_once(c, h, ntok, KVMM_ATTACH_AUTO, true, &v[3][r], &x[3],
					  &res->auto_mode);
	}
	for (int k = 0; k < 4 && !ret; k++) {
		res->us[k] = bench_median(v[k], reps);
		res->extra_mib[k] = x[k];
	}
	kvmm_prefix_release(c, h);
	kvmm_cache_destroy(c);
	free(tok);
	return ret;
}

/* ---- the group ------------------------------------------------------------- */

/* Whether part `what` of the group was asked for: `kvmm-bench prefix
 * [tree,hit,api,attach]` (a comma-separated list; none: all). */
static bool want_part(const struct bench_ctx *ctx, const char *what)
{
	size_t n = strlen(what);

	if (ctx->argc < 1)
		return true;
	for (const char *p = ctx->argv[0]; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, what, n) && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

/* 1. the tree on the workload, unbounded, next to the hash index in the
 * same run; rates are medians over repetitions (this may share its
 * cores).  Inserts as an engine makes them (from the request's match)
 * and, for comparison, walking from the root. */
static int part_tree(struct bench_ctx *ctx, uint32_t nsessions, uint64_t nreq)
{
	const int reps = ctx->quick ? 1 : 5;
	struct tree_run root, from;
	double rate[7][5];
	int ret;

	for (int r = 0; r < reps; r++) {
		ret = run_tree(nsessions, nreq, KVMM_EVICT_LRU, 0, true, false, &root);
		if (!ret)
			ret = run_tree(nsessions, nreq, KVMM_EVICT_LRU, 0, true, true, &from);
		if (ret)
			return ret;
		rate[0][r] = root.hit_tokens / (root.match_ns / 1e9);
		rate[1][r] = root.base_hit_tokens / (root.base_match_ns / 1e9);
		rate[2][r] = from.inserts / (from.insert_ns / 1e9);
		rate[3][r] = from.inserts / (from.base_insert_ns / 1e9);
		rate[4][r] = root.inserts / (root.insert_ns / 1e9);
		rate[5][r] = root.inserts / (root.base_insert_ns / 1e9);
		rate[6][r] = from.hit_tokens / (from.match_ns / 1e9);
	}
	bench_header("prefix: radix tree on a multi-turn workload (16-token blocks)");
	printf("# %llu requests over %u sessions and %d system prompts; %llu blocks cached; "
	       "mean request %.0f tokens, mean hit %.0f tokens; medians of %d runs\n",
	       (unsigned long long)nreq, nsessions, NPROMPTS, (unsigned long long)root.blocks,
	       (double)root.lookup_tokens / nreq, (double)root.hit_tokens / nreq, reps);
	{
		double m = bench_median(rate[0], reps), mb = bench_median(rate[1], reps);
		double i = bench_median(rate[2], reps), ib = bench_median(rate[3], reps);
		double ir = bench_median(rate[4], reps), irb = bench_median(rate[5], reps);
		double mp = bench_median(rate[6], reps);
		double hit = (double)root.hit_tokens / root.matches;

		bench_result(ctx, "prefix-tree", "match_tokens_per_s", m, "tokens/s", "hash_chain",
			     mb);
		bench_result(ctx, "prefix-tree", "match_pin_tokens_per_s", mp, "tokens/s",
			     "hash_chain", mb);
		bench_result(ctx, "prefix-tree", "inserts_per_s", i, "1/s", "hash_chain", ib);
		bench_result(ctx, "prefix-tree", "inserts_root_per_s", ir, "1/s", "hash_chain",
			     irb);
		bench_result(ctx, "prefix-tree", "match_us", hit / m * 1e6, "us", "hash_chain",
			     hit / mb * 1e6);
		bench_result(ctx, "prefix-tree", "insert_us", 1e6 / i, "us", "hash_chain",
			     1e6 / ib);
	}
	return 0;
}

/* The hit rate with a quarter of the room the workload would keep (inserts
 * from the root, as before pins existed: the same order of accesses).  And
 * the engine's inserts in that steady state, where evictions free nodes
 * as fast as inserts make them, next to the unbounded run's. */
static int part_hit(struct bench_ctx *ctx, uint32_t nsessions, uint64_t nreq)
{
	struct tree_run all, lru, lfu, capped, grown;
	int ret;

	ret = run_tree(nsessions, nreq, KVMM_EVICT_LRU, 0, false, false, &all);
	if (!ret)
		ret = run_tree(nsessions, nreq, KVMM_EVICT_LRU, all.blocks / 4, false, false, &lru);
	if (!ret)
		ret = run_tree(nsessions, nreq, KVMM_EVICT_LFU, all.blocks / 4, false, false, &lfu);
	if (!ret)
		ret = run_tree(nsessions, nreq, KVMM_EVICT_LRU, 0, false, true, &grown);
	if (!ret)
		ret = run_tree(nsessions, nreq, KVMM_EVICT_LRU, all.blocks / 4, false, true,
			       &capped);
	if (ret)
		return ret;
	bench_result(ctx, "prefix-tree", "inserts_capped_per_s",
		     capped.inserts / (capped.insert_ns / 1e9), "1/s", "unbounded",
		     grown.inserts / (grown.insert_ns / 1e9));
	bench_result(ctx, "prefix-tree", "hit_rate", (double)lru.hit_tokens / lru.lookup_tokens,
		     "fraction", "unbounded", (double)all.hit_tokens / all.lookup_tokens);
	bench_result(ctx, "prefix-tree", "hit_rate_lfu", (double)lfu.hit_tokens / lfu.lookup_tokens,
		     "fraction", "lru", (double)lru.hit_tokens / lru.lookup_tokens);
	return 0;
}

/* The public API, with sequences publishing real blocks (null backend),
 * next to the tree alone on the same requests (its match a probe, as the
 * API's match is with the handle's pin). */
static int part_api(struct bench_ctx *ctx, uint32_t nsessions, uint64_t napi)
{
	const int reps = ctx->quick ? 1 : 3;
	struct tree_run root, from;
	struct api_run cold, eng;
	double rate[8][3];
	int ret;

	for (int r = 0; r < reps; r++) {
		ret = run_api(nsessions, napi, true, &eng);
		if (ret >= 0)
			ret = run_api(nsessions, napi, false, &cold);
		if (ret >= 0)
			ret = run_tree(nsessions, napi, KVMM_EVICT_LRU, 0, false, false, &root);
		if (!ret)
			ret = run_tree(nsessions, napi, KVMM_EVICT_LRU, 0, false, true, &from);
		if (ret < 0)
			return ret;
		rate[0][r] = eng.hit_tokens / (eng.match_ns / 1e9);
		rate[1][r] = root.hit_tokens / (root.match_ns / 1e9);
		rate[2][r] = eng.n / (eng.insert_ns / 1e9);
		rate[3][r] = from.inserts / (from.insert_ns / 1e9);
		rate[4][r] = cold.n / (cold.insert_ns / 1e9);
		rate[5][r] = root.inserts / (root.insert_ns / 1e9);
		rate[6][r] = 2 * eng.replay_tokens / (eng.replay_api_ns / 1e9);
		rate[7][r] = 2 * eng.replay_tokens / (eng.replay_tree_ns / 1e9);
	}
	printf("# public API: the first %llu requests, with a sequence per turn (%llu attached "
	       "their match); medians of %d runs\n",
	       (unsigned long long)napi, (unsigned long long)eng.attached, reps);
	bench_result(ctx, "prefix-api-null", "api_match_tokens_per_s", bench_median(rate[0], reps),
		     "tokens/s", "tree", bench_median(rate[1], reps));
	bench_result(ctx, "prefix-api-null", "api_inserts_per_s", bench_median(rate[2], reps),
		     "1/s", "tree", bench_median(rate[3], reps));
	bench_result(ctx, "prefix-api-null", "api_inserts_noattach_per_s",
		     bench_median(rate[4], reps), "1/s", "tree_root", bench_median(rate[5], reps));
	bench_result(ctx, "prefix-api-null", "api_match_replay_tokens_per_s",
		     bench_median(rate[6], reps), "tokens/s", "tree_handle_replay",
		     bench_median(rate[7], reps));
	return 0;
}

/* 2. attaching a 4K-token prefix on the default backend */
static int part_attach(struct bench_ctx *ctx, uint32_t ntok)
{
	struct kvmm_backend_config bc = {.type = KVMM_BACKEND_AUTO};
	const char *env = getenv("KVMM_BACKEND");
	struct kvmm_backend *be = NULL;
	struct attach_res at;
	char name[64], base[64], metric[64];
	double recompute, peak;
	bool measured;
	int ret;

	if (env && !strcmp(env, "host"))
		bc.type = KVMM_BACKEND_HOST;
	ret = kvmm_backend_open(&bc, &be);
	if (ret)
		return ret;
	peak = gpu_peak(be, ctx, &measured);
	recompute = llama8b_prefill_flops(ntok) / (0.6 * peak) * 1e6;
	snprintf(base, sizeof(base), measured ? "recompute_est" : "recompute_est_h100");
	for (enum kvmm_layout l = KVMM_LAYOUT_LAYER_MAJOR; l <= KVMM_LAYOUT_PAGE_MAJOR; l++) {
		static const char *const ln[] = {"", "layer", "token", "page"};

		ret = run_attach(ctx, be, l, ntok, &at);
		if (ret)
			break;
		snprintf(name, sizeof(name), "prefix-attach-%s-%s", kvmm_backend_name(be), ln[l]);
		if (l == KVMM_LAYOUT_LAYER_MAJOR)
			bench_header("prefix: attaching a Llama-3-8B prefix (ratio: recompute / "
				     "attach)");
		printf("# %s-major, %u tokens = %.0f MiB of KV; recompute estimate %.0f us "
		       "(%.3g FLOPs at 60%% of %.0f TFLOP/s%s); AUTO chose %s\n",
		       ln[l], ntok, (double)ntok * 32 * 2 * 8 * 128 * 2 / (1 << 20), recompute,
		       llama8b_prefill_flops(ntok), peak / 1e12, measured ? "" : ", an H100 SXM",
		       at.auto_mode == KVMM_ATTACH_ALIAS ? "alias" : "copy");
		snprintf(metric, sizeof(metric), "attach%uk_alias_us", ntok / 1024);
		bench_result_ratio(ctx, name, metric, at.us[0], "us", base, recompute,
				   recompute / at.us[0]);
		snprintf(metric, sizeof(metric), "attach%uk_copy_us", ntok / 1024);
		bench_result_ratio(ctx, name, metric, at.us[1], "us", base, recompute,
				   recompute / at.us[1]);
		snprintf(metric, sizeof(metric), "attach%uk_copy_cold_us", ntok / 1024);
		bench_result_ratio(ctx, name, metric, at.us[2], "us", base, recompute,
				   recompute / at.us[2]);
		snprintf(metric, sizeof(metric), "attach%uk_auto_us", ntok / 1024);
		bench_result_ratio(ctx, name, metric, at.us[3], "us", base, recompute,
				   recompute / at.us[3]);
		snprintf(metric, sizeof(metric), "attach%uk_alias_extra_mib", ntok / 1024);
		bench_result(ctx, name, metric, at.extra_mib[0], "MiB", NULL, 0);
		snprintf(metric, sizeof(metric), "attach%uk_copy_extra_mib", ntok / 1024);
		bench_result(ctx, name, metric, at.extra_mib[1], "MiB", NULL, 0);
	}
	kvmm_backend_close(be);
	return ret;
}

static int run_prefix(struct bench_ctx *ctx)
{
	uint32_t nsessions = ctx->quick ? 200 : 1000;
	uint64_t nreq = ctx->quick ? 10000 : 100000, napi = ctx->quick ? 2000 : 20000;
	int ret = 0;

	if (want_part(ctx, "tree"))
		ret = part_tree(ctx, nsessions, nreq);
	if (!ret && want_part(ctx, "hit"))
		ret = part_hit(ctx, nsessions, nreq);
	if (!ret && want_part(ctx, "api"))
		ret = part_api(ctx, nsessions, napi);
	if (!ret && want_part(ctx, "attach"))
		ret = part_attach(ctx, ctx->quick ? 1024 : 4096);
	return ret;
}

BENCH_GROUP(prefix, "prefix cache: tree throughput, hit rate, attach alias vs copy", run_prefix);
