// SPDX-License-Identifier: MIT
/* test_tier_hashpool_mt.c - parallel payload checksums equal the serial
 * ones for any batch (sizes, counts, helpers), also from several callers
 * at once (TSan). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tier_hash.h"
#include "tier_hashpool.h"

#define BUF (3u << 20)

static unsigned char *data;

static void check_batch(struct tier_hashpool *hp, struct tu_rng *rng, uint32_t n)
{
	const void *bufs[80] = {NULL};
	uint64_t lens[80] = {0}, out[80];

	for (uint32_t i = 0; i < n; i++) {
		uint64_t len = tu_rng_below(rng, 5) ? tu_rng_below(rng, 3u << 20) : 0;
		uint64_t off = tu_rng_below(rng, BUF - len + 1);

		bufs[i] = data + off;
		lens[i] = len;
	}
	tier_hashpool_payloads(hp, bufs, lens, n, TIER_HASH_CHUNK_SHIFT, out);
	for (uint32_t i = 0; i < n; i++)
		ck_assert_uint_eq(out[i],
				  tier_hash_payload(bufs[i], lens[i], TIER_HASH_CHUNK_SHIFT));
}

START_TEST(test_equals_serial)
{
	static const uint32_t helpers[] = {0, 1, 3, 8};
	struct tu_rng rng;

	tu_rng_init(&rng, tu_seed());
	for (size_t h = 0; h < sizeof(helpers) / sizeof(helpers[0]); h++) {
		struct tier_hashpool *hp;

		ck_assert_int_eq(tier_hashpool_create(helpers[h], &hp), 0);
		for (int r = 0; r < (int)tu_scaled(20); r++)
			check_batch(hp, &rng, 1 + (uint32_t)tu_rng_below(&rng, r % 3 ? 8 : 80));
		check_batch(hp, &rng, 0);
		tier_hashpool_destroy(hp);
	}
	/* no pool: the caller alone */
	check_batch(NULL, &rng, 5);
	tier_hashpool_destroy(NULL);
}
END_TEST

static void *caller(void *arg)
{
	struct tier_hashpool *hp = arg;
	struct tu_rng rng;

	tu_rng_init(&rng, tu_seed() ^ (uint64_t)(uintptr_t)&rng);
	for (int r = 0; r < (int)tu_scaled(10); r++)
		check_batch(hp, &rng, 1 + (uint32_t)tu_rng_below(&rng, 12));
	return NULL;
}

START_TEST(test_concurrent_callers)
{
	struct tier_hashpool *hp;
	pthread_t t[3];

	ck_assert_int_eq(tier_hashpool_create(2, &hp), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, caller, hp), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	tier_hashpool_destroy(hp);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tier_hashpool_mt");
	TCase *tc = tcase_create("hashpool");
	struct tu_rng rng;

	data = malloc(BUF);
	tu_rng_init(&rng, 7);
	for (uint32_t i = 0; i < BUF / 8; i++)
		((uint64_t *)data)[i] = tu_rng_next(&rng);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_equals_serial);
	tcase_add_test(tc, test_concurrent_callers);
	suite_add_tcase(s, tc);
	{
		int ret = tu_run(s);

		free(data);
		return ret;
	}
}
