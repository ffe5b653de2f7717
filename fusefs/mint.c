/*
 * The broker operations behind the socket: request (policy evaluation,
 * the DPR decision record, then the permit file), revoke and status.
 * Each returns the reply object; none of them sends it.
 *
 * A permit is never returned unless its decision record is durably in
 * the DPR log: kh_dpr_append returns only after fdatasync, and a failed
 * append turns the reply into a denial.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon.h"

struct mint_job {
	const json_t *action;
	struct kh_agent agent;
	char exe[PATH_MAX];
	int64_t now;
	json_t *state;
	char hA[KH_HASH_HEX_LEN + 1];
	char hP[KH_HASH_HEX_LEN + 1];
	char hS[KH_HASH_HEX_LEN + 1];
	struct kh_decision decision;
	char jti[KH_JTI_LEN + 1];
	char sid[KD_SESSION_ID_LEN + 1];  /* "" outside a session */
	int64_t exp;
	bool decided;     /* policy was evaluated; the record may be missing */
	bool logged;      /* the permit decision record is in the DPR log */
	uint64_t seq;
	char hash[KH_HASH_HEX_LEN + 1];
};

json_t *kd_reply_error(const char *error, const char *reason)
{
	json_t *reply = json_pack("{s:b, s:s}", "ok", 0, "error", error);

	if (reply && reason)
		json_object_set_new(reply, "reason", json_string(reason));
	return reply;
}

static json_t *reply_denied(const char *reason, const char *rule,
			    uint64_t seq)
{
	return json_pack("{s:b, s:s, s:s, s:s, s:o}", "ok", 0, "error",
			 "denied", "reason", reason, "rule", rule, "seq",
			 seq ? json_integer((json_int_t)seq) : json_null());
}

static json_t *decision_fields(const struct mint_job *job)
{
	const struct kh_decision *dec = &job->decision;
	bool permit = dec->effect == KH_EFFECT_PERMIT;
	json_t *fields;

	fields = json_pack(
		"{s:s, s:s, s:s, s:{s:I, s:I, s:s}, s:O, s:s, s:s, s:s, s:O,"
		" s:o, s:o, s:f}",
		"effect", permit ? "permit" : "deny",
		"rule", dec->rule,
		"reason", dec->reason,
		"agent", "uid", (json_int_t)job->agent.uid,
		"pid", (json_int_t)job->agent.pid, "exe", job->exe,
		"action", job->action,
		"hA", job->hA, "hP", job->hP, "hS", job->hS,
		"state", job->state,
		"jti", permit ? json_string(job->jti) : json_null(),
		"exp", permit ? json_integer(job->exp) : json_null(),
		"amount", dec->amount);
	/* Only a session-bound permit has "sid", so older records still fit. */
	if (fields && permit && job->sid[0] &&
	    json_object_set_new(fields, "sid", json_string(job->sid)) < 0) {
		json_decref(fields);
		fields = NULL;
	}
	return fields;
}

static enum kd_action_kind action_kind(const json_t *action)
{
	const char *type = json_string_value(json_object_get(action, "type"));

	return type && strcmp(type, "tool_call") == 0 ? KD_ACTION_TOOL_CALL :
							KD_ACTION_EXEC;
}

/*
 * Caller holds d->lock. Creates the ledger and index entries of a
 * permit before its decision record is logged, so that counting it
 * afterwards cannot fail for lack of memory. A permit the ledger missed
 * would escape its rate limit, budget and use count until a restart
 * replays the log.
 */
static int reserve_permit_locked(struct kd_daemon *d,
				 const struct mint_job *job,
				 struct kh_err *err)
{
	int r;

	r = kh_ledger_reserve_mint(d->ledger, job->decision.rule,
				   job->agent.uid);
	if (r == 0)
		r = kh_ledger_reserve_jti(d->ledger, job->jti, job->exp);
	if (r == 0)
		r = kd_issued_add(d->issued, job->jti, job->agent.uid,
				  job->exp, action_kind(job->action),
				  job->sid[0] ? job->sid : NULL);
	if (r < 0)
		kh_err_set(err, "cannot reserve ledger entries for rule %s: %s",
			   job->decision.rule, strerror(-r));
	return r;
}

/* Caller holds d->lock. Counts a logged permit in the reserved entries. */
static int count_permit_locked(struct kd_daemon *d, const struct mint_job *job,
			       struct kh_err *err)
{
	int r;

	r = kh_ledger_note_mint(d->ledger, job->decision.rule, job->agent.uid,
				job->now, job->decision.amount);
	if (r == 0)
		r = kh_ledger_note_decision(d->ledger, job->jti, job->exp,
					    job->seq, job->hash);
	if (r < 0)
		kh_err_set(err, "cannot count permit jti=%s seq=%llu in the "
			   "ledger: %s", job->jti,
			   (unsigned long long)job->seq, strerror(-r));
	return r;
}

/*
 * Evaluates the request and appends its decision record. Caller holds
 * d->lock, so the counters the state shows are the ones the ledger
 * charges. On a permit the ledger and the issued index learn the jti.
 */
static int decide_locked(struct kd_daemon *d, struct mint_job *job,
			 struct kh_err *err)
{
	bool permit;
	json_t *fields = NULL;
	int r;

	job->now = (int64_t)time(NULL);
	kd_daemon_prune_locked(d, job->now);
	(void)snprintf(job->hP, sizeof(job->hP), "%s",
		       kh_policy_hash(d->policy));
	r = kh_state_build(d->policy, d->ledger, &job->agent, job->now,
			   &job->state, err);
	if (r == 0)
		r = kh_hash(job->state, job->hS, err);
	if (r == 0)
		r = kh_policy_eval(d->policy, job->action, job->state,
				   &job->decision, err);
	if (r == 0)
		r = kh_action_hash(job->action, job->hA, err);
	if (r < 0)
		return r;
	permit = job->decision.effect == KH_EFFECT_PERMIT;
	if (permit) {
		r = kh_permit_new_jti(job->jti);
		if (r < 0) {
			kh_err_set(err, "cannot create a random jti");
			return r;
		}
		job->exp = job->now + job->decision.ttl;
		r = reserve_permit_locked(d, job, err);
		if (r < 0)
			return r;
	}
	job->decided = true;
	fields = decision_fields(job);
	r = fields ? kd_daemon_append(d, "decision", fields, &job->seq,
				      job->hash, err) :
		     -ENOMEM;
	json_decref(fields);
	if (r < 0 && permit)
		kd_issued_remove(d->issued, job->jti);
	if (r < 0 || !permit)
		return r;
	job->logged = true;
	return count_permit_locked(d, job, err);
}

static json_t *permit_claims(const struct kd_daemon *d,
			     const struct mint_job *job)
{
	const struct kh_decision *dec = &job->decision;
	json_t *claims;
	char sub[32];

	(void)snprintf(sub, sizeof(sub), "uid:%u",
		       (unsigned int)job->agent.uid);
	claims = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s,"
		" s:{s:O, s:I}, s:o}",
		"iss", d->config->broker_id, "sub", sub,
		"tenant", d->config->tenant, "env", d->config->env,
		"hA", job->hA, "hP", job->hP, "hS", job->hS,
		"iat", (json_int_t)job->now, "exp", (json_int_t)job->exp,
		"jti", job->jti, "rule", dec->rule,
		"grants", "secrets", dec->secrets, "uses",
		(json_int_t)dec->uses,
		"constraints", dec->constraints ?
			json_deep_copy(dec->constraints) : json_object());
	if (claims && job->sid[0] &&
	    json_object_set_new(claims, "sid", json_string(job->sid)) < 0) {
		json_decref(claims);
		claims = NULL;
	}
	return claims;
}

/*
 * Marks a permit whose file could not be written as revoked, so that
 * the log does not show a usable permit that the agent never received.
 */
static void withdraw_permit(struct kd_daemon *d, const struct mint_job *job,
			    const char *why)
{
	json_t *fields;

	fields = json_pack("{s:s, s:I, s:{s:I}, s:s}", "jti", job->jti,
			   "exp", (json_int_t)job->exp, "by", "uid",
			   (json_int_t)0, "reason", why);
	pthread_mutex_lock(&d->lock);
	if (fields &&
	    kd_daemon_append(d, "revoke", fields, NULL, NULL, NULL) == 0 &&
	    kh_ledger_note_revoke(d->ledger, job->jti, job->exp) < 0)
		kd_log(LOG_ERR, "cannot mark jti=%s revoked in the ledger; "
		       "it is revoked in the DPR log", job->jti);
	pthread_mutex_unlock(&d->lock);
	json_decref(fields);
}

/* Signs the permit and writes it to permits_dir/<uid>/<jti>. */
static int issue_permit(struct kd_daemon *d, const struct mint_job *job,
			struct kh_err *err)
{
	json_t *claims = permit_claims(d, job);
	char *token = NULL;
	int r;

	if (!claims)
		return -ENOMEM;
	r = kh_permit_mint(d->permit_key, claims, &token, err);
	json_decref(claims);
	if (r < 0)
		return r;
	r = kd_permits_dir_write(&d->permits, job->agent.uid, job->agent.gid,
				 job->jti, token, err);
	sodium_memzero(token, strlen(token));
	free(token);
	return r;
}

static json_t *reply_permit(const struct kd_daemon *d,
			    const struct mint_job *job)
{
	char path[PATH_MAX + 32];
	int n;

	n = snprintf(path, sizeof(path), "%s/%u/%s", d->config->permits_dir,
		     (unsigned int)job->agent.uid, job->jti);
	if (n < 0 || (size_t)n >= sizeof(path))
		return kd_reply_error("internal", "permit path too long");
	return json_pack("{s:b, s:s, s:s, s:s, s:I, s:s, s:s, s:I}",
			 "ok", 1, "effect", "permit", "jti", job->jti,
			 "path", path, "exp", (json_int_t)job->exp,
			 "rule", job->decision.rule, "hA", job->hA,
			 "seq", (json_int_t)job->seq);
}

static json_t *finish_request(struct kd_daemon *d, struct mint_job *job)
{
	struct kh_err err = { { 0 } };
	unsigned int uid = (unsigned int)job->agent.uid;
	int pid = (int)job->agent.pid;

	if (job->decision.effect != KH_EFFECT_PERMIT) {
		kd_log_denial(job->agent.uid, "request",
			      "request denied: uid=%u pid=%d rule=%s seq=%llu "
			      "reason=%s", uid, pid,
			      job->decision.rule[0] ? job->decision.rule : "-",
			      (unsigned long long)job->seq,
			      job->decision.reason);
		return reply_denied(job->decision.reason, job->decision.rule,
				    job->seq);
	}
	if (issue_permit(d, job, &err) < 0) {
		kd_log(LOG_ERR, "cannot issue permit: jti=%s uid=%u seq=%llu: "
		       "%s", job->jti, uid, (unsigned long long)job->seq,
		       err.msg);
		withdraw_permit(d, job, "permit file could not be written");
		return kd_reply_error("internal", "permit could not be issued");
	}
	kd_log(LOG_INFO, "permit issued: jti=%s uid=%u pid=%d rule=%s "
	       "seq=%llu exp=%lld session=%s", job->jti, uid, pid,
	       job->decision.rule, (unsigned long long)job->seq,
	       (long long)job->exp, job->sid[0] ? job->sid : "-");
	return reply_permit(d, job);
}

/*
 * Caller holds d->lock. Binds the permit to the open session of the
 * agent's uid that the caller belongs to, if any. When the caller's
 * process tree cannot be read and its uid has a session open, the
 * request is denied: a permit minted without "sid" would outlive the
 * session and work outside it.
 */
static int bind_session_locked(struct kd_daemon *d, struct mint_job *job,
			       const struct kd_lineage *lineage)
{
	const char *sid;

	job->sid[0] = '\0';
	if (!lineage->known)
		return kd_sessions_count(d->sessions, job->agent.uid) > 0 ?
			       -ESRCH : 0;
	sid = kd_sessions_of(d->sessions, lineage, job->agent.uid);
	if (sid)
		(void)snprintf(job->sid, sizeof(job->sid), "%s", sid);
	return 0;
}

/*
 * Returns whether the peer is still alive. Signal 0 only checks, and
 * ESRCH means it exited. Any other error, such as EPERM when keyholed
 * runs without CAP_KILL, is logged, because it denies every request.
 */
static bool peer_alive(const struct kd_peer *peer)
{
	if (syscall(SYS_pidfd_send_signal, peer->pidfd, 0, NULL, 0) == 0)
		return true;
	if (errno != ESRCH)
		kd_log(LOG_ERR, "cannot check that pid=%d is alive: %m; "
		       "keyholed needs CAP_KILL to signal other uids",
		       (int)peer->pid);
	return false;
}

/*
 * Handles {"op":"request","action":{...}} for the peer the kernel named
 * through SO_PEERCRED.
 */
json_t *kd_mint_request(struct kd_daemon *d, const struct kd_peer *peer,
			const json_t *action)
{
	struct mint_job job;
	struct kd_lineage *lineage;
	struct kh_err err = { { 0 } };
	bool unbound;
	json_t *reply;
	int r;

	memset(&job, 0, sizeof(job));
	job.action = action;
	if (kh_action_validate(action, &err) < 0)
		return kd_reply_error("invalid", err.msg);
	if (kh_agent_resolve(peer->uid, &job.agent, &err) < 0) {
		kd_log_denial(peer->uid, "request",
			      "request denied: uid=%u pid=%d: %s",
			      (unsigned int)peer->uid, (int)peer->pid,
			      err.msg);
		return reply_denied("unknown agent uid", "", 0);
	}
	job.agent.pid = peer->pid;
	kd_proc_exe(peer->pid, job.exe, sizeof(job.exe));
	lineage = malloc(sizeof(*lineage));
	if (!lineage)
		return kd_reply_error("internal", "out of memory");
	(void)kd_lineage_read(peer->pid, -1, lineage);
	/*
	 * The exe and the process tree were read by pid. If the caller has
	 * exited since, the pid may name another process now, so what was
	 * read may describe someone else: deny rather than guess.
	 */
	if (peer->pidfd < 0 || !peer_alive(peer)) {
		free(lineage);
		kd_log_denial(peer->uid, "request", "request denied: uid=%u "
			      "pid=%d: the caller exited before its request "
			      "was served", (unsigned int)peer->uid,
			      (int)peer->pid);
		return reply_denied("the calling process exited before its "
				    "request was served; keep the process "
				    "that connects alive until the reply",
				    "", 0);
	}

	pthread_mutex_lock(&d->lock);
	unbound = bind_session_locked(d, &job, lineage) < 0;
	r = unbound ? 0 : decide_locked(d, &job, &err);
	pthread_mutex_unlock(&d->lock);
	free(lineage);

	if (unbound) {
		kd_log_denial(peer->uid, "request", "request denied: uid=%u "
			      "pid=%d: cannot read the caller's process tree "
			      "to find its session", (unsigned int)peer->uid,
			      (int)peer->pid);
		return reply_denied("cannot tell which session the caller "
				    "belongs to: its process tree could not "
				    "be read", "", 0);
	}

	if (r < 0 && job.logged) {
		/* Logged but not counted: withdraw it rather than issue it. */
		kd_log(LOG_ERR, "request failed: uid=%u pid=%d seq=%llu: %s",
		       (unsigned int)peer->uid, (int)peer->pid,
		       (unsigned long long)job.seq, err.msg);
		withdraw_permit(d, &job, "permit could not be counted");
		reply = kd_reply_error("internal", "permit could not be "
				       "counted; nothing was issued");
	} else if (r < 0 && job.decided) {
		/* The decision was made but could not be logged. */
		kd_log(LOG_ERR, "request denied: uid=%u pid=%d rule=%s: audit "
		       "log write failed", (unsigned int)peer->uid,
		       (int)peer->pid,
		       job.decision.rule[0] ? job.decision.rule : "-");
		reply = reply_denied("audit log write failed",
				     job.decision.rule, 0);
	} else if (r < 0) {
		kd_log(LOG_ERR, "request failed: uid=%u pid=%d: %s",
		       (unsigned int)peer->uid, (int)peer->pid, err.msg);
		reply = kd_reply_error("internal", err.msg);
	} else {
		reply = finish_request(d, &job);
	}
	kh_decision_clear(&job.decision);
	json_decref(job.state);
	return reply;
}

/*
 * Caller holds d->lock. Revokes the unexpired permit jti, whose entry
 * in the issued index is entry, on behalf of uid by. It appends the
 * "revoke" record, marks the jti revoked in the ledger, removes the
 * permit file and queues the backends' permit_ended calls. Returns 0 once revoked, 1 when the jti was already
 * revoked (nothing is written), or -errno when the record could not be
 * written (-ENOMEM when memory ran out before the append).
 */
int kd_mint_revoke_locked(struct kd_daemon *d, const char *jti,
			  const struct kd_issued_entry *entry, uid_t by,
			  const char *reason, uint64_t *seq)
{
	json_t *fields;
	int r;

	*seq = 0;
	if (kh_ledger_is_revoked(d->ledger, jti))
		return 1;
	fields = json_pack("{s:s, s:I, s:{s:I}, s:s}", "jti", jti, "exp",
			   (json_int_t)entry->exp, "by", "uid",
			   (json_int_t)by, "reason", reason);
	r = fields ? kh_ledger_reserve_jti(d->ledger, jti, entry->exp) : -ENOMEM;
	if (r == 0)
		r = kd_daemon_append(d, "revoke", fields, seq, NULL, NULL);
	json_decref(fields);
	if (r < 0)
		return r;
	r = kh_ledger_note_revoke(d->ledger, jti, entry->exp);
	if (r < 0)
		kd_log(LOG_ERR, "cannot mark jti=%s revoked in the ledger: %s; "
		       "removing its permit file still stops its use", jti,
		       strerror(-r));
	r = kd_permits_dir_unlink(&d->permits, entry->uid, jti);
	if (r < 0 && r != -ENOENT)
		kd_log(LOG_WARNING, "cannot remove the permit file of revoked "
		       "jti=%s uid=%u: %s", jti, (unsigned int)entry->uid,
		       strerror(-r));
	kd_log(LOG_NOTICE, "permit revoked: jti=%s uid=%u by uid=%u seq=%llu "
	       "reason=%s", jti, (unsigned int)entry->uid, (unsigned int)by,
	       (unsigned long long)*seq, reason);
	/* Leases a backend took for this permit end now, not at its exp. */
	kd_daemon_queue_ended(d, jti);
	return 0;
}

/* The denial for a caller who is not the owner, root or an admin. */
static json_t *revoke_denied(const struct kd_daemon *d,
			     const struct kd_peer *peer)
{
	char reason[2 * sizeof(d->config->admin_group) + 160];

	if (d->config->admin_group[0] == '\0')
		return reply_denied("only the permit's owner or root may "
				    "revoke it; set admin_group in the config "
				    "to let a group of users revoke permits",
				    "", 0);
	(void)snprintf(reason, sizeof(reason), "only the permit's owner, "
		       "root or a member of the admin_group \"%s\" may "
		       "revoke it: add uid %u to that group (usermod -aG %s "
		       "USER) and log in again", d->config->admin_group,
		       (unsigned int)peer->uid, d->config->admin_group);
	return reply_denied(reason, "", 0);
}

/*
 * Handles {"op":"revoke","jti":...}: the permit's owner, root or a member
 * of the admin group may revoke.
 */
json_t *kd_mint_revoke(struct kd_daemon *d, const struct kd_peer *peer,
		       const char *jti, const char *reason)
{
	struct kd_issued_entry entry;
	char hash[KH_HASH_HEX_LEN + 1];
	uint64_t decision_seq, seq = 0;
	json_t *reply;
	int r;

	if (!kh_permit_jti_is_valid(jti))
		return kd_reply_error("invalid", "$.jti: expected a 22-character "
				      "base64url jti as returned by request");
	pthread_mutex_lock(&d->lock);
	if (kh_ledger_find_decision(d->ledger, jti, &decision_seq, hash) < 0 ||
	    kd_issued_find(d->issued, jti, &entry) < 0) {
		reply = kd_reply_error("not_found", "no unexpired permit has "
				       "this jti");
		goto out;
	}
	if (peer->uid != 0 && peer->uid != entry.uid &&
	    !kd_admin_group_member_locked(d, peer)) {
		reply = revoke_denied(d, peer);
		kd_log_denial(peer->uid, "revoke", "revoke denied: jti=%s "
			      "uid=%u owner=%u admin_group=%s", jti,
			      (unsigned int)peer->uid, (unsigned int)entry.uid,
			      d->config->admin_group[0] ? d->config->admin_group
							: "(none)");
		goto out;
	}
	r = kd_mint_revoke_locked(d, jti, &entry, peer->uid,
				  reason ? reason : "revoked on request", &seq);
	if (r == -ENOMEM)
		reply = kd_reply_error("internal", "out of memory; retry");
	else if (r < 0)
		reply = kd_reply_error("internal", "audit log write failed");
	else if (r == 1)
		reply = json_pack("{s:b, s:s, s:n}", "ok", 1, "jti", jti,
				  "seq");
	else
		reply = json_pack("{s:b, s:s, s:I}", "ok", 1, "jti", jti,
				  "seq", (json_int_t)seq);
out:
	pthread_mutex_unlock(&d->lock);
	return reply;
}

/* Handles {"op":"status"}. */
json_t *kd_mint_status(struct kd_daemon *d)
{
	json_t *reply;

	pthread_mutex_lock(&d->lock);
	reply = json_pack("{s:b, s:b, s:s, s:s, s:s, s:s, s:s, s:I}",
			  "ok", 1, "ready", d->ready, "version", KH_VERSION,
			  "tenant", d->config->tenant, "env", d->config->env,
			  "broker_id", d->config->broker_id,
			  "hP", kh_policy_hash(d->policy),
			  "seq", (json_int_t)d->last_seq);
	pthread_mutex_unlock(&d->lock);
	return reply;
}
