// SPDX-License-Identifier: MIT
/*
 * prefix_policy.c - how a matched prefix is attached when the caller says
 * KVMM_ATTACH_AUTO: alias (map the cached pages read-only) or copy (device
 * copy into the sequence's own pages).  The rule is in docs/prefix.md.
 *
 * The costs are measured once, when the prefix cache is enabled, on the
 * cache's own backend and pages, doing what an attach does: map a page at
 * a fresh address and set its access, copy a page into it (on the host
 * backend that first touch faults in every 4 KiB of the new mapping, which
 * is most of a copy's cost there), unmap it.  On the H100 a map + set_access is ~41 us and a
 * 2 MiB copy ~1.4 us; on the host backend an mmap + mprotect is a few us
 * and a 2 MiB memcpy a hundred or more: the same rule picks copy on one and
 * alias on the other.  A caller may give the costs instead
 * (kvmm_prefix_config.cost_*_ns): a simulator on the null backend, whose
 * maps and copies are bookkeeping, prices the machine it simulates.
 */
#include <errno.h>
#include <string.h>

#include "prefix.h"

#define ROUNDS 5

static uint64_t median(uint64_t *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			uint64_t t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2];
}

/* Without two blocks to measure with (a budget of one block), take what
 * the backend's counters say, else the figures of the backend's kind. */
static void costs_fallback(struct kvmm_cache *c, struct kvmm_attach_costs *k)
{
	struct kvmm_backend *be = c->be;
	uint64_t nm = atomic_load(&be->calls[KVMM_OP_MAP]);
	uint64_t na = atomic_load(&be->calls[KVMM_OP_SET_ACCESS]);
	uint64_t nu = atomic_load(&be->calls[KVMM_OP_UNMAP]);
	bool cuda = be->ops->type == KVMM_BACKEND_CUDA;

	k->map_ns = cuda ? 41000 : 5000;
	k->unmap_ns = cuda ? 18000 : 3000;
	k->copy_ns = cuda ? 1400 : 150000 * (c->g.page >> 21 ? c->g.page >> 21 : 1);
	if (nm && na)
		k->map_ns = atomic_load(&be->time_ns[KVMM_OP_MAP]) / nm +
			    atomic_load(&be->time_ns[KVMM_OP_SET_ACCESS]) / na;
	if (nu)
		k->unmap_ns = atomic_load(&be->time_ns[KVMM_OP_UNMAP]) / nu;
	k->measured = false;
}

void kvmm_attach_costs_measure(struct kvmm_cache *c, struct kvmm_attach_costs *k)
{
	struct kvmm_backend *be = c->be;
	const uint64_t page = c->g.page;
	uint64_t tm[ROUNDS], tu[ROUNDS], tc[ROUNDS], va = 0;
	kvmm_blk_t a = KVMM_BLK_NONE, b = KVMM_BLK_NONE;
	int ret;

	memset(k, 0, sizeof(*k));
	/* Only free blocks: measuring must not evict or steal anything. */
	kvmm_lock(c);
	ret = c->nfree >= 2 || c->committed_pages + 2ull * c->g.ppb <= c->budget_pages ? 0
										       : -ENOMEM;
	kvmm_unlock(c);
	if (!ret)
		ret = kvmm_blk_alloc(c, &a);
	if (!ret)
		ret = kvmm_blk_alloc(c, &b);
	if (!ret)
		ret = kvmm_be_reserve(be, page, 0, &va);
	for (int r = 0; r < ROUNDS && !ret; r++) {
		uint64_t t0 = kvmm_now_ns(), t1, t2;

		ret = kvmm_be_map(be, va, kvmm_blk_phys(c, b)[0]);
		if (!ret)
			ret = kvmm_be_set_access(be, va, page, KVMM_PROT_RW);
		t1 = kvmm_now_ns();
		if (!ret)
			ret = kvmm_be_copy_dtod(be, va, kvmm_blk_home(c, a), page);
		if (!ret)
			ret = kvmm_be_sync(be);
		t2 = kvmm_now_ns();
		if (!ret)
			ret = kvmm_be_unmap(be, va, page);
		tm[r] = t1 - t0;
		tc[r] = t2 - t1;
		tu[r] = kvmm_now_ns() - t2;
	}
	if (va)
		kvmm_be_release_va(be, va, page);
	if (b != KVMM_BLK_NONE)
		kvmm_blk_put(c, &b, 1);
	if (a != KVMM_BLK_NONE)
		kvmm_blk_put(c, &a, 1);
	if (ret) {
		costs_fallback(c, k);
		return;
	}
	k->map_ns = median(tm, ROUNDS);
	k->unmap_ns = median(tu, ROUNDS);
	k->copy_ns = median(tc, ROUNDS);
	k->measured = true;
}

void kvmm_attach_costs_init(struct kvmm_cache *c, const struct kvmm_prefix_config *cfg,
			    struct kvmm_attach_costs *k)
{
	if (cfg->cost_map_ns && cfg->cost_unmap_ns && cfg->cost_copy_ns)
		memset(k, 0, sizeof(*k)); /* all given: measure nothing */
	else
		kvmm_attach_costs_measure(c, k);
	if (cfg->cost_map_ns)
		k->map_ns = cfg->cost_map_ns;
	if (cfg->cost_unmap_ns)
		k->unmap_ns = cfg->cost_unmap_ns;
	if (cfg->cost_copy_ns)
		k->copy_ns = cfg->cost_copy_ns;
	if (cfg->cost_map_ns || cfg->cost_unmap_ns || cfg->cost_copy_ns)
		k->measured = false;
}

enum kvmm_attach_mode kvmm_attach_choose(struct kvmm_cache *c, const struct kvmm_attach_costs *k,
					 uint32_t nfull, uint32_t own_mapped)
{
	const uint64_t ppb = c->g.ppb;
	uint64_t alias_ns, copy_ns, extra, avail, budget_blocks, margin;

	if (!nfull)
		return KVMM_ATTACH_COPY; /* nothing to alias: only a partial block */
	extra = nfull - own_mapped;
	kvmm_lock(c);
	budget_blocks = c->budget_pages / ppb;
	avail = c->nfree;
	if (c->budget_pages > c->committed_pages)
		avail += (c->budget_pages - c->committed_pages) / ppb;
	kvmm_unlock(c);
	/* Copying needs extra blocks; when they would eat into the last
	 * sixteenth of the budget, they would come from evicting the prefix
	 * cache itself (or fail): alias, which needs none. */
	margin = budget_blocks / 16;
	if (extra && extra + margin > avail)
		return KVMM_ATTACH_ALIAS;
	alias_ns = nfull * ppb * k->map_ns + own_mapped * ppb * k->unmap_ns;
	copy_ns = nfull * ppb * k->copy_ns + extra * ppb * k->map_ns;
	return copy_ns < alias_ns ? KVMM_ATTACH_COPY : KVMM_ATTACH_ALIAS;
}
