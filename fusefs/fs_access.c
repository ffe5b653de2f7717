/*
 * The open() check of the secrets mount, and reads of opened secrets.
 *
 * open() succeeds only for a process that has a permit file open which
 * the broker wrote. The permit must verify for this caller, this exec
 * action (or a tool_call decision), the current policy and this secret,
 * and its use is durably logged before the secret is fetched. The steps
 * run in this order:
 *   1. the caller's thread-group id from /proc/<tid>/status;
 *   2. a pidfd and a /proc/<tgid> fd, rechecked at the end (pid reuse);
 *   3. the permit files among its fds, read through pidfd_getfd;
 *   4. decode, then confirm the file is permits_dir/<uid>/<jti> by
 *      (dev, ino);
 *   5. kh_permit_check_all against the caller and the current policy,
 *      for an exec permit the caller's user namespace, and for a
 *      permit bound to a session ("sid") the caller's membership in
 *      that open session;
 *   6. the first permit that passes and grants the path wins;
 *   7. the ledger entry is reserved, an "access" record is appended and
 *      the use counted;
 *   8. the backend fetches the secret into sodium_malloc memory.
 * Any failure returns EACCES, logs an "access" record with outcome
 * "denied" and stores the reason for getxattr("user.keyhole.reason").
 * A fetch that fails after step 7 leaves the use spent: its "granted"
 * record is followed by a "denied" one and nothing is released.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon.h"

/*
 * Permits (files that decode and verify as permits) considered per
 * open, and files on the permits filesystem read per open, permits or
 * not. A caller over either limit is denied rather than having permits
 * skipped.
 */
#define MAX_CANDIDATES 16
#define MAX_SCANNED 256

/* Results of comparing the caller's user namespace with keyholed's. */
enum userns_match { USERNS_UNKNOWN = -1, USERNS_OTHER = 0, USERNS_SAME = 1 };

struct candidate {
	struct kh_permit permit;
	bool decoded;
	bool genuine;              /* the file is the broker's permit file */
	bool session_denied;       /* passed every check but its session's */
	enum kh_verdict verdict;   /* decode result, then check result */
	char reason[KD_REASON_MAX];
};

struct access_ctx {
	struct kd_daemon *d;
	const char *path;          /* "/<backend>/<name>" */
	const char *secret;        /* "<backend>/<name>", maybe "#<field>" */
	char secret_base[320];     /* secret without "#<field>", or "" */
	char node_backend[64];
	char node_name[256];
	uid_t uid;
	struct kd_proc proc;
	char exec_hA[KH_HASH_HEX_LEN + 1]; /* "" when it cannot be built */
	enum userns_match userns;
	struct kd_lineage lineage; /* read only when a permit has a sid */
	/* Decoded permits; the last slot is scratch for the next decode. */
	struct candidate cands[MAX_CANDIDATES + 1];
	size_t count;
	size_t scanned;            /* files read, permits or not */
	enum kh_verdict undecoded; /* worst decode failure, OK if none */
	const char *overflow;      /* the denial reason when over a limit */
	struct candidate *chosen;
	struct candidate *best;    /* the most specific failure */
	char reason[KD_REASON_MAX];
	uint32_t uses_after;
};

static void set_reason(struct access_ctx *ctx, const char *reason)
{
	(void)snprintf(ctx->reason, sizeof(ctx->reason), "%s", reason);
}

/* Reads up to KH_PERMIT_MAX bytes of fd from offset 0; buf has one more. */
static ssize_t read_token(int fd, char *buf)
{
	size_t used = 0;

	while (used < KH_PERMIT_MAX) {
		ssize_t n = pread(fd, buf + used, KH_PERMIT_MAX - used,
				  (off_t)used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	return (ssize_t)used;
}

/* Confirms the token names the broker's own file for it (dev, ino). */
static bool is_broker_file(struct access_ctx *ctx, const struct stat *held,
			   const struct kh_permit *permit)
{
	struct stat st;

	if (kd_permits_dir_stat(&ctx->d->permits, permit->uid, permit->jti,
				&st) < 0)
		return false;
	return S_ISREG(st.st_mode) && st.st_dev == held->st_dev &&
	       st.st_ino == held->st_ino;
}

/*
 * Decodes the token into the scratch slot. A permit joins the
 * candidates; any other file only records its decode failure, so that
 * files which are not permits never take a candidate's place.
 */
static int decode_candidate(struct access_ctx *ctx, const char *token,
			    size_t len, const struct stat *held)
{
	struct candidate *c = &ctx->cands[ctx->count];
	struct kh_err err = { { 0 } };

	memset(c, 0, sizeof(*c));
	c->verdict = kh_permit_decode(token, len, &ctx->d->keyring,
				      &c->permit, &err);
	if (c->verdict != KH_VERDICT_OK) {
		if (c->verdict > ctx->undecoded)
			ctx->undecoded = c->verdict;
		return 0;
	}
	if (ctx->count == MAX_CANDIDATES) {
		kh_permit_clear(&c->permit);
		ctx->overflow = "more than 16 permits held open: close the "
				"ones this command does not need";
		return 1;
	}
	c->decoded = true;
	c->genuine = kh_permit_jti_is_valid(c->permit.jti) &&
		     is_broker_file(ctx, held, &c->permit);
	ctx->count++;
	return 0;
}

/*
 * Confirms that fd, our copy of the caller's descriptor, is the regular
 * file the scan saw, and fills st from it. The caller can swap the
 * descriptor (dup2) between the scan and pidfd_getfd, so this runs
 * before anything else touches fd. With AT_STATX_DONT_SYNC, statx does
 * not ask a FUSE server for attributes, so a file on a FUSE mount that
 * the caller controls cannot stall this worker.
 */
static int confirm_file(int fd, const struct stat *seen, struct stat *st)
{
	struct statx stx;

	memset(st, 0, sizeof(*st));
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
		  STATX_TYPE | STATX_INO, &stx) < 0)
		return -errno;
	st->st_dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	st->st_ino = stx.stx_ino;
	st->st_mode = stx.stx_mode;
	if (!S_ISREG(st->st_mode) || st->st_dev != seen->st_dev ||
	    st->st_ino != seen->st_ino)
		return -ESTALE;
	return 0;
}

/*
 * kd_proc_scan_fds callback: takes our own copy of the fd, confirms it
 * is the file the scan saw (the process may have reused the number),
 * and reads the token from it. Returns 1 to stop the scan at a limit.
 */
static int collect_permit(int target_fd, const struct stat *seen, void *opaque)
{
	struct access_ctx *ctx = opaque;
	char *token = NULL;
	struct stat st;
	ssize_t len;
	int fd, r = 0;

	if (ctx->scanned == MAX_SCANNED) {
		ctx->overflow = "more than 256 files on the permits "
				"filesystem held open: close the ones this "
				"command does not need";
		return 1;
	}
	ctx->scanned++;
	fd = kd_proc_getfd(&ctx->proc, target_fd);
	if (fd < 0)
		return 0;
	if (confirm_file(fd, seen, &st) < 0)
		goto out;
	token = malloc(KH_PERMIT_MAX + 1);
	if (!token)
		goto out;
	len = read_token(fd, token);
	if (len > 0)
		r = decode_candidate(ctx, token, (size_t)len, &st);
out:
	if (token) {
		sodium_memzero(token, KH_PERMIT_MAX + 1);
		free(token);
	}
	close(fd);
	return r;
}

/* The verdict passed the hA check, or failed at it. */
static bool reached_action_check(enum kh_verdict verdict)
{
	return verdict == KH_VERDICT_OK ||
	       verdict >= KH_VERDICT_ACTION_MISMATCH;
}

/*
 * An exec binding holds only for a caller in keyholed's own user
 * namespace. In a namespace of its own, an unprivileged process has
 * CAP_CHECKPOINT_RESTORE and can point /proc/<pid>/exe at any binary
 * and write any argv with prctl(PR_SET_MM), so the exec action rebuilt
 * from /proc would match whatever it claims.
 */
static const char *userns_denial(const struct access_ctx *ctx)
{
	if (ctx->userns == USERNS_SAME)
		return NULL;
	if (ctx->userns == USERNS_OTHER)
		return "caller is in another user namespace";
	return "caller's user namespace cannot be read";
}

static bool grants_path(const struct candidate *c, const char *secret)
{
	const json_t *value;
	size_t i;

	if (!c->decoded)
		return false;
	json_array_foreach(c->permit.secrets, i, value) {
		const char *s = json_string_value(value);

		if (s && strcmp(s, secret) == 0)
			return true;
	}
	return false;
}

/*
 * Returns the grant entry that covers the path: the secret itself, or
 * for "<backend>/<name>#<field>" also "<backend>/<name>", because a
 * grant of a whole secret covers each of its fields. A grant of one
 * field covers neither the whole secret nor another field.
 */
static const char *covering_grant(const struct access_ctx *ctx,
				  const struct candidate *c)
{
	if (grants_path(c, ctx->secret))
		return ctx->secret;
	if (ctx->secret_base[0] && grants_path(c, ctx->secret_base))
		return ctx->secret_base;
	return ctx->secret;
}

/*
 * Caller holds d->lock. A permit bound to a session passes only for a
 * process of that session while it is open. Returns NULL when it
 * passes, or the denial reason.
 */
static const char *session_denial(const struct access_ctx *ctx,
				  const struct candidate *c)
{
	if (!c->permit.sid)
		return NULL;
	switch (kd_sessions_check(ctx->d->sessions, c->permit.sid, ctx->uid,
				  &ctx->lineage)) {
	case KD_MEMBER:
		return NULL;
	case KD_MEMBER_CLOSED:
		return "session closed";
	case KD_MEMBER_UNKNOWN:
		return "caller's process tree cannot be read to check its "
		       "session";
	case KD_MEMBER_OTHER:
	default:
		return "permit is bound to another session";
	}
}

/*
 * Caller holds d->lock. Fills c->verdict and c->reason for a decoded
 * permit. A permit that is not in the broker's own file never passes,
 * but it is checked too, so that its reason is the specific one. For
 * example, a copy held by another uid is a "subject mismatch", and a
 * revoked, spent or expired permit whose file was removed is "revoked",
 * "uses exhausted" or "expired".
 */
static void check_candidate(struct access_ctx *ctx, struct candidate *c,
			    int64_t now)
{
	struct kd_daemon *d = ctx->d;
	struct kd_issued_entry issued;
	struct kh_permit_expect expect = {
		.tenant = d->config->tenant,
		.env = d->config->env,
		.now = now,
		.uid = (int64_t)ctx->uid,
		.hA = ctx->exec_hA[0] ? ctx->exec_hA : "exec action unavailable",
		.hP = kh_policy_hash(d->policy),
		.secret = covering_grant(ctx, c),
		.uses_spent = (int64_t)kh_ledger_uses(d->ledger, c->permit.jti),
		.revoked = kh_ledger_is_revoked(d->ledger, c->permit.jti),
	};
	struct kh_err err = { { 0 } };
	const char *userns = NULL, *session;

	/*
	 * A tool_call permit's action cannot be recomputed at use time, so
	 * its hA is not checked. The issued index records which permits
	 * came from tool_call decisions; every other permit is an exec one.
	 */
	if (kd_issued_find(d->issued, c->permit.jti, &issued) == 0 &&
	    issued.kind == KD_ACTION_TOOL_CALL)
		expect.skip |= KH_CHECK_ACTION;
	else
		userns = userns_denial(ctx);
	if (d->config->on_policy_change == KH_POLICY_CHANGE_HONOR)
		expect.skip |= KH_CHECK_POLICY;

	c->verdict = kh_permit_check_all(&c->permit, &expect, &err);
	if (userns && reached_action_check(c->verdict)) {
		c->verdict = KH_VERDICT_ACTION_MISMATCH;
		(void)snprintf(c->reason, sizeof(c->reason), "%s", userns);
		return;
	}
	session = c->verdict == KH_VERDICT_OK ? session_denial(ctx, c) : NULL;
	if (session) {
		c->verdict = KH_VERDICT_SUBJECT_MISMATCH;
		c->session_denied = true;
		(void)snprintf(c->reason, sizeof(c->reason), "%s", session);
		return;
	}
	(void)snprintf(c->reason, sizeof(c->reason), "%s",
		       c->verdict == KH_VERDICT_OK && !c->genuine ?
			       "permit file was not written by the broker" :
			       kh_verdict_str(c->verdict));
}

/*
 * Orders failures by how close the permit came: one that grants this
 * path beats one that does not, then a later failed check beats an
 * earlier one (the verdict order follows the check order).
 */
static int failure_rank(const struct access_ctx *ctx,
			const struct candidate *c)
{
	int rank = (int)c->verdict * 2;

	/*
	 * Every check passed but the file is a copy, or the caller is
	 * outside the permit's session: the closest misses.
	 */
	if ((c->decoded && !c->genuine && c->verdict == KH_VERDICT_OK) ||
	    c->session_denied)
		rank = (int)KH_VERDICT_REVOKED * 2 + 1;
	if (grants_path(c, covering_grant(ctx, c)))
		rank += 100;
	return rank;
}

/* Caller holds d->lock. Picks the first passing permit, or the best miss. */
static void choose_permit(struct access_ctx *ctx, int64_t now)
{
	if (ctx->overflow) {
		set_reason(ctx, ctx->overflow);
		return;
	}
	for (size_t i = 0; i < ctx->count; i++) {
		struct candidate *c = &ctx->cands[i];

		if (c->decoded)
			check_candidate(ctx, c, now);
		if (c->decoded && c->genuine && c->verdict == KH_VERDICT_OK) {
			ctx->chosen = c;
			return;
		}
		if (!ctx->best ||
		    failure_rank(ctx, c) > failure_rank(ctx, ctx->best))
			ctx->best = c;
	}
	if (ctx->best)
		set_reason(ctx, ctx->best->reason);
	else if (ctx->undecoded != KH_VERDICT_OK)
		set_reason(ctx, kh_verdict_str(ctx->undecoded));
	else
		set_reason(ctx, "no permit held");
}

static json_t *access_fields(struct access_ctx *ctx,
			     const struct candidate *c, const char *outcome)
{
	struct kd_daemon *d = ctx->d;
	json_t *decision = json_null(), *fields;
	char hash[KH_HASH_HEX_LEN + 1];
	const char *jti = NULL;
	uint64_t seq;

	if (c && c->decoded && kh_permit_jti_is_valid(c->permit.jti)) {
		jti = c->permit.jti;
		if (kh_ledger_find_decision(d->ledger, jti, &seq, hash) == 0)
			decision = json_pack("{s:I, s:s}", "seq",
					     (json_int_t)seq, "hash", hash);
	}
	fields = json_pack(
		"{s:o, s:o, s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:s, s:I,"
		" s:o}",
		"jti", jti ? json_string(jti) : json_null(),
		"decision", decision ? decision : json_null(),
		"backend", ctx->node_backend, "secret", ctx->secret,
		"outcome", outcome, "reason", ctx->reason,
		"reader", "uid", (json_int_t)ctx->uid,
		"pid", (json_int_t)ctx->proc.tgid,
		"hP", kh_policy_hash(d->policy),
		"uses", (json_int_t)ctx->uses_after,
		"exp", jti ? json_integer(c->permit.exp) : json_null());
	return fields;
}

/* Caller holds d->lock. Appends the access record; returns its seq. */
static int record_access(struct access_ctx *ctx, const struct candidate *c,
			 const char *outcome, uint64_t *seq)
{
	struct kh_err err = { { 0 } };
	json_t *fields = access_fields(ctx, c, outcome);
	int r;

	*seq = 0;
	if (!fields)
		return -ENOMEM;
	r = kd_daemon_append(ctx->d, "access", fields, seq, NULL, &err);
	json_decref(fields);
	return r;
}

/* Caller holds d->lock. Logs the denial in the DPR, the log and xattr. */
static void deny_locked(struct access_ctx *ctx, const struct candidate *c)
{
	uint64_t seq = 0;

	ctx->uses_after = 0;
	(void)record_access(ctx, c, "denied", &seq);
	kd_reasons_set(ctx->d->reasons, ctx->uid, ctx->path, ctx->reason);
	kd_log_denial(ctx->uid, ctx->path,
		      "access denied: uid=%u pid=%d path=%s jti=%s rule=%s "
		      "seq=%llu reason=%s", (unsigned int)ctx->uid,
		      (int)ctx->proc.tgid, ctx->path,
		      c && c->decoded ? c->permit.jti : "-",
		      c && c->decoded ? c->permit.rule : "-",
		      (unsigned long long)seq, ctx->reason);
}

/* Caller holds d->lock. Denies the chosen permit for reason. */
static int deny_chosen_locked(struct access_ctx *ctx, const char *reason)
{
	struct candidate *c = ctx->chosen;

	set_reason(ctx, reason);
	ctx->chosen = NULL;
	deny_locked(ctx, c);
	return -EACCES;
}

/*
 * Caller holds d->lock. Verifies the permits collected and, for the one
 * chosen, consumes a use: the "access" record is durable before the
 * ledger counts the use and before any secret is fetched. The ledger
 * entry is reserved before the record is written, so that counting
 * cannot fail afterwards and leave the use uncounted until a restart.
 */
static int consume_locked(struct access_ctx *ctx)
{
	struct kd_daemon *d = ctx->d;
	struct candidate *c;
	uint64_t seq = 0;
	uint32_t total;

	choose_permit(ctx, (int64_t)time(NULL));
	c = ctx->chosen;
	if (c && kd_proc_still_same(&ctx->proc) < 0) {
		set_reason(ctx, "caller process exited during the check");
		ctx->best = c;
		c = ctx->chosen = NULL;
	}
	if (!c) {
		deny_locked(ctx, ctx->best);
		return -EACCES;
	}
	if (kh_ledger_reserve_jti(d->ledger, c->permit.jti, c->permit.exp) < 0)
		return deny_chosen_locked(ctx, "out of memory counting the use");
	set_reason(ctx, "permit verified");
	ctx->uses_after = kh_ledger_uses(d->ledger, c->permit.jti) + 1;
	if (record_access(ctx, c, "granted", &seq) < 0)
		return deny_chosen_locked(ctx, "audit log write failed");
	if (kh_ledger_count_use(d->ledger, c->permit.jti, c->permit.exp,
				&total) < 0) {
		kd_log(LOG_ERR, "cannot count the use of jti=%s seq=%llu; "
		       "denying the open", c->permit.jti,
		       (unsigned long long)seq);
		return deny_chosen_locked(ctx, "use could not be counted");
	}
	/*
	 * A spent permit's file stays until it expires, because its holder
	 * may present it again and must then get "uses exhausted" (or another
	 * reason) instead of a missing file.
	 */
	kd_log(LOG_INFO, "access granted: uid=%u pid=%d path=%s jti=%s "
	       "rule=%s seq=%llu uses=%u/%u", (unsigned int)ctx->uid,
	       (int)ctx->proc.tgid, ctx->path, c->permit.jti, c->permit.rule,
	       (unsigned long long)seq, ctx->uses_after, c->permit.uses);
	return 0;
}

/* Computes hA of the exec action the kernel shows for the caller. */
static void build_exec_hash(struct access_ctx *ctx)
{
	struct kh_err err = { { 0 } };
	json_t *action = NULL;

	ctx->exec_hA[0] = '\0';
	if (kh_action_from_proc(ctx->proc.tgid, ctx->proc.dirfd, &action,
				&err) < 0) {
		kd_log(LOG_DEBUG, "no exec action for pid=%d: %s",
		       (int)ctx->proc.tgid, err.msg);
		return;
	}
	if (kh_action_hash(action, ctx->exec_hA, &err) < 0)
		ctx->exec_hA[0] = '\0';
	json_decref(action);
}

/*
 * Reads the caller's parent chain and audit session id, outside
 * d->lock, when a permit it holds is bound to a session. A chain that
 * cannot be read leaves lineage.known false, which fails those permits.
 */
static void read_lineage(struct access_ctx *ctx)
{
	bool bound = false;

	for (size_t i = 0; i < ctx->count; i++)
		bound = bound || ctx->cands[i].permit.sid;
	if (bound)
		(void)kd_lineage_read(ctx->proc.tgid, ctx->proc.dirfd,
				      &ctx->lineage);
}

/* Steps 1-3: finds the caller's process and the permit files it holds. */
static int inspect_caller(struct access_ctx *ctx, pid_t tid)
{
	pid_t tgid;
	int r;

	r = kd_proc_tgid(tid, &tgid);
	if (r == 0)
		r = kd_proc_open(tgid, &ctx->proc);
	if (r < 0) {
		set_reason(ctx, "caller process not found");
		return r;
	}
	build_exec_hash(ctx);
	r = kd_proc_same_userns(&ctx->proc);
	ctx->userns = r < 0 ? USERNS_UNKNOWN :
		      r ? USERNS_SAME : USERNS_OTHER;
	r = kd_proc_scan_fds(&ctx->proc, ctx->d->permits.dev,
			     ctx->d->mount_dev, collect_permit, ctx);
	if (r < 0) {
		set_reason(ctx, "cannot read the caller's open files");
		return r;
	}
	read_lineage(ctx);
	return 0;
}

/*
 * Fetches the secret through its backend. On failure the denial reason
 * names the KH_FETCH_* wording ("backend fetch failed: timed out"),
 * while the log gets the backend's full message, which names the remote
 * side but never a token or secret.
 */
static int fetch_secret(struct access_ctx *ctx, struct kh_secret **out)
{
	const struct candidate *c = ctx->chosen;
	struct kh_backend *backend = kd_daemon_backend(ctx->d,
						       ctx->node_backend);
	struct kh_fetch_ctx fetch = {
		.jti = c->permit.jti,
		.deadline = c->permit.exp,
	};
	struct kh_err err = { { 0 } };
	char reason[KD_REASON_MAX];
	int r;

	if (!backend) {
		set_reason(ctx, "backend fetch failed: backend not configured");
		return -ENOENT;
	}
	r = kh_backend_fetch(backend, ctx->node_name, &fetch, out, &err);
	if (r < 0) {
		(void)snprintf(reason, sizeof(reason),
			       "backend fetch failed: %s",
			       kh_backend_reason(r));
		set_reason(ctx, reason);
		kd_log(LOG_ERR, "backend %s: fetch of %s for jti=%s failed: %s",
		       backend->name, ctx->node_name, c->permit.jti, err.msg);
	}
	return r;
}

static void clear_ctx(struct access_ctx *ctx)
{
	for (size_t i = 0; i < ctx->count; i++)
		kh_permit_clear(&ctx->cands[i].permit);
	kd_proc_close(&ctx->proc);
}

static int split_path(struct access_ctx *ctx, const char *path)
{
	const char *slash, *field;
	size_t len;

	ctx->path = path;
	ctx->secret = path[0] == '/' ? path + 1 : path;
	slash = strchr(ctx->secret, '/');
	len = slash ? (size_t)(slash - ctx->secret) : 0;
	if (!slash || len >= sizeof(ctx->node_backend) ||
	    strlen(slash + 1) >= sizeof(ctx->node_name))
		return -ENOENT;
	memcpy(ctx->node_backend, ctx->secret, len);
	ctx->node_backend[len] = '\0';
	(void)snprintf(ctx->node_name, sizeof(ctx->node_name), "%s",
		       slash + 1);
	field = strchr(ctx->secret, '#');
	if (field)
		(void)snprintf(ctx->secret_base, sizeof(ctx->secret_base),
			       "%.*s", (int)(field - ctx->secret), ctx->secret);
	return 0;
}

/*
 * Runs the open() check for path ("/<backend>/<name>") on behalf of
 * thread tid of uid. On success *out contains the fetched secret and the
 * opener's identity for later reads. Returns -EACCES on any denial.
 */
int kd_access_open(struct kd_daemon *d, const char *path, uid_t uid,
		   pid_t tid, struct kd_handle **out)
{
	struct access_ctx *ctx;
	struct kd_handle *handle = NULL;
	struct kh_secret *secret = NULL;
	int r;

	*out = NULL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->d = d;
	ctx->uid = uid;
	ctx->userns = USERNS_UNKNOWN;
	ctx->proc.pidfd = ctx->proc.dirfd = -1;
	if (split_path(ctx, path) < 0) {
		free(ctx);
		return -ENOENT;
	}
	r = inspect_caller(ctx, tid);

	pthread_mutex_lock(&d->lock);
	if (r < 0)
		deny_locked(ctx, NULL);
	else
		r = consume_locked(ctx);
	pthread_mutex_unlock(&d->lock);
	if (r < 0)
		goto out;

	r = fetch_secret(ctx, &secret);
	handle = r == 0 ? calloc(1, sizeof(*handle)) : NULL;
	if (!handle) {
		if (r == 0)
			set_reason(ctx, "out of memory for the open handle");
		pthread_mutex_lock(&d->lock);
		deny_locked(ctx, ctx->chosen);
		pthread_mutex_unlock(&d->lock);
		kh_secret_free(secret);
		r = -EACCES;
		goto out;
	}
	handle->secret = secret;
	handle->opener = ctx->proc;
	ctx->proc.pidfd = ctx->proc.dirfd = -1;
	*out = handle;
out:
	clear_ctx(ctx);
	free(ctx);
	return r < 0 ? -EACCES : 0;
}

/*
 * Allows a read only from the thread group that opened the secret and
 * only while that process lives: an fd passed over SCM_RIGHTS, or
 * inherited by a child, must not read.
 */
int kd_access_read(struct kd_daemon *d, struct kd_handle *handle,
		   const char *path, uid_t uid, pid_t tid)
{
	pid_t tgid = 0;

	if (kd_proc_tgid(tid, &tgid) == 0 && tgid == handle->opener.tgid &&
	    kd_proc_still_same(&handle->opener) == 0)
		return 0;
	kd_reasons_set(d->reasons, uid, path ? path : "",
		       "reader is not the process that opened the secret");
	kd_log_denial(uid, path ? path : "read",
		      "read denied: uid=%u pid=%d path=%s opener=%d reason="
		      "reader is not the process that opened the secret",
		      (unsigned int)uid, (int)tgid, path ? path : "-",
		      (int)handle->opener.tgid);
	return -EACCES;
}

/* Wipes and frees the secret; runs when the last fd closes. */
void kd_access_release(struct kd_handle *handle)
{
	if (!handle)
		return;
	kh_secret_free(handle->secret);
	kd_proc_close(&handle->opener);
	free(handle);
}
