/*
 * The admin group: members of the group that the config's "admin_group"
 * names may revoke any permit, as root may. Membership comes from the
 * kernel (SO_PEERGROUPS on the broker connection), never from the
 * request. The name is resolved to a gid at start-up and again at each
 * SIGHUP, so a group that was deleted stops granting anything.
 */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon.h"

/* Buffer for one getgrnam_r entry; grown on ERANGE up to this size. */
#define GROUP_BUF_MAX (1024 * 1024)

int kd_admin_group_resolve(const char *name, gid_t *gid, struct kh_err *err)
{
	struct group entry, *found = NULL;
	size_t size = 4096;
	char *buf = NULL;
	int r;

	for (;;) {
		char *grown = realloc(buf, size);

		if (!grown) {
			r = ENOMEM;
			break;
		}
		buf = grown;
		r = getgrnam_r(name, &entry, buf, size, &found);
		if (r != ERANGE || size >= GROUP_BUF_MAX)
			break;
		size *= 2;
	}
	if (r == 0 && found)
		*gid = found->gr_gid;
	free(buf);

	if (r == 0 && !found) {
		kh_err_set(err, "admin_group: group \"%s\" not found: create "
			   "it (groupadd --system %s) or remove admin_group "
			   "from the config", name, name);
		return -ENOENT;
	}
	if (r != 0) {
		kh_err_set(err, "admin_group: cannot look up group \"%s\": %s",
			   name, strerror(r));
		return -r;
	}
	return 0;
}

/*
 * Resolves d->config->admin_group into d->admin_gid. On failure no group
 * may revoke for others until a later SIGHUP resolves it: an admin group
 * that cannot be looked up must not keep its old power.
 */
int kd_admin_group_refresh(struct kd_daemon *d, struct kh_err *err)
{
	gid_t gid = 0;
	int r = 0;

	if (d->config->admin_group[0] != '\0')
		r = kd_admin_group_resolve(d->config->admin_group, &gid, err);

	pthread_mutex_lock(&d->lock);
	d->admin_group_set = d->config->admin_group[0] != '\0' && r == 0;
	d->admin_gid = gid;
	pthread_mutex_unlock(&d->lock);
	if (d->admin_group_set)
		kd_log(LOG_INFO, "admin_group %s is gid %u",
		       d->config->admin_group, (unsigned int)gid);
	return r;
}

/*
 * Reads the supplementary groups of the peer of connection fd as the
 * kernel recorded them at connect(). Returns 0 with *groups (malloc'd,
 * NULL when there are none) and *count set, or -errno.
 */
int kd_peer_groups_read(int fd, gid_t **groups, size_t *count)
{
	socklen_t len = 32 * sizeof(gid_t);
	gid_t *buf = NULL;
	int e;

	*groups = NULL;
	*count = 0;
	for (int tries = 0; tries < 3; tries++) {
		gid_t *grown = realloc(buf, len ? len : sizeof(gid_t));

		if (!grown) {
			free(buf);
			return -ENOMEM;
		}
		buf = grown;
		/* On ERANGE the kernel stores the length it needs in len. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, &len) == 0) {
			*count = len / sizeof(gid_t);
			if (*count > 0)
				*groups = buf;
			else
				free(buf);
			return 0;
		}
		if (errno != ERANGE)
			break;
	}
	e = errno;
	free(buf);
	return -e;
}

/* Caller holds d->lock. */
bool kd_admin_group_member_locked(const struct kd_daemon *d,
				  const struct kd_peer *peer)
{
	if (!d->admin_group_set)
		return false;
	if (peer->gid == d->admin_gid)
		return true;
	for (size_t i = 0; i < peer->group_count; i++) {
		if (peer->groups[i] == d->admin_gid)
			return true;
	}
	return false;
}
