// SPDX-License-Identifier: MIT
/*
 * test_vm_env: the VM is what the module and disk-tier tests rely on: two
 * NUMA nodes with memory, an NVMe disk, device-mapper, cgroup v2, debugfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

TEST(two_numa_nodes_with_memory)
{
	char buf[64];

	ASSERT_EQ(vmt_read_str(buf, sizeof(buf), "/sys/devices/system/node/has_memory"), 0);
	EXPECT_EQ(strcmp(buf, "0-1"), 0);
	EXPECT_EQ(vmt_nr_nodes(), 2);
}

TEST(nvme_disk)
{
	struct stat st;
	uint64_t bytes = 0;
	int fd;

	ASSERT_EQ(stat("/dev/nvme0n1", &st), 0);
	EXPECT_TRUE(S_ISBLK(st.st_mode));
	fd = open("/dev/nvme0n1", O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(ioctl(fd, BLKGETSIZE64, &bytes), 0);
	EXPECT_GT(bytes, 0);
	close(fd);
}

TEST(device_mapper)
{
	struct stat st;

	ASSERT_EQ(stat("/dev/mapper/control", &st), 0);
	EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(cgroup2_and_debugfs)
{
	EXPECT_EQ(access("/sys/fs/cgroup/cgroup.controllers", R_OK), 0);
	EXPECT_EQ(access("/sys/kernel/debug/sched", F_OK) == 0 ||
			  access("/sys/kernel/debug/block", F_OK) == 0,
		  1);
}
