// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * ioctl.c - decoding of kvmm's commands (the iommufd pattern).
 *
 * Every command struct starts with __u32 size, __u32 flags.  The tables
 * below give each command its struct and the end of its last field in API
 * version 1 (min_size); kvmm_ioctl() checks the size, copies the struct with
 * copy_struct_from_user() (zero-filling what an older caller did not send,
 * rejecting non-zero bytes a newer caller sent that we do not know) and
 * calls the handler, which checks flags, reserved fields and values before
 * it changes anything; kvmm_respond() copies back at most size bytes.
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/ctype.h>
#include <linux/kernel.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/nodemask.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "kvmm_priv.h"

struct kvmm_ucmd {
	void __user *ubuf;
	u32 user_size;
	void *cmd;
	struct file *file;
};

union kvmm_cmd_buffer {
	struct kvmm_info info;
	struct kvmm_stats stats;
	struct kvmm_limits limits;
	struct kvmm_pool_create create;
	struct kvmm_pool_open open;
	struct kvmm_pool_destroy destroy;
	struct kvmm_pool_list list;
	struct kvmm_pool_info pool_info;
	struct kvmm_pool_set_state set_state;
	struct kvmm_pool_populate populate;
	struct kvmm_pool_residency residency;
	struct kvmm_pool_eventfd eventfd;
};

struct kvmm_ioctl_op {
	unsigned int size;
	unsigned int min_size;
	int (*execute)(struct kvmm_ucmd *ucmd);
};

#define KVMM_POOL_CREATE_FLAGS	(KVMM_POOL_PERSISTENT | KVMM_POOL_CLOEXEC | \
				 KVMM_POOL_POPULATE | KVMM_POOL_NODE_OF_PCI)
#define KVMM_POOL_OPEN_FLAGS	(KVMM_OPEN_RDONLY | KVMM_OPEN_CLOEXEC)
#define KVMM_LIMITS_FLAGS	(KVMM_LIMITS_SET_GLOBAL | KVMM_LIMITS_SET_PER_UID)
#define KVMM_FEATURES		(KVMM_FEATURE_MEMCG | KVMM_FEATURE_NODE_OF_PCI | \
				 KVMM_FEATURE_RECLAIM | KVMM_FEATURE_STATUS | \
				 KVMM_FEATURE_EVENTFD)
#define KVMM_POOL_DESC_SIZE_V1	sizeof(struct kvmm_pool_desc)

static int kvmm_respond(struct kvmm_ucmd *ucmd, size_t cmd_len)
{
	if (copy_to_user(ucmd->ubuf, ucmd->cmd, min_t(size_t, ucmd->user_size, cmd_len)))
		return -EFAULT;
	return 0;
}

/* 1 to KVMM_NAME_MAX - 1 of [A-Za-z0-9._-], no leading '.', zero after. */
static int kvmm_check_name(const char *name)
{
	size_t len = strnlen(name, KVMM_NAME_MAX), i;

	if (!len || len == KVMM_NAME_MAX || name[0] == '.')
		return -EINVAL;
	for (i = 0; i < len; i++) {
		unsigned char c = name[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return -EINVAL;
	}
	for (; i < KVMM_NAME_MAX; i++)
		if (name[i])
			return -EINVAL;
	return 0;
}

static int kvmm_check_node(s32 node, int *nid)
{
	if (node == KVMM_NODE_ANY) {
		*nid = NUMA_NO_NODE;
		return 0;
	}
	if (node < 0 || node >= nr_node_ids)
		return -EINVAL;
	if (!node_state(node, N_MEMORY))
		return -ENODEV;
	*nid = node;
	return 0;
}

/* The node of PCI device domain << 16 | bus << 8 | devfn (a GPU's). */
static int kvmm_pci_node(u32 id, int *nid)
{
	struct pci_dev *pdev;
	int node;

	pdev = pci_get_domain_bus_and_slot(id >> 16, (id >> 8) & 0xff, id & 0xff);
	if (!pdev)
		return -ENODEV;
	node = dev_to_node(&pdev->dev);
	pci_dev_put(pdev);
	/* a device without a node (one-node machines) allows any */
	*nid = node != NUMA_NO_NODE && node_state(node, N_MEMORY) ? node : NUMA_NO_NODE;
	return 0;
}

/* ---- device commands ---------------------------------------------------- */

static u64 kvmm_ioctl_mask(void);

static int kvmm_get_info(struct kvmm_ucmd *ucmd)
{
	struct kvmm_info *cmd = ucmd->cmd;

	if (cmd->flags || cmd->__reserved)
		return -EINVAL;
	cmd->api_version = KVMM_API_VERSION;
	cmd->nr_node_ids = nr_node_ids;
	cmd->features = KVMM_FEATURES;
	/* without the memory controller there is only global reclaim */
	if (!mem_cgroup_disabled())
		cmd->features |= KVMM_FEATURE_MEMCG_RECLAIM;
	/* do_set_pmd() is a stub without THP: 2 MiB pages get PTEs only */
	if (IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE))
		cmd->features |= KVMM_FEATURE_PMD_MAP;
	cmd->ioctls = kvmm_ioctl_mask();
	cmd->page_sizes = BIT_ULL(PAGE_SHIFT) | BIT_ULL(PMD_SHIFT);
	return kvmm_respond(ucmd, sizeof(*cmd));
}

static int kvmm_get_stats(struct kvmm_ucmd *ucmd)
{
	struct kvmm_stats *cmd = ucmd->cmd;
	struct kvmm_pool *pool;

	if (cmd->flags || cmd->__reserved)
		return -EINVAL;
	cmd->pages_hot = 0;
	cmd->pages_cold = 0;
	cmd->pages_free = 0;
	mutex_lock(&kvmm_registry.lock);
	cmd->pools = kvmm_registry.nr_pools;
	cmd->bytes_reserved = kvmm_registry.bytes;
	list_for_each_entry(pool, &kvmm_registry.pools, list) {
		cmd->pages_hot += READ_ONCE(pool->nr_state[KVMM_PAGE_HOT]);
		cmd->pages_cold += READ_ONCE(pool->nr_state[KVMM_PAGE_COLD]);
		cmd->pages_free += READ_ONCE(pool->nr_state[KVMM_PAGE_FREE]);
	}
	mutex_unlock(&kvmm_registry.lock);
	cmd->pages_allocated = atomic_long_read(&kvmm_pages_allocated);
	cmd->alloc_failures = atomic64_read(&kvmm_alloc_failures);
	cmd->reclaim_scans = atomic64_read(&kvmm_reclaim.scans);
	cmd->reclaim_scanned = atomic64_read(&kvmm_reclaim.scanned);
	cmd->reclaimed_pages = atomic64_read(&kvmm_reclaim.reclaimed);
	cmd->reclaim_busy = atomic64_read(&kvmm_reclaim.busy);
	return kvmm_respond(ucmd, sizeof(*cmd));
}

static int kvmm_limits(struct kvmm_ucmd *ucmd)
{
	struct kvmm_limits *cmd = ucmd->cmd;

	if (cmd->flags & ~KVMM_LIMITS_FLAGS)
		return -EINVAL;
	if (cmd->flags && !capable(CAP_SYS_ADMIN))
		return -EPERM;
	mutex_lock(&kvmm_registry.lock);
	if (cmd->flags & KVMM_LIMITS_SET_GLOBAL)
		kvmm_registry.limit_bytes = cmd->global_bytes;
	if (cmd->flags & KVMM_LIMITS_SET_PER_UID)
		kvmm_registry.limit_uid_bytes = cmd->per_uid_bytes;
	cmd->global_bytes = kvmm_registry.limit_bytes;
	cmd->per_uid_bytes = kvmm_registry.limit_uid_bytes;
	cmd->global_used = kvmm_registry.bytes;
	cmd->uid_used = kvmm_registry_uid_bytes(current_fsuid());
	mutex_unlock(&kvmm_registry.lock);
	return kvmm_respond(ucmd, sizeof(*cmd));
}

static int kvmm_pool_create_cmd(struct kvmm_ucmd *ucmd)
{
	struct kvmm_pool_create *cmd = ucmd->cmd;
	struct kvmm_pool_params p = {};
	struct kvmm_pool *pool;
	u64 populated;
	int ret, fd;

	if (cmd->flags & ~KVMM_POOL_CREATE_FLAGS)
		return -EINVAL;
	ret = kvmm_check_name(cmd->name);
	if (ret)
		return ret;
	if (cmd->page_shift != PAGE_SHIFT && cmd->page_shift != PMD_SHIFT)
		return -EINVAL;
	if (!cmd->bytes || cmd->bytes & ((1ULL << cmd->page_shift) - 1))
		return -EINVAL;
	if (cmd->bytes > KVMM_POOL_MAX_BYTES || cmd->bytes >> cmd->page_shift > KVMM_POOL_MAX_PAGES)
		return -EFBIG;
	if (cmd->mode & ~0777U)
		return -EINVAL;
	if (cmd->flags & KVMM_POOL_NODE_OF_PCI) {
		if (cmd->node != KVMM_NODE_ANY)
			return -EINVAL;
		ret = kvmm_pci_node(cmd->pci_dev, &p.nid);
	} else {
		if (cmd->pci_dev)
			return -EINVAL;
		ret = kvmm_check_node(cmd->node, &p.nid);
	}
	if (ret)
		return ret;

	ret = kvmm_registry_precheck(cmd->bytes);
	if (ret)
		return ret;
	p.name = cmd->name;
	p.bytes = cmd->bytes;
	p.page_shift = cmd->page_shift;
	p.flags = cmd->flags & KVMM_POOL_PERSISTENT;
	p.mode = cmd->mode;
	pool = kvmm_pool_alloc(&p);
	if (IS_ERR(pool))
		return PTR_ERR(pool);
	ret = kvmm_registry_add(pool);
	if (ret)
		goto out;
	if (cmd->flags & KVMM_POOL_POPULATE) {
		ret = kvmm_pool_populate(pool, 0, pool->nr_pages, &populated);
		if (ret)
			goto unlink;
	}
	fd = kvmm_pool_install_fd(pool, O_RDWR | (cmd->flags & KVMM_POOL_CLOEXEC ? O_CLOEXEC : 0));
	if (fd < 0) {
		ret = fd;
		goto unlink;
	}
	/* the fd has its own reference now */
	kvmm_pool_put(pool);
	return fd;

unlink:
	kvmm_registry_unlink(pool);
out:
	kvmm_pool_put(pool);
	return ret;
}

static int kvmm_pool_open_cmd(struct kvmm_ucmd *ucmd)
{
	struct kvmm_pool_open *cmd = ucmd->cmd;
	struct kvmm_pool *pool;
	int ret, flags;

	if (cmd->flags & ~KVMM_POOL_OPEN_FLAGS)
		return -EINVAL;
	ret = kvmm_check_name(cmd->name);
	if (ret)
		return ret;
	pool = kvmm_registry_find(cmd->name);
	if (!pool)
		return -ENOENT;
	flags = cmd->flags & KVMM_OPEN_RDONLY ? O_RDONLY : O_RDWR;
	ret = kvmm_pool_permission(pool, flags == O_RDONLY ? MAY_READ : MAY_READ | MAY_WRITE);
	if (!ret)
		ret = kvmm_pool_install_fd(pool, flags |
					   (cmd->flags & KVMM_OPEN_CLOEXEC ? O_CLOEXEC : 0));
	kvmm_pool_put(pool);
	return ret;
}

static int kvmm_pool_destroy_cmd(struct kvmm_ucmd *ucmd)
{
	struct kvmm_pool_destroy *cmd = ucmd->cmd;
	int ret;

	if (cmd->flags)
		return -EINVAL;
	ret = kvmm_check_name(cmd->name);
	if (ret)
		return ret;
	return kvmm_registry_destroy(cmd->name);
}

static int kvmm_pool_list_cmd(struct kvmm_ucmd *ucmd)
{
	struct kvmm_pool_list *cmd = ucmd->cmd;
	struct kvmm_pool_desc *descs = NULL;
	char __user *dst = u64_to_user_ptr(cmd->entries);
	struct kvmm_pool *pool;
	u32 n = 0, i;
	int ret = 0;

	if (cmd->flags || cmd->__reserved)
		return -EINVAL;
	if (cmd->entry_size < KVMM_POOL_DESC_SIZE_V1 || cmd->entry_size > PAGE_SIZE)
		return -EINVAL;
	mutex_lock(&kvmm_registry.lock);
	cmd->total = kvmm_registry.nr_pools;
	if (cmd->count && cmd->total) {
		descs = kvmalloc_array(min(cmd->count, cmd->total), sizeof(*descs), GFP_KERNEL);
		if (!descs) {
			mutex_unlock(&kvmm_registry.lock);
			return -ENOMEM;
		}
		list_for_each_entry(pool, &kvmm_registry.pools, list) {
			if (n == min(cmd->count, cmd->total))
				break;
			kvmm_pool_describe(pool, &descs[n++]);
		}
	}
	mutex_unlock(&kvmm_registry.lock);

	/* no lock held: the buffer may be in a pool mapping */
	for (i = 0; i < n && !ret; i++) {
		char __user *e = dst + (size_t)i * cmd->entry_size;

		if (copy_to_user(e, &descs[i], sizeof(descs[i])) ||
		    clear_user(e + sizeof(descs[i]), cmd->entry_size - sizeof(descs[i])))
			ret = -EFAULT;
	}
	kvfree(descs);
	if (ret)
		return ret;
	cmd->count = n;
	return kvmm_respond(ucmd, sizeof(*cmd));
}

/* ---- pool commands (ucmd->file is a pool fd) ---------------------------- */

static struct kvmm_pool *kvmm_ucmd_pool(struct kvmm_ucmd *ucmd)
{
	return ucmd->file->private_data;
}

/* Commands that change a pool need an fd opened for writing. */
static int kvmm_check_writable(struct kvmm_ucmd *ucmd)
{
	return ucmd->file->f_mode & FMODE_WRITE ? 0 : -EBADF;
}

static int kvmm_check_range(struct kvmm_pool *pool, u64 first, u64 count)
{
	if (!count || first >= pool->nr_pages || count > pool->nr_pages - first)
		return -EINVAL;
	return 0;
}

static int kvmm_pool_info_cmd(struct kvmm_ucmd *ucmd)
{
	struct kvmm_pool_info *cmd = ucmd->cmd;

	if (cmd->flags)
		return -EINVAL;
	kvmm_pool_describe(kvmm_ucmd_pool(ucmd), &cmd->desc);
	return kvmm_respond(ucmd, sizeof(*cmd));
}

static int kvmm_pool_set_state_cmd(struct kvmm_ucmd *ucmd)
{
	struct kvmm_pool_set_state *cmd = ucmd->cmd;
	struct kvmm_pool *pool = kvmm_ucmd_pool(ucmd);
	struct kvmm_page_range *r;
	u64 changed = 0;
	unsigned int i;
	int ret;

	if (cmd->flags)
		return -EINVAL;
	if (cmd->state >= KVMM_PAGE_STATES)
		return -EINVAL;
	if (!cmd->nr_ranges || cmd->nr_ranges > KVMM_MAX_RANGES)
		return -EINVAL;
	ret = kvmm_check_writable(ucmd);
	if (ret)
		return ret;
	/* copied before any lock: the array may be in a pool mapping */
	r = vmemdup_user(u64_to_user_ptr(cmd->ranges), cmd->nr_ranges * sizeof(*r));
	if (IS_ERR(r))
		return PTR_ERR(r);
	for (i = 0; i < cmd->nr_ranges && !ret; i++)
		ret = kvmm_check_range(pool, r[i].first, r[i].count);
	if (!ret)
		ret = kvmm_pool_set_state(pool, r, cmd->nr_ranges, cmd->state, &changed);
	kvfree(r);
	if (ret)
		return ret;
	cmd->changed = changed;
	return kvmm_respond(ucmd, sizeof(*cmd));
}

static int kvmm_pool_populate_cmd(struct kvmm_ucmd *ucmd)
{
	struct kvmm_pool_populate *cmd = ucmd->cmd;
	struct kvmm_pool *pool = kvmm_ucmd_pool(ucmd);
	u64 populated;
	int ret;

	if (cmd->flags)
		return -EINVAL;
	ret = kvmm_check_writable(ucmd);
	if (ret)
		return ret;
	ret = kvmm_check_range(pool, cmd->first, cmd->count);
	if (ret)
		return ret;
	ret = kvmm_pool_populate(pool, cmd->first, cmd->count, &populated);
	if (ret)
		return ret;
	cmd->populated = populated;
	return kvmm_respond(ucmd, sizeof(*cmd));
}

static int kvmm_pool_residency_cmd(struct kvmm_ucmd *ucmd)
{
	struct kvmm_pool_residency *cmd = ucmd->cmd;
	struct kvmm_pool *pool = kvmm_ucmd_pool(ucmd);
	unsigned int i;
	int ret;

	if (cmd->flags)
		return -EINVAL;
	ret = kvmm_check_writable(ucmd);
	if (ret)
		return ret;
	mutex_lock(&pool->lock);
	for (i = 0; i < KVMM_TIER_COUNT; i++)
		WRITE_ONCE(pool->residency[i], cmd->pages[i]);
	mutex_unlock(&pool->lock);
	return 0;
}

static int kvmm_pool_eventfd_cmd(struct kvmm_ucmd *ucmd)
{
	struct kvmm_pool_eventfd *cmd = ucmd->cmd;
	int ret;

	if (cmd->flags || cmd->__reserved || cmd->fd < -1)
		return -EINVAL;
	ret = kvmm_check_writable(ucmd);
	if (ret)
		return ret;
	return kvmm_pool_set_eventfd(kvmm_ucmd_pool(ucmd), cmd->fd);
}

/* ---- dispatch ----------------------------------------------------------- */

#define KVMM_OP(_cmd, _fn, _struct, _last)                                    \
	[(_cmd) - KVMM_CMD_BASE] = {                                          \
		.size = sizeof(_struct),                                      \
		.min_size = offsetofend(_struct, _last),                      \
		.execute = _fn,                                               \
	}

static const struct kvmm_ioctl_op kvmm_dev_ops[KVMM_CMD_END - KVMM_CMD_BASE] = {
	KVMM_OP(KVMM_CMD_GET_INFO, kvmm_get_info, struct kvmm_info, __reserved),
	KVMM_OP(KVMM_CMD_GET_STATS, kvmm_get_stats, struct kvmm_stats, alloc_failures),
	KVMM_OP(KVMM_CMD_LIMITS, kvmm_limits, struct kvmm_limits, uid_used),
	KVMM_OP(KVMM_CMD_POOL_CREATE, kvmm_pool_create_cmd, struct kvmm_pool_create, name),
	KVMM_OP(KVMM_CMD_POOL_OPEN, kvmm_pool_open_cmd, struct kvmm_pool_open, name),
	KVMM_OP(KVMM_CMD_POOL_DESTROY, kvmm_pool_destroy_cmd, struct kvmm_pool_destroy, name),
	KVMM_OP(KVMM_CMD_POOL_LIST, kvmm_pool_list_cmd, struct kvmm_pool_list, __reserved),
};

static const struct kvmm_ioctl_op kvmm_pool_ops[KVMM_CMD_END - KVMM_CMD_BASE] = {
	KVMM_OP(KVMM_CMD_POOL_INFO, kvmm_pool_info_cmd, struct kvmm_pool_info, desc),
	KVMM_OP(KVMM_CMD_POOL_SET_STATE, kvmm_pool_set_state_cmd, struct kvmm_pool_set_state,
		changed),
	KVMM_OP(KVMM_CMD_POOL_POPULATE, kvmm_pool_populate_cmd, struct kvmm_pool_populate,
		populated),
	KVMM_OP(KVMM_CMD_POOL_SET_RESIDENCY, kvmm_pool_residency_cmd,
		struct kvmm_pool_residency, pages),
	KVMM_OP(KVMM_CMD_POOL_SET_EVENTFD, kvmm_pool_eventfd_cmd, struct kvmm_pool_eventfd,
		__reserved),
};

static u64 kvmm_ioctl_mask(void)
{
	u64 mask = 0;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(kvmm_dev_ops); i++)
		if (kvmm_dev_ops[i].execute || kvmm_pool_ops[i].execute)
			mask |= KVMM_IOCTL_BIT(KVMM_CMD_BASE + i);
	return mask;
}

static long kvmm_ioctl(struct file *file, unsigned int cmd, unsigned long arg,
		       const struct kvmm_ioctl_op *ops)
{
	union kvmm_cmd_buffer buf;
	const struct kvmm_ioctl_op *op;
	struct kvmm_ucmd ucmd = {};
	unsigned int nr = _IOC_NR(cmd);
	int ret;

	if (cmd != _IO(KVMM_TYPE, nr) || nr < KVMM_CMD_BASE || nr >= KVMM_CMD_END)
		return -ENOTTY;
	op = &ops[nr - KVMM_CMD_BASE];
	if (!op->execute)
		return -ENOTTY;

	ucmd.ubuf = (void __user *)arg;
	ucmd.file = file;
	ucmd.cmd = &buf;
	if (get_user(ucmd.user_size, (u32 __user *)ucmd.ubuf))
		return -EFAULT;
	if (ucmd.user_size < op->min_size)
		return -EINVAL;
	/* bounds the zero check of a newer caller's tail */
	if (ucmd.user_size > PAGE_SIZE)
		return -E2BIG;
	ret = copy_struct_from_user(&buf, op->size, ucmd.ubuf, ucmd.user_size);
	if (ret)
		return ret;
	return op->execute(&ucmd);
}

long kvmm_dev_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	return kvmm_ioctl(file, cmd, arg, kvmm_dev_ops);
}

long kvmm_pool_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	return kvmm_ioctl(file, cmd, arg, kvmm_pool_ops);
}
