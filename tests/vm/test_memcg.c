// SPDX-License-Identifier: MIT
/*
 * test_memcg: reclaim inside one memory cgroup drops that cgroup's cold
 * pool pages (the shrinker is memcg-aware): a memory hog in a cgroup at its
 * memory.max gets its memory from the cgroup's cold KV, nobody is
 * OOM-killed, hot pages stay; memory.reclaim of one cgroup never takes
 * another's cold pages; a removed cgroup's pages are reclaimed through its
 * parent.
 * vm-timeout: 120
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB    (1ull << 20)
#define PAGE   4096ull
#define CGROOT "/sys/fs/cgroup"
#define CGA    CGROOT "/kvmm-a"
#define CGB    CGROOT "/kvmm-b"
#define CGP    CGROOT "/kvmm-p"
#define CGC    CGP "/c"

static int cg_join(const char *cg)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", getpid());
	return vmt_write(pid, "%s/cgroup.procs", cg);
}

/* A fresh cgroup with the memory controller. */
static int cg_make(const char *parent, const char *cg)
{
	int r = vmt_write("+memory", "%s/cgroup.subtree_control", parent);

	if (r)
		return r;
	rmdir(cg);
	return mkdir(cg, 0755) ? -errno : 0;
}

/* "key N" of a flat-keyed cgroup file; -errno */
static long long cg_key(const char *cg, const char *file, const char *key)
{
	char path[256], line[128];
	long long v = -ENOENT;
	size_t klen = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cg, file);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			v = atoll(line + klen + 1);
			break;
		}
	fclose(f);
	return v;
}

/*
 * What a write to memory.reclaim may return when it freed memory: 0, or on
 * 6.5+ -EAGAIN, since memcg reclaim there does not count pages that
 * shrinkers free as its progress (docs/kmod.md).  The tests check what was
 * dropped instead.
 */
static bool reclaim_ok(int r)
{
	return r == 0 || r == -EAGAIN;
}

struct cpool {
	int fd;
	char *p;
	size_t len;
	size_t ps;
	const volatile uint32_t *gen;
	void *st;
	size_t st_len;
};

/* A pool of len bytes created (and so charged) in cgroup cg, populated,
 * filled with seed's pattern, the first cold bytes COLD; the caller stays
 * where it was. */
static int cpool_make(struct cpool *c, int dev, const char *cg, const char *name, size_t len,
		      size_t cold, unsigned int shift, uint64_t seed)
{
	size_t pages = len >> shift;
	int r;

	c->len = len;
	c->ps = 1ul << shift;
	r = cg_join(cg);
	if (r)
		return r;
	c->fd = vmt_pool_create(dev, name, len, KVMM_NODE_ANY, shift, 0, 0600);
	r = c->fd < 0 ? c->fd : (int)vmt_populate(c->fd, 0, pages);
	cg_join(CGROOT);
	if (r < 0)
		return r;
	c->p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	c->st_len = (KVMM_STATUS_SIZE(pages) + PAGE - 1) & ~(PAGE - 1);
	c->st = mmap(NULL, c->st_len, PROT_READ, MAP_SHARED, c->fd, (off_t)KVMM_STATUS_OFFSET);
	if (c->p == MAP_FAILED || c->st == MAP_FAILED)
		return -errno;
	c->gen = (const volatile uint32_t *)((char *)c->st +
					     ((struct kvmm_pool_status *)c->st)->gen_offset);
	vmt_fill(c->p, len, seed);
	r = (int)vmt_set_state(c->fd, 0, cold >> shift, KVMM_PAGE_COLD);
	return r < 0 ? r : 0;
}

static void cpool_close(struct cpool *c)
{
	if (c->st && c->st != MAP_FAILED)
		munmap(c->st, c->st_len);
	if (c->p && c->p != MAP_FAILED)
		munmap(c->p, c->len);
	if (c->fd > 0)
		close(c->fd);
	memset(c, 0, sizeof(*c));
}

/* Pool pages dropped, and -1 when a page outside [0, cold) was dropped or
 * a page not dropped lost its data. */
static long long cpool_dropped(const struct cpool *c, size_t cold, uint64_t seed)
{
	long long dropped = 0;

	for (size_t i = 0; i < c->len / c->ps; i++) {
		if (c->gen[i]) {
			if (i * c->ps >= cold)
				return -1;
			dropped++;
		} else if (vmt_check(c->p + i * c->ps, c->ps, seed + i * c->ps / 8) != -1) {
			return -1;
		}
	}
	return dropped;
}

FIXTURE(memcg)
{
	int dev;
	struct cpool a, b;
};

FIXTURE_VARIANT(memcg)
{
	unsigned int shift;
};

FIXTURE_VARIANT_ADD(memcg, pages_4k){.shift = 12};
FIXTURE_VARIANT_ADD(memcg, pages_2m){.shift = 21};

FIXTURE_SETUP(memcg)
{
	kt_forbid_kmsg("oom-kill");
	kt_forbid_kmsg("Out of memory");
	kt_forbid_kmsg("Killed process");
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
}

FIXTURE_TEARDOWN(memcg)
{
	cpool_close(&self->a);
	cpool_close(&self->b);
	if (self->dev > 0)
		close(self->dev);
	cg_join(CGROOT);
	rmdir(CGA);
	rmdir(CGB);
	rmdir(CGC);
	rmdir(CGP);
}

/* memory.reclaim of a cgroup: cold pages of its pools go, another
 * cgroup's stay, hot pages stay. */
TEST_F(memcg, memory_reclaim_takes_only_that_cgroups_cold_pages)
{
	const size_t len = 32 * MIB, cold = 24 * MIB;
	struct kvmm_info info = {.size = sizeof(info)};
	long long cur, da, db;

	ASSERT_EQ(vmt_ioctl(self->dev, KVMM_IOC_GET_INFO, &info), 0);
	EXPECT_TRUE(info.features & KVMM_FEATURE_MEMCG_RECLAIM);

	ASSERT_EQ(cg_make(CGROOT, CGA), 0);
	ASSERT_EQ(cg_make(CGROOT, CGB), 0);
	ASSERT_EQ(cpool_make(&self->a, self->dev, CGA, "cga", len, cold, variant->shift, 1), 0);
	ASSERT_EQ(cpool_make(&self->b, self->dev, CGB, "cgb", len, cold, variant->shift, 2), 0);
	cur = vmt_read_ll(CGA "/memory.current");
	EXPECT_GE(cur, (long long)len);

	ASSERT_TRUE(reclaim_ok(vmt_write("16M", CGA "/memory.reclaim")));
	da = cpool_dropped(&self->a, cold, 1);
	db = cpool_dropped(&self->b, cold, 2);
	TH_LOG("memory.reclaim 16M of A: dropped %lld of A's pages, %lld of B's", da, db);
	EXPECT_GE(da * (long long)self->a.ps, 16 * (long long)MIB);
	EXPECT_EQ(db, 0);
	EXPECT_LE(vmt_read_ll(CGA "/memory.current"), cur - 16 * (long long)MIB);

	ASSERT_TRUE(reclaim_ok(vmt_write("16M", CGB "/memory.reclaim")));
	EXPECT_EQ(cpool_dropped(&self->a, cold, 1), da);
	db = cpool_dropped(&self->b, cold, 2);
	EXPECT_GE(db * (long long)self->b.ps, 16 * (long long)MIB);
	/* all of A's cold pages, and no more: hot pages are never taken */
	EXPECT_EQ(vmt_write("1G", CGA "/memory.reclaim"), -EAGAIN);
	EXPECT_EQ(cpool_dropped(&self->a, cold, 1), (long long)(cold / self->a.ps));
}

struct hogjob {
	size_t bytes;
};

/* In a child: join cgroup A and take the hog's bytes there. */
static int hog(void *arg)
{
	if (cg_join(CGA))
		return 3;
	return vmt_hog(((struct hogjob *)arg)->bytes);
}

/* A hog in the cgroup at its memory.max gets the cgroup's cold pages. */
TEST_F_TIMEOUT(memcg, hog_at_memory_max_takes_cold_keeps_hot, 90)
{
	const size_t len = 96 * MIB, cold = 72 * MIB;
	struct hogjob j = {.bytes = 64 * MIB};
	long long dropped;
	int r;

	ASSERT_EQ(cg_make(CGROOT, CGA), 0);
	ASSERT_EQ(vmt_write("134217728", CGA "/memory.max"), 0); /* 128 MiB */
	ASSERT_EQ(cpool_make(&self->a, self->dev, CGA, "hog", len, cold, variant->shift, 3), 0);
	/* pool 96 + hog 64 MiB > 128 MiB (and no swap): only the cold pages
	 * can make room */
	r = vmt_in_child(hog, &j);
	EXPECT_EQ(r, 0);
	EXPECT_EQ(cg_key(CGA, "memory.events", "oom_kill"), 0);
	EXPECT_EQ(cg_key(CGA, "memory.events", "oom"), 0);
	dropped = cpool_dropped(&self->a, cold, 3);
	TH_LOG("dropped %lld of %zu cold pages, max events %lld", dropped, cold / self->a.ps,
	       cg_key(CGA, "memory.events", "max"));
	EXPECT_GE(dropped * (long long)self->a.ps, 32 * (long long)MIB);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/hog/pages_reclaimed"), dropped);
}

/* rmdir of a cgroup moves its pools' lru items to the parent: reclaim of
 * the parent finds them, and freeing the pool afterwards is clean (rmmod's
 * checks). */
TEST_F(memcg, removed_cgroup_pages_reclaimed_through_the_parent)
{
	const size_t len = 16 * MIB, cold = 12 * MIB;

	ASSERT_EQ(cg_make(CGROOT, CGP), 0);
	ASSERT_EQ(cg_make(CGP, CGC), 0);
	ASSERT_EQ(cpool_make(&self->a, self->dev, CGC, "orphan", len, cold, variant->shift, 4), 0);
	ASSERT_EQ(rmdir(CGC), 0);
	ASSERT_TRUE(reclaim_ok(vmt_write("8M", CGP "/memory.reclaim")));
	EXPECT_GE(cpool_dropped(&self->a, cold, 4) * (long long)self->a.ps, 8 * (long long)MIB);
	/* the rest turn hot and cold again: off and back on the parent's list */
	ASSERT_GE(vmt_set_state(self->a.fd, 0, len / self->a.ps, KVMM_PAGE_HOT), 0);
	ASSERT_GE(vmt_set_state(self->a.fd, 0, cold / self->a.ps, KVMM_PAGE_COLD), 0);
	EXPECT_EQ(vmt_write("1G", CGP "/memory.reclaim"), -EAGAIN);
	EXPECT_EQ(cpool_dropped(&self->a, cold, 4), (long long)(cold / self->a.ps));
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/orphan/pages_present"),
		  (long long)((len - cold) / self->a.ps));
}
