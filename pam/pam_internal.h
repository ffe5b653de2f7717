/*
 * Shared declarations of pam_keyhole.so: module arguments, the keyholed
 * session client and the agent match. The version script exports only
 * pam_sm_open_session and pam_sm_close_session, so these names stay
 * inside the module.
 */
#ifndef KEYHOLE_PAM_INTERNAL_H
#define KEYHOLE_PAM_INTERNAL_H

#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <security/pam_modules.h>

#include "keyhole/confine.h"
#include "keyhole/error.h"

/* Maximum user= and group= arguments in one module line. */
#define KH_PAM_MAX_NAMES 32

/* Bound on each socket call to keyholed: connect, send and receive. */
#define KH_PAM_TIMEOUT_MS 5000

/* A session id: 16 random bytes as unpadded base64url. */
#define KH_PAM_SESSION_ID_LEN 22

/* The pam_set_data name under which open_session stores the id. */
#define KH_PAM_DATA_SESSION "keyhole_session"

/*
 * The pam_set_data name of the settings that close_session needs. The
 * confinement that open_session applies hides /etc/keyhole, so the
 * config file cannot be read again at close.
 */
#define KH_PAM_DATA_CLOSE "keyhole_close"

enum kh_pam_fail_mode {
	KH_PAM_FAIL_CLOSED = 0, /* an agent's session fails to open */
	KH_PAM_FAIL_OPEN = 1,   /* the session opens, with a warning */
};

/* The module's config file, read when it exists (conf= names another). */
#define KH_PAM_CONF_DEFAULT KH_SYSCONFDIR "/keyhole/pam_keyhole.conf"

/* Most settings one config file may hold. */
#define KH_PAM_CONF_MAX_ENTRIES 96

/* A config file split into "key=value" entries that point into text. */
struct kh_pam_conf {
	char *text;
	const char *entries[KH_PAM_CONF_MAX_ENTRIES];
	size_t count;
};

/*
 * Reads the config file at path (root-owned, not group- or
 * world-writable, checked on the open file) into conf. A missing file
 * leaves conf empty and is an error only when required is true.
 * Returns 0 or a negative errno after logging the path, line and fix.
 * The caller frees conf with kh_pam_conf_free, also on failure.
 */
int kh_pam_conf_read(pam_handle_t *pamh, const char *path, bool required,
		     struct kh_pam_conf *conf);

void kh_pam_conf_free(struct kh_pam_conf *conf);

/*
 * The module's settings: the config file first, then the arguments of
 * the /etc/pam.d line, which override the file for every option they
 * give (user= and group= together count as one option).
 */
struct kh_pam_args {
	const char *users[KH_PAM_MAX_NAMES];  /* point into argv */
	size_t n_users;
	const char *groups[KH_PAM_MAX_NAMES];
	size_t n_groups;
	const char *profile;      /* "none" disables confinement */
	const char *profile_dir;
	const char *socket;
	enum kh_pam_fail_mode fail;
	bool debug;
	const char *conf_path;
	struct kh_pam_conf conf;  /* backs the values read from the file */
};

/*
 * Reads the config file and parses argv into args. Unknown arguments on
 * the line are logged at LOG_WARNING and ignored; unknown keys in the
 * file are errors. Returns 0, or -EINVAL after logging at LOG_ERR when
 * the file cannot be read, a known argument has an invalid or repeated
 * value, or neither user= nor group= is given. args->fail is valid even
 * on failure, so the caller can honour fail=open for a broken line.
 * The caller releases args with kh_pam_args_free, also on failure.
 */
int kh_pam_args_parse(pam_handle_t *pamh, int argc, const char **argv,
		      struct kh_pam_args *args);

void kh_pam_args_free(struct kh_pam_args *args);

/*
 * Looks up the PAM user with getpwnam_r into pw, backed by *buf (to be
 * freed by the caller, also on failure). Returns 0, -ENOENT for an
 * unknown user, or another negative errno, after logging why.
 */
int kh_pam_lookup_user(pam_handle_t *pamh, struct passwd *pw, char **buf);

/*
 * Returns 1 when pw is an agent account by args (user= names the
 * account, or group= names its primary or a supplementary group), 0
 * when it is not, or a negative errno after logging an NSS failure.
 */
int kh_pam_is_agent(pam_handle_t *pamh, const struct kh_pam_args *args,
		    const struct passwd *pw);

/* keyholed's reply to session_open, checked field by field. */
struct kh_pam_session {
	char id[KH_PAM_SESSION_ID_LEN + 1];
	char permits[PATH_MAX];
	char permits_dir[PATH_MAX];
	char secrets[PATH_MAX];
};

/*
 * Sends session_open for uid, service and tty (tty may be NULL) to the
 * broker at socket_path and fills out from its reply. Returns 0, or a
 * negative errno with err saying what failed: connecting, a timeout, a
 * rejection (with keyholed's error and reason) or an invalid reply.
 */
int kh_pam_session_open(const char *socket_path, uid_t uid,
			const char *service, const char *tty,
			struct kh_pam_session *out, struct kh_err *err);

/*
 * Sends session_close for session id of account uid, with reason
 * "login_refused" when refused is true (the login is being abandoned)
 * and "logout" otherwise. Returns 0 and the number of permits keyholed
 * revoked in *revoked, or a negative errno with err set.
 */
int kh_pam_session_close(const char *socket_path, const char *id,
			 uid_t uid, bool refused, long long *revoked,
			 struct kh_err *err);

/* Returns true when id has the form of a session id. */
bool kh_pam_session_id_valid(const char *id);

#endif
