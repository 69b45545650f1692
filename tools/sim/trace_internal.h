/* SPDX-License-Identifier: MIT */
/* trace_internal.h - shared between trace.c and trace_mooncake.c. */
#ifndef KVMM_SIM_TRACE_INTERNAL_H
#define KVMM_SIM_TRACE_INTERNAL_H

#include "json.h"
#include "trace.h"

/* Session index for a name (created on first use). */
int sim_trace_session(struct sim_trace *t, const char *name, uint32_t *out);
/* Read a JSON array of token ids into a fresh buffer. */
int sim_trace_read_tokens(struct sim_json *j, uint32_t **out, uint32_t *n);

/* -EINVAL with "NAME:LINE: field "F": why (column C)" (field may be NULL). */
int sim_trace_line_error(struct sim_err *err, const char *name, uint32_t lineno, const char *field,
			 const struct sim_json *j);
int sim_trace_parse_mooncake(struct sim_trace *t, struct sim_json *j, const char *name,
			     uint32_t lineno, struct sim_err *err);
void sim_mooncake_tokens(const struct sim_trace *t, uint32_t i, uint32_t *buf);
int sim_trace_write_mooncake(const struct sim_trace *t, FILE *f);

#endif /* KVMM_SIM_TRACE_INTERNAL_H */
