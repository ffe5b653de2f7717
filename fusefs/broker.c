/*
 * The broker socket: JSON lines over an AF_UNIX stream socket. Each
 * request is one JSON object on one line (at most KD_REQUEST_MAX bytes)
 * and gets one reply line; a connection may send several requests.
 * docs/protocol.md describes the operations.
 *
 * Anyone may connect (mode 0666), because the caller's identity comes
 * only from SO_PEERCRED, never from the request. One accept thread
 * hands each connection to its own thread, up to MAX_CONNECTIONS at
 * once. An idle connection is closed after IO_TIMEOUT seconds, so a
 * stuck client cannot pin a thread.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon.h"

#define MAX_CONNECTIONS 32
#define IO_TIMEOUT 10

struct kd_broker {
	struct kd_daemon *d;
	int listen_fd;
	int stop_fd;               /* eventfd: the accept thread exits */
	pthread_t accept_thread;
	bool bound;                /* the socket file is ours to remove */
	bool accepting;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int conns[MAX_CONNECTIONS]; /* -1 for a free slot */
	size_t active;
	bool stopping;
};

struct conn {
	struct kd_broker *broker;
	int fd;
	size_t slot;
	struct kd_peer peer;
};

static int send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends reply as one line and drops the reference. */
static int send_reply(int fd, json_t *reply)
{
	char *text;
	int r;

	if (!reply)
		reply = kd_reply_error("internal", "out of memory");
	text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	json_decref(reply);
	if (!text)
		return -ENOMEM;
	r = send_all(fd, text, strlen(text));
	if (r == 0)
		r = send_all(fd, "\n", 1);
	free(text);
	return r;
}

/* Rejects members of request other than the ones listed. */
static int check_keys(const json_t *request, const char *const allowed[],
		      struct kh_err *err)
{
	const char *key;
	json_t *value;

	json_object_foreach((json_t *)request, key, value) {
		bool known = false;

		(void)value;
		for (size_t i = 0; allowed[i]; i++)
			known = known || strcmp(key, allowed[i]) == 0;
		if (!known) {
			kh_err_set(err, "$.%s: unknown key for this op; remove "
				   "it", key);
			return -EINVAL;
		}
	}
	return 0;
}

static json_t *handle_request(struct kd_daemon *d,
			      const struct kd_peer *peer, const json_t *req,
			      struct kh_err *err)
{
	static const char *const keys[] = { "op", "action", NULL };
	const json_t *action = json_object_get(req, "action");

	if (check_keys(req, keys, err) < 0)
		return kd_reply_error("invalid", err->msg);
	if (!json_is_object(action))
		return kd_reply_error("invalid", "$.action: expected an action "
				      "object such as {\"type\":\"tool_call\","
				      "\"tool\":\"...\",\"params\":{}}");
	return kd_mint_request(d, peer, action);
}

static json_t *handle_revoke(struct kd_daemon *d, const struct kd_peer *peer,
			     const json_t *req, struct kh_err *err)
{
	static const char *const keys[] = { "op", "jti", "reason", NULL };
	const json_t *jti = json_object_get(req, "jti");
	const json_t *reason = json_object_get(req, "reason");

	if (check_keys(req, keys, err) < 0)
		return kd_reply_error("invalid", err->msg);
	if (!json_is_string(jti))
		return kd_reply_error("invalid", "$.jti: expected the permit's "
				      "jti as a string");
	if (reason && (!json_is_string(reason) ||
		       json_string_length(reason) == 0 ||
		       json_string_length(reason) >= KD_REASON_MAX))
		return kd_reply_error("invalid", "$.reason: expected a "
				      "non-empty string shorter than 256 "
				      "bytes");
	return kd_mint_revoke(d, peer, json_string_value(jti),
			      json_string_value(reason));
}

/* Parses one request line and returns its reply. */
static json_t *dispatch(struct kd_daemon *d, const struct kd_peer *peer,
			const char *line, size_t len)
{
	static const char *const status_keys[] = { "op", NULL };
	struct kh_err err = { { 0 } };
	json_t *req = NULL, *reply;
	const char *op;

	if (kh_json_parse(line, len, &req, &err) < 0)
		return kd_reply_error("invalid", err.msg);
	op = json_string_value(json_object_get(req, "op"));
	if (!json_is_object(req) || !op)
		reply = kd_reply_error("invalid", "$.op: expected an object "
				       "with \"op\" set to request, revoke or "
				       "status");
	else if (strcmp(op, "request") == 0)
		reply = handle_request(d, peer, req, &err);
	else if (strcmp(op, "revoke") == 0)
		reply = handle_revoke(d, peer, req, &err);
	else if (strcmp(op, "status") == 0)
		reply = check_keys(req, status_keys, &err) < 0 ?
				kd_reply_error("invalid", err.msg) :
				kd_mint_status(d);
	else
		reply = kd_reply_error("invalid", "$.op: unknown op; use "
				       "request, revoke or status");
	json_decref(req);
	return reply;
}

/*
 * Serves requests on one connection until EOF, a timeout or an error.
 * buf has room for KD_REQUEST_MAX bytes plus the newline.
 */
static void serve_connection(struct conn *c)
{
	size_t size = KD_REQUEST_MAX + 1, used = 0;
	char *buf = malloc(size);

	while (buf) {
		char *newline = memchr(buf, '\n', used);
		ssize_t n;

		if (newline) {
			size_t len = (size_t)(newline - buf);

			if (send_reply(c->fd, dispatch(c->broker->d, &c->peer,
						       buf, len)) < 0)
				break;
			used -= len + 1;
			memmove(buf, newline + 1, used);
			continue;
		}
		if (used == size) {
			(void)send_reply(c->fd, kd_reply_error(
				"invalid", "request line longer than 65536 "
				"bytes: send one JSON object per line"));
			break;
		}
		n = recv(c->fd, buf + used, size - used, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	free(buf);
}

static void *connection_main(void *arg)
{
	struct conn *c = arg;
	struct kd_broker *b = c->broker;

	serve_connection(c);

	pthread_mutex_lock(&b->lock);
	b->conns[c->slot] = -1;
	b->active--;
	close(c->fd);
	pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->lock);
	free(c);
	return NULL;
}

static int set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT, .tv_usec = 0 };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/* Takes a free slot for fd; -EBUSY when MAX_CONNECTIONS are open. */
static int claim_slot(struct kd_broker *b, int fd, size_t *slot)
{
	int r = -EBUSY;

	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < MAX_CONNECTIONS && !b->stopping; i++) {
		if (b->conns[i] < 0) {
			b->conns[i] = fd;
			b->active++;
			*slot = i;
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&b->lock);
	return r;
}

static void release_slot(struct kd_broker *b, size_t slot)
{
	pthread_mutex_lock(&b->lock);
	b->conns[slot] = -1;
	b->active--;
	pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->lock);
}

static void start_connection(struct kd_broker *b, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c = NULL;
	pthread_attr_t attr;
	pthread_t thread;
	size_t slot;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    set_timeouts(fd) < 0) {
		kd_log(LOG_WARNING, "broker: cannot read the peer of a new "
		       "connection, closing it: %m");
		close(fd);
		return;
	}
	if (claim_slot(b, fd, &slot) < 0) {
		kd_log(LOG_WARNING, "broker: %d connections open, rejecting "
		       "uid=%u pid=%d", MAX_CONNECTIONS,
		       (unsigned int)cred.uid, (int)cred.pid);
		(void)send_reply(fd, kd_reply_error("busy", "too many open "
						    "connections; retry"));
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c) {
		c->broker = b;
		c->fd = fd;
		c->slot = slot;
		c->peer.uid = cred.uid;
		c->peer.gid = cred.gid;
		c->peer.pid = cred.pid;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (!c || pthread_create(&thread, &attr, connection_main, c) != 0) {
		kd_log(LOG_ERR, "broker: cannot start a connection thread for "
		       "uid=%u pid=%d", (unsigned int)cred.uid, (int)cred.pid);
		free(c);
		release_slot(b, slot);
		close(fd);
	}
	pthread_attr_destroy(&attr);
}

static void *accept_main(void *arg)
{
	struct kd_broker *b = arg;
	struct pollfd fds[2] = {
		{ .fd = b->listen_fd, .events = POLLIN },
		{ .fd = b->stop_fd, .events = POLLIN },
	};

	for (;;) {
		int fd;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			kd_log(LOG_ERR, "broker: poll failed, no longer "
			       "accepting: %m");
			break;
		}
		if (fds[1].revents)
			break;
		fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EINTR && errno != EAGAIN &&
			    errno != ECONNABORTED)
				kd_log(LOG_WARNING, "broker: accept failed, "
				       "retrying: %m");
			continue;
		}
		start_connection(b, fd);
	}
	return NULL;
}

/*
 * Removes a leftover socket file from an earlier run. Fails when the
 * path is not a socket (never delete someone's file) or when a broker
 * still accepts connections on it.
 */
static int remove_stale_socket(const struct sockaddr_un *addr,
			       struct kh_err *err)
{
	struct stat st;
	int fd, r;

	if (lstat(addr->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		kh_err_set(err, "socket path %s exists and is not a socket: "
			   "move it away or set \"socket\" in the config",
			   addr->sun_path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	close(fd);
	if (r == 0) {
		kh_err_set(err, "another keyholed is serving %s: stop it first",
			   addr->sun_path);
		return -EADDRINUSE;
	}
	if (unlink(addr->sun_path) < 0)
		return -errno;
	kd_log(LOG_INFO, "removed stale socket %s", addr->sun_path);
	return 0;
}

static int make_socket_dir(const char *path, struct kh_err *err)
{
	char dir[PATH_MAX];
	char *slash;

	(void)snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	return kd_mkdir_parents(dir, 0755, err);
}

static int bind_socket(struct kd_broker *b, const char *path,
		       struct kh_err *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int n, r;

	n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(addr.sun_path)) {
		kh_err_set(err, "socket path %s is longer than %zu bytes: set "
			   "a shorter \"socket\" in the config", path,
			   sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	r = make_socket_dir(path, err);
	if (r == 0)
		r = remove_stale_socket(&addr, err);
	if (r < 0)
		return r;
	b->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->listen_fd < 0 ||
	    bind(b->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		goto fail;
	b->bound = true;
	if (chmod(path, 0666) < 0 || listen(b->listen_fd, 64) < 0)
		goto fail;
	return 0;
fail:
	r = -errno;
	kh_err_set(err, "cannot listen on socket %s: %s", path, strerror(-r));
	return r;
}

/*
 * Binds and listens on the config's socket. Connections queue in the
 * backlog until kd_broker_start, which runs once the mount is ready.
 */
int kd_broker_listen(struct kd_daemon *d, struct kh_err *err)
{
	struct kd_broker *b;
	int r;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->d = d;
	b->listen_fd = -1;
	b->stop_fd = -1;
	for (size_t i = 0; i < MAX_CONNECTIONS; i++)
		b->conns[i] = -1;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->idle, NULL);
	d->broker = b;
	b->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (b->stop_fd < 0) {
		r = -errno;
		kh_err_set(err, "cannot create an eventfd: %s", strerror(-r));
		return r;
	}
	return bind_socket(b, d->config->socket, err);
}

int kd_broker_start(struct kd_daemon *d, struct kh_err *err)
{
	struct kd_broker *b = d->broker;
	int r;

	r = pthread_create(&b->accept_thread, NULL, accept_main, b);
	if (r != 0) {
		kh_err_set(err, "cannot start the broker thread: %s",
			   strerror(r));
		return -r;
	}
	b->accepting = true;
	return 0;
}

/*
 * Stops accepting, removes the socket file, shuts down open connections
 * and waits for their threads, so no request runs once this returns.
 */
void kd_broker_stop(struct kd_daemon *d)
{
	struct kd_broker *b = d->broker;
	uint64_t one = 1;

	if (!b)
		return;
	if (b->accepting) {
		if (write(b->stop_fd, &one, sizeof(one)) < 0)
			kd_log(LOG_ERR, "broker: cannot wake the accept "
			       "thread: %m");
		pthread_join(b->accept_thread, NULL);
	}
	if (b->listen_fd >= 0)
		close(b->listen_fd);
	if (b->bound)
		(void)unlink(d->config->socket);
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	for (size_t i = 0; i < MAX_CONNECTIONS; i++) {
		if (b->conns[i] >= 0)
			(void)shutdown(b->conns[i], SHUT_RDWR);
	}
	while (b->active > 0)
		pthread_cond_wait(&b->idle, &b->lock);
	pthread_mutex_unlock(&b->lock);

	if (b->stop_fd >= 0)
		close(b->stop_fd);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->idle);
	free(b);
	d->broker = NULL;
}
