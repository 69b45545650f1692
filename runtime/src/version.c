// SPDX-License-Identifier: MIT
/* version.c - library version and errno names. */
#include <errno.h>

#include "kvmm.h"

int kvmm_version(void)
{
	return KVMM_VERSION_MAJOR * 10000 + KVMM_VERSION_MINOR * 100 + KVMM_VERSION_PATCH;
}

const char *kvmm_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
	case EINVAL:
		return "invalid argument";
	case ENOMEM:
		return "out of memory or over budget";
	case ENOSPC:
		return "no space (no free slot or storage full)";
	case ENODEV:
		return "backend or device not available";
	case ENOTSUP:
		return "not supported by this backend or build";
	case EPERM:
		return "operation not permitted (shared page is read-only)";
	case EEXIST:
		return "already exists or already mapped";
	case ENOENT:
		return "not found";
	case EBUSY:
		return "busy";
	case EFBIG:
		return "over the maximum sequence length";
	case E2BIG:
		return "too large";
	case EIO:
		return "I/O or driver error";
	case EFAULT:
		return "bad address";
	case ETIMEDOUT:
		return "timed out";
	case EAGAIN:
		return "try again";
	case EBADMSG:
		return "corrupt record (checksum or header mismatch)";
	case ERANGE:
		return "out of range";
	case ENOTTY:
		return "unknown ioctl";
	case EOVERFLOW:
		return "value too large";
	case ECANCELED:
		return "cancelled";
	default:
		return "unknown error";
	}
}
