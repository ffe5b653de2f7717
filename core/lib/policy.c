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

/* A JSON path as segments, so that keys containing '.' stay exact. */
struct jpath {
	size_t depth;
	struct {
		const char *key; /* NULL for an array index */
		size_t index;
	} seg[PATH_DEPTH];
};

struct parser {
	const char *text;
	size_t len;
	const char *origin;
	struct kh_err *err;
	int64_t max_ttl;
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

static void path_format(const struct jpath *path, char *buf, size_t size)
{
	size_t used = 0;
	int n = snprintf(buf, size, "$");

	for (size_t i = 0; i < path->depth && n >= 0; i++) {
		used += (size_t)n;
		if (used >= size)
			return;
		if (path->seg[i].key)
			n = snprintf(buf + used, size - used, ".%s",
				     path->seg[i].key);
		else
			n = snprintf(buf + used, size - used, "[%zu]",
				     path->seg[i].index);
	}
}

/*
 * Position helpers for error lines. jansson keeps no positions per
 * value, so the text (already accepted by kh_json_parse) is scanned
 * again, tracking only strings and nesting, to find where the value at
 * a path starts.
 */
static void skip_ws(const char *text, size_t len, size_t *pos)
{
	while (*pos < len && text[*pos] && strchr(" \t\r\n", text[*pos]))
		(*pos)++;
}

static void skip_string(const char *text, size_t len, size_t *pos)
{
	for ((*pos)++; *pos < len && text[*pos] != '"'; (*pos)++)
		if (text[*pos] == '\\')
			(*pos)++;
	(*pos)++;
}

static void skip_value(const char *text, size_t len, size_t *pos)
{
	int depth = 0;

	if (*pos < len && text[*pos] == '"') {
		skip_string(text, len, pos);
		return;
	}
	while (*pos < len) {
		char c = text[*pos];

		if (c == '"') {
			skip_string(text, len, pos);
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return;
			if (--depth == 0) {
				(*pos)++;
				return;
			}
		} else if (depth == 0 && c && strchr(", \t\r\n", c)) {
			return;
		}
		(*pos)++;
	}
}

/* Compares the string token text[start..end) (with quotes) to key. */
static bool token_is_key(const char *text, size_t start, size_t end,
			 const char *key)
{
	json_t *decoded;
	bool same;

	if (!memchr(text + start, '\\', end - start))
		return end - start - 2 == strlen(key) &&
		       memcmp(text + start + 1, key, end - start - 2) == 0;
	/* Escaped keys are decoded by jansson rather than by hand. */
	decoded = json_loadb(text + start, end - start, JSON_DECODE_ANY, NULL);
	same = json_is_string(decoded) &&
	       strcmp(json_string_value(decoded), key) == 0;
	json_decref(decoded);
	return same;
}

static bool find_member(const char *text, size_t len, size_t *pos,
			const char *key)
{
	if (*pos >= len || text[*pos] != '{')
		return false;
	(*pos)++;
	for (;;) {
		size_t start;
		bool hit;

		skip_ws(text, len, pos);
		if (*pos >= len || text[*pos] != '"')
			return false;
		start = *pos;
		skip_string(text, len, pos);
		hit = *pos <= len && token_is_key(text, start, *pos, key);
		skip_ws(text, len, pos);
		if (*pos >= len || text[*pos] != ':')
			return false;
		(*pos)++;
		skip_ws(text, len, pos);
		if (hit)
			return true;
		skip_value(text, len, pos);
		skip_ws(text, len, pos);
		if (*pos >= len || text[*pos] != ',')
			return false;
		(*pos)++;
	}
}

static bool find_element(const char *text, size_t len, size_t *pos,
			 size_t index)
{
	if (*pos >= len || text[*pos] != '[')
		return false;
	(*pos)++;
	for (size_t i = 0; i < index; i++) {
		skip_ws(text, len, pos);
		skip_value(text, len, pos);
		skip_ws(text, len, pos);
		if (*pos >= len || text[*pos] != ',')
			return false;
		(*pos)++;
	}
	skip_ws(text, len, pos);
	return *pos < len && text[*pos] != ']';
}

/* Returns the 1-based line where the value at path starts, 0 if unknown. */
static unsigned line_of(const char *text, size_t len, const struct jpath *path)
{
	size_t pos = 0;
	unsigned line = 1;

	if (!text)
		return 0;
	skip_ws(text, len, &pos);
	for (size_t i = 0; i < path->depth; i++) {
		bool found = path->seg[i].key ?
			find_member(text, len, &pos, path->seg[i].key) :
			find_element(text, len, &pos, path->seg[i].index);

		if (!found)
			return 0;
	}
	for (size_t i = 0; i < pos && i < len; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

__attribute__((format(printf, 3, 4)))
static int fail(const struct parser *ps, const struct jpath *path,
		const char *fmt, ...)
{
	char what[384];
	char where[128];
	unsigned line = line_of(ps->text, ps->len, path);
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	path_format(path, where, sizeof(where));
	if (line)
		kh_err_set(ps->err, "%s:%u: %s: %s", ps->origin, line, where,
			   what);
	else
		kh_err_set(ps->err, "%s: %s: %s", ps->origin, where, what);
	return -EINVAL;
}

/* Rejects members of obj not listed in allowed (NULL-terminated). */
static int check_keys(const struct parser *ps, const json_t *obj,
		      const struct jpath *path, const char *const allowed[])
{
	const char *key;
	const json_t *value;

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
		return fail(ps, &at, "unknown key \"%s\"; allowed keys: %s",
			    key, list);
	}
	return 0;
}

static bool has_nul(const json_t *string)
{
	return strlen(json_string_value(string)) != json_string_length(string);
}

/* Fetches a required non-empty string member without NUL bytes. */
static int get_string(const struct parser *ps, const json_t *obj,
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
static int get_int(const struct parser *ps, const json_t *obj,
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

static const json_t *get_array(const struct parser *ps, const json_t *obj,
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

static int check_glob(const struct parser *ps, const json_t *value,
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
static int check_dotted(const struct parser *ps, const json_t *value,
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

static int check_names(const struct parser *ps, const json_t *names,
		       const struct jpath *path, bool group)
{
	const char *kind = group ? "group" : "user";
	size_t i;
	const json_t *name;

	json_array_foreach(names, i, name) {
		struct jpath at = at_index(path, i);
		int found;

		if (!json_is_string(name) || json_string_length(name) == 0 ||
		    has_nul(name))
			return fail(ps, &at, "%s name must be a non-empty "
				    "string", kind);
		found = nss_name_exists(json_string_value(name), group);
		if (found < 0)
			return fail(ps, &at, "looking up %s \"%s\" failed: %s",
				    kind, json_string_value(name),
				    strerror(-found));
		if (!found)
			return fail(ps, &at, "unknown %s \"%s\"; check the "
				    "spelling or create the %s first", kind,
				    json_string_value(name), kind);
	}
	return 0;
}

static int parse_agents(const struct parser *ps, const json_t *agents,
			const struct jpath *path)
{
	static const char *const keys[] = { "users", "groups", "uids", NULL };
	const json_t *users = NULL;
	const json_t *groups = NULL;
	const json_t *uids = NULL;
	struct jpath at;
	size_t i;
	const json_t *uid;
	int rc;

	if (!json_is_object(agents))
		return fail(ps, path, "agents must be an object");
	rc = check_keys(ps, agents, path, keys);
	if (rc)
		return rc;
	users = get_array(ps, agents, path, "users", false, &rc);
	if (!rc)
		groups = get_array(ps, agents, path, "groups", false, &rc);
	if (!rc)
		uids = get_array(ps, agents, path, "uids", false, &rc);
	if (rc)
		return rc;

	at = at_key(path, "users");
	rc = users ? check_names(ps, users, &at, false) : 0;
	if (rc)
		return rc;
	at = at_key(path, "groups");
	rc = groups ? check_names(ps, groups, &at, true) : 0;
	if (rc)
		return rc;
	at = at_key(path, "uids");
	json_array_foreach(uids, i, uid) {
		struct jpath el = at_index(&at, i);

		/* (uid_t)-1 means "no change" to the kernel, never a user. */
		if (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
		    json_integer_value(uid) >= (json_int_t)UINT32_MAX)
			return fail(ps, &el, "uid must be an integer from 0 "
				    "to 4294967294");
	}
	if (json_array_size(users) + json_array_size(groups) +
	    json_array_size(uids) == 0)
		return fail(ps, path, "agents lists no users, groups or uids, "
			    "so the rule could never match; remove agents "
			    "to match every agent");
	return 0;
}

static int parse_argv_globs(const struct parser *ps, const json_t *argv,
			    const struct jpath *path)
{
	size_t i;
	const json_t *glob;

	if (!json_is_array(argv))
		return fail(ps, path, "argv must be an array of globs");
	if (json_array_size(argv) == 0)
		return fail(ps, path, "argv lists no globs, but every command "
			    "has argv[0]; use [\"**\"] or omit argv to match "
			    "any arguments");
	json_array_foreach(argv, i, glob) {
		struct jpath at = at_index(path, i);
		int rc = check_glob(ps, glob, &at);

		if (rc)
			return rc;
		/* Elsewhere "**" would match exactly one argument. */
		if (strcmp(json_string_value(glob), "**") == 0 &&
		    i + 1 != json_array_size(argv))
			return fail(ps, &at, "\"**\" matches the remaining "
				    "arguments, so it may only be the last "
				    "glob; use \"*\" for a single argument");
	}
	return 0;
}

static int parse_action(const struct parser *ps, const json_t *action,
			const struct jpath *path)
{
	static const char *const tool_keys[] = { "type", "tool", NULL };
	static const char *const exec_keys[] = { "type", "exe", "argv", NULL };
	const char *type;
	const json_t *value;
	struct jpath at;
	int rc;

	if (!json_is_object(action))
		return fail(ps, path, "action must be an object");
	rc = get_string(ps, action, path, "type", &type);
	if (rc)
		return rc;

	if (strcmp(type, "tool_call") == 0) {
		rc = check_keys(ps, action, path, tool_keys);
		if (rc)
			return rc;
		value = json_object_get(action, "tool");
		if (!value)
			return fail(ps, path, "missing required key \"tool\" "
				    "(a glob such as \"stripe.*\")");
		at = at_key(path, "tool");
		return check_glob(ps, value, &at);
	}
	if (strcmp(type, "exec") != 0) {
		at = at_key(path, "type");
		return fail(ps, &at, "type \"%s\" is unknown; use "
			    "\"tool_call\" or \"exec\"", type);
	}

	rc = check_keys(ps, action, path, exec_keys);
	if (rc)
		return rc;
	value = json_object_get(action, "exe");
	if (!value)
		return fail(ps, path, "missing required key \"exe\" (an "
			    "absolute path glob such as \"/usr/bin/curl\")");
	at = at_key(path, "exe");
	rc = check_glob(ps, value, &at);
	if (rc)
		return rc;
	if (json_string_value(value)[0] != '/')
		return fail(ps, &at, "exe \"%s\" must be an absolute path "
			    "glob, because exec actions carry the resolved "
			    "path",
			    json_string_value(value));
	value = json_object_get(action, "argv");
	at = at_key(path, "argv");
	return value ? parse_argv_globs(ps, value, &at) : 0;
}

static const char *const condition_ops[] = {
	"==", "!=", "<", "<=", ">", ">=", "in", "not_in", "glob", "prefix",
	NULL,
};

static int check_op_value(const struct parser *ps, const char *op,
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

static int parse_condition(const struct parser *ps, const json_t *cond,
			   const struct jpath *path)
{
	static const char *const keys[] = { "path", "op", "value", NULL };
	const json_t *value;
	const char *op;
	struct jpath at;
	bool known = false;
	int rc;

	if (!json_is_object(cond))
		return fail(ps, path, "condition must be an object "
			    "{\"path\", \"op\", \"value\"}");
	rc = check_keys(ps, cond, path, keys);
	if (rc)
		return rc;
	value = json_object_get(cond, "path");
	if (!value)
		return fail(ps, path, "missing required key \"path\"");
	at = at_key(path, "path");
	rc = check_dotted(ps, value, &at);
	if (!rc)
		rc = get_string(ps, cond, path, "op", &op);
	if (rc)
		return rc;
	for (size_t i = 0; condition_ops[i] && !known; i++)
		known = strcmp(op, condition_ops[i]) == 0;
	at = at_key(path, "op");
	if (!known)
		return fail(ps, &at, "op \"%s\" is unknown; use one of == != "
			    "< <= > >= in not_in glob prefix", op);
	value = json_object_get(cond, "value");
	if (!value)
		return fail(ps, path, "missing required key \"value\"");
	at = at_key(path, "value");
	return check_op_value(ps, op, value, &at);
}

/* A grant entry is "<backend>/<name>", both single path components. */
static int check_secret_ref(const struct parser *ps, const json_t *ref,
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
	size_t i;
	int rc;

	if (!json_is_object(grant))
		return fail(ps, path, "grant must be an object");
	rc = check_keys(ps, grant, path, keys);
	if (rc)
		return rc;
	secrets = get_array(ps, grant, path, "secrets", true, &rc);
	if (rc)
		return rc;
	json_array_foreach(secrets, i, ref) {
		struct jpath secrets_path = at_key(path, "secrets");
		struct jpath at = at_index(&secrets_path, i);

		rc = check_secret_ref(ps, ref, &at);
		if (rc)
			return rc;
	}

	rc = get_int(ps, grant, path, "ttl", false, 1, INT64_MAX, &ttl);
	if (rc)
		return rc;
	if (json_object_get(grant, "ttl") && ttl > ps->max_ttl) {
		struct jpath at = at_key(path, "ttl");

		return fail(ps, &at, "ttl %lld is above max_ttl %lld; lower "
			    "ttl or raise max_ttl", (long long)ttl,
			    (long long)ps->max_ttl);
	}
	return get_int(ps, grant, path, "uses", false, 1, UINT32_MAX, &uses);
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
	int rc;

	if (!json_is_object(budget))
		return fail(ps, path, "budget must be an object "
			    "{\"path\", \"max\", \"per\"}");
	rc = check_keys(ps, budget, path, keys);
	if (rc)
		return rc;
	value = json_object_get(budget, "path");
	if (!value)
		return fail(ps, path, "missing required key \"path\"");
	at = at_key(path, "path");
	rc = check_dotted(ps, value, &at);
	if (rc)
		return rc;
	value = json_object_get(budget, "max");
	at = at_key(path, "max");
	if (!value)
		return fail(ps, path, "missing required key \"max\"");
	if (!json_is_number(value) || json_number_value(value) < 0)
		return fail(ps, &at, "max must be a number >= 0");
	return parse_window(ps, budget, path);
}

static int parse_limits(struct parser *ps, const json_t *limits,
			const struct jpath *path)
{
	static const char *const keys[] = { "rate", "budget", NULL };
	static const char *const rate_keys[] = { "count", "per", NULL };
	const json_t *rate = json_object_get(limits, "rate");
	const json_t *budget = json_object_get(limits, "budget");
	struct jpath at;
	int64_t count = 0;
	int rc;

	if (!json_is_object(limits))
		return fail(ps, path, "limits must be an object");
	rc = check_keys(ps, limits, path, keys);
	if (rc)
		return rc;
	if (!rate && !budget)
		return fail(ps, path, "limits sets neither rate nor budget; "
			    "remove it or add one");
	if (rate) {
		at = at_key(path, "rate");
		if (!json_is_object(rate))
			return fail(ps, &at, "rate must be an object "
				    "{\"count\", \"per\"}");
		rc = check_keys(ps, rate, &at, rate_keys);
		if (!rc)
			rc = get_int(ps, rate, &at, "count", true, 1,
				     INT64_MAX, &count);
		if (!rc)
			rc = parse_window(ps, rate, &at);
		if (rc)
			return rc;
	}
	at = at_key(path, "budget");
	return budget ? parse_budget(ps, budget, &at) : 0;
}

static int check_rule_id(const struct parser *ps, const json_t *rules,
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
		const json_t *other = json_array_get(rules, i);

		if (strcmp(json_string_value(json_object_get(other, "id")),
			   id) == 0)
			return fail(ps, &at, "duplicate rule id \"%s\" (also "
				    "used by $.rules[%zu]); rule ids must be "
				    "unique", id, i);
	}
	return 0;
}

static int parse_rule_parts(struct parser *ps, const json_t *rule,
			    const struct jpath *path, bool permit)
{
	const json_t *value;
	struct jpath at;
	int rc = 0;

	value = json_object_get(rule, "agents");
	at = at_key(path, "agents");
	if (value)
		rc = parse_agents(ps, value, &at);
	if (rc)
		return rc;

	value = json_object_get(rule, "action");
	at = at_key(path, "action");
	if (!value)
		return fail(ps, path, "missing required key \"action\"");
	rc = parse_action(ps, value, &at);
	if (rc)
		return rc;

	value = get_array(ps, rule, path, "when", false, &rc);
	at = at_key(path, "when");
	for (size_t i = 0; !rc && i < json_array_size(value); i++) {
		struct jpath el = at_index(&at, i);

		rc = parse_condition(ps, json_array_get(value, i), &el);
	}
	if (rc)
		return rc;

	value = json_object_get(rule, "grant");
	at = at_key(path, "grant");
	if (permit && !value)
		return fail(ps, path, "a permit rule needs a grant "
			    "{\"secrets\": [...]}");
	if (!permit && value)
		return fail(ps, &at, "a deny rule grants nothing; remove "
			    "grant");
	rc = value ? parse_grant(ps, value, &at) : 0;
	if (rc)
		return rc;

	value = json_object_get(rule, "limits");
	at = at_key(path, "limits");
	if (!permit && value)
		return fail(ps, &at, "limits count permits, so they apply "
			    "only to permit rules; remove limits");
	return value ? parse_limits(ps, value, &at) : 0;
}

static int parse_rule(struct parser *ps, const json_t *rules, size_t index,
		      const struct jpath *rules_path)
{
	static const char *const keys[] = {
		"id", "effect", "agents", "action", "when", "grant", "limits",
		NULL,
	};
	const json_t *rule = json_array_get(rules, index);
	struct jpath path = at_index(rules_path, index);
	struct jpath at;
	const char *id;
	const char *effect;
	int rc;

	if (!json_is_object(rule))
		return fail(ps, &path, "rule must be an object");
	rc = check_keys(ps, rule, &path, keys);
	if (!rc)
		rc = get_string(ps, rule, &path, "id", &id);
	if (!rc)
		rc = check_rule_id(ps, rules, index, id, &path);
	if (!rc)
		rc = get_string(ps, rule, &path, "effect", &effect);
	if (rc)
		return rc;
	if (strcmp(effect, "permit") != 0 && strcmp(effect, "deny") != 0) {
		at = at_key(&path, "effect");
		return fail(ps, &at, "effect \"%s\" is unknown; use \"permit\" "
			    "or \"deny\"", effect);
	}
	return parse_rule_parts(ps, rule, &path,
				strcmp(effect, "permit") == 0);
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
	int rc;

	if (!json_is_object(doc))
		return fail(ps, &root, "a policy must be a JSON object with "
			    "tenant, env, max_ttl and rules");
	rc = check_keys(ps, doc, &root, keys);
	if (!rc)
		rc = get_string(ps, doc, &root, "tenant", &policy->tenant);
	if (!rc)
		rc = get_string(ps, doc, &root, "env", &policy->env);
	if (!rc)
		rc = get_int(ps, doc, &root, "max_ttl", true, 1, INT64_MAX,
			     &ps->max_ttl);
	if (rc)
		return rc;
	rules = get_array(ps, doc, &root, "rules", true, &rc);
	for (size_t i = 0; !rc && i < json_array_size(rules); i++)
		rc = parse_rule(ps, rules, i, &at);
	policy->max_window = ps->max_window;
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
	struct kh_policy *policy = NULL;
	int rc;

	*out = NULL;
	policy = calloc(1, sizeof(*policy));
	if (!policy) {
		kh_err_set(err, "%s: out of memory", ps.origin);
		return -ENOMEM;
	}
	rc = kh_json_parse(text, len, &policy->doc, err);
	if (rc) {
		kh_err_prefix(err, "%s", ps.origin);
		goto out;
	}
	rc = parse_document(&ps, policy->doc, policy);
	if (rc)
		goto out;
	rc = kh_hash(policy->doc, policy->hash, err);
	if (rc) {
		kh_err_prefix(err, "%s: hashing the policy", ps.origin);
		goto out;
	}
	*out = policy;
	policy = NULL;
out:
	kh_policy_free(policy);
	return rc;
}

static int read_text(const char *path, char **text, size_t *len,
		     struct kh_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t used = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		kh_err_set(err, "%s: cannot open policy: %s", path,
			   strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > POLICY_MAX_BYTES) {
		rc = -EINVAL;
		kh_err_set(err, "%s: policy must be a regular file of at most "
			   "%d bytes", path, POLICY_MAX_BYTES);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		kh_err_set(err, "%s: out of memory", path);
		goto out;
	}
	while (used < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + used, (size_t)st.st_size - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			kh_err_set(err, "%s: reading policy failed: %s", path,
				   n < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		used += (size_t)n;
	}
	buf[used] = '\0';
	*text = buf;
	*len = used;
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		(void)close(fd);
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
