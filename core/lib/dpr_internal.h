/*
 * Private interface between dpr.c (appending), dpr_verify.c (reading and
 * checking records) and dpr_replay.c (rebuilding the ledger). Not
 * installed and not part of the libkeyhole API.
 */
#ifndef KEYHOLE_DPR_INTERNAL_H
#define KEYHOLE_DPR_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "keyhole/dpr.h"

/*
 * The end of a checked chain: what the next record must link to, and
 * the audit key that must have signed it. That key is the one that
 * signed seq 1, until a "key_rotate" record hands over to a new one.
 */
struct dpr_chain {
	uint64_t seq;                   /* 0 before the first record */
	char hash[KH_HASH_HEX_LEN + 1]; /* 64 '0' before the first record */
	const struct kh_key *base;      /* borrowed: signed seq 1 */
	struct kh_key *handed;          /* owned: from the last key_rotate */
	uint64_t rotations;             /* key_rotate records checked */
};

void kh_dpr_chain_init(struct dpr_chain *chain);

/* Frees the handed-over key and resets chain to its initial state. */
void kh_dpr_chain_free(struct dpr_chain *chain);

/* Frees the handed-over key and clears both key pointers, keeping seq and hash. */
void kh_dpr_chain_free_keys(struct dpr_chain *chain);

/* The key the next record must be signed with; NULL before seq 1. */
const struct kh_key *kh_dpr_chain_key(const struct dpr_chain *chain);

/* A set of audit keys, any of which may have signed seq 1. */
struct dpr_keys {
	const struct kh_key *const *keys;
	size_t count;
};

/* Reads dpr.jsonl one line at a time. */
struct dpr_reader {
	FILE *file;
	char *buf;
	size_t cap;
	uint64_t line;  /* number of the current line, counted from 1 */
	off_t start;    /* byte offset of the current line */
	off_t end;      /* byte offset just past it, newline included */
	bool complete;  /* the current line ends with a newline */
	bool final;     /* nothing follows the current line */
};

/* Opens dirfd/dpr.jsonl for reading (never through a symlink). */
int kh_dpr_reader_open(struct dpr_reader *reader, int dirfd,
		       struct kh_err *err);

/*
 * Reads the next line into reader->buf, without its newline. Returns
 * 1 with *len set, 0 at the end of the file, or -errno.
 */
int kh_dpr_reader_next(struct dpr_reader *reader, size_t *len,
		       struct kh_err *err);

void kh_dpr_reader_close(struct dpr_reader *reader);

/*
 * Parses one line as canonical JSON: kh_json_parse must accept it and
 * kh_canon_dump must give back exactly the same bytes. Returns 0,
 * -EBADMSG with err "line N: ...", or -ENOMEM. *not_json is true for a
 * line that does not parse at all, false for a non-canonical one.
 */
int kh_dpr_parse_line(const char *line, size_t len, uint64_t line_no,
		      json_t **record, bool *not_json, struct kh_err *err);

/*
 * Checks the current line of reader as the record that follows chain:
 * canonical form, v, seq, prev, hash, kid and sig. Seq 1 must be signed
 * by one of keys, and every later record by the chain's key, which a
 * valid "key_rotate" record replaces with the key it carries. On
 * success advances chain and, when record is non-NULL, stores the
 * parsed record there (new reference). Returns -EBADMSG with err
 * "seq N: ..." or "line N: ..." for a bad record. *torn is then true
 * when the line is the final one and has no newline or is not JSON,
 * which is what a crash during an append leaves behind.
 */
int kh_dpr_check_line(const struct dpr_reader *reader, size_t len,
		      const struct dpr_keys *keys, struct dpr_chain *chain,
		      json_t **record, bool *torn, struct kh_err *err);

/*
 * Feeds one checked record into ledger: permit decisions (mint and
 * decision), granted accesses (use) and revocations. Other records and
 * deny decisions change nothing. -EBADMSG when a record of those kinds
 * lacks a field the ledger needs.
 */
int kh_dpr_replay(struct kh_ledger *ledger, const json_t *record,
		  struct kh_err *err);

#endif
