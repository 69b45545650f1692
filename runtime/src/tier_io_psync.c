// SPDX-License-Identifier: MIT
/*
 * tier_io_psync.c - the pread/pwrite engine: the disk tier's fallback where
 * io_uring cannot be used (kernels without it, io_uring_disabled, or a
 * container seccomp profile that blocks it, as Docker's default does).
 * Requests run synchronously at submit; reap hands them back.  Correct,
 * not fast: the disk tier reports which engine it runs on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "tier_io.h"

struct psync_priv {
	int *fds;
	uint32_t nfiles;
	int notify_fd;
	struct tier_io_req **done;
	uint32_t ndone, cap;
};

int tier_io_file_allocate(struct tier_io *io, int fd, uint64_t len)
{
	if (!fallocate(fd, 0, 0, (off_t)len))
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	/* No preallocation here (some filesystems): a sized sparse file. */
	return ftruncate(fd, (off_t)len) ? -errno : 0;
}

int tier_io_file_sync(struct tier_io *io, int fd)
{
	return fdatasync(fd) ? -errno : 0;
}

static int psync_init(struct tier_io *io, const struct tier_io_params *p)
{
	struct psync_priv *s;

	if (!p->depth || !p->nfiles)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fds = malloc(p->nfiles * sizeof(*s->fds));
	s->done = malloc(p->depth * sizeof(*s->done));
	if (!s->fds || !s->done) {
		free(s->fds);
		free(s->done);
		free(s);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < p->nfiles; i++)
		s->fds[i] = -1;
	s->nfiles = p->nfiles;
	s->cap = p->depth;
	s->notify_fd = p->notify_fd;
	io->priv = s;
	return 0;
}

static void psync_exit(struct tier_io *io)
{
	struct psync_priv *s = io->priv;

	if (!s)
		return;
	free(s->fds);
	free(s->done);
	free(s);
	io->priv = NULL;
}

static int psync_set_file(struct tier_io *io, uint32_t idx, int fd)
{
	struct psync_priv *s = io->priv;

	if (idx >= s->nfiles)
		return -EINVAL;
	s->fds[idx] = fd;
	return 0;
}

static int psync_submit(struct tier_io *io, struct tier_io_req *const *reqs, uint32_t n)
{
	struct psync_priv *s = io->priv;
	uint32_t i;

	for (i = 0; i < n && s->ndone < s->cap; i++) {
		struct tier_io_req *r = reqs[i];
		int fd = r->file < s->nfiles ? s->fds[r->file] : -1;
		ssize_t got;

		if (fd < 0) {
			r->res = -EBADF;
		} else {
			do {
				got = r->op == TIER_IO_READ
					      ? pread(fd, r->buf, r->len, (off_t)r->off)
					      : pwrite(fd, r->buf, r->len, (off_t)r->off);
			} while (got < 0 && errno == EINTR);
			r->res = got < 0 ? -errno : (int32_t)got;
		}
		s->done[s->ndone++] = r;
	}
	return (int)i;
}

static int psync_reap(struct tier_io *io, struct tier_io_req **done, uint32_t max, bool wait)
{
	struct psync_priv *s = io->priv;
	uint32_t n = s->ndone < max ? s->ndone : max;

	if (!n && wait && s->notify_fd >= 0) {
		uint64_t v;

		/* nothing in flight: sleep until someone queues work */
		while (read(s->notify_fd, &v, sizeof(v)) < 0 && errno == EINTR)
			;
		return 0;
	}
	for (uint32_t i = 0; i < n; i++)
		done[i] = s->done[i];
	for (uint32_t i = n; i < s->ndone; i++)
		s->done[i - n] = s->done[i];
	s->ndone -= n;
	return (int)n;
}

const struct tier_io_ops tier_io_psync_ops = {
	.name = "psync",
	.init = psync_init,
	.exit = psync_exit,
	.set_file = psync_set_file,
	.submit = psync_submit,
	.reap = psync_reap,
	.allocate = tier_io_file_allocate,
	.sync = tier_io_file_sync,
};
