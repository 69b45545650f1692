// SPDX-License-Identifier: MIT
/* show.c - kvmmctl status, pools, residency: tables, JSON, Prometheus. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvmmctl.h"

static const char *const state_name[KVMM_PAGE_STATES] = {"free", "hot", "cold"};
static const char *const tier_name[KVMM_TIER_COUNT] = {"gpu", "host", "disk", "inflight"};

static const struct {
	uint64_t bit;
	const char *name;
} features[] = {
	{KVMM_FEATURE_MEMCG, "memcg"},	   {KVMM_FEATURE_NODE_OF_PCI, "node-of-pci"},
	{KVMM_FEATURE_RECLAIM, "reclaim"}, {KVMM_FEATURE_STATUS, "status-area"},
	{KVMM_FEATURE_EVENTFD, "eventfd"}, {KVMM_FEATURE_MEMCG_RECLAIM, "memcg-reclaim"},
	{KVMM_FEATURE_PMD_MAP, "pmd-map"},
};

static uint64_t page_bytes(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (uint64_t)p : 4096;
}

static void flags_text(uint32_t flags, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", flags & KVMM_POOL_PERSISTENT ? "persistent" : "",
		 (flags & KVMM_POOL_PERSISTENT) && (flags & KVMM_POOL_DESTROYED) ? "," : "",
		 flags & KVMM_POOL_DESTROYED ? "destroyed" : "");
	if (!buf[0])
		snprintf(buf, len, "-");
}

static void json_pool(FILE *f, const struct kvmm_pool_desc *d)
{
	fputs("{\"name\":", f);
	json_str(f, d->name);
	fprintf(f,
		",\"id\":%llu,\"bytes\":%llu,\"node\":%d,\"page_size\":%llu,\"uid\":%u,\"gid\":%u,"
		"\"mode\":\"%04o\",\"persistent\":%s,\"destroyed\":%s,\"attached\":%u,"
		"\"mappings\":%u,\"pages\":%llu,\"pages_present\":%llu",
		(unsigned long long)d->id, (unsigned long long)d->bytes, d->node,
		1ull << d->page_shift, d->uid, d->gid, d->mode,
		d->flags & KVMM_POOL_PERSISTENT ? "true" : "false",
		d->flags & KVMM_POOL_DESTROYED ? "true" : "false", d->attached, d->mappings,
		(unsigned long long)d->pages, (unsigned long long)d->pages_present);
	for (int s = 0; s < KVMM_PAGE_STATES; s++)
		fprintf(f, ",\"pages_%s\":%llu", state_name[s],
			(unsigned long long)d->pages_state[s]);
	fprintf(f, ",\"pages_reclaimed\":%llu,\"residency\":{",
		(unsigned long long)d->pages_reclaimed);
	for (int t = 0; t < KVMM_TIER_COUNT; t++)
		fprintf(f, "%s\"%s\":%llu", t ? "," : "", tier_name[t],
			(unsigned long long)d->residency[t]);
	fputs("}}", f);
}

void show_pool(struct ctl *c, const struct kvmm_pool_desc *d)
{
	char size[16], flags[32], node[12];

	if (c->fmt == FMT_JSON) {
		json_pool(c->out, d);
		fputc('\n', c->out);
		return;
	}
	flags_text(d->flags, flags, sizeof(flags));
	snprintf(node, sizeof(node), "%d", d->node);
	fprintf(c->out, "name        %s\n", d->name);
	fprintf(c->out, "size        %s (%llu pages of %s)\n", ctl_human(d->bytes, size),
		(unsigned long long)d->pages, d->page_shift == 21 ? "2 MiB" : "4 KiB");
	fprintf(c->out, "node        %s\n", d->node < 0 ? "any" : node);
	fprintf(c->out, "owner       uid %u gid %u mode %04o\n", d->uid, d->gid, d->mode);
	fprintf(c->out, "flags       %s\n", flags);
	fprintf(c->out, "attached    %u files, %u mappings\n", d->attached, d->mappings);
	fprintf(c->out,
		"pages       %llu present; hot %llu, cold %llu, free %llu; %llu reclaimed\n",
		(unsigned long long)d->pages_present,
		(unsigned long long)d->pages_state[KVMM_PAGE_HOT],
		(unsigned long long)d->pages_state[KVMM_PAGE_COLD],
		(unsigned long long)d->pages_state[KVMM_PAGE_FREE],
		(unsigned long long)d->pages_reclaimed);
	fprintf(c->out, "residency   gpu %llu, host %llu, disk %llu, in flight %llu\n",
		(unsigned long long)d->residency[KVMM_TIER_GPU],
		(unsigned long long)d->residency[KVMM_TIER_HOST],
		(unsigned long long)d->residency[KVMM_TIER_DISK],
		(unsigned long long)d->residency[KVMM_TIER_INFLIGHT]);
}

static void prom_pools(FILE *f, const struct kvmm_pool_desc *d, uint32_t n, bool residency_only)
{
	if (!residency_only) {
		prom_help(f, "kvmm_pool_size_bytes", "gauge", "Size of the pool.");
		for (uint32_t i = 0; i < n; i++)
			fprintf(f,
				"kvmm_pool_size_bytes{pool=\"%s\",node=\"%d\",uid=\"%u\"} %llu\n",
				d[i].name, d[i].node, d[i].uid, (unsigned long long)d[i].bytes);
		prom_help(f, "kvmm_pool_pages", "gauge", "Pool pages by state.");
		for (uint32_t i = 0; i < n; i++)
			for (int s = 0; s < KVMM_PAGE_STATES; s++)
				fprintf(f, "kvmm_pool_pages{pool=\"%s\",state=\"%s\"} %llu\n",
					d[i].name, state_name[s],
					(unsigned long long)d[i].pages_state[s]);
		prom_help(f, "kvmm_pool_present_pages", "gauge", "Pool pages with memory.");
		for (uint32_t i = 0; i < n; i++)
			fprintf(f, "kvmm_pool_present_pages{pool=\"%s\"} %llu\n", d[i].name,
				(unsigned long long)d[i].pages_present);
		prom_help(f, "kvmm_pool_attached", "gauge", "Open files of the pool.");
		for (uint32_t i = 0; i < n; i++)
			fprintf(f, "kvmm_pool_attached{pool=\"%s\"} %u\n", d[i].name,
				d[i].attached);
		prom_help(f, "kvmm_pool_reclaimed_pages_total", "counter",
			  "Pool pages dropped under memory pressure.");
		for (uint32_t i = 0; i < n; i++)
			fprintf(f, "kvmm_pool_reclaimed_pages_total{pool=\"%s\"} %llu\n", d[i].name,
				(unsigned long long)d[i].pages_reclaimed);
	}
	prom_help(f, "kvmm_pool_residency_pages", "gauge",
		  "The owner's pages per tier, as it published them.");
	for (uint32_t i = 0; i < n; i++)
		for (int t = 0; t < KVMM_TIER_COUNT; t++)
			fprintf(f, "kvmm_pool_residency_pages{pool=\"%s\",tier=\"%s\"} %llu\n",
				d[i].name, tier_name[t], (unsigned long long)d[i].residency[t]);
}

static int list(struct ctl *c, struct kvmm_pool_desc **d, uint32_t *n)
{
	int r = ctl_open(c);

	if (r)
		return r;
	r = kmod_list(c->dev, d, n);
	return r ? ctl_refused(KVMM_IOC_POOL_LIST, r, "listing the pools") : 0;
}

int cmd_status(struct ctl *c, int argc, char **argv)
{
	struct kvmm_info info;
	struct kvmm_stats st;
	struct kvmm_limits l;
	struct kvmm_pool_desc *d = NULL;
	uint32_t n = 0;
	char a[16], b[16];
	int r;

	(void)argv;
	if (argc > 1)
		return ctl_usage_error("status: unexpected argument '%s'", argv[1]);
	r = ctl_open(c);
	if (r)
		return r;
	if ((r = kmod_get_info(c->dev, &info)))
		return ctl_refused(KVMM_IOC_GET_INFO, r, "%s", kmod_dev_path(c->device));
	if ((r = kmod_get_stats(c->dev, &st)))
		return ctl_refused(KVMM_IOC_GET_STATS, r, "reading the totals");
	if ((r = kmod_limits(c->dev, 0, 0, 0, &l)))
		return ctl_refused(KVMM_IOC_LIMITS, r, "reading the limits");

	if (c->fmt == FMT_JSON) {
		FILE *f = c->out;
		bool first = true;

		fputs("{\"device\":", f);
		json_str(f, kmod_dev_path(c->device));
		fprintf(f, ",\"api_version\":%u,\"nr_node_ids\":%u,\"features\":[",
			info.api_version, info.nr_node_ids);
		for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
			if (info.features & features[i].bit) {
				fprintf(f, "%s\"%s\"", first ? "" : ",", features[i].name);
				first = false;
			}
		fprintf(f, "],\"ioctls\":%llu,\"page_sizes\":[", (unsigned long long)info.ioctls);
		first = true;
		for (int s = 0; s < 64; s++)
			if (info.page_sizes & (1ull << s)) {
				fprintf(f, "%s%llu", first ? "" : ",", 1ull << s);
				first = false;
			}
		fprintf(f,
			"],\"limits\":{\"global_bytes\":%llu,\"per_uid_bytes\":%llu,"
			"\"global_used\":%llu,\"uid_used\":%llu},",
			(unsigned long long)l.global_bytes, (unsigned long long)l.per_uid_bytes,
			(unsigned long long)l.global_used, (unsigned long long)l.uid_used);
		fprintf(f,
			"\"totals\":{\"pools\":%u,\"bytes_reserved\":%llu,\"bytes_allocated\":%llu,"
			"\"pages_hot\":%llu,\"pages_cold\":%llu,\"pages_free\":%llu,"
			"\"alloc_failures\":%llu},",
			st.pools, (unsigned long long)st.bytes_reserved,
			(unsigned long long)(st.pages_allocated * page_bytes()),
			(unsigned long long)st.pages_hot, (unsigned long long)st.pages_cold,
			(unsigned long long)st.pages_free, (unsigned long long)st.alloc_failures);
		fprintf(f,
			"\"reclaim\":{\"scans\":%llu,\"scanned_pages\":%llu,\"reclaimed_bytes\":%"
			"llu,"
			"\"busy_pages\":%llu}}\n",
			(unsigned long long)st.reclaim_scans,
			(unsigned long long)st.reclaim_scanned,
			(unsigned long long)(st.reclaimed_pages * page_bytes()),
			(unsigned long long)st.reclaim_busy);
		return CTL_OK;
	}
	if (c->fmt == FMT_PROM) {
		FILE *f = c->out;

		prom_help(f, "kvmm_info", "gauge", "The kvmm module's ABI version.");
		fprintf(f, "kvmm_info{api_version=\"%u\"} 1\n", info.api_version);
		prom_help(f, "kvmm_pools", "gauge", "Pools alive.");
		fprintf(f, "kvmm_pools %u\n", st.pools);
		prom_help(f, "kvmm_reserved_bytes", "gauge", "Sum of the pools' sizes.");
		fprintf(f, "kvmm_reserved_bytes %llu\n", (unsigned long long)st.bytes_reserved);
		prom_help(f, "kvmm_allocated_bytes", "gauge", "Memory the module holds.");
		fprintf(f, "kvmm_allocated_bytes %llu\n",
			(unsigned long long)(st.pages_allocated * page_bytes()));
		prom_help(f, "kvmm_limit_bytes", "gauge", "Reservation limits (0: none).");
		fprintf(f, "kvmm_limit_bytes{scope=\"global\"} %llu\n",
			(unsigned long long)l.global_bytes);
		fprintf(f, "kvmm_limit_bytes{scope=\"per_uid\"} %llu\n",
			(unsigned long long)l.per_uid_bytes);
		prom_help(f, "kvmm_alloc_failures_total", "counter",
			  "Page allocations that failed.");
		fprintf(f, "kvmm_alloc_failures_total %llu\n",
			(unsigned long long)st.alloc_failures);
		prom_help(f, "kvmm_reclaim_scans_total", "counter", "Shrinker scans.");
		fprintf(f, "kvmm_reclaim_scans_total %llu\n", (unsigned long long)st.reclaim_scans);
		prom_help(f, "kvmm_reclaimed_bytes_total", "counter",
			  "Memory of cold pages dropped under memory pressure.");
		fprintf(f, "kvmm_reclaimed_bytes_total %llu\n",
			(unsigned long long)(st.reclaimed_pages * page_bytes()));
		prom_help(f, "kvmm_reclaim_busy_pages_total", "counter",
			  "Cold pages left because they were pinned or in use.");
		fprintf(f, "kvmm_reclaim_busy_pages_total %llu\n",
			(unsigned long long)st.reclaim_busy);
		r = list(c, &d, &n);
		if (r)
			return r;
		prom_pools(f, d, n, false);
		free(d);
		return CTL_OK;
	}
	fprintf(c->out, "module          kvmm api %u at %s\nfeatures       ", info.api_version,
		kmod_dev_path(c->device));
	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
		if (info.features & features[i].bit)
			fprintf(c->out, " %s", features[i].name);
	fprintf(c->out, "\npools           %u, %s reserved, %s allocated\n", st.pools,
		ctl_human(st.bytes_reserved, a), ctl_human(st.pages_allocated * page_bytes(), b));
	fprintf(c->out, "limit global    %s",
		l.global_bytes ? ctl_human(l.global_bytes, a) : "none");
	fprintf(c->out, " (used %s)\n", ctl_human(l.global_used, a));
	fprintf(c->out, "limit per uid   %s",
		l.per_uid_bytes ? ctl_human(l.per_uid_bytes, a) : "none");
	fprintf(c->out, " (yours %s)\n", ctl_human(l.uid_used, a));
	fprintf(c->out, "pool pages      hot %llu, cold %llu, free %llu\n",
		(unsigned long long)st.pages_hot, (unsigned long long)st.pages_cold,
		(unsigned long long)st.pages_free);
	fprintf(c->out, "reclaim         %llu scans, %s reclaimed, %llu busy pages left\n",
		(unsigned long long)st.reclaim_scans,
		ctl_human(st.reclaimed_pages * page_bytes(), a),
		(unsigned long long)st.reclaim_busy);
	fprintf(c->out, "alloc failures  %llu\n", (unsigned long long)st.alloc_failures);
	return CTL_OK;
}

int cmd_pools(struct ctl *c, int argc, char **argv)
{
	struct kvmm_pool_desc *d = NULL;
	uint32_t n = 0;
	int r;

	if (argc > 1)
		return ctl_usage_error("pools: unexpected argument '%s'", argv[1]);
	r = list(c, &d, &n);
	if (r)
		return r;
	if (c->fmt == FMT_JSON) {
		fputs("{\"pools\":[", c->out);
		for (uint32_t i = 0; i < n; i++) {
			if (i)
				fputc(',', c->out);
			json_pool(c->out, &d[i]);
		}
		fputs("]}\n", c->out);
	} else if (c->fmt == FMT_PROM) {
		prom_pools(c->out, d, n, false);
	} else {
		fprintf(c->out, "%-24s %10s %4s %4s %6s %4s %-10s %3s %3s %9s %9s %9s %9s %9s\n",
			"NAME", "SIZE", "NODE", "PAGE", "UID", "MODE", "FLAGS", "ATT", "MAP",
			"PRESENT", "HOT", "COLD", "FREE", "RECLAIMED");
		for (uint32_t i = 0; i < n; i++) {
			char size[16], flags[32], node[12];

			flags_text(d[i].flags, flags, sizeof(flags));
			snprintf(node, sizeof(node), "%d", d[i].node);
			fprintf(c->out,
				"%-24s %10s %4s %4s %6u %04o %-10s %3u %3u %9llu %9llu %9llu %9llu "
				"%9llu\n",
				d[i].name, ctl_human(d[i].bytes, size),
				d[i].node < 0 ? "any" : node, d[i].page_shift == 21 ? "2M" : "4K",
				d[i].uid, d[i].mode, flags, d[i].attached, d[i].mappings,
				(unsigned long long)d[i].pages_present,
				(unsigned long long)d[i].pages_state[KVMM_PAGE_HOT],
				(unsigned long long)d[i].pages_state[KVMM_PAGE_COLD],
				(unsigned long long)d[i].pages_state[KVMM_PAGE_FREE],
				(unsigned long long)d[i].pages_reclaimed);
		}
		if (!n)
			fprintf(c->out, "(no pools)\n");
	}
	free(d);
	return CTL_OK;
}

static void residency_once(struct ctl *c, const struct kvmm_pool_desc *d, uint32_t n)
{
	if (c->fmt == FMT_PROM) {
		prom_pools(c->out, d, n, true);
		return;
	}
	if (c->fmt == FMT_JSON) {
		fprintf(c->out, "{\"time\":%lld,\"pools\":[", (long long)time(NULL));
		for (uint32_t i = 0; i < n; i++) {
			fprintf(c->out, "%s{\"name\":", i ? "," : "");
			json_str(c->out, d[i].name);
			for (int t = 0; t < KVMM_TIER_COUNT; t++)
				fprintf(c->out, ",\"%s\":%llu", tier_name[t],
					(unsigned long long)d[i].residency[t]);
			fputc('}', c->out);
		}
		fputs("]}\n", c->out);
		return;
	}
	fprintf(c->out, "%-24s %12s %12s %12s %12s   (pages)\n", "NAME", "GPU", "HOST", "DISK",
		"INFLIGHT");
	for (uint32_t i = 0; i < n; i++)
		fprintf(c->out, "%-24s %12llu %12llu %12llu %12llu\n", d[i].name,
			(unsigned long long)d[i].residency[KVMM_TIER_GPU],
			(unsigned long long)d[i].residency[KVMM_TIER_HOST],
			(unsigned long long)d[i].residency[KVMM_TIER_DISK],
			(unsigned long long)d[i].residency[KVMM_TIER_INFLIGHT]);
	if (!n)
		fprintf(c->out, "(no pools)\n");
}

int cmd_residency(struct ctl *c, int argc, char **argv)
{
	const char *name = NULL;
	double every = 0;
	long count = -1;
	int r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--watch")) {
			every = 1;
			if (i + 1 < argc && argv[i + 1][0] != '-') {
				char *end;

				every = strtod(argv[++i], &end);
				if (*end || every <= 0 || every > 86400)
					return ctl_usage_error(
						"residency: --watch SECONDS '%s' is not a number "
						"of seconds in (0, 86400]",
						argv[i]);
			}
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			char *end;

			count = strtol(argv[++i], &end, 10);
			if (*end || count <= 0)
				return ctl_usage_error(
					"residency: --count N '%s' is not a positive number",
					argv[i]);
		} else if (argv[i][0] == '-') {
			return ctl_usage_error("residency: unknown option '%s'", argv[i]);
		} else if (!name) {
			name = argv[i];
		} else {
			return ctl_usage_error("residency: unexpected argument '%s'", argv[i]);
		}
	}
	if (count < 0)
		count = every > 0 ? 0 : 1; /* 0: forever */
	for (long it = 0; !count || it < count; it++) {
		struct kvmm_pool_desc *d = NULL;
		uint32_t n = 0, k = 0;

		r = list(c, &d, &n);
		if (r)
			return r;
		for (uint32_t i = 0; i < n; i++)
			if (!name || !strcmp(d[i].name, name))
				d[k++] = d[i];
		if (name && !k) {
			free(d);
			return ctl_refused(KVMM_IOC_POOL_OPEN, -ENOENT, "residency '%s'", name);
		}
		if (every > 0 && c->fmt == FMT_TABLE)
			fprintf(c->out, "%s-- %lld\n", it ? "\n" : "", (long long)time(NULL));
		residency_once(c, d, k);
		fflush(c->out);
		free(d);
		if (every > 0 && (!count || it + 1 < count)) {
			struct timespec ts = {(time_t)every,
					      (long)((every - (double)(time_t)every) * 1e9)};

			nanosleep(&ts, NULL);
		}
	}
	return CTL_OK;
}
