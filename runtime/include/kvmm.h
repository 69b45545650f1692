/* SPDX-License-Identifier: MIT */
/*
 * kvmm.h - public API of libkvmm, the KV-cache memory manager.
 *
 * Conventions (every function below follows them):
 *  - Functions returning int return 0 (or a count) on success and a negative
 *    errno on failure; they never print, abort or exit.  On failure the
 *    objects passed in are left as they were (no partial state).
 *  - Every pointer and size argument is validated; a NULL or out-of-range
 *    argument gives -EINVAL, never a crash.
 *  - There is no global state: everything hangs off the objects below.
 *  - Each declaration says who owns what and which threads may call it.
 *    "Thread-safe" means any thread may call it concurrently with any other
 *    thread-safe call on the same object; "single caller" means the caller
 *    serialises calls on that object.
 *  - Device addresses are uint64_t (a CUdeviceptr on the CUDA backend, a
 *    process virtual address on the host backend).
 */
#ifndef KVMM_H
#define KVMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVMM_VERSION_MAJOR 0
#define KVMM_VERSION_MINOR 1
#define KVMM_VERSION_PATCH 0
#define KVMM_CHECK_VERSION(major, minor) \
	(KVMM_VERSION_MAJOR > (major) || \
	 (KVMM_VERSION_MAJOR == (major) && KVMM_VERSION_MINOR >= (minor)))

/* Run-time version of the library as major * 10000 + minor * 100 + patch. */
int kvmm_version(void);

/* Static description of an errno value (strerror without locale or state). */
const char *kvmm_strerror(int err);

/* ------------------------------------------------------------------------
 * Backends: where pages live.
 *
 * A backend implements the CUDA VMM semantics: reserve a virtual range,
 * create physical pages, map a page at any page-aligned address of a
 * reserved range (the same page at several addresses is an alias), set
 * access, unmap, release; plus copies and fills.
 *  - KVMM_BACKEND_CUDA: the CUDA driver's VMM API, libcuda loaded with dlopen.
 *  - KVMM_BACKEND_HOST: the same on CPU memory (mmap PROT_NONE reservation,
 *    pages are ranges of a memfd, MAP_FIXED|MAP_SHARED maps, aliasing by
 *    mapping one memfd range twice).  The default without a GPU.
 *  - KVMM_BACKEND_NULL: bookkeeping only, no bytes behind pages (for
 *    replaying production-scale traces); reads/writes return -ENOTSUP.
 *  - KVMM_BACKEND_AUTO: CUDA when a device is usable, else host; which one
 *    was picked is kvmm_backend_name(), and why CUDA was not is
 *    kvmm_backend_last_error() (libkvmm itself never prints).
 * ---------------------------------------------------------------------- */
enum kvmm_backend_type {
	KVMM_BACKEND_AUTO = 0,
	KVMM_BACKEND_HOST = 1,
	KVMM_BACKEND_CUDA = 2,
	KVMM_BACKEND_NULL = 3,
};

/* Backend flags. */
#define KVMM_BACKEND_HUGETLB (1u << 0) /* host: memfd with MFD_HUGETLB (2 MiB pages) */

struct kvmm_backend_config {
	enum kvmm_backend_type type;
	int device;	    /* CUDA device ordinal (cuda only) */
	uint32_t flags;	    /* KVMM_BACKEND_* */
	uint64_t page_size; /* 0: the backend's granularity (2 MiB on the H100
			     * and on the host backend); else a multiple of it */
};

struct kvmm_backend;

/* Counters of every backend call, by kind (index into calls[]). */
enum kvmm_backend_op {
	KVMM_OP_RESERVE,
	KVMM_OP_RELEASE_VA,
	KVMM_OP_CREATE,
	KVMM_OP_DESTROY,
	KVMM_OP_MAP,
	KVMM_OP_SET_ACCESS,
	KVMM_OP_UNMAP,
	KVMM_OP_COPY,
	KVMM_OP_FILL,
	KVMM_OP_SYNC,
	KVMM_OP__COUNT
};

struct kvmm_backend_stats {
	uint64_t calls[KVMM_OP__COUNT];	  /* successful and failed calls */
	uint64_t errors[KVMM_OP__COUNT];  /* failed calls */
	uint64_t time_ns[KVMM_OP__COUNT]; /* wall time spent in each kind */
	uint64_t pages_live;		  /* physical pages created, not destroyed */
	uint64_t va_reserved_bytes;
};

/*
 * Open a backend.  cfg may be NULL (auto, device 0).  *out is owned by the
 * caller and freed with kvmm_backend_close() after every cache using it is
 * destroyed.  -ENODEV: the requested backend is not usable here (no CUDA
 * device, or built without CUDA).  Thread-safe.
 */
int kvmm_backend_open(const struct kvmm_backend_config *cfg, struct kvmm_backend **out);
/* Close; NULL is a no-op.  Single caller, after all users are gone. */
void kvmm_backend_close(struct kvmm_backend *be);
/* "cuda", "host" or "null".  Thread-safe. */
const char *kvmm_backend_name(const struct kvmm_backend *be);
enum kvmm_backend_type kvmm_backend_get_type(const struct kvmm_backend *be);
/* Bytes of one physical page.  Thread-safe. */
uint64_t kvmm_backend_page_size(const struct kvmm_backend *be);
/* Snapshot of the call counters.  Thread-safe. */
int kvmm_backend_stats(const struct kvmm_backend *be, struct kvmm_backend_stats *st);
/* Human-readable description of the last driver error on this backend
 * (e.g. the CUDA error string); "" if none.  Thread-safe, informative. */
const char *kvmm_backend_last_error(const struct kvmm_backend *be);

/* Copies between host memory and backend (device) memory, synchronous.
 * Thread-safe.  -ENOTSUP on the null backend. */
int kvmm_memcpy_to_dev(struct kvmm_backend *be, uint64_t dst, const void *src, size_t n);
int kvmm_memcpy_to_host(struct kvmm_backend *be, void *dst, uint64_t src, size_t n);
int kvmm_memcpy_dev(struct kvmm_backend *be, uint64_t dst, uint64_t src, size_t n);
int kvmm_memset_dev(struct kvmm_backend *be, uint64_t dst, int byte, size_t n);

/* ------------------------------------------------------------------------
 * KV caches.
 *
 * A cache holds the K and V of every layer for up to max_seqs sequences of
 * up to max_tokens tokens each, in one reserved virtual range, with
 * physical pages mapped only as sequences grow.  Memory is handed out in
 * blocks: a block is the set of physical pages that holds tokens_per_block
 * consecutive tokens of one sequence for every layer, K and V:
 *  - token-major and page-major: one page per block;
 *  - layer-major: 2 * num_layers pages per block (one per layer and K/V).
 * Growth, sharing (prefix cache) and spilling (tiers) all work on blocks.
 * ---------------------------------------------------------------------- */
enum kvmm_layout {
	KVMM_LAYOUT_DEFAULT = 0, /* chosen from benchmarks; see docs/layouts.md */
	KVMM_LAYOUT_LAYER_MAJOR =
		1, /* vAttention: per layer, K and V each [seq][token][head][dim] */
	KVMM_LAYOUT_TOKEN_MAJOR = 2, /* per seq [token][layer][K/V][head][dim] */
	KVMM_LAYOUT_PAGE_MAJOR = 3,  /* per page [layer][K/V][T tokens][head][dim] */
};

enum kvmm_kv {
	KVMM_K = 0,
	KVMM_V = 1,
};

struct kvmm_shape {
	uint32_t num_layers;
	uint32_t num_kv_heads;
	uint32_t head_dim;
	uint32_t elem_size; /* bytes per element: 2 (fp16/bf16), 1 (fp8), 4 */
};

/* Cache flags. */
#define KVMM_CACHE_NO_MAPPER \
	(1u << 0) /* no background thread: kvmm_step maps
					* synchronously (tests, tools) */

/*
 * Called (from the thread that changed the budget or ran out of pages) when
 * the cache needs the caller to free pages: pages_needed more pages must be
 * released (close sequences, evict prefixes) before the budget holds.
 */
typedef void (*kvmm_pressure_fn)(void *arg, uint64_t pages_needed);

struct kvmm_cache_config {
	struct kvmm_shape shape;
	enum kvmm_layout layout;
	uint32_t max_seqs;	   /* sequence slots */
	uint32_t max_tokens;	   /* per sequence */
	uint64_t budget_bytes;	   /* hard cap on physical bytes; never exceeded */
	uint64_t reserve_bytes;	   /* pages created at create time (<= budget) */
	uint32_t map_ahead_tokens; /* mapper keeps each active sequence mapped this
				    * far past its length (0: a quarter block
				    * but at most 16 tokens, at least one) */
	uint32_t flags;		   /* KVMM_CACHE_* */
	kvmm_pressure_fn pressure; /* optional */
	void *pressure_arg;
	uint64_t low_water_bytes; /* the mapper creates pages in the background
				   * while fewer than this many bytes of pages
				   * are free (within the budget; 0:
				   * reserve_bytes) */
};

struct kvmm_cache;

/*
 * Create a cache on backend be (which must outlive it).  Reserves the whole
 * virtual range, creates reserve_bytes of pages and starts the mapper.
 * -EINVAL bad shape/limits (also: a token of all layers larger than a page
 * in token-/page-major, or a row larger than a page in layer-major),
 * -ENOMEM reserve over budget or out of memory, -E2BIG virtual range too
 * large.  Thread-safe.
 *
 * Each physical page is also mapped once at a fixed "home" address outside
 * the sequences (so cached prefixes can be copied and spilled without a
 * temporary mapping).  On the host backend every mapping is a VMA: a cache
 * uses up to (pages mapped in sequences + pages created) of the process's
 * vm.max_map_count (65530 by default); size pages and budgets accordingly.
 */
int kvmm_cache_create(struct kvmm_backend *be, const struct kvmm_cache_config *cfg,
		      struct kvmm_cache **out);
/* Stop the mapper, unmap and release everything.  NULL is a no-op.  Single
 * caller; no other call on the cache may be running or follow. */
void kvmm_cache_destroy(struct kvmm_cache *c);

/* Geometry of a cache (fixed at creation). */
struct kvmm_cache_info {
	struct kvmm_shape shape;
	enum kvmm_layout layout; /* never DEFAULT: the layout actually used */
	uint32_t max_seqs;
	uint32_t max_tokens;
	uint64_t page_size;
	uint32_t tokens_per_block;
	uint32_t pages_per_block;
	uint64_t block_bytes;	 /* pages_per_block * page_size */
	uint64_t token_bytes;	 /* KV bytes of one token, all layers, K and V */
	uint64_t va_bytes;	 /* virtual range reserved */
	uint32_t blocks_per_seq; /* max_tokens rounded up to blocks */
	uint32_t __pad;
};
/* Thread-safe. */
int kvmm_cache_get_info(const struct kvmm_cache *c, struct kvmm_cache_info *info);
/* Name of a layout ("layer-major", ...).  Thread-safe. */
const char *kvmm_layout_name(enum kvmm_layout layout);

/* ---- sequences --------------------------------------------------------- */

/*
 * Admit a sequence expected to hold expected_tokens soon (its prompt; a
 * hint, 0 = unknown).  Picks a free slot, preferring one whose deferred
 * pages already cover the hint (best fit), and asks the mapper to map that
 * much (best effort; kvmm_seq_reserve guarantees it).  The slot id goes to
 * *seq: it is the s of the view formula.  -ENOSPC no free slot, -EINVAL
 * bad hint (over max_tokens).  Thread-safe.
 */
int kvmm_seq_open(struct kvmm_cache *c, uint32_t expected_tokens, uint32_t *seq);
/*
 * Finish a sequence.  Its own pages stay mapped for the next sequence in
 * the slot (deferred reclamation); shared pages are released.  Thread-safe;
 * the caller guarantees no kernel still reads the sequence.
 */
int kvmm_seq_close(struct kvmm_cache *c, uint32_t seq);
/*
 * Make room for ntokens tokens now (prefill), mapping synchronously what the
 * mapper has not mapped yet.  Does not change the length; the room stays
 * the sequence's until it closes (it is never taken back as map-ahead).
 * -ENOMEM when the budget cannot supply the pages (the reservation is
 * unchanged; the pressure callback is told how many pages were short),
 * -EFBIG over max_tokens.  Thread-safe.
 */
int kvmm_seq_reserve(struct kvmm_cache *c, uint32_t seq, uint32_t ntokens);
/* Current length in tokens, or negative errno.  Thread-safe. */
int64_t kvmm_seq_len(const struct kvmm_cache *c, uint32_t seq);

struct kvmm_step_entry {
	uint32_t seq;
	uint32_t len; /* new length after this step */
};
/*
 * Declare the new lengths of a batch (once per engine iteration, before the
 * forward pass).  Returns at once when every sequence is already mapped far
 * enough (the steady state: no driver call, no allocation); otherwise waits
 * for the mapper (counted in stats.mapper_waits) or, without a mapper, maps
 * synchronously (counted in stats.critical_path_driver_calls).  Lengths may
 * shrink (rollback of speculative tokens) but not below a shared prefix
 * (-EPERM); a shrinking sequence keeps its blocks until the step has
 * succeeded, so a step needs room for each entry's larger length.  -EINVAL unknown or closed sequence, or one listed twice;
 * -EFBIG over max_tokens; -ENOMEM if pages cannot be had within the budget
 * (the pressure callback is told how many pages were short).  On any error
 * no length in the batch changed.  Thread-safe, but one step at a time per
 * sequence.
 */
int kvmm_step(struct kvmm_cache *c, const struct kvmm_step_entry *batch, uint32_t n);

/* ---- views: what a kernel needs to read/write KV -----------------------
 *
 * The byte address of element (seq s, token t, head h, dim d) of one layer's
 * K or V is
 *   base + s * seq_stride + (t / tokens_per_page) * page_stride
 *        + (t % tokens_per_page) * token_stride + h * head_stride + d * elem_size
 * For layer-major and token-major page_stride == tokens_per_page *
 * token_stride (a uniform token stride); page-major is a paged view whose
 * page table is the identity (kvmm_view_page_table()).
 */
struct kvmm_view {
	uint64_t base;
	uint64_t seq_stride;
	uint64_t page_stride;
	uint64_t token_stride;
	uint64_t head_stride;
	uint32_t tokens_per_page;
	uint32_t layout; /* enum kvmm_layout */
	uint32_t num_heads;
	uint32_t head_dim;
	uint32_t elem_size;
	uint32_t max_seqs;
	uint32_t max_tokens;
	uint32_t __pad;
};
/* View of layer's K or V.  Valid for the cache's lifetime.  Thread-safe. */
int kvmm_cache_view(const struct kvmm_cache *c, uint32_t layer, enum kvmm_kv kv,
		    struct kvmm_view *view);
/*
 * Fill table[seq * pages_per_seq + p] with the page index (relative to
 * view->base, in units of page_stride) of page p of each sequence, for
 * kernels that take a block table.  For kvmm's layouts this is the identity
 * (seq * pages_per_seq + p).  It needs max_seqs * pages_per_seq entries
 * (pages_per_seq = seq_stride / page_stride); table == NULL with n == 0
 * returns that count.  Returns the entries written, -EINVAL (n too small),
 * -EOVERFLOW (indices do not fit int32).  Thread-safe.
 */
int kvmm_view_page_table(const struct kvmm_view *view, int32_t *table, size_t n);

/*
 * Copy KV between host memory and a sequence: ntok tokens from token tok0 of
 * one layer's K or V, host side laid out [ntok][num_kv_heads][head_dim].
 * Tokens must lie below the sequence's length, its reservation
 * (kvmm_seq_reserve) or its attached prefix, else -ERANGE: what lies above
 * is map-ahead, which the cache may take back under pressure.  Writing a
 * token that lies in a block shared with the prefix cache gives -EPERM
 * (shared blocks are immutable).  Thread-safe for distinct sequences.
 */
int kvmm_seq_write(struct kvmm_cache *c, uint32_t seq, uint32_t layer, enum kvmm_kv kv,
		   uint32_t tok0, uint32_t ntok, const void *src);
int kvmm_seq_read(struct kvmm_cache *c, uint32_t seq, uint32_t layer, enum kvmm_kv kv,
		  uint32_t tok0, uint32_t ntok, void *dst);

/* ---- budget ------------------------------------------------------------ */

/*
 * Change the physical budget at run time.  Growing takes effect at once.
 * Shrinking destroys free pages, then unmaps deferred pages of idle slots
 * and map-ahead pages of active ones, then asks the prefix cache to evict;
 * if that is not enough, *pages_short (may be NULL) gets the number of
 * pages the caller must still free (pages that sequences need or that are
 * pinned, over the new budget), the pressure callback is called with it,
 * and no new page is created until the cache is under the new budget.
 * Pages being created when it is called land first (it waits for them), so
 * none appear beyond the new budget after it returns; pages that other
 * threads are mapping or unmapping at that moment are given back by the
 * mapper shortly after.  Returns 0, or -EINVAL.  Thread-safe.
 */
int kvmm_cache_set_budget(struct kvmm_cache *c, uint64_t budget_bytes, uint64_t *pages_short);

/* ---- stats ------------------------------------------------------------- */
struct kvmm_cache_stats {
	uint64_t budget_bytes;
	uint64_t pages_created;	 /* physical pages alive or being created
				  * (<= budget / page_size, unless the budget
				  * shrank below what is in use) */
	uint64_t pages_free;	 /* created, on the free list */
	uint64_t pages_mapped;	 /* own pages mapped in active sequences */
	uint64_t pages_deferred; /* mapped in idle slots, reusable */
	uint64_t pages_shared;	 /* held by the prefix cache */
	uint64_t pages_peak;	 /* max pages_created ever */
	uint64_t seqs_active;
	uint64_t tokens_used;  /* sum of active lengths */
	uint64_t bytes_used;   /* tokens_used * token_bytes */
	uint64_t bytes_mapped; /* bytes of blocks mapped in active sequences
				* (own and shared; a shared block counts once
				* per sequence, as its tokens do in bytes_used) */
	uint64_t step_calls;
	uint64_t mapper_waits; /* kvmm_step calls that had to wait */
	uint64_t mapper_wait_ns;
	uint64_t mapper_pages_mapped;
	uint64_t critical_path_driver_calls; /* driver calls made inside kvmm_step */
	uint64_t alloc_failures;	     /* -ENOMEM returned */
	uint64_t mapper_driver_calls;	     /* driver calls made by the mapper */
	uint64_t pages_reused;		     /* deferred pages a new sequence found mapped */
	uint64_t steals_idle;		     /* deferred blocks unmapped for another slot */
	uint64_t steals_ahead;		     /* map-ahead blocks taken back under pressure */
	uint64_t pages_destroyed;	     /* given back (budget shrink) */
	uint64_t reclaim_calls;		     /* prefix-cache evictions asked for */
	uint64_t pressure_calls;	     /* pressure callback calls */
	struct kvmm_backend_stats backend;
};
/* Consistent snapshot (taken under the cache lock).  Thread-safe. */
int kvmm_cache_stats(const struct kvmm_cache *c, struct kvmm_cache_stats *st);
/* The same as one JSON object into buf (NUL-terminated).  Returns the
 * length it needs (excluding the NUL), like snprintf; -EINVAL.  Thread-safe. */
int kvmm_cache_stats_json(const struct kvmm_cache *c, char *buf, size_t len);

struct kvmm_seq_stats {
	uint32_t len;
	uint32_t mapped_tokens; /* capacity mapped */
	uint32_t shared_tokens; /* prefix attached from the prefix cache */
	uint32_t blocks_mapped;
	uint64_t bytes_used;
	uint64_t bytes_mapped;
};
/* One sequence's residency.  -EINVAL unknown or closed.  Thread-safe. */
int kvmm_seq_stats(const struct kvmm_cache *c, uint32_t seq, struct kvmm_seq_stats *st);

/* ------------------------------------------------------------------------
 * Prefix cache (RadixAttention-style), built into a cache.
 *
 * A radix tree over token ids whose nodes own whole blocks (see
 * docs/prefix.md).  Keys live in a namespace: entries of different
 * namespaces never match.  Every function below also accepts ns == NULL,
 * the all-zero namespace.
 *
 * Shared blocks are immutable by construction: a sequence that attached
 * them by alias maps them read-only (a write through the mapping faults),
 * kvmm_seq_write gives -EPERM on them, kvmm_step refuses to shrink below
 * them, and a partially matched last block is always copied.  Blocks a
 * running sequence uses are never evicted (nor recycled while it maps
 * them).
 * ---------------------------------------------------------------------- */
enum kvmm_evict_policy {
	KVMM_EVICT_LRU = 0, /* leaf-first least recently used (default) */
	KVMM_EVICT_LFU = 1, /* leaf-first least frequently used, then LRU */
};

enum kvmm_attach_mode {
	KVMM_ATTACH_AUTO = 0,  /* chosen from measured costs and memory pressure */
	KVMM_ATTACH_ALIAS = 1, /* map cached pages at the sequence's addresses */
	KVMM_ATTACH_COPY = 2,  /* copy cached pages into the sequence's pages */
};

struct kvmm_prefix_config {
	enum kvmm_evict_policy policy;
	enum kvmm_attach_mode attach; /* what AUTO in kvmm_seq_attach_prefix
				       * means: AUTO (the cost rule) or a
				       * forced mode */
	uint32_t admit_hits;	      /* insert a prefix only once it was offered this
				* many times (0 or 1: always) */
	uint32_t flags;		      /* none defined yet: must be 0 */
	uint64_t max_bytes;	      /* cap on blocks held by the prefix cache (0: only
			      * the budget); at least one block */
	uint64_t hint_ttl_ns;	      /* a hint protects its prefix until this long
			       * after the time it named (0: 10 s) */
	/* The clock of hint times and their expiry (NULL: CLOCK_MONOTONIC);
	 * a simulator passes its virtual clock.  Called with the prefix
	 * cache's lock held: it must not call into kvmm. */
	uint64_t (*clock)(void *arg);
	void *clock_arg;
	/* Per-page attach costs for the AUTO rule, in ns per page of the
	 * backend's granularity (2 MiB on the H100), given instead of
	 * measured: a simulator on the null backend prices an H100 with
	 * them.  0: measured on the backend at enable time, as without
	 * them.  When all three are given nothing is measured (no block is
	 * allocated for it, and AUTO's choices do not vary from run to
	 * run).  Each at most KVMM_PREFIX_COST_MAX_NS (-EINVAL above). */
	uint64_t cost_map_ns;	/* map + set_access of one page */
	uint64_t cost_unmap_ns; /* unmap of one page */
	uint64_t cost_copy_ns;	/* device-to-device copy of one page */
};

/* Largest attach cost kvmm_prefix_config takes: 1 s per page. */
#define KVMM_PREFIX_COST_MAX_NS 1000000000ull

/* Namespace: model, adapter, tenant salt.  Hashed with the tokens. */
struct kvmm_ns {
	uint64_t model_id;
	uint64_t adapter_id;
	uint64_t tenant_salt;
};

struct kvmm_prefix_handle;

/*
 * Enable the prefix cache on c (once: -EEXIST after).  cfg may be NULL
 * (LRU, AUTO, no admission threshold, no cap).  Measures the attach costs
 * on c's backend (a few map/copy calls on two free blocks), except those
 * the config gives.  -EINVAL bad config.  Thread-safe.
 */
int kvmm_prefix_enable(struct kvmm_cache *c, const struct kvmm_prefix_config *cfg);
/*
 * Longest cached prefix of tokens[0..n) in ns.  *matched gets its length in
 * tokens: whole blocks, plus, when the next cached block starts with some
 * of the following tokens, that many more (a partial block, which an
 * attach copies).  *h gets a handle that pins the matched blocks until
 * kvmm_prefix_release(), or NULL when nothing matched.  The engine must
 * still compute at least the last prompt token: match n - 1 tokens when it
 * needs that token's logits.  -EINVAL (also: prefix cache not enabled),
 * -ENOMEM.  Thread-safe.
 */
int kvmm_prefix_match(struct kvmm_cache *c, const struct kvmm_ns *ns, const uint32_t *tokens,
		      uint32_t n, struct kvmm_prefix_handle **h, uint32_t *matched);
/*
 * Make the matched prefix the first tokens of seq (which must be empty:
 * -EBUSY otherwise), by alias or copy (mode; AUTO: the config's attach,
 * whose AUTO weighs the measured costs and memory pressure).  A partial
 * last block is always copied (copy-on-write).  Sets the sequence's length
 * to the matched length.  The handle stays valid; release it after.  On
 * an error the length is unchanged (copies may have been made into the
 * sequence's own blocks).  -EINVAL, -ENOMEM, or a driver error.
 * Thread-safe; calls on one sequence are serialised by the caller.
 */
int kvmm_seq_attach_prefix(struct kvmm_cache *c, uint32_t seq, struct kvmm_prefix_handle *h,
			   enum kvmm_attach_mode mode);
/*
 * Publish seq's full blocks holding tokens[0..n) (n <= its length) so later
 * requests can match them; blocks already cached are not published again.
 * Published blocks become immutable for seq (kvmm_seq_write -EPERM, no
 * rollback below them), even those the cache then declines (admission
 * threshold, max_bytes full of pinned blocks).  An insert continues from
 * the prefix seq attached or last inserted, when still cached: only the
 * tokens after it are read, and the new blocks are keyed by that prefix,
 * which is what their KV was computed on; tokens[] must still hold it, and
 * its last block is checked (-EINVAL when it differs).  Returns the number
 * of tokens newly cached, -EINVAL, -EBUSY (a block is being mapped),
 * -ENOMEM.  Thread-safe; calls on one sequence are serialised by the
 * caller.
 */
int kvmm_prefix_insert(struct kvmm_cache *c, uint32_t seq, const struct kvmm_ns *ns,
		       const uint32_t *tokens, uint32_t n);
/* Unpin and free; NULL is a no-op.  Handles not released are freed by
 * kvmm_cache_destroy.  Thread-safe. */
void kvmm_prefix_release(struct kvmm_cache *c, struct kvmm_prefix_handle *h);
/*
 * Say tokens[0..n) in ns will be needed at time when_ns (on the config's
 * clock, CLOCK_MONOTONIC by default):
 * its cached whole blocks are evicted after every unhinted block (those
 * needed latest first) until hint_ttl_ns after the latest hinted time (and
 * prefetched from lower tiers).  Not an access (LRU order is unchanged).
 * Returns the number of tokens hinted, or -EINVAL, -ENOMEM.  Thread-safe.
 */
int kvmm_prefix_hint(struct kvmm_cache *c, const struct kvmm_ns *ns, const uint32_t *tokens,
		     uint32_t n, uint64_t when_ns);
/* Evict up to nblocks unpinned blocks now (leaf first, by policy).  Returns
 * the number evicted (-EINVAL, -ENOMEM).  Thread-safe. */
int kvmm_prefix_evict(struct kvmm_cache *c, uint32_t nblocks);

enum kvmm_evict_reason {
	KVMM_EVICT_PRESSURE = 0, /* the budget needed pages */
	KVMM_EVICT_CAP = 1,	 /* over the prefix cache's max_bytes */
	KVMM_EVICT_EXPLICIT = 2, /* kvmm_prefix_evict() */
	KVMM_EVICT__COUNT
};

struct kvmm_prefix_stats {
	uint64_t lookups;
	uint64_t lookup_tokens;
	uint64_t hit_tokens; /* hit rate: hit_tokens / lookup_tokens */
	uint64_t inserts;
	uint64_t inserted_tokens;
	uint64_t nodes;
	uint64_t blocks_cached;
	uint64_t blocks_pinned;
	uint64_t blocks_shared;		       /* cached blocks mapped in >= 1 active sequence */
	uint64_t sharing_refs;		       /* sum over cached blocks of active sequences
				 * mapping them (sharing degree: refs / shared) */
	uint64_t evictions[KVMM_EVICT__COUNT]; /* blocks, by reason */
	uint64_t attach_alias;
	uint64_t attach_copy;
	uint64_t admission_rejects; /* blocks declined by admit_hits */
	/* since 0.1: */
	uint64_t cap_rejects; /* blocks declined: max_bytes full of pinned ones */
	uint64_t hints;
	uint64_t blocks_hinted; /* cached blocks under a hint (expired ones
				 * until the next eviction looks) */
	uint64_t namespaces;
	uint64_t attach_auto; /* attaches whose mode the cost rule chose */
	/* the AUTO rule's costs, measured or given by the config: */
	uint64_t cost_map_ns;	/* map + set_access of one page */
	uint64_t cost_unmap_ns; /* unmap of one page */
	uint64_t cost_copy_ns;	/* device copy of one page */
};
/* Snapshot.  -EINVAL (also: not enabled).  Thread-safe. */
int kvmm_prefix_stats(const struct kvmm_cache *c, struct kvmm_prefix_stats *st);

/* ------------------------------------------------------------------------
 * Tiers (AttentionStore-style): cold prefix blocks spill from the device to
 * a pinned host pool and on to disk, and are restored ahead of use.
 *
 * Built on the prefix cache: a block the prefix cache evicts is copied to
 * the host pool first (and, by policy, written to disk) instead of being
 * lost; kvmm_prefix_prefetch() brings a prefix's spilled blocks back into
 * the prefix cache, where kvmm_prefix_match() then finds them.  Spilled
 * blocks are records (docs/disk-format.md) keyed by a hash chained over the
 * prefix's token ids in its namespace, so after a restart the prefixes on
 * disk are hits again.  Every record is checksummed and verified (with its
 * token ids and parent) before any request can see its block: a corrupt,
 * torn, short or unreadable record is a miss, counted and logged once,
 * never data.  A block being restored is not visible to any request until
 * its copy is complete and its checksum verified (the checksum is computed
 * while the copy runs).  docs/tiers.md describes the design.
 * ---------------------------------------------------------------------- */

/* Residency of blocks (the same numbering as the kernel module's tiers). */
enum kvmm_residency {
	KVMM_RES_GPU = 0,      /* in the prefix cache, on the device */
	KVMM_RES_HOST = 1,     /* a record in the pinned host pool */
	KVMM_RES_DISK = 2,     /* a record on disk */
	KVMM_RES_INFLIGHT = 3, /* being spilled or restored */
	KVMM_RES__COUNT
};

enum kvmm_write_policy {
	KVMM_WRITE_BACK = 0,	/* copy down when evicted from the tier above */
	KVMM_WRITE_THROUGH = 1, /* copy down as soon as the tier above has it */
};

/*
 * Encoding of spilled payloads (quantize-on-spill; off by default).  FP8
 * and INT8 store each row of head_dim elements (one token of one head) as
 * 1-byte values and one fp32 scale (about half the bytes over PCIe, in
 * the host pool and on disk; kvmm_pack()'s layout), on the GPU with
 * libkvmm's pack kernels, elsewhere on the CPU.  A restored element x' of
 * x, with amax the largest |x| of its row, u the cache type's unit
 * roundoff (2^-8 bf16, 2^-11 fp16) and nu half its smallest subnormal
 * step (2^-134 bf16, 2^-25 fp16):
 *   INT8: |x' - x| <= amax / 254 + u |x'| + nu
 *   FP8:  |x' - x| <= max(|x| / 16, amax / 458752) + u |x'| + nu
 * The cache must hold fp16 or bf16 (elem_size 2; kv_dtype says which).
 */
enum kvmm_spill_encoding {
	KVMM_SPILL_RAW = 0,  /* the block's bytes */
	KVMM_SPILL_FP8 = 1,  /* FP8 e4m3 + per-token-per-head scales (fp16/bf16 caches) */
	KVMM_SPILL_INT8 = 2, /* INT8 + per-token-per-head scales (fp16/bf16 caches) */
};

/* Where the host pool lives. */
enum kvmm_host_placement {
	KVMM_HOST_GPU_NODE = 0, /* the NUMA node of the GPU (any without one) */
	KVMM_HOST_ANY_NODE = 1, /* no placement */
	KVMM_HOST_NODE = 2,	/* kvmm_tiers_config.host_node */
};

/* kvmm_tiers_config.flags */
#define KVMM_TIERS_HOST_THP	 (1u << 0) /* transparent huge pages, never the module's pool */
#define KVMM_TIERS_HOST_HUGETLB	 (1u << 1) /* 2 MiB hugetlb pages (must be reserved) */
#define KVMM_TIERS_NO_KMOD	 (1u << 2) /* never the kernel module's pools */
#define KVMM_TIERS_DISK_BUFFERED (1u << 3) /* allow a filesystem without O_DIRECT */
#define KVMM_TIERS_DISK_DISCARD	 (1u << 4) /* start with an empty disk tier */
#define KVMM_TIERS_DISK_SCAN_HEADERS \
	(1u << 5) /* restart scan reads headers only
						* (payloads are verified on read) */
#define KVMM_TIERS_NO_VERIFY_HOST \
	(1u << 6)			 /* trust host records (disk ones are
						* always verified) */
#define KVMM_TIERS_HOST_NO_THP (1u << 7) /* 4 KiB pages for the pool (default: THP) */

struct kvmm_tiers_config {
	uint64_t host_bytes; /* pinned host pool; at least one record */
	enum kvmm_host_placement host_placement;
	int32_t host_node;		    /* with KVMM_HOST_NODE */
	uint32_t host_threads;		    /* pool creation threads (0: the node's CPUs, <= 16) */
	enum kvmm_write_policy host_policy; /* device -> host: at eviction, or as soon
					     * as a block is inserted (off the
					     * critical path) */
	const char *disk_dir;		    /* NULL: no disk tier */
	uint64_t disk_bytes;		    /* disk tier capacity */
	uint32_t disk_queue_depth;	    /* 0: 64 */
	enum kvmm_write_policy disk_policy; /* host -> disk: when a record leaves the
					     * host pool, or at once */
	uint32_t disk_admit_hits;	    /* write a block to disk only once it was
					     * used again this many times (SSD
					     * endurance; 0: always) */
	enum kvmm_spill_encoding encoding;
	uint32_t flags; /* KVMM_TIERS_* */
	/* errors and placement problems, once per kind; may be NULL */
	void (*log)(void *arg, const char *msg);
	void *log_arg;
	uint32_t kv_dtype; /* with FP8/INT8: the cache's element type,
			    * KVMM_DTYPE_FP16 or KVMM_DTYPE_BF16 (Kernels
			    * section); 0 otherwise */
	uint32_t __pad;
	/*
	 * The name of a persistent kvmm.ko pool to hold the host tier (NULL:
	 * the process's own pool, gone with it).  Created when missing; else
	 * re-opened (it must have the same size and nobody else may have it
	 * open: -EEXIST, -EBUSY) and its records found again, each verified
	 * like the disk's: a restarted server hits on the prefixes it had in
	 * host RAM without touching the disk.  Needs the module (-ENODEV
	 * without it); not with HOST_THP, HOST_HUGETLB or NO_KMOD.  The pool
	 * stays until kvmm_hostpool_destroy() (or kvmmctl) removes it.
	 */
	const char *host_pool_name;
};

/*
 * Enable the tiers on c, whose prefix cache must be enabled (-EINVAL
 * otherwise); once (-EEXIST).  Creates the host pool (on the GPU's node,
 * pre-touched and pinned in parallel; the kernel module's pool when
 * /dev/kvmm exists) and opens the disk tier (scanning what it holds: a
 * restarted server finds its prefixes again).  -EINVAL bad config, -ENOMEM,
 * -EBUSY (another process uses disk_dir), or the error of the host pool or
 * disk.  On the null backend the tiers are bookkeeping only (docs/tiers.md):
 * their real index, capacity, eviction and policies, but no host memory,
 * no disk file (disk_dir only names the tier) and nothing verified; no
 * host_pool_name there (-EINVAL).  Thread-safe.
 */
int kvmm_tiers_enable(struct kvmm_cache *c, const struct kvmm_tiers_config *cfg);

struct kvmm_prefetch;

/* kvmm_prefix_prefetch flags */
/* Gather every record on the host first, then copy layer by layer
 * (kvmm_seq_attach_prefetch); covers at most half the host pool's blocks. */
#define KVMM_PREFETCH_LAYERWISE (1u << 0)

/*
 * Start restoring the blocks of tokens[0..n) in ns that are on the host or
 * disk tier but not in the prefix cache, in prefix order, stopping at the
 * first block no tier has.  *found gets the tokens the prefix cache will
 * hold once the prefetch completes (what is cached already included; whole
 * blocks).  Blocks are inserted into the prefix cache as each one (and all
 * before it) is complete, so kvmm_prefix_match() then finds them.  Where the
 * host pool is full of records not yet on disk (write-back), the restore
 * writes them back and waits for the writes to make room.  *pf (NULL
 * when there is nothing to restore) keeps the prefix pinned until released.
 * -EINVAL (also: tiers not enabled), -ENOMEM.  Thread-safe.
 */
int kvmm_prefix_prefetch(struct kvmm_cache *c, const struct kvmm_ns *ns, const uint32_t *tokens,
			 uint32_t n, uint32_t flags, struct kvmm_prefetch **pf, uint32_t *found);
/*
 * Wait until the first `tokens` tokens are in the prefix cache (restored),
 * the prefetch stopped (a miss, a failed read or checksum), or timeout_ns
 * passed (0: do not wait; UINT64_MAX: no limit).  Returns the tokens in the
 * prefix cache now (< tokens: stopped or timed out), or -EINVAL.  A caller
 * waits only for the part it needs.  Thread-safe.
 */
int64_t kvmm_prefetch_wait(struct kvmm_cache *c, struct kvmm_prefetch *pf, uint32_t tokens,
			   uint64_t timeout_ns);
/* Unpin; waits for copies in flight.  NULL is a no-op.  Thread-safe. */
void kvmm_prefetch_release(struct kvmm_cache *c, struct kvmm_prefetch *pf);

/*
 * Layer-wise restore (a prefetch started with KVMM_PREFETCH_LAYERWISE):
 * make the prefetch's whole prefix the start of seq (which must be empty)
 * as soon as every record is verified on the host, before the copies to the
 * device finish; layer l of those blocks may be read once
 * kvmm_prefetch_wait_layer(l) returned 0 (or, on CUDA, once a stream waited
 * for kvmm_prefetch_layer_event(l)), so layer 0 computes while later layers
 * arrive.  Returns the attached length in tokens, -EINVAL, -ENOENT (nothing
 * restored: attach with kvmm_prefix_match instead), -EIO (a record failed:
 * nothing attached).  If a copy fails afterwards, wait_layer says so and
 * the sequence must be closed (its KV is incomplete).  Thread-safe.
 */
int kvmm_seq_attach_prefetch(struct kvmm_cache *c, uint32_t seq, struct kvmm_prefetch *pf);
int kvmm_prefetch_wait_layer(struct kvmm_cache *c, struct kvmm_prefetch *pf, uint32_t layer);
/* CUDA: the CUevent (as a uint64_t) that layer l's copies complete by (one
 * event may cover several layers, e.g. token-major; 0: nothing to wait for,
 * as on other backends); valid until release.  Thread-safe. */
int kvmm_prefetch_layer_event(struct kvmm_cache *c, struct kvmm_prefetch *pf, uint32_t layer,
			      uint64_t *event);

/* Wait until every spill queued so far (to the host pool and to disk) is
 * done, and every prefetch started so far (a hint's too) has nothing left
 * in flight.  Thread-safe. */
int kvmm_tiers_flush(struct kvmm_cache *c);

struct kvmm_tiers_stats {
	uint64_t blocks[KVMM_RES__COUNT]; /* residency now, per tier */
	/* host pool */
	uint64_t host_bytes, host_slot_bytes;
	uint64_t host_slots, host_slots_free;
	int32_t host_node;	 /* NUMA node of the pool, -1 none */
	uint32_t host_pinned;	 /* registered with the CUDA driver */
	uint64_t host_create_ns; /* pool creation time */
	/* disk */
	uint64_t disk_capacity_bytes, disk_used_bytes;
	uint32_t disk_direct;	  /* O_DIRECT in use */
	uint32_t disk_scan_found; /* records the restart scan found */
	uint64_t disk_scan_ns;
	/* traffic (blocks; bytes are payload bytes moved) */
	uint64_t spills_host, spill_host_bytes; /* device -> host */
	uint64_t spills_disk, spill_disk_bytes; /* host -> disk */
	uint64_t restores_host, restores_disk;	/* blocks restored, by source */
	uint64_t restore_bytes;
	uint64_t prefetches, prefetch_blocks; /* blocks a prefetch asked for */
	/* policy */
	uint64_t spill_skipped;	       /* evictions not spilled (host pool full) */
	uint64_t host_evictions;       /* records dropped from the host pool */
	uint64_t host_drops_unwritten; /* of which not on disk (not admitted) */
	uint64_t disk_admit_rejects;   /* writes held back by disk_admit_hits */
	uint64_t disk_evictions;
	/* never wrong KV */
	uint64_t verify_failures;  /* records that failed a check on restore */
	uint64_t io_errors;	   /* failed or short disk requests */
	uint64_t restore_failures; /* blocks a prefetch could not restore */
	uint64_t host_reclaimed;   /* host records the kernel module dropped
				    * under memory pressure (read as misses) */
	uint32_t encoding;	   /* enum kvmm_spill_encoding */
	uint32_t quant_on_device;  /* quantized by the GPU's pack kernels (0: the
				    * CPU's codec, or raw) */
	char host_source[96];	   /* "anon", "kvmm pool <name>", ... */
	uint64_t host_scan_found;  /* records found in a re-opened persistent pool */
	uint64_t host_scan_ns;
	/* 1 on the null backend: the tiers keep their real index, capacity,
	 * eviction, write policies and counters (bytes counted as moved), but
	 * no bytes exist: nothing was copied, written, read or verified
	 * (verify_failures and io_errors stay 0; docs/tiers.md) */
	uint32_t bookkeeping_only;
	uint32_t __pad2;
};
/* Snapshot.  -EINVAL (also: tiers not enabled).  Thread-safe. */
int kvmm_tiers_stats(const struct kvmm_cache *c, struct kvmm_tiers_stats *st);
/* The same as one JSON object (like kvmm_cache_stats_json). */
int kvmm_tiers_stats_json(const struct kvmm_cache *c, char *buf, size_t len);

/* ------------------------------------------------------------------------
 * Host page pools of the kvmm kernel module (/dev/kvmm, docs/kmod.md).
 *
 * A pool is host memory that kvmm.ko owns: pages on one NUMA node (or the
 * node of a PCI device such as the GPU), charged to the creator's memory
 * cgroup, counted against host-wide and per-uid limits, shared by name
 * between processes, optionally outliving them, visible to operators
 * (sysfs, kvmmctl).  The pool is mapped at kvmm_hostpool_base() for its whole
 * life.  Each pool page (4 KiB or 2 MiB) is HOT (kept), COLD (the kernel
 * may drop it under memory pressure: the data must have a copy elsewhere)
 * or FREE (no data, memory released).  A dropped page reads as zeroes and
 * its generation (kvmm_hostpool_page_gen(), read without a syscall) changes:
 * treat that as a miss.
 *
 * Without the module, kvmm_probe() says -ENODEV; a pool created with
 * KVMM_HOSTPOOL_CFG_FALLBACK is then ordinary shared memory bound to the node
 * (mmap + mbind + pre-touch with KVMM_HOSTPOOL_CFG_POPULATE): the same calls work,
 * but the pool has no name (cannot be opened or destroyed by others), is
 * never reclaimed and goes with its handle.
 * ---------------------------------------------------------------------- */
#define KVMM_HOSTPOOL_NODE_ANY (-1)

/* struct kvmm_hostpool_config.flags */
#define KVMM_HOSTPOOL_CFG_PERSISTENT	 (1u << 0) /* outlives its handles until destroyed */
#define KVMM_HOSTPOOL_CFG_POPULATE	 (1u << 2) /* every page gets memory at creation */
#define KVMM_HOSTPOOL_CFG_GPU_NODE	 (1u << 3) /* node: the node of PCI device pci_dev */
#define KVMM_HOSTPOOL_CFG_FALLBACK	 (1u << 8) /* no module: use ordinary memory */
#define KVMM_HOSTPOOL_CFG_FORCE_FALLBACK (1u << 9) /* ordinary memory even with the module */

/* kvmm_hostpool_open() flags */
#define KVMM_HOSTPOOL_READ_ONLY (1u << 0)

enum kvmm_hostpool_page_state {
	KVMM_HOSTPOOL_PAGE_FREE = 0,
	KVMM_HOSTPOOL_PAGE_HOT = 1,
	KVMM_HOSTPOOL_PAGE_COLD = 2,
};

/* Tiers of kvmm_hostpool_set_residency() */
enum kvmm_hostpool_tier {
	KVMM_HOSTPOOL_TIER_GPU = 0,
	KVMM_HOSTPOOL_TIER_HOST = 1,
	KVMM_HOSTPOOL_TIER_DISK = 2,
	KVMM_HOSTPOOL_TIER_INFLIGHT = 3,
	KVMM_HOSTPOOL_TIERS = 4
};

/* What the module offers (kvmm_probe()). */
struct kvmm_kmod_info {
	uint32_t api_version;
	uint32_t nr_node_ids;
	uint64_t features;   /* KVMM_FEATURE_* of uapi/kvmm.h */
	uint64_t ioctls;     /* KVMM_IOCTL_BIT() of each command */
	uint64_t page_sizes; /* bit n: pools of 2^n byte pages */
};

struct kvmm_hostpool_config {
	const char *name;   /* 1-63 of [A-Za-z0-9._-], not starting with '.' */
	uint64_t bytes;	    /* a multiple of the page size */
	int node;	    /* NUMA node, or KVMM_HOSTPOOL_NODE_ANY */
	uint32_t page_size; /* 4096 or 2 MiB; 0: 2 MiB */
	uint32_t flags;	    /* KVMM_HOSTPOOL_CFG_* */
	uint32_t mode;	    /* permission bits for other users; 0: 0600 */
	uint32_t pci_dev;   /* with KVMM_HOSTPOOL_CFG_GPU_NODE: domain << 16 | bus << 8 | devfn */
	uint32_t __pad;
};

struct kvmm_hostpool_range {
	uint64_t first;
	uint64_t count;
};

/* A snapshot of a pool. */
struct kvmm_hostpool_stat {
	uint64_t bytes;
	uint64_t page_size;
	uint64_t pages;
	uint64_t pages_present;			 /* with memory */
	uint64_t pages_state[3];		 /* by enum kvmm_hostpool_page_state */
	uint64_t pages_reclaimed;		 /* dropped by the kernel, ever */
	uint64_t residency[KVMM_HOSTPOOL_TIERS]; /* as last published */
	int node;				 /* or KVMM_HOSTPOOL_NODE_ANY */
	uint32_t attached;			 /* open handles (all processes) */
	uint32_t uid;
	uint32_t mode;
	uint32_t fallback; /* 1: ordinary memory, not a module pool */
	uint32_t __pad;
};

struct kvmm_hostpool;

/*
 * Is the module there, and does it speak this library's ABI?  0 (and *info
 * when not NULL), -ENODEV no /dev/kvmm, -EACCES no permission to open it,
 * -EPROTO another ABI version.  path NULL: $KVMM_DEVICE, else /dev/kvmm.
 * Thread-safe.
 */
int kvmm_probe(const char *path, struct kvmm_kmod_info *info);
/*
 * Create a pool and map it.  *out is the caller's; kvmm_hostpool_close() it.
 * -EEXIST name taken, -ENOSPC over the host-wide limit, -EDQUOT over the
 * per-uid limit, -ENFILE too many pools, -ENOMEM no memory on the node
 * (with POPULATE), -ENODEV no module (without FALLBACK) or no such node /
 * PCI device, -EINVAL bad config.  Thread-safe.
 */
int kvmm_hostpool_create(const struct kvmm_hostpool_config *cfg, struct kvmm_hostpool **out);
/* Open an existing pool by name and map it (read-only with
 * KVMM_HOSTPOOL_READ_ONLY).  -ENOENT, -EACCES.  Thread-safe. */
int kvmm_hostpool_open(const char *name, uint32_t flags, struct kvmm_hostpool **out);
/* Remove a pool's name; its memory goes with its last user.  Thread-safe. */
int kvmm_hostpool_destroy(const char *name);
/* Unmap and close; NULL is a no-op.  Single caller, no other call on p may
 * run or follow. */
void kvmm_hostpool_close(struct kvmm_hostpool *p);
/* Where the pool is mapped (valid until close).  Thread-safe. */
void *kvmm_hostpool_base(const struct kvmm_hostpool *p);
/* Bytes of one pool page.  Thread-safe. */
uint64_t kvmm_hostpool_page_size(const struct kvmm_hostpool *p);
/* Number of pool pages.  Thread-safe. */
uint64_t kvmm_hostpool_pages(const struct kvmm_hostpool *p);
/* The pool's fd (module pools; -1 for fallback pools).  Thread-safe. */
int kvmm_hostpool_fd(const struct kvmm_hostpool *p);
/*
 * Set the state of pages [first, first + count) (pool pages).  FREE
 * releases their memory at once.  Returns the pages whose state changed.
 * -EINVAL out of range, -EBADF read-only handle.  Thread-safe.
 */
int64_t kvmm_hostpool_set_state(struct kvmm_hostpool *p, uint64_t first, uint64_t count,
				enum kvmm_hostpool_page_state state);
/* The same for n ranges at once (one syscall; all or nothing). */
int64_t kvmm_hostpool_set_states(struct kvmm_hostpool *p, const struct kvmm_hostpool_range *r,
				 uint32_t n, enum kvmm_hostpool_page_state state);
/* Give memory to every page of the range now (FREE ones become HOT): after
 * 0, touching them cannot fail.  -ENOMEM.  Thread-safe. */
int kvmm_hostpool_populate(struct kvmm_hostpool *p, uint64_t first, uint64_t count);
/*
 * The generation of a page: changes each time the kernel drops the page.
 * Note it when the page is filled; a different value later means the data
 * is gone.  No syscall; 0 for fallback pools.  Thread-safe.
 */
uint32_t kvmm_hostpool_page_gen(const struct kvmm_hostpool *p, uint64_t page);
/* Bumped after every drop in the pool: unchanged means nothing was
 * dropped since it was last read.  No syscall.  Thread-safe. */
uint64_t kvmm_hostpool_drop_seq(const struct kvmm_hostpool *p);
/* An eventfd that becomes readable when pages are dropped; owned by p
 * (closed by kvmm_hostpool_close).  -ENOTSUP for fallback pools.  Thread-safe. */
int kvmm_hostpool_eventfd(struct kvmm_hostpool *p);
/* Publish how many of the owner's pages are in each tier (shown by sysfs
 * and kvmmctl).  Thread-safe. */
int kvmm_hostpool_set_residency(struct kvmm_hostpool *p, const uint64_t pages[KVMM_HOSTPOOL_TIERS]);
/* Snapshot of the pool.  Thread-safe. */
int kvmm_hostpool_stat(const struct kvmm_hostpool *p, struct kvmm_hostpool_stat *st);

/* ------------------------------------------------------------------------
 * Kernels: decode attention over kvmm views, a paged baseline, and the
 * pack/unpack kernels of the tier path (docs/kernels.md).
 *
 * CUDA backend only: kvmm_kernels_open() gives -ENOTSUP on another backend
 * or when libkvmm was built without nvcc.  The kernels run in the device's
 * primary context (the one PyTorch and the CUDA runtime use), so they take
 * PyTorch tensors' data pointers and streams as they are.  Every launch is
 * asynchronous on the given stream (a CUstream; 0 = the legacy default
 * stream); a bad argument is -EINVAL before anything is launched, a launch
 * failure -errno with the CUDA error in kvmm_kernels_last_error(), and a
 * fault inside a kernel surfaces as a CUDA error at the next synchronize.
 * ---------------------------------------------------------------------- */
enum kvmm_dtype {
	KVMM_DTYPE_FP16 = 1,
	KVMM_DTYPE_BF16 = 2,
};

struct kvmm_kernels;

/*
 * Load the kernels on be's device and allocate their workspace (~18 MiB).
 * be must be a CUDA backend and outlive *out.  One kvmm_kernels object
 * serves one caller at a time: its attention workspace is reused by every
 * launch, so give each concurrently used stream its own object.
 * Thread-safe.
 */
int kvmm_kernels_open(struct kvmm_backend *be, struct kvmm_kernels **out);
/* Free the workspace and unload; NULL is a no-op.  Waits for the device.
 * Single caller. */
void kvmm_kernels_close(struct kvmm_kernels *k);
/* Text of the last error of k ("" if none): the argument at fault or the
 * CUDA error string.  Single caller. */
const char *kvmm_kernels_last_error(const struct kvmm_kernels *k);

/*
 * Decode attention: for each batch entry i, query heads [0, num_q_heads)
 * attend over tokens [0, seq_lens[i]) of the KV (the new token's K and V
 * already written: decode is causal by construction).  Query head h reads
 * KV head h / (num_q_heads / num_kv_heads) (GQA, any ratio; MHA and MQA
 * included).  out = softmax(scale * q K^T) V in fp32, rounded to dtype.
 * A sequence of length 0 gives zeros; one longer than max_len or whose
 * slot is out of range gives NaNs (the device cannot return an error).
 */
struct kvmm_attn_params {
	uint32_t batch;	      /* 1..65535 */
	uint32_t num_q_heads; /* a multiple of the KV heads */
	uint32_t head_dim;    /* 64 or 128 */
	uint32_t dtype;	      /* enum kvmm_dtype of q, out, K and V */
	uint32_t max_len;     /* >= every seq_lens[i]; sizes the split */
	uint32_t num_splits;  /* 0: chosen per launch; else 1..256 (tuning) */
	float scale;	      /* softmax scale; 0: 1 / sqrt(head_dim) */
	uint32_t flags;	      /* must be 0 */
	uint64_t q;	      /* device [batch][num_q_heads][head_dim], 16-aligned */
	uint64_t q_stride;    /* elements between batch entries; 0: dense */
	uint64_t out;	      /* device, same shape as q */
	uint64_t out_stride;  /* elements between batch entries; 0: dense */
	uint64_t seq_lens;    /* device int32[batch] */
	uint64_t seq_ids;     /* device int32[batch]: view slot (sequence) of each
			       * entry; 0: entry i reads slot i */
};

/* Over kvmm views (kvmm_cache_view() of one layer, or any memory described
 * by the view formula): k and v must agree in heads, head_dim and slots;
 * every address and stride must be 16-byte aligned.  Single caller per k. */
int kvmm_attn_decode(struct kvmm_kernels *k, const struct kvmm_view *kv, const struct kvmm_view *vv,
		     const struct kvmm_attn_params *p, uint64_t stream);

/*
 * The paged baseline (vLLM-style): K and V pools of num_blocks blocks, each
 * [block_size][num_kv_heads][head_dim], and a block table: token t of entry
 * i is in block block_table[i * table_stride + t / block_size].  Same kernel
 * and split logic as kvmm_attn_decode(); only the page lookup differs.
 * seq_ids must be 0.  Single caller per k.
 */
struct kvmm_paged_kv {
	uint64_t k_pool;
	uint64_t v_pool;
	uint64_t block_table; /* device int32[batch][table_stride] */
	uint32_t num_blocks;
	uint32_t block_size; /* a multiple of 16 */
	uint32_t num_kv_heads;
	uint32_t table_stride; /* >= ceil(max_len / block_size) */
};
int kvmm_attn_decode_paged(struct kvmm_kernels *k, const struct kvmm_paged_kv *kv,
			   const struct kvmm_attn_params *p, uint64_t stream);

/*
 * Pack/unpack for the tier path: gather runs of KV (whole pages, or one
 * layer's run of tokens) into one staging buffer, and scatter them back.
 * Without quantization the staging holds the runs' bytes, run after run
 * (each run's start rounded up to 16 bytes), and the round trip is exact.
 * With quantization every row of row_elems elements (one token of one head)
 * is stored as 1-byte values plus one fp32 scale: data first (run after
 * run, 16-aligned), then all scales (16-aligned).  Error of a restored
 * element x' against x, amax = max |x| over its row, u = 2^-8 (bf16) or
 * 2^-11 (fp16):
 *   INT8:     |x' - x| <= amax / 254 + u |x'|
 *   FP8 e4m3: |x' - x| <= max(|x| / 16, amax / 458752) + u |x'|
 * (docs/kernels.md derives them).  The staging buffer may be device memory
 * or mapped pinned host memory.
 */
enum kvmm_quant {
	KVMM_QUANT_NONE = 0,
	KVMM_QUANT_INT8 = 1,
	KVMM_QUANT_FP8_E4M3 = 2,
};

struct kvmm_pack_run {
	uint64_t addr;	/* device address in the cache, 16-aligned */
	uint64_t bytes; /* a multiple of 16 (of 2 * row_elems when quantizing) */
};

struct kvmm_pack_params {
	const struct kvmm_pack_run *runs; /* host array */
	uint32_t nruns;
	uint32_t quant;		/* enum kvmm_quant */
	uint32_t dtype;		/* enum kvmm_dtype of the cache (quantized only) */
	uint32_t row_elems;	/* 8..256, a power of two (quantized only) */
	uint64_t staging;	/* device-accessible address, 16-aligned */
	uint64_t staging_bytes; /* its size, at least kvmm_pack_size() */
};
/* Bytes of staging a pack needs, or -EINVAL.  Thread-safe. */
int64_t kvmm_pack_size(const struct kvmm_pack_params *p);
/* cache -> staging, and staging -> cache.  Single caller per k. */
int kvmm_pack(struct kvmm_kernels *k, const struct kvmm_pack_params *p, uint64_t stream);
int kvmm_unpack(struct kvmm_kernels *k, const struct kvmm_pack_params *p, uint64_t stream);

#ifdef __cplusplus
}
#endif
#endif /* KVMM_H */
