/* SPDX-License-Identifier: MIT */
/*
 * kvmm_kernels_abi.h - what the host wrappers (runtime/src/attn*.c,
 * pack*.c) and the CUDA kernels (kernels/ *.cu) must agree on: the kernel
 * parameter blocks, passed by value to cuLaunchKernel, and a few constants.
 *
 * Included from C (gnu11) and CUDA C++.  Only fixed-width types, every
 * field naturally aligned, explicit padding, sizes checked on both sides.
 */
#ifndef KVMM_KERNELS_ABI_H
#define KVMM_KERNELS_ABI_H

#include <stdint.h>

/* Decode attention: a block is KVMM_ATTN_WARPS warps; each warp walks
 * 16-token steps of its block's chunk, so chunks are multiples of
 * KVMM_ATTN_CHUNK_ALIGN tokens.  A block covers at most 16 query heads
 * (one m16 tile of the tensor-core product) of one KV head. */
#define KVMM_ATTN_WARPS	      4
#define KVMM_ATTN_STEP	      16
#define KVMM_ATTN_CHUNK_ALIGN (KVMM_ATTN_WARPS * KVMM_ATTN_STEP)
#define KVMM_ATTN_MTILE	      16
#define KVMM_ATTN_MAX_SPLITS  256
/* The cluster kernels: KVMM_ATTN_CLUSTER consecutive splits of a group form
 * one thread-block cluster and merge their partials through distributed
 * shared memory; each block of it then owns 1/KVMM_ATTN_CLUSTER of the
 * head dimension in the merge across clusters (kernels/attn_decode.cuh). */
#define KVMM_ATTN_CLUSTER 8

/* One decode-attention launch.  Byte strides; element strides say so. */
struct kvmm_attn_kparams {
	uint64_t q;	 /* [B] rows of q_bstride elements: [Hq][D] */
	uint64_t out;	 /* [B] rows of o_bstride elements: [Hq][D] */
	uint64_t k_base; /* view base, or the block pool (table mode) */
	uint64_t v_base;
	uint64_t k_seq_stride; /* unused in table mode */
	uint64_t v_seq_stride;
	uint64_t k_page_stride; /* table mode: bytes of one block */
	uint64_t v_page_stride;
	uint64_t k_token_stride;
	uint64_t v_token_stride;
	uint64_t k_head_stride;
	uint64_t v_head_stride;
	uint64_t seq_lens;    /* int32[B] */
	uint64_t seq_ids;     /* int32[B] slot of each entry, or 0: entry i is slot i */
	uint64_t block_table; /* table mode: int32[B][table_stride] */
	uint64_t ws_acc;      /* float[items][16][D]: unnormalized partial outputs */
	uint64_t ws_ml;	      /* float2[items][16] (cluster kernels: [items][8][16]):
			       * (running max, sum) per row */
	uint64_t ws_count;    /* uint32[B * Hkv * mtiles] (cluster kernels: x 8):
			       * arrivals, self-resetting */
	uint64_t q_bstride;   /* elements */
	uint64_t o_bstride;   /* elements */
	uint32_t batch;
	uint32_t num_kv_heads;
	uint32_t group;	   /* query heads per KV head */
	uint32_t mtiles;   /* ceil(group / 16) */
	uint32_t nsplit;   /* blocks per (sequence, KV head, m tile); cluster
			    * kernels: a multiple of KVMM_ATTN_CLUSTER */
	uint32_t chunk;	   /* tokens per split, a multiple of KVMM_ATTN_CHUNK_ALIGN */
	uint32_t max_len;  /* longer sequences get NaN outputs (caller error) */
	uint32_t max_seqs; /* seq_ids must be below it */
	uint32_t k_tpp;	   /* tokens per page of K, and its fast divisor */
	uint32_t k_div_mul;
	uint32_t k_div_shr;
	uint32_t v_tpp;
	uint32_t v_div_mul;
	uint32_t v_div_shr;
	uint32_t table_stride; /* entries per sequence in block_table */
	float scale_log2;      /* softmax scale * log2(e) */
};
#define KVMM_ATTN_KPARAMS_SIZE 224

/* Pack/unpack: one launch moves up to KVMM_PACK_MAX_RUNS runs, passed in a
 * parameter block of up to 32 KiB (CUDA 12.1+ drivers, sm_70+). */
#define KVMM_PACK_MAX_RUNS 1000
#define KVMM_PACK_TILE	   16384 /* bytes per block for plain copies */
#define KVMM_PACK_THREADS  256

struct kvmm_pack_krun {
	uint64_t cache;	     /* address of the run in the cache */
	uint64_t stage;	     /* address of its data in the staging buffer */
	uint64_t scale;	     /* address of its first row's scale (quantized), else 0 */
	uint32_t bytes;	     /* bytes of the run in the cache */
	uint32_t first_tile; /* prefix sum of tiles (blocks) over the runs */
};

struct kvmm_pack_kparams {
	uint32_t nruns;
	uint32_t ntiles;     /* total blocks of the launch */
	uint32_t row_elems;  /* elements per scale row (quantized) */
	uint32_t tile_bytes; /* cache bytes per block */
	struct kvmm_pack_krun runs[KVMM_PACK_MAX_RUNS];
};
#define KVMM_PACK_KPARAMS_SIZE (16 + 32 * KVMM_PACK_MAX_RUNS)

/* Device-side random fill (tests and benchmarks): values uniform in
 * [-amp, amp) of the given element type, a pure function of (seed, index). */
struct kvmm_fill_kparams {
	uint64_t dst;
	uint64_t n; /* elements */
	uint64_t seed;
	float amp;
	uint32_t pad;
};
#define KVMM_FILL_KPARAMS_SIZE 32

/* Bandwidth ceilings for the benchmarks: a 16-byte copy and a read-only
 * pass (each thread folds what it reads into one word of sink). */
struct kvmm_stream_kparams {
	uint64_t src;
	uint64_t dst; /* copy: destination; read: sink[gridDim * blockDim] */
	uint64_t n16; /* 16-byte words */
};
#define KVMM_STREAM_KPARAMS_SIZE 24

/*
 * Division by a run-time constant d (tokens per page) as a multiply-high
 * and a shift, valid for 0 <= n < 2^31 (as CUTLASS's FastDivmod):
 * q = d == 1 ? n : umulhi(n, mul) >> shr.
 */
static inline void kvmm_fastdiv_init(uint32_t d, uint32_t *mul, uint32_t *shr)
{
	uint32_t l = 0;

	if (d <= 1) {
		*mul = 0;
		*shr = 0;
		return;
	}
	while ((1u << l) < d) /* ceil(log2(d)) */
		l++;
	*mul = (uint32_t)((((uint64_t)1 << (31 + l)) + d - 1) / d);
	*shr = l - 1;
}

static inline uint32_t kvmm_fastdiv_host(uint32_t n, uint32_t d, uint32_t mul, uint32_t shr)
{
	return d <= 1 ? n : (uint32_t)(((uint64_t)n * mul) >> 32) >> shr;
}

#endif /* KVMM_KERNELS_ABI_H */
