/*
 * The secrets mount: a read-only FUSE file system with one directory per
 * backend and one empty-looking file per secret, "/<backend>/<name>".
 * "/<backend>/<name>#<field>" opens one field of a JSON secret; it is
 * not listed but resolves whenever <name> is listed.
 * Reading a file needs a permit, which open() checks (fs_access.c).
 *
 * keyholed mounts with mount(2) through libfuse and unmounts on stop.
 * tests/integration/unit_sandbox.sh checks that it executes nothing,
 * so no fusermount3 either.
 *
 * Mounted with default_permissions and allow_other, so the kernel
 * applies the 0444/0555 modes and keyhole applies its own check in
 * open(). Every timeout is 0 and every open uses direct_io, so the
 * kernel caches neither names, attributes nor secret bytes.
 */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon.h"

#define REASON_XATTR "user.keyhole.reason"

#define MOUNT_OPTIONS                                                     \
	"default_permissions,allow_other,ro,noexec,nosuid,nodev,"         \
	"fsname=keyhole,subtype=keyhole"

/* Maximum length of a backend or secret name, in bytes. */
#define NAME_MAX_LEN 255

enum node_kind { NODE_NONE, NODE_ROOT, NODE_BACKEND, NODE_SECRET };

struct node {
	enum node_kind kind;
	struct kh_backend *backend;
	char name[NAME_MAX_LEN + 1];
};

static struct kd_daemon *daemon_of(void)
{
	return fuse_get_context()->private_data;
}

/*
 * Requests from pid 0 come from outside this pid namespace or from the
 * kernel itself, so there is no process whose permits could be checked.
 */
static bool caller_unknown(void)
{
	return fuse_get_context()->pid == 0;
}

/*
 * Returns whether backend lists name. "<name>#<field>" resolves when
 * <name> is listed, although listings show base names only: whether
 * the field exists is known only once the secret is fetched.
 */
static bool backend_has(struct kh_backend *backend, const char *name)
{
	struct kh_err err = { { 0 } };
	json_t *names = NULL, *value;
	char base[NAME_MAX_LEN + 1];
	const char *field;
	bool found = false;
	size_t i;

	if (kh_backend_split_field(name, base, sizeof(base), &field) < 0)
		return false;
	if (kh_backend_list(backend, &names, &err) < 0) {
		kd_log(LOG_WARNING, "backend %s: cannot list secrets: %s",
		       backend->name, err.msg);
		return false;
	}
	json_array_foreach(names, i, value) {
		const char *s = json_string_value(value);

		if (s && strcmp(s, base) == 0) {
			found = true;
			break;
		}
	}
	json_decref(names);
	return found;
}

/* Resolves "/", "/<backend>" or "/<backend>/<name>". */
static int resolve(struct kd_daemon *d, const char *path, struct node *node)
{
	char backend[NAME_MAX_LEN + 1];
	const char *rest, *slash;
	size_t len;

	memset(node, 0, sizeof(*node));
	if (strcmp(path, "/") == 0) {
		node->kind = NODE_ROOT;
		return 0;
	}
	rest = path + 1;
	slash = strchr(rest, '/');
	len = slash ? (size_t)(slash - rest) : strlen(rest);
	if (len == 0 || len > NAME_MAX_LEN)
		return -ENOENT;
	memcpy(backend, rest, len);
	backend[len] = '\0';
	node->backend = kd_daemon_backend(d, backend);
	if (!node->backend)
		return -ENOENT;
	if (!slash) {
		node->kind = NODE_BACKEND;
		return 0;
	}
	rest = slash + 1;
	len = strlen(rest);
	if (len == 0 || len > NAME_MAX_LEN || strchr(rest, '/'))
		return -ENOENT;
	memcpy(node->name, rest, len + 1);
	if (!backend_has(node->backend, node->name))
		return -ENOENT;
	node->kind = NODE_SECRET;
	return 0;
}

static void fill_stat(const struct kd_daemon *d, enum node_kind kind,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_uid = 0;
	st->st_gid = 0;
	st->st_atime = st->st_mtime = st->st_ctime = d->started;
	if (kind == NODE_SECRET) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = 0;
	} else {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	}
}

static int fs_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	struct kd_daemon *d = daemon_of();
	struct node node;
	int r;

	(void)fi;
	if (caller_unknown())
		return -EACCES;
	r = resolve(d, path, &node);
	if (r < 0)
		return r;
	fill_stat(d, node.kind, st);
	return 0;
}

static int list_backend(struct kh_backend *backend, void *buf,
			fuse_fill_dir_t filler)
{
	struct kh_err err = { { 0 } };
	json_t *names = NULL, *value;
	size_t i;

	if (kh_backend_list(backend, &names, &err) < 0) {
		kd_log(LOG_WARNING, "backend %s: cannot list secrets: %s",
		       backend->name, err.msg);
		return -EIO;
	}
	json_array_foreach(names, i, value) {
		const char *s = json_string_value(value);

		if (s && *s && !strchr(s, '/') && strlen(s) <= NAME_MAX_LEN)
			(void)filler(buf, s, NULL, 0, 0);
	}
	json_decref(names);
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t offset, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct kd_daemon *d = daemon_of();
	struct node node;
	int r;

	(void)offset;
	(void)fi;
	(void)flags;
	if (caller_unknown())
		return -EACCES;
	r = resolve(d, path, &node);
	if (r < 0)
		return r;
	if (node.kind == NODE_SECRET)
		return -ENOTDIR;
	(void)filler(buf, ".", NULL, 0, 0);
	(void)filler(buf, "..", NULL, 0, 0);
	if (node.kind == NODE_BACKEND)
		return list_backend(node.backend, buf, filler);
	for (size_t i = 0; i < d->backend_count; i++)
		(void)filler(buf, d->backends[i]->name, NULL, 0, 0);
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct fuse_context *ctx = fuse_get_context();
	struct kd_daemon *d = daemon_of();
	struct kd_handle *handle = NULL;
	struct node node;
	int r;

	if (caller_unknown())
		return -EACCES;
	r = resolve(d, path, &node);
	if (r < 0)
		return r;
	if (node.kind != NODE_SECRET)
		return -EISDIR;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	r = kd_access_open(d, path, ctx->uid, ctx->pid, &handle);
	if (r < 0)
		return r;
	fi->fh = (uint64_t)(uintptr_t)handle;
	/* Reads bypass the page cache, so the secret stays in our buffer. */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	return 0;
}

static int fs_read(const char *path, char *buf, size_t size, off_t offset,
		   struct fuse_file_info *fi)
{
	struct fuse_context *ctx = fuse_get_context();
	struct kd_handle *handle = (struct kd_handle *)(uintptr_t)fi->fh;
	size_t len;
	int r;

	if (caller_unknown() || !handle)
		return -EACCES;
	r = kd_access_read(daemon_of(), handle, path, ctx->uid, ctx->pid);
	if (r < 0)
		return r;
	len = handle->secret->len;
	if (offset < 0 || (size_t)offset >= len)
		return 0;
	if (size > len - (size_t)offset)
		size = len - (size_t)offset;
	memcpy(buf, handle->secret->data + offset, size);
	return (int)size;
}

/* Runs for every close, including ones the kernel sends with pid 0. */
static int fs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	kd_access_release((struct kd_handle *)(uintptr_t)fi->fh);
	fi->fh = 0;
	return 0;
}

static int fs_getxattr(const char *path, const char *name, char *value,
		       size_t size)
{
	struct fuse_context *ctx = fuse_get_context();
	char reason[KD_REASON_MAX];
	size_t len;
	int r;

	if (caller_unknown())
		return -EACCES;
	if (strcmp(name, REASON_XATTR) != 0)
		return -ENODATA;
	r = kd_reasons_get(daemon_of()->reasons, ctx->uid, path, reason);
	if (r < 0)
		return r;
	len = strlen(reason);
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(value, reason, len);
	return (int)len;
}

static int fs_listxattr(const char *path, char *list, size_t size)
{
	struct fuse_context *ctx = fuse_get_context();
	char reason[KD_REASON_MAX];

	if (caller_unknown())
		return -EACCES;
	if (kd_reasons_get(daemon_of()->reasons, ctx->uid, path, reason) < 0)
		return 0;
	if (size == 0)
		return (int)sizeof(REASON_XATTR);
	if (size < sizeof(REASON_XATTR))
		return -ERANGE;
	memcpy(list, REASON_XATTR, sizeof(REASON_XATTR));
	return (int)sizeof(REASON_XATTR);
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->kernel_cache = 0;
	cfg->direct_io = 1;
	cfg->use_ino = 0;
	return fuse_get_context()->private_data;
}

static const struct fuse_operations fs_ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
};

/*
 * Makes the mount point usable: creates it (0755) when missing and
 * detaches a dead keyhole mount left by a killed daemon, which would
 * otherwise fail every access with ENOTCONN.
 */
static int prepare_mountpoint(const char *path, struct kh_err *err)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	if (errno == ENOTCONN) {
		kd_log(LOG_WARNING, "detaching the dead FUSE mount left at %s",
		       path);
		if (umount2(path, MNT_DETACH) < 0) {
			int e = errno;

			kh_err_set(err, "cannot unmount the dead mount at %s: "
				   "%s", path, strerror(e));
			return -e;
		}
		return 0;
	}
	if (errno != ENOENT) {
		int e = errno;

		kh_err_set(err, "cannot use secrets_mount %s: %s", path,
			   strerror(e));
		return -e;
	}
	return kd_mkdir_parents(path, 0755, err);
}

/* Reads the mount's st_dev without sending a request to ourselves. */
static int read_mount_dev(const char *path, dev_t *dev)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_INO, &stx) < 0)
		return -errno;
	*dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	return 0;
}

/*
 * Returns whether CAP_SYS_ADMIN is in the effective set. libfuse calls
 * mount(2) itself, and on EPERM runs the setuid fusermount3 instead.
 * keyholed must not depend on a setuid helper (the unit sets
 * NoNewPrivileges=yes), so a missing capability fails here with the
 * reason. NOTE: an EPERM from elsewhere, such as an LSM, would still
 * reach libfuse's fallback.
 */
static bool can_mount(void)
{
	struct __user_cap_header_struct header = {
		.version = _LINUX_CAPABILITY_VERSION_3,
		.pid = 0,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &header, data) < 0)
		return false;
	return (data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &
		CAP_TO_MASK(CAP_SYS_ADMIN)) != 0;
}

int kd_fs_mount(struct kd_daemon *d, struct kh_err *err)
{
	char *argv[] = { "keyholed", "-o", MOUNT_OPTIONS, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	const char *mountpoint = d->config->secrets_mount;
	int r;

	if (!can_mount()) {
		kh_err_set(err, "cannot mount FUSE at %s: keyholed needs "
			   "CAP_SYS_ADMIN to call mount(2) itself (run it as "
			   "root, and keep CAP_SYS_ADMIN in the unit's "
			   "CapabilityBoundingSet)", mountpoint);
		return -EPERM;
	}
	r = prepare_mountpoint(mountpoint, err);
	if (r < 0)
		return r;
	d->fuse = fuse_new(&args, &fs_ops, sizeof(fs_ops), d);
	fuse_opt_free_args(&args);
	if (!d->fuse) {
		kh_err_set(err, "cannot create the FUSE session (see the "
			   "libfuse message above)");
		return -EIO;
	}
	if (fuse_mount(d->fuse, mountpoint) != 0) {
		kh_err_set(err, "cannot mount FUSE at %s: is /dev/fuse "
			   "available and keyholed running as root?",
			   mountpoint);
		fuse_destroy(d->fuse);
		d->fuse = NULL;
		return -EIO;
	}
	d->mounted = true;
	r = read_mount_dev(mountpoint, &d->mount_dev);
	if (r < 0) {
		kh_err_set(err, "cannot stat the mount %s: %s", mountpoint,
			   strerror(-r));
		return r;
	}
	return 0;
}

/* Serves requests on worker threads until kd_fs_stop. */
int kd_fs_loop(struct kd_daemon *d)
{
	struct fuse_loop_config config = {
		.clone_fd = 0,
		.max_idle_threads = 10,
	};

	return fuse_loop_mt(d->fuse, &config);
}

/*
 * Asks kd_fs_loop to end. fuse_exit only sets a flag that the loop
 * tests when it wakes, so the caller then interrupts the thread running
 * the loop (see keyholed.c). The daemon must never wake the loop with a
 * request on its own mount, because libfuse cancels workers when the
 * loop ends. A request of ours that a cancelled worker had already read
 * would never get a reply, and the daemon could not exit.
 */
void kd_fs_stop(struct kd_daemon *d)
{
	if (d->fuse)
		fuse_exit(d->fuse);
}

void kd_fs_unmount(struct kd_daemon *d)
{
	if (!d->fuse)
		return;
	if (d->mounted)
		fuse_unmount(d->fuse);
	d->mounted = false;
	fuse_destroy(d->fuse);
	d->fuse = NULL;
}
