/*
 * Permits as JWS compact tokens (RFC 7515): base64url(header) "."
 * base64url(payload) "." base64url(Ed25519 signature), where the header
 * and payload are canonical JSON and the signature covers the first two
 * segments as ASCII.
 */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "keyhole/canon.h"
#include "keyhole/permit.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

#define PERMIT_ALG "EdDSA"
#define PERMIT_TYP "keyhole-permit+jwt"

/* An Ed25519 signature as unpadded base64url: 86 characters. */
#define SIG_B64_LEN (sodium_base64_ENCODED_LEN(64, B64URL) - 1)

/* Largest valid uid, because (uid_t)-1 means "unchanged" to chown(2). */
#define UID_MAX_VALID 4294967294ULL

static const char *const verdict_words[] = {
	[KH_VERDICT_OK] = "ok",
	[KH_VERDICT_MALFORMED] = "malformed",
	[KH_VERDICT_UNSUPPORTED] = "unsupported alg or typ",
	[KH_VERDICT_UNKNOWN_KID] = "unknown kid",
	[KH_VERDICT_BAD_SIGNATURE] = "bad signature",
	[KH_VERDICT_WRONG_TENANT] = "wrong tenant",
	[KH_VERDICT_WRONG_ENV] = "wrong environment",
	[KH_VERDICT_NOT_YET_VALID] = "not yet valid",
	[KH_VERDICT_EXPIRED] = "expired",
	[KH_VERDICT_SUBJECT_MISMATCH] = "subject mismatch",
	[KH_VERDICT_ACTION_MISMATCH] = "action mismatch",
	[KH_VERDICT_POLICY_CHANGED] = "issued under another policy version",
	[KH_VERDICT_USES_EXHAUSTED] = "uses exhausted",
	[KH_VERDICT_SECRET_NOT_GRANTED] = "secret not granted",
	[KH_VERDICT_REVOKED] = "revoked",
};

const char *kh_verdict_str(enum kh_verdict verdict)
{
	size_t index = (size_t)verdict;

	if (index >= sizeof(verdict_words) / sizeof(verdict_words[0]) ||
	    !verdict_words[index])
		return "unknown verdict";
	return verdict_words[index];
}

/* Returns the value of a non-empty string without NUL bytes, or NULL. */
static const char *string_value(const json_t *value)
{
	if (!json_is_string(value) || json_string_length(value) == 0 ||
	    strlen(json_string_value(value)) != json_string_length(value))
		return NULL;
	return json_string_value(value);
}

static int get_string(const json_t *claims, const char *name,
		      const char **out, struct kh_err *err)
{
	const json_t *value = json_object_get(claims, name);

	*out = string_value(value);
	if (!value) {
		kh_err_set(err, "permit claim \"%s\" is missing", name);
		return -EINVAL;
	}
	if (!*out) {
		kh_err_set(err, "permit claim \"%s\" must be a non-empty "
				"string", name);
		return -EINVAL;
	}
	return 0;
}

static int get_hash(const json_t *claims, const char *name,
		    const char **out, struct kh_err *err)
{
	if (get_string(claims, name, out, err) < 0)
		return -EINVAL;
	if (!kh_hash_is_valid(*out)) {
		kh_err_set(err, "permit claim \"%s\" must be 64 lowercase hex "
				"digits", name);
		return -EINVAL;
	}
	return 0;
}

static int get_time(const json_t *claims, const char *name, int64_t *out,
		    struct kh_err *err)
{
	const json_t *value = json_object_get(claims, name);

	if (!value) {
		kh_err_set(err, "permit claim \"%s\" is missing", name);
		return -EINVAL;
	}
	if (!json_is_integer(value) || json_integer_value(value) < 0) {
		kh_err_set(err, "permit claim \"%s\" must be a non-negative "
				"integer (unix seconds)", name);
		return -EINVAL;
	}
	*out = (int64_t)json_integer_value(value);
	return 0;
}

/* Parses sub "uid:<n>": decimal digits only, no sign or leading zero. */
static int get_subject(const json_t *claims, uid_t *uid, struct kh_err *err)
{
	const char *sub = NULL;
	const char *digits;
	unsigned long long value;
	char *end = NULL;

	if (get_string(claims, "sub", &sub, err) < 0)
		return -EINVAL;
	if (strncmp(sub, "uid:", 4) != 0)
		goto bad;
	digits = sub + 4;
	if (digits[0] == '\0' || (digits[0] == '0' && digits[1] != '\0'))
		goto bad;
	for (const char *c = digits; *c; c++)
		if (*c < '0' || *c > '9')
			goto bad;

	errno = 0;
	value = strtoull(digits, &end, 10);
	if (errno != 0 || *end != '\0' || value > UID_MAX_VALID)
		goto bad;
	*uid = (uid_t)value;
	return 0;
bad:
	kh_err_set(err, "permit claim \"sub\" is \"%.64s\", expected "
			"\"uid:<decimal uid>\"", sub);
	return -EINVAL;
}

bool kh_permit_jti_is_valid(const char *jti)
{
	unsigned char raw[16];
	size_t decoded = 0;

	/* 22 characters that decode strictly are exactly 16 bytes. */
	return jti && strlen(jti) == KH_JTI_LEN &&
	       sodium_base642bin(raw, sizeof(raw), jti, KH_JTI_LEN, NULL,
				 &decoded, NULL, B64URL) == 0 &&
	       decoded == sizeof(raw);
}

/* Checks that jti is 128 bits written as 22 canonical base64url characters. */
static int get_jti(const json_t *claims, const char **out, struct kh_err *err)
{
	if (get_string(claims, "jti", out, err) < 0)
		return -EINVAL;
	if (!kh_permit_jti_is_valid(*out)) {
		kh_err_set(err, "permit claim \"jti\" must be %d base64url "
				"characters (128 bits)", KH_JTI_LEN);
		return -EINVAL;
	}
	return 0;
}

/* Checks grants: exactly {"secrets": [strings], "uses": 1..2^32-1}. */
static int get_grants(const json_t *claims, struct kh_permit *out,
		      struct kh_err *err)
{
	const json_t *grants = json_object_get(claims, "grants");
	const json_t *secrets = json_object_get(grants, "secrets");
	const json_t *uses = json_object_get(grants, "uses");
	const json_t *secret;
	size_t i;

	if (!json_is_object(grants) || json_object_size(grants) != 2 ||
	    !json_is_array(secrets) || !json_is_integer(uses)) {
		kh_err_set(err, "permit claim \"grants\" must be an object "
				"with exactly \"secrets\" (array) and "
				"\"uses\" (integer)");
		return -EINVAL;
	}
	json_array_foreach(secrets, i, secret) {
		if (!string_value(secret)) {
			kh_err_set(err, "permit claim \"grants.secrets[%zu]\" "
					"must be a non-empty string", i);
			return -EINVAL;
		}
	}
	if (json_integer_value(uses) < 1 ||
	    json_integer_value(uses) > (json_int_t)UINT32_MAX) {
		kh_err_set(err, "permit claim \"grants.uses\" is %lld; it "
				"must be between 1 and %u",
			   (long long)json_integer_value(uses), UINT32_MAX);
		return -EINVAL;
	}
	out->secrets = secrets;
	out->uses = (uint32_t)json_integer_value(uses);
	return 0;
}

/* Rejects claims outside the permit schema, so nothing is ignored. */
static int check_claim_names(const json_t *claims, struct kh_err *err)
{
	static const char *const known[] = {
		"iss", "sub", "tenant", "env", "hA", "hP", "hS", "iat", "exp",
		"jti", "rule", "grants", "constraints", "sid",
	};
	const char *name;
	const json_t *value;

	/* The cast is safe because the object is only read (jansson has no
	 * const iterator). */
	json_object_foreach((json_t *)claims, name, value) {
		bool found = false;

		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			found = found || strcmp(name, known[i]) == 0;
		if (!found) {
			kh_err_set(err, "unknown permit claim \"%.64s\"", name);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * Type-checks every claim of a permit payload and points out's fields
 * into claims. Both mint and decode use it, so that a minted permit
 * always decodes.
 */
static int read_claims(const json_t *claims, struct kh_permit *out,
		       struct kh_err *err)
{
	const json_t *sid = json_object_get(claims, "sid");

	if (!json_is_object(claims)) {
		kh_err_set(err, "permit claims must be a JSON object");
		return -EINVAL;
	}
	if (check_claim_names(claims, err) < 0 ||
	    get_string(claims, "iss", &out->iss, err) < 0 ||
	    get_subject(claims, &out->uid, err) < 0 ||
	    get_string(claims, "tenant", &out->tenant, err) < 0 ||
	    get_string(claims, "env", &out->env, err) < 0 ||
	    get_hash(claims, "hA", &out->hA, err) < 0 ||
	    get_hash(claims, "hP", &out->hP, err) < 0 ||
	    get_hash(claims, "hS", &out->hS, err) < 0 ||
	    get_time(claims, "iat", &out->iat, err) < 0 ||
	    get_time(claims, "exp", &out->exp, err) < 0 ||
	    get_jti(claims, &out->jti, err) < 0 ||
	    get_string(claims, "rule", &out->rule, err) < 0 ||
	    get_grants(claims, out, err) < 0)
		return -EINVAL;

	if (out->exp <= out->iat) {
		kh_err_set(err, "permit claim \"exp\" (%lld) must be after "
				"\"iat\" (%lld)",
			   (long long)out->exp, (long long)out->iat);
		return -EINVAL;
	}
	if (!json_is_object(json_object_get(claims, "constraints"))) {
		kh_err_set(err, "permit claim \"constraints\" must be an "
				"object");
		return -EINVAL;
	}
	if (sid && !string_value(sid)) {
		kh_err_set(err, "permit claim \"sid\" must be a non-empty "
				"string when present");
		return -EINVAL;
	}
	out->sid = sid ? json_string_value(sid) : NULL;
	return 0;
}

/* Appends bin as base64url at buf + *pos and advances *pos. */
static void append_b64(char *buf, size_t size, size_t *pos, const void *bin,
		       size_t len)
{
	sodium_bin2base64(buf + *pos, size - *pos, bin, len, B64URL);
	*pos += strlen(buf + *pos);
}

/* Writes the canonical header and payload text for a mint. */
static int mint_segments(const struct kh_key *key, const json_t *claims,
			 char **header, size_t *header_len, char **payload,
			 size_t *payload_len, struct kh_err *err)
{
	json_t *object;
	int rc;

	object = json_pack("{s:s, s:s, s:s}", "alg", PERMIT_ALG, "kid",
			   key->kid, "typ", PERMIT_TYP);
	if (!object) {
		kh_err_set(err, "out of memory building the permit header");
		return -ENOMEM;
	}
	rc = kh_canon_dump(object, header, header_len, err);
	json_decref(object);
	if (rc < 0)
		return rc;
	return kh_canon_dump(claims, payload, payload_len, err);
}

/* Encodes header and payload, signs them and returns the compact JWS. */
static int sign_token(const struct kh_key *key, const char *header,
		      size_t header_len, const char *payload,
		      size_t payload_len, char **token, size_t *token_len,
		      struct kh_err *err)
{
	unsigned char sig[crypto_sign_BYTES];
	size_t size, pos = 0;
	char *buf;
	int rc;

	size = sodium_base64_ENCODED_LEN(header_len, B64URL) +
	       sodium_base64_ENCODED_LEN(payload_len, B64URL) + SIG_B64_LEN + 2;
	buf = malloc(size);
	if (!buf) {
		kh_err_set(err, "out of memory building the permit");
		return -ENOMEM;
	}
	append_b64(buf, size, &pos, header, header_len);
	buf[pos++] = '.';
	append_b64(buf, size, &pos, payload, payload_len);

	rc = kh_key_sign(key, buf, pos, sig);
	if (rc < 0) {
		kh_err_set(err, "signing the permit failed: %s", strerror(-rc));
		free(buf);
		return rc;
	}
	buf[pos++] = '.';
	append_b64(buf, size, &pos, sig, sizeof(sig));
	*token = buf;
	*token_len = pos;
	return 0;
}

int kh_permit_mint(const struct kh_key *key, const json_t *claims,
		   char **token, struct kh_err *err)
{
	struct kh_permit parsed = {0};
	char *header = NULL, *payload = NULL, *buf = NULL;
	size_t header_len = 0, payload_len = 0, len = 0;
	int rc;

	if (!token)
		return -EINVAL;
	*token = NULL;
	if (!key || !key->secret) {
		kh_err_set(err, "minting a permit needs a private key");
		return -EPERM;
	}
	if (sodium_init() < 0) {
		kh_err_set(err, "libsodium failed to initialise");
		return -EIO;
	}
	rc = read_claims(claims, &parsed, err);
	if (rc < 0)
		goto out;
	rc = mint_segments(key, claims, &header, &header_len, &payload,
			   &payload_len, err);
	if (rc < 0)
		goto out;
	rc = sign_token(key, header, header_len, payload, payload_len, &buf,
			&len, err);
	if (rc < 0)
		goto out;

	/* A token that kh_permit_decode would reject must not be issued. */
	if (len > KH_PERMIT_MAX) {
		kh_err_set(err, "permit is %zu bytes, more than the %d byte "
				"limit; grant fewer secrets or constraints",
			   len, KH_PERMIT_MAX);
		rc = -E2BIG;
		goto out;
	}
	*token = buf;
	buf = NULL;
out:
	free(buf);
	free(payload);
	free(header);
	return rc;
}

int kh_permit_new_jti(char jti[KH_JTI_LEN + 1])
{
	unsigned char raw[16];

	jti[0] = '\0';
	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(jti, KH_JTI_LEN + 1, raw, sizeof(raw), B64URL);
	return 0;
}

struct segment {
	const char *text;
	size_t len;
};

static bool is_b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Splits token into exactly three base64url segments. */
static int split_token(const char *token, size_t len, struct segment seg[3],
		       struct kh_err *err)
{
	size_t count = 0;
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && token[i] != '.') {
			if (is_b64url_char(token[i]))
				continue;
			kh_err_set(err, "permit has byte 0x%02x at offset %zu; "
					"only unpadded base64url and '.' are "
					"allowed",
				   (unsigned int)(unsigned char)token[i], i);
			return -EINVAL;
		}
		if (count == 3 || i == start) {
			kh_err_set(err, "permit must be three non-empty "
					"segments separated by '.'");
			return -EINVAL;
		}
		seg[count].text = token + start;
		seg[count].len = i - start;
		count++;
		start = i + 1;
	}
	if (count != 3) {
		kh_err_set(err, "permit has %zu segments, expected three "
				"separated by '.'", count);
		return -EINVAL;
	}
	return 0;
}

/* Decodes a segment into a new malloc'd buffer (NUL-terminated). */
static int decode_segment(const struct segment *seg, const char *what,
			  unsigned char **out, size_t *out_len,
			  struct kh_err *err)
{
	size_t max = seg->len / 4 * 3 + 3;
	unsigned char *bin = malloc(max + 1);

	*out = NULL;
	if (!bin) {
		kh_err_set(err, "out of memory decoding the permit");
		return -ENOMEM;
	}
	if (sodium_base642bin(bin, max, seg->text, seg->len, NULL, out_len,
			      NULL, B64URL) != 0) {
		free(bin);
		kh_err_set(err, "permit %s is not canonical unpadded "
				"base64url", what);
		return -EINVAL;
	}
	bin[*out_len] = '\0';
	*out = bin;
	return 0;
}

/*
 * Checks that the header is exactly {"alg","kid","typ"} and copies kid.
 * Extra members, "crit" among them, are MALFORMED: a verifier that
 * ignored a critical extension would accept what the issuer meant to
 * restrict.
 */
static enum kh_verdict check_header(const unsigned char *text, size_t len,
				    char kid[KH_KID_LEN + 1],
				    struct kh_err *err)
{
	enum kh_verdict verdict = KH_VERDICT_MALFORMED;
	json_t *header = NULL;
	const char *alg, *typ, *id;

	if (kh_json_parse((const char *)text, len, &header, err) < 0) {
		kh_err_prefix(err, "permit header");
		goto out;
	}
	alg = string_value(json_object_get(header, "alg"));
	typ = string_value(json_object_get(header, "typ"));
	id = string_value(json_object_get(header, "kid"));
	if (!json_is_object(header) || json_object_size(header) != 3 || !alg ||
	    !typ || !id) {
		kh_err_set(err, "permit header must be exactly {\"alg\", "
				"\"kid\", \"typ\"} with string values");
		goto out;
	}
	if (strcmp(alg, PERMIT_ALG) != 0 || strcmp(typ, PERMIT_TYP) != 0) {
		kh_err_set(err, "permit header has alg \"%.32s\" and typ "
				"\"%.32s\"; only %s and %s are accepted",
			   alg, typ, PERMIT_ALG, PERMIT_TYP);
		verdict = KH_VERDICT_UNSUPPORTED;
		goto out;
	}
	if (strlen(id) != KH_KID_LEN) {
		kh_err_set(err, "permit kid \"%.64s\" is not a key thumbprint",
			   id);
		verdict = KH_VERDICT_UNKNOWN_KID;
		goto out;
	}
	memcpy(kid, id, KH_KID_LEN + 1);
	verdict = KH_VERDICT_OK;
out:
	json_decref(header);
	return verdict;
}

static const struct kh_key *find_key(const struct kh_keyring *ring,
				     const char *kid)
{
	size_t count;

	if (!ring)
		return NULL;
	count = ring->count;
	if (count > sizeof(ring->keys) / sizeof(ring->keys[0]))
		count = sizeof(ring->keys) / sizeof(ring->keys[0]);
	for (size_t i = 0; i < count; i++)
		if (ring->keys[i] && strcmp(ring->keys[i]->kid, kid) == 0)
			return ring->keys[i];
	return NULL;
}

/* Strips the trailing whitespace that a permit file may end with. */
static size_t trimmed_length(const char *token, size_t len)
{
	while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r' ||
			   token[len - 1] == ' ' || token[len - 1] == '\t'))
		len--;
	return len;
}

/* Decodes the structure and the header, and verifies the signature. */
static enum kh_verdict authenticate(const char *token, size_t len,
				    const struct kh_keyring *ring,
				    struct segment seg[3],
				    char kid[KH_KID_LEN + 1],
				    struct kh_err *err)
{
	enum kh_verdict verdict = KH_VERDICT_MALFORMED;
	unsigned char *header = NULL, *sig = NULL;
	size_t header_len = 0, sig_len = 0;
	const struct kh_key *key;

	if (len == 0 || len > KH_PERMIT_MAX) {
		kh_err_set(err, "permit is %zu bytes; it must be 1 to %d",
			   len, KH_PERMIT_MAX);
		goto out;
	}
	if (split_token(token, len, seg, err) < 0 ||
	    decode_segment(&seg[0], "header", &header, &header_len, err) < 0 ||
	    decode_segment(&seg[2], "signature", &sig, &sig_len, err) < 0)
		goto out;
	if (sig_len != crypto_sign_BYTES) {
		kh_err_set(err, "permit signature is %zu bytes, expected %d",
			   sig_len, crypto_sign_BYTES);
		goto out;
	}
	verdict = check_header(header, header_len, kid, err);
	if (verdict != KH_VERDICT_OK)
		goto out;

	key = find_key(ring, kid);
	if (!key) {
		kh_err_set(err, "permit kid %s is not a trusted permit key",
			   kid);
		verdict = KH_VERDICT_UNKNOWN_KID;
		goto out;
	}
	/* The signing input is the first two segments as sent. */
	if (kh_key_verify(key, token, seg[0].len + 1 + seg[1].len, sig) < 0) {
		kh_err_set(err, "permit signature does not verify with key %s",
			   kid);
		verdict = KH_VERDICT_BAD_SIGNATURE;
	}
out:
	free(sig);
	free(header);
	return verdict;
}

enum kh_verdict kh_permit_decode(const char *token, size_t len,
				 const struct kh_keyring *ring,
				 struct kh_permit *out, struct kh_err *err)
{
	enum kh_verdict verdict;
	struct segment seg[3];
	char kid[KH_KID_LEN + 1] = "";
	unsigned char *payload = NULL;
	size_t payload_len = 0;
	json_t *claims = NULL;

	if (!out)
		return KH_VERDICT_MALFORMED;
	memset(out, 0, sizeof(*out));
	if (!token) {
		kh_err_set(err, "no permit given");
		return KH_VERDICT_MALFORMED;
	}
	if (sodium_init() < 0) {
		kh_err_set(err, "libsodium failed to initialise");
		return KH_VERDICT_MALFORMED;
	}

	verdict = authenticate(token, trimmed_length(token, len), ring, seg,
			       kid, err);
	if (verdict != KH_VERDICT_OK)
		goto out;

	/* The payload is parsed only once its signature has verified. */
	verdict = KH_VERDICT_MALFORMED;
	if (decode_segment(&seg[1], "payload", &payload, &payload_len,
			   err) < 0)
		goto out;
	if (kh_json_parse((const char *)payload, payload_len, &claims,
			  err) < 0) {
		kh_err_prefix(err, "permit payload");
		goto out;
	}
	if (read_claims(claims, out, err) < 0)
		goto out;
	memcpy(out->kid, kid, sizeof(out->kid));
	out->claims = claims;
	claims = NULL;
	verdict = KH_VERDICT_OK;
out:
	if (verdict != KH_VERDICT_OK)
		memset(out, 0, sizeof(*out));
	json_decref(claims);
	free(payload);
	return verdict;
}

static bool secret_granted(const json_t *secrets, const char *secret)
{
	const json_t *name;
	size_t i;

	json_array_foreach(secrets, i, name) {
		if (strcmp(json_string_value(name), secret) == 0)
			return true;
	}
	return false;
}

/*
 * Names the first expectation that a check in use needs but that is
 * missing, or returns NULL when every one is present.
 */
static const char *missing_expectation(const struct kh_permit_expect *expect)
{
	static const struct {
		unsigned bit;
		const char *field;
	} strings[] = {
		{ KH_CHECK_TENANT, "tenant" },
		{ KH_CHECK_ENV, "env" },
		{ KH_CHECK_ACTION, "hA" },
		{ KH_CHECK_POLICY, "hP" },
		{ KH_CHECK_SECRET, "secret" },
	};
	const char *values[] = {
		expect->tenant, expect->env, expect->hA, expect->hP,
		expect->secret,
	};

	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		if (!(expect->skip & strings[i].bit) && !values[i])
			return strings[i].field;
	}
	if (!(expect->skip & KH_CHECK_TIME) && expect->now < 0)
		return "now";
	if (!(expect->skip & KH_CHECK_UID) && expect->uid < 0)
		return "uid";
	if (!(expect->skip & KH_CHECK_USES) && expect->uses_spent < 0)
		return "uses_spent";
	return NULL;
}

static bool runs(const struct kh_permit_expect *expect, unsigned check)
{
	return (expect->skip & check) == 0;
}

/* Runs the checks on the permit's own context: tenant, env and time. */
static enum kh_verdict check_context(const struct kh_permit *permit,
				     const struct kh_permit_expect *expect,
				     struct kh_err *err)
{
	if (runs(expect, KH_CHECK_TENANT) &&
	    strcmp(permit->tenant, expect->tenant) != 0) {
		kh_err_set(err, "permit tenant is \"%.64s\", expected "
				"\"%.64s\"", permit->tenant, expect->tenant);
		return KH_VERDICT_WRONG_TENANT;
	}
	if (runs(expect, KH_CHECK_ENV) &&
	    strcmp(permit->env, expect->env) != 0) {
		kh_err_set(err, "permit env is \"%.64s\", expected \"%.64s\"",
			   permit->env, expect->env);
		return KH_VERDICT_WRONG_ENV;
	}
	if (runs(expect, KH_CHECK_TIME) &&
	    permit->iat - KH_PERMIT_SKEW > expect->now) {
		kh_err_set(err, "permit iat %lld is more than %d s after now "
				"(%lld); check the clocks",
			   (long long)permit->iat, KH_PERMIT_SKEW,
			   (long long)expect->now);
		return KH_VERDICT_NOT_YET_VALID;
	}
	if (runs(expect, KH_CHECK_TIME) && permit->exp <= expect->now) {
		kh_err_set(err, "permit expired at %lld (now %lld); request "
				"a new one",
			   (long long)permit->exp, (long long)expect->now);
		return KH_VERDICT_EXPIRED;
	}
	return KH_VERDICT_OK;
}

/* Runs the checks that bind the permit to a caller, action and policy. */
static enum kh_verdict check_binding(const struct kh_permit *permit,
				     const struct kh_permit_expect *expect,
				     struct kh_err *err)
{
	if (runs(expect, KH_CHECK_UID) &&
	    (int64_t)permit->uid != expect->uid) {
		kh_err_set(err, "permit is for uid %u, caller is uid %lld",
			   (unsigned int)permit->uid, (long long)expect->uid);
		return KH_VERDICT_SUBJECT_MISMATCH;
	}
	if (runs(expect, KH_CHECK_ACTION) &&
	    strcmp(permit->hA, expect->hA) != 0) {
		kh_err_set(err, "permit hA %s does not match the action's hA "
				"%.64s", permit->hA, expect->hA);
		return KH_VERDICT_ACTION_MISMATCH;
	}
	if (runs(expect, KH_CHECK_POLICY) &&
	    strcmp(permit->hP, expect->hP) != 0) {
		kh_err_set(err, "permit was issued under policy %s, current "
				"policy is %.64s", permit->hP, expect->hP);
		return KH_VERDICT_POLICY_CHANGED;
	}
	return KH_VERDICT_OK;
}

enum kh_verdict kh_permit_check_all(const struct kh_permit *permit,
				    const struct kh_permit_expect *expect,
				    struct kh_err *err)
{
	enum kh_verdict verdict;
	const char *missing;

	if (!permit || !permit->claims || !expect) {
		kh_err_set(err, "no decoded permit or expectations given");
		return KH_VERDICT_MALFORMED;
	}
	missing = missing_expectation(expect);
	if (missing) {
		kh_err_set(err, "expectation \"%s\" is not set: set it, or add "
				"its KH_CHECK_ bit to skip to skip the check",
			   missing);
		return KH_VERDICT_MALFORMED;
	}
	verdict = check_context(permit, expect, err);
	if (verdict != KH_VERDICT_OK)
		return verdict;
	verdict = check_binding(permit, expect, err);
	if (verdict != KH_VERDICT_OK)
		return verdict;

	if (runs(expect, KH_CHECK_USES) &&
	    expect->uses_spent >= (int64_t)permit->uses) {
		kh_err_set(err, "permit %s has used %lld of %u uses",
			   permit->jti, (long long)expect->uses_spent,
			   (unsigned int)permit->uses);
		return KH_VERDICT_USES_EXHAUSTED;
	}
	if (runs(expect, KH_CHECK_SECRET) &&
	    !secret_granted(permit->secrets, expect->secret)) {
		kh_err_set(err, "permit %s does not grant secret \"%.128s\"",
			   permit->jti, expect->secret);
		return KH_VERDICT_SECRET_NOT_GRANTED;
	}
	if (expect->revoked) {
		kh_err_set(err, "permit %s is revoked", permit->jti);
		return KH_VERDICT_REVOKED;
	}
	return KH_VERDICT_OK;
}

void kh_permit_clear(struct kh_permit *permit)
{
	if (!permit)
		return;
	json_decref(permit->claims);
	memset(permit, 0, sizeof(*permit));
}
