// SPDX-License-Identifier: MIT
/*
 * test_tiers_vm.c - the tiers on real block devices, in the test VM
 * (make test-vm; a static program from the VM bench's extra directory):
 *  - the disk tier on the emulated NVMe disk itself (a raw block device),
 *    found again after a restart;
 *  - on a device-mapper device whose second half is the `error` target:
 *    writes there fail with EIO from the block layer, are counted, never
 *    indexed; everything else reads back exactly;
 *  - on dm-flakey corrupting every read: every read is caught (checksum),
 *    nothing is served; after the table goes back to linear the tier is
 *    usable again;
 *  - the whole tiers layer with the host pool from kvm.ko (a module pool,
 *    residency in sysfs): fill, evict, spill, restore, every byte;
 *  - a persistent host pool: a process spills into it and is killed (-9);
 *    the next one re-opens the pool, finds every record (checksummed) and
 *    restores from host RAM with no disk at all; a second process cannot
 *    open it meanwhile; a corrupted record is found no more.
 * TAP; skips (77) without /dev/nvme0n1.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "../gpu/gputest.h"
#include "tier_disk.h"
#include "tier_record.h"

#define NVME "/dev/nvme0n1"
#define SLOT (64u << 10)
#define SEG  (4096 + 16 * SLOT) /* 1 MiB + 4 KiB */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	return x ^ (x >> 33);
}

/* A record of stream s, index i, into buf (SLOT bytes); its key. */
static uint64_t make(void *buf, uint64_t s, uint32_t i, uint64_t *payload_seed)
{
	uint32_t tokens[16];
	struct tier_rec r = {.ns = {.model_id = 3}, .parent = s, .ntokens = 16};
	uint64_t *w;

	for (int k = 0; k < 16; k++)
		tokens[k] = (uint32_t)mix(s * 1000 + i * 16 + (uint32_t)k);
	r.key = tier_key_next(r.parent, tokens, 16);
	r.payload_bytes = SLOT - 4096;
	w = (uint64_t *)((char *)buf + 4096);
	for (uint64_t k = 0; k < r.payload_bytes / 8; k++)
		w[k] = mix(r.key + k);
	if (payload_seed)
		*payload_seed = r.key;
	tier_rec_seal(buf, SLOT, &r, tokens);
	return r.key;
}

static int exact(const void *buf, uint64_t key)
{
	const uint64_t *w = (const uint64_t *)((const char *)buf + 4096);

	for (uint64_t k = 0; k < (SLOT - 4096) / 8; k++)
		if (w[k] != mix(key + k))
			return 0;
	return 1;
}

static struct tier_disk *open_on(const char *dev, uint64_t cap, uint32_t flags)
{
	struct tier_disk_config cfg = {.dir = dev,
				       .capacity_bytes = cap,
				       .segment_bytes = SEG,
				       .slot_bytes = SLOT,
				       .queue_depth = 32,
				       .io_bytes = 16384,
				       .flags = flags};
	struct tier_disk *d = NULL;

	return tier_disk_open(&cfg, &d) ? NULL : d;
}

/* ---- device mapper, through its ioctls (no dmsetup in the VM) ---------- */

struct dm_target {
	uint64_t start, len; /* sectors */
	const char *type, *params;
};

static int dm_io(int ctl, unsigned long cmd, const char *name, const struct dm_target *t, int n,
		 uint32_t flags, uint64_t *dev)
{
	char buf[16384];
	struct dm_ioctl *io = (struct dm_ioctl *)buf;
	size_t off = sizeof(*io);

	memset(buf, 0, sizeof(buf));
	io->version[0] = DM_VERSION_MAJOR;
	io->version[1] = 0;
	io->version[2] = 0;
	io->data_size = sizeof(buf);
	io->data_start = sizeof(*io);
	io->flags = flags;
	snprintf(io->name, sizeof(io->name), "%s", name);
	for (int i = 0; i < n; i++) {
		struct dm_target_spec *sp = (struct dm_target_spec *)(buf + off);
		size_t plen = strlen(t[i].params) + 1;

		sp->sector_start = t[i].start;
		sp->length = t[i].len;
		snprintf(sp->target_type, sizeof(sp->target_type), "%s", t[i].type);
		memcpy(sp + 1, t[i].params, plen);
		sp->next = (uint32_t)((sizeof(*sp) + plen + 7) & ~7u);
		off += sp->next;
	}
	io->target_count = (uint32_t)n;
	if (ioctl(ctl, cmd, io))
		return -errno;
	if (dev)
		*dev = io->dev;
	return 0;
}

/* Create (or reload) name with the table t; its node in /tmp. */
static int dm_make(const char *name, const struct dm_target *t, int n, char *path, size_t len,
		   int reload)
{
	int ctl = open("/dev/mapper/control", O_RDWR | O_CLOEXEC), ret;
	uint64_t dev = 0;

	if (ctl < 0)
		return -errno;
	ret = reload ? 0 : dm_io(ctl, DM_DEV_CREATE, name, NULL, 0, 0, &dev);
	if (!ret)
		ret = dm_io(ctl, DM_TABLE_LOAD, name, t, n, 0, NULL);
	if (!ret)
		ret = dm_io(ctl, DM_DEV_SUSPEND, name, NULL, 0, 0, &dev); /* resume */
	close(ctl);
	if (ret)
		return ret;
	snprintf(path, len, "/tmp/%s", name);
	if (!reload) {
		unlink(path);
		if (mknod(path, S_IFBLK | 0600,
			  makedev((dev >> 8) & 0xfff, (dev & 0xff) | ((dev >> 12) & 0xfff00))))
			return -errno;
	}
	return 0;
}

static void dm_remove(const char *name)
{
	int ctl = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);

	if (ctl >= 0) {
		dm_io(ctl, DM_DEV_REMOVE, name, NULL, 0, 0, NULL);
		close(ctl);
	}
}

/* ---- the tests -------------------------------------------------------- */

static void raw_nvme(struct gt *t, char *buf)
{
	struct tier_disk_stats st;
	struct tier_disk *d = open_on(NVME, 64u << 20, TIER_DISK_DISCARD);
	uint64_t keys[40];
	int bad = 0;

	GT_CHECK(t, d != NULL, "disk tier on %s (raw NVMe)", NVME);
	if (!d)
		return;
	for (uint32_t i = 0; i < 40; i++) {
		keys[i] = make(buf, 1, i, NULL);
		bad += tier_disk_put(d, keys[i], buf, SLOT) != 0;
	}
	GT_CHECK(t, !bad, "40 records written");
	tier_disk_close(d);
	d = open_on(NVME, 64u << 20, 0);
	tier_disk_get_stats(d, &st);
	GT_CHECK(t, st.scan_records == 40, "restart: the scan finds 40 records (%llu)",
		 (unsigned long long)st.scan_records);
	for (uint32_t i = 0; i < 40; i++)
		bad += tier_disk_get(d, keys[i], buf, SLOT, NULL) || !exact(buf, keys[i]);
	GT_CHECK(t, !bad, "every record reads back exactly");
	tier_disk_close(d);
}

static void dm_error_half(struct gt *t, char *buf)
{
	/* 8 segments: 4 on the disk, 4 on the error target */
	uint64_t half = 4ull * SEG / 512 + 8;
	struct dm_target tab[2] = {{0, half, "linear", NVME " 0"}, {half, half, "error", ""}};
	char path[64];
	struct tier_disk_stats st;
	struct tier_disk *d;
	uint64_t keys[128];
	int ok = 0, bad = 0, ret;

	ret = dm_make("kvmm-err", tab, 2, path, sizeof(path), 0);
	GT_CHECK(t, ret == 0, "dm device: linear + error (%d)", ret);
	if (ret)
		return;
	d = open_on(path, 8ull * SEG, TIER_DISK_DISCARD);
	GT_CHECK(t, d != NULL, "disk tier on it");
	for (uint32_t i = 0; d && i < 128; i++) {
		keys[i] = make(buf, 2, i, NULL);
		ret = tier_disk_put(d, keys[i], buf, SLOT);
		ok += ret == 0;
		bad += ret != 0 && ret != -EIO && ret != -ENOSPC;
	}
	if (d) {
		tier_disk_get_stats(d, &st);
		GT_CHECK(t, !bad && ok > 0 && st.err_io > 0,
			 "block-layer EIO: puts fail, counted (%d stored, %llu I/O errors)", ok,
			 (unsigned long long)st.err_io);
		bad = 0;
		for (uint32_t i = 0; i < 128; i++) {
			ret = tier_disk_get(d, keys[i], buf, SLOT, NULL);
			if (ret == 0 && !exact(buf, keys[i]))
				bad++; /* served wrong bytes */
			if (ret != 0 && ret != -ENOENT && ret != -EIO)
				bad++;
		}
		GT_CHECK(t, !bad, "nothing wrong is ever served");
		tier_disk_close(d);
	}
	dm_remove("kvmm-err");
}

static void dm_flakey_corrupt(struct gt *t, char *buf)
{
	uint64_t len = 4ull * SEG / 512 + 8;
	/* always "down" (up 0 s, down 1 s), corrupting byte 700 of every read */
	struct dm_target flakey = {0, len, "flakey", NVME " 0 0 1 5 corrupt_bio_byte 700 r 171 0"};
	struct dm_target lin = {0, len, "linear", NVME " 0"};
	char path[64];
	struct tier_disk_stats st;
	struct tier_disk *d;
	uint64_t keys[24];
	int served = 0, ok = 0, ret;

	ret = dm_make("kvmm-flakey", &lin, 1, path, sizeof(path), 0);
	GT_CHECK(t, ret == 0, "dm device: linear, to be made flakey (%d)", ret);
	if (ret)
		return;
	d = open_on(path, 4ull * SEG, TIER_DISK_DISCARD);
	GT_CHECK(t, d != NULL, "disk tier on it");
	if (!d)
		goto out;
	for (uint32_t i = 0; i < 24; i++) {
		keys[i] = make(buf, 3, i, NULL);
		tier_disk_put(d, keys[i], buf, SLOT);
	}
	/* the disk goes bad under the running tier */
	ret = dm_make("kvmm-flakey", &flakey, 1, path, sizeof(path), 1);
	GT_CHECK(t, ret == 0, "dm-flakey corrupting every read (%d)", ret);
	for (uint32_t i = 0; i < 24; i++) {
		ret = tier_disk_get(d, keys[i], buf, SLOT, NULL);
		served += ret == 0 && !exact(buf, keys[i]);
		ok += ret == 0;
	}
	tier_disk_get_stats(d, &st);
	GT_CHECK(t, !served && st.err_checksum + st.err_io > 0,
		 "corrupt reads never served (%d exact, %llu checksum failures, %llu dropped)", ok,
		 (unsigned long long)st.err_checksum, (unsigned long long)st.dropped);
	/* healthy again: the same tier stores and reads */
	ret = dm_make("kvmm-flakey", &lin, 1, path, sizeof(path), 1);
	served = 0;
	for (uint32_t i = 0; !ret && i < 8; i++) {
		uint64_t k = make(buf, 4, i, NULL);

		served += tier_disk_put(d, k, buf, SLOT) || tier_disk_get(d, k, buf, SLOT, NULL) ||
			  !exact(buf, k);
	}
	GT_CHECK(t, !ret && !served, "after the fault, the tier stores and reads again");
	tier_disk_close(d);
out:
	dm_remove("kvmm-flakey");
}

/* The tiers with the module's host pool: fill, evict, restore, compare. */
static void tiers_kmod(struct gt *t)
{
	struct kvmm_backend_config bc = {.type = KVMM_BACKEND_HOST, .page_size = 64u << 10};
	struct kvmm_cache_config cc = {.shape = {2, 2, 16, 2},
				       .layout = KVMM_LAYOUT_PAGE_MAJOR,
				       .max_seqs = 2,
				       .max_tokens = 8192,
				       .budget_bytes = 48u << 20,
				       .flags = KVMM_CACHE_NO_MAPPER};
	/* 8 records on the host: the rest goes to the disk */
	struct kvmm_tiers_config tc = {.host_bytes = 8 * (68u << 10),
				       .host_placement = KVMM_HOST_NODE,
				       .host_node = 1,
				       .disk_dir = NVME,
				       .disk_bytes = 64u << 20,
				       .flags = KVMM_TIERS_DISK_DISCARD};
	struct kvmm_backend *be = NULL;
	struct kvmm_cache *c = NULL;
	struct kvmm_tiers_stats st;
	uint32_t tok[4096], n = 4096, s, m = 0, found = 0;
	struct kvmm_prefix_handle *h = NULL;
	struct kvmm_prefetch *pf = NULL;
	static uint8_t rows[4096 * 64], back[4096 * 64];
	char path[200], val[64] = "";
	int ret, bad = 0;
	FILE *f;

	ret = kvmm_backend_open(&bc, &be);
	if (!ret)
		ret = kvmm_cache_create(be, &cc, &c);
	if (!ret)
		ret = kvmm_prefix_enable(c, NULL);
	if (!ret)
		ret = kvmm_tiers_enable(c, &tc);
	GT_CHECK(t, ret == 0, "tiers over a host-backend cache (%d)", ret);
	if (ret)
		goto out;
	kvmm_tiers_stats(c, &st);
	GT_CHECK(t, !strncmp(st.host_source, "kvmm pool ", 10) && st.host_node == 1,
		 "host pool from kvmm.ko on node 1 (%s, node %d)", st.host_source, st.host_node);
	for (uint32_t i = 0; i < n; i++)
		tok[i] = 500000 + i;
	ret = kvmm_seq_open(c, n, &s);
	if (!ret) {
		struct kvmm_step_entry e = {s, n};

		ret = kvmm_step(c, &e, 1);
		for (uint32_t l = 0; l < 2 && !ret; l++)
			for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
				for (uint32_t i = 0; i < sizeof(rows); i++)
					rows[i] = (uint8_t)mix(l * 7 + kv + i);
				ret = kvmm_seq_write(c, s, l, kv, 0, n, rows);
			}
		if (!ret)
			ret = kvmm_prefix_insert(c, s, NULL, tok, n) == (int)n ? 0 : -1;
		kvmm_seq_close(c, s);
	}
	ret = ret ? ret : kvmm_prefix_evict(c, 1000) > 0 ? 0 : -1;
	kvmm_tiers_flush(c);
	kvmm_tiers_stats(c, &st);
	GT_CHECK(t,
		 ret == 0 && st.blocks[KVMM_RES_GPU] == 0 && st.spill_skipped == 0 &&
			 st.blocks[KVMM_RES_DISK] > 0,
		 "evicted and spilled (host %llu, disk %llu records)",
		 (unsigned long long)st.blocks[KVMM_RES_HOST],
		 (unsigned long long)st.blocks[KVMM_RES_DISK]);
	/* residency shows in sysfs */
	snprintf(path, sizeof(path), "/sys/kernel/kvmm/pools/%s/residency_disk",
		 st.host_source + 10);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(val, sizeof(val), f))
			val[0] = 0;
		fclose(f);
	}
	GT_CHECK(t, atoll(val) > 0, "sysfs residency_disk of the pool: %s", val);
	ret = kvmm_prefix_prefetch(c, NULL, tok, n, 0, &pf, &found);
	if (pf)
		kvmm_prefetch_wait(c, pf, n, UINT64_MAX);
	kvmm_prefetch_release(c, pf);
	ret = ret ? ret : kvmm_prefix_match(c, NULL, tok, n, &h, &m);
	if (!ret && m == n && !kvmm_seq_open(c, n, &s)) {
		ret = kvmm_seq_attach_prefix(c, s, h, KVMM_ATTACH_COPY);
		for (uint32_t l = 0; l < 2 && !ret; l++)
			for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
				for (uint32_t i = 0; i < sizeof(rows); i++)
					rows[i] = (uint8_t)mix(l * 7 + kv + i);
				ret = kvmm_seq_read(c, s, l, kv, 0, n, back);
				bad += ret || memcmp(rows, back, n * 64);
			}
		kvmm_seq_close(c, s);
	} else {
		bad = 1;
	}
	kvmm_prefix_release(c, h);
	GT_CHECK(t, !bad, "restored from the module's pool and the NVMe disk, byte for byte");
out:
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}

/* ---- a persistent host pool across processes ---------------------------- */

#define PERSIST "kvmm-vmtest-persist"
#define PN	2048 /* tokens: 8 blocks of 256 */

static uint8_t prow[PN * 64], pback[PN * 64];

static void persist_rows(uint32_t l, uint32_t kv)
{
	for (uint32_t i = 0; i < sizeof(prow); i++)
		prow[i] = (uint8_t)mix(0x77 + l * 7 + kv + i);
}

/* A cache whose host tier is the persistent pool (no disk). */
static int persist_open(struct kvmm_backend **be, struct kvmm_cache **c)
{
	struct kvmm_backend_config bc = {.type = KVMM_BACKEND_HOST, .page_size = 64u << 10};
	struct kvmm_cache_config cc = {.shape = {2, 2, 16, 2},
				       .layout = KVMM_LAYOUT_PAGE_MAJOR,
				       .max_seqs = 2,
				       .max_tokens = 4096,
				       .budget_bytes = 48u << 20,
				       .flags = KVMM_CACHE_NO_MAPPER};
	struct kvmm_tiers_config tc = {.host_bytes = 16 * (68u << 10),
				       .host_placement = KVMM_HOST_ANY_NODE,
				       .host_pool_name = PERSIST};
	int ret = kvmm_backend_open(&bc, be);

	*c = NULL;
	if (!ret)
		ret = kvmm_cache_create(*be, &cc, c);
	if (!ret)
		ret = kvmm_prefix_enable(*c, NULL);
	if (!ret)
		ret = kvmm_tiers_enable(*c, &tc);
	return ret;
}

static void persist_close(struct kvmm_backend *be, struct kvmm_cache *c)
{
	kvmm_cache_destroy(c);
	kvmm_backend_close(be);
}

/* Child: fill, spill every block to the pool, then die with SIGKILL. */
static void persist_child(const uint32_t *tok)
{
	struct kvmm_backend *be;
	struct kvmm_cache *c;
	uint32_t s;
	int ret = persist_open(&be, &c);

	if (!ret)
		ret = kvmm_seq_open(c, PN, &s);
	if (!ret) {
		struct kvmm_step_entry e = {s, PN};

		ret = kvmm_step(c, &e, 1);
		for (uint32_t l = 0; l < 2 && !ret; l++)
			for (uint32_t kv = 0; kv < 2 && !ret; kv++) {
				persist_rows(l, kv);
				ret = kvmm_seq_write(c, s, l, kv, 0, PN, prow);
			}
		if (!ret)
			ret = kvmm_prefix_insert(c, s, NULL, tok, PN) == PN ? 0 : -1;
		kvmm_seq_close(c, s);
	}
	if (!ret)
		ret = kvmm_prefix_evict(c, 1000) == PN / 256 ? 0 : -1;
	kvmm_tiers_flush(c);
	if (ret)
		_exit(3);
	raise(SIGKILL); /* no clean shutdown */
	_exit(4);
}

/* Restore tok and count the tokens whose bytes are exact (-1: wrong bytes
 * served). */
static int64_t persist_restore(struct kvmm_cache *c, const uint32_t *tok)
{
	struct kvmm_prefix_handle *h = NULL;
	struct kvmm_prefetch *pf = NULL;
	uint32_t found = 0, m = 0, s;
	int64_t got = 0;

	if (kvmm_prefix_prefetch(c, NULL, tok, PN, 0, &pf, &found))
		return -1;
	if (pf)
		kvmm_prefetch_wait(c, pf, PN, UINT64_MAX);
	kvmm_prefetch_release(c, pf);
	if (kvmm_prefix_match(c, NULL, tok, PN, &h, &m))
		return -1;
	if (m && !kvmm_seq_open(c, m, &s)) {
		got = kvmm_seq_attach_prefix(c, s, h, KVMM_ATTACH_COPY) ? -1 : (int64_t)m;
		for (uint32_t l = 0; l < 2 && got > 0; l++)
			for (uint32_t kv = 0; kv < 2 && got > 0; kv++) {
				persist_rows(l, kv);
				if (kvmm_seq_read(c, s, l, kv, 0, m, pback) ||
				    memcmp(prow, pback, (size_t)m * 64))
					got = -1;
			}
		kvmm_seq_close(c, s);
	}
	kvmm_prefix_release(c, h);
	return got;
}

static void tiers_persistent(struct gt *t)
{
	struct kvmm_backend *be = NULL;
	struct kvmm_cache *c = NULL;
	struct kvmm_tiers_stats st;
	uint32_t tok[PN];
	int status = 0, ret;
	int64_t got;
	pid_t pid;

	for (uint32_t i = 0; i < PN; i++)
		tok[i] = 800000 + i;
	kvmm_hostpool_destroy(PERSIST); /* left over by an earlier run */
	pid = fork();
	if (pid == 0)
		persist_child(tok);
	waitpid(pid, &status, 0);
	GT_CHECK(t, WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		 "a process spilled 8 blocks into the persistent pool and was killed (status %x)",
		 status);
	ret = persist_open(&be, &c);
	kvmm_tiers_stats(c, &st);
	GT_CHECK(t,
		 ret == 0 && st.host_scan_found == PN / 256 && st.blocks[KVMM_RES_HOST] == PN / 256,
		 "restart: the pool re-opened, %llu records found (%d, %s)",
		 (unsigned long long)st.host_scan_found, ret, st.host_source);
	/* nobody else may write into it meanwhile */
	pid = fork();
	if (pid == 0) {
		struct kvmm_backend *be2;
		struct kvmm_cache *c2;

		ret = persist_open(&be2, &c2);
		_exit(ret == -EBUSY ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	GT_CHECK(t, WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "a second process gets -EBUSY for the pool in use");
	got = persist_restore(c, tok);
	kvmm_tiers_stats(c, &st);
	GT_CHECK(t, got == PN && st.restores_host == PN / 256 && st.restores_disk == 0,
		 "every block restored from host RAM, byte for byte, no disk (%lld tokens)",
		 (long long)got);
	persist_close(be, c);
	/* a byte of one record goes bad behind our back */
	{
		struct kvmm_hostpool *p = NULL;

		ret = kvmm_hostpool_open(PERSIST, 0, &p);
		if (!ret)
			((uint8_t *)kvmm_hostpool_base(p))[st.host_slot_bytes * 3 + 8192] ^= 0x20;
		kvmm_hostpool_close(p);
	}
	ret = persist_open(&be, &c);
	kvmm_tiers_stats(c, &st);
	got = ret ? -1 : persist_restore(c, tok);
	GT_CHECK(t, !ret && st.host_scan_found == PN / 256 - 1 && got >= 0 && got < PN,
		 "a corrupt record is not found again; the rest restores exactly (%llu found, "
		 "%lld tokens)",
		 (unsigned long long)st.host_scan_found, (long long)got);
	persist_close(be, c);
	ret = kvmm_hostpool_destroy(PERSIST);
	GT_CHECK(t, ret == 0, "the pool is destroyed (%d)", ret);
}

int main(void)
{
	struct gt t = {0};
	char *buf;

	if (access(NVME, F_OK)) {
		printf("SKIP: no %s (not in the test VM)\n", NVME);
		return 77;
	}
	buf = mmap(NULL, SLOT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	raw_nvme(&t, buf);
	dm_error_half(&t, buf);
	dm_flakey_corrupt(&t, buf);
	if (access("/dev/kvmm", F_OK) == 0) {
		tiers_kmod(&t);
		tiers_persistent(&t);
	} else {
		printf("# no /dev/kvmm: the module pool tests are not run\n");
	}
	return gt_done(&t);
}
