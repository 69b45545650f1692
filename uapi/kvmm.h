/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR MIT) */
/*
 * kvmm.h - the ABI of /dev/kvmm, shared by kvmm.ko, libkvmm and kvmmctl.
 *
 * Rules (Documentation/process/botching-up-ioctls.rst, iommufd's layout):
 *  - Every command is _IO(KVMM_TYPE, KVMM_CMD_BASE + n) and takes a pointer
 *    to a struct that starts with "__u32 size; __u32 flags;".  size is
 *    sizeof() of the struct as the caller knows it.  The kernel accepts any
 *    size from the end of the struct's last field in API version 1 up to
 *    PAGE_SIZE: a shorter struct gives -EINVAL, a longer one is accepted
 *    when the bytes the kernel does not know are zero and gives -E2BIG
 *    otherwise (copy_struct_from_user()).  Output fields are written back
 *    for at most size bytes.
 *  - Unknown flags and non-zero reserved fields give -EINVAL.
 *  - Unknown commands give -ENOTTY; so do device commands sent to a pool fd
 *    and pool commands sent to the device fd.
 *  - Only fixed-width types; 64-bit fields are aligned; user pointers are
 *    __aligned_u64.  The layout is the same for 32- and 64-bit callers.
 *  - Support of each command is announced by KVMM_IOC_GET_INFO's ioctls
 *    mask, of each optional behaviour by its features mask.
 *
 * docs/abi.md describes every command and errno in prose.
 */
#ifndef _UAPI_KVMM_H
#define _UAPI_KVMM_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define KVMM_API_VERSION	1
#define KVMM_DEVICE_NAME	"kvmm"

/* ioctl type; 0xB9 is unassigned in Documentation/.../ioctl-number.rst */
#define KVMM_TYPE		0xB9
#define KVMM_CMD_BASE		0x80

enum {
	KVMM_CMD_GET_INFO = KVMM_CMD_BASE,
	KVMM_CMD_END,		/* one past the last command */
};

/* Bit of a command in struct kvmm_info.ioctls */
#define KVMM_IOCTL_BIT(cmd)	(1ULL << ((cmd) - KVMM_CMD_BASE))

/**
 * struct kvmm_info - KVMM_IOC_GET_INFO: the handshake
 * @size: sizeof(struct kvmm_info)
 * @flags: must be 0
 * @api_version: out: KVMM_API_VERSION of the module
 * @nr_node_ids: out: NUMA node numbers are below this
 * @features: out: KVMM_FEATURE_* bits the module implements
 * @ioctls: out: KVMM_IOCTL_BIT(cmd) for every command the module answers
 * @page_sizes: out: bit n set when pools of 2^n byte pages can be created
 * @__reserved: must be 0
 *
 * Issued on the /dev/kvmm fd before anything else: userspace checks the
 * version and that the commands and features it needs are present, and
 * falls back (or skips) otherwise.  Output fields are ignored on input.
 */
struct kvmm_info {
	__u32 size;
	__u32 flags;
	__u32 api_version;
	__u32 nr_node_ids;
	__aligned_u64 features;
	__aligned_u64 ioctls;
	__aligned_u64 page_sizes;
	__aligned_u64 __reserved;
};

#define KVMM_IOC_GET_INFO	_IO(KVMM_TYPE, KVMM_CMD_GET_INFO)

#endif /* _UAPI_KVMM_H */
