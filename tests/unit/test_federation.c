/*
 * The broker's federation key and JWTs. RS256 and ES256 signatures are
 * checked with OpenSSL against the key rebuilt from the published JWK.
 * Also covered: the claims and the lifetime cap, the RFC 7638
 * thumbprint, file modes, the checks on key files, and the OIDC export
 * with rotation.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../core/lib/fed_internal.h"
#include "harness.h"
#include "keyhole/canon.h"
#include "keyhole/federation.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* RFC 7638 section 3.1: an RSA public key and its thumbprint. */
#define RFC_N                                                              \
	"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu" \
	"1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4" \
	"Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaS" \
	"qzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWh" \
	"AI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kE" \
	"gU8awapJzKnqDKgw"
#define RFC_KID "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

#define ISSUER "https://issuer.example.test/keyhole"
#define NOW 1700000000

static char tmp_dir[PATH_MAX];
static struct kh_fed_key *rsa_key;
static struct kh_fed_key *ec_key;

static void tmp_path(char *out, size_t size, const char *name)
{
	int n = snprintf(out, size, "%s/%s", tmp_dir, name);

	if (n < 0 || (size_t)n >= size)
		kh_test_fail(__FILE__, __LINE__, "path too long for %s", name);
}

/* Decodes unpadded base64url into a new malloc'd buffer. */
static unsigned char *b64_decode(const char *text, size_t text_len,
				 size_t *len)
{
	unsigned char *bin = malloc(text_len + 1);

	if (bin && sodium_base642bin(bin, text_len + 1, text, text_len, NULL,
				     len, NULL, B64URL) != 0) {
		free(bin);
		return NULL;
	}
	return bin;
}

static BIGNUM *jwk_bn(const json_t *jwk, const char *name)
{
	const char *text = json_string_value(json_object_get(jwk, name));
	unsigned char *bin;
	size_t len = 0;
	BIGNUM *bn;

	if (!text)
		return NULL;
	bin = b64_decode(text, strlen(text), &len);
	bn = bin ? BN_bin2bn(bin, (int)len, NULL) : NULL;
	free(bin);
	return bn;
}

/* Rebuilds an OpenSSL public key from a published JWK, as a verifier does. */
static EVP_PKEY *pkey_from_jwk(const json_t *jwk)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *a = NULL;
	BIGNUM *b = NULL;
	unsigned char point[65] = { 0x04 };

	if (!bld || !kty)
		goto out;
	if (strcmp(kty, "RSA") == 0) {
		a = jwk_bn(jwk, "n");
		b = jwk_bn(jwk, "e");
		if (!a || !b ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, a) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, b))
			goto out;
	} else {
		a = jwk_bn(jwk, "x");
		b = jwk_bn(jwk, "y");
		if (!a || !b || BN_bn2binpad(a, point + 1, 32) != 32 ||
		    BN_bn2binpad(b, point + 33, 32) != 32 ||
		    !OSSL_PARAM_BLD_push_utf8_string(
			    bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(
			    bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
			goto out;
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, kty, NULL);
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(a);
	BN_free(b);
	return pkey;
}

/* Converts a raw r||s ES256 signature to DER for EVP_DigestVerify. */
static unsigned char *es256_to_der(const unsigned char *raw, size_t *len)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	unsigned char *der = NULL;
	int n;

	if (!sig || ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL),
				   BN_bin2bn(raw + 32, 32, NULL)) != 1) {
		ECDSA_SIG_free(sig);
		return NULL;
	}
	n = i2d_ECDSA_SIG(sig, &der);
	ECDSA_SIG_free(sig);
	*len = n > 0 ? (size_t)n : 0;
	return n > 0 ? der : NULL;
}

/* A JWT split into its decoded parts. */
struct jwt_parts {
	json_t *header;
	json_t *claims;
	unsigned char *sig;
	size_t sig_len;
	size_t input_len; /* length of "<header>.<claims>" */
};

static void jwt_parts_free(struct jwt_parts *p)
{
	json_decref(p->header);
	json_decref(p->claims);
	free(p->sig);
}

static json_t *decode_json_part(const char *text, size_t len)
{
	size_t bin_len = 0;
	unsigned char *bin = b64_decode(text, len, &bin_len);
	json_t *value = NULL;

	if (bin && kh_json_parse((const char *)bin, bin_len, &value, NULL) < 0)
		value = NULL;
	free(bin);
	return value;
}

static int jwt_split(const char *jwt, struct jwt_parts *p)
{
	const char *dot1 = strchr(jwt, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;

	memset(p, 0, sizeof(*p));
	if (!dot2 || strchr(dot2 + 1, '.'))
		return -1;
	p->header = decode_json_part(jwt, (size_t)(dot1 - jwt));
	p->claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	p->sig = b64_decode(dot2 + 1, strlen(dot2 + 1), &p->sig_len);
	p->input_len = (size_t)(dot2 - jwt);
	return p->header && p->claims && p->sig ? 0 : -1;
}

/* Verifies a JWT's signature with OpenSSL against the key's public JWK. */
static int verify_with_openssl(const struct kh_fed_key *key, const char *jwt,
			       const struct jwt_parts *p)
{
	json_t *jwk = kh_fed_key_public_jwk(key);
	EVP_PKEY *pkey = pkey_from_jwk(jwk);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	const unsigned char *sig = p->sig;
	size_t sig_len = p->sig_len;
	int ok = 0;

	if (kh_fed_key_alg(key) == KH_FED_ES256) {
		der = sig_len == 64 ? es256_to_der(p->sig, &sig_len) : NULL;
		sig = der;
	}
	if (pkey && ctx && sig &&
	    EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1)
		ok = EVP_DigestVerify(ctx, sig, sig_len,
				      (const unsigned char *)jwt,
				      p->input_len) == 1;
	OPENSSL_free(der);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	json_decref(jwk);
	return ok;
}

static const struct kh_fed_claims base_claims = {
	.iss = ISSUER,
	.sub = "keyhole:acme:prod:broker-1",
	.aud = "sts.amazonaws.com",
	.permit_jti = "pRmT-jti_0123456789abc",
	.now = NOW,
	.lifetime = 300,
};

static void check_sign_verify(const struct kh_fed_key *key, const char *alg)
{
	struct kh_secret *jwt = NULL;
	struct jwt_parts p;
	struct kh_err err = { { 0 } };
	char *tampered;

	CHECK_INT(kh_fed_jwt_sign(key, &base_claims, &jwt, &err), 0);
	if (!jwt) {
		kh_test_fail(__FILE__, __LINE__, "sign: %s", err.msg);
		return;
	}
	CHECK_INT(strlen((const char *)jwt->data), jwt->len);
	CHECK_INT(jwt_split((const char *)jwt->data, &p), 0);
	CHECK_STR(json_string_value(json_object_get(p.header, "alg")), alg);
	CHECK_STR(json_string_value(json_object_get(p.header, "typ")), "JWT");
	CHECK_STR(json_string_value(json_object_get(p.header, "kid")),
		  kh_fed_key_kid(key));
	CHECK(verify_with_openssl(key, (const char *)jwt->data, &p));

	/* A changed claims byte must break the signature. */
	tampered = strdup((const char *)jwt->data);
	if (tampered) {
		tampered[strchr(tampered, '.') - tampered + 3] ^= 0x01;
		CHECK(!verify_with_openssl(key, tampered, &p));
	}
	free(tampered);
	jwt_parts_free(&p);
	kh_secret_free(jwt);
}

static void test_rs256_verifies(void)
{
	CHECK_INT(kh_fed_key_alg(rsa_key), KH_FED_RS256);
	check_sign_verify(rsa_key, "RS256");
}

static void test_es256_verifies(void)
{
	CHECK_INT(kh_fed_key_alg(ec_key), KH_FED_ES256);
	check_sign_verify(ec_key, "ES256");
}

/* ES256 signatures are raw r||s (RFC 7518 3.4), never DER. */
static void test_es256_signature_length(void)
{
	for (int i = 0; i < 16; i++) {
		struct kh_secret *jwt = NULL;
		struct jwt_parts p;

		CHECK_INT(kh_fed_jwt_sign(ec_key, &base_claims, &jwt, NULL), 0);
		if (!jwt)
			return;
		CHECK_INT(jwt_split((const char *)jwt->data, &p), 0);
		CHECK_INT(p.sig_len, 64);
		jwt_parts_free(&p);
		kh_secret_free(jwt);
	}
}

static void test_rs256_signature_length(void)
{
	struct kh_secret *jwt = NULL;
	struct jwt_parts p;

	CHECK_INT(kh_fed_jwt_sign(rsa_key, &base_claims, &jwt, NULL), 0);
	if (!jwt)
		return;
	CHECK_INT(jwt_split((const char *)jwt->data, &p), 0);
	CHECK_INT(p.sig_len, 3072 / 8);
	jwt_parts_free(&p);
	kh_secret_free(jwt);
}

static void test_claims(void)
{
	struct kh_secret *jwt = NULL;
	struct jwt_parts p;
	const json_t *c;

	CHECK_INT(kh_fed_jwt_sign(rsa_key, &base_claims, &jwt, NULL), 0);
	if (!jwt || jwt_split((const char *)jwt->data, &p) < 0) {
		kh_test_fail(__FILE__, __LINE__, "no JWT to check");
		kh_secret_free(jwt);
		return;
	}
	c = p.claims;
	CHECK_STR(json_string_value(json_object_get(c, "iss")), ISSUER);
	CHECK_STR(json_string_value(json_object_get(c, "sub")),
		  "keyhole:acme:prod:broker-1");
	CHECK_STR(json_string_value(json_object_get(c, "aud")),
		  "sts.amazonaws.com");
	CHECK_STR(json_string_value(json_object_get(c, "permit_jti")),
		  "pRmT-jti_0123456789abc");
	CHECK_INT(json_integer_value(json_object_get(c, "iat")), NOW);
	CHECK_INT(json_integer_value(json_object_get(c, "nbf")), NOW);
	CHECK_INT(json_integer_value(json_object_get(c, "exp")), NOW + 300);
	CHECK_INT(json_string_length(json_object_get(c, "jti")), 22);
	CHECK_INT(json_object_size(c), 8);
	jwt_parts_free(&p);
	kh_secret_free(jwt);
}

static void test_claims_without_permit(void)
{
	struct kh_fed_claims claims = base_claims;
	struct kh_secret *a = NULL;
	struct kh_secret *b = NULL;
	struct jwt_parts pa;
	struct jwt_parts pb;

	claims.permit_jti = NULL;
	CHECK_INT(kh_fed_jwt_sign(ec_key, &claims, &a, NULL), 0);
	CHECK_INT(kh_fed_jwt_sign(ec_key, &claims, &b, NULL), 0);
	if (!a || !b || jwt_split((const char *)a->data, &pa) < 0) {
		kh_test_fail(__FILE__, __LINE__, "no JWT to check");
		goto out;
	}
	CHECK(json_object_get(pa.claims, "permit_jti") == NULL);
	if (jwt_split((const char *)b->data, &pb) == 0) {
		/* Each token gets its own jti. */
		CHECK(strcmp(json_string_value(json_object_get(pa.claims,
							       "jti")),
			     json_string_value(json_object_get(pb.claims,
							       "jti"))) != 0);
		jwt_parts_free(&pb);
	}
	jwt_parts_free(&pa);
out:
	kh_secret_free(a);
	kh_secret_free(b);
}

static void test_lifetime_cap(void)
{
	static const struct {
		int64_t lifetime;
		int rc;
	} cases[] = {
		{ 0, -EINVAL }, { -1, -EINVAL }, { 301, -EINVAL },
		{ 3600, -EINVAL }, { 1, 0 }, { 300, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kh_fed_claims claims = base_claims;
		struct kh_secret *jwt = NULL;

		claims.lifetime = cases[i].lifetime;
		CHECK_INT(kh_fed_jwt_sign(ec_key, &claims, &jwt, NULL),
			  cases[i].rc);
		CHECK((jwt != NULL) == (cases[i].rc == 0));
		kh_secret_free(jwt);
	}
}

static void test_claims_required(void)
{
	struct kh_fed_claims claims = base_claims;
	struct kh_secret *jwt = NULL;
	struct kh_err err = { { 0 } };

	claims.aud = "";
	CHECK_INT(kh_fed_jwt_sign(ec_key, &claims, &jwt, &err), -EINVAL);
	CHECK(strstr(err.msg, "aud") != NULL);
	claims = base_claims;
	claims.iss = NULL;
	CHECK_INT(kh_fed_jwt_sign(ec_key, &claims, &jwt, NULL), -EINVAL);
	claims = base_claims;
	claims.now = 0;
	CHECK_INT(kh_fed_jwt_sign(ec_key, &claims, &jwt, NULL), -EINVAL);
	CHECK(jwt == NULL);
}

/* RFC 7638 section 3.1 known-answer vector. */
static void test_thumbprint_vector(void)
{
	json_t *jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "RSA", "n",
				RFC_N, "e", "AQAB", "alg", "RS256");
	char kid[KH_KID_LEN + 1] = "";

	CHECK_INT(kh_fed_jwk_thumbprint(jwk, kid, NULL), 0);
	CHECK_STR(kid, RFC_KID);
	json_decref(jwk);
}

static void test_public_jwk_members(void)
{
	json_t *rsa = kh_fed_key_public_jwk(rsa_key);
	json_t *ec = kh_fed_key_public_jwk(ec_key);
	char kid[KH_KID_LEN + 1] = "";

	CHECK_STR(json_string_value(json_object_get(rsa, "kty")), "RSA");
	CHECK_STR(json_string_value(json_object_get(rsa, "e")), "AQAB");
	CHECK_STR(json_string_value(json_object_get(rsa, "alg")), "RS256");
	CHECK_STR(json_string_value(json_object_get(rsa, "use")), "sig");
	CHECK_INT(json_string_length(json_object_get(rsa, "n")), 512);
	CHECK_INT(json_object_size(rsa), 6);
	CHECK_STR(json_string_value(json_object_get(ec, "crv")), "P-256");
	CHECK_STR(json_string_value(json_object_get(ec, "alg")), "ES256");
	CHECK_INT(json_string_length(json_object_get(ec, "x")), 43);
	CHECK_INT(json_string_length(json_object_get(ec, "y")), 43);
	CHECK_INT(json_object_size(ec), 7);
	CHECK_INT(kh_fed_jwk_thumbprint(ec, kid, NULL), 0);
	CHECK_STR(kid, kh_fed_key_kid(ec_key));
	CHECK_INT(kh_fed_jwk_check_public(ec, NULL), 0);
	json_decref(rsa);
	json_decref(ec);
}

static void test_save_load_modes(void)
{
	char priv[PATH_MAX];
	char pub[PATH_MAX];
	struct kh_fed_key *loaded = NULL;
	struct kh_err err = { { 0 } };
	struct stat st;

	tmp_path(priv, sizeof(priv), "fed.pem");
	tmp_path(pub, sizeof(pub), "fed.pub.jwk");
	CHECK_INT(kh_fed_key_save(rsa_key, priv, pub, &err), 0);
	CHECK_INT(stat(priv, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	CHECK_INT(stat(pub, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0644);

	/* The kid is a function of the public key only: stable across loads. */
	CHECK_INT(kh_fed_key_load(priv, &loaded, &err), 0);
	if (loaded) {
		CHECK_STR(kh_fed_key_kid(loaded), kh_fed_key_kid(rsa_key));
		CHECK_INT(kh_fed_key_alg(loaded), KH_FED_RS256);
	}
	kh_fed_key_free(loaded);

	CHECK_INT(kh_fed_key_save(rsa_key, priv, pub, &err), -EEXIST);
	(void)unlink(pub);
	CHECK_INT(kh_fed_key_save(ec_key, priv, pub, &err), -EEXIST);
	CHECK(access(pub, F_OK) != 0);
}

static void test_save_load_es256(void)
{
	char priv[PATH_MAX];
	char pub[PATH_MAX];
	struct kh_fed_key *loaded = NULL;

	tmp_path(priv, sizeof(priv), "ec.pem");
	tmp_path(pub, sizeof(pub), "ec.pub.jwk");
	CHECK_INT(kh_fed_key_save(ec_key, priv, pub, NULL), 0);
	CHECK_INT(kh_fed_key_load(priv, &loaded, NULL), 0);
	if (loaded) {
		CHECK_STR(kh_fed_key_kid(loaded), kh_fed_key_kid(ec_key));
		CHECK_INT(kh_fed_key_alg(loaded), KH_FED_ES256);
	}
	kh_fed_key_free(loaded);
}

/* Writes a key made by OpenSSL directly, as an admin's own tool would. */
static void write_foreign_pem(const char *name, EVP_PKEY *pkey,
			      const EVP_CIPHER *cipher, mode_t mode)
{
	char path[PATH_MAX];
	FILE *f;

	tmp_path(path, sizeof(path), name);
	(void)unlink(path);
	f = fopen(path, "wx");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(PEM_write_PKCS8PrivateKey(f, pkey, cipher,
					cipher ? "passphrase" : NULL,
					cipher ? 10 : 0, NULL, NULL) == 1);
	CHECK(fchmod(fileno(f), mode) == 0);
	CHECK(fclose(f) == 0);
}

static void write_text(const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	int fd;

	tmp_path(path, sizeof(path), name);
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(fchmod(fd, mode) == 0);
	CHECK(close(fd) == 0);
}

static int load_named(const char *name, struct kh_err *err)
{
	char path[PATH_MAX];
	struct kh_fed_key *key = NULL;
	int rc;

	tmp_path(path, sizeof(path), name);
	rc = kh_fed_key_load(path, &key, err);
	CHECK((key != NULL) == (rc == 0));
	kh_fed_key_free(key);
	return rc;
}

static void test_load_rejects_bad_files(void)
{
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	char target[PATH_MAX];
	char link[PATH_MAX];
	struct kh_err err = { { 0 } };
	char *big;

	write_foreign_pem("small.pem", small, NULL, 0600);
	CHECK_INT(load_named("small.pem", &err), -EINVAL);
	CHECK(strstr(err.msg, "1024 bits") != NULL);
	write_foreign_pem("ed.pem", ed, NULL, 0600);
	CHECK_INT(load_named("ed.pem", &err), -EINVAL);
	write_foreign_pem("p384.pem", p384, NULL, 0600);
	CHECK_INT(load_named("p384.pem", &err), -EINVAL);
	write_foreign_pem("enc.pem", small, EVP_aes_256_cbc(), 0600);
	CHECK_INT(load_named("enc.pem", &err), -EINVAL);
	CHECK(strstr(err.msg, "unencrypted") != NULL);

	write_text("garbage.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n", 0600);
	CHECK_INT(load_named("garbage.pem", NULL), -EINVAL);
	write_text("open.pem", "irrelevant", 0640);
	CHECK_INT(load_named("open.pem", &err), -EPERM);
	CHECK(strstr(err.msg, "chmod 600") != NULL);
	CHECK_INT(load_named("missing.pem", NULL), -ENOENT);

	big = malloc(20000);
	if (big) {
		memset(big, 'A', 19999);
		big[19999] = '\0';
		write_text("big.pem", big, 0600);
		CHECK_INT(load_named("big.pem", NULL), -EFBIG);
	}
	free(big);

	tmp_path(target, sizeof(target), "ec.pem");
	tmp_path(link, sizeof(link), "link.pem");
	(void)unlink(link);
	CHECK(symlink(target, link) == 0);
	CHECK_INT(load_named("link.pem", NULL), -ELOOP);
	EVP_PKEY_free(small);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(p384);
}

static json_t *load_json(const char *name)
{
	char path[PATH_MAX];
	json_t *value = NULL;

	tmp_path(path, sizeof(path), name);
	if (kh_json_load_file(path, &value, NULL) < 0)
		return NULL;
	return value;
}

/* Returns how many keys of jwks.json in dir carry kid. */
static int jwks_count_kid(const char *dir, const char *kid)
{
	char name[PATH_MAX];
	json_t *jwks;
	json_t *jwk;
	size_t i;
	int count = 0;

	(void)snprintf(name, sizeof(name), "%s/jwks.json", dir);
	jwks = load_json(name);
	json_array_foreach(json_object_get(jwks, "keys"), i, jwk)
		count += strcmp(json_string_value(json_object_get(jwk, "kid")),
				kid) == 0;
	json_decref(jwks);
	return count;
}

static void test_oidc_export(void)
{
	char dir[PATH_MAX];
	json_t *doc;
	struct stat st;

	tmp_path(dir, sizeof(dir), "www");
	CHECK_INT(kh_oidc_export(ISSUER, rsa_key, NULL, 3600, NOW, dir, NULL),
		  0);
	doc = load_json("www/.well-known/openid-configuration");
	CHECK(doc != NULL);
	CHECK_STR(json_string_value(json_object_get(doc, "issuer")), ISSUER);
	CHECK_STR(json_string_value(json_object_get(doc, "jwks_uri")),
		  ISSUER "/jwks.json");
	CHECK_STR(json_string_value(json_array_get(
			  json_object_get(doc,
					  "id_token_signing_alg_values_supported"),
			  0)),
		  "RS256");
	json_decref(doc);
	CHECK_INT(jwks_count_kid("www", kh_fed_key_kid(rsa_key)), 1);
	tmp_path(dir, sizeof(dir), "www/jwks.json");
	CHECK_INT(stat(dir, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0644);
}

/* A web server must read what export writes, whatever the umask. */
static void test_oidc_export_umask(void)
{
	static const char *const dirs[] = { "www077", "www077/.well-known",
					    "retired077" };
	static const char *const files[] = {
		"www077/jwks.json", "www077/.well-known/openid-configuration",
	};
	char name[128];
	char path[PATH_MAX];
	char retired[PATH_MAX];
	struct stat st;
	mode_t old = umask(077);

	tmp_path(path, sizeof(path), "www077");
	tmp_path(retired, sizeof(retired), "retired077");
	CHECK_INT(kh_fed_key_retire(ec_key, retired, NOW, NULL), 0);
	CHECK_INT(kh_oidc_export(ISSUER, rsa_key, retired, 3600, NOW, path,
				 NULL), 0);
	(void)umask(old);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		tmp_path(path, sizeof(path), dirs[i]);
		CHECK_INT(stat(path, &st), 0);
		CHECK_INT(st.st_mode & 07777, 0755);
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		tmp_path(path, sizeof(path), files[i]);
		CHECK_INT(stat(path, &st), 0);
		CHECK_INT(st.st_mode & 07777, 0644);
	}
	(void)snprintf(name, sizeof(name), "retired077/%s.json",
		       kh_fed_key_kid(ec_key));
	tmp_path(path, sizeof(path), name);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0644);
}

static void test_oidc_rejects_issuer(void)
{
	static const char *const bad[] = {
		"http://issuer.example.test", "https://", "https://a/b/",
		"https://a?x=1", "https://a#f", "https://a b", "issuer",
	};
	char dir[PATH_MAX];
	struct kh_err err = { { 0 } };

	tmp_path(dir, sizeof(dir), "bad-issuer");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(kh_oidc_export(bad[i], rsa_key, NULL, 0, NOW, dir,
					 &err),
			  -EINVAL);
	CHECK(access(dir, F_OK) != 0);
	CHECK_INT(kh_oidc_export(ISSUER, rsa_key, NULL, -1, NOW, dir, &err),
		  -EINVAL);
}

/* A retired key stays published for the overlap, then drops out. */
static void test_oidc_rotation_overlap(void)
{
	char retired[PATH_MAX];
	char dir[PATH_MAX];

	tmp_path(retired, sizeof(retired), "retired");
	tmp_path(dir, sizeof(dir), "rot");
	CHECK_INT(kh_fed_key_retire(rsa_key, retired, NOW, NULL), 0);
	CHECK_INT(kh_fed_key_retire(rsa_key, retired, NOW, NULL), -EEXIST);

	CHECK_INT(kh_oidc_export(ISSUER, ec_key, retired, 3600, NOW + 3599,
				 dir, NULL),
		  0);
	CHECK_INT(jwks_count_kid("rot", kh_fed_key_kid(rsa_key)), 1);
	CHECK_INT(jwks_count_kid("rot", kh_fed_key_kid(ec_key)), 1);

	CHECK_INT(kh_oidc_export(ISSUER, ec_key, retired, 3600, NOW + 3600,
				 dir, NULL),
		  0);
	CHECK_INT(jwks_count_kid("rot", kh_fed_key_kid(rsa_key)), 0);
	CHECK_INT(jwks_count_kid("rot", kh_fed_key_kid(ec_key)), 1);
}

/* A retired file that was edited or contains a private member is rejected. */
static void test_oidc_rejects_bad_retired(void)
{
	char retired[PATH_MAX];
	char dir[PATH_MAX];
	char name[PATH_MAX];
	struct kh_err err = { { 0 } };
	json_t *jwk = kh_fed_key_public_jwk(ec_key);
	char *text;

	tmp_path(retired, sizeof(retired), "retired-bad");
	tmp_path(dir, sizeof(dir), "www-bad");
	CHECK(mkdir(retired, 0755) == 0);
	json_object_set_new(jwk, "d", json_string("c2VjcmV0"));
	text = json_dumps(jwk, 0);
	(void)snprintf(name, sizeof(name), "retired-bad/%s.json",
		       kh_fed_key_kid(ec_key));
	{
		char record[4096];

		(void)snprintf(record, sizeof(record),
			       "{\"jwk\": %s, \"retired_at\": %d}", text, NOW);
		write_text(name, record, 0644);
	}
	CHECK_INT(kh_oidc_export(ISSUER, rsa_key, retired, 3600, NOW, dir,
				 &err),
		  -EINVAL);
	CHECK(strstr(err.msg, "\"d\"") != NULL);

	/* The same record under another key's name has the wrong thumbprint. */
	(void)json_object_del(jwk, "d");
	free(text);
	text = json_dumps(jwk, 0);
	{
		char record[4096];
		char path[PATH_MAX];

		tmp_path(path, sizeof(path), name);
		(void)unlink(path);
		(void)snprintf(name, sizeof(name), "retired-bad/%s.json",
			       RFC_KID);
		(void)snprintf(record, sizeof(record),
			       "{\"jwk\": %s, \"retired_at\": %d}", text, NOW);
		write_text(name, record, 0644);
	}
	CHECK_INT(kh_oidc_export(ISSUER, rsa_key, retired, 3600, NOW, dir,
				 &err),
		  -EINVAL);
	CHECK(strstr(err.msg, "does not match") != NULL);
	free(text);
	json_decref(jwk);
}

static const struct kh_test_case cases[] = {
	{ "rs256 verifies", test_rs256_verifies },
	{ "es256 verifies", test_es256_verifies },
	{ "es256 signature length", test_es256_signature_length },
	{ "rs256 signature length", test_rs256_signature_length },
	{ "claims", test_claims },
	{ "claims without permit", test_claims_without_permit },
	{ "lifetime cap", test_lifetime_cap },
	{ "claims required", test_claims_required },
	{ "thumbprint vector", test_thumbprint_vector },
	{ "public jwk members", test_public_jwk_members },
	{ "save load modes", test_save_load_modes },
	{ "save load es256", test_save_load_es256 },
	{ "load rejects bad files", test_load_rejects_bad_files },
	{ "oidc export", test_oidc_export },
	{ "oidc export umask", test_oidc_export_umask },
	{ "oidc rejects issuer", test_oidc_rejects_issuer },
	{ "oidc rotation overlap", test_oidc_rotation_overlap },
	{ "oidc rejects bad retired", test_oidc_rejects_bad_retired },
};

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	int rc;

	if (snprintf(tmp_dir, sizeof(tmp_dir), "%s/kh-fed.XXXXXX",
		     base && *base ? base : "/tmp") >= (int)sizeof(tmp_dir) ||
	    !mkdtemp(tmp_dir)) {
		perror("mkdtemp");
		return 1;
	}
	umask(022);
	if (kh_fed_key_generate(KH_FED_RS256, &rsa_key, NULL) < 0 ||
	    kh_fed_key_generate(KH_FED_ES256, &ec_key, NULL) < 0) {
		fprintf(stderr, "cannot generate the test keys\n");
		return 1;
	}
	rc = KH_TEST_RUN("federation", cases);
	kh_fed_key_free(rsa_key);
	kh_fed_key_free(ec_key);
	(void)nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
