// SPDX-License-Identifier: MIT
/*
 * tier_io_uring.c - the io_uring engine of the disk tier.
 *
 * One ring per disk tier, driven by its one I/O thread (so no ring lock,
 * the lesson of Mooncake's shared ring), with registered files and
 * registered buffers (the host pool's chunks), batched submission.  The
 * thread sleeps in one place, a ppoll on the ring and an eventfd, so new
 * work or a completion wakes it.  (Not io_uring_enter(GETEVENTS): valgrind
 * does not treat that call as blocking and would deadlock the process.)
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_io.h"

struct uring_priv {
	struct io_uring ring;
	uint32_t depth;
	uint32_t nfiles;
	uint32_t inflight;
	int notify_fd;
	bool bufs_ok;
};

static int uring_init(struct tier_io *io, const struct tier_io_params *p)
{
	struct uring_priv *u;
	struct io_uring_params up;
	unsigned int entries = 1;
	int ret, *fds;

	if (!p->depth || !p->nfiles)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	/* room for every request and the poll */
	while (entries < p->depth + 1)
		entries <<= 1;
	memset(&up, 0, sizeof(up));
	/* No COOP_TASKRUN: completions must be able to wake the ppoll. */
	up.flags = IORING_SETUP_SINGLE_ISSUER;
	ret = io_uring_queue_init_params(entries, &u->ring, &up);
	if (ret == -EINVAL) {
		/* kernels before 6.0 */
		memset(&up, 0, sizeof(up));
		ret = io_uring_queue_init_params(entries, &u->ring, &up);
	}
	if (ret) {
		free(u);
		return ret;
	}
	ret = io_uring_register_files_sparse(&u->ring, p->nfiles);
	if (ret) {
		/* before 5.19: a table of -1 entries is sparse too */
		fds = malloc(p->nfiles * sizeof(*fds));
		if (!fds) {
			ret = -ENOMEM;
			goto fail;
		}
		for (uint32_t i = 0; i < p->nfiles; i++)
			fds[i] = -1;
		ret = io_uring_register_files(&u->ring, fds, p->nfiles);
		free(fds);
		if (ret)
			goto fail;
	}
	if (p->nbufs) {
		/* Needs RLIMIT_MEMLOCK room (or CAP_IPC_LOCK); without it the
		 * engine still works, with plain reads and writes. */
		u->bufs_ok = io_uring_register_buffers(&u->ring, p->bufs, p->nbufs) == 0;
		io->bufs_registered = u->bufs_ok;
	}
	u->depth = p->depth;
	u->nfiles = p->nfiles;
	u->notify_fd = p->notify_fd;
	io->priv = u;
	return 0;
fail:
	io_uring_queue_exit(&u->ring);
	free(u);
	return ret;
}

static void uring_exit(struct tier_io *io)
{
	struct uring_priv *u = io->priv;

	if (!u)
		return;
	/* Tearing the ring down waits for what is still in flight, so no
	 * request can complete into freed memory afterwards.  The ring goes
	 * away asynchronously, with the files it holds: unregister them
	 * first, so that a block device opened O_EXCL is free again when
	 * this returns. */
	io_uring_unregister_files(&u->ring);
	io_uring_queue_exit(&u->ring);
	free(u);
	io->priv = NULL;
}

static int uring_set_file(struct tier_io *io, uint32_t idx, int fd)
{
	struct uring_priv *u = io->priv;

	if (idx >= u->nfiles)
		return -EINVAL;
	return io_uring_register_files_update(&u->ring, idx, &fd, 1) == 1 ? 0 : -EIO;
}

static int uring_submit(struct tier_io *io, struct tier_io_req *const *reqs, uint32_t n)
{
	struct uring_priv *u = io->priv;
	uint32_t taken = 0;
	int ret;

	while (taken < n && u->inflight < u->depth) {
		struct tier_io_req *r = reqs[taken];
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

		if (!sqe)
			break;
		if (r->op == TIER_IO_READ) {
			if (r->fixed && u->bufs_ok)
				io_uring_prep_read_fixed(sqe, (int)r->file, r->buf, r->len, r->off,
							 r->buf_index);
			else
				io_uring_prep_read(sqe, (int)r->file, r->buf, r->len, r->off);
		} else {
			if (r->fixed && u->bufs_ok)
				io_uring_prep_write_fixed(sqe, (int)r->file, r->buf, r->len, r->off,
							  r->buf_index);
			else
				io_uring_prep_write(sqe, (int)r->file, r->buf, r->len, r->off);
		}
		sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data(sqe, r);
		u->inflight++;
		taken++;
	}
	ret = io_uring_submit(&u->ring);
	if (ret < 0 && ret != -EBUSY && ret != -EAGAIN)
		return ret;
	return (int)taken;
}

static int uring_reap(struct tier_io *io, struct tier_io_req **done, uint32_t max, bool wait)
{
	struct uring_priv *u = io->priv;
	struct io_uring_cqe *cqe;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = u->ring.ring_fd, .events = POLLIN},
					{.fd = u->notify_fd, .events = POLLIN}};
		unsigned int head, n = 0;

		io_uring_for_each_cqe(&u->ring, head, cqe)
		{
			struct tier_io_req *r = io_uring_cqe_get_data(cqe);

			if (n == max)
				break;
			r->res = cqe->res;
			done[n++] = r;
		}
		io_uring_cq_advance(&u->ring, n);
		u->inflight -= n;
		if (n || !wait)
			return (int)n;
		if (ppoll(pfd, u->notify_fd >= 0 ? 2 : 1, NULL, NULL) < 0 && errno != EINTR)
			return -errno;
		if (pfd[1].revents & POLLIN && u->notify_fd >= 0) {
			uint64_t v;

			/* drain it, so the next wait sleeps again */
			while (read(u->notify_fd, &v, sizeof(v)) < 0 && errno == EINTR)
				;
			if (!io_uring_cq_ready(&u->ring))
				return 0;
		}
	}
}

const struct tier_io_ops tier_io_uring_ops = {
	.name = "io_uring",
	.init = uring_init,
	.exit = uring_exit,
	.set_file = uring_set_file,
	.submit = uring_submit,
	.reap = uring_reap,
	.allocate = tier_io_file_allocate,
	.sync = tier_io_file_sync,
};
