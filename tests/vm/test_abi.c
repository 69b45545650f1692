// SPDX-License-Identifier: MIT
/*
 * test_abi: the rules every command shares, checked for each command (one
 * fixture variant per ioctl, as tools/testing/selftests/iommu does):
 *  - size below the end of the last field: -EINVAL
 *  - longer struct with a non-zero byte the kernel does not know: -E2BIG
 *  - longer struct with a zero tail: the same as the exact size
 *  - every unknown flag bit, every non-zero reserved byte (a name's bytes
 *    after its NUL included): -EINVAL
 *  - NULL or unmapped argument: -EFAULT
 *  - a device command on a pool fd and a pool command on the device fd:
 *    -ENOTTY
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MIB  (1ull << 20)
#define BASE "abi-base"

struct abi_ctx {
	int dev;
	int pool;
	struct kvmm_page_range range;
};

FIXTURE(abi)
{
	struct abi_ctx ctx;
	unsigned char buf[1024];
};

FIXTURE_VARIANT(abi)
{
	unsigned long cmd;
	size_t size;
	size_t min_size;
	int on_pool;	 /* a pool command */
	uint32_t flags;	 /* the flags the kernel accepts */
	size_t reserved; /* offset of a reserved field that must be 0, or 0 */
	size_t reserved_len;
	int idempotent; /* two successful calls give the same output */
	size_t name;	/* offset of a name, or 0 */
	void (*prepare)(struct abi_ctx * ctx, void *cmd);
	void (*cleanup)(struct abi_ctx * ctx, long ret);
};

static void close_fd(struct abi_ctx *ctx, long ret)
{
	(void)ctx;
	if (ret > 0)
		close((int)ret);
}

static void prep_create(struct abi_ctx *ctx, void *p)
{
	struct kvmm_pool_create *c = p;

	(void)ctx;
	c->bytes = MIB;
	c->node = KVMM_NODE_ANY;
	c->page_shift = 12;
	c->mode = 0600;
	strcpy(c->name, "abi-new");
}

static void prep_open(struct abi_ctx *ctx, void *p)
{
	(void)ctx;
	strcpy(((struct kvmm_pool_open *)p)->name, BASE);
}

static void prep_destroy(struct abi_ctx *ctx, void *p)
{
	int fd = vmt_pool_create(ctx->dev, "abi-doomed", MIB, KVMM_NODE_ANY, 12,
				 KVMM_POOL_PERSISTENT, 0600);

	if (fd >= 0)
		close(fd);
	strcpy(((struct kvmm_pool_destroy *)p)->name, "abi-doomed");
}

static void prep_list(struct abi_ctx *ctx, void *p)
{
	(void)ctx;
	((struct kvmm_pool_list *)p)->entry_size = sizeof(struct kvmm_pool_desc);
}

static void prep_set_state(struct abi_ctx *ctx, void *p)
{
	struct kvmm_pool_set_state *s = p;

	ctx->range = (struct kvmm_page_range){0, 1};
	s->state = KVMM_PAGE_COLD;
	s->nr_ranges = 1;
	s->ranges = (uintptr_t)&ctx->range;
}

static void prep_populate(struct abi_ctx *ctx, void *p)
{
	(void)ctx;
	((struct kvmm_pool_populate *)p)->count = 1;
}

static void prep_eventfd(struct abi_ctx *ctx, void *p)
{
	(void)ctx;
	((struct kvmm_pool_eventfd *)p)->fd = -1;
}

#define END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define RSV(type, field) \
	.reserved = offsetof(type, field), .reserved_len = sizeof(((type *)0)->field)

FIXTURE_VARIANT_ADD(abi, get_info){
	.cmd = KVMM_IOC_GET_INFO,
	.size = sizeof(struct kvmm_info),
	.min_size = END(struct kvmm_info, __reserved),
	RSV(struct kvmm_info, __reserved),
	.idempotent = 1,
};

FIXTURE_VARIANT_ADD(abi, get_stats){
	.cmd = KVMM_IOC_GET_STATS,
	.size = sizeof(struct kvmm_stats),
	.min_size = END(struct kvmm_stats, alloc_failures),
	RSV(struct kvmm_stats, __reserved),
	.idempotent = 1,
};

FIXTURE_VARIANT_ADD(abi, limits){
	.cmd = KVMM_IOC_LIMITS,
	.size = sizeof(struct kvmm_limits),
	.min_size = END(struct kvmm_limits, uid_used),
	.flags = KVMM_LIMITS_SET_GLOBAL | KVMM_LIMITS_SET_PER_UID,
	.idempotent = 1,
};

FIXTURE_VARIANT_ADD(abi, pool_create){
	.cmd = KVMM_IOC_POOL_CREATE,
	.size = sizeof(struct kvmm_pool_create),
	.min_size = END(struct kvmm_pool_create, name),
	RSV(struct kvmm_pool_create, pci_dev),
	.flags = KVMM_POOL_PERSISTENT | KVMM_POOL_CLOEXEC | KVMM_POOL_POPULATE |
		 KVMM_POOL_NODE_OF_PCI,
	.prepare = prep_create,
	.cleanup = close_fd,
	.name = offsetof(struct kvmm_pool_create, name),
};

FIXTURE_VARIANT_ADD(abi, pool_open){
	.cmd = KVMM_IOC_POOL_OPEN,
	.size = sizeof(struct kvmm_pool_open),
	.min_size = END(struct kvmm_pool_open, name),
	.flags = KVMM_OPEN_RDONLY | KVMM_OPEN_CLOEXEC,
	.prepare = prep_open,
	.cleanup = close_fd,
	.name = offsetof(struct kvmm_pool_open, name),
};

FIXTURE_VARIANT_ADD(abi, pool_destroy){
	.cmd = KVMM_IOC_POOL_DESTROY,
	.size = sizeof(struct kvmm_pool_destroy),
	.min_size = END(struct kvmm_pool_destroy, name),
	.prepare = prep_destroy,
	.name = offsetof(struct kvmm_pool_destroy, name),
};

FIXTURE_VARIANT_ADD(abi, pool_list){
	.cmd = KVMM_IOC_POOL_LIST,
	.size = sizeof(struct kvmm_pool_list),
	.min_size = END(struct kvmm_pool_list, __reserved),
	RSV(struct kvmm_pool_list, __reserved),
	.idempotent = 1,
	.prepare = prep_list,
};

FIXTURE_VARIANT_ADD(abi, pool_info){
	.cmd = KVMM_IOC_POOL_INFO,
	.size = sizeof(struct kvmm_pool_info),
	.min_size = END(struct kvmm_pool_info, desc),
	.on_pool = 1,
	.idempotent = 1,
};

FIXTURE_VARIANT_ADD(abi, pool_set_state){
	.cmd = KVMM_IOC_POOL_SET_STATE,
	.size = sizeof(struct kvmm_pool_set_state),
	.min_size = END(struct kvmm_pool_set_state, changed),
	.on_pool = 1,
	.prepare = prep_set_state,
};

FIXTURE_VARIANT_ADD(abi, pool_populate){
	.cmd = KVMM_IOC_POOL_POPULATE,
	.size = sizeof(struct kvmm_pool_populate),
	.min_size = END(struct kvmm_pool_populate, populated),
	.on_pool = 1,
	.prepare = prep_populate,
};

FIXTURE_VARIANT_ADD(abi, pool_set_residency){
	.cmd = KVMM_IOC_POOL_SET_RESIDENCY,
	.size = sizeof(struct kvmm_pool_residency),
	.min_size = END(struct kvmm_pool_residency, pages),
	.on_pool = 1,
	.idempotent = 1,
};

FIXTURE_VARIANT_ADD(abi, pool_set_eventfd){
	.cmd = KVMM_IOC_POOL_SET_EVENTFD,
	.size = sizeof(struct kvmm_pool_eventfd),
	.min_size = END(struct kvmm_pool_eventfd, __reserved),
	.on_pool = 1,
	RSV(struct kvmm_pool_eventfd, __reserved),
	.idempotent = 1,
	.prepare = prep_eventfd,
};

FIXTURE_SETUP(abi)
{
	self->ctx.dev = vmt_dev();
	ASSERT_GE(self->ctx.dev, 0);
	self->ctx.pool = vmt_pool_create(self->ctx.dev, BASE, MIB, KVMM_NODE_ANY, 12, 0, 0600);
	ASSERT_GE(self->ctx.pool, 0);
	ASSERT_LE(variant->size + 64, sizeof(self->buf));
}

FIXTURE_TEARDOWN(abi)
{
	vmt_pool_destroy(self->ctx.dev, "abi-new");
	vmt_pool_destroy(self->ctx.dev, "abi-doomed");
	close(self->ctx.pool);
	close(self->ctx.dev);
}

/* A valid struct for the variant's command in self->buf. */
static void prepare(struct abi_ctx *ctx, const struct abi_variant *v, unsigned char *buf)
{
	memset(buf, 0, 1024);
	if (v->prepare)
		v->prepare(ctx, buf);
}

static int target(struct abi_ctx *ctx, const struct abi_variant *v)
{
	return v->on_pool ? ctx->pool : ctx->dev;
}

static long issue(struct abi_ctx *ctx, const struct abi_variant *v, unsigned char *buf,
		  uint32_t size)
{
	memcpy(buf, &size, sizeof(size));
	return vmt_ioctl(target(ctx, v), v->cmd, buf);
}

TEST_F(abi, exact_size_works)
{
	long r;

	prepare(&self->ctx, variant, self->buf);
	r = issue(&self->ctx, variant, self->buf, (uint32_t)variant->size);
	EXPECT_GE(r, 0);
	if (variant->cleanup)
		variant->cleanup(&self->ctx, r);
}

TEST_F(abi, too_short)
{
	const uint32_t sizes[] = {0, 4, 8, (uint32_t)variant->min_size - 1};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		prepare(&self->ctx, variant, self->buf);
		EXPECT_EQ(issue(&self->ctx, variant, self->buf, sizes[i]), -EINVAL);
	}
}

TEST_F(abi, longer_with_nonzero_tail)
{
	static const size_t tails[] = {1, 8, 63};

	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		prepare(&self->ctx, variant, self->buf);
		self->buf[variant->size + tails[i] - 1] = 0x5a;
		EXPECT_EQ(
			issue(&self->ctx, variant, self->buf, (uint32_t)(variant->size + tails[i])),
			-E2BIG);
	}
	/* over a page: refused whatever the bytes */
	prepare(&self->ctx, variant, self->buf);
	EXPECT_EQ(issue(&self->ctx, variant, self->buf, 4097), -E2BIG);
}

TEST_F(abi, longer_with_zero_tail_is_exact)
{
	unsigned char exact[1024];
	long a, b;

	prepare(&self->ctx, variant, self->buf);
	a = issue(&self->ctx, variant, self->buf, (uint32_t)variant->size);
	memcpy(exact, self->buf, variant->size);
	if (variant->cleanup)
		variant->cleanup(&self->ctx, a);
	ASSERT_GE(a, 0);

	prepare(&self->ctx, variant, self->buf);
	b = issue(&self->ctx, variant, self->buf, (uint32_t)variant->size + 64);
	if (variant->cleanup)
		variant->cleanup(&self->ctx, b);
	ASSERT_GE(b, 0);
	/* nothing is written past what the kernel knows */
	for (size_t i = variant->size; i < variant->size + 64; i++)
		ASSERT_EQ(self->buf[i], 0);
	if (variant->idempotent) {
		EXPECT_EQ(a, b);
		/* the size field differs by design */
		EXPECT_EQ(memcmp(exact + 4, self->buf + 4, variant->size - 4), 0);
	}
}

TEST_F(abi, unknown_flags_and_reserved)
{
	for (int bit = 0; bit < 32; bit++) {
		uint32_t flag = 1u << bit;

		if (variant->flags & flag)
			continue;
		prepare(&self->ctx, variant, self->buf);
		memcpy(self->buf + 4, &flag, sizeof(flag));
		EXPECT_EQ(issue(&self->ctx, variant, self->buf, (uint32_t)variant->size), -EINVAL);
	}
	for (size_t i = 0; variant->reserved && i < variant->reserved_len; i++) {
		prepare(&self->ctx, variant, self->buf);
		self->buf[variant->reserved + i] = 0x80;
		EXPECT_EQ(issue(&self->ctx, variant, self->buf, (uint32_t)variant->size), -EINVAL);
	}
	/* a name's bytes after its NUL are reserved too */
	if (variant->name) {
		prepare(&self->ctx, variant, self->buf);
		self->buf[variant->name + KVMM_NAME_MAX - 1] = 'x';
		EXPECT_EQ(issue(&self->ctx, variant, self->buf, (uint32_t)variant->size), -EINVAL);
	}
}

TEST_F(abi, bad_pointers)
{
	void *unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(unmapped, MAP_FAILED);
	EXPECT_EQ(vmt_ioctl(target(&self->ctx, variant), variant->cmd, NULL), -EFAULT);
	EXPECT_EQ(vmt_ioctl(target(&self->ctx, variant), variant->cmd, unmapped), -EFAULT);
	munmap(unmapped, 4096);
}

TEST_F(abi, wrong_kind_of_fd)
{
	int other = variant->on_pool ? self->ctx.dev : self->ctx.pool;

	prepare(&self->ctx, variant, self->buf);
	memcpy(self->buf, &(uint32_t){(uint32_t)variant->size}, 4);
	EXPECT_EQ(vmt_ioctl(other, variant->cmd, self->buf), -ENOTTY);
}

TEST_F(abi, minimum_size_works)
{
	long r;

	prepare(&self->ctx, variant, self->buf);
	r = issue(&self->ctx, variant, self->buf, (uint32_t)variant->min_size);
	EXPECT_GE(r, 0);
	/* nothing is written past the size the caller gave */
	for (size_t i = variant->min_size; i < variant->size; i++)
		ASSERT_EQ(self->buf[i], 0);
	if (variant->cleanup)
		variant->cleanup(&self->ctx, r);
}

TEST_F(abi, announced_by_get_info)
{
	struct kvmm_info info = {.size = sizeof(info)};

	ASSERT_EQ(vmt_ioctl(self->ctx.dev, KVMM_IOC_GET_INFO, &info), 0);
	EXPECT_TRUE(info.ioctls & KVMM_IOCTL_BIT(_IOC_NR(variant->cmd)));
}
