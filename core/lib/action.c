/*
 * Actions and hA. An exec action is built two ways that must agree byte
 * for byte: from the argv a caller is about to run (PATH lookup as
 * execvp does, then realpath) and from the kernel's view of a running
 * process (/proc/<tgid>/exe and cmdline). Nothing is normalised beyond
 * that: what is hashed is what policy matched.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyhole/action.h"

/* PATH when the variable is unset. */
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define DELETED_SUFFIX " (deleted)"

static bool has_nul(const json_t *string)
{
	return strlen(json_string_value(string)) != json_string_length(string);
}

/* Rejects any key but the three a type allows (allowed[3] is NULL). */
static int check_keys(const json_t *action, const char *type,
		      const char *const allowed[], struct kh_err *err)
{
	const char *key;
	const json_t *value;

	json_object_foreach((json_t *)action, key, value) {
		bool known = false;

		for (size_t i = 0; allowed[i] && !known; i++)
			known = strcmp(key, allowed[i]) == 0;
		if (!known) {
			kh_err_set(err, "action: $.%s: unknown key; a %s "
				   "action has only the keys %s, %s and %s",
				   key, type,
				   allowed[0], allowed[1], allowed[2]);
			return -EINVAL;
		}
	}
	return 0;
}

static int validate_tool_call(const json_t *action, struct kh_err *err)
{
	static const char *const keys[] = { "type", "tool", "params", NULL };
	const json_t *tool = json_object_get(action, "tool");
	const json_t *params = json_object_get(action, "params");
	int rc = check_keys(action, "tool_call", keys, err);

	if (rc)
		return rc;
	if (!json_is_string(tool) || json_string_length(tool) == 0 ||
	    has_nul(tool)) {
		kh_err_set(err, "action: $.tool: must be a non-empty string "
			   "naming the tool, such as \"stripe.charge\"");
		return -EINVAL;
	}
	if (params && !json_is_object(params)) {
		kh_err_set(err, "action: $.params: must be an object");
		return -EINVAL;
	}
	return 0;
}

static int validate_exec(const json_t *action, struct kh_err *err)
{
	static const char *const keys[] = { "type", "exe", "argv", NULL };
	const json_t *exe = json_object_get(action, "exe");
	const json_t *argv = json_object_get(action, "argv");
	const json_t *arg;
	size_t i;
	int rc = check_keys(action, "exec", keys, err);

	if (rc)
		return rc;
	if (!json_is_string(exe) || has_nul(exe) ||
	    json_string_value(exe)[0] != '/') {
		kh_err_set(err, "action: $.exe: must be the absolute path of "
			   "the executable");
		return -EINVAL;
	}
	if (!json_is_array(argv) || json_array_size(argv) == 0) {
		kh_err_set(err, "action: $.argv: must be a non-empty array of "
			   "strings");
		return -EINVAL;
	}
	json_array_foreach(argv, i, arg) {
		/* exec cannot pass a NUL inside an argument. */
		if (!json_is_string(arg) || has_nul(arg)) {
			kh_err_set(err, "action: $.argv[%zu]: must be a string "
				   "without NUL bytes", i);
			return -EINVAL;
		}
	}
	return 0;
}

int kh_action_validate(const json_t *action, struct kh_err *err)
{
	const json_t *type = json_object_get(action, "type");
	int rc;

	if (!json_is_object(action)) {
		kh_err_set(err, "action: $: must be a JSON object");
		return -EINVAL;
	}
	if (!json_is_string(type)) {
		kh_err_set(err, "action: $.type: missing; use \"tool_call\" or "
			   "\"exec\"");
		return -EINVAL;
	}
	if (strcmp(json_string_value(type), "tool_call") == 0) {
		rc = validate_tool_call(action, err);
	} else if (strcmp(json_string_value(type), "exec") == 0) {
		rc = validate_exec(action, err);
	} else {
		kh_err_set(err, "action: $.type: \"%s\" is unknown; use "
			   "\"tool_call\" or \"exec\"",
			   json_string_value(type));
		return -EINVAL;
	}
	if (rc)
		return rc;
	rc = kh_json_check(action, err);
	if (rc)
		kh_err_prefix(err, "action");
	return rc;
}

int kh_action_hash(const json_t *action, char hex[KH_HASH_HEX_LEN + 1],
		   struct kh_err *err)
{
	int rc = kh_action_validate(action, err);

	hex[0] = '\0';
	if (rc)
		return rc;
	return kh_hash(action, hex, err);
}

/* Builds {"type":"exec","exe":exe,"argv":[args...]}. */
static int build_exec(const char *exe, const char *const *args, size_t count,
		      json_t **out, struct kh_err *err)
{
	json_t *argv = json_array();
	json_t *exe_json;
	json_t *action;

	if (!argv)
		goto nomem;
	for (size_t i = 0; i < count; i++) {
		json_t *arg = json_string(args[i]);

		/* jansson refuses strings that are not valid UTF-8. */
		if (!arg) {
			json_decref(argv);
			kh_err_set(err, "argv[%zu] is not valid UTF-8; actions "
				   "are JSON text", i);
			return -EILSEQ;
		}
		if (json_array_append_new(argv, arg) < 0) {
			json_decref(argv);
			goto nomem;
		}
	}
	exe_json = json_string(exe);
	if (!exe_json) {
		json_decref(argv);
		kh_err_set(err, "executable path %s is not valid UTF-8; "
			   "actions are JSON text", exe);
		return -EILSEQ;
	}
	/* "o" hands both references to the new object, even on failure. */
	action = json_pack("{s:s,s:o,s:o}", "type", "exec", "exe", exe_json,
			   "argv", argv);
	if (!action)
		goto nomem;
	*out = action;
	return 0;
nomem:
	kh_err_set(err, "out of memory building the exec action");
	return -ENOMEM;
}

/* An executable regular file for the effective ids, as execve needs. */
static bool is_executable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) == 0;
}

/*
 * Finds name in PATH the way execvp does: each entry in order (an empty
 * entry is the current directory), first executable regular file wins.
 */
static int search_path(const char *name, char found[PATH_MAX],
		       struct kh_err *err)
{
	const char *path = getenv("PATH");
	const char *entry;

	if (!path)
		path = DEFAULT_PATH;
	for (entry = path;; entry += strcspn(entry, ":") + 1) {
		size_t len = strcspn(entry, ":");
		int n = len ? snprintf(found, PATH_MAX, "%.*s/%s", (int)len,
				       entry, name) :
			      snprintf(found, PATH_MAX, "./%s", name);

		if (n > 0 && n < PATH_MAX && is_executable(found))
			return 0;
		if (entry[len] == '\0')
			break;
	}
	found[0] = '\0';
	kh_err_set(err, "command \"%s\" not found in PATH (%s)", name, path);
	return -ENOENT;
}

static int resolve_exe(const char *name, char exe[PATH_MAX],
		       struct kh_err *err)
{
	char found[PATH_MAX];
	const char *candidate = name;
	int rc;

	if (!strchr(name, '/')) {
		rc = search_path(name, found, err);
		if (rc)
			return rc;
		candidate = found;
	}
	if (!realpath(candidate, exe)) {
		rc = -errno;
		kh_err_set(err, "resolving %s failed: %s", candidate,
			   strerror(-rc));
		return rc;
	}
	if (!is_executable(exe)) {
		kh_err_set(err, "%s is not an executable regular file", exe);
		return -EACCES;
	}
	return 0;
}

int kh_action_from_argv(char *const argv[], json_t **out, struct kh_err *err)
{
	char exe[PATH_MAX];
	size_t count = 0;
	size_t bytes = 0;
	int rc;

	*out = NULL;
	if (!argv || !argv[0] || !argv[0][0]) {
		kh_err_set(err, "argv[0] is missing; name the command to run");
		return -EINVAL;
	}
	for (; argv[count]; count++)
		bytes += strlen(argv[count]) + 1;
	/* A longer command line could never match what /proc shows. */
	if (bytes > KH_ACTION_MAX_CMDLINE) {
		kh_err_set(err, "the command line is %zu bytes; keyhole reads "
			   "at most %d bytes of /proc/<pid>/cmdline", bytes,
			   KH_ACTION_MAX_CMDLINE);
		return -E2BIG;
	}
	rc = resolve_exe(argv[0], exe, err);
	if (rc)
		return rc;
	return build_exec(exe, (const char *const *)argv, count, out, err);
}

/* Maps a failed /proc lookup: a vanished entry means the process is gone. */
static int proc_errno(int e)
{
	return e == ENOENT || e == ESRCH ? -ESRCH : -e;
}

/*
 * Reads /proc/<tgid>/cmdline into a NUL-terminated buffer. More than
 * KH_ACTION_MAX_CMDLINE bytes is an error: a cut command line could
 * equal a shorter permitted one.
 */
static int read_cmdline(int dirfd, pid_t tgid, char **out, size_t *out_len,
			struct kh_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	int fd = openat(dirfd, "cmdline", O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0) {
		rc = proc_errno(errno);
		kh_err_set(err, "process %d: reading cmdline failed: %s",
			   (int)tgid, strerror(errno));
		goto out;
	}
	buf = malloc(KH_ACTION_MAX_CMDLINE + 2);
	if (!buf) {
		rc = -ENOMEM;
		kh_err_set(err, "out of memory reading a command line");
		goto out;
	}
	while (len <= KH_ACTION_MAX_CMDLINE) {
		size_t room = KH_ACTION_MAX_CMDLINE + 1 - len;
		ssize_t n = read(fd, buf + len, room);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = proc_errno(errno);
			kh_err_set(err, "process %d: reading cmdline failed: "
				   "%s", (int)tgid, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > KH_ACTION_MAX_CMDLINE) {
		rc = -E2BIG;
		kh_err_set(err, "process %d: command line is longer than %d "
			   "bytes, the most keyhole reads", (int)tgid,
			   KH_ACTION_MAX_CMDLINE);
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		(void)close(fd);
	return rc;
}

/*
 * Reads the executable path and checks that the file at that path is
 * still the one the process runs: the kernel marks an unlinked binary
 * " (deleted)", and comparing (st_dev, st_ino) catches a binary replaced
 * at the same path after exec.
 */
static int read_exe(int dirfd, pid_t tgid, char exe[PATH_MAX],
		    struct kh_err *err)
{
	size_t suffix = strlen(DELETED_SUFFIX);
	struct stat by_path;
	struct stat running;
	ssize_t n = readlinkat(dirfd, "exe", exe, PATH_MAX);

	if (n < 0) {
		int e = errno;

		kh_err_set(err, "process %d: reading exe failed: %s",
			   (int)tgid, strerror(e));
		return e == EACCES || e == EPERM ? -ENOEXEC : proc_errno(e);
	}
	if (n >= PATH_MAX) {
		kh_err_set(err, "process %d: executable path is too long",
			   (int)tgid);
		return -ENAMETOOLONG;
	}
	exe[n] = '\0';
	if ((size_t)n >= suffix &&
	    strcmp(exe + n - (ssize_t)suffix, DELETED_SUFFIX) == 0) {
		kh_err_set(err, "process %d: executable %s was deleted after "
			   "exec", (int)tgid, exe);
		return -ENOEXEC;
	}
	if (fstatat(dirfd, "exe", &running, 0) < 0) {
		int e = errno;

		kh_err_set(err, "process %d: stat of exe failed: %s",
			   (int)tgid, strerror(e));
		return e == ENOENT || e == ESRCH ? -ESRCH : -ENOEXEC;
	}
	if (stat(exe, &by_path) < 0 || by_path.st_dev != running.st_dev ||
	    by_path.st_ino != running.st_ino) {
		kh_err_set(err, "process %d: the file at %s is not the "
			   "executable the process runs; it was replaced "
			   "after exec", (int)tgid, exe);
		return -ENOEXEC;
	}
	return 0;
}

/*
 * Splits cmdline at NULs. A trailing NUL ends the last argument; a
 * command line that a process rewrote without one keeps the remainder
 * as its last argument.
 */
static int split_cmdline(char *buf, size_t len, const char ***out,
			 size_t *count)
{
	const char **args;
	size_t n = 0;

	for (size_t pos = 0; pos < len; pos += strlen(buf + pos) + 1)
		n++;
	args = calloc(n, sizeof(*args));
	if (!args)
		return -ENOMEM;
	n = 0;
	for (size_t pos = 0; pos < len; pos += strlen(buf + pos) + 1)
		args[n++] = buf + pos;
	*out = args;
	*count = n;
	return 0;
}

static int exec_from_proc(int dirfd, pid_t tgid, json_t **out,
			  struct kh_err *err)
{
	char exe[PATH_MAX];
	char *cmdline = NULL;
	const char **args = NULL;
	size_t len = 0;
	size_t count = 0;
	int rc = read_exe(dirfd, tgid, exe, err);

	/* No exe link: either the process is gone or it is a kernel thread. */
	if (rc == -ESRCH) {
		rc = read_cmdline(dirfd, tgid, &cmdline, &len, err);
		if (rc == 0)
			kh_err_set(err, "process %d has no executable (a "
				   "kernel thread or an exiting process)",
				   (int)tgid);
		rc = rc ? rc : -ENOEXEC;
	}
	if (!rc)
		rc = read_cmdline(dirfd, tgid, &cmdline, &len, err);
	if (!rc && len == 0) {
		kh_err_set(err, "process %d has an empty command line (a "
			   "kernel thread or an exiting process)", (int)tgid);
		rc = -ENOEXEC;
	}
	if (!rc)
		rc = split_cmdline(cmdline, len, &args, &count);
	if (rc == -ENOMEM)
		kh_err_set(err, "out of memory splitting a command line");
	if (!rc)
		rc = build_exec(exe, args, count, out, err);
	free(args);
	free(cmdline);
	return rc;
}

int kh_action_from_proc(pid_t tgid, int proc_dirfd, json_t **out,
			struct kh_err *err)
{
	char dir[32];
	int dirfd = proc_dirfd;
	int rc;

	*out = NULL;
	if (dirfd < 0) {
		if (snprintf(dir, sizeof(dir), "/proc/%d", (int)tgid) < 0)
			return -EINVAL;
		dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0) {
			rc = proc_errno(errno);
			kh_err_set(err, "process %d: opening %s failed: %s",
				   (int)tgid, dir, strerror(errno));
			return rc;
		}
	}
	rc = exec_from_proc(dirfd, tgid, out, err);
	if (dirfd != proc_dirfd)
		(void)close(dirfd);
	return rc;
}
