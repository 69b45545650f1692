/* SPDX-License-Identifier: MIT */
/*
 * tier_numa.h - where the host tier's memory should live: the NUMA node of
 * the GPU's PCI device, the CPUs of a node, binding memory and threads.
 * Read from sysfs (a root the tests can fake), so no call here prints or
 * needs privileges.
 */
#ifndef KVMM_TIER_NUMA_H
#define KVMM_TIER_NUMA_H

#include <sched.h>
#include <stddef.h>

/*
 * NUMA node of the PCI device busid ("0000:3b:00.0", any case, as the CUDA
 * driver's cuDeviceGetPCIBusId gives it; an 8-digit domain is accepted) by
 * <sysfs>/bus/pci/devices/<id>/numa_node.  Returns the node, -1 when the
 * platform does not say (single node machines), -EINVAL for a malformed
 * busid, -ENOENT when the device is not there.
 */
int tier_numa_node_of_pci(const char *sysfs, const char *busid);
/* The CPUs of node (<sysfs>/devices/system/node/node<N>/cpulist).
 * Returns the count, -ENOENT without such a node. */
int tier_numa_node_cpus(const char *sysfs, int node, cpu_set_t *set);
/* Parse a sysfs cpulist ("0-3,8,10-11").  Returns the count or -EINVAL. */
int tier_numa_parse_cpulist(const char *s, cpu_set_t *set);
/* mbind(MPOL_BIND) [addr, addr+len) to node.  0 or -errno (-EPERM in
 * containers without CAP_SYS_NICE under some seccomp profiles). */
int tier_numa_bind_memory(void *addr, size_t len, int node);

#endif /* KVMM_TIER_NUMA_H */
