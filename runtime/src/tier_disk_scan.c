// SPDX-License-Identifier: MIT
/*
 * tier_disk_scan.c - rebuild the disk tier's index at open.
 *
 * Segments whose header does not verify (or that were made for another
 * slot or segment size, or lie beyond the capacity) are deleted.  In the
 * others, every slot's first 4 KiB is read (phase A); slots that hold a
 * valid header are then read whole and their payload checksum verified
 * (phase B; skipped with TIER_DISK_SCAN_HEADER, in which case reads verify
 * later).  A record counts only if everything verifies; torn, partial and
 * never-written slots become free.  Of two copies of one key the one with
 * the higher sequence number wins.  The LRU is rebuilt in sequence order,
 * so the oldest records are evicted first.
 *
 * The reads go through the tier's own I/O thread (raw reads), in waves of
 * a few queue depths, so the scan uses the same seam, engine and queue
 * depth as everything else.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache_internal.h"
#include "tier_disk_internal.h"

#define SCAN_MEM (64ull << 20) /* buffer memory of one wave */

struct wave {
	pthread_mutex_t m;
	pthread_cond_t c;
	uint32_t left;
};

static void wave_done(struct tier_disk_op *op)
{
	struct wave *w = op->arg;

	pthread_mutex_lock(&w->m);
	if (!--w->left)
		pthread_cond_signal(&w->c);
	pthread_mutex_unlock(&w->m);
}

/* Read ops[0..n) (file, base, bytes, buf set) and wait for all of them. */
static void read_wave(struct tier_disk *d, struct tier_disk_op *ops, struct tier_disk_op **opp,
		      uint32_t n)
{
	struct wave w = {.left = n};

	if (!n)
		return;
	pthread_mutex_init(&w.m, NULL);
	pthread_cond_init(&w.c, NULL);
	for (uint32_t i = 0; i < n; i++) {
		ops[i].done = wave_done;
		ops[i].arg = &w;
		opp[i] = &ops[i];
	}
	disk_submit_raw(d, opp, n);
	pthread_mutex_lock(&w.m);
	while (w.left)
		pthread_cond_wait(&w.c, &w.m);
	pthread_mutex_unlock(&w.m);
	pthread_cond_destroy(&w.c);
	pthread_mutex_destroy(&w.m);
}

static bool all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* A verified record in slot s: index it, keeping the newest of a key. */
static void accept(struct tier_disk *d, uint32_t s, const struct tier_rec *r, uint64_t bytes)
{
	uint64_t other;

	if (u64map_get(&d->index, r->key, &other)) {
		d->st.scan_duplicates++;
		if (d->slots[other].seq >= r->seq)
			return;
		d->slots[other].state = SLOT_FREE;
	}
	if (u64map_put(&d->index, r->key, s))
		return; /* out of memory: forget it */
	d->slots[s] = (struct dslot){.key = r->key,
				     .parent = r->parent,
				     .seq = r->seq,
				     .bytes = bytes,
				     .prev = NIL,
				     .next = NIL,
				     .state = SLOT_WRITING /* indexed at the end */};
	if (r->seq > d->seq_max)
		d->seq_max = r->seq;
}

/* Judge the first block of a slot: accept, keep for phase B, or free. */
static bool judge_header(struct tier_disk *d, uint32_t s, const struct tier_disk_op *op)
{
	struct tier_rec r;
	uint64_t bytes;
	int ret;

	if (op->result) {
		d->st.scan_reclaimed++;
		return false;
	}
	ret = tier_rec_decode(op->buf, TIER_REC_ALIGN, &r);
	if (ret == -ENOSPC) {
		/* header region over 4 KiB: judged from the whole slot */
		d->slots[s].bytes = d->slot_bytes;
		return true;
	}
	bytes = ret ? 0 : tier_rec_bytes(r.ntokens, r.payload_bytes);
	if (ret || !bytes || bytes > d->slot_bytes) {
		if (!all_zero(op->buf, TIER_REC_ALIGN)) /* never written: not counted */
			d->st.scan_reclaimed++;
		return false;
	}
	if (d->cfg.flags & TIER_DISK_SCAN_HEADER) {
		accept(d, s, &r, bytes);
		return false;
	}
	d->slots[s].bytes = bytes;
	return true;
}

static void judge_record(struct tier_disk *d, uint32_t s, const struct tier_disk_op *op)
{
	struct tier_rec r;
	uint64_t bytes;

	if (op->result || tier_rec_verify(op->buf, op->bytes, &r) ||
	    (bytes = tier_rec_bytes(r.ntokens, r.payload_bytes)) > d->slot_bytes) {
		d->st.scan_reclaimed++;
		return;
	}
	accept(d, s, &r, bytes);
}

/* ---- segments ---------------------------------------------------------- */

/* The segment index of a file name "seg-NNNNN.kvmm", or -1. */
static long seg_index(const char *name)
{
	char buf[32];
	unsigned int idx;
	int n = 0;

	if (sscanf(name, "seg-%5u.kvmm%n", &idx, &n) != 1 || name[n])
		return -1;
	disk_seg_name(buf, sizeof(buf), idx);
	return strcmp(buf, name) ? -1 : (long)idx;
}

static void discard_segment(struct tier_disk *d, uint32_t idx)
{
	char name[32];

	if (d->devfd >= 0) {
		/* a block device: the segment is free space to write anew */
		d->segs[idx].fd = -1;
		d->st.scan_segments_discarded++;
		return;
	}
	if (d->segs[idx].fd >= 0) {
		close(d->segs[idx].fd);
		d->segs[idx].fd = -1;
	}
	disk_seg_name(name, sizeof(name), idx);
	unlinkat(d->dirfd, name, 0);
	d->st.scan_segments_discarded++;
}

int disk_scan_open_segments(struct tier_disk *d)
{
	struct dirent *e;
	struct stat stb;
	int fd;
	DIR *dir;

	if (d->devfd >= 0) {
		/* a block device: every segment may hold records */
		for (uint32_t i = 0; i < d->max_segs && !(d->cfg.flags & TIER_DISK_DISCARD); i++)
			d->segs[i].fd = d->devfd;
		return 0;
	}
	fd = dup(d->dirfd);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((e = readdir(dir))) {
		long idx = seg_index(e->d_name);

		if (idx < 0)
			continue;
		if ((uint64_t)idx >= d->max_segs || d->cfg.flags & TIER_DISK_DISCARD) {
			/* beyond the capacity now, or asked to start empty */
			unlinkat(d->dirfd, e->d_name, 0);
			d->st.scan_segments_discarded++;
			continue;
		}
		fd = openat(d->dirfd, e->d_name, O_RDWR | O_CLOEXEC | d->open_flags);
		if (fd >= 0 && !fstat(fd, &stb) && (uint64_t)stb.st_size >= d->seg_bytes) {
			d->segs[idx].fd = fd;
			continue;
		}
		if (fd >= 0)
			close(fd);
		unlinkat(d->dirfd, e->d_name, 0);
		d->st.scan_segments_discarded++;
	}
	closedir(dir);
	return 0;
}

static int cmp_seq(const void *a, const void *b, void *arg)
{
	const struct dslot *s = arg;
	uint64_t x = s[*(const uint32_t *)a].seq, y = s[*(const uint32_t *)b].seq;

	return x < y ? -1 : x > y;
}

/* Index the accepted records, oldest first, and free every other slot. */
static void build_index(struct tier_disk *d, uint32_t *tmp)
{
	uint64_t nslots = (uint64_t)d->max_segs * d->slots_per_seg;
	uint32_t n = 0;

	for (uint64_t s = 0; s < nslots; s++)
		if (d->slots[s].state == SLOT_WRITING)
			tmp[n++] = (uint32_t)s;
		else if (d->slots[s].state != SLOT_ABSENT)
			d->slots[s].state = SLOT_FREE;
	qsort_r(tmp, n, sizeof(*tmp), cmp_seq, d->slots);
	for (uint32_t i = 0; i < n; i++)
		disk_index_add_valid(d, tmp[i]);
	d->st.scan_records = n;
	/* free slots: the lowest are handed out first */
	for (uint64_t s = nslots; s-- > 0;)
		if (d->slots[s].state == SLOT_FREE)
			d->free_slots[d->nfree++] = (uint32_t)s;
}

/* Read through the tier: the segment headers, then phase A and B. */
int disk_scan(struct tier_disk *d)
{
	uint64_t t0 = kvmm_now_ns(), nslots = (uint64_t)d->max_segs * d->slots_per_seg;
	uint32_t wave = 4 * d->depth, nlive = 0, ncand = 0;
	struct tier_disk_op *ops, **opp;
	uint32_t *live, *cand;
	char *mem = MAP_FAILED;
	size_t mem_bytes;
	int ret = 0;

	if (wave < 16)
		wave = 16;
	mem_bytes = (size_t)wave * TIER_REC_ALIGN;
	if (mem_bytes < d->slot_bytes)
		mem_bytes = d->slot_bytes;
	if (mem_bytes < SCAN_MEM && d->slot_bytes * 2 <= SCAN_MEM)
		mem_bytes = SCAN_MEM;
	ops = calloc(wave, sizeof(*ops));
	opp = malloc(wave * sizeof(*opp));
	live = malloc(nslots * sizeof(*live));
	cand = malloc(nslots * sizeof(*cand));
	if (ops && opp && live && cand)
		mem = mmap(NULL, mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			   0);
	if (mem == MAP_FAILED) {
		ret = -ENOMEM;
		goto out;
	}
	/* segment headers */
	for (uint32_t i = 0; i < d->max_segs;) {
		uint32_t n = 0, idx[64];

		for (; i < d->max_segs && n < 64 && n < wave; i++) {
			if (d->segs[i].fd < 0)
				continue;
			ops[n] = (struct tier_disk_op){.buf = mem + (size_t)n * TIER_REC_ALIGN,
						       .file = i,
						       .base = disk_seg_base(d, i),
						       .bytes = TIER_REC_ALIGN};
			idx[n++] = i;
		}
		read_wave(d, ops, opp, n);
		for (uint32_t k = 0; k < n; k++) {
			if (ops[k].result || !disk_seg_header_ok(d, ops[k].buf, idx[k])) {
				discard_segment(d, idx[k]);
				continue;
			}
			d->nsegs_live++;
			for (uint32_t s = 0; s < d->slots_per_seg; s++)
				d->slots[idx[k] * d->slots_per_seg + s].state = SLOT_FREE;
		}
	}
	for (uint64_t s = 0; s < nslots; s++)
		if (d->slots[s].state == SLOT_FREE)
			live[nlive++] = (uint32_t)s;
	/* phase A: the first block of every slot */
	for (uint32_t i = 0; i < nlive;) {
		uint32_t n = 0;

		for (; i < nlive && n < wave; i++, n++)
			ops[n] = (struct tier_disk_op){.buf = mem + (size_t)n * TIER_REC_ALIGN,
						       .slot = live[i],
						       .file = disk_slot_seg(d, live[i]),
						       .base = disk_slot_off(d, live[i]),
						       .bytes = TIER_REC_ALIGN};
		read_wave(d, ops, opp, n);
		for (uint32_t k = 0; k < n; k++)
			if (judge_header(d, ops[k].slot, &ops[k]))
				cand[ncand++] = ops[k].slot;
	}
	/* phase B: whole records whose header verified */
	for (uint32_t i = 0; i < ncand;) {
		uint32_t n = 0;
		size_t used = 0;

		for (; i < ncand && n < wave && used + d->slots[cand[i]].bytes <= mem_bytes;
		     i++, n++) {
			uint32_t s = cand[i];

			ops[n] = (struct tier_disk_op){.buf = mem + used,
						       .slot = s,
						       .file = disk_slot_seg(d, s),
						       .base = disk_slot_off(d, s),
						       .bytes = d->slots[s].bytes};
			used += d->slots[s].bytes;
		}
		read_wave(d, ops, opp, n);
		for (uint32_t k = 0; k < n; k++)
			judge_record(d, ops[k].slot, &ops[k]);
	}
	pthread_mutex_lock(&d->lock);
	build_index(d, live);
	pthread_mutex_unlock(&d->lock);
out:
	if (mem != MAP_FAILED)
		munmap(mem, mem_bytes);
	free(ops);
	free(opp);
	free(live);
	free(cand);
	d->st.scan_ns = kvmm_now_ns() - t0;
	return ret;
}
