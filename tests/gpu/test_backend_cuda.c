// SPDX-License-Identifier: MIT
/*
 * test_backend_cuda.c - the CUDA backend's VMM path on a real GPU:
 * cuInit, reserve, create, map + set access, copy a pattern in and out,
 * alias one physical page at a second address, read-only access, unmap,
 * release.  Skips (exit 77) without a CUDA device.
 */
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "gputest.h"

int main(void)
{
	struct kvmm_backend *be = gt_open_cuda_or_skip();
	struct kvmm_backend_stats st;
	struct gt t = {0};
	uint64_t ps = kvmm_backend_page_size(be), va = 0;
	kvmm_phys_t pg = 0;
	unsigned char *in = malloc(ps), *out = malloc(ps);
	int ret;

	printf("# cuda backend: page size %llu\n", (unsigned long long)ps);
	GT_CHECK(&t, ps == (2u << 20), "granularity is 2 MiB (got %llu)", (unsigned long long)ps);
	for (uint64_t i = 0; i < ps; i++)
		in[i] = (unsigned char)(i * 131 + 7);

	ret = kvmm_be_reserve(be, 4 * ps, 0, &va);
	GT_CHECK(&t, ret == 0 && va, "reserve 4 pages of VA (%d)", ret);
	ret = kvmm_be_create(be, &pg);
	GT_CHECK(&t, ret == 0, "create a physical page (%d %s)", ret, kvmm_backend_last_error(be));
	ret = kvmm_be_map(be, va, pg);
	GT_CHECK(&t, ret == 0, "map at va (%d)", ret);
	ret = kvmm_be_set_access(be, va, ps, KVMM_PROT_RW);
	GT_CHECK(&t, ret == 0, "set access rw (%d)", ret);
	ret = kvmm_memcpy_to_dev(be, va, in, ps);
	GT_CHECK(&t, ret == 0, "copy a pattern in (%d)", ret);
	memset(out, 0, ps);
	ret = kvmm_memcpy_to_host(be, out, va, ps);
	GT_CHECK(&t, ret == 0 && !memcmp(in, out, ps), "read the pattern back (%d)", ret);

	/* Alias: the same page at a second address shows the same bytes. */
	ret = kvmm_be_map(be, va + 2 * ps, pg);
	GT_CHECK(&t, ret == 0, "map the same page at va+2 pages (%d)", ret);
	ret = kvmm_be_set_access(be, va + 2 * ps, ps, KVMM_PROT_READ);
	GT_CHECK(&t, ret == 0, "set access read-only on the alias (%d %s)", ret,
		 kvmm_backend_last_error(be));
	memset(out, 0, ps);
	ret = kvmm_memcpy_to_host(be, out, va + 2 * ps, ps);
	GT_CHECK(&t, ret == 0 && !memcmp(in, out, ps), "alias reads the same bytes (%d)", ret);
	ret = kvmm_be_map(be, va, pg);
	GT_CHECK(&t, ret < 0, "mapping over a mapping fails (%d)", ret);

	ret = kvmm_be_unmap(be, va + 2 * ps, ps);
	GT_CHECK(&t, ret == 0, "unmap the alias (%d)", ret);
	ret = kvmm_be_unmap(be, va, ps);
	GT_CHECK(&t, ret == 0, "unmap (%d)", ret);
	ret = kvmm_be_destroy(be, pg);
	GT_CHECK(&t, ret == 0, "release the page (%d)", ret);
	ret = kvmm_be_release_va(be, va, 4 * ps);
	GT_CHECK(&t, ret == 0, "free the VA (%d)", ret);
	kvmm_backend_stats(be, &st);
	GT_CHECK(&t, st.pages_live == 0 && st.calls[KVMM_OP_MAP] == 3,
		 "counters: %llu maps, %llu live", (unsigned long long)st.calls[KVMM_OP_MAP],
		 (unsigned long long)st.pages_live);
	free(in);
	free(out);
	kvmm_backend_close(be);
	return gt_done(&t);
}
