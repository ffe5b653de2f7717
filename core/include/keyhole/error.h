/* Error reporting shared by every libkeyhole module. */
#ifndef KEYHOLE_ERROR_H
#define KEYHOLE_ERROR_H

#include <stddef.h>

/*
 * A human-readable explanation of a failure. Library calls return 0 or a
 * negative errno and, when given a non-NULL struct kh_err, fill msg with
 * the failing value (a JSON path, a file name, a claim) and the fix.
 * The message never contains secret or key material.
 */
struct kh_err {
	char msg[512];
};

/* Formats msg into err; does nothing when err is NULL. */
void kh_err_set(struct kh_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message, for context from callers. */
void kh_err_prefix(struct kh_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Clears err so that callers can tell whether a message was set. */
void kh_err_clear(struct kh_err *err);

/*
 * Receives one error message from a check that reports every error
 * instead of stopping at the first (kh_policy_check, kh_config_check).
 * message is formatted like struct kh_err's msg and is valid only
 * during the call. ctx is the caller's pointer, passed through.
 */
typedef void (*kh_err_report_fn)(const char *message, void *ctx);

#endif
