/*
 * The Landlock half of a confinement profile: a filesystem allowlist
 * and, from Landlock ABI 4, TCP port rules. Called through syscall(2),
 * because Debian 12 has no liblandlock, and its linux-libc-dev (6.1)
 * lacks the ABI 3 and ABI 4 definitions, which are given here.
 *
 * Landlock has no deny rule. A path in filesystem.exclude is removed
 * from an allowed directory by listing that directory when the profile
 * is applied and allowing each entry except the excluded ones, going
 * down only into directories that contain an excluded path. An entry
 * created later directly in such a directory matches no rule, so it is
 * not reachable.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <linux/landlock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "confine_internal.h"

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) /* ABI 3 */
#endif

/* ABI 4 network rights and rule type (linux/landlock.h from 6.7). */
#define NET_BIND_TCP (1ULL << 0)
#define NET_CONNECT_TCP (1ULL << 1)
#define RULE_NET_PORT 2

/* struct landlock_ruleset_attr up to ABI 4; later fields stay zero. */
struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
};

/* struct landlock_net_port_attr (ABI 4). */
struct net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};

/* ABI 1 rights: bits 0 (EXECUTE) to 12 (MAKE_SYM). */
#define FS_ABI1 ((LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1)

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_READ_EXEC (FS_READ | LANDLOCK_ACCESS_FS_EXECUTE)

/*
 * The rights left out of the rule on a directory that has excluded
 * paths below it: reading file contents, and renaming or linking
 * entries (rename needs REMOVE_* on the source directory, link needs
 * MAKE_REG, and both need REFER across directories).
 */
#define DIR_PARTIAL_DENIED                                                 \
	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_EXECUTE |       \
	 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |  \
	 LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_REFER)

/* The rights a rule on a file other than a directory may carry. */
#define FS_FILE_RIGHTS                                                     \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |      \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE)

/*
 * Deepest directory below a rule that the exclude walk enters. Each
 * level is a component of an exclude pattern, so this only stops a
 * pathological profile.
 */
#define WALK_DEPTH_MAX 32

struct ruleset {
	int fd;
	uint64_t handled_fs;
	uint64_t handled_net;
	struct confine_list excludes; /* as written and as resolved */
	struct kh_err *err;
};

int kh_confine_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
			   LANDLOCK_CREATE_RULESET_VERSION);

	return abi > 0 ? (int)abi : 0;
}

static uint64_t handled_fs_for(int abi)
{
	uint64_t handled = FS_ABI1;

	if (abi >= 2)
		handled |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
	return handled;
}

static uint64_t class_access(enum confine_fs_class c, uint64_t handled)
{
	switch (c) {
	case CONFINE_FS_READ_EXEC:
		return FS_READ_EXEC;
	case CONFINE_FS_READ:
		return FS_READ;
	case CONFINE_FS_READ_WRITE:
		return handled;
	default:
		return 0;
	}
}

/*
 * Adds pattern, and the same pattern with its directory resolved when
 * that directory has no wildcard and exists, because the walk compares
 * resolved paths.
 */
static int add_exclude(struct ruleset *rs, const char *pattern)
{
	const char *slash = strrchr(pattern, '/');
	char dir[PATH_MAX];
	char real[PATH_MAX];
	char resolved[PATH_MAX + NAME_MAX + 2];
	int rc = confine_list_add(&rs->excludes, pattern);

	if (rc < 0 || !slash)
		return rc;
	(void)snprintf(dir, sizeof(dir), "%.*s",
		       slash == pattern ? 1 : (int)(slash - pattern), pattern);
	if (strpbrk(dir, "*?[") || !realpath(dir, real))
		return 0;
	if (snprintf(resolved, sizeof(resolved), "%s%s", strcmp(real, "/") ?
		     real : "", slash) >= (int)sizeof(resolved))
		return 0;
	return confine_list_add(&rs->excludes, resolved);
}

static bool is_excluded(const struct ruleset *rs, const char *path)
{
	for (size_t i = 0; i < rs->excludes.count; i++) {
		if (fnmatch(rs->excludes.items[i], path, FNM_PATHNAME) == 0)
			return true;
	}
	return false;
}

/* Tells whether path or one of its parent directories is excluded. */
static bool is_within_excluded(const struct ruleset *rs, const char *path)
{
	char prefix[PATH_MAX];
	size_t len = strlen(path);

	if (is_excluded(rs, path))
		return true;
	if (len >= sizeof(prefix))
		return false;
	memcpy(prefix, path, len + 1);
	for (size_t i = len; i-- > 1;) {
		if (prefix[i] != '/')
			continue;
		prefix[i] = '\0';
		if (is_excluded(rs, prefix))
			return true;
	}
	return false;
}

/* Tells whether pattern can match a path strictly below directory dir. */
static bool pattern_below(const char *pattern, const char *dir)
{
	char prefix[PATH_MAX];
	const char *cut = pattern;
	size_t components = 0;

	if (strcmp(dir, "/") != 0) {
		for (const char *c = dir; *c; c++)
			components += *c == '/';
	}
	for (size_t k = 0; k < components; k++) {
		cut = strchr(cut + 1, '/');
		if (!cut)
			return false;
	}
	if (cut[0] != '/' || cut[1] == '\0')
		return false;
	if (components == 0)
		return true;
	if ((size_t)(cut - pattern) >= sizeof(prefix))
		return false;
	memcpy(prefix, pattern, (size_t)(cut - pattern));
	prefix[cut - pattern] = '\0';
	return fnmatch(prefix, dir, FNM_PATHNAME) == 0;
}

static bool has_exclude_below(const struct ruleset *rs, const char *dir)
{
	for (size_t i = 0; i < rs->excludes.count; i++) {
		if (pattern_below(rs->excludes.items[i], dir))
			return true;
	}
	return false;
}

static int add_path_rule(struct ruleset *rs, int fd, const struct stat *st,
			 uint64_t access, const char *path)
{
	struct landlock_path_beneath_attr attr = { 0 };

	if (!S_ISDIR(st->st_mode))
		access &= FS_FILE_RIGHTS;
	access &= rs->handled_fs;
	if (access == 0)
		return 0;
	attr.allowed_access = access;
	attr.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, rs->fd, LANDLOCK_RULE_PATH_BENEATH,
		    &attr, 0) == 0)
		return 0;
	kh_err_set(rs->err, "landlock: cannot add a rule for %s: %s", path,
		   strerror(errno));
	return -errno;
}

static int add_tree(struct ruleset *rs, int dirfd, const char *name,
		    const char *path, uint64_t access, int depth);

/* Adds a rule for each entry of the directory fd except excluded ones. */
static int add_entries(struct ruleset *rs, int fd, const char *path,
		       uint64_t access, int depth)
{
	char child[PATH_MAX];
	struct dirent *entry;
	DIR *dir;
	int dfd, rc = 0;

	dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dir = dfd < 0 ? NULL : fdopendir(dfd);
	if (!dir) {
		rc = -errno;
		kh_err_set(rs->err, "landlock: cannot list %s to leave out "
			   "excluded paths: %s", path, strerror(-rc));
		if (dfd >= 0)
			(void)close(dfd);
		return rc;
	}
	while (rc == 0 && (errno = 0, entry = readdir(dir)) != NULL) {
		const char *n = entry->d_name;

		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", strcmp(path, "/") ?
			     path : "", n) >= (int)sizeof(child))
			continue;
		if (!is_excluded(rs, child))
			rc = add_tree(rs, dirfd(dir), n, child, access,
				      depth + 1);
	}
	if (rc == 0 && errno != 0) {
		rc = -errno;
		kh_err_set(rs->err, "landlock: cannot list %s: %s", path,
			   strerror(-rc));
	}
	(void)closedir(dir);
	return rc;
}

/*
 * Allows the file or directory name (relative to dirfd) with access,
 * leaving out the excluded paths below it. O_NOFOLLOW on every step:
 * a symlink planted in an allowed directory must not carry the rule to
 * its target, which stays reachable only through its own path.
 */
static int add_tree(struct ruleset *rs, int dirfd, const char *name,
		    const char *path, uint64_t access, int depth)
{
	struct stat st;
	int fd, rc;

	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		kh_err_set(rs->err, "landlock: cannot open %s: %s", path,
			   strerror(-rc));
		if (fd >= 0)
			(void)close(fd);
		return rc;
	}

	if (S_ISLNK(st.st_mode))
		rc = 0;
	else if (!S_ISDIR(st.st_mode) || !has_exclude_below(rs, path))
		rc = add_path_rule(rs, fd, &st, access, path);
	else if (depth >= WALK_DEPTH_MAX)
		rc = 0;
	else {
		/*
		 * A rule on a directory covers everything below it, so this
		 * one leaves out reading and executing file contents, or the
		 * excluded paths would be readable too. It also leaves out
		 * every right that gives an existing inode a new name
		 * (rename, link): the walk matches names, so a renamed
		 * ~/.aws would get full rights the next time a profile is
		 * applied. Creating and writing files stays allowed.
		 */
		rc = add_path_rule(rs, fd, &st, access & ~DIR_PARTIAL_DENIED,
				   path);
		if (rc == 0)
			rc = add_entries(rs, fd, path, access, depth);
	}
	(void)close(fd);
	return rc;
}

/* Resolves one profile path and allows it. Missing paths are skipped. */
static int add_profile_path(struct ruleset *rs, const char *path,
			    uint64_t access)
{
	char real[PATH_MAX];

	if (!realpath(path, real)) {
		if (errno == ENOENT || errno == ENOTDIR || errno == EACCES)
			return 0;
		kh_err_set(rs->err, "landlock: cannot resolve %s: %s", path,
			   strerror(errno));
		return -errno;
	}
	if (is_within_excluded(rs, real) || is_within_excluded(rs, path))
		return 0;
	return add_tree(rs, AT_FDCWD, real, real, access, 0);
}

static int add_port_rules(struct ruleset *rs,
			  const struct confine_ports *ports, uint64_t access)
{
	struct net_port_attr attr = { .allowed_access = access };

	for (size_t i = 0; i < ports->count; i++) {
		attr.port = ports->ports[i];
		if (syscall(SYS_landlock_add_rule, rs->fd, RULE_NET_PORT, &attr,
			    0) < 0) {
			kh_err_set(rs->err, "landlock: cannot add a rule for "
				   "TCP port %u: %s", (unsigned)attr.port,
				   strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int add_rules(struct ruleset *rs,
		     const struct kh_confine_profile *profile)
{
	const struct confine_list *excl = &profile->fs[CONFINE_FS_EXCLUDE];
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < excl->count; i++)
		rc = add_exclude(rs, excl->items[i]);
	if (rc < 0) {
		kh_err_set(rs->err, "landlock: out of memory");
		return rc;
	}
	for (int c = 0; rc == 0 && c < CONFINE_FS_EXCLUDE; c++) {
		const struct confine_list *list = &profile->fs[c];
		uint64_t access = class_access(c, rs->handled_fs);

		for (size_t i = 0; rc == 0 && i < list->count; i++)
			rc = add_profile_path(rs, list->items[i], access);
	}
	if (rc == 0 && (rs->handled_net & NET_CONNECT_TCP))
		rc = add_port_rules(rs, &profile->tcp_connect,
				    NET_CONNECT_TCP);
	if (rc == 0 && (rs->handled_net & NET_BIND_TCP))
		rc = add_port_rules(rs, &profile->tcp_bind, NET_BIND_TCP);
	return rc;
}

int confine_landlock_restrict(const struct kh_confine_profile *profile,
			      int abi, bool *net_rules, struct kh_err *err)
{
	struct ruleset rs = { .fd = -1, .handled_fs = handled_fs_for(abi),
			      .err = err };
	struct ruleset_attr attr = { .handled_access_fs = rs.handled_fs };
	int rc;

	*net_rules = false;
	if (abi >= 4 && profile->tcp_connect.set)
		attr.handled_access_net |= NET_CONNECT_TCP;
	if (abi >= 4 && profile->tcp_bind.set)
		attr.handled_access_net |= NET_BIND_TCP;

	rs.handled_net = attr.handled_access_net;
	rs.fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr),
			     0);
	if (rs.fd < 0) {
		rc = -errno;
		kh_err_set(err, "landlock: cannot create a ruleset: %s",
			   strerror(-rc));
		return rc;
	}
	rc = add_rules(&rs, profile);
	if (rc == 0 && syscall(SYS_landlock_restrict_self, rs.fd, 0) < 0) {
		rc = -errno;
		kh_err_set(err, "landlock: restrict_self failed: %s; "
			   "PR_SET_NO_NEW_PRIVS must be set first",
			   strerror(-rc));
	}
	if (rc == 0)
		*net_rules = attr.handled_access_net != 0;
	(void)close(rs.fd);
	confine_list_free(&rs.excludes);
	return rc;
}
