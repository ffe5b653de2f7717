/*
 * keyhole status: requests the broker's status and, with --wait, retries
 * until it is ready, so that scripts can start keyholed and block until
 * its socket responds.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "keyhole/config.h"

static const char status_help[] =
	"Usage: keyhole status [--socket PATH] [--wait SECONDS] [--json]\n"
	"\n"
	"Asks the broker for its status and prints its tenant, environment,\n"
	"policy hash (hP) and version. Exits 0 when the broker is ready and\n"
	"3 when it is unreachable or not ready.\n"
	"\n"
	"Options:\n"
	"  --socket PATH     broker socket (default $" KH_SOCKET_ENV ", else\n"
	"                    " KH_SOCKET_DEFAULT ")\n"
	"  --wait SECONDS    retry every 100 ms until the broker is ready or\n"
	"                    SECONDS (0 to 86400) have passed\n"
	"  --json            print the broker's whole response as one JSON line\n"
	"  -h, --help        show this help\n";

/* Interval between two tries under --wait. */
#define POLL_INTERVAL_MS 100

enum { OPT_SOCKET = 256, OPT_WAIT, OPT_JSON };

struct status_options {
	const char *socket;
	long long wait_seconds;
	bool json;
};

static int set_status_option(int opt, void *data)
{
	struct status_options *opts = data;

	switch (opt) {
	case OPT_SOCKET:
		opts->socket = optarg;
		break;
	case OPT_WAIT:
		if (kh_cli_parse_int(optarg, 0, 86400, &opts->wait_seconds) < 0)
			return kh_cli_usage_error("status", "invalid --wait: %s: "
						  "give whole seconds from 0 "
						  "to 86400", optarg);
		break;
	case OPT_JSON:
		opts->json = true;
		break;
	}
	return KH_EXIT_OK;
}

static int parse_status(int argc, char **argv, struct status_options *opts)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "wait", required_argument, NULL, OPT_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "status",
		.help = status_help,
		.short_options = ":h",
		.options = options,
		.set = set_status_option,
		.reject_operands = true,
	};

	memset(opts, 0, sizeof(*opts));
	return kh_cli_parse_options(&parser, argc, argv, opts);
}

/* A broker that omits "ready" is ready once it replies "ok":true. */
static bool is_ready(const json_t *response)
{
	const json_t *ready = json_object_get(response, "ready");

	return json_is_true(json_object_get(response, "ok")) &&
	       (!ready || json_is_true(ready));
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		continue;
}

static void print_status(const json_t *response, bool json)
{
	static const char *const fields[] = { "tenant", "env", "hP",
					      "version" };

	if (json) {
		kh_cli_print_json_line(response);
		return;
	}
	printf("ready\n");
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *value =
			json_string_value(json_object_get(response, fields[i]));

		if (value)
			printf("%s: %s\n", fields[i], value);
	}
}

/*
 * Tries until the broker is ready or the deadline passes. Returns the
 * last response (or NULL) and the last call's error in rc and err.
 */
static json_t *poll_status(const char *socket, int64_t deadline, int *rc,
			   struct kh_err *err)
{
	json_t *request = json_pack("{s:s}", "op", "status");
	json_t *response = NULL;

	*rc = -ENOMEM;
	while (request) {
		json_decref(response);
		kh_err_clear(err);
		*rc = kh_client_call(socket, request, &response, err);
		if (*rc == 0 && is_ready(response))
			break;
		if (kh_cli_now_ms() + POLL_INTERVAL_MS > deadline)
			break;
		sleep_ms(POLL_INTERVAL_MS);
	}
	json_decref(request);
	return response;
}

int kh_cmd_status(int argc, char **argv)
{
	struct status_options opts;
	struct kh_err err = { { 0 } };
	json_t *response;
	const char *socket;
	int64_t deadline;
	int rc;

	rc = parse_status(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	socket = kh_client_socket_path(opts.socket);
	deadline = kh_cli_now_ms() + opts.wait_seconds * 1000;
	response = poll_status(socket, deadline, &rc, &err);
	if (rc < 0) {
		kh_cli_error("status: broker unreachable: %s: start keyholed, "
			     "or pass --socket or set " KH_SOCKET_ENV, err.msg);
		rc = KH_EXIT_SYSTEM;
	} else if (!json_is_true(json_object_get(response, "ok"))) {
		/* The help promises 3 for any broker that is not ready. */
		(void)kh_client_report_error("status", response);
		if (opts.json)
			print_status(response, true);
		rc = KH_EXIT_SYSTEM;
	} else if (!is_ready(response)) {
		kh_cli_error("status: broker not ready: %s: check the keyholed "
			     "log", socket);
		if (opts.json)
			print_status(response, true);
		rc = KH_EXIT_SYSTEM;
	} else {
		print_status(response, opts.json);
		rc = KH_EXIT_OK;
	}
	json_decref(response);
	return rc;
}
