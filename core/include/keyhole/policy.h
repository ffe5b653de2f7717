/*
 * Policy v1: a JSON document {tenant, env, max_ttl, rules[]}; see
 * docs/design.md for the full schema. hP = SHA-256(JCS(policy)).
 * Evaluation: deny overrides permit, the first matching permit wins,
 * the default is deny.
 */
#ifndef KEYHOLE_POLICY_H
#define KEYHOLE_POLICY_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyhole/canon.h"
#include "keyhole/error.h"
#include "keyhole/ledger.h"

#define KH_POLICY_DEFAULT_TTL 60
#define KH_POLICY_DEFAULT_USES 1

struct kh_policy;

/*
 * Parses a policy strictly: unknown keys, wrong types, bad globs, bad
 * ops, duplicate rule ids and a ttl above max_ttl are rejected; err
 * names origin (a file name), the JSON path and the line.
 */
int kh_policy_parse(const char *text, size_t len, const char *origin,
		    struct kh_policy **out, struct kh_err *err)
	__attribute__((warn_unused_result));

int kh_policy_load(const char *path, struct kh_policy **out,
		   struct kh_err *err)
	__attribute__((warn_unused_result));

void kh_policy_free(struct kh_policy *policy);

/* hP as 64 lowercase hex digits; valid while policy lives. */
const char *kh_policy_hash(const struct kh_policy *policy);
const char *kh_policy_tenant(const struct kh_policy *policy);
const char *kh_policy_env(const struct kh_policy *policy);

/* The parsed document (borrowed). */
const json_t *kh_policy_json(const struct kh_policy *policy);

/* Longest rate or budget window of any rule, in seconds (0 if none). */
int64_t kh_policy_max_window(const struct kh_policy *policy);

/*
 * The agent a decision is about, resolved through NSS from a uid that
 * came from the kernel (SO_PEERCRED). groups holds every group name the
 * user belongs to (primary first).
 */
struct kh_agent {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char user[64];
	char groups[32][64];
	size_t group_count;
};

/* Fills agent for uid via getpwuid_r/getgrouplist; -ENOENT if unknown. */
int kh_agent_resolve(uid_t uid, struct kh_agent *agent, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Builds the evaluation state a decision consults, as JSON:
 *   {"agent":{"uid":n,"user":s,"groups":[...]},"time":now,
 *    "counters":{"<rule id>":{"rate":n,"budget":x},...}}
 * counters lists every rule with limits, for this agent, from ledger.
 * hS is SHA-256(JCS(state)).
 */
int kh_state_build(const struct kh_policy *policy,
		   const struct kh_ledger *ledger,
		   const struct kh_agent *agent, int64_t now,
		   json_t **state, struct kh_err *err)
	__attribute__((warn_unused_result));

enum kh_effect { KH_EFFECT_DENY = 0, KH_EFFECT_PERMIT = 1 };

/*
 * A decision. rule is "" for the default deny. For a permit, secrets
 * (array), ttl and uses come from the rule's grant, constraints is the
 * JSON of the limits applied ({"rate":..,"budget":..,"ttl":..}) and
 * amount is the budget amount to charge (0 when none).
 */
struct kh_decision {
	enum kh_effect effect;
	char rule[128];
	char reason[256];
	json_t *secrets;
	int64_t ttl;
	uint32_t uses;
	json_t *constraints;
	double amount;
};

/*
 * Evaluates action (validated) against policy with the given state (as
 * built by kh_state_build, or taken from a DPR snapshot for replay).
 * Conditions' paths are dotted paths into the document
 * {"action":...,"agent":...,"time":...} with numeric segments indexing
 * arrays, e.g. "action.params.amount". A rule whose rate or budget
 * limit would be exceeded does not match and the reason says so.
 * Returns 0 with a filled decision, or -errno on internal failure
 * (callers deny then).
 */
int kh_policy_eval(const struct kh_policy *policy, const json_t *action,
		   const json_t *state, struct kh_decision *out,
		   struct kh_err *err)
	__attribute__((warn_unused_result));

void kh_decision_clear(struct kh_decision *decision);

/* fnmatch-style glob check used by policy; 0 if pattern is valid. */
int kh_glob_validate(const char *pattern, struct kh_err *err);

/*
 * Matches argv against a list of globs element by element; a final
 * "**" matches any remaining arguments (including none).
 */
int kh_glob_match_argv(const json_t *globs, const json_t *argv);

#endif
