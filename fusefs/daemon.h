/*
 * keyholed internals: the daemon context shared by the broker socket,
 * the minting path and the FUSE operations, and the functions each
 * fusefs/ file provides to the others.
 *
 * Locking: d->lock guards policy, ledger, issued, last_seq and the order
 * of DPR appends, so that a check and the use it consumes happen as one
 * step. Backend fetches and socket I/O run outside the lock.
 */
#ifndef KEYHOLED_DAEMON_H
#define KEYHOLED_DAEMON_H

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "keyhole/keyhole.h"

/* Largest request line on the broker socket, in bytes. */
#define KD_REQUEST_MAX (64 * 1024)

/* Reason text stored for a denial, including the NUL. */
#define KD_REASON_MAX 256

struct kd_issued;
struct kd_ended;
struct kd_reasons;
struct kd_sessions;
struct kd_broker;
struct fuse;

/* The permits directory, opened once at start-up. */
struct kd_permits_dir {
	int fd;   /* O_DIRECTORY on permits_dir, owned by root */
	dev_t dev;
};

struct kd_daemon {
	struct kh_config *config;
	struct kh_key *permit_key;
	struct kh_key *audit_key;
	struct kh_keyring keyring;
	struct kh_policy *policy;
	struct kh_ledger *ledger;
	struct kh_dpr *dpr;
	struct kh_backend **backends;
	size_t backend_count;
	struct kh_fed_key *fed_key; /* NULL without a "federation" section */
	struct kd_ended *ended;     /* permit_ended queue, NULL when unused */
	struct kd_issued *issued;
	struct kd_sessions *sessions;
	struct kd_reasons *reasons;
	struct kd_permits_dir permits;
	struct kd_broker *broker;
	struct fuse *fuse;
	dev_t mount_dev;      /* st_dev of the FUSE mount, 0 before mount */
	bool mounted;
	bool ready;
	bool admin_group_set; /* admin_gid is the resolved admin_group */
	gid_t admin_gid;
	int64_t last_prune;   /* unix time of the last kd_daemon_prune pass */
	uint64_t last_seq;    /* seq of the last DPR record appended */
	time_t started;
	pthread_mutex_t lock;
};

/*
 * Seconds between passes that drop expired ledger and index entries and
 * remove their permit files, and the most permit files one pass
 * removes, so that a pass holds d->lock only briefly.
 */
#define KD_PRUNE_INTERVAL 10
#define KD_PRUNE_BATCH 256

/* daemon.c: loading, DPR appends, policy reloads and clean-up. */
int kd_daemon_load(struct kd_daemon *d, const char *config_path,
		   struct kh_err *err);
void kd_daemon_unload(struct kd_daemon *d);
int kd_daemon_append(struct kd_daemon *d, const char *type,
		     const json_t *fields, uint64_t *seq,
		     char hash[KH_HASH_HEX_LEN + 1], struct kh_err *err);
int kd_daemon_reload(struct kd_daemon *d, struct kh_err *err);
struct kh_backend *kd_daemon_backend(struct kd_daemon *d, const char *name);
void kd_daemon_backend_env(const struct kh_config *config,
			   const struct kh_fed_key *fed_key,
			   struct kh_backend_env *env);
int kd_daemon_load_fed_key(const struct kh_config *config,
			   struct kh_fed_key **out, struct kh_err *err);
int kd_daemon_load_key(const char *config_key, const char *path,
		       struct kh_key **out, struct kh_err *err);
void kd_daemon_prune_locked(struct kd_daemon *d, int64_t now);
void kd_daemon_queue_ended(struct kd_daemon *d, const char *jti);
void kd_daemon_retire_permit_locked(struct kd_daemon *d, uid_t uid,
				    const char *jti, const char *why);
int kd_daemon_check_scope(const struct kh_config *config,
			  const struct kh_policy *policy, struct kh_err *err);
int kd_daemon_check_keys_differ(const struct kh_config *config,
				const struct kh_key *permit_key,
				const struct kh_key *audit_key,
				struct kh_err *err);

/*
 * check.c: --check-config, and the check that every grant names a
 * configured backend. kd_check_grant_backends reports one message per
 * grant secret whose backend is not in config->backends and returns
 * how many it reported.
 */
int kd_check_grant_backends(const struct kh_config *config,
			    const struct kh_policy *policy,
			    kh_err_report_fn report, void *ctx);
int kd_daemon_check_config(const char *config_path);

/*
 * A session id: 128 random bits as 22 base64url characters, the format
 * of a jti (kh_permit_new_jti writes both).
 */
#define KD_SESSION_ID_LEN KH_JTI_LEN

/*
 * issued.c: jti -> owner, expiry, action type and session of unexpired
 * permits.
 */
enum kd_action_kind { KD_ACTION_EXEC = 0, KD_ACTION_TOOL_CALL = 1 };

struct kd_issued_entry {
	uid_t uid;
	int64_t exp;
	enum kd_action_kind kind;
	char sid[KD_SESSION_ID_LEN + 1];  /* "" for a permit of no session */
};

int kd_issued_new(struct kd_issued **out);
void kd_issued_free(struct kd_issued *issued);
/* sid is the permit's session id, or NULL when it has none. */
int kd_issued_add(struct kd_issued *issued, const char *jti, uid_t uid,
		  int64_t exp, enum kd_action_kind kind, const char *sid);
void kd_issued_remove(struct kd_issued *issued, const char *jti);
int kd_issued_find(const struct kd_issued *issued, const char *jti,
		   struct kd_issued_entry *out);
typedef void (*kd_issued_fn)(const char *jti,
			     const struct kd_issued_entry *entry, void *ctx);
size_t kd_issued_prune(struct kd_issued *issued, int64_t now, size_t max,
		       kd_issued_fn fn, void *ctx);
/* Calls fn for every entry; fn must not add or remove entries. */
void kd_issued_foreach(const struct kd_issued *issued, kd_issued_fn fn,
		       void *ctx);
int kd_issued_replay(struct kd_issued *issued, struct kh_ledger *ledger,
		     const char *audit_dir, int64_t now, struct kh_err *err);

/*
 * reasons.c: each caller's last denial reason per path. The table keeps
 * KD_REASON_SLOTS entries and evicts the oldest; longer paths are not
 * stored.
 */
#define KD_REASON_SLOTS 1024
#define KD_REASON_PATH_MAX 256
int kd_reasons_new(struct kd_reasons **out);
void kd_reasons_free(struct kd_reasons *reasons);
void kd_reasons_set(struct kd_reasons *reasons, uid_t uid, const char *path,
		    const char *reason);
int kd_reasons_get(struct kd_reasons *reasons, uid_t uid, const char *path,
		   char out[KD_REASON_MAX]);

/* log.c: daemon logging to stderr or syslog. */
enum kd_log_target { KD_LOG_STDERR = 0, KD_LOG_SYSLOG = 1 };

/* Denials logged per (uid, topic) in each window, and the window in s. */
#define KD_DENIAL_BURST 5
#define KD_DENIAL_WINDOW 10

/*
 * Decides whether a denial for (uid, topic) may be logged at now, and
 * stores in *flushed how many lines the window that just closed
 * suppressed.
 */
bool kd_log_denial_allowed(uid_t uid, const char *topic, time_t now,
			   unsigned long *flushed);

void kd_log_open(enum kd_log_target target, bool debug);
void kd_log_close(void);
void kd_log(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kd_log_denial(uid_t uid, const char *topic, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* permits_dir.c: the permits directory and the files in it. */
int kd_permits_dir_open(const char *path, struct kd_permits_dir *out,
			struct kh_err *err);
void kd_permits_dir_close(struct kd_permits_dir *dir);
int kd_permits_dir_write(const struct kd_permits_dir *dir, uid_t uid,
			 gid_t gid, const char *jti, const char *token,
			 struct kh_err *err);
int kd_permits_dir_stat(const struct kd_permits_dir *dir, uid_t uid,
			const char *jti, struct stat *st);
int kd_permits_dir_unlink(const struct kd_permits_dir *dir, uid_t uid,
			  const char *jti);
int kd_permits_dir_prepare(const struct kd_permits_dir *dir, uid_t uid,
			   gid_t gid, struct kh_err *err);

/*
 * Decides whether the permit file permits_dir/<uid>/<jti> may still be
 * used. kd_permits_dir_sweep removes every file for which it is false.
 */
typedef bool (*kd_permit_live_fn)(uid_t uid, const char *jti, void *ctx);
int kd_permits_dir_sweep(const struct kd_permits_dir *dir,
			 kd_permit_live_fn live, void *ctx, size_t *removed);
int kd_mkdir_parents(const char *path, mode_t mode, struct kh_err *err);

/* proc.c: the kernel's view of a calling process. */
struct kd_proc {
	pid_t tgid;
	int pidfd;
	int dirfd;                 /* O_DIRECTORY on /proc/<tgid> */
	unsigned long long start;  /* start time in clock ticks since boot */
};

typedef int (*kd_proc_fd_fn)(int fd, const struct stat *st, void *ctx);

int kd_proc_tgid(pid_t tid, pid_t *tgid);

/*
 * Reads the small file name under dirfd (AT_FDCWD for an absolute
 * name) into buf, NUL-terminated, cut at size - 1 bytes. Returns the
 * length or -errno.
 */
ssize_t kd_proc_read_file(int dirfd, const char *name, char *buf,
			  size_t size);

/*
 * Reads the parent pid (field 4; ppid may be NULL) and the start time
 * (field 22, clock ticks since boot) from the stat file under dirfd, a
 * /proc/<pid> directory. Returns 0, -ESRCH when the process is gone,
 * -EINVAL for a line that does not parse, or another -errno.
 */
int kd_proc_read_stat(int dirfd, pid_t *ppid, unsigned long long *start);
int kd_proc_open(pid_t tgid, struct kd_proc *out);
void kd_proc_close(struct kd_proc *proc);
int kd_proc_still_same(const struct kd_proc *proc);
int kd_proc_scan_fds(const struct kd_proc *proc, dev_t want_dev,
		     dev_t skip_dev, kd_proc_fd_fn fn, void *ctx);
int kd_proc_same_userns(const struct kd_proc *proc);
int kd_proc_getfd(const struct kd_proc *proc, int target_fd);
void kd_proc_exe(pid_t pid, char *buf, size_t size);

/* broker.c: the unix socket server. */
int kd_broker_listen(struct kd_daemon *d, struct kh_err *err);
int kd_broker_start(struct kd_daemon *d, struct kh_err *err);
void kd_broker_stop(struct kd_daemon *d);

/* mint.c: the socket operations request, revoke and status. */
struct kd_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int pidfd;  /* the peer process, held against pid reuse; -1 if none */
	gid_t *groups;  /* supplementary groups from SO_PEERGROUPS, or NULL */
	size_t group_count;
};

/* admin_group.c: the group whose members may revoke any permit. */
int kd_admin_group_resolve(const char *name, gid_t *gid, struct kh_err *err);
int kd_admin_group_refresh(struct kd_daemon *d, struct kh_err *err);
int kd_peer_groups_read(int fd, gid_t **groups, size_t *count);
bool kd_admin_group_member_locked(const struct kd_daemon *d,
				  const struct kd_peer *peer);

/*
 * notify.c: the systemd notification protocol (sd_notify). Each call is
 * a no-op when NOTIFY_SOCKET is unset.
 */
void kd_notify_ready(const struct kd_daemon *d);
void kd_notify_reloading(void);
void kd_notify_stopping(const char *reason);

json_t *kd_mint_request(struct kd_daemon *d, const struct kd_peer *peer,
			const json_t *action);
json_t *kd_mint_revoke(struct kd_daemon *d, const struct kd_peer *peer,
		       const char *jti, const char *reason);
int kd_mint_revoke_locked(struct kd_daemon *d, const char *jti,
			  const struct kd_issued_entry *entry, uid_t by,
			  const char *reason, uint64_t *seq);
json_t *kd_mint_status(struct kd_daemon *d);
json_t *kd_reply_error(const char *error, const char *reason);

/*
 * session.c: login sessions that pam_keyhole.so registers, and which
 * processes belong to them. A process belongs to session S when S has
 * an audit session id and /proc/<pid>/sessionid equals it, or, when S
 * has none, when its parent chain reaches S's leader (pid and start
 * time). Not thread-safe: callers hold d->lock.
 */
#define KD_SESSIONS_PER_UID 64
#define KD_SESSIONS_MAX 1024
/* /proc/<pid>/sessionid of a process that no login has tagged. */
#define KD_AUDIT_SESSION_UNSET 4294967295u
/* Ancestors read per process, itself included. */
#define KD_LINEAGE_MAX 256
/* Longest PAM service name and tty, in bytes. */
#define KD_SESSION_FIELD_MAX 64

struct kd_session_info {
	char id[KD_SESSION_ID_LEN + 1];
	uid_t uid;
	pid_t leader;
	unsigned long long leader_start;  /* clock ticks since boot */
	uint32_t audit_session;           /* KD_AUDIT_SESSION_UNSET if none */
	char service[KD_SESSION_FIELD_MAX + 1];
	char tty[KD_SESSION_FIELD_MAX + 1];
};

/* A process and its ancestors as /proc showed them, the process first. */
struct kd_lineage {
	bool known;        /* false when the chain could not be read */
	uint32_t audit_session;
	size_t depth;
	struct {
		pid_t pid;
		unsigned long long start;
	} chain[KD_LINEAGE_MAX];
};

enum kd_membership {
	KD_MEMBER = 0,
	KD_MEMBER_OTHER,     /* the process is outside the session */
	KD_MEMBER_CLOSED,    /* the session is closed or its leader exited */
	KD_MEMBER_UNKNOWN,   /* the process's lineage could not be read */
};

int kd_sessions_new(struct kd_sessions **out);
void kd_sessions_free(struct kd_sessions *sessions);
int kd_sessions_add(struct kd_sessions *sessions,
		    const struct kd_session_info *info, int pidfd);
void kd_sessions_remove(struct kd_sessions *sessions, const char *id);
const struct kd_session_info *kd_sessions_find(
	const struct kd_sessions *sessions, const char *id);
size_t kd_sessions_ended(const struct kd_sessions *sessions,
			 char (*out)[KD_SESSION_ID_LEN + 1], size_t max);
size_t kd_sessions_count(const struct kd_sessions *sessions, uid_t uid);
const char *kd_sessions_of(const struct kd_sessions *sessions,
			   const struct kd_lineage *lineage, uid_t uid);
enum kd_membership kd_sessions_check(const struct kd_sessions *sessions,
				     const char *id, uid_t uid,
				     const struct kd_lineage *lineage);
int kd_lineage_read(pid_t pid, int dirfd, struct kd_lineage *out);
uint32_t kd_lineage_audit_session(int dirfd);

/* session_ops.c: the session_open and session_close operations. */
json_t *kd_session_open(struct kd_daemon *d, const struct kd_peer *peer,
			const json_t *req);
json_t *kd_session_close(struct kd_daemon *d, const struct kd_peer *peer,
			 const json_t *req);
json_t *kd_session_deny(const struct kd_peer *peer, const char *op);
void kd_session_reap_locked(struct kd_daemon *d);
int kd_session_restore(struct kd_daemon *d, struct kh_err *err);

/* fs.c: the FUSE mount. */
int kd_fs_mount(struct kd_daemon *d, struct kh_err *err);
int kd_fs_loop(struct kd_daemon *d);
void kd_fs_stop(struct kd_daemon *d);
void kd_fs_unmount(struct kd_daemon *d);

/* fs_access.c: the open() check and the open secret handles. */
struct kd_handle {
	struct kh_secret *secret;
	struct kd_proc opener;
};

int kd_access_open(struct kd_daemon *d, const char *path, uid_t uid,
		   pid_t tid, struct kd_handle **out);
int kd_access_read(struct kd_daemon *d, struct kd_handle *handle,
		   const char *path, uid_t uid, pid_t tid);
void kd_access_release(struct kd_handle *handle);

#endif
