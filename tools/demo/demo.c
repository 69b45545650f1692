// SPDX-License-Identifier: MIT
/*
 * kvmm-demo: a serving loop over one KV cache, as an engine would drive it.
 *
 * Requests (random prompt and output lengths) arrive in a queue; the loop
 * admits them while slots and memory allow (kvmm_seq_open + reserve +
 * writing the prompt's KV), decodes every running sequence one token per
 * step (kvmm_step, then the new token's KV), and retires finished ones
 * after checking their KV reads back (kvmm_seq_close: their pages stay
 * mapped for the next request in the slot).  Halfway through, the budget
 * shrinks by a quarter; the pressure callback says how many pages to give
 * back and the loop preempts the youngest sequences (requeued, as engines
 * do).  A residency line is printed every few steps; the final statistics
 * go to OUT/stats.json and the per-step residency to OUT/residency.csv.
 *
 *   kvmm-demo [--backend auto|host|cuda|null] [--layout NAME] [--budget-mib N]
 *             [--requests N] [--seqs N] [--out DIR] [--seed N]
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvmm.h"

struct req {
	uint32_t id, prompt, output, seq, done_tokens;
	int state; /* 0 queued, 1 running, 2 done */
};

struct demo {
	struct kvmm_backend *be;
	struct kvmm_cache *c;
	struct kvmm_cache_info info;
	struct req *reqs;
	uint32_t nreq, max_seqs, running, done, preempted, admitted;
	bool hold;		   /* no admissions after a preemption until a request ends */
	uint64_t budget, promised; /* bytes: budget, and KV the running ones will reach */
	uint64_t rng, pages_short, bad, checked;
	uint8_t *buf;
};

static uint64_t rnd(struct demo *d)
{
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	return d->rng * 0x2545f4914f6cdd1dull;
}

/* The KV "computed" for a token: deterministic, distinct per (request,
 * token, layer, K/V), so it can be checked when the request finishes. */
static void kv_row(uint8_t *p, uint64_t n, uint32_t id, uint32_t t, uint32_t l, uint32_t kv)
{
	uint64_t x = ((uint64_t)id << 40) ^ ((uint64_t)t << 10) ^ (l << 1) ^ kv;

	for (uint64_t i = 0; i < n; i += 8) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		memcpy(p + i, &x, n - i < 8 ? n - i : 8);
	}
}

static uint64_t row_bytes(const struct demo *d)
{
	const struct kvmm_shape *s = &d->info.shape;

	return (uint64_t)s->num_kv_heads * s->head_dim * s->elem_size;
}

static int write_kv(struct demo *d, struct req *r, uint32_t t0, uint32_t n)
{
	uint64_t rb = row_bytes(d);
	int ret = 0;

	if (kvmm_backend_get_type(d->be) == KVMM_BACKEND_NULL)
		return 0; /* bookkeeping only */
	for (uint32_t l = 0; l < d->info.shape.num_layers && !ret; l++)
		for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
			for (uint32_t t = 0; t < n; t++)
				kv_row(d->buf + t * rb, rb, r->id, t0 + t, l, kv);
			ret = kvmm_seq_write(d->c, r->seq, l, (enum kvmm_kv)kv, t0, n, d->buf);
		}
	return ret;
}

/* Check the first, last and a few random tokens of every layer. */
static void check_kv(struct demo *d, struct req *r, uint32_t len)
{
	uint64_t rb = row_bytes(d);
	uint8_t *want = d->buf + rb;

	if (kvmm_backend_get_type(d->be) == KVMM_BACKEND_NULL)
		return;
	for (int k = 0; k < 6; k++) {
		uint32_t t = k == 0 ? 0 : k == 1 ? len - 1 : (uint32_t)(rnd(d) % len);

		for (uint32_t l = 0; l < d->info.shape.num_layers; l++)
			for (uint32_t kv = 0; kv < 2; kv++) {
				kv_row(want, rb, r->id, t, l, kv);
				if (kvmm_seq_read(d->c, r->seq, l, (enum kvmm_kv)kv, t, 1,
						  d->buf) ||
				    memcmp(d->buf, want, rb))
					d->bad++;
				d->checked += rb;
			}
	}
}

static void on_pressure(void *arg, uint64_t pages)
{
	struct demo *d = arg;

	d->pages_short += pages; /* acted on by the loop, not in here */
}

static int admit(struct demo *d)
{
	for (uint32_t i = 0; i < d->nreq && d->running < d->max_seqs && !d->hold; i++) {
		struct req *r = &d->reqs[i];
		struct kvmm_step_entry e;
		int ret;

		uint64_t need = (uint64_t)(r->prompt + r->output) * d->info.token_bytes;

		if (r->state)
			continue;
		/* Admission control, as engines do: the running requests must be
		 * able to finish within the budget (with 5% for partial pages). */
		if (d->promised + need > d->budget / 20 * 19)
			return 0;
		ret = kvmm_seq_open(d->c, r->prompt, &r->seq);
		if (ret == -ENOSPC)
			return 0;
		if (ret)
			return ret;
		/* Prefill: room for the prompt now, its KV, then its length. */
		ret = kvmm_seq_reserve(d->c, r->seq, r->prompt);
		if (ret == -ENOMEM) {
			kvmm_seq_close(d->c, r->seq);
			return 0; /* waits for memory; arrival order is kept */
		}
		e = (struct kvmm_step_entry){r->seq, r->prompt};
		if (!ret)
			ret = write_kv(d, r, 0, r->prompt);
		if (!ret)
			ret = kvmm_step(d->c, &e, 1);
		if (ret)
			return ret;
		r->state = 1;
		r->done_tokens = 0;
		d->running++;
		d->admitted++;
		d->promised += need;
	}
	return 0;
}

/* Give back pages the budget no longer allows: preempt the youngest. */
static void preempt(struct demo *d)
{
	uint64_t freed = 0; /* bytes of KV given up */

	while (freed < d->pages_short * d->info.page_size && d->running) {
		struct req *y = NULL;

		for (uint32_t i = 0; i < d->nreq; i++)
			if (d->reqs[i].state == 1 &&
			    (!y || d->reqs[i].done_tokens < y->done_tokens))
				y = &d->reqs[i];
		freed += (uint64_t)(y->prompt + y->done_tokens) * d->info.token_bytes;
		d->promised -= (uint64_t)(y->prompt + y->output) * d->info.token_bytes;
		kvmm_seq_close(d->c, y->seq);
		y->state = 0;
		d->running--;
		d->preempted++;
	}
	d->pages_short = 0;
	d->hold = d->running > 0;
}

static void residency(struct demo *d, FILE *csv, uint32_t step, bool print)
{
	struct kvmm_cache_stats st;
	double util;

	kvmm_cache_stats(d->c, &st);
	util = st.bytes_mapped ? (double)st.bytes_used / (double)st.bytes_mapped : 0;
	if (print)
		printf("step %4u  run %2u queue %3u done %3u | pages: created %4llu free %4llu "
		       "mapped %4llu deferred %4llu | util %5.1f%% | waits %llu, step driver calls "
		       "%llu\n",
		       step, d->running, d->nreq - d->done - d->running, d->done,
		       (unsigned long long)st.pages_created, (unsigned long long)st.pages_free,
		       (unsigned long long)st.pages_mapped, (unsigned long long)st.pages_deferred,
		       util * 100, (unsigned long long)st.mapper_waits,
		       (unsigned long long)st.critical_path_driver_calls);
	if (csv)
		fprintf(csv, "%u,%u,%u,%llu,%llu,%llu,%llu,%llu,%.4f\n", step, d->running, d->done,
			(unsigned long long)st.budget_bytes, (unsigned long long)st.pages_created,
			(unsigned long long)st.pages_free, (unsigned long long)st.pages_mapped,
			(unsigned long long)st.pages_deferred, util);
}

static int decode_step(struct demo *d, struct kvmm_step_entry *batch)
{
	uint32_t n = 0;
	int ret;

	for (uint32_t i = 0; i < d->nreq; i++)
		if (d->reqs[i].state == 1)
			batch[n++] = (struct kvmm_step_entry){
				d->reqs[i].seq, d->reqs[i].prompt + d->reqs[i].done_tokens + 1};
	ret = kvmm_step(d->c, batch, n);
	if (ret == -ENOMEM) {
		preempt(d); /* the pressure callback said by how much */
		return 0;
	}
	for (uint32_t i = 0; i < d->nreq && !ret; i++) {
		struct req *r = &d->reqs[i];
		uint32_t len = r->prompt + r->done_tokens;

		if (r->state != 1)
			continue;
		ret = write_kv(d, r, len, 1);
		if (++r->done_tokens < r->output)
			continue;
		check_kv(d, r, len + 1);
		ret = ret ? ret : kvmm_seq_close(d->c, r->seq);
		r->state = 2;
		d->running--;
		d->done++;
		d->hold = false;
		d->promised -= (uint64_t)(r->prompt + r->output) * d->info.token_bytes;
	}
	return ret;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return def;
}

static int parse_layout(const char *s, enum kvmm_layout *l)
{
	for (int i = 0; i <= KVMM_LAYOUT_PAGE_MAJOR; i++)
		if (!strcmp(s, kvmm_layout_name((enum kvmm_layout)i))) {
			*l = (enum kvmm_layout)i;
			return 0;
		}
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct kvmm_backend_config bcfg = {.type = KVMM_BACKEND_AUTO};
	struct kvmm_cache_config cfg = {
		.shape = {.num_layers = 32, .num_kv_heads = 8, .head_dim = 128, .elem_size = 2},
		.max_tokens = 4096,
	};
	const char *bname = arg(argc, argv, "--backend", "auto");
	const char *out = arg(argc, argv, "--out", "build/demo");
	struct demo d = {.rng = strtoull(arg(argc, argv, "--seed", "42"), NULL, 0) | 1};
	struct kvmm_step_entry *batch;
	char path[512], *json;
	uint32_t step = 0, shrink_at;
	FILE *csv, *f;
	int ret, n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: kvmm-demo [--backend auto|host|cuda|null] [--layout NAME] "
			       "[--budget-mib N] [--requests N] [--seqs N] [--out DIR] [--seed "
			       "N]\n");
			return 0;
		}
	if (!strcmp(bname, "host"))
		bcfg.type = KVMM_BACKEND_HOST;
	else if (!strcmp(bname, "cuda"))
		bcfg.type = KVMM_BACKEND_CUDA;
	else if (!strcmp(bname, "null"))
		bcfg.type = KVMM_BACKEND_NULL;
	else if (strcmp(bname, "auto"))
		return fprintf(stderr, "kvmm-demo: --backend: unknown backend '%s'\n", bname), 2;
	if (parse_layout(arg(argc, argv, "--layout", "default"), &cfg.layout))
		return fprintf(stderr, "kvmm-demo: --layout: unknown layout\n"), 2;
	cfg.budget_bytes = strtoull(arg(argc, argv, "--budget-mib", "1024"), NULL, 0) << 20;
	d.nreq = (uint32_t)strtoul(arg(argc, argv, "--requests", "48"), NULL, 0);
	d.max_seqs = (uint32_t)strtoul(arg(argc, argv, "--seqs", "16"), NULL, 0);
	if (!cfg.budget_bytes || !d.nreq || !d.max_seqs || d.max_seqs > 4096)
		return fprintf(stderr, "kvmm-demo: --budget-mib, --requests and --seqs must be > 0 "
				       "(--seqs at most 4096)\n"),
		       2;
	cfg.max_seqs = d.max_seqs;
	d.budget = cfg.budget_bytes;
	cfg.reserve_bytes = cfg.budget_bytes / 4;
	cfg.pressure = on_pressure;
	cfg.pressure_arg = &d;

	ret = kvmm_backend_open(&bcfg, &d.be);
	if (ret)
		return fprintf(stderr, "kvmm-demo: backend %s: %s\n", bname, kvmm_strerror(ret)), 1;
	printf("kvmm-demo: backend %s", kvmm_backend_name(d.be));
	if (kvmm_backend_last_error(d.be)[0])
		printf(" (%s)", kvmm_backend_last_error(d.be));
	ret = kvmm_cache_create(d.be, &cfg, &d.c);
	if (ret) {
		fprintf(stderr, "\nkvmm-demo: cache: %s\n", kvmm_strerror(ret));
		return 1;
	}
	kvmm_cache_get_info(d.c, &d.info);
	printf("\nmodel: %u layers, %u KV heads x %u, %u-byte elements: %llu KiB of KV per token\n"
	       "cache: %s layout, %llu MiB pages, %u tokens per block (%u pages), budget %llu MiB, "
	       "%u slots of %u tokens (%llu GiB of address space)\n\n",
	       d.info.shape.num_layers, d.info.shape.num_kv_heads, d.info.shape.head_dim,
	       d.info.shape.elem_size, (unsigned long long)d.info.token_bytes >> 10,
	       kvmm_layout_name(d.info.layout), (unsigned long long)d.info.page_size >> 20,
	       d.info.tokens_per_block, d.info.pages_per_block,
	       (unsigned long long)cfg.budget_bytes >> 20, d.info.max_seqs, d.info.max_tokens,
	       (unsigned long long)d.info.va_bytes >> 30);

	d.reqs = calloc(d.nreq, sizeof(*d.reqs));
	d.buf = malloc(row_bytes(&d) * (cfg.max_tokens + 2));
	batch = calloc(d.max_seqs, sizeof(*batch));
	if (!d.reqs || !d.buf || !batch)
		return fprintf(stderr, "kvmm-demo: out of memory\n"), 1;
	for (uint32_t i = 0; i < d.nreq; i++)
		d.reqs[i] = (struct req){.id = i + 1,
					 .prompt = 32 + (uint32_t)(rnd(&d) % 992),
					 .output = 16 + (uint32_t)(rnd(&d) % 240)};
	mkdir("build", 0755);
	mkdir(out, 0755);
	snprintf(path, sizeof(path), "%s/residency.csv", out);
	csv = fopen(path, "w");
	if (csv)
		fprintf(csv, "step,running,done,budget_bytes,pages_created,pages_free,pages_mapped,"
			     "pages_deferred,kv_utilization\n");
	shrink_at = 0;
	while (!ret && d.done < d.nreq) {
		ret = admit(&d);
		if (!ret && !d.running) {
			fprintf(stderr, "kvmm-demo: a request does not fit the budget at all\n");
			ret = -ENOMEM;
			break;
		}
		if (!ret)
			ret = decode_step(&d, batch);
		step++;
		if (!shrink_at && d.done >= d.nreq / 2) {
			uint64_t left = 0;

			shrink_at = step;
			d.budget = cfg.budget_bytes / 4 * 3;
			kvmm_cache_set_budget(d.c, d.budget, &left);
			printf("-- step %u: budget %llu -> %llu MiB: free and deferred pages go "
			       "back "
			       "first; %llu pages short%s\n",
			       step, (unsigned long long)cfg.budget_bytes >> 20,
			       (unsigned long long)d.budget >> 20, (unsigned long long)left,
			       left ? ", preempting the youngest requests" : "");
			preempt(&d);
		}
		residency(&d, csv, step, step % 50 == 0);
	}
	residency(&d, csv, step, true);
	if (csv)
		fclose(csv);
	n = kvmm_cache_stats_json(d.c, NULL, 0);
	json = n > 0 ? malloc((size_t)n + 1) : NULL;
	snprintf(path, sizeof(path), "%s/stats.json", out);
	f = fopen(path, "w");
	if (json && f && kvmm_cache_stats_json(d.c, json, (size_t)n + 1) == n)
		fprintf(f, "%s\n", json);
	if (f)
		fclose(f);
	printf("\n%u requests in %u steps (%u admissions, %u preempted); KV checked: %llu bytes, "
	       "%llu mismatches\n",
	       d.done, step, d.admitted, d.preempted, (unsigned long long)d.checked,
	       (unsigned long long)d.bad);
	printf("stats: %s\n", json ? json : "?");
	free(json);
	free(batch);
	free(d.buf);
	free(d.reqs);
	kvmm_cache_destroy(d.c);
	kvmm_backend_close(d.be);
	if (ret)
		fprintf(stderr, "kvmm-demo: %s\n", kvmm_strerror(ret));
	return ret || d.bad ? 1 : 0;
}
