/*
 * Confinement profiles: built-in names, strict parsing with JSON paths
 * and lines, file ownership checks, expansion, and the filter and
 * ruleset applied in a forked child that checks itself. The full escape
 * matrix runs in tests/integration/confine_escape.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "keyhole/confine.h"

/* The x32 ABI marks its syscall numbers with this bit (asm/unistd.h). */
#define X32_SYSCALL_BIT 0x40000000

static char work[64];

static const struct kh_confine_vars test_vars = {
	.uid = 1000,
	.home = "/home/agent",
	.permits_dir = "/run/kp",
	.secrets_mount = "/run/ks",
};

static void make_work(void)
{
	kh_test_mkdtemp(work, sizeof(work), "/var/tmp/kh-test-confine.XXXXXX");
}

static void remove_work(void)
{
	kh_test_rmtree(work);
}

/* Builds "<work>/<rest>" (static buffer). */
static const char *in_work(const char *rest)
{
	static char path[PATH_MAX];

	(void)snprintf(path, sizeof(path), "%s/%s", work, rest);
	return path;
}

static void write_file(const char *rest, const char *text, mode_t mode)
{
	const char *path = in_work(rest);
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK(fputs(text, f) >= 0);
	CHECK_INT(fclose(f), 0);
	CHECK_INT(chmod(path, mode), 0);
}

static void count_report(const char *message, void *ctx)
{
	fprintf(stderr, "  unresolved: %s\n", message);
	(*(int *)ctx)++;
}

static void test_builtin_names_resolve(void)
{
	int reported = 0;

	CHECK_INT(kh_confine_check_names(count_report, &reported), 0);
	CHECK_INT(reported, 0);
}

/* Returns true when the JSON array of strings contains s. */
static bool array_has(const json_t *array, const char *s)
{
	const json_t *item;
	size_t i;

	json_array_foreach(array, i, item) {
		if (strcmp(json_string_value(item), s) == 0)
			return true;
	}
	return false;
}

static const json_t *fs_list(const json_t *profile, const char *key)
{
	return json_object_get(json_object_get(profile, "filesystem"), key);
}

static void test_builtin_agent_expands(void)
{
	struct kh_confine_vars vars = test_vars;
	struct kh_confine_profile *profile = NULL;
	struct kh_err err = { "" };
	char ssh_keys[PATH_MAX];
	json_t *value;

	/* "~" expands only to a home directory that the user owns. */
	make_work();
	CHECK_INT(chown(work, test_vars.uid, 0), 0);
	vars.home = work;
	(void)snprintf(ssh_keys, sizeof(ssh_keys), "%s/.ssh/id_*", work);
	CHECK_INT(kh_confine_load(work, "agent", &vars, &profile, &err), 0);
	value = kh_confine_to_json(profile);
	CHECK(value != NULL);
	CHECK_STR(json_string_value(json_object_get(value, "landlock_missing")),
		  "continue");
	CHECK(array_has(fs_list(value, "read"), "/run/kp/1000"));
	CHECK(array_has(fs_list(value, "read"), "/run/ks"));
	CHECK(array_has(fs_list(value, "read_write"), work));
	CHECK(array_has(fs_list(value, "exclude"), ssh_keys));
	CHECK(array_has(fs_list(value, "exclude"), "/etc/shadow"));
	CHECK(array_has(json_object_get(json_object_get(value, "seccomp"),
					"deny"), "ptrace"));
	CHECK(array_has(json_object_get(json_object_get(value, "seccomp"),
					"enosys"), "clone3"));
	json_decref(value);
	kh_confine_free(profile);
	remove_work();
}

static void test_builtin_strict(void)
{
	struct kh_confine_profile *profile = NULL;
	struct kh_err err = { "" };
	json_t *value;

	make_work();
	CHECK_INT(kh_confine_load(work, "strict", &test_vars, &profile, &err),
		  0);
	value = kh_confine_to_json(profile);
	CHECK(json_is_false(json_object_get(value, "dumpable")));
	CHECK_STR(json_string_value(json_object_get(value, "landlock_missing")),
		  "refuse");
	CHECK(json_is_true(json_object_get(json_object_get(value, "network"),
					   "unix_only")));
	/* Inherited from its base, agent. */
	CHECK(array_has(fs_list(value, "read"), "/etc"));
	json_decref(value);
	kh_confine_free(profile);
	remove_work();
}

static void test_foreign_home_drops_rules(void)
{
	struct kh_confine_vars vars = test_vars;
	struct kh_confine_profile *profile = NULL;
	struct kh_err err = { "" };
	json_t *value;

	/* work belongs to root, not to uid 1000, like /usr/sbin for daemon. */
	make_work();
	vars.home = work;
	CHECK_INT(kh_confine_load(work, "agent", &vars, &profile, &err), 0);
	value = kh_confine_to_json(profile);
	CHECK(!array_has(fs_list(value, "read_write"), work));
	CHECK(array_has(fs_list(value, "read_write"), "/tmp"));
	json_decref(value);
	kh_confine_free(profile);
	remove_work();
}

static void test_home_unset_drops_rules(void)
{
	struct kh_confine_vars vars = test_vars;
	struct kh_confine_profile *profile = NULL;
	struct kh_err err = { "" };
	json_t *value;

	vars.home = NULL;
	vars.secrets_mount = NULL;
	make_work();
	CHECK_INT(kh_confine_load(work, "agent", &vars, &profile, &err), 0);
	value = kh_confine_to_json(profile);
	CHECK(!array_has(fs_list(value, "read_write"), "/home/agent"));
	CHECK(!array_has(fs_list(value, "read"), "/run/ks"));
	CHECK(array_has(fs_list(value, "read_write"), "/tmp"));
	CHECK(array_has(fs_list(value, "exclude"), "/etc/keyhole"));
	json_decref(value);
	kh_confine_free(profile);
	remove_work();
}

/* The copies that admins start from must load to the built-ins. */
static void test_packaged_copies_match(void)
{
	char dir[PATH_MAX];

	(void)snprintf(dir, sizeof(dir), "%s/../packaging/confine.d",
		       kh_test_data_dir());
	make_work();
	for (size_t i = 0; kh_confine_builtin_names[i]; i++) {
		const char *name = kh_confine_builtin_names[i];
		struct kh_confine_profile *builtin = NULL, *copy = NULL;
		struct kh_err err = { "" };
		json_t *a, *b;

		CHECK_INT(kh_confine_load(work, name, &test_vars, &builtin,
					  &err), 0);
		CHECK_INT(kh_confine_load(dir, name, &test_vars, &copy, &err),
			  0);
		if (err.msg[0])
			kh_test_fail(__FILE__, __LINE__, "%s", err.msg);
		a = kh_confine_to_json(builtin);
		b = kh_confine_to_json(copy);
		if (!json_equal(a, b))
			kh_test_fail(__FILE__, __LINE__, "%s/%s.json differs "
				     "from the built-in profile", dir, name);
		json_decref(a);
		json_decref(b);
		kh_confine_free(builtin);
		kh_confine_free(copy);
	}
	remove_work();
}

static void test_base_adds_to_builtin(void)
{
	struct kh_confine_profile *profile = NULL;
	struct kh_err err = { "" };
	json_t *value, *deny;

	make_work();
	write_file("more.json",
		   "{\"base\": \"agent\", \"dumpable\": false,\n"
		   " \"seccomp\": {\"deny\": [\"chroot\"]},\n"
		   " \"filesystem\": {\"read\": [\"/opt/{uid}\"]}}\n", 0644);
	CHECK_INT(kh_confine_load(work, "more", &test_vars, &profile, &err),
		  0);
	value = kh_confine_to_json(profile);
	deny = json_object_get(json_object_get(value, "seccomp"), "deny");
	CHECK(array_has(deny, "chroot"));
	CHECK(array_has(deny, "ptrace"));
	CHECK(array_has(fs_list(value, "read"), "/opt/1000"));
	CHECK(array_has(fs_list(value, "read"), "/etc"));
	CHECK(json_is_false(json_object_get(value, "dumpable")));
	json_decref(value);
	kh_confine_free(profile);
	remove_work();
}

struct bad_profile {
	const char *text;
	const char *expected; /* substring of the error */
};

static const struct bad_profile bad_profiles[] = {
	{ "{\"bogus\": 1}", ":1: $.bogus: unknown key" },
	{ "{\"dumpable\": true, \"dumpable\": false}", "duplicate" },
	{ "{\"seccomp\": {\"deny\": [\"ptrace\", \"ptrcae\"]}}",
	  "$.seccomp.deny[1]: unknown syscall name \"ptrcae\"" },
	{ "{\"seccomp\": {\"allow\": []}}", "$.seccomp.allow: unknown key" },
	{ "{\n  \"filesystem\": {\n    \"read\": [\"/etc\", \"etc\"]\n  }\n}",
	  ":3: $.filesystem.read[1]: \"etc\": not an absolute path" },
	{ "{\"filesystem\": {\"read\": [\"/usr/../etc\"]}}",
	  "$.filesystem.read[0]" },
	{ "{\"filesystem\": {\"read\": [\"/opt/*\"]}}",
	  "wildcards are only allowed in filesystem.exclude" },
	{ "{\"filesystem\": {\"read\": [\"{home}/x\"]}}",
	  "unknown variable" },
	{ "{\"filesystem\": {\"read\": [\"~root/x\"]}}", "~user" },
	{ "{\"filesystem\": {\"read\": \"/etc\"}}",
	  "$.filesystem.read: expected an array of paths, not a string" },
	{ "{\"network\": {\"tcp_connect\": [443, 0]}}",
	  "$.network.tcp_connect[1]: expected a TCP port number" },
	{ "{\"network\": {\"tcp_bind\": [65536]}}",
	  "$.network.tcp_bind[0]" },
	{ "{\"network\": {\"unix_only\": 1}}",
	  "$.network.unix_only: expected true or false" },
	{ "{\"landlock_missing\": \"ignore\"}", "$.landlock_missing" },
	{ "{\"base\": \"nobody\"}", "$.base: \"nobody\" is not a built-in" },
	{ "[]", "expected a JSON object" },
	{ "{\"description\": 5", "invalid JSON" },
};

static void test_bad_profiles(void)
{
	make_work();
	for (size_t i = 0; i < sizeof(bad_profiles) / sizeof(bad_profiles[0]);
	     i++) {
		struct kh_confine_profile *profile = NULL;
		struct kh_err err = { "" };
		int rc;

		write_file("bad.json", bad_profiles[i].text, 0644);
		rc = kh_confine_load(work, "bad", &test_vars, &profile, &err);
		if (rc != -EINVAL || profile)
			kh_test_fail(__FILE__, __LINE__, "case %zu: rc %d", i,
				     rc);
		if (!strstr(err.msg, bad_profiles[i].expected))
			kh_test_fail(__FILE__, __LINE__, "case %zu: \"%s\" "
				     "lacks \"%s\"", i, err.msg,
				     bad_profiles[i].expected);
		if (!strstr(err.msg, in_work("bad.json")))
			kh_test_fail(__FILE__, __LINE__, "case %zu: \"%s\" "
				     "does not name the file", i, err.msg);
		kh_confine_free(profile);
	}
	remove_work();
}

static void test_unsafe_file_rejected(void)
{
	struct kh_confine_profile *profile = NULL;
	struct kh_err err = { "" };

	make_work();
	write_file("agent.json", "{}", 0664);
	CHECK_INT(kh_confine_load(work, "agent", &test_vars, &profile, &err),
		  -EPERM);
	CHECK(strstr(err.msg, "chmod go-w") != NULL);
	CHECK(profile == NULL);
	remove_work();
}

static void test_missing_and_bad_names(void)
{
	struct kh_confine_profile *profile = NULL;
	struct kh_err err = { "" };

	make_work();
	CHECK_INT(kh_confine_load(work, "nope", &test_vars, &profile, &err),
		  -ENOENT);
	CHECK(strstr(err.msg, in_work("nope.json")) != NULL);
	CHECK(strstr(err.msg, "built-in") != NULL);
	CHECK_INT(kh_confine_load(work, "../etc/x", &test_vars, &profile,
				  &err), -EINVAL);
	CHECK_INT(kh_confine_load(work, "", &test_vars, &profile, &err),
		  -EINVAL);
	CHECK(profile == NULL);
	remove_work();
}

/*
 * A child process reports a failed check as one line on a pipe, so the
 * parent can record it with the child's file and line.
 */
static int report_fd = -1;

__attribute__((format(printf, 2, 3)))
static void child_fail(int line, const char *fmt, ...)
{
	char text[300];
	char msg[360];
	va_list ap;
	int n;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	n = snprintf(msg, sizeof(msg), "line %d: %s\n", line, text);
	if (n > 0)
		(void)!write(report_fd, msg, (size_t)n);
}

/* Checks that call (returning -1 on failure) failed with errno e. */
#define CHILD_ERRNO(call, e)                                               \
	do {                                                               \
		long r_;                                                   \
		errno = 0;                                                 \
		r_ = (long)(call);                                         \
		if (r_ != -1 || errno != (e))                              \
			child_fail(__LINE__, "%s returned %ld, errno %d "  \
				   "(%s), expected errno %d", #call, r_,   \
				   errno, strerror(errno), (e));           \
	} while (0)

#define CHILD_OK(call)                                                     \
	do {                                                               \
		long r_;                                                   \
		errno = 0;                                                 \
		r_ = (long)(call);                                         \
		if (r_ < 0)                                                \
			child_fail(__LINE__, "%s failed: %s", #call,       \
				   strerror(errno));                       \
	} while (0)

/*
 * Loads profile name from work, applies it in a child and runs check
 * there. Returns the child's wait status; failures go to the harness.
 */
static int run_confined(const char *name, void (*check)(void))
{
	struct kh_confine_profile *profile = NULL;
	struct kh_err err = { "" };
	char buf[1024];
	int fds[2], status = -1;
	ssize_t n;
	pid_t pid;

	CHECK_INT(kh_confine_load(work, name, &test_vars, &profile, &err), 0);
	if (!profile) {
		kh_test_fail(__FILE__, __LINE__, "%s", err.msg);
		return -1;
	}
	CHECK_INT(pipe(fds), 0);
	(void)fflush(NULL);
	pid = fork();
	if (pid == 0) {
		report_fd = fds[1];
		(void)close(fds[0]);
		if (kh_confine_apply(profile, NULL, &err) < 0) {
			child_fail(__LINE__, "apply: %s", err.msg);
			_exit(1);
		}
		check();
		_exit(0);
	}
	(void)close(fds[1]);
	while ((n = read(fds[0], buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		kh_test_fail(__FILE__, __LINE__, "child: %s", buf);
	}
	(void)close(fds[0]);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	kh_confine_free(profile);
	return status;
}

static int clone_with(unsigned long flags)
{
	long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);

	if (pid == 0)
		_exit(0);
	if (pid > 0)
		(void)waitpid((pid_t)pid, NULL, 0);
	return pid > 0 ? 0 : -1;
}

static void check_seccomp_denials(void)
{
	char c = 'x';
	int fd = open("/dev/null", O_RDONLY);

	CHILD_ERRNO(ptrace(PTRACE_TRACEME, 0, NULL, NULL), EPERM);
	CHILD_ERRNO(unshare(CLONE_NEWUSER), EPERM);
	CHILD_ERRNO(unshare(0), EPERM);
	CHILD_ERRNO(syscall(SYS_clone3, NULL, 0), ENOSYS);
	CHILD_ERRNO(clone_with(CLONE_NEWNS), EPERM);
	CHILD_ERRNO(clone_with(CLONE_NEWUSER | CLONE_NEWNET), EPERM);
	CHILD_OK(clone_with(0));
	CHILD_ERRNO(ioctl(fd, TIOCSTI, &c), EPERM);
	CHILD_ERRNO(syscall(SYS_ioctl, fd, 0x100000000UL | TIOCSTI, &c), EPERM);
	CHILD_ERRNO(ioctl(fd, TIOCLINUX, &c), EPERM);
	/* Any other ioctl reaches the kernel: /dev/null is not a tty. */
	CHILD_ERRNO(ioctl(fd, TIOCGPGRP, &c), ENOTTY);
	CHILD_ERRNO(personality(PER_LINUX32), EPERM);
	CHILD_ERRNO(personality(ADDR_NO_RANDOMIZE), EPERM);
	CHILD_OK(personality(0xffffffff));
	CHILD_OK(personality(PER_LINUX));
	CHILD_ERRNO(syscall(SYS_io_uring_setup, 1, NULL), EPERM);
	CHILD_ERRNO(syscall(SYS_keyctl, 0, 0, 0, 0, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_pidfd_getfd, -1, 0, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_mount, NULL, NULL, NULL, 0, NULL), EPERM);
	CHILD_OK(getpid());
	CHILD_OK(socket(AF_INET, SOCK_DGRAM, 0));
	CHILD_OK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		child_fail(__LINE__, "no_new_privs is not set");
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1)
		child_fail(__LINE__, "agent must leave the process dumpable");
}

static void test_apply_seccomp(void)
{
	make_work();
	write_file("s.json", "{\"base\": \"agent\"}", 0644);
	CHECK_INT(run_confined("s", check_seccomp_denials), 0);
	remove_work();
}

static void call_x32_getpid(void)
{
	(void)syscall(X32_SYSCALL_BIT | SYS_getpid);
	child_fail(__LINE__, "an x32 syscall returned");
}

/* The x32 ABI shares the x86_64 audit arch, so only the number shows it. */
static void test_x32_call_killed(void)
{
	int status;

	make_work();
	write_file("s.json", "{\"base\": \"agent\"}", 0644);
	status = run_confined("s", call_x32_getpid);
	CHECK(WIFSIGNALED(status));
	CHECK_INT(WIFSIGNALED(status) ? WTERMSIG(status) : 0, SIGSYS);
	remove_work();
}

static void check_strict(void)
{
	CHILD_ERRNO(socket(AF_INET, SOCK_STREAM, 0), EPERM);
	CHILD_ERRNO(socket(AF_INET6, SOCK_DGRAM, 0), EPERM);
	CHILD_ERRNO(socket(AF_NETLINK, SOCK_RAW, 0), EPERM);
	CHILD_OK(socket(AF_UNIX, SOCK_STREAM, 0));
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		child_fail(__LINE__, "strict must clear dumpable");
}

static void test_apply_strict(void)
{
	make_work();
	CHECK_INT(run_confined("strict", check_strict), 0);
	remove_work();
}

static char allowed_dir[128];

/* Opens allowed_dir/rest for reading; returns the fd or -1. */
static int open_in_allowed(const char *rest)
{
	char path[256];

	(void)snprintf(path, sizeof(path), "%s/%s", allowed_dir, rest);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static void check_landlock(void)
{
	CHILD_OK(open_in_allowed("public"));
	CHILD_OK(open_in_allowed("sub/other"));
	/* Excluded, so the explicit rule for sub/deep is dropped too. */
	CHILD_ERRNO(open_in_allowed("sub/deep/ok"), EACCES);
	CHILD_OK(open_in_allowed("."));
	CHILD_ERRNO(open_in_allowed("secret"), EACCES);
	CHILD_ERRNO(open_in_allowed("id_rsa"), EACCES);
	CHILD_ERRNO(open_in_allowed("sub/deep/secret"), EACCES);
	CHILD_OK(open_in_allowed("sub2/deep/ok"));
	CHILD_ERRNO(open_in_allowed("sub2/deep/secret"), EACCES);
	CHILD_ERRNO(open_in_allowed("link-to-secret"), EACCES);
	CHILD_ERRNO(open("/etc/hostname", O_RDONLY), EACCES);
	{
		char path[256];

		(void)snprintf(path, sizeof(path), "%s/public", allowed_dir);
		CHILD_ERRNO(open(path, O_WRONLY), EACCES);
		(void)snprintf(path, sizeof(path), "%s/new", allowed_dir);
		CHILD_ERRNO(open(path, O_WRONLY | O_CREAT, 0600), EACCES);
	}
}

static void test_apply_landlock_excludes(void)
{
	char profile[1024];

	if (kh_confine_landlock_abi() == 0) {
		printf("SKIP: confine/apply_landlock_excludes: no Landlock\n");
		return;
	}
	make_work();
	(void)snprintf(allowed_dir, sizeof(allowed_dir), "%.64s/a", work);
	CHECK_INT(mkdir(allowed_dir, 0755), 0);
	CHECK_INT(mkdir(in_work("a/sub"), 0755), 0);
	CHECK_INT(mkdir(in_work("a/sub/deep"), 0755), 0);
	write_file("a/public", "p", 0644);
	write_file("a/secret", "s", 0644);
	write_file("a/id_rsa", "k", 0644);
	write_file("a/sub/other", "o", 0644);
	write_file("a/sub/deep/ok", "o", 0644);
	write_file("a/sub/deep/secret", "s", 0644);
	CHECK_INT(mkdir(in_work("a/sub2"), 0755), 0);
	CHECK_INT(mkdir(in_work("a/sub2/deep"), 0755), 0);
	write_file("a/sub2/deep/ok", "o", 0644);
	write_file("a/sub2/deep/secret", "s", 0644);
	CHECK_INT(symlink("secret", in_work("a/link-to-secret")), 0);
	(void)snprintf(profile, sizeof(profile),
		       "{\"filesystem\": {\"read\": [\"%s\", \"%s/sub/deep\"],\n"
		       " \"exclude\": [\"%s/secret\", \"%s/id_*\", "
		       "\"%s/sub/deep\", \"%s/sub2/deep/secret\"]}}\n",
		       allowed_dir, allowed_dir, allowed_dir, allowed_dir,
		       allowed_dir, allowed_dir);
	write_file("ll.json", profile, 0644);
	CHECK_INT(run_confined("ll", check_landlock), 0);
	remove_work();
}

/* Builds "<allowed_dir>/<rest>" (static buffer). */
static const char *in_allowed(const char *rest)
{
	static char path[2][256];
	static int next;

	next ^= 1;
	(void)snprintf(path[next], sizeof(path[next]), "%s/%s", allowed_dir,
		       rest);
	return path[next];
}

/*
 * Rules are bound to inodes, but the exclude walk matches names. A new
 * name for an excluded inode, made by one confined process, would get
 * full rights the next time the profile is applied.
 */
static void check_exclude_rename_denied(void)
{
	CHILD_ERRNO(rename(in_allowed("creds"), in_allowed("creds-moved")),
		    EACCES);
	CHILD_ERRNO(rename(in_allowed("sub"), in_allowed("sub-moved")),
		    EACCES);
	CHILD_ERRNO(rename(in_allowed("id_rsa"), in_allowed("key")), EACCES);
	CHILD_ERRNO(link(in_allowed("id_rsa"), in_allowed("key")), EACCES);
	CHILD_ERRNO(link(in_allowed("id_rsa"), in_allowed("work/key")),
		    EXDEV);
	CHILD_ERRNO(unlink(in_allowed("public")), EACCES);
	CHILD_OK(open(in_allowed("public"), O_WRONLY | O_CLOEXEC));
	CHILD_OK(rename(in_allowed("work/a"), in_allowed("work/b")));
	CHILD_OK(open(in_allowed("work/new"), O_RDWR | O_CREAT | O_CLOEXEC,
		      0600));
}

static void test_exclude_rename_denied(void)
{
	char profile[1024];

	if (kh_confine_landlock_abi() == 0) {
		printf("SKIP: confine/exclude_rename_denied: no Landlock\n");
		return;
	}
	make_work();
	(void)snprintf(allowed_dir, sizeof(allowed_dir), "%.64s/a", work);
	CHECK_INT(mkdir(allowed_dir, 0755), 0);
	CHECK_INT(mkdir(in_work("a/creds"), 0755), 0);
	CHECK_INT(mkdir(in_work("a/sub"), 0755), 0);
	CHECK_INT(mkdir(in_work("a/work"), 0755), 0);
	write_file("a/public", "p", 0644);
	write_file("a/id_rsa", "k", 0644);
	write_file("a/creds/key", "k", 0644);
	write_file("a/sub/secret", "s", 0644);
	write_file("a/work/a", "w", 0644);
	(void)snprintf(profile, sizeof(profile),
		       "{\"filesystem\": {\"read_write\": [\"%s\"],\n"
		       " \"exclude\": [\"%s/creds\", \"%s/id_*\", "
		       "\"%s/sub/secret\"]}}\n",
		       allowed_dir, allowed_dir, allowed_dir, allowed_dir);
	write_file("rw.json", profile, 0644);
	CHECK_INT(run_confined("rw", check_exclude_rename_denied), 0);
	remove_work();
}

static const struct kh_test_case cases[] = {
	{ "builtin_names_resolve", test_builtin_names_resolve },
	{ "builtin_agent_expands", test_builtin_agent_expands },
	{ "builtin_strict", test_builtin_strict },
	{ "home_unset_drops_rules", test_home_unset_drops_rules },
	{ "foreign_home_drops_rules", test_foreign_home_drops_rules },
	{ "packaged_copies_match", test_packaged_copies_match },
	{ "base_adds_to_builtin", test_base_adds_to_builtin },
	{ "bad_profiles", test_bad_profiles },
	{ "unsafe_file_rejected", test_unsafe_file_rejected },
	{ "missing_and_bad_names", test_missing_and_bad_names },
	{ "apply_seccomp", test_apply_seccomp },
	{ "x32_call_killed", test_x32_call_killed },
	{ "apply_strict", test_apply_strict },
	{ "apply_landlock_excludes", test_apply_landlock_excludes },
	{ "exclude_rename_denied", test_exclude_rename_denied },
};

int main(void)
{
	return KH_TEST_RUN("confine", cases);
}
