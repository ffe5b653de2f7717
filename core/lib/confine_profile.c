/*
 * Confinement profiles: the built-in "agent" and "strict" profiles and
 * the strict parser for CONFDIR/NAME.json. Built-in profiles are JSON
 * text run through the same parser as files, so a built-in and its copy
 * under packaging/confine.d load to the same profile.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyhole/canon.h"
#include "keyhole/config.h"
#include "confine_internal.h"
#include "json_path.h"
#include "textfile.h"

/* Largest profile file read, in bytes. The built-ins are about 1.5 KiB. */
#define PROFILE_MAX_BYTES (256 * 1024)

/* Deepest chain of "base" references. A built-in names at most one. */
#define BASE_DEPTH_MAX 4

/* Deepest JSON path a profile member has: $.filesystem.read[3]. */
#define STEPS_MAX 4

/* Maximum length of a value quoted in an error message, in bytes. */

const char *const confine_fs_keys[CONFINE_FS_CLASS_COUNT] = {
	"read_exec", "read", "read_write", "exclude",
};

static const char agent_text[] =
	"{\n"
	"  \"description\": \"Default for agent accounts: no debugging, "
	"mounts, namespaces, io_uring or kernel keyring; files limited to "
	"the system, the home directory minus credential files, and the "
	"permits and secrets of the account.\",\n"
	"  \"dumpable\": true,\n"
	"  \"landlock_missing\": \"continue\",\n"
	"  \"seccomp\": {\"deny\": []},\n"
	"  \"network\": {\"unix_only\": false},\n"
	"  \"filesystem\": {\n"
	"    \"read_exec\": [\"/usr\", \"/bin\", \"/sbin\", \"/lib\", "
	"\"/lib64\", \"/lib32\"],\n"
	"    \"read\": [\"/etc\", \"/proc\", \"/sys\", \"/dev/urandom\", "
	"\"/dev/random\", \"{permits}\", \"{secrets}\"],\n"
	"    \"read_write\": [\"~\", \"/tmp\", \"/var/tmp\", \"/dev/shm\", "
	"\"/dev/null\", \"/dev/zero\", \"/dev/full\", \"/dev/tty\", "
	"\"/dev/pts\", \"/dev/ptmx\", \"/run/utmp\", \"/var/log/wtmp\", "
	"\"/var/log/lastlog\", \"/var/log/btmp\"],\n"
	"    \"exclude\": [\"/etc/shadow\", \"/etc/shadow-\", "
	"\"/etc/gshadow\", \"/etc/gshadow-\", \"/etc/keyhole\", "
	"\"/etc/ssh/ssh_host_*_key\", \"/etc/ssl/private\", "
	"\"/etc/sudoers\", \"/etc/sudoers.d\", \"/etc/security/opasswd\", "
	"\"~/.aws\", \"~/.config/gcloud\", \"~/.azure\", \"~/.ssh/id_*\", "
	"\"~/.kube\", \"~/.docker/config.json\", \"~/.netrc\", "
	"\"~/.git-credentials\"]\n"
	"  }\n"
	"}\n";

static const char strict_text[] =
	"{\n"
	"  \"base\": \"agent\",\n"
	"  \"description\": \"agent, plus: only AF_UNIX sockets, no core "
	"dumps or ptrace by the same uid, and no start without "
	"Landlock.\",\n"
	"  \"dumpable\": false,\n"
	"  \"landlock_missing\": \"refuse\",\n"
	"  \"network\": {\"unix_only\": true}\n"
	"}\n";

struct builtin {
	const char *name;
	const char *text;
};

static const struct builtin builtins[] = {
	{ "agent", agent_text },
	{ "strict", strict_text },
};

#define BUILTIN_COUNT (sizeof(builtins) / sizeof(builtins[0]))

const char *const kh_confine_builtin_names[] = { "agent", "strict", NULL };

/* Parser state: the text, for line numbers, and the current JSON path. */
struct parser {
	const char *origin; /* file path, or "built-in profile NAME" */
	const char *text;
	size_t len;
	const struct kh_confine_vars *vars;
	struct kh_json_step steps[STEPS_MAX];
	size_t depth;
	int base_depth;
	struct kh_err *err;
};

int confine_list_add(struct confine_list *list, const char *item)
{
	char *copy;

	if (confine_list_has(list, item))
		return 0;
	if (list->count == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 16;
		char **grown = realloc(list->items, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		list->items = grown;
		list->cap = cap;
	}
	copy = strdup(item);
	if (!copy)
		return -ENOMEM;
	list->items[list->count++] = copy;
	return 0;
}

bool confine_list_has(const struct confine_list *list, const char *item)
{
	for (size_t i = 0; i < list->count; i++) {
		if (strcmp(list->items[i], item) == 0)
			return true;
	}
	return false;
}

void confine_list_free(struct confine_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	*list = (struct confine_list){ 0 };
}


/* Sets err to "<origin>:<line>: <JSON path>: <what>" and returns -EINVAL. */
__attribute__((format(printf, 2, 3)))
static int fail(struct parser *ps, const char *fmt, ...)
{
	char what[384];
	char where[256];
	unsigned line;
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	kh_json_path_format(ps->steps, ps->depth, where, sizeof(where));
	line = kh_json_path_line(ps->text, ps->len, ps->steps, ps->depth);
	if (line)
		kh_err_set(ps->err, "%s:%u: %s: %s", ps->origin, line, where,
			   what);
	else
		kh_err_set(ps->err, "%s: %s: %s", ps->origin, where, what);
	return -EINVAL;
}

static void enter_key(struct parser *ps, const char *key)
{
	if (ps->depth < STEPS_MAX)
		ps->steps[ps->depth++] = (struct kh_json_step){ key, 0 };
}

static void enter_index(struct parser *ps, size_t index)
{
	if (ps->depth < STEPS_MAX)
		ps->steps[ps->depth++] = (struct kh_json_step){ NULL, index };
}

static void leave(struct parser *ps)
{
	if (ps->depth > 0)
		ps->depth--;
}

/* Rejects a member of obj that is not in allowed (NULL-terminated). */
static int check_keys(struct parser *ps, const json_t *obj,
		      const char *const *allowed, const char *allowed_text)
{
	const char *key;
	json_t *value;
	size_t i;
	int rc;

	json_object_foreach((json_t *)obj, key, value) {
		for (i = 0; allowed[i] && strcmp(allowed[i], key) != 0; i++)
			;
		if (allowed[i])
			continue;
		enter_key(ps, key);
		rc = fail(ps, "unknown key; allowed keys: %s", allowed_text);
		leave(ps);
		return rc;
	}
	return 0;
}

static const char *find_builtin(const char *name)
{
	for (size_t i = 0; i < BUILTIN_COUNT; i++) {
		if (strcmp(builtins[i].name, name) == 0)
			return builtins[i].text;
	}
	return NULL;
}

static int parse_bool(struct parser *ps, const json_t *obj, const char *key,
		      bool *out)
{
	const json_t *value = json_object_get(obj, key);
	int rc = 0;

	if (!value)
		return 0;
	enter_key(ps, key);
	if (json_is_boolean(value))
		*out = json_is_true(value);
	else
		rc = fail(ps, "expected true or false, not %s",
			  kh_json_type_name(value));
	leave(ps);
	return rc;
}

/* Returns the string value, or NULL after reporting why it is not one. */
static const char *string_value(struct parser *ps, const json_t *value)
{
	const char *s = json_string_value(value);

	if (!s) {
		(void)fail(ps, "expected a string, not %s",
			   kh_json_type_name(value));
		return NULL;
	}
	if (s[0] == '\0' || strlen(s) != json_string_length(value)) {
		(void)fail(ps, "expected a non-empty string without NUL "
			   "characters");
		return NULL;
	}
	return s;
}

static int parse_description(struct parser *ps, const json_t *root,
			     struct kh_confine_profile *profile)
{
	const json_t *value = json_object_get(root, "description");
	const char *s;
	char *copy;

	if (!value)
		return 0;
	enter_key(ps, "description");
	s = string_value(ps, value);
	leave(ps);
	if (!s)
		return -EINVAL;
	copy = strdup(s);
	if (!copy) {
		kh_err_set(ps->err, "%s: out of memory", ps->origin);
		return -ENOMEM;
	}
	free(profile->description);
	profile->description = copy;
	return 0;
}

static int parse_landlock_missing(struct parser *ps, const json_t *root,
				  struct kh_confine_profile *profile)
{
	const json_t *value = json_object_get(root, "landlock_missing");
	const char *s = json_string_value(value);
	int rc = 0;

	if (!value)
		return 0;
	enter_key(ps, "landlock_missing");
	if (s && strcmp(s, "refuse") == 0)
		profile->landlock_missing = KH_LANDLOCK_REFUSE;
	else if (s && strcmp(s, "continue") == 0)
		profile->landlock_missing = KH_LANDLOCK_CONTINUE;
	else
		rc = fail(ps, "expected \"refuse\" (do not start without "
			  "Landlock) or \"continue\" (start with seccomp "
			  "only)");
	leave(ps);
	return rc;
}

/*
 * Runs fn on each element of the array at obj.key, with the element's
 * index on the path. An absent member is an empty list.
 */
static int each_element(struct parser *ps, const json_t *obj,
			const char *key, const char *expected,
			int (*fn)(struct parser *ps, const json_t *item,
				  void *ctx),
			void *ctx)
{
	const json_t *array = json_object_get(obj, key);
	const json_t *item;
	size_t i;
	int rc = 0;

	if (!array)
		return 0;
	enter_key(ps, key);
	if (!json_is_array(array)) {
		rc = fail(ps, "expected an array of %s, not %s", expected,
			  kh_json_type_name(array));
		leave(ps);
		return rc;
	}
	json_array_foreach(array, i, item) {
		enter_index(ps, i);
		rc = fn(ps, item, ctx);
		leave(ps);
		if (rc < 0)
			break;
	}
	leave(ps);
	return rc;
}

static int add_or_fail(struct parser *ps, struct confine_list *list,
		       const char *item)
{
	if (confine_list_add(list, item) == 0)
		return 0;
	kh_err_set(ps->err, "%s: out of memory", ps->origin);
	return -ENOMEM;
}

static int add_syscall(struct parser *ps, const json_t *item, void *ctx)
{
	struct kh_confine_profile *profile = ctx;
	const char *name = string_value(ps, item);

	if (!name)
		return -EINVAL;
	if (seccomp_syscall_resolve_name_arch(SCMP_ARCH_NATIVE, name) < 0)
		return fail(ps, "unknown syscall name \"%.*s\" on this "
			    "architecture; use the name from syscalls(2), such "
			    "as \"ptrace\"", kh_quote_length(name), name);
	return add_or_fail(ps, &profile->deny, name);
}

static int parse_seccomp(struct parser *ps, const json_t *root,
			 struct kh_confine_profile *profile)
{
	static const char *const keys[] = { "deny", NULL };
	const json_t *seccomp = json_object_get(root, "seccomp");
	int rc;

	if (!seccomp)
		return 0;
	enter_key(ps, "seccomp");
	if (!json_is_object(seccomp))
		rc = fail(ps, "expected an object such as {\"deny\": "
			  "[\"name\"]}, not %s", kh_json_type_name(seccomp));
	else
		rc = check_keys(ps, seccomp, keys, "deny");
	if (rc == 0)
		rc = each_element(ps, seccomp, "deny", "syscall names",
				  add_syscall, profile);
	leave(ps);
	return rc;
}

static int add_port(struct parser *ps, const json_t *item, void *ctx)
{
	struct confine_ports *ports = ctx;
	json_int_t port;

	if (!json_is_integer(item) || json_integer_value(item) < 1 ||
	    json_integer_value(item) > 65535)
		return fail(ps, "expected a TCP port number from 1 to 65535");
	port = json_integer_value(item);
	for (size_t i = 0; i < ports->count; i++) {
		if (ports->ports[i] == port)
			return 0;
	}
	if (ports->count == CONFINE_PORTS_MAX)
		return fail(ps, "more than %d ports", CONFINE_PORTS_MAX);
	ports->ports[ports->count++] = (uint16_t)port;
	return 0;
}

static int parse_ports(struct parser *ps, const json_t *network,
		       const char *key, struct confine_ports *ports)
{
	if (json_object_get(network, key))
		ports->set = true;
	return each_element(ps, network, key, "port numbers", add_port,
			    ports);
}

static int parse_network(struct parser *ps, const json_t *root,
			 struct kh_confine_profile *profile)
{
	static const char *const keys[] = {
		"unix_only", "tcp_connect", "tcp_bind", NULL,
	};
	const json_t *network = json_object_get(root, "network");
	int rc;

	if (!network)
		return 0;
	enter_key(ps, "network");
	if (!json_is_object(network))
		rc = fail(ps, "expected an object such as {\"unix_only\": "
			  "true}, not %s", kh_json_type_name(network));
	else
		rc = check_keys(ps, network, keys,
				"unix_only, tcp_connect, tcp_bind");
	if (rc == 0)
		rc = parse_bool(ps, network, "unix_only", &profile->unix_only);
	if (rc == 0)
		rc = parse_ports(ps, network, "tcp_connect",
				 &profile->tcp_connect);
	if (rc == 0)
		rc = parse_ports(ps, network, "tcp_bind", &profile->tcp_bind);
	leave(ps);
	return rc;
}

/* Appends n bytes of s to out (of size bytes) at *used. */
static int append(char *out, size_t size, size_t *used, const char *s,
		  size_t n)
{
	if (*used + n >= size)
		return -ENAMETOOLONG;
	memcpy(out + *used, s, n);
	*used += n;
	out[*used] = '\0';
	return 0;
}

/*
 * Expands "{uid}", "{permits}" or "{secrets}" at *in. Returns 1 after
 * appending the value, 0 when the variable is unset (the rule is
 * dropped), or a negative errno with *reason set.
 */
static int expand_variable(const struct kh_confine_vars *vars,
			   const char **in, char *out, size_t size,
			   size_t *used, const char **reason)
{
	char value[64];
	const char *text = NULL;
	int n;

	if (strncmp(*in, "{uid}", 5) == 0) {
		n = snprintf(value, sizeof(value), "%u", (unsigned)vars->uid);
		text = n > 0 ? value : NULL;
		*in += 5;
	} else if (strncmp(*in, "{permits}", 9) == 0) {
		if (!vars->permits_dir)
			return 0;
		if (append(out, size, used, vars->permits_dir,
			   strlen(vars->permits_dir)) < 0)
			goto too_long;
		n = snprintf(value, sizeof(value), "/%u", (unsigned)vars->uid);
		text = n > 0 ? value : NULL;
		*in += 9;
	} else if (strncmp(*in, "{secrets}", 9) == 0) {
		char anchor[PATH_MAX];

		text = vars->secrets_mount;
		if (!text)
			return 0;
		/* A whole "{secrets}" entry may move to the stable parent. */
		if (*used == 0 && (*in)[9] == '\0' &&
		    kh_confine_secrets_rule_path(text, anchor,
						 sizeof(anchor)) == 1) {
			*in += 9;
			if (append(out, size, used, anchor, strlen(anchor)) < 0)
				goto too_long;
			return 1;
		}
		*in += 9;
	} else {
		*reason = "unknown variable; use {uid}, {permits} or {secrets}";
		return -EINVAL;
	}
	if (!text || append(out, size, used, text, strlen(text)) < 0)
		goto too_long;
	return 1;
too_long:
	*reason = "the expanded path is too long";
	return -ENAMETOOLONG;
}

/* Checks that path is absolute and normal: no "//", ".", ".." or final "/". */
static const char *path_problem(const char *path, bool glob_allowed)
{
	const char *c;

	if (path[0] != '/')
		return "not an absolute path; start it with \"/\", \"~\" or a "
		       "variable such as {secrets}";
	if (!glob_allowed && strpbrk(path, "*?["))
		return "wildcards are only allowed in filesystem.exclude";
	if (strcmp(path, "/") == 0)
		return NULL;
	for (c = path; *c; ) {
		const char *next = strchr(c + 1, '/');
		size_t n = next ? (size_t)(next - c - 1) : strlen(c + 1);

		if (n == 0 || (n == 1 && c[1] == '.') ||
		    (n == 2 && c[1] == '.' && c[2] == '.'))
			return "write the path without \"//\", \".\", \"..\" "
			       "or a final \"/\"";
		c = next ? next : c + 1 + n;
	}
	return NULL;
}

/*
 * Expands "~" and the variables in in. Returns 1 with out filled, 0 when
 * a variable the path needs is unset, or a negative errno with *reason set.
 */
static int expand_path(const struct kh_confine_vars *vars, const char *in,
		       bool glob_allowed, char *out, size_t size,
		       const char **reason)
{
	size_t used = 0;
	int rc;

	out[0] = '\0';
	if (in[0] == '~') {
		if (in[1] != '\0' && in[1] != '/') {
			*reason = "\"~user\" is not supported; write the absolute "
			       "path";
			return -EINVAL;
		}
		if (!vars->home)
			return 0;
		if (append(out, size, &used, vars->home,
			   strlen(vars->home)) < 0)
			goto too_long;
		in++;
		/* With "/" as home, "~/x" is "/x", not "//x". */
		if (strcmp(vars->home, "/") == 0 && in[0] == '/')
			in++;
	}
	while (*in) {
		if (*in == '{') {
			rc = expand_variable(vars, &in, out, size, &used, reason);
			if (rc <= 0)
				return rc;
			continue;
		}
		if (append(out, size, &used, in, 1) < 0)
			goto too_long;
		in++;
	}
	*reason = path_problem(out, glob_allowed);
	return *reason ? -EINVAL : 1;
too_long:
	*reason = "the expanded path is too long";
	return -ENAMETOOLONG;
}

struct path_target {
	struct confine_list *list;
	bool glob_allowed;
};

static int add_path(struct parser *ps, const json_t *item, void *ctx)
{
	const struct path_target *target = ctx;
	const char *raw = string_value(ps, item);
	char path[4096];
	const char *reason = NULL;
	int rc;

	if (!raw)
		return -EINVAL;
	rc = expand_path(ps->vars, raw, target->glob_allowed, path,
			 sizeof(path), &reason);
	if (rc < 0)
		return fail(ps, "\"%.*s\": %s", kh_quote_length(raw), raw, reason);
	if (rc == 0)
		return 0;
	return add_or_fail(ps, target->list, path);
}

static int parse_filesystem(struct parser *ps, const json_t *root,
			    struct kh_confine_profile *profile)
{
	static const char *const keys[] = {
		"read_exec", "read", "read_write", "exclude", NULL,
	};
	const json_t *fs = json_object_get(root, "filesystem");
	struct path_target target;
	int rc;

	if (!fs)
		return 0;
	enter_key(ps, "filesystem");
	if (!json_is_object(fs))
		rc = fail(ps, "expected an object such as {\"read\": "
			  "[\"/etc\"]}, not %s", kh_json_type_name(fs));
	else
		rc = check_keys(ps, fs, keys,
				"read_exec, read, read_write, exclude");
	for (int c = 0; rc == 0 && c < CONFINE_FS_CLASS_COUNT; c++) {
		target.list = &profile->fs[c];
		target.glob_allowed = c == CONFINE_FS_EXCLUDE;
		rc = each_element(ps, fs, confine_fs_keys[c], "paths",
				  add_path, &target);
	}
	leave(ps);
	return rc;
}

static int parse_text(const char *origin, const char *text, size_t len,
		      const struct kh_confine_vars *vars, int base_depth,
		      struct kh_confine_profile *profile, struct kh_err *err);

/* Loads the built-in profile that "base" names into profile. */
static int parse_base(struct parser *ps, const json_t *root,
		      struct kh_confine_profile *profile)
{
	const json_t *value = json_object_get(root, "base");
	char origin[64];
	const char *name;
	const char *text;

	if (!value)
		return 0;
	enter_key(ps, "base");
	name = string_value(ps, value);
	text = name ? find_builtin(name) : NULL;
	if (name && (!text || ps->base_depth >= BASE_DEPTH_MAX))
		(void)fail(ps, "\"%.*s\" is not a built-in profile; use "
			   "\"agent\" or \"strict\"", kh_quote_length(name), name);
	leave(ps);
	if (!text)
		return -EINVAL;
	(void)snprintf(origin, sizeof(origin), "built-in profile %s", name);
	return parse_text(origin, text, strlen(text), ps->vars,
			  ps->base_depth + 1, profile, ps->err);
}

static int parse_root(struct parser *ps, const json_t *root,
		      struct kh_confine_profile *profile)
{
	static const char *const keys[] = {
		"base", "description", "dumpable", "landlock_missing",
		"seccomp", "network", "filesystem", NULL,
	};
	int rc;

	if (!json_is_object(root))
		return fail(ps, "expected a JSON object such as {\"base\": "
			    "\"agent\"}, not %s", kh_json_type_name(root));
	rc = check_keys(ps, root, keys, "base, description, dumpable, "
			"landlock_missing, seccomp, network, filesystem");
	if (rc == 0)
		rc = parse_base(ps, root, profile);
	if (rc == 0)
		rc = parse_description(ps, root, profile);
	if (rc == 0)
		rc = parse_bool(ps, root, "dumpable", &profile->dumpable);
	if (rc == 0)
		rc = parse_landlock_missing(ps, root, profile);
	if (rc == 0)
		rc = parse_seccomp(ps, root, profile);
	if (rc == 0)
		rc = parse_network(ps, root, profile);
	if (rc == 0)
		rc = parse_filesystem(ps, root, profile);
	return rc;
}

/* Parses text and applies it on top of what profile already holds. */
static int parse_text(const char *origin, const char *text, size_t len,
		      const struct kh_confine_vars *vars, int base_depth,
		      struct kh_confine_profile *profile, struct kh_err *err)
{
	struct parser ps = {
		.origin = origin, .text = text, .len = len, .vars = vars,
		.base_depth = base_depth, .err = err,
	};
	json_t *root = NULL;
	int rc;

	rc = kh_json_parse(text, len, &root, err);
	if (rc < 0) {
		kh_err_prefix(err, "%s", origin);
		return rc;
	}
	rc = parse_root(&ps, root, profile);
	json_decref(root);
	return rc;
}

/*
 * Reads a profile file. Returns -ENOENT without a message when it does
 * not exist. Ownership and mode are checked on the open descriptor, so
 * that the file checked is the file read.
 */
static int read_profile(const char *path, char **text, size_t *len,
			struct kh_err *err)
{
	struct stat st;
	int fd, rc = 0;

	*text = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			kh_err_set(err, "%s: cannot open profile: %s; check "
				   "its permissions", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > PROFILE_MAX_BYTES) {
		kh_err_set(err, "%s: a profile must be a regular file of at "
			   "most %d bytes", path, PROFILE_MAX_BYTES);
		rc = -EINVAL;
	} else if (st.st_uid != 0 && st.st_uid != geteuid()) {
		kh_err_set(err, "%s: profile is owned by uid %u; only root "
			   "may own it (chown root %s)", path,
			   (unsigned)st.st_uid, path);
		rc = -EPERM;
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		kh_err_set(err, "%s: profile is writable by group or others "
			   "(mode %04o); run chmod go-w %s", path,
			   (unsigned)(st.st_mode & 07777), path);
		rc = -EPERM;
	}
	if (rc == 0)
		rc = kh_textfile_read_fd(fd, path, (size_t)st.st_size,
					 "the profile", text, len, err);
	(void)close(fd);
	return rc;
}

static bool name_is_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > KH_CONFINE_NAME_MAX)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

static int check_vars(const struct kh_confine_vars *vars, struct kh_err *err)
{
	const char *values[] = { vars ? vars->home : NULL,
				 vars ? vars->permits_dir : NULL,
				 vars ? vars->secrets_mount : NULL };

	if (!vars) {
		kh_err_set(err, "no confinement variables given (NULL)");
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		if (values[i] && values[i][0] != '/') {
			kh_err_set(err, "\"%.*s\" is not an absolute path; the "
				   "home directory, permits_dir and "
				   "secrets_mount must be absolute",
				   kh_quote_length(values[i]), values[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/* Loads confdir/name.json, or the built-in profile when there is none. */
static int load_profile(const char *confdir, const char *name,
			const struct kh_confine_vars *vars,
			struct kh_confine_profile *profile, struct kh_err *err)
{
	char path[4096];
	char origin[64];
	const char *builtin;
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s.json", confdir, name) >=
	    (int)sizeof(path)) {
		kh_err_set(err, "%s: profile directory path is too long",
			   confdir);
		return -ENAMETOOLONG;
	}
	rc = read_profile(path, &text, &len, err);
	if (rc == 0) {
		rc = parse_text(path, text, len, vars, 0, profile, err);
		free(text);
		return rc;
	}
	if (rc != -ENOENT)
		return rc;

	builtin = find_builtin(name);
	if (!builtin) {
		kh_err_set(err, "confinement profile \"%s\" not found: %s does "
			   "not exist and there is no built-in profile of that "
			   "name (built-in: agent, strict)", name, path);
		return -ENOENT;
	}
	(void)snprintf(origin, sizeof(origin), "built-in profile %s", name);
	return parse_text(origin, builtin, strlen(builtin), vars, 0, profile,
			  err);
}

/*
 * Drops a home directory that the user does not own. System accounts
 * such as "daemon" have homes like /usr/sbin, and the "~" rules would
 * otherwise grant write access there and exclude paths that mean
 * nothing in it.
 */
static void drop_foreign_home(struct kh_confine_vars *vars)
{
	struct stat st;

	if (!vars->home)
		return;
	if (stat(vars->home, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != vars->uid)
		vars->home = NULL;
}

int kh_confine_load(const char *confdir, const char *name,
		    const struct kh_confine_vars *given,
		    struct kh_confine_profile **out, struct kh_err *err)
{
	struct kh_confine_profile *profile;
	struct kh_confine_vars local;
	const struct kh_confine_vars *vars = NULL;
	int rc;

	kh_err_clear(err);
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!name_is_valid(name)) {
		kh_err_set(err, "invalid profile name \"%.*s\"; use 1 to %d "
			   "characters from a-z 0-9 _ -", name ?
			   kh_quote_length(name) : 0, name ? name : "",
			   KH_CONFINE_NAME_MAX);
		return -EINVAL;
	}
	rc = check_vars(given, err);
	if (rc < 0)
		return rc;
	local = *given;
	drop_foreign_home(&local);
	vars = &local;

	profile = calloc(1, sizeof(*profile));
	if (!profile) {
		kh_err_set(err, "out of memory loading profile %s", name);
		return -ENOMEM;
	}
	(void)snprintf(profile->name, sizeof(profile->name), "%s", name);
	/* A file without "base" starts from these, the stricter choices. */
	profile->dumpable = true;
	profile->landlock_missing = KH_LANDLOCK_REFUSE;

	rc = load_profile(confdir ? confdir : KH_CONFINE_DIR_DEFAULT, name,
			  vars, profile, err);
	if (rc < 0) {
		kh_confine_free(profile);
		return rc;
	}
	*out = profile;
	return 0;
}

void kh_confine_free(struct kh_confine_profile *profile)
{
	if (!profile)
		return;
	free(profile->description);
	confine_list_free(&profile->deny);
	for (int c = 0; c < CONFINE_FS_CLASS_COUNT; c++)
		confine_list_free(&profile->fs[c]);
	free(profile);
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct collect {
	struct confine_list list;
	int rc;
};

static void collect_name(const char *name, void *ctx)
{
	struct collect *c = ctx;

	if (c->rc == 0)
		c->rc = confine_list_add(&c->list, name);
}

/* Returns list as a sorted JSON array of strings, or NULL. */
static json_t *sorted_array(const struct confine_list *list)
{
	const char **sorted;
	json_t *array = json_array();
	int rc = array ? 0 : -1;

	if (!array || list->count == 0)
		return array;
	sorted = malloc(list->count * sizeof(*sorted));
	if (!sorted) {
		json_decref(array);
		return NULL;
	}
	memcpy(sorted, list->items, list->count * sizeof(*sorted));
	qsort(sorted, list->count, sizeof(*sorted), compare_strings);
	for (size_t i = 0; rc == 0 && i < list->count; i++)
		rc = json_array_append_new(array, json_string(sorted[i]));
	free(sorted);
	if (rc == 0)
		return array;
	json_decref(array);
	return NULL;
}

static json_t *names_array(const char *const *names)
{
	json_t *array = json_array();

	for (size_t i = 0; array && names[i]; i++) {
		if (json_array_append_new(array, json_string(names[i])) < 0) {
			json_decref(array);
			return NULL;
		}
	}
	return array;
}

static int compare_ports(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static int set_ports(json_t *network, const char *key,
		     const struct confine_ports *ports)
{
	uint16_t sorted[CONFINE_PORTS_MAX];
	json_t *array;

	if (!ports->set)
		return 0;
	memcpy(sorted, ports->ports, ports->count * sizeof(sorted[0]));
	qsort(sorted, ports->count, sizeof(sorted[0]), compare_ports);
	array = json_array();
	for (size_t i = 0; array && i < ports->count; i++) {
		if (json_array_append_new(array, json_integer(sorted[i])) < 0) {
			json_decref(array);
			return -1;
		}
	}
	return json_object_set_new(network, key, array);
}

static json_t *seccomp_json(const struct kh_confine_profile *profile)
{
	struct collect deny = { { 0 }, 0 };
	json_t *seccomp = NULL;

	confine_seccomp_each_fixed(collect_name, &deny);
	for (size_t i = 0; i < profile->deny.count; i++)
		collect_name(profile->deny.items[i], &deny);
	if (deny.rc == 0)
		seccomp = json_pack("{s:o, s:o, s:o}",
				    "deny", sorted_array(&deny.list),
				    "deny_if",
				    names_array(confine_seccomp_arg_rules),
				    "enosys",
				    names_array(confine_seccomp_enosys));
	confine_list_free(&deny.list);
	return seccomp;
}

static json_t *network_json(const struct kh_confine_profile *profile)
{
	json_t *network = json_pack("{s:b}", "unix_only", profile->unix_only);

	if (!network ||
	    set_ports(network, "tcp_connect", &profile->tcp_connect) < 0 ||
	    set_ports(network, "tcp_bind", &profile->tcp_bind) < 0) {
		json_decref(network);
		return NULL;
	}
	return network;
}

static json_t *filesystem_json(const struct kh_confine_profile *profile)
{
	json_t *fs = json_object();

	for (int c = 0; fs && c < CONFINE_FS_CLASS_COUNT; c++) {
		json_t *array = sorted_array(&profile->fs[c]);

		if (!array ||
		    json_object_set_new(fs, confine_fs_keys[c], array) < 0) {
			json_decref(fs);
			return NULL;
		}
	}
	return fs;
}

json_t *kh_confine_to_json(const struct kh_confine_profile *profile)
{
	if (!profile)
		return NULL;
	return json_pack("{s:s, s:s, s:b, s:s, s:o, s:o, s:o}",
			 "name", profile->name,
			 "description", profile->description ?
			 profile->description : "",
			 "dumpable", profile->dumpable,
			 "landlock_missing",
			 profile->landlock_missing == KH_LANDLOCK_CONTINUE ?
			 "continue" : "refuse",
			 "seccomp", seccomp_json(profile),
			 "network", network_json(profile),
			 "filesystem", filesystem_json(profile));
}

int confine_check_builtin_names(kh_err_report_fn report, void *ctx)
{
	const struct kh_confine_vars vars = {
		.uid = 0, .home = "/root", .permits_dir = KH_PERMITS_DEFAULT,
		.secrets_mount = KH_SECRETS_DEFAULT,
	};
	struct kh_confine_profile *profile;
	char origin[64];
	struct kh_err err;
	int failed = 0;

	for (size_t i = 0; i < BUILTIN_COUNT; i++) {
		profile = calloc(1, sizeof(*profile));
		(void)snprintf(origin, sizeof(origin), "built-in profile %s",
			       builtins[i].name);
		if (!profile)
			kh_err_set(&err, "%s: out of memory", origin);
		if (!profile ||
		    parse_text(origin, builtins[i].text,
			       strlen(builtins[i].text), &vars, 0, profile,
			       &err) < 0) {
			failed++;
			if (report)
				report(err.msg, ctx);
		}
		kh_confine_free(profile);
	}
	return failed;
}
