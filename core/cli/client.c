/*
 * Broker socket client: one JSON line out, one JSON line back, over the
 * unix stream socket of keyholed. The broker learns who is asking from
 * SO_PEERCRED, so the request carries no identity.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "keyhole/canon.h"
#include "keyhole/config.h"

const char *kh_client_socket_path(const char *option)
{
	const char *env = getenv(KH_SOCKET_ENV);

	if (option)
		return option;
	if (env && *env)
		return env;
	return KH_SOCKET_DEFAULT;
}

int64_t kh_cli_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_socket(const char *path, int *out, struct kh_err *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, rc;

	*out = -1;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		kh_err_set(err, "%s: socket path longer than %zu bytes",
			   path, sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		kh_err_set(err, "socket: %s", strerror(-rc));
		return rc;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		rc = -errno;
		kh_err_set(err, "%s: connect failed: %s", path, strerror(-rc));
		(void)close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

static int send_line(int fd, const json_t *request, struct kh_err *err)
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
			rc = -errno;
			kh_err_set(err, "send to broker failed: %s",
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
	int64_t left = deadline - kh_cli_now_ms();
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	n = poll(&pfd, 1, (int)left);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

/* Reads up to the first newline; *line is NUL-terminated, without it. */
static int read_line(int fd, char **line, size_t *len, struct kh_err *err)
{
	char *buf = malloc(KH_CLIENT_MAX_RESPONSE + 1);
	int64_t deadline = kh_cli_now_ms() + KH_CLIENT_TIMEOUT_MS;
	size_t used = 0;
	char *newline = NULL;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (!newline) {
		ssize_t n;

		if (used == KH_CLIENT_MAX_RESPONSE) {
			rc = -EPROTO;
			kh_err_set(err, "broker response longer than %d bytes",
				   KH_CLIENT_MAX_RESPONSE);
			goto out;
		}
		rc = wait_readable(fd, deadline);
		if (rc < 0) {
			kh_err_set(err, "no response from broker within %d ms",
				   KH_CLIENT_TIMEOUT_MS);
			goto out;
		}
		n = recv(fd, buf + used, KH_CLIENT_MAX_RESPONSE - used, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			kh_err_set(err, "read from broker failed: %s",
				   strerror(-rc));
			goto out;
		}
		if (n == 0) {
			rc = -EPROTO;
			kh_err_set(err, "broker closed the connection before "
					"a full response line");
			goto out;
		}
		newline = memchr(buf + used, '\n', (size_t)n);
		used += (size_t)n;
	}
	*newline = '\0';
	*len = (size_t)(newline - buf);
out:
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*line = buf;
	return 0;
}

/*
 * Reads the reply line after send_line returned send_rc. A broker that
 * turns a client away ("busy") may write its reply and close without
 * reading the request, so the send fails with EPIPE or ECONNRESET while
 * the reply is still in the receive queue. That reply is what the user
 * needs to see, so the send error is returned only when no reply line
 * came.
 */
static int read_reply(int fd, int send_rc, char **line, size_t *len,
		      struct kh_err *err)
{
	struct kh_err read_err = { { 0 } };
	int rc;

	rc = read_line(fd, line, len, send_rc < 0 ? &read_err : err);
	if (rc < 0 && send_rc < 0)
		return send_rc;
	return rc;
}

int kh_client_call(const char *socket_path, const json_t *request,
		   json_t **response, struct kh_err *err)
{
	char *line = NULL;
	size_t len = 0;
	json_t *parsed = NULL;
	int fd = -1, rc;

	*response = NULL;
	rc = connect_socket(socket_path, &fd, err);
	if (rc < 0)
		goto out;
	rc = send_line(fd, request, err);
	if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET)
		goto out;
	rc = read_reply(fd, rc, &line, &len, err);
	if (rc < 0)
		goto out;
	rc = kh_json_parse(line, len, &parsed, err);
	if (rc < 0) {
		kh_err_prefix(err, "invalid broker response");
		rc = -EPROTO;
		goto out;
	}
	if (!json_is_object(parsed)) {
		kh_err_set(err, "invalid broker response: not a JSON object");
		rc = -EPROTO;
		goto out;
	}
	*response = parsed;
	parsed = NULL;
out:
	json_decref(parsed);
	free(line);
	if (fd >= 0)
		(void)close(fd);
	return rc;
}

static const char *connect_fix(int rc)
{
	switch (rc) {
	case -ENOENT:
	case -ECONNREFUSED:
		return "start keyholed, or pass --socket or set " KH_SOCKET_ENV;
	case -EACCES:
		return "ask the administrator for access to the broker socket";
	case -ETIMEDOUT:
		return "check that keyholed is running and not stuck";
	default:
		return "check the keyholed log";
	}
}

/*
 * Maps the broker's "error" member to an exit code: a denial is 1, a
 * request the broker could not act on ("invalid", or "not_found" for an
 * unknown jti) is the caller's mistake, 2, and anything else is 3.
 */
static int error_exit_code(const char *error)
{
	if (error && strcmp(error, "denied") == 0)
		return KH_EXIT_FAILED;
	if (error && (strcmp(error, "invalid") == 0 ||
		      strcmp(error, "not_found") == 0))
		return KH_EXIT_USAGE;
	return KH_EXIT_SYSTEM;
}

int kh_client_report_error(const char *command, const json_t *response)
{
	const char *error, *reason;
	int code;

	error = json_string_value(json_object_get(response, "error"));
	reason = json_string_value(json_object_get(response, "reason"));
	code = error_exit_code(error);

	if (!error)
		error = "unknown error";
	if (!reason)
		reason = "no reason given";
	if (code == KH_EXIT_FAILED)
		fprintf(stderr, "denied: %s\n", reason);
	else if (strcmp(error, "busy") == 0)
		kh_cli_error("%s: broker busy: %s", command, reason);
	else if (code == KH_EXIT_USAGE)
		kh_cli_error("%s: broker rejected the request: %s: %s",
			     command, error, reason);
	else
		kh_cli_error("%s: broker failed: %s: %s: check the keyholed "
			     "log", command, error, reason);
	return code;
}

int kh_client_run(const char *command, const char *socket_path,
		  const json_t *request, json_t **response)
{
	struct kh_err err = { { 0 } };
	int rc;

	rc = kh_client_call(socket_path, request, response, &err);
	if (rc < 0) {
		kh_cli_error("%s: %s: %s: %s", command,
			     rc == -EPROTO ? "broker request failed"
					   : "broker unreachable",
			     err.msg, connect_fix(rc));
		return KH_EXIT_SYSTEM;
	}
	if (json_is_true(json_object_get(*response, "ok")))
		return KH_EXIT_OK;
	return kh_client_report_error(command, *response);
}
