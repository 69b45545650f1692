/* SPDX-License-Identifier: MIT */
/*
 * json.h - a small pull parser for one JSON text (one line of a JSONL
 * trace) and helpers to write JSON.
 *
 * The parser does not build a tree: the caller walks objects and arrays
 * and asks for the value it expects, so a 10,000-token array is read
 * straight into the caller's buffer.  On error, j->err says what and
 * j->pos where (0-based byte offset).
 */
#ifndef KVMM_SIM_JSON_H
#define KVMM_SIM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum sim_json_type {
	SJ_END = 0, /* nothing left (or an error) */
	SJ_NULL,
	SJ_BOOL,
	SJ_NUMBER,
	SJ_STRING,
	SJ_ARRAY,
	SJ_OBJECT,
};

struct sim_json {
	const char *s;
	size_t len;
	size_t pos;
	const char *err; /* static message, NULL while all is well */
	int depth;
	/* set by sim_json_obj_next after the first member, by
	 * sim_json_arr_next after the first element */
	bool first[64];
};

void sim_json_init(struct sim_json *j, const char *s, size_t len);
/* Type of the next value (after whitespace). */
enum sim_json_type sim_json_peek(struct sim_json *j);

/* Objects: sim_json_obj_begin, then while ((r = sim_json_obj_next(j, &k, &kl)) > 0)
 * read the member's value; r == 0 at '}', < 0 on error.  The key is not
 * NUL-terminated and has its escapes unresolved (kvmm's keys have none). */
int sim_json_obj_begin(struct sim_json *j);
int sim_json_obj_next(struct sim_json *j, const char **key, size_t *klen);
/* Arrays: the same with sim_json_arr_next (1: an element follows). */
int sim_json_arr_begin(struct sim_json *j);
int sim_json_arr_next(struct sim_json *j);

/* Values.  -EINVAL (with j->err) when the next value is not of that kind. */
int sim_json_number(struct sim_json *j, double *v);
/* An integer in [min, max] (no fraction, no exponent). -ERANGE outside. */
int sim_json_int(struct sim_json *j, int64_t min, int64_t max, int64_t *v);
/* Same for unsigned 64-bit values (hash ids). */
int sim_json_uint(struct sim_json *j, uint64_t *v);
/* A string, unescaped (\uXXXX kept as '?' outside ASCII) into buf, NUL
 * terminated; -ENAMETOOLONG when it does not fit. */
int sim_json_string(struct sim_json *j, char *buf, size_t cap);
int sim_json_bool(struct sim_json *j, bool *v);
/* Skip any value. */
int sim_json_skip(struct sim_json *j);
/* An array of unsigned integers <= max, at most max_count of them, into a
 * fresh buffer of elem-byte (4 or 8) values; *n gets the count.  -EINVAL
 * (j->err says why), -ENOMEM. */
int sim_json_read_uints(struct sim_json *j, uint64_t max, uint32_t max_count, size_t elem,
			void **out, uint32_t *n);
/* Only whitespace remains. */
int sim_json_finish(struct sim_json *j);

/* key of length klen equals the NUL-terminated name */
bool sim_json_key_is(const char *key, size_t klen, const char *name);

/* Writing: a JSON string literal with escapes. */
void sim_json_put_string(FILE *f, const char *s);
/* A number: integers exactly, others with 6 significant digits; NaN and
 * infinities (not JSON) as null. */
void sim_json_put_number(FILE *f, double v);

#endif /* KVMM_SIM_JSON_H */
