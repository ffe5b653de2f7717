/*
 * Applies a confinement profile to the calling thread: no_new_privs,
 * dumpable, Landlock, then seccomp. An unprivileged process can set up
 * neither Landlock nor seccomp without no_new_privs, which also stops a
 * setuid binary from running with more privileges than its caller.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "confine_internal.h"

/* Appends a sentence to the report's note. */
static void add_note(struct kh_confine_report *report, const char *text)
{
	size_t used = strlen(report->note);

	(void)snprintf(report->note + used, sizeof(report->note) - used,
		       "%s%s", used ? " " : "", text);
}

static bool has_ports(const struct kh_confine_profile *profile)
{
	return profile->tcp_connect.set || profile->tcp_bind.set;
}

/*
 * Checks what the kernel offers against the profile. Fails closed with
 * -ENOSYS when the profile refuses to start without it; otherwise picks
 * the socket rule and notes what is missing.
 */
static int plan(const struct kh_confine_profile *profile, int abi,
		enum confine_sockets *sockets, struct kh_confine_report *report,
		struct kh_err *err)
{
	bool refuse = profile->landlock_missing == KH_LANDLOCK_REFUSE;

	if (abi == 0 && refuse) {
		kh_err_set(err, "Landlock is not available on this kernel (not "
			   "built in, or not in the lsm= boot parameter) and "
			   "profile %s sets \"landlock_missing\": \"refuse\"; "
			   "enable Landlock or set it to \"continue\"",
			   profile->name);
		return -ENOSYS;
	}
	if (abi == 0)
		add_note(report, "Landlock is not available on this kernel; "
			 "continuing with seccomp only (landlock_missing is "
			 "\"continue\").");

	*sockets = CONFINE_SOCKETS_ANY;
	if (profile->unix_only)
		*sockets = has_ports(profile) ? CONFINE_SOCKETS_UNIX_TCP :
						CONFINE_SOCKETS_UNIX;
	if (!has_ports(profile) || abi >= 4)
		return 0;

	if (refuse) {
		kh_err_set(err, "profile %s lists TCP ports, which need Landlock "
			   "ABI 4 (Linux 6.7), but the kernel has ABI %d; "
			   "remove network.tcp_connect and tcp_bind or set "
			   "\"landlock_missing\": \"continue\"", profile->name,
			   abi);
		return -ENOSYS;
	}
	/* Fail closed: without port rules, no AF_INET(6) socket at all. */
	*sockets = profile->unix_only ? CONFINE_SOCKETS_UNIX :
					CONFINE_SOCKETS_NO_INET;
	add_note(report, "TCP port rules need Landlock ABI 4; AF_INET and "
		 "AF_INET6 sockets are denied instead.");
	return 0;
}

static int set_process_flags(const struct kh_confine_profile *profile,
			     struct kh_err *err)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		kh_err_set(err, "prctl(PR_SET_NO_NEW_PRIVS) failed: %s",
			   strerror(errno));
		return -errno;
	}
	/* Not dumpable: no core dump, and no ptrace or /proc/PID/mem
	 * access by other processes of the same uid. execve resets it. */
	if (!profile->dumpable && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		kh_err_set(err, "prctl(PR_SET_DUMPABLE, 0) failed: %s",
			   strerror(errno));
		return -errno;
	}
	return 0;
}

int kh_confine_apply(const struct kh_confine_profile *profile,
		     struct kh_confine_report *report, struct kh_err *err)
{
	struct kh_confine_report ignored;
	enum confine_sockets sockets;
	int abi, rc;

	kh_err_clear(err);
	if (!report)
		report = &ignored;
	memset(report, 0, sizeof(*report));
	if (!profile) {
		kh_err_set(err, "no confinement profile given (NULL)");
		return -EINVAL;
	}

	abi = kh_confine_landlock_abi();
	report->landlock_abi = abi;
	rc = plan(profile, abi, &sockets, report, err);
	if (rc == 0)
		rc = set_process_flags(profile, err);
	if (rc == 0 && abi > 0) {
		rc = confine_landlock_restrict(profile, abi, &report->net_rules,
					       err);
		report->landlock_applied = rc == 0;
	}
	if (rc == 0)
		rc = confine_seccomp_load(profile, sockets,
					  &report->seccomp_rules, err);
	if (rc < 0)
		kh_err_prefix(err, "cannot apply confinement profile %s",
			      profile->name);
	return rc;
}
