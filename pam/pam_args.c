/*
 * Module arguments of pam_keyhole.so. A line such as
 *
 *   session required pam_keyhole.so group=agents profile=agent
 *
 * is parsed once per call, because PAM hands the arguments to each
 * entry point separately. The same settings can come from the config
 * file (pam_conf.c); the line's arguments override it.
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

/*
 * Flags for the single-valued options that one source (the file or the
 * line) has set so far.
 */
struct seen_options {
	bool profile, profile_dir, socket, fail, conf;
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
	if ((value = value_of(arg, "conf"))) {
		if (set_once(pamh, "conf", value, &args->conf_path,
			     &seen->conf) < 0)
			return -EINVAL;
		return check_absolute(pamh, "conf", value);
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
 * fail= is read in a first pass, so that an error anywhere is handled
 * under the fail mode the administrator chose. The line decides when it
 * has a fail= argument, else the file does. The mode is open only when
 * every fail= of the deciding source has the value "open". Returns
 * whether that source had a fail= at all.
 */
static bool find_fail_mode(size_t argc, const char *const *argv,
			   struct kh_pam_args *args)
{
	bool open = false, other = false;

	for (size_t i = 0; i < argc; i++) {
		const char *value = value_of(argv[i], "fail");

		if (value && strcmp(value, "open") == 0)
			open = true;
		else if (value)
			other = true;
	}
	if (open || other)
		args->fail = open && !other ? KH_PAM_FAIL_OPEN
					    : KH_PAM_FAIL_CLOSED;
	return open || other;
}

/* Returns the conf= value of the line, or NULL for the default file. */
static const char *line_conf_path(int argc, const char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *value = value_of(argv[i], "conf");

		if (value)
			return value;
	}
	return NULL;
}

/* user= or group= on the line replace the file's whole account list. */
static bool line_names_accounts(int argc, const char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (value_of(argv[i], "user") || value_of(argv[i], "group"))
			return true;
	}
	return false;
}

static int parse_source(pam_handle_t *pamh, size_t argc,
			const char *const *argv, struct kh_pam_args *args)
{
	struct seen_options seen = { 0 };
	int rc = 0;

	for (size_t i = 0; i < argc; i++) {
		if (parse_one(pamh, argv[i], args, &seen) < 0)
			rc = -EINVAL;
	}
	return rc;
}

static int read_conf(pam_handle_t *pamh, int argc, const char **argv,
		     struct kh_pam_args *args)
{
	const char *path = line_conf_path(argc, argv);
	int r;

	args->conf_path = path ? path : KH_PAM_CONF_DEFAULT;
	if (args->conf_path[0] != '/')
		return -EINVAL; /* parse_one logs it with the line */
	r = kh_pam_conf_read(pamh, args->conf_path, path != NULL,
			     &args->conf);
	args->conf_path = NULL; /* conf= on the line sets it again */
	return r;
}

int kh_pam_args_parse(pam_handle_t *pamh, int argc, const char **argv,
		      struct kh_pam_args *args)
{
	int rc;

	*args = (struct kh_pam_args){
		.profile = "agent",
		.profile_dir = KH_CONFINE_DIR_DEFAULT,
		.socket = KH_SOCKET_DEFAULT,
		.fail = KH_PAM_FAIL_CLOSED,
	};
	rc = read_conf(pamh, argc, argv, args) < 0 ? -EINVAL : 0;
	if (!find_fail_mode((size_t)argc, argv, args))
		(void)find_fail_mode(args->conf.count, args->conf.entries,
				     args);

	if (parse_source(pamh, args->conf.count, args->conf.entries,
			 args) < 0)
		rc = -EINVAL;
	if (line_names_accounts(argc, argv))
		args->n_users = args->n_groups = 0;
	if (parse_source(pamh, (size_t)argc, argv, args) < 0)
		rc = -EINVAL;

	if (args->n_users == 0 && args->n_groups == 0) {
		pam_syslog(pamh, LOG_ERR, "no user= or group= argument: add "
			   "one to the module line or to %s to name the "
			   "agent accounts", args->conf_path ?
			   args->conf_path : KH_PAM_CONF_DEFAULT);
		rc = -EINVAL;
	}
	return rc;
}

void kh_pam_args_free(struct kh_pam_args *args)
{
	kh_pam_conf_free(&args->conf);
}
