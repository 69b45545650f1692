// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * shrinker.c - cooperation with memory reclaim.
 *
 * One shrinker for every pool, NUMA- and memcg-aware: its objects are the
 * PAGE_SIZE pages of COLD pool pages that have memory, and a scan for node
 * N and memory cgroup M drops such pages that lie on N of pools charged to
 * M (kvmm_pool_reclaim()).  HOT and FREE pages are never touched.  The
 * owner learns of each drop from the page's generation in the status area
 * (and an eventfd if it set one).
 *
 * Which pools a scan for (N, M) looks at is kept in a memcg-aware list_lru,
 * as the kernel's dentry and inode caches do: each pool has one item per
 * node with memory, and the item is on the lru while the pool has cold
 * pages on that node.  A list_lru files an item under the node of the
 * item's own memory and the memcg the item is charged to, so an item is
 * allocated on its node (__GFP_THISNODE) and charged to the pool's memcg
 * (set_active_memcg(), SLAB_ACCOUNT); its lists exist because the pool
 * first allocates an anchor object with kmem_cache_alloc_lru().  The lru
 * also sets the bit that makes memcg reclaim call the shrinker for M at
 * all, and moves the items to the parent when M is removed.  So a
 * container at its memory.max drops its own cold KV before anything is
 * OOM-killed, and never another container's.
 *
 * The scan runs inside other tasks' allocations: it takes references on
 * the pools it finds under the lru's spinlock, and waits only for pool
 * locks, which nobody holds across an allocation (see kvmm_priv.h).
 * Waiting matters: with two reclaimers (kswapd and a task in direct
 * reclaim) a trylock makes one of them see no progress, and the allocator
 * then OOM-kills while cold pages are left.
 *
 * debugfs kvmm/shrink runs a count and scan on demand (the TTM
 * page_pool_shrink idea), for tests: write "NODE NR_PAGES" (NODE -1: every
 * node), read back what the last run did.  It walks every pool on the node
 * whatever its memcg, as global reclaim does over all memcgs.
 */
#include <linux/debugfs.h>
#include <linux/kernel.h>
#include <linux/list_lru.h>
#include <linux/memcontrol.h>
#include <linux/nodemask.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "compat.h"
#include "kvmm_priv.h"

struct kvmm_reclaim_stats kvmm_reclaim;

/**
 * struct kvmm_cold_item - a pool's cold pages on one node, for the lru
 * @lru: in kvmm_cold_lru while @pages > 0
 * @pool: the pool (the item lives as long as it)
 * @pages: PAGE_SIZE pages of COLD pool pages with memory on @nid (pool lock)
 * @nid: the node; also the node of this item's memory
 */
struct kvmm_cold_item {
	struct list_head lru;
	struct kvmm_pool *pool;
	long pages;
	int nid;
};

/* PAGE_SIZE pages of COLD pool pages with memory, per node */
static atomic_long_t kvmm_cold[MAX_NUMNODES];
static struct shrinker *kvmm_shrinker;
static struct list_lru kvmm_cold_lru;
static struct kmem_cache *kvmm_cold_cache;
/* 6.1 registers the shrinker before the lru can be set up: see compat.h */
static bool kvmm_lru_ready;
static struct dentry *kvmm_debugfs;

static DEFINE_MUTEX(kvmm_debug_lock);
static struct {
	int nid;
	unsigned long count;
	unsigned long freed;
} kvmm_debug_last = { .nid = NUMA_NO_NODE };

/*
 * A pool's items: one per node with memory, on that node and charged to
 * the pool's memcg.  Allocated when the pool is (nothing may be allocated
 * under the pool lock, where pages turn cold).  -ENOMEM also when a node
 * has not even a slab page left for an item.
 */
int kvmm_cold_pool_init(struct kvmm_pool *pool)
{
	struct mem_cgroup *old;
	int nid, ret = 0;

	pool->cold_items = kcalloc(nr_node_ids, sizeof(*pool->cold_items), GFP_KERNEL_ACCOUNT);
	if (!pool->cold_items)
		return -ENOMEM;
	old = set_active_memcg(pool->memcg);
	/* gives the memcg (and its parents) their lists in kvmm_cold_lru */
	pool->cold_anchor = kmem_cache_alloc_lru(kvmm_cold_cache, &kvmm_cold_lru, GFP_KERNEL);
	if (!pool->cold_anchor)
		ret = -ENOMEM;
	for_each_node_state(nid, N_MEMORY) {
		struct kvmm_cold_item *item;

		if (ret || (pool->nid != NUMA_NO_NODE && nid != pool->nid))
			continue;
		item = kmem_cache_alloc_node(kvmm_cold_cache,
					     GFP_KERNEL | __GFP_THISNODE | __GFP_NOWARN, nid);
		if (!item) {
			ret = -ENOMEM;
			continue;
		}
		INIT_LIST_HEAD(&item->lru);
		item->pool = pool;
		item->pages = 0;
		item->nid = nid;
		pool->cold_items[nid] = item;
		/* slab may have placed it elsewhere (a node without normal memory) */
		if (page_to_nid(virt_to_page(item)) != nid)
			ret = -ENOMEM;
	}
	set_active_memcg(old);
	return ret;
}

/* Every page of the pool is gone, so no item is on the lru. */
void kvmm_cold_pool_exit(struct kvmm_pool *pool)
{
	int nid;

	if (pool->cold_items) {
		for (nid = 0; nid < nr_node_ids; nid++) {
			struct kvmm_cold_item *item = pool->cold_items[nid];

			if (!item)
				continue;
			WARN_ON(item->pages || !list_empty(&item->lru));
			kmem_cache_free(kvmm_cold_cache, item);
		}
		kfree(pool->cold_items);
		pool->cold_items = NULL;
	}
	if (pool->cold_anchor)
		kmem_cache_free(kvmm_cold_cache, pool->cold_anchor);
	pool->cold_anchor = NULL;
}

/* pages of the pool on node nid entered (> 0) or left COLD; pool lock held */
void kvmm_cold_add(struct kvmm_pool *pool, int nid, long pages)
{
	struct kvmm_cold_item *item = pool->cold_items[nid];
	long old;

	atomic_long_add(pages, &kvmm_cold[nid]);
	/* none: a node that came after the pool; only debugfs finds those */
	if (!item)
		return;
	old = item->pages;
	WRITE_ONCE(item->pages, old + pages);
	if (!old)
		kvmm_lru_add(&kvmm_cold_lru, &item->lru);
	else if (!item->pages)
		kvmm_lru_del(&kvmm_cold_lru, &item->lru);
}

static enum lru_status kvmm_cold_sum(KVMM_LRU_WALK_ARGS)
{
	*(unsigned long *)arg += READ_ONCE(container_of(item, struct kvmm_cold_item, lru)->pages);
	return LRU_SKIP;
}

static unsigned long kvmm_shrink_count(struct shrinker *s, struct shrink_control *sc)
{
	unsigned long items, pages = 0;

	/* pairs with the release in kvmm_shrinker_init(): the lru is set up */
	if (!smp_load_acquire(&kvmm_lru_ready))
		return SHRINK_EMPTY;
	items = list_lru_shrink_count(&kvmm_cold_lru, sc);
	if (items)
		list_lru_walk_one(&kvmm_cold_lru, sc->nid, sc->memcg, kvmm_cold_sum, &pages,
				  &items);
	return pages ? pages : SHRINK_EMPTY;
}

#define KVMM_SCAN_BATCH	16

struct kvmm_scan_batch {
	unsigned int nr;
	struct kvmm_pool *pools[KVMM_SCAN_BATCH];
};

/* Under the lru lock: take a reference on the item's pool for the scan. */
static enum lru_status kvmm_cold_take(KVMM_LRU_WALK_ARGS)
{
	struct kvmm_cold_item *ci = container_of(item, struct kvmm_cold_item, lru);
	struct kvmm_scan_batch *b = arg;

	/* zero: on its way out; it takes its items off the lru first */
	if (b->nr < KVMM_SCAN_BATCH && kref_get_unless_zero(&ci->pool->ref))
		b->pools[b->nr++] = ci->pool;
	/* the next scan starts with other pools */
	return LRU_ROTATE;
}

static void kvmm_account_scan(unsigned long freed, unsigned long scanned, unsigned long busy)
{
	kvmm_account_reclaimed(freed);
	atomic64_inc(&kvmm_reclaim.scans);
	atomic64_add(scanned, &kvmm_reclaim.scanned);
	atomic64_add(freed, &kvmm_reclaim.reclaimed);
	atomic64_add(busy, &kvmm_reclaim.busy);
}

static unsigned long kvmm_shrink_scan(struct shrinker *s, struct shrink_control *sc)
{
	unsigned long freed = 0, scanned = 0, busy = 0, items, walked = 0;
	struct kvmm_scan_batch b;
	unsigned int i;

	/* pairs with the release in kvmm_shrinker_init(): the lru is set up */
	if (!smp_load_acquire(&kvmm_lru_ready))
		return SHRINK_STOP;
	/* each pool at most about once: the walk rotates the ones it took */
	items = list_lru_shrink_count(&kvmm_cold_lru, sc);
	while (freed < sc->nr_to_scan && walked < items) {
		unsigned long nr = min_t(unsigned long, KVMM_SCAN_BATCH, items - walked);

		walked += nr;
		b.nr = 0;
		list_lru_walk_one(&kvmm_cold_lru, sc->nid, sc->memcg, kvmm_cold_take, &b, &nr);
		if (!b.nr)
			break;
		for (i = 0; i < b.nr; i++) {
			struct kvmm_pool *pool = b.pools[i];

			if (freed < sc->nr_to_scan)
				freed += kvmm_pool_reclaim(pool, sc->nid, sc->nr_to_scan - freed,
							   &scanned, &busy);
			kvmm_pool_put_deferred(pool);
		}
	}
	kvmm_account_scan(freed, scanned, busy);
	return freed ? freed : SHRINK_STOP;
}

/* debugfs: every pool with cold pages on sc->nid, whatever its memcg */
static unsigned long kvmm_debug_scan(struct shrink_control *sc)
{
	unsigned long freed = 0, scanned = 0, busy = 0;
	struct kvmm_pool *pool;
	u64 after = 0;

	while (freed < sc->nr_to_scan && (pool = kvmm_registry_next_cold(&after, sc->nid))) {
		freed += kvmm_pool_reclaim(pool, sc->nid, sc->nr_to_scan - freed, &scanned, &busy);
		kvmm_pool_put_deferred(pool);
	}
	kvmm_account_scan(freed, scanned, busy);
	return freed;
}

/* ---- debugfs kvmm/shrink ------------------------------------------------ */

static int kvmm_shrink_show(struct seq_file *m, void *v)
{
	mutex_lock(&kvmm_debug_lock);
	seq_printf(m, "node %d count %lu freed %lu\n", kvmm_debug_last.nid,
		   kvmm_debug_last.count, kvmm_debug_last.freed);
	mutex_unlock(&kvmm_debug_lock);
	return 0;
}

static int kvmm_shrink_open(struct inode *inode, struct file *file)
{
	return single_open(file, kvmm_shrink_show, NULL);
}

static unsigned long kvmm_shrink_node(int nid, unsigned long nr, unsigned long *count)
{
	struct shrink_control sc = {
		.gfp_mask = GFP_KERNEL,
		.nid = nid,
		.nr_to_scan = nr,
	};
	long n = atomic_long_read(&kvmm_cold[nid]);

	*count += n > 0 ? n : 0;
	return kvmm_debug_scan(&sc);
}

static ssize_t kvmm_shrink_write(struct file *file, const char __user *ubuf, size_t len,
				 loff_t *ppos)
{
	unsigned long nr, count = 0, freed = 0;
	char buf[48];
	int nid;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	if (sscanf(buf, "%d %lu", &nid, &nr) != 2)
		return -EINVAL;
	if (nid != -1 && (nid < 0 || nid >= nr_node_ids || !node_online(nid)))
		return -EINVAL;
	if (nid == -1) {
		int n;

		for_each_online_node(n)
			freed += kvmm_shrink_node(n, nr > freed ? nr - freed : 0, &count);
	} else {
		freed = kvmm_shrink_node(nid, nr, &count);
	}
	mutex_lock(&kvmm_debug_lock);
	kvmm_debug_last.nid = nid;
	kvmm_debug_last.count = count;
	kvmm_debug_last.freed = freed;
	mutex_unlock(&kvmm_debug_lock);
	return len;
}

static const struct file_operations kvmm_shrink_fops = {
	.owner = THIS_MODULE,
	.open = kvmm_shrink_open,
	.read = seq_read,
	.write = kvmm_shrink_write,
	.llseek = seq_lseek,
	.release = single_release,
};

int kvmm_shrinker_init(void)
{
	int ret;

	kvmm_cold_cache = kmem_cache_create("kvmm_cold", sizeof(struct kvmm_cold_item), 0,
					    SLAB_ACCOUNT, NULL);
	if (!kvmm_cold_cache)
		return -ENOMEM;
	/*
	 * DEFAULT_SEEKS: a dropped page costs a disk read or a recompute,
	 * like clean page cache.
	 */
	kvmm_shrinker = kvmm_shrinker_alloc("kvmm-pool", SHRINKER_NUMA_AWARE | SHRINKER_MEMCG_AWARE,
					    DEFAULT_SEEKS, kvmm_shrink_count, kvmm_shrink_scan);
	if (!kvmm_shrinker) {
		ret = -ENOMEM;
		goto err_cache;
	}
	/*
	 * Without the memory controller the shrinker is not memcg-aware and
	 * has no id: the lru then must not take one (it would set another
	 * shrinker's bit).
	 */
	ret = list_lru_init_memcg(&kvmm_cold_lru, kvmm_shrinker->flags & SHRINKER_MEMCG_AWARE ?
				  kvmm_shrinker : NULL);
	if (ret)
		goto err_shrinker;
	/* a 6.1 shrinker may already be called: publish the lru to it */
	smp_store_release(&kvmm_lru_ready, true);
	kvmm_shrinker_register(kvmm_shrinker);
	/* debugfs is optional: failures only mean no test trigger */
	kvmm_debugfs = debugfs_create_dir("kvmm", NULL);
	debugfs_create_file("shrink", 0600, kvmm_debugfs, NULL, &kvmm_shrink_fops);
	return 0;

err_shrinker:
	kvmm_shrinker_destroy(kvmm_shrinker);
err_cache:
	kmem_cache_destroy(kvmm_cold_cache);
	return ret;
}

/* No more scans (pools may still be alive). */
void kvmm_shrinker_exit(void)
{
	debugfs_remove_recursive(kvmm_debugfs);
	kvmm_shrinker_destroy(kvmm_shrinker);
}

/* After kvmm_shrinker_exit() and once every pool is gone. */
void kvmm_cold_exit(void)
{
	list_lru_destroy(&kvmm_cold_lru);
	kmem_cache_destroy(kvmm_cold_cache);
}

/* After every pool is gone, the counts must be back to 0. */
void kvmm_cold_check(void)
{
	int nid;

	for (nid = 0; nid < MAX_NUMNODES; nid++)
		WARN_ON(atomic_long_read(&kvmm_cold[nid]));
}
