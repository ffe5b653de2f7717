/*
 * RFC 7638 JWK thumbprints, the kid of both key kinds keyhole signs with
 * (Ed25519 permit keys and RS256/ES256 federation keys). Internal to
 * libkeyhole.
 */
#ifndef KEYHOLE_JWK_THUMBPRINT_H
#define KEYHOLE_JWK_THUMBPRINT_H

#include <jansson.h>

#include "keyhole/error.h"
#include "keyhole/key.h"

/*
 * Hashes members, which must contain exactly the required members of the
 * key type as strings, into kid: base64url(SHA-256(JCS(members))).
 * Returns 0 or the -errno of the canonical JSON encoding.
 */
int kh_jwk_thumbprint(const json_t *members, char kid[KH_KID_LEN + 1],
		      struct kh_err *err);

#endif
