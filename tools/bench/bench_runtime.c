// SPDX-License-Identifier: MIT
/*
 * Group "runtime": the KV cache's decode path and mapper.
 *
 *  decode_path_driver_calls  driver calls made by the thread calling
 *                            kvmm_step while 256 sequences decode (backend
 *                            calls minus the mapper's, so the count does
 *                            not trust the cache's own bookkeeping)
 *  step_us_batch256          kvmm_step CPU time per batch of 256 (median)
 *  map_rate_vs_driver        pages/s the mapper maps for new sequences,
 *                            over raw map + set_access per page in the
 *                            same run
 *  kv_utilization[_layout]   used / mapped bytes on a synthetic workload of
 *                            variable-length sequences (Llama-3-8B shape),
 *                            next to vAttention's layer-major 2 MiB scheme
 *                            and 16-token paging computed for the same
 *                            lengths
 * The backend is KVMM_BACKEND (host, cuda, null) or the default one.
 * Utilization is block accounting, identical on every backend, so it runs
 * on the null backend (no bytes: Llama-scale KV does not fit this host).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cache_internal.h"

static int open_backend(enum kvmm_backend_type type, struct kvmm_backend **be)
{
	struct kvmm_backend_config cfg = {.type = type};
	const char *env = getenv("KVMM_BACKEND");

	if (type == KVMM_BACKEND_AUTO && env) {
		if (!strcmp(env, "host"))
			cfg.type = KVMM_BACKEND_HOST;
		else if (!strcmp(env, "cuda"))
			cfg.type = KVMM_BACKEND_CUDA;
		else if (!strcmp(env, "null"))
			cfg.type = KVMM_BACKEND_NULL;
	}
	return kvmm_backend_open(&cfg, be);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	nanosleep(&ts, NULL);
}

static uint64_t total_calls(struct kvmm_backend *be)
{
	return kvmm_be_total_calls(be);
}

/* 256 sequences admitted with random prompts, then decoded one token per
 * step; a 2 ms pause between steps stands for the forward pass. */
static int bench_decode(struct bench_ctx *ctx, struct kvmm_backend *be)
{
	enum { SEQS = 256 };
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = 8, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.max_seqs = SEQS,
		.max_tokens = 4096,
		.budget_bytes = 6ull << 30,
	};
	int steps = ctx->quick ? 48 : 160, ret = 0;
	struct kvmm_step_entry *batch = calloc(SEQS, sizeof(*batch));
	double *us = calloc((size_t)steps, sizeof(*us));
	struct kvmm_cache_stats s0, s1;
	struct kvmm_cache *c = NULL;
	uint64_t rng = 0x5eed, calls0, calls1;
	char name[64];

	if (!batch || !us) {
		ret = -ENOMEM;
		goto out;
	}
	ret = kvmm_cache_create(be, &cfg, &c);
	if (ret)
		goto out;
	for (int i = 0; i < SEQS && !ret; i++) {
		uint32_t prompt = 16 + (uint32_t)(rng_next(&rng) % 241);

		ret = kvmm_seq_open(c, prompt, &batch[i].seq);
		if (!ret)
			ret = kvmm_seq_reserve(c, batch[i].seq, prompt);
		batch[i].len = prompt;
	}
	if (!ret)
		ret = kvmm_step(c, batch, SEQS);
	if (ret)
		goto out;
	kvmm_cache_quiesce(c);
	kvmm_cache_stats(c, &s0);
	calls0 = total_calls(be);
	for (int k = 0; k < steps && !ret; k++) {
		uint64_t t0;

		for (int i = 0; i < SEQS; i++)
			batch[i].len++;
		t0 = bench_now_ns();
		ret = kvmm_step(c, batch, SEQS);
		us[k] = (double)(bench_now_ns() - t0) / 1e3;
		sleep_us(2000);
	}
	kvmm_cache_quiesce(c);
	calls1 = total_calls(be);
	kvmm_cache_stats(c, &s1);
	if (ret)
		goto out;
	snprintf(name, sizeof(name), "runtime-%s", kvmm_backend_name(be));
	bench_header(
		"runtime: steady decode of 256 sequences (forward pass emulated by a 2 ms pause)");
	/* Every driver call in this window came from the mapper or from this
	 * thread, and this thread only called kvmm_step. */
	bench_result(ctx, name, "decode_path_driver_calls",
		     (double)(calls1 - calls0) -
			     (double)(s1.mapper_driver_calls - s0.mapper_driver_calls),
		     "calls", NULL, 0);
	bench_result(ctx, name, "decode_critical_path_driver_calls_stat",
		     (double)(s1.critical_path_driver_calls - s0.critical_path_driver_calls),
		     "calls", NULL, 0);
	bench_result(ctx, name, "decode_mapper_waits", (double)(s1.mapper_waits - s0.mapper_waits),
		     "waits", NULL, 0);
	bench_result(ctx, name, "decode_mapper_pages",
		     (double)(s1.mapper_pages_mapped - s0.mapper_pages_mapped), "pages", NULL, 0);
	{
		double sorted_max;

		bench_median(us, steps); /* sorts */
		sorted_max = us[(steps * 99) / 100];
		bench_result(ctx, name, "step_us_batch256", us[steps / 2], "us", NULL, 0);
		bench_result(ctx, name, "step_us_batch256_p99", sorted_max, "us", NULL, 0);
	}
out:
	kvmm_cache_destroy(c);
	free(batch);
	free(us);
	return ret;
}

/* Raw driver rate: map + set_access per page, as vAttention does. */
static int raw_map_rate(struct kvmm_backend *be, uint32_t n, double *rate)
{
	uint64_t ps = kvmm_backend_page_size(be), va = 0, t0, t1;
	kvmm_phys_t *pages = calloc(n, sizeof(*pages));
	uint32_t i, made = 0;
	int ret;

	if (!pages)
		return -ENOMEM;
	ret = kvmm_be_reserve(be, (uint64_t)n * ps, 0, &va);
	for (; made < n && !ret; made += !ret)
		ret = kvmm_be_create(be, &pages[made]);
	t0 = bench_now_ns();
	for (i = 0; i < n && !ret; i++) {
		ret = kvmm_be_map(be, va + i * ps, pages[i]);
		if (!ret)
			ret = kvmm_be_set_access(be, va + i * ps, ps, KVMM_PROT_RW);
	}
	t1 = bench_now_ns();
	for (uint32_t k = 0; k < made; k++) {
		if (k < i)
			kvmm_be_unmap(be, va + k * ps, ps);
		kvmm_be_destroy(be, pages[k]);
	}
	if (va)
		kvmm_be_release_va(be, va, (uint64_t)n * ps);
	free(pages);
	*rate = n / ((double)(t1 - t0) / 1e9);
	return ret;
}

/* The mapper's rate: sequences admitted with a prompt of per_seq pages
 * each, pages created ahead; from the first admission until all mapped. */
static int mapper_map_rate(struct kvmm_backend *be, uint32_t n, double *rate)
{
	uint32_t per_seq = 16, seq, tpb;
	uint64_t ps = kvmm_backend_page_size(be), t0, t1;
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = 8, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.layout = KVMM_LAYOUT_PAGE_MAJOR,
		.max_seqs = n / per_seq,
		.budget_bytes = (uint64_t)n * ps,
		.reserve_bytes = (uint64_t)n * ps,
		.map_ahead_tokens = 1,
	};
	struct kvmm_cache_stats st;
	struct kvmm_cache *c = NULL;
	int ret;

	tpb = (uint32_t)(ps / (2ull * 8 * 8 * 128 * 2));
	cfg.max_tokens = per_seq * tpb;
	ret = kvmm_cache_create(be, &cfg, &c);
	if (ret)
		return ret;
	t0 = bench_now_ns();
	for (uint32_t i = 0; i < n / per_seq && !ret; i++)
		ret = kvmm_seq_open(c, per_seq * tpb, &seq);
	kvmm_cache_quiesce(c);
	t1 = bench_now_ns();
	kvmm_cache_stats(c, &st);
	kvmm_cache_destroy(c);
	*rate = (double)st.mapper_pages_mapped / ((double)(t1 - t0) / 1e9);
	return ret ? ret : st.mapper_pages_mapped == n ? 0 : -EIO;
}

static int bench_map_rate(struct bench_ctx *ctx, struct kvmm_backend *be)
{
	enum { ROUNDS = 5 };
	uint32_t n = ctx->quick ? 128 : 512;
	int rounds = ctx->quick ? 3 : ROUNDS, ret = 0;
	double raw[ROUNDS], mapper[ROUNDS], r, m;
	char name[64];

	/* Alternate the two, several rounds, medians: both see the same
	 * machine (this one is shared and noisy). */
	for (int k = 0; k < rounds && !ret; k++) {
		ret = raw_map_rate(be, n, &raw[k]);
		if (!ret)
			ret = mapper_map_rate(be, n, &mapper[k]);
	}
	if (ret)
		return ret;
	r = bench_median(raw, rounds);
	m = bench_median(mapper, rounds);
	snprintf(name, sizeof(name), "runtime-%s", kvmm_backend_name(be));
	bench_header("runtime: mapping rate, mapper vs raw map + set_access per page (medians)");
	bench_result(ctx, name, "map_rate_vs_driver", m, "pages/s", "raw map+set_access", r);
	return 0;
}

/* Used / mapped bytes once every sequence is at its length (map-ahead
 * included: the steady state). */
static int utilization(struct kvmm_backend *be, enum kvmm_layout layout, const uint32_t *len,
		       uint32_t n, double *out)
{
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = 32, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.layout = layout,
		.max_seqs = n,
		.max_tokens = 8192,
		.budget_bytes = 1ull << 50,
	};
	struct kvmm_step_entry *batch = calloc(n, sizeof(*batch));
	struct kvmm_cache_stats st;
	struct kvmm_cache *c = NULL;
	int ret = batch ? kvmm_cache_create(be, &cfg, &c) : -ENOMEM;

	for (uint32_t i = 0; i < n && !ret; i++) {
		ret = kvmm_seq_open(c, 0, &batch[i].seq);
		batch[i].len = len[i];
	}
	if (!ret)
		ret = kvmm_step(c, batch, n);
	if (!ret) {
		kvmm_cache_quiesce(c);
		kvmm_cache_stats(c, &st);
		*out = (double)st.bytes_used / (double)st.bytes_mapped;
	}
	kvmm_cache_destroy(c);
	free(batch);
	return ret;
}

static int bench_utilization(struct bench_ctx *ctx)
{
	static const enum kvmm_layout layouts[] = {KVMM_LAYOUT_LAYER_MAJOR, KVMM_LAYOUT_TOKEN_MAJOR,
						   KVMM_LAYOUT_PAGE_MAJOR};
	uint32_t n = 256, len[256];
	uint64_t rng = 0x7a11, used = 0, paged16 = 0, vattn = 0, tok = 128ull << 10;
	struct kvmm_backend *be;
	double u[3], u_def;
	char metric[64];
	int ret;

	/* Lengths spread over 1..8000 tokens: chat turns to long documents. */
	for (uint32_t i = 0; i < n; i++) {
		len[i] = 1 + (uint32_t)(rng_next(&rng) % 8000);
		used += len[i];
		paged16 += (len[i] + 15) / 16 * 16;
		vattn += (len[i] + 1023) / 1024 * 1024; /* 2 MiB per layer and K/V */
	}
	ret = open_backend(KVMM_BACKEND_NULL, &be);
	if (ret)
		return ret;
	for (int i = 0; i < 3 && !ret; i++)
		ret = utilization(be, layouts[i], len, n, &u[i]);
	if (!ret)
		ret = utilization(be, KVMM_LAYOUT_DEFAULT, len, n, &u_def);
	kvmm_backend_close(be);
	if (ret)
		return ret;
	bench_header("runtime: KV utilization (used / mapped), 256 sequences of 1..8000 tokens, "
		     "Llama-3-8B shape, 2 MiB pages");
	bench_result(ctx, "runtime", "kv_utilization", u_def, "fraction", "vattention-2MiB",
		     (double)used / (double)vattn);
	for (int i = 0; i < 3; i++) {
		snprintf(metric, sizeof(metric), "kv_utilization_%s", kvmm_layout_name(layouts[i]));
		for (char *p = metric; *p; p++)
			if (*p == '-')
				*p = '_';
		bench_result(ctx, "runtime", metric, u[i], "fraction", "vattention-2MiB",
			     (double)used / (double)vattn);
	}
	bench_result(ctx, "runtime", "kv_utilization_paged16_computed",
		     (double)used / (double)paged16, "fraction", NULL, 0);
	bench_result(ctx, "runtime", "kv_waste_pages_per_seq_default",
		     (1.0 - u_def) * (double)used * (double)tok / u_def / (2.0 * 1048576) / n,
		     "pages", NULL, 0);
	return 0;
}

static int run_runtime(struct bench_ctx *ctx)
{
	struct kvmm_backend *be;
	int ret = open_backend(KVMM_BACKEND_AUTO, &be);

	if (ret)
		return ret;
	printf("# backend: %s\n", kvmm_backend_name(be));
	ret = bench_decode(ctx, be);
	if (!ret)
		ret = bench_map_rate(ctx, be);
	kvmm_backend_close(be);
	if (!ret)
		ret = bench_utilization(ctx);
	return ret;
}

BENCH_GROUP(runtime, "KV cache: decode path, mapper rate, utilization", run_runtime);
