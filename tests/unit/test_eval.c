/*
 * Policy evaluation. A table runs actions and states against one policy
 * and checks the effect, rule and reason of each decision. Further cases
 * cover grants, globs, kh_state_build and agent resolution.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "keyhole/ledger.h"
#include "keyhole/policy.h"

/* User and group names must exist on a stock Debian system. */
static const char policy_text[] =
	"{\"tenant\": \"acme\", \"env\": \"prod\", \"max_ttl\": 300, \"rules\": [\n"
	"{\"id\": \"no-rm\", \"effect\": \"deny\", \"action\": {\"type\": \"exec\","
	" \"exe\": \"/usr/bin/rm\", \"argv\": [\"rm\", \"**\"]}},\n"
	"{\"id\": \"no-nobody\", \"effect\": \"deny\", \"agents\": {\"users\":"
	" [\"nobody\"]}, \"action\": {\"type\": \"tool_call\", \"tool\": \"*\"}},\n"
	"{\"id\": \"no-big-refund\", \"effect\": \"deny\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"stripe.refund\"}, \"when\": [{\"path\":"
	" \"action.params.amount\", \"op\": \">\", \"value\": 100}]},\n"
	"{\"id\": \"pay-small\", \"effect\": \"permit\", \"agents\": {\"groups\":"
	" [\"adm\"]}, \"action\": {\"type\": \"tool_call\", \"tool\":"
	" \"stripe.charge\"}, \"when\": [{\"path\": \"action.params.amount\","
	" \"op\": \"<=\", \"value\": 1000}], \"limits\": {\"rate\": {\"count\": 5,"
	" \"per\": 60}, \"budget\": {\"path\": \"action.params.amount\", \"max\":"
	" 2000, \"per\": 3600}}, \"grant\": {\"secrets\": [\"file/stripe\"],"
	" \"ttl\": 120, \"uses\": 3}},\n"
	"{\"id\": \"refund\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"stripe.refund\"}, \"grant\": {\"secrets\":"
	" [\"file/stripe\"]}},\n"
	"{\"id\": \"report\", \"effect\": \"permit\", \"agents\": {\"uids\":"
	" [1000]}, \"action\": {\"type\": \"exec\", \"exe\": \"/usr/bin/curl\","
	" \"argv\": [\"curl\", \"--netrc-file\", \"/run/secrets/*\","
	" \"http://127.0.0.1:*/report\"]}, \"grant\": {\"secrets\":"
	" [\"local/report.netrc\"]}},\n"
	"{\"id\": \"git\", \"effect\": \"permit\", \"agents\": {\"users\":"
	" [\"daemon\"]}, \"action\": {\"type\": \"exec\", \"exe\":"
	" \"/usr/bin/git\", \"argv\": [\"git\", \"**\"]}, \"grant\":"
	" {\"secrets\": []}},\n"
	"{\"id\": \"any-exe\", \"effect\": \"permit\", \"agents\": {\"uids\":"
	" [4242]}, \"action\": {\"type\": \"exec\", \"exe\": \"/opt/*\"},"
	" \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"first\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"dup.*\"}, \"grant\": {\"secrets\": [\"a/one\"]}},\n"
	"{\"id\": \"second\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"dup.x\"}, \"grant\": {\"secrets\": [\"a/two\"]}},\n"
	"{\"id\": \"op-eq\", \"effect\": \"permit\", \"action\": {\"type\": \"tool_call\","
	" \"tool\": \"op.eq\"}, \"when\": [{\"path\": \"action.params.v\", \"op\":"
	" \"==\", \"value\": {\"a\": [1, \"x\"]}}], \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-ne\", \"effect\": \"permit\", \"action\": {\"type\": \"tool_call\","
	" \"tool\": \"op.ne\"}, \"when\": [{\"path\": \"action.params.v\", \"op\":"
	" \"!=\", \"value\": 3}], \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-lt\", \"effect\": \"permit\", \"action\": {\"type\": \"tool_call\","
	" \"tool\": \"op.lt\"}, \"when\": [{\"path\": \"action.params.v\", \"op\":"
	" \"<\", \"value\": 10}], \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-le\", \"effect\": \"permit\", \"action\": {\"type\": \"tool_call\","
	" \"tool\": \"op.le\"}, \"when\": [{\"path\": \"action.params.v\", \"op\":"
	" \"<=\", \"value\": 10}], \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-gt\", \"effect\": \"permit\", \"action\": {\"type\": \"tool_call\","
	" \"tool\": \"op.gt\"}, \"when\": [{\"path\": \"action.params.v\", \"op\":"
	" \">\", \"value\": 10}], \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-ge\", \"effect\": \"permit\", \"action\": {\"type\": \"tool_call\","
	" \"tool\": \"op.ge\"}, \"when\": [{\"path\": \"action.params.v\", \"op\":"
	" \">=\", \"value\": 10.5}], \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-in\", \"effect\": \"permit\", \"action\": {\"type\": \"tool_call\","
	" \"tool\": \"op.in\"}, \"when\": [{\"path\": \"action.params.v\", \"op\":"
	" \"in\", \"value\": [\"usd\", 7]}], \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-not-in\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"op.not_in\"}, \"when\": [{\"path\":"
	" \"action.params.v\", \"op\": \"not_in\", \"value\": [\"root\", 0]}],"
	" \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-glob\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"op.glob\"}, \"when\": [{\"path\":"
	" \"action.params.v\", \"op\": \"glob\", \"value\": \"report-*.csv\"}],"
	" \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-prefix\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"op.prefix\"}, \"when\": [{\"path\":"
	" \"action.params.v\", \"op\": \"prefix\", \"value\": \"/tmp/\"}],"
	" \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-index\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"op.index\"}, \"when\": [{\"path\":"
	" \"action.params.list.1\", \"op\": \"==\", \"value\": \"b\"}],"
	" \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"op-agent\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"op.agent\"}, \"when\": [{\"path\":"
	" \"agent.groups.0\", \"op\": \"==\", \"value\": \"staff\"}, {\"path\":"
	" \"agent.uid\", \"op\": \">=\", \"value\": 1000}], \"grant\":"
	" {\"secrets\": []}},\n"
	"{\"id\": \"op-time\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"op.time\"}, \"when\": [{\"path\": \"time\","
	" \"op\": \"<\", \"value\": 1800000000}], \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"no-dup-blocked\", \"effect\": \"deny\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"dup.blocked\"}}\n"
	"]}\n";

/* An agent in group adm, and the plain default state around it. */
#define ALICE "{\"uid\": 1000, \"user\": \"alice\", \"groups\": [\"staff\", \"adm\"]}"
#define STATE_WITH(agent, counters) \
	"{\"agent\": " agent ", \"time\": 1700000000, \"counters\": " counters "}"
#define ZERO_COUNTERS "{\"pay-small\": {\"rate\": 0, \"budget\": 0}}"
#define STATE STATE_WITH(ALICE, ZERO_COUNTERS)
#define CHARGE(amount) \
	"{\"type\": \"tool_call\", \"tool\": \"stripe.charge\", \"params\": " \
	"{\"amount\": " amount "}}"
#define TOOL(name, params) \
	"{\"type\": \"tool_call\", \"tool\": \"" name "\", \"params\": " params "}"
#define EXEC(exe, argv) \
	"{\"type\": \"exec\", \"exe\": \"" exe "\", \"argv\": " argv "}"
#define CURL_ARGV(url) \
	"[\"curl\", \"--netrc-file\", \"/run/secrets/local/report.netrc\", \"" \
	url "\"]"

struct eval_case {
	const char *name;
	const char *action;
	const char *state;
	enum kh_effect effect;
	const char *rule;
	const char *reason; /* substring of decision.reason */
};

static const struct eval_case eval_cases[] = {
	{ "small charge permitted", CHARGE("500"), STATE, KH_EFFECT_PERMIT,
	  "pay-small", "permitted by rule pay-small" },
	{ "charge above condition", CHARGE("5000"), STATE, KH_EFFECT_DENY, "",
	  "rule pay-small: condition $.when[0] failed "
	  "(action.params.amount <= 1000)" },
	{ "charge without amount fails closed",
	  TOOL("stripe.charge", "{}"), STATE, KH_EFFECT_DENY, "",
	  "rule pay-small: condition $.when[0] could not be evaluated "
	  "(action.params.amount is missing), so the permit rule does not "
	  "apply" },
	{ "charge amount of wrong type", CHARGE("\"500\""), STATE,
	  KH_EFFECT_DENY, "",
	  "(action.params.amount is a string, but <= needs a number)" },
	{ "rate limit reached", CHARGE("1"),
	  STATE_WITH(ALICE, "{\"pay-small\": {\"rate\": 5, \"budget\": 0}}"),
	  KH_EFFECT_DENY, "", "rule pay-small: rate limit reached (5 per 60 s)" },
	{ "rate below limit", CHARGE("1"),
	  STATE_WITH(ALICE, "{\"pay-small\": {\"rate\": 4, \"budget\": 0}}"),
	  KH_EFFECT_PERMIT, "pay-small", "permitted" },
	{ "budget exceeded", CHARGE("500"),
	  STATE_WITH(ALICE, "{\"pay-small\": {\"rate\": 0, \"budget\": 1800}}"),
	  KH_EFFECT_DENY, "",
	  "rule pay-small: budget exceeded (1800 spent + 500 requested > max "
	  "2000 per 3600 s)" },
	{ "budget filled exactly", CHARGE("500"),
	  STATE_WITH(ALICE, "{\"pay-small\": {\"rate\": 0, \"budget\": 1500}}"),
	  KH_EFFECT_PERMIT, "pay-small", "permitted" },
	{ "negative budget amount", CHARGE("-5"), STATE, KH_EFFECT_DENY, "",
	  "rule pay-small: budget amount at action.params.amount is -5; it "
	  "must be a number >= 0" },
	{ "budget amount of wrong type", CHARGE("true"),
	  STATE_WITH(ALICE, ZERO_COUNTERS), KH_EFFECT_DENY, "",
	  "rule pay-small: condition $.when[0] could not be evaluated" },
	{ "state without counters for rule", CHARGE("5"),
	  STATE_WITH(ALICE, "{}"), KH_EFFECT_DENY, "",
	  "rule pay-small: the evaluation state has no rate counter" },
	{ "agent outside group", CHARGE("5"),
	  STATE_WITH("{\"uid\": 7, \"user\": \"bob\", \"groups\": [\"bob\"]}",
		     ZERO_COUNTERS),
	  KH_EFFECT_DENY, "", "no rule matched" },
	{ "deny by user", TOOL("tickets.read", "{}"),
	  STATE_WITH("{\"uid\": 65534, \"user\": \"nobody\", \"groups\": "
		     "[\"nogroup\"]}", ZERO_COUNTERS),
	  KH_EFFECT_DENY, "no-nobody", "denied by rule no-nobody" },
	{ "deny overrides earlier permit", TOOL("dup.blocked", "{}"), STATE,
	  KH_EFFECT_DENY, "no-dup-blocked", "denied by rule no-dup-blocked" },
	{ "first permit wins", TOOL("dup.x", "{}"), STATE, KH_EFFECT_PERMIT,
	  "first", "permitted by rule first" },
	{ "deny condition holds", TOOL("stripe.refund", "{\"amount\": 500}"),
	  STATE, KH_EFFECT_DENY, "no-big-refund",
	  "denied by rule no-big-refund" },
	{ "deny condition fails", TOOL("stripe.refund", "{\"amount\": 50}"),
	  STATE, KH_EFFECT_PERMIT, "refund", "permitted by rule refund" },
	{ "deny condition missing path applies",
	  TOOL("stripe.refund", "{}"), STATE, KH_EFFECT_DENY, "no-big-refund",
	  "denied by rule no-big-refund: condition $.when[0] could not be "
	  "evaluated (action.params.amount is missing), so the deny rule "
	  "applies" },
	{ "deny condition wrong type applies",
	  TOOL("stripe.refund", "{\"amount\": [1]}"), STATE, KH_EFFECT_DENY,
	  "no-big-refund", "(action.params.amount is an array, but > needs" },
	{ "exec deny with many args",
	  EXEC("/usr/bin/rm", "[\"rm\", \"-rf\", \"/\"]"), STATE,
	  KH_EFFECT_DENY, "no-rm", "denied by rule no-rm" },
	{ "exec deny with no args", EXEC("/usr/bin/rm", "[\"rm\"]"), STATE,
	  KH_EFFECT_DENY, "no-rm", "denied by rule no-rm" },
	{ "exec argv matches", EXEC("/usr/bin/curl",
				    CURL_ARGV("http://127.0.0.1:8080/report")),
	  STATE, KH_EFFECT_PERMIT, "report", "permitted by rule report" },
	{ "exec other url", EXEC("/usr/bin/curl",
				 CURL_ARGV("http://127.0.0.1:8080/admin")),
	  STATE, KH_EFFECT_DENY, "", "no rule matched" },
	{ "exec extra argument", EXEC("/usr/bin/curl",
	  "[\"curl\", \"--netrc-file\", \"/run/secrets/x\", "
	  "\"http://127.0.0.1:1/report\", \"-v\"]"),
	  STATE, KH_EFFECT_DENY, "", "no rule matched" },
	{ "exec other exe", EXEC("/usr/local/bin/curl",
				 CURL_ARGV("http://127.0.0.1:8080/report")),
	  STATE, KH_EFFECT_DENY, "", "no rule matched" },
	{ "exec other uid", EXEC("/usr/bin/curl",
				 CURL_ARGV("http://127.0.0.1:8080/report")),
	  STATE_WITH("{\"uid\": 1001, \"user\": \"carol\", \"groups\": []}",
		     ZERO_COUNTERS),
	  KH_EFFECT_DENY, "", "no rule matched" },
	{ "double star matches none", EXEC("/usr/bin/git", "[\"git\"]"),
	  STATE_WITH("{\"uid\": 1, \"user\": \"daemon\", \"groups\": "
		     "[\"daemon\"]}", ZERO_COUNTERS),
	  KH_EFFECT_PERMIT, "git", "permitted by rule git" },
	{ "double star matches many",
	  EXEC("/usr/bin/git", "[\"git\", \"log\", \"-n\", \"3\"]"),
	  STATE_WITH("{\"uid\": 1, \"user\": \"daemon\", \"groups\": []}",
		     ZERO_COUNTERS),
	  KH_EFFECT_PERMIT, "git", "permitted by rule git" },
	{ "double star needs argv0", EXEC("/usr/bin/git", "[\"gitx\"]"),
	  STATE_WITH("{\"uid\": 1, \"user\": \"daemon\", \"groups\": []}",
		     ZERO_COUNTERS),
	  KH_EFFECT_DENY, "", "no rule matched" },
	{ "absent argv matches any", EXEC("/opt/tool/run", "[\"run\", \"x\"]"),
	  STATE_WITH("{\"uid\": 4242, \"user\": \"svc\", \"groups\": []}",
		     ZERO_COUNTERS),
	  KH_EFFECT_PERMIT, "any-exe", "permitted by rule any-exe" },
	{ "tool type differs from exec", TOOL("/opt/x", "{}"),
	  STATE_WITH("{\"uid\": 4242, \"user\": \"svc\", \"groups\": []}",
		     ZERO_COUNTERS),
	  KH_EFFECT_DENY, "", "no rule matched" },
	{ "eq deep value", TOOL("op.eq", "{\"v\": {\"a\": [1.0, \"x\"]}}"), STATE,
	  KH_EFFECT_PERMIT, "op-eq", "permitted" },
	{ "eq differs", TOOL("op.eq", "{\"v\": {\"a\": [1, \"y\"]}}"), STATE,
	  KH_EFFECT_DENY, "", "rule op-eq: condition $.when[0] failed "
	  "(action.params.v == {\"a\":[1,\"x\"]})" },
	{ "ne holds", TOOL("op.ne", "{\"v\": \"3\"}"), STATE, KH_EFFECT_PERMIT,
	  "op-ne", "permitted" },
	{ "ne fails", TOOL("op.ne", "{\"v\": 3.0}"), STATE, KH_EFFECT_DENY, "",
	  "rule op-ne: condition $.when[0] failed (action.params.v != 3)" },
	{ "ne missing path", TOOL("op.ne", "{}"), STATE, KH_EFFECT_DENY, "",
	  "could not be evaluated (action.params.v is missing)" },
	{ "lt holds", TOOL("op.lt", "{\"v\": 9.99}"), STATE, KH_EFFECT_PERMIT,
	  "op-lt", "permitted" },
	{ "lt equal fails", TOOL("op.lt", "{\"v\": 10}"), STATE,
	  KH_EFFECT_DENY, "", "failed (action.params.v < 10)" },
	{ "le equal holds", TOOL("op.le", "{\"v\": 10}"), STATE,
	  KH_EFFECT_PERMIT, "op-le", "permitted" },
	{ "le fails", TOOL("op.le", "{\"v\": 11}"), STATE, KH_EFFECT_DENY, "",
	  "failed (action.params.v <= 10)" },
	{ "gt holds", TOOL("op.gt", "{\"v\": 11}"), STATE, KH_EFFECT_PERMIT,
	  "op-gt", "permitted" },
	{ "gt equal fails", TOOL("op.gt", "{\"v\": 10}"), STATE,
	  KH_EFFECT_DENY, "", "failed (action.params.v > 10)" },
	{ "gt on boolean fails closed", TOOL("op.gt", "{\"v\": true}"), STATE,
	  KH_EFFECT_DENY, "", "action.params.v is a boolean, but > needs a "
	  "number" },
	{ "ge equal holds", TOOL("op.ge", "{\"v\": 10.5}"), STATE,
	  KH_EFFECT_PERMIT, "op-ge", "permitted" },
	{ "ge fails", TOOL("op.ge", "{\"v\": 10}"), STATE, KH_EFFECT_DENY, "",
	  "failed (action.params.v >= 10.5)" },
	{ "in string holds", TOOL("op.in", "{\"v\": \"usd\"}"), STATE,
	  KH_EFFECT_PERMIT, "op-in", "permitted" },
	{ "in number holds", TOOL("op.in", "{\"v\": 7.0}"), STATE,
	  KH_EFFECT_PERMIT, "op-in", "permitted" },
	{ "in fails", TOOL("op.in", "{\"v\": \"USD\"}"), STATE, KH_EFFECT_DENY,
	  "", "failed (action.params.v in [\"usd\",7])" },
	{ "not_in holds", TOOL("op.not_in", "{\"v\": \"alice\"}"), STATE,
	  KH_EFFECT_PERMIT, "op-not-in", "permitted" },
	{ "not_in fails", TOOL("op.not_in", "{\"v\": 0}"), STATE,
	  KH_EFFECT_DENY, "", "failed (action.params.v not_in [\"root\",0])" },
	{ "glob holds", TOOL("op.glob", "{\"v\": \"report-2024.csv\"}"), STATE,
	  KH_EFFECT_PERMIT, "op-glob", "permitted" },
	{ "glob fails", TOOL("op.glob", "{\"v\": \"report-2024.csv.gz\"}"),
	  STATE, KH_EFFECT_DENY, "", "failed (action.params.v glob "
	  "\"report-*.csv\")" },
	{ "glob on number fails closed", TOOL("op.glob", "{\"v\": 1}"), STATE,
	  KH_EFFECT_DENY, "", "action.params.v is a number, but glob needs a "
	  "string" },
	{ "glob on NUL fails closed",
	  TOOL("op.glob", "{\"v\": \"report-\\u0000.csv\"}"), STATE,
	  KH_EFFECT_DENY, "", "needs a string without NUL bytes" },
	{ "prefix holds", TOOL("op.prefix", "{\"v\": \"/tmp/x\"}"), STATE,
	  KH_EFFECT_PERMIT, "op-prefix", "permitted" },
	{ "prefix fails", TOOL("op.prefix", "{\"v\": \"/tmpx\"}"), STATE,
	  KH_EFFECT_DENY, "", "failed (action.params.v prefix \"/tmp/\")" },
	{ "array index holds",
	  TOOL("op.index", "{\"list\": [\"a\", \"b\"]}"), STATE,
	  KH_EFFECT_PERMIT, "op-index", "permitted" },
	{ "array index out of range",
	  TOOL("op.index", "{\"list\": [\"a\"]}"), STATE, KH_EFFECT_DENY, "",
	  "(action.params.list.1 is missing)" },
	{ "array index into object",
	  TOOL("op.index", "{\"list\": {\"1\": \"b\"}}"), STATE,
	  KH_EFFECT_PERMIT, "op-index", "permitted" },
	{ "agent paths hold", TOOL("op.agent", "{}"), STATE, KH_EFFECT_PERMIT,
	  "op-agent", "permitted" },
	{ "agent second condition fails", TOOL("op.agent", "{}"),
	  STATE_WITH("{\"uid\": 999, \"user\": \"x\", \"groups\": [\"staff\"]}",
		     ZERO_COUNTERS),
	  KH_EFFECT_DENY, "", "rule op-agent: condition $.when[1] failed "
	  "(agent.uid >= 1000)" },
	{ "time holds", TOOL("op.time", "{}"), STATE, KH_EFFECT_PERMIT,
	  "op-time", "permitted" },
	{ "time fails",
	  TOOL("op.time", "{}"),
	  "{\"agent\": " ALICE ", \"time\": 1900000000, \"counters\": {}}",
	  KH_EFFECT_DENY, "", "failed (time < 1800000000)" },
	{ "unknown tool", TOOL("mail.send", "{}"), STATE, KH_EFFECT_DENY, "",
	  "no rule matched" },
};

static struct kh_policy *parse_policy(const char *text)
{
	struct kh_policy *policy = NULL;
	struct kh_err err = { "" };

	if (kh_policy_parse(text, strlen(text), "eval", &policy, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "policy: %s", err.msg);
	return policy;
}

static json_t *parse_json(const char *what, const char *text)
{
	json_error_t jerr;
	json_t *value = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL,
				   &jerr);

	if (!value)
		kh_test_fail(__FILE__, __LINE__, "%s: bad test JSON: %s", what,
			     jerr.text);
	return value;
}

static void run_eval_case(const struct kh_policy *policy,
			  const struct eval_case *c)
{
	json_t *action = parse_json(c->name, c->action);
	json_t *state = parse_json(c->name, c->state);
	struct kh_decision decision;
	struct kh_err err = { "" };
	int rc;

	if (!action || !state)
		goto out;
	rc = kh_policy_eval(policy, action, state, &decision, &err);
	if (rc != 0) {
		kh_test_fail(__FILE__, __LINE__, "%s: eval failed: %s",
			     c->name, err.msg);
		goto out;
	}
	if (decision.effect != c->effect)
		kh_test_fail(__FILE__, __LINE__, "%s: effect %d, expected %d "
			     "(%s)", c->name, decision.effect, c->effect,
			     decision.reason);
	if (strcmp(decision.rule, c->rule) != 0)
		kh_test_fail(__FILE__, __LINE__, "%s: rule \"%s\", expected "
			     "\"%s\"", c->name, decision.rule, c->rule);
	if (!strstr(decision.reason, c->reason))
		kh_test_fail(__FILE__, __LINE__, "%s: reason \"%s\" lacks "
			     "\"%s\"", c->name, decision.reason, c->reason);
	if ((decision.effect == KH_EFFECT_PERMIT) != (decision.secrets != NULL))
		kh_test_fail(__FILE__, __LINE__, "%s: secrets set on a deny "
			     "or missing on a permit", c->name);
	kh_decision_clear(&decision);
out:
	json_decref(action);
	json_decref(state);
}

static void eval_table(void)
{
	struct kh_policy *policy = parse_policy(policy_text);

	if (!policy)
		return;
	for (size_t i = 0; i < sizeof(eval_cases) / sizeof(eval_cases[0]); i++)
		run_eval_case(policy, &eval_cases[i]);
	kh_policy_free(policy);
}

static struct kh_decision eval_one(const char *policy_json,
				   const char *action_json,
				   const char *state_json)
{
	struct kh_policy *policy = parse_policy(policy_json);
	json_t *action = parse_json("action", action_json);
	json_t *state = parse_json("state", state_json);
	struct kh_decision decision = { .effect = KH_EFFECT_DENY };
	struct kh_err err = { "" };

	if (policy && action && state &&
	    kh_policy_eval(policy, action, state, &decision, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "eval failed: %s", err.msg);
	kh_policy_free(policy);
	json_decref(action);
	json_decref(state);
	return decision;
}

static void grant_from_rule(void)
{
	struct kh_decision d = eval_one(policy_text, CHARGE("250"), STATE);
	json_t *want = json_loads(
		"{\"ttl\": 120, \"uses\": 3, \"rate\": {\"count\": 5, \"per\": "
		"60}, \"budget\": {\"path\": \"action.params.amount\", \"max\": "
		"2000, \"per\": 3600}}", 0, NULL);

	CHECK_INT(d.effect, KH_EFFECT_PERMIT);
	CHECK_INT(d.ttl, 120);
	CHECK_INT(d.uses, 3);
	CHECK(d.amount == 250);
	CHECK(json_equal(d.constraints, want));
	CHECK_INT(json_array_size(d.secrets), 1);
	CHECK_STR(json_string_value(json_array_get(d.secrets, 0)),
		  "file/stripe");
	json_decref(want);
	kh_decision_clear(&d);
}

static void grant_defaults(void)
{
	struct kh_decision d = eval_one(policy_text,
					TOOL("stripe.refund", "{\"amount\": 1}"),
					STATE);
	json_t *want = json_loads("{\"ttl\": 60, \"uses\": 1}", 0, NULL);

	CHECK_STR(d.rule, "refund");
	CHECK_INT(d.ttl, KH_POLICY_DEFAULT_TTL);
	CHECK_INT(d.uses, KH_POLICY_DEFAULT_USES);
	CHECK(d.amount == 0);
	CHECK(json_equal(d.constraints, want));
	json_decref(want);
	kh_decision_clear(&d);
}

static void default_ttl_capped(void)
{
	const char *text = "{\"tenant\": \"t\", \"env\": \"e\", \"max_ttl\": 30,"
			   " \"rules\": [{\"id\": \"r\", \"effect\": \"permit\","
			   " \"action\": {\"type\": \"tool_call\", \"tool\": \"*\"},"
			   " \"grant\": {\"secrets\": []}}]}";
	struct kh_decision d = eval_one(text, TOOL("x", "{}"), STATE);

	CHECK_INT(d.effect, KH_EFFECT_PERMIT);
	CHECK_INT(d.ttl, 30);
	kh_decision_clear(&d);
}

static void bad_inputs_rejected(void)
{
	static const struct {
		const char *action;
		const char *state;
	} bad[] = {
		{ TOOL("x", "{}"), "{\"time\": 1, \"counters\": {}}" },
		{ TOOL("x", "{}"), "{\"agent\": {\"uid\": 1, \"user\": \"u\", "
				   "\"groups\": [1]}, \"time\": 1, "
				   "\"counters\": {}}" },
		{ TOOL("x", "{}"), "{\"agent\": " ALICE ", \"time\": \"now\", "
				   "\"counters\": {}}" },
		{ "{\"type\": \"tool_call\", \"tool\": \"x\", \"extra\": 1}",
		  STATE },
		{ "{\"type\": \"exec\", \"exe\": \"curl\", \"argv\": [\"c\"]}",
		  STATE },
	};
	struct kh_policy *policy = parse_policy(policy_text);

	for (size_t i = 0; policy && i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *action = parse_json("action", bad[i].action);
		json_t *state = parse_json("state", bad[i].state);
		struct kh_decision d;
		struct kh_err err = { "" };
		int rc = kh_policy_eval(policy, action, state, &d, &err);

		if (rc != -EINVAL)
			kh_test_fail(__FILE__, __LINE__, "bad input %zu: rc "
				     "%d, expected -EINVAL", i, rc);
		if (d.effect != KH_EFFECT_DENY || d.secrets || d.constraints)
			kh_test_fail(__FILE__, __LINE__, "bad input %zu: "
				     "decision not cleared", i);
		if (!err.msg[0])
			kh_test_fail(__FILE__, __LINE__, "bad input %zu: no "
				     "error message", i);
		json_decref(action);
		json_decref(state);
	}
	kh_policy_free(policy);
}

struct glob_case {
	const char *pattern;
	const char *subject;
	int expect;
};

static const struct glob_case glob_cases[] = {
	{ "*", "", 1 },
	{ "*", "/usr/bin/x", 1 },
	{ "/usr/bin/*", "/usr/bin/curl", 1 },
	{ "/usr/bin/*", "/usr/local/bin/curl", 0 },
	{ "/usr/*/curl", "/usr/local/bin/curl", 1 },
	{ "stripe.*", "stripe.charge", 1 },
	{ "stripe.*", "stripe", 0 },
	{ "a?c", "abc", 1 },
	{ "a?c", "ac", 0 },
	{ "a?c", "a\xc3\xa9" "c", 1 },
	{ "a??c", "a\xc3\xa9" "c", 0 },
	{ "[a-c]x", "bx", 1 },
	{ "[a-c]x", "dx", 0 },
	{ "[!a-c]x", "dx", 1 },
	{ "[^a-c]x", "ax", 0 },
	{ "[]]", "]", 1 },
	{ "[!]]", "]", 0 },
	{ "[a-]", "-", 1 },
	{ "[[:digit:]][[:digit:]]", "42", 1 },
	{ "[[:digit:]]", "x", 0 },
	{ "[[:upper:][:space:]]", " ", 1 },
	{ "[\\]]", "]", 1 },
	{ "\\*", "*", 1 },
	{ "\\*", "x", 0 },
	{ "a\\?", "a?", 1 },
	{ "*.csv", "a.csv.gz", 0 },
	{ "*a*b*c*", "xxaxxbxxcxx", 1 },
	{ "*a*b*c", "abcabcab", 0 },
	{ "**", "anything/at/all", 1 },
	{ "[\xc3\xa0-\xc3\xbf]", "\xc3\xa9", 1 },
	{ "abc", "abcd", 0 },
	{ "abcd", "abc", 0 },
	{ "[a", "a", -EINVAL },
	{ "a\\", "a", -EINVAL },
	{ "[z-a]", "b", -EINVAL },
	{ "", "", -EINVAL },
};

static void glob_table(void)
{
	for (size_t i = 0; i < sizeof(glob_cases) / sizeof(glob_cases[0]); i++) {
		const struct glob_case *c = &glob_cases[i];
		int got = kh_glob_match(c->pattern, c->subject,
					strlen(c->subject));

		if (got != c->expect)
			kh_test_fail(__FILE__, __LINE__, "glob \"%s\" on \"%s\":"
				     " %d, expected %d", c->pattern, c->subject,
				     got, c->expect);
		if ((c->expect >= 0) != (kh_glob_validate(c->pattern, NULL) == 0))
			kh_test_fail(__FILE__, __LINE__, "glob \"%s\": validate "
				     "disagrees with match", c->pattern);
	}
	CHECK_INT(kh_glob_match("a*", "ab\0c", 4), -EINVAL);
}

static void argv_glob_table(void)
{
	static const struct {
		const char *globs;
		const char *argv;
		int expect;
	} cases[] = {
		{ "[\"a\", \"b\"]", "[\"a\", \"b\"]", 1 },
		{ "[\"a\", \"b\"]", "[\"a\"]", 0 },
		{ "[\"a\", \"b\"]", "[\"a\", \"b\", \"c\"]", 0 },
		{ "[\"a\", \"**\"]", "[\"a\"]", 1 },
		{ "[\"a\", \"**\"]", "[\"a\", \"b\", \"c\"]", 1 },
		{ "[\"a\", \"**\"]", "[]", 0 },
		{ "[\"**\"]", "[]", 1 },
		{ "[\"a\", \"*\"]", "[\"a\"]", 0 },
		{ "[\"a\", \"*\"]", "[\"a\", \"\"]", 1 },
		{ "[\"a\", \"**\"]", "[\"a\", 1]", -EINVAL },
		{ "[\"a\"]", "[2]", -EINVAL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *globs = parse_json("globs", cases[i].globs);
		json_t *argv = parse_json("argv", cases[i].argv);
		int got = kh_glob_match_argv(globs, argv);

		if (got != cases[i].expect)
			kh_test_fail(__FILE__, __LINE__, "globs %s on %s: %d, "
				     "expected %d", cases[i].globs,
				     cases[i].argv, got, cases[i].expect);
		json_decref(globs);
		json_decref(argv);
	}
}

static void state_from_ledger(void)
{
	struct kh_policy *policy = parse_policy(policy_text);
	struct kh_ledger *ledger = NULL;
	struct kh_agent agent = { .uid = 1000, .gid = 1000 };
	json_t *state = NULL;
	json_t *want = parse_json("want", STATE_WITH(
		ALICE, "{\"pay-small\": {\"rate\": 2, \"budget\": 700}}"));
	struct kh_err err = { "" };

	(void)snprintf(agent.user, sizeof(agent.user), "alice");
	(void)snprintf(agent.groups[0], sizeof(agent.groups[0]), "staff");
	(void)snprintf(agent.groups[1], sizeof(agent.groups[1]), "adm");
	agent.group_count = 2;
	CHECK_INT(kh_ledger_new(&ledger), 0);
	if (!policy || !ledger)
		goto out;
	/* Rate counts the last 60 s, budget the last hour; uid 7 is apart. */
	CHECK_INT(kh_ledger_note_mint(ledger, "pay-small", 1000,
				      1700000000 - 3600, 900), 0);
	CHECK_INT(kh_ledger_note_mint(ledger, "pay-small", 1000,
				      1700000000 - 3599, 400), 0);
	CHECK_INT(kh_ledger_note_mint(ledger, "pay-small", 1000,
				      1700000000 - 60, 100), 0);
	CHECK_INT(kh_ledger_note_mint(ledger, "pay-small", 1000,
				      1700000000 - 59, 100), 0);
	CHECK_INT(kh_ledger_note_mint(ledger, "pay-small", 1000,
				      1700000000, 100), 0);
	CHECK_INT(kh_ledger_note_mint(ledger, "pay-small", 7, 1700000000, 5),
		  0);
	CHECK_INT(kh_state_build(policy, ledger, &agent, 1700000000, &state,
				 &err), 0);
	/* hS is what counts, and JCS writes the real 700.0 as 700. */
	if (state) {
		char got[KH_HASH_HEX_LEN + 1];
		char expected[KH_HASH_HEX_LEN + 1];

		CHECK_INT(kh_hash(state, got, &err), 0);
		CHECK_INT(kh_hash(want, expected, &err), 0);
		CHECK_STR(got, expected);
	}
out:
	json_decref(state);
	json_decref(want);
	kh_ledger_free(ledger);
	kh_policy_free(policy);
}

/* The state a decision used replays to the same decision and the same hS. */
static void replay_from_snapshot(void)
{
	struct kh_policy *policy = parse_policy(policy_text);
	struct kh_ledger *ledger = NULL;
	struct kh_agent agent = { .uid = 1000 };
	json_t *state = NULL;
	json_t *replayed = NULL;
	json_t *action = parse_json("action", CHARGE("600"));
	char *canon = NULL;
	char hs[KH_HASH_HEX_LEN + 1];
	char hs_again[KH_HASH_HEX_LEN + 1];
	struct kh_decision first;
	struct kh_decision second;
	struct kh_err err = { "" };

	(void)snprintf(agent.user, sizeof(agent.user), "alice");
	(void)snprintf(agent.groups[0], sizeof(agent.groups[0]), "adm");
	agent.group_count = 1;
	if (!policy || kh_ledger_new(&ledger) != 0)
		goto out;
	CHECK_INT(kh_ledger_note_mint(ledger, "pay-small", 1000, 99, 1500.5),
		  0);
	CHECK_INT(kh_state_build(policy, ledger, &agent, 100, &state, &err), 0);
	CHECK_INT(kh_hash(state, hs, &err), 0);
	CHECK_INT(kh_canon_dump(state, &canon, NULL, &err), 0);
	CHECK_INT(kh_json_parse(canon, strlen(canon), &replayed, &err), 0);
	CHECK_INT(kh_hash(replayed, hs_again, &err), 0);
	CHECK_STR(hs_again, hs);
	CHECK_INT(kh_policy_eval(policy, action, state, &first, &err), 0);
	CHECK_INT(kh_policy_eval(policy, action, replayed, &second, &err), 0);
	CHECK_INT(first.effect, KH_EFFECT_DENY);
	CHECK_STR(second.reason, first.reason);
	CHECK(strstr(first.reason, "1500.5 spent + 600 requested") != NULL);
	kh_decision_clear(&first);
	kh_decision_clear(&second);
out:
	free(canon);
	json_decref(state);
	json_decref(replayed);
	json_decref(action);
	kh_ledger_free(ledger);
	kh_policy_free(policy);
}

static void agent_root_resolves(void)
{
	struct kh_agent agent;
	struct kh_err err = { "" };

	CHECK_INT(kh_agent_resolve(0, &agent, &err), 0);
	CHECK_STR(agent.user, "root");
	CHECK_INT(agent.gid, 0);
	CHECK(agent.group_count >= 1);
	CHECK_STR(agent.groups[0], "root");
	for (size_t i = 1; i < agent.group_count; i++)
		CHECK(strcmp(agent.groups[i], "root") != 0);
}

static void agent_unknown_uid(void)
{
	struct kh_agent agent;
	struct kh_err err = { "" };

	CHECK_INT(kh_agent_resolve(3999999999u, &agent, &err), -ENOENT);
	CHECK(strstr(err.msg, "uid 3999999999") != NULL);
	CHECK_STR(agent.user, "");
	CHECK_INT(agent.group_count, 0);
}

/*
 * Default-deny reasons name the closest permit rule. Rules are in policy
 * order, so ties between rules that fail at the same stage go to the
 * earlier one.
 */
static const char closest_policy[] =
	"{\"tenant\": \"acme\", \"env\": \"prod\", \"max_ttl\": 300, \"rules\": [\n"
	"{\"id\": \"no-ssh\", \"effect\": \"deny\", \"action\": {\"type\": \"exec\","
	" \"exe\": \"/usr/bin/ssh\"}},\n"
	"{\"id\": \"git\", \"effect\": \"permit\", \"agents\": {\"users\":"
	" [\"daemon\"]}, \"action\": {\"type\": \"exec\", \"exe\": \"/usr/bin/git\","
	" \"argv\": [\"git\", \"**\"]}, \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"fetch-report\", \"effect\": \"permit\", \"agents\": {\"groups\":"
	" [\"adm\"]}, \"action\": {\"type\": \"exec\", \"exe\": \"/usr/bin/curl\","
	" \"argv\": [\"curl\", \"--netrc-file\", \"/run/secrets/*\","
	" \"http://127.0.0.1:*/**\"]}, \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"curl-quiet\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"exec\", \"exe\": \"/usr/bin/curl\", \"argv\": [\"curl\", \"-s\"]},"
	" \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"ls-long\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"exec\", \"exe\": \"/bin/ls\", \"argv\": [\"ls\", \"-l\"]},"
	" \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"charge\", \"effect\": \"permit\", \"agents\": {\"uids\": [1000]},"
	" \"action\": {\"type\": \"tool_call\", \"tool\": \"stripe.charge\"},"
	" \"when\": [{\"path\": \"action.params.amount\", \"op\": \"<=\","
	" \"value\": 100}], \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"charge-limited\", \"effect\": \"permit\", \"action\":"
	" {\"type\": \"tool_call\", \"tool\": \"stripe.charge\"}, \"limits\":"
	" {\"rate\": {\"count\": 1, \"per\": 60}}, \"grant\": {\"secrets\": []}},\n"
	"{\"id\": \"refund\", \"effect\": \"permit\", \"action\": {\"type\":"
	" \"tool_call\", \"tool\": \"stripe.refund\"}, \"when\": [{\"path\":"
	" \"action.params.amount\", \"op\": \"<=\", \"value\": 10}],"
	" \"grant\": {\"secrets\": []}}\n"
	"]}\n";

#define LIMITED(count) "{\"charge-limited\": {\"rate\": " count "}}"
#define ALICE_USED STATE_WITH(ALICE, LIMITED("1"))
#define DAEMON \
	STATE_WITH("{\"uid\": 1, \"user\": \"daemon\", \"groups\": " \
		   "[\"daemon\"]}", LIMITED("1"))
#define REPORT_ARGV(url) \
	"[\"curl\", \"--netrc-file\", \"/run/secrets/local\", \"" url "\"]"
#define SIXTY_FOUR_A \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

struct closest_case {
	const char *name;
	const char *action;
	const char *state;
	const char *reason; /* the whole decision.reason */
};

static const struct closest_case closest_cases[] = {
	{ "argv element differs",
	  EXEC("/usr/bin/curl", REPORT_ARGV("ftp://x")), ALICE_USED,
	  "no rule matched (closest: rule fetch-report: argv[3] \"ftp://x\" "
	  "does not match \"http://127.0.0.1:*/**\")" },
	{ "agent not listed",
	  EXEC("/usr/bin/curl", REPORT_ARGV("http://127.0.0.1:80/r")), DAEMON,
	  "no rule matched (closest: rule fetch-report: agent daemon (uid 1) "
	  "is not listed)" },
	{ "exe differs in every rule",
	  EXEC("/usr/bin/wget", "[\"wget\"]"), ALICE_USED,
	  "no rule matched (closest: rule git: exe \"/usr/bin/wget\" does not "
	  "match \"/usr/bin/git\")" },
	{ "argv element missing",
	  EXEC("/usr/bin/curl", "[\"curl\", \"--netrc-file\"]"), ALICE_USED,
	  "no rule matched (closest: rule fetch-report: argv[2] is missing; "
	  "the rule expects \"/run/secrets/*\")" },
	{ "argv element extra",
	  EXEC("/bin/ls", "[\"ls\", \"-l\", \"/etc\"]"), ALICE_USED,
	  "no rule matched (closest: rule ls-long: argv[2] \"/etc\" is extra; "
	  "the rule matches exactly 2 arguments)" },
	{ "tool differs",
	  TOOL("mail.send", "{}"), ALICE_USED,
	  "no rule matched (closest: rule charge: tool \"mail.send\" does not "
	  "match \"stripe.charge\")" },
	{ "condition failed",
	  TOOL("stripe.refund", "{\"amount\": 50}"), ALICE_USED,
	  "no rule matched (closest: rule refund: condition $.when[0] failed "
	  "(action.params.amount <= 10))" },
	{ "later limit beats earlier condition",
	  CHARGE("500"), ALICE_USED,
	  "no rule matched (closest: rule charge-limited: rate limit reached "
	  "(1 per 60 s))" },
	{ "later agent beats earlier name",
	  EXEC("/usr/bin/git", "[\"git\", \"log\"]"), ALICE_USED,
	  "no rule matched (closest: rule git: agent alice (uid 1000) is not "
	  "listed)" },
	{ "deny rule keeps its reason",
	  EXEC("/usr/bin/ssh", "[\"ssh\"]"), ALICE_USED,
	  "denied by rule no-ssh" },
	{ "long argument cut at 64 characters",
	  EXEC("/usr/bin/curl", REPORT_ARGV(SIXTY_FOUR_A "bbbb")), ALICE_USED,
	  "no rule matched (closest: rule fetch-report: argv[3] \""
	  SIXTY_FOUR_A "...\" does not match \"http://127.0.0.1:*/**\")" },
	{ "control characters escaped",
	  EXEC("/usr/bin/curl", REPORT_ARGV("\\u00e9\\n\\\"")), ALICE_USED,
	  "no rule matched (closest: rule fetch-report: argv[3] "
	  "\"\xc3\xa9\\u000a\\\"\" does not match \"http://127.0.0.1:*/**\")" },
};

static void closest_miss_table(void)
{
	struct kh_policy *policy = parse_policy(closest_policy);

	if (!policy)
		return;
	for (size_t i = 0; i < sizeof(closest_cases) / sizeof(closest_cases[0]);
	     i++) {
		const struct closest_case *c = &closest_cases[i];
		json_t *action = parse_json(c->name, c->action);
		json_t *state = parse_json(c->name, c->state);
		struct kh_decision d = { .effect = KH_EFFECT_DENY };
		struct kh_err err = { "" };

		if (action && state &&
		    kh_policy_eval(policy, action, state, &d, &err) != 0)
			kh_test_fail(__FILE__, __LINE__, "%s: eval failed: %s",
				     c->name, err.msg);
		if (d.effect != KH_EFFECT_DENY)
			kh_test_fail(__FILE__, __LINE__, "%s: not denied",
				     c->name);
		if (strcmp(d.reason, c->reason) != 0)
			kh_test_fail(__FILE__, __LINE__, "%s: reason \"%s\", "
				     "expected \"%s\"", c->name, d.reason,
				     c->reason);
		/* decision.rule names only a rule that matched. */
		if (strncmp(c->reason, "no rule matched", 15) == 0 &&
		    d.rule[0] != '\0')
			kh_test_fail(__FILE__, __LINE__, "%s: rule \"%s\" set "
				     "on the default deny", c->name, d.rule);
		kh_decision_clear(&d);
		json_decref(action);
		json_decref(state);
	}
	kh_policy_free(policy);
}

/* With no permit rule for the action's type there is no closest rule. */
static void closest_none_of_type(void)
{
	struct kh_decision d = eval_one(
		"{\"tenant\": \"t\", \"env\": \"e\", \"max_ttl\": 60, \"rules\": ["
		"{\"id\": \"a\", \"effect\": \"permit\", \"action\": {\"type\": "
		"\"tool_call\", \"tool\": \"x\"}, \"grant\": {\"secrets\": []}}]}",
		EXEC("/bin/true", "[\"true\"]"), STATE);

	CHECK_INT(d.effect, KH_EFFECT_DENY);
	CHECK_STR(d.reason, "no rule matched (no permit rule has action type "
			    "\"exec\")");
	CHECK_STR(d.rule, "");
	kh_decision_clear(&d);
}

#define FORTY_E_ACUTE                                                      \
	"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
	"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
	"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
	"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
	"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"

/*
 * A long rule id and two long quoted values overflow the reason. It is
 * cut with "..." before the closing bracket, and the cut leaves valid
 * UTF-8 for the DPR record. Ids of 60 to 63 characters move the cut
 * onto both bytes of a two-byte character.
 */
static void closest_reason_capped(void)
{
	for (int id_len = 60; id_len <= 63; id_len++) {
		char policy[1024];
		struct kh_decision d;
		json_t *reason;
		size_t len;

		(void)snprintf(policy, sizeof(policy),
			       "{\"tenant\": \"t\", \"env\": \"e\", \"max_ttl\": "
			       "60, \"rules\": [{\"id\": \"%.*s\", \"effect\": "
			       "\"permit\", \"action\": {\"type\": \"exec\", "
			       "\"exe\": \"/bin/x\", \"argv\": [\"x\", \"*%sz\"]},"
			       " \"grant\": {\"secrets\": []}}]}", id_len,
			       SIXTY_FOUR_A, FORTY_E_ACUTE);
		d = eval_one(policy,
			     EXEC("/bin/x", "[\"x\", \"" FORTY_E_ACUTE "\"]"),
			     STATE);
		len = strlen(d.reason);
		CHECK(len < sizeof(d.reason));
		CHECK(len > 4);
		CHECK(strcmp(d.reason + len - 4, "...)") == 0);
		CHECK(strncmp(d.reason, "no rule matched (closest: rule "
			      SIXTY_FOUR_A, 31 + (size_t)id_len) == 0);
		reason = json_string(d.reason);
		if (!reason)
			kh_test_fail(__FILE__, __LINE__, "id of %d characters: "
				     "reason is not valid UTF-8", id_len);
		json_decref(reason);
		kh_decision_clear(&d);
	}
}

static const struct kh_test_case cases[] = {
	{ "eval table", eval_table },
	{ "grant from rule", grant_from_rule },
	{ "grant defaults", grant_defaults },
	{ "default ttl capped", default_ttl_capped },
	{ "bad inputs rejected", bad_inputs_rejected },
	{ "glob table", glob_table },
	{ "argv glob table", argv_glob_table },
	{ "state from ledger", state_from_ledger },
	{ "replay from snapshot", replay_from_snapshot },
	{ "agent root resolves", agent_root_resolves },
	{ "agent unknown uid", agent_unknown_uid },
	{ "closest miss table", closest_miss_table },
	{ "closest none of type", closest_none_of_type },
	{ "closest reason capped", closest_reason_capped },
};

int main(void)
{
	return KH_TEST_RUN("eval", cases);
}
