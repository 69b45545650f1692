// SPDX-License-Identifier: MIT
/*
 * tier_mem_kmod.c - the host tier's memory from a pool of the kvmm kernel
 * module (kvmm_hostpool_*): placed on the node by the module, populated
 * by it, charged to our memory cgroup, visible to operators.  Records
 * whose bytes are also on disk are marked COLD, so the kernel may drop them
 * under memory pressure instead of killing someone; a dropped page changes
 * its generation, which the tiers check before trusting a record (on top
 * of the record's checksum).  4 KiB pool pages, so states follow records,
 * not 2 MiB pages two records share.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include "kvmm.h"
#include "tier_mem.h"

#define POOL_PAGE 4096u

/* Re-open the persistent pool m->name: same size, ours alone. */
static int kmod_reopen(struct tier_mem *m, uint64_t bytes, struct kvmm_hostpool **out)
{
	struct kvmm_hostpool_stat st;
	struct kvmm_hostpool *pool;
	int ret = kvmm_hostpool_open(m->name, 0, &pool);

	if (ret)
		return ret;
	ret = kvmm_hostpool_stat(pool, &st);
	if (!ret && (st.bytes != bytes || st.page_size != POOL_PAGE))
		ret = -EEXIST; /* made for another size: not ours to reuse */
	if (!ret && st.attached > 1)
		ret = -EBUSY; /* another process writes into it */
	if (ret) {
		kvmm_hostpool_close(pool);
		return ret;
	}
	*out = pool;
	return 0;
}

static int kmod_create(struct tier_mem *m, uint64_t bytes, int node, uint32_t flags)
{
	static _Atomic unsigned int seq;
	struct kvmm_hostpool_config cfg = {
		.bytes = bytes,
		.node = node >= 0 ? node : KVMM_HOSTPOOL_NODE_ANY,
		.page_size = POOL_PAGE,
		.flags = KVMM_HOSTPOOL_CFG_POPULATE,
	};
	struct kvmm_hostpool *pool = NULL;
	char name[64];
	int ret;

	if (!bytes || bytes % POOL_PAGE || flags & (TIER_MEM_HUGETLB | TIER_MEM_THP))
		return -EINVAL;
	if (flags & TIER_MEM_FALLBACK)
		cfg.flags |= KVMM_HOSTPOOL_CFG_FALLBACK;
	m->reopened = false;
	if (m->name) {
		/* persistent: what a previous process left is found again */
		if (flags & TIER_MEM_FALLBACK)
			return -EINVAL; /* ordinary memory cannot outlive us */
		snprintf(name, sizeof(name), "%s", m->name);
		ret = kmod_reopen(m, bytes, &pool);
		if (!ret)
			m->reopened = true;
		else if (ret != -ENOENT)
			return ret;
		cfg.flags |= KVMM_HOSTPOOL_CFG_PERSISTENT;
	} else {
		/* a name nobody else has: pid and a counter of this process */
		snprintf(name, sizeof(name), "kvmm-tiers-%d-%u", (int)getpid(),
			 atomic_fetch_add(&seq, 1));
	}
	cfg.name = name;
	if (!pool) {
		ret = kvmm_hostpool_create(&cfg, &pool);
		if (ret == -EEXIST && m->name) {
			/* created by someone else meanwhile */
			ret = kmod_reopen(m, bytes, &pool);
			m->reopened = !ret;
		}
		if (ret)
			return ret;
	}
	m->priv = pool;
	m->base = kvmm_hostpool_base(pool);
	m->bytes = bytes;
	m->page = POOL_PAGE;
	/* a re-opened pool's dropped pages come back (as zeroes) when read */
	m->populated = true;
	m->node_placed = node >= 0; /* by the module, when it was created */
	snprintf(m->desc, sizeof(m->desc), "%s %s",
		 kvmm_hostpool_fd(pool) >= 0 ? "kvmm pool" : "kvmm fallback pool", name);
	return 0;
}

static void kmod_destroy(struct tier_mem *m)
{
	kvmm_hostpool_close(m->priv);
	m->priv = NULL;
	m->base = NULL;
}

static int kmod_set_state(struct tier_mem *m, uint64_t off, uint64_t len, enum tier_mem_state st)
{
	uint64_t first = off / POOL_PAGE, last = (off + len + POOL_PAGE - 1) / POOL_PAGE;
	int64_t ret = kvmm_hostpool_set_state(m->priv, first, last - first,
					      (enum kvmm_hostpool_page_state)st);

	return ret < 0 ? (int)ret : 0;
}

static uint64_t kmod_generation(struct tier_mem *m, uint64_t off, uint64_t len)
{
	uint64_t first = off / POOL_PAGE, last = (off + len + POOL_PAGE - 1) / POOL_PAGE, sum = 0;

	/* generations only grow: their sum changes when any of them does */
	for (uint64_t p = first; p < last; p++)
		sum += kvmm_hostpool_page_gen(m->priv, p);
	return sum;
}

static int kmod_publish(struct tier_mem *m, const uint64_t pages[4])
{
	return kvmm_hostpool_set_residency(m->priv, pages);
}

const struct tier_mem_ops tier_mem_kmod_ops = {
	.name = "kmod",
	.create = kmod_create,
	.destroy = kmod_destroy,
	.set_state = kmod_set_state,
	.generation = kmod_generation,
	.publish = kmod_publish,
};
