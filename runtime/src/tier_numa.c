// SPDX-License-Identifier: MIT
/* tier_numa.c - NUMA placement of the host tier, from sysfs. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier_numa.h"

/* Read a small sysfs file into buf (NUL-terminated, newline stripped). */
static int read_small(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = 0;
	return 0;
}

/* Parse up to max hex digits (at least one) ending at stop. */
static const char *hex_field(const char *s, unsigned int max, char stop, unsigned int *v)
{
	unsigned int n = 0;

	*v = 0;
	for (; isxdigit((unsigned char)*s) && n < max; s++, n++)
		*v = *v << 4 |
		     (unsigned int)(isdigit((unsigned char)*s) ? *s - '0'
							       : (tolower(*s) - 'a' + 10));
	return n && *s == stop ? s + 1 : NULL;
}

int tier_numa_node_of_pci(const char *sysfs, const char *busid)
{
	unsigned int dom, bus, dev, fn;
	char path[256], buf[32], *end;
	const char *s = busid;
	long node;
	int ret;

	/* [domain:]bus:device.function, hex; the domain may have 8 digits */
	if (!s || !(s = hex_field(s, 8, ':', &dom)) || !(s = hex_field(s, 2, ':', &bus)) ||
	    !(s = hex_field(s, 2, '.', &dev)) || !hex_field(s, 1, 0, &fn) || dom > 0xffff ||
	    dev > 0x1f || fn > 7)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%04x:%02x:%02x.%x/numa_node",
		 sysfs && *sysfs ? sysfs : "/sys", dom, bus, dev, fn);
	ret = read_small(path, buf, sizeof(buf));
	if (ret)
		return ret;
	errno = 0;
	node = strtol(buf, &end, 10);
	if (errno || end == buf || *end || node < -1 || node > 4095)
		return -EINVAL;
	return (int)node;
}

int tier_numa_parse_cpulist(const char *s, cpu_set_t *set)
{
	int count = 0;

	CPU_ZERO(set);
	if (!*s)
		return 0;
	for (;;) {
		char *end;
		long a = strtol(s, &end, 10), b;

		if (end == s || a < 0 || a >= CPU_SETSIZE)
			return -EINVAL;
		b = a;
		s = end;
		if (*s == '-') {
			b = strtol(s + 1, &end, 10);
			if (end == s + 1 || b < a || b >= CPU_SETSIZE)
				return -EINVAL;
			s = end;
		}
		for (long c = a; c <= b; c++) {
			if (!CPU_ISSET(c, set))
				count++;
			CPU_SET(c, set);
		}
		if (!*s)
			return count;
		if (*s != ',')
			return -EINVAL;
		s++;
	}
}

int tier_numa_node_cpus(const char *sysfs, int node, cpu_set_t *set)
{
	char path[256], buf[4096];
	int ret;

	if (node < 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/devices/system/node/node%d/cpulist",
		 sysfs && *sysfs ? sysfs : "/sys", node);
	ret = read_small(path, buf, sizeof(buf));
	if (ret)
		return ret;
	return tier_numa_parse_cpulist(buf, set);
}

int tier_numa_bind_memory(void *addr, size_t len, int node)
{
	unsigned long mask[16] = {0};

	if (node < 0 || node >= (int)(sizeof(mask) * 8))
		return -EINVAL;
	mask[node / (8 * sizeof(long))] |= 1ul << (node % (8 * sizeof(long)));
	if (mbind(addr, len, MPOL_BIND, mask, sizeof(mask) * 8, 0))
		return -errno;
	return 0;
}
