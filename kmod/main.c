// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * kvmm.ko - host page pools for LLM KV caches.
 *
 * main.c: module load and unload, and the /dev/kvmm misc device.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>

#include "compat.h"
#include "kvmm_priv.h"

atomic_long_t kvmm_pages_allocated = ATOMIC_LONG_INIT(0);
atomic64_t kvmm_alloc_failures = ATOMIC64_INIT(0);

static unsigned long long limit_bytes = ULLONG_MAX;
module_param(limit_bytes, ullong, 0444);
MODULE_PARM_DESC(limit_bytes,
		 "Bytes all pools may reserve together at load (0: no limit; default: half of RAM); later: /sys/kernel/kvmm/limits/global_bytes");

static unsigned long long limit_uid_bytes;
module_param(limit_uid_bytes, ullong, 0444);
MODULE_PARM_DESC(limit_uid_bytes,
		 "Bytes the pools of one uid may reserve at load (0: no limit); later: /sys/kernel/kvmm/limits/per_uid_bytes");

static unsigned int max_pools = 1024;
module_param(max_pools, uint, 0444);
MODULE_PARM_DESC(max_pools, "Most pools alive at once");

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
	.llseek = KVMM_NO_LLSEEK,
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
	u64 limit = limit_bytes;
	int ret;

	if (limit == ULLONG_MAX)
		limit = (u64)totalram_pages() * PAGE_SIZE / 2;
	kvmm_registry_init(limit, limit_uid_bytes, max_pools);
	ret = kvmm_pool_init();
	if (ret)
		return ret;
	ret = kvmm_pool_fs_init();
	if (ret)
		goto err_pool;
	ret = kvmm_shrinker_init();
	if (ret)
		goto err_fs;
	ret = kvmm_sysfs_init();
	if (ret)
		goto err_shrinker;
	ret = misc_register(&kvmm_misc);
	if (ret)
		goto err_sysfs;
	pr_info("kvmm: loaded, api %u\n", KVMM_API_VERSION);
	return 0;

err_sysfs:
	kvmm_sysfs_exit();
err_shrinker:
	kvmm_shrinker_exit();
	kvmm_cold_exit();
err_fs:
	kvmm_pool_fs_exit();
err_pool:
	kvmm_pool_exit();
	return ret;
}

static void __exit kvmm_exit(void)
{
	long left;

	misc_deregister(&kvmm_misc);
	/* no new scans; then the shrinker's deferred puts finish */
	kvmm_shrinker_exit();
	kvmm_pool_exit();
	/* no fd is open (each pins the module): only persistent pools remain */
	kvmm_registry_exit();
	kvmm_cold_check();
	kvmm_cold_exit();
	kvmm_sysfs_exit();
	kvmm_pool_fs_exit();
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
