// SPDX-License-Identifier: MIT
/* report.c - report.json (see report.h; fields documented in docs/sim.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "report.h"
#include "size.h"

/* A small JSON writer: members of the innermost open object or array are
 * separated by commas; jw_nl() breaks the line for the reader. */
struct jw {
	FILE *f;
	int depth;
	bool first[8];
	bool nl; /* break the line before the next member */
};

static void jw_key(struct jw *w, const char *k)
{
	if (!w->first[w->depth])
		fputs(w->nl ? "," : ", ", w->f);
	if (w->nl)
		fprintf(w->f, "\n%*s", 2 * w->depth, "");
	w->nl = false;
	w->first[w->depth] = false;
	if (k) {
		sim_json_put_string(w->f, k);
		fputs(": ", w->f);
	}
}

static void jw_open(struct jw *w, const char *k, char c)
{
	jw_key(w, k);
	fputc(c, w->f);
	w->first[++w->depth] = true;
}

static void jw_close(struct jw *w, char c)
{
	if (w->nl)
		fprintf(w->f, "\n%*s", 2 * (w->depth - 1), "");
	w->nl = false;
	fputc(c, w->f);
	w->depth--;
}

static void jw_nl(struct jw *w)
{
	w->nl = true;
}

static void jw_num(struct jw *w, const char *k, double v)
{
	jw_key(w, k);
	sim_json_put_number(w->f, v);
}

static void jw_u64(struct jw *w, const char *k, uint64_t v)
{
	jw_key(w, k);
	fprintf(w->f, "%llu", (unsigned long long)v);
}

static void jw_str(struct jw *w, const char *k, const char *v)
{
	jw_key(w, k);
	if (v)
		sim_json_put_string(w->f, v);
	else
		fputs("null", w->f);
}

static void jw_bool(struct jw *w, const char *k, bool v)
{
	jw_key(w, k);
	fputs(v ? "true" : "false", w->f);
}

/* Sizes: bytes, or "unlimited". */
static void jw_bytes(struct jw *w, const char *k, uint64_t v)
{
	if (v == SIM_UNLIMITED)
		jw_str(w, k, "unlimited");
	else
		jw_u64(w, k, v);
}

/* {"gpu": .., "host": .., "disk": ..} */
static void jw_tiers(struct jw *w, const char *k, const uint64_t *v)
{
	jw_open(w, k, '{');
	for (int t = 0; t < SIM_TIERS; t++)
		jw_u64(w, sim_tier_names[t], v[t]);
	jw_close(w, '}');
}

static void jw_p50_p99(struct jw *w, const char *k, double p50, double p99, double scale)
{
	jw_open(w, k, '{');
	jw_num(w, "p50", p50 * scale);
	jw_num(w, "p99", p99 * scale);
	jw_close(w, '}');
}

static const char *layout_name(enum kvmm_layout l)
{
	return l == KVMM_LAYOUT_DEFAULT ? "default" : kvmm_layout_name(l);
}

static void policy(struct jw *w, const struct sim_result *r)
{
	struct sim_summary s;

	sim_result_summarize(r, &s);
	jw_nl(w);
	jw_open(w, NULL, '{');
	jw_str(w, "name", r->policy.name);
	jw_u64(w, "requests", r->requests);
	jw_u64(w, "finished", r->finished);
	jw_nl(w);
	jw_u64(w, "input_tokens", r->input_tokens);
	jw_u64(w, "output_tokens", r->output_tokens);
	jw_u64(w, "hit_tokens", r->hit_tokens);
	jw_num(w, "hit_rate", s.hit_rate);
	jw_nl(w);
	jw_tiers(w, "hit_tokens_by_tier", r->hit_by_tier);
	jw_u64(w, "computed_tokens", r->computed_tokens);
	jw_u64(w, "recomputed_tokens", r->recomputed_tokens);
	jw_nl(w);
	jw_open(w, "ttft_ms", '{');
	jw_num(w, "p50", s.ttft_p50 * 1e3);
	jw_num(w, "p99", s.ttft_p99 * 1e3);
	jw_num(w, "mean", s.ttft_mean * 1e3);
	jw_close(w, '}');
	jw_p50_p99(w, "itl_ms", s.itl_p50, s.itl_p99, 1e3);
	jw_p50_p99(w, "e2e_s", s.e2e_p50, s.e2e_p99, 1);
	jw_nl(w);
	jw_num(w, "throughput_tok_s", s.throughput);
	jw_num(w, "input_throughput_tok_s", s.input_throughput);
	jw_num(w, "duration_s", r->duration_s);
	jw_nl(w);
	jw_open(w, "time_s", '{');
	jw_num(w, "compute", r->compute_s);
	jw_num(w, "decode_attention", r->attn_decode_s);
	jw_num(w, "decode_attention_roofline", r->attn_decode_roofline_s);
	jw_num(w, "memops", r->memops_s);
	jw_num(w, "transfer_wait", r->transfer_s);
	jw_close(w, '}');
	jw_nl(w);
	jw_open(w, "bytes_moved", '{');
	for (int m = 0; m < SIM_MOVES; m++)
		jw_u64(w, sim_move_names[m], r->bytes_moved[m]);
	jw_close(w, '}');
	jw_nl(w);
	jw_num(w, "kv_utilization", s.kv_util);
	jw_num(w, "kv_waste", 1 - s.kv_util);
	jw_tiers(w, "peak_bytes", r->peak);
	jw_nl(w);
	jw_u64(w, "preemptions", r->preemptions);
	jw_u64(w, "iterations", r->iterations);
	jw_open(w, "attach", '{');
	jw_u64(w, "alias", r->attach_alias);
	jw_u64(w, "copy", r->attach_copy);
	jw_close(w, '}');
	jw_u64(w, "evicted_blocks", r->evictions);
	jw_u64(w, "driver_calls", r->driver_calls);
	jw_u64(w, "mapper_waits", r->mapper_waits);
	jw_u64(w, "idle_waits", r->idle_waits);
	jw_nl(w);
	jw_open(w, "tiers", '{');
	/* on the null backend the tiers hold no bytes: they checked nothing,
	 * and the report does not say they did */
	jw_str(w, "data",
	       !r->tiers_on	     ? NULL
	       : r->tier_bookkeeping ? "bookkeeping only (null backend: no bytes, nothing verified)"
				     : "real bytes, checksummed and verified");
	jw_u64(w, "spills_skipped", r->spills_skipped);
	if (r->tier_bookkeeping) {
		jw_str(w, "verify_failures", NULL);
		jw_str(w, "io_errors", NULL);
	} else {
		jw_u64(w, "verify_failures", r->tier_verify_failures);
		jw_u64(w, "io_errors", r->tier_io_errors);
	}
	jw_close(w, '}');
	jw_nl(w);
	jw_open(w, "conservation", '{');
	jw_bool(w, "ok", !r->violations);
	jw_u64(w, "checks", r->checks);
	jw_u64(w, "violations", r->violations);
	jw_str(w, "first", r->violations ? r->first_violation : NULL);
	jw_close(w, '}');
	jw_close(w, '}');
}

int sim_report_write(FILE *f, const struct sim_options *o, const struct sim_trace *t,
		     const struct sim_result *res, uint32_t n)
{
	struct jw w = {.f = f, .first = {true}};
	struct sim_trace_summary ts;
	struct sim_model_gpu mg;
	char spec[512];

	sim_trace_summarize(t, &ts);
	sim_model_per_gpu(o->model, &mg);
	if (!o->trace_path)
		sim_workload_format(&o->workload, spec, sizeof(spec));
	jw_open(&w, NULL, '{');
	jw_nl(&w);
	jw_str(&w, "tool", "kvmm-sim");
	jw_u64(&w, "report_version", 1);
	jw_nl(&w);
	jw_open(&w, "workload", '{');
	jw_str(&w, "source", o->trace_path ? "trace" : "generator");
	jw_str(&w, "trace", o->trace_path);
	jw_str(&w, "format", o->trace_path ? sim_trace_format_name(o->format) : "kvmm");
	jw_str(&w, "generator", o->trace_path ? NULL : spec);
	jw_nl(&w);
	jw_u64(&w, "requests", ts.requests);
	jw_u64(&w, "sessions", ts.sessions);
	jw_u64(&w, "input_tokens", ts.input_tokens);
	jw_u64(&w, "output_tokens", ts.output_tokens);
	jw_u64(&w, "max_context", ts.max_context);
	jw_u64(&w, "mooncake_length_mismatches", t->length_mismatches);
	jw_num(&w, "time_scale", o->time_scale);
	jw_close(&w, '}');
	jw_nl(&w);
	jw_open(&w, "model", '{');
	jw_str(&w, "preset", o->model->name);
	jw_u64(&w, "layers", o->model->layers);
	jw_u64(&w, "kv_heads_per_gpu", mg.kv_heads);
	jw_u64(&w, "head_dim", o->model->head_dim);
	jw_u64(&w, "tp", o->model->tp);
	jw_u64(&w, "kv_bytes_per_token", mg.kv_bytes_per_token);
	jw_u64(&w, "weight_bytes_per_gpu", mg.weight_bytes);
	jw_close(&w, '}');
	jw_nl(&w);
	jw_open(&w, "machine", '{');
	jw_str(&w, "preset", o->machine->name);
	jw_num(&w, "flops", o->machine->flops);
	jw_num(&w, "mem_bw", o->machine->mem_bw);
	jw_num(&w, "h2d_bw", o->machine->h2d_bw);
	jw_num(&w, "disk_read_bw", o->machine->disk_read_bw);
	jw_close(&w, '}');
	jw_nl(&w);
	jw_str(&w, "backend", sim_backend_name(o->backend));
	jw_str(&w, "time_source", o->time_source == SIM_TIME_MODEL ? "model" : "measured");
	jw_bool(&w, "mapper", o->mapper);
	jw_bool(&w, "gpu_kernels", o->gpu_kernels);
	jw_nl(&w);
	jw_open(&w, "budgets", '{');
	jw_bytes(&w, "gpu_kv_bytes", o->gpu_kv_bytes);
	jw_bytes(&w, "host_bytes", o->host_bytes);
	jw_bytes(&w, "disk_bytes", o->disk_bytes);
	jw_str(&w, "disk_write", o->disk_write_through ? "through" : "back");
	jw_close(&w, '}');
	jw_nl(&w);
	jw_open(&w, "engine", '{');
	jw_u64(&w, "max_seqs", o->max_seqs);
	jw_u64(&w, "chunk_tokens", o->chunk_tokens);
	jw_u64(&w, "lookahead", o->lookahead);
	jw_str(&w, "layout", n ? res[0].layout : layout_name(o->layout));
	jw_u64(&w, "tokens_per_block", n ? res[0].tokens_per_block : 0);
	jw_u64(&w, "block_bytes", n ? res[0].block_bytes : 0);
	jw_close(&w, '}');
	jw_nl(&w);
	jw_open(&w, "policies", '[');
	for (uint32_t i = 0; i < n; i++)
		policy(&w, &res[i]);
	jw_close(&w, ']');
	jw_nl(&w);
	jw_close(&w, '}');
	fputs("\n", f);
	return fflush(f) || ferror(f) ? -EIO : 0;
}

int sim_report_save(const char *path, const struct sim_options *o, const struct sim_trace *t,
		    const struct sim_result *res, uint32_t n, struct sim_err *err)
{
	char tmp[4096];
	FILE *f;
	int ret;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return sim_errf(err, -ENAMETOOLONG, "--report: path too long");
	f = fopen(tmp, "w");
	if (!f)
		return sim_errf(err, -errno, "--report %s: %s", path, strerror(errno));
	ret = sim_report_write(f, o, t, res, n);
	if (fclose(f) && !ret)
		ret = -EIO;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret) {
		unlink(tmp);
		return sim_errf(err, ret, "--report %s: %s", path, strerror(-ret));
	}
	return 0;
}
