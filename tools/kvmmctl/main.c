// SPDX-License-Identifier: MIT
/*
 * kvmmctl: control and inspect kvmm.ko through /dev/kvmm.
 * docs/kmod.md has the same help text (a VM test keeps them equal).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvmm.h"
#include "kvmmctl.h"

static const char help[] =
	"usage: kvmmctl [--json | --prometheus] [--device PATH] COMMAND [ARGS]\n"
	"\n"
	"Control and inspect kvmm.ko, the kvmm kernel module, through /dev/kvmm.\n"
	"\n"
	"Commands:\n"
	"  status                module version and features, limits, totals,\n"
	"                        reclaim counters (with --prometheus: every metric)\n"
	"  pools                 every pool, one per line\n"
	"  pool create NAME SIZE [--node N | --gpu-node PCI] [--page-size 4k|2m]\n"
	"                        [--mode OCTAL] [--populate]\n"
	"                        create a persistent pool (it stays after kvmmctl\n"
	"                        exits, until 'pool destroy'); PCI is the address\n"
	"                        of the device whose NUMA node the pages go to,\n"
	"                        like 0000:3b:00.0; the page size defaults to 2m,\n"
	"                        the mode to 0600\n"
	"  pool open NAME [--read-only]\n"
	"                        open NAME as you would (checks permissions) and\n"
	"                        show it\n"
	"  pool destroy NAME     remove a pool's name; its memory goes when its\n"
	"                        last user unmaps it\n"
	"  limits get            the host-wide and per-uid reservation limits\n"
	"  limits set [--global BYTES] [--per-uid BYTES]\n"
	"                        change them (root; 0 means no limit)\n"
	"  residency [NAME] [--watch [SECONDS]] [--count N]\n"
	"                        pages per tier (gpu, host, disk, inflight) as the\n"
	"                        pools' owners publish them; --watch repeats every\n"
	"                        SECONDS (default 1) until interrupted or N times\n"
	"\n"
	"Options:\n"
	"  --json                JSON instead of tables (residency --watch: one\n"
	"                        object per line)\n"
	"  --prometheus          Prometheus text format (status, pools, residency)\n"
	"  --device PATH         the device (default: $KVMM_DEVICE or /dev/kvmm)\n"
	"  -h, --help            this text\n"
	"  --version             kvmmctl's version and the ABI version it speaks\n"
	"\n"
	"SIZE and BYTES take a K, M, G or T suffix (powers of 1024).\n"
	"Exit status: 0 done, 1 refused (the message says why), 2 bad usage.\n";

static const char *ctl_what = "kvmmctl";

int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", ctl_what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(kvmmctl --help shows the usage)\n");
	return CTL_USAGE;
}

int ctl_refused(unsigned long cmd, int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", ctl_what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s (%s)\n", kmod_strerror(cmd, err), kmod_errname(err));
	return CTL_REFUSED;
}

int ctl_open(struct ctl *c)
{
	struct kvmm_info info;
	int r;

	if (c->dev >= 0)
		return 0;
	c->dev = kmod_dev_open(c->device);
	if (c->dev < 0)
		return ctl_refused(0, c->dev, "%s", kmod_dev_path(c->device));
	r = kmod_get_info(c->dev, &info);
	if (r)
		return ctl_refused(KVMM_IOC_GET_INFO, r, "%s", kmod_dev_path(c->device));
	return 0;
}

int main(int argc, char **argv)
{
	struct ctl c = {.fmt = FMT_TABLE, .dev = -1, .out = stdout};
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	int n = 0, r;

	if (!args)
		return CTL_REFUSED;
	/* global options anywhere; the rest in order */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			c.fmt = FMT_JSON;
		} else if (!strcmp(argv[i], "--prometheus")) {
			c.fmt = FMT_PROM;
		} else if (!strcmp(argv[i], "--device")) {
			if (i + 1 >= argc) {
				free(args);
				return ctl_usage_error("--device needs a PATH");
			}
			c.device = argv[++i];
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(help, stdout);
			free(args);
			return CTL_OK;
		} else if (!strcmp(argv[i], "--version")) {
			printf("kvmmctl %d.%d.%d (ABI version %d)\n", KVMM_VERSION_MAJOR,
			       KVMM_VERSION_MINOR, KVMM_VERSION_PATCH, KVMM_API_VERSION);
			free(args);
			return CTL_OK;
		} else {
			args[n++] = argv[i];
		}
	}
	if (!n) {
		free(args);
		return ctl_usage_error("needs a COMMAND");
	}
	if (c.fmt == FMT_PROM && strcmp(args[0], "status") && strcmp(args[0], "pools") &&
	    strcmp(args[0], "residency")) {
		free(args);
		return ctl_usage_error("--prometheus goes with status, pools or residency");
	}
	if (!strcmp(args[0], "status"))
		r = cmd_status(&c, n, args);
	else if (!strcmp(args[0], "pools"))
		r = cmd_pools(&c, n, args);
	else if (!strcmp(args[0], "pool"))
		r = cmd_pool(&c, n, args);
	else if (!strcmp(args[0], "limits"))
		r = cmd_limits(&c, n, args);
	else if (!strcmp(args[0], "residency"))
		r = cmd_residency(&c, n, args);
	else
		r = ctl_usage_error("unknown command '%s'", args[0]);
	if (c.dev >= 0)
		close(c.dev);
	free(args);
	if (fflush(stdout) && !r)
		r = CTL_REFUSED;
	return r;
}
