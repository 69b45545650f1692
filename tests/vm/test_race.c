// SPDX-License-Identifier: MIT
/*
 * test_race: several processes and threads at once.
 *  - the drop contract under a running shrinker: a page whose generation
 *    did not change across a read returned the data written before the
 *    generation was noted;
 *  - faults, FREE and reclaim racing on the same pages leave consistent
 *    counts and no leak;
 *  - create/open/destroy/mmap/close/state/shrink chaos from 4 processes of
 *    2 threads on 4 shared names: only documented errnos, and nothing left
 *    once everyone is gone.
 * vm-timeout: 120
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB    (1ull << 20)
#define PAGE   4096ull
#define SHRINK "/sys/kernel/debug/kvmm/shrink"

static atomic_int stop;

static void *shrinker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		vmt_write("-1 64", SHRINK);
		usleep(200);
	}
	return NULL;
}

struct contract {
	int fd;
	char *p;
	const volatile uint32_t *gen;
	uint64_t pages;
	uint32_t noted[256];
	atomic_long checked, dropped;
	atomic_int bad;
};

static void *reader(void *arg)
{
	struct contract *c = arg;
	unsigned int s = (unsigned int)(uintptr_t)&s;

	while (!atomic_load(&stop)) {
		uint64_t i = (uint64_t)rand_r(&s) % c->pages;
		uint32_t g1 = c->gen[i], g2;
		long off;

		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		off = vmt_check(c->p + i * PAGE, PAGE, i * 1000);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		g2 = c->gen[i];
		if (g1 == g2 && g2 == c->noted[i]) {
			atomic_fetch_add(&c->checked, 1);
			if (off != -1)
				atomic_store(&c->bad, 1);
		} else {
			atomic_fetch_add(&c->dropped, 1);
		}
	}
	return NULL;
}

TEST_TIMEOUT(generation_contract_under_reclaim, 60)
{
	static struct contract c;
	pthread_t sh, rd[2];
	int dev = vmt_dev();
	void *st;

	ASSERT_GE(dev, 0);
	c.pages = 256;
	c.fd = vmt_pool_create(dev, "race", c.pages * PAGE, 0, 12, 0, 0600);
	ASSERT_GE(c.fd, 0);
	c.p = mmap(NULL, c.pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd, 0);
	st = mmap(NULL, (KVMM_STATUS_SIZE(c.pages) + PAGE - 1) & ~(PAGE - 1), PROT_READ, MAP_SHARED,
		  c.fd, (off_t)KVMM_STATUS_OFFSET);
	ASSERT_NE(c.p, MAP_FAILED);
	ASSERT_NE(st, MAP_FAILED);
	c.gen = (const volatile uint32_t *)((char *)st + sizeof(struct kvmm_pool_status));
	/* fill, note the generation, then let the kernel have it */
	for (uint64_t i = 0; i < c.pages; i++) {
		vmt_fill(c.p + i * PAGE, PAGE, i * 1000);
		c.noted[i] = c.gen[i];
	}
	ASSERT_EQ(vmt_set_state(c.fd, 0, c.pages, KVMM_PAGE_COLD), c.pages);
	atomic_store(&stop, 0);
	ASSERT_EQ(pthread_create(&sh, NULL, shrinker, NULL), 0);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&rd[i], NULL, reader, &c), 0);
	sleep(3);
	atomic_store(&stop, 1);
	pthread_join(sh, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(rd[i], NULL);
	TH_LOG("%ld reads checked intact, %ld saw a drop", atomic_load(&c.checked),
	       atomic_load(&c.dropped));
	EXPECT_EQ(atomic_load(&c.bad), 0);
	EXPECT_GT(atomic_load(&c.checked), 0);
	EXPECT_GT(atomic_load(&c.dropped), 0);
	close(c.fd);
	close(dev);
}

struct churn {
	int fd;
	char *p;
	int id;
};

static void *toucher(void *arg)
{
	struct churn *c = arg;
	unsigned int s = (unsigned int)c->id;

	while (!atomic_load(&stop))
		c->p[(size_t)(rand_r(&s) % 512) * PAGE] = 1;
	return NULL;
}

static void *freer(void *arg)
{
	struct churn *c = arg;
	unsigned int s = (unsigned int)c->id;

	while (!atomic_load(&stop)) {
		uint64_t first = (uint64_t)(rand_r(&s) % 500);

		vmt_set_state(c->fd, first, 1 + (uint64_t)(rand_r(&s) % 12),
			      (unsigned int)(rand_r(&s) % 3));
		if (rand_r(&s) % 8 == 0)
			vmt_populate(c->fd, first, 8);
	}
	return NULL;
}

TEST_TIMEOUT(faults_free_and_reclaim_on_the_same_pages, 60)
{
	pthread_t t[6], sh;
	struct churn c[6];
	struct kvmm_pool_desc d;
	int dev = vmt_dev(), fd;
	char *p;

	ASSERT_GE(dev, 0);
	fd = vmt_pool_create(dev, "churn", 512 * PAGE, KVMM_NODE_ANY, 12, 0, 0600);
	ASSERT_GE(fd, 0);
	p = mmap(NULL, 512 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	atomic_store(&stop, 0);
	ASSERT_EQ(pthread_create(&sh, NULL, shrinker, NULL), 0);
	for (int i = 0; i < 6; i++) {
		c[i] = (struct churn){fd, p, i + 1};
		ASSERT_EQ(pthread_create(&t[i], NULL, i < 3 ? toucher : freer, &c[i]), 0);
	}
	sleep(3);
	atomic_store(&stop, 1);
	pthread_join(sh, NULL);
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.pages_state[0] + d.pages_state[1] + d.pages_state[2], 512);
	EXPECT_LE(d.pages_present, 512);
	/* FREE pages never have memory */
	EXPECT_LE(d.pages_present, 512 - d.pages_state[KVMM_PAGE_FREE]);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), (long long)d.pages_present);
	munmap(p, 512 * PAGE);
	close(fd);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
	close(dev);
}

static const char *const chaos_names[] = {"c0", "c1", "c2", "c3"};

static int chaos_errno_ok(long r)
{
	return r >= 0 || r == -EEXIST || r == -ENOENT || r == -EINVAL || r == -ENOSPC ||
	       r == -ENFILE;
}

static void *chaos_thread(void *arg)
{
	unsigned int s = (unsigned int)(uintptr_t)arg;
	int dev = vmt_dev(), fd = -1;
	char *map = NULL;
	size_t maplen = 0;

	if (dev < 0)
		return (void *)1;
	while (!atomic_load(&stop)) {
		const char *name = chaos_names[rand_r(&s) % 4];
		long r = 0, newfd = -1;

		switch (rand_r(&s) % 8) {
		case 0:
			r = vmt_pool_create(dev, name, 64 * PAGE, (int)(rand_r(&s) % 3) - 1, 12,
					    rand_r(&s) % 2 ? KVMM_POOL_PERSISTENT : 0, 0600);
			newfd = r;
			break;
		case 1:
			r = vmt_pool_open(dev, name, rand_r(&s) % 2 ? KVMM_OPEN_RDONLY : 0);
			newfd = r;
			break;
		case 2:
			r = vmt_pool_destroy(dev, name);
			break;
		case 3:
			if (fd >= 0) {
				if (map)
					munmap(map, maplen);
				maplen = (1 + (size_t)(rand_r(&s) % 64)) * PAGE;
				map = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, 0);
				if (map == MAP_FAILED)
					map = NULL;
				else
					(void)*(volatile char *)(map + maplen - 1);
			}
			break;
		case 4:
			if (fd >= 0)
				r = vmt_set_state(fd, (uint64_t)(rand_r(&s) % 64), 1,
						  (unsigned int)(rand_r(&s) % 3));
			if (r == -EBADF)
				r = 0; /* a read-only fd */
			break;
		case 5:
			if (fd >= 0) {
				close(fd);
				fd = -1;
			}
			break;
		case 6:
			if (map) {
				munmap(map, maplen);
				map = NULL;
			}
			break;
		default:
			vmt_write("-1 32", SHRINK);
		}
		if (!chaos_errno_ok(r)) {
			TH_LOG("unexpected %ld (%s)", r, __kt_errname(r));
			return (void *)1;
		}
		if (newfd >= 0) {
			if (fd >= 0)
				close(fd);
			fd = (int)newfd;
		}
	}
	if (map)
		munmap(map, maplen);
	if (fd >= 0)
		close(fd);
	close(dev);
	return NULL;
}

static int chaos_process(void *arg)
{
	pthread_t t[2];
	void *r;
	int bad = 0;

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, chaos_thread, (void *)(uintptr_t)(getpid() * 10 + i));
	sleep(*(int *)arg);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], &r);
		bad |= r != NULL;
	}
	return bad;
}

TEST_TIMEOUT(create_open_destroy_map_chaos, 60)
{
	pid_t pids[4];
	int secs = 4, status, dev;

	atomic_store(&stop, 0);
	for (int i = 0; i < 4; i++) {
		pids[i] = fork();
		ASSERT_GE(pids[i], 0);
		if (pids[i] == 0)
			_exit(chaos_process(&secs));
	}
	for (int i = 0; i < 4; i++) {
		ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* only persistent pools may be left; destroying them frees everything */
	dev = vmt_dev();
	ASSERT_GE(dev, 0);
	for (int i = 0; i < 4; i++)
		vmt_pool_destroy(dev, chaos_names[i]);
	close(dev);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/bytes_reserved"), 0);
}
