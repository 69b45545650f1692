// SPDX-License-Identifier: MIT
/*
 * tier_hashpool.c - a few threads that hash the chunks of a batch of
 * payloads (tier_hash.h's chunked payload hash) together with the caller.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "tier_hash.h"
#include "tier_hashpool.h"

struct batch {
	const void *const *bufs;
	const uint64_t *lens;
	uint32_t n;
	unsigned int shift;
	uint64_t *first; /* first chunk index of each payload, n + 1 entries */
	uint64_t *chunk; /* every chunk's hash */
	_Atomic uint64_t next;
	_Atomic uint64_t done;
};

struct tier_hashpool {
	pthread_mutex_t turn; /* one batch at a time */
	pthread_mutex_t lock;
	pthread_cond_t work, idle;
	struct batch *b;
	uint64_t gen;
	uint32_t busy; /* helpers inside the current batch */
	bool stop;
	uint32_t nthreads;
	pthread_t *threads;
};

/* Hash chunks of b until none is left. */
static void hash_chunks(struct batch *b)
{
	uint64_t total = b->first[b->n], c;

	while ((c = atomic_fetch_add(&b->next, 1)) < total) {
		uint32_t lo = 0, hi = b->n;

		/* the payload holding chunk c */
		while (hi - lo > 1) {
			uint32_t mid = (lo + hi) / 2;

			if (b->first[mid] <= c)
				lo = mid;
			else
				hi = mid;
		}
		b->chunk[c] = tier_hash_chunk(b->bufs[lo], b->lens[lo], b->shift, c - b->first[lo]);
		atomic_fetch_add(&b->done, 1);
	}
}

static void *helper(void *arg)
{
	struct tier_hashpool *hp = arg;
	uint64_t seen = 0;

	pthread_mutex_lock(&hp->lock);
	for (;;) {
		struct batch *b;

		while (!hp->stop && (hp->gen == seen || !hp->b))
			pthread_cond_wait(&hp->work, &hp->lock);
		if (hp->stop)
			break;
		seen = hp->gen;
		b = hp->b;
		hp->busy++;
		pthread_mutex_unlock(&hp->lock);
		hash_chunks(b);
		pthread_mutex_lock(&hp->lock);
		if (!--hp->busy)
			pthread_cond_broadcast(&hp->idle);
	}
	pthread_mutex_unlock(&hp->lock);
	return NULL;
}

int tier_hashpool_create(uint32_t nthreads, struct tier_hashpool **out)
{
	struct tier_hashpool *hp = calloc(1, sizeof(*hp));

	if (!hp)
		return -ENOMEM;
	pthread_mutex_init(&hp->turn, NULL);
	pthread_mutex_init(&hp->lock, NULL);
	pthread_cond_init(&hp->work, NULL);
	pthread_cond_init(&hp->idle, NULL);
	hp->threads = calloc(nthreads ? nthreads : 1, sizeof(*hp->threads));
	if (!hp->threads) {
		tier_hashpool_destroy(hp);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < nthreads; i++) {
		if (pthread_create(&hp->threads[i], NULL, helper, hp))
			break; /* fewer helpers: only slower */
		hp->nthreads++;
	}
	*out = hp;
	return 0;
}

void tier_hashpool_destroy(struct tier_hashpool *hp)
{
	if (!hp)
		return;
	pthread_mutex_lock(&hp->lock);
	hp->stop = true;
	pthread_cond_broadcast(&hp->work);
	pthread_mutex_unlock(&hp->lock);
	for (uint32_t i = 0; i < hp->nthreads; i++)
		pthread_join(hp->threads[i], NULL);
	pthread_cond_destroy(&hp->work);
	pthread_cond_destroy(&hp->idle);
	pthread_mutex_destroy(&hp->lock);
	pthread_mutex_destroy(&hp->turn);
	free(hp->threads);
	free(hp);
}

void tier_hashpool_payloads(struct tier_hashpool *hp, const void *const *bufs, const uint64_t *lens,
			    uint32_t n, unsigned int shift, uint64_t *out)
{
	struct batch b = {.bufs = bufs, .lens = lens, .n = n, .shift = shift};
	uint64_t stack_first[33], stack_chunk[256];

	if (!n)
		return;
	b.first = n < 33 ? stack_first : malloc((n + 1) * sizeof(*b.first));
	if (b.first) {
		b.first[0] = 0;
		for (uint32_t i = 0; i < n; i++)
			b.first[i + 1] = b.first[i] + tier_hash_nchunks(lens[i], shift);
		b.chunk = b.first[n] <= 256 ? stack_chunk : malloc(b.first[n] * sizeof(*b.chunk));
	}
	if (!b.first || !b.chunk || !hp || !hp->nthreads || b.first[n] < 2) {
		/* no memory or no helpers: hash here */
		for (uint32_t i = 0; i < n; i++)
			out[i] = tier_hash_payload(bufs[i], lens[i], shift);
		goto out;
	}
	pthread_mutex_lock(&hp->turn);
	pthread_mutex_lock(&hp->lock);
	hp->b = &b;
	hp->gen++;
	pthread_cond_broadcast(&hp->work);
	pthread_mutex_unlock(&hp->lock);
	hash_chunks(&b);
	/* the batch lives on this stack: wait until no helper is in it */
	pthread_mutex_lock(&hp->lock);
	hp->b = NULL;
	while (hp->busy)
		pthread_cond_wait(&hp->idle, &hp->lock);
	pthread_mutex_unlock(&hp->lock);
	pthread_mutex_unlock(&hp->turn);
	for (uint32_t i = 0; i < n; i++)
		out[i] = tier_hash_combine(b.chunk + b.first[i], b.first[i + 1] - b.first[i]);
out:
	if (b.first != stack_first)
		free(b.first);
	if (b.chunk != stack_chunk)
		free(b.chunk);
}
