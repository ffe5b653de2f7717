/*
 * Unit tests for keyholed's building blocks that need no FUSE mount:
 * the denial-reason table, the issued-permit index and its DPR replay,
 * the permits directory, /proc inspection and the denial rate limit.
 *
 * The permits directory cases chown files and need root, as keyholed
 * does.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../fusefs/daemon.h"

#include "harness.h"

/* The agent uid the permits directory cases write for (daemon). */
#define AGENT_UID 1
#define AGENT_GID 1

/* Room for one message a check reports. */
#define REPORT_MAX 1024

static char *make_temp_dir(void)
{
	char *dir = strdup("/tmp/keyhole-unit.XXXXXX");

	if (dir && !mkdtemp(dir)) {
		free(dir);
		return NULL;
	}
	return dir;
}

static void remove_tree(const char *dir)
{
	char cmd[512];

	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir) < (int)sizeof(cmd) &&
	    system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void test_reasons_per_uid(void)
{
	struct kd_reasons *reasons = NULL;
	char out[KD_REASON_MAX];

	CHECK_INT(kd_reasons_new(&reasons), 0);
	kd_reasons_set(reasons, 1000, "/local/a", "uses exhausted");
	CHECK_INT(kd_reasons_get(reasons, 1000, "/local/a", out), 0);
	CHECK_STR(out, "uses exhausted");
	CHECK_INT(kd_reasons_get(reasons, 1001, "/local/a", out), -ENODATA);
	CHECK_STR(out, "");
	CHECK_INT(kd_reasons_get(reasons, 1000, "/local/b", out), -ENODATA);

	kd_reasons_set(reasons, 1000, "/local/a", "action mismatch");
	CHECK_INT(kd_reasons_get(reasons, 1000, "/local/a", out), 0);
	CHECK_STR(out, "action mismatch");
	kd_reasons_free(reasons);
}

static void test_reasons_evicts_oldest(void)
{
	struct kd_reasons *reasons = NULL;
	char path[64], out[KD_REASON_MAX];

	CHECK_INT(kd_reasons_new(&reasons), 0);
	for (int i = 0; i <= KD_REASON_SLOTS; i++) {
		(void)snprintf(path, sizeof(path), "/local/s%d", i);
		kd_reasons_set(reasons, 7, path, "no permit held");
	}
	/* The first entry was the least recently set, so it went first. */
	CHECK_INT(kd_reasons_get(reasons, 7, "/local/s0", out), -ENODATA);
	CHECK_INT(kd_reasons_get(reasons, 7, "/local/s1", out), 0);
	(void)snprintf(path, sizeof(path), "/local/s%d", KD_REASON_SLOTS);
	CHECK_INT(kd_reasons_get(reasons, 7, path, out), 0);
	kd_reasons_free(reasons);
}

static void test_reasons_long_path_ignored(void)
{
	struct kd_reasons *reasons = NULL;
	char path[KD_REASON_PATH_MAX + 8], out[KD_REASON_MAX];

	CHECK_INT(kd_reasons_new(&reasons), 0);
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	kd_reasons_set(reasons, 7, path, "no permit held");
	CHECK_INT(kd_reasons_get(reasons, 7, path, out), -ENODATA);
	kd_reasons_free(reasons);
}

static void test_issued_add_find_prune(void)
{
	struct kd_issued *issued = NULL;
	struct kd_issued_entry entry;

	CHECK_INT(kd_issued_new(&issued), 0);
	CHECK_INT(kd_issued_add(issued, "hb3dA0t6S1uWlCqBtSI8vQ", 1000, 100,
				KD_ACTION_TOOL_CALL, NULL), 0);
	CHECK_INT(kd_issued_add(issued, "M_SBhSDxjHlkMIriCaiNuw", 1001, 200,
				KD_ACTION_EXEC, NULL), 0);
	CHECK_INT(kd_issued_add(issued, "not a jti", 1, 300, KD_ACTION_EXEC,
				NULL), -EINVAL);

	CHECK_INT(kd_issued_find(issued, "hb3dA0t6S1uWlCqBtSI8vQ", &entry), 0);
	CHECK_INT(entry.uid, 1000);
	CHECK_INT(entry.exp, 100);
	CHECK_INT(entry.kind, KD_ACTION_TOOL_CALL);
	CHECK_INT(kd_issued_find(issued, "M_SBhSDxjHlkMIriCaiNuw", &entry), 0);
	CHECK_INT(entry.kind, KD_ACTION_EXEC);
	CHECK_INT(kd_issued_find(issued, "AAAAAAAAAAAAAAAAAAAAAA", &entry),
		  -ENOENT);

	/* Expired before 150: the first goes, the second stays. */
	CHECK_INT(kd_issued_prune(issued, 150, 16, NULL, NULL), 1);
	CHECK_INT(kd_issued_find(issued, "hb3dA0t6S1uWlCqBtSI8vQ", &entry),
		  -ENOENT);
	CHECK_INT(kd_issued_find(issued, "M_SBhSDxjHlkMIriCaiNuw", &entry), 0);
	kd_issued_free(issued);
}

struct pruned {
	size_t count;
	uid_t uids[4];
};

static void note_pruned(const char *jti, const struct kd_issued_entry *entry,
			void *ctx)
{
	struct pruned *pruned = ctx;

	(void)jti;
	if (pruned->count < 4)
		pruned->uids[pruned->count] = entry->uid;
	pruned->count++;
}

/* One pass drops at most max expired permits and reports each one. */
static void test_issued_prune_batch(void)
{
	static const char *const expired[] = {
		"hb3dA0t6S1uWlCqBtSI8vQ",
		"M_SBhSDxjHlkMIriCaiNuw",
		"3CiorUdcgVjbTZG9ss2eBw",
	};
	const char *live = "AAAAAAAAAAAAAAAAAAAAAA";
	struct kd_issued *issued = NULL;
	struct kd_issued_entry entry;
	struct pruned pruned = { 0 };

	CHECK_INT(kd_issued_new(&issued), 0);
	for (size_t i = 0; i < 3; i++)
		CHECK_INT(kd_issued_add(issued, expired[i], 1000, 100,
					KD_ACTION_EXEC, NULL), 0);
	CHECK_INT(kd_issued_add(issued, live, 1000, 500, KD_ACTION_EXEC, NULL),
		  0);

	CHECK_INT(kd_issued_prune(issued, 200, 2, note_pruned, &pruned), 2);
	CHECK_INT(pruned.count, 2);
	CHECK_INT(pruned.uids[0], 1000);
	CHECK_INT(kd_issued_prune(issued, 200, 2, note_pruned, &pruned), 1);
	CHECK_INT(pruned.count, 3);
	CHECK_INT(kd_issued_prune(issued, 200, 2, note_pruned, &pruned), 0);
	for (size_t i = 0; i < 3; i++)
		CHECK_INT(kd_issued_find(issued, expired[i], &entry), -ENOENT);
	CHECK_INT(kd_issued_find(issued, live, &entry), 0);
	kd_issued_free(issued);
}

/* kd_issued_remove undoes an add made for a record that was not logged. */
static void test_issued_remove(void)
{
	struct kd_issued *issued = NULL;
	struct kd_issued_entry entry;

	CHECK_INT(kd_issued_new(&issued), 0);
	CHECK_INT(kd_issued_add(issued, "hb3dA0t6S1uWlCqBtSI8vQ", 1000, 100,
				KD_ACTION_EXEC, NULL), 0);
	CHECK_INT(kd_issued_add(issued, "M_SBhSDxjHlkMIriCaiNuw", 1001, 200,
				KD_ACTION_EXEC, NULL), 0);
	kd_issued_remove(issued, "hb3dA0t6S1uWlCqBtSI8vQ");
	CHECK_INT(kd_issued_find(issued, "hb3dA0t6S1uWlCqBtSI8vQ", &entry),
		  -ENOENT);
	CHECK_INT(kd_issued_find(issued, "M_SBhSDxjHlkMIriCaiNuw", &entry), 0);
	CHECK_INT(entry.uid, 1001);
	/* Unknown and invalid jtis change nothing. */
	kd_issued_remove(issued, "AAAAAAAAAAAAAAAAAAAAAA");
	kd_issued_remove(issued, "not a jti");
	kd_issued_remove(issued, "");
	CHECK_INT(kd_issued_find(issued, "M_SBhSDxjHlkMIriCaiNuw", &entry), 0);
	kd_issued_free(issued);
}

/* Appends a permit decision record shaped the way mint.c writes it. */
static int append_permit_decision(struct kh_dpr *dpr, const char *jti,
				  const char *type, json_int_t uid,
				  json_int_t exp)
{
	char zeros[KH_HASH_HEX_LEN + 1];
	json_t *fields;
	int r;

	memset(zeros, '0', KH_HASH_HEX_LEN);
	zeros[KH_HASH_HEX_LEN] = '\0';
	fields = json_pack(
		"{s:s, s:s, s:s, s:{s:I, s:I, s:s}, s:{s:s, s:s}, s:s, s:s,"
		" s:s, s:{}, s:s, s:I, s:i}",
		"effect", "permit", "rule", "r1", "reason", "matched",
		"agent", "uid", uid, "pid", (json_int_t)1, "exe", "",
		"action", "type", type, "tool", "t",
		"hA", zeros, "hP", zeros, "hS", zeros, "state",
		"jti", jti, "exp", exp, "amount", 0);
	if (!fields)
		return -ENOMEM;
	r = kh_dpr_append(dpr, "decision", fields, NULL, NULL, NULL);
	json_decref(fields);
	return r;
}

static void test_issued_replay_from_dpr(void)
{
	struct kd_issued *issued = NULL;
	struct kd_issued_entry entry;
	struct kh_ledger *ledger = NULL, *fresh = NULL;
	struct kh_dpr *dpr = NULL;
	struct kh_key *key = NULL;
	struct kh_err err = { { 0 } };
	char *dir = make_temp_dir();
	uint64_t seq;
	char hash[KH_HASH_HEX_LEN + 1];

	CHECK(dir != NULL);
	if (!dir)
		return;
	CHECK_INT(kh_key_generate(&key, &err), 0);
	CHECK_INT(kh_ledger_new(&ledger), 0);
	CHECK_INT(kh_dpr_open(dir, key, ledger, &dpr, &err), 0);
	if (!dpr)
		goto out;
	CHECK_INT(append_permit_decision(dpr, "hb3dA0t6S1uWlCqBtSI8vQ",
					 "tool_call", 1000, 2000), 0);
	CHECK_INT(append_permit_decision(dpr, "M_SBhSDxjHlkMIriCaiNuw",
					 "exec", 1001, 2000), 0);
	CHECK_INT(append_permit_decision(dpr, "3CiorUdcgVjbTZG9ss2eBw",
					 "exec", 1002, 500), 0);
	kh_dpr_close(dpr);
	dpr = NULL;

	CHECK_INT(kd_issued_new(&issued), 0);
	CHECK_INT(kh_ledger_new(&fresh), 0);
	CHECK_INT(kd_issued_replay(issued, fresh, dir, 1000, &err), 0);
	CHECK_INT(kd_issued_find(issued, "hb3dA0t6S1uWlCqBtSI8vQ", &entry), 0);
	CHECK_INT(entry.kind, KD_ACTION_TOOL_CALL);
	CHECK_INT(entry.uid, 1000);
	CHECK_INT(kd_issued_find(issued, "M_SBhSDxjHlkMIriCaiNuw", &entry), 0);
	CHECK_INT(entry.kind, KD_ACTION_EXEC);
	/* Expired at 500, before the replay time of 1000. */
	CHECK_INT(kd_issued_find(issued, "3CiorUdcgVjbTZG9ss2eBw", &entry),
		  -ENOENT);
	CHECK_INT(kh_ledger_find_decision(fresh, "M_SBhSDxjHlkMIriCaiNuw",
					  &seq, hash), 0);
	CHECK_INT(seq, 2);
out:
	if (dpr)
		kh_dpr_close(dpr);
	kd_issued_free(issued);
	if (ledger)
		kh_ledger_free(ledger);
	if (fresh)
		kh_ledger_free(fresh);
	kh_key_free(key);
	remove_tree(dir);
	free(dir);
}

/* keyholed runs as root, and these cases chown files to the agent. */
static bool is_root(void)
{
	if (geteuid() == 0)
		return true;
	kh_test_fail(__FILE__, __LINE__, "run as root: the case chowns files");
	return false;
}

static void test_permits_dir_write(void)
{
	struct kd_permits_dir pd = { .fd = -1 };
	struct kh_err err = { { 0 } };
	struct stat st, held;
	char *dir = make_temp_dir(), path[512];
	const char *jti = "hb3dA0t6S1uWlCqBtSI8vQ";

	CHECK(dir != NULL);
	if (!dir || !is_root())
		goto out;
	(void)snprintf(path, sizeof(path), "%s/permits", dir);
	CHECK_INT(kd_permits_dir_open(path, &pd, &err), 0);
	CHECK_INT(kd_permits_dir_write(&pd, AGENT_UID, AGENT_GID, jti,
				       "token.body.sig", &err), 0);

	(void)snprintf(path, sizeof(path), "%s/permits/%d", dir, AGENT_UID);
	CHECK_INT(lstat(path, &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT(st.st_mode & 07777, 0700);
	CHECK_INT(st.st_uid, AGENT_UID);

	(void)snprintf(path, sizeof(path), "%s/permits/%d/%s", dir, AGENT_UID,
		       jti);
	CHECK_INT(lstat(path, &st), 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK_INT(st.st_mode & 07777, 0400);
	CHECK_INT(st.st_uid, AGENT_UID);
	CHECK_INT(st.st_size, (long long)strlen("token.body.sig\n"));

	CHECK_INT(kd_permits_dir_stat(&pd, AGENT_UID, jti, &held), 0);
	CHECK_INT(held.st_ino, st.st_ino);
	/* O_EXCL: a second write under the same jti is refused. */
	CHECK_INT(kd_permits_dir_write(&pd, AGENT_UID, AGENT_GID, jti, "x",
				       &err), -EEXIST);
	CHECK_INT(kd_permits_dir_unlink(&pd, AGENT_UID, jti), 0);
	CHECK_INT(kd_permits_dir_stat(&pd, AGENT_UID, jti, &held), -ENOENT);
	CHECK_INT(kd_permits_dir_write(&pd, AGENT_UID, AGENT_GID, "../x", "x",
				       &err), -EINVAL);
out:
	kd_permits_dir_close(&pd);
	if (dir)
		remove_tree(dir);
	free(dir);
}

/* A <uid> entry the agent did not get from keyholed is refused. */
static void test_permits_dir_refuses_planted(void)
{
	struct kd_permits_dir pd = { .fd = -1 };
	struct kh_err err = { { 0 } };
	char *dir = make_temp_dir(), path[512], target[512];
	const char *jti = "M_SBhSDxjHlkMIriCaiNuw";

	CHECK(dir != NULL);
	if (!dir || !is_root())
		goto out;
	(void)snprintf(path, sizeof(path), "%s/permits", dir);
	CHECK_INT(kd_permits_dir_open(path, &pd, &err), 0);

	/* A symlink in place of the uid directory. */
	(void)snprintf(target, sizeof(target), "%s/elsewhere", dir);
	CHECK_INT(mkdir(target, 0700), 0);
	(void)snprintf(path, sizeof(path), "%s/permits/%d", dir, AGENT_UID);
	CHECK_INT(symlink(target, path), 0);
	CHECK(kd_permits_dir_write(&pd, AGENT_UID, AGENT_GID, jti, "x",
				   &err) < 0);
	CHECK_INT(unlink(path), 0);

	/* A uid directory owned by someone else. */
	CHECK_INT(mkdir(path, 0700), 0);
	CHECK_INT(kd_permits_dir_write(&pd, AGENT_UID, AGENT_GID, jti, "x",
				       &err), -EPERM);
	CHECK(strstr(err.msg, "owned by uid 0") != NULL);

	/* The agent's own directory opened to others. */
	CHECK_INT(chown(path, AGENT_UID, AGENT_GID), 0);
	CHECK_INT(chmod(path, 0755), 0);
	CHECK_INT(kd_permits_dir_write(&pd, AGENT_UID, AGENT_GID, jti, "x",
				       &err), -EPERM);
out:
	kd_permits_dir_close(&pd);
	if (dir)
		remove_tree(dir);
	free(dir);
}

static void test_permits_dir_refuses_writable_root(void)
{
	struct kd_permits_dir pd = { .fd = -1 };
	struct kh_err err = { { 0 } };
	char *dir = make_temp_dir(), path[512];

	CHECK(dir != NULL);
	if (!dir)
		return;
	(void)snprintf(path, sizeof(path), "%s/permits", dir);
	CHECK_INT(mkdir(path, 0777), 0);
	CHECK_INT(chmod(path, 0777), 0);
	CHECK_INT(kd_permits_dir_open(path, &pd, &err), -EPERM);
	CHECK_INT(pd.fd, -1);
	kd_permits_dir_close(&pd);
	remove_tree(dir);
	free(dir);
}

/* The sweep keeps only files whose jti this callback calls live. */
static bool only_first_live(uid_t uid, const char *jti, void *ctx)
{
	(void)uid;
	return strcmp(jti, (const char *)ctx) == 0;
}

/*
 * The sweep removes dead permit files and leaves links, files not named
 * like a jti and what a link points at.
 */
static void test_permits_dir_sweep(void)
{
	struct kd_permits_dir pd = { .fd = -1 };
	struct kh_err err = { { 0 } };
	struct stat st;
	char *dir = make_temp_dir(), path[512], target[512];
	const char *live = "hb3dA0t6S1uWlCqBtSI8vQ";
	const char *dead = "M_SBhSDxjHlkMIriCaiNuw";
	const char *link_name = "3CiorUdcgVjbTZG9ss2eBw";
	size_t removed = 99;
	int fd;

	CHECK(dir != NULL);
	if (!dir || !is_root())
		goto out;
	(void)snprintf(path, sizeof(path), "%s/permits", dir);
	CHECK_INT(kd_permits_dir_open(path, &pd, &err), 0);
	CHECK_INT(kd_permits_dir_write(&pd, AGENT_UID, AGENT_GID, live, "a",
				       &err), 0);
	CHECK_INT(kd_permits_dir_write(&pd, AGENT_UID, AGENT_GID, dead, "b",
				       &err), 0);
	(void)snprintf(target, sizeof(target), "%s/target", dir);
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	(void)snprintf(path, sizeof(path), "%s/permits/%d/%s", dir, AGENT_UID,
		       link_name);
	CHECK_INT(symlink(target, path), 0);
	(void)snprintf(path, sizeof(path), "%s/permits/%d/notes", dir,
		       AGENT_UID);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);

	CHECK_INT(kd_permits_dir_sweep(&pd, only_first_live, (void *)live,
				       &removed), 0);
	CHECK_INT(removed, 1);
	CHECK_INT(kd_permits_dir_stat(&pd, AGENT_UID, live, &st), 0);
	CHECK_INT(kd_permits_dir_stat(&pd, AGENT_UID, dead, &st), -ENOENT);
	CHECK_INT(kd_permits_dir_stat(&pd, AGENT_UID, link_name, &st), 0);
	CHECK(S_ISLNK(st.st_mode));
	CHECK_INT(lstat(path, &st), 0);
	CHECK_INT(stat(target, &st), 0);
out:
	kd_permits_dir_close(&pd);
	if (dir)
		remove_tree(dir);
	free(dir);
}

/*
 * A config for kd_check_grant_backends with one backend, "local", and
 * a policy whose one rule grants secrets.
 */
static int grant_check_count(const char *secrets)
{
	struct kh_config config;
	struct kh_policy *policy = NULL;
	struct kh_err err = { { 0 } };
	char text[1024];
	int count = -1;

	memset(&config, 0, sizeof(config));
	(void)snprintf(config.path, sizeof(config.path), "/etc/k.json");
	(void)snprintf(config.policy, sizeof(config.policy), "/etc/p.json");
	config.backends = json_pack("{s:{s:s}}", "local", "type", "file");
	(void)snprintf(text, sizeof(text),
		       "{\"tenant\":\"demo\",\"env\":\"dev\","
		       "\"max_ttl\":60,\"rules\":[{\"id\":\"r1\","
		       "\"effect\":\"permit\",\"action\":{\"type\":"
		       "\"tool_call\",\"tool\":\"t\"},\"grant\":"
		       "{\"secrets\":%s}}]}", secrets);
	if (kh_policy_parse(text, strlen(text), "p.json", &policy, &err) == 0)
		count = kd_check_grant_backends(&config, policy, NULL, NULL);
	else
		kh_test_fail(__FILE__, __LINE__, "%s", err.msg);
	if (policy)
		kh_policy_free(policy);
	json_decref(config.backends);
	return count;
}

static void keep_message(const char *message, void *ctx)
{
	(void)snprintf(ctx, REPORT_MAX, "%s", message);
}

static void test_grant_backends_known(void)
{
	static const struct {
		const char *secrets;
		int errors;
	} grant_cases[] = {
		{ "[\"local/a\"]", 0 },
		{ "[\"local/a\",\"local/b\"]", 0 },
		{ "[\"vault/x\"]", 1 },
		{ "[\"local/a\",\"vault/x\",\"aws/y\"]", 2 },
		{ "[]", 0 },
	};

	for (size_t i = 0; i < sizeof(grant_cases) / sizeof(grant_cases[0]);
	     i++)
		CHECK_INT(grant_check_count(grant_cases[i].secrets),
			  grant_cases[i].errors);
}

/* The message names the policy, the grant's JSON path, rule and secret. */
static void test_grant_backends_message(void)
{
	struct kh_config config;
	struct kh_policy *policy = NULL;
	struct kh_err err = { { 0 } };
	char message[REPORT_MAX] = "";
	const char *text =
		"{\"tenant\":\"demo\",\"env\":\"dev\",\"max_ttl\":60,"
		"\"rules\":[{\"id\":\"r1\",\"effect\":\"deny\","
		"\"action\":{\"type\":\"tool_call\",\"tool\":\"u\"}},"
		"{\"id\":\"r2\",\"effect\":\"permit\",\"action\":"
		"{\"type\":\"tool_call\",\"tool\":\"t\"},\"grant\":"
		"{\"secrets\":[\"local/a\",\"vault/x\"]}}]}";

	memset(&config, 0, sizeof(config));
	(void)snprintf(config.path, sizeof(config.path), "/etc/k.json");
	(void)snprintf(config.policy, sizeof(config.policy), "/etc/p.json");
	config.backends = json_pack("{s:{s:s}}", "local", "type", "file");
	CHECK_INT(kh_policy_parse(text, strlen(text), "p.json", &policy, &err),
		  0);
	if (policy)
		CHECK_INT(kd_check_grant_backends(&config, policy, keep_message,
						  message), 1);
	CHECK(strstr(message, "/etc/p.json: $.rules[1].grant.secrets[1]:") ==
	      message);
	CHECK(strstr(message, "rule \"r2\"") != NULL);
	CHECK(strstr(message, "\"vault/x\"") != NULL);
	CHECK(strstr(message, "backend \"vault\"") != NULL);
	if (policy)
		kh_policy_free(policy);
	json_decref(config.backends);
}

struct thread_probe {
	pid_t tid;
	int release[2]; /* the thread exits once this pipe is closed */
	int ready[2];   /* the thread writes its tid here */
};

static void *report_tid(void *arg)
{
	struct thread_probe *probe = arg;
	char byte = 0;

	probe->tid = (pid_t)syscall(SYS_gettid);
	(void)!write(probe->ready[1], &byte, 1);
	(void)!read(probe->release[0], &byte, 1);
	return NULL;
}

static void test_proc_tgid_of_thread(void)
{
	struct thread_probe probe = { 0 };
	pthread_t thread;
	pid_t tgid = 0;
	char byte;

	CHECK_INT(pipe(probe.release), 0);
	CHECK_INT(pipe(probe.ready), 0);
	CHECK_INT(pthread_create(&thread, NULL, report_tid, &probe), 0);
	CHECK_INT(read(probe.ready[0], &byte, 1), 1);
	CHECK(probe.tid != getpid());
	/* A FUSE request names the thread; its fds belong to the group. */
	CHECK_INT(kd_proc_tgid(probe.tid, &tgid), 0);
	CHECK_INT(tgid, getpid());
	close(probe.release[1]);
	CHECK_INT(pthread_join(thread, NULL), 0);
	close(probe.release[0]);
	close(probe.ready[0]);
	close(probe.ready[1]);

	CHECK_INT(kd_proc_tgid(0x7ffffff0, &tgid), -ESRCH);
	CHECK_INT(tgid, 0);
}

struct scan_result {
	int wanted_fd;
	bool found;
};

static int note_fd(int fd, const struct stat *st, void *opaque)
{
	struct scan_result *result = opaque;

	(void)st;
	if (fd == result->wanted_fd)
		result->found = true;
	return 0;
}

static void test_proc_scan_and_getfd(void)
{
	struct kd_proc proc = { .pidfd = -1, .dirfd = -1 };
	struct scan_result result = { .wanted_fd = -1, .found = false };
	char *dir = make_temp_dir(), path[512];
	struct stat st, copy;
	int fd = -1, dup_fd;

	CHECK(dir != NULL);
	if (!dir)
		return;
	(void)snprintf(path, sizeof(path), "%s/held", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_INT(fstat(fd, &st), 0);
	CHECK_INT(kd_proc_open(getpid(), &proc), 0);
	CHECK_INT(kd_proc_still_same(&proc), 0);

	result.wanted_fd = fd;
	CHECK_INT(kd_proc_scan_fds(&proc, st.st_dev, 0, note_fd, &result), 0);
	CHECK(result.found);
	/* skip_dev wins over want_dev: files there are never reported. */
	result.found = false;
	CHECK_INT(kd_proc_scan_fds(&proc, st.st_dev, st.st_dev, note_fd,
				   &result), 0);
	CHECK(!result.found);

	dup_fd = kd_proc_getfd(&proc, fd);
	CHECK(dup_fd >= 0);
	if (dup_fd >= 0) {
		CHECK_INT(fstat(dup_fd, &copy), 0);
		CHECK_INT(copy.st_ino, st.st_ino);
		close(dup_fd);
	}
	kd_proc_close(&proc);
	close(fd);
	remove_tree(dir);
	free(dir);
}

/* Pid reuse: a reaped process no longer passes kd_proc_still_same. */
static void test_proc_detects_exit(void)
{
	struct kd_proc proc = { .pidfd = -1, .dirfd = -1 };
	int pipefd[2], status;
	char byte = 0;
	pid_t child;

	CHECK_INT(pipe(pipefd), 0);
	child = fork();
	if (child == 0) {
		close(pipefd[1]);
		(void)!read(pipefd[0], &byte, 1);
		_exit(0);
	}
	close(pipefd[0]);
	CHECK_INT(kd_proc_open(child, &proc), 0);
	CHECK_INT(kd_proc_still_same(&proc), 0);
	close(pipefd[1]);
	CHECK_INT(waitpid(child, &status, 0), child);
	CHECK_INT(kd_proc_still_same(&proc), -ESRCH);
	kd_proc_close(&proc);
}

/*
 * Forks a child that enters a new user namespace when new_userns is
 * set, and returns kd_proc_same_userns for it, or -1000 on a set-up
 * failure.
 */
static int userns_of_child(bool new_userns)
{
	struct kd_proc proc = { .pidfd = -1, .dirfd = -1 };
	int ready[2], release[2], status, r = -1000;
	char byte = 0;
	pid_t child;

	if (pipe(ready) < 0)
		return r;
	if (pipe(release) < 0) {
		close(ready[0]);
		close(ready[1]);
		return r;
	}
	child = fork();
	if (child == 0) {
		/* Only the parent may hold the write end, or read never ends. */
		close(release[1]);
		close(ready[0]);
		byte = new_userns && unshare(CLONE_NEWUSER) < 0 ? 'E' : 'R';
		(void)!write(ready[1], &byte, 1);
		(void)!read(release[0], &byte, 1);
		_exit(0);
	}
	close(ready[1]);
	close(release[0]);
	if (child > 0 && read(ready[0], &byte, 1) == 1 && byte == 'R' &&
	    kd_proc_open(child, &proc) == 0)
		r = kd_proc_same_userns(&proc);
	kd_proc_close(&proc);
	close(release[1]);
	close(ready[0]);
	if (child > 0)
		(void)waitpid(child, &status, 0);
	return r;
}

/* An exec binding is trusted only for a caller in keyholed's namespace. */
static void test_proc_same_userns(void)
{
	CHECK_INT(userns_of_child(false), 1);
	CHECK_INT(userns_of_child(true), 0);
}

static void test_denial_rate_limit(void)
{
	unsigned long flushed = 0;
	time_t now = 1000;

	for (int i = 0; i < KD_DENIAL_BURST; i++)
		CHECK(kd_log_denial_allowed(42, "/local/rate", now, &flushed));
	CHECK(!kd_log_denial_allowed(42, "/local/rate", now, &flushed));
	CHECK(!kd_log_denial_allowed(42, "/local/rate", now + 1, &flushed));
	/* Another uid has its own budget. */
	CHECK(kd_log_denial_allowed(43, "/local/rate", now, &flushed));
	CHECK_INT(flushed, 0);
	/* A new window logs again and reports what was suppressed. */
	CHECK(kd_log_denial_allowed(42, "/local/rate", now + KD_DENIAL_WINDOW,
			     &flushed));
	CHECK_INT(flushed, 2);
}

static const struct kh_test_case cases[] = {
	{ "reasons_per_uid", test_reasons_per_uid },
	{ "reasons_evicts_oldest", test_reasons_evicts_oldest },
	{ "reasons_long_path_ignored", test_reasons_long_path_ignored },
	{ "issued_add_find_prune", test_issued_add_find_prune },
	{ "issued_prune_batch", test_issued_prune_batch },
	{ "issued_remove", test_issued_remove },
	{ "issued_replay_from_dpr", test_issued_replay_from_dpr },
	{ "permits_dir_write", test_permits_dir_write },
	{ "permits_dir_refuses_planted", test_permits_dir_refuses_planted },
	{ "permits_dir_refuses_writable_root",
	  test_permits_dir_refuses_writable_root },
	{ "permits_dir_sweep", test_permits_dir_sweep },
	{ "grant_backends_known", test_grant_backends_known },
	{ "grant_backends_message", test_grant_backends_message },
	{ "proc_tgid_of_thread", test_proc_tgid_of_thread },
	{ "proc_scan_and_getfd", test_proc_scan_and_getfd },
	{ "proc_detects_exit", test_proc_detects_exit },
	{ "proc_same_userns", test_proc_same_userns },
	{ "denial_rate_limit", test_denial_rate_limit },
};

int main(void)
{
	return KH_TEST_RUN("keyholed", cases);
}
