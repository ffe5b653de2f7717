/*
 * Agent identity: the user and group names a policy matches on,
 * resolved through NSS from a uid that the kernel reported.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhole/policy.h"

#define AGENT_GROUPS_MAX (sizeof(((struct kh_agent *)0)->groups) / \
			  sizeof(((struct kh_agent *)0)->groups[0]))
#define AGENT_NAME_MAX sizeof(((struct kh_agent *)0)->user)
/* Cap on NSS buffers, far above any real passwd or group entry. */
#define NSS_BUFFER_MAX (1024 * 1024)

static int lookup_user(uid_t uid, struct kh_agent *agent)
{
	size_t size = 1024;

	for (;;) {
		struct passwd pw;
		struct passwd *res = NULL;
		char *buf = malloc(size);
		int e;

		if (!buf)
			return -ENOMEM;
		e = getpwuid_r(uid, &pw, buf, size, &res);
		if (e == ERANGE && size < NSS_BUFFER_MAX) {
			free(buf);
			size *= 2;
			continue;
		}
		if (res && strlen(res->pw_name) < AGENT_NAME_MAX) {
			memcpy(agent->user, res->pw_name,
			       strlen(res->pw_name) + 1);
			agent->gid = res->pw_gid;
		}
		free(buf);
		if (!res && (e == 0 || e == ENOENT || e == ESRCH))
			return -ENOENT;
		if (!res)
			return -e;
		return agent->user[0] ? 0 : -ENAMETOOLONG;
	}
}

/* Appends the name of gid unless it is unknown or already listed. */
static int add_group(struct kh_agent *agent, gid_t gid)
{
	size_t size = 1024;

	for (;;) {
		struct group gr;
		struct group *res = NULL;
		char *buf = malloc(size);
		int e;
		int rc = 0;

		if (!buf)
			return -ENOMEM;
		e = getgrgid_r(gid, &gr, buf, size, &res);
		if (e == ERANGE && size < NSS_BUFFER_MAX) {
			free(buf);
			size *= 2;
			continue;
		}
		/* A gid without a name cannot be named by a policy. */
		for (size_t i = 0; res && i < agent->group_count; i++)
			if (strcmp(agent->groups[i], res->gr_name) == 0)
				res = NULL;
		if (res && strlen(res->gr_name) >= AGENT_NAME_MAX)
			rc = -ENAMETOOLONG;
		else if (res && agent->group_count >= AGENT_GROUPS_MAX)
			rc = -E2BIG;
		else if (res)
			memcpy(agent->groups[agent->group_count++],
			       res->gr_name, strlen(res->gr_name) + 1);
		free(buf);
		return rc;
	}
}

static int list_groups(struct kh_agent *agent, gid_t **out, int *count)
{
	int n = 64;

	for (;;) {
		gid_t *gids = calloc((size_t)n, sizeof(*gids));
		int want = n;

		if (!gids)
			return -ENOMEM;
		if (getgrouplist(agent->user, agent->gid, gids, &want) >= 0) {
			*out = gids;
			*count = want;
			return 0;
		}
		free(gids);
		if (want <= n)
			return -EIO;
		n = want;
	}
}

int kh_agent_resolve(uid_t uid, struct kh_agent *agent, struct kh_err *err)
{
	gid_t *gids = NULL;
	int count = 0;
	int rc;

	memset(agent, 0, sizeof(*agent));
	agent->uid = uid;
	rc = lookup_user(uid, agent);
	if (rc) {
		kh_err_set(err, "uid %u: %s", (unsigned)uid,
			   rc == -ENOENT ? "no such user in the passwd "
			   "database; keyhole decides only for known users" :
			   strerror(-rc));
		goto out;
	}
	rc = list_groups(agent, &gids, &count);
	/* The primary group comes first, as kh_agent documents. */
	if (!rc)
		rc = add_group(agent, agent->gid);
	for (int i = 0; !rc && i < count; i++)
		rc = add_group(agent, gids[i]);
	if (rc == -E2BIG)
		kh_err_set(err, "user %s is in more than %zu groups; keyhole "
			   "refuses rather than drop a group that a deny rule "
			   "may name", agent->user, AGENT_GROUPS_MAX);
	else if (rc)
		kh_err_set(err, "user %s: listing groups failed: %s",
			   agent->user, strerror(-rc));
out:
	free(gids);
	if (rc)
		memset(agent, 0, sizeof(*agent));
	return rc;
}
