/* SPDX-License-Identifier: MIT */
/*
 * err.h - error messages of kvmm-sim: every failure carries one line that
 * names what was wrong (the flag, the trace line, the preset) next to the
 * negative errno it returns.
 */
#ifndef KVMM_SIM_ERR_H
#define KVMM_SIM_ERR_H

struct sim_err {
	char msg[512];
};

/* Set the message (printf-style) unless one is set already, so the first,
 * most precise message wins; returns ret. */
int sim_errf(struct sim_err *e, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* KVMM_SIM_ERR_H */
