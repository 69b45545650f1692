// SPDX-License-Identifier: MIT
/* tier_fixture.c - scratch directories and self-checking records. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"
#include "tier_fixture.h"

char tf_dir[512];

void tf_setup(void)
{
	char why[512];

	ck_assert_msg(!tf_disk_dir(tf_dir, sizeof(tf_dir), why, sizeof(why)), "%s", why);
}

void tf_teardown(void)
{
	tf_rm_rf(tf_dir);
}

void tf_async_setup(void)
{
	setenv("KVMM_TIER_COPY_ASYNC", "1", 1);
	tf_setup();
}

void tf_async_teardown(void)
{
	tf_teardown();
	unsetenv("KVMM_TIER_COPY_ASYNC");
}

int tf_need_direct(void)
{
	char why[512];

	if (tf_disk_dir(tf_dir, sizeof(tf_dir), why, sizeof(why))) {
		printf("SKIP: %s\n", why);
		return 77;
	}
	tf_rm_rf(tf_dir);
	return 0;
}

int tf_run_disk_tests(const char *name, int timeout_s, const TTest *const *tests, int n)
{
	Suite *s;
	TCase *tc;

	/* one check up front: skip the program where O_DIRECT cannot work */
	if (tf_need_direct())
		return 77;
	s = suite_create(name);
	tc = tcase_create(name);
	tcase_set_timeout(tc, timeout_s);
	tcase_add_checked_fixture(tc, tf_setup, tf_teardown);
	for (int i = 0; i < n; i++)
		tcase_add_test(tc, tests[i]);
	suite_add_tcase(s, tc);
	return tu_run(s);
}

int tf_disk_dir(char *path, size_t len, char *why, size_t whylen)
{
	const char *base = getenv("KVMM_TEST_DISK_DIR");
	char probe[512];
	int fd;

	if (!base || !*base)
		base = "/var/tmp";
	snprintf(path, len, "%s/kvmm-tier-XXXXXX", base);
	if (!mkdtemp(path)) {
		snprintf(why, whylen, "cannot make a directory under %s: %s", base,
			 strerror(errno));
		return -1;
	}
	snprintf(probe, sizeof(probe), "%s/probe", path);
	fd = open(probe, O_RDWR | O_CREAT | O_DIRECT, 0600);
	if (fd < 0) {
		snprintf(why, whylen,
			 "the filesystem of %s refuses O_DIRECT (%s); set KVMM_TEST_DISK_DIR "
			 "to a directory on a disk filesystem",
			 base, strerror(errno));
		tf_rm_rf(path);
		return -1;
	}
	close(fd);
	unlink(probe);
	return 0;
}

void tf_rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char p[1024];

	if (d) {
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(path);
}

void *tf_alloc(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void tf_free(void *p, size_t bytes)
{
	if (p)
		munmap(p, bytes);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

void tf_payload(void *dst, uint64_t bytes, uint64_t key)
{
	uint64_t *w = dst, n = bytes / 8, s = mix(key + 1);

	for (uint64_t i = 0; i < n; i++) {
		s += 0x9e3779b97f4a7c15ull;
		w[i] = mix(s);
	}
	for (uint64_t i = n * 8; i < bytes; i++)
		((unsigned char *)dst)[i] = (unsigned char)mix(s + i);
}

uint64_t tf_make(void *buf, size_t len, struct tf_rec *r, uint64_t stream, uint64_t index)
{
	uint32_t tokens[64];
	struct tier_rec rec = {0};
	uint64_t bytes;

	if (r->ntokens > 64)
		return 0;
	for (uint32_t i = 0; i < r->ntokens; i++)
		tokens[i] = (uint32_t)mix(stream * 1000003u + index * 64 + i);
	r->key = tier_key_next(r->parent, tokens, r->ntokens);
	bytes = tier_rec_bytes(r->ntokens, r->payload_bytes);
	if (!bytes || bytes > len)
		return 0;
	rec.seq = r->seq;
	rec.ns.model_id = 1;
	rec.key = r->key;
	rec.parent = r->parent;
	rec.ntokens = r->ntokens;
	rec.payload_bytes = r->payload_bytes;
	tf_payload((char *)buf + tier_rec_hdr_bytes(r->ntokens), r->payload_bytes, r->key);
	if (tier_rec_seal(buf, len, &rec, tokens))
		return 0;
	return bytes;
}

bool tf_check(const void *buf, uint64_t key, uint64_t payload_bytes)
{
	struct tier_rec r;
	uint64_t total;
	void *want;
	bool ok;

	if (tier_rec_decode(buf, TIER_REC_ALIGN, &r) || r.key != key ||
	    r.payload_bytes != payload_bytes)
		return false;
	total = r.payload_bytes;
	want = malloc(total ? total : 1);
	if (!want)
		return false;
	tf_payload(want, total, key);
	ok = !memcmp((const char *)buf + r.hdr_bytes, want, total) &&
	     !tier_rec_check_payload(buf, r.hdr_bytes + total, &r);
	free(want);
	return ok;
}
