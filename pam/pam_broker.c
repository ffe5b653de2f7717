/*
 * The module's client for keyholed's session_open and session_close
 * operations: one JSON line out, one JSON line back, over the broker's
 * unix stream socket. Every socket call is bounded, because a login
 * must not hang on a stuck broker.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "keyhole/canon.h"
#include "pam_internal.h"

/* keyholed's replies are a few hundred bytes, so a longer one is invalid. */
#define MAX_REPLY 8192

static int64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_timeouts(int fd)
{
	struct timeval tv = {
		.tv_sec = KH_PAM_TIMEOUT_MS / 1000,
		.tv_usec = (KH_PAM_TIMEOUT_MS % 1000) * 1000,
	};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/*
 * The module runs as root and turns the reply into environment
 * variables and Landlock rules, so the broker must be root too. A
 * socket= path in a directory that a user can write to must not let
 * that user reply in keyholed's place.
 */
static int check_peer_root(int fd, const char *path, struct kh_err *err)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		kh_err_set(err, "%s: SO_PEERCRED failed: %s", path,
			   strerror(errno));
		return -EPROTO;
	}
	if (cred.uid != 0) {
		kh_err_set(err, "%s: the process listening on the socket "
			   "runs as uid %u, not root: check socket=", path,
			   (unsigned)cred.uid);
		return -EPERM;
	}
	return 0;
}

static int connect_broker(const char *path, int *out, struct kh_err *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd, rc;

	*out = -1;
	if (len >= sizeof(addr.sun_path)) {
		kh_err_set(err, "%s: socket path longer than %zu bytes", path,
			   sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, len + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		kh_err_set(err, "socket failed: %s", strerror(-rc));
		return rc;
	}
	rc = set_timeouts(fd);
	if (rc < 0) {
		kh_err_set(err, "setsockopt failed: %s", strerror(-rc));
		goto fail;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		rc = errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT
							     : -errno;
		kh_err_set(err, "%s: connect failed: %s", path, strerror(-rc));
		goto fail;
	}
	rc = check_peer_root(fd, path, err);
	if (rc < 0)
		goto fail;
	*out = fd;
	return 0;
fail:
	(void)close(fd);
	return rc;
}

static int send_request(int fd, const json_t *request, struct kh_err *err)
{
	char *text = json_dumps(request, JSON_COMPACT);
	size_t len, sent = 0;
	int rc = 0;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	text[len] = '\n'; /* replaces the NUL; only len + 1 bytes go out */
	while (sent < len + 1) {
		ssize_t n = send(fd, text + sent, len + 1 - sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
			kh_err_set(err, "sending the request failed: %s",
				   strerror(-rc));
			break;
		}
		sent += (size_t)n;
	}
	free(text);
	return rc;
}

/*
 * Reads one reply line into buf (NUL-terminated, without the newline).
 * SO_RCVTIMEO bounds each recv, and the deadline bounds them all, so a
 * broker that trickles bytes cannot hold the login either.
 */
static int read_reply(int fd, char *buf, size_t size, size_t *len,
		      struct kh_err *err)
{
	int64_t deadline = now_ms() + KH_PAM_TIMEOUT_MS;
	size_t used = 0;
	char *newline = NULL;

	while (!newline) {
		ssize_t n;

		if (used == size - 1) {
			kh_err_set(err, "reply longer than %zu bytes", size - 1);
			return -EPROTO;
		}
		if (now_ms() >= deadline) {
			kh_err_set(err, "no reply within %d ms",
				   KH_PAM_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
		n = recv(fd, buf + used, size - 1 - used, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			kh_err_set(err, "no reply within %d ms",
				   KH_PAM_TIMEOUT_MS);
			return -ETIMEDOUT;
		}
		if (n < 0) {
			kh_err_set(err, "reading the reply failed: %s",
				   strerror(errno));
			return -errno;
		}
		if (n == 0) {
			kh_err_set(err, "keyholed closed the connection "
				   "before a full reply line");
			return -EPROTO;
		}
		newline = memchr(buf + used, '\n', (size_t)n);
		used += (size_t)n;
	}

	if ((size_t)(newline - buf) + 1 != used) {
		kh_err_set(err, "data after the reply line");
		return -EPROTO;
	}
	*newline = '\0';
	*len = used - 1;
	return 0;
}

/*
 * Sends request and returns the parsed reply object in *reply. A reply
 * with "ok": false becomes -EACCES, with keyholed's error and reason in
 * err. A reply that is not an object with a boolean "ok" is -EPROTO.
 */
static int call_broker(const char *path, const json_t *request,
		       json_t **reply, struct kh_err *err)
{
	char *buf = malloc(MAX_REPLY + 1);
	json_t *parsed = NULL, *ok;
	size_t len = 0;
	int fd = -1, rc;

	*reply = NULL;
	if (!buf) {
		kh_err_set(err, "out of memory");
		return -ENOMEM;
	}
	rc = connect_broker(path, &fd, err);
	if (rc < 0)
		goto out;
	rc = send_request(fd, request, err);
	if (rc < 0)
		goto out;
	rc = read_reply(fd, buf, MAX_REPLY + 1, &len, err);
	if (rc < 0)
		goto out;

	rc = kh_json_parse(buf, len, &parsed, err);
	if (rc < 0) {
		kh_err_prefix(err, "invalid reply");
		rc = -EPROTO;
		goto out;
	}
	ok = json_object_get(parsed, "ok");
	if (!json_is_object(parsed) || !json_is_boolean(ok)) {
		kh_err_set(err, "invalid reply: not an object with a boolean "
			   "\"ok\"");
		rc = -EPROTO;
		goto out;
	}
	if (json_is_false(ok)) {
		const char *error = json_string_value(json_object_get(parsed,
								      "error"));
		const char *reason = json_string_value(
			json_object_get(parsed, "reason"));

		kh_err_set(err, "keyholed rejected the request: %s: %s",
			   error ? error : "no error given",
			   reason ? reason : "no reason given");
		rc = -EACCES;
		goto out;
	}
	*reply = parsed;
	parsed = NULL;
out:
	json_decref(parsed);
	free(buf);
	if (fd >= 0)
		(void)close(fd);
	return rc;
}

bool kh_pam_session_id_valid(const char *id)
{
	size_t len = strlen(id);

	if (len != KH_PAM_SESSION_ID_LEN)
		return false;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789-_") == len;
}

/* Rejects every member of reply that is not in names (NULL-terminated). */
static int check_members(const json_t *reply, const char *const *names,
			 struct kh_err *err)
{
	const char *key;
	json_t *value;

	json_object_foreach((json_t *)reply, key, value) {
		size_t i = 0;

		while (names[i] && strcmp(names[i], key) != 0)
			i++;
		if (!names[i]) {
			/* Only a plain name goes into the log line. */
			bool plain = strspn(key, "abcdefghijklmnopqrstuvwxyz"
					    "_0123456789") == strlen(key);

			kh_err_set(err, "invalid reply: unknown member %s%s",
				   plain ? "$." : "", plain ? key : "");
			return -EPROTO;
		}
	}
	return 0;
}

/*
 * Copies the absolute path at reply.name into out. Control characters
 * are rejected because the value becomes an environment variable and a
 * log line.
 */
static int copy_path(const json_t *reply, const char *name, char *out,
		     size_t size, struct kh_err *err)
{
	const char *value = json_string_value(json_object_get(reply, name));

	if (!value || value[0] != '/' || strlen(value) >= size) {
		kh_err_set(err, "invalid reply: $.%s must be an absolute path "
			   "shorter than %zu bytes", name, size);
		return -EPROTO;
	}
	for (const char *p = value; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			kh_err_set(err, "invalid reply: $.%s contains a "
				   "control character", name);
			return -EPROTO;
		}
	}
	memcpy(out, value, strlen(value) + 1);
	return 0;
}

static int parse_open_reply(const json_t *reply, uid_t uid,
			    struct kh_pam_session *out, struct kh_err *err)
{
	static const char *const names[] = {
		"ok", "session", "permits", "permits_dir", "secrets", NULL
	};
	const char *id = json_string_value(json_object_get(reply, "session"));
	char expected[PATH_MAX];
	int rc;

	rc = check_members(reply, names, err);
	if (rc < 0)
		return rc;
	if (!id || !kh_pam_session_id_valid(id)) {
		kh_err_set(err, "invalid reply: $.session must be %d "
			   "base64url characters", KH_PAM_SESSION_ID_LEN);
		return -EPROTO;
	}
	memcpy(out->id, id, KH_PAM_SESSION_ID_LEN + 1);

	if (copy_path(reply, "permits", out->permits, sizeof(out->permits),
		      err) < 0 ||
	    copy_path(reply, "permits_dir", out->permits_dir,
		      sizeof(out->permits_dir), err) < 0 ||
	    copy_path(reply, "secrets", out->secrets, sizeof(out->secrets),
		      err) < 0)
		return -EPROTO;

	/* The session's permits live in permits_dir/<uid>, nowhere else. */
	rc = snprintf(expected, sizeof(expected), "%s/%u", out->permits_dir,
		      (unsigned)uid);
	if (rc < 0 || (size_t)rc >= sizeof(expected) ||
	    strcmp(expected, out->permits) != 0) {
		kh_err_set(err, "invalid reply: $.permits is \"%s\", "
			   "expected \"%s/%u\"", out->permits,
			   out->permits_dir, (unsigned)uid);
		return -EPROTO;
	}
	return 0;
}

int kh_pam_session_open(const char *socket_path, uid_t uid,
			const char *service, const char *tty,
			struct kh_pam_session *out, struct kh_err *err)
{
	json_t *request, *reply = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	request = json_pack("{s:s, s:I, s:s}", "op", "session_open", "uid",
			    (json_int_t)uid, "service", service);
	if (!request) {
		kh_err_set(err, "cannot encode the request: PAM_SERVICE is "
			   "not valid UTF-8, or out of memory");
		return -EINVAL;
	}
	if (tty && json_object_set_new(request, "tty", json_string(tty)) < 0) {
		kh_err_set(err, "PAM_TTY is not valid UTF-8");
		rc = -EINVAL;
		goto out;
	}

	rc = call_broker(socket_path, request, &reply, err);
	if (rc < 0)
		goto out;
	rc = parse_open_reply(reply, uid, out, err);
out:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	json_decref(request);
	json_decref(reply);
	return rc;
}

int kh_pam_session_close(const char *socket_path, const char *id,
			 long long *revoked, struct kh_err *err)
{
	static const char *const names[] = { "ok", "revoked", NULL };
	json_t *request, *reply = NULL, *count;
	int rc;

	*revoked = 0;
	request = json_pack("{s:s, s:s}", "op", "session_close", "session",
			    id);
	if (!request) {
		kh_err_set(err, "out of memory");
		return -ENOMEM;
	}

	rc = call_broker(socket_path, request, &reply, err);
	if (rc < 0)
		goto out;
	rc = check_members(reply, names, err);
	if (rc < 0)
		goto out;
	count = json_object_get(reply, "revoked");
	if (!json_is_integer(count) || json_integer_value(count) < 0) {
		kh_err_set(err, "invalid reply: $.revoked must be a "
			   "non-negative integer");
		rc = -EPROTO;
		goto out;
	}
	*revoked = (long long)json_integer_value(count);
out:
	json_decref(request);
	json_decref(reply);
	return rc;
}
