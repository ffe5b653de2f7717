/*
 * The daemon context: loading config, keys, policy, the DPR log and the
 * backends at start-up, policy reloads on SIGHUP, the DPR append that
 * every record goes through, and the removal of dead permit files and
 * of sessions whose leader exited.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "keyhole/backend_module.h"
#include "keyhole/federation.h"

/*
 * Appends one DPR record and remembers its seq for "status". The caller
 * holds d->lock (or runs before any thread starts), which keeps the log
 * order equal to the order in which checks and uses happened.
 */
int kd_daemon_append(struct kd_daemon *d, const char *type,
		     const json_t *fields, uint64_t *seq,
		     char hash[KH_HASH_HEX_LEN + 1], struct kh_err *err)
{
	uint64_t appended = 0;
	int r;

	r = kh_dpr_append(d->dpr, type, fields, &appended, hash, err);
	if (r < 0) {
		kd_log(LOG_ERR, "cannot append a %s record to the DPR log: %s",
		       type, err ? err->msg : strerror(-r));
		return r;
	}
	d->last_seq = appended;
	if (seq)
		*seq = appended;
	return 0;
}

struct kh_backend *kd_daemon_backend(struct kd_daemon *d, const char *name)
{
	for (size_t i = 0; i < d->backend_count; i++) {
		if (strcmp(d->backends[i]->name, name) == 0)
			return d->backends[i];
	}
	return NULL;
}

/* Rejects a policy written for another tenant or environment. */
int kd_daemon_check_scope(const struct kh_config *config,
			  const struct kh_policy *policy, struct kh_err *err)
{
	if (strcmp(kh_policy_tenant(policy), config->tenant) != 0) {
		kh_err_set(err, "policy %s has tenant \"%s\" but config %s "
			   "has \"%s\": make them equal", config->policy,
			   kh_policy_tenant(policy), config->path,
			   config->tenant);
		return -EINVAL;
	}
	if (strcmp(kh_policy_env(policy), config->env) != 0) {
		kh_err_set(err, "policy %s has env \"%s\" but config %s has "
			   "\"%s\": make them equal", config->policy,
			   kh_policy_env(policy), config->path, config->env);
		return -EINVAL;
	}
	return 0;
}

/* Archives policy and appends its "policy_load" record. */
static int record_policy(struct kd_daemon *d, const struct kh_policy *policy,
			 struct kh_err *err)
{
	json_t *fields;
	int r;

	r = kh_dpr_archive_policy(d->dpr, policy, err);
	if (r < 0)
		return r;
	fields = json_pack("{s:s, s:s, s:s, s:s}",
			   "hP", kh_policy_hash(policy),
			   "path", d->config->policy,
			   "tenant", kh_policy_tenant(policy),
			   "env", kh_policy_env(policy));
	if (!fields)
		return -ENOMEM;
	r = kd_daemon_append(d, "policy_load", fields, NULL, NULL, err);
	json_decref(fields);
	return r;
}

/* Fills env for kh_backend_open from config; fed_key may be NULL. */
void kd_daemon_backend_env(const struct kh_config *config,
			   const struct kh_fed_key *fed_key,
			   struct kh_backend_env *env)
{
	memset(env, 0, sizeof(*env));
	env->backend_dir = config->backend_dir;
	env->tenant = config->tenant;
	env->env = config->env;
	env->broker_id = config->broker_id;
	env->fed_issuer = config->fed_issuer[0] ? config->fed_issuer : NULL;
	env->fed_key = fed_key;
}

/*
 * Loads the federation key named by config's "federation" section, or
 * leaves *out NULL when there is none. err names the config key.
 */
int kd_daemon_load_fed_key(const struct kh_config *config,
			   struct kh_fed_key **out, struct kh_err *err)
{
	int r;

	*out = NULL;
	if (!config->fed_key[0])
		return 0;
	r = kh_fed_key_load(config->fed_key, out, err);
	if (r < 0)
		kh_err_prefix(err, "federation.key");
	return r;
}

static void log_backend_debug(const char *line)
{
	kd_log(LOG_DEBUG, "%s", line);
}

/*
 * Opens every configured backend, loading its module. The federation
 * key stays loaded for the daemon's life, because modules sign tokens
 * with it at each fetch.
 */
static int open_backends(struct kd_daemon *d, struct kh_err *err)
{
	struct kh_backend_env env;
	const char *name;
	json_t *conf;
	size_t count = json_object_size(d->config->backends);
	int r;

	r = kd_daemon_load_fed_key(d->config, &d->fed_key, err);
	if (r < 0)
		return r;
	kd_daemon_backend_env(d->config, d->fed_key, &env);
	kh_backend_set_debug_log(log_backend_debug);
	d->backends = calloc(count ? count : 1, sizeof(*d->backends));
	if (!d->backends)
		return -ENOMEM;
	json_object_foreach(d->config->backends, name, conf) {
		r = kh_backend_open(name, conf, d->config->dir, &env,
				    &d->backends[d->backend_count], err);
		if (r < 0)
			return r;
		kd_log(LOG_INFO, "backend %s: type %s loaded from %s", name,
		       kh_backend_type(d->backends[d->backend_count]),
		       d->config->backend_dir);
		d->backend_count++;
	}
	return 0;
}

/*
 * Ended permits wait here for the backends' permit_ended, which may make
 * network calls (a Vault lease revocation), so that the prune pass that
 * finds them never blocks while holding d->lock.
 */
struct kd_ended {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	json_t *jtis;
	bool stop;
	pthread_t thread;
};

static void notify_backends(struct kd_daemon *d, const json_t *jtis)
{
	const json_t *jti;
	size_t i;

	json_array_foreach(jtis, i, jti) {
		for (size_t b = 0; b < d->backend_count; b++)
			kh_backend_permit_ended(d->backends[b],
						json_string_value(jti));
	}
}

static void *ended_main(void *arg)
{
	struct kd_daemon *d = arg;
	struct kd_ended *ended = d->ended;
	json_t *batch;

	for (;;) {
		pthread_mutex_lock(&ended->lock);
		while (!ended->stop && json_array_size(ended->jtis) == 0)
			pthread_cond_wait(&ended->wake, &ended->lock);
		if (ended->stop) {
			pthread_mutex_unlock(&ended->lock);
			return NULL;
		}
		batch = ended->jtis;
		ended->jtis = json_array();
		pthread_mutex_unlock(&ended->lock);

		notify_backends(d, batch);
		json_decref(batch);
	}
}

/* Starts the queue when some backend wants permit_ended calls. */
static int start_ended(struct kd_daemon *d, struct kh_err *err)
{
	struct kd_ended *ended;
	bool wanted = false;
	int r;

	for (size_t i = 0; i < d->backend_count; i++)
		wanted = wanted || d->backends[i]->module->permit_ended;
	if (!wanted)
		return 0;
	ended = calloc(1, sizeof(*ended));
	if (!ended || !(ended->jtis = json_array())) {
		free(ended);
		return -ENOMEM;
	}
	pthread_mutex_init(&ended->lock, NULL);
	pthread_cond_init(&ended->wake, NULL);
	d->ended = ended;
	r = pthread_create(&ended->thread, NULL, ended_main, d);
	if (r != 0) {
		kh_err_set(err, "cannot start the permit clean-up thread: %s",
			   strerror(r));
		d->ended = NULL;
		json_decref(ended->jtis);
		free(ended);
		return -r;
	}
	return 0;
}

/* Drops what is still queued: leases then end at their own TTL. */
static void stop_ended(struct kd_daemon *d)
{
	struct kd_ended *ended = d->ended;

	if (!ended)
		return;
	pthread_mutex_lock(&ended->lock);
	ended->stop = true;
	pthread_cond_signal(&ended->wake);
	pthread_mutex_unlock(&ended->lock);
	pthread_join(ended->thread, NULL);
	if (json_array_size(ended->jtis) > 0)
		kd_log(LOG_WARNING, "stopping with %zu ended permits whose "
		       "backend leases were not revoked; they expire at "
		       "their own TTL", json_array_size(ended->jtis));
	json_decref(ended->jtis);
	pthread_cond_destroy(&ended->wake);
	pthread_mutex_destroy(&ended->lock);
	free(ended);
	d->ended = NULL;
}

/*
 * Queues jti for the backends' permit_ended. Takes only the queue's own
 * lock, so callers may hold d->lock. The module calls run later, on the
 * clean-up thread.
 */
void kd_daemon_queue_ended(struct kd_daemon *d, const char *jti)
{
	struct kd_ended *ended = d->ended;

	if (!ended)
		return;
	pthread_mutex_lock(&ended->lock);
	if (json_array_append_new(ended->jtis, json_string(jti)) < 0)
		kd_log(LOG_WARNING, "cannot queue the end of jti=%s for the "
		       "backends: out of memory", jti);
	pthread_cond_signal(&ended->wake);
	pthread_mutex_unlock(&ended->lock);
}

/*
 * Rejects one key used as both permit_key and audit_key. The DPR must be
 * signed with a key separate from the permit key, so that a leaked
 * permit key cannot also forge the audit log. The kid is a hash of the
 * public key, so equal kids mean the same key.
 */
int kd_daemon_check_keys_differ(const struct kh_config *config,
				const struct kh_key *permit_key,
				const struct kh_key *audit_key,
				struct kh_err *err)
{
	if (strcmp(permit_key->kid, audit_key->kid) != 0)
		return 0;
	kh_err_set(err, "permit_key %s and audit_key %s are the same key "
		   "(kid %s), but the audit key must be separate: run "
		   "keyhole keygen --dir DIR and point audit_key at its "
		   "audit.jwk", config->permit_key, config->audit_key,
		   permit_key->kid);
	return -EINVAL;
}

/*
 * Loads the private key at path for config key config_key ("permit_key"
 * or "audit_key"). err names the config key, and for a missing file
 * also the command that creates one.
 */
int kd_daemon_load_key(const char *config_key, const char *path,
		       struct kh_key **out, struct kh_err *err)
{
	int r;

	r = kh_key_load(path, out, err);
	if (r < 0 && err) {
		char cause[sizeof(err->msg)];

		(void)snprintf(cause, sizeof(cause), "%s", err->msg);
		kh_err_set(err, "%s: %s%s", config_key, cause,
			   r == -ENOENT ? "; create the keys with: keyhole "
					  "keygen --dir DIR" : "");
	}
	if (r < 0)
		return r;
	if (!(*out)->secret) {
		kh_err_set(err, "%s: %s is a public key, expected the private "
			   "JWK (keyhole keygen --dir DIR writes both)",
			   config_key, path);
		kh_key_free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

static int load_keys(struct kd_daemon *d, struct kh_err *err)
{
	int r;

	r = kd_daemon_load_key("permit_key", d->config->permit_key,
			       &d->permit_key, err);
	if (r < 0)
		return r;
	r = kd_daemon_load_key("audit_key", d->config->audit_key,
			       &d->audit_key, err);
	if (r < 0)
		return r;
	r = kd_daemon_check_keys_differ(d->config, d->permit_key,
					d->audit_key, err);
	if (r < 0)
		return r;
	d->keyring.keys[0] = d->permit_key;
	d->keyring.count = 1;
	return 0;
}

/* Keeps the first message a check reports in ctx, a struct kh_err. */
static void keep_first_error(const char *message, void *ctx)
{
	struct kh_err *err = ctx;

	if (err && err->msg[0] == '\0')
		kh_err_set(err, "%s", message);
}

/*
 * Rejects a policy that the daemon cannot serve: another tenant or env,
 * or a grant of a secret whose backend is not configured (a permit for
 * it would pass every check and then fail at fetch).
 */
static int check_policy_fits(const struct kh_config *config,
			     const struct kh_policy *policy,
			     struct kh_err *err)
{
	int r, count;

	r = kd_daemon_check_scope(config, policy, err);
	if (r < 0)
		return r;
	kh_err_clear(err);
	count = kd_check_grant_backends(config, policy, keep_first_error, err);
	if (count == 0)
		return 0;
	if (count > 1)
		kh_err_prefix(err, "%d grants name unknown backends, the "
			      "first", count);
	return -EINVAL;
}

/*
 * Opens the DPR log with the retired audit keys at hand, so that a log
 * begun under an older key still checks and, after "keyhole keygen
 * --rotate", is handed over to the new key. The retired private keys
 * are deleted once that is durable: nothing signs with them again.
 */
static int open_dpr(struct kd_daemon *d, struct kh_err *err)
{
	struct kh_key *retired[KH_DPR_RETIRED_MAX];
	struct kh_err prune_err = { { 0 } };
	size_t count = 0;
	int r;

	r = kh_key_retired_load(d->config->audit_key, retired,
				KH_DPR_RETIRED_MAX, &count, err);
	if (r < 0)
		return r;
	r = kh_dpr_open_keys(d->config->audit_dir, d->audit_key,
			     (const struct kh_key *const *)retired, count,
			     d->ledger, &d->dpr, err);
	for (size_t i = 0; i < count; i++)
		kh_key_free(retired[i]);
	if (r < 0)
		return r;

	r = kh_key_retired_prune(d->config->audit_key, &prune_err);
	if (r < 0)
		kd_log(LOG_WARNING, "cannot delete a retired private audit "
		       "key: %s; delete it by hand", prune_err.msg);
	else if (r > 0)
		kd_log(LOG_NOTICE, "audit log signed by audit key %s from "
		       "now on; deleted %d retired private audit key(s)",
		       d->audit_key->kid, r);
	return 0;
}

static int open_audit(struct kd_daemon *d, struct kh_err *err)
{
	json_t *fields;
	int r;

	r = kh_ledger_new(&d->ledger);
	if (r < 0)
		return r;
	r = open_dpr(d, err);
	if (r < 0)
		return r;
	r = kd_issued_new(&d->issued);
	if (r < 0)
		return r;
	r = kd_issued_replay(d->issued, d->ledger, d->config->audit_dir,
			     (int64_t)time(NULL), err);
	if (r < 0)
		return r;
	fields = json_pack("{s:s, s:s, s:I}", "broker_id",
			   d->config->broker_id, "version", KH_VERSION,
			   "pid", (json_int_t)getpid());
	if (!fields)
		return -ENOMEM;
	r = kd_daemon_append(d, "start", fields, NULL, NULL, err);
	json_decref(fields);
	return r;
}

/* A permit file stays while its jti is unexpired, unspent and unrevoked. */
static bool permit_is_live(uid_t uid, const char *jti, void *ctx)
{
	struct kd_daemon *d = ctx;
	struct kd_issued_entry entry;

	if (kd_issued_find(d->issued, jti, &entry) < 0 || entry.uid != uid)
		return false;
	return !kh_ledger_is_revoked(d->ledger, jti);
}

/*
 * Removes permit files left by an earlier run whose jti is expired,
 * unknown to the issued index (which holds every unexpired permit in
 * the DPR log) or revoked. A spent permit whose file survived a crash
 * goes when it expires, because the log does not record its use limit.
 */
static void sweep_permit_files(struct kd_daemon *d)
{
	size_t removed = 0;
	int r;

	r = kd_permits_dir_sweep(&d->permits, permit_is_live, d, &removed);
	if (r < 0)
		kd_log(LOG_WARNING, "cannot clean up permits_dir %s: %s; "
		       "stale permit files stay until they expire",
		       d->config->permits_dir, strerror(-r));
	else
		kd_log(LOG_DEBUG, "start-up clean-up: removed %zu stale permit "
		       "files from %s", removed, d->config->permits_dir);
}

/*
 * Loads everything the daemon serves from: config, keys, policy, the
 * DPR log (replayed into a fresh ledger), backends, permits_dir and
 * the sessions still open. Appends the "start" and "policy_load"
 * records. On failure the caller runs kd_daemon_unload.
 */
int kd_daemon_load(struct kd_daemon *d, const char *config_path,
		   struct kh_err *err)
{
	int r;

	d->permits.fd = -1;
	d->started = time(NULL);
	r = kh_config_load(config_path, &d->config, err);
	if (r < 0)
		return r;
	r = kd_admin_group_refresh(d, err);
	if (r < 0)
		return r;
	r = load_keys(d, err);
	if (r < 0)
		return r;
	r = kh_policy_load(d->config->policy, &d->policy, err);
	if (r < 0)
		return r;
	r = check_policy_fits(d->config, d->policy, err);
	if (r < 0)
		return r;
	r = open_audit(d, err);
	if (r < 0)
		return r;
	r = record_policy(d, d->policy, err);
	if (r < 0)
		return r;
	r = open_backends(d, err);
	if (r < 0)
		return r;
	r = start_ended(d, err);
	if (r < 0)
		return r;
	r = kd_reasons_new(&d->reasons);
	if (r < 0)
		return r;
	r = kd_permits_dir_open(d->config->permits_dir, &d->permits, err);
	if (r < 0)
		return r;
	r = kd_sessions_new(&d->sessions);
	if (r < 0)
		return r;
	/* Ended sessions revoke permits, and the sweep removes their files. */
	r = kd_session_restore(d, err);
	if (r < 0)
		return r;
	sweep_permit_files(d);
	return 0;
}

void kd_daemon_unload(struct kd_daemon *d)
{
	stop_ended(d);
	for (size_t i = 0; i < d->backend_count; i++)
		kh_backend_close(d->backends[i]);
	free(d->backends);
	d->backends = NULL;
	d->backend_count = 0;
	kh_fed_key_free(d->fed_key);
	d->fed_key = NULL;
	if (d->dpr)
		kh_dpr_close(d->dpr);
	d->dpr = NULL;
	if (d->ledger)
		kh_ledger_free(d->ledger);
	d->ledger = NULL;
	if (d->policy)
		kh_policy_free(d->policy);
	d->policy = NULL;
	kh_key_free(d->permit_key);
	kh_key_free(d->audit_key);
	d->permit_key = NULL;
	d->audit_key = NULL;
	d->keyring.count = 0;
	kd_issued_free(d->issued);
	d->issued = NULL;
	kd_sessions_free(d->sessions);
	d->sessions = NULL;
	kd_reasons_free(d->reasons);
	d->reasons = NULL;
	if (d->permits.fd >= 0)
		kd_permits_dir_close(&d->permits);
	if (d->config)
		kh_config_free(d->config);
	d->config = NULL;
}

/*
 * Removes the file of a permit that can never be used again (spent,
 * expired or revoked). A process that has the file open keeps its fd,
 * and fs_access.c still gives it the specific denial reason.
 */
void kd_daemon_retire_permit_locked(struct kd_daemon *d, uid_t uid,
				    const char *jti, const char *why)
{
	int r;

	r = kd_permits_dir_unlink(&d->permits, uid, jti);
	if (r < 0 && r != -ENOENT)
		kd_log(LOG_WARNING, "cannot remove the permit file of %s "
		       "jti=%s uid=%u: %s", why, jti, (unsigned int)uid,
		       strerror(-r));
}

/*
 * Removes an expired permit's file and queues its jti for the backends'
 * permit_ended, so that leases taken for it (Vault dynamic secrets) are
 * revoked. A revoked permit was queued at revocation and is queued again
 * here, which catches a lease from a fetch that was still running when
 * the permit was revoked.
 */
static void retire_expired(const char *jti,
			   const struct kd_issued_entry *entry, void *ctx)
{
	struct kd_daemon *d = ctx;

	kd_daemon_retire_permit_locked(d, entry->uid, jti, "expired");
	kd_daemon_queue_ended(d, jti);
}

/*
 * Caller holds d->lock. At most every KD_PRUNE_INTERVAL seconds, ends
 * the sessions whose leader exited (revoking their permits), drops
 * expired ledger entries and up to KD_PRUNE_BATCH expired permits from
 * the issued index, removing their files.
 */
void kd_daemon_prune_locked(struct kd_daemon *d, int64_t now)
{
	size_t removed;

	if (now - d->last_prune < KD_PRUNE_INTERVAL)
		return;
	d->last_prune = now;
	kd_session_reap_locked(d);
	kh_ledger_prune(d->ledger, now, kh_policy_max_window(d->policy));
	removed = kd_issued_prune(d->issued, now, KD_PRUNE_BATCH,
				  retire_expired, d);
	kd_log(LOG_DEBUG, "clean-up pass: %zu expired permits dropped",
	       removed);
}

/*
 * Reloads the policy file. A policy that fails to parse, names another
 * tenant or env, or grants a secret of an unknown backend leaves the
 * old one in force. A changed hP is
 * archived and logged before it takes effect, so every later decision
 * points at a policy an auditor can fetch.
 */
int kd_daemon_reload(struct kd_daemon *d, struct kh_err *err)
{
	struct kh_policy *fresh = NULL, *old = NULL;
	struct kh_err group_err = { { 0 } };
	int r;

	if (kd_admin_group_refresh(d, &group_err) < 0)
		kd_log(LOG_ERR, "reload: %s; until a reload resolves it, only "
		       "a permit's owner and root may revoke it",
		       group_err.msg);
	r = kh_policy_load(d->config->policy, &fresh, err);
	if (r == 0)
		r = check_policy_fits(d->config, fresh, err);
	if (r < 0)
		goto out;

	pthread_mutex_lock(&d->lock);
	if (strcmp(kh_policy_hash(fresh), kh_policy_hash(d->policy)) == 0) {
		pthread_mutex_unlock(&d->lock);
		kd_log(LOG_INFO, "policy reload: %s unchanged, hP=%s",
		       d->config->policy, kh_policy_hash(fresh));
		goto out;
	}
	r = record_policy(d, fresh, err);
	if (r == 0) {
		old = d->policy;
		d->policy = fresh;
		fresh = NULL;
		kd_log(LOG_NOTICE, "policy reloaded: %s hP=%s seq=%llu",
		       d->config->policy, kh_policy_hash(d->policy),
		       (unsigned long long)d->last_seq);
	}
	pthread_mutex_unlock(&d->lock);
out:
	if (fresh)
		kh_policy_free(fresh);
	if (old)
		kh_policy_free(old);
	return r;
}
