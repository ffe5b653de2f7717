/*
 * The session operations of the broker socket, session_open and
 * session_close, which pam_keyhole.so sends as root, and the end of a
 * session. A session ends on session_close or when its leader exits,
 * which the clean-up pass notices. Then every unexpired permit bound to
 * it is revoked, each with a DPR "revoke" record, its permit file is
 * removed and a "session_close" record follows.
 *
 * DPR records:
 *   session_open   session, uid, leader {pid, start}, audit_session (or
 *                  null), service, tty
 *   session_close  session, uid, reason, revoked
 * At start-up keyholed replays them. A session whose leader still runs
 * (the same pid and start time) stays open, and every other one ends
 * with reason "session leader exited".
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

#define REASON_CLOSED "session closed"
#define REASON_LOGIN_REFUSED "login refused"
#define REASON_LEADER_EXITED "session leader exited"

/* Maximum sessions one clean-up pass ends. The rest wait for the next. */
#define REAP_BATCH 64

/* Largest uid accepted, because (uid_t)-1 means "no uid" to the kernel. */
#define UID_MAX_VALID 4294967294LL

json_t *kd_session_deny(const struct kd_peer *peer, const char *op)
{
	char reason[160];

	kd_log_denial(peer->uid, op, "%s denied: uid=%u pid=%d: only uid 0 "
		      "may send it", op, (unsigned int)peer->uid,
		      (int)peer->pid);
	(void)snprintf(reason, sizeof(reason), "%s is sent by pam_keyhole.so "
		       "as root; uid %u may not send it", op,
		       (unsigned int)peer->uid);
	return kd_reply_error("denied", reason);
}

/*
 * Copies a service or tty name: printable ASCII (space to "~"), at most
 * KD_SESSION_FIELD_MAX bytes, and at least one byte when required. The
 * names go into log lines and DPR records as they are, so control
 * characters are rejected.
 */
static int copy_name(const json_t *value, bool required, char *out,
		     size_t size)
{
	const char *text = json_string_value(value);
	size_t len;

	out[0] = '\0';
	if (!value && !required)
		return 0;
	if (!text)
		return -EINVAL;
	len = json_string_length(value);
	if ((len == 0 && required) || len > KD_SESSION_FIELD_MAX ||
	    len >= size)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < ' ' || text[i] > '~')
			return -EINVAL;
	}
	memcpy(out, text, len + 1);
	return 0;
}

/*
 * Fills info (uid, service, tty) from a session_open request, and gid
 * with the primary group of uid from NSS. Returns NULL or the invalid
 * reply.
 */
static json_t *parse_open(const json_t *req, struct kd_session_info *info,
			  gid_t *gid)
{
	const json_t *uid = json_object_get(req, "uid");
	struct kh_agent agent;
	struct kh_err err = { { 0 } };
	json_int_t value;

	if (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
	    json_integer_value(uid) > UID_MAX_VALID)
		return kd_reply_error("invalid", "$.uid: expected the uid of "
				      "the account whose session opens, an "
				      "integer from 0 to 4294967294");
	value = json_integer_value(uid);
	if (kh_agent_resolve((uid_t)value, &agent, &err) < 0)
		return kd_reply_error("invalid", "$.uid: no such user in the "
				      "user database (getpwuid_r); register "
				      "sessions only for existing accounts");
	info->uid = (uid_t)value;
	*gid = agent.gid;
	if (copy_name(json_object_get(req, "service"), true, info->service,
		      sizeof(info->service)) < 0)
		return kd_reply_error("invalid", "$.service: expected the PAM "
				      "service name, 1 to 64 printable ASCII "
				      "characters");
	if (copy_name(json_object_get(req, "tty"), false, info->tty,
		      sizeof(info->tty)) < 0)
		return kd_reply_error("invalid", "$.tty: expected the PAM tty, "
				      "at most 64 printable ASCII characters, "
				      "or \"\"");
	return NULL;
}

/*
 * Takes the leader from the peer that sent session_open (the process
 * running PAM): a pidfd on it, its start time and its audit session id.
 * Returns the pidfd or -errno.
 */
static int open_leader(const struct kd_peer *peer,
		       struct kd_session_info *info)
{
	struct kd_proc proc;
	int pidfd, r;

	r = kd_proc_open(peer->pid, &proc);
	if (r < 0)
		return r;
	info->leader = peer->pid;
	info->leader_start = proc.start;
	info->audit_session = kd_lineage_audit_session(proc.dirfd);
	/* Pid reuse: the sessionid must be the leader's own. */
	r = kd_proc_still_same(&proc);
	pidfd = proc.pidfd;
	proc.pidfd = -1;
	kd_proc_close(&proc);
	if (r < 0) {
		close(pidfd);
		return r;
	}
	return pidfd;
}

static json_t *open_fields(const struct kd_session_info *info)
{
	bool audit = info->audit_session != KD_AUDIT_SESSION_UNSET;

	return json_pack("{s:s, s:I, s:{s:I, s:I}, s:o, s:s, s:s}",
			 "session", info->id, "uid", (json_int_t)info->uid,
			 "leader", "pid", (json_int_t)info->leader,
			 "start", (json_int_t)info->leader_start,
			 "audit_session", audit ?
				json_integer(info->audit_session) : json_null(),
			 "service", info->service, "tty", info->tty);
}

/* The reason a full table gives, for the "busy" reply. */
static json_t *reply_full(const struct kd_session_info *info, int error)
{
	char reason[160];

	if (error == -EUSERS)
		(void)snprintf(reason, sizeof(reason), "uid %u already has %d "
			       "open sessions, the maximum per uid: close one "
			       "and retry", (unsigned int)info->uid,
			       KD_SESSIONS_PER_UID);
	else
		(void)snprintf(reason, sizeof(reason), "all %d session slots "
			       "are in use: close a session and retry",
			       KD_SESSIONS_MAX);
	kd_log(LOG_WARNING, "session_open rejected: uid=%u leader=%d "
	       "service=%s: %s", (unsigned int)info->uid, (int)info->leader,
	       info->service, reason);
	return kd_reply_error("busy", reason);
}

/*
 * Caller holds d->lock. Adds the session and appends its
 * "session_open" record; a session whose record cannot be written is
 * removed again. Takes ownership of pidfd.
 */
static json_t *register_locked(struct kd_daemon *d,
			       const struct kd_session_info *info, int pidfd,
			       uint64_t *seq)
{
	json_t *fields = open_fields(info);
	int r;

	r = kd_sessions_add(d->sessions, info, pidfd);
	if (r == -EUSERS || r == -EBUSY) {
		json_decref(fields);
		return reply_full(info, r);
	}
	if (r == 0)
		r = fields ? kd_daemon_append(d, "session_open", fields, seq,
					      NULL, NULL) :
			     -ENOMEM;
	json_decref(fields);
	if (r < 0) {
		kd_sessions_remove(d->sessions, info->id);
		kd_log(LOG_ERR, "session_open failed: uid=%u leader=%d: %s",
		       (unsigned int)info->uid, (int)info->leader,
		       strerror(-r));
		return kd_reply_error("internal", r == -ENOMEM ?
				      "out of memory; retry" :
				      "audit log write failed");
	}
	return NULL;
}

static json_t *reply_opened(const struct kd_daemon *d,
			    const struct kd_session_info *info)
{
	char permits[PATH_MAX + 16];
	int n;

	n = snprintf(permits, sizeof(permits), "%s/%u",
		     d->config->permits_dir, (unsigned int)info->uid);
	if (n < 0 || (size_t)n >= sizeof(permits))
		return kd_reply_error("internal", "permits path too long");
	return json_pack("{s:b, s:s, s:s, s:s, s:s}", "ok", 1,
			 "session", info->id, "permits", permits,
			 "permits_dir", d->config->permits_dir,
			 "secrets", d->config->secrets_mount);
}

/*
 * Handles {"op":"session_open","uid":N,"service":S,"tty":T} from uid 0.
 * The leader is the peer, never a pid from the request.
 */
json_t *kd_session_open(struct kd_daemon *d, const struct kd_peer *peer,
			const json_t *req)
{
	struct kd_session_info info;
	struct kh_err err = { { 0 } };
	uint64_t seq = 0;
	json_t *reply;
	gid_t gid = 0;
	int pidfd;

	memset(&info, 0, sizeof(info));
	reply = parse_open(req, &info, &gid);
	if (reply)
		return reply;
	pidfd = open_leader(peer, &info);
	if (pidfd < 0)
		return kd_reply_error("invalid", "the sending process exited "
				      "before its session was registered");
	if (kd_permits_dir_prepare(&d->permits, info.uid, gid, &err) < 0 ||
	    kh_permit_new_jti(info.id) < 0) {
		close(pidfd);
		kd_log(LOG_ERR, "session_open failed: uid=%u leader=%d: %s",
		       (unsigned int)info.uid, (int)info.leader,
		       err.msg[0] ? err.msg : "cannot create a random id");
		return kd_reply_error("internal", err.msg[0] ? err.msg :
				      "cannot create a random session id");
	}

	pthread_mutex_lock(&d->lock);
	reply = register_locked(d, &info, pidfd, &seq);
	pthread_mutex_unlock(&d->lock);
	if (reply)
		return reply;
	kd_log(LOG_INFO, "session opened: session=%s uid=%u leader=%d "
	       "service=%s tty=%s audit_session=%lld seq=%llu", info.id,
	       (unsigned int)info.uid, (int)info.leader, info.service,
	       info.tty[0] ? info.tty : "-",
	       info.audit_session == KD_AUDIT_SESSION_UNSET ? -1LL :
		       (long long)info.audit_session,
	       (unsigned long long)seq);
	return reply_opened(d, &info);
}

struct end_ctx {
	struct kd_daemon *d;
	const char *sid;
	const char *reason;
	int64_t now;
	size_t revoked;
	int error;
};

/* kd_issued_foreach callback: revokes one unexpired permit of the session. */
static void revoke_bound(const char *jti, const struct kd_issued_entry *entry,
			 void *opaque)
{
	struct end_ctx *ctx = opaque;
	uint64_t seq;
	int r;

	if (strcmp(entry->sid, ctx->sid) != 0 || entry->exp <= ctx->now)
		return;
	r = kd_mint_revoke_locked(ctx->d, jti, entry, 0, ctx->reason, &seq);
	if (r == 0)
		ctx->revoked++;
	if (r >= 0)
		return;
	/* The session is gone from the table, so the permit cannot pass. */
	ctx->error = r;
	kd_log(LOG_ERR, "cannot revoke jti=%s of session=%s: %s; its file is "
	       "removed and the ended session rejects it", jti, ctx->sid,
	       strerror(-r));
	kd_daemon_retire_permit_locked(ctx->d, entry->uid, jti,
				       "session-bound");
}

/*
 * Caller holds d->lock. Ends the session info (a copy, since the table
 * entry goes): revokes its unexpired permits, appends "session_close"
 * and drops it from the table. Stores the number revoked in *revoked.
 * Returns 0, or -errno when a record could not be written; the session
 * is dropped either way, so none of its permits passes again.
 */
static int end_session_locked(struct kd_daemon *d,
			      const struct kd_session_info *info,
			      const char *reason, size_t *revoked)
{
	struct end_ctx ctx = {
		.d = d, .sid = info->id, .reason = reason,
		.now = (int64_t)time(NULL),
	};
	uint64_t seq = 0;
	json_t *fields;
	int r;

	kd_sessions_remove(d->sessions, info->id);
	kd_issued_foreach(d->issued, revoke_bound, &ctx);
	*revoked = ctx.revoked;
	fields = json_pack("{s:s, s:I, s:s, s:I}", "session", info->id,
			   "uid", (json_int_t)info->uid, "reason", reason,
			   "revoked", (json_int_t)ctx.revoked);
	r = fields ? kd_daemon_append(d, "session_close", fields, &seq, NULL,
				      NULL) :
		     -ENOMEM;
	json_decref(fields);
	kd_log(LOG_INFO, "session closed: session=%s uid=%u leader=%d "
	       "service=%s reason=%s revoked=%zu seq=%llu", info->id,
	       (unsigned int)info->uid, (int)info->leader, info->service,
	       reason, ctx.revoked, (unsigned long long)seq);
	return ctx.error < 0 ? ctx.error : r;
}

/*
 * Handles {"op":"session_close","session":ID,"uid":N[,"reason":R]} from
 * uid 0. The
 * uid must be the session's: the PAM module may take the id from the
 * PAM environment, which a user can set (pam_env user_readenv), so an
 * id alone must not close another account's session.
 */
json_t *kd_session_close(struct kd_daemon *d, const struct kd_peer *peer,
			 const json_t *req)
{
	const char *id = json_string_value(json_object_get(req, "session"));
	const json_t *uid = json_object_get(req, "uid");
	const json_t *why = json_object_get(req, "reason");
	const char *reason = REASON_CLOSED;
	const struct kd_session_info *found;
	struct kd_session_info info;
	size_t revoked = 0;
	int r = 0;

	/* "login_refused" shows auditors that the login never completed. */
	if (why && json_is_string(why) &&
	    strcmp(json_string_value(why), "login_refused") == 0)
		reason = REASON_LOGIN_REFUSED;
	else if (why && !(json_is_string(why) &&
			  strcmp(json_string_value(why), "logout") == 0))
		return kd_reply_error("invalid", "$.reason: expected "
				      "\"logout\" (the default) or "
				      "\"login_refused\"");

	if (!id || !kh_permit_jti_is_valid(id))
		return kd_reply_error("invalid", "$.session: expected the "
				      "22-character session id that "
				      "session_open returned");
	if (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
	    json_integer_value(uid) > UID_MAX_VALID)
		return kd_reply_error("invalid", "$.uid: expected the uid of "
				      "the account whose session closes, an "
				      "integer from 0 to 4294967294");
	pthread_mutex_lock(&d->lock);
	found = kd_sessions_find(d->sessions, id);
	if (found && found->uid != (uid_t)json_integer_value(uid)) {
		pthread_mutex_unlock(&d->lock);
		kd_log_denial(peer->uid, "session_close", "session_close of "
			      "session %s denied: it belongs to uid %u, not "
			      "uid %lld (pid %ld)", id, (unsigned)found->uid,
			      (long long)json_integer_value(uid),
			      (long)peer->pid);
		return kd_reply_error("not_found", "no open session of this "
				      "uid has this id");
	}
	if (found) {
		info = *found;
		r = end_session_locked(d, &info, reason, &revoked);
	}
	pthread_mutex_unlock(&d->lock);
	if (!found)
		return kd_reply_error("not_found", "no open session has this "
				      "id; it was closed already, or its "
				      "leader exited");
	if (r < 0)
		return kd_reply_error("internal", "audit log write failed; the "
				      "session is closed and its permit files "
				      "are removed");
	return json_pack("{s:b, s:I}", "ok", 1, "revoked",
			 (json_int_t)revoked);
}

/*
 * Caller holds d->lock. Ends the sessions whose leader has exited,
 * at most REAP_BATCH per call.
 */
void kd_session_reap_locked(struct kd_daemon *d)
{
	char ended[REAP_BATCH][KD_SESSION_ID_LEN + 1];
	size_t count, revoked;

	count = kd_sessions_ended(d->sessions, ended, REAP_BATCH);
	for (size_t i = 0; i < count; i++) {
		const struct kd_session_info *found;
		struct kd_session_info info;

		found = kd_sessions_find(d->sessions, ended[i]);
		if (!found)
			continue;
		info = *found;
		(void)end_session_locked(d, &info, REASON_LEADER_EXITED,
					 &revoked);
	}
}

/* Rebuilds a session's info from its "session_open" record. */
static int parse_open_record(const char *id, const json_t *record,
			     struct kd_session_info *info)
{
	const json_t *leader = json_object_get(record, "leader");
	const json_t *audit = json_object_get(record, "audit_session");
	json_int_t uid = json_integer_value(json_object_get(record, "uid"));
	json_int_t pid = json_integer_value(json_object_get(leader, "pid"));
	json_int_t start = json_integer_value(json_object_get(leader, "start"));

	memset(info, 0, sizeof(*info));
	if (!kh_permit_jti_is_valid(id) || uid < 0 || uid > UID_MAX_VALID ||
	    pid <= 0 || pid > INT32_MAX || start < 0 ||
	    (!json_is_null(audit) && !json_is_integer(audit)))
		return -EINVAL;
	(void)snprintf(info->id, sizeof(info->id), "%s", id);
	info->uid = (uid_t)uid;
	info->leader = (pid_t)pid;
	info->leader_start = (unsigned long long)start;
	info->audit_session = json_is_integer(audit) ?
		(uint32_t)json_integer_value(audit) : KD_AUDIT_SESSION_UNSET;
	if (copy_name(json_object_get(record, "service"), true, info->service,
		      sizeof(info->service)) < 0 ||
	    copy_name(json_object_get(record, "tty"), false, info->tty,
		      sizeof(info->tty)) < 0)
		return -EINVAL;
	return 0;
}

/* A pidfd on the leader when it still runs (same pid and start time). */
static int reopen_leader(const struct kd_session_info *info)
{
	struct kd_proc proc;
	int pidfd = -1;

	if (kd_proc_open(info->leader, &proc) < 0)
		return -ESRCH;
	if (proc.start == info->leader_start) {
		pidfd = proc.pidfd;
		proc.pidfd = -1;
	}
	kd_proc_close(&proc);
	return pidfd >= 0 ? pidfd : -ESRCH;
}

/*
 * Logs a restored session. Landlock rules are bound to inodes, so a
 * confined login whose rule named the old mount itself (secrets_mount
 * shares its directory) cannot read the new mount until it logs in
 * again, and the log line states that.
 */
static void log_restored(const struct kd_daemon *d,
			 const struct kd_session_info *info)
{
	char rule[PATH_MAX];
	bool stable = kh_confine_secrets_rule_path(d->config->secrets_mount,
						   rule, sizeof(rule)) == 1;

	kd_log(LOG_NOTICE, "session restored: session=%s uid=%u leader=%d "
	       "service=%s%s%s%s", info->id, (unsigned int)info->uid,
	       (int)info->leader, info->service,
	       stable ? "" : "; if its login is confined, it must log in "
			     "again to read ",
	       stable ? "" : d->config->secrets_mount,
	       stable ? "" : ", because it shares its directory with "
			     "other entries");
}

/* Runs before any thread starts: keeps the session or ends it. */
static void restore_one(struct kd_daemon *d, const char *id,
			const json_t *record)
{
	struct kd_session_info info;
	size_t revoked;
	int pidfd;

	if (parse_open_record(id, record, &info) < 0) {
		kd_log(LOG_WARNING, "session_open record of session=%s is "
		       "malformed, ignoring it; permits bound to it are "
		       "rejected as \"session closed\"", id);
		return;
	}
	pidfd = reopen_leader(&info);
	if (pidfd >= 0 && kd_sessions_add(d->sessions, &info, pidfd) == 0) {
		log_restored(d, &info);
		return;
	}
	(void)end_session_locked(d, &info, REASON_LEADER_EXITED, &revoked);
}

/* kh_dpr_foreach callback: keeps the sessions not closed yet in ctx. */
static int collect_open(const json_t *record, void *ctx)
{
	json_t *open = ctx;
	const char *type = json_string_value(json_object_get(record, "type"));
	const char *id = json_string_value(json_object_get(record, "session"));

	if (!type || !id)
		return 0;
	if (strcmp(type, "session_open") == 0)
		return json_object_set(open, id, (json_t *)record) < 0 ?
			       -ENOMEM : 0;
	if (strcmp(type, "session_close") == 0)
		(void)json_object_del(open, id);
	return 0;
}

/*
 * Restores the sessions that the DPR log shows open. Runs at start-up
 * after the issued index is rebuilt, before any thread starts. A
 * session whose leader is gone ends as "session leader exited".
 */
int kd_session_restore(struct kd_daemon *d, struct kh_err *err)
{
	json_t *open = json_object();
	const char *id;
	json_t *record;
	int r;

	if (!open)
		return -ENOMEM;
	r = kh_dpr_foreach(d->config->audit_dir, collect_open, open, err);
	if (r == -ENOMEM)
		kh_err_set(err, "out of memory reading sessions from %s",
			   d->config->audit_dir);
	if (r == 0) {
		json_object_foreach(open, id, record)
			restore_one(d, id, record);
	}
	json_decref(open);
	return r < 0 ? r : 0;
}
