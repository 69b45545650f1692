// SPDX-License-Identifier: MIT
/*
 * test_numa: pool pages land on the node asked for (checked page by page
 * with move_pages(2) on the VM's two nodes), whatever the toucher's memory
 * policy; a node-less pool follows the task's policy; a full node fails
 * rather than spilling onto the other one.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB	  (1ull << 20)
#define MPOL_BIND 2

static long set_policy_bind(int node)
{
	unsigned long mask = 1ul << node;

	return syscall(SYS_set_mempolicy, MPOL_BIND, &mask, 8 * sizeof(mask));
}

static long long node_free(int node)
{
	char line[256], path[96];
	long long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/meminfo", node);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "MemFree:");

		if (p && sscanf(p, "MemFree: %lld kB", &kb) == 1)
			break;
	}
	if (f)
		fclose(f);
	return kb * 1024;
}

FIXTURE(numa)
{
	int dev;
	int fd;
	char *p;
	size_t len;
};

FIXTURE_VARIANT(numa)
{
	int node;
	unsigned int shift;
};

FIXTURE_VARIANT_ADD(numa, node0_4k){.node = 0, .shift = 12};
FIXTURE_VARIANT_ADD(numa, node1_4k){.node = 1, .shift = 12};
FIXTURE_VARIANT_ADD(numa, node0_2m){.node = 0, .shift = 21};
FIXTURE_VARIANT_ADD(numa, node1_2m){.node = 1, .shift = 21};

FIXTURE_SETUP(numa)
{
	if (vmt_nr_nodes() < 2)
		SKIP("needs two NUMA nodes");
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
	self->len = 16 * MIB;
	self->fd = vmt_pool_create(self->dev, "numa", self->len, variant->node, variant->shift, 0,
				   0600);
	ASSERT_GE(self->fd, 0);
	self->p = mmap(NULL, self->len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	ASSERT_NE(self->p, MAP_FAILED);
}

FIXTURE_TEARDOWN(numa)
{
	if (self->p && self->p != MAP_FAILED)
		munmap(self->p, self->len);
	if (self->fd > 0)
		close(self->fd);
	if (self->dev > 0)
		close(self->dev);
}

static void expect_on_node(void *p, size_t len, int node)
{
	size_t n = len / 4096, wrong = 0;
	int *nodes = malloc(n * sizeof(*nodes));

	ASSERT_TRUE(nodes != NULL);
	ASSERT_EQ(vmt_page_nodes(p, len, nodes), 0);
	for (size_t i = 0; i < n; i++)
		if (nodes[i] != node) {
			if (!wrong)
				TH_LOG("page %zu is on node %d", i, nodes[i]);
			wrong++;
		}
	free(nodes);
	EXPECT_EQ(wrong, 0);
}

TEST_F(numa, faulted_pages_on_node)
{
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/numa/node"), variant->node);
	vmt_fill(self->p, self->len, 1);
	expect_on_node(self->p, self->len, variant->node);
	EXPECT_EQ(vmt_check(self->p, self->len, 1), -1);
}

TEST_F(numa, populated_pages_on_node)
{
	ASSERT_EQ(vmt_populate(self->fd, 0, self->len >> variant->shift),
		  self->len >> variant->shift);
	/* map them (read faults only) and ask where they are */
	for (size_t i = 0; i < self->len; i += 4096)
		ASSERT_EQ(self->p[i], 0);
	expect_on_node(self->p, self->len, variant->node);
}

TEST_F(numa, task_policy_does_not_move_pool_pages)
{
	/* the toucher is bound to the other node: the pool's node wins */
	ASSERT_EQ(set_policy_bind(!variant->node), 0);
	vmt_fill(self->p, self->len, 2);
	expect_on_node(self->p, self->len, variant->node);
}

TEST(any_node_follows_task_policy)
{
	int dev = vmt_dev(), fd;
	size_t len = 8 * MIB;
	char *p;

	if (vmt_nr_nodes() < 2)
		SKIP("needs two NUMA nodes");
	ASSERT_GE(dev, 0);
	fd = vmt_pool_create(dev, "any", len, KVMM_NODE_ANY, 12, 0, 0600);
	ASSERT_GE(fd, 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	ASSERT_EQ(set_policy_bind(1), 0);
	memset(p, 1, len / 2);
	ASSERT_EQ(set_policy_bind(0), 0);
	memset(p + len / 2, 1, len / 2);
	expect_on_node(p, len / 2, 1);
	expect_on_node(p + len / 2, len / 2, 0);
	munmap(p, len);
	close(fd);
	close(dev);
}

TEST_TIMEOUT(full_node_fails_without_fallback, 120)
{
	int dev = vmt_dev(), fd;
	long long free1 = node_free(1), free0 = node_free(0), present;
	unsigned long long failures = (unsigned long long)vmt_read_ll(KVMM_SYSFS "/alloc_failures");
	uint64_t bytes = (uint64_t)(free0 + 64 * (long long)MIB) & ~(2 * MIB - 1);
	struct kvmm_limits l;

	if (vmt_nr_nodes() < 2)
		SKIP("needs two NUMA nodes");
	kt_forbid_kmsg("oom-kill");
	kt_forbid_kmsg("Out of memory");
	ASSERT_GE(dev, 0);
	ASSERT_EQ(vmt_limits(dev, 0, 0, 0, &l), 0);
	ASSERT_EQ(vmt_limits(dev, KVMM_LIMITS_SET_GLOBAL, 0, 0, NULL), 0);
	/* more than node 0 has, in 2 MiB pages */
	fd = vmt_pool_create(dev, "full", bytes, 0, 21, 0, 0600);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(vmt_populate(fd, 0, bytes >> 21), -ENOMEM);
	present = vmt_read_ll(KVMM_SYSFS "/pools/full/pages_present");
	TH_LOG("node 0 had %lld MiB free; %lld MiB populated; node 1 free %lld -> %lld MiB",
	       free0 >> 20, present * 2, free1 >> 20, node_free(1) >> 20);
	EXPECT_GT(present, 0);
	EXPECT_LT(present * 2 * (long long)MIB, free0 + 8 * (long long)MIB);
	/* node 1 gave nothing */
	EXPECT_GT(node_free(1), free1 - 24 * (long long)MIB);
	EXPECT_GT(vmt_read_ll(KVMM_SYSFS "/alloc_failures"), (long long)failures);
	close(fd);
	vmt_limits(dev, KVMM_LIMITS_SET_GLOBAL, l.global_bytes, 0, NULL);
	close(dev);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
}
