// SPDX-License-Identifier: MIT
/* admin.c - kvmmctl pool create|open|destroy and limits get|set. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvmmctl.h"

static int pool_create(struct ctl *c, int argc, char **argv)
{
	uint32_t flags = KVMM_POOL_PERSISTENT | KVMM_POOL_CLOEXEC, mode = 0600, pci = 0;
	const char *name, *size_arg;
	unsigned int shift = 21;
	struct kvmm_pool_desc d;
	uint64_t bytes;
	int node = KVMM_NODE_ANY, fd, r;
	bool have_node = false;

	if (argc < 4)
		return ctl_usage_error("pool create: needs NAME and SIZE");
	name = argv[2];
	size_arg = argv[3];
	if (ctl_parse_size(size_arg, &bytes) || !bytes)
		return ctl_usage_error("pool create: SIZE '%s' is not a size (bytes, with an "
				       "optional K/M/G/T suffix)",
				       size_arg);
	for (int i = 4; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;

		if (!strcmp(opt, "--populate")) {
			flags |= KVMM_POOL_POPULATE;
			continue;
		}
		if (!val)
			return ctl_usage_error("pool create: %s needs a value", opt);
		i++;
		if (!strcmp(opt, "--node")) {
			long v = strtol(val, &end, 10);

			if (*end || !*val || v < 0 || v > 65535)
				return ctl_usage_error(
					"pool create: --node '%s' is not a NUMA node number", val);
			node = (int)v;
			have_node = true;
		} else if (!strcmp(opt, "--gpu-node")) {
			if (kmod_parse_pci(val, &pci))
				return ctl_usage_error("pool create: --gpu-node '%s' is not a PCI "
						       "address (like 0000:3b:00.0)",
						       val);
			flags |= KVMM_POOL_NODE_OF_PCI;
		} else if (!strcmp(opt, "--page-size")) {
			uint64_t ps;

			if (ctl_parse_size(val, &ps) || (ps != 4096 && ps != 2ull << 20))
				return ctl_usage_error(
					"pool create: --page-size '%s' is not 4k or 2m", val);
			shift = ps == 4096 ? 12 : 21;
		} else if (!strcmp(opt, "--mode")) {
			unsigned long v = strtoul(val, &end, 8);

			if (*end || !*val || v > 0777)
				return ctl_usage_error(
					"pool create: --mode '%s' is not octal 0 to 0777", val);
			mode = (uint32_t)v;
		} else {
			return ctl_usage_error("pool create: unknown option '%s'", opt);
		}
	}
	if (have_node && (flags & KVMM_POOL_NODE_OF_PCI))
		return ctl_usage_error("pool create: --node and --gpu-node exclude each other");
	if (bytes % (1ull << shift))
		return ctl_usage_error(
			"pool create: SIZE '%s' is not a multiple of the %s page size", size_arg,
			shift == 21 ? "2 MiB" : "4 KiB");
	r = ctl_open(c);
	if (r)
		return r;
	fd = kmod_pool_create(c->dev, name, bytes, node, shift, flags, mode, pci);
	if (fd < 0)
		return ctl_refused(KVMM_IOC_POOL_CREATE, fd, "pool create '%s'", name);
	r = kmod_pool_info(fd, &d);
	close(fd);
	if (r)
		return ctl_refused(KVMM_IOC_POOL_INFO, r, "pool '%s'", name);
	show_pool(c, &d);
	return CTL_OK;
}

static int pool_open(struct ctl *c, int argc, char **argv)
{
	struct kvmm_pool_desc d;
	uint32_t flags = KVMM_OPEN_CLOEXEC;
	int fd, r;

	if (argc < 3)
		return ctl_usage_error("pool open: needs NAME");
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--read-only"))
			flags |= KVMM_OPEN_RDONLY;
		else
			return ctl_usage_error("pool open: unknown option '%s'", argv[i]);
	}
	r = ctl_open(c);
	if (r)
		return r;
	fd = kmod_pool_open(c->dev, argv[2], flags);
	if (fd < 0)
		return ctl_refused(KVMM_IOC_POOL_OPEN, fd, "pool open '%s'", argv[2]);
	r = kmod_pool_info(fd, &d);
	close(fd);
	if (r)
		return ctl_refused(KVMM_IOC_POOL_INFO, r, "pool '%s'", argv[2]);
	show_pool(c, &d);
	return CTL_OK;
}

static int pool_destroy(struct ctl *c, int argc, char **argv)
{
	int r;

	if (argc != 3)
		return ctl_usage_error(argc < 3 ? "pool destroy: needs NAME"
						: "pool destroy: takes only NAME");
	r = ctl_open(c);
	if (r)
		return r;
	r = kmod_pool_destroy(c->dev, argv[2]);
	if (r)
		return ctl_refused(KVMM_IOC_POOL_DESTROY, r, "pool destroy '%s'", argv[2]);
	if (c->fmt == FMT_JSON) {
		fputs("{\"destroyed\":", c->out);
		json_str(c->out, argv[2]);
		fputs("}\n", c->out);
	} else {
		fprintf(c->out, "destroyed %s\n", argv[2]);
	}
	return CTL_OK;
}

int cmd_pool(struct ctl *c, int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage_error("pool: needs create, open or destroy");
	if (!strcmp(argv[1], "create"))
		return pool_create(c, argc, argv);
	if (!strcmp(argv[1], "open"))
		return pool_open(c, argc, argv);
	if (!strcmp(argv[1], "destroy"))
		return pool_destroy(c, argc, argv);
	return ctl_usage_error("pool: unknown subcommand '%s' (create, open or destroy)", argv[1]);
}

static void show_limits(struct ctl *c, const struct kvmm_limits *l)
{
	char a[16], b[16];

	if (c->fmt == FMT_JSON) {
		fprintf(c->out,
			"{\"global_bytes\":%llu,\"per_uid_bytes\":%llu,\"global_used\":%llu,"
			"\"uid_used\":%llu}\n",
			(unsigned long long)l->global_bytes, (unsigned long long)l->per_uid_bytes,
			(unsigned long long)l->global_used, (unsigned long long)l->uid_used);
		return;
	}
	fprintf(c->out, "global   %-12s used %s\n",
		l->global_bytes ? ctl_human(l->global_bytes, a) : "none",
		ctl_human(l->global_used, b));
	fprintf(c->out, "per uid  %-12s yours %s\n",
		l->per_uid_bytes ? ctl_human(l->per_uid_bytes, a) : "none",
		ctl_human(l->uid_used, b));
}

int cmd_limits(struct ctl *c, int argc, char **argv)
{
	uint64_t global = 0, per_uid = 0;
	struct kvmm_limits l;
	uint32_t flags = 0;
	int r;

	if (argc < 2 || (strcmp(argv[1], "get") && strcmp(argv[1], "set")))
		return ctl_usage_error("limits: needs get or set");
	if (!strcmp(argv[1], "get") && argc > 2)
		return ctl_usage_error("limits get: unexpected argument '%s'", argv[2]);
	for (int i = 2; i < argc; i++) {
		uint64_t *dst;

		if (!strcmp(argv[i], "--global")) {
			dst = &global;
			flags |= KVMM_LIMITS_SET_GLOBAL;
		} else if (!strcmp(argv[i], "--per-uid")) {
			dst = &per_uid;
			flags |= KVMM_LIMITS_SET_PER_UID;
		} else {
			return ctl_usage_error("limits set: unknown option '%s'", argv[i]);
		}
		if (i + 1 >= argc || ctl_parse_size(argv[i + 1], dst))
			return ctl_usage_error(
				"limits set: %s BYTES '%s' is not a size (0: no limit)", argv[i],
				i + 1 < argc ? argv[i + 1] : "");
		i++;
	}
	if (!strcmp(argv[1], "set") && !flags)
		return ctl_usage_error("limits set: needs --global BYTES and/or --per-uid BYTES");
	r = ctl_open(c);
	if (r)
		return r;
	r = kmod_limits(c->dev, flags, global, per_uid, &l);
	if (r)
		return ctl_refused(KVMM_IOC_LIMITS, r, "limits %s", argv[1]);
	show_limits(c, &l);
	return CTL_OK;
}
