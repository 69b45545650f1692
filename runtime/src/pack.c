// SPDX-License-Identifier: MIT
/*
 * pack.c - kvmm_pack()/kvmm_unpack(): runs of KV to and from one staging
 * buffer, optionally quantized (kernels/pack.cuh).  Runs travel in the
 * launch's parameter block, KVMM_PACK_MAX_RUNS at a time, so nothing is
 * uploaded and nothing is shared between launches.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "attn_internal.h"

#if defined(KVMM_HAVE_CUDA) && defined(KVMM_HAVE_KERNELS)

/* Runs longer than this are cut (a multiple of the tile and of any row). */
#define PACK_PIECE (1ull << 30)

static int pack_go(struct kvmm_kernels *k, const struct kvmm_pack_params *p, bool unpack,
		   uint64_t stream)
{
	struct kvmm_pack_kparams *kp;
	uint64_t *data_off, *row0, scale_off, total, row_bytes;
	CUfunction f;
	int ret;

	if (!k)
		return -EINVAL;
	if (!p || (p->nruns && !p->runs)) {
		kvmm_kernels_set_error(k, "pack: no parameters or no runs");
		return -EINVAL;
	}
	data_off = calloc(p->nruns + 1, sizeof(*data_off));
	row0 = calloc(p->nruns + 1, sizeof(*row0));
	kp = calloc(1, sizeof(*kp));
	if (!data_off || !row0 || !kp) {
		ret = -ENOMEM;
		goto out;
	}
	ret = kvmm_pack_layout(p, data_off, row0, &scale_off, &total);
	if (ret) {
		kvmm_kernels_set_error(k, "pack: bad runs, quant, dtype or row_elems (16-byte "
					  "aligned runs of whole rows)");
		goto out;
	}
	if (!p->staging || p->staging % 16 || p->staging_bytes < total) {
		kvmm_kernels_set_error(k, "pack: staging must be 16-aligned and hold %llu bytes",
				       (unsigned long long)total);
		ret = p->staging_bytes < total ? -ENOSPC : -EINVAL;
		goto out;
	}
	if (p->quant) {
		const int fp8 = p->quant == KVMM_QUANT_FP8_E4M3, bf = p->dtype == KVMM_DTYPE_BF16;
		f = unpack ? k->unpack_q[fp8][bf] : k->pack_q[fp8][bf];
		row_bytes = 2ull * p->row_elems;
	} else {
		f = unpack ? k->unpack_copy : k->pack_copy;
		row_bytes = 0;
	}
	kp->row_elems = p->row_elems;
	kp->tile_bytes = KVMM_PACK_TILE;
	for (uint32_t i = 0; i < p->nruns && !ret; i++) {
		const struct kvmm_pack_run *r = &p->runs[i];

		for (uint64_t off = 0; off < r->bytes && !ret; off += PACK_PIECE) {
			const uint64_t n =
				r->bytes - off < PACK_PIECE ? r->bytes - off : PACK_PIECE;
			struct kvmm_pack_krun *kr = &kp->runs[kp->nruns++];

			kr->cache = r->addr + off;
			kr->stage = p->staging + data_off[i] + (p->quant ? off / 2 : off);
			kr->scale =
				p->quant ? p->staging + scale_off + 4 * (row0[i] + off / row_bytes)
					 : 0;
			kr->bytes = (uint32_t)n;
			kr->first_tile = kp->ntiles;
			kp->ntiles += (uint32_t)((n + KVMM_PACK_TILE - 1) / KVMM_PACK_TILE);
			if (kp->nruns == KVMM_PACK_MAX_RUNS) {
				ret = kvmm_kernels_launch(k, f, kp->ntiles, 1, 1, KVMM_PACK_THREADS,
							  kp, stream, unpack ? "unpack" : "pack");
				kp->nruns = kp->ntiles = 0;
			}
		}
	}
	if (!ret && kp->nruns)
		ret = kvmm_kernels_launch(k, f, kp->ntiles, 1, 1, KVMM_PACK_THREADS, kp, stream,
					  unpack ? "unpack" : "pack");
out:
	free(data_off);
	free(row0);
	free(kp);
	return ret;
}

int kvmm_pack(struct kvmm_kernels *k, const struct kvmm_pack_params *p, uint64_t stream)
{
	return pack_go(k, p, false, stream);
}

int kvmm_unpack(struct kvmm_kernels *k, const struct kvmm_pack_params *p, uint64_t stream)
{
	return pack_go(k, p, true, stream);
}

#else

int kvmm_pack(struct kvmm_kernels *k, const struct kvmm_pack_params *p, uint64_t stream)
{
	(void)k, (void)p, (void)stream;
	return -ENOTSUP;
}

int kvmm_unpack(struct kvmm_kernels *k, const struct kvmm_pack_params *p, uint64_t stream)
{
	(void)k, (void)p, (void)stream;
	return -ENOTSUP;
}

#endif
