/* Strict JSON parsing and RFC 8785 (JCS) canonical serialisation. */
#ifndef KEYHOLE_CANON_H
#define KEYHOLE_CANON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "keyhole/error.h"

/* Length of a SHA-256 digest written as lowercase hex, without the NUL. */
#define KH_HASH_HEX_LEN 64

/* Largest integer magnitude that survives a trip through an IEEE double. */
#define KH_JSON_MAX_SAFE_INT 9007199254740992LL

/*
 * Parses one JSON text strictly: duplicate object keys, invalid UTF-8,
 * lone surrogates, NaN/Infinity, integers beyond +-2^53, nesting deeper
 * than 2048 levels and trailing data are rejected. Any value may be the
 * top level (RFC 8259). Strings may contain U+0000 (use
 * json_string_length), but object keys may not, because jansson 2.14
 * rejects them. On failure returns -EINVAL (or -ENOMEM) and err names
 * the JSON path ("$.rules[2].id" style) and, for syntax errors, the line
 * and column. Apart from member names and a rejected byte, \u escape
 * or integer, err does not repeat input text, so string values such as
 * private key material in a malformed file stay out of logs.
 * On success *out holds a new reference.
 */
int kh_json_parse(const char *text, size_t len, json_t **out,
		  struct kh_err *err)
	__attribute__((warn_unused_result));

/* kh_json_parse on a whole file; err is prefixed with the file name. */
int kh_json_load_file(const char *path, json_t **out, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Validates an in-memory value the way kh_json_parse validates text:
 * finite numbers, integers within +-2^53, valid UTF-8 strings and keys,
 * at most 2048 levels of nesting (which also catches a value that
 * contains itself). err names the path of the first bad value.
 */
int kh_json_check(const json_t *value, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Writes value in RFC 8785 canonical form: object members sorted by
 * UTF-16 code units, ECMAScript number formatting, minimal string
 * escaping, no whitespace. *out is malloc'd, NUL-terminated; *out_len
 * excludes the NUL (out_len may be NULL). Returns -EINVAL for values JCS
 * cannot represent (non-finite, unsafe integer, invalid UTF-8).
 */
int kh_canon_dump(const json_t *value, char **out, size_t *out_len,
		  struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Formats a double the way ECMAScript Number.prototype.toString does
 * (shortest round-trip digits, "1e+21", "1e-7", -0 as "0"). Returns 0,
 * or -EINVAL with buf set to "" for NaN and Infinity.
 */
int kh_canon_number(double value, char buf[32]);

/* SHA-256 of len bytes, as 64 lowercase hex digits plus NUL. */
void kh_hash_bytes(const void *data, size_t len,
		   char hex[KH_HASH_HEX_LEN + 1]);

/* SHA-256 of the canonical form of value, as lowercase hex. */
int kh_hash(const json_t *value, char hex[KH_HASH_HEX_LEN + 1],
	    struct kh_err *err)
	__attribute__((warn_unused_result));

/* True when s is exactly 64 lowercase hex digits. */
int kh_hash_is_valid(const char *s);

#endif
