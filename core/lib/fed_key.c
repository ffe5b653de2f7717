/*
 * The broker's federation key: RSA 3072 (RS256) or P-256 (ES256),
 * made and used through OpenSSL libcrypto and stored as a PKCS#8 PEM
 * file. Its public half is published as a JWK whose kid is the RFC 7638
 * thumbprint. The private numbers stay inside OpenSSL's EVP_PKEY; the
 * PEM text passes through keyhole only in sodium_malloc memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fed_internal.h"
#include "jwk_thumbprint.h"
#include "keyfile.h"
#include "keyhole/federation.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* Largest PEM file read, in bytes. An RSA 8192 PKCS#8 PEM is ~6.5 KiB. */
#define PEM_FILE_MAX 16384

/* Smallest RSA modulus accepted from a file, in bits. */
#define RSA_MIN_BITS 2048

/* Bit size of the RSA keys kh_fed_key_generate makes. */
#define RSA_GEN_BITS 3072

/* Byte length of a P-256 coordinate, as a JWK writes it (RFC 7518 6.2.1.2). */
#define P256_COORD_LEN 32

/* Encodes len bytes as unpadded base64url into a new malloc'd string. */
static char *b64url_encode(const unsigned char *bin, size_t len)
{
	size_t size = sodium_base64_ENCODED_LEN(len, B64URL);
	char *text = malloc(size);

	if (text)
		sodium_bin2base64(text, size, bin, len, B64URL);
	return text;
}

/*
 * Reads the big-number parameter name of pkey as unpadded base64url,
 * left-padded with zeros to pad_len bytes (0: minimal length, as RFC
 * 7518 asks for "n" and "e").
 */
static char *bn_param_b64url(const EVP_PKEY *pkey, const char *name,
			     size_t pad_len)
{
	BIGNUM *bn = NULL;
	unsigned char *bin = NULL;
	char *text = NULL;
	int len;

	if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1)
		goto out;
	len = pad_len ? (int)pad_len : BN_num_bytes(bn);
	if (len <= 0 || (pad_len && BN_num_bytes(bn) > (int)pad_len))
		goto out;
	bin = malloc((size_t)len);
	if (!bin || BN_bn2binpad(bn, bin, len) != len)
		goto out;
	text = b64url_encode(bin, (size_t)len);
out:
	free(bin);
	BN_free(bn);
	return text;
}

/*
 * Builds the JWK members RFC 7638 hashes for key: {e,kty,n} or
 * {crv,kty,x,y}. The public JWK adds kid, alg and use to these.
 */
static json_t *required_members(const struct kh_fed_key *key)
{
	char *a = NULL;
	char *b = NULL;
	json_t *jwk = NULL;

	if (key->alg == KH_FED_RS256) {
		a = bn_param_b64url(key->pkey, OSSL_PKEY_PARAM_RSA_N, 0);
		b = bn_param_b64url(key->pkey, OSSL_PKEY_PARAM_RSA_E, 0);
		if (a && b)
			jwk = json_pack("{s:s, s:s, s:s}", "e", b, "kty",
					"RSA", "n", a);
	} else {
		a = bn_param_b64url(key->pkey, OSSL_PKEY_PARAM_EC_PUB_X,
				    P256_COORD_LEN);
		b = bn_param_b64url(key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y,
				    P256_COORD_LEN);
		if (a && b)
			jwk = json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256",
					"kty", "EC", "x", a, "y", b);
	}
	free(a);
	free(b);
	return jwk;
}

int kh_fed_jwk_thumbprint(const json_t *jwk, char kid[KH_KID_LEN + 1],
			  struct kh_err *err)
{
	static const char *const rsa[] = { "e", "kty", "n", NULL };
	static const char *const ec[] = { "crv", "kty", "x", "y", NULL };
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *const *names;
	json_t *members = NULL;
	int rc;

	names = kty && strcmp(kty, "RSA") == 0  ? rsa
		: kty && strcmp(kty, "EC") == 0 ? ec
						: NULL;
	if (!names) {
		kh_err_set(err, "JWK \"kty\" must be \"RSA\" or \"EC\"");
		return -EINVAL;
	}
	members = json_object();
	if (!members) {
		kh_err_set(err, "out of memory building the JWK thumbprint");
		return -ENOMEM;
	}
	for (size_t i = 0; names[i]; i++) {
		json_t *value = json_object_get(jwk, names[i]);

		if (!json_is_string(value)) {
			kh_err_set(err, "JWK member \"%s\" is missing or not a "
					"string", names[i]);
			rc = -EINVAL;
			goto out;
		}
		if (json_object_set(members, names[i], value) != 0) {
			kh_err_set(err, "out of memory building the JWK "
					"thumbprint");
			rc = -ENOMEM;
			goto out;
		}
	}

	rc = kh_jwk_thumbprint(members, kid, err);
out:
	json_decref(members);
	return rc;
}

int kh_fed_jwk_check_public(const json_t *jwk, struct kh_err *err)
{
	static const char *const allowed[] = { "kty", "n", "e", "crv", "x",
					       "y", "kid", "alg", "use" };
	const char *name;
	json_t *value;

	if (!json_is_object(jwk)) {
		kh_err_set(err, "a JWK must be a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)jwk, name, value) {
		bool known = false;

		for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]);
		     i++)
			known = known || strcmp(name, allowed[i]) == 0;
		/* A private member ("d", "p", ...) must never be published. */
		if (!known || !json_is_string(value)) {
			kh_err_set(err, "JWK member \"%.64s\" is not allowed "
					"in a published key; only kty, n, e, "
					"crv, x, y, kid, alg and use are",
				   name);
			return -EINVAL;
		}
	}
	return 0;
}

/* Fills key->kid from key->pkey. */
static int compute_kid(struct kh_fed_key *key, struct kh_err *err)
{
	json_t *members = required_members(key);
	int rc;

	if (!members) {
		kh_err_set(err, "cannot read the public key numbers from "
				"OpenSSL");
		return -EINVAL;
	}
	rc = kh_fed_jwk_thumbprint(members, key->kid, err);
	json_decref(members);
	return rc;
}

/* Wraps pkey (taking ownership) into a new key of alg with its kid. */
static int key_wrap(EVP_PKEY *pkey, enum kh_fed_alg alg,
		    struct kh_fed_key **out, struct kh_err *err)
{
	struct kh_fed_key *key = calloc(1, sizeof(*key));
	int rc;

	if (!key) {
		EVP_PKEY_free(pkey);
		kh_err_set(err, "out of memory allocating a key");
		return -ENOMEM;
	}
	key->alg = alg;
	key->pkey = pkey;
	rc = compute_kid(key, err);
	if (rc < 0) {
		kh_fed_key_free(key);
		return rc;
	}
	*out = key;
	return 0;
}

int kh_fed_key_generate(enum kh_fed_alg alg, struct kh_fed_key **out,
			struct kh_err *err)
{
	EVP_PKEY *pkey;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (alg != KH_FED_RS256 && alg != KH_FED_ES256) {
		kh_err_set(err, "unknown federation algorithm %d; use RS256 "
				"or ES256", (int)alg);
		return -EINVAL;
	}
	if (sodium_init() < 0) {
		kh_err_set(err, "libsodium failed to initialise");
		return -EIO;
	}

	if (alg == KH_FED_RS256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
					 (size_t)RSA_GEN_BITS);
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!pkey) {
		ERR_clear_error();
		kh_err_set(err, "OpenSSL could not generate a %s key",
			   alg == KH_FED_RS256 ? "RSA 3072" : "P-256");
		return -EIO;
	}
	return key_wrap(pkey, alg, out, err);
}

void kh_fed_key_free(struct kh_fed_key *key)
{
	if (!key)
		return;
	/* EVP_PKEY_free clears the private numbers (BN_clear_free). */
	EVP_PKEY_free(key->pkey);
	free(key);
}

enum kh_fed_alg kh_fed_key_alg(const struct kh_fed_key *key)
{
	return key->alg;
}

const char *kh_fed_key_kid(const struct kh_fed_key *key)
{
	return key->kid;
}

json_t *kh_fed_key_public_jwk(const struct kh_fed_key *key)
{
	json_t *jwk;

	if (!key)
		return NULL;
	jwk = required_members(key);
	if (!jwk)
		return NULL;
	if (json_object_set_new(jwk, "kid", json_string(key->kid)) != 0 ||
	    json_object_set_new(jwk, "alg",
				json_string(key->alg == KH_FED_RS256
						    ? "RS256"
						    : "ES256")) != 0 ||
	    json_object_set_new(jwk, "use", json_string("sig")) != 0) {
		json_decref(jwk);
		return NULL;
	}
	return jwk;
}

/*
 * Writes the private key as unencrypted PKCS#8 PEM into a new file
 * created with mode 0600, so no other user can open it at any moment.
 * NOTE: OpenSSL encodes the PEM in its own heap buffers before the
 * write. It clears the DER copy of a private key, but keyhole cannot
 * lock those pages the way sodium_malloc does.
 */
static int save_private(const struct kh_fed_key *key, const char *path,
			struct kh_err *err)
{
	BIO *bio = NULL;
	int fd;
	int rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		rc = -errno;
		kh_err_set(err, "%s: cannot create: %s", path, strerror(-rc));
		return rc;
	}
	bio = BIO_new_fd(fd, BIO_NOCLOSE);
	if (!bio ||
	    PEM_write_bio_PKCS8PrivateKey(bio, key->pkey, NULL, NULL, 0, NULL,
					  NULL) != 1 ||
	    BIO_flush(bio) != 1) {
		ERR_clear_error();
		kh_err_set(err, "%s: OpenSSL could not write the private key",
			   path);
		rc = -EIO;
		goto out;
	}
	if (fsync(fd) < 0) {
		rc = -errno;
		kh_err_set(err, "%s: fsync failed: %s", path, strerror(-rc));
	}
out:
	BIO_free(bio);
	if (close(fd) < 0 && rc == 0) {
		rc = -errno;
		kh_err_set(err, "%s: close failed: %s", path, strerror(-rc));
	}
	if (rc < 0)
		(void)unlink(path);
	return rc;
}

/* Writes the public JWK as one canonical JSON line, mode 0644. */
static int save_public(const struct kh_fed_key *key, const char *path,
		       struct kh_err *err)
{
	json_t *jwk = kh_fed_key_public_jwk(key);
	int rc;

	if (!jwk) {
		kh_err_set(err, "out of memory building the public JWK");
		return -ENOMEM;
	}
	rc = kh_keyfile_write_jwk(path, jwk, err);
	json_decref(jwk);
	return rc;
}

int kh_fed_key_save(const struct kh_fed_key *key, const char *private_path,
		    const char *public_path, struct kh_err *err)
{
	struct stat st;
	int rc;

	if (!key || !private_path || !public_path) {
		kh_err_set(err, "saving a federation key needs the key and "
				"both file paths");
		return -EINVAL;
	}
	/* Checked first so that a refusal leaves no new private file. */
	if (lstat(public_path, &st) == 0) {
		kh_err_set(err, "%s: file exists; keyhole never overwrites "
				"a key file", public_path);
		return -EEXIST;
	}

	rc = save_private(key, private_path, err);
	if (rc < 0)
		return rc;
	rc = save_public(key, public_path, err);
	if (rc < 0)
		(void)unlink(private_path);
	return rc;
}

/* An encrypted PEM has no passphrase to give: the load fails. */
static int no_passphrase(char *buf, int size, int rwflag, void *data)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)data;
	return -1;
}

/* Maps a loaded key to RS256 or ES256, rejecting anything else. */
static int key_alg_of(const EVP_PKEY *pkey, enum kh_fed_alg *alg,
		      struct kh_err *err)
{
	char group[64] = "";

	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
			kh_err_set(err, "RSA key has %d bits; RS256 needs at "
					"least %d (keyhole keygen --federation "
					"makes %d)", EVP_PKEY_get_bits(pkey),
				   RSA_MIN_BITS, RSA_GEN_BITS);
			return -EINVAL;
		}
		*alg = KH_FED_RS256;
		return 0;
	}
	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) == 1 &&
	    (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
		*alg = KH_FED_ES256;
		return 0;
	}
	kh_err_set(err, "key type %s is not supported; federation keys are "
			"RSA (RS256) or EC P-256 (ES256)",
		   EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey)
						  : "unknown");
	return -EINVAL;
}

/* Parses PEM text into a new key. */
static int key_from_pem(const char *text, size_t len,
			struct kh_fed_key **out, struct kh_err *err)
{
	enum kh_fed_alg alg = KH_FED_RS256;
	EVP_PKEY *pkey = NULL;
	BIO *bio;
	int rc;

	/* A read-only memory BIO reads text in place, without a copy. */
	bio = BIO_new_mem_buf(text, (int)len);
	if (!bio) {
		kh_err_set(err, "out of memory");
		return -ENOMEM;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (!pkey) {
		kh_err_set(err, "not an unencrypted PEM private key; make one "
				"with keyhole keygen --federation");
		return -EINVAL;
	}
	rc = key_alg_of(pkey, &alg, err);
	if (rc < 0) {
		EVP_PKEY_free(pkey);
		return rc;
	}
	return key_wrap(pkey, alg, out, err);
}

int kh_fed_key_load(const char *path, struct kh_fed_key **out,
		    struct kh_err *err)
{
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc;

	if (!out || !path)
		return -EINVAL;
	*out = NULL;
	rc = kh_keyfile_read(path, PEM_FILE_MAX, true, "a federation key",
			     &text, &len, &st, err);
	if (rc == 0)
		rc = key_from_pem(text, len, out, err);
	if (rc < 0)
		kh_err_prefix(err, "%s", path);
	sodium_free(text);
	return rc;
}
