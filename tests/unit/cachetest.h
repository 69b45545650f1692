/* SPDX-License-Identifier: MIT */
/*
 * cachetest.h - helpers for the KV-cache tests: a distinct byte pattern for
 * every (sequence identity, token, layer, K/V) row, written through
 * kvmm_seq_write and checked through kvmm_seq_read and through the views'
 * address formula (host memory).
 */
#ifndef KVMM_CACHETEST_H
#define KVMM_CACHETEST_H

#include <stdbool.h>
#include <stdint.h>

#include "cache_internal.h"

/* Host backend with pages of page bytes (0: default); asserts success. */
struct kvmm_backend *ct_backend(uint64_t page);
/* A small config: shape L layers, 2 heads, 8 dims, fp16. */
struct kvmm_cache_config ct_config(enum kvmm_layout layout, uint32_t layers, uint32_t max_seqs,
				   uint32_t max_tokens, uint64_t budget, uint32_t flags);
/* The pattern of one row (row_bytes bytes). */
void ct_row(uint8_t *row, uint64_t n, uint32_t id, uint32_t tok, uint32_t layer, uint32_t kv);
/* The tests' cache on host pages of 4 KiB, shape ct_config(.., 3 layers):
 * loop index i picks layout i % 3, and the mapper thread when i >= 3.
 * max_tokens counts tokens, or blocks when negative (tokens per block
 * differ by layout); the budget counts blocks. */
#define CT_PAGE 4096u
struct kvmm_cache *ct_make(struct kvmm_backend *be, int i, uint32_t max_seqs, int64_t max_tokens,
			   uint64_t budget_blocks);
/* Write rows [t0, t0 + n) of every layer, K and V for identity id. */
int ct_write(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n);
/* Check them with kvmm_seq_read (0, or -1 and a message in why). */
int ct_check_read(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n,
		  char *why, size_t len);
/* Check them by reading host memory at the view formula's addresses. */
int ct_check_view(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n,
		  char *why, size_t len);
/* ck_assert both checks above. */
void ct_check(struct kvmm_cache *c, uint32_t seq, uint32_t id, uint32_t t0, uint32_t n);
/* ck_assert that kvmm_cache_verify passes, printing its reason. */
void ct_verify(struct kvmm_cache *c);
/* Snapshot of the stats (asserts success). */
struct kvmm_cache_stats ct_stats(const struct kvmm_cache *c);
/* Step one sequence to len (returns kvmm_step's result). */
int ct_step1(struct kvmm_cache *c, uint32_t seq, uint32_t len);

#endif /* KVMM_CACHETEST_H */
