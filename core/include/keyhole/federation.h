/*
 * The broker's own workload identity: an RS256 (or ES256) key made
 * with OpenSSL libcrypto, and short-lived JWTs signed with it. A web
 * server publishes the OIDC discovery documents, so that AWS STS, Vault
 * and Entra ID can verify those JWTs. Permits stay Ed25519
 * (keyhole/key.h). This key is only for federation, because none of
 * those services accepts EdDSA.
 */
#ifndef KEYHOLE_FEDERATION_H
#define KEYHOLE_FEDERATION_H

#include <jansson.h>
#include <stdint.h>

#include "keyhole/backend.h"
#include "keyhole/error.h"

/* Maximum lifetime of a federation JWT, in seconds. */
#define KH_FED_JWT_MAX_LIFETIME 300

/* How long a retired key stays in jwks.json by default, in seconds. */
#define KH_FED_OVERLAP_DEFAULT (24 * 3600)

enum kh_fed_alg { KH_FED_RS256 = 0, KH_FED_ES256 = 1 };

struct kh_fed_key;

/* Creates a key: RSA 3072 for RS256, P-256 for ES256. */
int kh_fed_key_generate(enum kh_fed_alg alg, struct kh_fed_key **out,
			struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Writes the private key as PKCS#8 PEM to private_path (0600, O_EXCL,
 * final mode from the start) and the public JWK to public_path.
 * Returns -EEXIST when either exists.
 */
int kh_fed_key_save(const struct kh_fed_key *key, const char *private_path,
		    const char *public_path, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Loads a private key PEM (same ownership and mode rules as
 * kh_key_load). The algorithm follows from the key type.
 */
int kh_fed_key_load(const char *path, struct kh_fed_key **out,
		    struct kh_err *err)
	__attribute__((warn_unused_result));

void kh_fed_key_free(struct kh_fed_key *key);

enum kh_fed_alg kh_fed_key_alg(const struct kh_fed_key *key);
/* RFC 7638 thumbprint of the public JWK. */
const char *kh_fed_key_kid(const struct kh_fed_key *key);
/* Public JWK with kid, alg and use "sig" (new reference). */
json_t *kh_fed_key_public_jwk(const struct kh_fed_key *key);

struct kh_fed_claims {
	const char *iss;
	const char *sub;          /* "keyhole:<tenant>:<env>:<broker_id>" */
	const char *aud;
	const char *permit_jti;   /* NULL for a test round trip */
	int64_t now;
	int64_t lifetime;         /* 1 to KH_FED_JWT_MAX_LIFETIME */
};

/*
 * Signs a JWT {iss, sub, aud, iat, nbf, exp, jti, permit_jti} with
 * header {alg, kid, typ "JWT"}. *jwt is sodium_malloc'd (NUL-terminated).
 */
int kh_fed_jwt_sign(const struct kh_fed_key *key,
		    const struct kh_fed_claims *claims, struct kh_secret **jwt,
		    struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Writes DIR/.well-known/openid-configuration and DIR/jwks.json for
 * issuer. jwks.json contains the current key and every retired key (from
 * retired_dir, may be NULL) retired less than overlap seconds before
 * now.
 */
int kh_oidc_export(const char *issuer, const struct kh_fed_key *current,
		   const char *retired_dir, int64_t overlap, int64_t now,
		   const char *dir, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Records key as retired at now: writes its public JWK to
 * retired_dir/<kid>.json as {"jwk": ..., "retired_at": now} (0644,
 * O_EXCL), creating retired_dir (0755) when missing. kh_oidc_export
 * keeps publishing it for the overlap period.
 */
int kh_fed_key_retire(const struct kh_fed_key *key, const char *retired_dir,
		      int64_t now, struct kh_err *err)
	__attribute__((warn_unused_result));

#endif
