// SPDX-License-Identifier: MIT
/*
 * test_hugemap: 2 MiB pool pages are mapped with one PMD each where the
 * mapping is suitably aligned (the VMA's FilePmdMapped in smaps), with PTEs
 * where it is not, and stay correct through everything that unmaps or
 * splits a PMD: reclaim, FREE, fork, partial munmap and mprotect, madvise,
 * mremap, pins (vmsplice, O_DIRECT).  The data is checked after each.
 * vm-timeout: 120
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB  (1ull << 20)
#define HUGE (2 * MIB)
#define PAGE 4096ull
#define LEN  (8 * MIB) /* four pool pages */
#define SEED 91

#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

/* len bytes of fd at offset off, MAP_SHARED, at an address that is
 * 2 MiB aligned plus skew (MAP_FIXED inside a larger reservation). */
static char *map_at_skew(int fd, size_t len, off_t off, size_t skew, int prot)
{
	char *r = mmap(NULL, len + 2 * HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *a;

	if (r == MAP_FAILED)
		return MAP_FAILED;
	a = (char *)(((uintptr_t)r + HUGE - 1) & ~(uintptr_t)(HUGE - 1)) + skew;
	munmap(r, len + 2 * HUGE);
	return mmap(a, len, prot, MAP_SHARED | MAP_FIXED, fd, off);
}

/* Touch one byte in the middle of every 2 MiB (a fault at a subpage that
 * is not the first: the whole pool page must still get one PMD). */
static void touch_middles(volatile char *p, size_t len)
{
	for (size_t o = HUGE / 2 + 3 * PAGE; o < len; o += HUGE)
		(void)p[o];
}

/* Does writing to p kill a child with SIGSEGV?  (It writes what is there:
 * a write that works leaves the pool's data as it was.) */
static int write_faults(char *p)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		*(volatile char *)p = *(volatile char *)p;
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

FIXTURE(hm)
{
	int dev;
	int fd;
	char *p;
};

FIXTURE_SETUP(hm)
{
	if (access("/sys/kernel/mm/transparent_hugepage", F_OK))
		SKIP("kernel without CONFIG_TRANSPARENT_HUGEPAGE: pool pages are PTE-mapped");
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
	self->fd = vmt_pool_create(self->dev, "hm", LEN, 0, 21, 0, 0600);
	ASSERT_GE(self->fd, 0);
	self->p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	ASSERT_NE(self->p, MAP_FAILED);
	vmt_fill(self->p, LEN, SEED);
}

FIXTURE_TEARDOWN(hm)
{
	if (self->p && self->p != MAP_FAILED)
		munmap(self->p, LEN);
	if (self->fd > 0)
		close(self->fd);
	if (self->dev > 0)
		close(self->dev);
}

TEST_F(hm, aligned_mapping_uses_pmds)
{
	struct kvmm_info info = {.size = sizeof(info)};
	long long before;

	ASSERT_EQ(vmt_ioctl(self->dev, KVMM_IOC_GET_INFO, &info), 0);
	EXPECT_TRUE(info.features & KVMM_FEATURE_PMD_MAP);

	/* mmap(NULL) placed it for PMDs */
	EXPECT_EQ((uintptr_t)self->p % HUGE, 0);
	EXPECT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), LEN / 1024);
	EXPECT_EQ(vmt_smaps_kb(self->p, "Rss"), LEN / 1024);
	EXPECT_EQ(vmt_check(self->p, LEN, SEED), -1);
	/* a fresh mapping faulted in the middle of each page */
	before = vmt_meminfo_kb("FilePmdMapped");
	munmap(self->p, LEN);
	EXPECT_EQ(vmt_meminfo_kb("FilePmdMapped"), before - (long long)(LEN / 1024));
	self->p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, 0);
	ASSERT_NE(self->p, MAP_FAILED);
	EXPECT_EQ(vmt_smaps_kb(self->p, "Rss"), 0);
	touch_middles(self->p, LEN);
	EXPECT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), LEN / 1024);
	EXPECT_EQ(vmt_meminfo_kb("FilePmdMapped"), before);
	EXPECT_EQ(vmt_check(self->p, LEN, SEED), -1);
}

TEST_F(hm, unaligned_mapping_uses_ptes)
{
	char *q = map_at_skew(self->fd, LEN - HUGE, 0, PAGE, PROT_READ | PROT_WRITE);

	ASSERT_NE(q, MAP_FAILED);
	EXPECT_EQ(vmt_check(q, LEN - HUGE, SEED), -1);
	EXPECT_EQ(vmt_smaps_kb(q, "FilePmdMapped"), 0);
	EXPECT_EQ(vmt_smaps_kb(q, "Rss"), (LEN - HUGE) / 1024);
	/* the same pages as the PMD mapping */
	vmt_fill(q + HUGE, HUGE, 5);
	EXPECT_EQ(vmt_check(self->p + HUGE, HUGE, 5), -1);
	EXPECT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), LEN / 1024);
	munmap(q, LEN - HUGE);
	EXPECT_EQ(vmt_check(self->p + HUGE, HUGE, 5), -1);
	EXPECT_EQ(vmt_check(self->p, HUGE, SEED), -1);
}

TEST_F(hm, file_offset_decides_which_pages)
{
	/* offset 4 KiB, 6 MiB: pool pages 1 and 2 whole, 0 and 3 in part */
	char *q = mmap(NULL, 6 * MIB, PROT_READ, MAP_SHARED, self->fd, (off_t)PAGE);

	ASSERT_NE(q, MAP_FAILED);
	EXPECT_EQ(((uintptr_t)q - PAGE) % HUGE, 0);
	EXPECT_EQ(vmt_check(q, 6 * MIB, SEED + PAGE / 8), -1);
	EXPECT_EQ(vmt_smaps_kb(q, "FilePmdMapped"), 4 * MIB / 1024);
	munmap(q, 6 * MIB);
	/* an aligned address with a misaligned offset: PTEs only */
	q = map_at_skew(self->fd, 4 * MIB, (off_t)PAGE, 0, PROT_READ);
	ASSERT_NE(q, MAP_FAILED);
	EXPECT_EQ(vmt_check(q, 4 * MIB, SEED + PAGE / 8), -1);
	EXPECT_EQ(vmt_smaps_kb(q, "FilePmdMapped"), 0);
	munmap(q, 4 * MIB);
}

TEST_F(hm, reclaim_zaps_pmds_hot_stay)
{
	const volatile uint32_t *gen;
	size_t slen = 4096;
	void *st;

	st = mmap(NULL, slen, PROT_READ, MAP_SHARED, self->fd, (off_t)KVMM_STATUS_OFFSET);
	ASSERT_NE(st, MAP_FAILED);
	gen = (const volatile uint32_t *)((char *)st + ((struct kvmm_pool_status *)st)->gen_offset);
	ASSERT_EQ(vmt_set_state(self->fd, 0, 2, KVMM_PAGE_COLD), 2);
	EXPECT_EQ(vmt_shrink(0, 1ul << 30), 2 * 512);
	EXPECT_EQ(gen[0], 1);
	EXPECT_EQ(gen[1], 1);
	EXPECT_EQ(gen[2], 0);
	EXPECT_EQ(gen[3], 0);
	/* the cold pages' PMDs went, the hot ones' stayed */
	EXPECT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), 2 * HUGE / 1024);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 2 * 512);
	EXPECT_EQ(vmt_check(self->p + 2 * HUGE, 2 * HUGE, SEED + 2 * HUGE / 8), -1);
	/* a dropped page reads as a fresh zeroed page, again with a PMD */
	for (size_t o = 0; o < 2 * HUGE; o += PAGE)
		ASSERT_EQ(self->p[o] | self->p[o + PAGE - 1], 0);
	EXPECT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), LEN / 1024);
	vmt_fill(self->p, 2 * HUGE, 7);
	EXPECT_EQ(vmt_check(self->p, 2 * HUGE, 7), -1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 4 * 512);
	munmap(st, slen);
}

TEST_F(hm, free_zaps_the_pmd)
{
	ASSERT_EQ(vmt_set_state(self->fd, 2, 1, KVMM_PAGE_FREE), 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 3 * 512);
	EXPECT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), 3 * HUGE / 1024);
	EXPECT_EQ(self->p[2 * HUGE + 5 * PAGE], 0);
	EXPECT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), LEN / 1024);
	EXPECT_EQ(vmt_check(self->p + 3 * HUGE, HUGE, SEED + 3 * HUGE / 8), -1);
}

static int child_side(void *arg)
{
	char *p = arg;

	if (vmt_check(p, LEN, SEED) != -1)
		return 1;
	/* the child's own page tables: PMDs again */
	if (vmt_smaps_kb(p, "FilePmdMapped") != (long long)(LEN / 1024))
		return 2;
	vmt_fill(p + HUGE, HUGE, 11);
	return 0;
}

TEST_F(hm, fork_shares_the_pages)
{
	EXPECT_EQ(vmt_in_child(child_side, self->p), 0);
	EXPECT_EQ(vmt_check(self->p + HUGE, HUGE, 11), -1);
	EXPECT_EQ(vmt_check(self->p, HUGE, SEED), -1);
	EXPECT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), LEN / 1024);
}

TEST_F(hm, partial_munmap_and_mprotect_split)
{
	char *p = self->p;

	/* cut 2 MiB out of the middle of pool pages 0 and 1 */
	ASSERT_EQ(munmap(p + MIB, HUGE), 0);
	EXPECT_EQ(vmt_smaps_kb(p, "FilePmdMapped"), 0);
	EXPECT_EQ(vmt_check(p, MIB, SEED), -1);
	EXPECT_EQ(vmt_check(p + 3 * MIB, 5 * MIB, SEED + 3 * MIB / 8), -1);
	EXPECT_EQ(vmt_smaps_kb(p + 3 * MIB, "FilePmdMapped"), 2 * HUGE / 1024);
	/* read-only in the middle of pool page 2 */
	ASSERT_EQ(mprotect(p + 2 * HUGE + 8 * PAGE, PAGE, PROT_READ), 0);
	EXPECT_EQ(write_faults(p + 2 * HUGE + 8 * PAGE), 1);
	EXPECT_EQ(write_faults(p + 2 * HUGE + 9 * PAGE), 0);
	EXPECT_EQ(vmt_check(p + 2 * HUGE, 2 * HUGE, SEED + 2 * HUGE / 8), -1);
	/* the pool kept every page */
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 4 * 512);
	ASSERT_EQ(munmap(p, MIB), 0);
	ASSERT_EQ(munmap(p + 3 * MIB, 5 * MIB), 0);
	self->p = NULL;
}

TEST_F(hm, madvise_keeps_the_data)
{
	char *p = self->p;

	/* MADV_DONTNEED only unmaps a shared mapping: the pool keeps the data */
	ASSERT_EQ(madvise(p + MIB, MIB, MADV_DONTNEED), 0);
	ASSERT_EQ(madvise(p + HUGE, HUGE, MADV_DONTNEED), 0);
	EXPECT_EQ(vmt_check(p, LEN, SEED), -1);
	/* reclaim hints walk our PMDs and try to split them: no effect */
	EXPECT_EQ(madvise(p + 2 * HUGE + MIB, MIB, MADV_COLD), 0);
	EXPECT_EQ(madvise(p, LEN, MADV_COLD), 0);
	EXPECT_EQ(madvise(p + 3 * HUGE + PAGE, MIB, MADV_PAGEOUT), 0);
	EXPECT_EQ(madvise(p, LEN, MADV_PAGEOUT), 0);
	EXPECT_EQ(vmt_check(p, LEN, SEED), -1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 4 * 512);
}

TEST_F(hm, mremap_moves_it)
{
	char *r = mmap(NULL, 4 * HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *q;
	char *dst = (char *)(((uintptr_t)r + HUGE - 1) & ~(uintptr_t)(HUGE - 1)) + PAGE;

	ASSERT_NE(r, MAP_FAILED);
	/* onto an address that is not 2 MiB aligned: the PMDs must not move */
	q = mremap(self->p, 2 * HUGE, 2 * HUGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(q, dst);
	EXPECT_EQ(vmt_check(q, 2 * HUGE, SEED), -1);
	EXPECT_EQ(vmt_smaps_kb(q, "FilePmdMapped"), 0);
	munmap(r, 4 * HUGE);
	EXPECT_EQ(vmt_check(self->p + 2 * HUGE, 2 * HUGE, SEED + 2 * HUGE / 8), -1);
	munmap(self->p + 2 * HUGE, 2 * HUGE);
	self->p = NULL;
}

TEST_F(hm, pinned_subpage_keeps_the_huge_page)
{
	struct iovec iov = {.iov_base = self->p + HUGE + 12 * PAGE, .iov_len = PAGE};
	long long busy0 = vmt_read_ll(KVMM_SYSFS "/reclaim/busy");
	char drain[PAGE];
	int pipefd[2];

	ASSERT_EQ(pipe(pipefd), 0);
	ASSERT_EQ(vmsplice(pipefd[1], &iov, 1, 0), (ssize_t)PAGE);
	ASSERT_EQ(vmt_set_state(self->fd, 0, 2, KVMM_PAGE_COLD), 2);
	/* page 0 goes, page 1 is held by one 4 KiB subpage's reference */
	EXPECT_EQ(vmt_shrink(0, 1ul << 30), 512);
	EXPECT_GT(vmt_read_ll(KVMM_SYSFS "/reclaim/busy"), busy0);
	EXPECT_EQ(vmt_check(self->p + HUGE, HUGE, SEED + HUGE / 8), -1);
	ASSERT_EQ(read(pipefd[0], drain, sizeof(drain)), (ssize_t)PAGE);
	EXPECT_EQ(vmt_check(drain, PAGE, SEED + (HUGE + 12 * PAGE) / 8), -1);
	EXPECT_EQ(vmt_shrink(0, 1ul << 30), 512);
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST_F(hm, o_direct_to_and_from_a_pmd_mapping)
{
	int disk = open("/dev/nvme0n1", O_RDWR | O_DIRECT | O_CLOEXEC);

	ASSERT_GE(disk, 0);
	ASSERT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), LEN / 1024);
	/* get_user_pages() on the PMD: 2 MiB from pool page 1 to the disk */
	ASSERT_EQ(pwrite(disk, self->p + HUGE, HUGE, 0), (ssize_t)HUGE);
	ASSERT_EQ(vmt_set_state(self->fd, 1, 1, KVMM_PAGE_FREE), 1);
	ASSERT_EQ(pread(disk, self->p + HUGE, HUGE, 0), (ssize_t)HUGE);
	EXPECT_EQ(vmt_check(self->p + HUGE, HUGE, SEED + HUGE / 8), -1);
	EXPECT_EQ(vmt_smaps_kb(self->p, "FilePmdMapped"), LEN / 1024);
	close(disk);
}

TEST_F(hm, read_only_fd_maps_read_only_pmds)
{
	int ro = vmt_pool_open(self->dev, "hm", KVMM_OPEN_RDONLY);
	char *q;

	ASSERT_GE(ro, 0);
	q = mmap(NULL, LEN, PROT_READ, MAP_SHARED, ro, 0);
	ASSERT_NE(q, MAP_FAILED);
	EXPECT_EQ(vmt_check(q, LEN, SEED), -1);
	EXPECT_EQ(vmt_smaps_kb(q, "FilePmdMapped"), LEN / 1024);
	EXPECT_EQ(write_faults(q + HUGE + PAGE), 1);
	munmap(q, LEN);
	close(ro);
}

TEST(four_kib_pools_use_ptes)
{
	int dev = vmt_dev(), fd;
	char *p;

	ASSERT_GE(dev, 0);
	fd = vmt_pool_create(dev, "small", LEN, 0, 12, 0, 0600);
	ASSERT_GE(fd, 0);
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	vmt_fill(p, LEN, 3);
	EXPECT_EQ(vmt_smaps_kb(p, "FilePmdMapped"), 0);
	EXPECT_EQ(vmt_smaps_kb(p, "Rss"), LEN / 1024);
	EXPECT_EQ(vmt_check(p, LEN, 3), -1);
	munmap(p, LEN);
	close(fd);
	close(dev);
}
