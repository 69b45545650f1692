/* SPDX-License-Identifier: MIT */
/*
 * kvmm_kernels.cu - the one translation unit nvcc compiles into the fatbin
 * embedded in libkvmm (mk/runtime.mk).  Every kernel has C linkage and takes
 * one parameter block (kernels/kvmm_kernels_abi.h) by value, so the host
 * wrappers find it with cuModuleGetFunction by name and launch it with
 * cuLaunchKernel through the dlopen'ed driver.
 */
#include "attn_decode.cuh"
#include "pack.cuh"

static_assert(sizeof(kvmm_attn_kparams) == KVMM_ATTN_KPARAMS_SIZE, "attn ABI");
static_assert(sizeof(kvmm_pack_kparams) == KVMM_PACK_KPARAMS_SIZE, "pack ABI");
static_assert(sizeof(kvmm_fill_kparams) == KVMM_FILL_KPARAMS_SIZE, "fill ABI");
static_assert(sizeof(kvmm_stream_kparams) == KVMM_STREAM_KPARAMS_SIZE, "stream ABI");

#define ATTN_THREADS (KVMM_ATTN_WARPS * 32)

/* kvmm_attn_decode_<dtype>_d<head_dim>_<view|table>[_pipe[_cl8]] */
#define KVMM_ATTN_KERNEL(name, bf16, d, table, pipe)               \
	extern "C" __global__ void __launch_bounds__(ATTN_THREADS) \
		name(const __grid_constant__ kvmm_attn_kparams p)  \
	{                                                          \
		attn_decode<bf16, d, table, pipe>(p);              \
	}
/* ..._pipe_cl8: the pipelined kernel in clusters of KVMM_ATTN_CLUSTER splits
 * that merge through distributed shared memory (a plain cuLaunchKernel
 * launches it in clusters: the size is compiled in). */
#define KVMM_ATTN_KERNEL_CL(name, bf16, d, table)                                                 \
	extern "C" __global__ void __cluster_dims__(KVMM_ATTN_CLUSTER, 1, 1)                      \
		__launch_bounds__(ATTN_THREADS) name(const __grid_constant__ kvmm_attn_kparams p) \
	{                                                                                         \
		attn_decode<bf16, d, table, true, KVMM_ATTN_CLUSTER>(p);                          \
	}
#define KVMM_ATTN_KERNELS(dt, bf16, d)                                                    \
	KVMM_ATTN_KERNEL(kvmm_attn_decode_##dt##_d##d##_view, bf16, d, false, false)      \
	KVMM_ATTN_KERNEL(kvmm_attn_decode_##dt##_d##d##_table, bf16, d, true, false)      \
	KVMM_ATTN_KERNEL(kvmm_attn_decode_##dt##_d##d##_view_pipe, bf16, d, false, true)  \
	KVMM_ATTN_KERNEL(kvmm_attn_decode_##dt##_d##d##_table_pipe, bf16, d, true, true)  \
	KVMM_ATTN_KERNEL_CL(kvmm_attn_decode_##dt##_d##d##_view_pipe_cl8, bf16, d, false) \
	KVMM_ATTN_KERNEL_CL(kvmm_attn_decode_##dt##_d##d##_table_pipe_cl8, bf16, d, true)
KVMM_ATTN_KERNELS(f16, false, 64)
KVMM_ATTN_KERNELS(f16, false, 128)
KVMM_ATTN_KERNELS(bf16, true, 64)
KVMM_ATTN_KERNELS(bf16, true, 128)

#define KVMM_PACK_KERNEL(name, body)                                    \
	extern "C" __global__ void __launch_bounds__(KVMM_PACK_THREADS) \
		name(const __grid_constant__ kvmm_pack_kparams p)       \
	{                                                               \
		body(p);                                                \
	}
KVMM_PACK_KERNEL(kvmm_pack_copy, pack_copy<false>)
KVMM_PACK_KERNEL(kvmm_unpack_copy, pack_copy<true>)
KVMM_PACK_KERNEL(kvmm_pack_int8_f16, (pack_quant<false, false>))
KVMM_PACK_KERNEL(kvmm_pack_int8_bf16, (pack_quant<true, false>))
KVMM_PACK_KERNEL(kvmm_pack_fp8_f16, (pack_quant<false, true>))
KVMM_PACK_KERNEL(kvmm_pack_fp8_bf16, (pack_quant<true, true>))
KVMM_PACK_KERNEL(kvmm_unpack_int8_f16, (unpack_quant<false, false>))
KVMM_PACK_KERNEL(kvmm_unpack_int8_bf16, (unpack_quant<true, false>))
KVMM_PACK_KERNEL(kvmm_unpack_fp8_f16, (unpack_quant<false, true>))
KVMM_PACK_KERNEL(kvmm_unpack_fp8_bf16, (unpack_quant<true, true>))

extern "C" __global__ void kvmm_fill_random_f16(const __grid_constant__ kvmm_fill_kparams p)
{
	fill_random<false>(p);
}

extern "C" __global__ void kvmm_fill_random_bf16(const __grid_constant__ kvmm_fill_kparams p)
{
	fill_random<true>(p);
}

extern "C" __global__ void __launch_bounds__(256)
	kvmm_stream_copy(const __grid_constant__ kvmm_stream_kparams p)
{
	stream_copy(p);
}

extern "C" __global__ void __launch_bounds__(256)
	kvmm_stream_read(const __grid_constant__ kvmm_stream_kparams p)
{
	stream_read(p);
}
