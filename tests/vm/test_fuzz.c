// SPDX-License-Identifier: MIT
/*
 * test_fuzz: 100,000 random calls at the module (KVMM_FUZZ_CALLS to change,
 * KVMM_TEST_SEED to replay): random commands (mostly kvmm's, some not) with
 * random, half-valid or valid structs, sizes, flags and pointers, on device
 * fds, pool fds and fds of other files; random mmaps (data and status area)
 * that are touched and unmapped; random closes and shrinker runs; part of
 * it as another user.  Every call must return 0, a positive fd or count, or
 * an errno from the ABI's list.  Then everything is closed, the module is
 * unloaded (page counter 0, no BUG/WARNING, checked by the harness and by
 * the VM runner) and loaded again.
 * vm-timeout: 240
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "vmt.h"

#define MAXFD  16
#define MAXMAP 8
#define SHRINK "/sys/kernel/debug/kvmm/shrink"

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

enum { FD_DEV, FD_POOL, FD_OTHER };

struct fuzz {
	int fds[MAXFD];
	int kind[MAXFD];
	struct {
		void *p;
		size_t len;
	} maps[MAXMAP];
	unsigned char buf[1024];
	/* what valid pointers in commands point to: ranges in, or up to 3
	 * POOL_LIST entries of a page out (the kernel writes all of it) */
	union {
		struct kvmm_page_range ranges[8];
		unsigned char bytes[3 * 4096];
	} scratch;
	uint64_t calls, ok, errors[256];
	int bad_errno;
};

static const char *const names[] = {"f0", "f1", "f2", "f3", "fuzz.x", "a-b_c"};

/* errnos the ABI documents for some command: anything else is a bug */
static int allowed(int e)
{
	switch (e) {
	case EINVAL:
	case E2BIG:
	case EFAULT:
	case ENOTTY:
	case ENOENT:
	case EEXIST:
	case ENOSPC:
	case EDQUOT:
	case ENFILE:
	case EMFILE:
	case EFBIG:
	case ENOMEM:
	case EACCES:
	case EPERM:
	case EBADF:
	case ENODEV:
	case EINTR:
	case EAGAIN:
		return 1;
	default:
		return 0;
	}
}

static uint64_t rnd_u64(void)
{
	switch (below(8)) {
	case 0:
		return 0;
	case 1:
		return ~0ull;
	case 2:
		return below(16);
	case 3:
		return 1ull << below(64);
	case 4:
		return (below(64) + 1) << 12;
	case 5:
		return (below(8) + 1) << 21;
	default:
		return rnd();
	}
}

static void *rnd_ptr(struct fuzz *f)
{
	switch (below(6)) {
	case 0:
		return NULL;
	case 1:
		return (void *)(uintptr_t)rnd();
	case 2:
		return (void *)-4096L;
	default:
		for (int i = 0; i < 8; i++)
			f->scratch.ranges[i] =
				(struct kvmm_page_range){rnd_u64() & 0xff, below(300)};
		return &f->scratch;
	}
}

static void fill_name(char *name)
{
	memset(name, 0, KVMM_NAME_MAX);
	switch (below(8)) {
	case 0:
		for (int i = 0; i < KVMM_NAME_MAX; i++)
			name[i] = (char)rnd();
		break;
	case 1:
		strcpy(name, "bad/name");
		break;
	default:
		strcpy(name, names[below(sizeof(names) / sizeof(names[0]))]);
	}
}

/* A struct for cmd: fully random, or plausible with a few fields wrong. */
static size_t fill(struct fuzz *f, unsigned int nr)
{
	unsigned char *b = f->buf;
	size_t size = 64;

	/* one in ten: random bytes and size; else a plausible struct */
	if (below(10) == 0) {
		for (size_t i = 0; i < sizeof(f->buf); i++)
			b[i] = (unsigned char)rnd();
		return below(sizeof(f->buf));
	}
	memset(b, 0, sizeof(f->buf));
	if (below(8) == 0) /* a stray flag or reserved byte */
		b[4 + below(60)] = (unsigned char)rnd();
	switch (nr) {
	case KVMM_CMD_POOL_CREATE: {
		struct kvmm_pool_create *c = (void *)b;

		size = sizeof(*c);
		c->flags =
			below(3) ? (uint32_t)below(16) & ~KVMM_POOL_NODE_OF_PCI : (uint32_t)rnd();
		c->bytes = below(3) ? (below(64) + 1) << 12 : rnd_u64();
		c->node = below(3) ? (int)below(3) - 1 : (int)rnd();
		c->page_shift = below(4) ? (below(2) ? 12 : 21) : (uint32_t)below(64);
		c->mode = below(4) ? 0600 + (uint32_t)below(0200) : (uint32_t)rnd();
		c->pci_dev = below(8) ? 0 : (uint32_t)rnd();
		fill_name(c->name);
		break;
	}
	case KVMM_CMD_POOL_OPEN:
	case KVMM_CMD_POOL_DESTROY: {
		struct kvmm_pool_open *o = (void *)b;

		size = sizeof(*o);
		o->flags = below(3) ? (uint32_t)below(4) : (uint32_t)rnd();
		fill_name(o->name);
		break;
	}
	case KVMM_CMD_POOL_LIST: {
		struct kvmm_pool_list *l = (void *)b;

		size = sizeof(*l);
		l->entry_size = below(3) ? sizeof(struct kvmm_pool_desc) + (uint32_t)below(3) * 8
					 : (uint32_t)rnd();
		l->count = (uint32_t)below(4);
		l->entries = (uintptr_t)(below(3) ? (void *)&f->scratch : rnd_ptr(f));
		break;
	}
	case KVMM_CMD_POOL_SET_STATE: {
		struct kvmm_pool_set_state s = {0};

		size = sizeof(s);
		s.state = (uint32_t)below(4);
		s.nr_ranges = below(4) ? (uint32_t)below(9) : (uint32_t)rnd();
		s.ranges = (uintptr_t)rnd_ptr(f);
		memcpy(b + 8, &s.state, sizeof(s) - 8);
		break;
	}
	case KVMM_CMD_POOL_POPULATE: {
		struct kvmm_pool_populate *p = (void *)b;

		size = sizeof(*p);
		p->first = rnd_u64() & (below(2) ? 0xff : ~0ull);
		p->count = below(300);
		break;
	}
	case KVMM_CMD_POOL_SET_EVENTFD: {
		struct kvmm_pool_eventfd *e = (void *)b;

		size = sizeof(*e);
		e->fd = below(2) ? f->fds[below(MAXFD)] : (int)rnd();
		break;
	}
	case KVMM_CMD_LIMITS: {
		struct kvmm_limits *l = (void *)b;

		size = sizeof(*l);
		l->flags = (uint32_t)below(8);
		l->global_bytes = rnd_u64();
		l->per_uid_bytes = rnd_u64();
		break;
	}
	default:
		size = 32 + below(64);
	}
	/* flags usually 0 except where set above; sometimes a wrong size */
	if (below(8) == 0)
		size = below(2) ? size - 1 - below(size) : size + below(64);
	return size;
}

static int pick_fd(struct fuzz *f)
{
	return f->fds[below(MAXFD)];
}

/* A command number that suits fd kind (most of the time). */
static unsigned int nr_for(int kind)
{
	static const unsigned int dev_cmds[] = {
		KVMM_CMD_GET_INFO,  KVMM_CMD_GET_STATS,	   KVMM_CMD_LIMITS,   KVMM_CMD_POOL_CREATE,
		KVMM_CMD_POOL_OPEN, KVMM_CMD_POOL_DESTROY, KVMM_CMD_POOL_LIST};
	static const unsigned int pool_cmds[] = {
		KVMM_CMD_POOL_INFO, KVMM_CMD_POOL_SET_STATE, KVMM_CMD_POOL_POPULATE,
		KVMM_CMD_POOL_SET_RESIDENCY, KVMM_CMD_POOL_SET_EVENTFD};

	if (kind == FD_DEV)
		return dev_cmds[below(sizeof(dev_cmds) / sizeof(dev_cmds[0]))];
	return pool_cmds[below(sizeof(pool_cmds) / sizeof(pool_cmds[0]))];
}

static void record(struct fuzz *f, long r, const char *what)
{
	f->calls++;
	if (r >= 0) {
		f->ok++;
		return;
	}
	if (-r < 256)
		f->errors[-r]++;
	if (!allowed((int)-r) && !f->bad_errno) {
		f->bad_errno = (int)-r;
		TH_LOG("unexpected errno %ld (%s) from %s", -r, __kt_errname(-r), what);
	}
}

static void keep_fd(struct fuzz *f, long fd, int kind)
{
	int slot = (int)below(MAXFD);

	if (fd < 0)
		return;
	if (f->fds[slot] > 2)
		close(f->fds[slot]);
	f->fds[slot] = (int)fd;
	f->kind[slot] = kind;
}

static void do_ioctl(struct fuzz *f, int limit_ok)
{
	int slot = (int)below(MAXFD);
	unsigned int nr;
	unsigned long cmd;
	size_t size;
	long r;

	switch (below(10)) {
	case 0:
		nr = (unsigned int)below(256);
		cmd = _IO(KVMM_TYPE, nr);
		break;
	case 1:
		/* kvmm's type with any direction and size bits: other types would
		 * reach the VFS's own ioctls (FIOCLEX, FIFREEZE...), not ours */
		nr = (unsigned int)below(KVMM_CMD_END - KVMM_CMD_BASE + 4) + KVMM_CMD_BASE;
		cmd = _IOC(below(4), KVMM_TYPE, nr, below(1 << 14));
		break;
	case 2:
		nr = (unsigned int)below(KVMM_CMD_END - KVMM_CMD_BASE + 2) + KVMM_CMD_BASE;
		cmd = _IO(KVMM_TYPE, nr);
		break;
	default:
		nr = nr_for(f->kind[slot]);
		cmd = _IO(KVMM_TYPE, nr);
	}
	size = fill(f, nr);
	memcpy(f->buf, &(uint32_t){(uint32_t)size}, 4);
	r = vmt_ioctl(f->fds[slot], cmd, below(20) ? (void *)f->buf : rnd_ptr(f));
	record(f, r, "ioctl");
	/* new pool fds are kept for later calls */
	if (r > 0 && f->kind[slot] == FD_DEV && cmd == _IO(KVMM_TYPE, nr) &&
	    (nr == KVMM_CMD_POOL_CREATE || nr == KVMM_CMD_POOL_OPEN))
		keep_fd(f, r, FD_POOL);
	/* keep the memory the fuzzer may reserve small */
	if (nr == KVMM_CMD_LIMITS && limit_ok) {
		int dev = vmt_dev();

		vmt_limits(dev, KVMM_LIMITS_SET_GLOBAL | KVMM_LIMITS_SET_PER_UID, 64 << 20, 0,
			   NULL);
		close(dev);
	}
}

static void do_mmap(struct fuzz *f)
{
	int slot = (int)below(MAXMAP), fd = pick_fd(f);
	size_t len = (below(64) + 1) * 4096;
	off_t off = below(4) ? (off_t)(below(64) * 4096)
			     : (off_t)(KVMM_STATUS_OFFSET + below(2) * 4096);
	int prot = below(3) ? PROT_READ | PROT_WRITE : PROT_READ;
	void *p;

	if (f->maps[slot].p)
		munmap(f->maps[slot].p, f->maps[slot].len);
	f->maps[slot].p = NULL;
	p = mmap(NULL, len, prot, below(8) ? MAP_SHARED : MAP_PRIVATE, fd, off);
	f->calls++;
	if (p == MAP_FAILED)
		return;
	f->ok++;
	f->maps[slot].p = p;
	f->maps[slot].len = len;
	/* touch a few pages; a fault here would kill the fuzzer: SIGBUS
	 * only when memory ran out, which the 64 MiB limit prevents */
	for (int i = 0; i < 4; i++) {
		volatile char *c = (char *)p + below(len);

		if (prot & PROT_WRITE)
			*c = (char)rnd();
		else
			(void)*c;
	}
}

static void run(struct fuzz *f, uint64_t n, int limit_ok)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t a = below(100);

		if (a < 85) {
			do_ioctl(f, limit_ok);
		} else if (a < 93) {
			do_mmap(f);
		} else if (a < 96) {
			int slot = (int)below(MAXFD);

			if (f->fds[slot] > 2)
				close(f->fds[slot]);
			f->kind[slot] = below(4) ? FD_DEV : FD_OTHER;
			f->fds[slot] =
				f->kind[slot] == FD_DEV ? vmt_dev() : open("/dev/null", O_RDWR);
			f->calls++;
		} else if (a < 98) {
			int slot = (int)below(MAXMAP);

			if (f->maps[slot].p)
				munmap(f->maps[slot].p, f->maps[slot].len);
			f->maps[slot].p = NULL;
		} else if (limit_ok) {
			char cmd[48];

			snprintf(cmd, sizeof(cmd), "%d %llu", (int)below(3) - 1,
				 (unsigned long long)below(4096));
			record(f, vmt_write(cmd, SHRINK), "shrink");
		}
	}
}

static void init(struct fuzz *f)
{
	int dev;

	memset(f, 0, sizeof(*f));
	for (int i = 0; i < MAXFD; i++) {
		f->fds[i] = i < 6 ? vmt_dev() : -1;
		f->kind[i] = i < 6 ? FD_DEV : FD_OTHER;
	}
	f->fds[MAXFD - 1] = open("/dev/null", O_RDWR);
	f->fds[MAXFD - 2] = eventfd(0, 0);
	/* some pools to start from (open them if another run made them) */
	dev = vmt_dev();
	for (int i = 0; i < 6; i++) {
		const char *name = names[i % 4];
		int fd = vmt_pool_create(dev, name, i % 2 ? 4 << 20 : 1 << 20, (int)(i % 3) - 1,
					 i % 2 ? 21 : 12, i < 2 ? KVMM_POOL_PERSISTENT : 0, 0666);

		if (fd < 0)
			fd = vmt_pool_open(dev, name, 0);
		f->fds[6 + i] = fd;
		f->kind[6 + i] = FD_POOL;
	}
	if (dev >= 0)
		close(dev);
}

static void finish(struct fuzz *f)
{
	for (int i = 0; i < MAXMAP; i++)
		if (f->maps[i].p)
			munmap(f->maps[i].p, f->maps[i].len);
	for (int i = 0; i < MAXFD; i++)
		if (f->fds[i] > 2)
			close(f->fds[i]);
}

static struct fuzz *shared;

static int as_user(void *arg)
{
	init(shared);
	run(shared, *(uint64_t *)arg, 0);
	finish(shared);
	return shared->bad_errno;
}

TEST_TIMEOUT(fuzz_then_unload, 230)
{
	const char *env = getenv("KVMM_FUZZ_CALLS"), *seed_env = getenv("KVMM_TEST_SEED");
	uint64_t total = env ? strtoull(env, NULL, 0) : 100000, user = total / 5;
	struct kvmm_pool_desc *d;
	int dev, kmsg;
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x6b766d6d2025ull;

	shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		      0);
	ASSERT_NE(shared, MAP_FAILED);
	TH_LOG("seed %#llx (KVMM_TEST_SEED replays), %llu calls", (unsigned long long)seed,
	       (unsigned long long)total);
	dev = vmt_dev();
	ASSERT_GE(dev, 0);
	ASSERT_EQ(vmt_limits(dev, KVMM_LIMITS_SET_GLOBAL, 64 << 20, 0, NULL), 0);

	/* a fifth as an ordinary user: permission paths */
	ASSERT_EQ(chmod(KVMM_DEV, 0666), 0);
	rng_state = seed ^ 0x9e3779b97f4a7c15ull;
	EXPECT_EQ(vmt_as_user(1000, 1000, as_user, &user), 0);
	chmod(KVMM_DEV, 0600);
	TH_LOG("as uid 1000: %llu calls, %llu succeeded", (unsigned long long)shared->calls,
	       (unsigned long long)shared->ok);

	rng_state = seed | 1;
	init(shared);
	run(shared, total - user, 1);
	finish(shared);
	EXPECT_EQ(shared->bad_errno, 0);
	TH_LOG("as root: %llu calls, %llu succeeded; EINVAL %llu, E2BIG %llu, EFAULT %llu, ENOTTY "
	       "%llu",
	       (unsigned long long)shared->calls, (unsigned long long)shared->ok,
	       (unsigned long long)shared->errors[EINVAL],
	       (unsigned long long)shared->errors[E2BIG],
	       (unsigned long long)shared->errors[EFAULT],
	       (unsigned long long)shared->errors[ENOTTY]);
	EXPECT_GT(shared->ok, total / 100);

	/* every pool the fuzzer left is listed and consistent */
	{
		uint32_t n = 0;
		struct kvmm_pool_list l = {
			.size = sizeof(l), .entry_size = sizeof(*d), .count = 256};

		d = calloc(256, sizeof(*d));
		ASSERT_TRUE(d != NULL);
		l.entries = (uintptr_t)d;
		ASSERT_EQ(vmt_ioctl(dev, KVMM_IOC_POOL_LIST, &l), 0);
		n = l.count;
		TH_LOG("%u pools left", n);
		for (uint32_t i = 0; i < n; i++) {
			EXPECT_EQ(d[i].pages_state[0] + d[i].pages_state[1] + d[i].pages_state[2],
				  d[i].pages);
			EXPECT_LE(d[i].pages_present, d[i].pages);
			EXPECT_EQ(d[i].attached, 0);
			EXPECT_EQ(d[i].mappings, 0);
		}
		free(d);
	}
	close(dev);
	/* unload with the fuzzer's persistent pools still there */
	kmsg = vmt_kmsg_open();
	ASSERT_EQ(vmt_unload(), 0);
	EXPECT_TRUE(vmt_kmsg_has(kmsg, "kvmm: unloaded, 0 pages still allocated"));
	close(kmsg);
	ASSERT_EQ(vmt_load(""), 0);
}
