/*
 * The Decision Provenance Record log: an append-only JSON Lines file
 * audit_dir/dpr.jsonl. Each line is canonical JSON with v, seq, time,
 * type, the type's fields, prev, hash = SHA-256(JCS(record without hash
 * and sig)), kid and sig = base64url(Ed25519(hash as 64 hex ASCII
 * bytes)) made with the audit key. seq starts at 1; the first record's
 * prev is 64 zeros.
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

struct kh_dpr;

/*
 * Opens (creating when absent, mode 0600, dir 0700) the log in dir.
 * A torn final line (no newline, or not a valid record) is cut off and
 * a "repair" record with the cut byte count is appended. The chain of
 * the remaining records is checked against key; a broken chain fails
 * with -EBADMSG (keyholed refuses to start rather than extend it).
 * When ledger is non-NULL the log is replayed into it: decision records
 * with effect "permit" (note_mint), access records with outcome
 * "granted" (note_use) and revoke records (note_revoke).
 */
int kh_dpr_open(const char *dir, const struct kh_key *key,
		struct kh_ledger *ledger, struct kh_dpr **out,
		struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Appends one record of type with fields (borrowed object; must not
 * contain v, seq, time, type, prev, hash, kid, sig). Returns only after
 * write and fdatasync have completed; on any failure nothing counts as
 * logged and the caller must deny. Thread-safe. seq_out and hash_out
 * may be NULL.
 */
int kh_dpr_append(struct kh_dpr *dpr, const char *type, const json_t *fields,
		  uint64_t *seq_out, char hash_out[KH_HASH_HEX_LEN + 1],
		  struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Archives policy as dir/policies/<hP>.json (canonical, written once,
 * fsync'd) so that auditors can replay decisions against it.
 */
int kh_dpr_archive_policy(struct kh_dpr *dpr, const struct kh_policy *policy,
			  struct kh_err *err)
	__attribute__((warn_unused_result));

/* Closes the file; does not append a "stop" record (callers do). */
void kh_dpr_close(struct kh_dpr *dpr);

/*
 * Offline verification against a pinned public key: every line is
 * canonical JSON, seq increases by one, prev links, hash recomputes,
 * kid matches and sig verifies. Returns 0 when the whole log verifies,
 * 1 when a record is bad (bad_seq names the first bad seq, or the line
 * number when the seq cannot be read, and err says why), or -errno.
 */
struct kh_dpr_report {
	uint64_t records;
	uint64_t bad_seq;
	uint64_t bad_line;
};

int kh_dpr_verify(const char *dir, const struct kh_key *key,
		  struct kh_dpr_report *report, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Calls fn for every record in order (parsed, owned by the callee only
 * for the call). Stops and returns fn's value when it is non-zero.
 */
typedef int (*kh_dpr_visit_fn)(const json_t *record, void *ctx);
int kh_dpr_foreach(const char *dir, kh_dpr_visit_fn fn, void *ctx,
		   struct kh_err *err)
	__attribute__((warn_unused_result));

#endif
