// SPDX-License-Identifier: MIT
/*
 * Group "tiers": the host pool's creation speed and the disk tier against
 * the best the same disk does with other tools, in the same run:
 *  - host_pool_create_gbps: a pinned (on CUDA) pool on the GPU's node,
 *    created by the host tier (map, mbind, parallel pre-touch, chunked
 *    registration); baseline: the same with one thread.
 *  - disk_write_vs_fio / disk_read_vs_fio: records stored and read back
 *    (checksums verified) by the disk tier, against fio --ioengine=io_uring
 *    --direct=1 with the same block size and queue depth on a file of the
 *    same size in the same directory; where fio is not installed (the GPU
 *    machine), against a plain io_uring loop (fixed buffers and file, same
 *    depth and block size), which is also reported everywhere.
 *  - spill_vs_memcpy / restore_vs_memcpy (CUDA machine): see bench_spill.c.
 * KVMM_BENCH_DIR picks the disk directory (default /var/tmp).
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "cuda_driver.h"
#include "tier_disk.h"
#include "tier_hash.h"
#include "tier_hashpool.h"
#include "tier_host.h"
#include "tier_record.h"
#include "tiers.h"

#define IO_BYTES (1u << 20)
#define DEPTH	 64u
#define PAYLOAD	 (2u << 20) /* one 2 MiB block */

/* ---- host pool ----------------------------------------------------------- */

/* Share of [p, p + len) backed by transparent huge pages (smaps). */
static double huge_share(const void *p, uint64_t len)
{
	unsigned long a, b, at = (unsigned long)(uintptr_t)p;
	char line[256];
	double kb = 0;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, ' ') - line < 40)
			in = a <= at && at < b;
		else if (in && !strncmp(line, "AnonHugePages:", 14))
			kb += atof(line + 14);
	}
	fclose(f);
	return kb * 1024 / (double)len;
}

static int pool_create_gbps(struct kvmm_backend *be, uint64_t bytes, uint32_t threads,
			    uint32_t flags, double *gbps, double *huge, double *populate_gbps)
{
	struct tier_host_config cfg = {.bytes = bytes,
				       .slot_bytes = PAYLOAD + 4096,
				       .numa_node = TIER_NODE_OF_GPU,
				       .threads = threads,
				       .flags = flags,
				       .be = be};
	struct tier_host_stats st;
	struct tier_host *h;
	int ret = tier_host_create(&cfg, &h);

	if (ret)
		return ret;
	tier_host_get_stats(h, &st);
	*gbps = (double)st.bytes / (double)st.create_ns;
	if (huge)
		*huge = huge_share(tier_host_slot(h, 0), st.bytes);
	if (populate_gbps)
		*populate_gbps = st.populate_ns ? (double)st.bytes / (double)st.populate_ns : 0;
	tier_host_destroy(h);
	return 0;
}

static int bench_host_pool(struct bench_ctx *ctx, struct kvmm_backend *be)
{
	uint64_t bytes = ctx->quick ? (512ull << 20) : (4ull << 30);
	double par, one, thp, huge = 0, pop = 0, pop4k = 0;
	int ret;

	bench_header("tiers: host pool creation (map + mbind + pre-touch + register; default: "
		     "THP)");
	ret = pool_create_gbps(be, bytes, 1, 0, &one, NULL, NULL);
	if (!ret)
		ret = pool_create_gbps(be, bytes, 0, TIER_HOST_THP, &thp, &huge, &pop);
	if (!ret)
		ret = pool_create_gbps(be, bytes, 0, 0, &par, NULL, &pop4k);
	if (ret)
		return ret;
	/* the tiers' default pool is the THP one */
	bench_result(ctx, "tiers-host-pool", "host_pool_create_gbps", thp, "GB/s", "one_thread_4k",
		     one);
	bench_result(ctx, "tiers-host-pool", "host_pool_create_4k_gbps", par, "GB/s",
		     "one_thread_4k", one);
	bench_result(ctx, "tiers-host-pool", "host_pool_thp_huge_share", huge, "", NULL, 0);
	/* how fast every page was in (registration overlaps it) */
	bench_result(ctx, "tiers-host-pool", "host_pool_populate_gbps", pop, "GB/s", NULL, 0);
	bench_result(ctx, "tiers-host-pool", "host_pool_populate_4k_gbps", pop4k, "GB/s", NULL, 0);
	return 0;
}

/* ---- disk: fio and a plain io_uring loop -------------------------------- */

/* fio's bandwidth in bytes/s for rw on file, or -1 when fio is missing. */
static double run_fio(const char *file, uint64_t size, const char *rw)
{
	char cmd[1024], line[512];
	double bw = -1;
	int in_section = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "fio --name=kvmm --filename=%s --size=%llu --bs=%u --iodepth=%u --rw=%s "
		 "--direct=1 --ioengine=io_uring --fixedbufs --registerfiles --numjobs=1 "
		 "--output-format=json 2>/dev/null",
		 file, (unsigned long long)size, IO_BYTES, DEPTH, rw);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	/* "read": { ... "bw_bytes" : N, ...}; take the section named rw */
	while (fgets(line, sizeof(line), p)) {
		char *q;

		if (strstr(line, "\"read\" : {"))
			in_section = !strcmp(rw, "read");
		else if (strstr(line, "\"write\" : {"))
			in_section = !strcmp(rw, "write");
		else if (strstr(line, "\"trim\" : {") || strstr(line, "\"sync\" : {"))
			in_section = 0;
		if (in_section && bw < 0 && (q = strstr(line, "\"bw_bytes\" : ")))
			bw = strtod(q + 13, NULL);
	}
	if (pclose(p) != 0)
		return -1;
	return bw;
}

/* Buffers for disk I/O on transparent huge pages: on virtual disks a 1 MiB
 * request over 256 separate 4 KiB pages reads at half the speed of one over
 * a huge page (fio's default malloc'ed buffers happen to get huge pages
 * too).  Every contender gets them: the loop, fio, and the tier's pool. */
static void *io_buf(size_t bytes)
{
	void *p = NULL;

	if (posix_memalign(&p, 2u << 20, bytes))
		return NULL;
	madvise(p, bytes, MADV_HUGEPAGE);
	memset(p, 0x5a, bytes);
	return p;
}

/* The best plain loop: QD deep fixed-buffer O_DIRECT requests of IO_BYTES
 * over the whole file, resubmitted as they complete.  Bytes/s. */
static double uring_loop(int fd, uint64_t size, bool write)
{
	struct io_uring ring;
	struct iovec iov;
	uint64_t next = 0, done = 0, t0;
	unsigned int inflight = 0;
	char *buf;
	double bw = -1;

	buf = io_buf((size_t)DEPTH * IO_BYTES);
	if (!buf)
		return -1;
	iov.iov_base = buf;
	iov.iov_len = (size_t)DEPTH * IO_BYTES;
	if (io_uring_queue_init(DEPTH * 2, &ring, 0))
		goto out_buf;
	if (io_uring_register_buffers(&ring, &iov, 1) || io_uring_register_files(&ring, &fd, 1))
		goto out;
	t0 = bench_now_ns();
	while (done < size) {
		struct io_uring_cqe *cqe;

		while (inflight < DEPTH && next < size) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			char *b = buf + (size_t)(next / IO_BYTES % DEPTH) * IO_BYTES;

			if (write)
				io_uring_prep_write_fixed(sqe, 0, b, IO_BYTES, next, 0);
			else
				io_uring_prep_read_fixed(sqe, 0, b, IO_BYTES, next, 0);
			sqe->flags |= IOSQE_FIXED_FILE;
			next += IO_BYTES;
			inflight++;
		}
		if (io_uring_submit_and_wait(&ring, 1) < 0)
			goto out;
		while (!io_uring_peek_cqe(&ring, &cqe)) {
			if (cqe->res != (int)IO_BYTES)
				goto out;
			io_uring_cqe_seen(&ring, cqe);
			inflight--;
			done += IO_BYTES;
		}
	}
	bw = (double)size / ((double)(bench_now_ns() - t0) / 1e9);
out:
	io_uring_queue_exit(&ring);
out_buf:
	free(buf);
	return bw;
}

/* A window of nbuf operations kept in flight: each completion starts the
 * next record (from the I/O thread, as a spill or prefetch pipeline does). */
struct window {
	struct tier_disk *d;
	enum tier_disk_opkind kind;
	char *pool;
	uint64_t rec_bytes;
	const uint64_t *keys;
	uint64_t *phash;
	uint32_t n, next, nbuf, pass;
	struct tier_hashpool *hp;
	struct tier_disk_op *ops;
	pthread_mutex_t m;
	pthread_cond_t c;
	uint32_t finished;
	int err;
};

static void win_start(struct window *w, uint32_t k, uint32_t i);

static void win_done(struct tier_disk_op *op)
{
	struct window *w = op->arg;
	uint32_t k = (uint32_t)(op - w->ops), i;

	pthread_mutex_lock(&w->m);
	if (op->result && !w->err)
		w->err = op->result;
	i = w->next < w->n && !w->err ? w->next++ : UINT32_MAX;
	if (i == UINT32_MAX) {
		w->finished++;
		pthread_cond_signal(&w->c);
	}
	pthread_mutex_unlock(&w->m);
	if (i != UINT32_MAX)
		win_start(w, k, i);
}

/* Start record i in buffer k. */
static void win_start(struct window *w, uint32_t k, uint32_t i)
{
	char *buf = w->pool + (size_t)k * w->rec_bytes;
	struct tier_disk_op *op = &w->ops[k];
	int ret = 0;

	if (w->kind == TIER_DISK_PUT) {
		/* a new header (new token ids, new key) over the same payload,
		 * whose hash is known: what sealing a spilled block costs
		 * once its payload hash is in */
		uint32_t tokens[16] = {i, w->pass};
		struct tier_rec r = {.key = w->keys[i],
				     .parent = 1,
				     .ntokens = 16,
				     .payload_bytes = PAYLOAD,
				     .payload_hash = w->phash[k]};

		ret = tier_rec_encode(buf, w->rec_bytes, &r, tokens);
	}
	*op = (struct tier_disk_op){.kind = w->kind,
				    .key = w->keys[i],
				    .buf = buf,
				    .len = w->rec_bytes,
				    .done = win_done,
				    .arg = w};
	if (!ret)
		ret = tier_disk_submit(w->d, &op, 1);
	if (ret) {
		op->result = ret;
		win_done(op);
	}
}

static int win_run(struct window *w, enum tier_disk_opkind kind, double *bw)
{
	uint64_t t0 = bench_now_ns();
	uint32_t first = w->n < w->nbuf ? w->n : w->nbuf;

	w->kind = kind;
	w->next = first;
	w->finished = 0;
	w->err = 0;
	for (uint32_t k = 0; k < first; k++)
		win_start(w, k, k);
	pthread_mutex_lock(&w->m);
	while (w->finished < first)
		pthread_cond_wait(&w->c, &w->m);
	pthread_mutex_unlock(&w->m);
	*bw = (double)w->n * w->rec_bytes / ((double)(bench_now_ns() - t0) / 1e9);
	return w->err;
}

/* The disk tier, open on dir with room for exactly n records of one 2 MiB
 * block (so later passes overwrite earlier ones, as a full cache does). */
static int tier_open(struct window *w, const char *dir, uint32_t n)
{
	uint64_t pool_bytes = (uint64_t)w->nbuf * w->rec_bytes;
	struct tier_disk_config cfg = {.dir = dir,
				       .capacity_bytes =
					       ((n + 63) / 64) * (4096 + 64 * w->rec_bytes),
				       .segment_bytes = 4096 + 64 * w->rec_bytes,
				       .slot_bytes = w->rec_bytes,
				       .queue_depth = DEPTH,
				       .io_bytes = IO_BYTES,
				       .flags = TIER_DISK_DISCARD};
	struct iovec iov;

	w->pool = io_buf(pool_bytes);
	if (!w->pool)
		return -ENOMEM;
	for (uint32_t k = 0; k < w->nbuf; k++)
		memset(w->pool + (size_t)k * w->rec_bytes + 4096, (int)k + 1, PAYLOAD);
	iov.iov_base = w->pool;
	iov.iov_len = pool_bytes;
	cfg.bufs = &iov;
	cfg.nbufs = 1;
	/* read-back checks in parallel, as the tiers set it up */
	if (tier_hashpool_create((uint32_t)(sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0), &w->hp))
		return -ENOMEM;
	cfg.hashpool = w->hp;
	return tier_disk_open(&cfg, &w->d);
}

/* One pass: n new records (keys of pass p) written, then read back and
 * verified. */
static int tier_pass(struct window *w, uint64_t *keys, uint32_t p, double *wbw, double *rbw)
{
	uint32_t tokens[16] = {0};
	int ret;

	for (uint32_t i = 0; i < w->n; i++) {
		tokens[0] = i;
		tokens[1] = p;
		keys[i] = tier_key_next(1, tokens, 16);
	}
	/* the last pass's gets left other records' payloads in the buffers */
	for (uint32_t k = 0; k < w->nbuf; k++)
		w->phash[k] = tier_hash_payload(w->pool + (size_t)k * w->rec_bytes + 4096, PAYLOAD,
						TIER_HASH_CHUNK_SHIFT);
	w->keys = keys;
	w->pass = p;
	ret = win_run(w, TIER_DISK_PUT, wbw);
	if (!ret)
		ret = win_run(w, TIER_DISK_GET, rbw);
	return ret;
}

#define REPS 5

/* On this project's virtual disks one run of fio varies by +-30%: every
 * contender runs REPS times, interleaved, on blocks written before (no
 * first-write extent conversion in anyone's numbers), and medians count. */
static int disk_runs(const char *dir, const char *file, uint32_t n, int reps, double res[6][REPS])
{
	uint64_t size = (uint64_t)n * tier_rec_bytes(16, PAYLOAD) / IO_BYTES * IO_BYTES;
	uint64_t phash[DEPTH / 2], *keys = calloc(n, sizeof(*keys));
	struct window w = {.nbuf = DEPTH / 2,
			   .n = n,
			   .rec_bytes = tier_rec_bytes(16, PAYLOAD),
			   .phash = phash};
	double x, y;
	int fd, ret;

	w.ops = calloc(w.nbuf, sizeof(*w.ops));
	pthread_mutex_init(&w.m, NULL);
	pthread_cond_init(&w.c, NULL);
	fd = open(file, O_RDWR | O_CREAT | O_DIRECT, 0600);
	ret = fd < 0 ? -errno : (!keys || !w.ops) ? -ENOMEM : 0;
	if (!ret && fallocate(fd, 0, 0, (off_t)size))
		ret = -errno;
	if (!ret)
		ret = tier_open(&w, dir, n);
	/* warm-up: every block written once */
	if (!ret && uring_loop(fd, size, true) < 0)
		ret = -EIO;
	if (!ret)
		ret = tier_pass(&w, keys, 0, &x, &y);
	for (int r = 0; r < reps && !ret; r++) {
		res[0][r] = uring_loop(fd, size, true);
		res[1][r] = uring_loop(fd, size, false);
		res[2][r] = run_fio(file, size, "write");
		res[3][r] = run_fio(file, size, "read");
		ret = tier_pass(&w, keys, (uint32_t)r + 1, &res[4][r], &res[5][r]);
		if (!ret && (res[0][r] < 0 || res[1][r] < 0))
			ret = -EIO;
	}
	if (w.d)
		tier_disk_close(w.d);
	tier_hashpool_destroy(w.hp);
	if (fd >= 0)
		close(fd);
	unlink(file);
	free(w.pool);
	pthread_cond_destroy(&w.c);
	pthread_mutex_destroy(&w.m);
	free(w.ops);
	free(keys);
	return ret;
}

static int bench_disk(struct bench_ctx *ctx)
{
	const char *base = getenv("KVMM_BENCH_DIR");
	uint32_t n = ctx->quick ? 128 : 512; /* records: 256 MiB or 1 GiB */
	int reps = ctx->quick ? 1 : REPS;
	double res[6][REPS], m[6];
	char dir[512], file[600], cmd[700];
	int fd, ret;

	snprintf(dir, sizeof(dir), "%s/kvmm-bench-XXXXXX", base ? base : "/var/tmp");
	if (!mkdtemp(dir))
		return -errno;
	snprintf(file, sizeof(file), "%s/baseline.dat", dir);
	fd = open(file, O_RDWR | O_CREAT | O_DIRECT, 0600);
	if (fd < 0) {
		printf("SKIP tiers disk: %s refuses O_DIRECT\n", dir);
		rmdir(dir);
		return 0;
	}
	close(fd);
	ret = disk_runs(dir, file, n, reps, res);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) && !ret)
		ret = -EIO;
	if (ret)
		return ret;
	for (int i = 0; i < 6; i++)
		m[i] = bench_median(res[i], reps) / 1e9;
	bench_header("tiers: disk tier vs fio / a plain io_uring loop (1 MiB, QD 64, O_DIRECT, "
		     "THP buffers, median of interleaved runs)");
	if (m[2] > 0 && m[3] > 0) {
		bench_result(ctx, "tiers-disk", "disk_write_vs_fio", m[4], "GB/s", "fio_io_uring",
			     m[2]);
		bench_result(ctx, "tiers-disk", "disk_read_vs_fio", m[5], "GB/s", "fio_io_uring",
			     m[3]);
	} else {
		/* no fio here: the metric against the best plain loop */
		bench_result(ctx, "tiers-disk", "disk_write_vs_fio", m[4], "GB/s", "io_uring_loop",
			     m[0]);
		bench_result(ctx, "tiers-disk", "disk_read_vs_fio", m[5], "GB/s", "io_uring_loop",
			     m[1]);
	}
	bench_result(ctx, "tiers-disk", "disk_write_vs_uring_loop", m[4], "GB/s", "io_uring_loop",
		     m[0]);
	bench_result(ctx, "tiers-disk", "disk_read_vs_uring_loop", m[5], "GB/s", "io_uring_loop",
		     m[1]);
	return 0;
}

/* ---- spill and restore through the tiers vs plain copies ----------------- */

#ifdef KVMM_HAVE_CUDA
/* n block-sized copies each way between device memory and host pieces
 * host(i) (pinned), one stream; pass 0 warms up.  Bytes/s. */
static int cuda_copies(const struct kvmm_cuda_driver *drv, CUcontext ctx, uint64_t block,
		       uint32_t n, void *(*host)(void *arg, uint32_t i), void *arg, double *d2h,
		       double *h2d)
{
	CUdeviceptr dev = 0;
	CUstream st = NULL;
	uint64_t t0;
	int ret = kvmm_cuda_ctx_enter(drv, ctx);

	if (!ret)
		ret = kvmm_cuda_errno(drv->cuMemAlloc(&dev, block * n));
	if (!ret)
		ret = kvmm_cuda_errno(drv->cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
	for (int pass = 0; pass < 2 && !ret; pass++) {
		t0 = bench_now_ns();
		for (uint32_t i = 0; i < n && !ret; i++)
			ret = kvmm_cuda_errno(
				drv->cuMemcpyDtoHAsync(host(arg, i), dev + i * block, block, st));
		if (!ret)
			ret = kvmm_cuda_errno(drv->cuStreamSynchronize(st));
		*d2h = (double)block * n / ((double)(bench_now_ns() - t0) / 1e9);
		t0 = bench_now_ns();
		for (uint32_t i = 0; i < n && !ret; i++)
			ret = kvmm_cuda_errno(
				drv->cuMemcpyHtoDAsync(dev + i * block, host(arg, i), block, st));
		if (!ret)
			ret = kvmm_cuda_errno(drv->cuStreamSynchronize(st));
		*h2d = (double)block * n / ((double)(bench_now_ns() - t0) / 1e9);
	}
	if (st)
		drv->cuStreamDestroy(st);
	if (dev)
		drv->cuMemFree(dev);
	return ret;
}

struct flat {
	char *base;
	uint64_t step;
};

static void *flat_at(void *arg, uint32_t i)
{
	struct flat *f = arg;

	return f->base + (uint64_t)i * f->step;
}

static void *slot_payload(void *arg, uint32_t i)
{
	return (char *)tier_host_slot(arg, i) + 4096;
}
#endif

/* The same bytes copied plainly, in block-sized pieces: device -> host and
 * host -> device, pinned host memory on CUDA (cuMemAllocHost), memcpy on
 * the host backend.  Bytes/s into *d2h, *h2d. */
static int plain_copies(struct kvmm_backend *be, uint64_t block, uint32_t n, double *d2h,
			double *h2d)
{
	uint64_t t0;
#ifdef KVMM_HAVE_CUDA
	CUcontext ctx;
	const struct kvmm_cuda_driver *drv = kvmm_cuda_backend_driver(be, &ctx, NULL);

	if (drv) {
		struct flat f = {.step = block};
		int ret = kvmm_cuda_ctx_enter(drv, ctx);

		if (!ret)
			ret = kvmm_cuda_errno(drv->cuMemAllocHost((void **)&f.base, block * n));
		if (!ret)
			ret = cuda_copies(drv, ctx, block, n, flat_at, &f, d2h, h2d);
		if (f.base)
			drv->cuMemFreeHost(f.base);
		return ret;
	}
#endif
	{
		char *a = mmap(NULL, block * n, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		char *b = mmap(NULL, block * n, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		if (a == MAP_FAILED || b == MAP_FAILED)
			return -ENOMEM;
		for (int pass = 0; pass < 2; pass++) {
			t0 = bench_now_ns();
			for (uint32_t i = 0; i < n; i++)
				memcpy(b + i * block, a + i * block, block);
			*d2h = (double)block * n / ((double)(bench_now_ns() - t0) / 1e9);
			t0 = bench_now_ns();
			for (uint32_t i = 0; i < n; i++)
				memcpy(a + i * block, b + i * block, block);
			*h2d = (double)block * n / ((double)(bench_now_ns() - t0) / 1e9);
		}
		munmap(a, block * n);
		munmap(b, block * n);
	}
	return 0;
}

/* The same copies between device memory and the payloads of a tier host
 * pool's slots (registered chunk by chunk; flags: TIER_HOST_THP or 0): what
 * the tiers' copies can reach at best from that memory.  CUDA only (0
 * with nothing measured elsewhere). */
static int pool_copies(struct kvmm_backend *be, uint64_t block, uint32_t n, uint32_t flags,
		       double *d2h, double *h2d)
{
	*d2h = *h2d = 0;
#ifdef KVMM_HAVE_CUDA
	CUcontext ctx;
	const struct kvmm_cuda_driver *drv = kvmm_cuda_backend_driver(be, &ctx, NULL);
	struct tier_host_config cfg = {.bytes = (uint64_t)n * (block + 4096),
				       .slot_bytes = block + 4096,
				       .numa_node = TIER_NODE_OF_GPU,
				       .flags = flags,
				       .be = be};
	struct tier_host *h;
	int ret;

	if (!drv)
		return 0;
	ret = tier_host_create(&cfg, &h);
	if (ret)
		return ret;
	ret = cuda_copies(drv, ctx, block, n, slot_payload, h, d2h, h2d);
	tier_host_destroy(h);
	return ret;
#else
	(void)be, (void)block, (void)n, (void)flags;
	return 0;
#endif
}

#define SPILL_PROMPT_BLOCKS 32

/* Stages of a spill or a restore (tier_prof), ms summed over threads. */
struct stages {
	double v[16];
};

static const char *const restore_stage[] = {"gather", "check", "hash",	"alloc",
					    "queue",  "wait",  "insert"};
static const char *const spill_stage[] = {"hook", "claim", "queue", "wait", "hash", "seal"};

static void stages_restore(const struct tier_prof *p, struct stages *st)
{
	const _Atomic uint64_t *f[] = {&p->r_gather, &p->r_check, &p->r_hash,  &p->r_alloc,
				       &p->r_queue,  &p->r_wait,  &p->r_insert};

	for (int i = 0; i < 7; i++)
		st->v[i] = (double)atomic_load(f[i]) / 1e6;
	st->v[7] = (double)atomic_load(&p->r_runs);
}

static void stages_spill(const struct tier_prof *p, struct stages *st)
{
	const _Atomic uint64_t *f[] = {&p->s_hook, &p->s_claim, &p->s_queue,
				       &p->s_wait, &p->s_hash,	&p->s_seal};

	for (int i = 0; i < 6; i++)
		st->v[i] = (double)atomic_load(f[i]) / 1e6;
	st->v[7] = (double)atomic_load(&p->s_rounds);
}

/* Llama-3-8B's KV shape, page-major, 2 MiB blocks: nblocks of prefixes
 * cached, evicted (spilled to the host pool, checksums included: flush
 * waits for the seals), then prefetched back (checked, copied). */
static int spill_restore(struct kvmm_backend *be, uint32_t nblocks, uint32_t tflags,
			 enum kvmm_spill_encoding enc, double *spill, double *restore,
			 struct stages *sst, struct stages *rst)
{
	struct kvmm_cache_config cc = {.shape = {32, 8, 128, 2},
				       .layout = KVMM_LAYOUT_PAGE_MAJOR,
				       .max_seqs = 4,
				       .max_tokens = 8192};
	struct kvmm_tiers_config tc = {.host_placement = KVMM_HOST_GPU_NODE,
				       .flags = tflags,
				       .encoding = enc,
				       .kv_dtype = enc ? KVMM_DTYPE_BF16 : 0};
	uint32_t nprompt = nblocks / SPILL_PROMPT_BLOCKS, tpb, n, s;
	struct kvmm_prefetch **pf = calloc(nprompt, sizeof(*pf));
	struct kvmm_cache_info info;
	struct kvmm_cache *c = NULL;
	uint32_t *tok = NULL;
	uint8_t *rows = NULL;
	uint64_t t0, bytes;
	int ret;

	cc.budget_bytes = (uint64_t)(nblocks + 2 * SPILL_PROMPT_BLOCKS + 8) * (2u << 20);
	ret = pf ? kvmm_cache_create(be, &cc, &c) : -ENOMEM;
	if (!ret)
		ret = kvmm_prefix_enable(c, NULL);
	if (ret)
		goto out;
	kvmm_cache_get_info(c, &info);
	tpb = info.tokens_per_block;
	n = SPILL_PROMPT_BLOCKS * tpb;
	/* raw-sized slots: room for every block whatever the encoding */
	tc.host_bytes = (uint64_t)(nblocks + 8) * tier_rec_bytes(tpb, info.block_bytes);
	ret = kvmm_tiers_enable(c, &tc);
	tok = malloc((size_t)nprompt * n * sizeof(*tok));
	rows = malloc((size_t)n * info.token_bytes / info.shape.num_layers / 2);
	if (!ret && (!tok || !rows))
		ret = -ENOMEM;
	if (!ret)
		memset(rows, 0x3c, (size_t)n * info.token_bytes / info.shape.num_layers / 2);
	for (uint32_t p = 0; p < nprompt && !ret; p++) {
		struct kvmm_step_entry e = {.len = n};

		for (uint32_t i = 0; i < n; i++)
			tok[(size_t)p * n + i] = 1000000u * (p + 1) + i;
		ret = kvmm_seq_open(c, n, &s);
		e.seq = s;
		if (!ret)
			ret = kvmm_step(c, &e, 1);
		/* real KV is written before it is cached (and every page is
		 * then present, as in a server) */
		for (uint32_t l = 0; l < info.shape.num_layers && !ret; l++)
			for (uint32_t kv = 0; kv < 2 && !ret; kv++)
				ret = kvmm_seq_write(c, s, l, kv, 0, n, rows);
		if (!ret && kvmm_prefix_insert(c, s, NULL, tok + (size_t)p * n, n) != (int)n)
			ret = -EIO;
		kvmm_seq_close(c, s);
	}
	if (ret)
		goto out;
	bytes = (uint64_t)nprompt * SPILL_PROMPT_BLOCKS * info.block_bytes;
	t0 = bench_now_ns();
	if (kvmm_prefix_evict(c, nblocks) != (int)(nprompt * SPILL_PROMPT_BLOCKS))
		ret = -EIO;
	kvmm_tiers_flush(c);
	*spill = (double)bytes / ((double)(bench_now_ns() - t0) / 1e9);
	stages_spill(&kvmm_tiers_of(c)->prof, sst);
	t0 = bench_now_ns();
	for (uint32_t p = 0; p < nprompt && !ret; p++) {
		uint32_t found;

		ret = kvmm_prefix_prefetch(c, NULL, tok + (size_t)p * n, n, 0, &pf[p], &found);
		if (!ret && found != n)
			ret = -ENOENT;
	}
	for (uint32_t p = 0; p < nprompt && !ret; p++)
		if (kvmm_prefetch_wait(c, pf[p], n, UINT64_MAX) != n)
			ret = -EIO;
	*restore = (double)bytes / ((double)(bench_now_ns() - t0) / 1e9);
	for (uint32_t p = 0; p < nprompt; p++)
		kvmm_prefetch_release(c, pf[p]);
	stages_restore(&kvmm_tiers_of(c)->prof, rst);
	if (!ret) {
		struct kvmm_tiers_stats st;

		kvmm_tiers_stats(c, &st);
		if (st.spill_skipped || st.verify_failures || st.restores_host != nblocks)
			ret = -EIO;
	}
out:
	kvmm_cache_destroy(c);
	free(tok);
	free(rows);
	free(pf);
	return ret;
}

/* Where a spill's and a restore's time went (ms summed over threads). */
static void report_stages(struct bench_ctx *ctx, const char *what, const struct stages *sst,
			  const struct stages *rst)
{
	char name[64];

	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "%s_spill_%s_ms", what, spill_stage[i]);
		bench_result(ctx, "tiers-stages", name, sst->v[i], "ms", NULL, 0);
	}
	for (int i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "%s_restore_%s_ms", what, restore_stage[i]);
		bench_result(ctx, "tiers-stages", name, rst->v[i], "ms", NULL, 0);
	}
	snprintf(name, sizeof(name), "%s_spill_rounds", what);
	bench_result(ctx, "tiers-stages", name, sst->v[7], "", NULL, 0);
	snprintf(name, sizeof(name), "%s_restore_runs", what);
	bench_result(ctx, "tiers-stages", name, rst->v[7], "", NULL, 0);
}

/* The spill/restore variants measured, each against the same plain copies:
 * the default (THP pool), 4 KiB pages, and quantize-on-spill (GB/s of
 * unquantized KV). */
static const struct variant {
	const char *name;
	uint32_t tflags;
	enum kvmm_spill_encoding enc;
	const char *spill, *restore; /* metric names (GPU) */
} variants[] = {
	{"default", 0, KVMM_SPILL_RAW, "spill_vs_memcpy", "restore_vs_memcpy"},
	{"nothp", KVMM_TIERS_HOST_NO_THP, KVMM_SPILL_RAW, "spill_nothp_vs_memcpy",
	 "restore_nothp_vs_memcpy"},
	{"fp8", 0, KVMM_SPILL_FP8, "spill_quant_vs_memcpy", "restore_quant_vs_memcpy"},
	{"int8", 0, KVMM_SPILL_INT8, "spill_int8_vs_memcpy", "restore_int8_vs_memcpy"},
};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))

#define SPILL_REPS 3

/* Each variant REPS times, interleaved with the plain copies it is
 * compared with (the GPU machine's copy and hash rates vary by up to 2x
 * from one minute to the next): medians of the values, of the baselines,
 * and of the per-run ratios. */
static int bench_spill(struct bench_ctx *ctx, struct kvmm_backend *be)
{
	uint32_t nblocks = ctx->quick ? 64 : 512; /* 128 MiB or 1 GiB */
	int reps = ctx->quick ? 1 : SPILL_REPS;
	bool cuda = kvmm_backend_get_type(be) == KVMM_BACKEND_CUDA;
	double d2h[SPILL_REPS], h2d[SPILL_REPS], sp[NVARIANTS][SPILL_REPS],
		re[NVARIANTS][SPILL_REPS];
	double pd2h = 0, ph2d = 0, td2h = 0, th2d = 0, m[6];
	struct stages sst[NVARIANTS] = {0}, rst[NVARIANTS] = {0};
	char name[96];
	int ret = pool_copies(be, 2u << 20, nblocks, 0, &pd2h, &ph2d);

	if (!ret)
		ret = pool_copies(be, 2u << 20, nblocks, TIER_HOST_THP, &td2h, &th2d);
	for (int r = 0; r < reps && !ret; r++) {
		ret = plain_copies(be, 2u << 20, nblocks, &d2h[r], &h2d[r]);
		for (size_t v = 0; v < NVARIANTS && !ret; v++)
			ret = spill_restore(be, nblocks, variants[v].tflags, variants[v].enc,
					    &sp[v][r], &re[v][r], &sst[v], &rst[v]);
	}
	if (ret)
		return ret;
	if (cuda) {
		bench_header("tiers: plain copies from and to a tier host pool vs cuMemAllocHost "
			     "memory (2 MiB pieces, one stream)");
		bench_result(ctx, "tiers-pool-copy", "pool_d2h_gbps", pd2h / 1e9, "GB/s",
			     "cuMemcpyDtoH_pinned", d2h[0] / 1e9);
		bench_result(ctx, "tiers-pool-copy", "pool_h2d_gbps", ph2d / 1e9, "GB/s",
			     "cuMemcpyHtoD_pinned", h2d[0] / 1e9);
		bench_result(ctx, "tiers-pool-copy", "pool_thp_d2h_gbps", td2h / 1e9, "GB/s",
			     "cuMemcpyDtoH_pinned", d2h[0] / 1e9);
		bench_result(ctx, "tiers-pool-copy", "pool_thp_h2d_gbps", th2d / 1e9, "GB/s",
			     "cuMemcpyHtoD_pinned", h2d[0] / 1e9);
	}
	bench_header("tiers: where the time goes (ms summed over threads, the last run)");
	for (size_t v = 0; v < NVARIANTS; v++)
		report_stages(ctx, variants[v].name, &sst[v], &rst[v]);
	bench_header("tiers: spill and restore (checksums included) vs plain pinned copies (GB/s "
		     "of unquantized KV; medians of interleaved runs)");
	for (size_t v = 0; v < NVARIANTS; v++) {
		double rs[SPILL_REPS], rr[SPILL_REPS], a[SPILL_REPS], b[SPILL_REPS];

		for (int r = 0; r < reps; r++) {
			rs[r] = sp[v][r] / d2h[r];
			rr[r] = re[v][r] / h2d[r];
			a[r] = d2h[r];
			b[r] = h2d[r];
		}
		m[0] = bench_median(sp[v], reps);
		m[1] = bench_median(a, reps);
		m[2] = bench_median(rs, reps);
		m[3] = bench_median(re[v], reps);
		m[4] = bench_median(b, reps);
		m[5] = bench_median(rr, reps);
		/* the metrics are the GPU's; the host backend's are
		 * reported under their own names */
		snprintf(name, sizeof(name), "%s%s", variants[v].spill, cuda ? "" : "_hostbackend");
		bench_result_ratio(ctx, "tiers-spill", name, m[0] / 1e9, "GB/s",
				   cuda ? "cuMemcpyDtoH_pinned" : "memcpy", m[1] / 1e9, m[2]);
		snprintf(name, sizeof(name), "%s%s", variants[v].restore,
			 cuda ? "" : "_hostbackend");
		bench_result_ratio(ctx, "tiers-spill", name, m[3] / 1e9, "GB/s",
				   cuda ? "cuMemcpyHtoD_pinned" : "memcpy", m[4] / 1e9, m[5]);
	}
	return 0;
}

static int run_tiers(struct bench_ctx *ctx)
{
	struct kvmm_backend_config cfg = {.type = KVMM_BACKEND_AUTO};
	struct kvmm_backend *be;
	int ret = kvmm_backend_open(&cfg, &be);

	if (ret)
		return ret;
	ret = bench_host_pool(ctx, be);
	if (!ret)
		ret = bench_spill(ctx, be);
	if (!ret)
		ret = bench_disk(ctx);
	kvmm_backend_close(be);
	return ret;
}

BENCH_GROUP(tiers, "host pool creation, disk tier vs fio, spill/restore vs memcpy", run_tiers);
