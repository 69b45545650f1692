/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * kvmm_priv.h - what the files of kvmm.ko share.
 */
#ifndef _KVMM_PRIV_H
#define _KVMM_PRIV_H

#include <linux/atomic.h>
#include <linux/fs.h>
#include <linux/types.h>

#include "uapi/kvmm.h"

/*
 * Pages the module holds, in PAGE_SIZE units.  Must read 0 once every pool
 * is gone; kvmm_exit() warns when it does not.
 */
extern atomic_long_t kvmm_pages_allocated;

/* ioctl.c */
long kvmm_dev_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* sysfs.c: /sys/kernel/kvmm */
int kvmm_sysfs_init(void);
void kvmm_sysfs_exit(void);

#endif /* _KVMM_PRIV_H */
