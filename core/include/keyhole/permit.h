/*
 * Permits: JWS compact tokens (RFC 7515) with header
 * {"alg":"EdDSA","typ":"keyhole-permit+jwt","kid":...}, signed with
 * Ed25519, so that any JOSE library can verify them with the public JWK.
 */
#ifndef KEYHOLE_PERMIT_H
#define KEYHOLE_PERMIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyhole/error.h"
#include "keyhole/key.h"

/* Clock skew tolerated on iat, in seconds. */
#define KH_PERMIT_SKEW 30

/* Largest permit token accepted, in bytes. */
#define KH_PERMIT_MAX 16384

/* jti: 128 random bits, base64url without padding. */
#define KH_JTI_LEN 22

/*
 * Outcome of a permit check. Each failure has its own value so that the
 * DPR and the agent see exactly why; kh_verdict_str gives the wording.
 */
enum kh_verdict {
	KH_VERDICT_OK = 0,
	KH_VERDICT_MALFORMED,         /* "malformed" */
	KH_VERDICT_UNSUPPORTED,       /* "unsupported alg or typ" */
	KH_VERDICT_UNKNOWN_KID,       /* "unknown kid" */
	KH_VERDICT_BAD_SIGNATURE,     /* "bad signature" */
	KH_VERDICT_WRONG_TENANT,      /* "wrong tenant" */
	KH_VERDICT_WRONG_ENV,         /* "wrong environment" */
	KH_VERDICT_NOT_YET_VALID,     /* "not yet valid" */
	KH_VERDICT_EXPIRED,           /* "expired" */
	KH_VERDICT_SUBJECT_MISMATCH,  /* "subject mismatch" */
	KH_VERDICT_ACTION_MISMATCH,   /* "action mismatch" */
	KH_VERDICT_POLICY_CHANGED,    /* "issued under another policy version" */
	KH_VERDICT_USES_EXHAUSTED,    /* "uses exhausted" */
	KH_VERDICT_SECRET_NOT_GRANTED,/* "secret not granted" */
	KH_VERDICT_REVOKED,           /* "revoked" */
};

/* Stable lowercase wording of a verdict, as listed above. */
const char *kh_verdict_str(enum kh_verdict verdict);

/* A set of verification keys, looked up by kid. */
struct kh_keyring {
	const struct kh_key *keys[8];
	size_t count;
};

/*
 * A decoded permit. claims owns everything; the string pointers point
 * into it and stay valid until kh_permit_clear.
 */
struct kh_permit {
	json_t *claims;
	char kid[KH_KID_LEN + 1];
	const char *iss;
	const char *tenant;
	const char *env;
	const char *hA;
	const char *hP;
	const char *hS;
	const char *jti;
	const char *rule;
	const char *sid;      /* session id, NULL when absent */
	uid_t uid;            /* from sub "uid:<n>" */
	int64_t iat;
	int64_t exp;
	uint32_t uses;        /* grants.uses */
	const json_t *secrets;/* grants.secrets, array of strings */
};

/*
 * Signs claims (borrowed; must contain every required claim, see
 * kh_permit_decode) into a compact JWS. *token is malloc'd.
 */
int kh_permit_mint(const struct kh_key *key, const json_t *claims,
		   char **token, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Builds a new random jti (128 bits, base64url, no padding). Returns 0,
 * or -EIO with jti set to "" (which kh_permit_mint rejects) when
 * libsodium cannot initialise.
 */
int kh_permit_new_jti(char jti[KH_JTI_LEN + 1]);

/*
 * Returns true when jti is 22 base64url characters that decode strictly
 * to 128 bits, the form kh_permit_new_jti writes. Safe as a file name.
 */
bool kh_permit_jti_is_valid(const char *jti);

/*
 * Decodes and authenticates a token: structure, with a header of exactly
 * the string members alg, kid and typ (MALFORMED), header alg and typ
 * values (UNSUPPORTED), kid in ring (UNKNOWN_KID), Ed25519 signature
 * (BAD_SIGNATURE), then the claim schema (MALFORMED): iss, sub
 * "uid:<n>", tenant, env, hA, hP, hS (64 lowercase hex), iat, exp
 * (integers, exp > iat), jti, rule, grants {secrets[], uses >= 1},
 * constraints (object). Unknown claims other than "sid" are MALFORMED.
 * Trailing whitespace (a newline) after the token is accepted.
 * On any failure *out is cleared.
 */
enum kh_verdict kh_permit_decode(const char *token, size_t len,
				 const struct kh_keyring *ring,
				 struct kh_permit *out, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Checks that a caller of kh_permit_check_all may skip, as bits of
 * kh_permit_expect.skip. Skipping is explicit so that a field left unset
 * by mistake fails instead of passing.
 */
#define KH_CHECK_TENANT (1u << 0)
#define KH_CHECK_ENV (1u << 1)
#define KH_CHECK_TIME (1u << 2)    /* iat and exp against now */
#define KH_CHECK_UID (1u << 3)
#define KH_CHECK_ACTION (1u << 4)  /* hA */
#define KH_CHECK_POLICY (1u << 5)  /* hP */
#define KH_CHECK_USES (1u << 6)
#define KH_CHECK_SECRET (1u << 7)

/*
 * Expectations a decoded permit is checked against. Checks run in this
 * order: tenant, env,
 * iat - skew > now (NOT_YET_VALID), exp <= now (EXPIRED), uid, hA, hP,
 * uses_spent >= uses (USES_EXHAUSTED), secret in grants.secrets,
 * revoked. revoked is the caller's lookup result, not an expectation,
 * and has no skip bit.
 */
struct kh_permit_expect {
	const char *tenant;
	const char *env;
	int64_t now;          /* seconds since the epoch, >= 0 */
	int64_t uid;          /* >= 0 */
	const char *hA;
	const char *hP;
	const char *secret;
	int64_t uses_spent;   /* >= 0 */
	bool revoked;
	unsigned skip;        /* KH_CHECK_* bits of the checks not to run */
};

/*
 * Runs every check on a decoded permit except those whose KH_CHECK_*
 * bit is in expect->skip. An expectation that a check needs but that is
 * missing (a NULL string, or a negative now, uid or uses_spent)
 * without its skip bit makes the result KH_VERDICT_MALFORMED, with err
 * naming the field.
 */
enum kh_verdict kh_permit_check_all(const struct kh_permit *permit,
				    const struct kh_permit_expect *expect,
				    struct kh_err *err)
	__attribute__((warn_unused_result));

/* Releases the claims and clears the struct; accepts a cleared struct. */
void kh_permit_clear(struct kh_permit *permit);

#endif
