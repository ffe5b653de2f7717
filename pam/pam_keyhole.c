/*
 * pam_keyhole.so, a session module for agent accounts. It registers the
 * session with keyholed, exports KEYHOLE_SESSION, KEYHOLE_SOCKET,
 * KEYHOLE_PERMITS and KEYHOLE_SECRETS, and confines the process that
 * runs PAM, so that everything the login program starts afterwards
 * inherits the confinement. keyholed does the real work, the way pam_systemd hands
 * its work to logind.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define PAM_SM_SESSION
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "pam_internal.h"

/*
 * Returns what a failed open or close returns: PAM_SESSION_ERR, or with
 * fail=open PAM_SUCCESS and a warning that the session goes on without
 * keyhole. The caller has already logged the cause at LOG_ERR.
 */
static int failure(pam_handle_t *pamh, const struct kh_pam_args *args,
		   const char *what)
{
	if (args->fail == KH_PAM_FAIL_CLOSED)
		return PAM_SESSION_ERR;
	pam_syslog(pamh, LOG_WARNING, "fail=open: %s failed, continuing "
		   "without keyhole", what);
	return PAM_SUCCESS;
}

static const char *item_string(pam_handle_t *pamh, int type)
{
	const void *value = NULL;

	if (pam_get_item(pamh, type, &value) != PAM_SUCCESS)
		return NULL;
	return value;
}

static int put_env(pam_handle_t *pamh, const char *name, const char *value)
{
	char entry[PATH_MAX + 32];
	int rc;

	rc = snprintf(entry, sizeof(entry), "%s=%s", name, value);
	if (rc < 0 || (size_t)rc >= sizeof(entry))
		return PAM_BUF_ERR;
	return pam_putenv(pamh, entry);
}

static int export_env(pam_handle_t *pamh, const struct kh_pam_args *args,
		      const struct kh_pam_session *s)
{
	int rc;

	rc = put_env(pamh, "KEYHOLE_SESSION", s->id);
	/* keyhole request inside the session must reach the same broker. */
	if (rc == PAM_SUCCESS)
		rc = put_env(pamh, "KEYHOLE_SOCKET", args->socket);
	if (rc == PAM_SUCCESS)
		rc = put_env(pamh, "KEYHOLE_PERMITS", s->permits);
	if (rc == PAM_SUCCESS)
		rc = put_env(pamh, "KEYHOLE_SECRETS", s->secrets);
	if (rc != PAM_SUCCESS)
		pam_syslog(pamh, LOG_ERR, "pam_putenv failed: %s",
			   pam_strerror(pamh, rc));
	return rc;
}

/* pam_putenv with a bare name removes the variable. */
static void unexport_env(pam_handle_t *pamh)
{
	(void)pam_putenv(pamh, "KEYHOLE_SESSION");
	(void)pam_putenv(pamh, "KEYHOLE_SOCKET");
	(void)pam_putenv(pamh, "KEYHOLE_PERMITS");
	(void)pam_putenv(pamh, "KEYHOLE_SECRETS");
}

static void free_data(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	free(data);
}

static int store_session_id(pam_handle_t *pamh, const char *id)
{
	char *copy = strdup(id);
	int rc;

	if (!copy)
		return PAM_BUF_ERR;
	rc = pam_set_data(pamh, KH_PAM_DATA_SESSION, copy, free_data);
	if (rc != PAM_SUCCESS) {
		free(copy);
		pam_syslog(pamh, LOG_ERR, "pam_set_data failed: %s",
			   pam_strerror(pamh, rc));
	}
	return rc;
}

/* The settings that close_session needs, as open_session read them. */
struct close_data {
	char socket[PATH_MAX];
	enum kh_pam_fail_mode fail;
	bool debug;
	bool registered; /* false: open_session failed under fail=open */
	/* The account as open_session found it: the confined process may
	 * not read a /etc/passwd that was replaced after the login. */
	uid_t uid;
	char name[256];
};

/*
 * Stores the settings for close_session. registered is false when no
 * session was registered, so that close_session has nothing to do and
 * logs nothing.
 */
static void store_close_data(pam_handle_t *pamh, const struct kh_pam_args *args,
			     const struct passwd *pw, bool registered)
{
	struct close_data *data = calloc(1, sizeof(*data));
	int rc;

	if (!data || strlen(args->socket) >= sizeof(data->socket) ||
	    strlen(pw->pw_name) >= sizeof(data->name)) {
		free(data);
		return;
	}
	memcpy(data->socket, args->socket, strlen(args->socket) + 1);
	memcpy(data->name, pw->pw_name, strlen(pw->pw_name) + 1);
	data->uid = pw->pw_uid;
	data->fail = args->fail;
	data->debug = args->debug;
	data->registered = registered;
	rc = pam_set_data(pamh, KH_PAM_DATA_CLOSE, data, free_data);
	if (rc != PAM_SUCCESS) {
		free(data);
		pam_syslog(pamh, LOG_WARNING, "pam_set_data failed: %s; "
			   "close_session reads the settings again",
			   pam_strerror(pamh, rc));
	}
}

static const struct close_data *stored_close_data(pam_handle_t *pamh)
{
	const void *data = NULL;

	if (pam_get_data(pamh, KH_PAM_DATA_CLOSE, &data) != PAM_SUCCESS)
		return NULL;
	return data;
}

/* Writes one line about what kh_confine_apply did into buf. */
static void describe_report(const struct kh_confine_report *report,
			    char *buf, size_t size)
{
	const char *sep = report->note[0] ? "; " : "";

	if (report->landlock_applied)
		(void)snprintf(buf, size, "no_new_privs, seccomp (%zu rules), "
			       "Landlock ABI %d%s%s%s", report->seccomp_rules,
			       report->landlock_abi,
			       report->net_rules ? " with TCP port rules" : "",
			       sep, report->note);
	else
		(void)snprintf(buf, size, "no_new_privs, seccomp (%zu rules), "
			       "no Landlock%s%s", report->seccomp_rules, sep,
			       report->note);
}

/*
 * Confines the calling process with args->profile and writes what was
 * applied into summary. The paths come from keyholed's reply, so the
 * Landlock rules match the directories keyholed serves.
 */
static int confine(pam_handle_t *pamh, const struct kh_pam_args *args,
		   const struct passwd *pw, const struct kh_pam_session *s,
		   char *summary, size_t size)
{
	struct kh_confine_vars vars = {
		.uid = pw->pw_uid,
		.home = pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL,
		.permits_dir = s->permits_dir,
		.secrets_mount = s->secrets,
	};
	struct kh_confine_profile *profile = NULL;
	struct kh_confine_report report = { 0 };
	struct kh_err err = { { 0 } };
	int rc;

	if (strcmp(args->profile, "none") == 0) {
		(void)snprintf(summary, size, "none (profile=none)");
		return 0;
	}

	rc = kh_confine_load(args->profile_dir, args->profile, &vars,
			     &profile, &err);
	if (rc < 0) {
		pam_syslog(pamh, LOG_ERR, "loading confinement profile \"%s\" "
			   "failed: %s", args->profile, err.msg);
		return rc;
	}
	rc = kh_confine_apply(profile, &report, &err);
	kh_confine_free(profile);
	if (rc < 0) {
		pam_syslog(pamh, LOG_ERR, "applying confinement profile \"%s\" "
			   "failed: %s", args->profile, err.msg);
		return rc;
	}
	(void)snprintf(summary, size, "profile %s: ", args->profile);
	describe_report(&report, summary + strlen(summary),
			size - strlen(summary));
	return 0;
}

/*
 * Undoes a registration whose confinement failed, so that no permit
 * stays bound to a session that never opened.
 */
static void abandon_session(pam_handle_t *pamh, const struct kh_pam_args *args,
			    const struct kh_pam_session *s,
			    const struct passwd *pw)
{
	struct kh_err err = { { 0 } };
	long long revoked = 0;

	unexport_env(pamh);
	(void)pam_set_data(pamh, KH_PAM_DATA_SESSION, NULL, NULL);
	store_close_data(pamh, args, pw, false);
	if (kh_pam_session_close(args->socket, s->id, pw->pw_uid, true,
				 &revoked, &err) < 0)
		pam_syslog(pamh, LOG_ERR, "closing session %s after the "
			   "failed confinement failed: %s", s->id, err.msg);
}

static int open_agent_session(pam_handle_t *pamh,
			      const struct kh_pam_args *args,
			      const struct passwd *pw)
{
	const char *service = item_string(pamh, PAM_SERVICE);
	const char *tty = item_string(pamh, PAM_TTY);
	struct kh_pam_session session;
	struct kh_err err = { { 0 } };
	char summary[512];
	int rc;

	if (!service)
		service = "";
	rc = kh_pam_session_open(args->socket, pw->pw_uid, service, tty,
				 &session, &err);
	if (rc < 0) {
		bool down = rc == -ENOENT || rc == -ECONNREFUSED;

		pam_syslog(pamh, LOG_ERR, "session_open for user %s (uid %u) "
			   "failed: %s%s", pw->pw_name, (unsigned)pw->pw_uid,
			   err.msg, down ? "; start keyholed (systemctl start "
			   "keyholed), or fix socket= if it listens elsewhere"
			   : "");
		store_close_data(pamh, args, pw, false);
		return failure(pamh, args, "session_open");
	}

	if (export_env(pamh, args, &session) != PAM_SUCCESS ||
	    store_session_id(pamh, session.id) != PAM_SUCCESS) {
		abandon_session(pamh, args, &session, pw);
		return failure(pamh, args, "exporting the session");
	}

	/* Stored before confining, which hides the config file. */
	store_close_data(pamh, args, pw, true);
	if (confine(pamh, args, pw, &session, summary, sizeof(summary)) < 0) {
		if (args->fail == KH_PAM_FAIL_CLOSED)
			abandon_session(pamh, args, &session, pw);
		return failure(pamh, args, "confinement");
	}

	pam_syslog(pamh, LOG_INFO, "session %s opened for user %s (uid %u), "
		   "service %s, tty %s: %s", session.id, pw->pw_name,
		   (unsigned)pw->pw_uid, service, tty ? tty : "none", summary);
	return PAM_SUCCESS;
}

/* The session id that open_session stored in this handle, or NULL. */
static const char *stored_session(pam_handle_t *pamh)
{
	const void *data = NULL;

	if (pam_get_data(pamh, KH_PAM_DATA_SESSION, &data) != PAM_SUCCESS)
		return NULL;
	return data;
}

/*
 * The steps both entry points start with: parse the module line, look
 * up the PAM user into pw (backed by *pw_buf, which the caller frees
 * also on failure) and match the user against the agent accounts.
 * Returns 1 for an agent, 0 for another user, or -1 when a step failed,
 * with what failure() decided for it in *pam_rc. That can be
 * PAM_SUCCESS under fail=open, so it cannot be the return value.
 */
static int identify_user(pam_handle_t *pamh, int argc, const char **argv,
			 struct kh_pam_args *args, struct passwd *pw,
			 char **pw_buf, int *pam_rc)
{
	int agent;

	if (kh_pam_args_parse(pamh, argc, argv, args) < 0) {
		*pam_rc = failure(pamh, args, "parsing the module arguments");
		return -1;
	}
	if (kh_pam_lookup_user(pamh, pw, pw_buf) < 0) {
		*pam_rc = failure(pamh, args, "looking up the user");
		return -1;
	}

	agent = kh_pam_is_agent(pamh, args, pw);
	if (agent < 0) {
		*pam_rc = failure(pamh, args, "matching the agent accounts");
		return -1;
	}
	return agent;
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc,
				   const char **argv)
{
	struct kh_pam_args args;
	struct passwd pw;
	char *pw_buf = NULL;
	const char *open_id;
	int rc, agent;

	(void)flags;
	agent = identify_user(pamh, argc, argv, &args, &pw, &pw_buf, &rc);
	if (agent < 0)
		goto out;
	if (agent == 0) {
		if (args.debug)
			pam_syslog(pamh, LOG_DEBUG, "user %s is not an agent "
				   "account, ignoring", pw.pw_name);
		rc = PAM_IGNORE;
		goto out;
	}
	if (args.debug)
		pam_syslog(pamh, LOG_DEBUG, "user %s (uid %u) is an agent "
			   "account, registering the session", pw.pw_name,
			   (unsigned)pw.pw_uid);
	open_id = stored_session(pamh);
	if (open_id) {
		/* A second session would replace the stored id, and
		 * close_session would then leave the first one open. */
		pam_syslog(pamh, LOG_WARNING, "session %s is already open in "
			   "this PAM handle, not registering another",
			   open_id);
		rc = PAM_SUCCESS;
		goto out;
	}
	rc = open_agent_session(pamh, &args, &pw);
out:
	kh_pam_args_free(&args);
	free(pw_buf);
	return rc;
}

/*
 * Finds the id of the session to close: the one open_session stored
 * in this PAM handle, or else KEYHOLE_SESSION from the PAM environment,
 * for applications that close with another handle than they opened
 * with. NULL when there is neither.
 */
static const char *session_to_close(pam_handle_t *pamh, bool agent)
{
	const char *id = stored_session(pamh);

	if (id)
		return id;
	return agent ? pam_getenv(pamh, "KEYHOLE_SESSION") : NULL;
}

static int close_agent_session(pam_handle_t *pamh,
			       const struct kh_pam_args *args,
			       const struct passwd *pw, const char *id)
{
	const char *service = item_string(pamh, PAM_SERVICE);
	struct kh_err err = { { 0 } };
	long long revoked = 0;

	if (!kh_pam_session_id_valid(id)) {
		pam_syslog(pamh, LOG_ERR, "KEYHOLE_SESSION of user %s is not a "
			   "session id, not closing it", pw->pw_name);
		return failure(pamh, args, "session_close");
	}
	if (kh_pam_session_close(args->socket, id, pw->pw_uid, false,
				 &revoked, &err) < 0) {
		pam_syslog(pamh, LOG_ERR, "session_close of session %s for "
			   "user %s failed: %s", id, pw->pw_name, err.msg);
		return failure(pamh, args, "session_close");
	}

	pam_syslog(pamh, LOG_INFO, "session %s closed for user %s (uid %u), "
		   "service %s: %lld permits revoked", id, pw->pw_name,
		   (unsigned)pw->pw_uid, service ? service : "", revoked);
	(void)pam_set_data(pamh, KH_PAM_DATA_SESSION, NULL, NULL);
	return PAM_SUCCESS;
}

/*
 * Closes with the settings that open_session stored in this handle,
 * without reading the config file again.
 */
static int close_with_saved(pam_handle_t *pamh, const struct close_data *saved)
{
	struct kh_pam_args args = {
		.socket = saved->socket,
		.fail = saved->fail,
		.debug = saved->debug,
	};
	const char *id = stored_session(pamh);
	struct passwd pw = { 0 };

	if (!saved->registered || !id) {
		if (saved->debug)
			pam_syslog(pamh, LOG_DEBUG, "no keyhole session is open "
				   "in this PAM handle, nothing to close");
		return PAM_SUCCESS;
	}
	/* The cast is safe: close_agent_session only reads the name. */
	pw.pw_name = (char *)saved->name;
	pw.pw_uid = saved->uid;
	return close_agent_session(pamh, &args, &pw, id);
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc,
				    const char **argv)
{
	const struct close_data *saved = stored_close_data(pamh);
	struct kh_pam_args args;
	struct passwd pw;
	char *pw_buf = NULL;
	const char *id;
	int rc, agent;

	(void)flags;
	if (saved)
		return close_with_saved(pamh, saved);
	agent = identify_user(pamh, argc, argv, &args, &pw, &pw_buf, &rc);
	if (agent < 0)
		goto out;

	id = session_to_close(pamh, agent == 1);
	if (!id && agent == 0) {
		rc = PAM_IGNORE;
		goto out;
	}
	if (!id) {
		pam_syslog(pamh, LOG_ERR, "no keyhole session to close for user "
			   "%s: open_session registered none", pw.pw_name);
		rc = failure(pamh, &args, "session_close");
		goto out;
	}
	rc = close_agent_session(pamh, &args, &pw, id);
out:
	kh_pam_args_free(&args);
	free(pw_buf);
	return rc;
}
