// SPDX-License-Identifier: MIT
/*
 * Group "kmod": kvmm.ko's host pools (needs /dev/kvmm: run it in the test
 * VM with `make bench-vm`; elsewhere the group skips).
 *  - pool creation + population in GB/s, module pool vs the runtime's own
 *    path (private anonymous mmap, 2 MiB aligned, mbind to the node,
 *    pre-touch every 4 KiB page: what runtime/src/tier_mem_anon.c and
 *    tier_numa.c do), for 4 KiB and 2 MiB pages;
 *  - page-state updates: microseconds per 1,000 pages as one range, as
 *    1,000 ranges in one call, and as 1,000 calls (the baseline);
 *  - reading a page's generation (no syscall) vs asking with an ioctl;
 *  - reclaim: GB/s of cold pages dropped by the shrinker.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "kmod_client.h"
#include "kvmm.h"

#define MIB  (1ull << 20)
#define REPS 3
#define NODE 0

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0;
}

static void touch(char *p, uint64_t bytes)
{
	for (uint64_t o = 0; o < bytes; o += 4096)
		((volatile char *)p)[o] = 1;
}

/* The runtime's own path: anon mapping + mbind + pre-touch.  ns or 0. */
static uint64_t own_path(uint64_t bytes, bool thp)
{
	unsigned long mask = 1ul << NODE;
	uint64_t t0 = bench_now_ns(), t1, total = bytes + 2 * MIB, start, aligned;
	char *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 0;
	start = (uint64_t)(uintptr_t)p;
	aligned = (start + 2 * MIB - 1) & ~(2 * MIB - 1);
	madvise((void *)(uintptr_t)aligned, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	if (syscall(SYS_mbind, (void *)(uintptr_t)aligned, bytes, 2 /* MPOL_BIND */, &mask,
		    sizeof(mask) * 8, 0)) {
		munmap(p, total);
		return 0;
	}
	touch((char *)(uintptr_t)aligned, bytes);
	t1 = bench_now_ns();
	munmap(p, total);
	return t1 - t0;
}

/* The module: create with POPULATE (memory on the node) or without, then
 * optionally touch every page (mapped, ready).  ns or 0. */
static uint64_t module_path(uint64_t bytes, uint32_t page_size, bool populate, bool touched)
{
	struct kvmm_hostpool_config cfg = {.name = "bench",
					   .bytes = bytes,
					   .node = NODE,
					   .page_size = page_size,
					   .flags = populate ? KVMM_HOSTPOOL_CFG_POPULATE : 0};
	struct kvmm_hostpool *p;
	uint64_t t0 = bench_now_ns(), t1;

	if (kvmm_hostpool_create(&cfg, &p))
		return 0;
	if (touched)
		touch(kvmm_hostpool_base(p), bytes);
	t1 = bench_now_ns();
	kvmm_hostpool_close(p);
	return t1 - t0;
}

static double median_of(uint64_t (*fn)(void *), void *arg)
{
	double v[REPS];

	for (int i = 0; i < REPS; i++)
		v[i] = (double)fn(arg);
	return bench_median(v, REPS);
}

struct job {
	uint64_t bytes;
	uint32_t page_size;
	int what;
};

static uint64_t run_job(void *arg)
{
	const struct job *j = arg;

	switch (j->what) {
	case 0: /* module: create + populate */
		return module_path(j->bytes, j->page_size, true, false);
	case 1: /* module: create + populate + first touch */
		return module_path(j->bytes, j->page_size, true, true);
	case 2: /* module: create, pages given by faults */
		return module_path(j->bytes, j->page_size, false, true);
	default: /* own path */
		return own_path(j->bytes, j->page_size > 4096);
	}
}

static int creation(struct bench_ctx *ctx)
{
	uint64_t bytes = (ctx->quick ? 64 : 256) * MIB;
	static const uint32_t sizes[] = {4096, 2 * MIB};

	bench_header("kmod: pool creation + population on node 0 (GB/s, median of 3)");
	for (int s = 0; s < 2; s++) {
		struct job j = {bytes, sizes[s], 3};
		char name[64];
		double own = median_of(run_job, &j), pop, ready, faults;

		j.what = 0;
		pop = median_of(run_job, &j);
		j.what = 1;
		ready = median_of(run_job, &j);
		j.what = 2;
		faults = median_of(run_job, &j);
		if (!own || !pop || !ready || !faults)
			return -ENOMEM;
		snprintf(name, sizeof(name), "kmod-pool-create-%s", s ? "2m" : "4k");
		bench_result(ctx, name, "populate_gbps", gbps(bytes, (uint64_t)pop), "GB/s",
			     s ? "mmap_mbind_pretouch_thp" : "mmap_mbind_pretouch",
			     gbps(bytes, (uint64_t)own));
		bench_result(ctx, name, "populate_touch_gbps", gbps(bytes, (uint64_t)ready), "GB/s",
			     s ? "mmap_mbind_pretouch_thp" : "mmap_mbind_pretouch",
			     gbps(bytes, (uint64_t)own));
		bench_result(ctx, name, "fault_in_gbps", gbps(bytes, (uint64_t)faults), "GB/s",
			     s ? "mmap_mbind_pretouch_thp" : "mmap_mbind_pretouch",
			     gbps(bytes, (uint64_t)own));
	}
	return 0;
}

static int states(struct bench_ctx *ctx)
{
	struct kvmm_hostpool_config cfg = {.name = "bench",
					   .bytes = 16 * MIB,
					   .node = NODE,
					   .page_size = 4096,
					   .flags = KVMM_HOSTPOOL_CFG_POPULATE};
	struct kvmm_hostpool_range *r = calloc(1000, sizeof(*r));
	int iters = ctx->quick ? 50 : 400, ret = -ENOMEM;
	double range, vec, single;
	struct kvmm_hostpool *p;
	uint64_t t0;

	if (!r || (ret = kvmm_hostpool_create(&cfg, &p))) {
		fprintf(stderr, "kmod: page-state pool: %s\n", kvmm_strerror(ret));
		free(r);
		return ret ? ret : -ENOMEM;
	}
	ret = -EIO;
	/* every call changes 1,000 pages: HOT and COLD alternate */
	t0 = bench_now_ns();
	for (int i = 0; i < iters; i++)
		if (kvmm_hostpool_set_state(p, 0, 1000,
					    i & 1 ? KVMM_HOSTPOOL_PAGE_HOT
						  : KVMM_HOSTPOOL_PAGE_COLD) != 1000)
			goto out;
	range = (double)(bench_now_ns() - t0) / 1e3 / iters;
	for (int k = 0; k < 1000; k++)
		r[k] = (struct kvmm_hostpool_range){(uint64_t)k * 4, 1}; /* scattered */
	t0 = bench_now_ns();
	for (int i = 0; i < iters; i++)
		if (kvmm_hostpool_set_states(p, r, 1000,
					     i & 1 ? KVMM_HOSTPOOL_PAGE_HOT
						   : KVMM_HOSTPOOL_PAGE_COLD) != 1000)
			goto out;
	vec = (double)(bench_now_ns() - t0) / 1e3 / iters;
	t0 = bench_now_ns();
	for (int i = 0; i < iters / 10 + 1; i++)
		for (int k = 0; k < 1000; k++)
			if (kvmm_hostpool_set_state(p, (uint64_t)k * 4, 1,
						    i & 1 ? KVMM_HOSTPOOL_PAGE_HOT
							  : KVMM_HOSTPOOL_PAGE_COLD) != 1)
				goto out;
	single = (double)(bench_now_ns() - t0) / 1e3 / (iters / 10 + 1);
	bench_header("kmod: page-state updates (microseconds per 1,000 pages)");
	bench_result_ratio(ctx, "kmod-page-state", "one_range_us_per_1000", range, "us",
			   "1000_single_page_ioctls", single, single / range);
	bench_result_ratio(ctx, "kmod-page-state", "1000_ranges_1_call_us_per_1000", vec, "us",
			   "1000_single_page_ioctls", single, single / vec);
	bench_result(ctx, "kmod-page-state", "1000_single_page_ioctls_us", single, "us", NULL, 0);
	ret = 0;
out:
	kvmm_hostpool_close(p);
	free(r);
	return ret;
}

static int generations(struct bench_ctx *ctx)
{
	struct kvmm_hostpool_config cfg = {
		.name = "bench", .bytes = 4 * MIB, .node = NODE, .page_size = 4096};
	struct kvmm_hostpool *p;
	struct kvmm_pool_desc d;
	int n = ctx->quick ? 100000 : 1000000, calls = n / 100;
	volatile uint32_t sink = 0;
	double read_ns, ioctl_ns;
	uint64_t t0;

	if (kvmm_hostpool_create(&cfg, &p))
		return -ENOMEM;
	t0 = bench_now_ns();
	for (int i = 0; i < n; i++)
		sink += kvmm_hostpool_page_gen(p, (uint64_t)i & 1023);
	read_ns = (double)(bench_now_ns() - t0) / n;
	t0 = bench_now_ns();
	for (int i = 0; i < calls; i++)
		if (kmod_pool_info(kvmm_hostpool_fd(p), &d))
			break;
	ioctl_ns = (double)(bench_now_ns() - t0) / calls;
	(void)sink;
	kvmm_hostpool_close(p);
	bench_header("kmod: did the kernel drop a page? (ns per check)");
	bench_result_ratio(ctx, "kmod-generation", "read_ns", read_ns, "ns", "pool_info_ioctl_ns",
			   ioctl_ns, ioctl_ns / read_ns);
	return 0;
}

static int reclaim(struct bench_ctx *ctx)
{
	uint64_t bytes = (ctx->quick ? 32 : 128) * MIB, t0, t1;
	struct kvmm_hostpool_config cfg = {.name = "bench",
					   .bytes = bytes,
					   .node = NODE,
					   .page_size = 4096,
					   .flags = KVMM_HOSTPOOL_CFG_POPULATE};
	struct kvmm_hostpool *p;
	int fd = open("/sys/kernel/debug/kvmm/shrink", O_WRONLY);
	char cmd[32];
	int ret = 0;

	if (fd < 0)
		return 0; /* no debugfs: nothing to measure */
	if (kvmm_hostpool_create(&cfg, &p)) {
		close(fd);
		return -ENOMEM;
	}
	kvmm_hostpool_set_state(p, 0, kvmm_hostpool_pages(p), KVMM_HOSTPOOL_PAGE_COLD);
	snprintf(cmd, sizeof(cmd), "%d %llu", NODE, (unsigned long long)(bytes / 4096));
	t0 = bench_now_ns();
	if (write(fd, cmd, strlen(cmd)) < 0)
		ret = -errno;
	t1 = bench_now_ns();
	if (!ret && kvmm_hostpool_drop_seq(p) != bytes / 4096)
		ret = -EIO;
	if (!ret) {
		bench_header("kmod: reclaim of cold pages (debugfs trigger, one call)");
		bench_result(ctx, "kmod-reclaim", "drop_cold_gbps", gbps(bytes, t1 - t0), "GB/s",
			     NULL, 0);
	}
	kvmm_hostpool_close(p);
	close(fd);
	return ret;
}

static int run_kmod(struct bench_ctx *ctx)
{
	int r = kvmm_probe(NULL, NULL);

	if (r) {
		printf("# kmod: no usable /dev/kvmm (%s): run it in the VM with `make bench-vm`\n",
		       kmod_strerror(0, r));
		return 77;
	}
	kvmm_hostpool_destroy("bench"); /* a leftover of an interrupted run */
	r = creation(ctx);
	if (!r)
		r = states(ctx);
	if (!r)
		r = generations(ctx);
	if (!r)
		r = reclaim(ctx);
	return r;
}

BENCH_GROUP(kmod, "kvmm.ko pools: creation GB/s vs mmap+mbind+pre-touch, page states, reclaim",
	    run_kmod);
