/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * compat.h - the kernel API differences kvmm.ko meets between 6.1 (the
 * test VM's kernel, Debian 12) and newer kernels, in one place.
 */
#ifndef _KVMM_COMPAT_H
#define _KVMM_COMPAT_H

#include <linux/eventfd.h>
#include <linux/fs.h>
#include <linux/list_lru.h>
#include <linux/mm.h>
#include <linux/shrinker.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/version.h>

/*
 * The one kernel version test, on the generated LINUX_VERSION_MAJOR and
 * _PATCHLEVEL (5.14+).  Out-of-tree code has to test versions somewhere;
 * it is all in this file.
 */
#define KVMM_KERNEL	KERNEL_VERSION(LINUX_VERSION_MAJOR, LINUX_VERSION_PATCHLEVEL, 0)
#define KVMM_KERNEL_GE(major, minor)	(KERNEL_VERSION(major, minor, 0) <= KVMM_KERNEL)

/* vm_flags became read-only behind vm_flags_set() in 6.3. */
static inline void kvmm_vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
#if KVMM_KERNEL_GE(6, 3)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

static inline void kvmm_vm_flags_clear(struct vm_area_struct *vma, vm_flags_t flags)
{
#if KVMM_KERNEL_GE(6, 3)
	vm_flags_clear(vma, flags);
#else
	vma->vm_flags &= ~flags;
#endif
}

/*
 * Shrinkers: 6.7 replaced the embedded struct shrinker and
 * register_shrinker() with shrinker_alloc(), shrinker_register() and
 * shrinker_free().  Here a shrinker is made in two steps, because a
 * memcg-aware list_lru needs the shrinker's id in between:
 * kvmm_shrinker_alloc() (6.7+: allocated, not yet called; 6.1: already
 * registered, since 6.1 exports no way to get an id without registering,
 * so the callbacks must cope with being called before the lru exists),
 * then kvmm_shrinker_register().
 */
static inline struct shrinker *
kvmm_shrinker_alloc(const char *name, unsigned int flags, int seeks,
		    unsigned long (*count)(struct shrinker *, struct shrink_control *),
		    unsigned long (*scan)(struct shrinker *, struct shrink_control *))
{
	struct shrinker *s;
#if KVMM_KERNEL_GE(6, 7)
	s = shrinker_alloc(flags, "%s", name);
	if (!s)
		return NULL;
	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = seeks;
#else
	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return NULL;
	s->count_objects = count;
	s->scan_objects = scan;
	s->seeks = seeks;
	s->flags = flags;
	if (register_shrinker(s, "%s", name)) {
		kfree(s);
		return NULL;
	}
#endif
	return s;
}

static inline void kvmm_shrinker_register(struct shrinker *s)
{
#if KVMM_KERNEL_GE(6, 7)
	shrinker_register(s);
#endif
}

/* After kvmm_shrinker_alloc(), registered or not. */
static inline void kvmm_shrinker_destroy(struct shrinker *s)
{
	if (!s)
		return;
#if KVMM_KERNEL_GE(6, 7)
	shrinker_free(s);
#else
	unregister_shrinker(s);
	kfree(s);
#endif
}

/*
 * list_lru: 6.8 gave list_lru_add()/_del() explicit node and memcg
 * arguments and kept the old behaviour (both taken from the item's own
 * memory) as list_lru_add_obj()/_del_obj(), which kvmm relies on; 6.13
 * stopped exporting list_lru_add() and dropped the lock argument of the
 * walk callback.
 */
static inline bool kvmm_lru_add(struct list_lru *lru, struct list_head *item)
{
#if KVMM_KERNEL_GE(6, 8)
	return list_lru_add_obj(lru, item);
#else
	return list_lru_add(lru, item);
#endif
}

static inline bool kvmm_lru_del(struct list_lru *lru, struct list_head *item)
{
#if KVMM_KERNEL_GE(6, 8)
	return list_lru_del_obj(lru, item);
#else
	return list_lru_del(lru, item);
#endif
}

/* The parameters of a list_lru_walk_cb, named item, list and arg. */
#if KVMM_KERNEL_GE(6, 13)
#define KVMM_LRU_WALK_ARGS	struct list_head *item, struct list_lru_one *list, void *arg
#else
#define KVMM_LRU_WALK_ARGS	struct list_head *item, struct list_lru_one *list, \
				spinlock_t *lock, void *arg
#endif

/*
 * Pages a shrinker frees count as reclaim progress only if it says so;
 * otherwise the allocator can give up and OOM-kill while kvmm's shrinker
 * is freeing memory.  6.4 wrapped the field in mm_account_reclaimed_pages().
 */
static inline void kvmm_account_reclaimed(unsigned long pages)
{
#if KVMM_KERNEL_GE(6, 4)
	mm_account_reclaimed_pages(pages);
#else
	if (current->reclaim_state)
		current->reclaim_state->reclaimed_slab += pages;
#endif
}

/* eventfd_signal() lost its count argument in 6.8. */
static inline void kvmm_eventfd_signal(struct eventfd_ctx *ctx)
{
#if KVMM_KERNEL_GE(6, 8)
	eventfd_signal(ctx);
#else
	eventfd_signal(ctx, 1);
#endif
}

/* no_llseek() went away in 6.12; a NULL llseek means the same there. */
#if KVMM_KERNEL_GE(6, 12)
#define KVMM_NO_LLSEEK	NULL
#else
#define KVMM_NO_LLSEEK	no_llseek
#endif

/* nth_page() was removed in 6.18, where page + n is always valid. */
#ifndef nth_page
#define nth_page(page, n)	((page) + (n))
#endif

#endif /* _KVMM_COMPAT_H */
