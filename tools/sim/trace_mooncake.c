// SPDX-License-Identifier: MIT
/*
 * trace_mooncake.c - the public Mooncake trace format (FAST'25 release):
 *   {"timestamp": 27482, "input_length": 6955, "output_length": 52,
 *    "hash_ids": [46, 47, ...]}
 * timestamp in ms since the first request; each hash id stands for 512
 * tokens, the last one for the remainder of input_length; equal ids mean
 * equal content (a shared prefix).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tokens.h"
#include "trace_internal.h"
#include "u64map.h"

static int read_ids(struct sim_json *j, uint64_t **out, uint32_t *n)
{
	return sim_json_read_uints(j, UINT64_MAX, SIM_MAX_REQ_TOKENS / SIM_MOONCAKE_BLOCK,
				   sizeof(**out), (void **)out, n);
}

int sim_trace_parse_mooncake(struct sim_trace *t, struct sim_json *j, const char *name,
			     uint32_t lineno, struct sim_err *err)
{
	struct sim_request *r;
	const char *key, *what = NULL;
	size_t kl;
	double ts = -1;
	int64_t in = -1, out = -1;
	uint64_t *ids = NULL;
	uint32_t nids = 0;
	bool have_ids = false;
	int k, ret;

	if (sim_json_obj_begin(j))
		goto bad;
	while ((k = sim_json_obj_next(j, &key, &kl)) > 0) {
		if (sim_json_key_is(key, kl, "timestamp")) {
			what = "timestamp";
			if (sim_json_number(j, &ts))
				goto bad;
			if (!(ts >= 0) || ts > 1e12) {
				j->err = "must be a time in ms, 0 to 1e12";
				goto bad;
			}
		} else if (sim_json_key_is(key, kl, "input_length")) {
			what = "input_length";
			if (sim_json_int(j, 1, SIM_MAX_REQ_TOKENS, &in))
				goto bad;
		} else if (sim_json_key_is(key, kl, "output_length")) {
			what = "output_length";
			if (sim_json_int(j, 0, SIM_MAX_REQ_TOKENS, &out))
				goto bad;
		} else if (sim_json_key_is(key, kl, "hash_ids")) {
			what = "hash_ids";
			if (have_ids) {
				j->err = "duplicate field";
				goto bad;
			}
			ret = read_ids(j, &ids, &nids);
			if (ret == -ENOMEM)
				goto nomem;
			if (ret)
				goto bad;
			have_ids = true;
		} else {
			/* Other tools add fields (session_id, ...): not ours. */
			what = NULL;
			if (sim_json_skip(j))
				goto bad;
		}
	}
	what = NULL;
	if (k < 0 || sim_json_finish(j))
		goto bad;
	if (ts < 0 || in < 0 || out < 0 || !have_ids) {
		ret = sim_errf(err, -EINVAL, "%s:%u: missing field \"%s\" (Mooncake rows need %s)",
			       name, lineno,
			       ts < 0	 ? "timestamp"
			       : in < 0	 ? "input_length"
			       : out < 0 ? "output_length"
					 : "hash_ids",
			       "timestamp, input_length, output_length, hash_ids");
		goto out;
	}
	if (!nids) {
		ret = sim_errf(err, -EINVAL, "%s:%u: field \"hash_ids\": empty list", name, lineno);
		goto out;
	}
	r = sim_trace_add(t);
	if (!r)
		goto nomem;
	r->line = lineno;
	r->session = t->n - 1;
	t->nsessions = t->n;
	r->arrival_ns = (int64_t)(ts * 1e6 + 0.5);
	r->input_len = (uint32_t)in;
	r->output_len = out ? (uint32_t)out : 1;
	r->hash_ids = ids;
	r->nhash = nids;
	/* ceil(input_length / 512) ids expected; tolerate and count others. */
	if ((uint64_t)nids * SIM_MOONCAKE_BLOCK < (uint64_t)in ||
	    (uint64_t)(nids - 1) * SIM_MOONCAKE_BLOCK >= (uint64_t)in)
		t->length_mismatches++;
	return 0;
bad:
	ret = sim_trace_line_error(err, name, lineno, what, j);
	goto out;
nomem:
	ret = sim_errf(err, -ENOMEM, "%s:%u: out of memory", name, lineno);
out:
	free(ids);
	return ret;
}

void sim_mooncake_tokens(const struct sim_trace *t, uint32_t i, uint32_t *buf)
{
	const struct sim_request *r = &t->req[i];
	uint32_t done = 0;

	for (uint32_t b = 0; b < r->nhash && done < r->input_len; b++) {
		uint32_t n = r->input_len - done;

		if (n > SIM_MOONCAKE_BLOCK)
			n = SIM_MOONCAKE_BLOCK;
		sim_tokens_run(SIM_SALT_HASH_ID, r->hash_ids[b], 0, n, t->vocab, buf + done);
		done += n;
	}
	/* A row with fewer ids than its length: the rest is its own. */
	if (done < r->input_len)
		sim_tokens_run(SIM_SALT_HASH_ID ^ SIM_SALT_OUTPUT, i, done, r->input_len - done,
			       t->vocab, buf + done);
}

/* Chained hash of one block: equal blocks under equal parents are equal. */
static uint64_t block_hash(uint64_t parent, const uint32_t *tok, uint32_t n)
{
	uint64_t h = sim_mix64(parent ^ 0x626c6f636b686173ull) + n;

	for (uint32_t k = 0; k < n; k++)
		h = sim_mix64(h ^ tok[k]) + k;
	return h == U64MAP_EMPTY ? 0 : h;
}

int sim_trace_write_mooncake(const struct sim_trace *t, FILE *f)
{
	struct u64map ids;
	uint64_t next = 0;
	uint32_t *buf = NULL, cap = 0;
	int ret = 0;

	u64map_init(&ids);
	for (uint32_t i = 0; i < t->n && !ret; i++) {
		const struct sim_request *r = &t->req[i];
		uint64_t parent = sim_mix64(r->tenant + 1);

		if (r->arrival_ns < 0) {
			/* A closed-loop turn has no time of its own. */
			ret = -ENOTSUP;
			break;
		}
		if (r->input_len > cap) {
			uint32_t *p = realloc(buf, sizeof(*p) * r->input_len);

			if (!p) {
				ret = -ENOMEM;
				break;
			}
			buf = p;
			cap = r->input_len;
		}
		sim_request_input(t, i, buf);
		fputs("{\"timestamp\": ", f);
		sim_json_put_number(f, (double)r->arrival_ns / 1e6);
		fprintf(f, ", \"input_length\": %u, \"output_length\": %u, \"hash_ids\": [",
			r->input_len, r->output_len);
		for (uint32_t off = 0; off < r->input_len; off += SIM_MOONCAKE_BLOCK) {
			uint32_t n = r->input_len - off;
			uint64_t id;

			if (n > SIM_MOONCAKE_BLOCK)
				n = SIM_MOONCAKE_BLOCK;
			parent = block_hash(parent, buf + off, n);
			if (!u64map_get(&ids, parent, &id)) {
				id = next++;
				if (u64map_put(&ids, parent, id)) {
					ret = -ENOMEM;
					break;
				}
			}
			fprintf(f, off ? ", %llu" : "%llu", (unsigned long long)id);
		}
		fputs("]}\n", f);
	}
	free(buf);
	u64map_free(&ids);
	return ret;
}
