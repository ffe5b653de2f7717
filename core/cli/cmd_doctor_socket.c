/*
 * keyhole doctor: the broker's socket and permits directory, with the
 * owners and modes keyholed gives them (fusefs/broker.c,
 * fusefs/permits_dir.c), and one "status" round trip.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_doctor.h"

/* keyholed makes the socket 0666: SO_PEERCRED, not the mode, decides. */
#define SOCKET_MODE 0666

/* Checks the socket file; once it passes, sets d->broker_uid to its owner. */
static bool check_socket_file(struct kh_doctor *d, const char *path)
{
	char text[KH_DOCTOR_TEXT_MAX], copy[PATH_MAX];
	struct stat st;
	uid_t owner;

	if (lstat(path, &st) < 0) {
		(void)snprintf(text, sizeof(text), "%s: %s", path,
			       strerror(errno));
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "socket", text,
				  "systemctl start keyholed");
		return false;
	}
	if (!S_ISSOCK(st.st_mode)) {
		(void)snprintf(text, sizeof(text), "%s is not a socket", path);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "socket", text,
				  "move %s away, then systemctl restart "
				  "keyholed", path);
		return false;
	}
	owner = st.st_uid;
	if ((st.st_mode & 0777) != SOCKET_MODE) {
		(void)snprintf(text, sizeof(text), "%s has mode %04o, not "
			       "%04o: agents may be unable to connect", path,
			       (unsigned int)(st.st_mode & 0777), SOCKET_MODE);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "socket", text,
				  "systemctl restart keyholed, which sets the "
				  "mode");
		return false;
	}

	/* A user who can write the directory can replace the socket. */
	(void)snprintf(copy, sizeof(copy), "%s", path);
	if (stat(dirname(copy), &st) == 0 && (st.st_mode & 0022)) {
		(void)snprintf(text, sizeof(text), "directory %s has mode "
			       "%04o: group or others can replace the socket",
			       copy, (unsigned int)(st.st_mode & 07777));
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "socket", text,
				  "chmod go-w %s", copy);
		return false;
	}
	/* Only a socket that passed every check vouches for keyholed's uid. */
	d->broker_uid = owner;
	return true;
}

/* Compares the broker's policy hash with the policy file's. */
static void report_status(struct kh_doctor *d, const char *path,
			  const json_t *response)
{
	const char *hash = json_string_value(json_object_get(response, "hP"));
	const char *version =
		json_string_value(json_object_get(response, "version"));
	char text[KH_DOCTOR_TEXT_MAX];

	if (d->policy && hash &&
	    strcmp(hash, kh_policy_hash(d->policy)) != 0) {
		(void)snprintf(text, sizeof(text), "%s is ready, but keyholed "
			       "runs policy hP %.12s and %s has hP %.12s",
			       path, hash, d->config->policy,
			       kh_policy_hash(d->policy));
		kh_doctor_problem(d, KH_DOCTOR_WARN, "socket", text,
				  "systemctl reload keyholed to load the "
				  "policy file");
		return;
	}
	kh_doctor_pass(d, "socket", "%s is ready (keyholed %s, hP %.12s)",
		       path, version ? version : "?", hash ? hash : "?");
}

/* One "status" round trip, as keyhole status does it. */
static void check_status(struct kh_doctor *d, const char *path)
{
	json_t *request = json_pack("{s:s}", "op", "status");
	char text[KH_DOCTOR_TEXT_MAX];
	struct kh_err err = { { 0 } };
	json_t *response = NULL;
	const json_t *ready;

	if (!request) {
		d->broken = true;
		return;
	}
	if (kh_client_call(path, request, &response, &err) < 0) {
		(void)snprintf(text, sizeof(text), "%s: status failed: %s",
			       path, err.msg);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "socket", text,
				  "systemctl restart keyholed, and read "
				  "journalctl -u keyholed");
		goto out;
	}
	ready = json_object_get(response, "ready");
	if (!json_is_true(json_object_get(response, "ok")) ||
	    (ready && !json_is_true(ready))) {
		(void)snprintf(text, sizeof(text), "%s answered, but keyholed "
			       "is not ready", path);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "socket", text,
				  "read journalctl -u keyholed");
		goto out;
	}
	report_status(d, path, response);
out:
	json_decref(response);
	json_decref(request);
}

/*
 * permits_dir must belong to keyholed's user and be writable by no one
 * else, so that agents cannot create or rename each other's dirs.
 */
static void check_permits_dir(struct kh_doctor *d)
{
	const char *path = d->config->permits_dir;
	char text[KH_DOCTOR_TEXT_MAX];
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		(void)snprintf(text, sizeof(text), "%s: %s", path,
			       strerror(errno));
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "permits_dir", text,
				  "systemctl start keyholed, which creates it");
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	if (st.st_uid != d->broker_uid || (st.st_mode & 0022)) {
		(void)snprintf(text, sizeof(text), "%s is owned by uid %u with "
			       "mode %04o; keyholed (uid %u) rejects it", path,
			       (unsigned int)st.st_uid,
			       (unsigned int)(st.st_mode & 07777),
			       (unsigned int)d->broker_uid);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "permits_dir", text,
				  "chown %u %s && chmod 0755 %s",
				  (unsigned int)d->broker_uid, path, path);
		return;
	}
	kh_doctor_pass(d, "permits_dir", "%s (uid %u, mode %04o)", path,
		       (unsigned int)st.st_uid,
		       (unsigned int)(st.st_mode & 07777));
}

void kh_doctor_check_socket(struct kh_doctor *d)
{
	if (check_socket_file(d, d->config->socket))
		check_status(d, d->config->socket);
	check_permits_dir(d);
}
