/* SPDX-License-Identifier: MIT */
/*
 * vmt.h - helpers shared by the VM tests: /dev/kvmm, raw ioctls with any
 * size, sysfs and debugfs values.
 */
#ifndef KVMM_VMT_H
#define KVMM_VMT_H

#include <stddef.h>
#include <stdint.h>

#include "uapi/kvmm.h"

#define KVMM_DEV   "/dev/kvmm"
#define KVMM_SYSFS "/sys/kernel/kvmm"

/* open("/dev/kvmm", O_RDWR | O_CLOEXEC): fd or -errno */
int vmt_dev(void);
/* ioctl(): its result, or -errno */
long vmt_ioctl(int fd, unsigned long cmd, void *arg);
/*
 * Issue cmd with the struct s (len bytes, which start with __u32 size)
 * placed at the start of a buffer of bufsize bytes whose size field says
 * size and whose bytes after len are tail.  Copies the first len bytes back
 * to s.  Returns the ioctl's result or -errno.
 */
long vmt_ioctl_sized(int fd, unsigned long cmd, void *s, size_t len, uint32_t size, size_t bufsize,
		     int tail);
/* First line of a file as a number; -errno when unreadable or not a number */
long long vmt_read_ll(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* First line of a file into buf (newline stripped); 0 or -errno */
int vmt_read_str(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Write val to a file; 0 or -errno */
int vmt_write(const char *val, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run fn(arg) in a child as uid/gid (no capabilities); its exit status, or
 * -1 when it died */
int vmt_as_user(unsigned int uid, unsigned int gid, int (*fn)(void *), void *arg);
/* The same with one supplementary group (group < 0: none) */
int vmt_as_user_in(unsigned int uid, unsigned int gid, int group, int (*fn)(void *), void *arg);
/* Run fn(arg) in a child; its exit status, or -1 when it died */
int vmt_in_child(int (*fn)(void *), void *arg);
/* -errno as a child's exit status (errno values fit in a byte) */
#define VMT_EXIT(r) ((r) < 0 ? (int)-(r) : 0)
/* /dev/kmsg positioned at its end, to read what comes next */
int vmt_kmsg_open(void);
/* 1 when a record read from kmsg since contains text, else 0 */
int vmt_kmsg_has(int kmsg, const char *text);
/* Bytes of free memory (MemFree) and the count of online NUMA nodes */
long long vmt_mem_free(void);
int vmt_nr_nodes(void);

#endif /* KVMM_VMT_H */

/* ---- pools (raw ABI: these return the ioctl's result or -errno) ---------- */
int vmt_pool_create(int dev, const char *name, uint64_t bytes, int node, unsigned int page_shift,
		    uint32_t flags, uint32_t mode);
int vmt_pool_open(int dev, const char *name, uint32_t flags);
int vmt_pool_destroy(int dev, const char *name);
int vmt_pool_desc(int pool, struct kvmm_pool_desc *d);
/* state for pages [first, first + count): pages changed or -errno */
long long vmt_set_state(int pool, uint64_t first, uint64_t count, unsigned int state);
long long vmt_populate(int pool, uint64_t first, uint64_t count);
int vmt_stats(int dev, struct kvmm_stats *st);
int vmt_limits(int dev, uint32_t flags, uint64_t global, uint64_t per_uid, struct kvmm_limits *out);
/* unload kvmm (delete_module) and load it again from /lib/kvmm/kvmm.ko with
 * params ("" for none); 0 or -errno */
int vmt_unload(void);
/* one delete_module(O_NONBLOCK) attempt: 0 or -errno (-EWOULDBLOCK: in use) */
int vmt_try_unload(void);
int vmt_load(const char *params);
/* Run kvmm's shrinker through debugfs ("node nr"; node -1: every node):
 * the PAGE_SIZE pages it freed, or -errno */
long long vmt_shrink(int node, unsigned long nr);
/* Allocate and touch bytes of anonymous memory (kept until exit): 0, or 2
 * when mmap() failed */
int vmt_hog(size_t bytes);
/* Fill / check memory with a pattern derived from seed */
void vmt_fill(void *p, size_t len, uint64_t seed);
/* offset of the first mismatch, or -1 when p holds the pattern */
long vmt_check(const void *p, size_t len, uint64_t seed);
/* NUMA node of each page of [p, p + len), via move_pages(2); -errno */
int vmt_page_nodes(void *p, size_t len, int *nodes);
/* The field ("Rss", "FilePmdMapped", ...) of the mapping that starts at
 * addr in /proc/self/smaps, in kB; -errno (-ENOENT: no such mapping or
 * field) */
long long vmt_smaps_kb(const void *addr, const char *field);
/* A line "field: N kB" of /proc/meminfo, in kB; -errno */
long long vmt_meminfo_kb(const char *field);

/* Run the shell command cmd; its exit status (or -1), stdout and stderr
 * (NUL-terminated, truncated to their sizes). */
int vmt_run(const char *cmd, char *out, size_t outlen, char *err, size_t errlen);
/* The same as user and group uid (uid < 0: as we are) */
int vmt_run_as(int uid, const char *cmd, char *out, size_t outlen, char *err, size_t errlen);
/* 1 when s is one JSON value (RFC 8259) followed by optional whitespace */
int vmt_json_valid(const char *s);
