/* SPDX-License-Identifier: MIT */
/*
 * kvmm_device.cuh - small device primitives shared by kvmm's kernels:
 * streaming 16-byte loads, the m16n8k16 tensor-core product, exp2, packing
 * of fp16/bf16 pairs, warp reductions.
 */
#ifndef KVMM_DEVICE_CUH
#define KVMM_DEVICE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define KVMM_DEV __device__ __forceinline__

/*
 * KV is read exactly once per launch: do not keep it in L1, and let L2
 * fetch whole 256-byte sectors groups (a warp reads 64-256 contiguous bytes
 * per token, the rest of the line a moment later).
 */
KVMM_DEV uint4 kvmm_ld_stream(uint64_t addr)
{
	uint4 v;

	asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
	    : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
	    : "l"(addr));
	return v;
}

/* Loads that must see other blocks' stores of this launch (L2, not L1). */
KVMM_DEV float4 kvmm_ld_cg4(const float4 *p)
{
	return __ldcg(p);
}

KVMM_DEV float2 kvmm_ld_cg2(const float2 *p)
{
	return __ldcg(p);
}

KVMM_DEV float kvmm_ex2(float x)
{
	float y;

	asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
	return y;
}

/* D += A * B for one m16n8k16 tile, fp32 accumulate.  A: 4 regs (rows g and
 * g+8, k pairs 2t and 2t+8), B: 2 regs (k pairs 2t and 2t+8, column g),
 * D: rows g, g+8 x columns 2t, 2t+1 (g = lane / 4, t = lane % 4). */
template <bool BF16>
KVMM_DEV void kvmm_mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1)
{
	if (BF16)
		asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
			     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
			     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
	else
		asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
			     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
			     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
			     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats as one fp16/bf16 pair (lo in the low half), round to nearest. */
template <bool BF16> KVMM_DEV uint32_t kvmm_pack2(float lo, float hi)
{
	uint32_t r;

	if (BF16) {
		__nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
		r = *reinterpret_cast<uint32_t *>(&h);
	} else {
		__half2 h = __floats2half2_rn(lo, hi);
		r = *reinterpret_cast<uint32_t *>(&h);
	}
	return r;
}

template <bool BF16> KVMM_DEV float2 kvmm_unpack2(uint32_t v)
{
	if (BF16) {
		__nv_bfloat162 h = *reinterpret_cast<__nv_bfloat162 *>(&v);
		return __bfloat1622float2(h);
	}
	__half2 h = *reinterpret_cast<__half2 *>(&v);
	return __half22float2(h);
}

KVMM_DEV float kvmm_warp_max(float v)
{
#pragma unroll
	for (int o = 16; o; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

KVMM_DEV float kvmm_warp_sum(float v)
{
#pragma unroll
	for (int o = 16; o; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* n / d for a divisor d >= 2 prepared by kvmm_fastdiv_init() (the host
 * never passes 1: a view with one token per page is a uniform view). */
KVMM_DEV uint32_t kvmm_fastdiv(uint32_t n, uint32_t mul, uint32_t shr)
{
	return __umulhi(n, mul) >> shr;
}

#endif /* KVMM_DEVICE_CUH */
