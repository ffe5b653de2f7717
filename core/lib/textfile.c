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

int kh_textfile_read(const char *path, size_t max, const char *what,
		     char **text, size_t *len, struct kh_err *err)
{
	struct stat st;
	char *buf = NULL;
	size_t used = 0;
	int fd;
	int rc = 0;

	*text = NULL;
	*len = 0;
	fd = open_regular(path, max, what, &st, err);
	if (fd < 0)
		return fd;

	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		kh_err_set(err, "%s: out of memory", path);
		goto out;
	}
	while (used < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + used, (size_t)st.st_size - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			kh_err_set(err, "%s: reading %s failed: %s", path, what,
				   n < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		used += (size_t)n;
	}
	buf[used] = '\0';
	*text = buf;
	*len = used;
	buf = NULL;
out:
	free(buf);
	(void)close(fd);
	return rc;
}
