/*
 * The seccomp half of a confinement profile, built with libseccomp. The
 * filter allows by default and makes each denied call fail with EPERM,
 * so that tools report a clean error instead of dying. It covers only
 * the native ABI: a call through another one (i386 through int 0x80, or
 * x32, on x86_64) kills the process, because denylists have been
 * bypassed by calling the same syscall under its other-ABI number.
 */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "confine_internal.h"

/*
 * Denied with EPERM in every profile. A profile file can add names
 * (seccomp.deny) but never remove these.
 */
static const char *const fixed_deny[] = {
	/* Reading or changing another process: the broker, or a sibling
	 * that holds permit descriptors. NOTE: /proc/PID/mem and
	 * /proc/PID/fd of a process in the same Landlock domain (the same
	 * session) stay reachable, see docs/confinement.md. */
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
	"kcmp", "process_madvise", "perf_event_open", "bpf", "userfaultfd",
	/* A new mount could cover the paths that Landlock rules name. */
	"mount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick",
	"move_mount", "open_tree", "mount_setattr", "pivot_root",
	/* A user namespace grants capabilities inside it. */
	"unshare", "setns",
	/* io_uring runs operations that never pass through this filter. */
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	/* Keys stored in the kernel keyring outlive the session. */
	"keyctl", "add_key", "request_key",
	"kexec_load", "kexec_file_load", "init_module", "finit_module",
	"delete_module",
#if defined(__x86_64__) || defined(__i386__)
	"iopl", "ioperm",
#endif
	/* A file handle opens a file without a path, past Landlock. */
	"open_by_handle_at", "name_to_handle_at",
	"acct", "swapon", "swapoff", "reboot", "settimeofday",
	"clock_settime", "clock_adjtime", "adjtimex", "quotactl",
	"quotactl_fd", "syslog",
	NULL,
};

/* Syscalls that get argument rules below, for kh_confine_check_names. */
static const char *const arg_rule_syscalls[] = {
	"clone", "clone3", "ioctl", "personality", "socket", NULL,
};

const char *const confine_seccomp_arg_rules[] = {
	"clone with any CLONE_NEW* flag",
	"ioctl TIOCSTI and TIOCLINUX (request compared on its low 32 bits)",
	"personality other than 0 (PER_LINUX) and 0xffffffff (query)",
	NULL,
};

/* clone3 passes its flags in memory, which seccomp cannot read. */
const char *const confine_seccomp_enosys[] = { "clone3", NULL };

/* The clone flags that create a namespace. CLONE_NEWTIME is clone3-only. */
static const unsigned long clone_new_flags[] = {
	CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
	CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
};

struct filter {
	scmp_filter_ctx ctx;
	const struct kh_confine_profile *profile;
	size_t rules;
	struct kh_err *err;
};

void confine_seccomp_each_fixed(void (*fn)(const char *name, void *ctx),
				void *ctx)
{
	for (size_t i = 0; fixed_deny[i]; i++)
		fn(fixed_deny[i], ctx);
}

static bool is_fixed(const char *name)
{
	for (size_t i = 0; fixed_deny[i]; i++) {
		if (strcmp(fixed_deny[i], name) == 0)
			return true;
	}
	return false;
}

static bool is_denied(const struct kh_confine_profile *profile,
		      const char *name)
{
	return is_fixed(name) || confine_list_has(&profile->deny, name);
}

/* Adds one rule for syscall name, with up to three argument comparisons. */
static int add_rule(struct filter *f, uint32_t action, const char *name,
		    unsigned count, const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);
	int rc;

	if (nr == __NR_SCMP_ERROR) {
		kh_err_set(f->err, "seccomp: syscall \"%s\" does not resolve "
			   "on this architecture", name);
		return -EINVAL;
	}
	rc = seccomp_rule_add_array(f->ctx, action, nr, count, cmp);
	if (rc < 0) {
		kh_err_set(f->err, "seccomp: cannot add a rule for %s: %s",
			   name, strerror(-rc));
		return rc;
	}
	f->rules++;
	return 0;
}

static int add_deny_list(struct filter *f)
{
	const struct confine_list *extra = &f->profile->deny;
	int rc = 0;

	for (size_t i = 0; rc == 0 && fixed_deny[i]; i++)
		rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), fixed_deny[i], 0, NULL);
	for (size_t i = 0; rc == 0 && i < extra->count; i++) {
		if (!is_fixed(extra->items[i]))
			rc = add_rule(f, SCMP_ACT_ERRNO(EPERM),
				      extra->items[i], 0, NULL);
	}
	return rc;
}

static int add_clone_rules(struct filter *f)
{
	size_t count = sizeof(clone_new_flags) / sizeof(clone_new_flags[0]);
	int rc = 0;

	if (!is_denied(f->profile, "clone3"))
		rc = add_rule(f, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
	if (is_denied(f->profile, "clone"))
		return rc;
	/* One rule per flag, because libseccomp has no "masked not equal". */
	for (size_t i = 0; rc == 0 && i < count; i++) {
		struct scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ,
						  clone_new_flags[i],
						  clone_new_flags[i]);

		rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "clone", 1, &cmp);
	}
	return rc;
}

/*
 * The kernel reads the ioctl request as an unsigned int, so the upper
 * half of the register is masked off: a request with junk in it must
 * still match.
 */
static int add_ioctl_rules(struct filter *f)
{
	const unsigned long requests[] = { TIOCSTI, TIOCLINUX };
	int rc = 0;

	if (is_denied(f->profile, "ioctl"))
		return 0;
	for (size_t i = 0; rc == 0 && i < 2; i++) {
		struct scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_MASKED_EQ,
						  0xffffffffUL, requests[i]);

		rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &cmp);
	}
	return rc;
}

/*
 * Allows personality(0) and the query personality(0xffffffff) only.
 * libseccomp takes one comparison per argument in a rule, so two kinds
 * of rule express this. One denies anything above 32 bits. The others
 * deny any value whose bits i and i+1 differ, which matches exactly the
 * 32-bit values other than all zeros and all ones.
 */
static int add_personality_rules(struct filter *f)
{
	struct scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_GT, 0xffffffffUL);
	int rc;

	if (is_denied(f->profile, "personality"))
		return 0;
	rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "personality", 1, &cmp);
	for (unsigned bit = 0; rc == 0 && bit < 31; bit++) {
		unsigned long pair = 3UL << bit;
		struct scmp_arg_cmp low = SCMP_A0(SCMP_CMP_MASKED_EQ, pair,
						  1UL << bit);
		struct scmp_arg_cmp high = SCMP_A0(SCMP_CMP_MASKED_EQ, pair,
						   2UL << bit);

		rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "personality", 1, &low);
		if (rc == 0)
			rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "personality",
				      1, &high);
	}
	return rc;
}

/*
 * Lets AF_INET and AF_INET6 through only as plain TCP (SOCK_STREAM with
 * protocol 0 or IPPROTO_TCP), which Landlock restricts by port. UDP,
 * raw, SCTP and MPTCP sockets are not covered by Landlock and are denied.
 */
static int add_inet_tcp_rules(struct filter *f, int family)
{
	struct scmp_arg_cmp cmp[2];
	int rc = 0;

	cmp[0] = (struct scmp_arg_cmp)SCMP_A0(SCMP_CMP_EQ, (unsigned)family);
	for (unsigned type = 0; rc == 0 && type < 16; type++) {
		if (type == SOCK_STREAM)
			continue;
		cmp[1] = (struct scmp_arg_cmp)SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf,
						      type);
		rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "socket", 2, cmp);
	}
	cmp[1] = (struct scmp_arg_cmp)SCMP_A2(SCMP_CMP_GT, IPPROTO_TCP);
	if (rc == 0)
		rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "socket", 2, cmp);
	for (unsigned proto = 1; rc == 0 && proto < IPPROTO_TCP; proto++) {
		cmp[1] = (struct scmp_arg_cmp)SCMP_A2(SCMP_CMP_EQ, proto);
		rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "socket", 2, cmp);
	}
	return rc;
}

/*
 * socket() takes an int family. Comparisons against the whole register
 * deny a family with junk in the upper half instead of letting it pass.
 */
static int add_socket_rules(struct filter *f, enum confine_sockets sockets)
{
	struct scmp_arg_cmp cmp;
	int rc = 0;

	if (sockets == CONFINE_SOCKETS_ANY || is_denied(f->profile, "socket"))
		return 0;
	if (sockets == CONFINE_SOCKETS_UNIX) {
		cmp = (struct scmp_arg_cmp)SCMP_A0(SCMP_CMP_NE, AF_UNIX);
		return add_rule(f, SCMP_ACT_ERRNO(EPERM), "socket", 1, &cmp);
	}
	if (sockets == CONFINE_SOCKETS_NO_INET) {
		const int families[] = { AF_INET, AF_INET6 };

		for (size_t i = 0; rc == 0 && i < 2; i++) {
			cmp = (struct scmp_arg_cmp)SCMP_A0(
				SCMP_CMP_MASKED_EQ, 0xffffffffUL,
				(unsigned)families[i]);
			rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "socket", 1,
				      &cmp);
		}
		return rc;
	}

	/* CONFINE_SOCKETS_UNIX_TCP: AF_UNIX, AF_INET, AF_INET6 (1, 2, 10). */
	cmp = (struct scmp_arg_cmp)SCMP_A0(SCMP_CMP_GT, AF_INET6);
	rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "socket", 1, &cmp);
	for (unsigned family = 0; rc == 0 && family < AF_INET6; family++) {
		if (family == AF_UNIX || family == AF_INET)
			continue;
		cmp = (struct scmp_arg_cmp)SCMP_A0(SCMP_CMP_EQ, family);
		rc = add_rule(f, SCMP_ACT_ERRNO(EPERM), "socket", 1, &cmp);
	}
	if (rc == 0)
		rc = add_inet_tcp_rules(f, AF_INET);
	if (rc == 0)
		rc = add_inet_tcp_rules(f, AF_INET6);
	return rc;
}

static int build_filter(struct filter *f, enum confine_sockets sockets)
{
	int rc;

	/* Only the native ABI is in the filter, so any other one is "bad". */
	rc = seccomp_attr_set(f->ctx, SCMP_FLTATR_ACT_BADARCH,
			      SCMP_ACT_KILL_PROCESS);
	if (rc < 0) {
		kh_err_set(f->err, "seccomp: cannot set the action for other "
			   "architectures: %s", strerror(-rc));
		return rc;
	}
	rc = add_deny_list(f);
	if (rc == 0)
		rc = add_clone_rules(f);
	if (rc == 0)
		rc = add_ioctl_rules(f);
	if (rc == 0)
		rc = add_personality_rules(f);
	if (rc == 0)
		rc = add_socket_rules(f, sockets);
	return rc;
}

int confine_seccomp_load(const struct kh_confine_profile *profile,
			 enum confine_sockets sockets, size_t *rules,
			 struct kh_err *err)
{
	struct filter f = { .profile = profile, .err = err };
	int rc;

	f.ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!f.ctx) {
		kh_err_set(err, "seccomp: cannot create a filter (out of "
			   "memory or unsupported architecture)");
		return -ENOMEM;
	}
	rc = build_filter(&f, sockets);
	if (rc == 0) {
		rc = seccomp_load(f.ctx);
		if (rc < 0)
			kh_err_set(err, "seccomp: loading the filter failed: "
				   "%s; check that the kernel has "
				   "CONFIG_SECCOMP_FILTER", strerror(-rc));
	}
	if (rc == 0)
		*rules += f.rules;
	seccomp_release(f.ctx);
	return rc;
}

/* Resolves each name in names and reports those that do not resolve. */
static int check_list(const char *const *names, const char *where,
		      kh_err_report_fn report, void *ctx)
{
	struct kh_err err;
	int unresolved = 0;

	for (size_t i = 0; names[i]; i++) {
		if (seccomp_syscall_resolve_name_arch(SCMP_ARCH_NATIVE,
						      names[i]) >= 0)
			continue;
		unresolved++;
		kh_err_set(&err, "syscall \"%s\" in %s does not resolve on "
			   "the native architecture", names[i], where);
		if (report)
			report(err.msg, ctx);
	}
	return unresolved;
}

int kh_confine_check_names(kh_err_report_fn report, void *ctx)
{
	int unresolved = check_list(fixed_deny, "the fixed deny list",
				    report, ctx);

	unresolved += check_list(arg_rule_syscalls, "the argument rules",
				 report, ctx);
	unresolved += confine_check_builtin_names(report, ctx);
	return unresolved;
}
