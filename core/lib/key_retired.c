/*
 * Retired signing keys. "keyhole keygen --rotate" moves the current
 * permit and audit keys into DIR/retired/ before it makes new ones:
 *
 *   retired/audit-KID.jwk       the old private audit key, until
 *                               keyholed has handed the DPR chain over
 *   retired/audit-KID.pub.jwk   kept, so the log's first records check
 *   retired/permit-KID.pub.jwk  kept, so old permits can be inspected
 *
 * The old private permit key is deleted at once: nothing signs with it
 * again.
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

#include "keyhole/key.h"

#define RETIRED_DIR "retired"

/* Writes "DIR/retired", where DIR is the directory of key_path. */
static int retired_dir_of(const char *key_path, char *out, size_t size)
{
	const char *slash = strrchr(key_path, '/');
	int n;

	if (!slash)
		n = snprintf(out, size, "%s", RETIRED_DIR);
	else
		n = snprintf(out, size, "%.*s/%s", (int)(slash - key_path),
			     key_path, RETIRED_DIR);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Writes the key's name without directory and ".jwk": "audit". */
static int key_stem(const char *key_path, char *out, size_t size)
{
	const char *base = strrchr(key_path, '/');
	size_t len;

	base = base ? base + 1 : key_path;
	len = strlen(base);
	if (len <= 4 || strcmp(base + len - 4, ".jwk") != 0 ||
	    len - 4 >= size)
		return -EINVAL;
	memcpy(out, base, len - 4);
	out[len - 4] = '\0';
	return 0;
}

static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * Checks that only root or our user can add a key to the retired dir,
 * because its public keys are trusted to have signed seq 1 of the log.
 */
static int check_retired_dir(const char *dir, const struct stat *st,
			     struct kh_err *err)
{
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		kh_err_set(err, "%s is owned by uid %u, not by root or uid %u: "
			   "chown root %s", dir, (unsigned int)st->st_uid,
			   (unsigned int)geteuid(), dir);
		return -EPERM;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		kh_err_set(err, "%s has mode %04o: group or others could add "
			   "a key to it; chmod 0700 %s", dir,
			   (unsigned int)(st->st_mode & 07777), dir);
		return -EPERM;
	}
	return 0;
}

/*
 * Opens the retired dir without following a symbolic link and checks
 * it. Returns the fd, -ENOENT for a missing dir, or another -errno.
 */
static int open_retired_dir(const char *dir, struct kh_err *err)
{
	struct stat st;
	int fd, r;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0) {
		r = -errno;
		kh_err_set(err, "cannot open %s: %s", dir,
			   r == -ELOOP || r == -ENOTDIR ?
				   "not a directory (a symbolic link is not "
				   "followed)" : strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		kh_err_set(err, "cannot stat %s: %s", dir, strerror(-r));
	} else {
		r = check_retired_dir(dir, &st, err);
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* Creates dir with mode 0700, or checks the directory that is there. */
static int make_retired_dir(const char *dir, struct kh_err *err)
{
	int fd, saved;

	if (mkdir(dir, 0700) == 0)
		return 0;
	saved = errno;
	if (saved != EEXIST) {
		kh_err_set(err, "cannot create %s: %s", dir, strerror(saved));
		return -saved;
	}
	fd = open_retired_dir(dir, err);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static int move_file(const char *from, const char *to, struct kh_err *err)
{
	if (rename(from, to) == 0)
		return 0;
	kh_err_set(err, "cannot move %s to %s: %s", from, to,
		   strerror(errno));
	return -errno;
}

static int retired_path(char *out, size_t size, const char *dir,
			const char *name, const char *kid, const char *suffix)
{
	int n = snprintf(out, size, "%s/%s-%s%s", dir, name, kid, suffix);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int kh_key_retire(const char *dir, const char *name, bool keep_private,
		  struct kh_err *err)
{
	char priv[PATH_MAX], pub[PATH_MAX], retired[PATH_MAX], to[PATH_MAX];
	struct kh_key *key = NULL;
	int r;

	if (snprintf(priv, sizeof(priv), "%s/%s.jwk", dir, name) >=
		    (int)sizeof(priv) ||
	    snprintf(pub, sizeof(pub), "%s/%s.pub.jwk", dir, name) >=
		    (int)sizeof(pub) ||
	    retired_dir_of(priv, retired, sizeof(retired)) < 0)
		return -ENAMETOOLONG;
	r = kh_key_load(priv, &key, err);
	if (r < 0)
		return r;
	r = make_retired_dir(retired, err);
	if (r < 0)
		goto out;

	r = retired_path(to, sizeof(to), retired, name, key->kid, ".pub.jwk");
	if (r == 0)
		r = move_file(pub, to, err);
	if (r < 0 && r != -ENOENT)
		goto out;
	r = retired_path(to, sizeof(to), retired, name, key->kid, ".jwk");
	if (r < 0)
		goto out;
	if (keep_private)
		r = move_file(priv, to, err);
	else if (unlink(priv) < 0)
		r = -errno;
	else
		r = 0;
	if (r == 0)
		r = sync_dir(retired) < 0 || sync_dir(dir) < 0 ? -EIO : 0;
out:
	kh_key_free(key);
	return r;
}

/*
 * Classifies a directory entry of the retired dir for stem: returns 1
 * for "STEM-KID.jwk", 2 for "STEM-KID.pub.jwk", 0 for anything else,
 * and copies KID into kid.
 */
static int retired_entry(const char *entry, const char *stem,
			 char kid[KH_KID_LEN + 1])
{
	size_t stem_len = strlen(stem), len = strlen(entry);
	const char *rest = entry + stem_len + 1;

	if (len <= stem_len + 1 || strncmp(entry, stem, stem_len) != 0 ||
	    entry[stem_len] != '-')
		return 0;
	len -= stem_len + 1;
	if (len == KH_KID_LEN + 8 && strcmp(rest + KH_KID_LEN, ".pub.jwk") == 0) {
		memcpy(kid, rest, KH_KID_LEN);
		kid[KH_KID_LEN] = '\0';
		return 2;
	}
	if (len == KH_KID_LEN + 4 && strcmp(rest + KH_KID_LEN, ".jwk") == 0) {
		memcpy(kid, rest, KH_KID_LEN);
		kid[KH_KID_LEN] = '\0';
		return 1;
	}
	return 0;
}

/* Loads one retired file and checks that its kid is the one named. */
static int load_retired(const char *dir, const char *entry, const char *kid,
			struct kh_key **key, struct kh_err *err)
{
	char path[PATH_MAX];
	int r;

	if (snprintf(path, sizeof(path), "%s/%s", dir, entry) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	r = kh_key_load(path, key, err);
	if (r < 0)
		return r;
	if (strcmp((*key)->kid, kid) != 0) {
		kh_err_set(err, "%s holds key %s, not the kid in its name",
			   path, (*key)->kid);
		kh_key_free(*key);
		*key = NULL;
		return -EINVAL;
	}
	return 0;
}

/* Adds key to the set, preferring a private key over a public one. */
static int add_key(struct kh_key **keys, size_t *count, size_t max,
		   struct kh_key *key)
{
	for (size_t i = 0; i < *count; i++) {
		if (strcmp(keys[i]->kid, key->kid) != 0)
			continue;
		if (!keys[i]->secret && key->secret) {
			kh_key_free(keys[i]);
			keys[i] = key;
		} else {
			kh_key_free(key);
		}
		return 0;
	}
	if (*count == max) {
		kh_key_free(key);
		return -E2BIG;
	}
	keys[(*count)++] = key;
	return 0;
}

static int scan_retired(DIR *dir, const char *path, const char *stem,
			struct kh_key **keys, size_t *count, size_t max,
			struct kh_err *err)
{
	struct dirent *entry;
	char kid[KH_KID_LEN + 1];
	int r = 0;

	while (r == 0 && (entry = readdir(dir)) != NULL) {
		struct kh_key *key = NULL;

		if (retired_entry(entry->d_name, stem, kid) == 0)
			continue;
		r = load_retired(path, entry->d_name, kid, &key, err);
		if (r == 0)
			r = add_key(keys, count, max, key);
		if (r == -E2BIG)
			kh_err_set(err, "%s holds more than %zu retired %s "
				   "keys; delete the oldest public ones that "
				   "no log still starts with", path, max,
				   stem);
	}
	return r;
}

int kh_key_retired_load(const char *key_path, struct kh_key **keys,
			size_t max, size_t *count, struct kh_err *err)
{
	char path[PATH_MAX], stem[NAME_MAX + 1];
	DIR *dir;
	int fd, r;

	*count = 0;
	if (retired_dir_of(key_path, path, sizeof(path)) < 0 ||
	    key_stem(key_path, stem, sizeof(stem)) < 0) {
		kh_err_set(err, "%s: a key path must end in .jwk", key_path);
		return -EINVAL;
	}
	fd = open_retired_dir(path, err);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	dir = fdopendir(fd);
	if (!dir) {
		r = -errno;
		close(fd);
		kh_err_set(err, "cannot read %s: %s", path, strerror(-r));
		return r;
	}
	r = scan_retired(dir, path, stem, keys, count, max, err);
	closedir(dir);
	if (r < 0) {
		for (size_t i = 0; i < *count; i++)
			kh_key_free(keys[i]);
		*count = 0;
	}
	return r;
}

int kh_key_retired_prune(const char *key_path, struct kh_err *err)
{
	char path[PATH_MAX], stem[NAME_MAX + 1], file[PATH_MAX];
	char kid[KH_KID_LEN + 1];
	struct dirent *entry;
	int removed = 0;
	DIR *dir;

	if (retired_dir_of(key_path, path, sizeof(path)) < 0 ||
	    key_stem(key_path, stem, sizeof(stem)) < 0)
		return -EINVAL;
	dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? 0 : -errno;
	while ((entry = readdir(dir)) != NULL) {
		if (retired_entry(entry->d_name, stem, kid) != 1)
			continue;
		if (snprintf(file, sizeof(file), "%s/%s", path,
			     entry->d_name) >= (int)sizeof(file))
			continue;
		if (unlink(file) < 0) {
			int saved = errno;

			kh_err_set(err, "cannot delete %s: %s", file,
				   strerror(saved));
			closedir(dir);
			return -saved;
		}
		removed++;
	}
	closedir(dir);
	return removed > 0 && sync_dir(path) < 0 ? -EIO : removed;
}
