/*
 * The permits directory: permits_dir (root, 0755) holds one directory
 * per agent uid (owned by the agent, 0700) and in it one file per
 * permit (owned by the agent, 0400, named by its jti).
 *
 * Every path below permits_dir is resolved from an fd with O_NOFOLLOW,
 * because the agent owns its <uid> directory and could plant links in
 * it. The root-owned parent keeps the agent from renaming or replacing
 * the <uid> directory itself.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"

/*
 * Creates one directory with mode exactly, whatever the umask (the
 * systemd unit sets UMask=0077), because agents must reach the socket
 * and their permits. An existing directory is left as it is.
 */
static int make_dir(const char *path, mode_t mode, struct kh_err *err)
{
	int e;

	if (mkdir(path, mode) == 0) {
		if (chmod(path, mode) == 0)
			return 0;
	} else if (errno == EEXIST) {
		return 0;
	}
	e = errno;
	kh_err_set(err, "cannot create directory %s: %s", path, strerror(e));
	return -e;
}

/* Creates path and any missing parents with mode; existing ones stay. */
int kd_mkdir_parents(const char *path, mode_t mode, struct kh_err *err)
{
	char buf[PATH_MAX];
	int n, r;

	n = snprintf(buf, sizeof(buf), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(buf) || buf[0] != '/') {
		kh_err_set(err, "invalid directory %s: use an absolute path "
			   "shorter than %d bytes", path, PATH_MAX);
		return -EINVAL;
	}
	for (char *p = buf + 1;; p++) {
		bool last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		r = make_dir(buf, mode, err);
		if (r < 0)
			return r;
		if (last)
			break;
		*p = '/';
	}
	return 0;
}

int kd_permits_dir_open(const char *path, struct kd_permits_dir *out,
			struct kh_err *err)
{
	struct stat st;
	int fd = -1, r;

	out->fd = -1;
	out->dev = 0;
	r = kd_mkdir_parents(path, 0755, err);
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		kh_err_set(err, "cannot open permits_dir %s: %s", path,
			   strerror(-r));
		goto out;
	}
	/* Agents must not be able to create or rename each other's dirs. */
	if (st.st_uid != geteuid() || (st.st_mode & 0022) != 0) {
		r = -EPERM;
		kh_err_set(err, "permits_dir %s is owned by uid %u with mode "
			   "%04o: it must be owned by uid %u and not writable "
			   "by group or others (chown root and chmod 0755)",
			   path, (unsigned int)st.st_uid,
			   (unsigned int)(st.st_mode & 07777),
			   (unsigned int)geteuid());
		goto out;
	}
	out->fd = fd;
	out->dev = st.st_dev;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

void kd_permits_dir_close(struct kd_permits_dir *dir)
{
	if (dir->fd >= 0)
		close(dir->fd);
	dir->fd = -1;
}

/*
 * Opens permits_dir/<uid>, creating it for the agent when missing.
 * Refuses a directory that is a symlink, owned by someone else or open
 * to group or others, since permits in it would leak or be swapped.
 */
static int open_user_dir(const struct kd_permits_dir *dir, uid_t uid,
			 gid_t gid, struct kh_err *err)
{
	char name[16];
	struct stat st;
	bool created = false;
	int fd = -1, r;

	(void)snprintf(name, sizeof(name), "%u", (unsigned int)uid);
	if (mkdirat(dir->fd, name, 0700) == 0)
		created = true;
	else if (errno != EEXIST)
		goto fail;
	fd = openat(dir->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				       O_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (created && fchown(fd, uid, gid) < 0)
		goto fail;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (st.st_uid != uid || (st.st_mode & 07777) != 0700) {
		kh_err_set(err, "permits directory for uid %s is owned by "
			   "uid %u with mode %04o, expected uid %u and 0700: "
			   "remove it so that keyholed recreates it",
			   name, (unsigned int)st.st_uid,
			   (unsigned int)(st.st_mode & 07777),
			   (unsigned int)uid);
		close(fd);
		return -EPERM;
	}
	return fd;
fail:
	r = -errno;
	kh_err_set(err, "cannot open permits directory for uid %u: %s",
		   (unsigned int)uid, strerror(-r));
	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * Creates permits_dir/<uid> for the agent when missing, with the same
 * owner, mode and checks as the first permit would, so that the
 * session_open reply can name the directory before any permit exists.
 */
int kd_permits_dir_prepare(const struct kd_permits_dir *dir, uid_t uid,
			   gid_t gid, struct kh_err *err)
{
	int fd = open_user_dir(dir, uid, gid, err);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Writes token to permits_dir/<uid>/<jti>, created with its final mode
 * 0400 and owner (O_EXCL, so an existing file or link is never reused)
 * and fsync'd before returning. A partial file is removed on failure.
 */
int kd_permits_dir_write(const struct kd_permits_dir *dir, uid_t uid,
			 gid_t gid, const char *jti, const char *token,
			 struct kh_err *err)
{
	int dirfd, fd = -1, r;
	bool created = false;

	if (!kh_permit_jti_is_valid(jti)) {
		kh_err_set(err, "invalid jti for a permit file name");
		return -EINVAL;
	}
	dirfd = open_user_dir(dir, uid, gid, err);
	if (dirfd < 0)
		return dirfd;
	fd = openat(dirfd, jti, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
					O_CLOEXEC, 0400);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	created = true;
	if (fchown(fd, uid, gid) < 0) {
		r = -errno;
		goto fail;
	}
	r = write_all(fd, token, strlen(token));
	if (r == 0)
		r = write_all(fd, "\n", 1);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0)
		goto fail;
	close(fd);
	(void)fsync(dirfd);
	close(dirfd);
	return 0;
fail:
	kh_err_set(err, "cannot write permit file %u/%s in permits_dir: %s",
		   (unsigned int)uid, jti, strerror(-r));
	if (fd >= 0)
		close(fd);
	if (created)
		(void)unlinkat(dirfd, jti, 0);
	close(dirfd);
	return r;
}

/* lstat of permits_dir/<uid>/<jti>, without following any link. */
int kd_permits_dir_stat(const struct kd_permits_dir *dir, uid_t uid,
			const char *jti, struct stat *st)
{
	char name[16];
	int dirfd, r = 0;

	memset(st, 0, sizeof(*st));
	if (!kh_permit_jti_is_valid(jti))
		return -EINVAL;
	(void)snprintf(name, sizeof(name), "%u", (unsigned int)uid);
	dirfd = openat(dir->fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW |
				      O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	if (fstatat(dirfd, jti, st, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	close(dirfd);
	return r;
}

int kd_permits_dir_unlink(const struct kd_permits_dir *dir, uid_t uid,
			  const char *jti)
{
	char name[16];
	int dirfd, r = 0;

	if (!kh_permit_jti_is_valid(jti))
		return -EINVAL;
	(void)snprintf(name, sizeof(name), "%u", (unsigned int)uid);
	dirfd = openat(dir->fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW |
				      O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	if (unlinkat(dirfd, jti, 0) < 0)
		r = -errno;
	close(dirfd);
	return r;
}

/* Parses a <uid> directory name; false for anything else. */
static bool parse_uid(const char *name, uid_t *uid)
{
	unsigned long value;
	char *end;

	if (name[0] < '0' || name[0] > '9')
		return false;
	errno = 0;
	value = strtoul(name, &end, 10);
	if (errno != 0 || *end != '\0' || value >= (unsigned long)(uid_t)-1)
		return false;
	*uid = (uid_t)value;
	return true;
}

/*
 * Removes the dead permit files in one <uid> directory. Only regular
 * files named like a jti are considered. The agent owns the directory
 * and may swap a file for a link at any time, but unlinkat removes the
 * name itself and never follows it.
 */
static size_t sweep_user_dir(int parent, const char *name, uid_t uid,
			     kd_permit_live_fn live, void *ctx)
{
	struct dirent *entry;
	size_t removed = 0;
	DIR *dir;
	int fd;

	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				      O_CLOEXEC);
	if (fd < 0)
		return 0;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return 0;
	}
	for (entry = readdir(dir); entry; entry = readdir(dir)) {
		struct stat st;

		if (!kh_permit_jti_is_valid(entry->d_name) ||
		    fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || live(uid, entry->d_name, ctx))
			continue;
		if (unlinkat(fd, entry->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}

/*
 * Removes every permit file under dir for which live returns false, and
 * stores how many it removed in *removed. Runs at start-up, before the
 * mount serves anyone, to clear files left by an earlier run.
 */
int kd_permits_dir_sweep(const struct kd_permits_dir *dir,
			 kd_permit_live_fn live, void *ctx, size_t *removed)
{
	struct dirent *entry;
	DIR *top;
	int fd;

	*removed = 0;
	fd = openat(dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	top = fdopendir(fd);
	if (!top) {
		int r = -errno;

		close(fd);
		return r;
	}
	for (entry = readdir(top); entry; entry = readdir(top)) {
		uid_t uid;

		if (parse_uid(entry->d_name, &uid))
			*removed += sweep_user_dir(fd, entry->d_name, uid,
						   live, ctx);
	}
	closedir(top);
	return 0;
}
