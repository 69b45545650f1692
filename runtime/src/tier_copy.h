/* SPDX-License-Identifier: MIT */
/*
 * tier_copy.h - copies between the cache's blocks and the host pool.
 *
 * On CUDA: asynchronous copies on the tiers' own streams (one for spills,
 * device to host, one for restores, host to device, so both directions run
 * at once), from and to pinned host memory, with an event per step so a
 * caller can wait for exactly what it needs (a layer of a restore).  On the
 * host and null backends: the backend's synchronous copies; events are
 * then complete at once.  A copy that fails reports its error; the caller
 * never exposes the destination then.
 */
#ifndef KVMM_TIER_COPY_H
#define KVMM_TIER_COPY_H

#include <stdint.h>

#include "backend.h"

enum tier_dir {
	TIER_D2H = 0, /* spill */
	TIER_H2D = 1, /* restore */
};

struct tier_copy;

/* Streams and events on be's device (nothing to make on other backends). */
int tier_copy_create(struct kvmm_backend *be, struct tier_copy **out);
void tier_copy_destroy(struct tier_copy *tc);
/* Queue a copy of n bytes in direction dir (dev is a device address). */
int tier_copy_queue(struct tier_copy *tc, enum tier_dir dir, uint64_t dev, void *host, uint64_t n);
/* Wait for every copy queued in dir; its first error, if any. */
int tier_copy_sync(struct tier_copy *tc, enum tier_dir dir);
/*
 * Events: a marker after everything queued in dir so far.  *ev gets an
 * opaque handle (a CUevent on CUDA, 0 elsewhere) to wait on (tier_copy_wait)
 * or, on CUDA, to make a compute stream wait on (cuStreamWaitEvent); free
 * it with tier_copy_event_free.
 */
int tier_copy_record(struct tier_copy *tc, enum tier_dir dir, uint64_t *ev);
int tier_copy_wait(struct tier_copy *tc, uint64_t ev);
/* 1 done, 0 not yet, or a negative errno. */
int tier_copy_query(struct tier_copy *tc, uint64_t ev);
void tier_copy_event_free(struct tier_copy *tc, uint64_t ev);
/*
 * Call fn(arg, err) once every copy queued in dir so far has completed, err
 * being the first error among them (0: all fine): on CUDA from the engine's
 * completion thread, in the order of the notifications; elsewhere (copies
 * are synchronous) at once, in the caller.  fn must be short and must not
 * queue copies; it may take the tiers' lock.  0, or the error of recording
 * the marker (fn is not called then).
 */
typedef void (*tier_copy_done_fn)(void *arg, int err);
int tier_copy_notify(struct tier_copy *tc, enum tier_dir dir, tier_copy_done_fn fn, void *arg);
/* Quantized copies (quantize-on-spill; tier_quant.h's payload layout). */
struct tier_quant_copy {
	uint32_t kind;	    /* TIER_QUANT_* (the values of enum kvmm_quant) */
	uint32_t dtype;	    /* TIER_DTYPE_* (the values of enum kvmm_dtype) */
	uint32_t row_elems; /* elements per scale */
	uint64_t raw_bytes; /* of the block at dev */
	uint64_t q_bytes;   /* of the payload at host */
};
/*
 * Quantize and dequantize on the device: libkvmm's pack kernels through a
 * ring of nslots device staging buffers of q_bytes per direction, on a
 * second stream per direction so that the copies of one block overlap the
 * kernels of the next.  -ENOTSUP where there are none (not CUDA, or built
 * without the kernels): the caller quantizes on the CPU then.
 */
int tier_copy_quant_init(struct tier_copy *tc, uint64_t q_bytes, uint32_t nslots);
int tier_copy_has_quant(const struct tier_copy *tc);
/*
 * D2H: pack the block at dev into its quantized payload at host; H2D:
 * unpack the payload at host into the block at dev.  Ordered with dir's
 * other copies: sync, record and notify of dir cover it.
 */
int tier_copy_queue_quant(struct tier_copy *tc, enum tier_dir dir, uint64_t dev, void *host,
			  const struct tier_quant_copy *q);
/* Does this engine copy asynchronously (CUDA)? */
int tier_copy_is_async(const struct tier_copy *tc);

#endif /* KVMM_TIER_COPY_H */
