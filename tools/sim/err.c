// SPDX-License-Identifier: MIT
/* err.c - error messages (see err.h). */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"

int sim_errf(struct sim_err *e, int ret, const char *fmt, ...)
{
	va_list ap;

	if (!e || e->msg[0])
		return ret;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return ret;
}
