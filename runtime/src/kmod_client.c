// SPDX-License-Identifier: MIT
/*
 * kmod_client.c - the userspace side of /dev/kvmm's ABI: one wrapper per
 * command (sizes and flags filled in, errors as -errno), the handshake,
 * and what each errno means for each command.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kmod_client.h"
#include "kvmm.h"

const char *kmod_dev_path(const char *path)
{
	const char *env;

	if (path)
		return path;
	env = getenv("KVMM_DEVICE");
	return env && *env ? env : "/dev/" KVMM_DEVICE_NAME;
}

int kmod_dev_open(const char *path)
{
	int fd = open(kmod_dev_path(path), O_RDWR | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	return errno == ENOENT ? -ENODEV : -errno;
}

long kmod_ioctl(int fd, unsigned long cmd, void *arg)
{
	long r;

	do {
		r = ioctl(fd, cmd, arg);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

int kmod_get_info(int dev, struct kvmm_info *info)
{
	long r;

	memset(info, 0, sizeof(*info));
	info->size = sizeof(*info);
	r = kmod_ioctl(dev, KVMM_IOC_GET_INFO, info);
	/* -ENOTTY: not kvmm at all (another device at that path) */
	if (r < 0)
		return (int)r;
	return info->api_version == KVMM_API_VERSION ? 0 : -EPROTO;
}

int kmod_get_stats(int dev, struct kvmm_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	return (int)kmod_ioctl(dev, KVMM_IOC_GET_STATS, st);
}

int kmod_limits(int dev, uint32_t flags, uint64_t global, uint64_t per_uid, struct kvmm_limits *out)
{
	struct kvmm_limits l = {
		.size = sizeof(l),
		.flags = flags,
		.global_bytes = global,
		.per_uid_bytes = per_uid,
	};
	long r = kmod_ioctl(dev, KVMM_IOC_LIMITS, &l);

	if (r == 0 && out)
		*out = l;
	return (int)r;
}

int kmod_list(int dev, struct kvmm_pool_desc **descs, uint32_t *n)
{
	struct kvmm_pool_list l = {.size = sizeof(l), .entry_size = sizeof(**descs)};
	struct kvmm_pool_desc *d = NULL, *nd;
	uint32_t cap = 0;
	long r;

	/* pools come and go between calls: grow until everything fits */
	for (;;) {
		l.count = cap;
		l.entries = (uintptr_t)d;
		r = kmod_ioctl(dev, KVMM_IOC_POOL_LIST, &l);
		if (r < 0 || l.total <= cap)
			break;
		cap = l.total + 8;
		nd = realloc(d, (size_t)cap * sizeof(*d));
		if (!nd) {
			r = -ENOMEM;
			break;
		}
		d = nd;
	}
	if (r < 0) {
		free(d);
		return (int)r;
	}
	*descs = d;
	*n = l.count;
	return 0;
}

int kmod_pool_info(int pool, struct kvmm_pool_desc *d)
{
	struct kvmm_pool_info i = {.size = sizeof(i)};
	long r = kmod_ioctl(pool, KVMM_IOC_POOL_INFO, &i);

	if (r == 0)
		*d = i.desc;
	return (int)r;
}

static int kmod_name(char *dst, const char *name)
{
	size_t n = strlen(name);

	if (!n || n >= KVMM_NAME_MAX)
		return -EINVAL;
	memset(dst, 0, KVMM_NAME_MAX);
	memcpy(dst, name, n);
	return 0;
}

int kmod_pool_create(int dev, const char *name, uint64_t bytes, int node, unsigned int page_shift,
		     uint32_t flags, uint32_t mode, uint32_t pci_dev)
{
	struct kvmm_pool_create c = {
		.size = sizeof(c),
		.flags = flags,
		.bytes = bytes,
		.node = node,
		.page_shift = page_shift,
		.mode = mode,
		.pci_dev = pci_dev,
	};

	if (kmod_name(c.name, name))
		return -EINVAL;
	return (int)kmod_ioctl(dev, KVMM_IOC_POOL_CREATE, &c);
}

int kmod_pool_open(int dev, const char *name, uint32_t flags)
{
	struct kvmm_pool_open o = {.size = sizeof(o), .flags = flags};

	if (kmod_name(o.name, name))
		return -EINVAL;
	return (int)kmod_ioctl(dev, KVMM_IOC_POOL_OPEN, &o);
}

int kmod_pool_destroy(int dev, const char *name)
{
	struct kvmm_pool_destroy d = {.size = sizeof(d)};

	if (kmod_name(d.name, name))
		return -EINVAL;
	return (int)kmod_ioctl(dev, KVMM_IOC_POOL_DESTROY, &d);
}

int64_t kmod_set_state(int pool, const struct kvmm_page_range *r, uint32_t n, unsigned int state)
{
	struct kvmm_pool_set_state s = {
		.size = sizeof(s),
		.state = state,
		.nr_ranges = n,
		.ranges = (uintptr_t)r,
	};
	long ret = kmod_ioctl(pool, KVMM_IOC_POOL_SET_STATE, &s);

	return ret < 0 ? ret : (int64_t)s.changed;
}

int64_t kmod_populate(int pool, uint64_t first, uint64_t count)
{
	struct kvmm_pool_populate p = {.size = sizeof(p), .first = first, .count = count};
	long ret;

	/* -EINTR: the kernel kept what it populated; carry on */
	do {
		ret = ioctl(pool, KVMM_IOC_POOL_POPULATE, &p) < 0 ? -errno : 0;
	} while (ret == -EINTR);
	return ret < 0 ? ret : (int64_t)p.populated;
}

int kmod_set_residency(int pool, const uint64_t pages[KVMM_TIER_COUNT])
{
	struct kvmm_pool_residency r = {.size = sizeof(r)};

	memcpy(r.pages, pages, sizeof(r.pages));
	return (int)kmod_ioctl(pool, KVMM_IOC_POOL_SET_RESIDENCY, &r);
}

int kmod_set_eventfd(int pool, int efd)
{
	struct kvmm_pool_eventfd e = {.size = sizeof(e), .fd = efd};

	return (int)kmod_ioctl(pool, KVMM_IOC_POOL_SET_EVENTFD, &e);
}

int kmod_parse_pci(const char *s, uint32_t *out)
{
	unsigned int dom = 0, bus, dev, fn;
	char tail;

	if (sscanf(s, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4) {
		dom = 0;
		if (sscanf(s, "%x:%x.%x%c", &bus, &dev, &fn, &tail) != 3)
			return -EINVAL;
	}
	if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
		return -EINVAL;
	*out = dom << 16 | bus << 8 | dev << 3 | fn;
	return 0;
}

static const struct {
	int err;
	const char *name;
} kmod_errnames[] = {
	{EPERM, "EPERM"},     {ENOENT, "ENOENT"}, {EINTR, "EINTR"},	      {EBADF, "EBADF"},
	{ENOMEM, "ENOMEM"},   {EACCES, "EACCES"}, {EFAULT, "EFAULT"},	      {EBUSY, "EBUSY"},
	{EEXIST, "EEXIST"},   {ENODEV, "ENODEV"}, {EINVAL, "EINVAL"},	      {ENFILE, "ENFILE"},
	{ENOTTY, "ENOTTY"},   {EFBIG, "EFBIG"},	  {ENOSPC, "ENOSPC"},	      {E2BIG, "E2BIG"},
	{EDQUOT, "EDQUOT"},   {EPROTO, "EPROTO"}, {EOPNOTSUPP, "EOPNOTSUPP"}, {EISDIR, "EISDIR"},
	{ENOTDIR, "ENOTDIR"}, {ENXIO, "ENXIO"},	  {EROFS, "EROFS"},	      {EAGAIN, "EAGAIN"},
	{ERANGE, "ERANGE"},   {EIO, "EIO"},
};

const char *kmod_errname(int err)
{
	if (err < 0)
		err = -err;
	for (size_t i = 0; i < sizeof(kmod_errnames) / sizeof(kmod_errnames[0]); i++)
		if (kmod_errnames[i].err == err)
			return kmod_errnames[i].name;
	return "E?";
}

const char *kmod_strerror(unsigned long cmd, int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case ENODEV:
		if (cmd == KVMM_IOC_POOL_CREATE)
			return "no such NUMA node with memory, or no such PCI device";
		return "no /dev/kvmm: the kvmm module is not loaded";
	case EACCES:
		if (cmd == KVMM_IOC_POOL_OPEN || cmd == KVMM_IOC_POOL_DESTROY)
			return "the pool's mode does not allow this to your user or group";
		return "permission denied (see the kvmm group in docs/kmod.md)";
	case EPERM:
		return "needs CAP_SYS_ADMIN (root)";
	case ENOENT:
		return "no pool with this name";
	case EEXIST:
		return "a pool with this name exists";
	case ENOSPC:
		return "over the host-wide limit (kvmmctl limits get)";
	case EDQUOT:
		return "over the per-uid limit (kvmmctl limits get)";
	case ENFILE:
		return "too many pools (module parameter max_pools)";
	case EFBIG:
		return "larger than the module allows for one pool";
	case ENOMEM:
		if (cmd == KVMM_IOC_POOL_CREATE || cmd == KVMM_IOC_POOL_POPULATE)
			return "not enough memory on the node or in the memory cgroup";
		return "out of memory";
	case EBADF:
		return "the pool was opened read-only";
	case EINVAL:
		return "invalid argument";
	case EPROTO:
		return "the module speaks another ABI version than this program";
	case ENOTTY:
		if (cmd == KVMM_IOC_GET_INFO)
			return "not a kvmm device";
		return "the module does not know this command (an older kvmm.ko?)";
	default:
		return strerror(err);
	}
}

int kvmm_probe(const char *path, struct kvmm_kmod_info *info)
{
	struct kvmm_info i;
	int dev = kmod_dev_open(path), r;

	if (dev < 0)
		return dev;
	r = kmod_get_info(dev, &i);
	close(dev);
	if (r == -ENOTTY)
		return -ENODEV; /* something else lives at that path */
	if (r)
		return r;
	if (info) {
		info->api_version = i.api_version;
		info->nr_node_ids = i.nr_node_ids;
		info->features = i.features;
		info->ioctls = i.ioctls;
		info->page_sizes = i.page_sizes;
	}
	return 0;
}
