// SPDX-License-Identifier: MIT
/* test_u64map.c - the hash map against a plain array model. */
#include <stdlib.h>

#include "testutil.h"
#include "u64map.h"

START_TEST(test_model)
{
	enum { KEYS = 4096 };
	static uint64_t model[KEYS];
	static uint8_t present[KEYS];
	struct u64map m;
	struct tu_rng r;
	uint64_t n = tu_scaled(200000), v;

	u64map_init(&m);
	tu_rng_init(&r, tu_seed());
	for (uint64_t i = 0; i < n; i++) {
		/* Page-aligned keys collide in the low bits: the common case. */
		uint64_t k = tu_rng_below(&r, KEYS);
		uint64_t key = (k << 21) + 0x7f0000000000ull;

		switch (tu_rng_below(&r, 3)) {
		case 0:
			ck_assert_int_eq(u64map_put(&m, key, i), 0);
			model[k] = i;
			present[k] = 1;
			break;
		case 1:
			ck_assert_int_eq(u64map_del(&m, key, &v), present[k]);
			if (present[k])
				ck_assert_uint_eq(v, model[k]);
			present[k] = 0;
			break;
		default:
			ck_assert_int_eq(u64map_get(&m, key, &v), present[k]);
			if (present[k])
				ck_assert_uint_eq(v, model[k]);
		}
	}
	size_t cnt = 0, pos = 0;
	uint64_t key;

	while (u64map_next(&m, &pos, &key, &v)) {
		uint64_t k = (key - 0x7f0000000000ull) >> 21;

		ck_assert(present[k]);
		ck_assert_uint_eq(v, model[k]);
		cnt++;
	}
	ck_assert_uint_eq(cnt, m.len);
	u64map_free(&m);
}
END_TEST

START_TEST(test_reserved_key)
{
	struct u64map m;

	u64map_init(&m);
	ck_assert_int_eq(u64map_put(&m, U64MAP_EMPTY, 1), -22);
	ck_assert(!u64map_get(&m, U64MAP_EMPTY, NULL));
	ck_assert(!u64map_del(&m, 5, NULL));
	u64map_free(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("u64map");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_model);
	tcase_add_test(tc, test_reserved_key);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
