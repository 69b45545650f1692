// SPDX-License-Identifier: MIT
/*
 * stats.c - the cache's counters as a struct and as JSON.
 *
 * Every counter is maintained incrementally under the cache lock, so a
 * snapshot is one short critical section and always self-consistent.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cache_internal.h"

int kvmm_cache_stats(const struct kvmm_cache *c, struct kvmm_cache_stats *st)
{
	uint64_t ppb;

	if (!c || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	ppb = c->g.ppb;
	kvmm_lock(c);
	st->budget_bytes = c->cfg.budget_bytes;
	/* Pages being created count: they were admitted under the budget. */
	st->pages_created = c->committed_pages;
	st->pages_free = (uint64_t)c->nfree * ppb;
	st->pages_mapped = (uint64_t)c->own_active * ppb;
	st->pages_deferred = (uint64_t)c->own_idle * ppb;
	st->pages_shared = (uint64_t)c->ncached * ppb;
	st->pages_peak = c->n.pages_peak;
	st->seqs_active = c->seqs_active;
	st->tokens_used = c->tokens_used;
	st->bytes_used = c->tokens_used * c->g.token_bytes;
	st->bytes_mapped = ((uint64_t)c->own_active + c->shared_active) * c->g.block_bytes;
	st->step_calls = c->n.step_calls;
	st->mapper_waits = c->n.mapper_waits;
	st->mapper_wait_ns = c->n.mapper_wait_ns;
	st->mapper_pages_mapped = c->n.mapper_pages_mapped;
	st->critical_path_driver_calls = c->n.critical_path_driver_calls;
	st->alloc_failures = c->n.alloc_failures;
	st->mapper_driver_calls = c->n.mapper_driver_calls;
	st->pages_reused = c->n.pages_reused;
	st->steals_idle = c->n.steals_idle;
	st->steals_ahead = c->n.steals_ahead;
	st->pages_destroyed = c->n.pages_destroyed;
	st->reclaim_calls = c->n.reclaim_calls;
	st->pressure_calls = c->n.pressure_calls;
	kvmm_unlock(c);
	return kvmm_backend_stats(c->be, &st->backend);
}

struct jbuf {
	char *p;
	size_t len, used; /* used may exceed len: the size it would need */
};

static void __attribute__((format(printf, 2, 3))) jput(struct jbuf *j, const char *fmt, ...)
{
	size_t room = j->used < j->len ? j->len - j->used : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? j->p + j->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		j->used += (size_t)n;
}

static const char *const op_names[KVMM_OP__COUNT] = {
	"reserve",    "release_va", "create", "destroy", "map",
	"set_access", "unmap",	    "copy",   "fill",	 "sync",
};

static void jarray(struct jbuf *j, const char *name, const uint64_t *v)
{
	jput(j, ",\"%s\":{", name);
	for (int i = 0; i < KVMM_OP__COUNT; i++)
		jput(j, "%s\"%s\":%llu", i ? "," : "", op_names[i], (unsigned long long)v[i]);
	jput(j, "}");
}

int kvmm_cache_stats_json(const struct kvmm_cache *c, char *buf, size_t len)
{
	struct kvmm_cache_stats st;
	struct jbuf j = {buf, len, 0};
	int ret;

	if (!c || (!buf && len))
		return -EINVAL;
	ret = kvmm_cache_stats(c, &st);
	if (ret)
		return ret;

	const struct {
		const char *name;
		uint64_t v;
	} f[] = {
		{"budget_bytes", st.budget_bytes},
		{"pages_created", st.pages_created},
		{"pages_free", st.pages_free},
		{"pages_mapped", st.pages_mapped},
		{"pages_deferred", st.pages_deferred},
		{"pages_shared", st.pages_shared},
		{"pages_peak", st.pages_peak},
		{"seqs_active", st.seqs_active},
		{"tokens_used", st.tokens_used},
		{"bytes_used", st.bytes_used},
		{"bytes_mapped", st.bytes_mapped},
		{"step_calls", st.step_calls},
		{"mapper_waits", st.mapper_waits},
		{"mapper_wait_ns", st.mapper_wait_ns},
		{"mapper_pages_mapped", st.mapper_pages_mapped},
		{"critical_path_driver_calls", st.critical_path_driver_calls},
		{"alloc_failures", st.alloc_failures},
		{"mapper_driver_calls", st.mapper_driver_calls},
		{"pages_reused", st.pages_reused},
		{"steals_idle", st.steals_idle},
		{"steals_ahead", st.steals_ahead},
		{"pages_destroyed", st.pages_destroyed},
		{"reclaim_calls", st.reclaim_calls},
		{"pressure_calls", st.pressure_calls},
	};
	jput(&j, "{\"backend\":\"%s\",\"layout\":\"%s\",\"page_size\":%llu",
	     kvmm_backend_name(c->be), kvmm_layout_name(c->g.layout),
	     (unsigned long long)c->g.page);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		jput(&j, ",\"%s\":%llu", f[i].name, (unsigned long long)f[i].v);
	jput(&j, ",\"kv_utilization\":%.6f",
	     st.bytes_mapped ? (double)st.bytes_used / (double)st.bytes_mapped : 0.0);
	jput(&j, ",\"backend_stats\":{\"pages_live\":%llu,\"va_reserved_bytes\":%llu",
	     (unsigned long long)st.backend.pages_live,
	     (unsigned long long)st.backend.va_reserved_bytes);
	jarray(&j, "calls", st.backend.calls);
	jarray(&j, "errors", st.backend.errors);
	jarray(&j, "time_ns", st.backend.time_ns);
	jput(&j, "}}");
	if (j.used > INT32_MAX)
		return -EOVERFLOW;
	return (int)j.used;
}
