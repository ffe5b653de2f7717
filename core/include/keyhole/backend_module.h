/*
 * The ABI between libkeyhole and a backend module. A module is a shared
 * object named kh_backend_<type>.so that exports one symbol:
 *
 *   const struct kh_backend_module kh_backend_module = { ... };
 *
 * with abi_version = KH_BACKEND_ABI_VERSION and type = "<type>". The
 * loader rejects any other version. A module calls keyhole only
 * through the struct kh_backend_host table it receives in configure,
 * and it may link jansson and libc. docs/backend-abi.md is the guide
 * for third-party modules.
 */
#ifndef KEYHOLE_BACKEND_MODULE_H
#define KEYHOLE_BACKEND_MODULE_H

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyhole/backend.h"
#include "keyhole/error.h"
#include "keyhole/http.h"

#define KH_BACKEND_ABI_VERSION 1
#define KH_BACKEND_SYMBOL "kh_backend_module"

/* The module's backend authenticates with a stored service token. */
#define KH_BACKEND_STATIC_CREDENTIAL (1u << 0)

/*
 * Services keyhole lends to a module. Pointers stay valid until the
 * module's teardown returns. Every function may be called from several
 * threads at once.
 */
struct kh_backend_host {
	uint32_t abi_version;
	const char *backend_name; /* the instance's name in keyhole.json */
	const char *tenant;
	const char *env;
	const char *broker_id;

	int (*secret_new)(size_t len, struct kh_secret **out);
	void (*secret_free)(struct kh_secret *secret);
	void (*err_set)(struct kh_err *err, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));
	/* Debug logging only; never pass a secret. */
	void (*debug)(const char *fmt, ...)
		__attribute__((format(printf, 1, 2)));

	/* HTTP with keyhole's hygiene rules, see keyhole/http.h. */
	int (*http)(const struct kh_http_request *req,
		    struct kh_http_response *resp, struct kh_err *err);
	void (*http_response_clear)(struct kh_http_response *resp);
	/*
	 * kh_http_options_parse: reads the config's "ca_file",
	 * "connect_timeout", "timeout" and "proxy" members, so that every
	 * module accepts them with the same rules.
	 */
	int (*http_options_parse)(const json_t *conf, const char *base_dir,
				  struct kh_http_options *opts, char *ca_buf,
				  size_t ca_size, struct kh_err *err);

	/*
	 * Signs a federation JWT for audience aud that serves the permit in
	 * ctx (claim "permit_jti"), lifetime at most 300 s and never past
	 * ctx->deadline. *jwt is sodium_malloc'd; free it with
	 * secret_free. Returns -ENOKEY when no federation key is configured.
	 */
	int (*federation_jwt)(const struct kh_backend_host *host,
			      const char *aud, const struct kh_fetch_ctx *ctx,
			      struct kh_secret **jwt, struct kh_err *err);
	/* The issuer URL the JWTs carry, or NULL. */
	const char *federation_issuer;

	void *host_private;       /* keyhole's own state; do not touch */

	/*
	 * kh_backend_reason: the wording every message for a KH_FETCH_*
	 * value must start with ("auth refused").
	 */
	const char *(*fetch_reason)(int code);
	/* kh_http_status_error: the KH_FETCH_* value of a final status. */
	int (*http_status_error)(long status);
	/*
	 * Zeroes every string in a parsed JSON value, so that tokens and
	 * secrets in a reply are wiped before json_decref frees them.
	 * Object keys and numbers are left as they are.
	 */
	void (*json_wipe)(json_t *value);
};

struct kh_backend_module {
	uint32_t abi_version;     /* KH_BACKEND_ABI_VERSION */
	const char *type;         /* must match the file name */
	unsigned flags;           /* KH_BACKEND_* bits */

	/*
	 * Parses conf strictly (it contains "type"), resolving relative
	 * paths against base_dir. On failure *state is left NULL and err
	 * names the key ("$.dir") and the fix.
	 */
	int (*configure)(const struct kh_backend_host *host,
			 const json_t *conf, const char *base_dir,
			 void **state, struct kh_err *err);
	/* Lists the secret names this backend serves (new array). */
	int (*list)(void *state, json_t **names, struct kh_err *err);
	/*
	 * Fetches one secret (name has no "#field" part) into memory from
	 * host->secret_new. Returns a KH_FETCH_* value on failure, with err
	 * saying what the remote side returned (never a secret).
	 */
	int (*fetch)(void *state, const char *name,
		     const struct kh_fetch_ctx *ctx, struct kh_secret **out,
		     struct kh_err *err);
	/*
	 * Authentication round trip that fetches no secret. Appends one
	 * {"check": "...", "result": "..."} object per step to report.
	 */
	int (*test)(void *state, json_t *report, struct kh_err *err);
	/* Optional (may be NULL): module facts as a new JSON object. */
	json_t *(*describe)(void *state);
	/*
	 * Optional: called when the permit with this jti has expired or was
	 * revoked, so that leases taken for it can be revoked.
	 */
	void (*permit_ended)(void *state, const char *jti);
	void (*teardown)(void *state);
};

#endif
