// SPDX-License-Identifier: MIT
/*
 * test_client: libkvmm's host pool API (kvmm_probe, kvmm_hostpool_*) on the
 * module, and its fallback to ordinary memory (forced, and with the module
 * unloaded), run the same way, as the runtime's host tier will use it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kvmm.h"
#include "vmt.h"

#define MIB    (1ull << 20)
#define SHRINK "/sys/kernel/debug/kvmm/shrink"

TEST(probe)
{
	struct kvmm_kmod_info info;

	ASSERT_EQ(kvmm_probe(NULL, &info), 0);
	EXPECT_EQ(info.api_version, KVMM_API_VERSION);
	EXPECT_TRUE(info.features & KVMM_FEATURE_RECLAIM);
	EXPECT_TRUE(info.page_sizes & (1ull << 21));
	EXPECT_EQ(kvmm_probe(NULL, NULL), 0);
	EXPECT_EQ(kvmm_probe("/nonexistent", &info), -ENODEV);
	EXPECT_EQ(kvmm_probe("/dev/null", &info), -ENODEV);
	setenv("KVMM_DEVICE", "/nonexistent", 1);
	EXPECT_EQ(kvmm_probe(NULL, &info), -ENODEV);
	unsetenv("KVMM_DEVICE");
}

/* One variant per backing: the module, and the fallback forced beside it. */
FIXTURE(hp)
{
	struct kvmm_hostpool *p;
	struct kvmm_hostpool_config cfg;
};

FIXTURE_VARIANT(hp)
{
	uint32_t flags;
	int fallback;
};

FIXTURE_VARIANT_ADD(hp, module){.flags = 0, .fallback = 0};
FIXTURE_VARIANT_ADD(hp, fallback){.flags = KVMM_HOSTPOOL_CFG_FORCE_FALLBACK, .fallback = 1};

FIXTURE_SETUP(hp)
{
	self->cfg = (struct kvmm_hostpool_config){
		.name = "hp",
		.bytes = 16 * MIB,
		.node = 1,
		.page_size = 2 * MIB,
		.flags = variant->flags,
	};
	ASSERT_EQ(kvmm_hostpool_create(&self->cfg, &self->p), 0);
}

FIXTURE_TEARDOWN(hp)
{
	kvmm_hostpool_close(self->p);
	kvmm_hostpool_destroy("hp");
}

TEST_F(hp, geometry_and_placement)
{
	struct kvmm_hostpool_stat st;
	char *base = kvmm_hostpool_base(self->p);
	int *nodes = malloc(16 * MIB / 4096 * sizeof(int));

	ASSERT_TRUE(base != NULL);
	EXPECT_EQ((uintptr_t)base % (2 * MIB), 0); /* aligned to its page size */
	EXPECT_EQ(kvmm_hostpool_page_size(self->p), 2 * MIB);
	EXPECT_EQ(kvmm_hostpool_pages(self->p), 8);
	EXPECT_EQ(kvmm_hostpool_fd(self->p) >= 0, !variant->fallback);
	vmt_fill(base, 16 * MIB, 8);
	ASSERT_TRUE(nodes != NULL);
	ASSERT_EQ(vmt_page_nodes(base, 16 * MIB, nodes), 0);
	for (size_t i = 0; i < 16 * MIB / 4096; i++)
		ASSERT_EQ(nodes[i], 1);
	free(nodes);
	ASSERT_EQ(kvmm_hostpool_stat(self->p, &st), 0);
	EXPECT_EQ(st.fallback, (uint32_t)variant->fallback);
	EXPECT_EQ(st.node, 1);
	EXPECT_EQ(st.pages_present, 8);
	EXPECT_EQ(st.bytes, 16 * MIB);
}

TEST_F(hp, states_and_free)
{
	struct kvmm_hostpool_range r[2] = {{0, 2}, {6, 2}};
	struct kvmm_hostpool_stat st;
	char *base = kvmm_hostpool_base(self->p);

	ASSERT_EQ(kvmm_hostpool_populate(self->p, 0, 8), 0);
	vmt_fill(base, 16 * MIB, 3);
	EXPECT_EQ(kvmm_hostpool_set_states(self->p, r, 2, KVMM_HOSTPOOL_PAGE_COLD), 4);
	EXPECT_EQ(kvmm_hostpool_set_state(self->p, 2, 2, KVMM_HOSTPOOL_PAGE_FREE), 2);
	ASSERT_EQ(kvmm_hostpool_stat(self->p, &st), 0);
	EXPECT_EQ(st.pages_state[KVMM_HOSTPOOL_PAGE_COLD], 4);
	EXPECT_EQ(st.pages_state[KVMM_HOSTPOOL_PAGE_FREE], 2);
	EXPECT_EQ(st.pages_state[KVMM_HOSTPOOL_PAGE_HOT], 2);
	EXPECT_EQ(st.pages_present, 6); /* FREE released the memory */
	EXPECT_EQ(base[2 * 2 * MIB], 0);
	EXPECT_EQ(vmt_check(base, 4 * MIB, 3), -1);
	/* rejections, the same on both backings */
	EXPECT_EQ(kvmm_hostpool_set_state(self->p, 7, 2, KVMM_HOSTPOOL_PAGE_HOT), -EINVAL);
	EXPECT_EQ(kvmm_hostpool_set_state(self->p, 0, 0, KVMM_HOSTPOOL_PAGE_HOT), -EINVAL);
	EXPECT_EQ(kvmm_hostpool_set_state(self->p, 0, 1, (enum kvmm_hostpool_page_state)7),
		  -EINVAL);
	EXPECT_EQ(kvmm_hostpool_set_states(self->p, r, 0, KVMM_HOSTPOOL_PAGE_HOT), -EINVAL);
	EXPECT_EQ(kvmm_hostpool_populate(self->p, 8, 1), -EINVAL);
}

TEST_F(hp, residency)
{
	uint64_t res[KVMM_HOSTPOOL_TIERS] = {5, 6, 7, 8};
	struct kvmm_hostpool_stat st;

	ASSERT_EQ(kvmm_hostpool_set_residency(self->p, res), 0);
	ASSERT_EQ(kvmm_hostpool_stat(self->p, &st), 0);
	EXPECT_EQ(st.residency[KVMM_HOSTPOOL_TIER_DISK], 7);
	EXPECT_EQ(st.residency[KVMM_HOSTPOOL_TIER_INFLIGHT], 8);
}

TEST_F(hp, drops_seen_without_syscalls)
{
	char *base = kvmm_hostpool_base(self->p);
	uint64_t seq0 = kvmm_hostpool_drop_seq(self->p), v;
	uint32_t g0 = kvmm_hostpool_page_gen(self->p, 3);
	int efd = kvmm_hostpool_eventfd(self->p);

	if (variant->fallback) {
		/* ordinary memory is never dropped and has no eventfd */
		EXPECT_EQ(efd, -ENOTSUP);
		EXPECT_EQ(seq0, 0);
		EXPECT_EQ(g0, 0);
		return;
	}
	ASSERT_GE(efd, 0);
	EXPECT_EQ(kvmm_hostpool_eventfd(self->p), efd); /* one per pool */
	vmt_fill(base, 16 * MIB, 9);
	ASSERT_EQ(kvmm_hostpool_set_state(self->p, 3, 1, KVMM_HOSTPOOL_PAGE_COLD), 1);
	ASSERT_EQ(vmt_write("1 100000", SHRINK), 0);
	EXPECT_GT(kvmm_hostpool_drop_seq(self->p), seq0);
	EXPECT_NE(kvmm_hostpool_page_gen(self->p, 3), g0);
	EXPECT_EQ(kvmm_hostpool_page_gen(self->p, 2), 0);
	EXPECT_EQ(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	EXPECT_EQ(kvmm_hostpool_page_gen(self->p, 1000), 0); /* out of range */
}

struct mt {
	struct kvmm_hostpool *p;
	int id;
};

static void *flip(void *arg)
{
	struct mt *m = arg;

	for (int i = 0; i < 2000; i++) {
		uint64_t pg = (uint64_t)(i + m->id) % 8;

		if (kvmm_hostpool_set_state(m->p, pg, 1,
					    i & 1 ? KVMM_HOSTPOOL_PAGE_COLD
						  : KVMM_HOSTPOOL_PAGE_HOT) < 0)
			return (void *)1;
	}
	return NULL;
}

TEST_F(hp, concurrent_state_changes)
{
	pthread_t t[4];
	struct mt m[4];
	struct kvmm_hostpool_stat st;
	void *r;

	ASSERT_EQ(kvmm_hostpool_populate(self->p, 0, 8), 0);
	for (int i = 0; i < 4; i++) {
		m[i] = (struct mt){self->p, i};
		ASSERT_EQ(pthread_create(&t[i], NULL, flip, &m[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(pthread_join(t[i], &r), 0);
		EXPECT_TRUE(r == NULL);
	}
	ASSERT_EQ(kvmm_hostpool_stat(self->p, &st), 0);
	EXPECT_EQ(st.pages_state[0] + st.pages_state[1] + st.pages_state[2], 8);
}

TEST(module_pools_are_shared_by_name)
{
	struct kvmm_hostpool_config cfg = {.name = "shared",
					   .bytes = 8 * MIB,
					   .node = 0,
					   .flags = KVMM_HOSTPOOL_CFG_PERSISTENT |
						    KVMM_HOSTPOOL_CFG_POPULATE};
	struct kvmm_hostpool *a, *b, *c;

	ASSERT_EQ(kvmm_hostpool_create(&cfg, &a), 0);
	vmt_fill(kvmm_hostpool_base(a), 8 * MIB, 4);
	kvmm_hostpool_close(a);
	EXPECT_EQ(kvmm_hostpool_create(&cfg, &c), -EEXIST);
	ASSERT_EQ(kvmm_hostpool_open("shared", KVMM_HOSTPOOL_READ_ONLY, &b), 0);
	EXPECT_EQ(vmt_check(kvmm_hostpool_base(b), 8 * MIB, 4), -1);
	EXPECT_EQ(kvmm_hostpool_set_state(b, 0, 1, KVMM_HOSTPOOL_PAGE_COLD), -EBADF);
	kvmm_hostpool_close(b);
	EXPECT_EQ(kvmm_hostpool_destroy("shared"), 0);
	EXPECT_EQ(kvmm_hostpool_open("shared", 0, &b), -ENOENT);
	EXPECT_EQ(kvmm_hostpool_destroy("shared"), -ENOENT);
}

TEST(bad_configs)
{
	struct kvmm_hostpool_config cfg = {.name = "x", .bytes = 2 * MIB, .node = 0};
	struct kvmm_hostpool *p = NULL;

	EXPECT_EQ(kvmm_hostpool_create(NULL, &p), -EINVAL);
	EXPECT_EQ(kvmm_hostpool_create(&cfg, NULL), -EINVAL);
	cfg.bytes = MIB;
	EXPECT_EQ(kvmm_hostpool_create(&cfg, &p), -EINVAL); /* not a multiple of 2 MiB */
	cfg.bytes = 2 * MIB;
	cfg.page_size = 8192;
	EXPECT_EQ(kvmm_hostpool_create(&cfg, &p), -EINVAL);
	cfg.page_size = 0;
	cfg.flags = 1u << 20;
	EXPECT_EQ(kvmm_hostpool_create(&cfg, &p), -EINVAL);
	cfg.flags = 0;
	cfg.name = "";
	EXPECT_EQ(kvmm_hostpool_create(&cfg, &p), -EINVAL);
	cfg.name = "x";
	cfg.pci_dev = 5;
	EXPECT_EQ(kvmm_hostpool_create(&cfg, &p), -EINVAL);
	cfg.pci_dev = 0;
	cfg.node = 9;
	EXPECT_EQ(kvmm_hostpool_create(&cfg, &p), -EINVAL);
	cfg.flags = KVMM_HOSTPOOL_CFG_FORCE_FALLBACK;
	EXPECT_EQ(kvmm_hostpool_create(&cfg, &p), -ENODEV);
	EXPECT_TRUE(p == NULL);
	EXPECT_EQ(kvmm_hostpool_open(NULL, 0, &p), -EINVAL);
	EXPECT_EQ(kvmm_hostpool_open("x", 1u << 5, &p), -EINVAL);
	kvmm_hostpool_close(NULL);
}

TEST(fallback_without_the_module)
{
	struct kvmm_hostpool_config cfg = {.name = "fb",
					   .bytes = 8 * MIB,
					   .node = 1,
					   .page_size = 4096,
					   .flags = KVMM_HOSTPOOL_CFG_POPULATE};
	struct kvmm_hostpool_stat st;
	struct kvmm_hostpool *p;
	int nodes[16];

	ASSERT_EQ(vmt_unload(), 0);
	EXPECT_EQ(kvmm_probe(NULL, NULL), -ENODEV);
	/* without FALLBACK: no module, no pool */
	EXPECT_EQ(kvmm_hostpool_create(&cfg, &p), -ENODEV);
	EXPECT_EQ(kvmm_hostpool_open("fb", 0, &p), -ENODEV);
	EXPECT_EQ(kvmm_hostpool_destroy("fb"), -ENODEV);
	cfg.flags |= KVMM_HOSTPOOL_CFG_FALLBACK;
	ASSERT_EQ(kvmm_hostpool_create(&cfg, &p), 0);
	ASSERT_EQ(kvmm_hostpool_stat(p, &st), 0);
	EXPECT_EQ(st.fallback, 1);
	EXPECT_EQ(st.pages_present, 2048);
	EXPECT_EQ(st.pages_state[KVMM_HOSTPOOL_PAGE_HOT], 2048);
	ASSERT_EQ(vmt_page_nodes(kvmm_hostpool_base(p), 16 * 4096, nodes), 0);
	for (int i = 0; i < 16; i++)
		EXPECT_EQ(nodes[i], 1);
	kvmm_hostpool_close(p);
	ASSERT_EQ(vmt_load(""), 0);
}
