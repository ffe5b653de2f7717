/*
 * JSON paths such as $.rules[2].id for error messages, shared by the
 * canonical serialiser (canon.c), the strict parser (json_strict.c) and
 * the policy and config checks (policy.c, config.c), which also look up
 * the line a path starts on. Internal to libkeyhole.
 */
#ifndef KEYHOLE_JSON_PATH_H
#define KEYHOLE_JSON_PATH_H

#include <jansson.h>
#include <stddef.h>

/*
 * A path being built from the root down. Running out of memory is not
 * reported: the path then stays "$", because an error message without
 * its path is still better than no message.
 */
struct kh_json_path {
	char *data;
	size_t len;
	size_t cap;
	int failed;
};

/* Starts a path at the root, "$". */
void kh_json_path_init(struct kh_json_path *path);

/* Appends an array index: "[3]". */
void kh_json_path_index(struct kh_json_path *path, size_t index);

/*
 * Appends a member name given as UTF-8: ".name" when it is an
 * identifier, otherwise ["any key"] with '"', '\\' and control
 * characters escaped. Long names are cut to their first 64 bytes.
 */
void kh_json_path_key(struct kh_json_path *path, const char *key,
		      size_t len);

/*
 * Appends a member name as written between the quotes of JSON source
 * text, so escapes such as \u00e9 are kept as they are.
 */
void kh_json_path_key_source(struct kh_json_path *path, const char *key,
			     size_t len);

/*
 * Returns the path for a message. A path longer than 200 bytes keeps
 * its start and its end around "...". Never NULL.
 */
const char *kh_json_path_text(struct kh_json_path *path);

void kh_json_path_free(struct kh_json_path *path);

/*
 * One step of a JSON path held as data rather than text: a member name,
 * or an array index when key is NULL. Parsers that check a document
 * after jansson has loaded it keep their position as an array of steps.
 */
struct kh_json_step {
	const char *key;
	size_t index;
};

/*
 * Writes the path of steps ("$.rules[2].id", with kh_json_path_key
 * quoting) into buf of size bytes, cut to fit. buf is "$" for depth 0.
 */
void kh_json_path_format(const struct kh_json_step *steps, size_t depth,
			 char *buf, size_t size);

/*
 * Returns the 1-based line in text (len bytes, already accepted by
 * kh_json_parse) where the value at steps starts, or 0 when the path is
 * not in the text. jansson keeps no positions per value, so the text is
 * scanned again, tracking only strings and nesting.
 */
unsigned kh_json_path_line(const char *text, size_t len,
			   const struct kh_json_step *steps, size_t depth);

/* Names the JSON type of value for messages: "an object", "a number". */
const char *kh_json_type_name(const json_t *value);

/*
 * Bytes of s to quote in an error message ("%.*s"): at most 64, cut
 * only between UTF-8 characters, so that a long hostile value cannot
 * fill the message.
 */
int kh_quote_length(const char *s);

#endif
