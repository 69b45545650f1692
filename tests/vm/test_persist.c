// SPDX-License-Identifier: MIT
/*
 * test_persist: lifetimes.  A persistent pool outlives its creator with its
 * contents; a plain one goes with its last fd or mapping; the module will
 * not unload while a pool is open or mapped, and unloading frees every
 * persistent pool (the page counter reads 0 after).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB (1ull << 20)

struct job {
	const char *name;
	uint32_t flags;
	uint64_t seed;
};

static int create_fill_exit(void *arg)
{
	const struct job *j = arg;
	int dev = vmt_dev(), fd;
	char *p;

	if (dev < 0)
		return 90;
	fd = vmt_pool_create(dev, j->name, 4 * MIB, 1, 12, j->flags, 0600);
	if (fd < 0)
		return VMT_EXIT(fd);
	p = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 91;
	vmt_fill(p, 4 * MIB, j->seed);
	return 0; /* exit closes and unmaps everything */
}

TEST(persistent_pool_outlives_its_creator)
{
	struct job j = {"keep", KVMM_POOL_PERSISTENT, 42};
	struct kvmm_pool_desc d;
	int dev = vmt_dev(), fd;
	char *p;

	ASSERT_GE(dev, 0);
	ASSERT_EQ(vmt_in_child(create_fill_exit, &j), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/keep/attached"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/keep/mappings"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/keep/persistent"), 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 1024);
	/* a second generation of processes sees the data */
	for (int gen = 0; gen < 2; gen++) {
		fd = vmt_pool_open(dev, "keep", gen ? KVMM_OPEN_RDONLY : 0);
		ASSERT_GE(fd, 0);
		p = mmap(NULL, 4 * MIB, PROT_READ, MAP_SHARED, fd, 0);
		ASSERT_NE(p, MAP_FAILED);
		EXPECT_EQ(vmt_check(p, 4 * MIB, 42), -1);
		ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
		EXPECT_EQ(d.flags, KVMM_POOL_PERSISTENT);
		munmap(p, 4 * MIB);
		close(fd);
	}
	ASSERT_EQ(vmt_pool_destroy(dev, "keep"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
	close(dev);
}

TEST(plain_pool_goes_with_its_creator)
{
	struct job j = {"tmp", 0, 7};
	int dev = vmt_dev();

	ASSERT_GE(dev, 0);
	ASSERT_EQ(vmt_in_child(create_fill_exit, &j), 0);
	EXPECT_EQ(vmt_pool_open(dev, "tmp", 0), -ENOENT);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
	close(dev);
}

TEST(mapping_keeps_a_closed_pool)
{
	int dev = vmt_dev(), fd, fd2;
	char *p;

	ASSERT_GE(dev, 0);
	fd = vmt_pool_create(dev, "m", MIB, KVMM_NODE_ANY, 12, 0, 0600);
	ASSERT_GE(fd, 0);
	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	vmt_fill(p, MIB, 3);
	close(fd);
	/* the mapping holds the file: still attached, once */
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/m/attached"), 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/m/mappings"), 1);
	/* still there by name */
	fd2 = vmt_pool_open(dev, "m", KVMM_OPEN_RDONLY);
	ASSERT_GE(fd2, 0);
	close(fd2);
	EXPECT_EQ(vmt_check(p, MIB, 3), -1);
	munmap(p, MIB);
	EXPECT_EQ(vmt_pool_open(dev, "m", 0), -ENOENT);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
	close(dev);
}

TEST(unload_refused_while_open_or_mapped)
{
	int dev = vmt_dev(), fd;
	char *p;

	ASSERT_GE(dev, 0);
	fd = vmt_pool_create(dev, "busy", MIB, KVMM_NODE_ANY, 12, 0, 0600);
	ASSERT_GE(fd, 0);
	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	p[0] = 1;
	/* the device fd, the pool fd and the mapping each hold it */
	EXPECT_EQ(vmt_try_unload(), -EWOULDBLOCK);
	close(dev);
	EXPECT_EQ(vmt_try_unload(), -EWOULDBLOCK);
	close(fd);
	EXPECT_EQ(vmt_try_unload(), -EWOULDBLOCK);
	EXPECT_EQ(access(KVMM_DEV, F_OK), 0);
	EXPECT_EQ(p[0], 1);
	munmap(p, MIB);
	ASSERT_EQ(vmt_unload(), 0);
	EXPECT_EQ(access(KVMM_DEV, F_OK), -1);
	EXPECT_EQ(access(KVMM_SYSFS, F_OK), -1);
	ASSERT_EQ(vmt_load(""), 0);
}

TEST(unload_frees_persistent_pools)
{
	long long with_pools;
	int dev = vmt_dev(), kmsg, fd;

	ASSERT_GE(dev, 0);
	fd = vmt_pool_create(dev, "a", 128 * MIB, 0, 12, KVMM_POOL_PERSISTENT | KVMM_POOL_POPULATE,
			     0600);
	ASSERT_GE(fd, 0);
	close(fd);
	fd = vmt_pool_create(dev, "b", 128 * MIB, 1, 21, KVMM_POOL_PERSISTENT | KVMM_POOL_POPULATE,
			     0600);
	ASSERT_GE(fd, 0);
	close(fd);
	fd = vmt_pool_create(dev, "c", 8 * MIB, KVMM_NODE_ANY, 12, KVMM_POOL_PERSISTENT, 0600);
	ASSERT_GE(fd, 0);
	close(fd);
	close(dev);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 2 * 32768);
	with_pools = vmt_mem_free();
	kmsg = vmt_kmsg_open();
	ASSERT_EQ(vmt_unload(), 0);
	EXPECT_TRUE(vmt_kmsg_has(kmsg, "kvmm: unloaded, 0 pages still allocated"));
	close(kmsg);
	/* the memory is back */
	/* MemFree leaves out the per-cpu free lists (tens of MiB here) */
	EXPECT_GT(vmt_mem_free(), with_pools + 200 * (long long)MIB);
	ASSERT_EQ(vmt_load(""), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
}
