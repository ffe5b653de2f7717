/*
 * Ed25519 keys stored as JWK (RFC 8037). The libsodium secret key (seed
 * followed by the public key) and every copy of the seed, raw or base64,
 * live in sodium_malloc memory and are wiped at their last use.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jwk_thumbprint.h"
#include "keyfile.h"
#include "keyhole/canon.h"
#include "keyhole/key.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* Buffer size for 32 bytes as base64url plus the NUL: 43 + 1. */
#define B64_KEY_SIZE sodium_base64_ENCODED_LEN(32, B64URL)

/* Largest JWK file read, in bytes. A key with every allowed member is ~250. */
#define JWK_FILE_MAX 4096

/* Largest private JWK text: five members of at most 43 characters each. */
#define PRIVATE_JWK_MAX 512

/* Decodes text as unpadded base64url into exactly len bytes. */
static int b64url_decode_exact(const char *text, size_t text_len,
			       unsigned char *bin, size_t len)
{
	size_t bin_len = 0;

	/* A NULL b64_end makes libsodium reject any character it cannot
	 * decode, and it also rejects non-zero trailing bits, so exactly
	 * one text maps to each key. */
	if (sodium_base642bin(bin, len, text, text_len, NULL, &bin_len, NULL,
			      B64URL) != 0)
		return -EINVAL;
	return bin_len == len ? 0 : -EINVAL;
}

/* Computes the RFC 7638 thumbprint: base64url(SHA-256(JCS({crv,kty,x}))). */
static int compute_kid(const unsigned char public_key[32],
		       char kid[KH_KID_LEN + 1], struct kh_err *err)
{
	char x[B64_KEY_SIZE];
	json_t *members;
	int rc;

	sodium_bin2base64(x, sizeof(x), public_key, 32, B64URL);
	members = json_pack("{s:s, s:s, s:s}", "crv", "Ed25519", "kty", "OKP",
			    "x", x);
	if (!members) {
		kh_err_set(err, "out of memory building the JWK thumbprint");
		return -ENOMEM;
	}
	rc = kh_jwk_thumbprint(members, kid, err);
	json_decref(members);
	return rc;
}

/* Allocates a key, with a secret buffer only when with_secret is set. */
static int key_alloc(bool with_secret, struct kh_key **out)
{
	struct kh_key *key = calloc(1, sizeof(*key));

	if (!key)
		return -ENOMEM;
	if (with_secret) {
		key->secret = sodium_malloc(crypto_sign_SECRETKEYBYTES);
		if (!key->secret) {
			free(key);
			return -ENOMEM;
		}
	}
	*out = key;
	return 0;
}

int kh_key_generate(struct kh_key **out, struct kh_err *err)
{
	struct kh_key *key = NULL;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (sodium_init() < 0) {
		kh_err_set(err, "libsodium failed to initialise");
		return -EIO;
	}

	rc = key_alloc(true, &key);
	if (rc < 0) {
		kh_err_set(err, "out of memory allocating a key");
		goto out;
	}
	crypto_sign_keypair(key->public_key, key->secret);
	(void)sodium_mprotect_readonly(key->secret);

	rc = compute_kid(key->public_key, key->kid, err);
	if (rc < 0)
		goto out;
	*out = key;
	key = NULL;
out:
	kh_key_free(key);
	return rc;
}

/* Compares a string member with expected, NUL bytes included. */
static bool member_is(const json_t *value, const char *expected)
{
	return json_is_string(value) &&
	       json_string_length(value) == strlen(expected) &&
	       memcmp(json_string_value(value), expected,
		      strlen(expected)) == 0;
}

/* Rejects members outside RFC 8037's OKP set plus "kid", "use", "alg". */
static int check_jwk_members(json_t *jwk, struct kh_err *err)
{
	static const char *const allowed[] = {"kty", "crv", "x", "d",
					      "kid", "use", "alg"};
	const char *name;
	json_t *value;

	json_object_foreach(jwk, name, value) {
		bool known = false;

		for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]);
		     i++)
			known = known || strcmp(name, allowed[i]) == 0;
		if (!known) {
			kh_err_set(err,
				   "unknown JWK member \"%.64s\"; remove it",
				   name);
			return -EINVAL;
		}
	}
	if (!member_is(json_object_get(jwk, "kty"), "OKP") ||
	    !member_is(json_object_get(jwk, "crv"), "Ed25519")) {
		kh_err_set(err, "JWK must have \"kty\":\"OKP\" and "
				"\"crv\":\"Ed25519\"");
		return -EINVAL;
	}
	if ((json_object_get(jwk, "use") &&
	     !member_is(json_object_get(jwk, "use"), "sig")) ||
	    (json_object_get(jwk, "alg") &&
	     !member_is(json_object_get(jwk, "alg"), "EdDSA"))) {
		kh_err_set(err, "JWK \"use\" must be \"sig\" and \"alg\" "
				"must be \"EdDSA\" when present");
		return -EINVAL;
	}
	return 0;
}

/* Rebuilds the secret key from "d" and checks that it matches "x". */
static int load_seed(const json_t *d, struct kh_key *key, struct kh_err *err)
{
	unsigned char derived[crypto_sign_PUBLICKEYBYTES];
	unsigned char *seed = NULL;
	int rc;

	seed = sodium_malloc(crypto_sign_SEEDBYTES);
	if (!seed) {
		kh_err_set(err, "out of memory loading the private key");
		return -ENOMEM;
	}
	if (!json_is_string(d) ||
	    b64url_decode_exact(json_string_value(d), json_string_length(d),
				seed, crypto_sign_SEEDBYTES) < 0) {
		kh_err_set(err, "JWK \"d\" must be 32 bytes as unpadded "
				"base64url");
		rc = -EINVAL;
		goto out;
	}

	crypto_sign_seed_keypair(derived, key->secret, seed);
	(void)sodium_mprotect_readonly(key->secret);
	if (memcmp(derived, key->public_key, sizeof(derived)) != 0) {
		kh_err_set(err, "JWK \"x\" is not the public key of \"d\"; "
				"regenerate the key pair");
		rc = -EINVAL;
		goto out;
	}
	rc = 0;
out:
	sodium_free(seed);
	return rc;
}

/* Fills a key allocated for jwk from its members (see kh_key_load). */
static int parse_jwk(json_t *jwk, struct kh_key *key, struct kh_err *err)
{
	const json_t *x = json_object_get(jwk, "x");
	const json_t *d = json_object_get(jwk, "d");
	const json_t *kid = json_object_get(jwk, "kid");
	int rc;

	rc = check_jwk_members(jwk, err);
	if (rc < 0)
		return rc;
	if (!json_is_string(x) ||
	    b64url_decode_exact(json_string_value(x), json_string_length(x),
				key->public_key, sizeof(key->public_key)) < 0) {
		kh_err_set(err, "JWK \"x\" must be 32 bytes as unpadded "
				"base64url");
		return -EINVAL;
	}
	if (d) {
		rc = load_seed(d, key, err);
		if (rc < 0)
			return rc;
	}

	rc = compute_kid(key->public_key, key->kid, err);
	if (rc < 0)
		return rc;
	if (kid && !member_is(kid, key->kid)) {
		kh_err_set(err, "JWK \"kid\" does not match the RFC 7638 "
				"thumbprint %s; fix or remove \"kid\"",
			   key->kid);
		return -EINVAL;
	}
	return 0;
}

/* Zeroes a string member in place before jansson frees it. */
static void wipe_member(json_t *jwk, const char *name)
{
	json_t *value = json_object_get(jwk, name);

	/* The cast is safe: jwk is owned here and about to be released. */
	if (json_is_string(value))
		sodium_memzero((char *)json_string_value(value),
			       json_string_length(value));
}

/*
 * Replaces a JSON syntax error with its line and column only. The
 * parser's message quotes a JSON path, which can contain the seed when
 * a damaged file puts "d"'s value where a member name belongs.
 */
static void redact_parse_error(struct kh_err *err)
{
	char where[64] = "";
	const char *start;
	size_t len;

	if (!err)
		return;
	start = strstr(err->msg, "(line ");
	len = start ? strcspn(start, ")") : 0;
	if (start && start[len] == ')' && len + 1 < sizeof(where))
		memcpy(where, start, len + 1);
	kh_err_set(err, "invalid JSON%s%s; the parser's message is withheld "
			"because it may quote the private key",
		   where[0] ? " " : "", where);
}

/* Parses the text of a JWK file whose metadata is st into a new key. */
static int key_from_text(const char *text, size_t len, const struct stat *st,
			 struct kh_key **out, struct kh_err *err)
{
	struct kh_key *key = NULL;
	json_t *jwk = NULL;
	bool is_private;
	int rc;

	rc = kh_json_parse(text, len, &jwk, err);
	if (rc < 0) {
		redact_parse_error(err);
		return rc;
	}
	if (!json_is_object(jwk)) {
		kh_err_set(err, "a JWK must be a JSON object");
		rc = -EINVAL;
		goto out;
	}

	is_private = json_object_get(jwk, "d") != NULL;
	if (is_private) {
		rc = kh_keyfile_check_private(st, err);
		if (rc < 0)
			goto out;
	}
	rc = key_alloc(is_private, &key);
	if (rc < 0) {
		kh_err_set(err, "out of memory allocating a key");
		goto out;
	}
	rc = parse_jwk(jwk, key, err);
	if (rc < 0)
		goto out;
	*out = key;
	key = NULL;
out:
	wipe_member(jwk, "d");
	json_decref(jwk);
	kh_key_free(key);
	return rc;
}

/*
 * NOTE: the "d" string is wiped in the parsed tree and in the file buffer,
 * but scratch copies that jansson's parser makes in malloc memory are
 * freed without being wiped.
 */
int kh_key_load(const char *path, struct kh_key **out, struct kh_err *err)
{
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc;

	if (!out || !path)
		return -EINVAL;
	*out = NULL;
	rc = kh_keyfile_read(path, JWK_FILE_MAX, false, "a JWK", &text, &len,
			     &st, err);
	if (rc == 0)
		rc = key_from_text(text, len, &st, out, err);
	if (rc < 0)
		kh_err_prefix(err, "%s", path);
	sodium_free(text);
	return rc;
}

int kh_key_public_jwk(const struct kh_key *key, struct json_t **out)
{
	char x[B64_KEY_SIZE];

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!key)
		return -EINVAL;

	sodium_bin2base64(x, sizeof(x), key->public_key,
			  sizeof(key->public_key), B64URL);
	*out = json_pack("{s:s, s:s, s:s, s:s}", "crv", "Ed25519", "kid",
			 key->kid, "kty", "OKP", "x", x);
	return *out ? 0 : -ENOMEM;
}

int kh_key_from_public_jwk(const struct json_t *jwk, struct kh_key **out,
			   struct kh_err *err)
{
	struct kh_key *key = NULL;
	json_t *copy;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!json_is_object(jwk)) {
		kh_err_set(err, "public key: expected a JWK object");
		return -EINVAL;
	}
	if (json_object_get(jwk, "d")) {
		kh_err_set(err, "public key: JWK carries a private key (\"d\")");
		return -EINVAL;
	}
	copy = json_deep_copy(jwk);
	if (!copy || key_alloc(false, &key) < 0) {
		json_decref(copy);
		return -ENOMEM;
	}
	rc = parse_jwk(copy, key, err);
	json_decref(copy);
	if (rc < 0) {
		kh_key_free(key);
		return rc;
	}
	*out = key;
	return 0;
}

/*
 * Formats the private JWK into text (sodium_malloc, PRIVATE_JWK_MAX)
 * with its members in JCS order. It is written with snprintf rather
 * than jansson so that the base64 seed never leaves sodium_malloc
 * memory. Every value is base64url, so none needs JSON escaping.
 */
static int format_private_jwk(const struct kh_key *key, char *text,
			      size_t *len)
{
	char x[B64_KEY_SIZE];
	char *d = NULL;
	int n;

	d = sodium_malloc(B64_KEY_SIZE);
	if (!d)
		return -ENOMEM;
	/* The first 32 bytes of a libsodium secret key are the seed. */
	sodium_bin2base64(d, B64_KEY_SIZE, key->secret, crypto_sign_SEEDBYTES,
			  B64URL);
	sodium_bin2base64(x, sizeof(x), key->public_key,
			  sizeof(key->public_key), B64URL);

	n = snprintf(text, PRIVATE_JWK_MAX,
		     "{\"crv\":\"Ed25519\",\"d\":\"%s\",\"kid\":\"%s\","
		     "\"kty\":\"OKP\",\"x\":\"%s\"}\n",
		     d, key->kid, x);
	sodium_free(d);
	if (n < 0 || n >= PRIVATE_JWK_MAX)
		return -EOVERFLOW;
	*len = (size_t)n;
	return 0;
}

/* Writes the public JWK of key to path, canonical, mode 0644. */
static int save_public(const struct kh_key *key, const char *path,
		       struct kh_err *err)
{
	json_t *jwk = NULL;
	int rc;

	rc = kh_key_public_jwk(key, &jwk);
	if (rc < 0) {
		kh_err_set(err, "out of memory building the public JWK");
		return rc;
	}
	rc = kh_keyfile_write_jwk(path, jwk, err);
	json_decref(jwk);
	return rc;
}

int kh_key_save(const struct kh_key *key, const char *private_path,
		const char *public_path, struct kh_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (!key || !key->secret || !private_path || !public_path) {
		kh_err_set(err, "saving a key needs a private key and both "
				"file paths");
		return -EINVAL;
	}
	if (sodium_init() < 0) {
		kh_err_set(err, "libsodium failed to initialise");
		return -EIO;
	}

	text = sodium_malloc(PRIVATE_JWK_MAX);
	if (!text) {
		kh_err_set(err, "out of memory");
		return -ENOMEM;
	}
	rc = format_private_jwk(key, text, &len);
	if (rc < 0) {
		kh_err_set(err, "cannot format the private JWK");
		goto out;
	}
	rc = kh_keyfile_write(private_path, text, len, 0600, err);
	if (rc < 0)
		goto out;
	rc = save_public(key, public_path, err);
	if (rc < 0)
		(void)unlink(private_path);
out:
	sodium_free(text);
	return rc;
}

int kh_key_sign(const struct kh_key *key, const void *data, size_t len,
		unsigned char sig[64])
{
	if (!key || !sig || (!data && len > 0))
		return -EINVAL;
	if (!key->secret)
		return -EPERM;
	if (sodium_init() < 0)
		return -EIO;

	crypto_sign_detached(sig, NULL, data, len, key->secret);
	return 0;
}

int kh_key_verify(const struct kh_key *key, const void *data, size_t len,
		  const unsigned char sig[64])
{
	if (!key || !sig || (!data && len > 0))
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;

	if (crypto_sign_verify_detached(sig, data, len, key->public_key) != 0)
		return -EBADMSG;
	return 0;
}

void kh_key_free(struct kh_key *key)
{
	if (!key)
		return;
	/* sodium_free makes the pages writable and zeroes them first. */
	sodium_free(key->secret);
	free(key);
}
