// SPDX-License-Identifier: MIT
/* json.c - pull parser and writer helpers (see json.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define MAX_DEPTH ((int)(sizeof(((struct sim_json *)0)->first)))

static int fail(struct sim_json *j, const char *msg)
{
	if (!j->err)
		j->err = msg;
	return -EINVAL;
}

static void skip_ws(struct sim_json *j)
{
	while (j->pos < j->len) {
		char c = j->s[j->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		j->pos++;
	}
}

void sim_json_init(struct sim_json *j, const char *s, size_t len)
{
	memset(j, 0, sizeof(*j));
	j->s = s;
	j->len = len;
}

enum sim_json_type sim_json_peek(struct sim_json *j)
{
	if (j->err)
		return SJ_END;
	skip_ws(j);
	if (j->pos >= j->len)
		return SJ_END;
	switch (j->s[j->pos]) {
	case '{':
		return SJ_OBJECT;
	case '[':
		return SJ_ARRAY;
	case '"':
		return SJ_STRING;
	case 't':
	case 'f':
		return SJ_BOOL;
	case 'n':
		return SJ_NULL;
	default:
		return SJ_NUMBER;
	}
}

static int expect(struct sim_json *j, char c, const char *msg)
{
	skip_ws(j);
	if (j->pos >= j->len || j->s[j->pos] != c)
		return fail(j, msg);
	j->pos++;
	return 0;
}

static int open_container(struct sim_json *j, char c, const char *msg)
{
	if (j->err)
		return -EINVAL;
	if (expect(j, c, msg))
		return -EINVAL;
	if (j->depth >= MAX_DEPTH)
		return fail(j, "nested too deeply");
	j->first[j->depth++] = true;
	return 0;
}

int sim_json_obj_begin(struct sim_json *j)
{
	return open_container(j, '{', "expected an object");
}

int sim_json_arr_begin(struct sim_json *j)
{
	return open_container(j, '[', "expected an array");
}

/* Shared by objects and arrays: 1 another element, 0 closed, <0 error. */
static int next_elem(struct sim_json *j, char close)
{
	bool *first;

	if (j->err)
		return -EINVAL;
	if (j->depth <= 0)
		return fail(j, "internal: no open container");
	first = &j->first[j->depth - 1];
	skip_ws(j);
	if (j->pos >= j->len)
		return fail(j, close == '}' ? "unterminated object" : "unterminated array");
	if (j->s[j->pos] == close) {
		j->pos++;
		j->depth--;
		return 0;
	}
	if (!*first && expect(j, ',', close == '}' ? "expected ',' or '}'" : "expected ',' or ']'"))
		return -EINVAL;
	*first = false;
	return 1;
}

/* Skip a string literal at pos (after whitespace); its raw contents are
 * s[*start, *end).  Escapes are skipped, not resolved. */
static int scan_string(struct sim_json *j, const char *what, size_t *start, size_t *end)
{
	skip_ws(j);
	if (j->pos >= j->len || j->s[j->pos] != '"')
		return fail(j, what);
	*start = ++j->pos;
	while (j->pos < j->len && j->s[j->pos] != '"') {
		if ((unsigned char)j->s[j->pos] < 0x20)
			return fail(j, "control character in a string");
		if (j->s[j->pos] == '\\')
			j->pos++;
		j->pos++;
	}
	if (j->pos >= j->len)
		return fail(j, "unterminated string");
	*end = j->pos++;
	return 0;
}

int sim_json_obj_next(struct sim_json *j, const char **key, size_t *klen)
{
	int r = next_elem(j, '}');
	size_t start, end;

	if (r <= 0)
		return r;
	skip_ws(j);
	if (j->pos >= j->len)
		return fail(j, "unterminated object");
	if (scan_string(j, "expected a member name", &start, &end))
		return -EINVAL;
	*key = j->s + start;
	*klen = end - start;
	if (expect(j, ':', "expected ':' after member name"))
		return -EINVAL;
	return 1;
}

int sim_json_arr_next(struct sim_json *j)
{
	int r = next_elem(j, ']');

	if (r > 0 && sim_json_peek(j) == SJ_END)
		return fail(j, "unterminated array");
	return r;
}

/* Scan a JSON number at pos; *is_int when it has no fraction/exponent. */
static int scan_number(struct sim_json *j, size_t *end, bool *is_int)
{
	size_t p = j->pos;
	const char *s = j->s;
	size_t n = j->len;

	*is_int = true;
	if (p < n && s[p] == '-')
		p++;
	if (p >= n || s[p] < '0' || s[p] > '9')
		return fail(j, "expected a number");
	if (s[p] == '0' && p + 1 < n && s[p + 1] >= '0' && s[p + 1] <= '9')
		return fail(j, "leading zero in a number");
	while (p < n && s[p] >= '0' && s[p] <= '9')
		p++;
	if (p < n && s[p] == '.') {
		*is_int = false;
		p++;
		if (p >= n || s[p] < '0' || s[p] > '9')
			return fail(j, "expected digits after '.'");
		while (p < n && s[p] >= '0' && s[p] <= '9')
			p++;
	}
	if (p < n && (s[p] == 'e' || s[p] == 'E')) {
		*is_int = false;
		p++;
		if (p < n && (s[p] == '+' || s[p] == '-'))
			p++;
		if (p >= n || s[p] < '0' || s[p] > '9')
			return fail(j, "expected digits in exponent");
		while (p < n && s[p] >= '0' && s[p] <= '9')
			p++;
	}
	*end = p;
	return 0;
}

int sim_json_number(struct sim_json *j, double *v)
{
	char buf[64];
	size_t end;
	bool is_int;

	if (j->err)
		return -EINVAL;
	skip_ws(j);
	if (scan_number(j, &end, &is_int))
		return -EINVAL;
	if (end - j->pos >= sizeof(buf))
		return fail(j, "number too long");
	memcpy(buf, j->s + j->pos, end - j->pos);
	buf[end - j->pos] = 0;
	*v = strtod(buf, NULL);
	j->pos = end;
	return 0;
}

int sim_json_uint(struct sim_json *j, uint64_t *v)
{
	uint64_t x = 0;
	size_t end;
	bool is_int;

	if (j->err)
		return -EINVAL;
	skip_ws(j);
	if (scan_number(j, &end, &is_int))
		return -EINVAL;
	if (!is_int || j->s[j->pos] == '-')
		return fail(j, "expected a non-negative integer");
	for (size_t p = j->pos; p < end; p++) {
		unsigned d = (unsigned)(j->s[p] - '0');

		if (x > (UINT64_MAX - d) / 10) {
			fail(j, "integer out of range");
			return -ERANGE;
		}
		x = x * 10 + d;
	}
	j->pos = end;
	*v = x;
	return 0;
}

int sim_json_int(struct sim_json *j, int64_t min, int64_t max, int64_t *v)
{
	bool neg;
	uint64_t mag;
	size_t save;
	int r;

	if (j->err)
		return -EINVAL;
	skip_ws(j);
	save = j->pos;
	neg = j->pos < j->len && j->s[j->pos] == '-';
	if (neg)
		j->pos++;
	if (j->pos < j->len && j->s[j->pos] == '-') {
		j->pos = save;
		return fail(j, "expected an integer");
	}
	r = sim_json_uint(j, &mag);
	if (r) {
		if (j->err && !strcmp(j->err, "expected a non-negative integer"))
			j->err = "expected an integer";
		return r;
	}
	if (mag > (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
		fail(j, "integer out of range");
		return -ERANGE;
	}
	*v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	if (*v < min || *v > max) {
		fail(j, "integer out of range");
		return -ERANGE;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sim_json_string(struct sim_json *j, char *buf, size_t cap)
{
	size_t o = 0;

	if (j->err)
		return -EINVAL;
	if (expect(j, '"', "expected a string"))
		return -EINVAL;
	while (j->pos < j->len && j->s[j->pos] != '"') {
		char c = j->s[j->pos++];

		if ((unsigned char)c < 0x20)
			return fail(j, "control character in a string");
		if (c == '\\') {
			if (j->pos >= j->len)
				break;
			c = j->s[j->pos++];
			switch (c) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'u': {
				int cp = 0;

				for (int i = 0; i < 4; i++) {
					int h = j->pos < j->len ? hexval(j->s[j->pos++]) : -1;

					if (h < 0)
						return fail(j, "bad \\u escape");
					cp = cp * 16 + h;
				}
				c = cp < 0x80 ? (char)cp : '?';
				break;
			}
			case '"':
			case '\\':
			case '/':
				break;
			default:
				return fail(j, "bad escape in a string");
			}
		}
		if (o + 1 >= cap) {
			fail(j, "string too long");
			return -ENAMETOOLONG;
		}
		buf[o++] = c;
	}
	if (j->pos >= j->len)
		return fail(j, "unterminated string");
	j->pos++;
	if (cap)
		buf[o] = 0;
	return 0;
}

static int literal(struct sim_json *j, const char *word)
{
	size_t n = strlen(word);

	if (j->len - j->pos < n || memcmp(j->s + j->pos, word, n))
		return fail(j, "unexpected character");
	j->pos += n;
	return 0;
}

int sim_json_bool(struct sim_json *j, bool *v)
{
	if (sim_json_peek(j) != SJ_BOOL)
		return fail(j, "expected true or false");
	*v = j->s[j->pos] == 't';
	return literal(j, *v ? "true" : "false");
}

int sim_json_skip(struct sim_json *j)
{
	const char *k;
	size_t kl;
	double d;
	bool b;
	int r;

	switch (sim_json_peek(j)) {
	case SJ_END:
		return fail(j, "expected a value");
	case SJ_NULL:
		return literal(j, "null");
	case SJ_BOOL:
		return sim_json_bool(j, &b);
	case SJ_NUMBER:
		return sim_json_number(j, &d);
	case SJ_STRING: {
		size_t start, end;

		return scan_string(j, "expected a string", &start, &end);
	}
	case SJ_ARRAY:
		if (sim_json_arr_begin(j))
			return -EINVAL;
		while ((r = sim_json_arr_next(j)) > 0)
			if (sim_json_skip(j))
				return -EINVAL;
		return r;
	case SJ_OBJECT:
		if (sim_json_obj_begin(j))
			return -EINVAL;
		while ((r = sim_json_obj_next(j, &k, &kl)) > 0)
			if (sim_json_skip(j))
				return -EINVAL;
		return r;
	}
	return fail(j, "expected a value");
}

int sim_json_finish(struct sim_json *j)
{
	if (j->err)
		return -EINVAL;
	skip_ws(j);
	if (j->pos != j->len)
		return fail(j, "trailing characters after the value");
	return 0;
}

int sim_json_read_uints(struct sim_json *j, uint64_t max, uint32_t max_count, size_t elem,
			void **out, uint32_t *n)
{
	uint32_t cap = 0, len = 0;
	uint8_t *buf = NULL;
	uint64_t v;
	int r;

	if (elem != 4 && elem != 8)
		return -EINVAL;
	if (sim_json_arr_begin(j))
		return -EINVAL;
	while ((r = sim_json_arr_next(j)) > 0) {
		if (sim_json_uint(j, &v))
			goto bad;
		if (v > max) {
			fail(j, "integer out of range");
			goto bad;
		}
		if (len == max_count) {
			fail(j, "too many values");
			goto bad;
		}
		if (len == cap) {
			uint8_t *p;

			cap = cap ? cap * 2 : 256;
			p = realloc(buf, elem * cap);
			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
		}
		if (elem == 4)
			((uint32_t *)buf)[len++] = (uint32_t)v;
		else
			((uint64_t *)buf)[len++] = v;
	}
	if (r < 0)
		goto bad;
	*out = buf;
	*n = len;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}

bool sim_json_key_is(const char *key, size_t klen, const char *name)
{
	return strlen(name) == klen && !memcmp(key, name, klen);
}

void sim_json_put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void sim_json_put_number(FILE *f, double v)
{
	if (!isfinite(v))
		fputs("null", f);
	else if (v == floor(v) && fabs(v) < 9.007199254740992e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.6g", v);
}
