/*
 * Policy v1 parsing. The schema is checked strictly, so a typo fails at
 * load time instead of silently widening or narrowing what a rule
 * covers. Each error names the origin, the line where the offending
 * value starts and its JSON path, e.g.
 * "policy.json:14: $.rules[1].grant.ttl: ...".
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyhole/policy.h"
#include "json_path.h"
#include "textfile.h"

/* Largest policy file kh_policy_load reads, in bytes. */
#define POLICY_MAX_BYTES (4 * 1024 * 1024)
/* Maximum rule id length; ids appear in decision reasons and permits. */
#define RULE_ID_MAX 64
/* Deepest JSON path an error can name ($.rules[i].limits.budget.max). */
#define PATH_DEPTH 8

struct kh_policy {
	json_t *doc;
	char hash[KH_HASH_HEX_LEN + 1];
	const char *tenant; /* points into doc */
	const char *env;    /* points into doc */
	int64_t max_window;
};

/* A JSON path as steps, so that keys containing '.' stay exact. */
struct jpath {
	size_t depth;
	struct kh_json_step seg[PATH_DEPTH];
};

/*
 * Parser state. With report set, every error goes to report and parsing
 * goes on. Without it, the first error fills err and later ones are
 * dropped, so kh_policy_parse keeps its first-error message.
 */
struct parser {
	const char *text;
	size_t len;
	const char *origin;
	struct kh_err *err;
	kh_err_report_fn report;
	void *ctx;
	int errors;
	int64_t max_ttl; /* 0 while max_ttl is missing or invalid */
	int64_t max_window;
};

static struct jpath at_key(const struct jpath *parent, const char *key)
{
	struct jpath path = *parent;

	if (path.depth < PATH_DEPTH) {
		path.seg[path.depth].key = key;
		path.seg[path.depth].index = 0;
		path.depth++;
	}
	return path;
}

static struct jpath at_index(const struct jpath *parent, size_t index)
{
	struct jpath path = *parent;

	if (path.depth < PATH_DEPTH) {
		path.seg[path.depth].key = NULL;
		path.seg[path.depth].index = index;
		path.depth++;
	}
	return path;
}

/* True once a fail-fast parse has its error, so the rest can be skipped. */
static bool stopped(const struct parser *ps)
{
	return !ps->report && ps->errors > 0;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct parser *ps, const struct jpath *path,
		const char *fmt, ...)
{
	char what[384];
	char where[256];
	struct kh_err message;
	unsigned line;
	va_list ap;

	ps->errors++;
	if (!ps->report && ps->errors > 1)
		return -EINVAL;
	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	kh_json_path_format(path->seg, path->depth, where, sizeof(where));
	line = kh_json_path_line(ps->text, ps->len, path->seg, path->depth);
	if (line)
		kh_err_set(&message, "%s:%u: %s: %s", ps->origin, line, where,
			   what);
	else
		kh_err_set(&message, "%s: %s: %s", ps->origin, where, what);
	if (ps->report)
		ps->report(message.msg, ps->ctx);
	else if (ps->err)
		*ps->err = message;
	return -EINVAL;
}

/* Rejects members of obj not listed in allowed (NULL-terminated). */
static int check_keys(struct parser *ps, const json_t *obj,
		      const struct jpath *path, const char *const allowed[])
{
	const char *key;
	const json_t *value;
	int rc = 0;

	json_object_foreach((json_t *)obj, key, value) {
		bool known = false;
		char list[160] = "";
		size_t used = 0;
		struct jpath at = at_key(path, key);

		for (size_t i = 0; allowed[i] && !known; i++)
			known = strcmp(key, allowed[i]) == 0;
		if (known)
			continue;
		for (size_t i = 0; allowed[i]; i++) {
			int n = snprintf(list + used, sizeof(list) - used,
					 "%s%s", i ? ", " : "", allowed[i]);

			if (n < 0 || (size_t)n >= sizeof(list) - used)
				break;
			used += (size_t)n;
		}
		rc = fail(ps, &at, "unknown key \"%s\"; allowed keys: %s",
			  key, list);
	}
	return rc;
}

static bool has_nul(const json_t *string)
{
	return strlen(json_string_value(string)) != json_string_length(string);
}

/* Fetches a required non-empty string member without NUL bytes. */
static int get_string(struct parser *ps, const json_t *obj,
		      const struct jpath *path, const char *key,
		      const char **out)
{
	const json_t *value = json_object_get(obj, key);
	struct jpath at = at_key(path, key);

	if (!value)
		return fail(ps, path, "missing required key \"%s\"", key);
	if (!json_is_string(value) || json_string_length(value) == 0 ||
	    has_nul(value))
		return fail(ps, &at, "%s must be a non-empty string", key);
	*out = json_string_value(value);
	return 0;
}

/*
 * Fetches an integer member in [min, max]. An absent optional member
 * leaves *out unchanged.
 */
static int get_int(struct parser *ps, const json_t *obj,
		   const struct jpath *path, const char *key, bool required,
		   int64_t min, int64_t max, int64_t *out)
{
	const json_t *value = json_object_get(obj, key);
	struct jpath at = at_key(path, key);
	json_int_t n;

	if (!value && !required)
		return 0;
	if (!value)
		return fail(ps, path, "missing required key \"%s\"", key);
	if (!json_is_integer(value))
		return fail(ps, &at, "%s must be an integer", key);
	n = json_integer_value(value);
	if (n < min || n > max) {
		if (max == INT64_MAX)
			return fail(ps, &at, "%s is %lld; it must be >= %lld",
				    key, (long long)n, (long long)min);
		return fail(ps, &at, "%s is %lld; it must be from %lld to %lld",
			    key, (long long)n, (long long)min,
			    (long long)max);
	}
	*out = n;
	return 0;
}

static const json_t *get_array(struct parser *ps, const json_t *obj,
			       const struct jpath *path, const char *key,
			       bool required, int *rc)
{
	const json_t *value = json_object_get(obj, key);
	struct jpath at = at_key(path, key);

	*rc = 0;
	if (!value && required)
		*rc = fail(ps, path, "missing required key \"%s\"", key);
	else if (value && !json_is_array(value))
		*rc = fail(ps, &at, "%s must be an array", key);
	return *rc ? NULL : value;
}

static int check_glob(struct parser *ps, const json_t *value,
		      const struct jpath *path)
{
	struct kh_err why;

	if (!json_is_string(value) || has_nul(value))
		return fail(ps, path,
			    "glob must be a string without NUL bytes");
	if (kh_glob_validate(json_string_value(value), &why) < 0)
		return fail(ps, path, "%s", why.msg);
	return 0;
}

/*
 * Checks a dotted condition path such as "action.params.amount": non-
 * empty segments, rooted at action, agent or time (time has no members).
 */
static int check_dotted(struct parser *ps, const json_t *value,
			const struct jpath *path)
{
	const char *s;
	size_t root;

	if (!json_is_string(value) || has_nul(value))
		return fail(ps, path, "path must be a string");
	s = json_string_value(value);
	if (!*s || s[0] == '.' || strstr(s, "..") || s[strlen(s) - 1] == '.')
		return fail(ps, path, "path \"%s\" has an empty segment; "
			    "write it like \"action.params.amount\"", s);
	root = strcspn(s, ".");
	if ((root == 6 && strncmp(s, "action", 6) == 0) ||
	    (root == 5 && strncmp(s, "agent", 5) == 0) ||
	    strcmp(s, "time") == 0)
		return 0;
	return fail(ps, path, "path \"%s\" must start with \"action.\" or "
		    "\"agent.\", or be \"time\"", s);
}

/* Resolves a name through NSS: 1 found, 0 unknown, -errno on failure. */
static int nss_name_exists(const char *name, bool group)
{
	size_t size = 1024;
	int rc = -ENOMEM;

	for (;;) {
		char *buf = malloc(size);
		void *found = NULL;
		int e;

		if (!buf)
			return -ENOMEM;
		if (group) {
			struct group gr;
			struct group *res = NULL;

			e = getgrnam_r(name, &gr, buf, size, &res);
			found = res;
		} else {
			struct passwd pw;
			struct passwd *res = NULL;

			e = getpwnam_r(name, &pw, buf, size, &res);
			found = res;
		}
		free(buf);
		if (e == ERANGE && size < (1u << 20)) {
			size *= 2;
			continue;
		}
		/* glibc reports "not found" as 0 with no result, or ENOENT. */
		if (found)
			rc = 1;
		else if (e == 0 || e == ENOENT || e == ESRCH)
			rc = 0;
		else
			rc = -e;
		return rc;
	}
}

static int check_names(struct parser *ps, const json_t *names,
		       const struct jpath *path, bool group)
{
	const char *kind = group ? "group" : "user";
	size_t i;
	const json_t *name;
	int rc = 0;

	json_array_foreach(names, i, name) {
		struct jpath at = at_index(path, i);
		int found;

		if (stopped(ps))
			break;
		if (!json_is_string(name) || json_string_length(name) == 0 ||
		    has_nul(name)) {
			rc = fail(ps, &at, "%s name must be a non-empty "
				  "string", kind);
			continue;
		}
		found = nss_name_exists(json_string_value(name), group);
		if (found < 0)
			rc = fail(ps, &at, "looking up %s \"%s\" failed: %s",
				  kind, json_string_value(name),
				  strerror(-found));
		else if (!found)
			rc = fail(ps, &at, "unknown %s \"%s\"; check the "
				  "spelling or create the %s first", kind,
				  json_string_value(name), kind);
	}
	return rc;
}

static int check_uids(struct parser *ps, const json_t *uids,
		      const struct jpath *path)
{
	size_t i;
	const json_t *uid;
	int rc = 0;

	json_array_foreach(uids, i, uid) {
		struct jpath at = at_index(path, i);

		/* (uid_t)-1 means "no change" to the kernel, never a user. */
		if (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
		    json_integer_value(uid) >= (json_int_t)UINT32_MAX)
			rc = fail(ps, &at, "uid must be an integer from 0 to "
				  "4294967294");
	}
	return rc;
}

static int parse_agents(struct parser *ps, const json_t *agents,
			const struct jpath *path)
{
	static const char *const keys[] = { "users", "groups", "uids", NULL };
	const json_t *lists[3];
	struct jpath at;
	int errors = ps->errors;
	int rc;

	if (!json_is_object(agents))
		return fail(ps, path, "agents must be an object");
	(void)check_keys(ps, agents, path, keys);
	for (size_t i = 0; i < 3; i++)
		lists[i] = get_array(ps, agents, path, keys[i], false, &rc);
	for (size_t i = 0; i < 3; i++) {
		at = at_key(path, keys[i]);
		if (lists[i] && i < 2)
			(void)check_names(ps, lists[i], &at, i == 1);
		else if (lists[i])
			(void)check_uids(ps, lists[i], &at);
	}
	/* After another error here, an empty list would only repeat it. */
	if (ps->errors == errors &&
	    json_array_size(lists[0]) + json_array_size(lists[1]) +
	    json_array_size(lists[2]) == 0)
		(void)fail(ps, path, "agents lists no users, groups or uids, "
			   "so the rule could never match; remove agents "
			   "to match every agent");
	return ps->errors == errors ? 0 : -EINVAL;
}

static int parse_argv_globs(struct parser *ps, const json_t *argv,
			    const struct jpath *path)
{
	size_t i;
	const json_t *glob;
	int rc = 0;

	if (!json_is_array(argv))
		return fail(ps, path, "argv must be an array of globs");
	if (json_array_size(argv) == 0)
		return fail(ps, path, "argv lists no globs, but every command "
			    "has argv[0]; use [\"**\"] or omit argv to match "
			    "any arguments");
	json_array_foreach(argv, i, glob) {
		struct jpath at = at_index(path, i);

		if (check_glob(ps, glob, &at)) {
			rc = -EINVAL;
			continue;
		}
		/* Elsewhere "**" would match exactly one argument. */
		if (strcmp(json_string_value(glob), "**") == 0 &&
		    i + 1 != json_array_size(argv))
			rc = fail(ps, &at, "\"**\" matches the remaining "
				  "arguments, so it may only be the last "
				  "glob; use \"*\" for a single argument");
	}
	return rc;
}

static int parse_exec_action(struct parser *ps, const json_t *action,
			     const struct jpath *path)
{
	static const char *const keys[] = { "type", "exe", "argv", NULL };
	const json_t *value;
	struct jpath at;
	int rc = check_keys(ps, action, path, keys);

	value = json_object_get(action, "exe");
	at = at_key(path, "exe");
	if (!value)
		rc = fail(ps, path, "missing required key \"exe\" (an "
			  "absolute path glob such as \"/usr/bin/curl\")");
	else if (check_glob(ps, value, &at))
		rc = -EINVAL;
	else if (json_string_value(value)[0] != '/')
		rc = fail(ps, &at, "exe \"%s\" must be an absolute path glob, "
			  "because exec actions carry the resolved path",
			  json_string_value(value));
	value = json_object_get(action, "argv");
	at = at_key(path, "argv");
	if (value && parse_argv_globs(ps, value, &at))
		rc = -EINVAL;
	return rc;
}

static int parse_action(struct parser *ps, const json_t *action,
			const struct jpath *path)
{
	static const char *const tool_keys[] = { "type", "tool", NULL };
	const char *type;
	const json_t *value;
	struct jpath at;
	int rc;

	if (!json_is_object(action))
		return fail(ps, path, "action must be an object");
	rc = get_string(ps, action, path, "type", &type);
	if (rc)
		return rc;
	if (strcmp(type, "exec") == 0)
		return parse_exec_action(ps, action, path);
	if (strcmp(type, "tool_call") != 0) {
		at = at_key(path, "type");
		return fail(ps, &at, "type \"%s\" is unknown; use "
			    "\"tool_call\" or \"exec\"", type);
	}

	rc = check_keys(ps, action, path, tool_keys);
	value = json_object_get(action, "tool");
	at = at_key(path, "tool");
	if (!value)
		return fail(ps, path, "missing required key \"tool\" (a glob "
			    "such as \"stripe.*\")");
	return check_glob(ps, value, &at) ? -EINVAL : rc;
}

static const char *const condition_ops[] = {
	"==", "!=", "<", "<=", ">", ">=", "in", "not_in", "glob", "prefix",
	NULL,
};

static int check_op_value(struct parser *ps, const char *op,
			  const json_t *value, const struct jpath *path)
{
	if (strcmp(op, "in") == 0 || strcmp(op, "not_in") == 0) {
		if (!json_is_array(value))
			return fail(ps, path, "op \"%s\" needs an array value",
				    op);
	} else if (strcmp(op, "glob") == 0) {
		return check_glob(ps, value, path);
	} else if (strcmp(op, "prefix") == 0) {
		if (!json_is_string(value))
			return fail(ps, path, "op \"prefix\" needs a string "
				    "value");
	} else if (op[0] == '<' || op[0] == '>') {
		if (!json_is_number(value))
			return fail(ps, path, "op \"%s\" needs a number value",
				    op);
	}
	return 0;
}

static int parse_condition(struct parser *ps, const json_t *cond,
			   const struct jpath *path)
{
	static const char *const keys[] = { "path", "op", "value", NULL };
	const json_t *value;
	const char *op = NULL;
	struct jpath at;
	bool known = false;
	int errors = ps->errors;

	if (!json_is_object(cond))
		return fail(ps, path, "condition must be an object "
			    "{\"path\", \"op\", \"value\"}");
	(void)check_keys(ps, cond, path, keys);
	value = json_object_get(cond, "path");
	at = at_key(path, "path");
	if (!value)
		(void)fail(ps, path, "missing required key \"path\"");
	else
		(void)check_dotted(ps, value, &at);
	if (get_string(ps, cond, path, "op", &op) == 0) {
		for (size_t i = 0; condition_ops[i] && !known; i++)
			known = strcmp(op, condition_ops[i]) == 0;
		at = at_key(path, "op");
		if (!known)
			(void)fail(ps, &at, "op \"%s\" is unknown; use one of "
				   "== != < <= > >= in not_in glob prefix",
				   op);
	}
	value = json_object_get(cond, "value");
	at = at_key(path, "value");
	if (!value)
		(void)fail(ps, path, "missing required key \"value\"");
	else if (known)
		(void)check_op_value(ps, op, value, &at);
	return ps->errors == errors ? 0 : -EINVAL;
}

/* A grant entry is "<backend>/<name>", both single path components. */
static int check_secret_ref(struct parser *ps, const json_t *ref,
			    const struct jpath *path)
{
	const char *s;
	const char *slash;
	const char *name;

	if (!json_is_string(ref) || has_nul(ref))
		return fail(ps, path, "secret must be a string "
			    "\"<backend>/<name>\"");
	s = json_string_value(ref);
	slash = strchr(s, '/');
	name = slash ? slash + 1 : NULL;
	if (!slash || slash == s || !*name || strchr(name, '/') ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    slash - s >= 64)
		return fail(ps, path, "secret \"%s\" must look like "
			    "\"<backend>/<name>\": a backend name under 64 "
			    "bytes, then a name without '/' that is not "
			    "\".\" or \"..\"", s);
	return 0;
}

static int parse_grant(struct parser *ps, const json_t *grant,
		       const struct jpath *path)
{
	static const char *const keys[] = { "secrets", "ttl", "uses", NULL };
	const json_t *secrets;
	const json_t *ref;
	int64_t ttl = KH_POLICY_DEFAULT_TTL;
	int64_t uses = KH_POLICY_DEFAULT_USES;
	struct jpath at = at_key(path, "secrets");
	int errors = ps->errors;
	size_t i;
	int rc;

	if (!json_is_object(grant))
		return fail(ps, path, "grant must be an object");
	(void)check_keys(ps, grant, path, keys);
	secrets = get_array(ps, grant, path, "secrets", true, &rc);
	json_array_foreach(secrets, i, ref) {
		struct jpath el = at_index(&at, i);

		(void)check_secret_ref(ps, ref, &el);
	}

	rc = get_int(ps, grant, path, "ttl", false, 1, INT64_MAX, &ttl);
	at = at_key(path, "ttl");
	/* Without a valid max_ttl there is nothing to compare against. */
	if (!rc && json_object_get(grant, "ttl") && ps->max_ttl > 0 &&
	    ttl > ps->max_ttl)
		(void)fail(ps, &at, "ttl %lld is above max_ttl %lld; lower "
			   "ttl or raise max_ttl", (long long)ttl,
			   (long long)ps->max_ttl);
	(void)get_int(ps, grant, path, "uses", false, 1, UINT32_MAX, &uses);
	return ps->errors == errors ? 0 : -EINVAL;
}

static int parse_window(struct parser *ps, const json_t *limit,
			const struct jpath *path)
{
	int64_t per = 0;
	int rc = get_int(ps, limit, path, "per", true, 1, INT64_MAX, &per);

	if (!rc && per > ps->max_window)
		ps->max_window = per;
	return rc;
}

static int parse_budget(struct parser *ps, const json_t *budget,
			const struct jpath *path)
{
	static const char *const keys[] = { "path", "max", "per", NULL };
	const json_t *value;
	struct jpath at;
	int errors = ps->errors;

	if (!json_is_object(budget))
		return fail(ps, path, "budget must be an object "
			    "{\"path\", \"max\", \"per\"}");
	(void)check_keys(ps, budget, path, keys);
	value = json_object_get(budget, "path");
	at = at_key(path, "path");
	if (!value)
		(void)fail(ps, path, "missing required key \"path\"");
	else
		(void)check_dotted(ps, value, &at);
	value = json_object_get(budget, "max");
	at = at_key(path, "max");
	if (!value)
		(void)fail(ps, path, "missing required key \"max\"");
	else if (!json_is_number(value) || json_number_value(value) < 0)
		(void)fail(ps, &at, "max must be a number >= 0");
	(void)parse_window(ps, budget, path);
	return ps->errors == errors ? 0 : -EINVAL;
}

static int parse_rate(struct parser *ps, const json_t *rate,
		      const struct jpath *path)
{
	static const char *const keys[] = { "count", "per", NULL };
	int64_t count = 0;
	int errors = ps->errors;

	if (!json_is_object(rate))
		return fail(ps, path, "rate must be an object "
			    "{\"count\", \"per\"}");
	(void)check_keys(ps, rate, path, keys);
	(void)get_int(ps, rate, path, "count", true, 1, INT64_MAX, &count);
	(void)parse_window(ps, rate, path);
	return ps->errors == errors ? 0 : -EINVAL;
}

static int parse_limits(struct parser *ps, const json_t *limits,
			const struct jpath *path)
{
	static const char *const keys[] = { "rate", "budget", NULL };
	const json_t *rate = json_object_get(limits, "rate");
	const json_t *budget = json_object_get(limits, "budget");
	struct jpath rate_path = at_key(path, "rate");
	struct jpath budget_path = at_key(path, "budget");
	int errors = ps->errors;

	if (!json_is_object(limits))
		return fail(ps, path, "limits must be an object");
	(void)check_keys(ps, limits, path, keys);
	if (!rate && !budget)
		return fail(ps, path, "limits sets neither rate nor budget; "
			    "remove it or add one");
	if (rate)
		(void)parse_rate(ps, rate, &rate_path);
	if (budget)
		(void)parse_budget(ps, budget, &budget_path);
	return ps->errors == errors ? 0 : -EINVAL;
}

static int check_rule_id(struct parser *ps, const json_t *rules,
			 size_t index, const char *id,
			 const struct jpath *path)
{
	struct jpath at = at_key(path, "id");
	size_t len = strlen(id);

	if (len > RULE_ID_MAX ||
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		       "0123456789._-") != len)
		return fail(ps, &at, "id \"%s\" must be 1 to %d characters "
			    "from A-Z a-z 0-9 . _ -", id, RULE_ID_MAX);
	for (size_t i = 0; i < index; i++) {
		const json_t *other = json_object_get(json_array_get(rules, i),
						      "id");

		/* An earlier rule may lack a valid id in a collecting parse. */
		if (json_is_string(other) &&
		    strcmp(json_string_value(other), id) == 0)
			return fail(ps, &at, "duplicate rule id \"%s\" (also "
				    "used by $.rules[%zu]); rule ids must be "
				    "unique", id, i);
	}
	return 0;
}

enum rule_effect { EFFECT_DENY, EFFECT_PERMIT, EFFECT_UNKNOWN };

/*
 * Checks the parts of a rule after id and effect. Each part is checked
 * on its own, so one bad part does not hide errors in the others. With
 * an unknown effect, grant and limits are checked when present but
 * neither required nor rejected.
 */
static void parse_rule_parts(struct parser *ps, const json_t *rule,
			     const struct jpath *path, enum rule_effect effect)
{
	const json_t *value;
	struct jpath at;
	int rc;

	value = json_object_get(rule, "agents");
	at = at_key(path, "agents");
	if (value)
		(void)parse_agents(ps, value, &at);

	value = json_object_get(rule, "action");
	at = at_key(path, "action");
	if (!value)
		(void)fail(ps, path, "missing required key \"action\"");
	else
		(void)parse_action(ps, value, &at);

	value = get_array(ps, rule, path, "when", false, &rc);
	at = at_key(path, "when");
	for (size_t i = 0; i < json_array_size(value); i++) {
		struct jpath el = at_index(&at, i);

		(void)parse_condition(ps, json_array_get(value, i), &el);
	}

	value = json_object_get(rule, "grant");
	at = at_key(path, "grant");
	if (effect == EFFECT_PERMIT && !value)
		(void)fail(ps, path, "a permit rule needs a grant "
			   "{\"secrets\": [...]}");
	else if (effect == EFFECT_DENY && value)
		(void)fail(ps, &at, "a deny rule grants nothing; remove "
			   "grant");
	else if (value)
		(void)parse_grant(ps, value, &at);

	value = json_object_get(rule, "limits");
	at = at_key(path, "limits");
	if (effect == EFFECT_DENY && value)
		(void)fail(ps, &at, "limits count permits, so they apply only "
			   "to permit rules; remove limits");
	else if (value)
		(void)parse_limits(ps, value, &at);
}

static void parse_rule(struct parser *ps, const json_t *rules, size_t index,
		       const struct jpath *rules_path)
{
	static const char *const keys[] = {
		"id", "effect", "agents", "action", "when", "grant", "limits",
		NULL,
	};
	const json_t *rule = json_array_get(rules, index);
	struct jpath path = at_index(rules_path, index);
	struct jpath at = at_key(&path, "effect");
	enum rule_effect effect = EFFECT_UNKNOWN;
	const char *id;
	const char *text;

	if (!json_is_object(rule)) {
		(void)fail(ps, &path, "rule must be an object");
		return;
	}
	(void)check_keys(ps, rule, &path, keys);
	if (get_string(ps, rule, &path, "id", &id) == 0)
		(void)check_rule_id(ps, rules, index, id, &path);
	if (get_string(ps, rule, &path, "effect", &text) == 0) {
		if (strcmp(text, "permit") == 0)
			effect = EFFECT_PERMIT;
		else if (strcmp(text, "deny") == 0)
			effect = EFFECT_DENY;
		else
			(void)fail(ps, &at, "effect \"%s\" is unknown; use "
				   "\"permit\" or \"deny\"", text);
	}
	parse_rule_parts(ps, rule, &path, effect);
}

static int parse_document(struct parser *ps, const json_t *doc,
			  struct kh_policy *policy)
{
	static const char *const keys[] = {
		"tenant", "env", "max_ttl", "rules", NULL,
	};
	const struct jpath root = { 0 };
	struct jpath at = at_key(&root, "rules");
	const json_t *rules;
	int64_t max_ttl = 0;
	int rc;

	if (!json_is_object(doc))
		return fail(ps, &root, "a policy must be a JSON object with "
			    "tenant, env, max_ttl and rules");
	(void)check_keys(ps, doc, &root, keys);
	(void)get_string(ps, doc, &root, "tenant", &policy->tenant);
	(void)get_string(ps, doc, &root, "env", &policy->env);
	if (get_int(ps, doc, &root, "max_ttl", true, 1, INT64_MAX,
		    &max_ttl) == 0)
		ps->max_ttl = max_ttl;
	rules = get_array(ps, doc, &root, "rules", true, &rc);
	for (size_t i = 0; i < json_array_size(rules) && !stopped(ps); i++)
		parse_rule(ps, rules, i, &at);
	policy->max_window = ps->max_window;
	return ps->errors ? -EINVAL : 0;
}

/*
 * Parses text into *out. With ps->report set, schema errors are reported
 * and counted in ps->errors; a syntax error counts as one error.
 */
static int parse_policy(struct parser *ps, struct kh_policy **out)
{
	struct kh_policy *policy = NULL;
	struct kh_err local = { "" };
	struct kh_err *err = ps->report ? &local : ps->err;
	int rc;

	*out = NULL;
	policy = calloc(1, sizeof(*policy));
	if (!policy) {
		kh_err_set(err, "%s: out of memory", ps->origin);
		rc = -ENOMEM;
		goto out;
	}
	rc = kh_json_parse(ps->text, ps->len, &policy->doc, err);
	if (rc == -EINVAL) {
		ps->errors++;
		kh_err_prefix(err, "%s", ps->origin);
	}
	if (rc)
		goto out;
	rc = parse_document(ps, policy->doc, policy);
	if (rc)
		goto out;
	rc = kh_hash(policy->doc, policy->hash, err);
	if (rc) {
		kh_err_prefix(err, "%s: hashing the policy", ps->origin);
		goto out;
	}
	*out = policy;
	policy = NULL;
out:
	if (ps->report && local.msg[0])
		ps->report(local.msg, ps->ctx);
	kh_policy_free(policy);
	return rc;
}

int kh_policy_parse(const char *text, size_t len, const char *origin,
		    struct kh_policy **out, struct kh_err *err)
{
	struct parser ps = {
		.text = text,
		.len = len,
		.origin = origin ? origin : "policy",
		.err = err,
	};

	return parse_policy(&ps, out);
}

static int read_text(const char *path, char **text, size_t *len,
		     struct kh_err *err)
{
	return kh_textfile_read(path, POLICY_MAX_BYTES, "policy", text, len,
				err);
}

static void ignore_report(const char *message, void *ctx)
{
	(void)message;
	(void)ctx;
}

int kh_policy_check(const char *text, size_t len, const char *origin,
		    kh_err_report_fn report, void *ctx)
{
	struct parser ps = {
		.text = text,
		.len = len,
		.origin = origin ? origin : "policy",
		.report = report ? report : ignore_report,
		.ctx = ctx,
	};
	struct kh_policy *policy = NULL;
	int rc = parse_policy(&ps, &policy);

	kh_policy_free(policy);
	if (rc == -EINVAL)
		return ps.errors > 0 ? ps.errors : 1;
	return rc;
}

int kh_policy_check_file(const char *path, kh_err_report_fn report,
			 void *ctx)
{
	struct kh_err err = { "" };
	char *text = NULL;
	size_t len = 0;
	int rc = read_text(path, &text, &len, &err);

	if (rc == 0)
		rc = kh_policy_check(text, len, path, report, ctx);
	else if (report)
		report(err.msg, ctx);
	free(text);
	return rc;
}

int kh_policy_load(const char *path, struct kh_policy **out,
		   struct kh_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	rc = read_text(path, &text, &len, err);
	if (rc == 0)
		rc = kh_policy_parse(text, len, path, out, err);
	free(text);
	return rc;
}

void kh_policy_free(struct kh_policy *policy)
{
	if (!policy)
		return;
	json_decref(policy->doc);
	free(policy);
}

const char *kh_policy_hash(const struct kh_policy *policy)
{
	return policy->hash;
}

const char *kh_policy_tenant(const struct kh_policy *policy)
{
	return policy->tenant;
}

const char *kh_policy_env(const struct kh_policy *policy)
{
	return policy->env;
}

const json_t *kh_policy_json(const struct kh_policy *policy)
{
	return policy->doc;
}

int64_t kh_policy_max_window(const struct kh_policy *policy)
{
	return policy->max_window;
}
