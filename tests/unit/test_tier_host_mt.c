// SPDX-License-Identifier: MIT
/* test_tier_host_mt.c - the host tier's pool: NUMA node from a (fake) sysfs,
 * parallel pre-touch (every page resident after create), slot-aligned
 * registration chunks, slots, memory sources, bad arguments. */
#include <errno.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "tier_fixture.h"
#include "tier_host.h"
#include "tier_numa.h"

#define SLOT ((2u << 20) + 4096u)

static void write_file(const char *root, const char *rel, const char *text)
{
	char path[512], cmd[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
	ck_assert_int_eq(system(cmd), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* A fake sysfs with a GPU on node 1 and nodes 0 and 1. */
static void fake_sysfs(char *root, size_t len)
{
	snprintf(root, len, "/tmp/kvmm-sysfs-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	write_file(root, "bus/pci/devices/0000:3b:00.0/numa_node", "1\n");
	write_file(root, "bus/pci/devices/0000:5e:00.0/numa_node", "-1\n");
	write_file(root, "bus/pci/devices/0000:5f:00.0/numa_node", "x1\n");
	write_file(root, "devices/system/node/node0/cpulist", "0-1\n");
	write_file(root, "devices/system/node/node1/cpulist", "0-1,3\n");
	write_file(root, "devices/system/node/node2/cpulist", "\n");
}

static void rm_tree(const char *root)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_cpulist)
{
	cpu_set_t s;

	ck_assert_int_eq(tier_numa_parse_cpulist("0-3,8,10-11", &s), 7);
	ck_assert(CPU_ISSET(10, &s) && !CPU_ISSET(9, &s));
	ck_assert_int_eq(tier_numa_parse_cpulist("", &s), 0);
	ck_assert_int_eq(tier_numa_parse_cpulist("5", &s), 1);
	ck_assert_int_eq(tier_numa_parse_cpulist("1,1-2", &s), 2);
	ck_assert_int_eq(tier_numa_parse_cpulist("3-1", &s), -EINVAL);
	ck_assert_int_eq(tier_numa_parse_cpulist("a", &s), -EINVAL);
	ck_assert_int_eq(tier_numa_parse_cpulist("1,,2", &s), -EINVAL);
	ck_assert_int_eq(tier_numa_parse_cpulist("1-", &s), -EINVAL);
	ck_assert_int_eq(tier_numa_parse_cpulist("99999", &s), -EINVAL);
}
END_TEST

START_TEST(test_node_of_pci)
{
	char root[64];
	cpu_set_t s;

	fake_sysfs(root, sizeof(root));
	/* the CUDA driver's spelling, lower case, an 8-digit domain */
	ck_assert_int_eq(tier_numa_node_of_pci(root, "0000:3B:00.0"), 1);
	ck_assert_int_eq(tier_numa_node_of_pci(root, "0000:3b:00.0"), 1);
	ck_assert_int_eq(tier_numa_node_of_pci(root, "00000000:3B:00.0"), 1);
	ck_assert_int_eq(tier_numa_node_of_pci(root, "0000:5e:00.0"), -1);
	ck_assert_int_eq(tier_numa_node_of_pci(root, "0000:5f:00.0"), -EINVAL);
	ck_assert_int_eq(tier_numa_node_of_pci(root, "0000:3c:00.0"), -ENOENT);
	ck_assert_int_eq(tier_numa_node_of_pci(root, "3b:00.0"), -EINVAL);
	ck_assert_int_eq(tier_numa_node_of_pci(root, "0000:3b:00.0x"), -EINVAL);
	ck_assert_int_eq(tier_numa_node_of_pci(root, "0000:3b:40.0"), -EINVAL);
	ck_assert_int_eq(tier_numa_node_of_pci(root, NULL), -EINVAL);
	ck_assert_int_eq(tier_numa_node_cpus(root, 1, &s), 3);
	ck_assert_int_eq(tier_numa_node_cpus(root, 2, &s), 0);
	ck_assert_int_eq(tier_numa_node_cpus(root, 3, &s), -ENOENT);
	ck_assert_int_eq(tier_numa_node_cpus(root, -1, &s), -EINVAL);
	rm_tree(root);
}
END_TEST

/* Every page of the pool is resident (pre-touched) unless NO_TOUCH. */
static uint64_t resident_pages(void *base, uint64_t bytes)
{
	uint64_t n = bytes / 4096, r = 0;
	unsigned char *v = malloc(n);

	ck_assert_int_eq(mincore(base, bytes, v), 0);
	for (uint64_t i = 0; i < n; i++)
		r += v[i] & 1;
	free(v);
	return r;
}

START_TEST(test_pool_slots_chunks)
{
	struct tier_host_config cfg = {.bytes = 64u << 20,
				       .slot_bytes = SLOT,
				       .chunk_bytes = 8u << 20,
				       .numa_node = TIER_NODE_ANY,
				       .threads = 4};
	struct tier_host_stats st;
	struct tier_host *h;
	const struct iovec *iov;
	uint32_t n, slot, slots[64];
	uint64_t covered = 0;

	ck_assert_int_eq(tier_host_create(&cfg, &h), 0);
	tier_host_get_stats(h, &st);
	ck_assert_uint_eq(st.slots, (64u << 20) / SLOT);
	ck_assert_uint_eq(tier_host_nslots(h), st.slots);
	ck_assert_uint_eq(st.slots_free, st.slots);
	ck_assert_uint_eq(st.threads, 4);
	ck_assert_int_eq(st.node, -1);
	ck_assert(!st.pinned); /* no CUDA backend */
	ck_assert_str_eq(st.source, "anon");
	/* chunks: slot aligned, contiguous, cover every slot exactly */
	iov = tier_host_chunks(h, &n);
	ck_assert_uint_eq(n, (st.slots + 2) / 3);
	for (uint32_t i = 0; i < n; i++) {
		ck_assert_uint_eq(iov[i].iov_len % SLOT, 0);
		ck_assert_uint_le(iov[i].iov_len, 8u << 20);
		ck_assert_ptr_eq(iov[i].iov_base, (char *)tier_host_slot(h, 0) + covered);
		covered += iov[i].iov_len;
	}
	ck_assert_uint_eq(covered, (uint64_t)st.slots * SLOT);
	ck_assert_uint_eq(resident_pages(tier_host_slot(h, 0), covered), covered / 4096);
	/* slots: all distinct, writable, exhausted, reusable */
	for (uint32_t i = 0; i < st.slots; i++) {
		ck_assert_int_eq(tier_host_alloc(h, &slots[i]), 0);
		memset(tier_host_slot(h, slots[i]), (int)i + 1, SLOT);
	}
	ck_assert_int_eq(tier_host_alloc(h, &slot), -ENOSPC);
	for (uint32_t i = 0; i < st.slots; i++) {
		unsigned char *p = tier_host_slot(h, slots[i]);

		ck_assert_uint_eq(p[0], i + 1);
		ck_assert_uint_eq(p[SLOT - 1], i + 1);
	}
	tier_host_free(h, slots[5]);
	ck_assert_int_eq(tier_host_alloc(h, &slot), 0);
	ck_assert_uint_eq(slot, slots[5]);
	ck_assert_ptr_null(tier_host_slot(h, st.slots));
	tier_host_get_stats(h, &st);
	ck_assert_uint_eq(st.alloc_fail, 1);
	ck_assert_uint_eq(st.slots_free, 0);
	tier_host_destroy(h);
	tier_host_destroy(NULL);
}
END_TEST

START_TEST(test_no_touch_thp)
{
	struct tier_host_config cfg = {.bytes = 32u << 20,
				       .slot_bytes = 1u << 20,
				       .numa_node = TIER_NODE_ANY,
				       .flags = TIER_HOST_NO_TOUCH};
	struct tier_host *h;
	struct tier_host_stats st;

	ck_assert_int_eq(tier_host_create(&cfg, &h), 0);
	ck_assert_uint_eq(resident_pages(tier_host_slot(h, 0), 32u << 20), 0);
	tier_host_destroy(h);
	cfg.flags = TIER_HOST_THP;
	ck_assert_int_eq(tier_host_create(&cfg, &h), 0);
	tier_host_get_stats(h, &st);
	/* THP, or 4 KiB pages where the kernel has none (said so) */
	ck_assert(!strcmp(st.source, "anon thp") || !strcmp(st.source, "anon (no thp here)"));
	ck_assert_uint_eq(resident_pages(tier_host_slot(h, 0), 32u << 20), (32u << 20) / 4096);
	tier_host_destroy(h);
}
END_TEST

/* Placement on a real node of this machine: bound, and pages land there. */
START_TEST(test_real_node)
{
	struct tier_host_config cfg = {.bytes = 16u << 20, .slot_bytes = 1u << 20, .numa_node = 0};
	struct tier_host *h;
	struct tier_host_stats st;
	int node = -1;

	ck_assert_int_eq(tier_host_create(&cfg, &h), 0);
	tier_host_get_stats(h, &st);
	ck_assert_int_eq(st.node, 0);
	ck_assert_int_eq(
		get_mempolicy(&node, NULL, 0, tier_host_slot(h, 3), MPOL_F_NODE | MPOL_F_ADDR), 0);
	ck_assert_int_eq(node, 0);
	tier_host_destroy(h);
	/* the GPU's node without a CUDA backend: no placement */
	cfg.numa_node = TIER_NODE_OF_GPU;
	ck_assert_int_eq(tier_host_create(&cfg, &h), 0);
	tier_host_get_stats(h, &st);
	ck_assert_int_eq(st.node, -1);
	tier_host_destroy(h);
}
END_TEST

static int logs;
static void count_log(void *arg, const char *msg)
{
	logs++;
}

START_TEST(test_bad_config)
{
	struct tier_host_config cfg = {.bytes = 16u << 20,
				       .slot_bytes = 1u << 20,
				       .numa_node = TIER_NODE_ANY},
				c;
	struct tier_host *h = (void *)1;
	char root[64];

	ck_assert_int_eq(tier_host_create(NULL, &h), -EINVAL);
	ck_assert_int_eq(tier_host_create(&cfg, NULL), -EINVAL);
	c = cfg, c.slot_bytes = 5000;
	ck_assert_int_eq(tier_host_create(&c, &h), -EINVAL);
	ck_assert_ptr_null(h);
	c = cfg, c.bytes = 4096;
	ck_assert_int_eq(tier_host_create(&c, &h), -EINVAL);
	c = cfg, c.chunk_bytes = 2ull << 30;
	ck_assert_int_eq(tier_host_create(&c, &h), -EINVAL);
	c = cfg, c.chunk_bytes = 4096; /* smaller than a slot */
	ck_assert_int_eq(tier_host_create(&c, &h), -EINVAL);
	c = cfg, c.flags = 1u << 9;
	ck_assert_int_eq(tier_host_create(&c, &h), -EINVAL);
	c = cfg, c.flags = TIER_HOST_THP | TIER_HOST_HUGETLB;
	ck_assert_int_eq(tier_host_create(&c, &h), -EINVAL);
	c = cfg, c.numa_node = -3;
	ck_assert_int_eq(tier_host_create(&c, &h), -EINVAL);
	c = cfg, c.threads = 100000;
	ck_assert_int_eq(tier_host_create(&c, &h), -EINVAL);
	/* a node that does not exist (fake sysfs) */
	fake_sysfs(root, sizeof(root));
	c = cfg, c.sysfs = root, c.numa_node = 7;
	ck_assert_int_eq(tier_host_create(&c, &h), -EINVAL);
	rm_tree(root);
	/* hugetlb pages when none are reserved: -ENOMEM, said once */
	if (access("/proc/sys/vm/nr_hugepages", R_OK) == 0) {
		FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");
		long n = -1;

		ck_assert_int_eq(fscanf(f, "%ld", &n), 1);
		fclose(f);
		if (n == 0) {
			c = cfg, c.flags = TIER_HOST_HUGETLB, c.log = count_log;
			ck_assert_int_eq(tier_host_create(&c, &h), -ENOMEM);
			ck_assert_int_eq(logs, 1);
		}
	}
}
END_TEST

/* A memory source of the test's own: used as given, its populated pages
 * not touched again. */
static int test_src_created;
static int src_create(struct tier_mem *m, uint64_t bytes, int node, uint32_t flags)
{
	m->base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->base == MAP_FAILED)
		return -ENOMEM;
	m->bytes = bytes;
	m->page = 4096;
	m->populated = true; /* says it is, and is not: proves no touch */
	m->node_placed = true;
	snprintf(m->desc, sizeof(m->desc), "test source");
	test_src_created++;
	return 0;
}

static void src_destroy(struct tier_mem *m)
{
	munmap(m->base, m->bytes);
	test_src_created--;
}

static const struct tier_mem_ops test_src = {
	.name = "test", .create = src_create, .destroy = src_destroy};

START_TEST(test_memory_source)
{
	struct tier_host_config cfg = {.bytes = 8u << 20,
				       .slot_bytes = 1u << 20,
				       .numa_node = TIER_NODE_ANY,
				       .mem = &test_src};
	struct tier_host *h;
	struct tier_host_stats st;

	ck_assert_int_eq(tier_host_create(&cfg, &h), 0);
	ck_assert_int_eq(test_src_created, 1);
	tier_host_get_stats(h, &st);
	ck_assert_str_eq(st.source, "test source");
	ck_assert_uint_eq(resident_pages(tier_host_slot(h, 0), 8u << 20), 0);
	tier_host_destroy(h);
	ck_assert_int_eq(test_src_created, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tier_host_mt");
	TCase *tc = tcase_create("host");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_cpulist);
	tcase_add_test(tc, test_node_of_pci);
	tcase_add_test(tc, test_pool_slots_chunks);
	tcase_add_test(tc, test_no_touch_thp);
	tcase_add_test(tc, test_real_node);
	tcase_add_test(tc, test_bad_config);
	tcase_add_test(tc, test_memory_source);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
