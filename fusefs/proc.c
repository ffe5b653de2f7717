/*
 * The kernel's view of a process that calls into the FUSE mount.
 *
 * A pid alone can be recycled between two reads of /proc. So each check
 * keeps a pidfd and an O_DIRECTORY fd on /proc/<tgid> open while it
 * inspects the process, and kd_proc_still_same() confirms afterwards
 * that the pidfd's process is alive and /proc/<tgid> still shows its
 * start time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "daemon.h"

/* Largest /proc/<pid>/stat or status read, in bytes. */
#define PROC_FILE_MAX 4096

ssize_t kd_proc_read_file(int dirfd, const char *name, char *buf,
			  size_t size)
{
	ssize_t n;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do {
		n = read(fd, buf, size - 1);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		n = -errno;
	else
		buf[n] = '\0';
	close(fd);
	return n;
}

static int parse_pid(const char *text, pid_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || v <= 0 || v > INT_MAX ||
	    (*end != '\0' && *end != '\n'))
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}

/*
 * Resolves the thread-group id of tid from /proc/<tid>/status. The
 * FUSE request carries the calling thread's id, and fd tables belong
 * to the thread group.
 */
int kd_proc_tgid(pid_t tid, pid_t *tgid)
{
	char path[32], buf[PROC_FILE_MAX], field[16];
	const char *line;
	size_t len;
	ssize_t n;

	*tgid = 0;
	(void)snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	n = kd_proc_read_file(AT_FDCWD, path, buf, sizeof(buf));
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	line = strstr(buf, "\nTgid:");
	if (!line)
		return -EINVAL;
	line += strlen("\nTgid:");
	line += strspn(line, " \t");
	len = strcspn(line, "\n");
	if (len == 0 || len >= sizeof(field))
		return -EINVAL;
	memcpy(field, line, len);
	field[len] = '\0';
	return parse_pid(field, tgid);
}

/*
 * comm (field 2) may hold spaces and ")", so the fields are counted
 * after its last ")".
 */
int kd_proc_read_stat(int dirfd, pid_t *ppid, unsigned long long *start)
{
	char buf[PROC_FILE_MAX], *p, *end;
	long parent = -1;
	ssize_t n;

	n = kd_proc_read_file(dirfd, "stat", buf, sizeof(buf));
	if (n < 0)
		return n == -ENOENT ? -ESRCH : (int)n;
	p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	p++;
	for (int field = 3; field <= 22; field++) {
		p += strspn(p, " ");
		if (*p == '\0')
			return -EINVAL;
		errno = 0;
		if (field == 4)
			parent = strtol(p, &end, 10);
		else if (field == 22)
			*start = strtoull(p, &end, 10);
		else
			end = p + strcspn(p, " ");
		if (errno != 0 || end == p)
			return -EINVAL;
		p = end;
	}
	if (parent < 0 || parent > INT_MAX)
		return -EINVAL;
	if (ppid)
		*ppid = (pid_t)parent;
	return 0;
}

int kd_proc_open(pid_t tgid, struct kd_proc *out)
{
	char path[32];
	int r;

	out->tgid = tgid;
	out->start = 0;
	out->dirfd = -1;
	out->pidfd = (int)syscall(SYS_pidfd_open, tgid, 0);
	if (out->pidfd < 0)
		return -errno;
	(void)snprintf(path, sizeof(path), "/proc/%d", (int)tgid);
	out->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (out->dirfd < 0) {
		r = errno == ENOENT ? -ESRCH : -errno;
		goto fail;
	}
	r = kd_proc_read_stat(out->dirfd, NULL, &out->start);
	if (r < 0)
		goto fail;
	return 0;
fail:
	kd_proc_close(out);
	return r;
}

void kd_proc_close(struct kd_proc *proc)
{
	if (proc->pidfd >= 0)
		close(proc->pidfd);
	if (proc->dirfd >= 0)
		close(proc->dirfd);
	proc->pidfd = -1;
	proc->dirfd = -1;
}

/*
 * Returns 0 when the process behind the pidfd is alive and /proc/<tgid>
 * still shows the start time read at kd_proc_open, -ESRCH otherwise.
 * Pid reuse: a new process under the same pid fails one of the two.
 */
int kd_proc_still_same(const struct kd_proc *proc)
{
	unsigned long long start;

	if (syscall(SYS_pidfd_send_signal, proc->pidfd, 0, NULL, 0) < 0) {
		if (errno != ESRCH)
			kd_log(LOG_ERR, "cannot check that pid=%d is alive: "
			       "%m; keyholed needs CAP_KILL to signal other "
			       "uids", (int)proc->tgid);
		return -ESRCH;
	}
	if (kd_proc_read_stat(proc->dirfd, NULL, &start) < 0 ||
	    start != proc->start)
		return -ESRCH;
	return 0;
}

static int parse_fd_name(const char *name)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(name, &end, 10);
	if (errno != 0 || end == name || *end != '\0' || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

/*
 * Calls fn for each fd of the process that refers to a regular file on
 * device want_dev. The stat follows the /proc fd link with
 * AT_STATX_DONT_SYNC so that an fd on the FUSE mount (skip_dev) is
 * never sent back into this daemon as a getattr. This is a cheap
 * pre-filter: fn must confirm the file through its own fd copy.
 * fn returns 0 to go on, a positive value to stop or -errno to fail.
 */
int kd_proc_scan_fds(const struct kd_proc *proc, dev_t want_dev,
		     dev_t skip_dev, kd_proc_fd_fn fn, void *ctx)
{
	struct dirent *entry;
	DIR *dir;
	int fd, r = 0;

	fd = openat(proc->dirfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	dir = fdopendir(fd);
	if (!dir) {
		r = -errno;
		close(fd);
		return r;
	}
	while (r == 0) {
		struct statx stx;
		struct stat st;
		dev_t dev;
		int target;

		errno = 0;
		entry = readdir(dir);
		if (!entry) {
			r = errno ? -errno : 0;
			break;
		}
		target = parse_fd_name(entry->d_name);
		if (target < 0)
			continue;
		if (statx(dirfd(dir), entry->d_name, AT_STATX_DONT_SYNC,
			  STATX_TYPE | STATX_INO, &stx) < 0)
			continue;
		dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
		if ((skip_dev != 0 && dev == skip_dev) || dev != want_dev ||
		    !S_ISREG(stx.stx_mode))
			continue;
		memset(&st, 0, sizeof(st));
		st.st_dev = dev;
		st.st_ino = stx.stx_ino;
		st.st_mode = stx.stx_mode;
		r = fn(target, &st, ctx);
	}
	closedir(dir);
	return r < 0 ? r : 0;
}

/*
 * Returns 1 when the process is in this daemon's user namespace, 0 when
 * it is in another one, or -errno. Namespaces are the same when their
 * nsfs files have the same (dev, ino). The caller's file is opened
 * through the /proc/<tgid> fd, so a recycled pid cannot stand in for it.
 */
int kd_proc_same_userns(const struct kd_proc *proc)
{
	struct stat own, theirs;

	if (stat("/proc/self/ns/user", &own) < 0)
		return -errno;
	if (fstatat(proc->dirfd, "ns/user", &theirs, 0) < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return own.st_dev == theirs.st_dev && own.st_ino == theirs.st_ino;
}

/* Duplicates the process's target_fd into this process (pidfd_getfd). */
int kd_proc_getfd(const struct kd_proc *proc, int target_fd)
{
	int fd = (int)syscall(SYS_pidfd_getfd, proc->pidfd, target_fd, 0);

	return fd < 0 ? -errno : fd;
}

/* readlink(/proc/<pid>/exe) into buf; "" when it cannot be read. */
void kd_proc_exe(pid_t pid, char *buf, size_t size)
{
	char path[32];
	ssize_t n;

	buf[0] = '\0';
	(void)snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, buf, size - 1);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
}
