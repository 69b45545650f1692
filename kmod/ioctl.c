// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * ioctl.c - decoding of kvmm's commands (the iommufd pattern).
 *
 * Every command struct starts with __u32 size, __u32 flags.  The table below
 * gives each command its struct and the end of its last field in API
 * version 1 (min_size); kvmm_ioctl() checks the size, copies the struct with
 * copy_struct_from_user() (zero-filling what an older caller did not send,
 * rejecting non-zero bytes a newer caller sent that we do not know) and
 * calls the handler, which checks flags and reserved fields and fills the
 * output fields; kvmm_respond() copies back at most size bytes.
 */
#include <linux/kernel.h>
#include <linux/nodemask.h>
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
};

struct kvmm_ioctl_op {
	unsigned int size;
	unsigned int min_size;
	int (*execute)(struct kvmm_ucmd *ucmd);
};

static int kvmm_respond(struct kvmm_ucmd *ucmd, size_t cmd_len)
{
	if (copy_to_user(ucmd->ubuf, ucmd->cmd, min_t(size_t, ucmd->user_size, cmd_len)))
		return -EFAULT;
	return 0;
}

static u64 kvmm_ioctl_mask(void);

static int kvmm_get_info(struct kvmm_ucmd *ucmd)
{
	struct kvmm_info *cmd = ucmd->cmd;

	if (cmd->flags || cmd->__reserved)
		return -EINVAL;
	cmd->api_version = KVMM_API_VERSION;
	cmd->nr_node_ids = nr_node_ids;
	cmd->features = 0;
	cmd->ioctls = kvmm_ioctl_mask();
	cmd->page_sizes = 0;
	return kvmm_respond(ucmd, sizeof(*cmd));
}

#define KVMM_OP(_cmd, _fn, _struct, _last)                                    \
	[(_cmd) - KVMM_CMD_BASE] = {                                          \
		.size = sizeof(_struct),                                      \
		.min_size = offsetofend(_struct, _last),                      \
		.execute = _fn,                                               \
	}

static const struct kvmm_ioctl_op kvmm_dev_ops[KVMM_CMD_END - KVMM_CMD_BASE] = {
	KVMM_OP(KVMM_CMD_GET_INFO, kvmm_get_info, struct kvmm_info, __reserved),
};

static u64 kvmm_ioctl_mask(void)
{
	u64 mask = 0;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(kvmm_dev_ops); i++)
		if (kvmm_dev_ops[i].execute)
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
	/* Bounds the zero check of a newer caller's tail. */
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
