/*
 * Policy parsing: a table of invalid policies, each with the line and
 * JSON path the error must name, plus checks on a valid policy file.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "keyhole/policy.h"

/* Lines 1-5; the first rule starts on line 6. */
#define HEAD "{\n\"tenant\": \"acme\",\n\"env\": \"prod\",\n\"max_ttl\": 300,\n\"rules\": [\n"
#define TAIL "\n]\n}\n"

/* hP of tests/vectors/policy/valid.json; see valid_policy_hash. */
#define VALID_POLICY_HP \
	"7442b196b86c66cf0082e9ccc3c9c188c8ae727617ac1dc8b5400e5f3394d15a"
#define TOOL_X "\"action\": {\"type\": \"tool_call\", \"tool\": \"x\"}"
#define GRANT "\"grant\": {\"secrets\": []}"
#define OK_RULE "{\"id\": \"ok\", \"effect\": \"permit\", " TOOL_X ", " GRANT "}"
/* A one-line permit rule with id "r" and extra members. */
#define RULE(extra) "{\"id\": \"r\", \"effect\": \"permit\", " extra "}"
/* A rule whose action is on line 7 and whose members after it on line 8. */
#define RULE3(action, rest) \
	"{\"id\": \"r\", \"effect\": \"permit\",\n" action ",\n" rest "}"

struct bad_policy {
	const char *name;
	const char *text;
	const char *expect; /* "origin:line: path:" or another substring */
};

static const struct bad_policy bad_policies[] = {
	{ "unknown top-level key",
	  "{\n\"tenant\": \"t\",\n\"env\": \"e\",\n\"max_ttl\": 60,\n"
	  "\"rules\": [],\n\"extra\": 1\n}",
	  "t.json:6: $.extra: unknown key" },
	{ "missing tenant",
	  "{\"env\": \"e\", \"max_ttl\": 60, \"rules\": []}",
	  "t.json:1: $: missing required key \"tenant\"" },
	{ "tenant not a string",
	  "{\n\"tenant\": 5,\n\"env\": \"e\",\n\"max_ttl\": 60,\n\"rules\": []}",
	  "t.json:2: $.tenant:" },
	{ "empty env",
	  "{\n\"tenant\": \"t\",\n\"env\": \"\",\n\"max_ttl\": 60,\n\"rules\": []}",
	  "t.json:3: $.env:" },
	{ "max_ttl zero",
	  "{\n\"tenant\": \"t\",\n\"env\": \"e\",\n\"max_ttl\": 0,\n\"rules\": []}",
	  "t.json:4: $.max_ttl: max_ttl is 0" },
	{ "max_ttl not an integer",
	  "{\n\"tenant\": \"t\",\n\"env\": \"e\",\n\"max_ttl\": 1.5,\n\"rules\": []}",
	  "t.json:4: $.max_ttl: max_ttl must be an integer" },
	{ "rules not an array",
	  "{\n\"tenant\": \"t\",\n\"env\": \"e\",\n\"max_ttl\": 9,\n\"rules\": {}}",
	  "t.json:5: $.rules: rules must be an array" },
	{ "policy not an object", "[1, 2]", "t.json:1: $: a policy must be" },
	{ "syntax error has line",
	  "{\n\"tenant\": \"t\",\n\"env\": \"e\",,\n\"max_ttl\": 9}",
	  "line 3" },
	{ "duplicate key rejected",
	  "{\n\"tenant\": \"t\",\n\"tenant\": \"u\"}", "t.json: invalid JSON" },
	{ "rule not an object", HEAD "42" TAIL, "t.json:6: $.rules[0]: rule" },
	{ "unknown rule key in second rule",
	  HEAD OK_RULE ",\n" RULE(TOOL_X ", " GRANT ", \"bogus\": 1") TAIL,
	  "t.json:7: $.rules[1].bogus: unknown key \"bogus\"" },
	{ "escaped unknown key",
	  HEAD "{\"id\": \"r\", \"effect\": \"permit\", " TOOL_X ", " GRANT
	  ",\n\"\\u0062ogus\": 1}" TAIL,
	  "t.json:7: $.rules[0].bogus: unknown key" },
	{ "strings with brackets before the error",
	  HEAD "{\"id\": \"s\", \"effect\": \"permit\", \"action\": {\"type\": "
	  "\"tool_call\", \"tool\": \"a{[\\\"]},\\\\\\\\\"}, " GRANT "},\n"
	  RULE(TOOL_X ", " GRANT ", \"when\": 3") TAIL,
	  "t.json:7: $.rules[1].when: when must be an array" },
	{ "id with a space",
	  HEAD "{\"id\": \"a b\", \"effect\": \"permit\", " TOOL_X ", " GRANT "}"
	  TAIL, "t.json:6: $.rules[0].id: id \"a b\"" },
	{ "id too long",
	  HEAD "{\"id\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaa\", \"effect\": \"permit\", " TOOL_X ", " GRANT "}" TAIL,
	  "$.rules[0].id:" },
	{ "duplicate id",
	  HEAD OK_RULE ",\n" OK_RULE TAIL,
	  "t.json:7: $.rules[1].id: duplicate rule id \"ok\"" },
	{ "unknown effect",
	  HEAD "{\"id\": \"r\", \"effect\": \"allow\", " TOOL_X "}" TAIL,
	  "t.json:6: $.rules[0].effect: effect \"allow\" is unknown" },
	{ "deny with grant",
	  HEAD "{\"id\": \"r\", \"effect\": \"deny\",\n" TOOL_X ",\n" GRANT "}"
	  TAIL, "t.json:8: $.rules[0].grant: a deny rule grants nothing" },
	{ "deny with limits",
	  HEAD "{\"id\": \"r\", \"effect\": \"deny\", " TOOL_X ",\n\"limits\": "
	  "{\"rate\": {\"count\": 1, \"per\": 1}}}" TAIL,
	  "t.json:7: $.rules[0].limits:" },
	{ "permit without grant", HEAD RULE(TOOL_X) TAIL,
	  "t.json:6: $.rules[0]: a permit rule needs a grant" },
	{ "unknown user",
	  HEAD RULE3("\"agents\": {\"users\": [\"root\",\n\"no-such-user-kh\"]}",
		     TOOL_X ", " GRANT) TAIL,
	  "t.json:8: $.rules[0].agents.users[1]: unknown user "
	  "\"no-such-user-kh\"" },
	{ "unknown group",
	  HEAD RULE("\"agents\": {\"groups\": [\"no-such-group-kh\"]}, " TOOL_X
		    ", " GRANT) TAIL,
	  "t.json:6: $.rules[0].agents.groups[0]: unknown group" },
	{ "negative uid",
	  HEAD RULE("\"agents\": {\"uids\": [-1]}, " TOOL_X ", " GRANT) TAIL,
	  "t.json:6: $.rules[0].agents.uids[0]: uid must be" },
	{ "uid not an integer",
	  HEAD RULE("\"agents\": {\"uids\": [\"0\"]}, " TOOL_X ", " GRANT) TAIL,
	  "$.rules[0].agents.uids[0]: uid must be" },
	{ "empty agents",
	  HEAD RULE3("\"agents\": {\"users\": []}", TOOL_X ", " GRANT) TAIL,
	  "t.json:7: $.rules[0].agents: agents lists no users" },
	{ "unknown agents key",
	  HEAD RULE("\"agents\": {\"user\": [\"root\"]}, " TOOL_X ", " GRANT)
	  TAIL, "$.rules[0].agents.user: unknown key" },
	{ "missing action", HEAD RULE(GRANT) TAIL,
	  "t.json:6: $.rules[0]: missing required key \"action\"" },
	{ "unknown action type",
	  HEAD RULE3("\"action\": {\"type\": \"http\"}", GRANT) TAIL,
	  "t.json:7: $.rules[0].action.type: type \"http\" is unknown" },
	{ "tool_call without tool",
	  HEAD RULE3("\"action\": {\"type\": \"tool_call\"}", GRANT) TAIL,
	  "t.json:7: $.rules[0].action: missing required key \"tool\"" },
	{ "unbalanced bracket in tool",
	  HEAD RULE3("\"action\": {\"type\": \"tool_call\", \"tool\": \"a[bc\"}",
		     GRANT) TAIL,
	  "t.json:7: $.rules[0].action.tool: glob \"a[bc\"" },
	{ "trailing backslash in tool",
	  HEAD RULE3("\"action\": {\"type\": \"tool_call\", \"tool\": \"ab\\\\\"}",
		     GRANT) TAIL,
	  "t.json:7: $.rules[0].action.tool: glob \"ab\\\" ends with a lone "
	  "backslash" },
	{ "empty tool glob",
	  HEAD RULE3("\"action\": {\"type\": \"tool_call\", \"tool\": \"\"}",
		     GRANT) TAIL,
	  "t.json:7: $.rules[0].action.tool: glob is empty" },
	{ "unknown class in glob",
	  HEAD RULE3("\"action\": {\"type\": \"tool_call\", \"tool\": "
		     "\"[[:letter:]]\"}", GRANT) TAIL,
	  "t.json:7: $.rules[0].action.tool: glob" },
	{ "exec key in tool_call",
	  HEAD RULE3("\"action\": {\"type\": \"tool_call\", \"tool\": \"x\", "
		     "\"exe\": \"/bin/x\"}", GRANT) TAIL,
	  "t.json:7: $.rules[0].action.exe: unknown key" },
	{ "relative exe",
	  HEAD RULE3("\"action\": {\"type\": \"exec\", \"exe\": \"curl\"}",
		     GRANT) TAIL,
	  "t.json:7: $.rules[0].action.exe: exe \"curl\" must be an absolute" },
	{ "exec without exe",
	  HEAD RULE3("\"action\": {\"type\": \"exec\", \"argv\": [\"**\"]}",
		     GRANT) TAIL,
	  "t.json:7: $.rules[0].action: missing required key \"exe\"" },
	{ "double star not last",
	  HEAD RULE3("\"action\": {\"type\": \"exec\", \"exe\": \"/bin/x\", "
		     "\"argv\": [\"x\", \"**\", \"y\"]}", GRANT) TAIL,
	  "t.json:7: $.rules[0].action.argv[1]: \"**\" matches the remaining" },
	{ "empty argv",
	  HEAD RULE3("\"action\": {\"type\": \"exec\", \"exe\": \"/bin/x\", "
		     "\"argv\": []}", GRANT) TAIL,
	  "t.json:7: $.rules[0].action.argv: argv lists no globs" },
	{ "argv glob not a string",
	  HEAD RULE3("\"action\": {\"type\": \"exec\", \"exe\": \"/bin/x\", "
		     "\"argv\": [\"x\", 3]}", GRANT) TAIL,
	  "t.json:7: $.rules[0].action.argv[1]: glob must be a string" },
	{ "when not an array",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": {}") TAIL,
	  "t.json:8: $.rules[0].when: when must be an array" },
	{ "condition not an object",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [\"x\"]") TAIL,
	  "t.json:8: $.rules[0].when[0]: condition must be an object" },
	{ "unknown op",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [{\"path\": \"time\", \"op\": "
		     "\"~=\", \"value\": 1}]") TAIL,
	  "t.json:8: $.rules[0].when[0].op: op \"~=\" is unknown" },
	{ "unknown condition key",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [{\"path\": \"time\", \"op\": "
		     "\"<\", \"value\": 1, \"not\": true}]") TAIL,
	  "t.json:8: $.rules[0].when[0].not: unknown key" },
	{ "path with unknown root",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [{\"path\": \"env.HOME\", "
		     "\"op\": \"==\", \"value\": 1}]") TAIL,
	  "t.json:8: $.rules[0].when[0].path: path \"env.HOME\" must start" },
	{ "path with empty segment",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [{\"path\": \"action..x\", "
		     "\"op\": \"==\", \"value\": 1}]") TAIL,
	  "t.json:8: $.rules[0].when[0].path: path \"action..x\" has an empty" },
	{ "time with a member",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [{\"path\": \"time.x\", "
		     "\"op\": \"==\", \"value\": 1}]") TAIL,
	  "t.json:8: $.rules[0].when[0].path:" },
	{ "ordering op with a string",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [{\"path\": \"time\", \"op\": "
		     "\"<=\", \"value\": \"soon\"}]") TAIL,
	  "t.json:8: $.rules[0].when[0].value: op \"<=\" needs a number" },
	{ "in without an array",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [{\"path\": \"agent.user\", "
		     "\"op\": \"in\", \"value\": \"root\"}]") TAIL,
	  "t.json:8: $.rules[0].when[0].value: op \"in\" needs an array" },
	{ "prefix with a number",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [{\"path\": \"agent.user\", "
		     "\"op\": \"prefix\", \"value\": 1}]") TAIL,
	  "t.json:8: $.rules[0].when[0].value: op \"prefix\" needs a string" },
	{ "glob op with a bad glob",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [{\"path\": \"agent.user\", "
		     "\"op\": \"glob\", \"value\": \"[x\"}]") TAIL,
	  "t.json:8: $.rules[0].when[0].value: glob \"[x\"" },
	{ "condition without value",
	  HEAD RULE3(TOOL_X, GRANT ", \"when\": [\n{\"path\": \"time\", \"op\": "
		     "\"<\"}]") TAIL,
	  "t.json:9: $.rules[0].when[0]: missing required key \"value\"" },
	{ "ttl above max_ttl",
	  HEAD RULE3(TOOL_X, "\"grant\": {\"secrets\": [], \"ttl\": 301}") TAIL,
	  "t.json:8: $.rules[0].grant.ttl: ttl 301 is above max_ttl 300" },
	{ "ttl zero",
	  HEAD RULE3(TOOL_X, "\"grant\": {\"secrets\": [], \"ttl\": 0}") TAIL,
	  "t.json:8: $.rules[0].grant.ttl: ttl is 0" },
	{ "uses zero",
	  HEAD RULE3(TOOL_X, "\"grant\": {\"secrets\": [], \"uses\": 0}") TAIL,
	  "t.json:8: $.rules[0].grant.uses: uses is 0" },
	{ "grant without secrets",
	  HEAD RULE3(TOOL_X, "\"grant\": {\"ttl\": 5}") TAIL,
	  "t.json:8: $.rules[0].grant: missing required key \"secrets\"" },
	{ "unknown grant key",
	  HEAD RULE3(TOOL_X, "\"grant\": {\"secrets\": [], \"scope\": 1}") TAIL,
	  "t.json:8: $.rules[0].grant.scope: unknown key" },
	{ "secret without backend",
	  HEAD RULE3(TOOL_X, "\"grant\": {\"secrets\": [\"f/a\", \"token\"]}")
	  TAIL, "t.json:8: $.rules[0].grant.secrets[1]: secret \"token\"" },
	{ "secret with two slashes",
	  HEAD RULE3(TOOL_X, "\"grant\": {\"secrets\": [\"f/a/b\"]}") TAIL,
	  "t.json:8: $.rules[0].grant.secrets[0]: secret \"f/a/b\"" },
	{ "secret named dot-dot",
	  HEAD RULE3(TOOL_X, "\"grant\": {\"secrets\": [\"f/..\"]}") TAIL,
	  "t.json:8: $.rules[0].grant.secrets[0]:" },
	{ "empty limits",
	  HEAD RULE3(TOOL_X, GRANT ", \"limits\": {}") TAIL,
	  "t.json:8: $.rules[0].limits: limits sets neither" },
	{ "rate count zero",
	  HEAD RULE3(TOOL_X, GRANT ", \"limits\": {\"rate\": {\"count\": 0, "
		     "\"per\": 60}}") TAIL,
	  "t.json:8: $.rules[0].limits.rate.count: count is 0" },
	{ "rate without per",
	  HEAD RULE3(TOOL_X, GRANT ", \"limits\": {\"rate\": {\"count\": 1}}")
	  TAIL, "t.json:8: $.rules[0].limits.rate: missing required key \"per\"" },
	{ "unknown rate key",
	  HEAD RULE3(TOOL_X, GRANT ", \"limits\": {\"rate\": {\"count\": 1, "
		     "\"per\": 60, \"burst\": 2}}") TAIL,
	  "t.json:8: $.rules[0].limits.rate.burst: unknown key" },
	{ "negative budget max",
	  HEAD RULE3(TOOL_X, GRANT ", \"limits\": {\"budget\": {\"path\": "
		     "\"action.params.amount\", \"max\": -1, \"per\": 60}}") TAIL,
	  "t.json:8: $.rules[0].limits.budget.max: max must be a number >= 0" },
	{ "budget path with unknown root",
	  HEAD RULE3(TOOL_X, GRANT ", \"limits\": {\"budget\": {\"path\": "
		     "\"params.amount\", \"max\": 5, \"per\": 60}}") TAIL,
	  "t.json:8: $.rules[0].limits.budget.path: path \"params.amount\"" },
	{ "budget per not an integer",
	  HEAD RULE3(TOOL_X, GRANT ", \"limits\": {\"budget\": {\"path\": "
		     "\"action.params.amount\", \"max\": 5, \"per\": \"1h\"}}")
	  TAIL, "t.json:8: $.rules[0].limits.budget.per: per must be an "
		"integer" },
};

static void bad_policy_table(void)
{
	for (size_t i = 0; i < sizeof(bad_policies) / sizeof(bad_policies[0]);
	     i++) {
		const struct bad_policy *c = &bad_policies[i];
		struct kh_policy *policy = (struct kh_policy *)&policy;
		struct kh_err err = { "" };
		int rc = kh_policy_parse(c->text, strlen(c->text), "t.json",
					 &policy, &err);

		if (rc != -EINVAL)
			kh_test_fail(__FILE__, __LINE__, "%s: rc %d, expected "
				     "-EINVAL", c->name, rc);
		if (policy)
			kh_test_fail(__FILE__, __LINE__, "%s: output not "
				     "cleared", c->name);
		if (!strstr(err.msg, c->expect))
			kh_test_fail(__FILE__, __LINE__, "%s: error \"%s\" "
				     "lacks \"%s\"", c->name, err.msg,
				     c->expect);
		kh_policy_free(policy);
	}
}

static struct kh_policy *load_vector(const char *name)
{
	char path[512];
	struct kh_policy *policy = NULL;
	struct kh_err err = { "" };

	CHECK(snprintf(path, sizeof(path), "%s/vectors/policy/%s",
		       kh_test_data_dir(), name) < (int)sizeof(path));
	if (kh_policy_load(path, &policy, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "loading %s: %s", path,
			     err.msg);
	return policy;
}

static void valid_policy_loads(void)
{
	struct kh_policy *policy = load_vector("valid.json");

	if (!policy)
		return;
	CHECK_STR(kh_policy_tenant(policy), "acme");
	CHECK_STR(kh_policy_env(policy), "prod");
	CHECK_INT(kh_policy_max_window(policy), 3600);
	CHECK_INT(json_array_size(json_object_get(kh_policy_json(policy),
						  "rules")), 4);
	kh_policy_free(policy);
}

/*
 * hP of valid.json, computed independently of libkeyhole: Python's
 * json.dumps(doc, sort_keys=True, separators=(",", ":")) equals JCS for
 * this document (ASCII keys, integers only), piped to sha256sum.
 */
static void valid_policy_hash(void)
{
	struct kh_policy *policy = load_vector("valid.json");
	char again[KH_HASH_HEX_LEN + 1];
	struct kh_err err = { "" };

	if (!policy)
		return;
	CHECK_STR(kh_policy_hash(policy), VALID_POLICY_HP);
	CHECK_INT(kh_hash(kh_policy_json(policy), again, &err), 0);
	CHECK_STR(again, kh_policy_hash(policy));
	kh_policy_free(policy);
}

/* Reformatting the text keeps hP: it hashes the document, not bytes. */
static void hash_ignores_layout(void)
{
	const char *a = HEAD OK_RULE TAIL;
	const char *b = "{\"rules\":[{\"grant\":{\"secrets\":[]},\"effect\":"
			"\"permit\",\"id\":\"ok\",\"action\":{\"tool\":\"x\","
			"\"type\":\"tool_call\"}}],\"max_ttl\":300,\"env\":"
			"\"prod\",\"tenant\":\"acme\"}";
	struct kh_policy *pa = NULL;
	struct kh_policy *pb = NULL;
	struct kh_err err = { "" };

	CHECK_INT(kh_policy_parse(a, strlen(a), NULL, &pa, &err), 0);
	CHECK_INT(kh_policy_parse(b, strlen(b), NULL, &pb, &err), 0);
	if (pa && pb)
		CHECK_STR(kh_policy_hash(pa), kh_policy_hash(pb));
	kh_policy_free(pa);
	kh_policy_free(pb);
}

static void missing_file_fails(void)
{
	struct kh_policy *policy = (struct kh_policy *)&policy;
	struct kh_err err = { "" };

	CHECK_INT(kh_policy_load("/nonexistent/kh-policy.json", &policy, &err),
		  -ENOENT);
	CHECK(policy == NULL);
	CHECK(strstr(err.msg, "/nonexistent/kh-policy.json") != NULL);
}

static void origin_defaults(void)
{
	const char *text = "{\"tenant\": 1}";
	struct kh_policy *policy = NULL;
	struct kh_err err = { "" };

	CHECK_INT(kh_policy_parse(text, strlen(text), NULL, &policy, &err),
		  -EINVAL);
	CHECK(strncmp(err.msg, "policy:1: $.tenant:", 19) == 0);
}

static void window_is_longest_limit(void)
{
	const char *text = HEAD
		RULE(TOOL_X ", " GRANT ", \"limits\": {\"rate\": {\"count\": 1, "
		     "\"per\": 90}, \"budget\": {\"path\": \"action.params.a\", "
		     "\"max\": 1, \"per\": 30}}") ",\n"
		OK_RULE TAIL;
	struct kh_policy *policy = NULL;
	struct kh_err err = { "" };

	CHECK_INT(kh_policy_parse(text, strlen(text), NULL, &policy, &err), 0);
	if (policy)
		CHECK_INT(kh_policy_max_window(policy), 90);
	kh_policy_free(policy);
}

/* Messages collected from a check, in the order they were reported. */
struct reports {
	char messages[16][512];
	size_t count;
};

static void collect(const char *message, void *ctx)
{
	struct reports *r = ctx;

	if (r->count < 16)
		(void)snprintf(r->messages[r->count], sizeof(r->messages[0]),
			       "%s", message);
	r->count++;
}

/* Independent errors in the document and in three rules, one per line. */
static const char many_errors[] =
	"{\n"
	"\"tenant\": 5,\n"
	"\"env\": \"prod\",\n"
	"\"max_ttl\": 300,\n"
	"\"colour\": \"red\",\n"
	"\"rules\": [\n"
	"{\"id\": \"a\", \"effect\": \"allow\", " TOOL_X "},\n"
	"{\"id\": \"b\", \"effect\": \"permit\",\n"
	"\"agents\": {\"users\": [\"no-such-user-kh\"]},\n"
	"\"action\": {\"type\": \"exec\", \"exe\": \"curl\"},\n"
	"\"when\": [{\"path\": \"time\", \"op\": \"~=\", \"value\": 1}],\n"
	"\"grant\": {\"secrets\": [], \"ttl\": 301}},\n"
	"{\"id\": \"a\", \"effect\": \"deny\", " TOOL_X "}\n"
	"]\n"
	"}\n";

static const char *const many_expected[] = {
	"t.json:5: $.colour: unknown key \"colour\"",
	"t.json:2: $.tenant: tenant must be a non-empty string",
	"t.json:7: $.rules[0].effect: effect \"allow\" is unknown",
	("t.json:9: $.rules[1].agents.users[0]: unknown user "
	 "\"no-such-user-kh\""),
	"t.json:10: $.rules[1].action.exe: exe \"curl\" must be an absolute",
	"t.json:11: $.rules[1].when[0].op: op \"~=\" is unknown",
	"t.json:12: $.rules[1].grant.ttl: ttl 301 is above max_ttl 300",
	"t.json:13: $.rules[2].id: duplicate rule id \"a\"",
};

static void check_reports_every_error(void)
{
	struct reports r = { .count = 0 };
	size_t want = sizeof(many_expected) / sizeof(many_expected[0]);
	int n = kh_policy_check(many_errors, strlen(many_errors), "t.json",
				collect, &r);

	CHECK_INT(n, (long long)want);
	CHECK_INT(r.count, (long long)want);
	for (size_t i = 0; i < want && i < r.count; i++)
		if (!strstr(r.messages[i], many_expected[i]))
			kh_test_fail(__FILE__, __LINE__, "message %zu is \"%s\", "
				     "expected \"%s\"", i, r.messages[i],
				     many_expected[i]);
}

/* The first error a check reports is the one kh_policy_parse stops at. */
static void check_first_equals_parse(void)
{
	for (size_t i = 0; i < sizeof(bad_policies) / sizeof(bad_policies[0]);
	     i++) {
		const struct bad_policy *c = &bad_policies[i];
		struct kh_policy *policy = NULL;
		struct kh_err err = { "" };
		struct reports r = { .count = 0 };
		int n;

		CHECK_INT(kh_policy_parse(c->text, strlen(c->text), "t.json",
					  &policy, &err), -EINVAL);
		n = kh_policy_check(c->text, strlen(c->text), "t.json", collect,
				    &r);
		if (n < 1 || (size_t)n != r.count)
			kh_test_fail(__FILE__, __LINE__, "%s: check returned "
				     "%d with %zu reports", c->name, n,
				     r.count);
		else if (strcmp(r.messages[0], err.msg) != 0)
			kh_test_fail(__FILE__, __LINE__, "%s: first report "
				     "\"%s\", parse \"%s\"", c->name,
				     r.messages[0], err.msg);
		kh_policy_free(policy);
	}
}

static void check_valid_and_syntax(void)
{
	const char *valid = HEAD OK_RULE TAIL;
	const char *broken = HEAD OK_RULE ",," TAIL;
	struct reports r = { .count = 0 };

	CHECK_INT(kh_policy_check(valid, strlen(valid), "t.json", collect, &r),
		  0);
	CHECK_INT(r.count, 0);
	CHECK_INT(kh_policy_check(broken, strlen(broken), "t.json", collect,
				  &r), 1);
	CHECK_INT(r.count, 1);
	CHECK(strncmp(r.messages[0], "t.json: invalid JSON", 20) == 0);
	CHECK_INT(kh_policy_check(broken, strlen(broken), NULL, NULL, NULL), 1);
}

static void check_file_errors(void)
{
	char path[512];
	struct reports r = { .count = 0 };

	CHECK_INT(kh_policy_check_file("/nonexistent/kh-policy.json", collect,
				       &r), -ENOENT);
	CHECK_INT(r.count, 1);
	CHECK(strstr(r.messages[0], "/nonexistent/kh-policy.json") != NULL);
	CHECK(snprintf(path, sizeof(path), "%s/vectors/policy/valid.json",
		       kh_test_data_dir()) < (int)sizeof(path));
	r.count = 0;
	CHECK_INT(kh_policy_check_file(path, collect, &r), 0);
	CHECK_INT(r.count, 0);
}

static const struct kh_test_case cases[] = {
	{ "bad policy table", bad_policy_table },
	{ "valid policy loads", valid_policy_loads },
	{ "valid policy hash", valid_policy_hash },
	{ "hash ignores layout", hash_ignores_layout },
	{ "missing file fails", missing_file_fails },
	{ "origin defaults", origin_defaults },
	{ "window is longest limit", window_is_longest_limit },
	{ "check reports every error", check_reports_every_error },
	{ "check first equals parse", check_first_equals_parse },
	{ "check valid and syntax", check_valid_and_syntax },
	{ "check file errors", check_file_errors },
};

int main(void)
{
	return KH_TEST_RUN("policy", cases);
}
