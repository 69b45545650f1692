// SPDX-License-Identifier: MIT
/*
 * test_kmod_fallback.c - the host pool API where kvmm.ko is absent (this
 * machine, CI, the GPU machine): kvmm_probe() says so, module-only calls
 * fail cleanly, and KVMM_HOSTPOOL_CFG_FALLBACK gives ordinary memory with
 * the same calls.  The module side runs in the VM (tests/vm/test_client.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kmod_client.h"
#include "kvmm.h"
#include "testutil.h"

#define MIB (1ull << 20)

static void no_module(void)
{
	/* this machine cannot load modules; make sure of it for the test */
	setenv("KVMM_DEVICE", "/nonexistent/kvmm", 1);
}

START_TEST(test_probe_without_module)
{
	struct kvmm_kmod_info info;
	struct kvmm_hostpool_config cfg = {.name = "x", .bytes = 2 * MIB, .node = -1};
	struct kvmm_hostpool *p = NULL;

	no_module();
	ck_assert_int_eq(kvmm_probe(NULL, &info), -ENODEV);
	ck_assert_int_eq(kvmm_probe("/dev/null", &info), -ENODEV);
	ck_assert_int_eq(kvmm_hostpool_create(&cfg, &p), -ENODEV);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(kvmm_hostpool_open("x", 0, &p), -ENODEV);
	ck_assert_int_eq(kvmm_hostpool_destroy("x"), -ENODEV);
}
END_TEST

START_TEST(test_fallback_pool)
{
	struct kvmm_hostpool_config cfg = {.name = "fb",
					   .bytes = 8 * MIB,
					   .node = -1,
					   .page_size = 4096,
					   .flags = KVMM_HOSTPOOL_CFG_FALLBACK};
	uint64_t res[KVMM_HOSTPOOL_TIERS] = {1, 2, 3, 4};
	struct kvmm_hostpool_range r[2] = {{0, 10}, {100, 5}};
	struct kvmm_hostpool_stat st;
	struct kvmm_hostpool *p;
	char *base;

	no_module();
	ck_assert_int_eq(kvmm_hostpool_create(&cfg, &p), 0);
	base = kvmm_hostpool_base(p);
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(kvmm_hostpool_fd(p), -1);
	ck_assert_uint_eq(kvmm_hostpool_pages(p), 2048);
	ck_assert_int_eq(kvmm_hostpool_populate(p, 0, 2048), 0);
	memset(base, 7, 8 * MIB);
	ck_assert_int_eq(kvmm_hostpool_set_states(p, r, 2, KVMM_HOSTPOOL_PAGE_COLD), 15);
	ck_assert_int_eq(kvmm_hostpool_set_state(p, 10, 90, KVMM_HOSTPOOL_PAGE_FREE), 90);
	ck_assert_int_eq(base[10 * 4096], 0); /* the memory went */
	ck_assert_int_eq(base[9 * 4096], 7);
	ck_assert_int_eq(kvmm_hostpool_set_residency(p, res), 0);
	ck_assert_int_eq(kvmm_hostpool_stat(p, &st), 0);
	ck_assert_uint_eq(st.fallback, 1);
	ck_assert_uint_eq(st.pages_state[KVMM_HOSTPOOL_PAGE_COLD], 15);
	ck_assert_uint_eq(st.pages_state[KVMM_HOSTPOOL_PAGE_FREE], 90);
	ck_assert_uint_eq(st.pages_state[KVMM_HOSTPOOL_PAGE_HOT], 2048 - 105);
	ck_assert_uint_eq(st.residency[KVMM_HOSTPOOL_TIER_DISK], 3);
	ck_assert_uint_eq(st.pages_present, 2048 - 89); /* page 10 came back when read */
	ck_assert_uint_eq(kvmm_hostpool_page_gen(p, 0), 0);
	ck_assert_uint_eq(kvmm_hostpool_drop_seq(p), 0);
	ck_assert_int_eq(kvmm_hostpool_eventfd(p), -ENOTSUP);
	ck_assert_int_eq(kvmm_hostpool_set_state(p, 2048, 1, KVMM_HOSTPOOL_PAGE_HOT), -EINVAL);
	ck_assert_int_eq(kvmm_hostpool_set_state(p, 1, UINT64_MAX, KVMM_HOSTPOOL_PAGE_HOT),
			 -EINVAL);
	kvmm_hostpool_close(p);
}
END_TEST

START_TEST(test_fallback_2m_aligned)
{
	struct kvmm_hostpool_config cfg = {.name = "fb",
					   .bytes = 6 * MIB,
					   .node = -1,
					   .flags = KVMM_HOSTPOOL_CFG_FORCE_FALLBACK |
						    KVMM_HOSTPOOL_CFG_POPULATE};
	struct kvmm_hostpool *p;

	ck_assert_int_eq(kvmm_hostpool_create(&cfg, &p), 0);
	ck_assert_uint_eq((uintptr_t)kvmm_hostpool_base(p) % (2 * MIB), 0);
	ck_assert_uint_eq(kvmm_hostpool_page_size(p), 2 * MIB);
	ck_assert_uint_eq(kvmm_hostpool_pages(p), 3);
	kvmm_hostpool_close(p);
}
END_TEST

START_TEST(test_bad_arguments)
{
	struct kvmm_hostpool_config cfg = {.name = "fb",
					   .bytes = 4096,
					   .node = -1,
					   .page_size = 4096,
					   .flags = KVMM_HOSTPOOL_CFG_FORCE_FALLBACK};
	struct kvmm_hostpool *p = NULL;

	ck_assert_int_eq(kvmm_hostpool_create(NULL, &p), -EINVAL);
	cfg.node = -2;
	ck_assert_int_eq(kvmm_hostpool_create(&cfg, &p), -EINVAL);
	cfg.node = -1;
	cfg.mode = 01777;
	ck_assert_int_eq(kvmm_hostpool_create(&cfg, &p), -EINVAL);
	cfg.mode = 0;
	cfg.__pad = 1;
	ck_assert_int_eq(kvmm_hostpool_create(&cfg, &p), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_ptr_null(kvmm_hostpool_base(NULL));
	ck_assert_int_eq(kvmm_hostpool_set_state(NULL, 0, 1, KVMM_HOSTPOOL_PAGE_HOT), -EINVAL);
	ck_assert_int_eq(kvmm_hostpool_stat(NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_client_helpers)
{
	uint32_t id;

	ck_assert_int_eq(kmod_parse_pci("0000:3b:00.0", &id), 0);
	ck_assert_uint_eq(id, 0x3b00);
	ck_assert_int_eq(kmod_parse_pci("1:02:1f.7", &id), 0);
	ck_assert_uint_eq(id, 0x1 << 16 | 0x02 << 8 | 0x1f << 3 | 7);
	ck_assert_int_eq(kmod_parse_pci("3b:00.0", &id), 0);
	ck_assert_uint_eq(id, 0x3b00);
	ck_assert_int_eq(kmod_parse_pci("3b:20.0", &id), -EINVAL);
	ck_assert_int_eq(kmod_parse_pci("x", &id), -EINVAL);
	ck_assert_int_eq(kmod_parse_pci("0:0:0.0 ", &id), -EINVAL);
	ck_assert_str_eq(kmod_errname(-EEXIST), "EEXIST");
	ck_assert_str_eq(kmod_strerror(KVMM_IOC_POOL_CREATE, -EEXIST),
			 "a pool with this name exists");
	ck_assert_str_eq(kmod_strerror(KVMM_IOC_POOL_CREATE, -EDQUOT),
			 "over the per-uid limit (kvmmctl limits get)");
	setenv("KVMM_DEVICE", "/tmp/x", 1);
	ck_assert_str_eq(kmod_dev_path(NULL), "/tmp/x");
	ck_assert_str_eq(kmod_dev_path("/dev/y"), "/dev/y");
	unsetenv("KVMM_DEVICE");
	ck_assert_str_eq(kmod_dev_path(NULL), "/dev/kvmm");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kmod_fallback");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_probe_without_module);
	tcase_add_test(tc, test_fallback_pool);
	tcase_add_test(tc, test_fallback_2m_aligned);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_client_helpers);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
