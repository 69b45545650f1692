// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * kvmm.ko - host page pools for LLM KV caches.
 *
 * main.c: module load and unload, and the /dev/kvmm misc device.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>

#include "kvmm_priv.h"

atomic_long_t kvmm_pages_allocated = ATOMIC_LONG_INIT(0);

static int kvmm_dev_open(struct inode *inode, struct file *file)
{
	/* misc_open() pointed private_data at the miscdevice; nothing else. */
	return nonseekable_open(inode, file);
}

static const struct file_operations kvmm_dev_fops = {
	.owner = THIS_MODULE,
	.open = kvmm_dev_open,
	.unlocked_ioctl = kvmm_dev_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = no_llseek,
};

static struct miscdevice kvmm_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = KVMM_DEVICE_NAME,
	.fops = &kvmm_dev_fops,
	/* root only by default; docs/kmod.md shows the udev rule for a group */
	.mode = 0600,
};

static int __init kvmm_init(void)
{
	int ret;

	ret = kvmm_sysfs_init();
	if (ret)
		return ret;
	ret = misc_register(&kvmm_misc);
	if (ret) {
		kvmm_sysfs_exit();
		return ret;
	}
	pr_info("kvmm: loaded, api %u\n", KVMM_API_VERSION);
	return 0;
}

static void __exit kvmm_exit(void)
{
	long left;

	misc_deregister(&kvmm_misc);
	kvmm_sysfs_exit();
	left = atomic_long_read(&kvmm_pages_allocated);
	/* The VM tests read this line: a leak must be loud. */
	pr_info("kvmm: unloaded, %ld pages still allocated\n", left);
	WARN_ON(left);
}

module_init(kvmm_init);
module_exit(kvmm_exit);

MODULE_DESCRIPTION("kvmm: host page pools for LLM KV caches");
MODULE_AUTHOR("kvmm developers");
MODULE_LICENSE("Dual MIT/GPL");
