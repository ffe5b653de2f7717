/*
 * pam_session: a minimal PAM application for the pam_keyhole.so tests.
 * pamtester shows only return codes, so this helper also prints what a
 * login program would pass on to the user's process after
 * pam_open_session: the PAM environment and the confinement state.
 *
 * Usage: pam_session SERVICE USER
 *
 * Output, one item a line:
 *   open_session: CODE MESSAGE      pam_open_session's result
 *   env: NAME=VALUE                 each KEYHOLE_* variable PAM exports
 *   Seccomp: N, NoNewPrivs: N       from /proc/self/status
 *   ptrace_attach: OK|ERRNO         PTRACE_ATTACH on pid 0, which the
 *                                   kernel rejects with ESRCH and the
 *                                   agent profile with EPERM
 *   open_shadow: OK|ERRNO           opening /etc/shadow, which the agent
 *                                   profile's Landlock rules leave out
 *   open_conf: OK|ERRNO             opening $PAM_SESSION_PROBE, only when
 *                                   that variable is set
 *   close_session: CODE MESSAGE     only when open_session succeeded
 * Exit status: 0 when every PAM call succeeded, 1 otherwise, 2 on bad
 * usage or a failed pam_start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <security/pam_appl.h>

/* The module under test never prompts, so every prompt fails. */
static int no_conversation(int count, const struct pam_message **messages,
			   struct pam_response **responses, void *data)
{
	(void)count;
	(void)messages;
	(void)data;
	*responses = NULL;
	return PAM_CONV_ERR;
}

static const char *errno_name(int error)
{
	switch (error) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ESRCH: return "ESRCH";
	case ENOENT: return "ENOENT";
	case ENOSYS: return "ENOSYS";
	default: return strerrorname_np(error) ? strerrorname_np(error)
					       : "unknown";
	}
}

static void print_env(pam_handle_t *pamh)
{
	char **env = pam_getenvlist(pamh);

	if (!env)
		return;
	for (char **entry = env; *entry; entry++) {
		if (strncmp(*entry, "KEYHOLE_", 8) == 0)
			printf("env: %s\n", *entry);
		free(*entry);
	}
	free(env);
}

static void print_status_fields(void)
{
	FILE *status = fopen("/proc/self/status", "r");
	char line[256];

	if (!status) {
		printf("status: %s\n", errno_name(errno));
		return;
	}
	while (fgets(line, sizeof(line), status)) {
		if (strncmp(line, "Seccomp:", 8) == 0 ||
		    strncmp(line, "NoNewPrivs:", 11) == 0)
			fputs(line, stdout);
	}
	(void)fclose(status);
}

/* Prints "NAME: OK" when path opens for reading, else its errno name. */
static void probe_open(const char *name, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		printf("%s: OK\n", name);
		(void)close(fd);
	} else {
		printf("%s: %s\n", name, errno_name(errno));
	}
}

static void print_probes(void)
{
	const char *extra = getenv("PAM_SESSION_PROBE");

	errno = 0;
	if (ptrace(PTRACE_ATTACH, 0, NULL, NULL) == 0)
		printf("ptrace_attach: OK\n");
	else
		printf("ptrace_attach: %s\n", errno_name(errno));

	probe_open("open_shadow", "/etc/shadow");
	if (extra)
		probe_open("open_conf", extra);
}

int main(int argc, char **argv)
{
	struct pam_conv conv = { no_conversation, NULL };
	pam_handle_t *pamh = NULL;
	int rc, status = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: pam_session SERVICE USER\n");
		return 2;
	}
	rc = pam_start(argv[1], argv[2], &conv, &pamh);
	if (rc != PAM_SUCCESS) {
		fprintf(stderr, "pam_start failed: %s\n",
			pam_strerror(pamh, rc));
		return 2;
	}

	rc = pam_open_session(pamh, 0);
	printf("open_session: %d %s\n", rc, pam_strerror(pamh, rc));
	print_env(pamh);
	print_status_fields();
	print_probes();
	(void)fflush(stdout);

	if (rc == PAM_SUCCESS) {
		rc = pam_close_session(pamh, 0);
		printf("close_session: %d %s\n", rc, pam_strerror(pamh, rc));
	}
	if (rc != PAM_SUCCESS)
		status = 1;
	(void)pam_end(pamh, rc);
	return status;
}
