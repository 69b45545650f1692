/* SPDX-License-Identifier: MIT */
/*
 * attn_internal.h - libkvmm's CUDA kernels on the host side: the loaded
 * module (struct kvmm_kernels), the split planner of decode attention and
 * the checks that turn a kvmm_view into kernel parameters.
 *
 * The planner and the view checks are plain C with no CUDA dependency, so
 * the unit tests run them on every machine.
 */
#ifndef KVMM_ATTN_INTERNAL_H
#define KVMM_ATTN_INTERNAL_H

#include <stdbool.h>

#include "cache_internal.h"
#include "kernels/kvmm_kernels_abi.h"
#include "kvmm.h"

/* Decode attention's workspace: partial results of this many blocks (of
 * this many clusters for the cluster kernels). */
#define KVMM_ATTN_WS_ITEMS 2048

/* A warp's 16-token step when the launch is latency-bound (measured on the
 * H100, kernels/NOTES.md): loads then math, or loads of the next step in
 * flight during this step's math (the pipelined kernels). */
#define KVMM_ATTN_STEP_US      1.6
#define KVMM_ATTN_STEP_US_PIPE 1.15

/*
 * How many blocks split one (sequence, KV head, m tile) group's context,
 * and how their partials are merged.  The estimate: the launch reads bytes
 * at the copy bandwidth unless too few warps are in flight, when each
 * warp's chain of dependent 16-token steps bounds it; more splits shorten
 * the chains but add a merge: by the last block alone (its cost grows with
 * the splits), or in clusters of KVMM_ATTN_CLUSTER blocks through
 * distributed shared memory and then by KVMM_ATTN_CLUSTER blocks in
 * parallel (nearly constant, but a cluster holds all its blocks' slots).
 * Constants are H100 measurements (kernels/NOTES.md).
 */
enum kvmm_attn_merge {
	KVMM_ATTN_MERGE_AUTO = 0,   /* the cheaper of the two per the model */
	KVMM_ATTN_MERGE_BLOCK = 1,  /* last block merges all (no clusters) */
	KVMM_ATTN_MERGE_CLUSTER = 2 /* the cluster kernels whenever possible */
};
struct kvmm_attn_plan_in {
	uint32_t groups;  /* batch * kv_heads * mtiles */
	uint32_t max_len; /* tokens */
	uint32_t rows;	  /* query heads per block: min(group, 16) */
	uint32_t head_dim;
	uint32_t num_sms;
	uint32_t occupancy;	/* blocks per SM */
	uint32_t cluster_slots; /* blocks of the cluster kernel resident at
				 * once (0: no cluster kernel) */
	uint32_t ws_items;	/* workspace capacity in blocks */
	uint32_t forced;	/* 0: choose; else this many splits (clamped) */
	uint32_t merge;		/* enum kvmm_attn_merge */
	double step_us;		/* one warp's 16-token step when latency-bound */
};
struct kvmm_attn_plan {
	uint32_t nsplit;  /* blocks per group (grid x); cluster: a multiple of
			   * KVMM_ATTN_CLUSTER, the last ones may be idle */
	uint32_t chunk;	  /* tokens per block, multiple of KVMM_ATTN_CHUNK_ALIGN */
	uint32_t nchunks; /* blocks of a max_len sequence that read KV */
	bool cluster;	  /* use the cluster kernel */
	double est_us;	  /* the model's estimate (for notes and tests) */
};
void kvmm_attn_plan_make(const struct kvmm_attn_plan_in *in, struct kvmm_attn_plan *out);

/*
 * The K or V half of a kernel parameter block from a view (shared checks:
 * element size 2, head_dim, 16-byte alignment of every address the kernel
 * forms).  A uniform view (page_stride == tokens_per_page * token_stride)
 * or one with a single token per page is given an effectively infinite
 * page, so the kernel's page division never divides by 1.
 */
struct kvmm_attn_side {
	uint64_t base, seq_stride, page_stride, token_stride, head_stride;
	uint32_t tpp, div_mul, div_shr;
};
int kvmm_attn_side_from_view(const struct kvmm_view *v, uint32_t head_dim,
			     struct kvmm_attn_side *out);

/* Parameters common to both attention entry points: returns -EINVAL with a
 * message in err for a bad argument. */
int kvmm_attn_check_params(const struct kvmm_attn_params *p, uint32_t num_kv_heads, char *err,
			   size_t errlen);

/* Staging layout of a pack: for run i, data at data_off[i] (16-aligned),
 * scales (quantized only) at scale_off + 4 * row0[i]. */
int kvmm_pack_layout(const struct kvmm_pack_params *p, uint64_t *data_off, uint64_t *row0,
		     uint64_t *scale_off, uint64_t *total);

/* KV of a model in one kvmm layout over one plain allocation, with the
 * caches' geometry (layout.c): for the kernels' tests and benchmarks. */
struct kvmm_reflayout {
	struct kvmm_geom g;
	enum kvmm_layout layout;
	uint32_t layers, heads, head_dim; /* KV heads */
	uint32_t max_seqs, max_tokens;
	uint64_t page;	    /* page size: 2 MiB in kvmm; tests use smaller pages
			     * to get any number of tokens per page */
	uint64_t bytes;	    /* size of the allocation (the cache's slot range) */
	uint64_t tok_layer; /* bytes of one token of one layer's K (or V) */
};
/* The geometry kvmm_cache_create() would use for this shape, layout (not
 * DEFAULT) and page size; -EINVAL, -E2BIG as kvmm_geom_init(). */
int kvmm_reflayout_init(struct kvmm_reflayout *l, enum kvmm_layout layout, uint32_t layers,
			uint32_t heads, uint32_t head_dim, uint32_t max_seqs, uint32_t max_tokens,
			uint64_t page);
/* The view of (layer, kv) over an allocation at base. */
void kvmm_reflayout_view(const struct kvmm_reflayout *l, uint64_t base, uint32_t layer,
			 enum kvmm_kv kv, struct kvmm_view *v);
/* Address of element (seq, token, head, dim 0): the formula of kvmm.h. */
uint64_t kvmm_view_addr(const struct kvmm_view *v, uint32_t seq, uint32_t tok, uint32_t head);

#ifdef KVMM_HAVE_CUDA
#include "cuda_driver.h"

struct kvmm_kernels {
	struct kvmm_backend *be;
	const struct kvmm_cuda_driver *drv;
	CUcontext ctx;
	CUdevice dev;
	CUmodule mod;
	CUfunction attn[2][2][2][2]; /* [bf16][d128][table][pipelined] */
	int attn_occ[2][2][2][2];    /* blocks per SM */
	CUfunction attn_cl[2][2][2]; /* [bf16][d128][table]: pipelined, clusters */
	int attn_cl_slots[2][2][2];  /* blocks resident at once in clusters, or 0:
				      * the device cannot run them */
	int pipe;		     /* use the pipelined kernels (default 1) */
	int merge;		     /* enum kvmm_attn_merge (default AUTO) */
	CUfunction pack_copy, unpack_copy;
	CUfunction pack_q[2][2], unpack_q[2][2]; /* [fp8][bf16] */
	CUfunction fill[2];			 /* [bf16] */
	CUfunction stream_copy, stream_read;	 /* benchmark ceilings */
	int num_sms;
	CUdeviceptr ws; /* acc | ml | counters */
	uint64_t ws_acc, ws_ml, ws_count;
	char err[192];
};

/* Record err (printf-style) as the object's last error. */
void kvmm_kernels_set_error(struct kvmm_kernels *k, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Check a driver result: 0, or -errno with the CUDA error text recorded. */
int kvmm_kernels_cu(struct kvmm_kernels *k, CUresult r, const char *what);
/* Launch f with one parameter block. */
int kvmm_kernels_launch(struct kvmm_kernels *k, CUfunction f, unsigned gx, unsigned gy, unsigned gz,
			unsigned threads, void *params, uint64_t stream, const char *what);

/* Fill n elements (n % 8 == 0, dst 16-aligned) with values uniform in
 * [-amp, amp), a pure function of (seed, index).  Tests and benchmarks. */
int kvmm_kernels_fill_random(struct kvmm_kernels *k, uint64_t dst, uint64_t n,
			     enum kvmm_dtype dtype, uint64_t seed, float amp, uint64_t stream);
/* Choose the attention kernels: pipelined (1, the default) or not (0), for
 * the benchmarks' comparison.  Single caller. */
void kvmm_kernels_set_pipelined(struct kvmm_kernels *k, int on);
/* How split partials are merged (enum kvmm_attn_merge; AUTO by default),
 * for tests and benchmarks.  The cluster kernels exist only pipelined.
 * Single caller. */
void kvmm_kernels_set_merge(struct kvmm_kernels *k, enum kvmm_attn_merge m);
/* The ceilings of the benchmarks: copy n bytes (n % 16 == 0) src -> dst, or
 * read them (dst: a sink of 4 bytes per thread, 1 MiB is enough). */
int kvmm_kernels_stream(struct kvmm_kernels *k, bool copy, uint64_t src, uint64_t dst, uint64_t n,
			uint64_t stream);
#endif

#endif /* KVMM_ATTN_INTERNAL_H */
