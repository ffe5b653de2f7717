/*
 * Module arguments of pam_keyhole.so. A line such as
 *
 *   session required pam_keyhole.so group=agents profile=agent
 *
 * is parsed once per call, because PAM hands the arguments to each
 * entry point separately.
 */
#include <errno.h>
#include <string.h>
#include <syslog.h>

#include <security/pam_ext.h>

#include "keyhole/config.h"
#include "pam_internal.h"

/* Returns the value of arg when it starts with "name=", else NULL. */
static const char *value_of(const char *arg, const char *name)
{
	size_t len = strlen(name);

	if (strncmp(arg, name, len) != 0 || arg[len] != '=')
		return NULL;
	return arg + len + 1;
}

static int add_name(pam_handle_t *pamh, const char *option,
		    const char *value, const char **names, size_t *count)
{
	if (*value == '\0') {
		pam_syslog(pamh, LOG_ERR, "%s= has an empty value: name an "
			   "account or group", option);
		return -EINVAL;
	}
	if (*count == KH_PAM_MAX_NAMES) {
		pam_syslog(pamh, LOG_ERR, "more than %d %s= arguments: use "
			   "group= for a larger set of accounts",
			   KH_PAM_MAX_NAMES, option);
		return -EINVAL;
	}
	names[(*count)++] = value;
	return 0;
}

/*
 * Stores a single-valued option. A repeated one is an error rather than
 * "last one wins", because two socket= or profile= values on one line
 * are a mistake whose outcome the administrator cannot see.
 */
static int set_once(pam_handle_t *pamh, const char *option,
		    const char *value, const char **slot, bool *seen)
{
	if (*seen) {
		pam_syslog(pamh, LOG_ERR, "%s= given more than once: keep "
			   "one", option);
		return -EINVAL;
	}
	if (*value == '\0') {
		pam_syslog(pamh, LOG_ERR, "%s= has an empty value", option);
		return -EINVAL;
	}
	*seen = true;
	*slot = value;
	return 0;
}

static int check_absolute(pam_handle_t *pamh, const char *option,
			  const char *value)
{
	if (value[0] == '/')
		return 0;
	pam_syslog(pamh, LOG_ERR, "%s=%s is not an absolute path", option,
		   value);
	return -EINVAL;
}

/* find_fail_mode has set the mode, so this only checks the value. */
static int check_fail_mode(pam_handle_t *pamh, const char *value)
{
	if (strcmp(value, "closed") == 0 || strcmp(value, "open") == 0)
		return 0;
	pam_syslog(pamh, LOG_ERR, "fail=%s is invalid: use fail=closed or "
		   "fail=open", value);
	return -EINVAL;
}

/* Flags for the single-valued options that the line has set so far. */
struct seen_options {
	bool profile, profile_dir, socket, fail;
};

static int parse_one(pam_handle_t *pamh, const char *arg,
		     struct kh_pam_args *args, struct seen_options *seen)
{
	const char *value;

	if ((value = value_of(arg, "user")))
		return add_name(pamh, "user", value, args->users,
				&args->n_users);
	if ((value = value_of(arg, "group")))
		return add_name(pamh, "group", value, args->groups,
				&args->n_groups);
	if ((value = value_of(arg, "profile")))
		return set_once(pamh, "profile", value, &args->profile,
				&seen->profile);
	if ((value = value_of(arg, "profile_dir"))) {
		if (set_once(pamh, "profile_dir", value, &args->profile_dir,
			     &seen->profile_dir) < 0)
			return -EINVAL;
		return check_absolute(pamh, "profile_dir", value);
	}
	if ((value = value_of(arg, "socket"))) {
		if (set_once(pamh, "socket", value, &args->socket,
			     &seen->socket) < 0)
			return -EINVAL;
		return check_absolute(pamh, "socket", value);
	}
	if ((value = value_of(arg, "fail"))) {
		if (seen->fail) {
			pam_syslog(pamh, LOG_ERR, "fail= given more than "
				   "once: keep one");
			return -EINVAL;
		}
		seen->fail = true;
		return check_fail_mode(pamh, value);
	}
	if (strcmp(arg, "debug") == 0) {
		args->debug = true;
		return 0;
	}
	pam_syslog(pamh, LOG_WARNING, "unknown argument \"%s\", ignoring",
		   arg);
	return 0;
}

/*
 * fail= is read in a first pass, so that an error anywhere on the line
 * is handled under the fail mode the administrator chose. The mode is
 * open only when every fail= argument has the value "open".
 */
static void find_fail_mode(int argc, const char **argv,
			   struct kh_pam_args *args)
{
	bool open = false, other = false;

	for (int i = 0; i < argc; i++) {
		const char *value = value_of(argv[i], "fail");

		if (value && strcmp(value, "open") == 0)
			open = true;
		else if (value)
			other = true;
	}
	if (open && !other)
		args->fail = KH_PAM_FAIL_OPEN;
}

int kh_pam_args_parse(pam_handle_t *pamh, int argc, const char **argv,
		      struct kh_pam_args *args)
{
	struct seen_options seen = { 0 };
	int rc = 0;

	*args = (struct kh_pam_args){
		.profile = "agent",
		.profile_dir = KH_CONFINE_DIR_DEFAULT,
		.socket = KH_SOCKET_DEFAULT,
		.fail = KH_PAM_FAIL_CLOSED,
	};
	find_fail_mode(argc, argv, args);

	for (int i = 0; i < argc; i++) {
		if (parse_one(pamh, argv[i], args, &seen) < 0)
			rc = -EINVAL;
	}

	if (args->n_users == 0 && args->n_groups == 0) {
		pam_syslog(pamh, LOG_ERR, "no user= or group= argument: add "
			   "one to name the agent accounts");
		rc = -EINVAL;
	}
	return rc;
}
