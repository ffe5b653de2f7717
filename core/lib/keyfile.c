/*
 * Reading and writing key files with the checks every keyhole key file
 * gets, shared by the Ed25519 permit keys and the federation keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfile.h"
#include "keyhole/canon.h"

int kh_keyfile_check_private(const struct stat *st, struct kh_err *err)
{
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		kh_err_set(err, "private key file has mode %04o; it must not "
				"be accessible by group or others (chmod 600)",
			   (unsigned int)(st->st_mode & 07777));
		return -EPERM;
	}
	if (st->st_uid != geteuid() && st->st_uid != 0) {
		kh_err_set(err, "private key file is owned by uid %u; it must "
				"be owned by uid %u or root",
			   (unsigned int)st->st_uid, (unsigned int)geteuid());
		return -EPERM;
	}
	return 0;
}

/* Reads fd into buf (max + 1 bytes), so that a file over max is detected. */
static int read_all(int fd, char *buf, size_t max, const char *what,
		    size_t *len, struct kh_err *err)
{
	ssize_t n = 0;
	int rc;

	*len = 0;
	while (*len < max + 1) {
		n = read(fd, buf + *len, max + 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	if (n < 0) {
		rc = -errno;
		kh_err_set(err, "read failed: %s", strerror(-rc));
		return rc;
	}
	if (*len > max) {
		kh_err_set(err, "file is larger than %zu bytes; not %s", max,
			   what);
		return -EFBIG;
	}
	return 0;
}

int kh_keyfile_read(const char *path, size_t max, bool is_private,
		    const char *what, char **text, size_t *len,
		    struct stat *st, struct kh_err *err)
{
	int fd;
	int rc;

	*text = NULL;
	*len = 0;
	if (sodium_init() < 0) {
		kh_err_set(err, "libsodium failed to initialise");
		return -EIO;
	}
	*text = sodium_malloc(max + 1);
	if (!*text) {
		kh_err_set(err, "out of memory");
		return -ENOMEM;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		kh_err_set(err, "cannot open: %s", strerror(-rc));
		return rc;
	}
	if (fstat(fd, st) < 0) {
		rc = -errno;
		kh_err_set(err, "cannot stat: %s", strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		kh_err_set(err, "not a regular file");
		rc = -EINVAL;
		goto out;
	}
	rc = is_private ? kh_keyfile_check_private(st, err) : 0;
	if (rc == 0)
		rc = read_all(fd, *text, max, what, len, err);
out:
	close(fd);
	return rc;
}

int kh_keyfile_write(const char *path, const char *data, size_t len,
		     mode_t mode, struct kh_err *err)
{
	size_t done = 0;
	int fd;
	int rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  mode);
	if (fd < 0) {
		rc = -errno;
		kh_err_set(err, "%s: cannot create: %s", path, strerror(-rc));
		return rc;
	}
	/* The umask must not narrow the mode: a web server reads public files. */
	if (fchmod(fd, mode) < 0) {
		rc = -errno;
		goto out;
	}
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		done += (size_t)n;
	}
	if (fsync(fd) < 0)
		rc = -errno;
out:
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		kh_err_set(err, "%s: write failed: %s", path, strerror(-rc));
		(void)unlink(path);
	}
	return rc;
}

int kh_keyfile_write_jwk(const char *path, const json_t *jwk,
			 struct kh_err *err)
{
	char *text = NULL;
	char *line = NULL;
	size_t len = 0;
	int rc;

	rc = kh_canon_dump(jwk, &text, &len, err);
	if (rc < 0)
		goto out;
	line = malloc(len + 1);
	if (!line) {
		kh_err_set(err, "out of memory building the public JWK");
		rc = -ENOMEM;
		goto out;
	}
	memcpy(line, text, len);
	line[len] = '\n';
	rc = kh_keyfile_write(path, line, len + 1, 0644, err);
out:
	free(line);
	free(text);
	return rc;
}
