// SPDX-License-Identifier: MIT
/*
 * test_pool: pool create/open/destroy/info/list, mmap, page states,
 * populate, residency, and every rejection of their arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB  (1ull << 20)
#define PAGE 4096ull

FIXTURE(pool)
{
	int dev;
};

FIXTURE_SETUP(pool)
{
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
}

FIXTURE_TEARDOWN(pool)
{
	static const char *const names[] = {"p0", "p1", "p2", "big"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		vmt_pool_destroy(self->dev, names[i]);
	close(self->dev);
}

static int create4k(int dev, const char *name, uint64_t bytes)
{
	return vmt_pool_create(dev, name, bytes, KVMM_NODE_ANY, 12, 0, 0600);
}

TEST_F(pool, create_and_describe)
{
	struct kvmm_pool_desc d;
	struct kvmm_stats st;
	char buf[64];
	int fd;

	fd = vmt_pool_create(self->dev, "p0", MIB, KVMM_NODE_ANY, 12, 0, 0640);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	ASSERT_STREQ(d.name, "p0");
	EXPECT_EQ(d.bytes, MIB);
	EXPECT_EQ(d.pages, 256);
	EXPECT_EQ(d.page_shift, 12);
	EXPECT_EQ(d.node, KVMM_NODE_ANY);
	EXPECT_EQ(d.mode, 0640);
	EXPECT_EQ(d.uid, 0);
	EXPECT_EQ(d.gid, 0);
	EXPECT_EQ(d.flags, 0);
	EXPECT_EQ(d.attached, 1);
	EXPECT_EQ(d.mappings, 0);
	EXPECT_EQ(d.pages_present, 0);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_FREE], 256);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_HOT], 0);
	EXPECT_GT(d.id, 0);

	/* the same in sysfs */
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/size"), MIB);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/pages"), 256);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/page_size"), 4096);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/node"), -1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/attached"), 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/persistent"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/id"), (long long)d.id);
	ASSERT_EQ(vmt_read_str(buf, sizeof(buf), KVMM_SYSFS "/pools/p0/mode"), 0);
	EXPECT_EQ(strcmp(buf, "0640"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/bytes_reserved"), MIB);

	ASSERT_EQ(vmt_stats(self->dev, &st), 0);
	EXPECT_EQ(st.pools, 1);
	EXPECT_EQ(st.bytes_reserved, MIB);
	EXPECT_EQ(st.pages_free, 256);
	EXPECT_EQ(st.pages_allocated, 0);

	/* a pool fd is not a device fd, and the other way round */
	{
		struct kvmm_info info = {.size = sizeof(info)};
		struct kvmm_pool_info pi = {.size = sizeof(pi)};

		EXPECT_EQ(vmt_ioctl(fd, KVMM_IOC_GET_INFO, &info), -ENOTTY);
		EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_INFO, &pi), -ENOTTY);
	}
	close(fd);
	/* not persistent: gone with its last fd */
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
	EXPECT_EQ(access(KVMM_SYSFS "/pools/p0", F_OK), -1);
	EXPECT_EQ(vmt_pool_open(self->dev, "p0", 0), -ENOENT);
}

TEST_F(pool, create_unknown_flags)
{
	for (int bit = 4; bit < 32; bit++)
		EXPECT_EQ(vmt_pool_create(self->dev, "p0", MIB, KVMM_NODE_ANY, 12, 1u << bit, 0600),
			  -EINVAL);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
}

TEST_F(pool, create_bad_names)
{
	char n63[64], n64[65];
	struct kvmm_pool_create c = {.size = sizeof(c), .bytes = MIB, .node = -1, .page_shift = 12};
	static const char *const bad[] = {"",	   ".hidden",	  "..",	       "a/b",	     "a b",
					  "tab\t", "caf\xc3\xa9", "new\nline", "semi;colon", "*"};
	int fd;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(vmt_pool_create(self->dev, bad[i], MIB, KVMM_NODE_ANY, 12, 0, 0600),
			  -EINVAL);
	memset(n64, 'x', 64);
	n64[64] = 0;
	EXPECT_EQ(vmt_pool_create(self->dev, n64, MIB, KVMM_NODE_ANY, 12, 0, 0600), -EINVAL);
	memset(n63, 'y', 63);
	n63[63] = 0;
	fd = vmt_pool_create(self->dev, n63, MIB, KVMM_NODE_ANY, 12, 0, 0600);
	EXPECT_GE(fd, 0);
	close(fd);
	/* bytes after the NUL are reserved */
	strcpy(c.name, "p0");
	c.name[10] = 'z';
	EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_CREATE, &c), -EINVAL);
	/* names that are fine */
	fd = vmt_pool_create(self->dev, "Llama-3.1_8B.layer-0", MIB, KVMM_NODE_ANY, 12, 0, 0600);
	EXPECT_GE(fd, 0);
	close(fd);
}

TEST_F(pool, create_bad_sizes)
{
	static const uint64_t bad4k[] = {0, 1, 4095, 4097, MIB + 512};

	for (size_t i = 0; i < sizeof(bad4k) / sizeof(bad4k[0]); i++)
		EXPECT_EQ(create4k(self->dev, "p0", bad4k[i]), -EINVAL);
	/* 2 MiB pages: a multiple of 2 MiB */
	EXPECT_EQ(vmt_pool_create(self->dev, "p0", MIB, KVMM_NODE_ANY, 21, 0, 0600), -EINVAL);
	EXPECT_EQ(vmt_pool_create(self->dev, "p0", 3 * MIB, KVMM_NODE_ANY, 21, 0, 0600), -EINVAL);
	/* over the maximum size, and over the most pages (4 KiB pages) */
	EXPECT_EQ(create4k(self->dev, "p0", KVMM_POOL_MAX_BYTES + PAGE), -EFBIG);
	EXPECT_EQ(create4k(self->dev, "p0", (KVMM_POOL_MAX_PAGES + 1) * PAGE), -EFBIG);
	EXPECT_EQ(create4k(self->dev, "p0", ~0ull & ~(PAGE - 1)), -EFBIG);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
}

TEST_F(pool, create_bad_page_shift)
{
	static const unsigned int bad[] = {0, 11, 13, 16, 20, 22, 30, 64, UINT_MAX};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(vmt_pool_create(self->dev, "p0", 4 * MIB, KVMM_NODE_ANY, bad[i], 0, 0600),
			  -EINVAL);
}

TEST_F(pool, create_bad_mode)
{
	static const uint32_t bad[] = {01000, 02000, 04000, 010000, 0x80000000};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(vmt_pool_create(self->dev, "p0", MIB, KVMM_NODE_ANY, 12, 0, bad[i]),
			  -EINVAL);
}

TEST_F(pool, create_bad_node)
{
	static const int bad[] = {-2, INT_MIN, INT_MAX, 4096, 1 << 20};
	struct kvmm_info info = {.size = sizeof(info)};

	ASSERT_EQ(vmt_ioctl(self->dev, KVMM_IOC_GET_INFO, &info), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(vmt_pool_create(self->dev, "p0", MIB, bad[i], 12, 0, 0600), -EINVAL);
	EXPECT_EQ(vmt_pool_create(self->dev, "p0", MIB, (int)info.nr_node_ids, 12, 0, 0600),
		  -EINVAL);
}

/* The PCI address of the VM's NVMe controller, as the kernel encodes it. */
static int nvme_pci(uint32_t *id, int *node)
{
	char link[256], *b;
	unsigned int dom, bus, dev, fn;
	ssize_t n = readlink("/sys/class/nvme/nvme0/device", link, sizeof(link) - 1);

	if (n < 0)
		return -errno;
	link[n] = 0;
	b = strrchr(link, '/');
	b = b ? b + 1 : link;
	if (sscanf(b, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4)
		return -EINVAL;
	*id = dom << 16 | bus << 8 | dev << 3 | fn;
	*node = (int)vmt_read_ll("/sys/bus/pci/devices/%s/numa_node", b);
	return 0;
}

TEST_F(pool, create_node_of_pci_device)
{
	struct kvmm_pool_create c = {
		.size = sizeof(c),
		.bytes = MIB,
		.node = KVMM_NODE_ANY,
		.page_shift = 12,
		.flags = KVMM_POOL_NODE_OF_PCI,
		.mode = 0600,
	};
	struct kvmm_pool_desc d;
	uint32_t id = 0;
	int node = -1, fd;

	ASSERT_EQ(nvme_pci(&id, &node), 0);
	strcpy(c.name, "p0");
	/* a device that does not exist */
	c.pci_dev = 0xffff0000u | 0xff00u;
	EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_CREATE, &c), -ENODEV);
	/* node must be ANY with the flag */
	c.pci_dev = id;
	c.node = 0;
	EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_CREATE, &c), -EINVAL);
	/* pci_dev is reserved without the flag */
	c.node = KVMM_NODE_ANY;
	c.flags = 0;
	EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_CREATE, &c), -EINVAL);
	c.flags = KVMM_POOL_NODE_OF_PCI;
	fd = (int)vmt_ioctl(self->dev, KVMM_IOC_POOL_CREATE, &c);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	/* the device's node, or any when the device has none */
	EXPECT_EQ(d.node, node < 0 ? KVMM_NODE_ANY : node);
	close(fd);
}

TEST_F(pool, create_duplicate_name)
{
	int a, b;

	a = create4k(self->dev, "p0", MIB);
	ASSERT_GE(a, 0);
	EXPECT_EQ(create4k(self->dev, "p0", MIB), -EEXIST);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 1);
	/* after destroy the name is free again, while the old pool lives on */
	ASSERT_EQ(vmt_pool_destroy(self->dev, "p0"), 0);
	b = create4k(self->dev, "p0", MIB);
	ASSERT_GE(b, 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 2);
	close(a);
	close(b);
}

TEST_F(pool, create_cloexec)
{
	int a = create4k(self->dev, "p0", MIB);
	int b = vmt_pool_create(self->dev, "p1", MIB, KVMM_NODE_ANY, 12, KVMM_POOL_CLOEXEC, 0600);
	int c, d;

	ASSERT_GE(a, 0);
	ASSERT_GE(b, 0);
	EXPECT_EQ(fcntl(a, F_GETFD) & FD_CLOEXEC, 0);
	EXPECT_EQ(fcntl(b, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	c = vmt_pool_open(self->dev, "p0", 0);
	d = vmt_pool_open(self->dev, "p0", KVMM_OPEN_CLOEXEC);
	ASSERT_GE(c, 0);
	ASSERT_GE(d, 0);
	EXPECT_EQ(fcntl(c, F_GETFD) & FD_CLOEXEC, 0);
	EXPECT_EQ(fcntl(d, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(a);
	close(b);
	close(c);
	close(d);
}

TEST_F(pool, create_populate)
{
	struct kvmm_pool_desc d;
	int fd;

	fd = vmt_pool_create(self->dev, "p0", 8 * MIB, KVMM_NODE_ANY, 12, KVMM_POOL_POPULATE, 0600);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.pages_present, 2048);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_HOT], 2048);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 2048);
	close(fd);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
}

TEST_F(pool, open_by_name)
{
	struct kvmm_pool_desc a, b;
	int fd, fd2;
	char *p, *q;

	fd = create4k(self->dev, "p0", MIB);
	ASSERT_GE(fd, 0);
	fd2 = vmt_pool_open(self->dev, "p0", 0);
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(vmt_pool_desc(fd, &a), 0);
	ASSERT_EQ(vmt_pool_desc(fd2, &b), 0);
	EXPECT_EQ(a.id, b.id);
	EXPECT_EQ(b.attached, 2);
	/* both fds reach the same pages */
	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	q = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
	ASSERT_NE(p, MAP_FAILED);
	ASSERT_NE(q, MAP_FAILED);
	vmt_fill(p, MIB, 7);
	EXPECT_EQ(vmt_check(q, MIB, 7), -1);
	munmap(p, MIB);
	munmap(q, MIB);
	close(fd);
	close(fd2);
}

TEST_F(pool, open_rejections)
{
	int fd = create4k(self->dev, "p0", MIB);

	ASSERT_GE(fd, 0);
	EXPECT_EQ(vmt_pool_open(self->dev, "nope", 0), -ENOENT);
	EXPECT_EQ(vmt_pool_open(self->dev, "", 0), -EINVAL);
	EXPECT_EQ(vmt_pool_open(self->dev, "a/b", 0), -EINVAL);
	for (int bit = 2; bit < 32; bit++)
		EXPECT_EQ(vmt_pool_open(self->dev, "p0", 1u << bit), -EINVAL);
	close(fd);
}

TEST_F(pool, open_read_only)
{
	int fd = create4k(self->dev, "p0", MIB), ro;
	struct kvmm_pool_desc d;
	char *w, *r;

	ASSERT_GE(fd, 0);
	ro = vmt_pool_open(self->dev, "p0", KVMM_OPEN_RDONLY);
	ASSERT_GE(ro, 0);
	EXPECT_EQ(fcntl(ro, F_GETFL) & O_ACCMODE, O_RDONLY);
	EXPECT_EQ(mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0), MAP_FAILED);
	EXPECT_EQ(errno, EACCES);
	r = mmap(NULL, MIB, PROT_READ, MAP_SHARED, ro, 0);
	ASSERT_NE(r, MAP_FAILED);
	/* no upgrade to writable later */
	EXPECT_EQ(mprotect(r, MIB, PROT_READ | PROT_WRITE), -1);
	w = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(w, MAP_FAILED);
	vmt_fill(w, MIB, 3);
	EXPECT_EQ(vmt_check(r, MIB, 3), -1);
	/* a read-only fd changes nothing */
	EXPECT_EQ(vmt_set_state(ro, 0, 1, KVMM_PAGE_COLD), -EBADF);
	EXPECT_EQ(vmt_populate(ro, 0, 1), -EBADF);
	{
		struct kvmm_pool_residency res = {.size = sizeof(res)};

		EXPECT_EQ(vmt_ioctl(ro, KVMM_IOC_POOL_SET_RESIDENCY, &res), -EBADF);
	}
	EXPECT_EQ(vmt_pool_desc(ro, &d), 0);
	munmap(r, MIB);
	munmap(w, MIB);
	close(ro);
	close(fd);
}

TEST_F(pool, destroy_unlinks_but_keeps_users)
{
	struct kvmm_pool_list l = {.size = sizeof(l), .entry_size = sizeof(struct kvmm_pool_desc)};
	struct kvmm_pool_desc d[4];
	int fd = create4k(self->dev, "p0", MIB);
	char *p;

	ASSERT_GE(fd, 0);
	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	vmt_fill(p, MIB, 11);
	EXPECT_EQ(vmt_pool_destroy(self->dev, "nope"), -ENOENT);
	EXPECT_EQ(vmt_pool_destroy(self->dev, "a/b"), -EINVAL);
	{
		struct kvmm_pool_destroy bad = {.size = sizeof(bad), .flags = 1};

		strcpy(bad.name, "p0");
		EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_DESTROY, &bad), -EINVAL);
	}
	ASSERT_EQ(vmt_pool_destroy(self->dev, "p0"), 0);
	EXPECT_EQ(vmt_pool_destroy(self->dev, "p0"), -ENOENT);
	EXPECT_EQ(vmt_pool_open(self->dev, "p0", 0), -ENOENT);
	EXPECT_EQ(access(KVMM_SYSFS "/pools/p0", F_OK), -1);
	/* still listed, marked destroyed, and still working */
	l.count = 4;
	l.entries = (uintptr_t)d;
	ASSERT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_LIST, &l), 0);
	ASSERT_EQ(l.total, 1);
	EXPECT_EQ(d[0].flags & KVMM_POOL_DESTROYED, KVMM_POOL_DESTROYED);
	EXPECT_EQ(vmt_check(p, MIB, 11), -1);
	EXPECT_EQ(vmt_set_state(fd, 0, 256, KVMM_PAGE_COLD), 256);
	close(fd);
	/* the mapping keeps it alive */
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 1);
	EXPECT_EQ(vmt_check(p, MIB, 11), -1);
	munmap(p, MIB);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
}

TEST_F(pool, mmap_rules)
{
	int fd = create4k(self->dev, "p0", MIB);
	struct kvmm_pool_desc d;
	char *p, *q;

	ASSERT_GE(fd, 0);
	EXPECT_EQ(mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), MAP_FAILED);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(mmap(NULL, MIB + PAGE, PROT_READ, MAP_SHARED, fd, 0), MAP_FAILED);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, MIB), MAP_FAILED);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, fd, MIB - PAGE), MAP_FAILED);
	EXPECT_EQ(errno, EINVAL);

	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	/* fresh pages read zero */
	for (size_t i = 0; i < MIB; i += PAGE)
		ASSERT_EQ(p[i] | p[i + PAGE - 1], 0);
	vmt_fill(p, MIB, 5);
	/* a window at an offset aliases the same pages */
	q = mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, fd, 8 * PAGE);
	ASSERT_NE(q, MAP_FAILED);
	EXPECT_EQ(memcmp(q, p + 8 * PAGE, 4 * PAGE), 0);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.mappings, 2);
	EXPECT_EQ(d.pages_present, 256);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_HOT], 256);
	/* no growing past the pool */
	EXPECT_EQ(mremap(q, 4 * PAGE, 8 * PAGE, 0), MAP_FAILED);
	/* a split mapping counts twice */
	ASSERT_EQ(munmap(p + 4 * PAGE, PAGE), 0);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.mappings, 3);
	munmap(q, 4 * PAGE);
	munmap(p, MIB);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.mappings, 0);
	/* contents stay without mappings */
	p = mmap(NULL, MIB, PROT_READ, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	EXPECT_EQ(vmt_check(p, MIB, 5), -1);
	munmap(p, MIB);
	close(fd);
}

TEST_F(pool, mmap_shared_with_child)
{
	int fd = create4k(self->dev, "p0", MIB), status;
	char *p;
	pid_t pid;

	ASSERT_GE(fd, 0);
	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	vmt_fill(p, MIB / 2, 1);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(fd);
		if (vmt_check(p, MIB / 2, 1) != -1)
			_exit(1);
		vmt_fill(p + MIB / 2, MIB / 2, 2);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	EXPECT_EQ(status, 0);
	EXPECT_EQ(vmt_check(p + MIB / 2, MIB / 2, 2), -1);
	munmap(p, MIB);
	close(fd);
}

TEST_F(pool, states)
{
	int fd = create4k(self->dev, "p0", MIB);
	struct kvmm_pool_desc d;
	char *p;

	ASSERT_GE(fd, 0);
	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	vmt_fill(p, MIB, 9);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 256);
	EXPECT_EQ(vmt_set_state(fd, 0, 64, KVMM_PAGE_COLD), 64);
	EXPECT_EQ(vmt_set_state(fd, 32, 64, KVMM_PAGE_COLD), 32); /* half were cold */
	EXPECT_EQ(vmt_set_state(fd, 0, 16, KVMM_PAGE_HOT), 16);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_COLD], 80);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_HOT], 176);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/pages_cold"), 80);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_cold"), 80);
	/* cold and hot keep the data */
	EXPECT_EQ(vmt_check(p, MIB, 9), -1);

	/* FREE releases the memory at once; the mapping reads zeroes */
	EXPECT_EQ(vmt_set_state(fd, 128, 128, KVMM_PAGE_FREE), 128);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.pages_present, 128);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_FREE], 128);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 128);
	EXPECT_EQ(vmt_check(p, 128 * PAGE, 9), -1);
	for (size_t i = 128 * PAGE; i < MIB; i += 512)
		ASSERT_EQ(p[i], 0);
	/* touching a FREE page gave it memory again, HOT */
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.pages_present, 256);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_FREE], 0);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_HOT], 176);
	munmap(p, MIB);
	close(fd);
}

TEST_F(pool, state_rejections_change_nothing)
{
	int fd = create4k(self->dev, "p0", MIB);
	struct kvmm_page_range r[2] = {{0, 16}, {250, 16}};
	struct kvmm_pool_set_state s = {
		.size = sizeof(s),
		.state = KVMM_PAGE_COLD,
		.nr_ranges = 2,
		.ranges = (uintptr_t)r,
	};
	struct kvmm_page_range *many;
	struct kvmm_pool_desc d;

	ASSERT_GE(fd, 0);
	/* the second range runs past the end: the first is not applied either */
	EXPECT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_STATE, &s), -EINVAL);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_COLD], 0);
	EXPECT_EQ(vmt_set_state(fd, 0, 0, KVMM_PAGE_COLD), -EINVAL);
	EXPECT_EQ(vmt_set_state(fd, 256, 1, KVMM_PAGE_COLD), -EINVAL);
	EXPECT_EQ(vmt_set_state(fd, ~0ull, 2, KVMM_PAGE_COLD), -EINVAL);
	EXPECT_EQ(vmt_set_state(fd, 1, ~0ull, KVMM_PAGE_COLD), -EINVAL);
	EXPECT_EQ(vmt_set_state(fd, 0, 1, KVMM_PAGE_STATES), -EINVAL);
	EXPECT_EQ(vmt_set_state(fd, 0, 1, ~0u), -EINVAL);
	s.nr_ranges = 0;
	EXPECT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_STATE, &s), -EINVAL);
	s.nr_ranges = KVMM_MAX_RANGES + 1;
	EXPECT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_STATE, &s), -EINVAL);
	s.nr_ranges = 1;
	s.flags = 1;
	EXPECT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_STATE, &s), -EINVAL);
	s.flags = 0;
	s.ranges = 0;
	EXPECT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_STATE, &s), -EFAULT);
	s.ranges = (uintptr_t)-4096;
	EXPECT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_STATE, &s), -EFAULT);
	/* KVMM_MAX_RANGES overlapping ranges are fine */
	many = calloc(KVMM_MAX_RANGES, sizeof(*many));
	ASSERT_TRUE(many != NULL);
	for (int i = 0; i < KVMM_MAX_RANGES; i++)
		many[i] = (struct kvmm_page_range){(uint64_t)i % 200, 57};
	s.nr_ranges = KVMM_MAX_RANGES;
	s.ranges = (uintptr_t)many;
	ASSERT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_STATE, &s), 0);
	EXPECT_EQ(s.changed, 256);
	free(many);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_COLD], 256);
	close(fd);
}

TEST_F(pool, populate)
{
	int fd = create4k(self->dev, "p0", MIB);
	struct kvmm_pool_populate pp = {.size = sizeof(pp), .flags = 1, .count = 1};
	struct kvmm_pool_desc d;

	ASSERT_GE(fd, 0);
	EXPECT_EQ(vmt_populate(fd, 0, 100), 100);
	EXPECT_EQ(vmt_populate(fd, 50, 100), 50);
	EXPECT_EQ(vmt_populate(fd, 0, 150), 0);
	EXPECT_EQ(vmt_populate(fd, 0, 0), -EINVAL);
	EXPECT_EQ(vmt_populate(fd, 200, 57), -EINVAL);
	EXPECT_EQ(vmt_populate(fd, ~0ull, 2), -EINVAL);
	EXPECT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_POPULATE, &pp), -EINVAL);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.pages_present, 150);
	EXPECT_EQ(d.pages_state[KVMM_PAGE_HOT], 150);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 150);
	close(fd);
}

TEST_F(pool, residency)
{
	int fd = create4k(self->dev, "p0", MIB);
	struct kvmm_pool_residency r = {.size = sizeof(r), .pages = {10, 20, 30, 4}};
	struct kvmm_pool_desc d;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_RESIDENCY, &r), 0);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.residency[KVMM_TIER_GPU], 10);
	EXPECT_EQ(d.residency[KVMM_TIER_HOST], 20);
	EXPECT_EQ(d.residency[KVMM_TIER_DISK], 30);
	EXPECT_EQ(d.residency[KVMM_TIER_INFLIGHT], 4);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/residency_gpu"), 10);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/residency_host"), 20);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/residency_disk"), 30);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/p0/residency_inflight"), 4);
	r.flags = 2;
	EXPECT_EQ(vmt_ioctl(fd, KVMM_IOC_POOL_SET_RESIDENCY, &r), -EINVAL);
	close(fd);
}

TEST_F(pool, list)
{
	struct kvmm_pool_list l = {.size = sizeof(l), .entry_size = sizeof(struct kvmm_pool_desc)};
	const size_t big = sizeof(struct kvmm_pool_desc) + 40;
	unsigned char *buf = malloc(3 * big);
	struct kvmm_pool_desc d[3];
	int a, b, c;

	ASSERT_TRUE(buf != NULL);
	a = create4k(self->dev, "p0", MIB);
	b = create4k(self->dev, "p1", 2 * MIB);
	c = vmt_pool_create(self->dev, "p2", 4 * MIB, KVMM_NODE_ANY, 21, KVMM_POOL_PERSISTENT,
			    0600);
	ASSERT_GE(a, 0);
	ASSERT_GE(b, 0);
	ASSERT_GE(c, 0);
	/* count 0: just the total */
	ASSERT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_LIST, &l), 0);
	EXPECT_EQ(l.total, 3);
	EXPECT_EQ(l.count, 0);
	/* a short array gets the first ones, in creation order */
	l.count = 2;
	l.entries = (uintptr_t)d;
	ASSERT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_LIST, &l), 0);
	EXPECT_EQ(l.count, 2);
	EXPECT_EQ(l.total, 3);
	EXPECT_EQ(strcmp(d[0].name, "p0"), 0);
	EXPECT_EQ(strcmp(d[1].name, "p1"), 0);
	EXPECT_EQ(d[1].bytes, 2 * MIB);
	/* longer entries than the kernel knows: zero tails */
	memset(buf, 0xaa, 3 * big);
	l.count = 3;
	l.entry_size = (uint32_t)big;
	l.entries = (uintptr_t)buf;
	ASSERT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_LIST, &l), 0);
	EXPECT_EQ(l.count, 3);
	for (int i = 0; i < 3; i++) {
		const struct kvmm_pool_desc *e = (const void *)(buf + i * big);

		for (size_t k = sizeof(*e); k < big; k++)
			ASSERT_EQ(buf[i * big + k], 0);
		if (i == 2) {
			EXPECT_EQ(strcmp(e->name, "p2"), 0);
			EXPECT_EQ(e->page_shift, 21);
			EXPECT_EQ(e->pages, 2);
			EXPECT_EQ(e->flags, KVMM_POOL_PERSISTENT);
		}
	}
	/* rejections */
	l.entry_size = sizeof(struct kvmm_pool_desc) - 8;
	EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_LIST, &l), -EINVAL);
	l.entry_size = 1 << 20;
	EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_LIST, &l), -EINVAL);
	l.entry_size = sizeof(struct kvmm_pool_desc);
	l.entries = 8;
	EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_LIST, &l), -EFAULT);
	l.entries = (uintptr_t)d;
	l.flags = 1;
	EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_LIST, &l), -EINVAL);
	l.flags = 0;
	l.__reserved = 1;
	EXPECT_EQ(vmt_ioctl(self->dev, KVMM_IOC_POOL_LIST, &l), -EINVAL);
	free(buf);
	close(a);
	close(b);
	close(c);
	EXPECT_EQ(vmt_pool_destroy(self->dev, "p2"), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/nr_pools"), 0);
}

TEST_F(pool, two_mib_pages_are_contiguous)
{
	int fd = vmt_pool_create(self->dev, "big", 8 * MIB, KVMM_NODE_ANY, 21, 0, 0600);
	int pm = open("/proc/self/pagemap", O_RDONLY);
	struct kvmm_pool_desc d;
	uint64_t e[2048];
	char *p;

	ASSERT_GE(fd, 0);
	ASSERT_GE(pm, 0);
	p = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	/* one touch gives the whole 2 MiB page memory */
	p[0] = 1;
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.pages_present, 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 512);
	vmt_fill(p, 8 * MIB, 4);
	ASSERT_EQ(pread(pm, e, sizeof(e), (off_t)((uintptr_t)p / 4096 * 8)), (ssize_t)sizeof(e));
	for (int i = 0; i < 2048; i++) {
		uint64_t pfn = e[i] & ((1ull << 55) - 1), pfn0 = e[i & ~511] & ((1ull << 55) - 1);

		ASSERT_TRUE(e[i] >> 63); /* present */
		/* physically contiguous and 2 MiB aligned within each pool page */
		ASSERT_EQ(pfn, pfn0 + (uint64_t)(i & 511));
		ASSERT_EQ(pfn0 % 512, 0);
	}
	/* state and FREE work per 2 MiB page */
	EXPECT_EQ(vmt_set_state(fd, 1, 1, KVMM_PAGE_FREE), 1);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 3 * 512);
	EXPECT_EQ(vmt_check(p, 2 * MIB, 4), -1);
	EXPECT_EQ(p[2 * MIB], 0);
	EXPECT_EQ(vmt_check(p + 4 * MIB, 4 * MIB, 4 + (4 * MIB) / 8), -1);
	munmap(p, 8 * MIB);
	close(pm);
	close(fd);
}

/* Every file under /sys/kernel/kvmm is in docs/ABI/testing/sysfs-kernel-kvmm
 * and every file there exists (with a pool named <name>). */
static int documented(char what[][128], int n, const char *path)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(what[i], path))
			return 1;
	return 0;
}

TEST_F(pool, sysfs_matches_docs)
{
	static char what[64][128];
	char line[256], path[256];
	int n = 0, fd = create4k(self->dev, "p0", MIB);
	FILE *f = fopen("/etc/kvmm-vm/sysfs-what.txt", "r"), *ls;

	ASSERT_GE(fd, 0);
	ASSERT_TRUE(f != NULL);
	while (n < 64 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		snprintf(what[n++], sizeof(what[0]), "%.120s", line);
	}
	fclose(f);
	ASSERT_GT(n, 20);
	for (int i = 0; i < n; i++) {
		char *dir = strstr(what[i], "<name>");

		snprintf(path, sizeof(path), "%s", what[i]);
		if (dir)
			snprintf(path, sizeof(path), "%.*sp0%s", (int)(dir - what[i]), what[i],
				 dir + 6);
		if (access(path, F_OK))
			FAIL("documented but missing: %s", path);
	}
	ls = popen("find /sys/kernel/kvmm -type f", "r");
	ASSERT_TRUE(ls != NULL);
	while (fgets(line, sizeof(line), ls)) {
		char *p0;

		line[strcspn(line, "\n")] = 0;
		p0 = strstr(line, "/pools/p0/");
		if (p0)
			snprintf(path, sizeof(path), "%.*s/pools/<name>/%s", (int)(p0 - line), line,
				 p0 + 10);
		else
			snprintf(path, sizeof(path), "%s", line);
		if (!documented(what, n, path))
			FAIL("in sysfs but not documented: %s", path);
	}
	pclose(ls);
	close(fd);
}
