/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR MIT) */
/*
 * kvmm.h - the ABI of /dev/kvmm, shared by kvmm.ko, libkvmm and kvmmctl.
 *
 * Rules (Documentation/process/botching-up-ioctls.rst, iommufd's layout):
 *  - Every command is _IO(KVMM_TYPE, KVMM_CMD_BASE + n) and takes a pointer
 *    to a struct that starts with "__u32 size; __u32 flags;".  size is
 *    sizeof() of the struct as the caller knows it.  The kernel accepts any
 *    size from the end of the struct's last field in API version 1 up to
 *    PAGE_SIZE: a shorter struct gives -EINVAL, a longer one is accepted
 *    when the bytes the kernel does not know are zero and gives -E2BIG
 *    otherwise (copy_struct_from_user()).  Output fields are written back
 *    for at most size bytes.
 *  - Unknown flags and non-zero reserved fields give -EINVAL.
 *  - Unknown commands give -ENOTTY; so do device commands sent to a pool fd
 *    and pool commands sent to the device fd.
 *  - Only fixed-width types; 64-bit fields are aligned; user pointers are
 *    __aligned_u64.  The layout is the same for 32- and 64-bit callers.
 *  - Support of each command is announced by KVMM_IOC_GET_INFO's ioctls
 *    mask, of each optional behaviour by its features mask.
 *
 * docs/abi.md describes every command and errno in prose.
 */
#ifndef _UAPI_KVMM_H
#define _UAPI_KVMM_H

#include <linux/const.h>
#include <linux/ioctl.h>
#include <linux/types.h>

#define KVMM_API_VERSION	1
#define KVMM_DEVICE_NAME	"kvmm"

/* ioctl type; 0xB9 is unassigned in Documentation/.../ioctl-number.rst */
#define KVMM_TYPE		0xB9
#define KVMM_CMD_BASE		0x80

enum {
	KVMM_CMD_GET_INFO = KVMM_CMD_BASE,	/* device fd */
	KVMM_CMD_GET_STATS,			/* device fd */
	KVMM_CMD_LIMITS,			/* device fd */
	KVMM_CMD_POOL_CREATE,			/* device fd */
	KVMM_CMD_POOL_OPEN,			/* device fd */
	KVMM_CMD_POOL_DESTROY,			/* device fd */
	KVMM_CMD_POOL_LIST,			/* device fd */
	KVMM_CMD_POOL_INFO,			/* pool fd */
	KVMM_CMD_POOL_SET_STATE,		/* pool fd */
	KVMM_CMD_POOL_POPULATE,			/* pool fd */
	KVMM_CMD_POOL_SET_RESIDENCY,		/* pool fd */
	KVMM_CMD_POOL_SET_EVENTFD,		/* pool fd */
	KVMM_CMD_END,		/* one past the last command */
};

/* Bit of a command in struct kvmm_info.ioctls */
#define KVMM_IOCTL_BIT(cmd)	_BITULL((cmd) - KVMM_CMD_BASE)

/* Pool names: 1 to KVMM_NAME_MAX - 1 bytes of [A-Za-z0-9._-], not starting
 * with '.', NUL-terminated, the rest of the array zero.
 */
#define KVMM_NAME_MAX		64
/* A pool's size is at most this many bytes, and this many pages. */
#define KVMM_POOL_MAX_BYTES	_BITULL(40)
#define KVMM_POOL_MAX_PAGES	_BITULL(24)
/* Any NUMA node: pages follow the faulting task's memory policy. */
#define KVMM_NODE_ANY		(-1)

/**
 * struct kvmm_info - KVMM_IOC_GET_INFO: the handshake
 * @size: sizeof(struct kvmm_info)
 * @flags: must be 0
 * @api_version: out: KVMM_API_VERSION of the module
 * @nr_node_ids: out: NUMA node numbers are below this
 * @features: out: KVMM_FEATURE_* bits the module implements
 * @ioctls: out: KVMM_IOCTL_BIT(cmd) for every command the module answers
 * @page_sizes: out: bit n set when pools of 2^n byte pages can be created
 * @__reserved: must be 0
 *
 * Issued on the /dev/kvmm fd before anything else: userspace checks the
 * version and that the commands and features it needs are present, and
 * falls back (or skips) otherwise.  Output fields are ignored on input.
 */
struct kvmm_info {
	__u32 size;
	__u32 flags;
	__u32 api_version;
	__u32 nr_node_ids;
	__aligned_u64 features;
	__aligned_u64 ioctls;
	__aligned_u64 page_sizes;
	__aligned_u64 __reserved;
};

/* struct kvmm_info.features */
/* pool pages are charged to the creator's memory cgroup */
#define KVMM_FEATURE_MEMCG	_BITULL(0)
/* KVMM_POOL_NODE_OF_PCI */
#define KVMM_FEATURE_NODE_OF_PCI _BITULL(1)
/* COLD pages are dropped under memory pressure (a NUMA-aware shrinker) */
#define KVMM_FEATURE_RECLAIM	_BITULL(2)
/* the status area (KVMM_STATUS_OFFSET) reports drops without a syscall */
#define KVMM_FEATURE_STATUS	_BITULL(3)
/* KVMM_IOC_POOL_SET_EVENTFD */
#define KVMM_FEATURE_EVENTFD	_BITULL(4)
/*
 * reclaim inside a memory cgroup (its memory.max, memory.reclaim) drops the
 * COLD pages of pools charged to it, and never another cgroup's
 */
#define KVMM_FEATURE_MEMCG_RECLAIM _BITULL(5)
/* 2 MiB pool pages are mapped with one PMD each where the mapping allows */
#define KVMM_FEATURE_PMD_MAP	_BITULL(6)

#define KVMM_IOC_GET_INFO	_IO(KVMM_TYPE, KVMM_CMD_GET_INFO)

/**
 * struct kvmm_stats - KVMM_IOC_GET_STATS: totals over every pool
 * @size: sizeof(struct kvmm_stats)
 * @flags: must be 0
 * @pools: out: pools alive (including destroyed pools still open or mapped)
 * @__reserved: must be 0
 * @bytes_reserved: out: sum of the pools' sizes (what the limits count)
 * @pages_allocated: out: PAGE_SIZE pages the module holds
 * @pages_hot: out: pool pages in state HOT (in pool pages, any size)
 * @pages_cold: out: pool pages in state COLD
 * @pages_free: out: pool pages in state FREE
 * @alloc_failures: out: pool page allocations that failed
 * @reclaim_scans: out: calls of the shrinker's scan (incl. debugfs)
 * @reclaim_scanned: out: COLD pages looked at by the shrinker
 * @reclaimed_pages: out: PAGE_SIZE pages the shrinker freed
 * @reclaim_busy: out: COLD pages the shrinker left because someone else
 *	held a reference (pinned for DMA, or a fault in progress)
 *
 * The reclaim fields came after API version 1's first release: callers
 * may stop at @alloc_failures.
 */
struct kvmm_stats {
	__u32 size;
	__u32 flags;
	__u32 pools;
	__u32 __reserved;
	__aligned_u64 bytes_reserved;
	__aligned_u64 pages_allocated;
	__aligned_u64 pages_hot;
	__aligned_u64 pages_cold;
	__aligned_u64 pages_free;
	__aligned_u64 alloc_failures;
	__aligned_u64 reclaim_scans;
	__aligned_u64 reclaim_scanned;
	__aligned_u64 reclaimed_pages;
	__aligned_u64 reclaim_busy;
};

#define KVMM_IOC_GET_STATS	_IO(KVMM_TYPE, KVMM_CMD_GET_STATS)

/* struct kvmm_limits.flags */
#define KVMM_LIMITS_SET_GLOBAL	_BITUL(0)
#define KVMM_LIMITS_SET_PER_UID	_BITUL(1)

/**
 * struct kvmm_limits - KVMM_IOC_LIMITS: read or set the registry's limits
 * @size: sizeof(struct kvmm_limits)
 * @flags: KVMM_LIMITS_SET_*: set that limit from the field (needs
 *	CAP_SYS_ADMIN); without flags the call only reads
 * @global_bytes: in with SET_GLOBAL, out: bytes all pools may reserve
 *	together (0: no limit)
 * @per_uid_bytes: in with SET_PER_UID, out: bytes the pools of one uid may
 *	reserve (0: no limit)
 * @global_used: out: bytes reserved by all pools
 * @uid_used: out: bytes reserved by the caller's pools
 *
 * A pool reserves its whole size at creation, charged to its creator's uid
 * until it is freed; a create that would go over a limit fails and
 * allocates nothing.  Lowering a limit below what is in use is allowed and
 * only stops new pools.
 */
struct kvmm_limits {
	__u32 size;
	__u32 flags;
	__aligned_u64 global_bytes;
	__aligned_u64 per_uid_bytes;
	__aligned_u64 global_used;
	__aligned_u64 uid_used;
};

#define KVMM_IOC_LIMITS		_IO(KVMM_TYPE, KVMM_CMD_LIMITS)

/* struct kvmm_pool_create.flags */
/* outlives its fds: freed by KVMM_IOC_POOL_DESTROY or module unload */
#define KVMM_POOL_PERSISTENT	_BITUL(0)
/* the new fd is O_CLOEXEC */
#define KVMM_POOL_CLOEXEC	_BITUL(1)
/* allocate every page now (-ENOMEM instead of a later SIGBUS) */
#define KVMM_POOL_POPULATE	_BITUL(2)
/* node: the NUMA node of a PCI device (e.g. the GPU's) */
#define KVMM_POOL_NODE_OF_PCI	_BITUL(3)
/* in struct kvmm_pool_desc.flags only: destroyed, still open or mapped */
#define KVMM_POOL_DESTROYED	_BITUL(31)

/**
 * struct kvmm_pool_create - KVMM_IOC_POOL_CREATE: a new pool, as an fd
 * @size: sizeof(struct kvmm_pool_create)
 * @flags: KVMM_POOL_PERSISTENT, _CLOEXEC, _POPULATE, _NODE_OF_PCI
 * @bytes: size of the pool; a non-zero multiple of the page size, at most
 *	KVMM_POOL_MAX_BYTES and KVMM_POOL_MAX_PAGES pages (-EFBIG)
 * @node: NUMA node the pages must come from (allocations fail rather than
 *	fall back to another node), or KVMM_NODE_ANY; must be KVMM_NODE_ANY
 *	with KVMM_POOL_NODE_OF_PCI
 * @page_shift: 12 (4 KiB pages) or 21 (2 MiB pages: physically contiguous,
 *	the unit of allocation, state and reclaim)
 * @mode: permission bits (0777 at most) for opening by name: owner, group
 *	and others, read (map read-only) and write (map, change states)
 * @pci_dev: with KVMM_POOL_NODE_OF_PCI: domain << 16 | bus << 8 | devfn;
 *	otherwise must be 0
 * @name: unique name of the pool in the registry
 *
 * Returns a new fd (O_RDWR) on the pool; its pages are mapped with mmap()
 * of that fd (MAP_SHARED; offset 0 is page 0).  The creator's uid and gid
 * own the pool; its pages are charged to the creator's memory cgroup.
 * A pool without KVMM_POOL_PERSISTENT is freed when its last fd and
 * mapping go; a persistent one stays until KVMM_IOC_POOL_DESTROY or module
 * unload.
 */
struct kvmm_pool_create {
	__u32 size;
	__u32 flags;
	__aligned_u64 bytes;
	__s32 node;
	__u32 page_shift;
	__u32 mode;
	__u32 pci_dev;
	char name[KVMM_NAME_MAX];
};

#define KVMM_IOC_POOL_CREATE	_IO(KVMM_TYPE, KVMM_CMD_POOL_CREATE)

/* struct kvmm_pool_open.flags */
/* needs read permission only; the pool can then only be mapped read-only */
#define KVMM_OPEN_RDONLY	_BITUL(0)
/* the new fd is O_CLOEXEC */
#define KVMM_OPEN_CLOEXEC	_BITUL(1)

/**
 * struct kvmm_pool_open - KVMM_IOC_POOL_OPEN: an fd on an existing pool
 * @size: sizeof(struct kvmm_pool_open)
 * @flags: KVMM_OPEN_RDONLY, KVMM_OPEN_CLOEXEC
 * @name: the pool's name
 *
 * Needs read and write permission (read only with KVMM_OPEN_RDONLY) in
 * the pool's mode for the caller's fsuid/fsgid, or CAP_SYS_ADMIN.
 */
struct kvmm_pool_open {
	__u32 size;
	__u32 flags;
	char name[KVMM_NAME_MAX];
};

#define KVMM_IOC_POOL_OPEN	_IO(KVMM_TYPE, KVMM_CMD_POOL_OPEN)

/**
 * struct kvmm_pool_destroy - KVMM_IOC_POOL_DESTROY: remove a pool's name
 * @size: sizeof(struct kvmm_pool_destroy)
 * @flags: must be 0
 * @name: the pool's name
 *
 * Like unlink(): the name goes at once (and may be reused); the pool's
 * memory goes when no fd or mapping uses it any more.  Needs to be the
 * owner, write permission in the pool's mode, or CAP_SYS_ADMIN.
 */
struct kvmm_pool_destroy {
	__u32 size;
	__u32 flags;
	char name[KVMM_NAME_MAX];
};

#define KVMM_IOC_POOL_DESTROY	_IO(KVMM_TYPE, KVMM_CMD_POOL_DESTROY)

/* Tiers of struct kvmm_pool_desc.residency (what the runtime publishes) */
enum {
	KVMM_TIER_GPU,
	KVMM_TIER_HOST,
	KVMM_TIER_DISK,
	KVMM_TIER_INFLIGHT,
	KVMM_TIER_COUNT,
};

/*
 * Page states, set by the pool's owner with KVMM_IOC_POOL_SET_STATE:
 *  FREE: no data; the memory is released at once and a later touch gets a
 *	  zeroed page, which becomes HOT
 *  HOT:  in use; never reclaimed
 *  COLD: the data has a copy elsewhere or can be recomputed; the kernel may
 *	  drop the page under memory pressure (it becomes FREE and its
 *	  generation in the status area changes)
 * The kernel drops a COLD page only when the pool's reference (and its
 * mappings, which it removes first) are the only ones: a page pinned with
 * get_user_pages()/pin_user_pages() (cuMemHostRegister(), O_DIRECT or
 * io_uring buffers) or being faulted in is skipped and counted as busy.
 * Pages a device may still DMA to should stay HOT.
 */
enum {
	KVMM_PAGE_FREE,
	KVMM_PAGE_HOT,
	KVMM_PAGE_COLD,
	KVMM_PAGE_STATES,
};

/**
 * struct kvmm_pool_desc - one pool, as KVMM_IOC_POOL_INFO and
 *	KVMM_IOC_POOL_LIST report it
 * @name: the pool's name
 * @id: number unique among the pools of this module load
 * @bytes: size
 * @node: the node pages come from, or KVMM_NODE_ANY
 * @page_shift: log2 of the page size
 * @flags: KVMM_POOL_PERSISTENT, KVMM_POOL_DESTROYED
 * @mode: permission bits
 * @uid: owner (in the caller's user namespace)
 * @gid: group (in the caller's user namespace)
 * @attached: open files of the pool (an fd, or a mapping whose fd was
 *	closed, holds one; fork() and dup() share them)
 * @mappings: memory mappings of the pool (VMAs)
 * @__reserved: 0
 * @pages: pages in the pool (bytes >> page_shift)
 * @pages_present: pages with memory behind them
 * @pages_state: pages in each KVMM_PAGE_* state
 * @pages_reclaimed: pages the kernel dropped under memory pressure, ever
 * @residency: the counts the owner published per KVMM_TIER_*
 */
struct kvmm_pool_desc {
	char name[KVMM_NAME_MAX];
	__aligned_u64 id;
	__aligned_u64 bytes;
	__s32 node;
	__u32 page_shift;
	__u32 flags;
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u32 attached;
	__u32 mappings;
	__u32 __reserved;
	__aligned_u64 pages;
	__aligned_u64 pages_present;
	__aligned_u64 pages_state[KVMM_PAGE_STATES];
	__aligned_u64 pages_reclaimed;
	__aligned_u64 residency[KVMM_TIER_COUNT];
};

/**
 * struct kvmm_pool_list - KVMM_IOC_POOL_LIST: describe every pool
 * @size: sizeof(struct kvmm_pool_list)
 * @flags: must be 0
 * @entry_size: sizeof(struct kvmm_pool_desc) as the caller knows it (at
 *	least the API version 1 size); longer entries get zeros after what
 *	the kernel knows
 * @count: in: entries @entries has room for; out: entries written
 * @entries: user pointer to @count entries of @entry_size bytes
 * @total: out: pools alive (more than @count when the array was short)
 * @__reserved: must be 0
 *
 * The pools are listed in creation order, destroyed-but-open ones
 * included (KVMM_POOL_DESTROYED).  @count 0 only reads @total.
 */
struct kvmm_pool_list {
	__u32 size;
	__u32 flags;
	__u32 entry_size;
	__u32 count;
	__aligned_u64 entries;
	__u32 total;
	__u32 __reserved;
};

#define KVMM_IOC_POOL_LIST	_IO(KVMM_TYPE, KVMM_CMD_POOL_LIST)

/**
 * struct kvmm_pool_info - KVMM_IOC_POOL_INFO (pool fd): describe this pool
 * @size: sizeof(struct kvmm_pool_info)
 * @flags: must be 0
 * @desc: out
 */
struct kvmm_pool_info {
	__u32 size;
	__u32 flags;
	struct kvmm_pool_desc desc;
};

#define KVMM_IOC_POOL_INFO	_IO(KVMM_TYPE, KVMM_CMD_POOL_INFO)

/* A range of pool pages (in the pool's page size). */
struct kvmm_page_range {
	__aligned_u64 first;
	__aligned_u64 count;
};

/* Most ranges one KVMM_IOC_POOL_SET_STATE takes. */
#define KVMM_MAX_RANGES		4096

/**
 * struct kvmm_pool_set_state - KVMM_IOC_POOL_SET_STATE (pool fd, writable)
 * @size: sizeof(struct kvmm_pool_set_state)
 * @flags: must be 0
 * @state: KVMM_PAGE_FREE, _HOT or _COLD
 * @nr_ranges: 1 to KVMM_MAX_RANGES
 * @ranges: user pointer to @nr_ranges struct kvmm_page_range; every range
 *	non-empty and inside the pool (ranges may overlap)
 * @changed: out: pages whose state changed
 *
 * All ranges are checked before any page changes: either every page gets
 * the state or (on error) none does.  FREE releases the pages' memory at
 * once (their mappings read zeroes afterwards).
 */
struct kvmm_pool_set_state {
	__u32 size;
	__u32 flags;
	__u32 state;
	__u32 nr_ranges;
	__aligned_u64 ranges;
	__aligned_u64 changed;
};

#define KVMM_IOC_POOL_SET_STATE	_IO(KVMM_TYPE, KVMM_CMD_POOL_SET_STATE)

/**
 * struct kvmm_pool_populate - KVMM_IOC_POOL_POPULATE (pool fd, writable)
 * @size: sizeof(struct kvmm_pool_populate)
 * @flags: must be 0
 * @first: first page
 * @count: pages (non-zero; the range lies inside the pool)
 * @populated: out: pages that got memory now
 *
 * Gives memory to every page of the range that has none (FREE pages become
 * HOT), so touching them cannot fail later.  -ENOMEM when memory on the
 * pool's node (or in the owner's memory cgroup) runs out; the pages
 * populated so far stay.  Restartable after -EINTR.
 */
struct kvmm_pool_populate {
	__u32 size;
	__u32 flags;
	__aligned_u64 first;
	__aligned_u64 count;
	__aligned_u64 populated;
};

#define KVMM_IOC_POOL_POPULATE	_IO(KVMM_TYPE, KVMM_CMD_POOL_POPULATE)

/**
 * struct kvmm_pool_residency - KVMM_IOC_POOL_SET_RESIDENCY (pool fd,
 *	writable): publish where the owner's pages are
 * @size: sizeof(struct kvmm_pool_residency)
 * @flags: must be 0
 * @pages: pages per KVMM_TIER_* (the owner's own accounting: GPU, this
 *	host pool, disk, in flight between tiers)
 *
 * The kernel only stores and shows the counts (sysfs, POOL_INFO/LIST).
 */
struct kvmm_pool_residency {
	__u32 size;
	__u32 flags;
	__aligned_u64 pages[KVMM_TIER_COUNT];
};

#define KVMM_IOC_POOL_SET_RESIDENCY _IO(KVMM_TYPE, KVMM_CMD_POOL_SET_RESIDENCY)

/**
 * struct kvmm_pool_eventfd - KVMM_IOC_POOL_SET_EVENTFD (pool fd, writable)
 * @size: sizeof(struct kvmm_pool_eventfd)
 * @flags: must be 0
 * @fd: an eventfd the kernel signals (adds 1 to) each time it drops pages
 *	of this pool; -1 removes it
 * @__reserved: must be 0
 *
 * One eventfd per pool (a new one replaces the old).  It is a wake-up
 * only: what was dropped is in the status area.
 */
struct kvmm_pool_eventfd {
	__u32 size;
	__u32 flags;
	__s32 fd;
	__u32 __reserved;
};

#define KVMM_IOC_POOL_SET_EVENTFD _IO(KVMM_TYPE, KVMM_CMD_POOL_SET_EVENTFD)

/*
 * The status area: mmap(NULL, len, PROT_READ, MAP_SHARED, pool_fd,
 * KVMM_STATUS_OFFSET) maps a struct kvmm_pool_status followed, at
 * gen_offset, by one __u32 generation per pool page.  The kernel bumps a
 * page's generation each time it drops the page's memory under memory
 * pressure (the page then reads as zeroes and is FREE), then bumps seq.
 * The owner notes a page's generation when it fills the page and compares
 * before it trusts the contents: a different value means the data is gone
 * (a miss: restore it from disk or recompute it).  Reading seq first tells
 * cheaply whether anything was dropped at all.  The area is read-only and
 * len may not exceed KVMM_STATUS_SIZE(pages) rounded up to the page size.
 */
#define KVMM_STATUS_OFFSET	_BITULL(42)
#define KVMM_STATUS_MAGIC	0x6b767374	/* "kvst" */
#define KVMM_STATUS_SIZE(pages)	(sizeof(struct kvmm_pool_status) + 4 * (pages))

/**
 * struct kvmm_pool_status - head of the status area (read-only)
 * @magic: KVMM_STATUS_MAGIC
 * @version: 1
 * @gen_offset: byte offset of the __u32 generations from the area's start
 * @__reserved0: 0
 * @pages: pool pages (entries in the generation array)
 * @seq: bumped after every drop, after the generations it changed
 * @dropped: pool pages dropped, ever
 * @__reserved: 0
 */
struct kvmm_pool_status {
	__u32 magic;
	__u32 version;
	__u32 gen_offset;
	__u32 __reserved0;
	__aligned_u64 pages;
	__aligned_u64 seq;
	__aligned_u64 dropped;
	__aligned_u64 __reserved[3];
};

#endif /* _UAPI_KVMM_H */
