/*
 * The file backend module (kh_backend_file.so): each secret is a regular
 * file in one root-only directory, by default /etc/keyhole/credstore
 * (the layout of systemd's credstore). The directory is opened once at
 * configure time and every secret is opened relative to that fd, so
 * renaming or replacing the directory path later cannot redirect
 * fetches. Like every module, it reaches keyhole only through the host
 * table it receives in configure.
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

#include "keyhole/backend_module.h"
#include "keyhole/config.h"

struct file_state {
	const struct kh_backend_host *host;
	int dirfd;
	char dir[PATH_MAX];
};

/* Joins a relative path onto base_dir and copies an absolute one as is. */
static int resolve_dir(const struct kh_backend_host *host, const char *value,
		       const char *base_dir, char *out, size_t size,
		       struct kh_err *err)
{
	int n;

	if (value[0] == '/' || !base_dir)
		n = snprintf(out, size, "%s", value);
	else
		n = snprintf(out, size, "%s/%s", base_dir, value);
	if (n < 0 || (size_t)n >= size) {
		host->err_set(err, "$.dir: path \"%s\" is too long", value);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Reads {"type":"file","dir":...} and rejects every other key. */
static int parse_conf(const struct kh_backend_host *host, const json_t *conf,
		      const char *base_dir, char *dir, size_t size,
		      struct kh_err *err)
{
	const char *key;
	const json_t *value;
	const char *dir_value = KH_CREDSTORE_DEFAULT;

	if (!json_is_object(conf)) {
		host->err_set(err, "$: expected a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)conf, key, value) {
		if (strcmp(key, "type") == 0)
			continue;
		if (strcmp(key, "dir") != 0) {
			host->err_set(err, "$.%s: unknown key; the file backend "
					"takes only \"type\" and \"dir\"", key);
			return -EINVAL;
		}
		if (!json_is_string(value) ||
		    json_string_length(value) == 0 ||
		    strlen(json_string_value(value)) !=
			    json_string_length(value)) {
			host->err_set(err, "$.dir: expected a non-empty path "
					"string");
			return -EINVAL;
		}
		dir_value = json_string_value(value);
	}
	return resolve_dir(host, dir_value, base_dir, dir, size, err);
}

/*
 * Rejects a directory that someone other than root or us could write
 * to or read from: a writable store lets them plant secrets, a readable
 * one lets them read secrets without a permit.
 */
static int check_dir_fd(const struct kh_backend_host *host, int fd,
			const char *dir, struct kh_err *err)
{
	struct stat st;
	uid_t euid = geteuid();

	if (fstat(fd, &st) < 0) {
		int r = -errno;

		host->err_set(err, "$.dir: cannot stat %s: %s", dir, strerror(-r));
		return r;
	}
	if (st.st_uid != 0 && st.st_uid != euid) {
		host->err_set(err, "$.dir: %s is owned by uid %u; run "
				"\"chown root %s\"",
			   dir, (unsigned)st.st_uid, dir);
		return -EPERM;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		host->err_set(err, "$.dir: %s has mode %04o, which lets group or "
				"others in; run \"chmod 0700 %s\"",
			   dir, (unsigned)(st.st_mode & 07777), dir);
		return -EPERM;
	}
	return 0;
}

static int file_configure(const struct kh_backend_host *host,
			  const json_t *conf, const char *base_dir,
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
	fs->host = host;
	fs->dirfd = -1;

	r = parse_conf(host, conf, base_dir, fs->dir, sizeof(fs->dir), err);
	if (r < 0)
		goto out;

	fs->dirfd = open(fs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->dirfd < 0) {
		r = -errno;
		if (r == -ENOENT)
			host->err_set(err, "$.dir: %s does not exist; create it "
					"with \"install -d -m 0700 %s\"",
				   fs->dir, fs->dir);
		else
			host->err_set(err, "$.dir: cannot open directory %s: %s",
				   fs->dir, strerror(-r));
		goto out;
	}
	r = check_dir_fd(host, fs->dirfd, fs->dir, err);
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
	const struct kh_backend_host *host = fs->host;
	int fd;
	int r;

	/* closedir closes the fd it was given, so the stream gets a copy. */
	fd = openat(fs->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		host->err_set(err, "cannot list %s: %s", fs->dir, strerror(-r));
		return r;
	}
	*out = fdopendir(fd);
	if (!*out) {
		r = -errno;
		close(fd);
		host->err_set(err, "cannot list %s: %s", fs->dir, strerror(-r));
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
		/* A '#' would read as "<name>#<field>", so such files are hidden. */
		if (entry->d_name[0] == '.' || strchr(entry->d_name, '#'))
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
		fs->host->err_set(err, "cannot read directory %s: %s",
				  fs->dir, strerror(-r));
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
static int check_name(const struct kh_backend_host *host, const char *name,
		      struct kh_err *err)
{
	if (!name || name[0] == '\0' || strchr(name, '/') ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		host->err_set(err, "secret name \"%s\" is invalid; use a single "
				"file name without '/'",
			   name ? name : "(null)");
		return -EINVAL;
	}
	if (strlen(name) > NAME_MAX) {
		host->err_set(err, "secret name is longer than %d bytes",
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
	const struct kh_backend_host *host = fs->host;
	int fd;
	int r;

	/* O_NONBLOCK: a FIFO planted in the store must not hang the open. */
	fd = openat(fs->dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			host->err_set(err, "%s: secret \"%s\" is not in %s",
				      "not found", name, fs->dir);
		else if (r == -ELOOP)
			host->err_set(err, "secret \"%s\" in %s is a symbolic "
					"link; replace it with a regular file",
				   name, fs->dir);
		else
			host->err_set(err, "cannot open secret \"%s\" in %s: %s",
				   name, fs->dir, strerror(-r));
		return r;
	}
	if (fstat(fd, st) < 0) {
		r = -errno;
		host->err_set(err, "cannot stat secret \"%s\" in %s: %s", name,
			   fs->dir, strerror(-r));
		close(fd);
		return r;
	}
	if (!S_ISREG(st->st_mode)) {
		host->err_set(err, "secret \"%s\" in %s is not a regular file",
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
	const struct kh_backend_host *host;
	struct kh_secret *secret = NULL;
	struct stat st;
	int fd = -1;
	int r;

	(void)ctx;
	if (!fs || !out)
		return -EINVAL;
	*out = NULL;
	host = fs->host;

	r = check_name(host, name, err);
	if (r < 0)
		return r;
	fd = open_secret(fs, name, &st, err);
	if (fd < 0)
		return fd;

	if (st.st_size > KH_SECRET_MAX) {
		host->err_set(err, "secret \"%s\" in %s is %lld bytes, above "
				   "the limit of %d bytes",
			      name, fs->dir, (long long)st.st_size,
			      KH_SECRET_MAX);
		r = -EFBIG;
		goto out;
	}
	r = host->secret_new((size_t)st.st_size, &secret);
	if (r < 0)
		goto out;

	/* Read with pread into sodium_malloc memory: no stdio buffer copy. */
	r = read_exact(fd, secret->data, secret->len);
	if (r == -EAGAIN) {
		host->err_set(err, "secret \"%s\" in %s shrank while being "
				   "read; retry once it is fully written",
			      name, fs->dir);
		goto out;
	}
	if (r < 0) {
		host->err_set(err, "cannot read secret \"%s\" in %s: %s", name,
			      fs->dir, strerror(-r));
		goto out;
	}
	/* Advice only: the kernel may keep the pages cached regardless. */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);

	*out = secret;
	secret = NULL;
out:
	host->secret_free(secret);
	close(fd);
	return r;
}

/* Appends one {"check", "result"} step to a test report. */
static int add_step(json_t *report, const char *check, const char *result)
{
	return json_array_append_new(report, json_pack("{s:s, s:s}", "check",
						       check, "result",
						       result)) < 0 ?
		       -ENOMEM :
		       0;
}

/* The file backend has no remote side: this rechecks the directory. */
static int file_test(void *state, json_t *report, struct kh_err *err)
{
	struct file_state *fs = state;
	int fd;
	int r;

	if (!fs || !report)
		return -EINVAL;
	fd = openat(fs->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		fs->host->err_set(err, "cannot read directory %s: %s",
				  fs->dir, strerror(-r));
		(void)add_step(report, "store directory is readable",
			       "failed");
		return r;
	}
	r = check_dir_fd(fs->host, fd, fs->dir, err);
	close(fd);
	if (r < 0) {
		(void)add_step(report, "store directory owner and mode",
			       "failed");
		return r;
	}
	return add_step(report, "store directory owner and mode",
			"ok: owned by root or keyholed, mode 0700 or "
			"stricter");
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

const struct kh_backend_module kh_backend_module = {
	.abi_version = KH_BACKEND_ABI_VERSION,
	.type = "file",
	.flags = 0,
	.configure = file_configure,
	.list = file_list,
	.fetch = file_fetch,
	.test = file_test,
	.teardown = file_teardown,
};
