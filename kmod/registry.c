// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * registry.c - every pool on the host: names, limits and per-uid charges.
 *
 * A pool reserves its whole size when it is created: the global limit and
 * the limit per uid are checked against the sum of the sizes of the pools
 * alive (so a create over a limit fails before anything is allocated), and
 * the size stays charged to the creator's uid until the pool is freed.
 */
#include <linux/cred.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "kvmm_priv.h"

struct kvmm_user {
	struct list_head list;
	kuid_t uid;
	u64 bytes;
};

struct kvmm_registry kvmm_registry = {
	.lock = __MUTEX_INITIALIZER(kvmm_registry.lock),
	.list_lock = __SPIN_LOCK_UNLOCKED(kvmm_registry.list_lock),
	.pools = LIST_HEAD_INIT(kvmm_registry.pools),
	.users = LIST_HEAD_INIT(kvmm_registry.users),
};

void kvmm_registry_init(u64 limit_bytes, u64 limit_uid_bytes, unsigned int max_pools)
{
	kvmm_registry.limit_bytes = limit_bytes;
	kvmm_registry.limit_uid_bytes = limit_uid_bytes;
	kvmm_registry.max_pools = max_pools;
}

static struct kvmm_user *kvmm_user_find(kuid_t uid)
{
	struct kvmm_user *u;

	lockdep_assert_held(&kvmm_registry.lock);
	list_for_each_entry(u, &kvmm_registry.users, list)
		if (uid_eq(u->uid, uid))
			return u;
	return NULL;
}

u64 kvmm_registry_uid_bytes(kuid_t uid)
{
	struct kvmm_user *u = kvmm_user_find(uid);

	return u ? u->bytes : 0;
}

static struct kvmm_pool *kvmm_find_locked(const char *name)
{
	struct kvmm_pool *pool;

	list_for_each_entry(pool, &kvmm_registry.pools, list)
		if (pool->linked && !strcmp(pool->name, name))
			return pool;
	return NULL;
}

/*
 * Would a pool of bytes for the caller fit the limits?  Checked again, under
 * the same lock, when the pool is added; this first check keeps a create
 * that cannot succeed from allocating the pool's metadata at all.
 */
int kvmm_registry_precheck(u64 bytes)
{
	struct kvmm_registry *r = &kvmm_registry;
	struct kvmm_user *u;
	int ret = 0;

	mutex_lock(&r->lock);
	u = kvmm_user_find(current_fsuid());
	if (r->nr_pools >= r->max_pools)
		ret = -ENFILE;
	else if (r->limit_bytes && r->bytes + bytes > r->limit_bytes)
		ret = -ENOSPC;
	else if (r->limit_uid_bytes && (u ? u->bytes : 0) + bytes > r->limit_uid_bytes)
		ret = -EDQUOT;
	mutex_unlock(&r->lock);
	return ret;
}

/*
 * Give pool its name: checks the name, the pool count and the limits,
 * charges the creator, adds the sysfs dir; a persistent pool gets the
 * registry's reference.  Nothing is left behind on failure.
 */
int kvmm_registry_add(struct kvmm_pool *pool)
{
	struct kvmm_registry *r = &kvmm_registry;
	struct kvmm_user *u, *nu;
	int ret;

	nu = kzalloc(sizeof(*nu), GFP_KERNEL);
	if (!nu)
		return -ENOMEM;
	mutex_lock(&r->lock);
	if (kvmm_find_locked(pool->name)) {
		ret = -EEXIST;
		goto out;
	}
	if (r->nr_pools >= r->max_pools) {
		ret = -ENFILE;
		goto out;
	}
	if (r->limit_bytes && r->bytes + pool->bytes > r->limit_bytes) {
		ret = -ENOSPC;
		goto out;
	}
	u = kvmm_user_find(pool->uid);
	if (r->limit_uid_bytes && (u ? u->bytes : 0) + pool->bytes > r->limit_uid_bytes) {
		ret = -EDQUOT;
		goto out;
	}
	pool->linked = true;
	ret = kvmm_sysfs_add_pool(pool);
	if (ret) {
		pool->linked = false;
		goto out;
	}
	if (!u) {
		u = nu;
		nu = NULL;
		u->uid = pool->uid;
		list_add(&u->list, &r->users);
	}
	u->bytes += pool->bytes;
	r->bytes += pool->bytes;
	r->nr_pools++;
	pool->id = ++r->next_id;
	spin_lock(&r->list_lock);
	list_add_tail(&pool->list, &r->pools);
	spin_unlock(&r->list_lock);
	if (pool->flags & KVMM_POOL_PERSISTENT)
		kvmm_pool_get(pool);
	ret = 0;
out:
	mutex_unlock(&r->lock);
	kfree(nu);
	return ret;
}

/*
 * Take the name away (registry lock held).  The caller drops the
 * registry's reference of a persistent pool after unlocking.
 */
static void kvmm_unlink_locked(struct kvmm_pool *pool)
{
	lockdep_assert_held(&kvmm_registry.lock);
	/* the sysfs files read pool fields: they go before the pool can */
	kvmm_sysfs_del_pool(pool);
	pool->linked = false;
}

/* The pool by name, with a reference, or NULL. */
struct kvmm_pool *kvmm_registry_find(const char *name)
{
	struct kvmm_pool *pool;

	mutex_lock(&kvmm_registry.lock);
	pool = kvmm_find_locked(name);
	/* a linked pool has a reference: its last put would need our lock */
	if (pool)
		kvmm_pool_get(pool);
	mutex_unlock(&kvmm_registry.lock);
	return pool;
}

/* Undo kvmm_registry_add() when creating the pool fails later on. */
void kvmm_registry_unlink(struct kvmm_pool *pool)
{
	bool put = false;

	mutex_lock(&kvmm_registry.lock);
	if (pool->linked) {
		kvmm_unlink_locked(pool);
		put = pool->flags & KVMM_POOL_PERSISTENT;
	}
	mutex_unlock(&kvmm_registry.lock);
	if (put)
		kvmm_pool_put(pool);
}

/* KVMM_IOC_POOL_DESTROY: -ENOENT, -EACCES or 0. */
int kvmm_registry_destroy(const char *name)
{
	struct kvmm_pool *pool;
	bool put;
	int ret;

	mutex_lock(&kvmm_registry.lock);
	pool = kvmm_find_locked(name);
	if (!pool) {
		mutex_unlock(&kvmm_registry.lock);
		return -ENOENT;
	}
	ret = uid_eq(current_fsuid(), pool->uid) ? 0 : kvmm_pool_permission(pool, MAY_WRITE);
	if (ret) {
		mutex_unlock(&kvmm_registry.lock);
		return ret;
	}
	kvmm_unlink_locked(pool);
	put = pool->flags & KVMM_POOL_PERSISTENT;
	mutex_unlock(&kvmm_registry.lock);
	if (put)
		kvmm_pool_put(pool);
	return 0;
}

/*
 * The pool's last reference went (kvmm_registry.lock held by
 * kref_put_mutex()): forget it and release its charge.  Drops the lock.
 */
void kvmm_registry_release(struct kvmm_pool *pool)
{
	struct kvmm_registry *r = &kvmm_registry;
	struct kvmm_user *u;

	if (pool->linked)
		kvmm_unlink_locked(pool);
	if (!list_empty(&pool->list)) {
		spin_lock(&r->list_lock);
		list_del_init(&pool->list);
		spin_unlock(&r->list_lock);
		r->nr_pools--;
		r->bytes -= pool->bytes;
		u = kvmm_user_find(pool->uid);
		if (!WARN_ON(!u)) {
			u->bytes -= pool->bytes;
			if (!u->bytes) {
				list_del(&u->list);
				kfree(u);
			}
		}
	}
	mutex_unlock(&r->lock);
}

/*
 * For the shrinker: the first pool after id after_id (the list is in id
 * order) that may have COLD pages on node nid, with a reference (drop it
 * with kvmm_pool_put_deferred()), or NULL.  Takes only list_lock.
 */
struct kvmm_pool *kvmm_registry_next_cold(u64 *after_id, int nid)
{
	struct kvmm_pool *pool, *found = NULL;

	spin_lock(&kvmm_registry.list_lock);
	list_for_each_entry(pool, &kvmm_registry.pools, list) {
		if (pool->id <= *after_id || !READ_ONCE(pool->nr_cold_present))
			continue;
		if (pool->nid != NUMA_NO_NODE && pool->nid != nid)
			continue;
		/* zero: on its way out, kvmm_registry_release() waits for us */
		if (kref_get_unless_zero(&pool->ref)) {
			found = pool;
			*after_id = pool->id;
			break;
		}
	}
	spin_unlock(&kvmm_registry.list_lock);
	return found;
}

/* Module unload: no fd is open, only persistent pools are left. */
void kvmm_registry_exit(void)
{
	struct kvmm_pool *pool;

	for (;;) {
		mutex_lock(&kvmm_registry.lock);
		pool = list_first_entry_or_null(&kvmm_registry.pools, struct kvmm_pool, list);
		if (!pool) {
			mutex_unlock(&kvmm_registry.lock);
			break;
		}
		/* only persistent pools can be alive without an fd */
		if (WARN_ON(!pool->linked || !(pool->flags & KVMM_POOL_PERSISTENT))) {
			spin_lock(&kvmm_registry.list_lock);
			list_del_init(&pool->list);
			spin_unlock(&kvmm_registry.list_lock);
			mutex_unlock(&kvmm_registry.lock);
			continue;
		}
		kvmm_unlink_locked(pool);
		mutex_unlock(&kvmm_registry.lock);
		kvmm_pool_put(pool);
	}
	WARN_ON(!list_empty(&kvmm_registry.users));
}
