/* Error message formatting shared by every libkeyhole module. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "keyhole/error.h"

void kh_err_set(struct kh_err *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;

	va_start(ap, fmt);
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void kh_err_prefix(struct kh_err *err, const char *fmt, ...)
{
	char prefix[256];
	char old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return;

	va_start(ap, fmt);
	(void)vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);

	memcpy(old, err->msg, sizeof(old));
	/* A message cut at the buffer end still names the value and prefix. */
	if (snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old) < 0)
		err->msg[0] = '\0';
}

void kh_err_clear(struct kh_err *err)
{
	if (err)
		err->msg[0] = '\0';
}
