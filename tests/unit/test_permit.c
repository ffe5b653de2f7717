/*
 * Permits: the verification matrix (a forged or mismatched token for
 * every verdict, plus valid ones), minting, the verdict wording, and
 * interoperability with an independent JOSE verifier (Node.js crypto).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "keyhole/canon.h"
#include "keyhole/key.h"
#include "keyhole/permit.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* The verifier's clock in every case: 2023-11-14T22:13:20Z. */
#define NOW 1700000000

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HASH_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define HASH_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define JTI "AAAAAAAAAAAAAAAAAAAAAA"
#define SECRET "local/report.netrc"

/* Valid claims, with iat at NOW and exp at NOW + 60. */
static const char base_claims[] =
	"{\"iss\":\"broker-test\",\"sub\":\"uid:1000\",\"tenant\":\"acme\","
	"\"env\":\"prod\",\"hA\":\"" HASH_A "\",\"hP\":\"" HASH_B "\","
	"\"hS\":\"" HASH_C "\",\"iat\":1700000000,\"exp\":1700000060,"
	"\"jti\":\"" JTI "\",\"rule\":\"curl-report\","
	"\"grants\":{\"secrets\":[\"" SECRET "\"],\"uses\":1},"
	"\"constraints\":{\"ttl\":60}}";

/* "@KID@" in a header template stands for the signer's kid. */
static const char standard_header[] =
	"{\"alg\":\"EdDSA\",\"kid\":\"@KID@\",\"typ\":\"keyhole-permit+jwt\"}";

static struct kh_key *trusted_key;
static struct kh_key *other_key;

enum signer {
	SIGN_TRUSTED = 0, /* trusted key, its own kid */
	SIGN_OTHER,       /* untrusted key, its own kid */
	SIGN_OTHER_AS_TRUSTED, /* untrusted key, the trusted key's kid */
};

enum token_edit {
	EDIT_NONE = 0,
	EDIT_FLIP_PAYLOAD_BIT,
	EDIT_FLIP_SIG_BIT,
	EDIT_DROP_SIG,
	EDIT_EXTRA_SEGMENT,
	EDIT_EMPTY_SEGMENT,
	EDIT_PAD_SIG,
	EDIT_PLUS_CHAR,
	EDIT_NUL_BYTE,
	EDIT_SHORT_SIG,
	EDIT_EMPTY,
	EDIT_OVERSIZE,
	EDIT_TRAILING_NEWLINE,
};

struct matrix_case {
	const char *name;
	const char *header;     /* template, or NULL for standard_header */
	const char *patch;      /* JSON object merged into base_claims */
	const char *remove;     /* claim deleted from base_claims */
	const char *payload;    /* raw payload text instead of claims */
	enum signer signer;
	enum token_edit edit;
	bool empty_ring;
	bool skip_secret;       /* KH_CHECK_SECRET in expect.skip */
	size_t note_len;        /* adds constraints.note of this many bytes */
	int64_t uses_spent;
	bool revoked;
	enum kh_verdict verdict;
};

static const struct matrix_case matrix[] = {
	{.name = "valid", .verdict = KH_VERDICT_OK},
	{.name = "valid with trailing newline", .edit = EDIT_TRAILING_NEWLINE,
	 .verdict = KH_VERDICT_OK},
	{.name = "valid with sid", .patch = "{\"sid\":\"session-1\"}",
	 .verdict = KH_VERDICT_OK},
	{.name = "valid with iat at now plus skew",
	 .patch = "{\"iat\":1700000030,\"exp\":1700000090}",
	 .verdict = KH_VERDICT_OK},
	{.name = "valid with uses left",
	 .patch = "{\"grants\":{\"secrets\":[\"" SECRET "\"],\"uses\":3}}",
	 .uses_spent = 2, .verdict = KH_VERDICT_OK},
	{.name = "valid near size limit", .note_len = 11600,
	 .verdict = KH_VERDICT_OK},
	{.name = "valid with no secrets",
	 .patch = "{\"grants\":{\"secrets\":[],\"uses\":1}}",
	 .skip_secret = true, .verdict = KH_VERDICT_OK},

	{.name = "empty token", .edit = EDIT_EMPTY,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "two segments", .edit = EDIT_DROP_SIG,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "four segments", .edit = EDIT_EXTRA_SEGMENT,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "empty payload segment", .edit = EDIT_EMPTY_SEGMENT,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "padded signature", .edit = EDIT_PAD_SIG,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "standard base64 char", .edit = EDIT_PLUS_CHAR,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "NUL byte", .edit = EDIT_NUL_BYTE,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "short signature", .edit = EDIT_SHORT_SIG,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "appended past size limit", .edit = EDIT_OVERSIZE,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "signed past size limit", .note_len = 12400,
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "header not json", .header = "{\"alg\":\"EdDSA\",",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "header array", .header = "[\"EdDSA\",\"@KID@\"]",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "header extra member",
	 .header = "{\"alg\":\"EdDSA\",\"kid\":\"@KID@\","
		   "\"typ\":\"keyhole-permit+jwt\",\"x5u\":\"http://127.0.0.1/\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "header crit",
	 .header = "{\"alg\":\"EdDSA\",\"crit\":[\"exp\"],\"kid\":\"@KID@\","
		   "\"typ\":\"keyhole-permit+jwt\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "header without typ",
	 .header = "{\"alg\":\"EdDSA\",\"kid\":\"@KID@\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "header duplicate alg",
	 .header = "{\"alg\":\"none\",\"alg\":\"EdDSA\",\"kid\":\"@KID@\","
		   "\"typ\":\"keyhole-permit+jwt\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "payload not json", .payload = "not json",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "payload array", .payload = "[1,2]",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "payload duplicate claim",
	 .payload = "{\"sub\":\"uid:0\",\"sub\":\"uid:1000\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "unknown claim", .patch = "{\"admin\":true}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "missing jti", .remove = "jti",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "missing constraints", .remove = "constraints",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "missing iss", .remove = "iss",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "empty tenant", .patch = "{\"tenant\":\"\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "sub not uid", .patch = "{\"sub\":\"root\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "sub letters", .patch = "{\"sub\":\"uid:abc\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "sub negative", .patch = "{\"sub\":\"uid:-1\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "sub leading zero", .patch = "{\"sub\":\"uid:01000\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "sub empty uid", .patch = "{\"sub\":\"uid:\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "sub uid -1 as unsigned",
	 .patch = "{\"sub\":\"uid:4294967295\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "sub with NUL", .patch = "{\"sub\":\"uid:1000\\u0000x\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "hA uppercase",
	 .patch = "{\"hA\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "hP short", .patch = "{\"hP\":\"bbbb\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "jti 21 chars", .patch = "{\"jti\":\"AAAAAAAAAAAAAAAAAAAAA\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "jti plus char", .patch = "{\"jti\":\"AAAAAAAAAAAAAAAAAAAA+A\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "jti trailing bits",
	 .patch = "{\"jti\":\"AAAAAAAAAAAAAAAAAAAAAB\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "iat real", .patch = "{\"iat\":1700000000.5}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "exp string", .patch = "{\"exp\":\"1700000060\"}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "exp equals iat", .patch = "{\"exp\":1700000000}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "uses zero",
	 .patch = "{\"grants\":{\"secrets\":[\"" SECRET "\"],\"uses\":0}}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "uses string",
	 .patch = "{\"grants\":{\"secrets\":[\"" SECRET "\"],\"uses\":\"1\"}}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "secrets string",
	 .patch = "{\"grants\":{\"secrets\":\"" SECRET "\",\"uses\":1}}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "secrets number element",
	 .patch = "{\"grants\":{\"secrets\":[1],\"uses\":1}}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "grants extra member",
	 .patch = "{\"grants\":{\"secrets\":[],\"uses\":1,\"admin\":true}}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "constraints array", .patch = "{\"constraints\":[]}",
	 .verdict = KH_VERDICT_MALFORMED},
	{.name = "sid number", .patch = "{\"sid\":7}",
	 .verdict = KH_VERDICT_MALFORMED},

	{.name = "alg none",
	 .header = "{\"alg\":\"none\",\"kid\":\"@KID@\","
		   "\"typ\":\"keyhole-permit+jwt\"}",
	 .verdict = KH_VERDICT_UNSUPPORTED},
	{.name = "alg HS256",
	 .header = "{\"alg\":\"HS256\",\"kid\":\"@KID@\","
		   "\"typ\":\"keyhole-permit+jwt\"}",
	 .verdict = KH_VERDICT_UNSUPPORTED},
	{.name = "typ JWT",
	 .header = "{\"alg\":\"EdDSA\",\"kid\":\"@KID@\",\"typ\":\"JWT\"}",
	 .verdict = KH_VERDICT_UNSUPPORTED},

	{.name = "kid of untrusted key", .signer = SIGN_OTHER,
	 .verdict = KH_VERDICT_UNKNOWN_KID},
	{.name = "empty keyring", .empty_ring = true,
	 .verdict = KH_VERDICT_UNKNOWN_KID},
	{.name = "kid not a thumbprint",
	 .header = "{\"alg\":\"EdDSA\",\"kid\":\"permit-2024\","
		   "\"typ\":\"keyhole-permit+jwt\"}",
	 .verdict = KH_VERDICT_UNKNOWN_KID},

	{.name = "payload bit flipped", .edit = EDIT_FLIP_PAYLOAD_BIT,
	 .verdict = KH_VERDICT_BAD_SIGNATURE},
	{.name = "signature bit flipped", .edit = EDIT_FLIP_SIG_BIT,
	 .verdict = KH_VERDICT_BAD_SIGNATURE},
	{.name = "signed by untrusted key", .signer = SIGN_OTHER_AS_TRUSTED,
	 .verdict = KH_VERDICT_BAD_SIGNATURE},
	{.name = "bad signature before bad claims", .patch = "{\"admin\":1}",
	 .signer = SIGN_OTHER_AS_TRUSTED, .verdict = KH_VERDICT_BAD_SIGNATURE},

	{.name = "wrong tenant", .patch = "{\"tenant\":\"globex\"}",
	 .verdict = KH_VERDICT_WRONG_TENANT},
	{.name = "wrong env", .patch = "{\"env\":\"staging\"}",
	 .verdict = KH_VERDICT_WRONG_ENV},
	{.name = "iat past skew",
	 .patch = "{\"iat\":1700000031,\"exp\":1700000091}",
	 .verdict = KH_VERDICT_NOT_YET_VALID},
	{.name = "exp equals now",
	 .patch = "{\"iat\":1699999940,\"exp\":1700000000}",
	 .verdict = KH_VERDICT_EXPIRED},
	{.name = "exp before now",
	 .patch = "{\"iat\":1699999000,\"exp\":1699999060}",
	 .verdict = KH_VERDICT_EXPIRED},
	{.name = "subject mismatch", .patch = "{\"sub\":\"uid:1001\"}",
	 .verdict = KH_VERDICT_SUBJECT_MISMATCH},
	{.name = "subject root", .patch = "{\"sub\":\"uid:0\"}",
	 .verdict = KH_VERDICT_SUBJECT_MISMATCH},
	{.name = "action mismatch", .patch = "{\"hA\":\"" HASH_D "\"}",
	 .verdict = KH_VERDICT_ACTION_MISMATCH},
	{.name = "policy changed", .patch = "{\"hP\":\"" HASH_D "\"}",
	 .verdict = KH_VERDICT_POLICY_CHANGED},
	{.name = "uses exhausted", .uses_spent = 1,
	 .verdict = KH_VERDICT_USES_EXHAUSTED},
	{.name = "uses overspent",
	 .patch = "{\"grants\":{\"secrets\":[\"" SECRET "\"],\"uses\":3}}",
	 .uses_spent = 4, .verdict = KH_VERDICT_USES_EXHAUSTED},
	{.name = "secret not granted",
	 .patch = "{\"grants\":{\"secrets\":[\"local/other\"],\"uses\":1}}",
	 .verdict = KH_VERDICT_SECRET_NOT_GRANTED},
	{.name = "secret prefix not granted",
	 .patch = "{\"grants\":{\"secrets\":[\"local/report\"],\"uses\":1}}",
	 .verdict = KH_VERDICT_SECRET_NOT_GRANTED},
	{.name = "revoked", .revoked = true, .verdict = KH_VERDICT_REVOKED},

	{.name = "tenant checked before expiry",
	 .patch = "{\"tenant\":\"globex\",\"iat\":1699999940,"
		  "\"exp\":1700000000}",
	 .verdict = KH_VERDICT_WRONG_TENANT},
	{.name = "expiry checked before subject",
	 .patch = "{\"sub\":\"uid:1001\",\"iat\":1699999940,"
		  "\"exp\":1700000000}",
	 .verdict = KH_VERDICT_EXPIRED},
	{.name = "policy checked before uses",
	 .patch = "{\"hP\":\"" HASH_D "\"}", .uses_spent = 1,
	 .verdict = KH_VERDICT_POLICY_CHANGED},
	{.name = "uses checked before revoked", .uses_spent = 1,
	 .revoked = true, .verdict = KH_VERDICT_USES_EXHAUSTED},
};

static char *b64url(const void *data, size_t len)
{
	size_t size = sodium_base64_ENCODED_LEN(len, B64URL);
	char *out = malloc(size);

	if (out)
		sodium_bin2base64(out, size, data, len, B64URL);
	return out;
}

/* Returns a malloc'd copy of template with every "@KID@" set to kid. */
static char *fill_kid(const char *template, const char *kid)
{
	size_t size = strlen(template) * 2 + KH_KID_LEN * 4 + 1;
	char *out = calloc(1, size);
	size_t pos = 0;

	if (!out)
		return NULL;
	for (const char *c = template; *c;) {
		if (strncmp(c, "@KID@", 5) == 0) {
			memcpy(out + pos, kid, strlen(kid));
			pos += strlen(kid);
			c += 5;
		} else {
			out[pos++] = *c++;
		}
	}
	return out;
}

/*
 * Builds a compact JWS the way an issuer (honest or not) would, without
 * kh_permit_mint, so that invalid headers and claims can be signed.
 */
static char *forge_token(const char *header, const char *payload,
			 const struct kh_key *signer)
{
	char *h = b64url(header, strlen(header));
	char *p = b64url(payload, strlen(payload));
	unsigned char sig[64];
	char *s = NULL, *token = NULL, *input = NULL;
	size_t input_len;

	if (!h || !p)
		goto out;
	input_len = strlen(h) + 1 + strlen(p);
	input = malloc(input_len + 1);
	if (!input)
		goto out;
	(void)snprintf(input, input_len + 1, "%s.%s", h, p);
	if (kh_key_sign(signer, input, input_len, sig) != 0)
		goto out;
	s = b64url(sig, sizeof(sig));
	token = malloc(input_len + 2 + (s ? strlen(s) : 0));
	if (token && s)
		(void)snprintf(token, input_len + 2 + strlen(s), "%s.%s",
			       input, s);
out:
	free(input);
	free(s);
	free(p);
	free(h);
	return token;
}

/* Flips one bit of the decoded segment index (0 to 2) and re-encodes. */
static char *flip_segment_bit(const char *token, int index)
{
	char *copy = strdup(token);
	char *seg[3] = {NULL, NULL, NULL};
	unsigned char bin[KH_PERMIT_MAX];
	size_t bin_len = 0;
	char *encoded = NULL, *out = NULL;
	size_t size;

	if (!copy)
		return NULL;
	seg[0] = copy;
	seg[1] = strchr(seg[0], '.');
	seg[2] = seg[1] ? strchr(seg[1] + 1, '.') : NULL;
	if (!seg[2])
		goto out;
	*seg[1]++ = '\0';
	*seg[2]++ = '\0';
	if (
	    sodium_base642bin(bin, sizeof(bin), seg[index], strlen(seg[index]),
			      NULL, &bin_len, NULL, B64URL) != 0 ||
	    bin_len < 11)
		goto out;
	bin[10] ^= 0x04;
	encoded = b64url(bin, bin_len);
	if (!encoded)
		goto out;
	seg[index] = encoded;
	size = strlen(token) + 1;
	out = malloc(size);
	if (out)
		(void)snprintf(out, size, "%s.%s.%s", seg[0], seg[1], seg[2]);
out:
	free(encoded);
	free(copy);
	return out;
}

/* Returns a new copy of token with a string-level edit, and its length. */
static char *edit_token(char *token, enum token_edit edit, size_t *len)
{
	size_t n = strlen(token);
	char *out = calloc(1, KH_PERMIT_MAX + n + 8);
	char *last_dot = strrchr(token, '.');
	char *first_dot = strchr(token, '.');

	if (!out)
		return NULL;
	memcpy(out, token, n);
	*len = n;
	switch (edit) {
	case EDIT_NONE:
		break;
	case EDIT_FLIP_PAYLOAD_BIT:
	case EDIT_FLIP_SIG_BIT:
		free(out);
		out = flip_segment_bit(token,
				       edit == EDIT_FLIP_PAYLOAD_BIT ? 1 : 2);
		*len = out ? strlen(out) : 0;
		break;
	case EDIT_DROP_SIG:
		*len = (size_t)(last_dot - token);
		break;
	case EDIT_EXTRA_SEGMENT:
		memcpy(out + n, last_dot, strlen(last_dot));
		*len = n + strlen(last_dot);
		break;
	case EDIT_EMPTY_SEGMENT:
		/* header ".." signature */
		memcpy(out + (first_dot - token) + 1, last_dot,
		       strlen(last_dot) + 1);
		*len = strlen(out);
		break;
	case EDIT_PAD_SIG:
		memcpy(out + n, "==", 2);
		*len = n + 2;
		break;
	case EDIT_PLUS_CHAR:
		out[(first_dot - token) + 3] = '+';
		break;
	case EDIT_NUL_BYTE:
		out[(first_dot - token) + 3] = '\0';
		break;
	case EDIT_SHORT_SIG:
		/* 44 characters of signature decode to 33 bytes, not 64. */
		*len = (size_t)(last_dot - token) + 1 + 44;
		break;
	case EDIT_EMPTY:
		*len = 0;
		break;
	case EDIT_OVERSIZE:
		memset(out + n, 'A', KH_PERMIT_MAX + 1 - n);
		*len = KH_PERMIT_MAX + 1;
		break;
	case EDIT_TRAILING_NEWLINE:
		out[n] = '\n';
		*len = n + 1;
		break;
	}
	return out;
}

static const struct kh_key *signer_key(enum signer signer)
{
	return signer == SIGN_TRUSTED ? trusted_key : other_key;
}

static const char *header_kid(enum signer signer)
{
	return signer == SIGN_OTHER ? other_key->kid : trusted_key->kid;
}

/* Sets constraints.note to len bytes of 'x', to grow the token. */
static int add_note(json_t *claims, size_t len)
{
	char *note = malloc(len + 1);
	int rc;

	if (!note)
		return -1;
	memset(note, 'x', len);
	note[len] = '\0';
	rc = json_object_set_new(json_object_get(claims, "constraints"),
				 "note", json_string(note));
	free(note);
	return rc;
}

/* The payload text of a case: raw, or base_claims with its edits. */
static char *case_payload(const struct matrix_case *c)
{
	json_t *claims = json_loads(base_claims, 0, NULL);
	json_t *patch = c->patch ? json_loads(c->patch, JSON_ALLOW_NUL, NULL)
				 : NULL;
	char *text = NULL;

	if (c->payload) {
		text = strdup(c->payload);
		goto out;
	}
	if (!claims || (c->patch && !patch)) {
		kh_test_fail(__FILE__, __LINE__, "%s: invalid test claims",
			     c->name);
		goto out;
	}
	if (patch)
		(void)json_object_update(claims, patch);
	if (c->remove)
		(void)json_object_del(claims, c->remove);
	if (c->note_len > 0 && add_note(claims, c->note_len) < 0)
		goto out;
	/* jansson's dump is enough: the signature covers the bytes as sent. */
	text = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
out:
	json_decref(patch);
	json_decref(claims);
	return text;
}

static const struct kh_permit_expect base_expect = {
	.tenant = "acme",
	.env = "prod",
	.now = NOW,
	.uid = 1000,
	.hA = HASH_A,
	.hP = HASH_B,
	.secret = SECRET,
	.uses_spent = 0,
	.revoked = false,
};

/* Runs one row: forge, edit, decode, check. Returns the verdict. */
static enum kh_verdict run_case(const struct matrix_case *c,
				struct kh_err *err)
{
	struct kh_keyring ring = {.keys = {trusted_key}, .count = 1};
	struct kh_permit_expect expect = base_expect;
	struct kh_permit permit;
	enum kh_verdict verdict = KH_VERDICT_OK;
	char *header = fill_kid(c->header ? c->header : standard_header,
				header_kid(c->signer));
	char *payload = case_payload(c);
	char *token = NULL, *edited = NULL;
	size_t len = 0;

	if (c->empty_ring)
		ring.count = 0;
	expect.uses_spent = c->uses_spent;
	expect.revoked = c->revoked;
	if (c->skip_secret)
		expect.skip |= KH_CHECK_SECRET;
	if (header && payload)
		token = forge_token(header, payload, signer_key(c->signer));
	if (token)
		edited = edit_token(token, c->edit, &len);
	if (!edited) {
		kh_test_fail(__FILE__, __LINE__, "%s: cannot build the token",
			     c->name);
		goto out;
	}

	verdict = kh_permit_decode(edited, len, &ring, &permit, err);
	if (verdict != KH_VERDICT_OK && permit.claims != NULL)
		kh_test_fail(__FILE__, __LINE__, "%s: claims kept on failure",
			     c->name);
	if (verdict == KH_VERDICT_OK)
		verdict = kh_permit_check_all(&permit, &expect, err);
	kh_permit_clear(&permit);
out:
	free(edited);
	free(token);
	free(payload);
	free(header);
	return verdict;
}

static void test_verification_matrix(void)
{
	for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++) {
		struct kh_err err = {{0}};
		enum kh_verdict verdict = run_case(&matrix[i], &err);

		if (verdict != matrix[i].verdict)
			kh_test_fail(__FILE__, __LINE__,
				     "%s: verdict \"%s\", expected \"%s\" (%s)",
				     matrix[i].name, kh_verdict_str(verdict),
				     kh_verdict_str(matrix[i].verdict),
				     err.msg);
		if (verdict != KH_VERDICT_OK && err.msg[0] == '\0')
			kh_test_fail(__FILE__, __LINE__,
				     "%s: no error message", matrix[i].name);
	}
}

/* Every verdict except OK has at least one forged row in the matrix. */
static void test_matrix_covers_verdicts(void)
{
	for (int v = KH_VERDICT_OK; v <= KH_VERDICT_REVOKED; v++) {
		bool found = false;

		for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++)
			found = found || (int)matrix[i].verdict == v;
		if (!found)
			kh_test_fail(__FILE__, __LINE__, "no row for \"%s\"",
				     kh_verdict_str((enum kh_verdict)v));
	}
}

static const struct {
	enum kh_verdict verdict;
	const char *wording;
} wordings[] = {
	{KH_VERDICT_OK, "ok"},
	{KH_VERDICT_MALFORMED, "malformed"},
	{KH_VERDICT_UNSUPPORTED, "unsupported alg or typ"},
	{KH_VERDICT_UNKNOWN_KID, "unknown kid"},
	{KH_VERDICT_BAD_SIGNATURE, "bad signature"},
	{KH_VERDICT_WRONG_TENANT, "wrong tenant"},
	{KH_VERDICT_WRONG_ENV, "wrong environment"},
	{KH_VERDICT_NOT_YET_VALID, "not yet valid"},
	{KH_VERDICT_EXPIRED, "expired"},
	{KH_VERDICT_SUBJECT_MISMATCH, "subject mismatch"},
	{KH_VERDICT_ACTION_MISMATCH, "action mismatch"},
	{KH_VERDICT_POLICY_CHANGED, "issued under another policy version"},
	{KH_VERDICT_USES_EXHAUSTED, "uses exhausted"},
	{KH_VERDICT_SECRET_NOT_GRANTED, "secret not granted"},
	{KH_VERDICT_REVOKED, "revoked"},
	{(enum kh_verdict)99, "unknown verdict"},
};

static void test_verdict_wording(void)
{
	for (size_t i = 0; i < sizeof(wordings) / sizeof(wordings[0]); i++)
		CHECK_STR(kh_verdict_str(wordings[i].verdict),
			  wordings[i].wording);
}

/* Ed25519 is deterministic, so mint must equal the forged token. */
static void test_mint_matches_forged_token(void)
{
	json_t *claims = json_loads(base_claims, 0, NULL);
	char *header = fill_kid(standard_header, trusted_key->kid);
	char *payload = NULL, *forged = NULL, *minted = NULL;
	struct kh_err err = {{0}};

	CHECK_INT(kh_canon_dump(claims, &payload, NULL, &err), 0);
	if (payload && header)
		forged = forge_token(header, payload, trusted_key);
	CHECK_INT(kh_permit_mint(trusted_key, claims, &minted, &err), 0);
	CHECK(forged != NULL);
	if (forged && minted)
		CHECK_STR(minted, forged);
	free(minted);
	free(forged);
	free(payload);
	free(header);
	json_decref(claims);
}

static void test_decode_fills_fields(void)
{
	json_t *claims = json_loads(base_claims, 0, NULL);
	struct kh_keyring ring = {.keys = {other_key, trusted_key},
				  .count = 2};
	struct kh_permit permit;
	struct kh_err err = {{0}};
	char *token = NULL;

	(void)json_object_set_new(claims, "sid", json_string("session-1"));
	CHECK_INT(kh_permit_mint(trusted_key, claims, &token, &err), 0);
	json_decref(claims);
	if (!token)
		return;
	if (kh_permit_decode(token, strlen(token), &ring, &permit, &err) !=
	    KH_VERDICT_OK) {
		kh_test_fail(__FILE__, __LINE__, "decode: %s", err.msg);
		free(token);
		return;
	}
	CHECK_STR(permit.kid, trusted_key->kid);
	CHECK_STR(permit.iss, "broker-test");
	CHECK_STR(permit.tenant, "acme");
	CHECK_STR(permit.env, "prod");
	CHECK_STR(permit.hA, HASH_A);
	CHECK_STR(permit.hP, HASH_B);
	CHECK_STR(permit.hS, HASH_C);
	CHECK_STR(permit.jti, JTI);
	CHECK_STR(permit.rule, "curl-report");
	CHECK_STR(permit.sid, "session-1");
	CHECK_INT(permit.uid, 1000);
	CHECK_INT(permit.iat, NOW);
	CHECK_INT(permit.exp, NOW + 60);
	CHECK_INT(permit.uses, 1);
	CHECK_INT(json_array_size(permit.secrets), 1);
	CHECK_STR(json_string_value(json_array_get(permit.secrets, 0)), SECRET);
	kh_permit_clear(&permit);
	CHECK(permit.claims == NULL);
	kh_permit_clear(&permit);
	free(token);
}

static const struct {
	const char *name;
	const char *patch;
	const char *remove;
	int rc;
} mint_cases[] = {
	{"missing hS", NULL, "hS", -EINVAL},
	{"unknown claim", "{\"admin\":true}", NULL, -EINVAL},
	{"sub not uid", "{\"sub\":\"root\"}", NULL, -EINVAL},
	{"exp before iat", "{\"exp\":1699999999}", NULL, -EINVAL},
	{"uses zero", "{\"grants\":{\"secrets\":[],\"uses\":0}}", NULL,
	 -EINVAL},
};

static void test_mint_rejects_bad_claims(void)
{
	for (size_t i = 0; i < sizeof(mint_cases) / sizeof(mint_cases[0]);
	     i++) {
		json_t *claims = json_loads(base_claims, 0, NULL);
		json_t *patch = mint_cases[i].patch
					? json_loads(mint_cases[i].patch, 0, NULL)
					: NULL;
		char *token = (char *)"unset";
		struct kh_err err = {{0}};
		int rc;

		if (patch)
			(void)json_object_update(claims, patch);
		if (mint_cases[i].remove)
			(void)json_object_del(claims, mint_cases[i].remove);
		rc = kh_permit_mint(trusted_key, claims, &token, &err);
		if (rc != mint_cases[i].rc || token != NULL ||
		    err.msg[0] == '\0')
			kh_test_fail(__FILE__, __LINE__,
				     "%s: rc %d, message \"%s\"",
				     mint_cases[i].name, rc, err.msg);
		json_decref(patch);
		json_decref(claims);
	}
}

static void test_mint_needs_private_key(void)
{
	json_t *claims = json_loads(base_claims, 0, NULL);
	struct kh_key public_only = *trusted_key;
	char *token = NULL;

	public_only.secret = NULL;
	CHECK_INT(kh_permit_mint(&public_only, claims, &token, NULL), -EPERM);
	CHECK(token == NULL);
	json_decref(claims);
}

/* A permit that decode would reject for its size is never minted. */
static void test_mint_rejects_oversize(void)
{
	json_t *claims = json_loads(base_claims, 0, NULL);
	char *padding = malloc(KH_PERMIT_MAX);
	char *token = NULL;
	struct kh_err err = {{0}};

	if (!claims || !padding)
		goto out;
	memset(padding, 'x', KH_PERMIT_MAX - 1);
	padding[KH_PERMIT_MAX - 1] = '\0';
	(void)json_object_set_new(claims, "constraints",
				  json_pack("{s:s}", "note", padding));
	CHECK_INT(kh_permit_mint(trusted_key, claims, &token, &err), -E2BIG);
	CHECK(token == NULL);
out:
	free(padding);
	json_decref(claims);
}

static void test_new_jti(void)
{
	char a[KH_JTI_LEN + 1], b[KH_JTI_LEN + 1];
	unsigned char raw[16];
	size_t raw_len = 0;
	json_t *claims = json_loads(base_claims, 0, NULL);
	char *token = NULL;

	CHECK_INT(kh_permit_new_jti(a), 0);
	CHECK_INT(kh_permit_new_jti(b), 0);
	CHECK_INT(strlen(a), KH_JTI_LEN);
	CHECK(strcmp(a, b) != 0);
	CHECK_INT(sodium_base642bin(raw, sizeof(raw), a, strlen(a), NULL,
				    &raw_len, NULL, B64URL),
		  0);
	CHECK_INT(raw_len, 16);

	(void)json_object_set_new(claims, "jti", json_string(a));
	CHECK_INT(kh_permit_mint(trusted_key, claims, &token, NULL), 0);
	free(token);
	json_decref(claims);
}

/* jti syntax: 22 base64url characters that decode strictly to 16 bytes. */
static void test_jti_syntax(void)
{
	static const struct {
		const char *jti;
		bool valid;
	} cases[] = {
		{ "AAAAAAAAAAAAAAAAAAAAAA", true },
		{ "-aOzEJRTByYHfDq6b6CWpg", true },
		{ "hb3dA0t6S1uWlCqBtSI8vQ", true },
		{ "M_SBhSDxjHlkMIriCaiNuw", true },
		{ "3CiorUdcgVjbTZG9ss2eBw", true },
		{ "BBBBBBBBBBBBBBBBBBBBBB", false }, /* non-zero trailing bits */
		{ "3CiorUdcgVjbTZG9ss2eB-", false }, /* non-zero trailing bits */
		{ "AAAAAAAAAAAAAAAAAAAAA", false },  /* 21 characters */
		{ "AAAAAAAAAAAAAAAAAAAAAAA", false }, /* 23 characters */
		{ "../../../../etc/passwdx", false },
		{ "AAAAAAAAAAA+AAAAAAAAAA", false }, /* standard base64 */
		{ "AAAAAAAAAAA/AAAAAAAAAA", false }, /* a path separator */
		{ "hb3dA0t6S1uWlCqBtSI8=Q", false }, /* padding */
		{ "", false },
	};
	char fresh[KH_JTI_LEN + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (kh_permit_jti_is_valid(cases[i].jti) != cases[i].valid)
			kh_test_fail(__FILE__, __LINE__, "jti \"%s\": expected %s",
				     cases[i].jti,
				     cases[i].valid ? "valid" : "invalid");
	CHECK(!kh_permit_jti_is_valid(NULL));
	CHECK_INT(kh_permit_new_jti(fresh), 0);
	CHECK(kh_permit_jti_is_valid(fresh));
}

/* Writes text to the file dir/name and returns 0 on success. */
static int write_text(const char *dir, const char *name, const char *text,
		      char *path, size_t size)
{
	int n = snprintf(path, size, "%s/%s", dir, name);
	FILE *f;

	if (n < 0 || (size_t)n >= size)
		return -1;
	f = fopen(path, "w");
	if (!f)
		return -1;
	n = fputs(text, f);
	return fclose(f) == 0 && n >= 0 ? 0 : -1;
}

/*
 * Runs node on jose_verify.js with the public JWK and the token. Returns
 * node's exit status (or -1) and its stdout in out. A quiet run sends
 * node's stderr to /dev/null, for a rejection that is expected.
 */
static int run_node(const char *jwk_path, const char *token_path, bool quiet,
		    char *out, size_t size)
{
	char script[PATH_MAX];
	int pipe_fd[2], status = 0;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	out[0] = '\0';
	if (snprintf(script, sizeof(script), "%s/vectors/permit/jose_verify.js",
		     kh_test_data_dir()) >= (int)sizeof(script) ||
	    pipe2(pipe_fd, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		(void)dup2(pipe_fd[1], STDOUT_FILENO);
		if (quiet && !freopen("/dev/null", "w", stderr))
			_exit(126);
		execlp("node", "node", script, jwk_path, token_path,
		       (char *)NULL);
		_exit(127);
	}
	close(pipe_fd[1]);
	while (pid > 0 && got < size - 1) {
		n = read(pipe_fd[0], out + got, size - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	close(pipe_fd[0]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Node.js crypto, given only the public JWK, verifies a minted permit. */
static void test_node_verifies_permit(void)
{
	char dir[] = "/tmp/kh-permit-jose.XXXXXX";
	char jwk_path[PATH_MAX], token_path[PATH_MAX], line[128];
	char tampered_path[PATH_MAX];
	char expected[KH_KID_LEN + 2];
	json_t *claims = json_loads(base_claims, 0, NULL);
	json_t *jwk = NULL;
	char *jwk_text = NULL, *token = NULL, *tampered = NULL;
	int status;

	if (!mkdtemp(dir)) {
		kh_test_fail(__FILE__, __LINE__, "mkdtemp failed");
		goto out;
	}
	CHECK_INT(kh_permit_mint(trusted_key, claims, &token, NULL), 0);
	CHECK_INT(kh_key_public_jwk(trusted_key, &jwk), 0);
	CHECK_INT(kh_canon_dump(jwk, &jwk_text, NULL, NULL), 0);
	if (!token || !jwk_text)
		goto out;
	CHECK_INT(write_text(dir, "key.pub.jwk", jwk_text, jwk_path,
			     sizeof(jwk_path)), 0);
	CHECK_INT(write_text(dir, "permit", token, token_path,
			     sizeof(token_path)), 0);

	status = run_node(jwk_path, token_path, false, line, sizeof(line));
	if (status == 127)
		kh_test_fail(__FILE__, __LINE__,
			     "node not found; install nodejs (make deps)");
	CHECK_INT(status, 0);
	(void)snprintf(expected, sizeof(expected), "%s\n", trusted_key->kid);
	CHECK_STR(line, expected);

	/* The same verifier must reject a tampered permit. */
	tampered = flip_segment_bit(token, 1);
	CHECK(tampered != NULL);
	if (tampered) {
		CHECK_INT(write_text(dir, "tampered", tampered, tampered_path,
				     sizeof(tampered_path)), 0);
		CHECK_INT(run_node(jwk_path, tampered_path, true, line,
				   sizeof(line)),
			  1);
		(void)unlink(tampered_path);
	}
	(void)unlink(token_path);
	(void)unlink(jwk_path);
	(void)rmdir(dir);
out:
	free(tampered);
	free(token);
	free(jwk_text);
	json_decref(jwk);
	json_decref(claims);
}

/* Decodes a token signed with the trusted key over base_claims. */
static enum kh_verdict decode_base_permit(struct kh_permit *permit)
{
	struct kh_keyring ring = {.keys = {trusted_key}, .count = 1};
	char *header = fill_kid(standard_header, trusted_key->kid);
	char *token = header ? forge_token(header, base_claims, trusted_key)
			     : NULL;
	enum kh_verdict verdict = KH_VERDICT_MALFORMED;

	memset(permit, 0, sizeof(*permit));
	if (token)
		verdict = kh_permit_decode(token, strlen(token), &ring, permit,
					   NULL);
	free(token);
	free(header);
	return verdict;
}

enum expect_change { EXPECT_UNSET, EXPECT_WRONG };

/*
 * One expectation of kh_permit_check_all: its skip bit, and the verdict
 * when it is set to a value the base permit does not match.
 */
static const struct {
	const char *field;
	unsigned bit;
	enum kh_verdict wrong;
} expectations[] = {
	{"tenant", KH_CHECK_TENANT, KH_VERDICT_WRONG_TENANT},
	{"env", KH_CHECK_ENV, KH_VERDICT_WRONG_ENV},
	{"now", KH_CHECK_TIME, KH_VERDICT_EXPIRED},
	{"uid", KH_CHECK_UID, KH_VERDICT_SUBJECT_MISMATCH},
	{"hA", KH_CHECK_ACTION, KH_VERDICT_ACTION_MISMATCH},
	{"hP", KH_CHECK_POLICY, KH_VERDICT_POLICY_CHANGED},
	{"uses_spent", KH_CHECK_USES, KH_VERDICT_USES_EXHAUSTED},
	{"secret", KH_CHECK_SECRET, KH_VERDICT_SECRET_NOT_GRANTED},
};

/* Leaves field unset (NULL or -1) or sets it to a mismatching value. */
static void change_expectation(struct kh_permit_expect *expect,
			       const char *field, enum expect_change change)
{
	bool unset = change == EXPECT_UNSET;

	if (strcmp(field, "tenant") == 0)
		expect->tenant = unset ? NULL : "other-tenant";
	else if (strcmp(field, "env") == 0)
		expect->env = unset ? NULL : "staging";
	else if (strcmp(field, "now") == 0)
		expect->now = unset ? -1 : NOW + 3600;
	else if (strcmp(field, "uid") == 0)
		expect->uid = unset ? -1 : 1001;
	else if (strcmp(field, "hA") == 0)
		expect->hA = unset ? NULL : HASH_D;
	else if (strcmp(field, "hP") == 0)
		expect->hP = unset ? NULL : HASH_D;
	else if (strcmp(field, "uses_spent") == 0)
		expect->uses_spent = unset ? -1 : 1;
	else if (strcmp(field, "secret") == 0)
		expect->secret = unset ? NULL : "local/other";
}

/* An unset expectation fails unless its skip bit is set. */
static void test_check_all_rejects_unset(void)
{
	struct kh_permit permit;

	CHECK_INT(decode_base_permit(&permit), KH_VERDICT_OK);
	for (size_t i = 0; i < sizeof(expectations) / sizeof(expectations[0]);
	     i++) {
		struct kh_permit_expect expect = base_expect;
		struct kh_err err = {{0}};
		char quoted[32];
		enum kh_verdict verdict;

		change_expectation(&expect, expectations[i].field,
				   EXPECT_UNSET);
		verdict = kh_permit_check_all(&permit, &expect, &err);
		if (verdict != KH_VERDICT_MALFORMED)
			kh_test_fail(__FILE__, __LINE__, "%s unset: verdict "
				     "\"%s\", expected \"malformed\"",
				     expectations[i].field,
				     kh_verdict_str(verdict));
		(void)snprintf(quoted, sizeof(quoted), "\"%s\"",
			       expectations[i].field);
		if (!strstr(err.msg, quoted))
			kh_test_fail(__FILE__, __LINE__, "%s unset: error "
				     "\"%s\" does not name it",
				     expectations[i].field, err.msg);

		expect.skip = expectations[i].bit;
		verdict = kh_permit_check_all(&permit, &expect, &err);
		if (verdict != KH_VERDICT_OK)
			kh_test_fail(__FILE__, __LINE__, "%s unset and skipped: "
				     "verdict \"%s\", expected \"ok\"",
				     expectations[i].field,
				     kh_verdict_str(verdict));
	}
	kh_permit_clear(&permit);
}

/* A mismatching expectation fails with its verdict unless skipped. */
static void test_check_all_skip_bits(void)
{
	struct kh_permit permit;

	CHECK_INT(decode_base_permit(&permit), KH_VERDICT_OK);
	for (size_t i = 0; i < sizeof(expectations) / sizeof(expectations[0]);
	     i++) {
		struct kh_permit_expect expect = base_expect;
		enum kh_verdict verdict;

		change_expectation(&expect, expectations[i].field,
				   EXPECT_WRONG);
		verdict = kh_permit_check_all(&permit, &expect, NULL);
		if (verdict != expectations[i].wrong)
			kh_test_fail(__FILE__, __LINE__, "%s wrong: verdict "
				     "\"%s\", expected \"%s\"",
				     expectations[i].field,
				     kh_verdict_str(verdict),
				     kh_verdict_str(expectations[i].wrong));
		expect.skip = expectations[i].bit;
		verdict = kh_permit_check_all(&permit, &expect, NULL);
		if (verdict != KH_VERDICT_OK)
			kh_test_fail(__FILE__, __LINE__, "%s wrong and skipped: "
				     "verdict \"%s\", expected \"ok\"",
				     expectations[i].field,
				     kh_verdict_str(verdict));
	}
	kh_permit_clear(&permit);
}

static const struct kh_test_case cases[] = {
	{"verification matrix", test_verification_matrix},
	{"check all rejects unset", test_check_all_rejects_unset},
	{"check all skip bits", test_check_all_skip_bits},
	{"matrix covers verdicts", test_matrix_covers_verdicts},
	{"verdict wording", test_verdict_wording},
	{"mint matches forged token", test_mint_matches_forged_token},
	{"decode fills fields", test_decode_fills_fields},
	{"mint rejects bad claims", test_mint_rejects_bad_claims},
	{"mint needs private key", test_mint_needs_private_key},
	{"mint rejects oversize", test_mint_rejects_oversize},
	{"new jti", test_new_jti},
	{"jti syntax", test_jti_syntax},
	{"node verifies permit", test_node_verifies_permit},
};

int main(void)
{
	int rc;

	if (kh_key_generate(&trusted_key, NULL) != 0 ||
	    kh_key_generate(&other_key, NULL) != 0) {
		fprintf(stderr, "cannot generate test keys\n");
		return 1;
	}
	rc = KH_TEST_RUN("permit", cases);
	kh_key_free(other_key);
	kh_key_free(trusted_key);
	return rc;
}
