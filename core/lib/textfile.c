/* Bounded reads of small text files, shared by the config and policy. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "textfile.h"

static int open_regular(const char *path, size_t max, const char *what,
			struct stat *st, struct kh_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0 || fstat(fd, st) < 0) {
		rc = -errno;
		kh_err_set(err, "%s: cannot open %s: %s; check the path and "
			   "its permissions", path, what, strerror(-rc));
		if (fd >= 0)
			(void)close(fd);
		return rc;
	}
	if (!S_ISREG(st->st_mode) || (size_t)st->st_size > max) {
		kh_err_set(err, "%s: %s must be a regular file of at most %zu "
			   "bytes", path, what, max);
		(void)close(fd);
		return S_ISREG(st->st_mode) ? -EFBIG : -EINVAL;
	}
	return fd;
}

int kh_textfile_read_fd(int fd, const char *path, size_t size,
			const char *what, char **text, size_t *len,
			struct kh_err *err)
{
	char *buf = malloc(size + 1);
	size_t used = 0;

	*text = NULL;
	*len = 0;
	if (!buf) {
		kh_err_set(err, "%s: out of memory", path);
		return -ENOMEM;
	}
	while (used < size) {
		ssize_t n = read(fd, buf + used, size - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int rc = n < 0 ? -errno : -EIO;

			kh_err_set(err, "%s: reading %s failed: %s", path, what,
				   n < 0 ? strerror(-rc) : "file shrank");
			free(buf);
			return rc;
		}
		used += (size_t)n;
	}
	buf[used] = '\0';
	*text = buf;
	*len = used;
	return 0;
}

int kh_textfile_read(const char *path, size_t max, const char *what,
		     char **text, size_t *len, struct kh_err *err)
{
	struct stat st;
	int fd, rc;

	*text = NULL;
	*len = 0;
	fd = open_regular(path, max, what, &st, err);
	if (fd < 0)
		return fd;
	rc = kh_textfile_read_fd(fd, path, (size_t)st.st_size, what, text, len,
				 err);
	(void)close(fd);
	return rc;
}
