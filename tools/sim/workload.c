// SPDX-License-Identifier: MIT
/* workload.c - multi-turn conversation generator (see workload.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokens.h"
#include "workload.h"

/* ---- random numbers: splitmix64 stream, deterministic per seed ---------- */
struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	r->s += 0x9e3779b97f4a7c15ull;
	return sim_mix64(r->s);
}

/* Uniform in (0, 1). */
static double rng_unit(struct rng *r)
{
	return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

static uint32_t rng_range(struct rng *r, uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(rng_next(r) % ((uint64_t)hi - lo + 1));
}

static double rng_exp(struct rng *r, double mean)
{
	return -mean * log(rng_unit(r));
}

static double rng_normal(struct rng *r)
{
	return sqrt(-2.0 * log(rng_unit(r))) * cos(2 * M_PI * rng_unit(r));
}

/* Gamma(shape k, scale 1): Marsaglia and Tsang, boosted below k = 1. */
static double rng_gamma(struct rng *r, double k)
{
	double d, c;

	if (k < 1)
		return rng_gamma(r, k + 1) * pow(rng_unit(r), 1.0 / k);
	d = k - 1.0 / 3;
	c = 1 / sqrt(9 * d);
	for (;;) {
		double x = rng_normal(r), v = 1 + c * x, u;

		if (v <= 0)
			continue;
		v = v * v * v;
		u = rng_unit(r);
		if (u < 1 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1 - v + log(v)))
			return d * v;
	}
}

/* Gap between session arrivals: mean 1/rate, coefficient of variation cv
 * (gamma with shape 1/cv^2; cv = 1 is exponential, i.e. Poisson). */
static double rng_gap(struct rng *r, double rate, double cv)
{
	double k;

	if (cv == 1)
		return rng_exp(r, 1 / rate);
	k = 1 / (cv * cv);
	return rng_gamma(r, k) / (k * rate);
}

/* ---- presets and specs ----------------------------------------------------- */

int sim_workload_preset(const char *name, struct sim_workload *w)
{
	memset(w, 0, sizeof(*w));
	w->seed = 1;
	w->burst_cv = 1;
	w->tenants = 1;
	w->max_context = 32768;
	if (!strcmp(name, "chat")) {
		/* ShareGPT-like chat behind a few system prompts. */
		w->sessions = 400;
		w->turns_min = 2;
		w->turns_max = 8;
		w->system_prompts = 4;
		w->system_len = 1536;
		w->system_zipf = 1.0;
		w->user_min = 32;
		w->user_max = 512;
		w->output_min = 32;
		w->output_max = 384;
		w->think_s = 10;
		w->rate = 2;
	} else if (!strcmp(name, "agent")) {
		/* Tool-using agents: one long tool preamble, many short turns
		 * whose tool outputs grow the context fast. */
		w->sessions = 64;
		w->turns_min = 8;
		w->turns_max = 24;
		w->system_prompts = 2;
		w->system_len = 6144;
		w->system_zipf = 0;
		w->user_min = 256;
		w->user_max = 2048;
		w->output_min = 32;
		w->output_max = 256;
		w->think_s = 2;
		w->rate = 0.5;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int parse_u32(const char *s, uint32_t *v)
{
	char *end;
	unsigned long long x;

	if (!*s || *s == '-')
		return -EINVAL;
	x = strtoull(s, &end, 10);
	if (*end || x > UINT32_MAX)
		return -EINVAL;
	*v = (uint32_t)x;
	return 0;
}

static int parse_pair(const char *s, char sep, uint32_t *a, uint32_t *b)
{
	char buf[64];
	char *p;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	p = strchr(buf, sep);
	if (!p) {
		/* One number: a fixed value (A-A). */
		if (parse_u32(buf, a))
			return -EINVAL;
		*b = *a;
		return 0;
	}
	*p = 0;
	return parse_u32(buf, a) || parse_u32(p + 1, b) ? -EINVAL : 0;
}

static int parse_double(const char *s, double *v)
{
	char *end;

	if (!*s)
		return -EINVAL;
	*v = strtod(s, &end);
	if (*end || !isfinite(*v) || *v < 0)
		return -EINVAL;
	return 0;
}

static int check(const struct sim_workload *w, struct sim_err *err)
{
	if (!w->sessions)
		return sim_errf(err, -EINVAL, "--workload: sessions must be >= 1");
	if (!w->turns_min || w->turns_min > w->turns_max)
		return sim_errf(err, -EINVAL, "--workload: turns=A-B needs 1 <= A <= B");
	if (w->user_min > w->user_max || (!w->user_min && !w->system_len))
		return sim_errf(err, -EINVAL, "--workload: user=A-B needs A <= B (and a prompt)");
	if (!w->output_min || w->output_min > w->output_max)
		return sim_errf(err, -EINVAL, "--workload: output=A-B needs 1 <= A <= B");
	if (w->system_len && !w->system_prompts)
		return sim_errf(err, -EINVAL, "--workload: system=NxLEN needs N >= 1");
	if (!(w->rate > 0))
		return sim_errf(err, -EINVAL, "--workload: rate must be > 0 sessions/s");
	if (!(w->burst_cv > 0) || w->burst_cv > 100)
		return sim_errf(err, -EINVAL, "--workload: cv must be in (0, 100]");
	if (!w->tenants)
		return sim_errf(err, -EINVAL, "--workload: tenants must be >= 1");
	if ((uint64_t)w->system_len + w->user_max + w->output_max > w->max_context ||
	    w->max_context > SIM_MAX_REQ_TOKENS)
		return sim_errf(err, -EINVAL,
				"--workload: max-context %u cannot hold a first turn "
				"(system + user + output = %llu) or is over %u",
				w->max_context,
				(unsigned long long)w->system_len + w->user_max + w->output_max,
				SIM_MAX_REQ_TOKENS);
	return 0;
}

int sim_workload_parse(const char *spec, struct sim_workload *w, struct sim_err *err)
{
	char buf[512], *save = NULL, *kv, *colon;
	const char *base = "chat";
	int bad = 0;

	if (!spec || strlen(spec) >= sizeof(buf))
		return sim_errf(err, -EINVAL, "--workload: missing or too long");
	strcpy(buf, spec);
	colon = strchr(buf, ':');
	if (colon)
		*colon = 0;
	if (buf[0] && !strchr(buf, '='))
		base = buf;
	if (sim_workload_preset(base, w))
		return sim_errf(err, -EINVAL, "--workload: unknown preset \"%s\" (chat, agent)",
				base);
	kv = colon ? colon + 1 : (base == buf ? NULL : buf);
	for (char *tok = kv ? strtok_r(kv, ",", &save) : NULL; tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *val = strchr(tok, '=');

		if (!val)
			return sim_errf(err, -EINVAL, "--workload: \"%s\" is not key=value", tok);
		*val++ = 0;
		if (!strcmp(tok, "sessions"))
			bad = parse_u32(val, &w->sessions);
		else if (!strcmp(tok, "turns"))
			bad = parse_pair(val, '-', &w->turns_min, &w->turns_max);
		else if (!strcmp(tok, "system"))
			bad = !strchr(val, 'x') ||
			      parse_pair(val, 'x', &w->system_prompts, &w->system_len);
		else if (!strcmp(tok, "zipf"))
			bad = parse_double(val, &w->system_zipf);
		else if (!strcmp(tok, "user"))
			bad = parse_pair(val, '-', &w->user_min, &w->user_max);
		else if (!strcmp(tok, "output"))
			bad = parse_pair(val, '-', &w->output_min, &w->output_max);
		else if (!strcmp(tok, "think"))
			bad = parse_double(val, &w->think_s);
		else if (!strcmp(tok, "rate"))
			bad = parse_double(val, &w->rate);
		else if (!strcmp(tok, "cv"))
			bad = parse_double(val, &w->burst_cv);
		else if (!strcmp(tok, "max-context"))
			bad = parse_u32(val, &w->max_context);
		else if (!strcmp(tok, "tenants"))
			bad = parse_u32(val, &w->tenants);
		else if (!strcmp(tok, "seed")) {
			char *end;

			w->seed = strtoull(val, &end, 0);
			bad = !*val || *end;
		} else if (!strcmp(tok, "loop")) {
			bad = strcmp(val, "open") && strcmp(val, "closed");
			w->open_loop = !strcmp(val, "open");
		} else
			return sim_errf(err, -EINVAL,
					"--workload: unknown key \"%s\" (sessions, turns, system, "
					"zipf, user, output, think, rate, cv, loop, max-context, "
					"tenants, seed)",
					tok);
		if (bad)
			return sim_errf(err, -EINVAL, "--workload: bad value \"%s\" for %s", val,
					tok);
	}
	return check(w, err);
}

void sim_workload_format(const struct sim_workload *w, char *buf, size_t len)
{
	snprintf(buf, len,
		 "sessions=%u,turns=%u-%u,system=%ux%u,zipf=%g,user=%u-%u,output=%u-%u,"
		 "think=%g,rate=%g,cv=%g,loop=%s,max-context=%u,tenants=%u,seed=%llu",
		 w->sessions, w->turns_min, w->turns_max, w->system_prompts, w->system_len,
		 w->system_zipf, w->user_min, w->user_max, w->output_min, w->output_max, w->think_s,
		 w->rate, w->burst_cv, w->open_loop ? "open" : "closed", w->max_context, w->tenants,
		 (unsigned long long)w->seed);
}

/* ---- generation ------------------------------------------------------------- */

struct turn {
	double t;	  /* arrival (open loop, or a session's first turn) */
	double think;	  /* closed loop: after the previous turn */
	uint32_t session; /* index */
	uint32_t turn;
	uint32_t sys; /* system prompt (first turn) */
	uint32_t user, output;
	uint64_t key; /* user-message run */
};

static int cmp_turn(const void *a, const void *b)
{
	const struct turn *x = a, *y = b;

	/* Closed-loop follow-ups keep their session's order after turn 0. */
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	if (x->session != y->session)
		return x->session < y->session ? -1 : 1;
	return x->turn < y->turn ? -1 : x->turn > y->turn;
}

int sim_workload_generate(const struct sim_workload *w, struct sim_trace *t, struct sim_err *err)
{
	struct rng r = {.s = w->seed};
	struct turn *turns = NULL;
	double *zcdf = NULL, now = 0;
	int32_t *last = NULL;
	size_t n = 0, cap = 0;
	int ret = check(w, err);

	if (ret)
		return ret;
	if (w->system_prompts) {
		double sum = 0;

		zcdf = malloc(sizeof(*zcdf) * w->system_prompts);
		if (!zcdf)
			return -ENOMEM;
		for (uint32_t i = 0; i < w->system_prompts; i++)
			zcdf[i] = sum += pow(i + 1.0, -w->system_zipf);
		for (uint32_t i = 0; i < w->system_prompts; i++)
			zcdf[i] /= sum;
	}
	for (uint32_t s = 0; s < w->sessions; s++) {
		uint32_t nt = rng_range(&r, w->turns_min, w->turns_max), ctx = 0, sys = 0;
		double u = rng_unit(&r), at;

		if (s)
			now += rng_gap(&r, w->rate, w->burst_cv);
		at = now;
		while (zcdf && sys + 1 < w->system_prompts && u > zcdf[sys])
			sys++;
		for (uint32_t k = 0; k < nt; k++) {
			uint32_t user = rng_range(&r, w->user_min, w->user_max);
			uint32_t out = rng_range(&r, w->output_min, w->output_max);
			double think = k ? rng_exp(&r, w->think_s) : 0;
			uint32_t add = (k ? 0 : w->system_len) + user;

			if (k && (uint64_t)ctx + add + out > w->max_context)
				break;
			if (n == cap) {
				struct turn *p;

				cap = cap ? cap * 2 : 1024;
				p = realloc(turns, sizeof(*p) * cap);
				if (!p) {
					ret = -ENOMEM;
					goto out;
				}
				turns = p;
			}
			if (k && w->open_loop)
				at += think;
			turns[n++] = (struct turn){
				.t = k && !w->open_loop ? INFINITY : at,
				.think = think,
				.session = s,
				.turn = k,
				.sys = sys,
				.user = user,
				.output = out,
				.key = rng_next(&r),
			};
			ctx += add + out;
		}
	}
	/* File order: by arrival; closed-loop follow-ups (no time of their
	 * own) after every first turn, in session order. */
	qsort(turns, n, sizeof(*turns), cmp_turn);
	last = malloc(sizeof(*last) * w->sessions);
	if (!last) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t s = 0; s < w->sessions; s++)
		last[s] = -1;
	t->vocab = t->vocab ? t->vocab : SIM_VOCAB;
	for (size_t i = 0; i < n; i++) {
		const struct turn *u = &turns[i];
		struct sim_request *q = sim_trace_add(t);
		uint32_t off = u->turn ? 0 : w->system_len;

		if (!q) {
			ret = -ENOMEM;
			goto out;
		}
		q->session = u->session;
		q->turn = u->turn;
		q->tenant = u->session % w->tenants;
		q->prev = last[u->session];
		q->appends = q->prev >= 0;
		q->ntok = off + u->user;
		q->output_len = u->output;
		q->tokens = malloc(sizeof(uint32_t) * (q->ntok ? q->ntok : 1));
		if (!q->tokens) {
			ret = -ENOMEM;
			goto out;
		}
		/* The system prompt is shared by every session that picked it
		 * (and the same tenant: tenants never share entries anyway). */
		sim_tokens_run(SIM_SALT_SYSTEM, u->sys, 0, off, t->vocab, q->tokens);
		sim_tokens_run(SIM_SALT_USER, u->key, 0, u->user, t->vocab, q->tokens + off);
		if (q->prev >= 0) {
			const struct sim_request *p = &t->req[q->prev];

			q->input_len = p->input_len + p->output_len + q->ntok;
		} else {
			q->input_len = q->ntok;
		}
		if (u->turn && !w->open_loop) {
			q->arrival_ns = -1;
			q->think_ns = (uint64_t)(u->think * 1e9);
		} else {
			q->arrival_ns = (int64_t)(u->t * 1e9);
		}
		last[u->session] = (int32_t)(t->n - 1);
	}
	t->nsessions = w->sessions;
out:
	free(last);
	free(turns);
	free(zcdf);
	return ret;
}
