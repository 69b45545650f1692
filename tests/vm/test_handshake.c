// SPDX-License-Identifier: MIT
/*
 * test_handshake: /dev/kvmm, KVMM_IOC_GET_INFO and the rules every command
 * shares (size, flags, reserved fields, unknown commands, bad pointers),
 * /sys/kernel/kvmm/version and the page counter.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define INFO_MIN_SIZE (offsetof(struct kvmm_info, __reserved) + sizeof(__u64))

FIXTURE(dev)
{
	int fd;
	struct kvmm_info info;
};

FIXTURE_SETUP(dev)
{
	self->fd = vmt_dev();
	ASSERT_GE(self->fd, 0);
	self->info.size = sizeof(self->info);
}

FIXTURE_TEARDOWN(dev)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(dev, get_info)
{
	ASSERT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, &self->info), 0);
	EXPECT_EQ(self->info.size, sizeof(self->info));
	EXPECT_EQ(self->info.api_version, KVMM_API_VERSION);
	EXPECT_TRUE(self->info.ioctls & KVMM_IOCTL_BIT(KVMM_CMD_GET_INFO));
	/* nothing is announced that the header does not know */
	EXPECT_EQ(self->info.ioctls & ~(KVMM_IOCTL_BIT(KVMM_CMD_END) - 1), 0);
	EXPECT_GE(self->info.nr_node_ids, vmt_nr_nodes());
	EXPECT_EQ(self->info.__reserved, 0);
}

TEST_F(dev, get_info_output_fields_ignored_on_input)
{
	self->info.api_version = 77;
	self->info.features = ~0ull;
	self->info.ioctls = ~0ull;
	ASSERT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, &self->info), 0);
	EXPECT_EQ(self->info.api_version, KVMM_API_VERSION);
}

TEST_F(dev, get_info_unknown_flags)
{
	for (int bit = 0; bit < 32; bit++) {
		self->info.flags = 1u << bit;
		EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, &self->info), -EINVAL);
	}
}

TEST_F(dev, get_info_reserved)
{
	self->info.__reserved = 1;
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, &self->info), -EINVAL);
	self->info.__reserved = 1ull << 63;
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, &self->info), -EINVAL);
}

TEST_F(dev, get_info_too_short)
{
	static const uint32_t sizes[] = {0, 4, 8, INFO_MIN_SIZE - 1};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		EXPECT_EQ(vmt_ioctl_sized(self->fd, KVMM_IOC_GET_INFO, &self->info,
					  sizeof(self->info), sizes[i], sizeof(self->info), 0),
			  -EINVAL);
}

TEST_F(dev, get_info_longer_nonzero_tail)
{
	EXPECT_EQ(vmt_ioctl_sized(self->fd, KVMM_IOC_GET_INFO, &self->info, sizeof(self->info),
				  sizeof(self->info) + 8, sizeof(self->info) + 8, 0xff),
		  -E2BIG);
	/* a single non-zero byte far into the tail is seen too */
	{
		size_t big = 3000;
		unsigned char *buf = calloc(1, big);

		ASSERT_TRUE(buf != NULL);
		*(uint32_t *)buf = (uint32_t)big;
		buf[big - 1] = 1;
		EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, buf), -E2BIG);
		free(buf);
	}
}

TEST_F(dev, get_info_longer_zero_tail)
{
	unsigned char buf[sizeof(struct kvmm_info) + 64];
	struct kvmm_info *info = (struct kvmm_info *)buf;

	memset(buf, 0, sizeof(buf));
	info->size = sizeof(buf);
	ASSERT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, buf), 0);
	EXPECT_EQ(info->api_version, KVMM_API_VERSION);
	/* only what the kernel knows is written back */
	for (size_t i = sizeof(*info); i < sizeof(buf); i++)
		EXPECT_EQ(buf[i], 0);
}

TEST_F(dev, get_info_size_over_page)
{
	EXPECT_EQ(vmt_ioctl_sized(self->fd, KVMM_IOC_GET_INFO, &self->info, sizeof(self->info),
				  (uint32_t)sysconf(_SC_PAGESIZE) + 1, sizeof(self->info), 0),
		  -E2BIG);
	/* the size is checked before the buffer is read */
	self->info.size = 0xffffffff;
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, &self->info), -E2BIG);
}

TEST_F(dev, get_info_minimum_size)
{
	EXPECT_EQ(vmt_ioctl_sized(self->fd, KVMM_IOC_GET_INFO, &self->info, sizeof(self->info),
				  INFO_MIN_SIZE, INFO_MIN_SIZE, 0),
		  0);
	EXPECT_EQ(self->info.api_version, KVMM_API_VERSION);
}

TEST_F(dev, bad_pointers)
{
	long page = sysconf(_SC_PAGESIZE);
	struct kvmm_info *ro;

	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, NULL), -EFAULT);
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, (void *)1), -EFAULT);
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, (void *)-4096L), -EFAULT);

	/* readable but not writable: the answer cannot be written back */
	ro = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(ro, MAP_FAILED);
	ro->size = sizeof(*ro);
	ASSERT_EQ(mprotect(ro, page, PROT_READ), 0);
	EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, ro), -EFAULT);

	/* a struct that runs into an unmapped page */
	{
		char *two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct kvmm_info *edge;

		ASSERT_NE(two, MAP_FAILED);
		ASSERT_EQ(munmap(two + page, page), 0);
		edge = (struct kvmm_info *)(two + page - 8);
		edge->size = sizeof(*edge);
		EXPECT_EQ(vmt_ioctl(self->fd, KVMM_IOC_GET_INFO, edge), -EFAULT);
		munmap(two, page);
	}
	munmap(ro, page);
}

TEST_F(dev, unknown_commands)
{
	unsigned long bad[] = {
		_IO(KVMM_TYPE, 0),
		_IO(KVMM_TYPE, KVMM_CMD_BASE - 1),
		_IO(KVMM_TYPE, KVMM_CMD_END),
		_IO(KVMM_TYPE, 0xff),
		_IO(KVMM_TYPE + 1, KVMM_CMD_GET_INFO),
		/* the right number with direction or size bits is another command */
		_IOWR(KVMM_TYPE, KVMM_CMD_GET_INFO, struct kvmm_info),
		_IOR(KVMM_TYPE, KVMM_CMD_GET_INFO, struct kvmm_info),
		_IOW(KVMM_TYPE, KVMM_CMD_GET_INFO, __u32),
		0,
		~0ul,
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(vmt_ioctl(self->fd, bad[i], &self->info), -ENOTTY);
}

TEST(device_node)
{
	struct stat st;

	ASSERT_EQ(stat(KVMM_DEV, &st), 0);
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(st.st_mode & 07777, 0600);
	EXPECT_EQ(st.st_uid, 0);
}

static int try_open(void *arg)
{
	int fd = vmt_dev();

	(void)arg;
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return fd == -EACCES ? 13 : 1;
}

TEST(device_closed_to_other_users)
{
	EXPECT_EQ(vmt_as_user(65534, 65534, try_open, NULL), 13);
}

TEST(sysfs_version_and_page_counter)
{
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/version"), KVMM_API_VERSION);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pages_allocated"), 0);
	/* read-only */
	EXPECT_EQ(vmt_write("2", KVMM_SYSFS "/version"), -EACCES);
}

TEST(many_opens)
{
	int fds[256];

	for (int i = 0; i < 256; i++) {
		fds[i] = vmt_dev();
		ASSERT_GE(fds[i], 0);
	}
	for (int i = 0; i < 256; i++)
		close(fds[i]);
}
