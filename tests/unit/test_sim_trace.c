// SPDX-License-Identifier: MIT
/* test_sim_trace.c - kvmm-sim's sizes, JSON reader and trace formats. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tools/sim/json.h"
#include "tools/sim/size.h"
#include "tools/sim/tokens.h"
#include "tools/sim/trace.h"

START_TEST(test_sizes)
{
	uint64_t v;

	ck_assert_int_eq(sim_parse_size("64G", &v), 0);
	ck_assert_uint_eq(v, 64ull << 30);
	ck_assert_int_eq(sim_parse_size("64GiB", &v), 0);
	ck_assert_uint_eq(v, 64ull << 30);
	ck_assert_int_eq(sim_parse_size("512MB", &v), 0);
	ck_assert_uint_eq(v, 512000000ull);
	ck_assert_int_eq(sim_parse_size("1.5t", &v), 0);
	ck_assert_uint_eq(v, 3ull << 39);
	ck_assert_int_eq(sim_parse_size("4096", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(sim_parse_size("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(sim_parse_size("2 k", &v), 0);
	ck_assert_uint_eq(v, 2048);
	ck_assert_int_eq(sim_parse_size("unlimited", &v), 0);
	ck_assert_uint_eq(v, SIM_UNLIMITED);
	ck_assert_int_eq(sim_parse_size("", &v), -EINVAL);
	ck_assert_int_eq(sim_parse_size("G", &v), -EINVAL);
	ck_assert_int_eq(sim_parse_size("-1G", &v), -EINVAL);
	ck_assert_int_eq(sim_parse_size("12X", &v), -EINVAL);
	ck_assert_int_eq(sim_parse_size("1e3", &v), -EINVAL);
	ck_assert_int_eq(sim_parse_size("inf", &v), -EINVAL);
	ck_assert_int_eq(sim_parse_size("0x10", &v), -EINVAL);
	ck_assert_int_eq(sim_parse_size("99999P", &v), -ERANGE);
	ck_assert_int_eq(sim_parse_size(NULL, &v), -EINVAL);

	char buf[32];

	ck_assert_str_eq(sim_format_size(64ull << 30, buf, sizeof(buf)), "64.00 GiB");
	ck_assert_str_eq(sim_format_size(100, buf, sizeof(buf)), "100 B");
	ck_assert_str_eq(sim_format_size(SIM_UNLIMITED, buf, sizeof(buf)), "unlimited");
}
END_TEST

START_TEST(test_json)
{
	const char *s = " {\"a\": [1, 2,3], \"b\": \"x\\\"y\\u0041\", \"c\": {\"d\": null}, "
			"\"e\": -4.5e1, \"f\": true} ";
	struct sim_json j;
	const char *k;
	size_t kl;
	int64_t iv;
	double d;
	char str[16];
	bool b;
	int n = 0;

	sim_json_init(&j, s, strlen(s));
	ck_assert_int_eq(sim_json_obj_begin(&j), 0);
	while (sim_json_obj_next(&j, &k, &kl) > 0) {
		n++;
		if (sim_json_key_is(k, kl, "a")) {
			int64_t sum = 0;

			ck_assert_int_eq(sim_json_arr_begin(&j), 0);
			while (sim_json_arr_next(&j) > 0) {
				ck_assert_int_eq(sim_json_int(&j, 0, 10, &iv), 0);
				sum += iv;
			}
			ck_assert_int_eq(sum, 6);
		} else if (sim_json_key_is(k, kl, "b")) {
			ck_assert_int_eq(sim_json_string(&j, str, sizeof(str)), 0);
			ck_assert_str_eq(str, "x\"yA");
		} else if (sim_json_key_is(k, kl, "e")) {
			ck_assert_int_eq(sim_json_number(&j, &d), 0);
			ck_assert(d == -45.0);
		} else if (sim_json_key_is(k, kl, "f")) {
			ck_assert_int_eq(sim_json_bool(&j, &b), 0);
			ck_assert(b);
		} else {
			ck_assert_int_eq(sim_json_skip(&j), 0);
		}
	}
	ck_assert_ptr_null(j.err);
	ck_assert_int_eq(sim_json_finish(&j), 0);
	ck_assert_int_eq(n, 5);

	/* Malformed texts fail with a message and a position. */
	static const char *const bad[] = {
		"{\"a\": [1, 2}", "{\"a\" 1}",	  "{\"a\": 01}", "{\"a\": 1,}", "{\"a\": tru}",
		"{\"a\": \"x}",	  "{\"a\": 1} x", "[1, 2",	 "{\"a\": 1.}", "{\"a\": -}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sim_json_init(&j, bad[i], strlen(bad[i]));
		int r = sim_json_skip(&j);

		if (!r)
			r = sim_json_finish(&j);
		ck_assert_msg(r < 0, "accepted: %s", bad[i]);
		ck_assert_ptr_nonnull(j.err);
	}
	sim_json_init(&j, "300", 3);
	ck_assert_int_eq(sim_json_int(&j, 0, 255, &iv), -ERANGE);
	sim_json_init(&j, "1.5", 3);
	ck_assert_int_eq(sim_json_int(&j, 0, 255, &iv), -EINVAL);
	sim_json_init(&j, "-9223372036854775808", 20);
	ck_assert_int_eq(sim_json_int(&j, INT64_MIN, INT64_MAX, &iv), 0);
	ck_assert(iv == INT64_MIN);
	uint64_t uv;

	sim_json_init(&j, "18446744073709551616", 20);
	ck_assert_int_eq(sim_json_uint(&j, &uv), -ERANGE);
}
END_TEST

static int load_str(struct sim_trace *t, enum sim_trace_format fmt, const char *text,
		    struct sim_err *err)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int r;

	ck_assert_ptr_nonnull(f);
	sim_trace_init(t, fmt);
	memset(err, 0, sizeof(*err));
	r = sim_trace_load_stream(t, f, "t.jsonl", fmt, err);
	fclose(f);
	return r;
}

static uint32_t *input_of(const struct sim_trace *t, uint32_t i)
{
	uint32_t *b = malloc(sizeof(*b) * (t->req[i].input_len + 1));

	ck_assert_ptr_nonnull(b);
	sim_request_input(t, i, b);
	return b;
}

START_TEST(test_mooncake)
{
	static const char text[] =
		"{\"timestamp\": 0, \"input_length\": 655, \"output_length\": 52, "
		"\"hash_ids\": [46, 47]}\n"
		"\n"
		"{\"timestamp\": 10535, \"input_length\": 672, \"output_length\": 26, "
		"\"hash_ids\": [46, 47], \"session_id\": \"x\"}\n"
		"{\"hash_ids\": [46, 48, 49], \"output_length\": 0, \"input_length\": 1100, "
		"\"timestamp\": 27482.5}\n";
	struct sim_trace t;
	struct sim_err err;
	uint32_t *a, *b, *c;

	ck_assert_int_eq(load_str(&t, SIM_FMT_MOONCAKE, text, &err), 0);
	ck_assert_uint_eq(t.n, 3);
	ck_assert_uint_eq(t.req[0].line, 1);
	ck_assert_uint_eq(t.req[1].line, 3);
	ck_assert_int_eq(t.req[1].arrival_ns, 10535000000ll);
	ck_assert_int_eq(t.req[2].arrival_ns, 27482500000ll);
	ck_assert_uint_eq(t.req[2].output_len, 1);
	ck_assert_uint_eq(t.length_mismatches, 0);
	a = input_of(&t, 0);
	b = input_of(&t, 1);
	c = input_of(&t, 2);
	/* Equal ids give equal tokens: 512 + the remainder of the shorter. */
	ck_assert_int_eq(memcmp(a, b, sizeof(*a) * 655), 0);
	ck_assert_int_eq(memcmp(a, c, sizeof(*a) * 512), 0);
	/* Different ids give different runs. */
	ck_assert_int_ne(memcmp(a + 512, c + 512, sizeof(*a) * 16), 0);
	for (uint32_t i = 0; i < 1100; i++)
		ck_assert_uint_lt(c[i], SIM_VOCAB);
	free(a);
	free(b);
	free(c);
	sim_trace_free(&t);

	/* Length and id count disagree: counted, the tail is private. */
	ck_assert_int_eq(load_str(&t, SIM_FMT_MOONCAKE,
				  "{\"timestamp\":0,\"input_length\":600,\"output_length\":1,"
				  "\"hash_ids\":[1]}\n",
				  &err),
			 0);
	ck_assert_uint_eq(t.length_mismatches, 1);
	sim_trace_free(&t);

	static const struct {
		const char *text, *msg;
	} bad[] = {
		{"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1}\n",
		 "t.jsonl:1: missing field \"hash_ids\""},
		{"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": []}",
		 "t.jsonl:1: field \"hash_ids\": empty list"},
		{"\n\n{\"timestamp\": -1, \"input_length\": 10, \"output_length\": 1, "
		 "\"hash_ids\": [1]}",
		 "t.jsonl:3: field \"timestamp\""},
		{"{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 1, \"hash_ids\": [1]}",
		 "t.jsonl:1: field \"input_length\": integer out of range"},
		{"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": "
		 "[1,]}",
		 "t.jsonl:1: field \"hash_ids\": expected"},
		{"{\"timestamp\": 0, \"input_length\": \"10\"}",
		 "t.jsonl:1: field \"input_length\""},
		{"{\"timestamp\": 0,", "t.jsonl:1: unterminated object"},
		{"not json", "t.jsonl:1: expected an object"},
		{"", "t.jsonl: no requests"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_lt(load_str(&t, SIM_FMT_MOONCAKE, bad[i].text, &err), 0);
		ck_assert_msg(!strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)),
			      "case %zu: got \"%s\", want \"%s...\"", i, err.msg, bad[i].msg);
		sim_trace_free(&t);
	}
}
END_TEST

START_TEST(test_kvmm_format)
{
	static const char text[] =
		"{\"session\": \"a\", \"timestamp_ms\": 5, \"input\": [1, 2, 3], \"output\": [7, "
		"8]}\n"
		"{\"session\": 9, \"input\": [1, 2, 4], \"output_length\": 3, \"tenant\": 2}\n"
		"{\"session\": \"a\", \"think_ms\": 1000, \"append\": [5], \"output_length\": 2}\n"
		"{\"session\": \"a\", \"append\": [6, 6], \"output_length\": 1}\n"
		"{\"session\": \"9\", \"timestamp_ms\": 3000, \"input\": [1], \"output\": []}\n";
	struct sim_trace t;
	struct sim_err err;
	uint32_t *p, out[3];

	ck_assert_int_eq(load_str(&t, SIM_FMT_KVMM, text, &err), 0);
	ck_assert_uint_eq(t.n, 5);
	ck_assert_uint_eq(t.nsessions, 2);
	ck_assert_int_eq(t.req[0].arrival_ns, 5000000);
	ck_assert_int_eq(t.req[1].arrival_ns, 0);
	ck_assert_uint_eq(t.req[1].tenant, 2);
	ck_assert_int_eq(t.req[2].prev, 0);
	ck_assert_int_eq(t.req[2].arrival_ns, -1);
	ck_assert_uint_eq(t.req[2].think_ns, 1000000000ull);
	ck_assert_uint_eq(t.req[2].turn, 1);
	ck_assert_uint_eq(t.req[2].input_len, 3 + 2 + 1);
	ck_assert_int_eq(t.req[3].prev, 2);
	ck_assert_int_eq(t.req[3].arrival_ns, -1);
	ck_assert_uint_eq(t.req[3].think_ns, 0);
	ck_assert_uint_eq(t.req[3].input_len, 6 + 2 + 2);
	/* Session 9 given as a number and as a string is one session. */
	ck_assert_int_eq(t.req[4].prev, 1);
	ck_assert_uint_eq(t.req[4].session, t.req[1].session);
	ck_assert_uint_eq(t.req[4].output_len, 1);

	/* Turn 3's prompt = turn 2's prompt + turn 2's output + its append. */
	p = input_of(&t, 3);
	uint32_t want_head[] = {1, 2, 3, 7, 8, 5};

	ck_assert_int_eq(memcmp(p, want_head, sizeof(want_head)), 0);
	sim_request_output(&t, 2, out);
	ck_assert_int_eq(memcmp(p + 6, out, sizeof(*out) * 2), 0);
	ck_assert_uint_eq(p[8], 6);
	ck_assert_uint_eq(p[9], 6);
	free(p);
	/* Derived outputs are deterministic and differ between requests. */
	uint32_t o1[3], o2[3];

	sim_request_output(&t, 1, o1);
	sim_request_output(&t, 1, o2);
	ck_assert_int_eq(memcmp(o1, o2, sizeof(o1)), 0);
	sim_request_output(&t, 2, o2);
	ck_assert_int_ne(memcmp(o1, o2, sizeof(*o1) * 2), 0);
	sim_trace_free(&t);

	static const struct {
		const char *text, *msg;
	} bad[] = {
		{"{\"append\": [1], \"output_length\": 1}",
		 "t.jsonl:1: \"append\" needs an earlier turn"},
		{"{\"session\": 1, \"think_ms\": 1, \"input\": [1], \"output_length\": 1}",
		 "t.jsonl:1: \"think_ms\" needs an earlier turn"},
		{"{\"input\": [1], \"output_length\": 1, \"outptu\": 3}",
		 "t.jsonl:1: unknown field \"outptu\""},
		{"{\"input\": [1]}", "t.jsonl:1: missing \"output_length\""},
		{"{\"output_length\": 1}", "t.jsonl:1: missing \"input\""},
		{"{\"input\": [], \"output_length\": 1}", "t.jsonl:1: empty input"},
		{"{\"input\": [1, -2], \"output_length\": 1}",
		 "t.jsonl:1: field \"input\": expected a non-negative integer"},
		{"{\"input\": [4294967296], \"output_length\": 1}",
		 "t.jsonl:1: field \"input\": integer out of range"},
		{"{\"input\": [1], \"output\": [1, 2], \"output_length\": 3}",
		 "t.jsonl:1: output_length 3 differs"},
		{"{\"input\": [1], \"append\": [1], \"output_length\": 1}",
		 "t.jsonl:1: field \"append\": give one of input and append"},
		{"{\"session\": 1, \"input\": [1], \"output_length\": 1}\n"
		 "{\"session\": 1, \"timestamp_ms\": 1, \"think_ms\": 1, \"append\": [1], "
		 "\"output_length\": 1}",
		 "t.jsonl:2: give timestamp_ms or think_ms, not both"},
		{"{\"session\": 1, \"input\": [1], \"output_length\": 1}\n"
		 "{\"session\": 1, \"tenant\": 4, \"append\": [1], \"output_length\": 1}",
		 "t.jsonl:2: \"append\" continues a turn of another tenant"},
		{"{\"input\": [1], \"output_length\": 1, \"timestamp_ms\": \"3\"}",
		 "t.jsonl:1: field \"timestamp_ms\": expected a number"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_lt(load_str(&t, SIM_FMT_KVMM, bad[i].text, &err), 0);
		ck_assert_msg(!strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)),
			      "case %zu: got \"%s\", want \"%s...\"", i, err.msg, bad[i].msg);
		sim_trace_free(&t);
	}
}
END_TEST

/* Writing and reading back gives the same prompts and outputs. */
START_TEST(test_roundtrip)
{
	static const char text[] =
		"{\"session\": \"a\", \"timestamp_ms\": 5, \"input\": [1, 2, 3], \"output\": [7, "
		"8]}\n"
		"{\"session\": \"b\", \"timestamp_ms\": 0.25, \"input\": [1, 2, 4], "
		"\"output_length\": 3, "
		"\"tenant\": 2}\n"
		"{\"session\": \"a\", \"think_ms\": 1000, \"append\": [5], \"output_length\": 2}\n";
	struct sim_trace t, u;
	struct sim_err err;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_int_eq(load_str(&t, SIM_FMT_KVMM, text, &err), 0);
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(sim_trace_write(&t, f, SIM_FMT_KVMM), 0);
	fclose(f);
	ck_assert_int_eq(load_str(&u, SIM_FMT_KVMM, buf, &err), 0);
	ck_assert_uint_eq(u.n, t.n);
	for (uint32_t i = 0; i < t.n; i++) {
		uint32_t *x = input_of(&t, i), *y = input_of(&u, i);
		uint32_t ox[8], oy[8];

		ck_assert_uint_eq(t.req[i].input_len, u.req[i].input_len);
		ck_assert_int_eq(memcmp(x, y, sizeof(*x) * t.req[i].input_len), 0);
		ck_assert_uint_eq(t.req[i].output_len, u.req[i].output_len);
		sim_request_output(&t, i, ox);
		sim_request_output(&u, i, oy);
		ck_assert_int_eq(memcmp(ox, oy, sizeof(*ox) * t.req[i].output_len), 0);
		ck_assert_int_eq(t.req[i].arrival_ns, u.req[i].arrival_ns);
		ck_assert_uint_eq(t.req[i].think_ns, u.req[i].think_ns);
		ck_assert_uint_eq(t.req[i].tenant, u.req[i].tenant);
		free(x);
		free(y);
	}
	sim_trace_free(&u);
	free(buf);
	buf = NULL;
	/* A closed-loop turn has no Mooncake timestamp. */
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(sim_trace_write(&t, f, SIM_FMT_MOONCAKE), -ENOTSUP);
	fclose(f);
	free(buf);
	sim_trace_free(&t);
}
END_TEST

/* Mooncake output keeps the sharing at 512-token granularity. */
START_TEST(test_mooncake_writer)
{
	struct sim_trace t, u;
	struct sim_err err;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	/* r0: A B c ; r1: A B d (shares 2 blocks) ; r2: A e (shares 1);
	 * r3: other tenant, same tokens as r0: shares nothing. */
	const uint32_t lens[4] = {1300, 1100, 700, 1300};

	sim_trace_init(&t, SIM_FMT_KVMM);
	for (int i = 0; i < 4; i++) {
		struct sim_request *r = sim_trace_add(&t);

		ck_assert_ptr_nonnull(r);
		r->session = (uint32_t)i;
		r->arrival_ns = i * 1000000ll;
		r->input_len = r->ntok = lens[i];
		r->output_len = 4;
		r->tenant = i == 3;
		r->tokens = malloc(sizeof(uint32_t) * lens[i]);
		for (uint32_t k = 0; k < lens[i]; k++) {
			uint32_t blk = k / 512, v = blk;

			if (i == 1 && blk == 2)
				v = 100;
			if (i == 2 && blk == 1)
				v = 200;
			r->tokens[k] = v * 1000 + k % 512;
		}
	}
	t.nsessions = 4;
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(sim_trace_write(&t, f, SIM_FMT_MOONCAKE), 0);
	fclose(f);
	ck_assert_int_eq(load_str(&u, SIM_FMT_MOONCAKE, buf, &err), 0);
	ck_assert_uint_eq(u.n, 4);
	ck_assert_uint_eq(u.length_mismatches, 0);
	ck_assert_uint_eq(u.req[0].nhash, 3);
	ck_assert(u.req[0].hash_ids[0] == u.req[1].hash_ids[0]);
	ck_assert(u.req[0].hash_ids[1] == u.req[1].hash_ids[1]);
	ck_assert(u.req[0].hash_ids[2] != u.req[1].hash_ids[2]);
	ck_assert(u.req[0].hash_ids[0] == u.req[2].hash_ids[0]);
	ck_assert(u.req[0].hash_ids[1] != u.req[2].hash_ids[1]);
	for (int b = 0; b < 3; b++)
		ck_assert(u.req[3].hash_ids[b] != u.req[0].hash_ids[b]);
	ck_assert_int_eq(u.req[3].arrival_ns, 3000000);
	sim_trace_free(&u);
	sim_trace_free(&t);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sim_trace");
	TCase *tc = tcase_create("trace");

	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_mooncake);
	tcase_add_test(tc, test_kvmm_format);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_mooncake_writer);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
