/*
 * keyhole audit replay: re-evaluates logged decisions against a chosen
 * policy, using each decision record's own action and state snapshot
 * (agent, time, rate and budget counters). Against the policy a decision
 * was made under (its hP), replay is expected to agree. Against another
 * version it shows whether that policy would have allowed the action.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "keyhole/action.h"
#include "keyhole/dpr.h"
#include "keyhole/policy.h"

static const char replay_help[] =
	"Usage: keyhole audit replay --dir DIR --policy FILE [--seq N]\n"
	"\n"
	"Re-evaluates every decision record in DIR (or only the one with\n"
	"sequence number N) against the policy in FILE, using the action and\n"
	"the state snapshot stored in the record. Prints, per decision, the\n"
	"original and the replayed effect and rule, and \"same\" or \"DIFFERS\".\n"
	"This does not verify the log; run keyhole audit verify first.\n"
	"\n"
	"Options:\n"
	"  --dir DIR       audit directory (holds " KH_DPR_FILE "; archived\n"
	"                  policies are in DIR/policies/HP.json)\n"
	"  --policy FILE   policy to replay against\n"
	"  --seq N         replay only the decision with this seq\n"
	"  -h, --help      show this help\n"
	"\n"
	"Exit status: 0 when every replayed decision is the same, 1 when one\n"
	"differs or cannot be replayed, 2 for a usage or policy error.\n";

enum { OPT_DIR = 256, OPT_POLICY, OPT_SEQ };

struct replay_options {
	const char *dir;
	const char *policy;
	long long seq; /* 0: every decision */
};

struct replay_run {
	const struct kh_policy *policy;
	long long seq;
	unsigned long long replayed;
	unsigned long long differ;
	unsigned long long failed; /* records that could not be evaluated */
};

static int set_replay_option(int opt, void *data)
{
	struct replay_options *opts = data;

	switch (opt) {
	case OPT_DIR:
		opts->dir = optarg;
		break;
	case OPT_POLICY:
		opts->policy = optarg;
		break;
	case OPT_SEQ:
		if (kh_cli_parse_int(optarg, 1, KH_JSON_MAX_SAFE_INT,
				     &opts->seq) < 0)
			return kh_cli_usage_error("audit replay", "invalid "
						  "--seq: %s: give a record's "
						  "seq (1 or more)", optarg);
		break;
	}
	return KH_EXIT_OK;
}

static int parse_replay(int argc, char **argv, struct replay_options *opts)
{
	static const struct option options[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "policy", required_argument, NULL, OPT_POLICY },
		{ "seq", required_argument, NULL, OPT_SEQ },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "audit replay",
		.help = replay_help,
		.short_options = ":h",
		.options = options,
		.set = set_replay_option,
		.reject_operands = true,
	};
	int rc;

	memset(opts, 0, sizeof(*opts));
	rc = kh_cli_parse_options(&parser, argc, argv, opts);
	if (rc != KH_EXIT_OK)
		return rc;
	if (!opts->dir || !opts->policy)
		return kh_cli_usage_error("audit replay", "missing %s",
					  opts->dir ? "--policy" : "--dir");
	return KH_EXIT_OK;
}

static const char *effect_name(enum kh_effect effect)
{
	return effect == KH_EFFECT_PERMIT ? "permit" : "deny";
}

/*
 * Writes "permit (rule r1)". A default deny has rule "", and its reason
 * explains why no rule applied ("no rule matched", or the limit that
 * stopped a permit rule), so that reason is written in place of a rule.
 */
static void format_outcome(const char *effect, const char *rule,
			   const char *reason, char *buf, size_t size)
{
	if (rule && *rule)
		(void)snprintf(buf, size, "%s (rule %s)", effect, rule);
	else if (reason && *reason)
		(void)snprintf(buf, size, "%s (%s)", effect, reason);
	else
		(void)snprintf(buf, size, "%s (no rule matched)", effect);
}

static int replay_decision(const json_t *record, struct replay_run *run,
			   long long seq)
{
	struct kh_err err = { { 0 } };
	struct kh_decision decision = { 0 };
	const json_t *action = json_object_get(record, "action");
	const json_t *state = json_object_get(record, "state");
	const json_t *effect_value = json_object_get(record, "effect");
	const char *effect = json_string_value(effect_value);
	const char *rule = json_string_value(json_object_get(record, "rule"));
	const char *reason =
		json_string_value(json_object_get(record, "reason"));
	char before[384], after[384];
	bool same;

	run->replayed++;
	if (!effect || !state || kh_action_validate(action, &err) < 0 ||
	    kh_policy_eval(run->policy, action, state, &decision, &err) < 0) {
		printf("seq %lld: cannot replay: %s\n", seq,
		       err.msg[0] ? err.msg : "record lacks effect or state");
		run->failed++;
		kh_decision_clear(&decision);
		return 0;
	}
	same = strcmp(effect, effect_name(decision.effect)) == 0 &&
	       strcmp(rule ? rule : "", decision.rule) == 0;
	format_outcome(effect, rule, reason, before, sizeof(before));
	format_outcome(effect_name(decision.effect), decision.rule,
		       decision.reason, after, sizeof(after));
	printf("seq %lld: %s -> %s: %s\n", seq, before, after,
	       same ? "same" : "DIFFERS");
	/* A default deny already shows its reason in the outcome. */
	if (!same && decision.rule[0] && decision.reason[0])
		printf("  replayed reason: %s\n", decision.reason);
	if (!same)
		run->differ++;
	kh_decision_clear(&decision);
	return 0;
}

static int replay_record(const json_t *record, void *ctx)
{
	struct replay_run *run = ctx;
	const char *type = json_string_value(json_object_get(record, "type"));
	long long seq = json_integer_value(json_object_get(record, "seq"));

	if (!type || strcmp(type, "decision") != 0)
		return 0;
	if (run->seq && seq != run->seq)
		return 0;
	return replay_decision(record, run, seq);
}

static int run_replay(const struct replay_options *opts,
		      const struct kh_policy *policy)
{
	struct kh_err err = { { 0 } };
	struct replay_run run = { .policy = policy, .seq = opts->seq };
	int rc;

	printf("policy %s (hP %s)\n", opts->policy, kh_policy_hash(policy));
	rc = kh_dpr_foreach(opts->dir, replay_record, &run, &err);
	if (rc != 0)
		return kh_cli_log_read_error("audit replay", opts->dir, rc, &err);
	if (opts->seq && run.replayed == 0) {
		kh_cli_error("audit replay: no decision record with seq %lld: "
			     "list them with keyhole audit show --type "
			     "decision", opts->seq);
		return KH_EXIT_USAGE;
	}
	printf("%llu decisions replayed: %llu same, %llu differ, %llu "
	       "failed\n", run.replayed,
	       run.replayed - run.differ - run.failed, run.differ, run.failed);
	return run.differ || run.failed ? KH_EXIT_FAILED : KH_EXIT_OK;
}

int kh_cmd_audit_replay(int argc, char **argv)
{
	struct kh_err err = { { 0 } };
	struct replay_options opts;
	struct kh_policy *policy = NULL;
	int rc;

	rc = parse_replay(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	if (kh_policy_load(opts.policy, &policy, &err) < 0) {
		kh_cli_error("audit replay: invalid policy: %s", err.msg);
		return KH_EXIT_USAGE;
	}
	rc = run_replay(&opts, policy);
	kh_policy_free(policy);
	return rc;
}
