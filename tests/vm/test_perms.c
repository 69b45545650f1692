// SPDX-License-Identifier: MIT
/*
 * test_perms: who may open and destroy a pool (owner, group, others by the
 * pool's mode bits; CAP_SYS_ADMIN always) and who may set limits.  The
 * device is made 0666 here, as the udev rule makes it 0660 for a group.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB (1ull << 20)

FIXTURE(perms)
{
	int dev;
};

FIXTURE_SETUP(perms)
{
	ASSERT_EQ(chmod(KVMM_DEV, 0666), 0);
	self->dev = vmt_dev();
	ASSERT_GE(self->dev, 0);
}

FIXTURE_TEARDOWN(perms)
{
	vmt_pool_destroy(self->dev, "shared");
	close(self->dev);
	chmod(KVMM_DEV, 0600);
}

struct req {
	const char *name;
	uint32_t mode;
	uint32_t flags;
};

static int create_pool(void *arg)
{
	const struct req *r = arg;
	int dev = vmt_dev(), fd;

	if (dev < 0)
		return VMT_EXIT(dev);
	fd = vmt_pool_create(dev, r->name, MIB, KVMM_NODE_ANY, 12, KVMM_POOL_PERSISTENT, r->mode);
	return VMT_EXIT(fd);
}

static int open_pool(void *arg)
{
	const struct req *r = arg;
	int dev = vmt_dev(), fd;

	if (dev < 0)
		return VMT_EXIT(dev);
	fd = vmt_pool_open(dev, r->name, r->flags);
	if (fd >= 0 && !(r->flags & KVMM_OPEN_RDONLY)) {
		/* a writable open can map and write */
		char *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (p == MAP_FAILED)
			return 99;
		p[0] = 1;
	}
	return VMT_EXIT(fd);
}

static int destroy_pool(void *arg)
{
	const struct req *r = arg;
	int dev = vmt_dev();

	if (dev < 0)
		return VMT_EXIT(dev);
	return VMT_EXIT(vmt_pool_destroy(dev, r->name));
}

TEST_F(perms, owner_only)
{
	struct req r = {.name = "shared", .mode = 0600};
	struct kvmm_pool_desc d;
	int fd;

	ASSERT_EQ(vmt_as_user(1000, 1000, create_pool, &r), 0);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/shared/owner"), 1000);
	EXPECT_EQ(vmt_read_ll(KVMM_SYSFS "/pools/shared/group"), 1000);
	/* another user: nothing */
	EXPECT_EQ(vmt_as_user(1001, 1001, open_pool, &r), EACCES);
	r.flags = KVMM_OPEN_RDONLY;
	EXPECT_EQ(vmt_as_user(1001, 1001, open_pool, &r), EACCES);
	EXPECT_EQ(vmt_as_user(1001, 1001, destroy_pool, &r), EACCES);
	/* the owner: everything */
	r.flags = 0;
	EXPECT_EQ(vmt_as_user(1000, 1000, open_pool, &r), 0);
	/* root (CAP_SYS_ADMIN) too */
	fd = vmt_pool_open(self->dev, "shared", 0);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(vmt_pool_desc(fd, &d), 0);
	EXPECT_EQ(d.uid, 1000);
	EXPECT_EQ(d.mode, 0600);
	close(fd);
	EXPECT_EQ(vmt_as_user(1000, 1000, destroy_pool, &r), 0);
	EXPECT_EQ(vmt_pool_open(self->dev, "shared", 0), -ENOENT);
}

TEST_F(perms, group_read_only)
{
	struct req r = {.name = "shared", .mode = 0640};

	ASSERT_EQ(vmt_as_user(1000, 1000, create_pool, &r), 0);
	/* a member of group 1000 may read, not write */
	r.flags = KVMM_OPEN_RDONLY;
	EXPECT_EQ(vmt_as_user_in(1001, 1001, 1000, open_pool, &r), 0);
	r.flags = 0;
	EXPECT_EQ(vmt_as_user_in(1001, 1001, 1000, open_pool, &r), EACCES);
	EXPECT_EQ(vmt_as_user_in(1001, 1001, 1000, destroy_pool, &r), EACCES);
	/* the primary group counts the same */
	r.flags = KVMM_OPEN_RDONLY;
	EXPECT_EQ(vmt_as_user(1002, 1000, open_pool, &r), 0);
	/* others: nothing */
	EXPECT_EQ(vmt_as_user(1003, 1003, open_pool, &r), EACCES);
}

TEST_F(perms, others_read_write)
{
	struct req r = {.name = "shared", .mode = 0666};

	ASSERT_EQ(vmt_as_user(1000, 1000, create_pool, &r), 0);
	EXPECT_EQ(vmt_as_user(1001, 1001, open_pool, &r), 0);
	/* write permission lets another user destroy it */
	EXPECT_EQ(vmt_as_user(1001, 1001, destroy_pool, &r), 0);
	EXPECT_EQ(vmt_pool_open(self->dev, "shared", 0), -ENOENT);
}

TEST_F(perms, owner_bits_apply_to_the_owner)
{
	struct req r = {.name = "shared", .mode = 0044};

	ASSERT_EQ(vmt_as_user(1000, 1000, create_pool, &r), 0);
	r.flags = KVMM_OPEN_RDONLY;
	EXPECT_EQ(vmt_as_user(1000, 1000, open_pool, &r), EACCES);
	EXPECT_EQ(vmt_as_user(1001, 1001, open_pool, &r), 0);
	/* but the owner can always destroy */
	EXPECT_EQ(vmt_as_user(1000, 1000, destroy_pool, &r), 0);
}

TEST_F(perms, root_may_destroy_any_pool)
{
	struct req r = {.name = "shared", .mode = 0600};

	ASSERT_EQ(vmt_as_user(1000, 1000, create_pool, &r), 0);
	EXPECT_EQ(vmt_pool_destroy(self->dev, "shared"), 0);
}

static int set_limits(void *arg)
{
	int dev = vmt_dev();

	(void)arg;
	if (dev < 0)
		return VMT_EXIT(dev);
	if (vmt_limits(dev, 0, 0, 0, NULL))
		return 98; /* reading is for everyone */
	return VMT_EXIT(vmt_limits(dev, KVMM_LIMITS_SET_GLOBAL, 1 << 20, 0, NULL));
}

static int write_sysfs_limit(void *arg)
{
	(void)arg;
	return VMT_EXIT(vmt_write("1048576", KVMM_SYSFS "/limits/global_bytes"));
}

TEST_F(perms, limits_need_admin)
{
	struct kvmm_limits before, after;

	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &before), 0);
	EXPECT_EQ(vmt_as_user(1000, 1000, set_limits, NULL), EPERM);
	EXPECT_EQ(vmt_as_user(1000, 1000, write_sysfs_limit, NULL), EACCES);
	ASSERT_EQ(vmt_limits(self->dev, 0, 0, 0, &after), 0);
	EXPECT_EQ(after.global_bytes, before.global_bytes);
}
