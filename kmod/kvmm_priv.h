/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * kvmm_priv.h - what the files of kvmm.ko share.
 *
 * Lock order: kvmm_registry.lock, a pool's lock, kvmm_registry.list_lock.
 * No lock is held across copy_to_user()/copy_from_user(): the user buffer
 * may lie in a pool mapping, whose fault handler takes the pool lock.
 * The shrinker runs inside other tasks' allocations, so it must not wait
 * for a lock that is held across an allocation: it never takes
 * kvmm_registry.lock (which is), walks the pools under list_lock (a
 * spinlock) and waits only for pool locks, under which nothing allocates.
 */
#ifndef _KVMM_PRIV_H
#define _KVMM_PRIV_H

#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/workqueue.h>

#include "uapi/kvmm.h"

struct eventfd_ctx;
struct mem_cgroup;
struct kvmm_cold_item;
struct kvmm_pool_kobj;

/*
 * Pages the module holds, in PAGE_SIZE units.  Must read 0 once every pool
 * is gone; kvmm_exit() warns when it does not.
 */
extern atomic_long_t kvmm_pages_allocated;
extern atomic64_t kvmm_alloc_failures;

/* shrinker.c: what reclaim did, for sysfs and KVMM_IOC_GET_STATS */
struct kvmm_reclaim_stats {
	atomic64_t scans;
	atomic64_t scanned;
	atomic64_t reclaimed;	/* PAGE_SIZE pages */
	atomic64_t busy;
};

extern struct kvmm_reclaim_stats kvmm_reclaim;

/**
 * struct kvmm_pool - a pool of pages on one NUMA node, shared through fds
 * @ref: one per open file, one for the registry while a persistent pool is
 *	linked, one while the shrinker works on it; the last put frees the
 *	pool
 * @put_work: the shrinker's last put, deferred (it needs the registry lock)
 * @list: in kvmm_registry.pools while alive
 * @linked: has its name in the registry (openable, has a sysfs dir)
 *
 * Fixed at creation: @name, @id, @bytes, @nr_pages, @order, @nid, @flags,
 * @mode, @uid, @gid, @memcg, @inode.
 *
 * @lock protects @pages, @state, @nr_state, @nr_present, @cold_map,
 * @nr_cold_present, @reclaim_cursor, @reclaimed, @gen, @status, @evfd and
 * the counts in @cold_items; the counters are also read without it
 * (READ_ONCE) for statistics and by the shrinker.
 */
struct kvmm_pool {
	struct kref ref;
	struct work_struct put_work;
	struct list_head list;
	bool linked;

	char name[KVMM_NAME_MAX];
	u64 id;
	u64 bytes;
	unsigned long nr_pages;
	unsigned int order;		/* pool page = 2^order PAGE_SIZE pages */
	int nid;			/* NUMA_NO_NODE: any */
	u32 flags;			/* KVMM_POOL_PERSISTENT */
	umode_t mode;
	kuid_t uid;
	kgid_t gid;
	struct mem_cgroup *memcg;	/* charged for the pages */
	struct inode *inode;		/* own address_space: unmap by range */
	struct kvmm_pool_kobj *kobj;	/* sysfs dir while linked */

	atomic_t attached;		/* open files */
	atomic_t mappings;		/* VMAs */

	struct mutex lock;		/* see above */
	struct page **pages;		/* first PAGE_SIZE page of each, or NULL */
	u8 *state;			/* KVMM_PAGE_* */
	unsigned long nr_state[KVMM_PAGE_STATES];
	unsigned long nr_present;
	unsigned long *cold_map;	/* COLD pages with memory: reclaimable */
	unsigned long nr_cold_present;
	unsigned long reclaim_cursor;
	u64 reclaimed;
	u64 residency[KVMM_TIER_COUNT];

	struct kvmm_pool_status *status;	/* vmalloc_user(), mapped read-only */
	size_t status_bytes;
	u32 *gen;				/* in the status area */
	struct eventfd_ctx *evfd;

	/* shrinker.c: per node, what the memcg-aware shrinker finds */
	struct kvmm_cold_item **cold_items;
	void *cold_anchor;
};

struct kvmm_pool_params {
	const char *name;
	u64 bytes;
	int nid;
	unsigned int page_shift;
	u32 flags;
	umode_t mode;
};

/* ioctl.c */
long kvmm_dev_ioctl(struct file *file, unsigned int cmd, unsigned long arg);
long kvmm_pool_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* pool.c: the object, its pages and their states */
int kvmm_pool_init(void);
void kvmm_pool_exit(void);
struct kvmm_pool *kvmm_pool_alloc(const struct kvmm_pool_params *p);
void kvmm_pool_get(struct kvmm_pool *pool);
void kvmm_pool_put(struct kvmm_pool *pool);
void kvmm_pool_put_deferred(struct kvmm_pool *pool);
int kvmm_pool_set_state(struct kvmm_pool *pool, const struct kvmm_page_range *r,
			unsigned int nr, unsigned int state, u64 *changed);
int kvmm_pool_populate(struct kvmm_pool *pool, u64 first, u64 count, u64 *populated);
struct page *kvmm_pool_get_page(struct kvmm_pool *pool, unsigned long idx);
void kvmm_pool_describe(struct kvmm_pool *pool, struct kvmm_pool_desc *d);
unsigned long kvmm_pool_reclaim(struct kvmm_pool *pool, int nid, unsigned long nr,
				unsigned long *scanned, unsigned long *busy);
int kvmm_pool_set_eventfd(struct kvmm_pool *pool, int fd);
int kvmm_pool_permission(const struct kvmm_pool *pool, int want);

/* pool_file.c: pool fds, mmap and faults */
int kvmm_pool_fs_init(void);
void kvmm_pool_fs_exit(void);
struct inode *kvmm_pool_inode(void);
int kvmm_pool_install_fd(struct kvmm_pool *pool, int flags);
struct kvmm_pool *kvmm_pool_from_file(struct file *file);

/* registry.c: names, limits, the list of pools */
struct kvmm_registry {
	struct mutex lock;		/* everything here */
	spinlock_t list_lock;		/* also taken to change pools */
	struct list_head pools;		/* every pool alive, by id */
	struct list_head users;		/* struct kvmm_user with bytes > 0 */
	unsigned int nr_pools;
	u64 bytes;			/* reserved by all alive pools */
	u64 next_id;
	u64 limit_bytes;		/* 0: no limit */
	u64 limit_uid_bytes;		/* 0: no limit */
	unsigned int max_pools;
};

extern struct kvmm_registry kvmm_registry;

void kvmm_registry_init(u64 limit_bytes, u64 limit_uid_bytes, unsigned int max_pools);
void kvmm_registry_exit(void);
int kvmm_registry_precheck(u64 bytes);
int kvmm_registry_add(struct kvmm_pool *pool);
void kvmm_registry_unlink(struct kvmm_pool *pool);
int kvmm_registry_destroy(const char *name);
void kvmm_registry_release(struct kvmm_pool *pool);
struct kvmm_pool *kvmm_registry_find(const char *name);
struct kvmm_pool *kvmm_registry_next_cold(u64 *after_id, int nid);
u64 kvmm_registry_uid_bytes(kuid_t uid);

/* shrinker.c: the NUMA- and memcg-aware shrinker and its debugfs trigger */
int kvmm_shrinker_init(void);
void kvmm_shrinker_exit(void);
void kvmm_cold_exit(void);
void kvmm_cold_check(void);
int kvmm_cold_pool_init(struct kvmm_pool *pool);
void kvmm_cold_pool_exit(struct kvmm_pool *pool);
void kvmm_cold_add(struct kvmm_pool *pool, int nid, long pages);

/* sysfs.c: /sys/kernel/kvmm */
int kvmm_sysfs_init(void);
void kvmm_sysfs_exit(void);
int kvmm_sysfs_add_pool(struct kvmm_pool *pool);
void kvmm_sysfs_del_pool(struct kvmm_pool *pool);

#endif /* _KVMM_PRIV_H */
