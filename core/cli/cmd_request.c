/*
 * keyhole request and keyhole revoke: the two broker requests that
 * change state. request obtains a permit bound to one action, and revoke
 * withdraws a permit before it expires.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "keyhole/action.h"
#include "keyhole/config.h"
#include "keyhole/permit.h"

static const char request_help[] =
	"Usage: keyhole request [--socket PATH] [--json] --action JSON|@FILE\n"
	"       keyhole request [--socket PATH] [--json] --exec -- CMD [ARGS...]\n"
	"\n"
	"Asks the broker for a permit bound to one action and prints the path\n"
	"of the permit file it wrote. A denial prints \"denied: REASON\" on\n"
	"standard error and exits 1.\n"
	"\n"
	"Options:\n"
	"  --action JSON   a tool_call action, e.g.\n"
	"                  '{\"type\":\"tool_call\",\"tool\":\"stripe.charge\",\"params\":{}}';\n"
	"                  @FILE reads it from FILE\n"
	"  --exec          bind the permit to the command line after --; CMD is\n"
	"                  resolved through PATH and realpath, as the broker sees it\n"
	"  --socket PATH   broker socket (default $" KH_SOCKET_ENV ", else\n"
	"                  " KH_SOCKET_DEFAULT ")\n"
	"  --json          print the broker's whole response as one JSON line\n"
	"  -h, --help      show this help\n";

static const char revoke_help[] =
	"Usage: keyhole revoke [--socket PATH] [--] JTI\n"
	"\n"
	"Revokes the permit with id JTI (its \"jti\" claim, as printed by\n"
	"keyhole verify or keyhole request --json). Only the permit's owner,\n"
	"root or a member of the config's admin_group may revoke it. A jti\n"
	"can start with '-', so scripts should pass it after --:\n"
	"keyhole revoke -- \"$jti\"\n"
	"\n"
	"Options:\n"
	"  --socket PATH   broker socket (default $" KH_SOCKET_ENV ", else\n"
	"                  " KH_SOCKET_DEFAULT ")\n"
	"  -h, --help      show this help\n";

enum { OPT_SOCKET = 256, OPT_JSON, OPT_ACTION, OPT_EXEC };

struct request_options {
	const char *socket;
	const char *action;
	bool json;
	bool exec;
	char **command;
};

static int set_request_option(int opt, void *data)
{
	struct request_options *opts = data;

	switch (opt) {
	case OPT_SOCKET:
		opts->socket = optarg;
		break;
	case OPT_JSON:
		opts->json = true;
		break;
	case OPT_ACTION:
		opts->action = optarg;
		break;
	case OPT_EXEC:
		opts->exec = true;
		break;
	}
	return KH_EXIT_OK;
}

static int parse_request(int argc, char **argv, struct request_options *opts)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "action", required_argument, NULL, OPT_ACTION },
		{ "exec", no_argument, NULL, OPT_EXEC },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "request",
		.help = request_help,
		.short_options = "+:h",
		.options = options,
		.set = set_request_option,
	};
	int rc;

	memset(opts, 0, sizeof(*opts));
	argc = kh_cli_split_command(argc, argv, &opts->command);
	rc = kh_cli_parse_options(&parser, argc, argv, opts);
	if (rc != KH_EXIT_OK)
		return rc;
	if (!opts->command && opts->exec)
		opts->command = argv + optind;
	else if (optind < argc)
		return kh_cli_usage_error("request", "unexpected argument: %s",
					  argv[optind]);
	if (opts->exec == !!opts->action)
		return kh_cli_usage_error("request", "give exactly one of "
					  "--action and --exec");
	if (opts->exec && !opts->command[0])
		return kh_cli_usage_error("request", "missing command after "
					  "--exec --");
	if (!opts->exec && opts->command)
		return kh_cli_usage_error("request", "a command after -- needs "
					  "--exec");
	return KH_EXIT_OK;
}

static int build_action(const struct request_options *opts, json_t **action)
{
	struct kh_err err = { { 0 } };
	int rc;

	if (opts->exec)
		rc = kh_action_from_argv(opts->command, action, &err);
	else
		rc = kh_cli_parse_action(opts->action, action, &err);
	if (rc < 0) {
		kh_cli_error("request: invalid action: %s", err.msg);
		return KH_EXIT_USAGE;
	}
	return KH_EXIT_OK;
}

static int print_permit(const json_t *response)
{
	const char *path = json_string_value(json_object_get(response, "path"));

	if (!path) {
		kh_cli_error("request: broker response has no permit path: "
			     "check that keyhole and keyholed versions match");
		return KH_EXIT_SYSTEM;
	}
	printf("%s\n", path);
	return KH_EXIT_OK;
}

int kh_cmd_request(int argc, char **argv)
{
	struct request_options opts;
	json_t *action = NULL, *request = NULL, *response = NULL;
	int rc;

	rc = parse_request(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	rc = build_action(&opts, &action);
	if (rc != KH_EXIT_OK)
		goto out;
	request = json_pack("{s:s, s:O}", "op", "request", "action", action);
	if (!request) {
		kh_cli_error("request: out of memory");
		rc = KH_EXIT_SYSTEM;
		goto out;
	}
	rc = kh_client_run("request", kh_client_socket_path(opts.socket),
			   request, &response);
	if (opts.json && response)
		kh_cli_print_json_line(response);
	else if (rc == KH_EXIT_OK)
		rc = print_permit(response);
out:
	json_decref(response);
	json_decref(request);
	json_decref(action);
	return rc;
}

static int set_revoke_option(int opt, void *data)
{
	const char **socket = data;

	if (opt == OPT_SOCKET)
		*socket = optarg;
	return KH_EXIT_OK;
}

static int parse_revoke(int argc, char **argv, const char **socket,
			const char **jti)
{
	static const struct option options[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "revoke",
		.help = revoke_help,
		.short_options = ":h",
		.options = options,
		.set = set_revoke_option,
		.jti_operand = true,
	};
	int rc;

	*socket = NULL;
	*jti = NULL;
	rc = kh_cli_parse_options(&parser, argc, argv, socket);
	if (rc != KH_EXIT_OK)
		return rc;
	if (argc - optind != 1)
		return kh_cli_usage_error("revoke", "expected one JTI, got %d "
					  "arguments", argc - optind);
	*jti = argv[optind];
	/* A typo in a jti is caught here, before it reaches the broker. */
	if (!kh_permit_jti_is_valid(*jti))
		return kh_cli_usage_error("revoke", "invalid jti: %s: copy the "
					  "%d-character last part of the "
					  "permit path", *jti, KH_JTI_LEN);
	return KH_EXIT_OK;
}

int kh_cmd_revoke(int argc, char **argv)
{
	const char *socket = NULL, *jti = NULL;
	json_t *request = NULL, *response = NULL;
	int rc;

	rc = parse_revoke(argc, argv, &socket, &jti);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	request = json_pack("{s:s, s:s}", "op", "revoke", "jti", jti);
	if (!request) {
		kh_cli_error("revoke: out of memory");
		return KH_EXIT_SYSTEM;
	}
	rc = kh_client_run("revoke", kh_client_socket_path(socket), request,
			   &response);
	if (rc == KH_EXIT_OK)
		printf("revoked %s\n", jti);
	json_decref(response);
	json_decref(request);
	return rc;
}
