/* SPDX-License-Identifier: MIT */
/*
 * tokens.h - deterministic token ids for traces that do not carry them.
 *
 * A Mooncake hash id stands for a block of 512 tokens: every id maps to its
 * own run of token ids, the same run wherever the id appears, so two
 * requests that share hash ids share tokens and the prefix cache sees the
 * sharing the trace describes.  Output tokens and generated prompts use the
 * same function with other salts.  Ids are in [0, vocab).
 */
#ifndef KVMM_SIM_TOKENS_H
#define KVMM_SIM_TOKENS_H

#include <stdint.h>

/* Salts keep the families of runs apart. */
#define SIM_SALT_HASH_ID 0x6d6f6f6e63616b65ull /* Mooncake hash ids */
#define SIM_SALT_OUTPUT	 0x6f75747075747321ull /* generated output */
#define SIM_SALT_SYSTEM	 0x73797374656d2121ull /* generator: system prompts */
#define SIM_SALT_USER	 0x7573657221212121ull /* generator: user messages */

/* Default vocabulary (Llama 3). */
#define SIM_VOCAB 128256u

/* Token i of run key in the family salt. */
uint32_t sim_token(uint64_t salt, uint64_t key, uint64_t i, uint32_t vocab);
/* out[0..n) = tokens off..off+n of run key. */
void sim_tokens_run(uint64_t salt, uint64_t key, uint64_t off, uint32_t n, uint32_t vocab,
		    uint32_t *out);

/* 64-bit mixer (splitmix64's finalizer): also the hash of the generator. */
uint64_t sim_mix64(uint64_t x);

#endif /* KVMM_SIM_TOKENS_H */
