/*
 * The Decision Provenance Record log: an append-only JSON Lines file
 * audit_dir/dpr.jsonl, one record per line, each line terminated by
 * "\n". Each line is the canonical JSON (JCS) of one object with:
 *   v     KH_DPR_VERSION
 *   seq   1 for the first record, then +1 per record
 *   time  integer unix seconds when the record was appended
 *   type  the record type, followed by that type's own members
 *   prev  the hash of the previous record (64 zeros for seq 1)
 *   kid   the audit key's RFC 7638 thumbprint
 *   hash  SHA-256 hex of the JCS of the record without hash and sig;
 *         every other member, kid included, is covered
 *   sig   base64url without padding of the Ed25519 signature, made with
 *         the audit key, over the 64 ASCII hex digits of hash
 *
 * Record types written by keyholed, with their own members:
 *   decision     effect ("permit"|"deny"), rule ("" for the default
 *                deny), reason, agent {uid,pid,exe}, action, hA, hP, hS,
 *                state (the snapshot hS covers), jti and exp (null for
 *                a deny), amount (budget charged, 0 when none), and
 *                sid only for a permit bound to a login session
 *   access       jti (or null), decision {seq,hash} (or null), backend,
 *                secret "<backend>/<name>", outcome ("granted"|"denied"),
 *                reason, reader {uid,pid}, hP, uses (after this access,
 *                granted only), exp (or null)
 *   revoke       jti, exp, by {uid}, reason
 *   session_open session, uid, leader {pid,start}, audit_session (or
 *                null), service, tty
 *   session_close session, uid, reason ("session closed" or "session
 *                leader exited"), revoked (permits revoked)
 *   policy_load  hP, path, tenant, env
 *   start        broker_id, version, pid
 *   stop         reason
 *   repair       cut_bytes, reason (written by kh_dpr_open itself)
 *   key_rotate   key (the new audit public key as a JWK), signed by the
 *                old key; later records are signed by the new one
 *                (written by kh_dpr_open itself)
 */
#ifndef KEYHOLE_DPR_H
#define KEYHOLE_DPR_H

#include <jansson.h>
#include <stdint.h>

#include "keyhole/canon.h"
#include "keyhole/error.h"
#include "keyhole/key.h"
#include "keyhole/ledger.h"
#include "keyhole/policy.h"

#define KH_DPR_VERSION 1
#define KH_DPR_FILE "dpr.jsonl"

/* Largest record line, in bytes without the newline. */
#define KH_DPR_RECORD_MAX (4 * 1024 * 1024)

struct kh_dpr;

/*
 * Opens (creating when absent, mode 0600, dir 0700) the log in dir and
 * takes an exclusive flock on it (-EBUSY when another process holds
 * it). key is the private audit key; it is borrowed and must outlive
 * the log. A torn final line (no newline, or not JSON at all) is cut
 * off and a "repair" record with the cut byte count is appended. Every
 * other record is checked against key; a bad record anywhere fails with
 * -EBADMSG and err names its seq or line (keyholed refuses to start
 * rather than extend a broken chain). When ledger is non-NULL the log
 * is replayed into it: decision records with effect "permit"
 * (note_mint and note_decision), access records with outcome "granted"
 * (note_use) and revoke records (note_revoke). On failure the ledger
 * may hold part of the log and should be discarded.
 */
int kh_dpr_open(const char *dir, const struct kh_key *key,
		struct kh_ledger *ledger, struct kh_dpr **out,
		struct kh_err *err)
	__attribute__((warn_unused_result));

/* Most retired audit keys that kh_dpr_open_keys takes. */
#define KH_DPR_RETIRED_MAX 16

/*
 * kh_dpr_open for a log that older audit keys may have signed. retired
 * are keys that "keyhole keygen --rotate" replaced (borrowed, needed
 * only during the call). Seq 1 may be signed by key or any of them and
 * later records follow the log's "key_rotate" records. When the log's
 * last key is a retired one, its private half signs a "key_rotate"
 * record that hands the chain over to key, and key signs everything
 * after it. -EKEYREJECTED when that private half is not among retired.
 */
int kh_dpr_open_keys(const char *dir, const struct kh_key *key,
		     const struct kh_key *const *retired, size_t n_retired,
		     struct kh_ledger *ledger, struct kh_dpr **out,
		     struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Appends one record of type (1 to 32 characters from a-z and _) with
 * fields, a borrowed object that must not contain v, seq, time, type,
 * prev, hash, kid or sig. Returns only after write and fdatasync have
 * completed. On any failure nothing counts as logged, so the caller
 * must deny. A failed write or sync is cut back off the file so that
 * the chain stays valid. When that cut fails too, every later append
 * fails with -EIO. Thread-safe. seq_out and hash_out may be NULL.
 */
int kh_dpr_append(struct kh_dpr *dpr, const char *type, const json_t *fields,
		  uint64_t *seq_out, char hash_out[KH_HASH_HEX_LEN + 1],
		  struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Archives policy as dir/policies/<hP>.json (canonical, written through
 * a temporary file, fsync'd and renamed) so that auditors can replay
 * decisions against it. An archive that already contains the same
 * bytes is left alone. Returns -EINVAL when hP is not the SHA-256 of the
 * canonical JSON.
 */
int kh_dpr_archive_policy(struct kh_dpr *dpr, const struct kh_policy *policy,
			  struct kh_err *err)
	__attribute__((warn_unused_result));

/* Closes the file; does not append a "stop" record (callers do). */
void kh_dpr_close(struct kh_dpr *dpr);

/*
 * Offline verification against a pinned public key: every line ends in
 * a newline and is canonical JSON, seq increases by one, prev links,
 * hash recomputes, kid matches and sig verifies. key is the key that
 * signed seq 1; each "key_rotate" record, signed by the key before it,
 * names the key of the records that follow. Returns 0 when the
 * whole log verifies, 1 when a record is bad, or -errno (a missing or
 * unreadable log). For a bad record err gives the reason ("seq 7: hash
 * mismatch", "line 9: not canonical JSON", "seq 8: expected seq 8 but
 * found 9") and the report names it. A torn final line, which
 * kh_dpr_open would cut off, counts as bad here.
 */
struct kh_dpr_report {
	uint64_t records;  /* records that verified before the first bad one */
	uint64_t rotations; /* key_rotate records among them */
	uint64_t bad_seq;  /* seq the bad line should carry: previous + 1 */
	uint64_t bad_line; /* its line number, counted from 1 */
};

int kh_dpr_verify(const char *dir, const struct kh_key *key,
		  struct kh_dpr_report *report, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Outcome of kh_dpr_verify_tail. The seq fields are 0 when no record
 * got that far.
 */
struct kh_dpr_tail_report {
	uint64_t records;   /* records that verified before the first bad one */
	uint64_t first_seq; /* seq of the first record checked */
	uint64_t last_seq;  /* seq of the last record that verified */
	int64_t last_time;  /* its "time", unix seconds */
	uint64_t bad_seq;   /* seq the bad line should carry, 0 if unknown */
	uint64_t bad_offset; /* byte offset of the bad line in the file */
};

/*
 * Verifies only the last count records of the log in dir against a
 * pinned public key, so that a health check stays quick on a large log.
 * It checks canonical form, v, hash, kid and sig of each record, and seq
 * and prev between neighbours. The first record checked is trusted for its own
 * seq and prev, unless it is seq 1, whose prev must be 64 zeros. Run
 * kh_dpr_verify for the whole chain. A final line without a newline is
 * an append in progress and is not checked. Returns 0 when every
 * checked record verifies (also for an empty log), 1 when one is bad
 * (err gives the reason like kh_dpr_verify, but a "line N" in it counts
 * from the first line of the tail), or -errno.
 */
int kh_dpr_verify_tail(const char *dir, const struct kh_key *key,
		       uint64_t count, struct kh_dpr_tail_report *report,
		       struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Verifies the tail like kh_dpr_verify_tail, for a log whose tail may
 * start under an older audit key. The first record checked may be signed
 * by any of keys (the current and the retired public keys). Later
 * records follow the key_rotate records as kh_dpr_verify does.
 */
int kh_dpr_verify_tail_keys(const char *dir,
			    const struct kh_key *const *keys, size_t n_keys,
			    uint64_t count, struct kh_dpr_tail_report *report,
			    struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Calls fn for every record in order (parsed and borrowed for the call)
 * without checking the chain; use kh_dpr_verify for that. A final line
 * without a newline is an append in progress and is skipped. Stops and
 * returns fn's value when it is non-zero; -EBADMSG for a line that is
 * not canonical JSON.
 */
typedef int (*kh_dpr_visit_fn)(const json_t *record, void *ctx);
int kh_dpr_foreach(const char *dir, kh_dpr_visit_fn fn, void *ctx,
		   struct kh_err *err)
	__attribute__((warn_unused_result));

#endif
