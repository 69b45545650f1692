/* SPDX-License-Identifier: MIT */
/*
 * kmod_client.h - the userspace side of /dev/kvmm's ABI (uapi/kvmm.h), for
 * libkvmm's pool API (kvmm_pool_*, kvmm_probe in kvmm.h) and for kvmmctl.
 *
 * Every function returns >= 0 or a negative errno and keeps no state of
 * its own; all are thread-safe.
 */
#ifndef KVMM_KMOD_CLIENT_H
#define KVMM_KMOD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "uapi/kvmm.h"

/* The device path: path if not NULL, else $KVMM_DEVICE, else /dev/kvmm. */
const char *kmod_dev_path(const char *path);
/* open() the device read-write, close-on-exec: an fd or -errno (-ENODEV
 * when there is no such file: the module is not loaded). */
int kmod_dev_open(const char *path);
/* ioctl(): its result or -errno. */
long kmod_ioctl(int fd, unsigned long cmd, void *arg);
/* KVMM_IOC_GET_INFO: -EPROTO when the module speaks another API version. */
int kmod_get_info(int dev, struct kvmm_info *info);
int kmod_get_stats(int dev, struct kvmm_stats *st);
/* KVMM_IOC_LIMITS: flags 0 reads, KVMM_LIMITS_SET_* sets (root). */
int kmod_limits(int dev, uint32_t flags, uint64_t global, uint64_t per_uid,
		struct kvmm_limits *out);
/* Every pool, in *descs (malloc'ed, the caller frees) and *n. */
int kmod_list(int dev, struct kvmm_pool_desc **descs, uint32_t *n);
int kmod_pool_info(int pool, struct kvmm_pool_desc *d);
/* KVMM_IOC_POOL_CREATE: a pool fd. */
int kmod_pool_create(int dev, const char *name, uint64_t bytes, int node, unsigned int page_shift,
		     uint32_t flags, uint32_t mode, uint32_t pci_dev);
int kmod_pool_open(int dev, const char *name, uint32_t flags);
int kmod_pool_destroy(int dev, const char *name);
/* Pages whose state changed, or -errno. */
int64_t kmod_set_state(int pool, const struct kvmm_page_range *r, uint32_t n, unsigned int state);
int64_t kmod_populate(int pool, uint64_t first, uint64_t count);
int kmod_set_residency(int pool, const uint64_t pages[KVMM_TIER_COUNT]);
int kmod_set_eventfd(int pool, int efd);

/*
 * What err means for the command cmd (a KVMM_IOC_*), in words an operator
 * can act on, e.g. "a pool with this name exists".  Never NULL.
 */
const char *kmod_strerror(unsigned long cmd, int err);
/* "EEXIST" for EEXIST (or -EEXIST); "E?" when unknown. */
const char *kmod_errname(int err);
/* "domain:bus:dev.fn" (or "bus:dev.fn") as the module's pci_dev number. */
int kmod_parse_pci(const char *s, uint32_t *out);

#endif /* KVMM_KMOD_CLIENT_H */
