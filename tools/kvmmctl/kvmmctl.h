/* SPDX-License-Identifier: MIT */
/* kvmmctl.h - what the files of kvmmctl share. */
#ifndef KVMMCTL_H
#define KVMMCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kmod_client.h"

enum ctl_format { FMT_TABLE, FMT_JSON, FMT_PROM };

struct ctl {
	enum ctl_format fmt;
	const char *device; /* NULL: $KVMM_DEVICE or /dev/kvmm */
	int dev;	    /* open device, or -1 */
	FILE *out;
};

/* Exit statuses */
#define CTL_OK	    0
#define CTL_REFUSED 1 /* the module (or the system) said no */
#define CTL_USAGE   2 /* bad command line */

/* main.c: messages.  Every error names what it is about and the errno. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ctl_refused(unsigned long cmd, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Open the device (once): 0 or an exit status after printing why. */
int ctl_open(struct ctl *c);

/* fmt.c: sizes, JSON and Prometheus text */
int ctl_parse_size(const char *s, uint64_t *out);
/* "1.5 GiB": buf must hold 16 bytes */
const char *ctl_human(uint64_t bytes, char *buf);
void json_str(FILE *f, const char *s);
void prom_help(FILE *f, const char *name, const char *type, const char *help);

/* show.c: read-only commands */
int cmd_status(struct ctl *c, int argc, char **argv);
int cmd_pools(struct ctl *c, int argc, char **argv);
int cmd_residency(struct ctl *c, int argc, char **argv);
void show_pool(struct ctl *c, const struct kvmm_pool_desc *d);

/* admin.c: commands that change something (or check access) */
int cmd_pool(struct ctl *c, int argc, char **argv);
int cmd_limits(struct ctl *c, int argc, char **argv);

#endif /* KVMMCTL_H */
