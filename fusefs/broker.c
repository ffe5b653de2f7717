/*
 * The broker socket: JSON lines over an AF_UNIX stream socket. Each
 * request is one JSON object on one line (at most KD_REQUEST_MAX bytes)
 * and gets one reply line; a connection may send several requests.
 * docs/protocol.md describes the operations and the limits below.
 *
 * Anyone may connect (mode 0666), because the caller's identity comes
 * only from SO_PEERCRED, never from the request. One accept thread
 * hands each connection to its own thread, up to MAX_CONNECTIONS at
 * once and MAX_PER_UID for any one uid, so that one local user cannot
 * take every slot. Deadlines run on CLOCK_MONOTONIC: a request line
 * must be complete REQUEST_TIMEOUT_MS after its first byte, the next
 * request must start within IDLE_TIMEOUT_MS of the previous reply, and
 * a reply must be sent within SEND_TIMEOUT_MS. A client that trickles
 * bytes therefore cannot pin a thread.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

/* SO_PEERPIDFD from Linux 6.5; Debian 12's headers predate it. */
#ifdef SO_PEERPIDFD
#define KD_SO_PEERPIDFD SO_PEERPIDFD
#else
#define KD_SO_PEERPIDFD 77
#endif

#define MAX_CONNECTIONS 32
#define MAX_PER_UID 4
#define REQUEST_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS 10000
#define SEND_TIMEOUT_MS 10000

/* One connection slot; fd is -1 when the slot is free. */
struct slot {
	int fd;
	uid_t uid;
};

struct kd_broker {
	struct kd_daemon *d;
	int listen_fd;
	int stop_fd;               /* eventfd: the accept thread exits */
	pthread_t accept_thread;
	bool bound;                /* the socket file is ours to remove */
	bool accepting;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct slot conns[MAX_CONNECTIONS];
	size_t active;
	bool stopping;
};

struct conn {
	struct kd_broker *broker;
	int fd;
	size_t slot;
	struct kd_peer peer;
};

/* Milliseconds on CLOCK_MONOTONIC, which wall-clock steps do not move. */
static int64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits until fd is ready for events or deadline (now_ms) passes.
 * Returns 0 when ready, -ETIMEDOUT, or -errno from poll.
 */
static int wait_ready(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - now_ms();
		int n;

		if (left < 0)
			left = 0;
		n = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0)
			return 0;
		if (left == 0)
			return -ETIMEDOUT;
	}
}

/* Sends all of data before deadline; a client that stops reading fails. */
static int send_all(int fd, const char *data, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			r = wait_ready(fd, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends reply as one line before deadline and drops the reference. */
static int send_reply(int fd, json_t *reply, int64_t deadline)
{
	char *text;
	size_t len;
	int r;

	if (!reply)
		reply = kd_reply_error("internal", "out of memory");
	text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	json_decref(reply);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	r = send_all(fd, text, len, deadline);
	if (r == 0)
		r = send_all(fd, "\n", 1, deadline);
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

/*
 * session_open and session_close come from pam_keyhole.so, which runs
 * as root. Anyone else is denied before the request is looked at.
 */
static json_t *handle_session(struct kd_daemon *d, const struct kd_peer *peer,
			      const char *op, const json_t *req,
			      struct kh_err *err)
{
	static const char *const open_keys[] = { "op", "uid", "service",
						  "tty", NULL };
	static const char *const close_keys[] = { "op", "session", "uid",
						   "reason", NULL };
	bool open = strcmp(op, "session_open") == 0;

	if (peer->uid != 0)
		return kd_session_deny(peer, op);
	if (check_keys(req, open ? open_keys : close_keys, err) < 0)
		return kd_reply_error("invalid", err->msg);
	return open ? kd_session_open(d, peer, req) :
		      kd_session_close(d, peer, req);
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
				       "with \"op\" set to request, revoke, "
				       "status, session_open or "
				       "session_close");
	else if (strcmp(op, "request") == 0)
		reply = handle_request(d, peer, req, &err);
	else if (strcmp(op, "revoke") == 0)
		reply = handle_revoke(d, peer, req, &err);
	else if (strcmp(op, "session_open") == 0 ||
		 strcmp(op, "session_close") == 0)
		reply = handle_session(d, peer, op, req, &err);
	else if (strcmp(op, "status") == 0)
		reply = check_keys(req, status_keys, &err) < 0 ?
				kd_reply_error("invalid", err.msg) :
				kd_mint_status(d);
	else
		reply = kd_reply_error("invalid", "$.op: unknown op; use "
				       "request, revoke, status, session_open "
				       "or session_close");
	json_decref(req);
	return reply;
}

/*
 * Receives up to size bytes before deadline. Returns the byte count, 0
 * at EOF, -ETIMEDOUT or -errno.
 */
static ssize_t recv_some(int fd, char *buf, size_t size, int64_t deadline)
{
	for (;;) {
		ssize_t n = recv(fd, buf, size, MSG_DONTWAIT);
		int r;

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = wait_ready(fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
}

/* Closes a connection whose request line did not complete in time. */
static void reject_slow_line(const struct conn *c, size_t used)
{
	kd_log_denial(c->peer.uid, "broker-timeout",
		      "broker: request line incomplete %d ms after its first "
		      "byte, closing: uid=%u pid=%d bytes=%zu",
		      REQUEST_TIMEOUT_MS, (unsigned int)c->peer.uid,
		      (int)c->peer.pid, used);
	(void)send_reply(c->fd, kd_reply_error(
		"invalid", "request line not complete within 10 s of its "
		"first byte: send the whole line at once"), now_ms());
}

/*
 * Serves requests on one connection until EOF, a deadline or an error.
 * buf has room for KD_REQUEST_MAX bytes plus the newline. While no byte
 * of the next request is buffered, the deadline is IDLE_TIMEOUT_MS after
 * the last reply or the connect. Once a line's first byte arrives, the
 * whole line is due REQUEST_TIMEOUT_MS later, however slowly it comes.
 */
static void serve_connection(struct conn *c)
{
	size_t size = KD_REQUEST_MAX + 1, used = 0;
	char *buf = malloc(size);
	int64_t deadline = now_ms() + IDLE_TIMEOUT_MS;

	while (buf) {
		char *newline = memchr(buf, '\n', used);
		ssize_t n;

		if (newline) {
			size_t len = (size_t)(newline - buf);
			json_t *reply = dispatch(c->broker->d, &c->peer, buf,
						 len);

			if (send_reply(c->fd, reply,
				       now_ms() + SEND_TIMEOUT_MS) < 0)
				break;
			used -= len + 1;
			memmove(buf, newline + 1, used);
			/* Bytes left over are the start of the next line. */
			deadline = now_ms() + (used > 0 ? REQUEST_TIMEOUT_MS :
						       IDLE_TIMEOUT_MS);
			continue;
		}
		if (used == size) {
			(void)send_reply(c->fd, kd_reply_error(
				"invalid", "request line longer than 65536 "
				"bytes: send one JSON object per line"),
				now_ms() + SEND_TIMEOUT_MS);
			break;
		}
		n = recv_some(c->fd, buf + used, size - used, deadline);
		if (n == -ETIMEDOUT && used > 0)
			reject_slow_line(c, used);
		if (n <= 0)
			break;
		if (used == 0)
			deadline = now_ms() + REQUEST_TIMEOUT_MS;
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
	b->conns[c->slot].fd = -1;
	b->active--;
	close(c->fd);
	pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->lock);
	if (c->peer.pidfd >= 0)
		close(c->peer.pidfd);
	free(c->peer.groups);
	free(c);
	return NULL;
}

/*
 * Returns a pidfd for the peer of connection fd. SO_PEERPIDFD (Linux
 * 6.5) names the very process that connected. On older kernels
 * pidfd_open on the SO_PEERCRED pid is the fallback, which a pid reused
 * between connect and accept could still fool. -1 when neither works.
 */
static int open_peer_pidfd(int fd, pid_t pid)
{
	socklen_t len = sizeof(int);
	int pidfd = -1;

	if (getsockopt(fd, SOL_SOCKET, KD_SO_PEERPIDFD, &pidfd, &len) == 0 &&
	    pidfd >= 0)
		return pidfd;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd >= 0)
		(void)fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	return pidfd;
}

/*
 * Stores the peer's supplementary groups, which only the admin_group
 * check uses. When they cannot be read the peer has none, so it can
 * still do everything except revoke as a member of admin_group.
 */
static void read_peer_groups(int fd, struct kd_peer *peer)
{
	int r = kd_peer_groups_read(fd, &peer->groups, &peer->group_count);

	if (r < 0)
		kd_log(LOG_WARNING, "broker: cannot read the groups of uid=%u "
		       "pid=%d, treating it as in no supplementary group: %s",
		       (unsigned int)peer->uid, (int)peer->pid, strerror(-r));
}

/*
 * Takes a free slot for fd of uid. Returns -EUSERS when uid already has
 * MAX_PER_UID connections open, and -EBUSY when all MAX_CONNECTIONS
 * slots are taken or the broker is stopping.
 */
static int claim_slot(struct kd_broker *b, int fd, uid_t uid, size_t *slot)
{
	size_t free_slot = MAX_CONNECTIONS, same_uid = 0;
	int r = 0;

	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < MAX_CONNECTIONS; i++) {
		if (b->conns[i].fd < 0 && free_slot == MAX_CONNECTIONS)
			free_slot = i;
		else if (b->conns[i].fd >= 0 && b->conns[i].uid == uid)
			same_uid++;
	}
	if (same_uid >= MAX_PER_UID)
		r = -EUSERS;
	else if (free_slot == MAX_CONNECTIONS || b->stopping)
		r = -EBUSY;
	if (r == 0) {
		b->conns[free_slot].fd = fd;
		b->conns[free_slot].uid = uid;
		b->active++;
		*slot = free_slot;
	}
	pthread_mutex_unlock(&b->lock);
	return r;
}

static void release_slot(struct kd_broker *b, size_t slot)
{
	pthread_mutex_lock(&b->lock);
	b->conns[slot].fd = -1;
	b->active--;
	pthread_cond_broadcast(&b->idle);
	pthread_mutex_unlock(&b->lock);
}

/*
 * Tells a client that no slot is free for it and closes the connection.
 * The send does not wait, so a client that never reads cannot stall the
 * accept thread. The log line is rate-limited per uid.
 */
static void reject_busy(int fd, const struct ucred *cred, int why)
{
	char reason[160];

	if (why == -EUSERS)
		(void)snprintf(reason, sizeof(reason), "uid %u already has %d "
			       "open connections, the maximum per uid: close "
			       "one and retry", (unsigned int)cred->uid,
			       MAX_PER_UID);
	else
		(void)snprintf(reason, sizeof(reason), "all %d connection "
			       "slots are in use: retry later",
			       MAX_CONNECTIONS);
	kd_log_denial(cred->uid, "broker-busy", "broker: rejecting a "
		      "connection: uid=%u pid=%d reason=%s",
		      (unsigned int)cred->uid, (int)cred->pid, reason);
	(void)send_reply(fd, kd_reply_error("busy", reason), now_ms());
	close(fd);
}

static void start_connection(struct kd_broker *b, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c = NULL;
	pthread_attr_t attr;
	pthread_t thread;
	size_t slot;
	int r;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		kd_log(LOG_WARNING, "broker: cannot read the peer of a new "
		       "connection, closing it: %m");
		close(fd);
		return;
	}
	r = claim_slot(b, fd, cred.uid, &slot);
	if (r < 0) {
		reject_busy(fd, &cred, r);
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
		c->peer.pidfd = open_peer_pidfd(fd, cred.pid);
		read_peer_groups(fd, &c->peer);
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (!c || pthread_create(&thread, &attr, connection_main, c) != 0) {
		kd_log(LOG_ERR, "broker: cannot start a connection thread for "
		       "uid=%u pid=%d", (unsigned int)cred.uid, (int)cred.pid);
		if (c && c->peer.pidfd >= 0)
			close(c->peer.pidfd);
		if (c)
			free(c->peer.groups);
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
		b->conns[i].fd = -1;
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
		if (b->conns[i].fd >= 0)
			(void)shutdown(b->conns[i].fd, SHUT_RDWR);
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
