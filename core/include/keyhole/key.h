/* Ed25519 signing keys stored as JWK (RFC 8037), kept in sodium_malloc. */
#ifndef KEYHOLE_KEY_H
#define KEYHOLE_KEY_H

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

/* Signs data with a detached Ed25519 signature; -EPERM without secret. */
int kh_key_sign(const struct kh_key *key, const void *data, size_t len,
		unsigned char sig[64]);

/* Returns 0 when sig is valid for data, -EBADMSG otherwise. */
int kh_key_verify(const struct kh_key *key, const void *data, size_t len,
		  const unsigned char sig[64])
	__attribute__((warn_unused_result));

/* Wipes and frees; accepts NULL. */
void kh_key_free(struct kh_key *key);

#endif
