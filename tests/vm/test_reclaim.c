// SPDX-License-Identifier: MIT
/*
 * test_reclaim: the shrinker drops COLD pages only (never HOT or pinned
 * ones), per NUMA node, and tells the owner through the status area's
 * generations and an eventfd; under a real memory hog cold pages go, hot
 * pages stay, nobody is OOM-killed; a dropped page is a miss the owner
 * restores from disk.
 * vm-timeout: 120
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB	  (1ull << 20)
#define SHRINK	  "/sys/kernel/debug/kvmm/shrink"
#define PAGE	  4096ull
#define MPOL_BIND 2

struct status_map {
	const struct kvmm_pool_status *st;
	const volatile uint32_t *gen;
	size_t len;
};

static int map_status(int fd, uint64_t pages, struct status_map *m)
{
	void *p;

	m->len = (KVMM_STATUS_SIZE(pages) + PAGE - 1) & ~(PAGE - 1);
	p = mmap(NULL, m->len, PROT_READ, MAP_SHARED, fd, (off_t)KVMM_STATUS_OFFSET);
	if (p == MAP_FAILED)
		return -errno;
	m->st = p;
	m->gen = (const volatile uint32_t *)((const char *)p + m->st->gen_offset);
	return 0;
}

FIXTURE(reclaim)
{
	int dev;
	int fd;
	char *p;
	size_t len;
	uint64_t pages;
	struct status_map sm;
};

FIXTURE_VARIANT(reclaim)
{
	int node;
	unsigned int shift;
};

FIXTURE_VARIANT_ADD(reclaim, node0_4k){.node = 0, .shift = 12};
FIXTURE_VARIANT_ADD(reclaim, node1_2m){.node = 1, .shift = 21};

FIXTURE_SETUP(reclaim)
{
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
	self->len = 16 * MIB;
	self->pages = self->len >> variant->shift;
	self->fd =
		vmt_pool_create(self->dev, "rc", self->len, variant->node, variant->shift, 0, 0600);
	ASSERT_GE(self->fd, 0);
	self->p = mmap(NULL, self->len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	ASSERT_NE(self->p, MAP_FAILED);
	ASSERT_EQ(map_status(self->fd, self->pages, &self->sm), 0);
	vmt_fill(self->p, self->len, 77);
}

FIXTURE_TEARDOWN(reclaim)
{
	if (self->sm.st)
		munmap((void *)self->sm.st, self->sm.len);
	if (self->p && self->p != MAP_FAILED)
		munmap(self->p, self->len);
	if (self->fd > 0)
		close(self->fd);
	if (self->dev > 0)
		close(self->dev);
}

TEST_F(reclaim, status_area)
{
	const struct kvmm_pool_status *st = self->sm.st;
	struct kvmm_info info = {.size = sizeof(info)};

	ASSERT_EQ(vmt_ioctl(self->dev, KVMM_IOC_GET_INFO, &info), 0);
	EXPECT_EQ(info.features &
			  (KVMM_FEATURE_RECLAIM | KVMM_FEATURE_STATUS | KVMM_FEATURE_EVENTFD),
		  KVMM_FEATURE_RECLAIM | KVMM_FEATURE_STATUS | KVMM_FEATURE_EVENTFD);
	EXPECT_EQ(st->magic, KVMM_STATUS_MAGIC);
	EXPECT_EQ(st->version, 1);
	EXPECT_EQ(st->gen_offset, sizeof(*st));
	EXPECT_EQ(st->pages, self->pages);
	EXPECT_EQ(st->seq, 0);
	EXPECT_EQ(st->dropped, 0);
	for (uint64_t i = 0; i < self->pages; i++)
		ASSERT_EQ(self->sm.gen[i], 0);
	/* read-only, shared, inside the area */
	EXPECT_EQ(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd,
		       (off_t)KVMM_STATUS_OFFSET),
		  MAP_FAILED);
	EXPECT_EQ(errno, EPERM);
	EXPECT_EQ(mprotect((void *)st, PAGE, PROT_READ | PROT_WRITE), -1);
	EXPECT_EQ(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, self->fd, (off_t)KVMM_STATUS_OFFSET),
		  MAP_FAILED);
	EXPECT_EQ(mmap(NULL, self->sm.len + PAGE, PROT_READ, MAP_SHARED, self->fd,
		       (off_t)KVMM_STATUS_OFFSET),
		  MAP_FAILED);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->fd,
		       (off_t)(KVMM_STATUS_OFFSET + self->sm.len)),
		  MAP_FAILED);
}

TEST_F(reclaim, drops_cold_pages_only)
{
	uint64_t half = self->pages / 2, dropped = 0;
	long long freed, base = vmt_read_ll(KVMM_SYSFS "/reclaim/reclaimed_pages");
	size_t ps = 1ul << variant->shift;
	struct kvmm_pool_desc d;

	/* first half COLD, second half HOT */
	ASSERT_EQ(vmt_set_state(self->fd, 0, half, KVMM_PAGE_COLD), half);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_cold"), half);
	freed = vmt_shrink(-1, 1ul << 30);
	EXPECT_EQ(freed, (long long)(half * ps / PAGE));
	/* the owner sees exactly the cold pages as dropped */
	EXPECT_EQ(self->sm.st->seq, half);
	EXPECT_EQ(self->sm.st->dropped, half);
	for (uint64_t i = 0; i < self->pages; i++) {
		uint32_t g = self->sm.gen[i];

		if (i < half) {
			ASSERT_EQ(g, 1);
			dropped++;
			/* the mapping reads a fresh, zeroed page */
			ASSERT_EQ(self->p[i * ps] | self->p[i * ps + ps - 1], 0);
		} else {
			ASSERT_EQ(g, 0);
		}
	}
	EXPECT_EQ(dropped, half);
	EXPECT_EQ(vmt_check(self->p + half * ps, self->len / 2, 77 + half * ps / 8), -1);
	ASSERT_EQ(vmt_pool_desc(self->fd, &d), 0);
	EXPECT_EQ(d.pages_reclaimed, half);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_COLD], 0);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_HOT], self->pages); /* re-touched above */
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/rc/pages_reclaimed"), (long long)half);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/reclaim/reclaimed_pages") - base, freed);
	/* nothing cold left: nothing more goes */
	EXPECT_EQ(vmt_shrink(-1, 1ul << 30), 0);
	EXPECT_EQ(vmt_check(self->p + half * ps, self->len / 2, 77 + half * ps / 8), -1);
}

TEST_F(reclaim, only_the_node_asked_for)
{
	int other = !variant->node;
	size_t ps = 1ul << variant->shift;

	ASSERT_EQ(vmt_set_state(self->fd, 0, self->pages, KVMM_PAGE_COLD), self->pages);
	EXPECT_EQ(vmt_shrink(other, 1ul << 30), 0);
	EXPECT_EQ(self->sm.st->seq, 0);
	/* a partial scan takes about what was asked, in whole pool pages */
	EXPECT_EQ(vmt_shrink(variant->node, ps / PAGE), (long long)(ps / PAGE));
	EXPECT_EQ(self->sm.st->dropped, 1);
	EXPECT_EQ(vmt_shrink(variant->node, 1ul << 30), (long long)((self->pages - 1) * ps / PAGE));
	EXPECT_EQ(self->sm.st->dropped, self->pages);
}

TEST_F(reclaim, pinned_pages_are_busy)
{
	size_t ps = 1ul << variant->shift;
	long long busy0 = vmt_read_ll(KVMM_SYSFS "/reclaim/busy");
	struct iovec iov = {.iov_base = self->p, .iov_len = PAGE};
	char drain[PAGE];
	int pipefd[2];

	/* vmsplice() holds a reference on the page, as a DMA pin does */
	ASSERT_EQ(pipe(pipefd), 0);
	ASSERT_EQ(vmsplice(pipefd[1], &iov, 1, 0), (ssize_t)PAGE);
	ASSERT_EQ(vmt_set_state(self->fd, 0, 2, KVMM_PAGE_COLD), 2);
	EXPECT_EQ(vmt_shrink(variant->node, 1ul << 30), (long long)(ps / PAGE));
	EXPECT_EQ(self->sm.gen[0], 0);
	EXPECT_EQ(self->sm.gen[1], 1);
	EXPECT_GT(vmt_read_ll(KVMM_SYSFS "/reclaim/busy"), busy0);
	/* the pinned page kept its data */
	EXPECT_EQ(vmt_check(self->p, PAGE, 77), -1);
	/* unpinned, it can go */
	ASSERT_EQ(read(pipefd[0], drain, sizeof(drain)), (ssize_t)PAGE);
	EXPECT_EQ(vmt_check(drain, PAGE, 77), -1);
	EXPECT_EQ(vmt_shrink(variant->node, 1ul << 30), (long long)(ps / PAGE));
	EXPECT_EQ(self->sm.gen[0], 1);
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST_F(reclaim, eventfd)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), ro;
	struct kvmm_pool_eventfd e = {.size = sizeof(e), .fd = efd};
	uint64_t v = 0;

	ASSERT_GE(efd, 0);
	ASSERT_EQ(vmt_ioctl(self->fd, KVMM_IOC_POOL_SET_EVENTFD, &e), 0);
	EXPECT_EQ(read(efd, &v, sizeof(v)), -1); /* nothing yet */
	ASSERT_EQ(vmt_set_state(self->fd, 0, 1, KVMM_PAGE_COLD), 1);
	EXPECT_GT(vmt_shrink(-1, 1ul << 30), 0);
	ASSERT_EQ(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	EXPECT_GE(v, 1);
	/* -1 removes it */
	e.fd = -1;
	ASSERT_EQ(vmt_ioctl(self->fd, KVMM_IOC_POOL_SET_EVENTFD, &e), 0);
	ASSERT_EQ(vmt_set_state(self->fd, 1, 1, KVMM_PAGE_COLD), 1);
	EXPECT_GT(vmt_shrink(-1, 1ul << 30), 0);
	EXPECT_EQ(read(efd, &v, sizeof(v)), -1);
	/* rejections */
	e.fd = 9999;
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_POOL_SET_EVENTFD, &e), -EBADF);
	e.fd = self->dev; /* not an eventfd */
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_POOL_SET_EVENTFD, &e), -EINVAL);
	e.fd = -2;
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_POOL_SET_EVENTFD, &e), -EINVAL);
	e.fd = efd;
	e.__reserved = 1;
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_POOL_SET_EVENTFD, &e), -EINVAL);
	e.__reserved = 0;
	ro = vmt_pool_open(self->dev, "rc", KVMM_OPEN_RDONLY);
	ASSERT_GE(ro, 0);
	EXPECT_EQ(vmt_ioctl(ro, KVMM_IOC_POOL_SET_EVENTFD, &e), -EBADF);
	close(ro);
	/* the pool going away releases the eventfd (leak-checked by rmmod) */
	ASSERT_EQ(vmt_ioctl(self->fd, KVMM_IOC_POOL_SET_EVENTFD, &e), 0);
	close(efd);
}

TEST_F(reclaim, free_and_hot_are_never_taken)
{
	ASSERT_EQ(vmt_set_state(self->fd, 0, self->pages / 2, KVMM_PAGE_FREE), self->pages / 2);
	EXPECT_EQ(vmt_shrink(-1, 1ul << 30), 0);
	EXPECT_EQ(self->sm.st->seq, 0);
	EXPECT_EQ(vmt_check(self->p + self->len / 2, self->len / 2, 77 + (self->len / 2) / 8), -1);
}

/* io_uring fixed buffers pin with FOLL_LONGTERM.  6.1 refuses file-backed
 * memory for them (docs/kmod.md); a kernel that takes pool memory must see
 * the pinned pages as busy. */
TEST(io_uring_fixed_buffers)
{
	struct io_uring_params params = {0};
	int dev = vmt_dev(), fd, ring;
	struct iovec iov;
	long r;
	char *p;

	ASSERT_GE(dev, 0);
	fd = vmt_pool_create(dev, "uring", 16 * PAGE, 0, 12, 0, 0600);
	ASSERT_GE(fd, 0);
	p = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	memset(p, 3, 16 * PAGE);
	ring = (int)syscall(__NR_io_uring_setup, 4, &params);
	if (ring < 0)
		SKIP("no io_uring: %s", strerror(errno));
	iov = (struct iovec){p, 16 * PAGE};
	r = syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1);
	if (r < 0) {
		EXPECT_EQ(errno, EOPNOTSUPP);
		TH_LOG("IORING_REGISTER_BUFFERS on pool memory: %s (as documented)",
		       strerror(errno));
	} else {
		ASSERT_EQ(vmt_set_state(fd, 0, 16, KVMM_PAGE_COLD), 16);
		EXPECT_EQ(vmt_shrink(0, 1ul << 30), 0);
		EXPECT_EQ(vmt_check(p, 0, 0), -1);
		EXPECT_EQ(syscall(__NR_io_uring_register, ring, IORING_UNREGISTER_BUFFERS, NULL, 0),
			  0);
		EXPECT_EQ(vmt_shrink(0, 1ul << 30), 16);
	}
	close(ring);
	munmap(p, 16 * PAGE);
	close(fd);
	close(dev);
}

TEST(debugfs_trigger_rejects_bad_input)
{
	EXPECT_EQ(vmt_write("x", SHRINK), -EINVAL);
	EXPECT_EQ(vmt_write("7 10", SHRINK), -EINVAL);
	EXPECT_EQ(vmt_write("-5 10", SHRINK), -EINVAL);
	EXPECT_EQ(vmt_write("0", SHRINK), -EINVAL);
	EXPECT_EQ(vmt_shrink(0, 10), 0);
}

/* The owner's side of the contract: page data goes to disk, the page is
 * made COLD, the kernel drops it, the owner sees the generation change,
 * treats it as a miss and reads the data back from disk. */
TEST(miss_restored_from_disk)
{
	int dev = vmt_dev(), fd, disk;
	struct status_map sm;
	uint32_t gen_at_fill[8];
	char *p;

	ASSERT_GE(dev, 0);
	disk = open("/dev/nvme0n1", O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_GE(disk, 0);
	fd = vmt_pool_create(dev, "disk", 8 * PAGE, 0, 12, 0, 0600);
	ASSERT_GE(fd, 0);
	p = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	ASSERT_EQ(map_status(fd, 8, &sm), 0);
	vmt_fill(p, 8 * PAGE, 123);
	for (int i = 0; i < 8; i++)
		gen_at_fill[i] = sm.gen[i];
	/* spill: O_DIRECT straight from the pool pages */
	ASSERT_EQ(pwrite(disk, p, 8 * PAGE, 0), (ssize_t)(8 * PAGE));
	ASSERT_EQ(vmt_set_state(fd, 0, 8, KVMM_PAGE_COLD), 8);
	ASSERT_EQ(vmt_shrink(0, 1ul << 30), 8);
	/* the reader checks generations before trusting the pages */
	for (int i = 0; i < 8; i++) {
		if (sm.gen[i] == gen_at_fill[i])
			continue;
		/* miss: restore from disk into the same page, it becomes HOT */
		ASSERT_EQ(pread(disk, p + i * PAGE, PAGE, (off_t)(i * PAGE)), (ssize_t)PAGE);
		gen_at_fill[i] = sm.gen[i];
	}
	EXPECT_EQ(vmt_check(p, 8 * PAGE, 123), -1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/disk/pages_hot"), 8);
	munmap((void *)sm.st, sm.len);
	munmap(p, 8 * PAGE);
	close(fd);
	close(disk);
	close(dev);
}

/* In a child: 0 when all of the bytes could be had. */
static int hog(void *arg)
{
	return vmt_hog(*(size_t *)arg);
}

TEST_TIMEOUT(memory_hog_takes_cold_keeps_hot, 100)
{
	const size_t cold = 256 * MIB, hot = 64 * MIB, len = cold + hot;
	int dev = vmt_dev(), fd;
	struct status_map sm;
	uint64_t dropped = 0, pages = len / PAGE;
	long long base = vmt_read_ll(KVMM_SYSFS "/reclaim/reclaimed_pages");
	size_t want;
	char *p;

	kt_forbid_kmsg("oom-kill");
	kt_forbid_kmsg("Out of memory");
	kt_forbid_kmsg("Killed process");
	ASSERT_GE(dev, 0);
	fd = vmt_pool_create(dev, "hog", len, KVMM_NODE_ANY, 12, 0, 0600);
	ASSERT_GE(fd, 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	ASSERT_EQ(map_status(fd, pages, &sm), 0);
	vmt_fill(p, len, 5);
	ASSERT_EQ(vmt_set_state(fd, 0, cold / PAGE, KVMM_PAGE_COLD), cold / PAGE);
	/* more than is free: only the cold pages can make up the difference */
	want = (size_t)vmt_mem_free() + cold / 2;
	TH_LOG("free %lld MiB, hog wants %zu MiB", vmt_mem_free() >> 20, want >> 20);
	EXPECT_EQ(vmt_in_child(hog, &want), 0);

	for (uint64_t i = 0; i < pages; i++) {
		if (sm.gen[i]) {
			ASSERT_LT(i, cold / PAGE); /* a hot page was dropped */
			dropped++;
		} else {
			/* not dropped: the data is intact */
			ASSERT_EQ(vmt_check(p + i * PAGE, PAGE, 5 + i * PAGE / 8), -1);
		}
	}
	TH_LOG("dropped %llu of %llu cold pages", (unsigned long long)dropped,
	       (unsigned long long)(cold / PAGE));
	EXPECT_GT(dropped * PAGE, cold / 4);
	EXPECT_EQ(sm.st->dropped, dropped);
	EXPECT_GE(vmt_read_ll(KVMM_SYSFS "/reclaim/reclaimed_pages") - base, (long long)dropped);
	munmap((void *)sm.st, sm.len);
	munmap(p, len);
	close(fd);
	close(dev);
}
