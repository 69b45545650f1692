/* SPDX-License-Identifier: MIT */
/*
 * trace.h - a workload: the requests kvmm-sim replays, read from a JSONL
 * trace (Mooncake's format or kvmm's own, docs/traces.md) or made by the
 * generator (workload.h).
 *
 * Token ids are not stored per request but produced on demand
 * (sim_request_input): a Mooncake request keeps its hash ids, a kvmm turn
 * that continues a conversation keeps only the tokens it appends.  So a
 * trace of tens of thousands of 10K-token requests stays small, and the
 * engine materialises a prompt only while the request runs.
 */
#ifndef KVMM_SIM_TRACE_H
#define KVMM_SIM_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum sim_trace_format {
	SIM_FMT_MOONCAKE = 0,
	SIM_FMT_KVMM = 1,
};

/* Tokens per Mooncake hash id. */
#define SIM_MOONCAKE_BLOCK 512u
/* Longest prompt or output accepted from a trace. */
#define SIM_MAX_REQ_TOKENS (1u << 22)

struct sim_request {
	uint32_t line;	  /* 1-based line in the trace file; 0 when generated */
	int32_t prev;	  /* earlier turn of the same session, or -1 */
	uint32_t session; /* dense session index */
	uint32_t turn;	  /* 0 for a session's first request */
	uint32_t input_len;
	uint32_t output_len; /* >= 1: the first token ends the prefill */
	/* Arrival: arrival_ns >= 0 is a fixed time (open loop); -1 means
	 * think_ns after the last output token of prev (closed loop). */
	int64_t arrival_ns;
	uint64_t think_ns;
	uint64_t tenant; /* namespace salt: tenants never share cache entries */
	/* Mooncake: nhash ids, each SIM_MOONCAKE_BLOCK tokens, the last one
	 * holding the remainder of input_len. */
	uint32_t nhash;
	uint64_t *hash_ids;
	/* kvmm: the prompt is prev's prompt + prev's output + tokens[0..ntok)
	 * (or just tokens when prev < 0). */
	uint32_t ntok;
	uint32_t *tokens;
	bool appends; /* tokens follow prev's prompt and output ("append") */
	/* Output tokens; NULL: derived from the request's index. */
	uint32_t *out_tokens;
};

struct sim_trace {
	enum sim_trace_format format;
	struct sim_request *req;
	uint32_t n, cap;
	uint32_t nsessions;
	uint32_t vocab;
	/* Mooncake rows whose hash_ids did not match input_length (the tail
	 * got request-private tokens, or extra ids were ignored). */
	uint32_t length_mismatches;
	/* session names of a kvmm trace, for sessions given as strings */
	char **session_names;
	int32_t *session_last; /* last request of each session so far */
	uint32_t sessions_cap;
	void *session_index; /* name hash -> session (struct u64map) */
};

void sim_trace_init(struct sim_trace *t, enum sim_trace_format fmt);
void sim_trace_free(struct sim_trace *t);
/* Append a zeroed request (prev = -1); NULL on ENOMEM. */
struct sim_request *sim_trace_add(struct sim_trace *t);

/*
 * Read a JSONL trace.  Blank lines are skipped.  A malformed line fails the
 * whole load with -EINVAL and a message "FILE:LINE: what (column C)".
 * name is used in messages.  -errno of the file's open/read as well.
 */
int sim_trace_load(struct sim_trace *t, const char *path, enum sim_trace_format fmt,
		   struct sim_err *err);
int sim_trace_load_stream(struct sim_trace *t, FILE *f, const char *name, enum sim_trace_format fmt,
			  struct sim_err *err);
/* Parse one line (no newline) into t; lineno for messages. */
int sim_trace_parse_line(struct sim_trace *t, const char *s, size_t len, const char *name,
			 uint32_t lineno, struct sim_err *err);

/* Fill buf (room for r->input_len) with request i's prompt. */
void sim_request_input(const struct sim_trace *t, uint32_t i, uint32_t *buf);
/* Fill buf (room for r->output_len) with request i's output tokens. */
void sim_request_output(const struct sim_trace *t, uint32_t i, uint32_t *buf);

/* Write the trace as JSONL in a format (kvmm keeps explicit tokens;
 * mooncake turns 512-token blocks into hash ids, equal chained blocks
 * giving equal ids).  -EIO on write errors. */
int sim_trace_write(const struct sim_trace *t, FILE *f, enum sim_trace_format fmt);

/* "mooncake" / "kvmm" */
const char *sim_trace_format_name(enum sim_trace_format fmt);
int sim_trace_format_parse(const char *s, enum sim_trace_format *fmt);

/* Totals over the trace. */
struct sim_trace_summary {
	uint32_t requests;
	uint32_t sessions;
	uint64_t input_tokens;
	uint64_t output_tokens;
	uint32_t max_input, max_context; /* context = input + output */
	double span_s;			 /* last fixed arrival (closed-loop turns excluded) */
};
void sim_trace_summarize(const struct sim_trace *t, struct sim_trace_summary *s);

#endif /* KVMM_SIM_TRACE_H */
