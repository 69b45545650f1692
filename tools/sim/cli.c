// SPDX-License-Identifier: MIT
/* cli.c - kvmm-sim's command line (see cli.h). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "size.h"
#include "tiers.h"

enum {
	O_TRACE = 256,
	O_FORMAT,
	O_WORKLOAD,
	O_WRITE_TRACE,
	O_WRITE_FORMAT,
	O_DRY_RUN,
	O_MODEL,
	O_MACHINE,
	O_BACKEND,
	O_GPU_KV,
	O_HOST,
	O_DISK,
	O_DISK_DIR,
	O_DISK_WRITE,
	O_POLICY,
	O_REPORT,
	O_PLOT,
	O_LAYOUT,
	O_TIME,
	O_MAPPER,
	O_MAX_SEQS,
	O_CHUNK,
	O_LOOKAHEAD,
	O_MAX_REQ,
	O_TIME_SCALE,
	O_SAMPLE,
	O_GPU,
	O_QUIET,
	O_LIST,
	O_HELP,
};

static const struct option longopts[] = {
	{"trace", required_argument, NULL, O_TRACE},
	{"format", required_argument, NULL, O_FORMAT},
	{"workload", required_argument, NULL, O_WORKLOAD},
	{"write-trace", required_argument, NULL, O_WRITE_TRACE},
	{"write-format", required_argument, NULL, O_WRITE_FORMAT},
	{"dry-run", no_argument, NULL, O_DRY_RUN},
	{"model", required_argument, NULL, O_MODEL},
	{"machine", required_argument, NULL, O_MACHINE},
	{"backend", required_argument, NULL, O_BACKEND},
	{"gpu-kv-bytes", required_argument, NULL, O_GPU_KV},
	{"host-bytes", required_argument, NULL, O_HOST},
	{"disk-bytes", required_argument, NULL, O_DISK},
	{"disk-dir", required_argument, NULL, O_DISK_DIR},
	{"disk-write", required_argument, NULL, O_DISK_WRITE},
	{"policy", required_argument, NULL, O_POLICY},
	{"report", required_argument, NULL, O_REPORT},
	{"plot", required_argument, NULL, O_PLOT},
	{"layout", required_argument, NULL, O_LAYOUT},
	{"time", required_argument, NULL, O_TIME},
	{"mapper", required_argument, NULL, O_MAPPER},
	{"max-seqs", required_argument, NULL, O_MAX_SEQS},
	{"chunk-tokens", required_argument, NULL, O_CHUNK},
	{"lookahead", required_argument, NULL, O_LOOKAHEAD},
	{"max-requests", required_argument, NULL, O_MAX_REQ},
	{"time-scale", required_argument, NULL, O_TIME_SCALE},
	{"sample-interval", required_argument, NULL, O_SAMPLE},
	{"gpu", no_argument, NULL, O_GPU},
	{"quiet", no_argument, NULL, O_QUIET},
	{"list-presets", no_argument, NULL, O_LIST},
	{"help", no_argument, NULL, O_HELP},
	{NULL, 0, NULL, 0},
};

void sim_cli_usage(FILE *f)
{
	fputs("usage: kvmm-sim [--trace FILE --format mooncake|kvmm | --workload SPEC]\n"
	      "                [--model PRESET] [--machine PRESET] [--backend null|host|cuda]\n"
	      "                [--gpu-kv-bytes N] [--host-bytes N] [--disk-bytes N]\n"
	      "                [--policy NAME[,NAME...]] [--report OUT.json] [options]\n"
	      "\n"
	      "Replays a serving workload through kvmm's real cache, prefix cache and tiers\n"
	      "under each policy, on a simulated clock (roofline compute + kvmm's memory\n"
	      "operations), and reports TTFT, ITL, throughput, hit rate by tier, bytes moved\n"
	      "and memory by tier.  docs/sim.md and docs/traces.md describe everything.\n"
	      "\n"
	      "workload:\n"
	      "  --trace FILE          JSONL trace to replay\n"
	      "  --format F            its format: mooncake (timestamp ms, input_length,\n"
	      "                        output_length, hash_ids of 512-token blocks) or kvmm\n"
	      "                        (session, timestamp_ms|think_ms, input|append, output|\n"
	      "                        output_length, tenant); required with --trace\n"
	      "  --workload SPEC       generate a multi-turn workload instead (default: chat):\n"
	      "                        PRESET[:key=value,...], presets chat, agent; keys\n"
	      "                        sessions turns=A-B system=NxLEN zipf user=A-B output=A-B\n"
	      "                        think rate cv loop=open|closed max-context tenants seed\n"
	      "  --max-requests N      replay only the first N requests\n"
	      "  --time-scale X        divide arrival and think times by X (X > 1: more load)\n"
	      "  --write-trace FILE    also write the workload as JSONL\n"
	      "  --write-format F      kvmm (default) or mooncake\n"
	      "  --dry-run             load and check everything, print the workload, stop\n"
	      "model and machine:\n"
	      "  --model PRESET        llama3-8b (default), llama3-70b-tp8, llama3.2-1b\n"
	      "  --machine PRESET      h100 (default) or local (this machine's CPU and RAM)\n"
	      "  --list-presets        print the presets with their KV bytes per token\n"
	      "memory (sizes take K M G T P or KiB..PiB = powers of 1024, KB..PB = of 1000,\n"
	      "and `unlimited`, but not for a host or disk tier that a policy uses):\n"
	      "  --backend B           null (default: bookkeeping only, any scale: the cache,\n"
	      "                        prefix cache and tiers keep their real index, budgets\n"
	      "                        and eviction, no bytes; tier data is not verified),\n"
	      "                        host (real memfd pages, real disk I/O, checksums) or\n"
	      "                        cuda (a real GPU)\n"
	      "  --gpu-kv-bytes N      GPU KV budget (default: what the machine leaves after\n"
	      "                        the weights)\n"
	      "  --host-bytes N        host tier (default: 2 x the GPU KV budget)\n"
	      "  --disk-bytes N        disk tier (default: 8 x the host tier)\n"
	      "  --disk-dir DIR        disk tier files, in DIR/<policy>, removed after each\n"
	      "                        policy (default: a temporary directory; none on null)\n"
	      "  --disk-write W        back (default: a spilled block goes on to disk when it\n"
	      "                        leaves the host pool) or through (at once)\n"
	      "policies (compared in one run):\n"
	      "  --policy LIST         comma-separated, default all = none, gpu-lru, gpu-host,\n"
	      "                        gpu-host-disk, lookahead, lookahead:alias, lookahead:copy;\n"
	      "                        modifiers :alias :copy (attach) :lfu (eviction)\n"
	      "output:\n"
	      "  --report OUT.json     the report (default report.json)\n"
	      "  --plot FILE|none      TTFT CDF and memory by tier (default: OUT.svg)\n"
	      "  --quiet               no progress output\n"
	      "engine:\n"
	      "  --max-seqs N          running sequences at most (default 256)\n"
	      "  --chunk-tokens N      tokens per iteration, chunked prefill (default 8192)\n"
	      "  --lookahead N         queued requests hinted by look-ahead (default 32)\n"
	      "  --layout L            default, layer-major, token-major, page-major\n"
	      "  --time model|measured memory-operation time from the machine preset (default\n"
	      "                        on null) or measured on the backend (default otherwise)\n"
	      "  --mapper on|off       kvmm's background mapper thread (default: off on null)\n"
	      "  --sample-interval S   seconds between memory samples (default 1)\n"
	      "  --gpu                 attention time from kvmm's real kernels (cuda backend)\n"
	      "\n"
	      "Exit status: 0 done, 1 bad input (the message names the flag or trace line),\n"
	      "2 a conservation check failed, 3 the run failed.\n",
	      f);
}

const char *sim_backend_name(enum kvmm_backend_type t)
{
	switch (t) {
	case KVMM_BACKEND_NULL:
		return "null";
	case KVMM_BACKEND_HOST:
		return "host";
	case KVMM_BACKEND_CUDA:
		return "cuda";
	default:
		return "auto";
	}
}

static int u32_arg(const char *flag, const char *v, uint32_t min, uint32_t max, uint32_t *out,
		   struct sim_err *err)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 10);
	if (!*v || *v == '-' || *end || errno || x < min || x > max)
		return sim_errf(err, -EINVAL, "%s: \"%s\" is not an integer in [%u, %u]", flag, v,
				min, max);
	*out = (uint32_t)x;
	return 0;
}

static int size_arg(const char *flag, const char *v, uint64_t *out, struct sim_err *err)
{
	int r = sim_parse_size(v, out);

	if (r == -ERANGE)
		return sim_errf(err, -EINVAL, "%s: \"%s\" is too large", flag, v);
	if (r)
		return sim_errf(err, -EINVAL,
				"%s: \"%s\" is not a size (e.g. 64G, 512MiB, 1.5T, unlimited)",
				flag, v);
	return 0;
}

static int double_arg(const char *flag, const char *v, double *out, struct sim_err *err)
{
	char *end;

	*out = strtod(v, &end);
	if (!*v || *end || !(*out > 0) || *out > 1e9)
		return sim_errf(err, -EINVAL, "%s: \"%s\" is not a positive number", flag, v);
	return 0;
}

static int onoff(const char *flag, const char *v, bool *out, struct sim_err *err)
{
	if (!strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "off"))
		*out = false;
	else
		return sim_errf(err, -EINVAL, "%s: \"%s\" is not on or off", flag, v);
	return 0;
}

static void defaults(struct sim_options *o)
{
	memset(o, 0, sizeof(*o));
	o->model_name = "llama3-8b";
	o->machine_name = "h100";
	o->backend = KVMM_BACKEND_NULL;
	o->report_path = "report.json";
	o->write_format = SIM_FMT_KVMM;
	o->layout = KVMM_LAYOUT_DEFAULT;
	o->max_seqs = 256;
	o->chunk_tokens = 8192;
	o->lookahead = 32;
	o->time_scale = 1;
	o->sample_interval_s = 1;
	strcpy(o->policy_list, "all");
	strcpy(o->workload_spec, "chat");
}

static int parse_one(int c, const char *v, struct sim_options *o, struct sim_err *err)
{
	switch (c) {
	case O_TRACE:
		o->trace_path = v;
		return 0;
	case O_FORMAT:
		o->format_set = true;
		if (sim_trace_format_parse(v, &o->format))
			return sim_errf(err, -EINVAL, "--format: \"%s\" is not mooncake or kvmm",
					v);
		return 0;
	case O_WORKLOAD:
		if (strlen(v) >= sizeof(o->workload_spec))
			return sim_errf(err, -EINVAL, "--workload: too long");
		strcpy(o->workload_spec, v);
		o->workload_set = true;
		return 0;
	case O_WRITE_TRACE:
		o->write_trace = v;
		return 0;
	case O_WRITE_FORMAT:
		if (sim_trace_format_parse(v, &o->write_format))
			return sim_errf(err, -EINVAL,
					"--write-format: \"%s\" is not mooncake or kvmm", v);
		return 0;
	case O_DRY_RUN:
		o->dry_run = true;
		return 0;
	case O_MODEL:
		o->model_name = v;
		return 0;
	case O_MACHINE:
		o->machine_name = v;
		return 0;
	case O_BACKEND:
		if (!strcmp(v, "null"))
			o->backend = KVMM_BACKEND_NULL;
		else if (!strcmp(v, "host"))
			o->backend = KVMM_BACKEND_HOST;
		else if (!strcmp(v, "cuda"))
			o->backend = KVMM_BACKEND_CUDA;
		else
			return sim_errf(err, -EINVAL, "--backend: \"%s\" is not null, host or cuda",
					v);
		return 0;
	case O_GPU_KV:
		o->gpu_set = true;
		return size_arg("--gpu-kv-bytes", v, &o->gpu_kv_bytes, err);
	case O_HOST:
		o->host_set = true;
		return size_arg("--host-bytes", v, &o->host_bytes, err);
	case O_DISK:
		o->disk_set = true;
		return size_arg("--disk-bytes", v, &o->disk_bytes, err);
	case O_DISK_DIR:
		o->disk_dir = v;
		return 0;
	case O_DISK_WRITE:
		if (strcmp(v, "through") && strcmp(v, "back"))
			return sim_errf(err, -EINVAL, "--disk-write: \"%s\" is not through or back",
					v);
		o->disk_write_through = !strcmp(v, "through");
		return 0;
	case O_POLICY:
		if (strlen(v) >= sizeof(o->policy_list))
			return sim_errf(err, -EINVAL, "--policy: too long");
		strcpy(o->policy_list, v);
		return 0;
	case O_REPORT:
		o->report_path = v;
		return 0;
	case O_PLOT:
		o->plot_none = !strcmp(v, "none");
		o->plot_path = o->plot_none ? NULL : v;
		return 0;
	case O_LAYOUT:
		if (!strcmp(v, "default"))
			o->layout = KVMM_LAYOUT_DEFAULT;
		else if (!strcmp(v, "layer-major"))
			o->layout = KVMM_LAYOUT_LAYER_MAJOR;
		else if (!strcmp(v, "token-major"))
			o->layout = KVMM_LAYOUT_TOKEN_MAJOR;
		else if (!strcmp(v, "page-major"))
			o->layout = KVMM_LAYOUT_PAGE_MAJOR;
		else
			return sim_errf(err, -EINVAL,
					"--layout: \"%s\" is not default, layer-major, token-major "
					"or page-major",
					v);
		return 0;
	case O_TIME:
		o->time_set = true;
		if (!strcmp(v, "model"))
			o->time_source = SIM_TIME_MODEL;
		else if (!strcmp(v, "measured"))
			o->time_source = SIM_TIME_MEASURED;
		else
			return sim_errf(err, -EINVAL, "--time: \"%s\" is not model or measured", v);
		return 0;
	case O_MAPPER:
		o->mapper_set = true;
		return onoff("--mapper", v, &o->mapper, err);
	case O_MAX_SEQS:
		return u32_arg("--max-seqs", v, 1, 65536, &o->max_seqs, err);
	case O_CHUNK:
		return u32_arg("--chunk-tokens", v, 1, 1u << 24, &o->chunk_tokens, err);
	case O_LOOKAHEAD:
		return u32_arg("--lookahead", v, 0, 1u << 20, &o->lookahead, err);
	case O_MAX_REQ:
		return u32_arg("--max-requests", v, 1, UINT32_MAX, &o->max_requests, err);
	case O_TIME_SCALE:
		return double_arg("--time-scale", v, &o->time_scale, err);
	case O_SAMPLE:
		return double_arg("--sample-interval", v, &o->sample_interval_s, err);
	case O_GPU:
		o->gpu_kernels = true;
		return 0;
	case O_QUIET:
		o->quiet = true;
		return 0;
	case O_LIST:
		o->list_presets = true;
		return 0;
	case O_HELP:
		o->help = true;
		return 0;
	}
	return -EINVAL;
}

/* Without kvmm tiers, "all" compares what a GPU-only cache can: no cache,
 * LRU, alias and copy attach; a tier policy named on its own is an error.
 * (On the null backend the tiers run as bookkeeping: docs/sim.md.) */
static int drop_tier_policies(struct sim_options *o, struct sim_err *err)
{
	char list[sizeof(o->policy_list)], *all;

	if (sim_tiers_available())
		return 0;
	all = strstr(o->policy_list, "all");
	for (uint32_t i = 0; i < o->npolicies; i++)
		if ((o->policies[i].host || o->policies[i].disk) && !all)
			return sim_errf(err, -EINVAL, "--policy %s: %s", o->policies[i].name,
					"this build of kvmm has no host/disk tiers");
	if (!all)
		return 0;
	if (snprintf(list, sizeof(list), "%.*s%s%s", (int)(all - o->policy_list), o->policy_list,
		     SIM_POLICY_ALL_GPU, all + 3) >= (int)sizeof(list))
		return sim_errf(err, -EINVAL, "--policy: too long");
	o->skipped_tier_policies = 3;
	return sim_policy_list(list, o->policies, &o->npolicies, err);
}

int sim_cli_parse(int argc, char **argv, struct sim_options *o, struct sim_err *err)
{
	int c, ret;

	defaults(o);
	optind = 0; /* GNU: start over (tests parse several command lines) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h')
			c = O_HELP;
		if (c == '?') {
			const char *bad = argv[optind - 1];

			if (optopt)
				return sim_errf(err, -EINVAL, "%s: needs a value (see --help)",
						bad);
			return sim_errf(err, -EINVAL, "unknown option %s (see --help)", bad);
		}
		ret = parse_one(c, optarg, o, err);
		if (ret)
			return ret;
	}
	if (optind < argc)
		return sim_errf(err, -EINVAL, "unexpected argument \"%s\" (see --help)",
				argv[optind]);
	if (o->help || o->list_presets)
		return 1;
	if (o->trace_path && !o->format_set)
		return sim_errf(err, -EINVAL, "--trace needs --format mooncake or --format kvmm");
	if (!o->trace_path && o->format_set)
		return sim_errf(err, -EINVAL, "--format applies to --trace, which is missing");
	if (o->trace_path && o->workload_set)
		return sim_errf(err, -EINVAL, "give --trace or --workload, not both");
	if (!o->trace_path) {
		ret = sim_workload_parse(o->workload_spec, &o->workload, err);
		if (ret)
			return ret;
	}
	o->model = sim_model_find(o->model_name);
	if (!o->model)
		return sim_errf(err, -EINVAL,
				"--model: unknown preset \"%s\" (llama3-8b, llama3-70b-tp8, "
				"llama3.2-1b; see --list-presets)",
				o->model_name);
	o->machine = sim_machine_find(o->machine_name, &o->machine_buf);
	if (!o->machine)
		return sim_errf(err, -EINVAL, "--machine: unknown preset \"%s\" (h100, local)",
				o->machine_name);
	ret = sim_policy_list(o->policy_list, o->policies, &o->npolicies, err);
	if (ret)
		return ret;
	ret = drop_tier_policies(o, err);
	if (ret)
		return ret;
	if (o->chunk_tokens < o->max_seqs)
		return sim_errf(err, -EINVAL,
				"--chunk-tokens %u is smaller than --max-seqs %u (every running "
				"sequence needs a token per iteration)",
				o->chunk_tokens, o->max_seqs);
	if (o->gpu_kernels && o->backend != KVMM_BACKEND_CUDA)
		return sim_errf(err, -EINVAL, "--gpu needs --backend cuda");
	if (!o->time_set)
		o->time_source =
			o->backend == KVMM_BACKEND_NULL ? SIM_TIME_MODEL : SIM_TIME_MEASURED;
	/* The mapper thread is nondeterministic: off on the null backend,
	 * whose reports must not vary, on where the times are measured. */
	if (!o->mapper_set)
		o->mapper = o->backend != KVMM_BACKEND_NULL;
	if (!o->plot_path && !o->plot_none) {
		size_t n = strlen(o->report_path);
		const char *dot = strrchr(o->report_path, '.');
		const char *slash = strrchr(o->report_path, '/');

		if (dot && (!slash || dot > slash))
			n = (size_t)(dot - o->report_path);
		if (n + 5 > sizeof(o->plot_buf))
			return sim_errf(err, -EINVAL, "--report: path too long");
		memcpy(o->plot_buf, o->report_path, n);
		strcpy(o->plot_buf + n, ".svg");
		o->plot_path = o->plot_buf;
	}
	return 0;
}

int sim_cli_check_budget(struct sim_options *o, struct sim_err *err)
{
	uint64_t cap;
	char a[32], b[32];
	bool need_host = false, need_disk = false;
	int ret;

	ret = sim_kv_capacity(o->model, o->machine, &cap, err);
	if (ret)
		return ret;
	if (!o->gpu_set)
		o->gpu_kv_bytes = cap;
	if (!o->gpu_kv_bytes)
		return sim_errf(err, -EINVAL, "--gpu-kv-bytes: must be > 0");
	if (o->gpu_kv_bytes == SIM_UNLIMITED && o->backend != KVMM_BACKEND_NULL)
		return sim_errf(err, -EINVAL,
				"--gpu-kv-bytes unlimited is a what-if for --backend null only");
	if (o->gpu_kv_bytes != SIM_UNLIMITED && o->gpu_kv_bytes > cap)
		return sim_errf(err, -EINVAL,
				"--gpu-kv-bytes %s is more than --machine %s leaves for KV after "
				"--model %s's weights (%s)",
				sim_format_size(o->gpu_kv_bytes, a, sizeof(a)), o->machine->name,
				o->model->name, sim_format_size(cap, b, sizeof(b)));
	for (uint32_t i = 0; i < o->npolicies; i++) {
		need_host |= o->policies[i].host;
		need_disk |= o->policies[i].disk;
	}
	if (!o->host_set)
		o->host_bytes = o->gpu_kv_bytes == SIM_UNLIMITED      ? SIM_UNLIMITED
				: o->gpu_kv_bytes > SIM_UNLIMITED / 3 ? SIM_UNLIMITED
								      : 2 * o->gpu_kv_bytes;
	if (!o->disk_set)
		o->disk_bytes =
			o->host_bytes > SIM_UNLIMITED / 9 ? SIM_UNLIMITED : 8 * o->host_bytes;
	if (need_host && !o->host_bytes)
		return sim_errf(err, -EINVAL,
				"--host-bytes 0 leaves no host tier for the policies that spill to "
				"it (gpu-host, gpu-host-disk, lookahead)");
	if (need_disk && !o->disk_bytes)
		return sim_errf(
			err, -EINVAL,
			"--disk-bytes 0 leaves no disk tier for gpu-host-disk and lookahead");
	/* the tiers index every record they could hold: a size, not "unlimited" */
	if (need_host && o->host_bytes == SIM_UNLIMITED)
		return sim_errf(err, -EINVAL,
				"--host-bytes unlimited: the host tier needs a size (its index "
				"has an entry per record it can hold)");
	if (need_disk && o->disk_bytes == SIM_UNLIMITED)
		return sim_errf(err, -EINVAL,
				"--disk-bytes unlimited: the disk tier needs a size (its index has "
				"an entry per record it can hold)");
	if (o->backend == KVMM_BACKEND_HOST) {
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
		uint64_t ram = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
		uint64_t want = o->gpu_kv_bytes + (need_host ? o->host_bytes : 0);

		if (o->host_bytes == SIM_UNLIMITED || o->disk_bytes == SIM_UNLIMITED ||
		    want < o->gpu_kv_bytes || want > ram / 4 * 3)
			return sim_errf(
				err, -EINVAL,
				"--gpu-kv-bytes + --host-bytes (%s + %s) must fit in 3/4 of "
				"this machine's RAM (%s) with --backend host; disk bytes must "
				"be finite",
				sim_format_size(o->gpu_kv_bytes, a, sizeof(a)),
				sim_format_size(o->host_bytes, b, sizeof(b)),
				sim_format_size(ram, (char[32]){0}, 32));
	}
	return 0;
}
