// SPDX-License-Identifier: MIT
/*
 * Group "backend": the raw cost of each VMM call on the default backend
 * (create, map, set_access, unmap, destroy per page).  These are the
 * baselines the runtime's mapper and the prefix cache's attach are compared
 * against.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bench.h"

static int run_backend(struct bench_ctx *ctx)
{
	struct kvmm_backend *be;
	struct kvmm_backend_config cfg = {.type = KVMM_BACKEND_AUTO};
	const char *env = getenv("KVMM_BACKEND");
	int n = ctx->quick ? 64 : 512, ret;
	uint64_t va, ps, t[6];
	kvmm_phys_t *pages;
	char name[64];

	if (env && !strcmp(env, "host"))
		cfg.type = KVMM_BACKEND_HOST;
	ret = kvmm_backend_open(&cfg, &be);
	if (ret)
		return ret;
	ps = kvmm_backend_page_size(be);
	pages = calloc((size_t)n, sizeof(*pages));
	if (!pages) {
		kvmm_backend_close(be);
		return -ENOMEM;
	}
	ret = kvmm_be_reserve(be, (uint64_t)n * ps, 0, &va);
	if (ret)
		goto out;
	t[0] = bench_now_ns();
	for (int i = 0; i < n && !ret; i++)
		ret = kvmm_be_create(be, &pages[i]);
	t[1] = bench_now_ns();
	for (int i = 0; i < n && !ret; i++)
		ret = kvmm_be_map(be, va + (uint64_t)i * ps, pages[i]);
	t[2] = bench_now_ns();
	for (int i = 0; i < n && !ret; i++)
		ret = kvmm_be_set_access(be, va + (uint64_t)i * ps, ps, KVMM_PROT_RW);
	t[3] = bench_now_ns();
	for (int i = 0; i < n && !ret; i++)
		ret = kvmm_be_unmap(be, va + (uint64_t)i * ps, ps);
	t[4] = bench_now_ns();
	for (int i = 0; i < n && !ret; i++)
		ret = kvmm_be_destroy(be, pages[i]);
	t[5] = bench_now_ns();
	if (!ret)
		ret = kvmm_be_release_va(be, va, (uint64_t)n * ps);
	if (ret)
		goto out;

	snprintf(name, sizeof(name), "backend-%s", kvmm_backend_name(be));
	bench_header("backend: per-page VMM call cost");
	bench_result(ctx, name, "create_us", (t[1] - t[0]) / 1e3 / n, "us", NULL, 0);
	bench_result(ctx, name, "map_us", (t[2] - t[1]) / 1e3 / n, "us", NULL, 0);
	bench_result(ctx, name, "set_access_us", (t[3] - t[2]) / 1e3 / n, "us", NULL, 0);
	bench_result(ctx, name, "unmap_us", (t[4] - t[3]) / 1e3 / n, "us", NULL, 0);
	bench_result(ctx, name, "destroy_us", (t[5] - t[4]) / 1e3 / n, "us", NULL, 0);
out:
	free(pages);
	kvmm_backend_close(be);
	return ret;
}

BENCH_GROUP(backend, "raw VMM call costs of the default backend", run_backend);
