/*
 * keyhole doctor: the key files. A private key must be a regular file,
 * never reached through a symbolic link. It must be owned by root or by
 * the user keyholed runs as, with no access for group or others, in a
 * directory that group and others cannot write to, because they could
 * swap the file. The keys are then loaded with the loaders keyholed
 * uses. No key material is printed, only paths, modes and kids.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd_doctor.h"
#include "keyhole/dpr.h"
#include "keyhole/federation.h"
#include "keyhole/key.h"

/* Reports why path cannot be opened; fix suits a key keygen creates. */
static void report_open_error(struct kh_doctor *d, const char *check,
			      const char *path, int error)
{
	char found[KH_DOCTOR_TEXT_MAX];

	(void)snprintf(found, sizeof(found), "cannot open %s: %s", path,
		       error == ELOOP ? "it is a symbolic link" :
					strerror(error));
	if (error == ENOENT)
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found,
				  "create the keys with keyhole keygen --dir "
				  "DIR, or correct the path in %s",
				  d->config->path);
	else if (error == ELOOP)
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found,
				  "replace the link with the key file itself");
	else if (error == EACCES)
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found,
				  "run keyhole doctor as root");
	else
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found,
				  "check the file system that holds %s", path);
}

/* Checks that group and others cannot write to the directory of path. */
static bool check_key_dir(struct kh_doctor *d, const char *check,
			  const char *path)
{
	char copy[PATH_MAX], found[KH_DOCTOR_TEXT_MAX];
	const char *dir;
	struct stat st;

	(void)snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (stat(dir, &st) < 0) {
		report_open_error(d, check, dir, errno);
		return false;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) == 0)
		return true;
	(void)snprintf(found, sizeof(found), "directory %s has mode %04o: "
		       "group or others can replace the key in it", dir,
		       (unsigned int)(st.st_mode & 07777));
	kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found, "chmod go-w %s",
			  dir);
	return false;
}

/*
 * Checks owner and mode of the private key file at path without
 * following a symbolic link. Fills *mode on success.
 */
static bool check_private_file(struct kh_doctor *d, const char *check,
			       const char *path, mode_t *mode)
{
	char found[KH_DOCTOR_TEXT_MAX];
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		report_open_error(d, check, path, errno);
		return false;
	}
	if (fstat(fd, &st) < 0)
		st.st_mode = 0;
	close(fd);

	*mode = st.st_mode & 07777;
	if (!S_ISREG(st.st_mode)) {
		(void)snprintf(found, sizeof(found), "%s is not a regular "
			       "file", path);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found,
				  "replace it with the key file");
		return false;
	}
	if (st.st_uid != 0 && st.st_uid != d->broker_uid) {
		(void)snprintf(found, sizeof(found), "%s is owned by uid %u, "
			       "not by root or keyholed's uid %u", path,
			       (unsigned int)st.st_uid,
			       (unsigned int)d->broker_uid);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found,
				  "chown root %s", path);
		return false;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		(void)snprintf(found, sizeof(found), "%s has mode %04o: group "
			       "or others can read or change it", path,
			       (unsigned int)*mode);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found,
				  "chmod 0600 %s, and make a new key if "
				  "others may have read it", path);
		return false;
	}
	return check_key_dir(d, check, path);
}

/*
 * Loads the public JWK beside private_path and compares its kid with
 * the private key's. Verifiers that run as other users (keyhole verify,
 * keyhole audit verify) need it readable.
 */
static void check_public_key(struct kh_doctor *d, const char *check,
			     const char *private_path, const char *kid)
{
	char path[PATH_MAX], found[KH_DOCTOR_TEXT_MAX];
	struct kh_err err = { { 0 } };
	struct kh_key *key = NULL;
	struct stat st;

	if (kh_config_public_key_path(private_path, path, sizeof(path)) < 0) {
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, "the public key's "
				  "path is too long", "move %s to a shorter "
				  "path", private_path);
		return;
	}
	if (kh_key_load(path, &key, &err) < 0) {
		(void)snprintf(found, sizeof(found), "%s: %s", path, err.msg);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found,
				  "restore the public key that keyhole keygen "
				  "wrote beside %s", private_path);
		return;
	}
	if (strcmp(key->kid, kid) != 0) {
		(void)snprintf(found, sizeof(found), "%s has kid %s, but the "
			       "private key has kid %s", path, key->kid, kid);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, found,
				  "restore the public key that belongs to %s",
				  private_path);
	} else if (stat(path, &st) == 0 && !(st.st_mode & S_IROTH)) {
		(void)snprintf(found, sizeof(found), "%s has mode %04o: other "
			       "users cannot verify with it", path,
			       (unsigned int)(st.st_mode & 07777));
		kh_doctor_problem(d, KH_DOCTOR_WARN, check, found,
				  "chmod 0644 %s", path);
	} else {
		kh_doctor_pass(d, check, "%s (kid %s)", path, key->kid);
	}
	kh_key_free(key);
}

/* Checks one Ed25519 key pair: the private file, its JWK, the public JWK. */
static void check_key_pair(struct kh_doctor *d, const char *name,
			   const char *path)
{
	char check[64], public_check[64];
	struct kh_err err = { { 0 } };
	struct kh_key *key = NULL;
	mode_t mode;

	(void)snprintf(check, sizeof(check), "%s key", name);
	(void)snprintf(public_check, sizeof(public_check), "%s public key",
		       name);
	if (!check_private_file(d, check, path, &mode))
		return;
	if (kh_key_load(path, &key, &err) < 0) {
		kh_doctor_problem(d, KH_DOCTOR_FAIL, check, err.msg,
				  "restore %s from its backup, or make new keys "
				  "with keyhole keygen", path);
		return;
	}
	kh_doctor_pass(d, check, "%s (mode %04o, kid %s)", path,
		       (unsigned int)mode, key->kid);
	check_public_key(d, public_check, path, key->kid);
	kh_key_free(key);
}

/* Retired federation keys are published, so only their directory matters. */
static void check_retired_dir(struct kh_doctor *d)
{
	const char *dir = d->config->fed_retired_dir;
	char found[KH_DOCTOR_TEXT_MAX];
	struct stat st;

	if (lstat(dir, &st) < 0 && errno == ENOENT) {
		kh_doctor_pass(d, "retired keys", "%s does not exist: no "
			       "retired federation keys", dir);
		return;
	}
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		(void)snprintf(found, sizeof(found), "%s is not a directory "
			       "that only its owner can write to", dir);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "retired keys", found,
				  "make %s a directory with mode 0755 or "
				  "stricter", dir);
		return;
	}
	kh_doctor_pass(d, "retired keys", "%s (mode %04o)", dir,
		       (unsigned int)(st.st_mode & 07777));
}

static void check_federation_key(struct kh_doctor *d)
{
	const char *path = d->config->fed_key;
	struct kh_err err = { { 0 } };
	struct kh_fed_key *key = NULL;
	mode_t mode;

	if (!check_private_file(d, "federation key", path, &mode))
		return;
	if (kh_fed_key_load(path, &key, &err) < 0) {
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "federation key", err.msg,
				  "restore %s, or make a new one with keyhole "
				  "keygen --federation", path);
		return;
	}
	kh_doctor_pass(d, "federation key", "%s (mode %04o, kid %s)", path,
		       (unsigned int)mode, kh_fed_key_kid(key));
	kh_fed_key_free(key);
}

/*
 * Loads the retired audit keys as keyholed does at start. A key that
 * does not load, or an unsafe retired dir, stops keyholed from starting.
 */
static void check_retired_audit_keys(struct kh_doctor *d)
{
	struct kh_key *keys[KH_DPR_RETIRED_MAX];
	struct kh_err err = { { 0 } };
	size_t count = 0, pending = 0;

	if (kh_key_retired_load(d->config->audit_key, keys,
				KH_DPR_RETIRED_MAX, &count, &err) < 0) {
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "retired audit keys",
				  err.msg, "correct the retired directory "
				  "beside %s as the message says",
				  d->config->audit_key);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		if (keys[i]->secret)
			pending++;
		kh_key_free(keys[i]);
	}
	if (pending > 0)
		kh_doctor_problem(d, KH_DOCTOR_WARN, "retired audit keys",
				  "keyhole keygen --rotate retired the audit "
				  "key, but keyholed has not handed the log "
				  "over to the new key yet",
				  "systemctl restart keyholed");
	else
		kh_doctor_pass(d, "retired audit keys", "%zu retired, none "
			       "waiting for a restart", count);
}

void kh_doctor_check_keys(struct kh_doctor *d)
{
	check_key_pair(d, "permit", d->config->permit_key);
	check_key_pair(d, "audit", d->config->audit_key);
	check_retired_audit_keys(d);
	if (!d->config->fed_key[0])
		return;
	check_federation_key(d);
	check_retired_dir(d);
}
