// SPDX-License-Identifier: MIT
/* size.c - byte sizes with units (see size.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "size.h"

static const struct {
	const char *name;
	double mult;
} units[] = {
	{"", 1},
	{"b", 1},
	{"k", 1024.0},
	{"kib", 1024.0},
	{"kb", 1e3},
	{"m", 1048576.0},
	{"mib", 1048576.0},
	{"mb", 1e6},
	{"g", 1073741824.0},
	{"gib", 1073741824.0},
	{"gb", 1e9},
	{"t", 1099511627776.0},
	{"tib", 1099511627776.0},
	{"tb", 1e12},
	{"p", 1125899906842624.0},
	{"pib", 1125899906842624.0},
	{"pb", 1e15},
};

int sim_parse_size(const char *s, uint64_t *out)
{
	const char *p;
	double v = 0, frac = 0.1, mult = -1;
	int digits = 0;

	if (!s || !out)
		return -EINVAL;
	if (!strcasecmp(s, "unlimited")) {
		*out = SIM_UNLIMITED;
		return 0;
	}
	/* Parsed by hand: strtod would accept "inf", "0x10" and exponents. */
	for (p = s; isdigit((unsigned char)*p); p++, digits++)
		v = v * 10 + (*p - '0');
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, digits++, frac /= 10)
			v += (*p - '0') * frac;
	}
	if (!digits)
		return -EINVAL;
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcasecmp(p, units[i].name)) {
			mult = units[i].mult;
			break;
		}
	}
	if (mult < 0)
		return -EINVAL;
	v *= mult;
	/* 2^64 is the first value that does not fit. */
	if (!(v < 18446744073709551616.0))
		return -ERANGE;
	*out = (uint64_t)llround(v);
	if (*out == SIM_UNLIMITED) /* reserved for "unlimited" */
		return -ERANGE;
	return 0;
}

const char *sim_format_size(uint64_t v, char *buf, size_t len)
{
	static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double d = (double)v;
	int u = 0;

	if (v == SIM_UNLIMITED) {
		snprintf(buf, len, "unlimited");
		return buf;
	}
	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	else
		snprintf(buf, len, "%.2f %s", d, names[u]);
	return buf;
}
