/*
 * Policy evaluation. A decision depends only on the policy, the action
 * and the state snapshot (agent, time, counters), never on live daemon
 * data, so an auditor can replay it from the DPR record. The document is
 * trusted to have passed kh_policy_parse; the state is checked here
 * because it may come from a log.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhole/action.h"
#include "keyhole/policy.h"
#include "json_path.h"

/* Longest JSON text of a condition value quoted in a reason. */
#define VALUE_QUOTE_MAX 48
/* Maximum characters of an action value or glob quoted in a reason. */
#define QUOTE_CHARS_MAX 64
/* Maximum bytes of one quoted value, escapes included. */
#define QUOTE_BYTES_MAX 80

/*
 * How far a permit rule got before it failed, in the order the closest
 * miss ranks them: a rule that failed later is closer. The action comes
 * before the agent because the rule that covers the requested action is
 * the one the caller wants explained, even when it lists other agents.
 */
enum stage {
	STAGE_TYPE,   /* action type differs: not a candidate */
	STAGE_NAME,   /* tool or exe glob */
	STAGE_ARGV,   /* argv globs */
	STAGE_AGENT,  /* agents */
	STAGE_WHEN,   /* a condition */
	STAGE_LIMITS, /* rate or budget */
	STAGE_MATCH,
};

enum outcome {
	RULE_NEAR_MISS, /* a condition or limit failed, named in why */
	RULE_MATCH,
};

struct eval {
	const json_t *action;
	const json_t *agent; /* state.agent */
	const json_t *time;  /* state.time */
	const json_t *counters;
	double amount;       /* budget amount of the matched permit rule */
	char why[256];
};

/* Length of the UTF-8 character that starts with lead, 1 when invalid. */
static size_t utf8_length(unsigned char lead)
{
	if (lead >= 0xF0 && lead < 0xF8)
		return 4;
	if (lead >= 0xE0)
		return lead < 0xF0 ? 3 : 1;
	return lead >= 0xC0 ? 2 : 1;
}

/*
 * Drops a UTF-8 character that a cut at the end of buf left incomplete,
 * because reasons go into JSON records, which must be valid UTF-8.
 */
static void trim_partial_utf8(char *buf)
{
	size_t len = strlen(buf);
	size_t start = len;
	size_t need;
	unsigned char lead;

	while (start > 0 && len - start < 4 &&
	       ((unsigned char)buf[start - 1] & 0xC0) == 0x80)
		start--;
	if (start == 0)
		return;
	lead = (unsigned char)buf[start - 1];
	if (lead < 0xC0)
		return;
	need = utf8_length(lead);
	if (len - (start - 1) < need)
		buf[start - 1] = '\0';
}

/* Formats into buf; a reason cut at the buffer end still names the rule. */
__attribute__((format(printf, 3, 4)))
static void format_text(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= size)
		trim_partial_utf8(buf);
}

static int check_state(const json_t *state, struct kh_err *err)
{
	const json_t *agent = json_object_get(state, "agent");
	const json_t *groups = json_object_get(agent, "groups");
	size_t i;
	const json_t *group;

	if (!json_is_object(agent) ||
	    !json_is_integer(json_object_get(agent, "uid")) ||
	    !json_is_string(json_object_get(agent, "user")) ||
	    !json_is_array(groups) ||
	    !json_is_integer(json_object_get(state, "time")) ||
	    !json_is_object(json_object_get(state, "counters"))) {
		kh_err_set(err, "evaluation state must be {\"agent\":{\"uid\","
			   "\"user\",\"groups\"},\"time\",\"counters\"} as "
			   "kh_state_build writes it");
		return -EINVAL;
	}
	json_array_foreach(groups, i, group) {
		if (!json_is_string(group)) {
			kh_err_set(err, "evaluation state: agent.groups[%zu] "
				   "must be a string", i);
			return -EINVAL;
		}
	}
	return 0;
}

/* Returns 1 when the action's tool or exe fits the rule's glob, 0, <0. */
static int name_matches(const json_t *pattern, const json_t *action)
{
	const char *type = json_string_value(json_object_get(pattern, "type"));
	const char *key = strcmp(type, "tool_call") == 0 ? "tool" : "exe";
	const json_t *value = json_object_get(action, key);

	return kh_glob_match(json_string_value(json_object_get(pattern, key)),
			     json_string_value(value),
			     json_string_length(value));
}

/* Returns 1 when argv fits the rule's argv globs (or it has none), 0, <0. */
static int argv_matches(const json_t *pattern, const json_t *action)
{
	const json_t *globs = json_object_get(pattern, "argv");

	if (!globs)
		return 1;
	return kh_glob_match_argv(globs, json_object_get(action, "argv"));
}

/* Returns 1 when action fits the rule's action pattern, 0 if not, <0. */
static int action_matches(const json_t *pattern, const json_t *action)
{
	int hit;

	if (!json_equal(json_object_get(pattern, "type"),
			json_object_get(action, "type")))
		return 0;
	hit = name_matches(pattern, action);
	return hit == 1 ? argv_matches(pattern, action) : hit;
}

/*
 * Writes s (len bytes) into out, quoted unless bare, cut after
 * QUOTE_CHARS_MAX characters or QUOTE_BYTES_MAX bytes with "..." added,
 * and with '"', '\\' and control characters escaped. Action values go
 * into reasons this way, so a long or odd argument cannot push the rule
 * id out of the reason or break its line.
 */
static void quote(const char *s, size_t len, bool bare,
		  char out[QUOTE_BYTES_MAX + 8])
{
	size_t used = 0;
	size_t chars = 0;
	size_t i = 0;

	if (!bare)
		out[used++] = '"';
	while (i < len && chars < QUOTE_CHARS_MAX) {
		unsigned char c = (unsigned char)s[i];
		size_t step = utf8_length(c);
		char escaped[8];
		const char *piece = s + i;
		size_t piece_len = step;

		if (step > len - i)
			break;
		if (c < 0x20 || c == 0x7F || c == '"' || c == '\\') {
			format_text(escaped, sizeof(escaped),
				    c == '"' || c == '\\' ? "\\%c" : "\\u%04x",
				    c);
			piece = escaped;
			piece_len = strlen(escaped);
		}
		if (used + piece_len > QUOTE_BYTES_MAX)
			break;
		memcpy(out + used, piece, piece_len);
		used += piece_len;
		i += step;
		chars++;
	}
	if (i < len) {
		memcpy(out + used, "...", 3);
		used += 3;
	}
	if (!bare)
		out[used++] = '"';
	out[used] = '\0';
}

static void quote_json(const json_t *string, char out[QUOTE_BYTES_MAX + 8])
{
	quote(json_string_value(string), json_string_length(string), false,
	      out);
}

/* Parses an array index segment: decimal digits, no leading zero. */
static bool parse_index(const char *seg, size_t len, size_t *index)
{
	size_t value = 0;

	if (len == 0 || len > 9 || (len > 1 && seg[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (seg[i] < '0' || seg[i] > '9')
			return false;
		value = value * 10 + (size_t)(seg[i] - '0');
	}
	*index = value;
	return true;
}

/*
 * Resolves a dotted path in {"action","agent","time"}; NULL when any
 * segment is missing.
 */
static const json_t *path_get(const struct eval *ev, const char *path)
{
	size_t len = strcspn(path, ".");
	const json_t *node = NULL;

	if (len == 6 && strncmp(path, "action", 6) == 0)
		node = ev->action;
	else if (len == 5 && strncmp(path, "agent", 5) == 0)
		node = ev->agent;
	else if (len == 4 && strncmp(path, "time", 4) == 0)
		node = ev->time;
	path += len;
	while (node && *path == '.') {
		size_t index;

		path++;
		len = strcspn(path, ".");
		if (json_is_object(node))
			node = json_object_getn(node, path, len);
		else if (json_is_array(node) && parse_index(path, len, &index))
			node = json_array_get(node, index);
		else
			node = NULL;
		path += len;
	}
	return node;
}

/* JSON equality that compares numbers by value (1 equals 1.0). */
static bool values_equal(const json_t *a, const json_t *b)
{
	size_t i;
	const char *key;
	const json_t *value;

	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_typeof(a) != json_typeof(b))
		return false;
	if (json_is_array(a)) {
		if (json_array_size(a) != json_array_size(b))
			return false;
		json_array_foreach(a, i, value)
			if (!values_equal(value, json_array_get(b, i)))
				return false;
		return true;
	}
	if (json_is_object(a)) {
		if (json_object_size(a) != json_object_size(b))
			return false;
		json_object_foreach((json_t *)a, key, value) {
			const json_t *other = json_object_get(b, key);

			if (!other || !values_equal(value, other))
				return false;
		}
		return true;
	}
	return json_equal((json_t *)a, (json_t *)b);
}

/* True when any element of list equals value; false for a non-array. */
static bool list_contains(const json_t *list, const json_t *value)
{
	size_t i;
	const json_t *entry;

	json_array_foreach(list, i, entry)
		if (values_equal(entry, value))
			return true;
	return false;
}

static bool agent_matches(const json_t *agents, const json_t *agent)
{
	const json_t *uid = json_object_get(agent, "uid");
	size_t i;
	const json_t *entry;

	if (!agents)
		return true;
	if (list_contains(json_object_get(agents, "users"),
			    json_object_get(agent, "user")))
		return true;
	json_array_foreach(json_object_get(agent, "groups"), i, entry)
		if (list_contains(json_object_get(agents, "groups"), entry))
			return true;
	json_array_foreach(json_object_get(agents, "uids"), i, entry)
		if (json_integer_value(entry) == json_integer_value(uid))
			return true;
	return false;
}

/*
 * Applies op to actual and value. Returns 1 or 0, or -1 when the types
 * do not fit the op (why then names the mismatch).
 */
static int apply_op(const char *op, const json_t *actual, const json_t *value,
		    const char *path, char *why, size_t size)
{
	const char *need = NULL;

	if (strcmp(op, "==") == 0 || strcmp(op, "!=") == 0)
		return values_equal(actual, value) == (op[0] == '=');
	if (strcmp(op, "in") == 0 || strcmp(op, "not_in") == 0)
		return list_contains(value, actual) ?
			       strcmp(op, "in") == 0 :
			       strcmp(op, "not_in") == 0;
	if (op[0] == '<' || op[0] == '>') {
		double a = json_number_value(actual);
		double b = json_number_value(value);

		if (json_is_number(actual)) {
			if (strcmp(op, "<") == 0)
				return a < b;
			if (strcmp(op, "<=") == 0)
				return a <= b;
			if (strcmp(op, ">") == 0)
				return a > b;
			return a >= b;
		}
		need = "a number";
	} else if (json_is_string(actual)) {
		const char *s = json_string_value(actual);
		size_t n = json_string_length(actual);
		size_t plen = json_string_length(value);

		if (strcmp(op, "prefix") == 0)
			return n >= plen &&
			       memcmp(s, json_string_value(value), plen) == 0;
		int hit = kh_glob_match(json_string_value(value), s, n);

		if (hit >= 0)
			return hit;
		need = "a string without NUL bytes";
	} else {
		need = "a string";
	}
	format_text(why, size, "%s is %s, but %s needs %s", path,
		    kh_json_type_name(actual), op, need);
	return -1;
}

/* Writes "path op value" with the value's JSON cut to a short quote. */
static void describe_condition(const json_t *cond, char *buf, size_t size)
{
	char *text = json_dumps(json_object_get(cond, "value"),
				JSON_COMPACT | JSON_ENCODE_ANY);
	const char *shown = text ? text : "?";
	size_t shown_len = strlen(shown);
	bool cut = shown_len > VALUE_QUOTE_MAX;

	if (cut) {
		/* Cut before a UTF-8 character, not inside one. */
		shown_len = VALUE_QUOTE_MAX;
		while (shown_len > 0 &&
		       ((unsigned char)shown[shown_len] & 0xC0) == 0x80)
			shown_len--;
	}
	format_text(buf, size, "%s %s %.*s%s",
		    json_string_value(json_object_get(cond, "path")),
		    json_string_value(json_object_get(cond, "op")),
		    (int)shown_len, shown, cut ? "..." : "");
	free(text);
}

static void format_number(double value, char buf[32])
{
	if (kh_canon_number(value, buf) < 0)
		format_text(buf, 32, "%g", value);
}

/*
 * Checks the rule's conditions in order. A condition that cannot be
 * evaluated (missing path, types that do not fit the op) fails in a
 * permit rule and is satisfied in a deny rule. So a broken condition can
 * neither grant access nor let an action slip past a deny.
 */
static enum outcome check_conditions(struct eval *ev, const json_t *rule,
				     const char *id, bool deny)
{
	size_t i;
	const json_t *cond;

	json_array_foreach(json_object_get(rule, "when"), i, cond) {
		const char *path =
			json_string_value(json_object_get(cond, "path"));
		const json_t *actual = path_get(ev, path);
		char problem[160];
		char text[160];
		int holds = -1;

		if (actual)
			holds = apply_op(
				json_string_value(json_object_get(cond, "op")),
				actual, json_object_get(cond, "value"), path,
				problem, sizeof(problem));
		else
			format_text(problem, sizeof(problem),
				    "%s is missing", path);
		if (holds == 1)
			continue;
		if (holds == 0) {
			describe_condition(cond, text, sizeof(text));
			format_text(ev->why, sizeof(ev->why),
				    "rule %s: condition $.when[%zu] failed "
				    "(%s)", id, i, text);
			return RULE_NEAR_MISS;
		}
		if (!deny) {
			format_text(ev->why, sizeof(ev->why),
				    "rule %s: condition $.when[%zu] could "
				    "not be evaluated (%s), so the permit "
				    "rule does not apply", id, i, problem);
			return RULE_NEAR_MISS;
		}
		if (!ev->why[0])
			format_text(ev->why, sizeof(ev->why),
				    "denied by rule %s: condition "
				    "$.when[%zu] could not be evaluated "
				    "(%s), so the deny rule applies",
				    id, i, problem);
	}
	return RULE_MATCH;
}

static enum outcome check_budget(struct eval *ev, const json_t *budget,
				 const json_t *counters, const char *id)
{
	const char *path = json_string_value(json_object_get(budget, "path"));
	const json_t *amount = path_get(ev, path);
	const json_t *spent = json_object_get(counters, "budget");
	double max = json_number_value(json_object_get(budget, "max"));
	char a[32], s[32], m[32];

	if (!json_is_number(amount) || json_number_value(amount) < 0) {
		if (json_is_number(amount))
			format_number(json_number_value(amount), a);
		format_text(ev->why, sizeof(ev->why),
			    "rule %s: budget amount at %s is %s; it must be a "
			    "number >= 0", id, path,
			    json_is_number(amount) ? a :
			    amount ? kh_json_type_name(amount) : "missing");
		return RULE_NEAR_MISS;
	}
	if (!json_is_number(spent)) {
		format_text(ev->why, sizeof(ev->why),
			    "rule %s: the evaluation state has no budget "
			    "counter for this rule", id);
		return RULE_NEAR_MISS;
	}
	if (json_number_value(spent) + json_number_value(amount) > max) {
		format_number(json_number_value(amount), a);
		format_number(json_number_value(spent), s);
		format_number(max, m);
		format_text(ev->why, sizeof(ev->why),
			    "rule %s: budget exceeded (%s spent + %s "
			    "requested > max %s per %lld s)", id, s, a, m,
			    (long long)json_integer_value(
				    json_object_get(budget, "per")));
		return RULE_NEAR_MISS;
	}
	ev->amount = json_number_value(amount);
	return RULE_MATCH;
}

/*
 * Checks rate and budget against state.counters, which are per rule and
 * agent. A missing counter fails closed, because such a state was not
 * built for this policy.
 */
static enum outcome check_limits(struct eval *ev, const json_t *rule,
				 const char *id)
{
	const json_t *limits = json_object_get(rule, "limits");
	const json_t *counters = json_object_get(ev->counters, id);
	const json_t *rate = json_object_get(limits, "rate");
	const json_t *budget = json_object_get(limits, "budget");

	if (rate) {
		const json_t *count = json_object_get(counters, "rate");
		json_int_t max = json_integer_value(json_object_get(rate,
								     "count"));

		if (!json_is_number(count)) {
			format_text(ev->why, sizeof(ev->why),
				    "rule %s: the evaluation state has no "
				    "rate counter for this rule", id);
			return RULE_NEAR_MISS;
		}
		if (json_number_value(count) >= (double)max) {
			format_text(ev->why, sizeof(ev->why),
				    "rule %s: rate limit reached (%lld per "
				    "%lld s)", id, (long long)max,
				    (long long)json_integer_value(
					    json_object_get(rate, "per")));
			return RULE_NEAR_MISS;
		}
	}
	return budget ? check_budget(ev, budget, counters, id) : RULE_MATCH;
}

/*
 * Returns true when a deny rule applies. A deny rule whose globs cannot
 * be evaluated applies, and ev->why then records that reason.
 */
static bool deny_applies(struct eval *ev, const json_t *rule)
{
	const char *id = json_string_value(json_object_get(rule, "id"));
	int hit;

	ev->why[0] = '\0';
	if (!agent_matches(json_object_get(rule, "agents"), ev->agent))
		return false;
	hit = action_matches(json_object_get(rule, "action"), ev->action);
	if (hit == 0)
		return false;
	if (hit < 0)
		format_text(ev->why, sizeof(ev->why),
			    "denied by rule %s: the action could not be "
			    "matched against its globs, so the deny rule "
			    "applies", id);
	return check_conditions(ev, rule, id, true) == RULE_MATCH;
}

/*
 * Evaluates a permit rule and returns how far it got. A failed condition
 * or limit fills ev->why on the way; the earlier stages are explained
 * only for the closest rule, by explain_miss.
 */
static enum stage permit_stage(struct eval *ev, const json_t *rule)
{
	const json_t *pattern = json_object_get(rule, "action");
	const char *id = json_string_value(json_object_get(rule, "id"));

	ev->why[0] = '\0';
	ev->amount = 0;
	if (!json_equal(json_object_get(pattern, "type"),
			json_object_get(ev->action, "type")))
		return STAGE_TYPE;
	if (name_matches(pattern, ev->action) != 1)
		return STAGE_NAME;
	if (argv_matches(pattern, ev->action) != 1)
		return STAGE_ARGV;
	if (!agent_matches(json_object_get(rule, "agents"), ev->agent))
		return STAGE_AGENT;
	if (check_conditions(ev, rule, id, false) != RULE_MATCH)
		return STAGE_WHEN;
	if (check_limits(ev, rule, id) != RULE_MATCH)
		return STAGE_LIMITS;
	return STAGE_MATCH;
}

static void explain_name(struct eval *ev, const json_t *pattern,
			 const char *id)
{
	const char *type = json_string_value(json_object_get(pattern, "type"));
	const char *key = strcmp(type, "tool_call") == 0 ? "tool" : "exe";
	char value[QUOTE_BYTES_MAX + 8];
	char glob[QUOTE_BYTES_MAX + 8];

	quote_json(json_object_get(ev->action, key), value);
	quote_json(json_object_get(pattern, key), glob);
	format_text(ev->why, sizeof(ev->why), "rule %s: %s %s does not match "
		    "%s", id, key, value, glob);
}

/* Names the first argument that fails, as kh_glob_match_argv checks. */
static void explain_argv(struct eval *ev, const json_t *globs,
			 const char *id)
{
	const json_t *argv = json_object_get(ev->action, "argv");
	size_t nglobs = json_array_size(globs);
	size_t nargs = json_array_size(argv);
	bool rest = strcmp(json_string_value(json_array_get(globs,
							    nglobs - 1)),
			   "**") == 0;
	char value[QUOTE_BYTES_MAX + 8];
	char glob[QUOTE_BYTES_MAX + 8];

	if (rest)
		nglobs--;
	for (size_t i = 0; i < nglobs; i++) {
		const json_t *pattern = json_array_get(globs, i);
		const json_t *arg = json_array_get(argv, i);

		quote_json(pattern, glob);
		if (!arg) {
			format_text(ev->why, sizeof(ev->why), "rule %s: "
				    "argv[%zu] is missing; the rule expects "
				    "%s", id, i, glob);
			return;
		}
		if (kh_glob_match(json_string_value(pattern),
				  json_string_value(arg),
				  json_string_length(arg)) != 1) {
			quote_json(arg, value);
			format_text(ev->why, sizeof(ev->why), "rule %s: "
				    "argv[%zu] %s does not match %s", id, i,
				    value, glob);
			return;
		}
	}
	if (!rest && nargs > nglobs) {
		quote_json(json_array_get(argv, nglobs), value);
		format_text(ev->why, sizeof(ev->why), "rule %s: argv[%zu] %s "
			    "is extra; the rule matches exactly %zu "
			    "arguments", id, nglobs, value, nglobs);
		return;
	}
	format_text(ev->why, sizeof(ev->why), "rule %s: argv does not match "
		    "its globs", id);
}

static void explain_agent(struct eval *ev, const char *id)
{
	const json_t *user = json_object_get(ev->agent, "user");
	char name[QUOTE_BYTES_MAX + 8];

	quote(json_string_value(user), json_string_length(user), true, name);
	format_text(ev->why, sizeof(ev->why), "rule %s: agent %s (uid %lld) "
		    "is not listed", id, name,
		    (long long)json_integer_value(json_object_get(ev->agent,
								  "uid")));
}

/* Fills ev->why for a rule that failed at stage NAME, ARGV or AGENT. */
static void explain_miss(struct eval *ev, const json_t *rule,
			 enum stage stage)
{
	const json_t *pattern = json_object_get(rule, "action");
	const char *id = json_string_value(json_object_get(rule, "id"));

	if (stage == STAGE_NAME)
		explain_name(ev, pattern, id);
	else if (stage == STAGE_ARGV)
		explain_argv(ev, json_object_get(pattern, "argv"), id);
	else
		explain_agent(ev, id);
}

static int fill_permit(struct kh_decision *out, const json_t *doc,
		       const json_t *rule, double amount)
{
	const json_t *grant = json_object_get(rule, "grant");
	const json_t *limits = json_object_get(rule, "limits");
	const json_t *ttl = json_object_get(grant, "ttl");
	const json_t *uses = json_object_get(grant, "uses");
	json_int_t max_ttl = json_integer_value(json_object_get(doc,
								 "max_ttl"));
	const char *id = json_string_value(json_object_get(rule, "id"));

	out->effect = KH_EFFECT_PERMIT;
	format_text(out->rule, sizeof(out->rule), "%s", id);
	format_text(out->reason, sizeof(out->reason),
		    "permitted by rule %s", id);
	/* The default ttl never exceeds the policy's max_ttl. */
	if (ttl)
		out->ttl = json_integer_value(ttl);
	else if (max_ttl < KH_POLICY_DEFAULT_TTL)
		out->ttl = max_ttl;
	else
		out->ttl = KH_POLICY_DEFAULT_TTL;
	out->uses = uses ? (uint32_t)json_integer_value(uses) :
			   KH_POLICY_DEFAULT_USES;
	out->amount = amount;
	out->secrets = json_deep_copy(json_object_get(grant, "secrets"));
	out->constraints = json_pack("{s:I,s:I}", "ttl", (json_int_t)out->ttl,
				     "uses", (json_int_t)out->uses);
	if (!out->secrets || !out->constraints)
		return -ENOMEM;
	if (json_object_get(limits, "rate") &&
	    json_object_set_new(out->constraints, "rate",
				json_deep_copy(json_object_get(limits,
							       "rate"))) < 0)
		return -ENOMEM;
	if (json_object_get(limits, "budget") &&
	    json_object_set_new(out->constraints, "budget",
				json_deep_copy(json_object_get(limits,
							       "budget"))) < 0)
		return -ENOMEM;
	return 0;
}

static void fill_deny(struct kh_decision *out, const char *rule,
		      const char *reason)
{
	out->effect = KH_EFFECT_DENY;
	format_text(out->rule, sizeof(out->rule), "%s", rule);
	format_text(out->reason, sizeof(out->reason), "%s", reason);
}

/*
 * Fills the default deny: "no rule matched (closest: <why>)", where why
 * explains the closest permit rule. It stays empty in decision.rule,
 * which names only a rule that matched.
 */
static void fill_default_deny(struct kh_decision *out, struct eval *ev,
			      const json_t *closest, enum stage stage)
{
	static const char head[] = "no rule matched (closest: ";
	/* Bytes of why that fit between head and ")" in the reason. */
	size_t room = sizeof(out->reason) - sizeof(head) - 1;
	size_t len;

	out->effect = KH_EFFECT_DENY;
	if (!closest) {
		format_text(out->reason, sizeof(out->reason), "no rule matched "
			    "(no permit rule has action type \"%s\")",
			    json_string_value(json_object_get(ev->action,
							      "type")));
		return;
	}
	if (stage < STAGE_WHEN)
		explain_miss(ev, closest, stage);
	len = strlen(ev->why);
	if (len > room) {
		len = room - 3;
		while (len > 0 && ((unsigned char)ev->why[len] & 0xC0) == 0x80)
			len--;
		memcpy(ev->why + len, "...", 4);
	}
	format_text(out->reason, sizeof(out->reason), "%s%s)", head, ev->why);
}

int kh_policy_eval(const struct kh_policy *policy, const json_t *action,
		   const json_t *state, struct kh_decision *out,
		   struct kh_err *err)
{
	const json_t *doc;
	const json_t *rule;
	const json_t *permit = NULL;
	const json_t *closest = NULL;
	enum stage closest_stage = STAGE_TYPE;
	double permit_amount = 0;
	struct eval ev = { .action = action };
	char closest_why[sizeof(ev.why)] = "";
	size_t i;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!policy || !action || !state) {
		kh_err_set(err, "policy, action and state are required");
		return -EINVAL;
	}
	rc = kh_action_validate(action, err);
	if (!rc)
		rc = check_state(state, err);
	if (rc)
		goto out;
	doc = kh_policy_json(policy);
	ev.agent = json_object_get(state, "agent");
	ev.time = json_object_get(state, "time");
	ev.counters = json_object_get(state, "counters");

	json_array_foreach(json_object_get(doc, "rules"), i, rule) {
		const char *id = json_string_value(json_object_get(rule, "id"));
		enum stage stage;

		if (strcmp(json_string_value(json_object_get(rule, "effect")),
			   "deny") == 0) {
			if (!deny_applies(&ev, rule))
				continue;
			if (!ev.why[0])
				format_text(ev.why, sizeof(ev.why),
					    "denied by rule %s", id);
			fill_deny(out, id, ev.why);
			goto out;
		}
		/* After the first permit only a deny can change the result. */
		if (permit)
			continue;
		stage = permit_stage(&ev, rule);
		if (stage == STAGE_MATCH) {
			permit = rule;
			permit_amount = ev.amount;
		} else if (stage > closest_stage) {
			/* Ties go to the earlier rule, so replays agree. */
			closest = rule;
			closest_stage = stage;
			format_text(closest_why, sizeof(closest_why), "%s",
				    ev.why);
		}
	}
	if (permit) {
		rc = fill_permit(out, doc, permit, permit_amount);
		if (rc)
			kh_err_set(err, "out of memory building the decision");
	} else {
		format_text(ev.why, sizeof(ev.why), "%s", closest_why);
		fill_default_deny(out, &ev, closest, closest_stage);
	}
out:
	if (rc)
		kh_decision_clear(out);
	return rc;
}

void kh_decision_clear(struct kh_decision *decision)
{
	if (!decision)
		return;
	json_decref(decision->secrets);
	json_decref(decision->constraints);
	memset(decision, 0, sizeof(*decision));
	decision->effect = KH_EFFECT_DENY;
}
