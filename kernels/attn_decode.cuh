/* SPDX-License-Identifier: MIT */
/*
 * attn_decode.cuh - decode attention (one new query token per sequence)
 * straight over a kvmm view, and the same kernel over a vLLM-style block
 * table (the paged baseline: TABLE = true).  The two differ only in how the
 * address of a token's page is found, so they compare layouts, not tilings.
 *
 * Work: block (split, kv_head * mtiles + mtile, batch entry) reads the
 * chunk [split * chunk, min(len, (split + 1) * chunk)) of one KV head for up
 * to 16 query heads of its group.  Its 4 warps take interleaved 16-token
 * steps.  Per step a warp
 *   - loads K and V of 16 tokens straight into registers (16-byte loads,
 *     each warp load instruction reads 4-8 runs of 64-128 contiguous bytes),
 *   - S = Q K^T with 2 x (D/16) m16n8k16 products (rows = query heads),
 *   - online softmax in fp32 on the S fragment (exp2, quad shuffles),
 *   - O += P V with D/8 products; P comes straight from the S fragment (the
 *     C layout of two n8 tiles is the A layout of one k16 tile).
 * No shared memory and no barrier in the loop.  The order of the head
 * dimension inside a k16 product is free as long as Q and K agree, and so is
 * the order of tokens and output columns in P V, so each thread's loads are
 * whole 16-byte vectors: K columns are permuted consistently with Q, V pairs
 * of tokens are interleaved with one byte permute per register.
 * At the end the 4 warps merge through shared memory; with several splits
 * the block writes an unnormalized partial (O, max, sum) and the last block
 * of its (sequence, head, tile) to arrive merges all of them (a counter per
 * group, reset by that last block), so one launch does everything.
 *
 * The cluster kernels (CL = KVMM_ATTN_CLUSTER) merge in two levels instead,
 * so that no single block pulls every partial through its SM:
 *   - the CL blocks of a thread-block cluster (CL consecutive splits) leave
 *     their partials in shared memory; after a cluster barrier block r reads
 *     slice r (1/CL of the head dimension) of all CL of them through
 *     distributed shared memory and combines them;
 *   - if the sequence needs one cluster, that is the output; otherwise block
 *     r writes the cluster's slice r to the workspace, and the last cluster
 *     to arrive at the counter of (group, r) merges slice r of all clusters.
 * So the merge across clusters runs on CL blocks in parallel, each reading
 * 1/CL of the data.  Blocks of a working cluster past the end of the
 * sequence take part with an empty partial; clusters entirely past it exit.
 */
#ifndef KVMM_ATTN_DECODE_CUH
#define KVMM_ATTN_DECODE_CUH

#include <cooperative_groups.h>

#include "kvmm_device.cuh"
#include "kvmm_kernels_abi.h"

#define KVMM_NW KVMM_ATTN_WARPS

template <int D> struct attn_smem {
	union {
		float acc[KVMM_NW][KVMM_ATTN_MTILE][D + 4];	/* per-warp outputs */
		float w[KVMM_ATTN_MTILE][KVMM_ATTN_MAX_SPLITS]; /* split weights */
	};
	float2 ml[KVMM_NW][KVMM_ATTN_MTILE];
	float2 mlb[KVMM_ATTN_MTILE]; /* cluster kernels: the block's (max, sum) */
	int last;
};

/* Store 4 output elements (fp32 -> fp16/bf16), 8 bytes. */
template <bool BF16> KVMM_DEV void attn_store4(uint64_t addr, float4 o)
{
	uint2 v;

	v.x = kvmm_pack2<BF16>(o.x, o.y);
	v.y = kvmm_pack2<BF16>(o.z, o.w);
	*reinterpret_cast<uint2 *>(addr) = v;
}

template <bool BF16, int D>
KVMM_DEV void attn_fill_rows(const kvmm_attn_kparams &p, uint32_t b, uint32_t hq0, int rows,
			     float val)
{
	for (int i = threadIdx.x; i < rows * (D / 4); i += blockDim.x) {
		int row = i / (D / 4), d4 = i % (D / 4);
		uint64_t o = p.out +
			     2 * ((uint64_t)b * p.o_bstride + (uint64_t)(hq0 + row) * D + 4 * d4);
		attn_store4<BF16>(o, make_float4(val, val, val, val));
	}
}

/* (m, l, o) <- the merge of (m, l, o) and (mj, lj, oj): two unnormalized
 * partial results, each relative to its own running max (log2 domain). */
KVMM_DEV void attn_combine(float &m, float &l, float4 &o, float mj, float lj, float4 oj)
{
	const float mn = fmaxf(m, mj);

	if (mn == -INFINITY) /* both empty */
		return;
	const float a = kvmm_ex2(m - mn), c = kvmm_ex2(mj - mn); /* ex2(-inf) = 0 */
	l = l * a + lj * c;
	o.x = o.x * a + oj.x * c;
	o.y = o.y * a + oj.y * c;
	o.z = o.z * a + oj.z * c;
	o.w = o.w * a + oj.w * c;
	m = mn;
}

template <bool BF16, int D, int CL>
KVMM_DEV void attn_cluster_merge(const kvmm_attn_kparams &p, attn_smem<D> &sm, uint32_t b,
				 uint32_t hq0, uint32_t grp, int rows, uint32_t nchunks);

template <bool BF16, int D, bool TABLE, bool PIPE, int CL = 0>
KVMM_DEV void attn_decode(const kvmm_attn_kparams &p)
{
	constexpr int KC = D / 32; /* 16-byte K loads per token per thread */
	constexpr int VH = D / 64; /* 16-byte V loads per token per thread */
	constexpr int KS = D / 16; /* k16 steps of Q K^T */
	constexpr int NT = D / 8;  /* n8 tiles of P V */
	__shared__ attn_smem<D> sm;

	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const int g = lane >> 2, t4 = lane & 3;
	const uint32_t split = blockIdx.x, b = blockIdx.z;
	const uint32_t kvh = blockIdx.y / p.mtiles, mt = blockIdx.y % p.mtiles;
	const int rows = min(KVMM_ATTN_MTILE, (int)(p.group - mt * KVMM_ATTN_MTILE));
	const uint32_t hq0 = kvh * p.group + mt * KVMM_ATTN_MTILE;
	const uint32_t grp = (b * p.num_kv_heads + kvh) * p.mtiles + mt;
	const int len = reinterpret_cast<const int32_t *>(p.seq_lens)[b];
	int slot = b;

	if (!TABLE && p.seq_ids)
		slot = reinterpret_cast<const int32_t *>(p.seq_ids)[b];
	/* Caller errors the host cannot see: NaN output, never a wild read. */
	if (len < 0 || (uint32_t)len > p.max_len || slot < 0 || (uint32_t)slot >= p.max_seqs) {
		if (split == 0)
			attn_fill_rows<BF16, D>(p, b, hq0, rows, __int_as_float(0x7fc00000));
		return;
	}
	if (len == 0) { /* attention over nothing: defined as 0 */
		if (split == 0)
			attn_fill_rows<BF16, D>(p, b, hq0, rows, 0.f);
		return;
	}
	const uint32_t nchunks = (len + p.chunk - 1) / p.chunk;
	/* Nothing to read: return (cluster kernels: only when the whole cluster
	 * has nothing, so that no block waits for one that has left). */
	if (split / (CL ? CL : 1) >= (nchunks + (CL ? CL : 1) - 1) / (CL ? CL : 1))
		return;
	/* A block of a working cluster past the end reads nothing: c0 == c1. */
	const uint32_t c0 = split < nchunks ? split * p.chunk : 0;
	const uint32_t c1 = split < nchunks ? min((uint32_t)len, c0 + p.chunk) : 0;

	/* Q fragments (A operand), k-permuted like the K loads below: thread
	 * (g, t4) loads dims [32c + 8 t4, +8) of rows g and g + 8; its k16 step
	 * 2c uses the first 4 dims, step 2c + 1 the last 4. */
	uint32_t qa[KS][4];
	{
		const uint64_t qrow = p.q + 2 * ((uint64_t)b * p.q_bstride + (uint64_t)hq0 * D);
#pragma unroll
		for (int c = 0; c < KC; c++) {
			uint4 lo = make_uint4(0, 0, 0, 0), hi = make_uint4(0, 0, 0, 0);
			if (g < rows)
				lo = *reinterpret_cast<const uint4 *>(
					qrow + 2 * (g * D + 32 * c + 8 * t4));
			if (g + 8 < rows)
				hi = *reinterpret_cast<const uint4 *>(
					qrow + 2 * ((g + 8) * D + 32 * c + 8 * t4));
			qa[2 * c][0] = lo.x;
			qa[2 * c][1] = hi.x;
			qa[2 * c][2] = lo.y;
			qa[2 * c][3] = hi.y;
			qa[2 * c + 1][0] = lo.z;
			qa[2 * c + 1][1] = hi.z;
			qa[2 * c + 1][2] = lo.w;
			qa[2 * c + 1][3] = hi.w;
		}
	}

	uint64_t kseq, vseq;
	if (TABLE) {
		kseq = p.k_base + kvh * p.k_head_stride;
		vseq = p.v_base + kvh * p.v_head_stride;
	} else {
		kseq = p.k_base + (uint64_t)slot * p.k_seq_stride + kvh * p.k_head_stride;
		vseq = p.v_base + (uint64_t)slot * p.v_seq_stride + kvh * p.v_head_stride;
	}
	const int32_t *table = TABLE ? reinterpret_cast<const int32_t *>(p.block_table) +
					       (uint64_t)b * p.table_stride
				     : nullptr;
	/* Table mode: lane j caches the block of this warp's step k0 + j, and the
	 * next 32 steps' blocks are fetched 32 steps ahead (vLLM-style prefetch). */
	int32_t tcur = 0, tnext = 0;
	const uint32_t wstep0 = c0 + warp * KVMM_ATTN_STEP;
	const uint32_t wstride = KVMM_NW * KVMM_ATTN_STEP;
	if (TABLE) {
		uint32_t t = wstep0 + lane * wstride;
		if (t < c1)
			tcur = table[kvmm_fastdiv(t, p.k_div_mul, p.k_div_shr)];
		t += 32 * wstride;
		if (t < c1)
			tnext = table[kvmm_fastdiv(t, p.k_div_mul, p.k_div_shr)];
	}

	float acc[NT][4];
#pragma unroll
	for (int n = 0; n < NT; n++)
		acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
	float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;

	/* Step k (tokens t0..t0+15) of this warp: its K and V into registers.
	 * Called once per step, in order (the table prefetch counts on it). */
	auto load_step = [&](uint32_t t0, int k, uint4(&kr)[2][KC], uint4(&vr)[4][VH]) {
		if (TABLE) {
			if (k && !(k & 31)) {
				uint32_t t = t0 + (lane + 32) * wstride;
				tcur = tnext;
				tnext = 0;
				if (t < c1)
					tnext = table[kvmm_fastdiv(t, p.k_div_mul, p.k_div_shr)];
			}
			/* The step lies in one block (block size % 16 == 0). */
			const int32_t blk = __shfl_sync(0xffffffffu, tcur, k & 31);
			const uint32_t pg = kvmm_fastdiv(t0, p.k_div_mul, p.k_div_shr);
			const uint32_t off0 = t0 - pg * p.k_tpp;
			const uint64_t kb = kseq + (uint64_t)blk * p.k_page_stride +
					    (uint64_t)off0 * p.k_token_stride;
			const uint64_t vb = vseq + (uint64_t)blk * p.v_page_stride +
					    (uint64_t)off0 * p.v_token_stride;
			/* Tokens past the end read the last valid token (always mapped):
			 * their scores are masked, so their P is 0 and the loads need
			 * neither a branch nor zeroing. */
			const uint32_t last = c1 - 1 - t0;
#pragma unroll
			for (int n = 0; n < 2; n++) {
				const uint32_t i = min(8u * n + g, last);
#pragma unroll
				for (int c = 0; c < KC; c++)
					kr[n][c] = kvmm_ld_stream(kb + i * p.k_token_stride +
								  2 * (32 * c + 8 * t4));
			}
#pragma unroll
			for (int j = 0; j < 4; j++) {
				const uint32_t i = min(8u * (j >> 1) + 2 * t4 + (j & 1), last);
#pragma unroll
				for (int h = 0; h < VH; h++)
					vr[j][h] = kvmm_ld_stream(vb + i * p.v_token_stride +
								  2 * (64 * h + 8 * g));
			}
		} else {
#pragma unroll
			for (int n = 0; n < 2; n++) {
				const uint32_t t = min(t0 + 8 * n + g, c1 - 1);
				const uint32_t pg = kvmm_fastdiv(t, p.k_div_mul, p.k_div_shr);
				const uint64_t a = kseq + (uint64_t)pg * p.k_page_stride +
						   (uint64_t)(t - pg * p.k_tpp) * p.k_token_stride;
#pragma unroll
				for (int c = 0; c < KC; c++)
					kr[n][c] = kvmm_ld_stream(a + 2 * (32 * c + 8 * t4));
			}
#pragma unroll
			for (int j = 0; j < 4; j++) {
				const uint32_t t =
					min(t0 + 8 * (j >> 1) + 2 * t4 + (j & 1), c1 - 1);
				const uint32_t pg = kvmm_fastdiv(t, p.v_div_mul, p.v_div_shr);
				const uint64_t a = vseq + (uint64_t)pg * p.v_page_stride +
						   (uint64_t)(t - pg * p.v_tpp) * p.v_token_stride;
#pragma unroll
				for (int h = 0; h < VH; h++)
					vr[j][h] = kvmm_ld_stream(a + 2 * (64 * h + 8 * g));
			}
		}
	};
	/* Online softmax and P V for one step whose K and V are loaded. */
	auto compute_step = [&](uint32_t t0, const uint4(&kr)[2][KC], const uint4(&vr)[4][VH]) {
		/* S = Q K^T: tile n holds tokens t0 + 8n + (2 t4, 2 t4 + 1). */
		float s[2][4];
#pragma unroll
		for (int n = 0; n < 2; n++) {
			s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
			for (int c = 0; c < KC; c++) {
				kvmm_mma16816<BF16>(s[n], qa[2 * c], kr[n][c].x, kr[n][c].y);
				kvmm_mma16816<BF16>(s[n], qa[2 * c + 1], kr[n][c].z, kr[n][c].w);
			}
		}
		float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
		for (int n = 0; n < 2; n++) {
#pragma unroll
			for (int e = 0; e < 4; e++) {
				const uint32_t t = t0 + 8 * n + 2 * t4 + (e & 1);
				s[n][e] = t < c1 ? s[n][e] * p.scale_log2 : -INFINITY;
			}
			mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
			mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
		}
		mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
		mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
		mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
		mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
		const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
		const float al0 = kvmm_ex2(m0 - mn0), al1 = kvmm_ex2(m1 - mn1);
		m0 = mn0;
		m1 = mn1;
		uint32_t pa[4];
#pragma unroll
		for (int n = 0; n < 2; n++) {
			const float p0 = kvmm_ex2(s[n][0] - mn0), p1 = kvmm_ex2(s[n][1] - mn0);
			const float p2 = kvmm_ex2(s[n][2] - mn1), p3 = kvmm_ex2(s[n][3] - mn1);
			pa[2 * n] = kvmm_pack2<BF16>(p0, p1);
			pa[2 * n + 1] = kvmm_pack2<BF16>(p2, p3);
			/* The sum uses the rounded weights P V is computed with. */
			const float2 q01 = kvmm_unpack2<BF16>(pa[2 * n]);
			const float2 q23 = kvmm_unpack2<BF16>(pa[2 * n + 1]);
			l0 = (n ? l0 : l0 * al0) + q01.x + q01.y;
			l1 = (n ? l1 : l1 * al1) + q23.x + q23.y;
		}
		/* O += P V.  n8 tile (h, j) column g is dim 64h + 8g + j; the
		 * k16 rows are the tokens t0 + (2t4, 2t4+1, 8+2t4, 9+2t4). */
#pragma unroll
		for (int h = 0; h < VH; h++) {
#pragma unroll
			for (int j = 0; j < 8; j++) {
				const uint32_t sel = (j & 1) ? 0x7632 : 0x5410;
				const uint32_t *v0 = reinterpret_cast<const uint32_t *>(&vr[0][h]);
				const uint32_t *v1 = reinterpret_cast<const uint32_t *>(&vr[1][h]);
				const uint32_t *v2 = reinterpret_cast<const uint32_t *>(&vr[2][h]);
				const uint32_t *v3 = reinterpret_cast<const uint32_t *>(&vr[3][h]);
				const uint32_t b0 = __byte_perm(v0[j >> 1], v1[j >> 1], sel);
				const uint32_t b1 = __byte_perm(v2[j >> 1], v3[j >> 1], sel);
				float *a = acc[8 * h + j];
				a[0] *= al0;
				a[1] *= al0;
				a[2] *= al1;
				a[3] *= al1;
				kvmm_mma16816<BF16>(acc[8 * h + j], pa, b0, b1);
			}
		}
	};

	if (!PIPE) {
		int k = 0;
		for (uint32_t t0 = wstep0; t0 < c1; t0 += wstride, k++) {
			uint4 kr[2][KC], vr[4][VH];
			load_step(t0, k, kr, vr);
			compute_step(t0, kr, vr);
		}
	} else {
		/* Software pipeline: the next step's loads are in flight while this
		 * step computes (twice the load registers, one memory latency
		 * per step instead of latency + compute). */
		uint4 kr[2][KC], vr[4][VH], kn[2][KC], vn[4][VH];
		int k = 0;
		if (wstep0 < c1)
			load_step(wstep0, 0, kr, vr);
		for (uint32_t t0 = wstep0; t0 < c1; t0 += wstride, k++) {
			if (t0 + wstride < c1) /* warp-uniform */
				load_step(t0 + wstride, k + 1, kn, vn);
			compute_step(t0, kr, vr);
#pragma unroll
			for (int n = 0; n < 2; n++)
#pragma unroll
				for (int c = 0; c < KC; c++)
					kr[n][c] = kn[n][c];
#pragma unroll
			for (int j = 0; j < 4; j++)
#pragma unroll
				for (int h = 0; h < VH; h++)
					vr[j][h] = vn[j][h];
		}
	}

	/* Row sums over the quad; then the 4 warps merge in shared memory. */
	l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
	l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
	l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
	l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
	/* Thread (g, t4) holds dims 64h + 16 t4 + [0, 16) of rows g and g + 8:
	 * acc[8h + j][0] is dim 64h + 16t4 + j, acc[8h + j][1] dim ... + 8 + j. */
#pragma unroll
	for (int hr = 0; hr < 2; hr++) {
		const int row = g + 8 * hr;
		if (row < rows) {
#pragma unroll
			for (int h = 0; h < VH; h++) {
				float *dst = &sm.acc[warp][row][64 * h + 16 * t4];
#pragma unroll
				for (int j = 0; j < 8; j += 4) {
					*reinterpret_cast<float4 *>(dst + j) = make_float4(
						acc[8 * h + j][2 * hr], acc[8 * h + j + 1][2 * hr],
						acc[8 * h + j + 2][2 * hr],
						acc[8 * h + j + 3][2 * hr]);
					*reinterpret_cast<float4 *>(dst + 8 + j) =
						make_float4(acc[8 * h + j][2 * hr + 1],
							    acc[8 * h + j + 1][2 * hr + 1],
							    acc[8 * h + j + 2][2 * hr + 1],
							    acc[8 * h + j + 3][2 * hr + 1]);
				}
			}
			if (t4 == 0)
				sm.ml[warp][row] = hr ? make_float2(m1, l1) : make_float2(m0, l0);
		}
	}
	__syncthreads();

	if constexpr (CL > 0) {
		attn_cluster_merge<BF16, D, CL>(p, sm, b, hq0, grp, rows, nchunks);
		return;
	}
	const bool whole = nchunks == 1;
	const uint64_t item = (uint64_t)grp * p.nsplit + split;
	for (int i = threadIdx.x; i < rows * (D / 4); i += blockDim.x) {
		const int row = i / (D / 4), d4 = i % (D / 4);
		float mx = -INFINITY;
#pragma unroll
		for (int w = 0; w < KVMM_NW; w++)
			mx = fmaxf(mx, sm.ml[w][row].x);
		float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
		float l = 0.f;
#pragma unroll
		for (int w = 0; w < KVMM_NW; w++) {
			const float wt = kvmm_ex2(sm.ml[w][row].x - mx);
			const float4 a = *reinterpret_cast<const float4 *>(&sm.acc[w][row][4 * d4]);
			l += wt * sm.ml[w][row].y;
			o.x += wt * a.x;
			o.y += wt * a.y;
			o.z += wt * a.z;
			o.w += wt * a.w;
		}
		if (whole) {
			const float inv = 1.f / l;
			attn_store4<BF16>(p.out + 2 * ((uint64_t)b * p.o_bstride +
						       (uint64_t)(hq0 + row) * D + 4 * d4),
					  make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv));
		} else {
			float4 *wa = reinterpret_cast<float4 *>(p.ws_acc);
			wa[(item * KVMM_ATTN_MTILE + row) * (D / 4) + d4] = o;
			if (d4 == 0)
				reinterpret_cast<float2 *>(p.ws_ml)[item * KVMM_ATTN_MTILE + row] =
					make_float2(mx, l);
		}
	}
	if (whole)
		return;

	/* Publish the partial; the last block of the group merges them all. */
	__threadfence();
	__syncthreads();
	if (threadIdx.x == 0) {
		uint32_t *cnt = reinterpret_cast<uint32_t *>(p.ws_count) + grp;
		const uint32_t prev = atomicAdd(cnt, 1u);
		sm.last = prev == nchunks - 1;
		if (sm.last)
			*cnt = 0; /* every other block of the group has arrived */
	}
	__syncthreads();
	if (!sm.last)
		return;
	__threadfence();

	const uint64_t item0 = (uint64_t)grp * p.nsplit;
	const float2 *ml = reinterpret_cast<const float2 *>(p.ws_ml);
	for (int row = warp; row < rows; row += KVMM_NW) {
		float mv[KVMM_ATTN_MAX_SPLITS / 32], lv[KVMM_ATTN_MAX_SPLITS / 32];
		float mx = -INFINITY;
#pragma unroll
		for (int j = 0; j < KVMM_ATTN_MAX_SPLITS / 32; j++) {
			const uint32_t s = lane + 32 * j;
			mv[j] = -INFINITY;
			lv[j] = 0.f;
			if (s < nchunks) {
				const float2 v =
					kvmm_ld_cg2(&ml[(item0 + s) * KVMM_ATTN_MTILE + row]);
				mv[j] = v.x;
				lv[j] = v.y;
			}
			mx = fmaxf(mx, mv[j]);
		}
		mx = kvmm_warp_max(mx);
		float l = 0.f;
#pragma unroll
		for (int j = 0; j < KVMM_ATTN_MAX_SPLITS / 32; j++) {
			mv[j] = kvmm_ex2(mv[j] - mx);
			l += mv[j] * lv[j];
		}
		const float inv = 1.f / kvmm_warp_sum(l);
#pragma unroll
		for (int j = 0; j < KVMM_ATTN_MAX_SPLITS / 32; j++)
			if (lane + 32 * j < nchunks)
				sm.w[row][lane + 32 * j] = mv[j] * inv;
	}
	__syncthreads();
	const float4 *wa = reinterpret_cast<const float4 *>(p.ws_acc);
	for (int i = threadIdx.x; i < rows * (D / 4); i += blockDim.x) {
		const int row = i / (D / 4), d4 = i % (D / 4);
		float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
		uint32_t s = 0;
		for (; s + 16 <= nchunks; s += 16) { /* 16 loads in flight per thread */
			float4 a[16];
#pragma unroll
			for (int u = 0; u < 16; u++)
				a[u] = kvmm_ld_cg4(
					&wa[((item0 + s + u) * KVMM_ATTN_MTILE + row) * (D / 4) +
					    d4]);
#pragma unroll
			for (int u = 0; u < 16; u++) {
				const float wt = sm.w[row][s + u];
				o.x += wt * a[u].x;
				o.y += wt * a[u].y;
				o.z += wt * a[u].z;
				o.w += wt * a[u].w;
			}
		}
		for (; s < nchunks; s++) {
			const float4 a = kvmm_ld_cg4(
				&wa[((item0 + s) * KVMM_ATTN_MTILE + row) * (D / 4) + d4]);
			const float wt = sm.w[row][s];
			o.x += wt * a.x;
			o.y += wt * a.y;
			o.z += wt * a.z;
			o.w += wt * a.w;
		}
		attn_store4<BF16>(p.out + 2 * ((uint64_t)b * p.o_bstride +
					       (uint64_t)(hq0 + row) * D + 4 * d4),
				  o);
	}
}

/*
 * The merge of the cluster kernels (see the top of this file).  Every block
 * of a working cluster calls it, with its warps' partials in sm.acc/sm.ml.
 */
template <bool BF16, int D, int CL>
KVMM_DEV void attn_cluster_merge(const kvmm_attn_kparams &p, attn_smem<D> &sm, uint32_t b,
				 uint32_t hq0, uint32_t grp, int rows, uint32_t nchunks)
{
	namespace cg = cooperative_groups;
	constexpr int CPS = D / 4 / CL; /* float4 columns of a row per slice */
	static_assert(CPS >= 1 && KVMM_ATTN_MTILE * CPS <= KVMM_NW * 32, "one item per thread");
	const cg::cluster_group cluster = cg::this_cluster();
	const uint32_t split = blockIdx.x, r = split % CL, cl = split / CL;
	const uint32_t ncl = (nchunks + CL - 1) / CL; /* clusters with work */

	/* 1. The block's 4 warps into one partial, in place in sm.acc[0]. */
	for (int i = threadIdx.x; i < rows * (D / 4); i += blockDim.x) {
		const int row = i / (D / 4), d4 = i % (D / 4);
		float mx = -INFINITY, l = 0.f;
		float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
		for (int w = 0; w < KVMM_NW; w++)
			mx = fmaxf(mx, sm.ml[w][row].x);
		if (mx != -INFINITY) { /* else a block past the end: empty */
#pragma unroll
			for (int w = 0; w < KVMM_NW; w++) {
				const float wt = kvmm_ex2(sm.ml[w][row].x - mx);
				const float4 a =
					*reinterpret_cast<const float4 *>(&sm.acc[w][row][4 * d4]);
				l += wt * sm.ml[w][row].y;
				o.x += wt * a.x;
				o.y += wt * a.y;
				o.z += wt * a.z;
				o.w += wt * a.w;
			}
		}
		*reinterpret_cast<float4 *>(&sm.acc[0][row][4 * d4]) = o;
		if (d4 == 0)
			sm.mlb[row] = make_float2(mx, l);
	}
	cluster.sync(); /* every block's partial is in its shared memory */

	/* 2. Slice r of the cluster: CL partials read through DSMEM. */
	const int it = threadIdx.x, items = rows * CPS;
	const int row = it / CPS, col = r * CPS + it % CPS; /* float4 column */
	float M = -INFINITY, L = 0.f;
	float4 O = make_float4(0.f, 0.f, 0.f, 0.f);
	if (it < items) {
		float2 mj[CL];
		float4 oj[CL];
#pragma unroll
		for (int j = 0; j < CL; j++) {
			const attn_smem<D> *peer = cluster.map_shared_rank(&sm, j);
			mj[j] = peer->mlb[row];
			oj[j] = *reinterpret_cast<const float4 *>(&peer->acc[0][row][4 * col]);
		}
#pragma unroll
		for (int j = 0; j < CL; j++)
			attn_combine(M, L, O, mj[j].x, mj[j].y, oj[j]);
	}
	/* Done with the peers' shared memory.  Relaxed: the values read are
	 * used above, so the reads are complete, and a release here would cost
	 * a GPU-wide memory barrier (MEMBAR.ALL.GPU), ~0.5 us measured. */
	asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");

	const uint64_t orow = (uint64_t)b * p.o_bstride + (uint64_t)(hq0 + row) * D + 4 * col;
	if (ncl == 1) { /* the cluster saw the whole sequence */
		if (it < items) {
			const float inv = 1.f / L;
			attn_store4<BF16>(p.out + 2 * orow,
					  make_float4(O.x * inv, O.y * inv, O.z * inv, O.w * inv));
		}
		cluster.barrier_wait();
		return;
	}

	/* 3. Publish slice r of this cluster; the last cluster merges slice r. */
	const uint32_t ncl_grid = gridDim.x / CL;
	const uint64_t item0 = (uint64_t)grp * ncl_grid;
	float4 *wa = reinterpret_cast<float4 *>(p.ws_acc);
	float2 *wml = reinterpret_cast<float2 *>(p.ws_ml);
	if (it < items) {
		wa[((item0 + cl) * KVMM_ATTN_MTILE + row) * (D / 4) + col] = O;
		if (it % CPS == 0)
			wml[((item0 + cl) * CL + r) * KVMM_ATTN_MTILE + row] = make_float2(M, L);
	}
	__threadfence();
	__syncthreads();
	if (threadIdx.x == 0) {
		uint32_t *cnt = reinterpret_cast<uint32_t *>(p.ws_count) + (uint64_t)grp * CL + r;
		const uint32_t prev = atomicAdd(cnt, 1u);
		sm.last = prev == ncl - 1;
		if (sm.last)
			*cnt = 0; /* every other cluster of the group has arrived */
	}
	__syncthreads();
	if (sm.last) {
		__threadfence();
		/* tpi threads (adjacent lanes) per item, each over every tpi-th
		 * cluster, 8 clusters' loads in flight; then a shuffle merge. */
		int tpi = 32;
		while (tpi * items > KVMM_NW * 32)
			tpi >>= 1;
		const int mi = threadIdx.x / tpi, sub = threadIdx.x % tpi;
		const int mrow = mi / CPS, mcol = r * CPS + mi % CPS;
		float m = -INFINITY, l = 0.f;
		float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
		if (mi < items) {
			for (uint32_t j0 = sub; j0 < ncl; j0 += 8 * tpi) {
				float2 a[8];
				float4 v[8];
#pragma unroll
				for (int u = 0; u < 8; u++) {
					const uint32_t j = j0 + u * tpi;
					a[u] = make_float2(-INFINITY, 0.f);
					v[u] = make_float4(0.f, 0.f, 0.f, 0.f);
					if (j < ncl) {
						a[u] = kvmm_ld_cg2(&wml[((item0 + j) * CL + r) *
										KVMM_ATTN_MTILE +
									mrow]);
						v[u] = kvmm_ld_cg4(
							&wa[((item0 + j) * KVMM_ATTN_MTILE + mrow) *
								    (D / 4) +
							    mcol]);
					}
				}
#pragma unroll
				for (int u = 0; u < 8; u++)
					attn_combine(m, l, o, a[u].x, a[u].y, v[u]);
			}
		}
		for (int off = 1; off < tpi; off <<= 1) { /* tpi is block-uniform */
			const float mj = __shfl_xor_sync(0xffffffffu, m, off);
			const float lj = __shfl_xor_sync(0xffffffffu, l, off);
			float4 oj;
			oj.x = __shfl_xor_sync(0xffffffffu, o.x, off);
			oj.y = __shfl_xor_sync(0xffffffffu, o.y, off);
			oj.z = __shfl_xor_sync(0xffffffffu, o.z, off);
			oj.w = __shfl_xor_sync(0xffffffffu, o.w, off);
			attn_combine(m, l, o, mj, lj, oj);
		}
		if (mi < items && sub == 0) {
			const float inv = 1.f / l;
			attn_store4<BF16>(p.out + 2 * ((uint64_t)b * p.o_bstride +
						       (uint64_t)(hq0 + mrow) * D + 4 * mcol),
					  make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv));
		}
	}
	cluster.barrier_wait(); /* the peers are done with this block's memory */
}

#endif /* KVMM_ATTN_DECODE_CUH */
