/*
 * The path of the Landlock rule for the secrets mount. Landlock ties a
 * rule to the inode it names, and every start of keyholed mounts a new
 * file system with a new root inode, so a rule on the mount itself stops
 * matching when keyholed restarts. A rule on the mount's parent keeps
 * matching, and grants nothing more when the mount point is the only
 * entry of a directory that only root can change.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyhole/confine.h"

/* True when dir's only entry, besides "." and "..", is name. */
static bool only_entry_is(int dirfd, const char *name)
{
	DIR *dir = fdopendir(dirfd);
	struct dirent *entry;
	int count = 0;
	bool match = false;

	if (!dir) {
		close(dirfd);
		return false;
	}
	while ((entry = readdir(dir)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0 ||
		    strcmp(entry->d_name, "..") == 0)
			continue;
		count++;
		match = strcmp(entry->d_name, name) == 0;
	}
	closedir(dir);
	return count == 1 && match;
}

/* True when parent is a root-owned directory holding only name. */
static bool parent_is_dedicated(const char *parent, const char *name)
{
	struct stat st;
	int fd;

	fd = open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022)) {
		close(fd);
		return false;
	}
	return only_entry_is(fd, name);
}

int kh_confine_secrets_rule_path(const char *mount, char *out, size_t size)
{
	const char *slash = strrchr(mount, '/');
	size_t parent_len = slash ? (size_t)(slash - mount) : 0;
	char parent[4096];

	if (strlen(mount) >= size)
		return -ENAMETOOLONG;
	memcpy(out, mount, strlen(mount) + 1);
	if (!slash || parent_len == 0 || parent_len >= sizeof(parent) ||
	    slash[1] == '\0')
		return 0;

	memcpy(parent, mount, parent_len);
	parent[parent_len] = '\0';
	if (!parent_is_dedicated(parent, slash + 1))
		return 0;
	memcpy(out, parent, parent_len + 1);
	return 1;
}
