/*
 * Service tokens for the backends that need a stored credential
 * (doppler, 1password). The token lives in a root-only file named in
 * keyhole.json and is read into sodium_malloc memory at each fetch,
 * then wiped, so the broker keeps no copy between fetches and a
 * rotated token takes effect without a restart. Shared as static
 * inline functions because each module is built from one .c file.
 */
#ifndef KH_BACKENDS_TOKEN_FILE_H
#define KH_BACKENDS_TOKEN_FILE_H

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyhole/backend_module.h"
#include "http_reply.h"

/*
 * Maximum token file size read, in bytes. It is an estimate with room
 * above Doppler service tokens and 1Password Connect tokens (JWTs).
 */
#define TOKEN_FILE_MAX 4096

/* Resolves value against base_dir into out (PATH_MAX bytes). */
static inline int token_file_path(const struct kh_backend_host *host,
				  const char *value, const char *base_dir,
				  char *out, struct kh_err *err)
{
	int n;

	if (value[0] == '/' || !base_dir)
		n = snprintf(out, PATH_MAX, "%s", value);
	else
		n = snprintf(out, PATH_MAX, "%s/%s", base_dir, value);
	if (n <= 0 || n >= PATH_MAX) {
		host->err_set(err, "$.token_file: path \"%s\" is empty or "
				   "too long", value);
		return -ENAMETOOLONG;
	}
	return 0;
}

/*
 * Opens path and checks that it is a regular file owned by root or the
 * euid with no group or other permission bits. Another user who could
 * read the token could use the service as the broker. One who could
 * write it could point the broker at their own account.
 */
static inline int token_file_open(const struct kh_backend_host *host,
				  const char *path, struct kh_err *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	int r;

	if (fd < 0) {
		r = -errno;
		host->err_set(err, "$.token_file: cannot open %s: %s%s", path,
			      strerror(-r), r == -ELOOP ?
			      "; name the file itself, not a symbolic link" : "");
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		host->err_set(err, "$.token_file: cannot stat %s: %s", path,
			      strerror(-r));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		host->err_set(err, "$.token_file: %s is not a regular file",
			      path);
		r = -EINVAL;
		goto fail;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		host->err_set(err, "$.token_file: %s is owned by uid %u; run "
				   "\"chown root %s\"", path,
			      (unsigned)st.st_uid, path);
		r = -EPERM;
		goto fail;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		host->err_set(err, "$.token_file: %s has mode %04o, which "
				   "lets group or others access the token; "
				   "run \"chmod 600 %s\"", path,
			      (unsigned)(st.st_mode & 07777), path);
		r = -EPERM;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return r;
}

/* Checks the file at configure time, so a bad mode stops the broker. */
static inline int token_file_check(const struct kh_backend_host *host,
				   const char *path, struct kh_err *err)
{
	int fd = token_file_open(host, path, err);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/* Reads the whole file (at most TOKEN_FILE_MAX bytes) into buf. */
static inline ssize_t token_file_slurp(int fd, unsigned char *buf)
{
	size_t len = 0;

	while (len < TOKEN_FILE_MAX) {
		ssize_t n = read(fd, buf + len, TOKEN_FILE_MAX - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return (ssize_t)len;
		len += (size_t)n;
	}
	return -EFBIG;
}

/*
 * Reads the token into a new secret, NUL-terminated past its length,
 * without the trailing newline or spaces an editor leaves. The token
 * must be printable ASCII without spaces, because it goes into an
 * HTTP header.
 */
static inline int token_file_read(const struct kh_backend_host *host,
				  const char *path, struct kh_secret **out,
				  struct kh_err *err)
{
	struct kh_secret *buf = NULL;
	ssize_t n;
	size_t len;
	int fd;
	int r;

	*out = NULL;
	fd = token_file_open(host, path, err);
	if (fd < 0)
		return fd;
	r = host->secret_new(TOKEN_FILE_MAX + 1, &buf);
	if (r < 0)
		goto out;
	n = token_file_slurp(fd, buf->data);
	if (n < 0) {
		r = (int)n;
		host->err_set(err, "$.token_file: cannot read %s: %s", path,
			      r == -EFBIG ? "larger than 4096 bytes" :
			      strerror(-r));
		goto out;
	}
	len = (size_t)n;
	while (len > 0 && (buf->data[len - 1] == '\n' ||
			   buf->data[len - 1] == '\r' ||
			   buf->data[len - 1] == ' '))
		len--;
	for (size_t i = 0; i < len; i++) {
		if (buf->data[i] <= 0x20 || buf->data[i] >= 0x7f) {
			host->err_set(err, "$.token_file: %s contains a byte "
					   "outside printable ASCII at offset "
					   "%zu; store only the token", path, i);
			r = -EINVAL;
			goto out;
		}
	}
	if (len == 0) {
		host->err_set(err, "$.token_file: %s is empty", path);
		r = -EINVAL;
		goto out;
	}
	buf->data[len] = '\0';
	buf->len = len;
	*out = buf;
	buf = NULL;
out:
	host->secret_free(buf);
	close(fd);
	return r;
}


/*
 * Resolves the config's "token_file" against base_dir into out
 * (PATH_MAX bytes) and checks the file at configure time, so that a bad
 * mode stops the broker.
 */
static inline int token_file_conf(const struct kh_backend_host *host,
				  const json_t *conf, const char *base_dir,
				  char *out, struct kh_err *err)
{
	int r = token_file_path(host, conf_string(conf, "token_file", ""),
				base_dir, out, err);

	if (r == 0)
		r = token_file_check(host, out, err);
	return r;
}

/*
 * Reads the token at path and sends GET url with it as the bearer
 * token, as reply_get_json does. The token is wiped before this
 * returns.
 */
static inline int token_file_get_json(const struct kh_backend_host *host,
				      const char *path,
				      const struct kh_http_options *options,
				      const char *url, int64_t deadline,
				      const char *what, json_t **doc,
				      struct kh_err *err)
{
	struct kh_secret *token = NULL;
	int r;

	*doc = NULL;
	r = token_file_read(host, path, &token, err);
	if (r == 0)
		r = reply_get_json(host, options, url, deadline, token, what,
				   doc, err);
	host->secret_free(token);
	return r;
}

/*
 * Appends the steps of a successful token check to a test report:
 * the file's checks, then url with "<ok_text><detail>" as its result.
 */
static inline void token_file_report(json_t *report, const char *url,
				     const char *ok_text, const char *detail)
{
	char result[160];

	result[0] = '\0';
	reply_append(result, sizeof(result), ok_text);
	reply_append(result, sizeof(result), detail);
	(void)reply_report(report, "token_file is root-only", "ok");
	(void)reply_report(report, url, result);
}

#endif
