/* SPDX-License-Identifier: MIT */
/*
 * tiers.h - kvmm-sim's side of kvmm's tiers (pinned host pool, disk).
 *
 * kvmm spills the blocks its prefix cache evicts to the host pool and on to
 * disk; kvmm_prefix_prefetch brings a prefix back into the prefix cache,
 * where kvmm_prefix_match finds it.  The engine restores what a request
 * needs at admission (or, with look-ahead, while the request still waits in
 * the queue), then matches.
 *
 * Time: a restore runs for real (prefetch, then wait for it) and its
 * duration - measured on the backend, or priced from its bytes with the
 * machine preset's bandwidths - is laid on one restore path of the
 * simulated timeline: it starts when the path is free and the engine waits
 * only for what is not done by the time the request is admitted.  Spills
 * are paid by the evicting call (measured), or priced at the device-to-host
 * bandwidth (model); disk writes run in the background.  Queued spills are
 * flushed after every iteration, so what the tiers hold does not depend on
 * thread timing.
 */
#ifndef KVMM_SIM_TIERS_H
#define KVMM_SIM_TIERS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "err.h"
#include "kvmm.h"
#include "result.h"

struct sim_tiers {
	struct kvmm_cache *c;
	const struct sim_engine_cfg *cfg;
	bool on;   /* host pool enabled */
	bool disk; /* disk tier enabled */
	char dir[4096];
	bool own_dir;		      /* a temporary directory, removed at close */
	uint32_t tpb;		      /* tokens per block */
	uint64_t blk;		      /* bytes per block */
	int64_t path_free;	      /* simulated ns when the restore path is idle */
	double wait_s;		      /* restore waits to charge at the next iteration */
	struct kvmm_tiers_stats last; /* at the last spill charge */
};

/* One request's restore. */
struct sim_restore {
	struct kvmm_prefetch *pf; /* pins the restored prefix; NULL: none */
	int64_t ready;		  /* simulated ns when it is all on the device */
	uint32_t host_tokens;	  /* restored from the host pool */
	uint32_t disk_tokens;	  /* restored from disk */
	bool tried;
};

/* Whether this build of kvmm has host and disk tiers. */
bool sim_tiers_available(void);

/* Enable the tiers the policy asks for on c (nothing for policies without
 * tiers).  Errors name the flag at fault. */
int sim_tiers_open(struct sim_tiers *t, struct kvmm_cache *c, const struct sim_engine_cfg *cfg,
		   const struct sim_policy *p, struct sim_err *err);
/* After the cache is destroyed (which takes kvmm's tiers down): remove a
 * temporary disk directory. */
void sim_tiers_close(struct sim_tiers *t);

/* Restore what the tiers hold of tokens[0..n) in ns, starting at simulated
 * time now, into *r (which must be empty). */
int sim_tiers_restore(struct sim_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
		      uint32_t n, int64_t now, struct sim_restore *r);
/* The request is admitted at now: charge what of its restore is not done. */
void sim_tiers_admit(struct sim_tiers *t, int64_t now, const struct sim_restore *r);
/* Split `matched` tokens of an admission by where they came from. */
void sim_tiers_split(const struct sim_restore *r, uint32_t matched, uint64_t by_tier[SIM_TIERS]);
/* Unpin and forget. */
void sim_tiers_release(struct sim_tiers *t, struct sim_restore *r);

/* Seconds of restore waits to charge since the last call. */
double sim_tiers_take_wait(struct sim_tiers *t);
/* Model time of the spills made since the last call (device to host). */
double sim_tiers_spill_time(struct sim_tiers *t);
/* After an iteration: let queued spills finish. */
int sim_tiers_flush(struct sim_tiers *t);
/* Check host and disk usage against their budgets (counted in res). */
void sim_tiers_check(struct sim_tiers *t, struct sim_result *res);
/* bytes[HOST], bytes[DISK] = in use now. */
void sim_tiers_usage(struct sim_tiers *t, uint64_t bytes[SIM_TIERS]);
/* Bytes moved by path, at the end of a run. */
void sim_tiers_collect(struct sim_tiers *t, struct sim_result *res);

#endif /* KVMM_SIM_TIERS_H */
