// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * pool.c - a pool: its pages, where they come from, and their states.
 *
 * A pool page is 2^order PAGE_SIZE pages, allocated at once on the pool's
 * node (__GFP_THISNODE: no silent fallback to another node), zeroed,
 * charged to the creator's memory cgroup (__GFP_ACCOUNT under the pool's
 * memcg), and split into independent PAGE_SIZE pages so each can be mapped
 * by a PTE and pinned by get_user_pages() like any other page (what
 * cuMemHostRegister() needs).  pages[i] is the first of them; the pool
 * holds one reference on each.  A mapping takes its own references through
 * the fault handler, so a page stays valid for whoever maps or pins it even
 * after the pool lets it go.
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "compat.h"
#include "kvmm_priv.h"

/* Metadata is 9 bytes per pool page: keep it to 576 MiB at the very most. */
#define KVMM_MAX_POOL_PAGES	BIT(26)

struct kvmm_pool *kvmm_pool_alloc(const struct kvmm_pool_params *p)
{
	unsigned long nr = p->bytes >> p->page_shift;
	struct kvmm_pool *pool;
	int ret = -ENOMEM;

	if (nr > KVMM_MAX_POOL_PAGES)
		return ERR_PTR(-EFBIG);
	pool = kzalloc(sizeof(*pool), GFP_KERNEL_ACCOUNT);
	if (!pool)
		return ERR_PTR(-ENOMEM);
	pool->pages = kvcalloc(nr, sizeof(*pool->pages), GFP_KERNEL_ACCOUNT);
	pool->state = kvcalloc(nr, sizeof(*pool->state), GFP_KERNEL_ACCOUNT);
	if (!pool->pages || !pool->state)
		goto err;
	pool->inode = kvmm_pool_inode();
	if (IS_ERR(pool->inode)) {
		ret = PTR_ERR(pool->inode);
		pool->inode = NULL;
		goto err;
	}
	pool->inode->i_size = p->bytes;

	kref_init(&pool->ref);
	INIT_LIST_HEAD(&pool->list);
	mutex_init(&pool->lock);
	strscpy(pool->name, p->name, sizeof(pool->name));
	pool->bytes = p->bytes;
	pool->nr_pages = nr;
	pool->order = p->page_shift - PAGE_SHIFT;
	pool->nid = p->nid;
	pool->flags = p->flags;
	pool->mode = p->mode;
	pool->uid = current_fsuid();
	pool->gid = current_fsgid();
	pool->memcg = get_mem_cgroup_from_mm(current->mm);
	/* state[] is zeroed: every page starts FREE */
	pool->nr_state[KVMM_PAGE_FREE] = nr;
	return pool;

err:
	kvfree(pool->state);
	kvfree(pool->pages);
	kfree(pool);
	return ERR_PTR(ret);
}

static struct page *kvmm_page_alloc(struct kvmm_pool *pool)
{
	gfp_t gfp = GFP_HIGHUSER | __GFP_ZERO | __GFP_ACCOUNT | __GFP_NOWARN;
	struct mem_cgroup *old;
	struct page *page;

	/*
	 * Fail rather than OOM-kill: the caller turns a failure into -ENOMEM
	 * (populate) or SIGBUS (fault), as hugetlbfs does.
	 */
	gfp |= __GFP_RETRY_MAYFAIL;
	old = set_active_memcg(pool->memcg);
	if (pool->nid == NUMA_NO_NODE)
		page = alloc_pages(gfp, pool->order);	/* the task's mempolicy */
	else
		page = alloc_pages_node(pool->nid, gfp | __GFP_THISNODE, pool->order);
	set_active_memcg(old);
	if (!page) {
		atomic64_inc(&kvmm_alloc_failures);
		return NULL;
	}
	if (pool->order)
		split_page(page, pool->order);
	atomic_long_add(1L << pool->order, &kvmm_pages_allocated);
	return page;
}

static void kvmm_page_release(struct kvmm_pool *pool, struct page *page)
{
	unsigned long i;

	for (i = 0; i < (1UL << pool->order); i++)
		put_page(nth_page(page, i));
	atomic_long_sub(1L << pool->order, &kvmm_pages_allocated);
}

static void kvmm_set_state_locked(struct kvmm_pool *pool, unsigned long idx, unsigned int state)
{
	unsigned int old = pool->state[idx];

	WRITE_ONCE(pool->nr_state[old], pool->nr_state[old] - 1);
	WRITE_ONCE(pool->nr_state[state], pool->nr_state[state] + 1);
	pool->state[idx] = state;
}

/* Give page idx the memory in page; a FREE page becomes HOT. */
static void kvmm_install_locked(struct kvmm_pool *pool, unsigned long idx, struct page *page)
{
	pool->pages[idx] = page;
	WRITE_ONCE(pool->nr_present, pool->nr_present + 1);
	if (pool->state[idx] == KVMM_PAGE_FREE)
		kvmm_set_state_locked(pool, idx, KVMM_PAGE_HOT);
}

/* Take page idx's memory away; its mappings must be gone already. */
static void kvmm_remove_locked(struct kvmm_pool *pool, unsigned long idx)
{
	struct page *page = pool->pages[idx];

	pool->pages[idx] = NULL;
	WRITE_ONCE(pool->nr_present, pool->nr_present - 1);
	kvmm_page_release(pool, page);
}

static void kvmm_unmap_range(struct kvmm_pool *pool, u64 first, u64 count)
{
	unsigned int shift = PAGE_SHIFT + pool->order;

	unmap_mapping_range(pool->inode->i_mapping, (loff_t)first << shift,
			    (loff_t)count << shift, 1);
}

/* The ranges were checked against the pool by the caller. */
int kvmm_pool_set_state(struct kvmm_pool *pool, const struct kvmm_page_range *r,
			unsigned int nr, unsigned int state, u64 *changed)
{
	unsigned int i;
	u64 n = 0, idx;

	mutex_lock(&pool->lock);
	for (i = 0; i < nr; i++) {
		if (state == KVMM_PAGE_FREE)
			kvmm_unmap_range(pool, r[i].first, r[i].count);
		for (idx = r[i].first; idx < r[i].first + r[i].count; idx++) {
			if (pool->state[idx] == state)
				continue;
			if (state == KVMM_PAGE_FREE && pool->pages[idx])
				kvmm_remove_locked(pool, idx);
			kvmm_set_state_locked(pool, idx, state);
			n++;
			if (!(idx & 1023))
				cond_resched();
		}
	}
	mutex_unlock(&pool->lock);
	*changed = n;
	return 0;
}

int kvmm_pool_populate(struct kvmm_pool *pool, u64 first, u64 count, u64 *populated)
{
	u64 idx, n = 0;
	int ret = 0;

	mutex_lock(&pool->lock);
	for (idx = first; idx < first + count; idx++) {
		struct page *page;

		if (pool->pages[idx])
			continue;
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		page = kvmm_page_alloc(pool);
		if (!page) {
			ret = -ENOMEM;
			break;
		}
		kvmm_install_locked(pool, idx, page);
		n++;
		cond_resched();
	}
	mutex_unlock(&pool->lock);
	*populated = n;
	return ret;
}

/*
 * The PAGE_SIZE page at pgoff (in PAGE_SIZE units from the pool's start),
 * with a reference for the caller; memory is allocated when the pool page
 * has none.  NULL when that allocation fails.
 */
struct page *kvmm_pool_get_page(struct kvmm_pool *pool, unsigned long pgoff)
{
	unsigned long idx = pgoff >> pool->order;
	struct page *page;

	mutex_lock(&pool->lock);
	page = pool->pages[idx];
	if (!page) {
		page = kvmm_page_alloc(pool);
		if (!page) {
			mutex_unlock(&pool->lock);
			return NULL;
		}
		kvmm_install_locked(pool, idx, page);
	}
	page = nth_page(page, pgoff & ((1UL << pool->order) - 1));
	get_page(page);
	mutex_unlock(&pool->lock);
	return page;
}

static void kvmm_pool_free(struct kvmm_pool *pool)
{
	unsigned long idx;

	/* No mapping is left (each holds a file, each file a reference). */
	for (idx = 0; idx < pool->nr_pages; idx++) {
		if (pool->pages[idx])
			kvmm_page_release(pool, pool->pages[idx]);
		if (!(idx & 1023))
			cond_resched();
	}
	kvfree(pool->state);
	kvfree(pool->pages);
	iput(pool->inode);
	mem_cgroup_put(pool->memcg);
	mutex_destroy(&pool->lock);
	kfree(pool);
}

static void kvmm_pool_release(struct kref *ref)
{
	struct kvmm_pool *pool = container_of(ref, struct kvmm_pool, ref);

	/* Called with kvmm_registry.lock held, which this drops. */
	kvmm_registry_release(pool);
	kvmm_pool_free(pool);
}

void kvmm_pool_get(struct kvmm_pool *pool)
{
	kref_get(&pool->ref);
}

void kvmm_pool_put(struct kvmm_pool *pool)
{
	/*
	 * The last reference goes under the registry lock, so a lookup by
	 * name never finds a pool on its way out.
	 */
	kref_put_mutex(&pool->ref, kvmm_pool_release, &kvmm_registry.lock);
}

/* 0 when the caller may have want (MAY_READ | MAY_WRITE) on pool. */
int kvmm_pool_permission(const struct kvmm_pool *pool, int want)
{
	unsigned int mode = pool->mode;

	if (uid_eq(current_fsuid(), pool->uid))
		mode >>= 6;
	else if (in_group_p(pool->gid))
		mode >>= 3;
	if ((want & mode & 7) == want)
		return 0;
	return capable(CAP_SYS_ADMIN) ? 0 : -EACCES;
}

void kvmm_pool_describe(struct kvmm_pool *pool, struct kvmm_pool_desc *d)
{
	struct user_namespace *ns = current_user_ns();
	unsigned int i;

	memset(d, 0, sizeof(*d));
	strscpy(d->name, pool->name, sizeof(d->name));
	d->id = pool->id;
	d->bytes = pool->bytes;
	d->node = pool->nid == NUMA_NO_NODE ? KVMM_NODE_ANY : pool->nid;
	d->page_shift = PAGE_SHIFT + pool->order;
	d->flags = pool->flags | (READ_ONCE(pool->linked) ? 0 : KVMM_POOL_DESTROYED);
	d->mode = pool->mode;
	d->uid = from_kuid_munged(ns, pool->uid);
	d->gid = from_kgid_munged(ns, pool->gid);
	d->attached = atomic_read(&pool->attached);
	d->mappings = atomic_read(&pool->mappings);
	d->pages = pool->nr_pages;
	mutex_lock(&pool->lock);
	d->pages_present = pool->nr_present;
	for (i = 0; i < KVMM_PAGE_STATES; i++)
		d->pages_state[i] = pool->nr_state[i];
	d->pages_reclaimed = pool->reclaimed;
	for (i = 0; i < KVMM_TIER_COUNT; i++)
		d->residency[i] = pool->residency[i];
	mutex_unlock(&pool->lock);
}
