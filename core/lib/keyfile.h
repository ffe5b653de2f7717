/*
 * Key files as key.c (Ed25519 JWK) and fed_key.c (PKCS#8 PEM) store
 * them: created once with O_EXCL and exactly their mode, and read only
 * when they are regular files. A private key is read only when no other
 * user can reach it. Internal to libkeyhole.
 */
#ifndef KEYHOLE_KEYFILE_H
#define KEYHOLE_KEYFILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "keyhole/error.h"

/*
 * Checks who may read a private key file: a key that group or others can
 * read may already be copied, and a key owned by another user (neither
 * the euid nor root) may be replaced by that user. Returns 0 or -EPERM.
 */
int kh_keyfile_check_private(const struct stat *st, struct kh_err *err);

/*
 * Reads the regular file at path, of at most max bytes, into *text, a
 * new sodium_malloc buffer of max + 1 bytes that the caller releases
 * with sodium_free (which wipes it), on failure too. With is_private
 * the kh_keyfile_check_private rules apply before any byte is read.
 * what names the content in the size error ("a JWK"). Fills *st for
 * checks the caller makes after parsing. Messages do not name path,
 * because the caller prefixes it.
 */
int kh_keyfile_read(const char *path, size_t max, bool is_private,
		    const char *what, char **text, size_t *len,
		    struct stat *st, struct kh_err *err);

/*
 * Creates path with O_EXCL and exactly mode (fchmod, so the umask cannot
 * narrow it), writes data and fsyncs it. O_EXCL keeps an existing key or
 * a planted symbolic link from being overwritten. A file this call
 * created is removed again on failure.
 */
int kh_keyfile_write(const char *path, const char *data, size_t len,
		     mode_t mode, struct kh_err *err);

/*
 * Writes a public JWK to a new file at path, mode 0644, as one line of
 * RFC 8785 canonical JSON followed by a newline.
 */
int kh_keyfile_write_jwk(const char *path, const json_t *jwk,
			 struct kh_err *err);

#endif
