/*
 * Secret backends. A backend is configured once from its JSON object in
 * keyhole.json ("backends": {name: {type, ...}}), then asked to fetch
 * one named secret at the moment a permit is used. Fetched bytes live
 * in sodium_malloc memory and are wiped by kh_secret_free.
 */
#ifndef KEYHOLE_BACKEND_H
#define KEYHOLE_BACKEND_H

#include <jansson.h>
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

struct kh_backend_ops {
	const char *type;
	/*
	 * Parses conf strictly, resolving relative paths against base_dir.
	 * On failure *state is left NULL and err names the key ("$.dir").
	 */
	int (*configure)(const json_t *conf, const char *base_dir,
			 void **state, struct kh_err *err);
	/* Lists the secret names this backend serves (new array). */
	int (*list)(void *state, json_t **names, struct kh_err *err);
	/*
	 * Fetches one secret into sodium_malloc memory, or returns -ENOENT
	 * for an unknown name. May be called from several threads at once.
	 */
	int (*fetch)(void *state, const char *name,
		     const struct kh_fetch_ctx *ctx, struct kh_secret **out,
		     struct kh_err *err);
	/* Authentication round trip that fetches no secret. */
	int (*test)(void *state, struct kh_err *err);
	void (*teardown)(void *state);
};

/* Maximum backend name length. Names match [A-Za-z0-9_-]{1,63}. */
#define KH_BACKEND_NAME_MAX 63

struct kh_backend {
	char name[KH_BACKEND_NAME_MAX + 1];
	const struct kh_backend_ops *ops;
	void *state;
};

/* Finds the ops for type; NULL when unknown. */
const struct kh_backend_ops *kh_backend_find(const char *type);

/* Returns 1 when name is a valid backend name, 0 otherwise. */
int kh_backend_name_is_valid(const char *name);

/*
 * Configures a backend named name from conf, which contains "type". err
 * starts with "backend <name>" and names the offending key.
 */
int kh_backend_open(const char *name, const json_t *conf,
		    const char *base_dir, struct kh_backend **out,
		    struct kh_err *err)
	__attribute__((warn_unused_result));

void kh_backend_close(struct kh_backend *backend);

/*
 * The file backend: {"type":"file","dir":"/etc/keyhole/credstore"}.
 * dir must be owned by root (or the daemon's euid) and not accessible
 * by group or others. Each secret is a regular file in it, read with
 * O_NOFOLLOW, and names are single path components.
 */
extern const struct kh_backend_ops kh_backend_file;

#endif
