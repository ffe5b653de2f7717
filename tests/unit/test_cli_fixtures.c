/*
 * Builds the inputs that tests/integration/cli.sh feeds to the keyhole
 * CLI without a running broker. These are a policy and a stricter
 * version of it, permits minted with the permit key, and a DPR log with
 * decision, access and revoke records signed with the audit key.
 *
 * With KH_CLI_FIXTURES=DIR it writes them into DIR, using the
 * permit.jwk and audit.jwk that keyhole keygen wrote there. Without it
 * (as tests/run.sh runs it) it uses fresh keys in a temporary directory,
 * checks what it wrote with the library, and removes the directory.
 *
 * Files written:
 *   policy.json, policy-strict.json   strict.json permits less
 *   policy-limited.json   one charge per 60 s
 *   permit.jwt     tool_call permit for stripe.charge amount 500
 *   expired.jwt    the same claims, expired five minutes ago
 *   exec.jwt       exec permit for the command line "echo hello"
 *   audit/dpr.jsonl
 *   audit-limited/dpr.jsonl   two charges under policy-limited.json:
 *                  a permit, then a default deny at the rate limit
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "keyhole/keyhole.h"

#define TENANT "acme"
#define ENV "test"

/* Charges above 10000 are denied. Smaller ones match small-charges. */
static const char policy_text[] =
	"{\"tenant\":\"" TENANT "\",\"env\":\"" ENV "\",\"max_ttl\":300,"
	"\"rules\":["
	"{\"id\":\"deny-large-charges\",\"effect\":\"deny\","
	"\"action\":{\"type\":\"tool_call\",\"tool\":\"stripe.charge\"},"
	"\"when\":[{\"path\":\"action.params.amount\",\"op\":\">\","
	"\"value\":10000}]},"
	"{\"id\":\"small-charges\",\"effect\":\"permit\","
	"\"action\":{\"type\":\"tool_call\",\"tool\":\"stripe.*\"},"
	"\"grant\":{\"secrets\":[\"local/stripe_key\"],\"ttl\":60}}]}\n";

/* The same rules with the deny threshold lowered to 100. */
static const char strict_policy_text[] =
	"{\"tenant\":\"" TENANT "\",\"env\":\"" ENV "\",\"max_ttl\":300,"
	"\"rules\":["
	"{\"id\":\"deny-large-charges\",\"effect\":\"deny\","
	"\"action\":{\"type\":\"tool_call\",\"tool\":\"stripe.charge\"},"
	"\"when\":[{\"path\":\"action.params.amount\",\"op\":\">\","
	"\"value\":100}]},"
	"{\"id\":\"small-charges\",\"effect\":\"permit\","
	"\"action\":{\"type\":\"tool_call\",\"tool\":\"stripe.*\"},"
	"\"grant\":{\"secrets\":[\"local/stripe_key\"],\"ttl\":60}}]}\n";

/* Permits one charge per 60 s and agent, so a second one hits the limit. */
static const char limited_policy_text[] =
	"{\"tenant\":\"" TENANT "\",\"env\":\"" ENV "\",\"max_ttl\":300,"
	"\"rules\":["
	"{\"id\":\"small-charges\",\"effect\":\"permit\","
	"\"action\":{\"type\":\"tool_call\",\"tool\":\"stripe.*\"},"
	"\"grant\":{\"secrets\":[\"local/stripe_key\"],\"ttl\":60},"
	"\"limits\":{\"rate\":{\"count\":1,\"per\":60}}}]}\n";

static char dir[PATH_MAX];
static int temporary;
static struct kh_key *permit_key;
static struct kh_key *audit_key;
static struct kh_policy *policy;

static int path_in_dir(char *out, size_t size, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int write_text(const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;
	int rc;

	if (path_in_dir(path, sizeof(path), name) < 0)
		return -ENAMETOOLONG;
	f = fopen(path, "w");
	if (!f)
		return -errno;
	rc = fputs(text, f) < 0 ? -EIO : 0;
	if (fclose(f) != 0 && rc == 0)
		rc = -EIO;
	return rc;
}

static int generate_keys(void)
{
	static const char *const files[2][2] = {
		{ "permit.jwk", "permit.pub.jwk" },
		{ "audit.jwk", "audit.pub.jwk" },
	};
	char private_path[PATH_MAX], public_path[PATH_MAX];
	int rc = 0;

	for (size_t i = 0; i < 2 && rc == 0; i++) {
		struct kh_key *key = NULL;

		rc = path_in_dir(private_path, sizeof(private_path),
				 files[i][0]);
		if (rc == 0)
			rc = path_in_dir(public_path, sizeof(public_path),
					 files[i][1]);
		if (rc == 0)
			rc = kh_key_generate(&key, NULL);
		if (rc == 0)
			rc = kh_key_save(key, private_path, public_path, NULL);
		kh_key_free(key);
	}
	return rc;
}

static int load_key(const char *name, struct kh_key **out)
{
	char path[PATH_MAX];
	struct kh_err err = { { 0 } };
	int rc;

	if (path_in_dir(path, sizeof(path), name) < 0)
		return -ENAMETOOLONG;
	rc = kh_key_load(path, out, &err);
	if (rc < 0)
		kh_test_fail(__FILE__, __LINE__, "%s", err.msg);
	return rc;
}

static void test_keys(void)
{
	const char *fixture_dir = getenv("KH_CLI_FIXTURES");

	if (fixture_dir && *fixture_dir) {
		(void)snprintf(dir, sizeof(dir), "%s", fixture_dir);
	} else {
		(void)snprintf(dir, sizeof(dir), "%s/kh-cli-fixtures.XXXXXX",
			       getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		CHECK(mkdtemp(dir) != NULL);
		temporary = 1;
		CHECK_INT(generate_keys(), 0);
	}
	CHECK_INT(load_key("permit.jwk", &permit_key), 0);
	CHECK_INT(load_key("audit.jwk", &audit_key), 0);
}

static void test_policies(void)
{
	char path[PATH_MAX];
	struct kh_err err = { { 0 } };

	CHECK_INT(write_text("policy.json", policy_text), 0);
	CHECK_INT(write_text("policy-strict.json", strict_policy_text), 0);
	CHECK_INT(write_text("policy-limited.json", limited_policy_text), 0);
	CHECK_INT(path_in_dir(path, sizeof(path), "policy.json"), 0);
	CHECK_INT(kh_policy_load(path, &policy, &err), 0);
	if (err.msg[0])
		kh_test_fail(__FILE__, __LINE__, "%s", err.msg);
}

static json_t *charge_action(int amount)
{
	return json_pack("{s:s, s:s, s:{s:i, s:s}}", "type", "tool_call",
			 "tool", "stripe.charge", "params", "amount", amount,
			 "currency", "usd");
}

/* Claims as keyholed mints them, for the action hash hA. */
static json_t *permit_claims(const char *hA, int64_t iat, int64_t exp)
{
	char jti[KH_JTI_LEN + 1];
	char sub[32];

	if (kh_permit_new_jti(jti) < 0)
		return NULL;
	(void)snprintf(sub, sizeof(sub), "uid:%u", (unsigned)getuid());
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, "
			 "s:s, s:s, s:{s:[s], s:i}, s:{s:i}}",
			 "iss", "fixture-broker", "sub", sub, "tenant", TENANT,
			 "env", ENV, "hA", hA, "hP", kh_policy_hash(policy),
			 "hS", kh_policy_hash(policy), "iat", (json_int_t)iat,
			 "exp", (json_int_t)exp, "jti", jti, "rule",
			 "small-charges", "grants", "secrets",
			 "local/stripe_key", "uses", 1, "constraints", "ttl",
			 60);
}

static int mint_to_file(const json_t *action, int64_t iat, int64_t exp,
			const char *name)
{
	char hA[KH_HASH_HEX_LEN + 1];
	char *token = NULL;
	json_t *claims = NULL;
	int rc;

	rc = kh_action_hash(action, hA, NULL);
	if (rc < 0)
		return rc;
	claims = permit_claims(hA, iat, exp);
	rc = claims ? kh_permit_mint(permit_key, claims, &token, NULL)
		    : -ENOMEM;
	if (rc == 0)
		rc = write_text(name, token);
	free(token);
	json_decref(claims);
	return rc;
}

static void test_permits(void)
{
	char *echo_argv[] = { "echo", "hello", NULL };
	int64_t now = (int64_t)time(NULL);
	json_t *charge = charge_action(500);
	json_t *exec = NULL;
	struct kh_err err = { { 0 } };

	CHECK(charge != NULL);
	CHECK_INT(mint_to_file(charge, now, now + 300, "permit.jwt"), 0);
	CHECK_INT(mint_to_file(charge, now - 900, now - 300, "expired.jwt"),
		  0);
	CHECK_INT(kh_action_from_argv(echo_argv, &exec, &err), 0);
	if (exec)
		CHECK_INT(mint_to_file(exec, now, now + 300, "exec.jwt"), 0);
	json_decref(exec);
	json_decref(charge);
}

/* The members of a decision record, as keyholed writes them. */
static json_t *decision_fields(const char *hP, const json_t *action,
			       const json_t *state,
			       const struct kh_decision *decision,
			       const struct kh_agent *agent, int64_t now)
{
	char hA[KH_HASH_HEX_LEN + 1], hS[KH_HASH_HEX_LEN + 1];
	char jti[KH_JTI_LEN + 1];
	bool permit = decision->effect == KH_EFFECT_PERMIT;

	if (kh_action_hash(action, hA, NULL) < 0 ||
	    kh_hash(state, hS, NULL) < 0 || kh_permit_new_jti(jti) < 0)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:s}, s:O, s:s, s:s, "
			 "s:s, s:O, s:o, s:o, s:f}",
			 "effect", permit ? "permit" : "deny", "rule",
			 decision->rule, "reason", decision->reason, "agent",
			 "uid", (json_int_t)agent->uid, "pid",
			 (json_int_t)agent->pid, "exe", "/usr/bin/agent",
			 "action", action, "hA", hA, "hP", hP, "hS", hS,
			 "state", state,
			 "jti", permit ? json_string(jti) : json_null(),
			 "exp", permit ? json_integer(now + 60) : json_null(),
			 "amount", decision->amount);
}

/*
 * Evaluates a charge of amount against rules like keyholed and logs the
 * decision. *logged gets the record's fields plus its "seq" and "hash".
 */
static int log_decision(struct kh_dpr *dpr, struct kh_ledger *ledger,
			const struct kh_policy *rules, int amount,
			json_t **logged)
{
	struct kh_agent agent = { 0 };
	struct kh_decision decision = { 0 };
	int64_t now = (int64_t)time(NULL);
	json_t *action = charge_action(amount), *state = NULL;
	json_t *fields = NULL;
	char hash[KH_HASH_HEX_LEN + 1];
	uint64_t seq = 0;
	int rc;

	*logged = NULL;
	rc = kh_agent_resolve(getuid(), &agent, NULL);
	agent.pid = getpid();
	if (rc == 0)
		rc = kh_state_build(rules, ledger, &agent, now, &state, NULL);
	if (rc == 0)
		rc = kh_policy_eval(rules, action, state, &decision, NULL);
	if (rc == 0) {
		fields = decision_fields(kh_policy_hash(rules), action, state,
					 &decision, &agent, now);
		rc = fields ? kh_dpr_append(dpr, "decision", fields, &seq,
					    hash, NULL)
			    : -ENOMEM;
	}
	if (rc == 0 &&
	    (json_object_set_new(fields, "seq",
				 json_integer((json_int_t)seq)) < 0 ||
	     json_object_set_new(fields, "hash", json_string(hash)) < 0))
		rc = -ENOMEM;
	if (rc == 0 && decision.effect == KH_EFFECT_PERMIT)
		rc = kh_ledger_note_mint(ledger, decision.rule, agent.uid, now,
					 decision.amount);
	if (rc == 0)
		*logged = json_incref(fields);
	kh_decision_clear(&decision);
	json_decref(fields);
	json_decref(state);
	json_decref(action);
	return rc;
}

/*
 * An access that used the permit minted by decision, then its
 * revocation, with the members keyholed writes.
 */
static int log_use_and_revoke(struct kh_dpr *dpr, const json_t *decision)
{
	const json_t *jti = json_object_get(decision, "jti");
	const json_t *exp = json_object_get(decision, "exp");
	json_t *access, *revoke;
	int rc;

	access = json_pack("{s:O, s:{s:O, s:O}, s:s, s:s, s:s, s:s, "
			   "s:{s:i, s:i}, s:s, s:i, s:O}",
			   "jti", jti, "decision", "seq",
			   json_object_get(decision, "seq"), "hash",
			   json_object_get(decision, "hash"), "backend",
			   "local", "secret", "local/stripe_key", "outcome",
			   "granted", "reason", "permit verified", "reader",
			   "uid", (int)getuid(), "pid", (int)getpid(), "hP",
			   kh_policy_hash(policy), "uses", 1, "exp", exp);
	revoke = json_pack("{s:O, s:O, s:{s:i}, s:s}", "jti", jti, "exp", exp,
			   "by", "uid", (int)getuid(), "reason",
			   "fixture \"revoke\"\nseq=9 forged");
	rc = access && revoke ? 0 : -ENOMEM;
	if (rc == 0)
		rc = kh_dpr_append(dpr, "access", access, NULL, NULL, NULL);
	if (rc == 0)
		rc = kh_dpr_append(dpr, "revoke", revoke, NULL, NULL, NULL);
	json_decref(access);
	json_decref(revoke);
	return rc;
}

static void test_log(void)
{
	char audit_dir[PATH_MAX];
	struct kh_err err = { { 0 } };
	struct kh_dpr *dpr = NULL;
	struct kh_ledger *ledger = NULL;
	json_t *small = NULL, *large = NULL;
	json_t *load = json_pack("{s:s}", "hP", kh_policy_hash(policy));

	CHECK_INT(path_in_dir(audit_dir, sizeof(audit_dir), "audit"), 0);
	CHECK_INT(kh_ledger_new(&ledger), 0);
	CHECK_INT(kh_dpr_open(audit_dir, audit_key, NULL, &dpr, &err), 0);
	if (!dpr || !ledger || !load) {
		kh_test_fail(__FILE__, __LINE__, "setup failed: %s", err.msg);
		goto out;
	}
	CHECK_INT(kh_dpr_append(dpr, "policy_load", load, NULL, NULL, &err),
		  0);
	CHECK_INT(kh_dpr_archive_policy(dpr, policy, &err), 0);
	CHECK_INT(log_decision(dpr, ledger, policy, 500, &small), 0);
	CHECK_INT(log_decision(dpr, ledger, policy, 50000, &large), 0);
	CHECK_STR(json_string_value(json_object_get(small, "effect")),
		  "permit");
	CHECK_STR(json_string_value(json_object_get(large, "effect")), "deny");
	if (small)
		CHECK_INT(log_use_and_revoke(dpr, small), 0);
out:
	if (err.msg[0])
		fprintf(stderr, "  log: %s\n", err.msg);
	json_decref(small);
	json_decref(large);
	json_decref(load);
	kh_dpr_close(dpr);
	kh_ledger_free(ledger);
}

/*
 * A default deny whose reason is not "no rule matched", for the output
 * of keyhole audit replay.
 */
static void test_limited_log(void)
{
	char path[PATH_MAX];
	struct kh_err err = { { 0 } };
	struct kh_policy *limited = NULL;
	struct kh_dpr *dpr = NULL;
	struct kh_ledger *ledger = NULL;
	json_t *first = NULL, *second = NULL;
	const char *reason;

	CHECK_INT(path_in_dir(path, sizeof(path), "policy-limited.json"), 0);
	CHECK_INT(kh_policy_load(path, &limited, &err), 0);
	CHECK_INT(path_in_dir(path, sizeof(path), "audit-limited"), 0);
	CHECK_INT(kh_ledger_new(&ledger), 0);
	CHECK_INT(kh_dpr_open(path, audit_key, NULL, &dpr, &err), 0);
	if (!limited || !dpr || !ledger) {
		kh_test_fail(__FILE__, __LINE__, "setup failed: %s", err.msg);
		goto out;
	}
	CHECK_INT(log_decision(dpr, ledger, limited, 500, &first), 0);
	CHECK_INT(log_decision(dpr, ledger, limited, 500, &second), 0);
	CHECK_STR(json_string_value(json_object_get(first, "effect")),
		  "permit");
	CHECK_STR(json_string_value(json_object_get(second, "effect")),
		  "deny");
	CHECK_STR(json_string_value(json_object_get(second, "rule")), "");
	reason = json_string_value(json_object_get(second, "reason"));
	CHECK(reason != NULL);
	if (reason)
		CHECK(strstr(reason, "rate limit reached (1 per 60 s)") != NULL);
out:
	json_decref(first);
	json_decref(second);
	kh_dpr_close(dpr);
	kh_ledger_free(ledger);
	kh_policy_free(limited);
}

/* The log must verify, so that cli.sh can tell a flipped byte from noise. */
static void test_log_verifies(void)
{
	char audit_dir[PATH_MAX];
	struct kh_err err = { { 0 } };
	struct kh_dpr_report report = { 0 };
	int rc;

	CHECK_INT(path_in_dir(audit_dir, sizeof(audit_dir), "audit"), 0);
	rc = kh_dpr_verify(audit_dir, audit_key, &report, &err);
	CHECK_INT(rc, 0);
	CHECK_INT(report.records, 5);
	if (rc != 0)
		fprintf(stderr, "  verify: %s\n", err.msg);
}

/* permit.jwt must decode and pass the checks keyhole verify runs. */
static void test_permit_verifies(void)
{
	char path[PATH_MAX];
	struct kh_keyring ring = { .keys = { permit_key }, .count = 1 };
	struct kh_permit permit = { 0 };
	struct kh_permit_expect expect = {
		.tenant = TENANT, .env = ENV, .now = (int64_t)time(NULL),
		.uid = -1, .uses_spent = -1,
		.skip = KH_CHECK_UID | KH_CHECK_ACTION | KH_CHECK_POLICY |
			KH_CHECK_USES | KH_CHECK_SECRET,
	};
	char *token = NULL;
	size_t len = 0;
	FILE *f;

	CHECK_INT(path_in_dir(path, sizeof(path), "permit.jwt"), 0);
	f = fopen(path, "r");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(getdelim(&token, &len, '\0', f) > 0);
	(void)fclose(f);
	if (token) {
		CHECK_INT(kh_permit_decode(token, strlen(token), &ring, &permit,
					   NULL), KH_VERDICT_OK);
		CHECK_INT(kh_permit_check_all(&permit, &expect, NULL),
			  KH_VERDICT_OK);
	}
	kh_permit_clear(&permit);
	free(token);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void test_cleanup(void)
{
	kh_key_free(permit_key);
	kh_key_free(audit_key);
	kh_policy_free(policy);
	permit_key = audit_key = NULL;
	policy = NULL;
	if (temporary)
		CHECK_INT(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static const struct kh_test_case cases[] = {
	{ "keys", test_keys },
	{ "policies", test_policies },
	{ "permits", test_permits },
	{ "log", test_log },
	{ "limited log", test_limited_log },
	{ "log verifies", test_log_verifies },
	{ "permit verifies", test_permit_verifies },
	{ "cleanup", test_cleanup },
};

int main(void)
{
	return KH_TEST_RUN("cli_fixtures", cases);
}
