/*
 * Confinement profiles: no_new_privs, a seccomp filter built with
 * libseccomp and a Landlock ruleset, applied to the calling process so
 * that every child inherits them. One library serves `keyhole exec
 * --confine`, `keyhole confine show` and pam_keyhole.so.
 *
 * A profile is a JSON file CONFDIR/NAME.json (by default
 * /etc/keyhole/confine.d), parsed strictly. When the file does not
 * exist, the built-in profile of that name is used ("agent", "strict").
 */
#ifndef KEYHOLE_CONFINE_H
#define KEYHOLE_CONFINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyhole/error.h"

#define KH_CONFINE_DIR_DEFAULT KH_SYSCONFDIR "/keyhole/confine.d"

/* Profile names match [a-z0-9_-]{1,32}. */
#define KH_CONFINE_NAME_MAX 32

/* Behaviour on a kernel without Landlock, or with it disabled. */
enum kh_landlock_missing {
	KH_LANDLOCK_REFUSE = 0,   /* kh_confine_apply fails with -ENOSYS */
	KH_LANDLOCK_CONTINUE = 1, /* seccomp only, and the note states it */
};

/*
 * Values that a profile's paths may refer to, filled by the caller:
 * "~" expands to home, and "{uid}", "{permits}" and "{secrets}" to the
 * caller's uid, permits_dir/<uid> and the secrets mount. home may be
 * NULL when the account has none. Rules under "~" are dropped then, and
 * also when home is not a directory owned by uid (system accounts
 * such as "daemon" have /usr/sbin as their home).
 */
struct kh_confine_vars {
	uid_t uid;
	const char *home;
	const char *permits_dir;   /* permits_dir, without the uid */
	const char *secrets_mount;
};

/*
 * Writes into out the path that a Landlock rule for the secrets mount
 * names: the mount's parent directory when that is a root-owned
 * directory, not writable by group or others, whose only entry is the
 * mount point, else the mount itself. A rule on the parent still matches
 * after keyholed restarts and mounts a new file system; a rule on the
 * mount does not. Profiles expand a path that is exactly "{secrets}"
 * this way. Returns 1 for the parent, 0 for the mount, or -ENAMETOOLONG.
 */
int kh_confine_secrets_rule_path(const char *mount, char *out, size_t size);

/* An effective profile after defaults, file contents and expansion. */
struct kh_confine_profile;

/*
 * Loads profile name: confdir/name.json when it exists, else the
 * built-in profile of that name, else -ENOENT with err naming both
 * places. confdir may be NULL for KH_CONFINE_DIR_DEFAULT. A profile file
 * must be a regular file owned by root (or the caller's euid) and not
 * writable by group or others. Unknown keys, duplicate keys, unknown
 * syscall names and paths that are not absolute (after "~" expansion)
 * are errors that name the JSON path and line.
 */
int kh_confine_load(const char *confdir, const char *name,
		    const struct kh_confine_vars *vars,
		    struct kh_confine_profile **out, struct kh_err *err)
	__attribute__((warn_unused_result));

void kh_confine_free(struct kh_confine_profile *profile);

/*
 * Returns the effective profile as JSON (new reference), with every
 * path expanded and every list sorted, for `keyhole confine show`.
 */
json_t *kh_confine_to_json(const struct kh_confine_profile *profile);

/* Names of the built-in profiles, NULL-terminated. */
extern const char *const kh_confine_builtin_names[];

/* Summary of what kh_confine_apply applied, for the caller's log line. */
struct kh_confine_report {
	int landlock_abi;      /* 0 when Landlock is unavailable */
	bool landlock_applied;
	bool net_rules;        /* TCP port rules enforced (ABI >= 4) */
	size_t seccomp_rules;  /* rules in the native-ABI filter */
	char note[256];        /* "" or why something was skipped */
};

/*
 * Applies profile to the calling thread and, through inheritance, to
 * every process it later creates: PR_SET_NO_NEW_PRIVS, then Landlock,
 * then seccomp. seccomp comes last so that a profile's extra deny list
 * cannot block the calls that set up the earlier steps. Call it in a single-threaded process, or accept
 * that only the calling thread is confined. Returns 0, or a negative
 * errno with err naming the step that failed; on failure the process
 * may be partly confined and must not go on to run the workload.
 */
int kh_confine_apply(const struct kh_confine_profile *profile,
		     struct kh_confine_report *report, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Returns the running kernel's Landlock ABI version, 0 when Landlock is
 * missing or disabled.
 */
int kh_confine_landlock_abi(void);

/*
 * Resolves every syscall name that any built-in profile names on every
 * architecture the filter covers. Returns the number of names that did
 * not resolve and reports each one; tests require 0.
 */
int kh_confine_check_names(kh_err_report_fn report, void *ctx);

#endif
