// SPDX-License-Identifier: MIT
/*
 * tiers.c - the tier layer of a cache: enable (host pool, disk tier, copy
 * engine, mover thread, hooks into the prefix cache), the mover, flush,
 * stats.  See tiers.h for the parts and docs/tiers.md for the design.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_quant.h"
#include "tiers.h"

void tiers_log(struct kvmm_tiers *t, uint32_t kind, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!t->cfg.log || (atomic_fetch_or(&t->logged, kind) & kind))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	t->cfg.log(t->cfg.log_arg, msg);
}

/* Logging of the host pool and disk tier goes to the same place. */
static void sub_log(void *arg, const char *msg)
{
	struct kvmm_tiers *t = arg;

	if (t->cfg.log)
		t->cfg.log(t->cfg.log_arg, msg);
}

/* ---- the mover --------------------------------------------------------- */

void tiers_queue(struct kvmm_tiers *t, struct tier_job *j)
{
	pthread_mutex_lock(&t->lock);
	j->next = NULL;
	*t->jobs_tail = j;
	t->jobs_tail = &j->next;
	t->busy++;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void *mover_main(void *arg)
{
	struct kvmm_tiers *t = arg;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		struct tier_job *j = t->jobs;

		if (!j) {
			if (t->stop)
				break;
			pthread_cond_wait(&t->cond, &t->lock);
			continue;
		}
		t->jobs = j->next;
		if (!t->jobs)
			t->jobs_tail = &t->jobs;
		pthread_mutex_unlock(&t->lock);
		/* a job accounts for itself (busy--) when done: prefetch
		 * steps requeue themselves */
		j->run(t, j);
		tiers_publish(t, false);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/* A job that is not a prefetch step ends here. */
void tiers_job_done(struct kvmm_tiers *t)
{
	pthread_mutex_lock(&t->lock);
	t->busy--;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void tiers_publish(struct kvmm_tiers *t, bool force)
{
	uint64_t now = kvmm_now_ns(), pages[4], ppb = t->c->g.ppb;
	struct tier_disk_stats ds = {0};
	struct pt_stats ps;

	pthread_mutex_lock(&t->lock);
	if (!force && now - t->published_ns < 100000000ull) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	t->published_ns = now;
	pages[KVMM_RES_HOST] = t->nvalid * ppb;
	pages[KVMM_RES_INFLIGHT] = t->inflight * ppb;
	pthread_mutex_unlock(&t->lock);
	pt_stats(t->p->tree, &ps);
	if (t->disk)
		tier_disk_get_stats(t->disk, &ds);
	/* in the cache's pages (a block is ppb of them) */
	pages[KVMM_RES_GPU] = ps.blocks_cached * ppb;
	pages[KVMM_RES_DISK] = ds.records * ppb;
	tier_host_publish(t->host, pages);
}

int kvmm_tiers_flush(struct kvmm_cache *c)
{
	struct kvmm_tiers *t = kvmm_tiers_of(c);

	if (!t)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	while (t->busy)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
	if (t->disk)
		tier_disk_drain(t->disk);
	return 0;
}

/* ---- enable / fini ------------------------------------------------------- */

static void stop_mover(struct kvmm_tiers *t)
{
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->mover, NULL);
}

static void tiers_free(struct kvmm_tiers *t)
{
	tier_disk_close(t->disk);
	tier_copy_destroy(t->copy);
	tier_hashpool_destroy(t->hashpool);
	tier_host_destroy(t->host);
	free(t->qstage);
	tidx_fini(t);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t->disk_dir);
	free(t->pool_name);
	free(t);
}

static void tiers_fini(struct kvmm_cache *c)
{
	struct kvmm_tiers *t = kvmm_tiers_of(c);

	if (!t)
		return;
	/* No reclaim may run while we take the hook away: stop the mapper
	 * (destroy would next; it is idempotent). */
	kvmm_mapper_stop(c);
	pt_set_evict_hook(t->p->tree, NULL, NULL);
	kvmm_prefix_set_tier_hooks(c, NULL, NULL);
	kvmm_tiers_flush(c);
	/* persist what only the host pool holds (write-back), so a restart
	 * finds it on disk */
	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; t->disk && !t->bookkeeping && i < tier_host_nslots(t->host); i++)
		tiers_maybe_write(t, i, true);
	pthread_mutex_unlock(&t->lock);
	kvmm_tiers_flush(c);
	stop_mover(t);
	tiers_free(t);
	c->tiers = NULL;
	c->tiers_fini = NULL;
}

static int check_config(const struct kvmm_tiers_config *cfg)
{
	const uint32_t known = KVMM_TIERS_HOST_THP | KVMM_TIERS_HOST_HUGETLB | KVMM_TIERS_NO_KMOD |
			       KVMM_TIERS_DISK_BUFFERED | KVMM_TIERS_DISK_DISCARD |
			       KVMM_TIERS_DISK_SCAN_HEADERS | KVMM_TIERS_NO_VERIFY_HOST |
			       KVMM_TIERS_HOST_NO_THP;

	if (!cfg->host_bytes || cfg->flags & ~known ||
	    (unsigned)cfg->host_placement > KVMM_HOST_NODE ||
	    (cfg->host_placement == KVMM_HOST_NODE && cfg->host_node < 0) ||
	    (unsigned)cfg->host_policy > KVMM_WRITE_THROUGH ||
	    (unsigned)cfg->disk_policy > KVMM_WRITE_THROUGH ||
	    (unsigned)cfg->encoding > KVMM_SPILL_INT8 || (cfg->disk_dir && !cfg->disk_bytes) ||
	    cfg->kv_dtype > KVMM_DTYPE_BF16 || cfg->__pad ||
	    ((cfg->flags & KVMM_TIERS_HOST_NO_THP) && (cfg->flags & KVMM_TIERS_HOST_THP)) ||
	    (cfg->host_pool_name &&
	     (cfg->flags & (KVMM_TIERS_HOST_THP | KVMM_TIERS_HOST_HUGETLB | KVMM_TIERS_NO_KMOD))))
		return -EINVAL;
	return 0;
}

/* What a record's payload is: the block's bytes, or (quantize-on-spill)
 * 1-byte values and a scale per row of head_dim 2-byte elements. */
static int set_encoding(struct kvmm_tiers *t, const struct kvmm_cache_info *info)
{
	_Static_assert((int)TIER_ENC_FP8 == (int)KVMM_SPILL_FP8 &&
			       (int)TIER_ENC_INT8 == (int)KVMM_SPILL_INT8 &&
			       (int)TIER_DTYPE_FP16 == (int)KVMM_DTYPE_FP16 &&
			       (int)TIER_DTYPE_BF16 == (int)KVMM_DTYPE_BF16 &&
			       (int)TIER_QUANT_INT8 == (int)KVMM_QUANT_INT8 &&
			       (int)TIER_QUANT_FP8 == (int)KVMM_QUANT_FP8_E4M3,
		       "the tiers' encodings are the public ones");
	t->enc = t->cfg.encoding;
	t->payload_bytes = info->block_bytes;
	if (t->enc == TIER_ENC_RAW)
		return 0;
	if (info->shape.elem_size != 2 || !t->cfg.kv_dtype)
		return -EINVAL; /* fp16 or bf16, and which */
	t->dtype = t->cfg.kv_dtype;
	t->row_elems = info->shape.head_dim;
	t->payload_bytes = tier_quant_bytes(info->block_bytes, t->row_elems);
	return t->payload_bytes ? 0 : -EINVAL;
}

/* The device's pack kernels when there are some, else the CPU codec. */
static int open_codec(struct kvmm_tiers *t)
{
	int ret;

	if (t->enc == TIER_ENC_RAW || t->bookkeeping)
		return 0; /* (bookkeeping: sizes only, nothing to encode) */
	ret = tier_copy_quant_init(t->copy, t->payload_bytes, 8);
	if (ret != -ENOTSUP)
		return ret;
	t->qstage = malloc(t->c->g.block_bytes);
	return t->qstage ? 0 : -ENOMEM;
}

static int open_host(struct kvmm_tiers *t)
{
	struct tier_host_config hc = {
		.bytes = t->cfg.host_bytes,
		.slot_bytes = t->rec_bytes,
		.numa_node = t->cfg.host_placement == KVMM_HOST_GPU_NODE   ? TIER_NODE_OF_GPU
			     : t->cfg.host_placement == KVMM_HOST_ANY_NODE ? TIER_NODE_ANY
									   : t->cfg.host_node,
		.threads = t->cfg.host_threads,
		.be = t->c->be,
		.log = sub_log,
		.log_arg = t,
	};

	if (t->rec_bytes > (1ull << 30) || t->cfg.host_bytes < t->rec_bytes)
		return -EINVAL;
	if (t->bookkeeping) {
		/* the null backend: capacity without memory (no pool of the
		 * module, no pages of any kind) */
		if (t->cfg.host_pool_name)
			return -EINVAL; /* nothing to keep across a restart */
		hc.mem = &tier_mem_null_ops;
		return tier_host_create(&hc, &t->host);
	}
	if (t->cfg.flags & KVMM_TIERS_HOST_HUGETLB)
		hc.flags |= TIER_HOST_HUGETLB;
	/* a registration chunk holds whole records, at least one */
	hc.chunk_bytes = t->rec_bytes > (256ull << 20) ? t->rec_bytes : 0;
	if (t->cfg.host_pool_name) {
		/* a persistent module pool, or nothing: a fallback would
		 * silently lose what the caller wants kept */
		int ret = kvmm_probe(NULL, NULL);

		if (ret)
			return ret;
		hc.mem = &tier_mem_kmod_ops;
		hc.pool_name = t->cfg.host_pool_name;
		return tier_host_create(&hc, &t->host);
	}
	/* the kernel module's pool when the module is there (4 KiB pages:
	 * page states follow records) */
	if (!(t->cfg.flags &
	      (KVMM_TIERS_NO_KMOD | KVMM_TIERS_HOST_THP | KVMM_TIERS_HOST_HUGETLB)) &&
	    kvmm_probe(NULL, NULL) == 0) {
		int ret;

		hc.mem = &tier_mem_kmod_ops;
		ret = tier_host_create(&hc, &t->host);
		if (!ret)
			return 0;
		tiers_log(t, TLOG_FULL,
			  "kvmm tiers: the kernel module refused a pool (%s): "
			  "using the process's own memory",
			  strerror(-ret));
		hc.mem = NULL;
	}
	/* our own mapping: transparent huge pages unless refused (creation
	 * was faster with them on the H100 machine, docs/tiers.md); where the
	 * kernel has none, the pool gets 4 KiB pages all the same */
	if (!(t->cfg.flags & (KVMM_TIERS_HOST_NO_THP | KVMM_TIERS_HOST_HUGETLB)))
		hc.flags |= TIER_HOST_THP;
	return tier_host_create(&hc, &t->host);
}

static int open_disk(struct kvmm_tiers *t)
{
	struct tier_disk_config dc = {
		.dir = t->cfg.disk_dir,
		.capacity_bytes = t->cfg.disk_bytes,
		.slot_bytes = t->rec_bytes,
		.queue_depth = t->cfg.disk_queue_depth,
		.log = sub_log,
		.log_arg = t,
	};

	if (!t->cfg.disk_dir)
		return 0;
	if (t->cfg.flags & KVMM_TIERS_DISK_BUFFERED)
		dc.flags |= TIER_DISK_BUFFERED;
	if (t->cfg.flags & KVMM_TIERS_DISK_DISCARD)
		dc.flags |= TIER_DISK_DISCARD;
	if (t->cfg.flags & KVMM_TIERS_DISK_SCAN_HEADERS)
		dc.flags |= TIER_DISK_SCAN_HEADER;
	if (t->bookkeeping)
		dc.flags |= TIER_DISK_NO_STORAGE; /* disk_dir names it, untouched */
	/* disk I/O straight from and into the host pool */
	dc.bufs = tier_host_chunks(t->host, &dc.nbufs);
	dc.hashpool = t->hashpool;
	return tier_disk_open(&dc, &t->disk);
}

static void hook_inserted(void *arg, const struct kvmm_ns *ns, const uint32_t *tokens,
			  uint32_t first, uint32_t n, const uint64_t *blocks)
{
	tiers_on_insert(arg, ns, tokens, first, n, blocks);
}

static void hook_hinted(void *arg, const struct kvmm_ns *ns, const uint32_t *tokens, uint32_t n)
{
	tiers_prefetch_detached(arg, ns, tokens, n);
}

static const struct kvmm_prefix_tier_hooks hooks = {
	.inserted = hook_inserted,
	.hinted = hook_hinted,
};

int kvmm_tiers_enable(struct kvmm_cache *c, const struct kvmm_tiers_config *cfg)
{
	struct kvmm_cache_info info;
	struct kvmm_tiers *t;
	int ret;

	if (!c || !cfg)
		return -EINVAL;
	ret = check_config(cfg);
	if (ret)
		return ret;
	if (!kvmm_prefix_of(c))
		return -EINVAL; /* the tiers hang off the prefix cache */
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->c = c;
	t->p = kvmm_prefix_of(c);
	t->cfg = *cfg;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->jobs_tail = &t->jobs;
	if (cfg->disk_dir) {
		t->disk_dir = strdup(cfg->disk_dir);
		if (!t->disk_dir) {
			ret = -ENOMEM;
			goto fail;
		}
		t->cfg.disk_dir = t->disk_dir;
	}
	if (cfg->host_pool_name) {
		t->pool_name = strdup(cfg->host_pool_name);
		if (!t->pool_name) {
			ret = -ENOMEM;
			goto fail;
		}
		t->cfg.host_pool_name = t->pool_name;
	}
	kvmm_cache_get_info(c, &info);
	t->geometry = tier_geometry_id(&info);
	ret = set_encoding(t, &info);
	if (ret)
		goto fail;
	/* no bytes behind the backend's blocks: none behind records either */
	t->bookkeeping = c->be->ops->type == KVMM_BACKEND_NULL;
	t->hdr_bytes = tier_rec_hdr_bytes(c->g.tpb);
	t->rec_bytes = tier_rec_bytes(c->g.tpb, t->payload_bytes);
	if (!t->hdr_bytes || !t->rec_bytes) {
		ret = -EINVAL;
		goto fail;
	}
	ret = open_host(t);
	if (!ret)
		ret = tidx_init(t, tier_host_nslots(t->host));
	if (!ret)
		ret = open_disk(t);
	if (!ret)
		ret = tier_copy_create(c->be, &t->copy);
	if (!ret)
		ret = open_codec(t);
	if (!ret) {
		/* checksums at copy speed: a PCIe 5 link moves ~52 GB/s each
		 * way, one thread hashes 5-12 GB/s from memory: every other
		 * core helps, in bursts, while copies run (bookkeeping:
		 * nothing to hash) */
		long ncpu = t->bookkeeping ? 1 : sysconf(_SC_NPROCESSORS_ONLN);

		ret = tier_hashpool_create(ncpu > 32  ? 31
					   : ncpu > 1 ? (uint32_t)ncpu - 1
						      : 0,
					   &t->hashpool);
	}
	if (ret)
		goto fail;
	/* sequence numbers above every record on disk (and in a re-opened
	 * host pool, whose records go back into the index) */
	t->next_seq = t->disk ? tier_disk_seq_next(t->disk) : 1;
	{
		struct tier_host_stats hs;

		tier_host_get_stats(t->host, &hs);
		ret = hs.reopened ? tiers_host_scan(t) : 0;
		if (ret)
			goto fail;
	}
	ret = -pthread_create(&t->mover, NULL, mover_main, t);
	if (ret)
		goto fail;
	kvmm_lock(c);
	if (c->tiers) {
		kvmm_unlock(c);
		ret = -EEXIST;
		stop_mover(t);
		goto fail;
	}
	c->tiers = t;
	c->tiers_fini = tiers_fini;
	kvmm_unlock(c);
	pt_set_evict_hook(t->p->tree, tiers_evict_hook, t);
	kvmm_prefix_set_tier_hooks(c, &hooks, t);
	return 0;
fail:
	tiers_free(t);
	return ret;
}

/* ---- stats --------------------------------------------------------------- */

int kvmm_tiers_stats(const struct kvmm_cache *c, struct kvmm_tiers_stats *st)
{
	struct kvmm_tiers *t = kvmm_tiers_of(c);
	struct tier_host_stats hs;
	struct tier_disk_stats ds = {0};
	struct pt_stats ps;

	if (!t || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	tier_host_get_stats(t->host, &hs);
	if (t->disk)
		tier_disk_get_stats(t->disk, &ds);
	pt_stats(t->p->tree, &ps);
	pthread_mutex_lock(&t->lock);
	st->blocks[KVMM_RES_GPU] = ps.blocks_cached;
	st->blocks[KVMM_RES_HOST] = t->nvalid;
	st->blocks[KVMM_RES_DISK] = ds.records;
	st->blocks[KVMM_RES_INFLIGHT] = t->inflight;
	st->spills_host = t->n.spills_host;
	st->spill_host_bytes = t->n.spill_host_bytes;
	st->spills_disk = t->n.spills_disk;
	st->spill_disk_bytes = t->n.spill_disk_bytes;
	st->restores_host = t->n.restores_host;
	st->restores_disk = t->n.restores_disk;
	st->restore_bytes = t->n.restore_bytes;
	st->prefetches = t->n.prefetches;
	st->prefetch_blocks = t->n.prefetch_blocks;
	st->spill_skipped = t->n.spill_skipped;
	st->host_evictions = t->n.host_evictions;
	st->host_drops_unwritten = t->n.host_drops_unwritten;
	st->disk_admit_rejects = t->n.disk_admit_rejects;
	st->verify_failures = t->n.verify_failures;
	st->io_errors = t->n.io_errors;
	st->restore_failures = t->n.restore_failures;
	st->host_reclaimed = t->n.host_reclaimed;
	st->host_scan_found = t->host_scan_found;
	st->host_scan_ns = t->host_scan_ns;
	pthread_mutex_unlock(&t->lock);
	st->host_bytes = hs.bytes;
	st->host_slot_bytes = hs.slot_bytes;
	st->host_slots = hs.slots;
	st->host_slots_free = hs.slots_free;
	st->host_node = hs.node;
	st->host_pinned = hs.pinned;
	st->host_create_ns = hs.create_ns;
	st->disk_capacity_bytes = ds.capacity_bytes;
	st->disk_used_bytes = ds.bytes_stored;
	st->disk_direct = ds.direct;
	st->disk_scan_found = (uint32_t)ds.scan_records;
	st->disk_scan_ns = ds.scan_ns;
	st->disk_evictions = ds.evictions;
	/* the disk's own failures: reads dropped as corrupt or unreadable */
	st->io_errors += ds.err_io + ds.err_short + ds.err_nospace;
	st->encoding = t->cfg.encoding;
	st->quant_on_device = tier_copy_has_quant(t->copy);
	st->bookkeeping_only = t->bookkeeping;
	snprintf(st->host_source, sizeof(st->host_source), "%s", hs.source);
	tiers_publish(t, true);
	return 0;
}

int kvmm_tiers_stats_json(const struct kvmm_cache *c, char *buf, size_t len)
{
	struct kvmm_tiers_stats st;
	size_t used = 0;
	int ret, n;

	if (!c || (!buf && len))
		return -EINVAL;
	ret = kvmm_tiers_stats(c, &st);
	if (ret)
		return ret;
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {
		{"blocks_gpu", st.blocks[KVMM_RES_GPU]},
		{"blocks_host", st.blocks[KVMM_RES_HOST]},
		{"blocks_disk", st.blocks[KVMM_RES_DISK]},
		{"blocks_inflight", st.blocks[KVMM_RES_INFLIGHT]},
		{"host_bytes", st.host_bytes},
		{"host_slot_bytes", st.host_slot_bytes},
		{"host_slots", st.host_slots},
		{"host_slots_free", st.host_slots_free},
		{"host_pinned", st.host_pinned},
		{"host_create_ns", st.host_create_ns},
		{"disk_capacity_bytes", st.disk_capacity_bytes},
		{"disk_used_bytes", st.disk_used_bytes},
		{"disk_direct", st.disk_direct},
		{"disk_scan_found", st.disk_scan_found},
		{"disk_scan_ns", st.disk_scan_ns},
		{"spills_host", st.spills_host},
		{"spill_host_bytes", st.spill_host_bytes},
		{"spills_disk", st.spills_disk},
		{"spill_disk_bytes", st.spill_disk_bytes},
		{"restores_host", st.restores_host},
		{"restores_disk", st.restores_disk},
		{"restore_bytes", st.restore_bytes},
		{"prefetches", st.prefetches},
		{"prefetch_blocks", st.prefetch_blocks},
		{"spill_skipped", st.spill_skipped},
		{"host_evictions", st.host_evictions},
		{"host_drops_unwritten", st.host_drops_unwritten},
		{"disk_admit_rejects", st.disk_admit_rejects},
		{"disk_evictions", st.disk_evictions},
		{"verify_failures", st.verify_failures},
		{"io_errors", st.io_errors},
		{"restore_failures", st.restore_failures},
		{"host_reclaimed", st.host_reclaimed},
		{"encoding", st.encoding},
		{"quant_on_device", st.quant_on_device},
		{"host_scan_found", st.host_scan_found},
		{"host_scan_ns", st.host_scan_ns},
		{"bookkeeping_only", st.bookkeeping_only},
	};
	n = snprintf(buf, len, "{\"host_node\":%d,\"host_source\":\"%s\"", st.host_node,
		     st.host_source);
	used = n > 0 ? (size_t)n : 0;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		n = snprintf(used < len ? buf + used : NULL, used < len ? len - used : 0,
			     ",\"%s\":%llu", f[i].name, (unsigned long long)f[i].v);
		used += n > 0 ? (size_t)n : 0;
	}
	n = snprintf(used < len ? buf + used : NULL, used < len ? len - used : 0, "}");
	used += n > 0 ? (size_t)n : 0;
	return used > INT32_MAX ? -EOVERFLOW : (int)used;
}
