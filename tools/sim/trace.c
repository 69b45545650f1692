// SPDX-License-Identifier: MIT
/*
 * trace.c - the in-memory trace, kvmm's own JSONL format, token
 * materialisation and the writers.  Mooncake rows: trace_mooncake.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tokens.h"
#include "trace.h"
#include "trace_internal.h"
#include "u64map.h"

void sim_trace_init(struct sim_trace *t, enum sim_trace_format fmt)
{
	memset(t, 0, sizeof(*t));
	t->format = fmt;
	t->vocab = SIM_VOCAB;
}

void sim_trace_free(struct sim_trace *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->n; i++) {
		free(t->req[i].hash_ids);
		free(t->req[i].tokens);
		free(t->req[i].out_tokens);
	}
	for (uint32_t i = 0; i < t->nsessions; i++)
		free(t->session_names ? t->session_names[i] : NULL);
	free(t->session_names);
	free(t->session_last);
	if (t->session_index) {
		u64map_free(t->session_index);
		free(t->session_index);
	}
	free(t->req);
	memset(t, 0, sizeof(*t));
}

struct sim_request *sim_trace_add(struct sim_trace *t)
{
	struct sim_request *r;

	if (t->n == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 256;
		struct sim_request *p = realloc(t->req, sizeof(*p) * cap);

		if (!p)
			return NULL;
		t->req = p;
		t->cap = cap;
	}
	r = &t->req[t->n++];
	memset(r, 0, sizeof(*r));
	r->prev = -1;
	return r;
}

const char *sim_trace_format_name(enum sim_trace_format fmt)
{
	return fmt == SIM_FMT_MOONCAKE ? "mooncake" : "kvmm";
}

int sim_trace_format_parse(const char *s, enum sim_trace_format *fmt)
{
	if (s && !strcmp(s, "mooncake"))
		*fmt = SIM_FMT_MOONCAKE;
	else if (s && !strcmp(s, "kvmm"))
		*fmt = SIM_FMT_KVMM;
	else
		return -EINVAL;
	return 0;
}

/* ---- sessions ----------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h == U64MAP_EMPTY ? 0 : h;
}

int sim_trace_session(struct sim_trace *t, const char *name, uint32_t *out)
{
	uint64_t h = name_hash(name), v;

	if (!t->session_index) {
		t->session_index = malloc(sizeof(struct u64map));
		if (!t->session_index)
			return -ENOMEM;
		u64map_init(t->session_index);
	}
	/* Open addressing over the name hash: a collision probes on. */
	for (;; h = h + 1 == U64MAP_EMPTY ? 0 : h + 1) {
		if (!u64map_get(t->session_index, h, &v))
			break;
		if (!strcmp(t->session_names[v], name)) {
			*out = (uint32_t)v;
			return 0;
		}
	}
	if (t->nsessions == t->sessions_cap) {
		uint32_t cap = t->sessions_cap ? t->sessions_cap * 2 : 64;
		char **names = realloc(t->session_names, sizeof(*names) * cap);
		int32_t *last;

		if (!names)
			return -ENOMEM;
		t->session_names = names;
		last = realloc(t->session_last, sizeof(*last) * cap);
		if (!last)
			return -ENOMEM;
		t->session_last = last;
		t->sessions_cap = cap;
	}
	t->session_names[t->nsessions] = strdup(name);
	if (!t->session_names[t->nsessions])
		return -ENOMEM;
	if (u64map_put(t->session_index, h, t->nsessions)) {
		free(t->session_names[t->nsessions]);
		return -ENOMEM;
	}
	t->session_last[t->nsessions] = -1;
	*out = t->nsessions++;
	return 0;
}

int sim_trace_line_error(struct sim_err *err, const char *name, uint32_t lineno, const char *field,
			 const struct sim_json *j)
{
	if (field)
		return sim_errf(err, -EINVAL, "%s:%u: field \"%s\": %s (column %zu)", name, lineno,
				field, j->err ? j->err : "bad value", j->pos + 1);
	return sim_errf(err, -EINVAL, "%s:%u: %s (column %zu)", name, lineno,
			j->err ? j->err : "malformed JSON", j->pos + 1);
}

/* ---- kvmm's format -------------------------------------------------------- */

/* Read an array of token ids into a fresh buffer. */
int sim_trace_read_tokens(struct sim_json *j, uint32_t **out, uint32_t *n)
{
	return sim_json_read_uints(j, UINT32_MAX, SIM_MAX_REQ_TOKENS, sizeof(**out), (void **)out,
				   n);
}

static int ms_to_ns(struct sim_json *j, int64_t *ns)
{
	double ms;

	if (sim_json_number(j, &ms))
		return -EINVAL;
	if (!(ms >= 0) || ms > 1e12) {
		j->err = "time out of range (0 to 1e12 ms)";
		return -EINVAL;
	}
	*ns = (int64_t)(ms * 1e6 + 0.5);
	return 0;
}

static int parse_kvmm(struct sim_trace *t, struct sim_json *j, const char *name, uint32_t lineno,
		      struct sim_err *err)
{
	struct sim_request *r;
	const char *key, *what = NULL;
	char sname[128] = "";
	size_t kl;
	int64_t ts = -1, think = -1, olen = -1;
	uint64_t tenant = 0;
	uint32_t *in = NULL, *out = NULL, nin = 0, nout = 0, sess;
	bool have_in = false, appends = false, have_out = false;
	int ret, k;

	if (sim_json_obj_begin(j))
		goto bad;
	while ((k = sim_json_obj_next(j, &key, &kl)) > 0) {
		if (sim_json_key_is(key, kl, "session")) {
			what = "session";
			if (sim_json_peek(j) == SJ_STRING) {
				if (sim_json_string(j, sname, sizeof(sname)))
					goto bad;
			} else {
				uint64_t v;

				if (sim_json_uint(j, &v))
					goto bad;
				snprintf(sname, sizeof(sname), "%llu", (unsigned long long)v);
			}
		} else if (sim_json_key_is(key, kl, "timestamp_ms")) {
			what = "timestamp_ms";
			if (ms_to_ns(j, &ts))
				goto bad;
		} else if (sim_json_key_is(key, kl, "think_ms")) {
			what = "think_ms";
			if (ms_to_ns(j, &think))
				goto bad;
		} else if (sim_json_key_is(key, kl, "input") ||
			   sim_json_key_is(key, kl, "append")) {
			what = key[0] == 'i' ? "input" : "append";
			if (have_in) {
				j->err = "give one of input and append, once";
				goto bad;
			}
			ret = sim_trace_read_tokens(j, &in, &nin);
			if (ret == -ENOMEM)
				goto nomem;
			if (ret)
				goto bad;
			have_in = true;
			appends = key[0] == 'a';
		} else if (sim_json_key_is(key, kl, "output")) {
			what = "output";
			if (have_out) {
				j->err = "duplicate output";
				goto bad;
			}
			ret = sim_trace_read_tokens(j, &out, &nout);
			if (ret == -ENOMEM)
				goto nomem;
			if (ret)
				goto bad;
			have_out = true;
		} else if (sim_json_key_is(key, kl, "output_length")) {
			what = "output_length";
			if (sim_json_int(j, 0, SIM_MAX_REQ_TOKENS, &olen))
				goto bad;
		} else if (sim_json_key_is(key, kl, "tenant")) {
			what = "tenant";
			if (sim_json_uint(j, &tenant))
				goto bad;
		} else {
			ret = sim_errf(err, -EINVAL,
				       "%s:%u: unknown field \"%.*s\" (kvmm format: %s)", name,
				       lineno, (int)kl, key,
				       "session, timestamp_ms, think_ms, input, append, output, "
				       "output_length, tenant");
			goto out;
		}
	}
	what = NULL;
	if (k < 0 || sim_json_finish(j))
		goto bad;
	if (!have_in) {
		ret = sim_errf(err, -EINVAL, "%s:%u: missing \"input\" (or \"append\")", name,
			       lineno);
		goto out;
	}
	if (!have_out && olen < 0) {
		ret = sim_errf(err, -EINVAL, "%s:%u: missing \"output_length\" (or \"output\")",
			       name, lineno);
		goto out;
	}
	if (have_out && olen >= 0 && (uint64_t)olen != nout) {
		ret = sim_errf(err, -EINVAL,
			       "%s:%u: output_length %lld differs from the %u tokens of output",
			       name, lineno, (long long)olen, nout);
		goto out;
	}
	if (!sname[0])
		snprintf(sname, sizeof(sname), "#line%u", lineno);
	ret = sim_trace_session(t, sname, &sess);
	if (ret)
		goto nomem;
	if ((appends || think >= 0) && t->session_last[sess] < 0) {
		ret = sim_errf(err, -EINVAL,
			       "%s:%u: \"%s\" needs an earlier turn of session \"%s\" in the file",
			       name, lineno, appends ? "append" : "think_ms", sname);
		goto out;
	}
	if (!appends && !nin) {
		ret = sim_errf(err, -EINVAL, "%s:%u: empty input", name, lineno);
		goto out;
	}
	if (ts >= 0 && think >= 0) {
		ret = sim_errf(err, -EINVAL, "%s:%u: give timestamp_ms or think_ms, not both", name,
			       lineno);
		goto out;
	}
	if (appends) {
		const struct sim_request *p = &t->req[t->session_last[sess]];
		uint64_t len = (uint64_t)p->input_len + p->output_len + nin;

		if (len > SIM_MAX_REQ_TOKENS) {
			ret = sim_errf(err, -EINVAL,
				       "%s:%u: prompt of %llu tokens is longer than the limit %u",
				       name, lineno, (unsigned long long)len, SIM_MAX_REQ_TOKENS);
			goto out;
		}
		if (p->tenant != tenant) {
			ret = sim_errf(err, -EINVAL,
				       "%s:%u: \"append\" continues a turn of another tenant", name,
				       lineno);
			goto out;
		}
	}
	r = sim_trace_add(t);
	if (!r)
		goto nomem;
	r->line = lineno;
	r->session = sess;
	r->prev = t->session_last[sess];
	r->turn = r->prev >= 0 ? t->req[r->prev].turn + 1 : 0;
	r->tenant = tenant;
	r->appends = appends;
	r->ntok = nin;
	r->tokens = in;
	in = NULL;
	if (nout) {
		r->out_tokens = out;
		out = NULL;
	}
	r->output_len = have_out ? nout : (uint32_t)olen;
	if (!r->output_len)
		r->output_len = 1; /* the first token always comes out of the prefill */
	if (appends) {
		const struct sim_request *p = &t->req[r->prev];

		r->input_len = p->input_len + p->output_len + nin;
	} else {
		r->input_len = nin;
	}
	if (ts >= 0)
		r->arrival_ns = ts;
	else if (r->prev >= 0)
		r->arrival_ns = -1;
	else
		r->arrival_ns = 0;
	r->think_ns = think > 0 ? (uint64_t)think : 0;
	t->session_last[sess] = (int32_t)(t->n - 1);
	free(out); /* an empty "output": derived tokens */
	return 0;
bad:
	ret = sim_trace_line_error(err, name, lineno, what, j);
	goto out;
nomem:
	ret = sim_errf(err, -ENOMEM, "%s:%u: out of memory", name, lineno);
out:
	free(in);
	free(out);
	return ret;
}

int sim_trace_parse_line(struct sim_trace *t, const char *s, size_t len, const char *name,
			 uint32_t lineno, struct sim_err *err)
{
	struct sim_json j;

	sim_json_init(&j, s, len);
	if (t->format == SIM_FMT_MOONCAKE)
		return sim_trace_parse_mooncake(t, &j, name, lineno, err);
	return parse_kvmm(t, &j, name, lineno, err);
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

int sim_trace_load_stream(struct sim_trace *t, FILE *f, const char *name, enum sim_trace_format fmt,
			  struct sim_err *err)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	uint32_t lineno = 0;
	int ret = 0;

	t->format = fmt;
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (blank(line, (size_t)n))
			continue;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		ret = sim_trace_parse_line(t, line, (size_t)n, name, lineno, err);
		if (ret)
			break;
	}
	if (!ret && ferror(f))
		ret = sim_errf(err, -EIO, "%s: read error", name);
	if (!ret && !t->n)
		ret = sim_errf(err, -EINVAL, "%s: no requests in the trace", name);
	free(line);
	return ret;
}

int sim_trace_load(struct sim_trace *t, const char *path, enum sim_trace_format fmt,
		   struct sim_err *err)
{
	FILE *f = fopen(path, "r");
	int ret;

	if (!f)
		return sim_errf(err, -errno, "--trace %s: %s", path, strerror(errno));
	ret = sim_trace_load_stream(t, f, path, fmt, err);
	fclose(f);
	return ret;
}

/* ---- tokens ---------------------------------------------------------------- */

void sim_request_output(const struct sim_trace *t, uint32_t i, uint32_t *buf)
{
	const struct sim_request *r = &t->req[i];

	if (r->out_tokens)
		memcpy(buf, r->out_tokens, sizeof(*buf) * r->output_len);
	else
		sim_tokens_run(SIM_SALT_OUTPUT, i, 0, r->output_len, t->vocab, buf);
}

void sim_request_input(const struct sim_trace *t, uint32_t i, uint32_t *buf)
{
	const struct sim_request *r = &t->req[i];

	if (r->hash_ids) {
		sim_mooncake_tokens(t, i, buf);
		return;
	}
	if (r->appends) {
		const struct sim_request *p = &t->req[r->prev];

		sim_request_input(t, (uint32_t)r->prev, buf);
		sim_request_output(t, (uint32_t)r->prev, buf + p->input_len);
		buf += p->input_len + p->output_len;
	}
	memcpy(buf, r->tokens, sizeof(*buf) * r->ntok);
}

/* ---- writing ---------------------------------------------------------------- */

static void put_tokens(FILE *f, const uint32_t *tok, uint32_t n)
{
	fputc('[', f);
	for (uint32_t i = 0; i < n; i++)
		fprintf(f, i ? ",%u" : "%u", tok[i]);
	fputc(']', f);
}

static void put_ms(FILE *f, const char *key, uint64_t ns)
{
	fprintf(f, "\"%s\": ", key);
	sim_json_put_number(f, (double)ns / 1e6);
}

static int write_kvmm(const struct sim_trace *t, FILE *f)
{
	for (uint32_t i = 0; i < t->n; i++) {
		const struct sim_request *r = &t->req[i];

		fputs("{\"session\": ", f);
		if (t->session_names)
			sim_json_put_string(f, t->session_names[r->session]);
		else
			fprintf(f, "%u", r->session);
		fputs(", ", f);
		if (r->arrival_ns >= 0)
			put_ms(f, "timestamp_ms", (uint64_t)r->arrival_ns);
		else
			put_ms(f, "think_ms", r->think_ns);
		if (r->tenant)
			fprintf(f, ", \"tenant\": %llu", (unsigned long long)r->tenant);
		if (r->appends) {
			fputs(", \"append\": ", f);
			put_tokens(f, r->tokens, r->ntok);
		} else {
			uint32_t *buf = malloc(sizeof(*buf) * (r->input_len ? r->input_len : 1));

			if (!buf)
				return -ENOMEM;
			sim_request_input(t, i, buf);
			fputs(", \"input\": ", f);
			put_tokens(f, buf, r->input_len);
			free(buf);
		}
		if (r->out_tokens) {
			fputs(", \"output\": ", f);
			put_tokens(f, r->out_tokens, r->output_len);
		} else {
			fprintf(f, ", \"output_length\": %u", r->output_len);
		}
		fputs("}\n", f);
	}
	return 0;
}

int sim_trace_write(const struct sim_trace *t, FILE *f, enum sim_trace_format fmt)
{
	int ret = fmt == SIM_FMT_MOONCAKE ? sim_trace_write_mooncake(t, f) : write_kvmm(t, f);

	if (!ret && (fflush(f) || ferror(f)))
		ret = -EIO;
	return ret;
}

void sim_trace_summarize(const struct sim_trace *t, struct sim_trace_summary *s)
{
	memset(s, 0, sizeof(*s));
	s->requests = t->n;
	s->sessions = t->nsessions;
	for (uint32_t i = 0; i < t->n; i++) {
		const struct sim_request *r = &t->req[i];

		s->input_tokens += r->input_len;
		s->output_tokens += r->output_len;
		if (r->input_len > s->max_input)
			s->max_input = r->input_len;
		if (r->input_len + r->output_len > s->max_context)
			s->max_context = r->input_len + r->output_len;
		if (r->arrival_ns >= 0 && r->arrival_ns / 1e9 > s->span_s)
			s->span_s = r->arrival_ns / 1e9;
	}
}
