/*
 * The client half of keyholed's line protocol. Every socket call is
 * bounded, because the callers (a login through pam_keyhole.so, a
 * command line) must not hang on a stuck broker.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "keyhole/broker.h"
#include "keyhole/canon.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SO_SNDTIMEO also bounds connect on a unix socket whose backlog is full. */
static int set_timeouts(int fd, int timeout_ms)
{
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (timeout_ms % 1000) * 1000,
	};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/*
 * A caller that runs as root and acts on the reply (pam_keyhole.so
 * exports it and confines the session by it) must not take it from a
 * user who bound a socket at a path that user can write to.
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
			   "runs as uid %u, not root: check the socket path",
			   path, (unsigned)cred.uid);
		return -EPERM;
	}
	return 0;
}

static int connect_broker(const char *path, const struct kh_broker_opts *opts,
			  int *out, struct kh_err *err)
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
	rc = set_timeouts(fd, opts->timeout_ms);
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
	if (opts->flags & KH_BROKER_REQUIRE_ROOT_PEER) {
		rc = check_peer_root(fd, path, err);
		if (rc < 0)
			goto fail;
	}
	*out = fd;
	return 0;
fail:
	(void)close(fd);
	return rc;
}

static int send_line(int fd, const json_t *request, struct kh_err *err)
{
	char *text = json_dumps(request, JSON_COMPACT);
	size_t len, sent = 0;
	int rc = 0;

	if (!text) {
		kh_err_set(err, "cannot encode the request: out of memory");
		return -ENOMEM;
	}
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

/* Waits for input until deadline (monotonic ms); -ETIMEDOUT after it. */
static int wait_readable(int fd, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int64_t left = deadline - now_ms();
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	n = poll(&pfd, 1, (int)left);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/*
 * Receives into buf until the first newline. One deadline bounds all
 * the receives, so a broker that trickles bytes cannot hold the caller
 * past timeout_ms either.
 */
static int receive_line(int fd, const struct kh_broker_opts *opts, char *buf,
			size_t *used, char **newline, struct kh_err *err)
{
	int64_t deadline = now_ms() + opts->timeout_ms;
	ssize_t n;
	int rc;

	while (!*newline) {
		if (*used == opts->max_reply) {
			kh_err_set(err, "reply longer than %zu bytes",
				   opts->max_reply);
			return -EPROTO;
		}
		rc = wait_readable(fd, deadline);
		if (rc == -ETIMEDOUT) {
			kh_err_set(err, "no reply within %d ms",
				   opts->timeout_ms);
			return rc;
		}
		if (rc < 0) {
			kh_err_set(err, "waiting for the reply failed: %s",
				   strerror(-rc));
			return rc;
		}
		n = recv(fd, buf + *used, opts->max_reply - *used, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
			kh_err_set(err, "reading the reply failed: %s",
				   strerror(-rc));
			return rc;
		}
		if (n == 0) {
			kh_err_set(err, "the broker closed the connection "
				   "before a full reply line");
			return -EPROTO;
		}
		*newline = memchr(buf + *used, '\n', (size_t)n);
		*used += (size_t)n;
	}
	return 0;
}

/*
 * Reads one reply line into *line (malloc'd, NUL-terminated, without
 * the newline). Bytes after the newline make the reply invalid, because
 * the broker writes exactly one line per connection.
 */
static int read_line(int fd, const struct kh_broker_opts *opts, char **line,
		     size_t *len, struct kh_err *err)
{
	char *buf = malloc(opts->max_reply + 1);
	char *newline = NULL;
	size_t used = 0;
	int rc;

	*line = NULL;
	if (!buf) {
		kh_err_set(err, "out of memory for a %zu-byte reply",
			   opts->max_reply);
		return -ENOMEM;
	}
	rc = receive_line(fd, opts, buf, &used, &newline, err);
	if (rc == 0 && (size_t)(newline - buf) + 1 != used) {
		kh_err_set(err, "invalid reply: data after the reply line");
		rc = -EPROTO;
	}
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*newline = '\0';
	*len = used - 1;
	*line = buf;
	return 0;
}

/* Parses line strictly into an object with a boolean "ok". */
static int parse_reply(const char *line, size_t len, json_t **reply,
		       struct kh_err *err)
{
	json_t *parsed = NULL;

	if (kh_json_parse(line, len, &parsed, err) < 0) {
		kh_err_prefix(err, "invalid reply");
		return -EPROTO;
	}
	if (!json_is_object(parsed) ||
	    !json_is_boolean(json_object_get(parsed, "ok"))) {
		kh_err_set(err, "invalid reply: not a JSON object with a "
			   "boolean \"ok\"");
		json_decref(parsed);
		return -EPROTO;
	}
	*reply = parsed;
	return 0;
}

int kh_broker_call(const char *socket_path, const json_t *request,
		   const struct kh_broker_opts *opts, json_t **reply,
		   struct kh_err *err)
{
	struct kh_err read_err = { { 0 } };
	char *line = NULL;
	size_t len = 0;
	int fd = -1, send_rc, rc;

	*reply = NULL;
	rc = connect_broker(socket_path, opts, &fd, err);
	if (rc < 0)
		return rc;

	send_rc = send_line(fd, request, err);
	if (send_rc < 0 && send_rc != -EPIPE && send_rc != -ECONNRESET) {
		rc = send_rc;
		goto out;
	}

	/* After a failed send, err keeps the send error unless a line came. */
	rc = read_line(fd, opts, &line, &len, send_rc < 0 ? &read_err : err);
	if (rc < 0) {
		if (send_rc < 0)
			rc = send_rc;
		goto out;
	}
	rc = parse_reply(line, len, reply, err);
out:
	free(line);
	(void)close(fd);
	return rc;
}
