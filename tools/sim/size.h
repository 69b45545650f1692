/* SPDX-License-Identifier: MIT */
/*
 * size.h - byte sizes on kvmm-sim's command line: "64G", "1.5TiB",
 * "512MB", "unlimited".
 */
#ifndef KVMM_SIM_SIZE_H
#define KVMM_SIM_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* The value "unlimited" parses to. */
#define SIM_UNLIMITED UINT64_MAX

/*
 * Parse a size: a decimal number (fractions allowed) with an optional unit.
 * K M G T P and KiB MiB GiB TiB PiB are powers of 1024, KB MB GB TB PB
 * powers of 1000, B or nothing is bytes; units are case-insensitive.
 * "unlimited" gives SIM_UNLIMITED.  -EINVAL on anything else, -ERANGE when
 * the value does not fit 64 bits.
 */
int sim_parse_size(const char *s, uint64_t *out);

/* "1.50 GiB", "512 B", "unlimited" into buf; returns buf. */
const char *sim_format_size(uint64_t v, char *buf, size_t len);

#endif /* KVMM_SIM_SIZE_H */
