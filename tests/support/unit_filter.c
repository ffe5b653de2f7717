/*
 * unit_filter: runs a command under a seccomp filter built like the one
 * systemd builds from keyholed.service, for tests/integration/
 * unit_sandbox.sh.
 *
 * Usage: unit_filter [OPTION]... -- COMMAND [ARG]...
 *   --syscalls FILE   allow the system calls named in FILE, one a line
 *                     (the expansion of SystemCallFilter=); names this
 *                     architecture lacks are skipped, as systemd does
 *   --errno NAME      deny other calls with this errno (EPERM, as
 *                     SystemCallErrorNumber=EPERM); default: kill the
 *                     process, as systemd does without that setting
 *   --families LIST   comma-separated AF_* names that socket() may use
 *                     (RestrictAddressFamilies=); others fail with
 *                     EAFNOSUPPORT
 *   --mdwe            MemoryDenyWriteExecute=yes: mmap with both
 *                     PROT_WRITE and PROT_EXEC, mprotect and
 *                     pkey_mprotect adding PROT_EXEC, and shmat with
 *                     SHM_EXEC fail with EPERM
 *   --lock-personality
 *                     LockPersonality=yes: personality() may only query
 *                     or keep PER_LINUX
 *
 * The filter admits only the native architecture
 * (SystemCallArchitectures=native). The caller sets no_new_privs first
 * (setpriv --no-new-privs), which seccomp requires without CAP_SYS_ADMIN
 * and which the unit sets too.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <unistd.h>

#include <seccomp.h>

/* Highest address family number checked one by one; higher ones fail too. */
#define FAMILY_MAX 64

struct options {
	const char *syscalls;
	const char *families;
	uint32_t deny;
	bool mdwe;
	bool lock_personality;
	char **command;
	/* Which of the restricted calls the list names (see restricted). */
	bool listed[6];
};

/* Calls allowed only for some argument values, in listed[] order. */
static const char *const restricted_calls[] = {
	"socket", "personality", "mmap", "mprotect", "pkey_mprotect", "shmat",
};

static const struct {
	const char *name;
	int value;
} family_names[] = {
	{ "AF_UNIX", AF_UNIX }, { "AF_INET", AF_INET },
	{ "AF_INET6", AF_INET6 }, { "AF_NETLINK", AF_NETLINK },
	{ "AF_PACKET", AF_PACKET },
};

static int usage(void)
{
	fprintf(stderr, "usage: unit_filter [--syscalls FILE] [--errno NAME] "
		"[--families LIST] [--mdwe] [--lock-personality] -- COMMAND "
		"[ARG]...\n");
	return 2;
}

static int parse_errno(const char *name, uint32_t *action)
{
	if (strcmp(name, "EPERM") == 0)
		*action = SCMP_ACT_ERRNO(EPERM);
	else if (strcmp(name, "EACCES") == 0)
		*action = SCMP_ACT_ERRNO(EACCES);
	else if (strcmp(name, "ENOSYS") == 0)
		*action = SCMP_ACT_ERRNO(ENOSYS);
	else
		return -1;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *opts)
{
	int i;

	opts->deny = SCMP_ACT_KILL_PROCESS;
	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		bool more = i + 1 < argc;

		if (strcmp(argv[i], "--syscalls") == 0 && more)
			opts->syscalls = argv[++i];
		else if (strcmp(argv[i], "--families") == 0 && more)
			opts->families = argv[++i];
		else if (strcmp(argv[i], "--errno") == 0 && more) {
			if (parse_errno(argv[++i], &opts->deny) < 0)
				return -1;
		} else if (strcmp(argv[i], "--mdwe") == 0)
			opts->mdwe = true;
		else if (strcmp(argv[i], "--lock-personality") == 0)
			opts->lock_personality = true;
		else
			return -1;
	}
	if (i + 1 >= argc)
		return -1;
	opts->command = argv + i + 1;
	return 0;
}

/* Returns the index of name in restricted_calls, or -1. */
static int restricted_index(const char *name)
{
	for (size_t i = 0; i < sizeof(restricted_calls) /
				       sizeof(restricted_calls[0]); i++) {
		if (strcmp(restricted_calls[i], name) == 0)
			return (int)i;
	}
	return -1;
}

/*
 * Returns whether the options restrict call name by argument, so that
 * the list gives it no unconditional rule, and notes that it is listed.
 */
static bool restricted(struct options *opts, const char *name)
{
	int i = restricted_index(name);

	if (i < 0)
		return false;
	opts->listed[i] = true;
	if (i == 0)
		return opts->families != NULL;
	if (i == 1)
		return opts->lock_personality;
	return opts->mdwe;
}

static bool listed(const struct options *opts, const char *name)
{
	return opts->listed[restricted_index(name)];
}

static int allow_listed(scmp_filter_ctx ctx, struct options *opts)
{
	char line[128];
	FILE *f = fopen(opts->syscalls, "re");
	int count = 0;

	if (!f) {
		perror(opts->syscalls);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		int nr;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || restricted(opts, line))
			continue;
		nr = seccomp_syscall_resolve_name(line);
		if (nr == __NR_SCMP_ERROR)
			continue;
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) < 0) {
			fprintf(stderr, "unit_filter: cannot allow %s\n", line);
			fclose(f);
			return -1;
		}
		count++;
	}
	fclose(f);
	if (count == 0) {
		fprintf(stderr, "unit_filter: %s lists no system call\n",
			opts->syscalls);
		return -1;
	}
	return 0;
}

static int family_value(const char *name)
{
	for (size_t i = 0; i < sizeof(family_names) / sizeof(family_names[0]);
	     i++) {
		if (strcmp(family_names[i].name, name) == 0)
			return family_names[i].value;
	}
	return -1;
}

/* socket(family, ...) is allowed for the listed families only. */
static int restrict_families(scmp_filter_ctx ctx, const char *list,
			     bool socket_listed)
{
	bool allowed[FAMILY_MAX] = { false };
	char copy[256];
	char *save = NULL;
	int r = 0;

	if ((size_t)snprintf(copy, sizeof(copy), "%s", list) >= sizeof(copy))
		return -1;
	for (char *name = strtok_r(copy, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		int family = family_value(name);

		if (family < 0 || family >= FAMILY_MAX) {
			fprintf(stderr, "unit_filter: unknown family %s\n", name);
			return -1;
		}
		allowed[family] = true;
	}
	for (int family = 0; family < FAMILY_MAX && r == 0; family++)
		r = seccomp_rule_add(ctx, allowed[family] && socket_listed ?
				     SCMP_ACT_ALLOW :
				     SCMP_ACT_ERRNO(EAFNOSUPPORT),
				     SCMP_SYS(socket), 1,
				     SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)family));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT),
				     SCMP_SYS(socket), 1,
				     SCMP_A0_32(SCMP_CMP_GE, FAMILY_MAX));
	return r;
}

/*
 * Fails call with EPERM when (arg & bits) == bits, and allows the other
 * values when the list names call.
 */
static int deny_bits(scmp_filter_ctx ctx, const struct options *opts,
		     const char *name, unsigned int arg, uint64_t bits)
{
	struct scmp_arg_cmp has = { arg, SCMP_CMP_MASKED_EQ, bits, bits };
	int call = seccomp_syscall_resolve_name(name);
	int r = 0;

	/* libseccomp rejects a rule whose action is the default action. */
	if (opts->deny != SCMP_ACT_ERRNO(EPERM))
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), call, 1, has);

	/* Every other value of the masked bits is allowed, one rule each. */
	for (uint64_t v = 0; r == 0 && listed(opts, name) && v < bits; v++) {
		struct scmp_arg_cmp other = { arg, SCMP_CMP_MASKED_EQ, bits, v };

		if ((v & ~bits) != 0)
			continue;
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, call, 1, other);
	}
	return r;
}

static int deny_write_execute(scmp_filter_ctx ctx, const struct options *opts)
{
	int r;

	r = deny_bits(ctx, opts, "mmap", 2, PROT_WRITE | PROT_EXEC);
	if (r == 0)
		r = deny_bits(ctx, opts, "mprotect", 2, PROT_EXEC);
	if (r == 0)
		r = deny_bits(ctx, opts, "pkey_mprotect", 2, PROT_EXEC);
	if (r == 0)
		r = deny_bits(ctx, opts, "shmat", 2, SHM_EXEC);
	return r;
}

/* personality(0xffffffff) queries; PER_LINUX keeps the default. */
static int lock_personality(scmp_filter_ctx ctx, const struct options *opts)
{
	int r;

	if (!listed(opts, "personality"))
		return 0;
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
			     SCMP_A0_32(SCMP_CMP_EQ, 0xffffffffu));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality),
				     1, SCMP_A0_32(SCMP_CMP_EQ, PER_LINUX));
	return r;
}

static int build_filter(scmp_filter_ctx ctx, struct options *opts)
{
	if (opts->syscalls && allow_listed(ctx, opts) < 0)
		return -1;
	if (opts->families &&
	    restrict_families(ctx, opts->families, listed(opts, "socket")) < 0)
		return -1;
	if (opts->mdwe && deny_write_execute(ctx, opts) < 0)
		return -1;
	if (opts->lock_personality && lock_personality(ctx, opts) < 0)
		return -1;
	/* A call from another architecture gets the default action too. */
	return seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, opts->deny);
}

int main(int argc, char **argv)
{
	struct options opts = { 0 };
	scmp_filter_ctx ctx;
	int r;

	if (parse_options(argc, argv, &opts) < 0)
		return usage();
	ctx = seccomp_init(opts.deny);
	if (!ctx) {
		fprintf(stderr, "unit_filter: seccomp_init failed\n");
		return 1;
	}
	if (build_filter(ctx, &opts) < 0) {
		fprintf(stderr, "unit_filter: cannot build the filter\n");
		seccomp_release(ctx);
		return 1;
	}
	r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0) {
		fprintf(stderr, "unit_filter: seccomp_load failed: %s (is "
			"no_new_privs set?)\n", strerror(-r));
		return 1;
	}
	execv(opts.command[0], opts.command);
	fprintf(stderr, "unit_filter: cannot run %s: %s\n", opts.command[0],
		strerror(errno));
	return 127;
}
