// SPDX-License-Identifier: MIT
/* tiers.c - kvmm-sim's side of kvmm's tiers (see tiers.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "size.h"
#include "tiers.h"

bool sim_tiers_available(void)
{
	return true;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A directory for this run's disk tier: DIR/<policy> under --disk-dir, or
 * a fresh one under $TMPDIR (/var/tmp: /tmp is often tmpfs, without
 * O_DIRECT); either is removed at the end, as each policy starts cold and
 * `--policy all` would otherwise leave a --disk-bytes file per policy. */
static int make_dir(struct sim_tiers *t, const struct sim_policy *p, struct sim_err *err)
{
	const char *base = t->cfg->disk_dir;
	char name[sizeof(p->name)];

	snprintf(name, sizeof(name), "%s", p->name);
	for (char *c = name; *c; c++)
		if (*c == ':' || *c == '/')
			*c = '_';
	if (base) {
		if (mkdir(base, 0755) && errno != EEXIST)
			return sim_errf(err, -errno, "--disk-dir %s: %s", base, strerror(errno));
		if (snprintf(t->dir, sizeof(t->dir), "%s/%s", base, name) >= (int)sizeof(t->dir))
			return sim_errf(err, -ENAMETOOLONG, "--disk-dir: path too long");
		if (mkdir(t->dir, 0755) && errno != EEXIST)
			return sim_errf(err, -errno, "--disk-dir %s: %s", t->dir, strerror(errno));
		t->own_dir = true;
		return 0;
	}
	base = getenv("TMPDIR");
	snprintf(t->dir, sizeof(t->dir), "%s/kvmm-sim-XXXXXX", base ? base : "/var/tmp");
	if (!mkdtemp(t->dir))
		return sim_errf(err, -errno,
				"a temporary disk tier directory in %s: %s (--disk-dir)",
				base ? base : "/var/tmp", strerror(errno));
	t->own_dir = true;
	return 0;
}

/* The disk tier's files are flat in its directory. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4352];

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

int sim_tiers_open(struct sim_tiers *t, struct kvmm_cache *c, const struct sim_engine_cfg *cfg,
		   const struct sim_policy *p, struct sim_err *err)
{
	struct kvmm_tiers_config tc = {
		.host_placement = KVMM_HOST_GPU_NODE,
		.host_policy = KVMM_WRITE_BACK,
		.disk_policy = cfg->disk_write_through ? KVMM_WRITE_THROUGH : KVMM_WRITE_BACK,
		/* each policy starts cold; /var/tmp may lack O_DIRECT */
		.flags = KVMM_TIERS_DISK_DISCARD | KVMM_TIERS_DISK_BUFFERED,
	};
	struct kvmm_cache_info info;
	char a[32], b[32];
	int ret;

	memset(t, 0, sizeof(*t));
	t->c = c;
	t->cfg = cfg;
	if (!p->host && !p->disk)
		return 0;
	ret = kvmm_cache_get_info(c, &info);
	if (ret)
		return sim_errf(err, ret, "kvmm_cache_get_info: %s", kvmm_strerror(ret));
	t->tpb = info.tokens_per_block;
	t->blk = info.block_bytes;
	tc.host_bytes = cfg->host_bytes;
	if (p->disk && cfg->backend == KVMM_BACKEND_NULL) {
		/* bookkeeping only: the disk tier has no files, the
		 * directory only names it */
		snprintf(t->dir, sizeof(t->dir), "(none: null backend)");
		tc.disk_dir = t->dir;
		tc.disk_bytes = cfg->disk_bytes;
	} else if (p->disk) {
		ret = make_dir(t, p, err);
		if (ret)
			return ret;
		tc.disk_dir = t->dir;
		tc.disk_bytes = cfg->disk_bytes;
	}
	ret = kvmm_tiers_enable(c, &tc);
	if (ret)
		return sim_errf(
			err, ret, "--policy %s: kvmm_tiers_enable (--host-bytes %s%s%s%s%s): %s",
			p->name, sim_format_size(cfg->host_bytes, a, sizeof(a)),
			p->disk ? ", --disk-bytes " : "",
			p->disk ? sim_format_size(cfg->disk_bytes, b, sizeof(b)) : "",
			p->disk ? ", --disk-dir " : "", p->disk ? t->dir : "", kvmm_strerror(ret));
	t->on = true;
	t->disk = p->disk;
	return kvmm_tiers_stats(c, &t->last);
}

void sim_tiers_close(struct sim_tiers *t)
{
	if (t->own_dir)
		remove_dir(t->dir);
	t->own_dir = false;
	t->on = false;
}

static double bytes_time(double bytes, double bw)
{
	return bw > 0 ? bytes / bw : 0;
}

int sim_tiers_restore(struct sim_tiers *t, const struct kvmm_ns *ns, const uint32_t *tokens,
		      uint32_t n, int64_t now, struct sim_restore *r)
{
	struct kvmm_tiers_stats a, b;
	uint64_t t0;
	uint32_t found = 0;
	double d;
	int64_t got, start;
	int ret;

	r->tried = true;
	if (!t->on || !n)
		return 0;
	kvmm_tiers_stats(t->c, &a);
	t0 = wall_ns();
	ret = kvmm_prefix_prefetch(t->c, ns, tokens, n, 0, &r->pf, &found);
	if (ret)
		return ret;
	if (!r->pf)
		return 0;
	got = kvmm_prefetch_wait(t->c, r->pf, found, UINT64_MAX);
	if (got < 0)
		return (int)got;
	d = (double)(wall_ns() - t0) * 1e-9;
	kvmm_tiers_stats(t->c, &b);
	r->host_tokens = (uint32_t)((b.restores_host - a.restores_host) * t->tpb);
	r->disk_tokens = (uint32_t)((b.restores_disk - a.restores_disk) * t->tpb);
	if (t->cfg->time_source == SIM_TIME_MODEL) {
		const struct sim_machine *g = t->cfg->machine;
		double disk = (double)(b.restores_disk - a.restores_disk) * (double)t->blk;

		d = bytes_time((double)(b.restore_bytes - a.restore_bytes), g->h2d_bw) +
		    bytes_time(disk, g->disk_read_bw);
	}
	/* One restore path: restores queue behind each other. */
	start = now > t->path_free ? now : t->path_free;
	r->ready = start + (int64_t)(d * 1e9);
	t->path_free = r->ready;
	return 0;
}

void sim_tiers_admit(struct sim_tiers *t, int64_t now, const struct sim_restore *r)
{
	if (r->pf && r->ready > now)
		t->wait_s += (double)(r->ready - now) * 1e-9;
}

void sim_tiers_split(const struct sim_restore *r, uint32_t matched, uint64_t by_tier[SIM_TIERS])
{
	uint32_t host = r->host_tokens < matched ? r->host_tokens : matched;
	uint32_t disk = r->disk_tokens < matched - host ? r->disk_tokens : matched - host;

	by_tier[SIM_TIER_HOST] = host;
	by_tier[SIM_TIER_DISK] = disk;
	by_tier[SIM_TIER_GPU] = matched - host - disk;
}

void sim_tiers_release(struct sim_tiers *t, struct sim_restore *r)
{
	if (r->pf)
		kvmm_prefetch_release(t->c, r->pf);
	memset(r, 0, sizeof(*r));
}

double sim_tiers_take_wait(struct sim_tiers *t)
{
	double s = t->wait_s;

	t->wait_s = 0;
	return s;
}

double sim_tiers_spill_time(struct sim_tiers *t)
{
	struct kvmm_tiers_stats st;
	double s;

	if (!t->on || kvmm_tiers_stats(t->c, &st))
		return 0;
	s = bytes_time((double)(st.spill_host_bytes - t->last.spill_host_bytes),
		       t->cfg->machine->d2h_bw);
	t->last = st;
	return s;
}

int sim_tiers_flush(struct sim_tiers *t)
{
	return t->on ? kvmm_tiers_flush(t->c) : 0;
}

static void usage(struct sim_tiers *t, uint64_t *host, uint64_t *disk)
{
	struct kvmm_tiers_stats st;

	*host = *disk = 0;
	if (!t->on || kvmm_tiers_stats(t->c, &st))
		return;
	*host = (st.host_slots - st.host_slots_free) * st.host_slot_bytes;
	*disk = st.disk_used_bytes;
}

void sim_tiers_check(struct sim_tiers *t, struct sim_result *res)
{
	uint64_t host, disk;

	if (!t->on)
		return;
	usage(t, &host, &disk);
	res->checks += 2;
	if (host > t->cfg->host_bytes)
		sim_result_violation(res, "host tier over budget: %llu bytes, budget %llu",
				     (unsigned long long)host,
				     (unsigned long long)t->cfg->host_bytes);
	if (t->disk && disk > t->cfg->disk_bytes)
		sim_result_violation(res, "disk tier over budget: %llu bytes, budget %llu",
				     (unsigned long long)disk,
				     (unsigned long long)t->cfg->disk_bytes);
}

void sim_tiers_usage(struct sim_tiers *t, uint64_t bytes[SIM_TIERS])
{
	usage(t, &bytes[SIM_TIER_HOST], &bytes[SIM_TIER_DISK]);
}

void sim_tiers_collect(struct sim_tiers *t, struct sim_result *res)
{
	struct kvmm_tiers_stats st;

	if (!t->on || kvmm_tiers_stats(t->c, &st))
		return;
	res->bytes_moved[SIM_MOVE_GPU_TO_HOST] = st.spill_host_bytes;
	res->bytes_moved[SIM_MOVE_HOST_TO_DISK] = st.spill_disk_bytes;
	res->bytes_moved[SIM_MOVE_DISK_TO_HOST] = st.restores_disk * t->blk;
	res->bytes_moved[SIM_MOVE_HOST_TO_GPU] = st.restore_bytes;
	res->tiers_on = true;
	res->tier_bookkeeping = st.bookkeeping_only;
	res->tier_verify_failures = st.verify_failures;
	res->tier_io_errors = st.io_errors;
	res->spills_skipped = st.spill_skipped;
}
