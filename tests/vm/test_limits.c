// SPDX-License-Identifier: MIT
/*
 * test_limits: the registry's global and per-uid byte limits (ioctl, sysfs
 * and module parameters), the pool count limit, and the memory cgroup
 * charge of pool pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB (1ull << 20)
#define CG  "/sys/fs/cgroup/kvmmtest"

FIXTURE(limits)
{
	int dev;
	struct kvmm_limits saved;
};

FIXTURE_SETUP(limits)
{
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &self->saved), 0);
}

FIXTURE_TEARDOWN(limits)
{
	static const char *const names[] = {"l0", "l1", "l2", "l3", "u0", "u1", "r0", "cg"};

	if (self->dev < 0)
		self->dev = vmt_dev();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		vmt_pool_destroy(self->dev, names[i]);
	vmt_limits(self->dev, KVMM_LIMITS_SET_GLOBAL | KVMM_LIMITS_SET_PER_UID,
		   self->saved.global_bytes, self->saved.per_uid_bytes, NULL);
	close(self->dev);
	chmod(KVMM_DEV, 0600);
}

static long long mem_total(void)
{
	char line[128];
	long long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %lld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

TEST_F(limits, defaults)
{
	/* half of RAM, no per-uid limit, 1024 pools */
	EXPECT_EQ(self->saved.global_bytes, mem_total() / 2);
	EXPECT_EQ(self->saved.per_uid_bytes, 0);
	EXPECT_EQ(self->saved.global_used, 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/global_bytes"),
		  (long long)self->saved.global_bytes);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/per_uid_bytes"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/max_pools"), 1024);
	EXPECT_EQ(vmt_read_ll("/sys/module/kvmm/parameters/max_pools"), 1024);
}

TEST_F(limits, global_limit_by_ioctl)
{
	struct kvmm_limits l;
	int a, b;

	ASSERT_EQ(vmt_limits(self->dev, KVMM_LIMITS_SET_GLOBAL, 8 * MIB, 0, &l), 0);
	EXPECT_EQ(l.global_bytes, 8 * MIB);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/global_bytes"), 8 * MIB);
	a = vmt_pool_create(self->dev, "l0", 4 * MIB, KVMM_NODE_ANY, 12, 0, 0600);
	b = vmt_pool_create(self->dev, "l1", 4 * MIB, KVMM_NODE_ANY, 21, 0, 0600);
	ASSERT_GE(a, 0);
	ASSERT_GE(b, 0);
	/* exactly at the limit; one more page is over */
	EXPECT_EQ(vmt_pool_create(self->dev, "l2", 4096, KVMM_NODE_ANY, 12, 0, 0600), -ENOSPC);
	/* and the failed create left nothing behind */
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 2);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
	EXPECT_EQ(access(KVMM_SYSFS "/pools/l2", F_OK), -1);
	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &l), 0);
	EXPECT_EQ(l.global_used, 8 * MIB);
	EXPECT_EQ(l.uid_used, 8 * MIB);
	close(a);
	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &l), 0);
	EXPECT_EQ(l.global_used, 4 * MIB);
	a = vmt_pool_create(self->dev, "l2", 4 * MIB, KVMM_NODE_ANY, 12, 0, 0600);
	EXPECT_GE(a, 0);
	close(a);
	close(b);
}

/* Regression: the metadata of a pool over the limit was allocated before the
 * limit was checked (a 256 GiB request OOM-killed the fuzzer). */
TEST_F(limits, over_limit_allocates_nothing)
{
	long long before = vmt_mem_free();

	kt_forbid_kmsg("oom-kill");
	kt_forbid_kmsg("Out of memory");
	EXPECT_EQ(vmt_pool_create(self->dev, "l0", KVMM_POOL_MAX_PAGES * 4096, KVMM_NODE_ANY, 12, 0,
				  0600),
		  -ENOSPC);
	EXPECT_EQ(vmt_pool_create(self->dev, "l0", KVMM_POOL_MAX_BYTES, KVMM_NODE_ANY, 21, 0, 0600),
		  -ENOSPC);
	/* nothing close to the 208 MiB of metadata was taken */
	EXPECT_GT(vmt_mem_free(), before - 32 * (long long)MIB);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
}

TEST_F(limits, global_limit_by_sysfs)
{
	struct kvmm_limits l;

	ASSERT_EQ(vmt_write("4194304", KVMM_SYSFS "/limits/global_bytes"), 0);
	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &l), 0);
	EXPECT_EQ(l.global_bytes, 4 * MIB);
	EXPECT_EQ(vmt_write("abc", KVMM_SYSFS "/limits/global_bytes"), -EINVAL);
	EXPECT_EQ(vmt_write("-1", KVMM_SYSFS "/limits/global_bytes"), -EINVAL);
	EXPECT_EQ(vmt_write("\n", KVMM_SYSFS "/limits/per_uid_bytes"), -EINVAL);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/global_bytes"), 4 * MIB);
	EXPECT_EQ(vmt_pool_create(self->dev, "l0", 8 * MIB, KVMM_NODE_ANY, 12, 0, 0600), -ENOSPC);
	/* 0: no limit */
	ASSERT_EQ(vmt_write("0", KVMM_SYSFS "/limits/global_bytes"), 0);
	{
		int fd = vmt_pool_create(self->dev, "l0", 8 * MIB, KVMM_NODE_ANY, 12, 0, 0600);

		EXPECT_GE(fd, 0);
		close(fd);
	}
	EXPECT_EQ(vmt_write("1", KVMM_SYSFS "/limits/max_pools"), -EACCES);
}

TEST_F(limits, lowering_below_use)
{
	int a = vmt_pool_create(self->dev, "l0", 4 * MIB, KVMM_NODE_ANY, 12, 0, 0600);
	char *p;

	ASSERT_GE(a, 0);
	ASSERT_EQ(vmt_limits(self->dev, KVMM_LIMITS_SET_GLOBAL, MIB, 0, NULL), 0);
	/* what exists keeps working; nothing new fits */
	p = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	ASSERT_NE(p, MAP_FAILED);
	vmt_fill(p, 4 * MIB, 1);
	EXPECT_EQ(vmt_check(p, 4 * MIB, 1), -1);
	EXPECT_EQ(vmt_pool_create(self->dev, "l1", 4096, KVMM_NODE_ANY, 12, 0, 0600), -ENOSPC);
	munmap(p, 4 * MIB);
	close(a);
}

TEST_F(limits, charge_lasts_until_freed)
{
	int a = vmt_pool_create(self->dev, "l0", 4 * MIB, KVMM_NODE_ANY, 12, KVMM_POOL_PERSISTENT,
				0600);
	struct kvmm_limits l;
	char *p;

	ASSERT_GE(a, 0);
	p = mmap(NULL, 4 * MIB, PROT_READ, MAP_SHARED, a, 0);
	ASSERT_NE(p, MAP_FAILED);
	close(a);
	ASSERT_EQ(vmt_pool_destroy(self->dev, "l0"), 0);
	/* destroyed but mapped: still reserved */
	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &l), 0);
	EXPECT_EQ(l.global_used, 4 * MIB);
	munmap(p, 4 * MIB);
	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &l), 0);
	EXPECT_EQ(l.global_used, 0);
}

struct ureq {
	const char *name;
	uint64_t bytes;
};

static int user_create(void *arg)
{
	const struct ureq *r = arg;
	int dev = vmt_dev(), fd;

	if (dev < 0)
		return VMT_EXIT(dev);
	fd = vmt_pool_create(dev, r->name, r->bytes, KVMM_NODE_ANY, 12, KVMM_POOL_PERSISTENT, 0600);
	if (fd >= 0) {
		struct kvmm_limits l;

		if (vmt_limits(dev, 0, 0, 0, &l) || l.uid_used < r->bytes)
			return 97;
	}
	return VMT_EXIT(fd);
}

TEST_F(limits, per_uid_limit)
{
	struct ureq a = {"u0", 2 * MIB}, b = {"u1", 4096}, c = {"u1", 2 * MIB};
	struct kvmm_limits l;
	int fd;

	ASSERT_EQ(chmod(KVMM_DEV, 0666), 0);
	ASSERT_EQ(vmt_limits(self->dev, KVMM_LIMITS_SET_PER_UID, 0, 2 * MIB, &l), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/per_uid_bytes"), 2 * MIB);
	EXPECT_EQ(vmt_as_user(1000, 1000, user_create, &a), 0);
	EXPECT_EQ(vmt_as_user(1000, 1000, user_create, &b), EDQUOT);
	/* another uid has its own allowance */
	EXPECT_EQ(vmt_as_user(1001, 1001, user_create, &c), 0);
	/* root too, and is held to it */
	fd = vmt_pool_create(self->dev, "r0", 4 * MIB, KVMM_NODE_ANY, 12, 0, 0600);
	EXPECT_EQ(fd, -EDQUOT);
	fd = vmt_pool_create(self->dev, "r0", MIB, KVMM_NODE_ANY, 12, 0, 0600);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &l), 0);
	EXPECT_EQ(l.uid_used, MIB);
	EXPECT_EQ(l.global_used, 5 * MIB);
	close(fd);
	/* freeing gives the allowance back */
	ASSERT_EQ(vmt_pool_destroy(self->dev, "u0"), 0);
	a.name = "u0";
	a.bytes = 2 * MIB;
	EXPECT_EQ(vmt_as_user(1000, 1000, user_create, &a), 0);
}

TEST_F(limits, module_parameters)
{
	int fds[4];

	close(self->dev);
	self->dev = -1;
	ASSERT_EQ(vmt_unload(), 0);
	ASSERT_EQ(vmt_load("max_pools=3 limit_bytes=16777216 limit_uid_bytes=8388608"), 0);
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
	self->saved.global_bytes = 16 * MIB;
	self->saved.per_uid_bytes = 8 * MIB;
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/max_pools"), 3);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/global_bytes"), 16 * MIB);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/limits/per_uid_bytes"), 8 * MIB);
	for (int i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "l%d", i);
		fds[i] = vmt_pool_create(self->dev, name, MIB, KVMM_NODE_ANY, 12, 0, 0600);
		ASSERT_GE(fds[i], 0);
	}
	EXPECT_EQ(vmt_pool_create(self->dev, "l3", MIB, KVMM_NODE_ANY, 12, 0, 0600), -ENFILE);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	/* back to the defaults for whatever runs next */
	close(self->dev);
	self->dev = -1;
	ASSERT_EQ(vmt_unload(), 0);
	ASSERT_EQ(vmt_load(""), 0);
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &self->saved), 0);
}

static long long cg_read(const char *file)
{
	return vmt_read_ll(CG "/%s", file);
}

struct cgjob {
	uint64_t pool_bytes;
	long long populated;
	int err;
};

/* Runs in a child that joined the cgroup. */
static int cg_create_and_fill(void *arg)
{
	struct cgjob *j = arg;
	char pid[32];
	int dev, fd;

	snprintf(pid, sizeof(pid), "%d", getpid());
	if (vmt_write(pid, CG "/cgroup.procs"))
		return 90;
	dev = vmt_dev();
	if (dev < 0)
		return 91;
	fd = vmt_pool_create(dev, "cg", j->pool_bytes, KVMM_NODE_ANY, 12, KVMM_POOL_PERSISTENT,
			     0600);
	if (fd < 0)
		return 92;
	j->populated = vmt_populate(fd, 0, j->pool_bytes / 4096);
	return VMT_EXIT(j->populated);
}

TEST_TIMEOUT(memcg_charges_the_creator, 60)
{
	struct cgjob *j =
		mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	long long before, after, present;
	int dev = vmt_dev(), fd;
	char *p;

	kt_forbid_kmsg("oom-kill");
	kt_forbid_kmsg("Out of memory");
	ASSERT_GE(dev, 0);
	ASSERT_NE(j, MAP_FAILED);
	ASSERT_EQ(vmt_write("+memory", "/sys/fs/cgroup/cgroup.subtree_control"), 0);
	rmdir(CG);
	ASSERT_EQ(mkdir(CG, 0755), 0);
	ASSERT_EQ(vmt_write("33554432", CG "/memory.max"), 0);
	before = cg_read("memory.current");

	/* 48 MiB of pages do not fit a 32 MiB cgroup: -ENOMEM, nobody killed */
	j->pool_bytes = 48 * MIB;
	EXPECT_EQ(vmt_in_child(cg_create_and_fill, j), ENOMEM);
	after = cg_read("memory.current");
	EXPECT_GT(after - before, 24 * (long long)MIB);
	EXPECT_LE(after, 32 * (long long)MIB);
	present = vmt_read_ll(KVMM_SYSFS "/pools/cg/pages_present");
	EXPECT_GT(present, 0);

	/* pages touched later by a process outside the cgroup still go to the
	 * creator's cgroup, so the limit holds there too */
	fd = vmt_pool_open(dev, "cg", 0);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(vmt_set_state(fd, 0, (48 * MIB) / 4096, KVMM_PAGE_FREE), present);
	EXPECT_LT(cg_read("memory.current"), before + 4 * (long long)MIB);
	p = mmap(NULL, 16 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	memset(p, 1, 16 * MIB);
	EXPECT_GE(cg_read("memory.current") - before, 15 * (long long)MIB);
	munmap(p, 16 * MIB);
	close(fd);
	ASSERT_EQ(vmt_pool_destroy(dev, "cg"), 0);
	EXPECT_LT(cg_read("memory.current"), before + 4 * (long long)MIB);
	close(dev);
	EXPECT_EQ(rmdir(CG), 0);
}
