/*
 * Unit tests for keyholed's session table: membership by audit session
 * id and by parent chain, the leader's exit, the limits, and reading a
 * real process's lineage from /proc. The tables are built by hand, so
 * the audit-id path runs even where /proc/self/sessionid is unset.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../fusefs/daemon.h"

#include "harness.h"

#define AGENT_UID 1000
#define ID_A "hb3dA0t6S1uWlCqBtSI8vQ"
#define ID_B "M_SBhSDxjHlkMIriCaiNuw"
#define ID_C "3CiorUdcgVjbTZG9ss2eBw"

static int pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* A pidfd on a child that has already exited and been reaped. */
static int exited_pidfd(void)
{
	pid_t child = fork();
	int fd;

	if (child == 0)
		_exit(0);
	fd = pidfd_of(child);
	(void)waitpid(child, NULL, 0);
	return fd;
}

static struct kd_session_info make_info(const char *id, uid_t uid,
					pid_t leader,
					unsigned long long start,
					uint32_t audit)
{
	struct kd_session_info info;

	memset(&info, 0, sizeof(info));
	(void)snprintf(info.id, sizeof(info.id), "%s", id);
	info.uid = uid;
	info.leader = leader;
	info.leader_start = start;
	info.audit_session = audit;
	(void)snprintf(info.service, sizeof(info.service), "sshd");
	return info;
}

/* A lineage of known processes: (pid, start) pairs, the process first. */
static void make_lineage(struct kd_lineage *lineage, uint32_t audit,
			 const pid_t *pids, const unsigned long long *starts,
			 size_t depth)
{
	memset(lineage, 0, sizeof(*lineage));
	lineage->known = true;
	lineage->audit_session = audit;
	lineage->depth = depth;
	for (size_t i = 0; i < depth; i++) {
		lineage->chain[i].pid = pids[i];
		lineage->chain[i].start = starts[i];
	}
}

static void test_member_by_audit_id(void)
{
	static const pid_t pids[] = { 300, 1 };
	static const unsigned long long starts[] = { 9, 1 };
	struct kd_sessions *sessions = NULL;
	struct kd_session_info info = make_info(ID_A, AGENT_UID, 100, 5, 42);
	struct kd_lineage lineage;

	CHECK_INT(kd_sessions_new(&sessions), 0);
	CHECK_INT(kd_sessions_add(sessions, &info, pidfd_of(getpid())), 0);

	/* Not a descendant of the leader, but in its audit session. */
	make_lineage(&lineage, 42, pids, starts, 2);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER);
	CHECK_STR(kd_sessions_of(sessions, &lineage, AGENT_UID), ID_A);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID + 1, &lineage),
		  KD_MEMBER_OTHER);
	CHECK(kd_sessions_of(sessions, &lineage, AGENT_UID + 1) == NULL);

	make_lineage(&lineage, 43, pids, starts, 2);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER_OTHER);
	CHECK(kd_sessions_of(sessions, &lineage, AGENT_UID) == NULL);

	/* An unset audit id never matches a session that has one. */
	make_lineage(&lineage, KD_AUDIT_SESSION_UNSET, pids, starts, 2);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER_OTHER);

	lineage.known = false;
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER_UNKNOWN);
	kd_sessions_free(sessions);
}

/* With an audit id set, a descendant of the leader outside it is out. */
static void test_audit_id_overrides_chain(void)
{
	static const pid_t pids[] = { 300, 100, 1 };
	static const unsigned long long starts[] = { 9, 5, 1 };
	struct kd_sessions *sessions = NULL;
	struct kd_session_info info = make_info(ID_A, AGENT_UID, 100, 5, 42);
	struct kd_lineage lineage;

	CHECK_INT(kd_sessions_new(&sessions), 0);
	CHECK_INT(kd_sessions_add(sessions, &info, pidfd_of(getpid())), 0);
	make_lineage(&lineage, 7, pids, starts, 3);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER_OTHER);
	kd_sessions_free(sessions);
}

static void test_member_by_parent_chain(void)
{
	static const pid_t pids[] = { 300, 200, 100, 1 };
	static const unsigned long long starts[] = { 9, 7, 5, 1 };
	static const unsigned long long recycled[] = { 9, 7, 6, 1 };
	struct kd_sessions *sessions = NULL;
	struct kd_session_info info = make_info(ID_A, AGENT_UID, 100, 5,
						KD_AUDIT_SESSION_UNSET);
	struct kd_lineage lineage;

	CHECK_INT(kd_sessions_new(&sessions), 0);
	CHECK_INT(kd_sessions_add(sessions, &info, pidfd_of(getpid())), 0);

	make_lineage(&lineage, KD_AUDIT_SESSION_UNSET, pids, starts, 4);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER);
	CHECK_STR(kd_sessions_of(sessions, &lineage, AGENT_UID), ID_A);

	/* The leader's pid, but another process (start time differs). */
	make_lineage(&lineage, KD_AUDIT_SESSION_UNSET, pids, recycled, 4);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER_OTHER);

	/* A process reparented away from the leader. */
	make_lineage(&lineage, KD_AUDIT_SESSION_UNSET, pids, starts, 2);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER_OTHER);
	kd_sessions_free(sessions);
}

/* A login inside a login: the nearest leader's session wins. */
static void test_nested_sessions(void)
{
	static const pid_t pids[] = { 300, 200, 100, 1 };
	static const unsigned long long starts[] = { 9, 7, 5, 1 };
	struct kd_sessions *sessions = NULL;
	struct kd_session_info outer = make_info(ID_A, AGENT_UID, 100, 5,
						 KD_AUDIT_SESSION_UNSET);
	struct kd_session_info inner = make_info(ID_B, AGENT_UID, 200, 7,
						 KD_AUDIT_SESSION_UNSET);
	struct kd_lineage lineage;

	CHECK_INT(kd_sessions_new(&sessions), 0);
	CHECK_INT(kd_sessions_add(sessions, &inner, pidfd_of(getpid())), 0);
	CHECK_INT(kd_sessions_add(sessions, &outer, pidfd_of(getpid())), 0);
	make_lineage(&lineage, KD_AUDIT_SESSION_UNSET, pids, starts, 4);
	CHECK_STR(kd_sessions_of(sessions, &lineage, AGENT_UID), ID_B);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER);
	CHECK_INT(kd_sessions_check(sessions, ID_B, AGENT_UID, &lineage),
		  KD_MEMBER);
	kd_sessions_free(sessions);
}

static void test_closed_and_exited(void)
{
	static const pid_t pids[] = { 300, 100, 1 };
	static const unsigned long long starts[] = { 9, 5, 1 };
	struct kd_sessions *sessions = NULL;
	struct kd_session_info live = make_info(ID_A, AGENT_UID, 100, 5,
						KD_AUDIT_SESSION_UNSET);
	struct kd_session_info dead = make_info(ID_B, AGENT_UID, 100, 5,
						KD_AUDIT_SESSION_UNSET);
	char ended[4][KD_SESSION_ID_LEN + 1];
	struct kd_lineage lineage;

	CHECK_INT(kd_sessions_new(&sessions), 0);
	CHECK_INT(kd_sessions_add(sessions, &live, pidfd_of(getpid())), 0);
	CHECK_INT(kd_sessions_add(sessions, &dead, exited_pidfd()), 0);
	make_lineage(&lineage, KD_AUDIT_SESSION_UNSET, pids, starts, 3);

	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER);
	CHECK_INT(kd_sessions_check(sessions, ID_B, AGENT_UID, &lineage),
		  KD_MEMBER_CLOSED);
	CHECK_INT(kd_sessions_check(sessions, ID_C, AGENT_UID, &lineage),
		  KD_MEMBER_CLOSED);
	CHECK_INT(kd_sessions_ended(sessions, ended, 4), 1);
	CHECK_STR(ended[0], ID_B);

	kd_sessions_remove(sessions, ID_A);
	CHECK(kd_sessions_find(sessions, ID_A) == NULL);
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, &lineage),
		  KD_MEMBER_CLOSED);
	kd_sessions_free(sessions);
}

static void test_limits(void)
{
	struct kd_sessions *sessions = NULL;
	struct kd_session_info info;
	char id[KD_SESSION_ID_LEN + 1];
	uid_t uid = 0;
	int r = 0;

	CHECK_INT(kd_sessions_new(&sessions), 0);
	for (int i = 0; i < KD_SESSIONS_PER_UID; i++) {
		CHECK_INT(kh_permit_new_jti(id), 0);
		info = make_info(id, AGENT_UID, 100, 5, 1);
		CHECK_INT(kd_sessions_add(sessions, &info, -1), 0);
	}
	CHECK_INT(kh_permit_new_jti(id), 0);
	info = make_info(id, AGENT_UID, 100, 5, 1);
	CHECK_INT(kd_sessions_add(sessions, &info, -1), -EUSERS);
	CHECK_INT(kd_sessions_count(sessions, AGENT_UID), KD_SESSIONS_PER_UID);

	/* Fill the table with other uids until it is full. */
	for (int i = KD_SESSIONS_PER_UID; i < KD_SESSIONS_MAX && r == 0; i++) {
		CHECK_INT(kh_permit_new_jti(id), 0);
		info = make_info(id, 2000 + (uid_t)(i / KD_SESSIONS_PER_UID),
				 100, 5, 1);
		r = kd_sessions_add(sessions, &info, -1);
	}
	CHECK_INT(r, 0);
	CHECK_INT(kh_permit_new_jti(id), 0);
	info = make_info(id, 9999, 100, 5, 1);
	CHECK_INT(kd_sessions_add(sessions, &info, -1), -EBUSY);

	info = make_info("not an id", uid, 100, 5, 1);
	CHECK_INT(kd_sessions_add(sessions, &info, -1), -EINVAL);
	kd_sessions_free(sessions);

	CHECK_INT(kd_sessions_new(&sessions), 0);
	info = make_info(ID_A, AGENT_UID, 100, 5, 1);
	CHECK_INT(kd_sessions_add(sessions, &info, -1), 0);
	CHECK_INT(kd_sessions_add(sessions, &info, -1), -EEXIST);
	/* A session without a pidfd has no leader to watch: it is ended. */
	CHECK_INT(kd_sessions_check(sessions, ID_A, AGENT_UID, NULL),
		  KD_MEMBER_CLOSED);
	kd_sessions_free(sessions);
}

/* A child's lineage from /proc: itself, then this process, then more. */
static void test_lineage_of_child(void)
{
	struct kd_lineage self, child_lineage;
	int ready[2];
	pid_t child;
	char byte;

	CHECK_INT(kd_lineage_read(getpid(), -1, &self), 0);
	CHECK(self.known);
	CHECK(self.depth >= 2);
	CHECK_INT(self.chain[0].pid, getpid());
	CHECK_INT(self.chain[1].pid, getppid());

	CHECK_INT(pipe(ready), 0);
	child = fork();
	if (child == 0) {
		close(ready[1]);
		_exit(read(ready[0], &byte, 1) < 0 ? 1 : 0);
	}
	close(ready[0]);
	CHECK_INT(kd_lineage_read(child, -1, &child_lineage), 0);
	CHECK(child_lineage.known);
	CHECK_INT(child_lineage.depth, self.depth + 1);
	CHECK_INT(child_lineage.chain[0].pid, child);
	CHECK_INT(child_lineage.chain[1].pid, getpid());
	CHECK(child_lineage.chain[1].start == self.chain[0].start);
	CHECK_INT(child_lineage.audit_session, self.audit_session);
	close(ready[1]);
	(void)waitpid(child, NULL, 0);

	CHECK_INT(kd_lineage_read(child, -1, &child_lineage), -ESRCH);
	CHECK(!child_lineage.known);
}

int main(void)
{
	static const struct kh_test_case cases[] = {
		{ "member_by_audit_id", test_member_by_audit_id },
		{ "audit_id_overrides_chain", test_audit_id_overrides_chain },
		{ "member_by_parent_chain", test_member_by_parent_chain },
		{ "nested_sessions", test_nested_sessions },
		{ "closed_and_exited", test_closed_and_exited },
		{ "limits", test_limits },
		{ "lineage_of_child", test_lineage_of_child },
	};

	return KH_TEST_RUN("session", cases);
}
