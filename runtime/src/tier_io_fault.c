// SPDX-License-Identifier: MIT
/*
 * tier_io_fault.c - fault injection at the disk tier's I/O seam.
 *
 * Wraps an engine (io_uring by default) and, by rate or at the n-th request,
 * makes requests fail with EIO or ENOSPC, come back short, return a flipped
 * byte (reads) or leave one on the medium (writes: the request is written
 * whole, then one of its bytes is rewritten flipped, as a bad sector or a
 * misdirected write would).  The disk tier must turn every one of these
 * into a miss or an error, counted, and never serve the bytes.
 *
 * Each request goes to the inner engine as a shadow copy, so the caller's
 * request is never changed except for its result.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tier_io.h"

struct shadow {
	struct tier_io_req req; /* what the inner engine sees */
	struct tier_io_req *orig;
	int kind; /* enum tier_fault_kind, or TIER_FAULT__COUNT */
	struct shadow *next_free;
};

struct fault_priv {
	struct tier_io inner;
	struct tier_fault_config *cfg;
	uint64_t rng;
	int *fds; /* the file table, to rewrite flipped bytes */
	uint32_t nfiles;
	uint32_t depth;
	struct shadow *shadows, *free;
	/* requests failed here, handed back at the next reap */
	struct tier_io_req **failed;
	uint32_t nfailed;
	struct tier_io_req **idone; /* inner completions */
	void *block;		    /* one aligned block to rewrite a flipped byte */
};

static uint64_t rng_next(struct fault_priv *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545f4914f6cdd1dull;
}

static void fault_free(struct fault_priv *f)
{
	if (f->block && f->block != MAP_FAILED)
		munmap(f->block, 4096);
	free(f->fds);
	free(f->shadows);
	free(f->failed);
	free(f->idone);
	free(f);
}

static int fault_init(struct tier_io *io, const struct tier_io_params *p)
{
	struct tier_fault_config *cfg = io->wrap_arg;
	struct fault_priv *f;
	int ret;

	if (!cfg || !p->depth || !p->nfiles)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cfg = cfg;
	f->rng = cfg->seed ? cfg->seed : 0x6661756c74ull;
	f->inner.ops = cfg->inner ? cfg->inner : &tier_io_uring_ops;
	f->fds = malloc(p->nfiles * sizeof(*f->fds));
	f->shadows = calloc(p->depth, sizeof(*f->shadows));
	f->failed = malloc(p->depth * sizeof(*f->failed));
	f->idone = malloc(p->depth * sizeof(*f->idone));
	f->block = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!f->fds || !f->shadows || !f->failed || !f->idone || f->block == MAP_FAILED) {
		fault_free(f);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < p->nfiles; i++)
		f->fds[i] = -1;
	for (uint32_t i = 0; i < p->depth; i++) {
		f->shadows[i].next_free = f->free;
		f->free = &f->shadows[i];
	}
	f->nfiles = p->nfiles;
	f->depth = p->depth;
	ret = f->inner.ops->init(&f->inner, p);
	if (ret) {
		fault_free(f);
		return ret;
	}
	io->bufs_registered = f->inner.bufs_registered;
	io->inner = &f->inner;
	io->priv = f;
	return 0;
}

static void fault_exit(struct tier_io *io)
{
	struct fault_priv *f = io->priv;

	if (!f)
		return;
	f->inner.ops->exit(&f->inner);
	fault_free(f);
	io->priv = NULL;
}

static int fault_set_file(struct tier_io *io, uint32_t idx, int fd)
{
	struct fault_priv *f = io->priv;
	int ret = f->inner.ops->set_file(&f->inner, idx, fd);

	if (!ret && idx < f->nfiles)
		f->fds[idx] = fd;
	return ret;
}

/* The fault for one request: by its number first, then by rate. */
static int pick(struct fault_priv *f, const struct tier_io_req *r)
{
	bool rd = r->op == TIER_IO_READ;
	uint64_t n = rd ? ++f->cfg->reads : ++f->cfg->writes;
	const uint64_t *nth = rd ? f->cfg->nth_read : f->cfg->nth_write;
	const uint32_t *ppm = rd ? f->cfg->read_ppm : f->cfg->write_ppm;

	for (int k = 0; k < TIER_FAULT__COUNT; k++)
		if (nth[k] == n)
			return k;
	for (int k = 0; k < TIER_FAULT__COUNT; k++)
		if (ppm[k] && rng_next(f) % 1000000 < ppm[k])
			return k;
	return TIER_FAULT__COUNT;
}

static uint64_t *injected(struct fault_priv *f, const struct tier_io_req *r)
{
	return r->op == TIER_IO_READ ? f->cfg->injected_read : f->cfg->injected_write;
}

static int fault_submit(struct tier_io *io, struct tier_io_req *const *reqs, uint32_t n)
{
	struct fault_priv *f = io->priv;
	struct tier_io_req *pass[64];
	struct shadow *sh[64];
	uint32_t i = 0;

	while (i < n) {
		uint32_t np = 0;
		int taken;

		for (; i < n && np < 64 && f->free; i++) {
			struct tier_io_req *r = reqs[i];
			int k = pick(f, r);
			struct shadow *s;

			if (k == TIER_FAULT_SHORT && r->len < 1024)
				k = TIER_FAULT__COUNT; /* too small to cut */
			if (k != TIER_FAULT__COUNT)
				injected(f, r)[k]++;
			if (k == TIER_FAULT_EIO || k == TIER_FAULT_ENOSPC) {
				r->res = k == TIER_FAULT_ENOSPC && r->op == TIER_IO_WRITE ? -ENOSPC
											  : -EIO;
				f->failed[f->nfailed++] = r;
				continue;
			}
			s = f->free;
			f->free = s->next_free;
			s->req = *r;
			s->req.user = s;
			s->orig = r;
			s->kind = k;
			if (k == TIER_FAULT_SHORT)
				s->req.len = (r->len / 2) & ~511u;
			sh[np] = s;
			pass[np++] = &s->req;
		}
		if (!np)
			break;
		taken = f->inner.ops->submit(&f->inner, pass, np);
		if (taken < 0)
			taken = 0;
		if ((uint32_t)taken < np) {
			/* The engine is full: give the rest back untouched. */
			for (uint32_t j = (uint32_t)taken; j < np; j++) {
				if (sh[j]->kind != TIER_FAULT__COUNT)
					injected(f, sh[j]->orig)[sh[j]->kind]--;
				sh[j]->orig->op == TIER_IO_READ ? f->cfg->reads--
								: f->cfg->writes--;
				sh[j]->next_free = f->free;
				f->free = sh[j];
			}
			return (int)(i - (np - (uint32_t)taken));
		}
	}
	return (int)i;
}

/* Leave byte `at` of a completed write flipped on the medium. */
static void flip_on_disk(struct fault_priv *f, const struct tier_io_req *r, uint32_t at)
{
	uint64_t pos = r->off + at, blk = pos & ~4095ull;
	uint32_t in = (uint32_t)(blk >= r->off ? blk - r->off : 0);
	int fd = r->file < f->nfiles ? f->fds[r->file] : -1;

	/* the block as written (when it lies inside the request), else read */
	if (fd < 0)
		return;
	if (blk >= r->off && blk + 4096 <= r->off + r->len)
		memcpy(f->block, (const char *)r->buf + in, 4096);
	else if (pread(fd, f->block, 4096, (off_t)blk) != 4096)
		return;
	((unsigned char *)f->block)[pos - blk] ^= 0x10;
	if (pwrite(fd, f->block, 4096, (off_t)blk) != 4096)
		return;
}

static int fault_reap(struct tier_io *io, struct tier_io_req **done, uint32_t max, bool wait)
{
	struct fault_priv *f = io->priv;
	uint32_t n = 0;
	int got;

	while (f->nfailed && n < max)
		done[n++] = f->failed[--f->nfailed];
	if (n == max)
		return (int)n;
	got = f->inner.ops->reap(&f->inner, f->idone, max - n, wait && !n);
	if (got < 0)
		return n ? (int)n : got;
	for (int j = 0; j < got; j++) {
		struct shadow *s = f->idone[j]->user;
		struct tier_io_req *r = s->orig;

		r->res = s->req.res;
		if (s->kind == TIER_FAULT_FLIP && r->res > 0) {
			uint32_t at = (uint32_t)(rng_next(f) % (uint32_t)r->res);

			if (r->op == TIER_IO_READ)
				((unsigned char *)r->buf)[at] ^= 0x10;
			else
				flip_on_disk(f, r, at);
		}
		s->next_free = f->free;
		f->free = s;
		done[n++] = r;
	}
	return (int)n;
}

static int fault_allocate(struct tier_io *io, int fd, uint64_t len)
{
	struct fault_priv *f = io->priv;

	f->cfg->allocs++;
	if ((f->cfg->nth_alloc && f->cfg->nth_alloc == f->cfg->allocs) ||
	    (f->cfg->alloc_ppm && rng_next(f) % 1000000 < f->cfg->alloc_ppm)) {
		f->cfg->injected_alloc++;
		return -ENOSPC;
	}
	return f->inner.ops->allocate(&f->inner, fd, len);
}

static int fault_sync(struct tier_io *io, int fd)
{
	struct fault_priv *f = io->priv;

	return f->inner.ops->sync(&f->inner, fd);
}

const struct tier_io_ops tier_io_fault_ops = {
	.name = "fault",
	.init = fault_init,
	.exit = fault_exit,
	.set_file = fault_set_file,
	.submit = fault_submit,
	.reap = fault_reap,
	.allocate = fault_allocate,
	.sync = fault_sync,
};
