// SPDX-License-Identifier: MIT
/* test_backend.c - the host and null backends keep the CUDA VMM rules. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "testutil.h"

static struct kvmm_backend *open_be(enum kvmm_backend_type t, uint64_t page)
{
	struct kvmm_backend_config cfg = {.type = t, .page_size = page};
	struct kvmm_backend *be = NULL;

	ck_assert_int_eq(kvmm_backend_open(&cfg, &be), 0);
	return be;
}

START_TEST(test_open_args)
{
	struct kvmm_backend_config cfg = {.type = 99};
	struct kvmm_backend *be = (void *)1;

	ck_assert_int_eq(kvmm_backend_open(&cfg, &be), -EINVAL);
	ck_assert_ptr_null(be);
	ck_assert_int_eq(kvmm_backend_open(NULL, NULL), -EINVAL);
	cfg.type = KVMM_BACKEND_HOST;
	cfg.flags = 1u << 30;
	ck_assert_int_eq(kvmm_backend_open(&cfg, &be), -EINVAL);
	cfg.flags = 0;
	cfg.page_size = 12345;
	ck_assert_int_eq(kvmm_backend_open(&cfg, &be), -EINVAL);
	cfg.device = -1;
	cfg.page_size = 0;
	ck_assert_int_eq(kvmm_backend_open(&cfg, &be), -EINVAL);
	kvmm_backend_close(NULL);
}
END_TEST

START_TEST(test_auto_and_cuda)
{
	struct kvmm_backend_config cfg = {.type = KVMM_BACKEND_CUDA};
	struct kvmm_backend *be = NULL;
	int ret;

	/* Without a usable GPU, cuda says -ENODEV and auto falls back to host,
	 * explaining why; with one, both are cuda. */
	ret = kvmm_backend_open(&cfg, &be);
	if (ret == 0) {
		ck_assert_str_eq(kvmm_backend_name(be), "cuda");
		kvmm_backend_close(be);
	} else {
		ck_assert_int_eq(ret, -ENODEV);
	}
	be = open_be(KVMM_BACKEND_AUTO, 0);
	if (ret == 0) {
		ck_assert_str_eq(kvmm_backend_name(be), "cuda");
	} else {
		ck_assert_str_eq(kvmm_backend_name(be), "host");
		ck_assert_ptr_nonnull(strstr(kvmm_backend_last_error(be), "cuda backend not used"));
	}
	ck_assert_uint_eq(kvmm_backend_page_size(be), 2u << 20);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_host_alias)
{
	struct kvmm_backend *be = open_be(KVMM_BACKEND_HOST, 64 << 10);
	uint64_t ps = kvmm_backend_page_size(be), va;
	kvmm_phys_t pg;
	unsigned char buf[64];

	ck_assert_uint_eq(ps, 64 << 10);
	ck_assert_int_eq(kvmm_be_reserve(be, 8 * ps, 4 * ps, &va), 0);
	ck_assert_uint_eq(va % (4 * ps), 0);
	ck_assert_int_eq(kvmm_be_create(be, &pg), 0);
	ck_assert_int_eq(kvmm_be_map(be, va, pg), 0);
	ck_assert_int_eq(kvmm_be_map(be, va, pg), -EEXIST);
	ck_assert_int_eq(kvmm_be_set_access(be, va, ps, KVMM_PROT_RW), 0);
	ck_assert_int_eq(kvmm_be_map(be, va + 3 * ps, pg), 0);
	ck_assert_int_eq(kvmm_be_set_access(be, va + 3 * ps, ps, KVMM_PROT_READ), 0);

	/* One page at two addresses: a write through one shows at the other. */
	memset(buf, 0xa5, sizeof(buf));
	ck_assert_int_eq(kvmm_memcpy_to_dev(be, va + 100, buf, sizeof(buf)), 0);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(kvmm_memcpy_to_host(be, buf, va + 3 * ps + 100, sizeof(buf)), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0xa5);

	/* Unmapping what is not mapped fails, as the driver's would; a range
	 * with a mapping cannot be released. */
	ck_assert_int_eq(kvmm_be_unmap(be, va + ps, ps), -EINVAL);
	ck_assert_int_eq(kvmm_be_set_access(be, va + ps, ps, KVMM_PROT_RW), -EINVAL);
	ck_assert_int_eq(kvmm_be_release_va(be, va, 8 * ps), -EBUSY);
	ck_assert_int_eq(kvmm_be_unmap(be, va, ps), 0);
	ck_assert_int_eq(kvmm_be_unmap(be, va + 3 * ps, ps), 0);
	ck_assert_int_eq(kvmm_be_destroy(be, pg), 0);
	ck_assert_int_eq(kvmm_be_destroy(be, pg), -EINVAL);
	ck_assert_int_eq(kvmm_be_map(be, va, pg), -EINVAL);
	ck_assert_int_eq(kvmm_be_release_va(be, va, 8 * ps), 0);

	struct kvmm_backend_stats st;

	ck_assert_int_eq(kvmm_backend_stats(be, &st), 0);
	ck_assert_uint_eq(st.calls[KVMM_OP_MAP], 4);
	ck_assert_uint_eq(st.errors[KVMM_OP_MAP], 2);
	ck_assert_uint_eq(st.calls[KVMM_OP_CREATE], 1);
	ck_assert_uint_eq(st.pages_live, 0);
	ck_assert_uint_eq(st.va_reserved_bytes, 0);
	kvmm_backend_close(be);
}
END_TEST

static void write_byte(void *p)
{
	*(volatile unsigned char *)p = 1;
}

static void read_byte(void *p)
{
	(void)*(volatile unsigned char *)p;
}

/* A read-only (shared) mapping faults on write and a mapping without access
 * faults on read: immutability is enforced by the MMU, not by convention. */
START_TEST(test_host_protection_faults)
{
	struct kvmm_backend *be = open_be(KVMM_BACKEND_HOST, 0);
	uint64_t ps = kvmm_backend_page_size(be), va;
	kvmm_phys_t pg;
	void *p;

	ck_assert_int_eq(kvmm_be_reserve(be, 2 * ps, 0, &va), 0);
	p = (void *)(uintptr_t)va;
	ck_assert_int_eq(tu_faults(read_byte, p), 1); /* reserved, unmapped */
	ck_assert_int_eq(kvmm_be_create(be, &pg), 0);
	ck_assert_int_eq(kvmm_be_map(be, va, pg), 0);
	/* Mapped but no access yet, like cuMemMap before cuMemSetAccess. */
	ck_assert_int_eq(tu_faults(read_byte, p), 1);
	ck_assert_int_eq(kvmm_be_set_access(be, va, ps, KVMM_PROT_READ), 0);
	ck_assert_int_eq(tu_faults(read_byte, p), 0);
	ck_assert_int_eq(tu_faults(write_byte, p), 1);
	ck_assert_int_eq(kvmm_be_set_access(be, va, ps, KVMM_PROT_RW), 0);
	ck_assert_int_eq(tu_faults(write_byte, p), 0);
	ck_assert_int_eq(kvmm_be_unmap(be, va, ps), 0);
	ck_assert_int_eq(tu_faults(read_byte, p), 1);
	ck_assert_int_eq(kvmm_be_destroy(be, pg), 0);
	ck_assert_int_eq(kvmm_be_release_va(be, va, 2 * ps), 0);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_host_reuse_and_zero)
{
	struct kvmm_backend *be = open_be(KVMM_BACKEND_HOST, 0);
	uint64_t ps = kvmm_backend_page_size(be), va;
	kvmm_phys_t a, b;
	unsigned char x = 0;

	ck_assert_int_eq(kvmm_be_reserve(be, 2 * ps, 0, &va), 0);
	ck_assert_int_eq(kvmm_be_create(be, &a), 0);
	ck_assert_int_eq(kvmm_be_map(be, va, a), 0);
	ck_assert_int_eq(kvmm_be_set_access(be, va, ps, KVMM_PROT_RW), 0);
	ck_assert_int_eq(kvmm_memset_dev(be, va, 7, ps), 0);
	ck_assert_int_eq(kvmm_be_unmap(be, va, ps), 0);
	ck_assert_int_eq(kvmm_be_destroy(be, a), 0);
	/* The slot is reused and its old contents are gone (hole punched). */
	ck_assert_int_eq(kvmm_be_create(be, &b), 0);
	ck_assert_uint_eq(a, b);
	ck_assert_int_eq(kvmm_be_map(be, va + ps, b), 0);
	ck_assert_int_eq(kvmm_be_set_access(be, va + ps, ps, KVMM_PROT_RW), 0);
	ck_assert_int_eq(kvmm_memcpy_to_host(be, &x, va + ps + ps / 2, 1), 0);
	ck_assert_uint_eq(x, 0);
	ck_assert_int_eq(kvmm_be_unmap(be, va + ps, ps), 0);
	ck_assert_int_eq(kvmm_be_destroy(be, b), 0);
	ck_assert_int_eq(kvmm_be_release_va(be, va, 2 * ps), 0);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_null_rules)
{
	struct kvmm_backend *be = open_be(KVMM_BACKEND_NULL, 0);
	uint64_t ps = kvmm_backend_page_size(be), va;
	kvmm_phys_t pg;
	char c;

	ck_assert_str_eq(kvmm_backend_name(be), "null");
	/* Terabytes of address space cost nothing. */
	ck_assert_int_eq(kvmm_be_reserve(be, 4ull << 40, 0, &va), 0);
	ck_assert_int_eq(kvmm_be_create(be, &pg), 0);
	ck_assert_int_eq(kvmm_be_map(be, va, pg), 0);
	ck_assert_int_eq(kvmm_be_map(be, va, pg), -EEXIST);
	ck_assert_int_eq(kvmm_be_unmap(be, va + ps, ps), -EINVAL);
	ck_assert_int_eq(kvmm_memcpy_to_host(be, &c, va, 1), -ENOTSUP);
	ck_assert_int_eq(kvmm_memcpy_dev(be, va, va + ps, ps), 0);
	ck_assert_int_eq(kvmm_be_unmap(be, va, ps), 0);
	ck_assert_int_eq(kvmm_be_destroy(be, pg), 0);
	ck_assert_int_eq(kvmm_be_destroy(be, pg), -EINVAL);
	kvmm_backend_close(be);
}
END_TEST

START_TEST(test_public_copy_args)
{
	struct kvmm_backend *be = open_be(KVMM_BACKEND_HOST, 0);
	char c;

	ck_assert_int_eq(kvmm_memcpy_to_dev(NULL, 1, &c, 1), -EINVAL);
	ck_assert_int_eq(kvmm_memcpy_to_dev(be, 0, &c, 1), -EINVAL);
	ck_assert_int_eq(kvmm_memcpy_to_host(be, NULL, 1, 1), -EINVAL);
	ck_assert_int_eq(kvmm_memcpy_dev(be, 0, 1, 1), -EINVAL);
	ck_assert_int_eq(kvmm_memset_dev(be, 0, 0, 1), -EINVAL);
	ck_assert_int_eq(kvmm_memcpy_to_dev(be, 0, NULL, 0), 0);
	ck_assert_int_eq(kvmm_backend_stats(be, NULL), -EINVAL);
	kvmm_backend_close(be);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backend");
	TCase *tc = tcase_create("host");

	tcase_add_test(tc, test_open_args);
	tcase_add_test(tc, test_auto_and_cuda);
	tcase_add_test(tc, test_host_alias);
	tcase_add_test(tc, test_host_protection_faults);
	tcase_add_test(tc, test_host_reuse_and_zero);
	tcase_add_test(tc, test_public_copy_args);
	suite_add_tcase(s, tc);
	tc = tcase_create("null");
	tcase_add_test(tc, test_null_rules);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
