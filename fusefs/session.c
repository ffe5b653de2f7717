/*
 * The session table and session membership.
 *
 * pam_keyhole.so registers each login session of an agent account, and
 * the session's leader is the process that ran PAM. A permit minted for
 * a process of a session is bound to it (claim "sid"), and the FUSE
 * check accepts such a permit only from a process of the same open
 * session. Membership comes from the kernel, never from the caller:
 *   - a session with an audit session id (pam_loginuid set one before
 *     pam_keyhole ran) contains the processes whose
 *     /proc/<pid>/sessionid equals it. Only a process with
 *     CAP_AUDIT_CONTROL can change that id, and children inherit it;
 *   - a session without one contains the processes whose parent chain
 *     reaches the leader, compared by pid and start time so that a
 *     recycled pid does not count.
 * Each session keeps a pidfd on its leader, so that the leader's exit
 * is seen even when its pid is reused.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"

struct session_node {
	struct session_node *next;
	struct kd_session_info info;
	int pidfd;
};

struct kd_sessions {
	struct session_node *head;  /* most recently opened first */
	size_t count;
};

int kd_sessions_new(struct kd_sessions **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void free_node(struct session_node *node)
{
	if (node->pidfd >= 0)
		close(node->pidfd);
	free(node);
}

void kd_sessions_free(struct kd_sessions *sessions)
{
	struct session_node *node, *next;

	if (!sessions)
		return;
	for (node = sessions->head; node; node = next) {
		next = node->next;
		free_node(node);
	}
	free(sessions);
}

size_t kd_sessions_count(const struct kd_sessions *sessions, uid_t uid)
{
	size_t count = 0;

	for (const struct session_node *n = sessions->head; n; n = n->next)
		count += n->info.uid == uid;
	return count;
}

/*
 * Adds a session and takes ownership of pidfd, a pidfd on its leader,
 * also on failure. Returns -EUSERS when info->uid already has
 * KD_SESSIONS_PER_UID sessions, -EBUSY when the table has
 * KD_SESSIONS_MAX, -EEXIST for an id already open, -EINVAL for an
 * invalid id.
 */
int kd_sessions_add(struct kd_sessions *sessions,
		    const struct kd_session_info *info, int pidfd)
{
	struct session_node *node;
	int r = 0;

	if (!kh_permit_jti_is_valid(info->id))
		r = -EINVAL;
	else if (kd_sessions_find(sessions, info->id))
		r = -EEXIST;
	else if (kd_sessions_count(sessions, info->uid) >= KD_SESSIONS_PER_UID)
		r = -EUSERS;
	else if (sessions->count >= KD_SESSIONS_MAX)
		r = -EBUSY;
	node = r == 0 ? calloc(1, sizeof(*node)) : NULL;
	if (!node) {
		if (pidfd >= 0)
			close(pidfd);
		return r < 0 ? r : -ENOMEM;
	}
	node->info = *info;
	node->pidfd = pidfd;
	node->next = sessions->head;
	sessions->head = node;
	sessions->count++;
	return 0;
}

static struct session_node *find_node(const struct kd_sessions *sessions,
				      const char *id)
{
	for (struct session_node *n = sessions->head; n; n = n->next) {
		if (strcmp(n->info.id, id) == 0)
			return n;
	}
	return NULL;
}

const struct kd_session_info *kd_sessions_find(
	const struct kd_sessions *sessions, const char *id)
{
	const struct session_node *node = find_node(sessions, id);

	return node ? &node->info : NULL;
}

/* Removes the session id and closes its pidfd. An unknown id is ignored. */
void kd_sessions_remove(struct kd_sessions *sessions, const char *id)
{
	struct session_node **link;

	for (link = &sessions->head; *link; link = &(*link)->next) {
		struct session_node *node = *link;

		if (strcmp(node->info.id, id) == 0) {
			*link = node->next;
			sessions->count--;
			free_node(node);
			return;
		}
	}
}

/*
 * Returns true once the leader has exited: a pidfd polls readable when
 * its process ends. A session without a pidfd has no leader to watch
 * and counts as ended, so that it can never grant anything.
 */
static bool leader_exited(const struct session_node *node)
{
	struct pollfd pfd = { .fd = node->pidfd, .events = POLLIN };
	int n;

	if (node->pidfd < 0)
		return true;
	do {
		n = poll(&pfd, 1, 0);
	} while (n < 0 && errno == EINTR);
	return n != 0;
}

/*
 * Copies into out the id of every session whose leader has exited, at
 * most max of them, and returns how many it copied.
 */
size_t kd_sessions_ended(const struct kd_sessions *sessions,
			 char (*out)[KD_SESSION_ID_LEN + 1], size_t max)
{
	size_t count = 0;

	for (const struct session_node *n = sessions->head;
	     n && count < max; n = n->next) {
		if (leader_exited(n))
			memcpy(out[count++], n->info.id, sizeof(n->info.id));
	}
	return count;
}

/* The depth of the session's leader in the lineage, or -1. */
static long leader_depth(const struct kd_session_info *info,
			 const struct kd_lineage *lineage)
{
	for (size_t i = 0; i < lineage->depth; i++) {
		if (lineage->chain[i].pid == info->leader &&
		    lineage->chain[i].start == info->leader_start)
			return (long)i;
	}
	return -1;
}

/*
 * NOTE: without an audit session id, a process that leaves the parent
 * chain (setsid and a double fork) is outside every session. Its
 * permits carry no sid and stay valid after the session ends.
 */
static bool is_member(const struct kd_session_info *info,
		      const struct kd_lineage *lineage)
{
	if (!lineage->known)
		return false;
	if (info->audit_session != KD_AUDIT_SESSION_UNSET)
		return lineage->audit_session == info->audit_session;
	return leader_depth(info, lineage) >= 0;
}

/*
 * Returns the id of the session of uid that the process in lineage
 * belongs to, or NULL when it belongs to none. When it belongs to
 * several (a login inside a login), the one whose leader is its
 * nearest ancestor wins, then the most recently opened.
 */
const char *kd_sessions_of(const struct kd_sessions *sessions,
			   const struct kd_lineage *lineage, uid_t uid)
{
	const struct session_node *best = NULL;
	long best_depth = LONG_MAX;

	for (const struct session_node *n = sessions->head; n; n = n->next) {
		long depth;

		if (n->info.uid != uid || !is_member(&n->info, lineage))
			continue;
		depth = leader_depth(&n->info, lineage);
		if (depth < 0)
			depth = LONG_MAX - 1;
		if (!best || depth < best_depth) {
			best = n;
			best_depth = depth;
		}
	}
	return best ? best->info.id : NULL;
}

/*
 * Decides whether the process in lineage, of uid, may use a permit
 * bound to session id. A session whose leader has exited is closed
 * even before the clean-up pass revokes its permits.
 */
enum kd_membership kd_sessions_check(const struct kd_sessions *sessions,
				     const char *id, uid_t uid,
				     const struct kd_lineage *lineage)
{
	const struct session_node *node = find_node(sessions, id);

	if (!node || leader_exited(node))
		return KD_MEMBER_CLOSED;
	if (!lineage->known)
		return KD_MEMBER_UNKNOWN;
	if (node->info.uid != uid || !is_member(&node->info, lineage))
		return KD_MEMBER_OTHER;
	return KD_MEMBER;
}

/*
 * Reads /proc/<pid>/sessionid. Returns KD_AUDIT_SESSION_UNSET when it
 * is unset or the kernel has no audit support.
 */
uint32_t kd_lineage_audit_session(int dirfd)
{
	char buf[32], *end;
	unsigned long long value;

	if (kd_proc_read_file(dirfd, "sessionid", buf, sizeof(buf)) <= 0)
		return KD_AUDIT_SESSION_UNSET;
	errno = 0;
	value = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf || value > KD_AUDIT_SESSION_UNSET)
		return KD_AUDIT_SESSION_UNSET;
	return (uint32_t)value;
}

static int open_proc_dir(pid_t pid)
{
	char path[32];
	int fd;

	(void)snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return fd;
}

/*
 * Reads the audit session id and the parent chain of pid. dirfd is an
 * open /proc/<pid> directory (kept from a pidfd check) or -1 to open
 * one. The walk ends at a process whose parent is 0 (init, or a kernel
 * thread). An ancestor that exits during the walk ends it early: its
 * children have been reparented, so the chain above it no longer
 * holds. A chain longer than KD_LINEAGE_MAX, or a process that cannot
 * be read, leaves out->known false.
 */
int kd_lineage_read(pid_t pid, int dirfd, struct kd_lineage *out)
{
	int fd = dirfd >= 0 ? dirfd : open_proc_dir(pid);
	pid_t ppid = 0;
	int r;

	memset(out, 0, sizeof(*out));
	out->audit_session = KD_AUDIT_SESSION_UNSET;
	if (fd < 0)
		return fd;
	out->audit_session = kd_lineage_audit_session(fd);
	r = kd_proc_read_stat(fd, &ppid, &out->chain[0].start);
	if (fd != dirfd)
		close(fd);
	if (r < 0)
		return r;
	out->chain[0].pid = pid;
	out->depth = 1;
	while (ppid > 0 && out->depth < KD_LINEAGE_MAX) {
		size_t i = out->depth;

		fd = open_proc_dir(ppid);
		if (fd < 0)
			break;
		out->chain[i].pid = ppid;
		r = kd_proc_read_stat(fd, &ppid, &out->chain[i].start);
		close(fd);
		if (r < 0)
			break;
		out->depth++;
	}
	out->known = ppid == 0 || out->depth < KD_LINEAGE_MAX;
	return out->known ? 0 : -E2BIG;
}
