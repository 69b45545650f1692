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
/* Bytes of free memory (MemFree) and the count of online NUMA nodes */
long long vmt_mem_free(void);
int vmt_nr_nodes(void);

#endif /* KVMM_VMT_H */
