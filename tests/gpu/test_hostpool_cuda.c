// SPDX-License-Identifier: MIT
/*
 * test_hostpool_cuda.c - a kvmm host pool registered with the GPU
 * (cuMemHostRegister) and used for copies both ways, placed on the GPU's
 * NUMA node.  With kvmm.ko loaded the pool is the module's; where the
 * kernel cannot take the module (the GPU machine) it is the fallback
 * (ordinary memory behind the same API): the runtime's host tier runs the
 * same code either way.  Skips (exit 77) without a CUDA device.
 */
#include <stdint.h>
#include <string.h>

#ifdef KVMM_HAVE_CUDA
#include "cuda_driver.h"
#endif
#include "gputest.h"
#include "kmod_client.h"

#define MIB (1ull << 20)

int main(void)
{
	struct kvmm_backend *be = gt_open_cuda_or_skip();
#ifdef KVMM_HAVE_CUDA
	struct kvmm_hostpool_config cfg = {.name = "gpu-test",
					   .bytes = 64 * MIB,
					   .flags = KVMM_HOSTPOOL_CFG_POPULATE |
						    KVMM_HOSTPOOL_CFG_FALLBACK |
						    KVMM_HOSTPOOL_CFG_GPU_NODE};
	const struct kvmm_cuda_driver *drv;
	struct kvmm_hostpool_stat st;
	struct kvmm_hostpool *p = NULL;
	struct kvmm_kmod_info info;
	struct gt t = {0};
	char bus[32] = "";
	unsigned char *base;
	CUdeviceptr d = 0;
	CUcontext ctx;
	CUdevice dev;
	int probe, ret;

	drv = kvmm_cuda_backend_driver(be, &ctx, &dev);
	GT_CHECK(&t, drv && kvmm_cuda_ctx_enter(drv, ctx) == 0, "cuda driver and context");
	if (!drv)
		return gt_done(&t);
	probe = kvmm_probe(NULL, &info);
	printf("# kvmm.ko: %s\n", probe ? kmod_strerror(0, probe) : "loaded");
	GT_CHECK(&t, probe == 0 || probe == -ENODEV, "kvmm_probe: loaded or absent (%d)", probe);
	drv->cuDeviceGetPCIBusId(bus, sizeof(bus), dev);
	ret = kmod_parse_pci(bus, &cfg.pci_dev);
	GT_CHECK(&t, ret == 0, "the GPU's PCI address %s", bus);
	ret = kvmm_hostpool_create(&cfg, &p);
	GT_CHECK(&t, ret == 0, "host pool of 64 MiB on the GPU's node (%s)", kvmm_strerror(ret));
	if (ret)
		return gt_done(&t);
	kvmm_hostpool_stat(p, &st);
	printf("# pool: %s, node %d\n", st.fallback ? "fallback memory" : "kvmm.ko", st.node);
	GT_CHECK(&t, st.fallback == (probe != 0), "module pool exactly when the module is there");
	base = kvmm_hostpool_base(p);
	ret = drv->cuMemHostRegister(base, 64 * MIB, 0);
	GT_CHECK(&t, ret == 0, "cuMemHostRegister on the pool mapping (%d)", ret);
	for (size_t i = 0; i < 32 * MIB; i++)
		base[i] = (unsigned char)(i * 31 + 5);
	GT_CHECK(&t, drv->cuMemAlloc(&d, 32 * MIB) == 0, "device buffer");
	GT_CHECK(&t, drv->cuMemcpyHtoD(d, base, 32 * MIB) == 0, "copy pool -> GPU");
	GT_CHECK(&t, drv->cuMemcpyDtoH(base + 32 * MIB, d, 32 * MIB) == 0, "copy GPU -> pool");
	GT_CHECK(&t, !memcmp(base, base + 32 * MIB, 32 * MIB), "the data made the round trip");
	GT_CHECK(&t, drv->cuMemHostUnregister(base) == 0, "cuMemHostUnregister");
	drv->cuMemFree(d);
	kvmm_hostpool_close(p);
	kvmm_hostpool_destroy("gpu-test");
	kvmm_backend_close(be);
	return gt_done(&t);
#else
	(void)be;
	printf("SKIP: built without CUDA headers\n");
	return 77;
#endif
}
