/*
 * Whether the PAM user is an agent account, decided through NSS: user=
 * names the account and group= one of its groups, primary or
 * supplementary (getgrouplist).
 */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>

#include "pam_internal.h"

/* getgrouplist results beyond this many groups are an error. */
#define MAX_GROUPS 65536

/* Initial size of a getpwnam_r or getgrnam_r buffer. ERANGE doubles it. */
#define NSS_BUF_START 1024
#define NSS_BUF_MAX (1 << 20)

static int lookup_passwd(const char *name, struct passwd *pw, char **buf)
{
	size_t size = NSS_BUF_START;
	struct passwd *found = NULL;
	int rc;

	for (;;) {
		char *grown = realloc(*buf, size);

		if (!grown)
			return -ENOMEM;
		*buf = grown;
		rc = getpwnam_r(name, pw, *buf, size, &found);
		if (rc != ERANGE || size >= NSS_BUF_MAX)
			break;
		size *= 2;
	}
	if (rc != 0)
		return -rc;
	return found ? 0 : -ENOENT;
}

static int lookup_group_gid(const char *name, gid_t *gid)
{
	size_t size = NSS_BUF_START;
	struct group gr, *found = NULL;
	char *buf = NULL;
	int rc;

	for (;;) {
		char *grown = realloc(buf, size);

		if (!grown) {
			free(buf);
			return -ENOMEM;
		}
		buf = grown;
		rc = getgrnam_r(name, &gr, buf, size, &found);
		if (rc != ERANGE || size >= NSS_BUF_MAX)
			break;
		size *= 2;
	}
	if (rc == 0 && found)
		*gid = gr.gr_gid;
	free(buf);
	if (rc != 0)
		return -rc;
	return found ? 0 : -ENOENT;
}

int kh_pam_lookup_user(pam_handle_t *pamh, struct passwd *pw, char **buf)
{
	const char *user = NULL;
	int rc;

	rc = pam_get_user(pamh, &user, NULL);
	if (rc != PAM_SUCCESS || !user || *user == '\0') {
		pam_syslog(pamh, LOG_ERR, "cannot determine the user: %s",
			   pam_strerror(pamh, rc));
		return -EINVAL;
	}

	rc = lookup_passwd(user, pw, buf);
	if (rc == -ENOENT)
		pam_syslog(pamh, LOG_ERR, "user \"%s\" not found by NSS",
			   user);
	else if (rc < 0)
		pam_syslog(pamh, LOG_ERR, "getpwnam_r(\"%s\") failed: %s",
			   user, strerror(-rc));
	return rc;
}

/*
 * user= matches by uid, so an account listed under one name also
 * matches under another name for the same uid: confinement and
 * keyholed both go by uid.
 */
static int match_user(pam_handle_t *pamh, const struct kh_pam_args *args,
		      const struct passwd *pw)
{
	for (size_t i = 0; i < args->n_users; i++) {
		struct passwd listed;
		char *buf = NULL;
		int rc;

		if (strcmp(args->users[i], pw->pw_name) == 0)
			return 1;
		rc = lookup_passwd(args->users[i], &listed, &buf);
		if (rc == 0 && listed.pw_uid == pw->pw_uid) {
			free(buf);
			return 1;
		}
		free(buf);
		if (rc == -ENOENT) {
			if (args->debug)
				pam_syslog(pamh, LOG_DEBUG, "user=%s not found "
					   "by NSS", args->users[i]);
		} else if (rc < 0) {
			pam_syslog(pamh, LOG_ERR, "getpwnam_r(\"%s\") failed: "
				   "%s", args->users[i], strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Fills *groups with every group of pw; the caller frees it. */
static int list_groups(const struct passwd *pw, gid_t **groups, int *count)
{
	int n = 64;

	for (;;) {
		gid_t *grown = realloc(*groups, (size_t)n * sizeof(**groups));
		int want = n;

		if (!grown)
			return -ENOMEM;
		*groups = grown;
		if (getgrouplist(pw->pw_name, pw->pw_gid, *groups, &want) >= 0) {
			*count = want;
			return 0;
		}
		if (want <= n || want > MAX_GROUPS)
			return -E2BIG;
		n = want;
	}
}

static int in_groups(gid_t gid, const gid_t *groups, int count)
{
	for (int i = 0; i < count; i++) {
		if (groups[i] == gid)
			return 1;
	}
	return 0;
}

static int match_group(pam_handle_t *pamh, const struct kh_pam_args *args,
		       const struct passwd *pw)
{
	gid_t *groups = NULL;
	int count = 0, rc;

	rc = list_groups(pw, &groups, &count);
	if (rc < 0) {
		pam_syslog(pamh, LOG_ERR, "getgrouplist(\"%s\") failed: %s",
			   pw->pw_name, strerror(-rc));
		goto out;
	}

	for (size_t i = 0; i < args->n_groups && rc == 0; i++) {
		gid_t gid;
		int found = lookup_group_gid(args->groups[i], &gid);

		if (found == 0) {
			rc = in_groups(gid, groups, count);
		} else if (found == -ENOENT) {
			if (args->debug)
				pam_syslog(pamh, LOG_DEBUG, "group=%s not "
					   "found by NSS", args->groups[i]);
		} else {
			pam_syslog(pamh, LOG_ERR, "getgrnam_r(\"%s\") failed: "
				   "%s", args->groups[i], strerror(-found));
			rc = found;
		}
	}
out:
	free(groups);
	return rc;
}

int kh_pam_is_agent(pam_handle_t *pamh, const struct kh_pam_args *args,
		    const struct passwd *pw)
{
	int rc = match_user(pamh, args, pw);

	if (rc != 0)
		return rc;
	if (args->n_groups == 0)
		return 0;
	return match_group(pamh, args, pw);
}
