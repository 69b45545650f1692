// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * shrinker.c - cooperation with memory reclaim.
 *
 * One NUMA-aware shrinker for every pool: its objects are the PAGE_SIZE
 * pages of COLD pool pages that have memory, counted per node, and a scan
 * on node N drops such pages that lie on N (kvmm_pool_reclaim()).  HOT and
 * FREE pages are never touched.  The owner learns of each drop from the
 * page's generation in the status area (and an eventfd if it set one).
 *
 * The scan runs inside other tasks' allocations: it walks the pools under
 * the registry's list spinlock, holding a reference on the one it works on,
 * and waits only for pool locks, which nobody holds across an allocation
 * (see kvmm_priv.h).  Waiting matters: with two reclaimers (kswapd and a
 * task in direct reclaim) a trylock makes one of them see no progress, and
 * the allocator then OOM-kills while cold pages are left.
 *
 * debugfs kvmm/shrink runs the same count and scan on demand (the TTM
 * page_pool_shrink idea), for tests: write "NODE NR_PAGES" (NODE -1: every
 * node), read back what the last run did.
 */
#include <linux/debugfs.h>
#include <linux/kernel.h>
#include <linux/nodemask.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

#include "compat.h"
#include "kvmm_priv.h"

struct kvmm_reclaim_stats kvmm_reclaim;

/* PAGE_SIZE pages of COLD pool pages with memory, per node */
static atomic_long_t kvmm_cold[MAX_NUMNODES];
static struct shrinker *kvmm_shrinker;
static struct dentry *kvmm_debugfs;

static DEFINE_MUTEX(kvmm_debug_lock);
static struct {
	int nid;
	unsigned long count;
	unsigned long freed;
} kvmm_debug_last = { .nid = NUMA_NO_NODE };

void kvmm_cold_add(int nid, long pages)
{
	atomic_long_add(pages, &kvmm_cold[nid]);
}

static unsigned long kvmm_shrink_count(struct shrinker *s, struct shrink_control *sc)
{
	long n = atomic_long_read(&kvmm_cold[sc->nid]);

	return n > 0 ? n : SHRINK_EMPTY;
}

static unsigned long kvmm_do_scan(struct shrink_control *sc)
{
	unsigned long freed = 0, scanned = 0, busy = 0;
	struct kvmm_pool *pool;
	u64 after = 0;

	while (freed < sc->nr_to_scan && (pool = kvmm_registry_next_cold(&after, sc->nid))) {
		freed += kvmm_pool_reclaim(pool, sc->nid, sc->nr_to_scan - freed, &scanned, &busy);
		kvmm_pool_put_deferred(pool);
	}
	kvmm_account_reclaimed(freed);
	atomic64_inc(&kvmm_reclaim.scans);
	atomic64_add(scanned, &kvmm_reclaim.scanned);
	atomic64_add(freed, &kvmm_reclaim.reclaimed);
	atomic64_add(busy, &kvmm_reclaim.busy);
	return freed ? freed : SHRINK_STOP;
}

static unsigned long kvmm_shrink_scan(struct shrinker *s, struct shrink_control *sc)
{
	return kvmm_do_scan(sc);
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
	unsigned long n = kvmm_shrink_count(NULL, &sc), freed;

	*count += n == SHRINK_EMPTY ? 0 : n;
	freed = kvmm_do_scan(&sc);
	return freed == SHRINK_STOP ? 0 : freed;
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
	/*
	 * DEFAULT_SEEKS: a dropped page costs a disk read or a recompute,
	 * like clean page cache.
	 */
	kvmm_shrinker = kvmm_shrinker_create("kvmm-pool", SHRINKER_NUMA_AWARE, DEFAULT_SEEKS,
					     kvmm_shrink_count, kvmm_shrink_scan);
	if (!kvmm_shrinker)
		return -ENOMEM;
	/* debugfs is optional: failures only mean no test trigger */
	kvmm_debugfs = debugfs_create_dir("kvmm", NULL);
	debugfs_create_file("shrink", 0600, kvmm_debugfs, NULL, &kvmm_shrink_fops);
	return 0;
}

void kvmm_shrinker_exit(void)
{
	debugfs_remove_recursive(kvmm_debugfs);
	kvmm_shrinker_destroy(kvmm_shrinker);
}

/* After every pool is gone, the counts must be back to 0. */
void kvmm_cold_check(void)
{
	int nid;

	for (nid = 0; nid < MAX_NUMNODES; nid++)
		WARN_ON(atomic_long_read(&kvmm_cold[nid]));
}
