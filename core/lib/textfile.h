/* Bounded reads of small text files (config, policy), internal to libkeyhole. */
#ifndef KEYHOLE_TEXTFILE_H
#define KEYHOLE_TEXTFILE_H

#include <stddef.h>

#include "keyhole/error.h"

/*
 * Reads the regular file at path, of at most max bytes, into a
 * NUL-terminated malloc'd buffer. what names the file's role ("config",
 * "policy") in messages, which start with the path. Returns 0, -ENOENT,
 * -EINVAL (not a regular file), -EFBIG (over max), -ENOMEM or another
 * -errno; on failure *text is NULL.
 */
int kh_textfile_read(const char *path, size_t max, const char *what,
		     char **text, size_t *len, struct kh_err *err)
	__attribute__((warn_unused_result));

/*
 * Reads size bytes from fd, which the caller opened and checked, into a
 * NUL-terminated malloc'd buffer, with messages as kh_textfile_read
 * gives them. The caller closes fd.
 */
int kh_textfile_read_fd(int fd, const char *path, size_t size,
			const char *what, char **text, size_t *len,
			struct kh_err *err)
	__attribute__((warn_unused_result));

#endif
