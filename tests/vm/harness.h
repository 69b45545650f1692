/* SPDX-License-Identifier: MIT */
/*
 * harness.h - kselftest-style fixtures for the module tests that run inside
 * the test VM (written for kvmm; the macro names follow the kernel's
 * tools/testing/selftests/kselftest_harness.h so they read the same).
 *
 *   TEST(name) { ... }                      a plain test
 *   TEST_TIMEOUT(name, seconds) { ... }
 *   FIXTURE(f) { fields };                  per-test state ("self")
 *   FIXTURE_VARIANT(f) { fields };          optional: run each TEST_F once
 *   FIXTURE_VARIANT_ADD(f, v) { values };   per variant ("variant")
 *   FIXTURE_SETUP(f) { ... }  FIXTURE_TEARDOWN(f) { ... }
 *   TEST_F(f, name) { ... }
 *
 * Each test runs in its own forked child under a timeout (default 30 s).
 * ASSERT_* stops the test (the teardown still runs), EXPECT_* records the
 * failure and goes on, SKIP(reason) ends it as skipped.  The parent prints
 * TAP ("ok N - fixture.variant.name"), and reads /dev/kmsg around every
 * test: a kernel message with "BUG:", "WARNING:", "Oops", a lockdep or
 * list-corruption report (or a pattern the test added with
 * kt_forbid_kmsg()) fails the test even when its body passed.
 *
 * Exit status: 0 all passed or skipped, 1 a failure, 77 everything skipped.
 * Usage: test_x [SUBSTRING]  runs only the tests whose name contains it.
 */
#ifndef KVMM_VM_HARNESS_H
#define KVMM_VM_HARNESS_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct __kt_fixture;

struct __kt_variant {
	const char *name;
	const void *data;
	struct __kt_variant *next;
};

struct __kt_fixture {
	const char *name;
	struct __kt_variant *variants;
};

struct __kt_test {
	const char *name;
	struct __kt_fixture *fixture; /* NULL for TEST() */
	void (*run)(const void *variant);
	unsigned int timeout;
	struct __kt_test *next;
};

void __kt_register(struct __kt_test *t);
void __kt_register_variant(struct __kt_fixture *f, struct __kt_variant *v);
/* fatal: 0 EXPECT (go on), 1 ASSERT (stop the test) */
void __kt_fail(int fatal, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void __kt_skip(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
extern jmp_buf __kt_jmp;
extern bool __kt_in_body;

/* Fail the running test if the kernel logs a message containing pattern. */
void kt_forbid_kmsg(const char *pattern);
/* Diagnostic line in the TAP output. */
#define TH_LOG(fmt, ...) printf("# " fmt "\n", ##__VA_ARGS__)

#define TEST(n) TEST_TIMEOUT(n, 30)
#define TEST_TIMEOUT(n, tmo)                                                                    \
	static void n(void);                                                                    \
	static void __kt_run_##n(const void *v)                                                 \
	{                                                                                       \
		(void)v;                                                                        \
		if (!setjmp(__kt_jmp)) {                                                        \
			__kt_in_body = true;                                                    \
			n();                                                                    \
		}                                                                               \
		__kt_in_body = false;                                                           \
	}                                                                                       \
	static struct __kt_test __kt_t_##n = {.name = #n, .run = __kt_run_##n, .timeout = tmo}; \
	__attribute__((constructor)) static void __kt_reg_##n(void)                             \
	{                                                                                       \
		__kt_register(&__kt_t_##n);                                                     \
	}                                                                                       \
	static void n(void)

#define FIXTURE(f)                                             \
	static struct __kt_fixture __kt_fx_##f = {.name = #f}; \
	struct f##_variant;                                    \
	struct f

#define FIXTURE_VARIANT(f) struct f##_variant

#define FIXTURE_VARIANT_ADD(f, v)                                                               \
	static const struct f##_variant __kt_vd_##f##_##v;                                      \
	static struct __kt_variant __kt_v_##f##_##v = {.name = #v, .data = &__kt_vd_##f##_##v}; \
	__attribute__((constructor)) static void __kt_regv_##f##_##v(void)                      \
	{                                                                                       \
		__kt_register_variant(&__kt_fx_##f, &__kt_v_##f##_##v);                         \
	}                                                                                       \
	static const struct f##_variant __kt_vd_##f##_##v =

#define FIXTURE_SETUP(f) \
	static void __kt_setup_##f(struct f *self, const struct f##_variant *variant)
#define FIXTURE_TEARDOWN(f) \
	static void __kt_teardown_##f(struct f *self, const struct f##_variant *variant)

#define TEST_F_TIMEOUT(f, n, tmo)                                                                \
	static void __kt_body_##f##_##n(struct f *self, const struct f##_variant *variant);      \
	static void __kt_run_##f##_##n(const void *v)                                            \
	{                                                                                        \
		static struct f self;                                                            \
		memset(&self, 0, sizeof(self));                                                  \
		if (!setjmp(__kt_jmp)) {                                                         \
			__kt_in_body = true;                                                     \
			__kt_setup_##f(&self, v);                                                \
			__kt_body_##f##_##n(&self, v);                                           \
		}                                                                                \
		__kt_in_body = false;                                                            \
		__kt_teardown_##f(&self, v);                                                     \
	}                                                                                        \
	static struct __kt_test __kt_t_##f##_##n = {                                             \
		.name = #n, .fixture = &__kt_fx_##f, .run = __kt_run_##f##_##n, .timeout = tmo}; \
	__attribute__((constructor)) static void __kt_reg_##f##_##n(void)                        \
	{                                                                                        \
		__kt_register(&__kt_t_##f##_##n);                                                \
	}                                                                                        \
	static void __kt_body_##f##_##n(struct f *self, const struct f##_variant *variant)
#define TEST_F(f, n) TEST_F_TIMEOUT(f, n, 30)

#define __KT_CMP(fatal, a, op, b)                                                              \
	do {                                                                                   \
		long long __a = (long long)(a), __b = (long long)(b);                          \
		if (!(__a op __b))                                                             \
			__kt_cmp_fail(fatal, __FILE__, __LINE__, #a " " #op " " #b, __a, __b); \
	} while (0)

void __kt_cmp_fail(int fatal, const char *file, int line, const char *expr, long long a,
		   long long b);
/* "EINVAL" for 22 (or -22); "" when it is not an errno. */
const char *__kt_errname(long long err);

#define ASSERT_EQ(a, b) __KT_CMP(1, a, ==, b)
#define ASSERT_NE(a, b) __KT_CMP(1, a, !=, b)
#define ASSERT_LT(a, b) __KT_CMP(1, a, <, b)
#define ASSERT_LE(a, b) __KT_CMP(1, a, <=, b)
#define ASSERT_GT(a, b) __KT_CMP(1, a, >, b)
#define ASSERT_GE(a, b) __KT_CMP(1, a, >=, b)
#define ASSERT_TRUE(x)	__KT_CMP(1, !!(x), ==, 1)
#define ASSERT_FALSE(x) __KT_CMP(1, !!(x), ==, 0)
#define EXPECT_EQ(a, b) __KT_CMP(0, a, ==, b)
#define EXPECT_NE(a, b) __KT_CMP(0, a, !=, b)
#define EXPECT_LT(a, b) __KT_CMP(0, a, <, b)
#define EXPECT_LE(a, b) __KT_CMP(0, a, <=, b)
#define EXPECT_GT(a, b) __KT_CMP(0, a, >, b)
#define EXPECT_GE(a, b) __KT_CMP(0, a, >=, b)
#define EXPECT_TRUE(x)	__KT_CMP(0, !!(x), ==, 1)
#define EXPECT_FALSE(x) __KT_CMP(0, !!(x), ==, 0)
#define ASSERT_STREQ(a, b)                                                                     \
	do {                                                                                   \
		const char *__sa = (a), *__sb = (b);                                           \
		if (strcmp(__sa, __sb))                                                        \
			__kt_fail(1, __FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", #a, #b, \
				  __sa, __sb);                                                 \
	} while (0)
#define FAIL(fmt, ...) __kt_fail(1, __FILE__, __LINE__, fmt, ##__VA_ARGS__)
#define SKIP(fmt, ...) __kt_skip(__FILE__, __LINE__, fmt, ##__VA_ARGS__)

#endif /* KVMM_VM_HARNESS_H */
