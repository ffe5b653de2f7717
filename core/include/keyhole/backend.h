/*
 * Secret backends. A backend is configured once from its JSON object in
 * keyhole.json ("backends": {name: {type, ...}}), then asked to fetch
 * one named secret at the moment a permit is used. Fetched bytes live
 * in sodium_malloc memory and are wiped by kh_secret_free.
 *
 * Each backend type is a shared object
 * BACKEND_DIR/kh_backend_<type>.so that exports one descriptor, struct
 * kh_backend_module (keyhole/backend_module.h). libkeyhole loads it on
 * first use and hands it a table of host services (HTTP, federation
 * tokens, secure memory), so a module links nothing from libkeyhole.
 */
#ifndef KEYHOLE_BACKEND_H
#define KEYHOLE_BACKEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyhole/error.h"

#ifndef KH_BACKEND_DIR
#define KH_BACKEND_DIR "/usr/local/lib/keyhole/backends"
#endif

/* Largest secret a backend may return, in bytes. */
#define KH_SECRET_MAX (1024 * 1024)

struct kh_secret {
	unsigned char *data; /* sodium_malloc */
	size_t len;
};

/* Allocates a secret buffer of len bytes (len may be 0). */
int kh_secret_new(size_t len, struct kh_secret **out);
/* Wipes and frees; accepts NULL. */
void kh_secret_free(struct kh_secret *secret);

/* Why a fetch happens: lets backends tag remote logs and bound retries. */
struct kh_fetch_ctx {
	const char *jti;
	int64_t deadline; /* unix seconds: the permit's exp */
};

/*
 * Fetch failures, as negative errno values that every backend returns
 * so that the daemon can name the reason to the agent and in the DPR
 * (kh_backend_reason gives the wording).
 */
#define KH_FETCH_AUTH_REFUSED (-EACCES)   /* "auth refused" */
#define KH_FETCH_NOT_FOUND (-ENOENT)      /* "not found" */
#define KH_FETCH_THROTTLED (-EBUSY)       /* "throttled" */
#define KH_FETCH_TIMED_OUT (-ETIMEDOUT)   /* "timed out" */
#define KH_FETCH_TLS_FAILURE (-EPROTO)    /* "TLS failure" */
#define KH_FETCH_BAD_RESPONSE (-EBADMSG)  /* "bad response" */
#define KH_FETCH_UNREACHABLE (-EHOSTUNREACH) /* "unreachable" */
#define KH_FETCH_SERVER_ERROR (-EIO)      /* "server error" */

/* Wording of a fetch failure; "backend error" for any other value. */
const char *kh_backend_reason(int err);

/* Maximum backend name length. Names match [A-Za-z0-9_-]{1,63}. */
#define KH_BACKEND_NAME_MAX 63

struct kh_backend_module;
struct kh_fed_key;

/*
 * Context the host services need: where modules live and the broker's
 * federation identity. fed_key and fed_issuer are NULL when keyhole.json
 * has no "federation" section; modules that need a token then fail to
 * configure with a message saying so.
 */
struct kh_backend_env {
	const char *backend_dir;  /* NULL for KH_BACKEND_DIR */
	const char *tenant;
	const char *env;
	const char *broker_id;
	const char *fed_issuer;
	const struct kh_fed_key *fed_key;
};

struct kh_backend {
	char name[KH_BACKEND_NAME_MAX + 1];
	const struct kh_backend_module *module;
	void *state;
	void *handle;             /* dlopen handle */
	struct kh_backend_host *host; /* owned: this instance's services */
};

/* Returns 1 when name is a valid backend name, 0 otherwise. */
int kh_backend_name_is_valid(const char *name);

/*
 * Loads the module for conf's "type" from env->backend_dir and
 * configures a backend named name from conf. The module must be a
 * regular file owned by root or the euid and not writable by group or
 * others, and its descriptor's abi_version must equal
 * KH_BACKEND_ABI_VERSION. err starts with "backend <name>" and names
 * the offending key or file.
 */
int kh_backend_open(const char *name, const json_t *conf,
		    const char *base_dir, const struct kh_backend_env *env,
		    struct kh_backend **out, struct kh_err *err)
	__attribute__((warn_unused_result));

void kh_backend_close(struct kh_backend *backend);

/* Lists the secret names the backend serves (new array of strings). */
int kh_backend_list(struct kh_backend *backend, json_t **names,
		    struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Fetches name, which may end in "#<field>": the backend's secret must
 * then be a JSON object, and the result is that member's string value
 * (or its compact JSON text for a non-string). Returns a KH_FETCH_*
 * value on failure, with err starting with its wording.
 */
int kh_backend_fetch(struct kh_backend *backend, const char *name,
		     const struct kh_fetch_ctx *ctx, struct kh_secret **out,
		     struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Runs the module's authentication round trip that fetches no secret.
 * *report (new reference) is an array of {"check","result"} objects
 * saying what was checked, for `keyhole backend test`.
 */
int kh_backend_test(struct kh_backend *backend, json_t **report,
		    struct kh_err *err)
	__attribute__((warn_unused_result));

/* Returns true when the backend's type uses a stored service token. */
bool kh_backend_is_static(const struct kh_backend *backend);

/*
 * Returns module-specific facts as a new JSON object (for example
 * {"external_id": ...} for aws), or an empty object.
 */
json_t *kh_backend_describe(struct kh_backend *backend);

/* Returns the backend's type, the module's "type". */
const char *kh_backend_type(const struct kh_backend *backend);

/*
 * Tells the module that the permit jti expired or was revoked, so it
 * can revoke leases taken for it. Does nothing for a module without
 * permit_ended.
 */
void kh_backend_permit_ended(struct kh_backend *backend, const char *jti);

/*
 * Splits "<name>#<field>" at the first '#': base receives name, and
 * *field points into secret at the field, or is NULL without '#'.
 * Returns -EINVAL for an empty name or field, -ENAMETOOLONG when name
 * does not fit in base_size.
 */
int kh_backend_split_field(const char *secret, char *base, size_t base_size,
			   const char **field);

/*
 * Sets where the modules' host->debug lines go (the daemon's debug
 * log). NULL, the default, drops them. Call before opening backends.
 */
void kh_backend_set_debug_log(void (*log)(const char *line));

#endif
