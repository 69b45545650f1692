/* SPDX-License-Identifier: MIT */
/*
 * tier_io.h - the one seam every byte of the disk tier goes through.
 *
 * The disk tier speaks to storage only through a struct tier_io_ops: an
 * asynchronous engine of reads and writes on registered files (the io_uring
 * engine; a pread/pwrite engine where io_uring is unavailable, e.g. blocked
 * by a container's seccomp profile), plus the few synchronous file calls
 * (preallocate, sync).  Tests and the VM bench wrap an engine with the
 * fault injector (tier_io_fault_ops) to make any request fail with EIO or
 * ENOSPC, come back short, or return or leave a flipped byte.
 *
 * An engine is used by one thread (the disk tier's I/O thread): no call
 * here is thread-safe, except tier_io_wake() on the engine's notify fd.
 */
#ifndef KVMM_TIER_IO_H
#define KVMM_TIER_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

enum tier_io_op {
	TIER_IO_READ = 0,
	TIER_IO_WRITE = 1,
};

/* One request.  The engine fills res and returns it from reap(). */
struct tier_io_req {
	uint8_t op;	    /* enum tier_io_op */
	uint8_t fixed;	    /* buf lies in registered buffer buf_index */
	uint16_t buf_index; /* index into the registered buffers */
	uint32_t file;	    /* index into the registered files */
	uint64_t off;	    /* file offset (aligned for O_DIRECT) */
	void *buf;
	uint32_t len;
	int32_t res; /* bytes transferred, or negative errno */
	void *user;  /* the submitter's */
};

struct tier_io_params {
	uint32_t depth;		  /* requests in flight at most */
	uint32_t nfiles;	  /* size of the file table */
	const struct iovec *bufs; /* buffers to register (may be NULL) */
	uint32_t nbufs;
	int notify_fd; /* eventfd: reap() returns when it is written
				    * (-1: none) */
};

struct tier_io;

struct tier_io_ops {
	const char *name;
	int (*init)(struct tier_io *io, const struct tier_io_params *p);
	void (*exit)(struct tier_io *io);
	/* Put fd in slot idx of the file table (-1 clears it). */
	int (*set_file)(struct tier_io *io, uint32_t idx, int fd);
	/* Queue n requests and submit them with one system call.  Returns
	 * how many were taken (the rest: retry after a reap). */
	int (*submit)(struct tier_io *io, struct tier_io_req *const *reqs, uint32_t n);
	/* Collect up to max completed requests into done[].  With wait, block
	 * until at least one completes or notify_fd is written.  Returns the
	 * count (0 on a wakeup) or a negative errno. */
	int (*reap)(struct tier_io *io, struct tier_io_req **done, uint32_t max, bool wait);
	/* Synchronous file calls: preallocate [0, len) of fd (fallocate); make
	 * written data durable (fdatasync). */
	int (*allocate)(struct tier_io *io, int fd, uint64_t len);
	int (*sync)(struct tier_io *io, int fd);
};

struct tier_io {
	const struct tier_io_ops *ops;
	void *priv;
	/* the engine under a wrapper (the fault injector), else NULL */
	struct tier_io *inner;
	void *wrap_arg;	      /* the wrapper's configuration */
	bool bufs_registered; /* init registered the buffers (fixed I/O) */
};

/* The synchronous file calls every engine shares: fallocate (ftruncate
 * where the filesystem cannot preallocate) and fdatasync. */
int tier_io_file_allocate(struct tier_io *io, int fd, uint64_t len);
int tier_io_file_sync(struct tier_io *io, int fd);

extern const struct tier_io_ops tier_io_uring_ops;
extern const struct tier_io_ops tier_io_psync_ops;
extern const struct tier_io_ops tier_io_fault_ops;

/* ---- fault injection (tier_io_fault.c) ---- */

/* What to inject into reads and writes. */
enum tier_fault_kind {
	TIER_FAULT_EIO = 0,    /* request fails with -EIO */
	TIER_FAULT_ENOSPC = 1, /* write fails with -ENOSPC (a read: -EIO) */
	TIER_FAULT_SHORT = 2,  /* request transfers about half of what it asked */
	TIER_FAULT_FLIP = 3,   /* read: one byte of the data read is flipped;
				* write: one byte lands flipped on the medium */
	TIER_FAULT__COUNT
};

/*
 * Configuration and counters of the fault injector: pass &cfg as the disk
 * tier's io_arg with io_ops = &tier_io_fault_ops.  Rates are in parts per
 * million of requests; nth_* fail exactly the n-th request of that kind
 * (1-based; 0 off), for tests that need one fault at a known place.  The
 * counters are written by the disk tier's I/O thread: read them once it is
 * idle or closed.
 */
struct tier_fault_config {
	uint64_t seed;
	const struct tier_io_ops *inner; /* engine to wrap (NULL: io_uring) */
	uint32_t read_ppm[TIER_FAULT__COUNT];
	uint32_t write_ppm[TIER_FAULT__COUNT];
	uint64_t nth_read[TIER_FAULT__COUNT];
	uint64_t nth_write[TIER_FAULT__COUNT];
	uint32_t alloc_ppm; /* preallocation fails with -ENOSPC (disk full) */
	uint64_t nth_alloc;
	/* counters */
	uint64_t reads, writes, allocs;
	uint64_t injected_read[TIER_FAULT__COUNT];
	uint64_t injected_write[TIER_FAULT__COUNT];
	uint64_t injected_alloc;
};

#endif /* KVMM_TIER_IO_H */
