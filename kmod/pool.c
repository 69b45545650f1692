// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * pool.c - a pool: its pages, where they come from, and their states.
 *
 * A pool page is 2^order PAGE_SIZE pages, allocated at once on the pool's
 * node (__GFP_THISNODE: no silent fallback to another node), zeroed and
 * charged to the creator's memory cgroup (__GFP_ACCOUNT under the pool's
 * memcg).  A 2 MiB page stays one compound page, as a THP of the page cache
 * is: the fault handler hands out its PAGE_SIZE subpages, and the core
 * fault code maps the whole page with one PMD where the mapping is aligned
 * (do_set_pmd() from finish_fault()), with PTEs elsewhere.  Either way it is
 * an ordinary page that get_user_pages() can pin (what cuMemHostRegister()
 * needs).  pages[i] is the page (the head of a compound one); the pool holds
 * one reference on it.  Every mapping and pin of any subpage holds its own
 * reference on the same compound page, so a page stays valid for whoever
 * maps or pins it even after the pool lets it go, and "the pool holds the
 * only reference" is one page_count() test.
 */
#include <linux/bitmap.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/err.h>
#include <linux/eventfd.h>
#include <linux/gfp.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

#include "compat.h"
#include "kvmm_priv.h"

/*
 * Metadata is about 13 bytes per pool page (pointer, state, generation,
 * bitmap bit): at most 2^24 pages keeps it to 208 MiB, and 4 KiB pools to
 * 64 GiB (larger ones take 2 MiB pages).
 */
#define KVMM_MAX_POOL_PAGES	KVMM_POOL_MAX_PAGES
/* big, possibly vmalloc'ed arrays: fail rather than OOM-kill */
#define KVMM_META_GFP		(GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN)

static struct workqueue_struct *kvmm_put_wq;

static void kvmm_pool_put_work(struct work_struct *work)
{
	kvmm_pool_put(container_of(work, struct kvmm_pool, put_work));
}

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
	pool->pages = kvcalloc(nr, sizeof(*pool->pages), KVMM_META_GFP);
	pool->state = kvcalloc(nr, sizeof(*pool->state), KVMM_META_GFP);
	pool->cold_map = kvcalloc(BITS_TO_LONGS(nr), sizeof(long), KVMM_META_GFP);
	pool->status_bytes = PAGE_ALIGN(KVMM_STATUS_SIZE(nr));
	pool->status = vmalloc_user(pool->status_bytes);
	if (!pool->pages || !pool->state || !pool->cold_map || !pool->status)
		goto err;
	pool->status->magic = KVMM_STATUS_MAGIC;
	pool->status->version = 1;
	pool->status->gen_offset = sizeof(*pool->status);
	pool->status->pages = nr;
	pool->gen = (u32 *)(pool->status + 1);
	pool->inode = kvmm_pool_inode();
	if (IS_ERR(pool->inode)) {
		ret = PTR_ERR(pool->inode);
		pool->inode = NULL;
		goto err;
	}
	pool->inode->i_size = p->bytes;

	kref_init(&pool->ref);
	INIT_WORK(&pool->put_work, kvmm_pool_put_work);
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
	ret = kvmm_cold_pool_init(pool);
	if (ret)
		goto err_memcg;
	return pool;

err_memcg:
	mem_cgroup_put(pool->memcg);
	iput(pool->inode);
err:
	kvmm_cold_pool_exit(pool);
	vfree(pool->status);
	kvfree(pool->cold_map);
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
	if (pool->order)
		gfp |= __GFP_COMP;
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
	atomic_long_add(1L << pool->order, &kvmm_pages_allocated);
	return page;
}

static void kvmm_page_release(struct kvmm_pool *pool, struct page *page)
{
	put_page(page);
	atomic_long_sub(1L << pool->order, &kvmm_pages_allocated);
}

/* A present page enters or leaves COLD: what the shrinker may take. */
static void kvmm_cold_account(struct kvmm_pool *pool, unsigned long idx, bool cold)
{
	long n = 1L << pool->order;

	if (cold) {
		__set_bit(idx, pool->cold_map);
		WRITE_ONCE(pool->nr_cold_present, pool->nr_cold_present + 1);
	} else {
		__clear_bit(idx, pool->cold_map);
		WRITE_ONCE(pool->nr_cold_present, pool->nr_cold_present - 1);
		n = -n;
	}
	kvmm_cold_add(pool, page_to_nid(pool->pages[idx]), n);
}

static void kvmm_set_state_locked(struct kvmm_pool *pool, unsigned long idx, unsigned int state)
{
	unsigned int old = pool->state[idx];
	bool was_cold = old == KVMM_PAGE_COLD, is_cold = state == KVMM_PAGE_COLD;

	if (pool->pages[idx] && was_cold != is_cold)
		kvmm_cold_account(pool, idx, is_cold);
	WRITE_ONCE(pool->nr_state[old], pool->nr_state[old] - 1);
	WRITE_ONCE(pool->nr_state[state], pool->nr_state[state] + 1);
	pool->state[idx] = state;
}

/* Give page idx the memory in page; a FREE page becomes HOT. */
static void kvmm_install_locked(struct kvmm_pool *pool, unsigned long idx, struct page *page)
{
	/*
	 * The file offset, as the page cache would have it: newer kernels'
	 * finish_fault() compares a large folio's index range with i_size
	 * before mapping it with a PMD.  Nothing else reads it.
	 */
	page_folio(page)->index = idx << pool->order;
	pool->pages[idx] = page;
	WRITE_ONCE(pool->nr_present, pool->nr_present + 1);
	if (pool->state[idx] == KVMM_PAGE_FREE)
		kvmm_set_state_locked(pool, idx, KVMM_PAGE_HOT);
	else if (pool->state[idx] == KVMM_PAGE_COLD)
		kvmm_cold_account(pool, idx, true);
}

/* Take page idx's memory away; its mappings must be gone already. */
static void kvmm_remove_locked(struct kvmm_pool *pool, unsigned long idx)
{
	struct page *page = pool->pages[idx];

	if (pool->state[idx] == KVMM_PAGE_COLD)
		kvmm_cold_account(pool, idx, false);
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

/*
 * Give page idx the memory in page unless it got some meanwhile; false
 * when page was not used (the caller releases it).  Pages are allocated
 * without the pool lock held so that reclaim, which the allocation may
 * enter, can always take it.
 */
static bool kvmm_install(struct kvmm_pool *pool, unsigned long idx, struct page *page)
{
	bool used = false;

	mutex_lock(&pool->lock);
	if (!pool->pages[idx]) {
		kvmm_install_locked(pool, idx, page);
		used = true;
	}
	mutex_unlock(&pool->lock);
	return used;
}

int kvmm_pool_populate(struct kvmm_pool *pool, u64 first, u64 count, u64 *populated)
{
	u64 idx, n = 0;
	int ret = 0;

	for (idx = first; idx < first + count; idx++) {
		struct page *page;

		/* unlocked peek: kvmm_install() checks again */
		if (READ_ONCE(pool->pages[idx]))
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
		if (kvmm_install(pool, idx, page))
			n++;
		else
			kvmm_page_release(pool, page);
		cond_resched();
	}
	*populated = n;
	return ret;
}

/*
 * The PAGE_SIZE page at pgoff (in PAGE_SIZE units from the pool's start),
 * with a reference for the caller; memory is allocated when the pool page
 * has none.  NULL when that allocation fails, ERR_PTR(-EAGAIN) when the
 * page lost its memory again before we could take it (the fault retries).
 */
struct page *kvmm_pool_get_page(struct kvmm_pool *pool, unsigned long pgoff)
{
	unsigned long idx = pgoff >> pool->order;
	struct page *page, *spare = NULL;

	if (!READ_ONCE(pool->pages[idx])) {
		spare = kvmm_page_alloc(pool);
		if (!spare)
			return NULL;
		if (kvmm_install(pool, idx, spare))
			spare = NULL;
	}
	mutex_lock(&pool->lock);
	page = pool->pages[idx];
	if (page) {
		page = nth_page(page, pgoff & ((1UL << pool->order) - 1));
		get_page(page);
	}
	mutex_unlock(&pool->lock);
	if (spare)
		kvmm_page_release(pool, spare);
	return page ? page : ERR_PTR(-EAGAIN);
}

/*
 * Reclaim: drop the memory of up to nr PAGE_SIZE pages of pool that are
 * COLD and on node nid (NUMA_NO_NODE: any), resuming where the last call
 * stopped.  A page goes only when, its mappings removed, the pool holds the
 * only reference to it: one pinned for DMA or half-way through a fault is
 * left alone (busy).  This runs inside other tasks' allocations: see
 * kvmm_try_unmap() for the one lock it may only try.  Returns the
 * PAGE_SIZE pages freed.
 */
static bool kvmm_page_exclusive(struct page *page)
{
	/* mappings and pins of any subpage count on the compound page */
	return page_count(page) == 1;
}

static bool kvmm_try_unmap(struct kvmm_pool *pool, unsigned long idx)
{
	struct address_space *mapping = pool->inode->i_mapping;

	/*
	 * The allocation we may be reclaiming for can come from a task that
	 * holds this mapping's i_mmap_rwsem (mmap, munmap, fork of a pool
	 * mapping): unmap_mapping_range() would take it again and deadlock.
	 * A successful trylock shows the current task does not hold it (as
	 * rmap walks from reclaim try_lock it too).
	 */
	if (!i_mmap_trylock_read(mapping))
		return false;
	i_mmap_unlock_read(mapping);
	kvmm_unmap_range(pool, idx, 1);
	return true;
}

static void kvmm_drop_locked(struct kvmm_pool *pool, unsigned long idx)
{
	kvmm_remove_locked(pool, idx);
	kvmm_set_state_locked(pool, idx, KVMM_PAGE_FREE);
	WRITE_ONCE(pool->reclaimed, pool->reclaimed + 1);
	WRITE_ONCE(pool->gen[idx], pool->gen[idx] + 1);
	WRITE_ONCE(pool->status->dropped, pool->status->dropped + 1);
	/* userspace reads seq, then the generations: order them */
	smp_wmb();
	WRITE_ONCE(pool->status->seq, pool->status->seq + 1);
}

unsigned long kvmm_pool_reclaim(struct kvmm_pool *pool, int nid, unsigned long nr,
				unsigned long *scanned, unsigned long *busy)
{
	unsigned long freed = 0, cursor, idx = 0, start, end;
	int pass;

	/*
	 * Nobody allocates with this lock held (pages are allocated first,
	 * installed after), so waiting for it cannot deadlock reclaim.
	 */
	mutex_lock(&pool->lock);
	cursor = pool->reclaim_cursor;
	/* from the cursor to the end, then from the start to the cursor */
	for (pass = 0; pass < 2 && freed < nr; pass++) {
		start = pass ? 0 : cursor;
		end = pass ? cursor : pool->nr_pages;
		for (idx = find_next_bit(pool->cold_map, end, start); idx < end && freed < nr;
		     idx = find_next_bit(pool->cold_map, end, idx + 1)) {
			struct page *page = pool->pages[idx];

			if (nid != NUMA_NO_NODE && page_to_nid(page) != nid)
				continue;
			(*scanned)++;
			if (!kvmm_try_unmap(pool, idx))
				goto out;
			if (!kvmm_page_exclusive(page)) {
				(*busy)++;
				continue;
			}
			kvmm_drop_locked(pool, idx);
			freed += 1UL << pool->order;
		}
	}
out:
	pool->reclaim_cursor = idx < pool->nr_pages ? idx : 0;
	if (freed && pool->evfd)
		kvmm_eventfd_signal(pool->evfd);
	mutex_unlock(&pool->lock);
	return freed;
}

int kvmm_pool_set_eventfd(struct kvmm_pool *pool, int fd)
{
	struct eventfd_ctx *ctx = NULL, *old;

	if (fd >= 0) {
		ctx = eventfd_ctx_fdget(fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	}
	mutex_lock(&pool->lock);
	old = pool->evfd;
	pool->evfd = ctx;
	mutex_unlock(&pool->lock);
	if (old)
		eventfd_ctx_put(old);
	return 0;
}

static void kvmm_pool_free(struct kvmm_pool *pool)
{
	unsigned long idx;

	/* No mapping is left (each holds a file, each file a reference). */
	for (idx = 0; idx < pool->nr_pages; idx++) {
		if (pool->pages[idx])
			kvmm_remove_locked(pool, idx);
		if (!(idx & 1023))
			cond_resched();
	}
	if (pool->evfd)
		eventfd_ctx_put(pool->evfd);
	/* no cold page is left: the shrinker's items are off its lists */
	kvmm_cold_pool_exit(pool);
	vfree(pool->status);
	kvfree(pool->cold_map);
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

/*
 * A put that never blocks: the shrinker's.  The last reference goes on a
 * workqueue, since freeing needs kvmm_registry.lock, which the task we
 * are reclaiming for may hold.
 */
void kvmm_pool_put_deferred(struct kvmm_pool *pool)
{
	if (!refcount_dec_not_one(&pool->ref.refcount))
		queue_work(kvmm_put_wq, &pool->put_work);
}

int kvmm_pool_init(void)
{
	kvmm_put_wq = alloc_workqueue("kvmm_put", 0, 0);
	return kvmm_put_wq ? 0 : -ENOMEM;
}

/* Once no more deferred puts can be queued (the shrinker is gone). */
void kvmm_pool_exit(void)
{
	destroy_workqueue(kvmm_put_wq);
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
