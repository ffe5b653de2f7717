/*
 * Federation JWTs (RFC 7519) signed with the broker's RS256 or ES256
 * key (RFC 7518 section 3). A signed token is a bearer credential for as
 * long as it lives, so the finished token exists only in sodium_malloc
 * memory; the header and claims before signing are not secret.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fed_internal.h"
#include "keyhole/canon.h"
#include "keyhole/federation.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* Random bytes in a jti: 128 bits, 22 base64url characters. */
#define JTI_BYTES 16

/* Length of an ES256 signature: r and s, 32 bytes each (RFC 7518 3.4). */
#define ES256_SIG_LEN 64

/* Largest signature: RSA 8192, in bytes. */
#define SIG_MAX 1024

/* Signature bytes with their length. */
struct jws_sig {
	unsigned char bytes[SIG_MAX];
	size_t len;
};

static int check_claims(const struct kh_fed_claims *c, struct kh_err *err)
{
	if (!c->iss || !*c->iss || !c->sub || !*c->sub || !c->aud ||
	    !*c->aud) {
		kh_err_set(err, "a federation JWT needs non-empty iss, sub and "
				"aud");
		return -EINVAL;
	}
	if (c->lifetime < 1 || c->lifetime > KH_FED_JWT_MAX_LIFETIME) {
		kh_err_set(err, "federation JWT lifetime %lld s is out of "
				"range; it must be 1 to %d s",
			   (long long)c->lifetime, KH_FED_JWT_MAX_LIFETIME);
		return -EINVAL;
	}
	if (c->now <= 0 || c->now > KH_JSON_MAX_SAFE_INT - c->lifetime) {
		kh_err_set(err, "federation JWT time %lld is not a valid unix "
				"time", (long long)c->now);
		return -EINVAL;
	}
	return 0;
}

/* Builds the claims object, with a new random jti. */
static json_t *build_claims(const struct kh_fed_claims *c)
{
	unsigned char random[JTI_BYTES];
	char jti[sodium_base64_ENCODED_LEN(JTI_BYTES, B64URL)];
	json_t *claims;

	randombytes_buf(random, sizeof(random));
	sodium_bin2base64(jti, sizeof(jti), random, sizeof(random), B64URL);

	claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss",
			   c->iss, "sub", c->sub, "aud", c->aud, "iat",
			   (json_int_t)c->now, "nbf", (json_int_t)c->now, "exp",
			   (json_int_t)(c->now + c->lifetime), "jti", jti);
	if (claims && c->permit_jti &&
	    json_object_set_new(claims, "permit_jti",
				json_string(c->permit_jti)) != 0) {
		json_decref(claims);
		return NULL;
	}
	return claims;
}

/*
 * Appends base64url(canonical JSON of value) to out at *pos. out has
 * room for size bytes including the NUL.
 */
static int append_b64_json(const json_t *value, char *out, size_t size,
			   size_t *pos, struct kh_err *err)
{
	char *text = NULL;
	size_t len = 0;
	size_t need;
	int rc;

	rc = kh_canon_dump(value, &text, &len, err);
	if (rc < 0)
		return rc;
	need = sodium_base64_ENCODED_LEN(len, B64URL);
	if (*pos + need > size) {
		kh_err_set(err, "federation JWT is too long");
		rc = -EOVERFLOW;
		goto out;
	}
	sodium_bin2base64(out + *pos, need, (const unsigned char *)text, len,
			  B64URL);
	*pos += need - 1;
out:
	free(text);
	return rc;
}

/* Converts a DER ECDSA signature to the raw r||s form JWS uses. */
static int ecdsa_der_to_raw(struct jws_sig *sig)
{
	const unsigned char *p = sig->bytes;
	const BIGNUM *r = NULL;
	const BIGNUM *s = NULL;
	ECDSA_SIG *ecdsa;
	int rc = -EINVAL;

	ecdsa = d2i_ECDSA_SIG(NULL, &p, (long)sig->len);
	if (!ecdsa)
		return -EINVAL;
	ECDSA_SIG_get0(ecdsa, &r, &s);
	if (BN_bn2binpad(r, sig->bytes, ES256_SIG_LEN / 2) ==
		    ES256_SIG_LEN / 2 &&
	    BN_bn2binpad(s, sig->bytes + ES256_SIG_LEN / 2,
			 ES256_SIG_LEN / 2) == ES256_SIG_LEN / 2) {
		sig->len = ES256_SIG_LEN;
		rc = 0;
	}
	ECDSA_SIG_free(ecdsa);
	return rc;
}

/*
 * Signs input with SHA-256: PKCS#1 v1.5 for RSA (RS256), ECDSA for
 * P-256 (ES256), which OpenSSL picks from the key type.
 */
static int sign_input(const struct kh_fed_key *key, const char *input,
		      size_t len, struct jws_sig *sig, struct kh_err *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -EIO;

	sig->len = sizeof(sig->bytes);
	if (!ctx ||
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig->bytes, &sig->len,
			   (const unsigned char *)input, len) != 1)
		goto out;
	rc = key->alg == KH_FED_ES256 ? ecdsa_der_to_raw(sig) : 0;
out:
	if (rc < 0) {
		ERR_clear_error();
		kh_err_set(err, "OpenSSL could not sign the federation JWT");
	}
	EVP_MD_CTX_free(ctx);
	return rc < 0 ? -EIO : 0;
}

/* Encodes header and claims into text as "<header>.<claims>". */
static int encode_input(const struct kh_fed_key *key, const json_t *claims,
			char *text, size_t size, size_t *pos,
			struct kh_err *err)
{
	json_t *header;
	int rc;

	header = json_pack("{s:s, s:s, s:s}", "alg",
			   key->alg == KH_FED_RS256 ? "RS256" : "ES256", "kid",
			   key->kid, "typ", "JWT");
	if (!header) {
		kh_err_set(err, "out of memory building the JWT header");
		return -ENOMEM;
	}
	*pos = 0;
	rc = append_b64_json(header, text, size, pos, err);
	json_decref(header);
	if (rc < 0)
		return rc;
	if (*pos + 1 >= size) {
		kh_err_set(err, "federation JWT is too long");
		return -EOVERFLOW;
	}
	text[(*pos)++] = '.';
	return append_b64_json(claims, text, size, pos, err);
}

/* Largest token: header and claims of a few hundred bytes, and the signature. */
#define JWT_MAX 8192

int kh_fed_jwt_sign(const struct kh_fed_key *key,
		    const struct kh_fed_claims *claims, struct kh_secret **jwt,
		    struct kh_err *err)
{
	struct kh_secret *token = NULL;
	struct jws_sig sig;
	json_t *payload = NULL;
	size_t pos = 0;
	size_t need;
	int rc;

	if (!jwt)
		return -EINVAL;
	*jwt = NULL;
	if (!key || !claims) {
		kh_err_set(err, "signing a federation JWT needs a key and "
				"claims");
		return -EINVAL;
	}
	rc = check_claims(claims, err);
	if (rc < 0)
		return rc;
	payload = build_claims(claims);
	if (!payload) {
		kh_err_set(err, "out of memory building the JWT claims");
		return -ENOMEM;
	}

	rc = kh_secret_new(JWT_MAX, &token);
	if (rc < 0) {
		kh_err_set(err, "out of memory for the federation JWT");
		goto out;
	}
	rc = encode_input(key, payload, (char *)token->data, JWT_MAX, &pos,
			  err);
	if (rc < 0)
		goto out;
	rc = sign_input(key, (const char *)token->data, pos, &sig, err);
	if (rc < 0)
		goto out;

	need = sodium_base64_ENCODED_LEN(sig.len, B64URL);
	if (pos + 1 + need > JWT_MAX) {
		kh_err_set(err, "federation JWT is too long");
		rc = -EOVERFLOW;
		goto out;
	}
	token->data[pos++] = '.';
	sodium_bin2base64((char *)token->data + pos, need, sig.bytes, sig.len,
			  B64URL);
	token->len = pos + need - 1;
	*jwt = token;
	token = NULL;
out:
	kh_secret_free(token);
	json_decref(payload);
	return rc;
}
