// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * sysfs.c - /sys/kernel/kvmm: one value per file
 * (docs/ABI/testing/sysfs-kernel-kvmm).
 */
#include <linux/kobject.h>
#include <linux/sysfs.h>

#include "kvmm_priv.h"

static struct kobject *kvmm_kobj;

static ssize_t version_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", KVMM_API_VERSION);
}

static struct kobj_attribute version_attr = __ATTR_RO(version);

static ssize_t pages_allocated_show(struct kobject *kobj, struct kobj_attribute *attr,
				    char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&kvmm_pages_allocated));
}

static struct kobj_attribute pages_allocated_attr = __ATTR_RO(pages_allocated);

static struct attribute *kvmm_attrs[] = {
	&version_attr.attr,
	&pages_allocated_attr.attr,
	NULL,
};

static const struct attribute_group kvmm_group = {
	.attrs = kvmm_attrs,
};

int kvmm_sysfs_init(void)
{
	int ret;

	kvmm_kobj = kobject_create_and_add("kvmm", kernel_kobj);
	if (!kvmm_kobj)
		return -ENOMEM;
	ret = sysfs_create_group(kvmm_kobj, &kvmm_group);
	if (ret) {
		kobject_put(kvmm_kobj);
		kvmm_kobj = NULL;
	}
	return ret;
}

void kvmm_sysfs_exit(void)
{
	/* Removes the group with the directory. */
	kobject_put(kvmm_kobj);
	kvmm_kobj = NULL;
}
