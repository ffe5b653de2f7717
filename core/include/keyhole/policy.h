/*
 * Policy v1: a JSON document {tenant, env, max_ttl, rules[]}, and
 * hP = SHA-256(JCS(policy)). Each rule has:
 *   id      unique, 1 to 64 characters from [A-Za-z0-9._-]
 *   effect  "permit" or "deny"
 *   agents  optional {users, groups, uids}: names must resolve through
 *           NSS at parse time; any listed entry matching is enough, and
 *           an absent agents matches every agent
 *   action  {"type":"tool_call","tool":glob} or
 *           {"type":"exec","exe":glob,"argv":[glob,...]} where argv is
 *           optional and a final "**" matches any remaining arguments
 *   when    optional [{path, op, value}], op one of == != < <= > >= in
 *           not_in glob prefix
 *   grant   permit rules only: {secrets: ["<backend>/<name>",...],
 *           ttl (default 60 s, or max_ttl when lower), uses (default 1)}
 *   limits  permit rules only: {rate: {count, per}, budget: {path, max,
 *           per}}, counted per rule and agent uid, windows in seconds
 * Evaluation: deny overrides permit, the first matching permit wins,
 * and the default is deny.
 */
#ifndef KEYHOLE_POLICY_H
#define KEYHOLE_POLICY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyhole/canon.h"
#include "keyhole/error.h"
#include "keyhole/ledger.h"

#define KH_POLICY_DEFAULT_TTL 60
#define KH_POLICY_DEFAULT_USES 1

struct kh_policy;

/*
 * Parses a policy strictly. Unknown keys, wrong types, invalid globs,
 * unknown ops, unknown user or group names, duplicate rule ids and a
 * ttl above max_ttl are rejected with -EINVAL. err then reads
 * "<origin>:<line>: <JSON path>: <problem and fix>". origin names the
 * source in messages and defaults to "policy" when NULL.
 */
int kh_policy_parse(const char *text, size_t len, const char *origin,
		    struct kh_policy **out, struct kh_err *err)
	__attribute__((warn_unused_result));

/* Reads a policy file of at most 4 MiB and parses it with path as origin. */
int kh_policy_load(const char *path, struct kh_policy **out,
		   struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Checks a policy like kh_policy_parse but reports every error through
 * report (which may be NULL to only count them), each in the same
 * "<origin>:<line>: <JSON path>: <problem and fix>" form. Checking goes
 * on past a schema error to the next key, condition or rule. A JSON
 * syntax error stops it, because jansson cannot resume, and counts as
 * one error. Returns the number of errors (0 for a valid policy), or a
 * negative errno when memory runs out.
 */
int kh_policy_check(const char *text, size_t len, const char *origin,
		    kh_err_report_fn report, void *ctx)
	__attribute__((warn_unused_result));

/*
 * kh_policy_check on the file at path, with path as origin. When the
 * file cannot be read (missing, unreadable, not a regular file, larger
 * than 4 MiB) the message goes to report too and the result is that
 * negative errno.
 */
int kh_policy_check_file(const char *path, kh_err_report_fn report,
			 void *ctx)
	__attribute__((warn_unused_result));

void kh_policy_free(struct kh_policy *policy);

/* hP as 64 lowercase hex digits; valid while policy lives. */
const char *kh_policy_hash(const struct kh_policy *policy);
const char *kh_policy_tenant(const struct kh_policy *policy);
const char *kh_policy_env(const struct kh_policy *policy);

/* The parsed document (borrowed). */
const json_t *kh_policy_json(const struct kh_policy *policy);

/* Maximum rate or budget window of any rule, in seconds (0 if none). */
int64_t kh_policy_max_window(const struct kh_policy *policy);

/*
 * The agent a decision is about, resolved through NSS from a uid that
 * came from the kernel (SO_PEERCRED). groups lists every group name the
 * user belongs to, primary first and without duplicates.
 */
struct kh_agent {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char user[64];
	char groups[32][64];
	size_t group_count;
};

/*
 * Fills agent for uid via getpwuid_r, getgrouplist and getgrgid_r (pid
 * stays 0 for the caller to set). Returns -ENOENT for an unknown uid and
 * -E2BIG for a user in more than 32 named groups, rather than drop a
 * group that a deny rule may name.
 */
int kh_agent_resolve(uid_t uid, struct kh_agent *agent, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Builds the evaluation state a decision consults, as JSON:
 *   {"agent":{"uid":n,"user":s,"groups":[...]},"time":now,
 *    "counters":{"<rule id>":{"rate":n,"budget":x},...}}
 * counters lists every rule with limits, for this agent, from ledger
 * (NULL reads as empty). Each entry has "rate" when the rule has a rate
 * limit and "budget" when it has a budget. hS is SHA-256(JCS(state)).
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
 * JSON of what applies ({"ttl":..,"uses":..,"rate":..,"budget":..}) and
 * amount is the budget amount to charge (0 when none). kh_decision_clear
 * releases secrets and constraints.
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
 * limit would be exceeded does not match. When no rule matches, the
 * reason is "no rule matched (closest: rule ID: WHY)", where WHY is the
 * first failed check of the closest permit rule of the action's type.
 * That rule got furthest through tool or exe, argv, agents, when and
 * limits, and is the earliest on a tie. Quoted action values are cut to
 * 64 characters and the reason to 255 bytes. A condition that cannot be evaluated (missing path, types that
 * do not fit the op) fails a permit rule and satisfies a deny rule.
 * Returns 0 with a filled decision, or -errno for an invalid action or
 * state or an internal failure (callers deny then).
 */
int kh_policy_eval(const struct kh_policy *policy, const json_t *action,
		   const json_t *state, struct kh_decision *out,
		   struct kh_err *err)
	__attribute__((warn_unused_result));

void kh_decision_clear(struct kh_decision *decision);

/*
 * Globs follow fnmatch(3) without flags. '*' matches any run of
 * characters including '/', and '?' matches one character. "[...]" is a
 * bracket expression with '!' or '^' for negation, ranges and ASCII
 * classes such as [:digit:]. A backslash escapes the next character.
 * Characters are UTF-8 code points, and matching ignores the locale.
 */

/*
 * Checks a glob's syntax: returns 0, or -EINVAL for an empty pattern,
 * an unclosed '[', a bad range or class, or a trailing backslash.
 */
int kh_glob_validate(const char *pattern, struct kh_err *err);

/*
 * Matches subject (len bytes) against pattern. Returns 1 on a match,
 * 0 on none, -EINVAL for an invalid pattern or a subject that contains
 * a NUL byte.
 */
int kh_glob_match(const char *pattern, const char *subject, size_t len);

/*
 * Matches argv against a list of globs element by element; a final
 * "**" matches any remaining arguments (including none). Without "**"
 * the lengths must be equal. Returns 1 on a match, 0 on none, -EINVAL
 * when an element is not a string or a glob is invalid.
 */
int kh_glob_match_argv(const json_t *globs, const json_t *argv);

#endif
