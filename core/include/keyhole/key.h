/* Ed25519 signing keys stored as JWK (RFC 8037), kept in sodium_malloc. */
#ifndef KEYHOLE_KEY_H
#define KEYHOLE_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "keyhole/error.h"

/* RFC 7638 thumbprint: base64url(SHA-256) without padding, 43 chars. */
#define KH_KID_LEN 43

/*
 * One Ed25519 key. secret is NULL for a public-only key. Otherwise it
 * points to a 64-byte libsodium secret key in sodium_malloc memory,
 * read-only except while being written (sodium_mprotect_readonly).
 */
struct kh_key {
	unsigned char public_key[32];
	unsigned char *secret;
	char kid[KH_KID_LEN + 1];
};

/* Creates a new random key pair. */
int kh_key_generate(struct kh_key **out, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Loads a JWK file. A private JWK ("d" present) gives a signing key, and
 * a public JWK gives a verify-only key. The file must be a regular file.
 * A private key file must not be accessible by group or others, and must
 * be owned by the caller's euid or root. The kid is recomputed from "x"
 * and must match a "kid" member when one is present. Members other than
 * kty, crv, x, d, kid, use ("sig") and alg ("EdDSA") are rejected.
 * Returns -ELOOP for a symlink, -EPERM for an unsafe private key file,
 * -EFBIG above 4096 bytes and -EINVAL for an invalid JWK.
 */
int kh_key_load(const char *path, struct kh_key **out, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Writes the private JWK to private_path (mode 0600, created with
 * O_EXCL and its final mode) and the public JWK to public_path (0644,
 * less the bits the umask clears), both canonical and fsync'd. Returns
 * -EEXIST when either file exists. On failure no new file is left.
 */
int kh_key_save(const struct kh_key *key, const char *private_path,
		const char *public_path, struct kh_err *err)
	__attribute__((warn_unused_result));

/* Returns the public JWK {"crv","kid","kty","x"} as a new reference. */
struct json_t;
int kh_key_public_jwk(const struct kh_key *key, struct json_t **out);

/*
 * Builds a public-only key from an Ed25519 JWK object (the members that
 * kh_key_public_jwk writes). A JWK with a private "d" is rejected, as
 * are unknown members and a "kid" that is not the thumbprint.
 */
int kh_key_from_public_jwk(const struct json_t *jwk, struct kh_key **out,
			   struct kh_err *err)
	__attribute__((warn_unused_result));

/* Signs data with a detached Ed25519 signature; -EPERM without secret. */
int kh_key_sign(const struct kh_key *key, const void *data, size_t len,
		unsigned char sig[64]);

/* Returns 0 when sig is valid for data, -EBADMSG otherwise. */
int kh_key_verify(const struct kh_key *key, const void *data, size_t len,
		  const unsigned char sig[64])
	__attribute__((warn_unused_result));

/* Wipes and frees; accepts NULL. */
void kh_key_free(struct kh_key *key);

/*
 * Moves DIR/NAME.jwk's public half to DIR/retired/NAME-KID.pub.jwk and
 * its private half to DIR/retired/NAME-KID.jwk (keep_private) or
 * deletes it, so that a new key can take the name. DIR/retired is made
 * with mode 0700; an existing one must pass the checks of
 * kh_key_retired_load. Returns 0, -ENOENT when there is no key, or
 * -errno.
 */
int kh_key_retire(const char *dir, const char *name, bool keep_private,
		  struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Loads the retired keys of the key at key_path (DIR/NAME.jwk) from
 * DIR/retired: each kid once, its private file when present, else its
 * public one. At most max keys go into keys, to be freed by the
 * caller. A missing DIR/retired gives none. DIR/retired must be a
 * directory, not a symbolic link, owned by root or the caller's euid
 * and not writable by group or others (-EPERM), because its public keys
 * are trusted to have signed the start of the audit log. Returns 0 or
 * -errno.
 */
int kh_key_retired_load(const char *key_path, struct kh_key **keys,
			size_t max, size_t *count, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Deletes the retired private keys of key_path, which are no longer
 * needed once the DPR chain has been handed over to the current key.
 * Returns how many were deleted, or -errno.
 */
int kh_key_retired_prune(const char *key_path, struct kh_err *err);

#endif
