/*
 * The federation key as fed_key.c, fed_jwt.c and oidc_export.c share it.
 * Internal to libkeyhole.
 */
#ifndef KEYHOLE_FED_INTERNAL_H
#define KEYHOLE_FED_INTERNAL_H

#include <jansson.h>
#include <openssl/evp.h>
#include <sys/types.h>

#include "keyhole/federation.h"
#include "keyhole/key.h"

struct kh_fed_key {
	enum kh_fed_alg alg;
	EVP_PKEY *pkey;           /* OpenSSL owns the private numbers */
	char kid[KH_KID_LEN + 1]; /* RFC 7638 thumbprint, base64url */
};

/*
 * Computes the RFC 7638 thumbprint of a public JWK: SHA-256 over the
 * canonical JSON of its required members only ({e,kty,n} for RSA,
 * {crv,kty,x,y} for EC), as unpadded base64url. Returns -EINVAL when a
 * required member is missing or not a string.
 */
int kh_fed_jwk_thumbprint(const json_t *jwk, char kid[KH_KID_LEN + 1],
			  struct kh_err *err);

/* Checks that jwk is a public RS256 or ES256 key this module would write. */
int kh_fed_jwk_check_public(const json_t *jwk, struct kh_err *err);

#endif
