// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * sysfs.c - /sys/kernel/kvmm: one value per file
 * (docs/ABI/testing/sysfs-kernel-kvmm describes each).
 *
 *   version pages_allocated nr_pools bytes_reserved pages_hot pages_cold
 *   pages_free alloc_failures
 *   limits/global_bytes limits/per_uid_bytes (root may write) limits/max_pools
 *   reclaim/scans reclaim/scanned reclaim/reclaimed_pages reclaim/busy
 *   pools/<name>/...   one directory per pool that has a name
 *
 * A pool's directory exists exactly while the pool is linked in the
 * registry and goes (draining readers) before the pool can be freed, so its
 * show functions read the pool without taking a reference.  They read
 * without locks too: each file is one number, READ_ONCE is enough.
 */
#include <linux/capability.h>
#include <linux/kobject.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include <linux/user_namespace.h>

#include "kvmm_priv.h"

static struct kobject *kvmm_kobj;
static struct kobject *kvmm_pools_kobj;

/* ---- /sys/kernel/kvmm --------------------------------------------------- */

static ssize_t version_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", KVMM_API_VERSION);
}

static ssize_t pages_allocated_show(struct kobject *kobj, struct kobj_attribute *attr,
				    char *buf)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(&kvmm_pages_allocated));
}

static ssize_t alloc_failures_show(struct kobject *kobj, struct kobj_attribute *attr,
				   char *buf)
{
	return sysfs_emit(buf, "%lld\n", atomic64_read(&kvmm_alloc_failures));
}

static ssize_t nr_pools_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(kvmm_registry.nr_pools));
}

static ssize_t bytes_reserved_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", READ_ONCE(kvmm_registry.bytes));
}

static u64 kvmm_sum_state(unsigned int state)
{
	struct kvmm_pool *pool;
	u64 n = 0;

	mutex_lock(&kvmm_registry.lock);
	list_for_each_entry(pool, &kvmm_registry.pools, list)
		n += READ_ONCE(pool->nr_state[state]);
	mutex_unlock(&kvmm_registry.lock);
	return n;
}

static ssize_t pages_hot_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", kvmm_sum_state(KVMM_PAGE_HOT));
}

static ssize_t pages_cold_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", kvmm_sum_state(KVMM_PAGE_COLD));
}

static ssize_t pages_free_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", kvmm_sum_state(KVMM_PAGE_FREE));
}

static struct kobj_attribute version_attr = __ATTR_RO(version);
static struct kobj_attribute pages_allocated_attr = __ATTR_RO(pages_allocated);
static struct kobj_attribute alloc_failures_attr = __ATTR_RO(alloc_failures);
static struct kobj_attribute nr_pools_attr = __ATTR_RO(nr_pools);
static struct kobj_attribute bytes_reserved_attr = __ATTR_RO(bytes_reserved);
static struct kobj_attribute pages_hot_attr = __ATTR_RO(pages_hot);
static struct kobj_attribute pages_cold_attr = __ATTR_RO(pages_cold);
static struct kobj_attribute pages_free_attr = __ATTR_RO(pages_free);

static struct attribute *kvmm_attrs[] = {
	&version_attr.attr,
	&pages_allocated_attr.attr,
	&alloc_failures_attr.attr,
	&nr_pools_attr.attr,
	&bytes_reserved_attr.attr,
	&pages_hot_attr.attr,
	&pages_cold_attr.attr,
	&pages_free_attr.attr,
	NULL,
};

static const struct attribute_group kvmm_group = {
	.attrs = kvmm_attrs,
};

/* ---- /sys/kernel/kvmm/limits -------------------------------------------- */

static ssize_t kvmm_limit_store(u64 *limit, const char *buf, size_t count)
{
	u64 v;
	int ret;

	/* the file mode says root; a container's root is not enough */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	ret = kstrtou64(buf, 0, &v);
	if (ret)
		return ret;
	mutex_lock(&kvmm_registry.lock);
	*limit = v;
	mutex_unlock(&kvmm_registry.lock);
	return count;
}

static ssize_t global_bytes_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", READ_ONCE(kvmm_registry.limit_bytes));
}

static ssize_t global_bytes_store(struct kobject *kobj, struct kobj_attribute *attr,
				  const char *buf, size_t count)
{
	return kvmm_limit_store(&kvmm_registry.limit_bytes, buf, count);
}

static ssize_t per_uid_bytes_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", READ_ONCE(kvmm_registry.limit_uid_bytes));
}

static ssize_t per_uid_bytes_store(struct kobject *kobj, struct kobj_attribute *attr,
				   const char *buf, size_t count)
{
	return kvmm_limit_store(&kvmm_registry.limit_uid_bytes, buf, count);
}

static ssize_t max_pools_show(struct kobject *kobj, struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", kvmm_registry.max_pools);
}

static struct kobj_attribute global_bytes_attr = __ATTR_RW(global_bytes);
static struct kobj_attribute per_uid_bytes_attr = __ATTR_RW(per_uid_bytes);
static struct kobj_attribute max_pools_attr = __ATTR_RO(max_pools);

static struct attribute *kvmm_limits_attrs[] = {
	&global_bytes_attr.attr,
	&per_uid_bytes_attr.attr,
	&max_pools_attr.attr,
	NULL,
};

static const struct attribute_group kvmm_limits_group = {
	.name = "limits",
	.attrs = kvmm_limits_attrs,
};

/* ---- /sys/kernel/kvmm/reclaim ------------------------------------------- */

#define KVMM_RECLAIM_ATTR(_name, _field)					\
static ssize_t reclaim_##_name##_show(struct kobject *kobj,			\
				      struct kobj_attribute *attr, char *buf)	\
{										\
	return sysfs_emit(buf, "%lld\n", atomic64_read(&kvmm_reclaim._field));	\
}										\
static struct kobj_attribute reclaim_##_name##_attr =				\
	__ATTR(_name, 0444, reclaim_##_name##_show, NULL)

KVMM_RECLAIM_ATTR(scans, scans);
KVMM_RECLAIM_ATTR(scanned, scanned);
KVMM_RECLAIM_ATTR(reclaimed_pages, reclaimed);
KVMM_RECLAIM_ATTR(busy, busy);

static struct attribute *kvmm_reclaim_attrs[] = {
	&reclaim_scans_attr.attr,
	&reclaim_scanned_attr.attr,
	&reclaim_reclaimed_pages_attr.attr,
	&reclaim_busy_attr.attr,
	NULL,
};

static const struct attribute_group kvmm_reclaim_group = {
	.name = "reclaim",
	.attrs = kvmm_reclaim_attrs,
};

static const struct attribute_group *kvmm_groups[] = {
	&kvmm_group,
	&kvmm_limits_group,
	&kvmm_reclaim_group,
	NULL,
};

/* ---- /sys/kernel/kvmm/pools/<name> -------------------------------------- */

struct kvmm_pool_kobj {
	struct kobject kobj;
	struct kvmm_pool *pool;
};

static struct kvmm_pool *kvmm_kobj_pool(struct kobject *kobj)
{
	return container_of(kobj, struct kvmm_pool_kobj, kobj)->pool;
}

#define KVMM_POOL_ATTR(_name, _fmt, _expr)					\
static ssize_t pool_##_name##_show(struct kobject *kobj,			\
				   struct kobj_attribute *attr, char *buf)	\
{										\
	struct kvmm_pool *pool = kvmm_kobj_pool(kobj);				\
										\
	return sysfs_emit(buf, _fmt "\n", _expr);				\
}										\
static struct kobj_attribute pool_##_name##_attr =				\
	__ATTR(_name, 0444, pool_##_name##_show, NULL)

KVMM_POOL_ATTR(id, "%llu", pool->id);
KVMM_POOL_ATTR(size, "%llu", pool->bytes);
KVMM_POOL_ATTR(node, "%d", pool->nid == NUMA_NO_NODE ? KVMM_NODE_ANY : pool->nid);
KVMM_POOL_ATTR(page_size, "%lu", PAGE_SIZE << pool->order);
KVMM_POOL_ATTR(owner, "%u", from_kuid_munged(&init_user_ns, pool->uid));
KVMM_POOL_ATTR(group, "%u", from_kgid_munged(&init_user_ns, pool->gid));
KVMM_POOL_ATTR(mode, "%04o", pool->mode);
KVMM_POOL_ATTR(persistent, "%d", !!(pool->flags & KVMM_POOL_PERSISTENT));
KVMM_POOL_ATTR(attached, "%d", atomic_read(&pool->attached));
KVMM_POOL_ATTR(mappings, "%d", atomic_read(&pool->mappings));
KVMM_POOL_ATTR(pages, "%lu", pool->nr_pages);
KVMM_POOL_ATTR(pages_present, "%lu", READ_ONCE(pool->nr_present));
KVMM_POOL_ATTR(pages_hot, "%lu", READ_ONCE(pool->nr_state[KVMM_PAGE_HOT]));
KVMM_POOL_ATTR(pages_cold, "%lu", READ_ONCE(pool->nr_state[KVMM_PAGE_COLD]));
KVMM_POOL_ATTR(pages_free, "%lu", READ_ONCE(pool->nr_state[KVMM_PAGE_FREE]));
KVMM_POOL_ATTR(pages_reclaimed, "%llu", READ_ONCE(pool->reclaimed));
KVMM_POOL_ATTR(residency_gpu, "%llu", READ_ONCE(pool->residency[KVMM_TIER_GPU]));
KVMM_POOL_ATTR(residency_host, "%llu", READ_ONCE(pool->residency[KVMM_TIER_HOST]));
KVMM_POOL_ATTR(residency_disk, "%llu", READ_ONCE(pool->residency[KVMM_TIER_DISK]));
KVMM_POOL_ATTR(residency_inflight, "%llu", READ_ONCE(pool->residency[KVMM_TIER_INFLIGHT]));

static struct attribute *kvmm_pool_attrs[] = {
	&pool_id_attr.attr,
	&pool_size_attr.attr,
	&pool_node_attr.attr,
	&pool_page_size_attr.attr,
	&pool_owner_attr.attr,
	&pool_group_attr.attr,
	&pool_mode_attr.attr,
	&pool_persistent_attr.attr,
	&pool_attached_attr.attr,
	&pool_mappings_attr.attr,
	&pool_pages_attr.attr,
	&pool_pages_present_attr.attr,
	&pool_pages_hot_attr.attr,
	&pool_pages_cold_attr.attr,
	&pool_pages_free_attr.attr,
	&pool_pages_reclaimed_attr.attr,
	&pool_residency_gpu_attr.attr,
	&pool_residency_host_attr.attr,
	&pool_residency_disk_attr.attr,
	&pool_residency_inflight_attr.attr,
	NULL,
};
ATTRIBUTE_GROUPS(kvmm_pool);

static void kvmm_pool_kobj_release(struct kobject *kobj)
{
	kfree(container_of(kobj, struct kvmm_pool_kobj, kobj));
}

static const struct kobj_type kvmm_pool_ktype = {
	.release = kvmm_pool_kobj_release,
	.sysfs_ops = &kobj_sysfs_ops,
	.default_groups = kvmm_pool_groups,
};

/* Registry lock held. */
int kvmm_sysfs_add_pool(struct kvmm_pool *pool)
{
	struct kvmm_pool_kobj *pk;
	int ret;

	pk = kzalloc(sizeof(*pk), GFP_KERNEL);
	if (!pk)
		return -ENOMEM;
	pk->pool = pool;
	ret = kobject_init_and_add(&pk->kobj, &kvmm_pool_ktype, kvmm_pools_kobj, "%s", pool->name);
	if (ret) {
		kobject_put(&pk->kobj);
		return ret;
	}
	pool->kobj = pk;
	return 0;
}

/* Registry lock held: the name cannot be reused before the dir is gone. */
void kvmm_sysfs_del_pool(struct kvmm_pool *pool)
{
	struct kvmm_pool_kobj *pk = pool->kobj;

	if (!pk)
		return;
	pool->kobj = NULL;
	kobject_del(&pk->kobj);
	kobject_put(&pk->kobj);
}

int kvmm_sysfs_init(void)
{
	int ret;

	kvmm_kobj = kobject_create_and_add("kvmm", kernel_kobj);
	if (!kvmm_kobj)
		return -ENOMEM;
	ret = sysfs_create_groups(kvmm_kobj, kvmm_groups);
	if (ret)
		goto err;
	kvmm_pools_kobj = kobject_create_and_add("pools", kvmm_kobj);
	if (!kvmm_pools_kobj) {
		ret = -ENOMEM;
		goto err;
	}
	return 0;
err:
	kobject_put(kvmm_kobj);
	kvmm_kobj = NULL;
	return ret;
}

void kvmm_sysfs_exit(void)
{
	kobject_put(kvmm_pools_kobj);
	kvmm_pools_kobj = NULL;
	/* removes the groups with the directory */
	kobject_put(kvmm_kobj);
	kvmm_kobj = NULL;
}
