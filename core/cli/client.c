/*
 * The CLI's use of the broker socket (keyhole/broker.h): which socket,
 * and how a failed or refused request becomes a message and an exit
 * code. The broker learns who is asking from SO_PEERCRED, so the
 * request carries no identity.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "keyhole/broker.h"
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

int kh_client_call(const char *socket_path, const json_t *request,
		   json_t **response, struct kh_err *err)
{
	static const struct kh_broker_opts opts = {
		.timeout_ms = KH_CLIENT_TIMEOUT_MS,
		.max_reply = KH_CLIENT_MAX_RESPONSE,
	};

	return kh_broker_call(socket_path, request, &opts, response, err);
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
