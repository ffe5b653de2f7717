/*
 * kh_broker_call against a scripted peer: a forked child that listens on
 * a unix socket in a temporary directory, answers one connection with a
 * fixed reply and reports through its exit status whether the request
 * line arrived intact. The root-peer case switches the child to nobody
 * before listen(), so it needs root, as the test suite runs.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "keyhole/broker.h"

#define NOBODY_UID 65534

/* What the scripted peer does after accept(). */
struct peer_script {
	const char *reply; /* written as is; NULL writes nothing */
	bool read_request; /* read one line and compare it to REQUEST_LINE */
	bool hang;         /* stay connected until killed */
	uid_t uid;         /* listen() as this uid, 0 to stay root */
};

#define REQUEST_LINE "{\"op\":\"status\"}\n"

/* 40 bytes; twice that in a reply is more than test_opts accepts. */
#define PAD_TEXT "0123456789012345678901234567890123456789"

static char work[64];
static char sock_path[128];

static const struct kh_broker_opts test_opts = {
	.timeout_ms = 5000,
	.max_reply = 64,
};

/* Reads up to the first newline; returns 0 when it is REQUEST_LINE. */
static int peer_read_request(int conn)
{
	char buf[256];
	size_t used = 0;

	while (used < sizeof(buf) - 1) {
		ssize_t n = read(conn, buf + used, 1);

		if (n <= 0)
			return 1;
		used++;
		if (buf[used - 1] == '\n')
			break;
	}
	buf[used] = '\0';
	return strcmp(buf, REQUEST_LINE) == 0 ? 0 : 1;
}

static void peer_run(int listener, int ready, const struct peer_script *s)
{
	int conn, status = 0;

	if (s->uid != 0 && setresuid(s->uid, s->uid, s->uid) < 0)
		_exit(3);
	if (listen(listener, 1) < 0 || write(ready, "r", 1) != 1)
		_exit(3);
	conn = accept(listener, NULL, NULL);
	if (conn < 0)
		_exit(3);
	if (s->read_request)
		status = peer_read_request(conn);
	if (s->reply &&
	    write(conn, s->reply, strlen(s->reply)) != (ssize_t)strlen(s->reply))
		status = 2;
	while (s->hang)
		pause();
	_exit(status);
}

/* Starts the peer and returns its pid once it listens, or -1. */
static pid_t peer_start(const struct peer_script *s)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int listener, ready[2];
	pid_t pid;
	char byte;

	(void)snprintf(sock_path, sizeof(sock_path), "%s/broker.sock", work);
	memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
	(void)unlink(sock_path);
	listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(listener >= 0);
	CHECK_INT(bind(listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
	CHECK_INT(pipe(ready), 0);

	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		peer_run(listener, ready[1], s);
	}
	close(listener);
	close(ready[1]);
	if (pid < 0 || read(ready[0], &byte, 1) != 1) {
		kh_test_fail(__FILE__, __LINE__, "the peer did not listen");
		pid = -1;
	}
	close(ready[0]);
	return pid;
}

/* Returns the peer's exit status, killing it first when it hangs. */
static int peer_finish(pid_t pid, bool kill_it)
{
	int status = 0;

	if (pid < 0)
		return -1;
	if (kill_it)
		(void)kill(pid, SIGKILL);
	CHECK_INT(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs one call against a peer with script s; the reply goes to *reply. */
static int call_peer(const struct peer_script *s,
		     const struct kh_broker_opts *opts, json_t **reply,
		     struct kh_err *err)
{
	json_t *request = json_pack("{s:s}", "op", "status");
	pid_t pid;
	int rc;

	kh_test_mkdtemp(work, sizeof(work), "/tmp/kh-test-broker.XXXXXX");
	pid = peer_start(s);
	rc = kh_broker_call(sock_path, request, opts, reply, err);
	/* A peer that hangs is killed, so only its request is unchecked. */
	if (s->read_request && !s->hang)
		CHECK_INT(peer_finish(pid, false), 0);
	else
		(void)peer_finish(pid, s->hang);
	json_decref(request);
	kh_test_rmtree(work);
	return rc;
}

static void test_reply_ok(void)
{
	const struct peer_script s = {
		.reply = "{\"ok\":true,\"ready\":true}\n", .read_request = true,
	};
	struct kh_err err = { { 0 } };
	json_t *reply = NULL;

	CHECK_INT(call_peer(&s, &test_opts, &reply, &err), 0);
	CHECK(json_is_true(json_object_get(reply, "ok")));
	CHECK(json_is_true(json_object_get(reply, "ready")));
	json_decref(reply);
}

/* A refusal is a valid reply: the caller decides what it means. */
static void test_reply_refused(void)
{
	const struct peer_script s = {
		.reply = "{\"ok\":false,\"error\":\"denied\"}\n",
		.read_request = true,
	};
	struct kh_err err = { { 0 } };
	json_t *reply = NULL;

	CHECK_INT(call_peer(&s, &test_opts, &reply, &err), 0);
	CHECK(json_is_false(json_object_get(reply, "ok")));
	json_decref(reply);
}

/* Each invalid reply, and the words its message must contain. */
static void test_reply_invalid(void)
{
	static const struct {
		const char *reply;
		const char *message;
	} cases[] = {
		{ "{\"ok\":true}\nmore", "data after the reply line" },
		{ "{\"ok\":1}\n", "boolean \"ok\"" },
		{ "[true]\n", "boolean \"ok\"" },
		{ "{\"ok\":true,\"ok\":false}\n", "invalid reply" },
		{ "{\"ok\":tr", "closed the connection" },
		{ "{\"ok\":true,\"pad\":\"" PAD_TEXT PAD_TEXT "\"}\n",
		  "reply longer than 64 bytes" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct peer_script s = {
			.reply = cases[i].reply, .read_request = true,
		};
		struct kh_err err = { { 0 } };
		json_t *reply = NULL;

		CHECK_INT(call_peer(&s, &test_opts, &reply, &err), -EPROTO);
		CHECK(reply == NULL);
		if (!strstr(err.msg, cases[i].message))
			kh_test_fail(__FILE__, __LINE__, "case %zu: \"%s\" "
				     "lacks \"%s\"", i, err.msg,
				     cases[i].message);
	}
}

/* A peer that never replies; the bound is short so the case is quick. */
static void test_reply_timeout(void)
{
	const struct kh_broker_opts opts = {
		.timeout_ms = 200, .max_reply = 64,
	};
	const struct peer_script s = { .read_request = true, .hang = true };
	struct kh_err err = { { 0 } };
	json_t *reply = NULL;

	CHECK_INT(call_peer(&s, &opts, &reply, &err), -ETIMEDOUT);
	CHECK_STR(err.msg, "no reply within 200 ms");
	CHECK(reply == NULL);
}

static void test_connect_missing(void)
{
	json_t *request = json_pack("{s:s}", "op", "status");
	struct kh_err err = { { 0 } };
	json_t *reply = NULL;

	CHECK_INT(kh_broker_call("/nonexistent/keyhole.sock", request,
				 &test_opts, &reply, &err), -ENOENT);
	CHECK(strstr(err.msg, "/nonexistent/keyhole.sock: connect failed") !=
	      NULL);
	json_decref(request);
}

/* Only a caller that asks for it rejects a broker that is not root. */
static void test_root_peer(void)
{
	const struct peer_script s = {
		.reply = "{\"ok\":true}\n", .uid = NOBODY_UID,
	};
	struct kh_broker_opts opts = test_opts;
	struct kh_err err = { { 0 } };
	json_t *reply = NULL;

	if (getuid() != 0) {
		kh_test_fail(__FILE__, __LINE__, "needs root to run the peer "
			     "as uid %d", NOBODY_UID);
		return;
	}
	CHECK_INT(call_peer(&s, &opts, &reply, &err), 0);
	json_decref(reply);
	reply = NULL;

	opts.flags = KH_BROKER_REQUIRE_ROOT_PEER;
	CHECK_INT(call_peer(&s, &opts, &reply, &err), -EPERM);
	CHECK(strstr(err.msg, "runs as uid 65534, not root") != NULL);
	CHECK(reply == NULL);
}

int main(void)
{
	static const struct kh_test_case cases[] = {
		{ "reply_ok", test_reply_ok },
		{ "reply_refused", test_reply_refused },
		{ "reply_invalid", test_reply_invalid },
		{ "reply_timeout", test_reply_timeout },
		{ "connect_missing", test_connect_missing },
		{ "root_peer", test_root_peer },
	};

	return KH_TEST_RUN("broker_client", cases);
}
