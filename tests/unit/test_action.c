/*
 * Actions: strict validation and hA vectors. The exec action built from
 * an argv (PATH lookup and realpath) must equal, byte for byte, the one
 * read from /proc of a real child process. Fake /proc directories cover
 * cmdline splitting, and real processes cover deleted or replaced
 * binaries.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "keyhole/action.h"

#define SLEEP_REAL "/usr/bin/sleep"

/*
 * Expected hA values, computed independently of libkeyhole with Python:
 * json.dumps(action, sort_keys=True, separators=(",", ":")) equals JCS
 * for these ASCII-only, integer-only actions, hashed with hashlib.sha256.
 */
#define HA_CHARGE "36c8d37b114aaff41d91cf3a8bb4f81b189d88ab45cef51f3c17e63f8a770e51"
#define HA_CURL "f344ae3007fe68cc5bf3a66cd7c21e471cc747a03c35073ec427fc1283639865"

static json_t *parse_json(const char *text)
{
	json_error_t jerr;
	json_t *value = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL,
				   &jerr);

	if (!value)
		kh_test_fail(__FILE__, __LINE__, "bad test JSON %s: %s", text,
			     jerr.text);
	return value;
}

static void validate_table(void)
{
	static const struct {
		const char *action;
		const char *expect; /* NULL when valid */
	} cases[] = {
		{ "{\"type\": \"tool_call\", \"tool\": \"stripe.charge\"}", NULL },
		{ "{\"type\": \"tool_call\", \"tool\": \"t\", \"params\": {}}", NULL },
		{ "{\"type\": \"exec\", \"exe\": \"/bin/x\", \"argv\": [\"x\"]}",
		  NULL },
		{ "[]", "$: must be a JSON object" },
		{ "{\"tool\": \"t\"}", "$.type: missing" },
		{ "{\"type\": \"http\"}", "$.type: \"http\" is unknown" },
		{ "{\"type\": \"tool_call\"}", "$.tool: must be a non-empty" },
		{ "{\"type\": \"tool_call\", \"tool\": \"\"}", "$.tool:" },
		{ "{\"type\": \"tool_call\", \"tool\": \"a\\u0000b\"}", "$.tool:" },
		{ "{\"type\": \"tool_call\", \"tool\": \"t\", \"params\": []}",
		  "$.params: must be an object" },
		{ "{\"type\": \"tool_call\", \"tool\": \"t\", \"argv\": []}",
		  "$.argv: unknown key" },
		{ "{\"type\": \"tool_call\", \"tool\": \"t\", \"params\": "
		  "{\"n\": 9007199254740993}}", "action" },
		{ "{\"type\": \"exec\", \"exe\": \"x\", \"argv\": [\"x\"]}",
		  "$.exe: must be the absolute path" },
		{ "{\"type\": \"exec\", \"argv\": [\"x\"]}", "$.exe:" },
		{ "{\"type\": \"exec\", \"exe\": \"/x\", \"argv\": []}",
		  "$.argv: must be a non-empty array" },
		{ "{\"type\": \"exec\", \"exe\": \"/x\"}", "$.argv:" },
		{ "{\"type\": \"exec\", \"exe\": \"/x\", \"argv\": [\"x\", 1]}",
		  "$.argv[1]: must be a string" },
		{ "{\"type\": \"exec\", \"exe\": \"/x\", \"argv\": [\"a\\u0000\"]}",
		  "$.argv[0]: must be a string without NUL" },
		{ "{\"type\": \"exec\", \"exe\": \"/x\", \"argv\": [\"x\"], "
		  "\"params\": {}}", "$.params: unknown key" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *action = parse_json(cases[i].action);
		struct kh_err err = { "" };
		int rc = kh_action_validate(action, &err);

		if (cases[i].expect == NULL && rc != 0)
			kh_test_fail(__FILE__, __LINE__, "%s: rejected: %s",
				     cases[i].action, err.msg);
		if (cases[i].expect && (rc != -EINVAL ||
					!strstr(err.msg, cases[i].expect)))
			kh_test_fail(__FILE__, __LINE__, "%s: rc %d, error "
				     "\"%s\" lacks \"%s\"", cases[i].action, rc,
				     err.msg, cases[i].expect);
		json_decref(action);
	}
}

static void hash_vectors(void)
{
	static const struct {
		const char *action;
		const char *hash;
	} cases[] = {
		{ "{\"params\": {\"currency\": \"usd\", \"amount\": 500}, "
		  "\"tool\": \"stripe.charge\", \"type\": \"tool_call\"}",
		  HA_CHARGE },
		{ "{\"type\": \"exec\", \"exe\": \"/usr/bin/curl\", \"argv\": "
		  "[\"curl\", \"--netrc-file\", \"/run/secrets/local/report.netrc\", "
		  "\"http://127.0.0.1:8080/report\"]}", HA_CURL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *action = parse_json(cases[i].action);
		char hex[KH_HASH_HEX_LEN + 1];
		struct kh_err err = { "" };

		CHECK_INT(kh_action_hash(action, hex, &err), 0);
		CHECK_STR(hex, cases[i].hash);
		json_decref(action);
	}
}

static void hash_rejects_invalid(void)
{
	json_t *action = parse_json("{\"type\": \"exec\", \"exe\": \"/x\"}");
	char hex[KH_HASH_HEX_LEN + 1] = "stale";
	struct kh_err err = { "" };

	CHECK_INT(kh_action_hash(action, hex, &err), -EINVAL);
	CHECK_STR(hex, "");
	json_decref(action);
}

/* Creates a private temporary directory under /tmp in buf. */
static char *make_temp_dir(char buf[64])
{
	(void)snprintf(buf, 64, "/tmp/kh-test-action.XXXXXX");
	if (!mkdtemp(buf)) {
		kh_test_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
		return NULL;
	}
	return buf;
}

static void remove_temp_dir(const char *dir)
{
	char cmd[128];

	if (dir && snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) <
			   (int)sizeof(cmd))
		CHECK_INT(system(cmd), 0);
}

static void write_file(const char *path, const void *data, size_t len,
		       mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		kh_test_fail(__FILE__, __LINE__, "writing %s: %s", path,
			     strerror(errno));
	if (fd >= 0)
		(void)close(fd);
}

static int copy_file(const char *from, const char *to)
{
	static char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	ssize_t n = in >= 0 && out >= 0 ? 1 : -1;

	while (n > 0) {
		n = read(in, buf, sizeof(buf));
		if (n > 0 && write(out, buf, (size_t)n) != n)
			n = -1;
	}
	if (in >= 0)
		(void)close(in);
	if (out >= 0)
		(void)close(out);
	return in < 0 || out < 0 || n < 0 ? -1 : 0;
}

/*
 * Starts argv (execvp, with PATH set to path_env when non-NULL) and
 * returns only once exec has happened. The child keeps the write end of
 * a close-on-exec pipe, so EOF on it means the new image is in place.
 * stdin is a pipe that stays open, for programs that wait on input.
 */
/*
 * Waits until /proc/<pid>/cmdline is non-empty. The close-on-exec pipe
 * closes in the middle of execve, before the kernel records the new
 * argv, so a read right after it can find an empty command line.
 */
static void wait_for_argv(pid_t pid)
{
	char path[64];
	char byte;

	(void)snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	for (int i = 0; i < 5000; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, &byte, 1);

		if (fd >= 0)
			(void)close(fd);
		if (n != 0)
			return;
		(void)usleep(1000);
	}
}

static pid_t spawn(char *const argv[], const char *path_env, int *stdin_fd)
{
	int sync[2];
	int input[2];
	int child_errno = 0;
	pid_t pid;

	if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(input, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		(void)dup2(input[0], 0);
		if (path_env)
			(void)setenv("PATH", path_env, 1);
		execvp(argv[0], argv);
		child_errno = errno;
		(void)!write(sync[1], &child_errno, sizeof(child_errno));
		_exit(127);
	}
	(void)close(sync[1]);
	(void)close(input[0]);
	if (pid > 0 && read(sync[0], &child_errno, sizeof(child_errno)) > 0) {
		kh_test_fail(__FILE__, __LINE__, "exec %s: %s", argv[0],
			     strerror(child_errno));
		(void)waitpid(pid, NULL, 0);
		pid = -1;
	}
	(void)close(sync[0]);
	*stdin_fd = input[1];
	if (pid > 0)
		wait_for_argv(pid);
	return pid;
}

static void reap(pid_t pid, int stdin_fd)
{
	if (pid > 0) {
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
	}
	if (stdin_fd >= 0)
		(void)close(stdin_fd);
}

static char *canonical(const json_t *value)
{
	char *text = NULL;
	struct kh_err err = { "" };

	if (!value || kh_canon_dump(value, &text, NULL, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "canon: %s", err.msg);
	return text;
}

/*
 * Runs argv as a child and checks that the action from /proc (through
 * both an opened dirfd and -1) equals the one from the argv, byte for
 * byte, and names want_exe.
 */
static void check_proc_matches_argv(char *const argv[], const char *path_env,
				    const char *want_exe)
{
	char *saved = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
	json_t *from_argv = NULL;
	json_t *from_proc = NULL;
	json_t *via_dirfd = NULL;
	char *a = NULL, *b = NULL, *c = NULL;
	char dir[32];
	struct kh_err err = { "" };
	int stdin_fd = -1;
	int dirfd = -1;
	pid_t pid = spawn(argv, path_env, &stdin_fd);

	if (pid < 0)
		goto out;
	if (path_env)
		(void)setenv("PATH", path_env, 1);
	if (kh_action_from_argv(argv, &from_argv, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "from_argv: %s", err.msg);
	if (kh_action_from_proc(pid, -1, &from_proc, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "from_proc: %s", err.msg);
	(void)snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dirfd >= 0);
	if (kh_action_from_proc(pid, dirfd, &via_dirfd, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "from_proc dirfd: %s", err.msg);
	a = canonical(from_argv);
	b = canonical(from_proc);
	c = canonical(via_dirfd);
	if (a && b && c) {
		CHECK_STR(b, a);
		CHECK_STR(c, a);
	}
	CHECK_STR(json_string_value(json_object_get(from_proc, "exe")),
		  want_exe);
	CHECK_INT(json_array_size(json_object_get(from_proc, "argv")),
		  json_array_size(json_object_get(from_argv, "argv")));
out:
	if (saved)
		(void)setenv("PATH", saved, 1);
	free(saved);
	free(a);
	free(b);
	free(c);
	json_decref(from_argv);
	json_decref(from_proc);
	json_decref(via_dirfd);
	if (dirfd >= 0)
		(void)close(dirfd);
	reap(pid, stdin_fd);
}

static void proc_matches_argv_sleep(void)
{
	char *argv[] = { "sleep", "30", "0.5", "1s", NULL };

	check_proc_matches_argv(argv, NULL, SLEEP_REAL);
}

static void proc_matches_argv_odd_args(void)
{
	/* Empty, spaced and non-ASCII arguments survive the NUL split. */
	char *argv[] = { "sh", "-c", "read x", "sh", "", "a b", "\xc3\xbc",
			 "--x=1", NULL };
	char real[4096];

	CHECK(realpath("/bin/sh", real) != NULL);
	check_proc_matches_argv(argv, "/usr/bin:/bin", real);
}

static void proc_matches_argv_symlink(void)
{
	char buf[64];
	char link[96];
	char *dir = make_temp_dir(buf);
	char *argv[] = { "sleep", "30", NULL };

	if (!dir)
		return;
	(void)snprintf(link, sizeof(link), "%s/sleep", dir);
	CHECK_INT(symlink("/bin/sleep", link), 0);
	/* The symlinked dir comes first, so PATH lookup finds the link. */
	check_proc_matches_argv(argv, dir, SLEEP_REAL);
	remove_temp_dir(dir);
}

static void argv_path_lookup(void)
{
	char buf[64];
	char *dir = make_temp_dir(buf);
	char first[96], second[96], path_env[256], tool[128], real[4096];
	char *argv[] = { "kh-tool", "x", NULL };
	char *saved = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
	json_t *action = NULL;
	struct kh_err err = { "" };

	if (!dir)
		goto out;
	(void)snprintf(first, sizeof(first), "%s/a", dir);
	(void)snprintf(second, sizeof(second), "%s/b", dir);
	CHECK_INT(mkdir(first, 0755), 0);
	CHECK_INT(mkdir(second, 0755), 0);
	/* Not executable in the first dir: the lookup goes on to the second. */
	(void)snprintf(tool, sizeof(tool), "%s/kh-tool", first);
	write_file(tool, "#!/bin/sh\n", 10, 0644);
	(void)snprintf(tool, sizeof(tool), "%s/kh-tool", second);
	write_file(tool, "#!/bin/sh\n", 10, 0755);
	(void)snprintf(path_env, sizeof(path_env), "/nonexistent:%s:%s",
		       first, second);
	(void)setenv("PATH", path_env, 1);
	CHECK_INT(kh_action_from_argv(argv, &action, &err), 0);
	CHECK(realpath(tool, real) != NULL);
	CHECK_STR(json_string_value(json_object_get(action, "exe")), real);
	CHECK_STR(json_string_value(json_array_get(json_object_get(action,
								  "argv"), 0)),
		  "kh-tool");
	json_decref(action);
	action = NULL;

	(void)setenv("PATH", first, 1);
	CHECK_INT(kh_action_from_argv(argv, &action, &err), -ENOENT);
	CHECK(action == NULL);
	CHECK(strstr(err.msg, "\"kh-tool\" not found in PATH") != NULL);

	/* Unset PATH falls back to /usr/local/bin:/usr/bin:/bin. */
	(void)unsetenv("PATH");
	argv[0] = "sleep";
	CHECK_INT(kh_action_from_argv(argv, &action, &err), 0);
	CHECK_STR(json_string_value(json_object_get(action, "exe")), SLEEP_REAL);
	json_decref(action);
out:
	if (saved)
		(void)setenv("PATH", saved, 1);
	free(saved);
	remove_temp_dir(dir);
}

static void argv_errors_table(void)
{
	static char big[KH_ACTION_MAX_CMDLINE];
	static const struct {
		const char *arg0;
		const char *arg1;
		int rc;
		const char *expect;
	} cases[] = {
		{ "/bin/sleep", "1", 0, NULL },
		{ "", NULL, -EINVAL, "argv[0] is missing" },
		{ "/nonexistent/kh-tool", NULL, -ENOENT, "/nonexistent/kh-tool" },
		{ "/tmp", NULL, -EACCES, "/tmp is not an executable regular" },
		{ "/etc/passwd", NULL, -EACCES, "/etc/passwd is not an executable" },
		{ "/bin/sleep", "\xff\xfe", -EILSEQ, "argv[1] is not valid UTF-8" },
		{ "/bin/sleep", big, -E2BIG, "reads at most 131072 bytes" },
	};

	memset(big, 'x', sizeof(big) - 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = { (char *)cases[i].arg0, (char *)cases[i].arg1,
				 NULL };
		json_t *action = (json_t *)&action;
		struct kh_err err = { "" };
		int rc = kh_action_from_argv(argv, &action, &err);

		if (rc != cases[i].rc)
			kh_test_fail(__FILE__, __LINE__, "case %zu: rc %d, "
				     "expected %d (%s)", i, rc, cases[i].rc,
				     err.msg);
		if (rc == 0)
			CHECK_STR(json_string_value(json_object_get(action,
								    "exe")),
				  SLEEP_REAL);
		if (rc != 0 && action != NULL)
			kh_test_fail(__FILE__, __LINE__, "case %zu: output "
				     "not cleared", i);
		if (cases[i].expect && !strstr(err.msg, cases[i].expect))
			kh_test_fail(__FILE__, __LINE__, "case %zu: error "
				     "\"%s\" lacks \"%s\"", i, err.msg,
				     cases[i].expect);
		if (rc == 0)
			json_decref(action);
	}
}

/*
 * Fake /proc/<pid> directories: "exe" is a symlink and "cmdline" a file
 * with the given bytes, which exercises the parsing without needing a
 * process that rewrites its own command line.
 */
struct fake_proc {
	const char *name;
	const char *exe;     /* symlink target; NULL for no exe entry */
	const char *cmdline; /* NULL for no cmdline entry */
	size_t cmdline_len;
	int rc;
	const char *argv;    /* expected argv as JSON when rc is 0 */
};

#define CMD(s) s, sizeof(s) - 1

static const struct fake_proc fake_procs[] = {
	{ "trailing NUL", "/bin/sleep", CMD("sleep\0" "5\0"), 0,
	  "[\"sleep\", \"5\"]" },
	{ "no trailing NUL", "/bin/sleep", CMD("sleep\0" "5"), 0,
	  "[\"sleep\", \"5\"]" },
	{ "empty argument", "/bin/sleep", CMD("a\0\0" "b\0"), 0,
	  "[\"a\", \"\", \"b\"]" },
	{ "rewritten without NULs", "/bin/sleep", CMD("worker: idle x"), 0,
	  "[\"worker: idle x\"]" },
	{ "lone NUL", "/bin/sleep", CMD("\0"), 0, "[\"\"]" },
	{ "empty cmdline", "/bin/sleep", CMD(""), -ENOEXEC, NULL },
	{ "kernel thread", NULL, CMD(""), -ENOEXEC, NULL },
	{ "gone", NULL, NULL, 0, -ESRCH, NULL },
	{ "deleted binary", "/usr/bin/sleep (deleted)", CMD("sleep\0"),
	  -ENOEXEC, NULL },
	{ "invalid UTF-8", "/bin/sleep", CMD("sleep\0\xc3\0"), -EILSEQ, NULL },
};

static int make_fake_proc(const char *dir, const struct fake_proc *f)
{
	char path[128];

	(void)snprintf(path, sizeof(path), "%s/exe", dir);
	if (f->exe && symlink(f->exe, path) < 0)
		return -1;
	(void)snprintf(path, sizeof(path), "%s/cmdline", dir);
	if (f->cmdline)
		write_file(path, f->cmdline, f->cmdline_len, 0644);
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void fake_proc_table(void)
{
	for (size_t i = 0; i < sizeof(fake_procs) / sizeof(fake_procs[0]); i++) {
		const struct fake_proc *f = &fake_procs[i];
		char buf[64];
		char *dir = make_temp_dir(buf);
		int dirfd = dir ? make_fake_proc(dir, f) : -1;
		json_t *action = (json_t *)&action;
		json_t *want = f->argv ? parse_json(f->argv) : NULL;
		struct kh_err err = { "" };
		int rc;

		if (dirfd < 0) {
			kh_test_fail(__FILE__, __LINE__, "%s: setup failed",
				     f->name);
			remove_temp_dir(dir);
			json_decref(want);
			continue;
		}
		rc = kh_action_from_proc(4242, dirfd, &action, &err);
		if (rc != f->rc)
			kh_test_fail(__FILE__, __LINE__, "%s: rc %d, expected "
				     "%d (%s)", f->name, rc, f->rc, err.msg);
		else if (rc == 0 && !json_equal(json_object_get(action, "argv"),
						want))
			kh_test_fail(__FILE__, __LINE__, "%s: argv differs",
				     f->name);
		else if (rc != 0 && action != NULL)
			kh_test_fail(__FILE__, __LINE__, "%s: output not "
				     "cleared", f->name);
		if (rc == 0)
			CHECK_STR(json_string_value(json_object_get(action,
								    "exe")),
				  "/bin/sleep");
		if (rc == 0)
			json_decref(action);
		json_decref(want);
		(void)close(dirfd);
		remove_temp_dir(dir);
	}
}

static void cmdline_size_limit(void)
{
	static char cmdline[KH_ACTION_MAX_CMDLINE + 1];
	static const struct {
		size_t len;
		int rc;
	} cases[] = {
		{ KH_ACTION_MAX_CMDLINE, 0 },
		{ KH_ACTION_MAX_CMDLINE + 1, -E2BIG },
	};

	memset(cmdline, 'a', sizeof(cmdline));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake_proc f = { "limit", "/bin/sleep", cmdline,
				       cases[i].len, cases[i].rc, NULL };
		char buf[64];
		char *dir = make_temp_dir(buf);
		int dirfd = dir ? make_fake_proc(dir, &f) : -1;
		json_t *action = NULL;
		struct kh_err err = { "" };

		CHECK_INT(kh_action_from_proc(1, dirfd, &action, &err),
			  cases[i].rc);
		json_decref(action);
		if (dirfd >= 0)
			(void)close(dirfd);
		remove_temp_dir(dir);
	}
}

static void gone_process(void)
{
	char dir[32];
	json_t *action = NULL;
	struct kh_err err = { "" };
	int dirfd;
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	CHECK(pid > 0);
	(void)snprintf(dir, sizeof(dir), "/proc/%d", (int)pid);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	(void)waitpid(pid, NULL, 0);
	/* Both a held dirfd and a fresh lookup see the process gone. */
	CHECK_INT(kh_action_from_proc(pid, dirfd, &action, &err), -ESRCH);
	CHECK(action == NULL);
	CHECK_INT(kh_action_from_proc(pid, -1, &action, &err), -ESRCH);
	if (dirfd >= 0)
		(void)close(dirfd);
}

static void deleted_binary(void)
{
	char buf[64];
	char prog[96];
	char *dir = make_temp_dir(buf);
	char *argv[] = { prog, "30", NULL };
	json_t *action = NULL;
	struct kh_err err = { "" };
	int stdin_fd = -1;
	pid_t pid = -1;

	if (!dir)
		return;
	(void)snprintf(prog, sizeof(prog), "%s/prog", dir);
	CHECK_INT(copy_file("/bin/sleep", prog), 0);
	pid = spawn(argv, NULL, &stdin_fd);
	CHECK_INT(unlink(prog), 0);
	CHECK_INT(kh_action_from_proc(pid, -1, &action, &err), -ENOEXEC);
	CHECK(strstr(err.msg, "was deleted after exec") != NULL);
	CHECK(action == NULL);
	reap(pid, stdin_fd);
	remove_temp_dir(dir);
}

/*
 * Runs in a child with its own mount namespace: starts a copy of sleep,
 * mounts a tmpfs over its directory and puts another file at the same
 * path. The link text stays the same but names another inode. Returns
 * 0 when kh_action_from_proc rejects it, else a code saying what failed.
 */
static int replaced_binary_child(void)
{
	char dir[] = "/tmp/kh-test-replace.XXXXXX";
	char prog[64];
	char *argv[] = { prog, "30", NULL };
	json_t *action = NULL;
	struct kh_err err = { "" };
	int stdin_fd = -1;
	int result = 0;
	pid_t pid;

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 10;
	if (!mkdtemp(dir))
		return 11;
	(void)snprintf(prog, sizeof(prog), "%s/prog", dir);
	if (copy_file("/bin/sleep", prog) < 0)
		return 12;
	pid = spawn(argv, NULL, &stdin_fd);
	if (pid < 0)
		return 13;
	if (mount("kh-test", dir, "tmpfs", 0, "mode=0700") < 0 ||
	    copy_file("/bin/sleep", prog) < 0)
		result = 14;
	else if (kh_action_from_proc(pid, -1, &action, &err) != -ENOEXEC ||
		 !strstr(err.msg, "replaced after exec"))
		result = 15;
	json_decref(action);
	reap(pid, stdin_fd);
	(void)umount2(dir, MNT_DETACH);
	(void)unlink(prog);
	(void)rmdir(dir);
	return result;
}

static void replaced_binary(void)
{
	int status = 0;
	pid_t helper = fork();

	if (helper == 0)
		_exit(replaced_binary_child());
	CHECK(helper > 0);
	CHECK_INT(waitpid(helper, &status, 0), helper);
	CHECK(WIFEXITED(status));
	/* 10 means no private mount namespace: run the tests as root. */
	CHECK_INT(WEXITSTATUS(status), 0);
}

static const struct kh_test_case cases[] = {
	{ "validate table", validate_table },
	{ "hash vectors", hash_vectors },
	{ "hash rejects invalid", hash_rejects_invalid },
	{ "proc matches argv sleep", proc_matches_argv_sleep },
	{ "proc matches argv odd args", proc_matches_argv_odd_args },
	{ "proc matches argv symlink", proc_matches_argv_symlink },
	{ "argv path lookup", argv_path_lookup },
	{ "argv errors table", argv_errors_table },
	{ "fake proc table", fake_proc_table },
	{ "cmdline size limit", cmdline_size_limit },
	{ "gone process", gone_process },
	{ "deleted binary", deleted_binary },
	{ "replaced binary", replaced_binary },
};

int main(void)
{
	return KH_TEST_RUN("action", cases);
}
