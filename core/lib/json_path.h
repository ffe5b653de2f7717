/*
 * JSON paths such as $.rules[2].id for error messages, shared by the
 * canonical serialiser (canon.c) and the strict parser (json_strict.c).
 * Internal to libkeyhole.
 */
#ifndef KEYHOLE_JSON_PATH_H
#define KEYHOLE_JSON_PATH_H

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

#endif
