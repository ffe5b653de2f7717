/*
 * The file backend: each secret is a regular file in one root-only
 * directory, by default /etc/keyhole/credstore (the layout of systemd's
 * credstore). The directory is opened once at configure time and every
 * secret is opened relative to that fd, so renaming or replacing the
 * directory path later cannot redirect fetches.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyhole/backend.h"
#include "keyhole/config.h"

struct file_state {
	int dirfd;
	char dir[PATH_MAX];
};

/* Joins a relative path onto base_dir and copies an absolute one as is. */
static int resolve_dir(const char *value, const char *base_dir, char *out,
		       size_t size, struct kh_err *err)
{
	int n;

	if (value[0] == '/' || !base_dir)
		n = snprintf(out, size, "%s", value);
	else
		n = snprintf(out, size, "%s/%s", base_dir, value);
	if (n < 0 || (size_t)n >= size) {
		kh_err_set(err, "$.dir: path \"%s\" is too long", value);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Reads {"type":"file","dir":...} and rejects every other key. */
static int parse_conf(const json_t *conf, const char *base_dir, char *dir,
		      size_t size, struct kh_err *err)
{
	const char *key;
	const json_t *value;
	const char *dir_value = KH_CREDSTORE_DEFAULT;

	if (!json_is_object(conf)) {
		kh_err_set(err, "$: expected a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)conf, key, value) {
		if (strcmp(key, "type") == 0)
			continue;
		if (strcmp(key, "dir") != 0) {
			kh_err_set(err, "$.%s: unknown key; the file backend "
					"takes only \"type\" and \"dir\"", key);
			return -EINVAL;
		}
		if (!json_is_string(value) ||
		    json_string_length(value) == 0 ||
		    strlen(json_string_value(value)) !=
			    json_string_length(value)) {
			kh_err_set(err, "$.dir: expected a non-empty path "
					"string");
			return -EINVAL;
		}
		dir_value = json_string_value(value);
	}
	return resolve_dir(dir_value, base_dir, dir, size, err);
}

/*
 * Rejects a directory that someone other than root or us could write
 * to or read from: a writable store lets them plant secrets, a readable
 * one lets them read secrets without a permit.
 */
static int check_dir_fd(int fd, const char *dir, struct kh_err *err)
{
	struct stat st;
	uid_t euid = geteuid();

	if (fstat(fd, &st) < 0) {
		int r = -errno;

		kh_err_set(err, "$.dir: cannot stat %s: %s", dir, strerror(-r));
		return r;
	}
	if (st.st_uid != 0 && st.st_uid != euid) {
		kh_err_set(err, "$.dir: %s is owned by uid %u; run "
				"\"chown root %s\"",
			   dir, (unsigned)st.st_uid, dir);
		return -EPERM;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		kh_err_set(err, "$.dir: %s has mode %04o, which lets group or "
				"others in; run \"chmod 0700 %s\"",
			   dir, (unsigned)(st.st_mode & 07777), dir);
		return -EPERM;
	}
	return 0;
}

static int file_configure(const json_t *conf, const char *base_dir,
			  void **state, struct kh_err *err)
{
	struct file_state *fs = NULL;
	int r;

	if (!state)
		return -EINVAL;
	*state = NULL;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->dirfd = -1;

	r = parse_conf(conf, base_dir, fs->dir, sizeof(fs->dir), err);
	if (r < 0)
		goto out;

	fs->dirfd = open(fs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->dirfd < 0) {
		r = -errno;
		if (r == -ENOENT)
			kh_err_set(err, "$.dir: %s does not exist; create it "
					"with \"install -d -m 0700 %s\"",
				   fs->dir, fs->dir);
		else
			kh_err_set(err, "$.dir: cannot open directory %s: %s",
				   fs->dir, strerror(-r));
		goto out;
	}
	r = check_dir_fd(fs->dirfd, fs->dir, err);
	if (r < 0)
		goto out;

	*state = fs;
	fs = NULL;
out:
	if (fs && fs->dirfd >= 0)
		close(fs->dirfd);
	free(fs);
	return r;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Replaces *array by a copy with its strings in byte order. */
static int sort_names(json_t **array)
{
	size_t count = json_array_size(*array);
	const char **names = NULL;
	json_t *sorted = NULL;
	int r = -ENOMEM;

	names = calloc(count ? count : 1, sizeof(*names));
	sorted = json_array();
	if (!names || !sorted)
		goto out;
	for (size_t i = 0; i < count; i++)
		names[i] = json_string_value(json_array_get(*array, i));
	qsort(names, count, sizeof(*names), compare_names);
	for (size_t i = 0; i < count; i++) {
		if (json_array_append_new(sorted, json_string(names[i])) < 0)
			goto out;
	}
	json_decref(*array);
	*array = sorted;
	sorted = NULL;
	r = 0;
out:
	json_decref(sorted);
	free(names);
	return r;
}

/* Opens a fresh directory stream on fs->dir for one listing. */
static int open_listing(const struct file_state *fs, DIR **out,
			struct kh_err *err)
{
	int fd;
	int r;

	/* closedir closes the fd it was given, so the stream gets a copy. */
	fd = openat(fs->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		kh_err_set(err, "cannot list %s: %s", fs->dir, strerror(-r));
		return r;
	}
	*out = fdopendir(fd);
	if (!*out) {
		r = -errno;
		close(fd);
		kh_err_set(err, "cannot list %s: %s", fs->dir, strerror(-r));
		return r;
	}
	return 0;
}

/* Names the regular, non-hidden files of the directory, sorted. */
static int file_list(void *state, json_t **names, struct kh_err *err)
{
	struct file_state *fs = state;
	json_t *array = NULL;
	DIR *d = NULL;
	struct stat st;
	int r;

	if (!fs || !names)
		return -EINVAL;
	*names = NULL;

	r = open_listing(fs, &d, err);
	if (r < 0)
		return r;
	array = json_array();
	if (!array) {
		r = -ENOMEM;
		goto out;
	}

	for (;;) {
		const struct dirent *entry;

		errno = 0;
		entry = readdir(d);
		if (!entry)
			break;
		if (entry->d_name[0] == '.')
			continue;
		if (fstatat(fs->dirfd, entry->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (json_array_append_new(array,
					  json_string(entry->d_name)) < 0) {
			r = -ENOMEM;
			goto out;
		}
	}
	if (errno) {
		r = -errno;
		kh_err_set(err, "cannot read directory %s: %s", fs->dir,
			   strerror(-r));
		goto out;
	}
	r = sort_names(&array);
	if (r < 0)
		goto out;

	*names = array;
	array = NULL;
out:
	json_decref(array);
	closedir(d);
	return r;
}

/* A secret name must be one path component, so it cannot leave the dir. */
static int check_name(const char *name, struct kh_err *err)
{
	if (!name || name[0] == '\0' || strchr(name, '/') ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		kh_err_set(err, "secret name \"%s\" is invalid; use a single "
				"file name without '/'",
			   name ? name : "(null)");
		return -EINVAL;
	}
	if (strlen(name) > NAME_MAX) {
		kh_err_set(err, "secret name is longer than %d bytes",
			   NAME_MAX);
		return -ENAMETOOLONG;
	}
	return 0;
}

/*
 * Opens one secret file and returns its fd, or -errno. Only a regular
 * file reached without following a symlink is accepted.
 */
static int open_secret(const struct file_state *fs, const char *name,
		       struct stat *st, struct kh_err *err)
{
	int fd;
	int r;

	/* O_NONBLOCK: a FIFO planted in the store must not hang the open. */
	fd = openat(fs->dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			kh_err_set(err, "secret \"%s\" not found in %s", name,
				   fs->dir);
		else if (r == -ELOOP)
			kh_err_set(err, "secret \"%s\" in %s is a symbolic "
					"link; replace it with a regular file",
				   name, fs->dir);
		else
			kh_err_set(err, "cannot open secret \"%s\" in %s: %s",
				   name, fs->dir, strerror(-r));
		return r;
	}
	if (fstat(fd, st) < 0) {
		r = -errno;
		kh_err_set(err, "cannot stat secret \"%s\" in %s: %s", name,
			   fs->dir, strerror(-r));
		close(fd);
		return r;
	}
	if (!S_ISREG(st->st_mode)) {
		kh_err_set(err, "secret \"%s\" in %s is not a regular file",
			   name, fs->dir);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* Reads exactly len bytes at offset 0 with pread, straight into buf. */
static int read_exact(int fd, unsigned char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EAGAIN;
		done += (size_t)n;
	}
	return 0;
}

static int file_fetch(void *state, const char *name,
		      const struct kh_fetch_ctx *ctx, struct kh_secret **out,
		      struct kh_err *err)
{
	struct file_state *fs = state;
	struct kh_secret *secret = NULL;
	struct stat st;
	int fd = -1;
	int r;

	(void)ctx;
	if (!fs || !out)
		return -EINVAL;
	*out = NULL;

	r = check_name(name, err);
	if (r < 0)
		return r;
	fd = open_secret(fs, name, &st, err);
	if (fd < 0)
		return fd;

	if (st.st_size > KH_SECRET_MAX) {
		kh_err_set(err, "secret \"%s\" in %s is %lld bytes, above the "
				"limit of %d bytes",
			   name, fs->dir, (long long)st.st_size, KH_SECRET_MAX);
		r = -EFBIG;
		goto out;
	}
	r = kh_secret_new((size_t)st.st_size, &secret);
	if (r < 0)
		goto out;

	/* Read with pread into sodium_malloc memory: no stdio buffer copy. */
	r = read_exact(fd, secret->data, secret->len);
	if (r == -EAGAIN) {
		kh_err_set(err, "secret \"%s\" in %s shrank while being read; "
				"retry once it is fully written",
			   name, fs->dir);
		goto out;
	}
	if (r < 0) {
		kh_err_set(err, "cannot read secret \"%s\" in %s: %s", name,
			   fs->dir, strerror(-r));
		goto out;
	}
	/* Advice only: the kernel may keep the pages cached regardless. */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);

	*out = secret;
	secret = NULL;
out:
	kh_secret_free(secret);
	close(fd);
	return r;
}

/* The file backend has no remote side: this rechecks the directory. */
static int file_test(void *state, struct kh_err *err)
{
	struct file_state *fs = state;
	int fd;
	int r;

	if (!fs)
		return -EINVAL;
	fd = openat(fs->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		kh_err_set(err, "cannot read directory %s: %s", fs->dir,
			   strerror(-r));
		return r;
	}
	r = check_dir_fd(fd, fs->dir, err);
	close(fd);
	return r;
}

static void file_teardown(void *state)
{
	struct file_state *fs = state;

	if (!fs)
		return;
	if (fs->dirfd >= 0)
		close(fs->dirfd);
	free(fs);
}

const struct kh_backend_ops kh_backend_file = {
	.type = "file",
	.configure = file_configure,
	.list = file_list,
	.fetch = file_fetch,
	.test = file_test,
	.teardown = file_teardown,
};
