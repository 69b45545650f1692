/* SPDX-License-Identifier: MIT */
/*
 * engine_internal.h - the engine's state, shared by engine.c (setup, time,
 * iterations, outputs), sched.c (the scheduler's decisions: growth,
 * preemption, admission, look-ahead) and queue.c (arrivals and the FIFO).
 */
#ifndef KVMM_SIM_ENGINE_INTERNAL_H
#define KVMM_SIM_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "engine.h"
#include "gpu_attn.h"
#include "tiers.h"

enum phase {
	P_PENDING = 0, /* not arrived */
	P_QUEUED,
	P_RUNNING,
	P_DONE,
};

struct req {
	uint8_t phase;
	uint32_t seq;
	uint32_t *tok; /* input then output tokens, while queued or running */
	uint32_t target;
	uint32_t kv_len;
	uint32_t matched;
	uint32_t computed;
	uint32_t generated;
	uint32_t chunk; /* new tokens this iteration */
	int32_t next;	/* closed-loop follower (arrives after this finishes) */
	int64_t arrival;
	int64_t first_tok;
	int64_t last_tok;
	int64_t hinted_at;	     /* -1: not hinted */
	uint64_t by_tier[SIM_TIERS]; /* where this admission's match came from */
	struct sim_restore rs;	     /* blocks brought back from host/disk */
};

struct engine {
	const struct sim_engine_cfg *cfg;
	const struct sim_policy *pol;
	const struct sim_trace *t;
	struct sim_result *res;
	struct sim_err *err;
	struct kvmm_backend *be;
	struct kvmm_cache *c;
	struct kvmm_cache_info info;
	struct sim_tiers tiers;
	struct sim_gpu_attn *attn; /* --gpu */
	uint32_t *attn_slots, *attn_lens;
	struct sim_model_gpu mg;
	uint64_t model_id;
	struct req *r;
	uint32_t *heap, nheap; /* pending arrivals, by (arrival, index) */
	uint32_t *q, qhead, qlen, qcap;
	uint32_t *run, nrun; /* admission order */
	struct kvmm_step_entry *batch;
	uint32_t *batch_req;
	uint32_t finished;
	/* The queue's head did not fit: retrying costs a match and an attach
	 * each time, and only a closing sequence frees memory or a slot. */
	bool admit_blocked;
	uint32_t idle_retries;	      /* in a row, waiting for the mapper */
	int64_t now;		      /* ns */
	uint64_t kv_ns;		      /* measured: wall time inside kvmm since the last charge */
	struct kvmm_cache_stats last; /* model: backend counters at the last charge */
	int64_t next_sample;
	uint32_t progress_step, progress_next;
};

static inline uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Every kvmm call on the scheduler's path goes through KV(): its wall time
 * is what "measured" charges to the virtual clock. */
#define KV(e, call)                            \
	({                                     \
		uint64_t _t0 = wall_ns();      \
		__typeof__(call) _r = (call);  \
		(e)->kv_ns += wall_ns() - _t0; \
		_r;                            \
	})

/* A conservation check: counted, and recorded when it fails. */
#define CHECK(e, ok, ...)                                            \
	do {                                                         \
		(e)->res->checks++;                                  \
		if (!(ok))                                           \
			sim_result_violation((e)->res, __VA_ARGS__); \
	} while (0)
#define ULL(x) ((unsigned long long)(x))

/* queue.c: pending arrivals by (arrival, index), and the FIFO of queued
 * requests (preempted ones go back to its head). */
void eng_heap_push(struct engine *e, uint32_t i);
uint32_t eng_heap_pop(struct engine *e);
uint32_t eng_q_at(const struct engine *e, uint32_t k);
void eng_q_push_back(struct engine *e, uint32_t i);
void eng_q_push_front(struct engine *e, uint32_t i);
void eng_q_pop_front(struct engine *e);

/* engine.c */
struct kvmm_ns eng_ns(const struct engine *e, uint32_t i);
/* Materialise request i's tokens (prompt, then output). */
int eng_tokens(struct engine *e, uint32_t i);
/* The simulated clock, as the prefix cache reads it. */
uint64_t eng_clock(void *arg);
const char *eng_req_name(const struct engine *e, uint32_t i, char *buf, size_t len);
/* An error of a kvmm call for request i, with its message. */
int eng_kverr(struct engine *e, int ret, const char *what, uint32_t i);

/* sched.c */
void eng_run_remove(struct engine *e, uint32_t i);
/* Phase 1: every running sequence gets its next token or prefill chunk
 * (evicting, then preempting, when memory runs out). */
int eng_grow_running(struct engine *e, uint32_t *budget, bool *preempted);
/* Phase 2: admit queued requests in order within budget tokens. */
int eng_admit(struct engine *e, uint32_t budget);
/* Look-ahead policies: hint and restore the first queued requests. */
int eng_lookahead(struct engine *e);

#endif /* KVMM_SIM_ENGINE_INTERNAL_H */
