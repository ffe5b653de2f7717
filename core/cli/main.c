/* keyhole: the command-line tool. Dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "keyhole/keyhole.h"

struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "keygen", "create the permit and audit signing keys", kh_cmd_keygen },
	{ "request", "ask the broker for a permit", kh_cmd_request },
	{ "exec", "run a command with permits open, optionally confined",
	  kh_cmd_exec },
	{ "verify", "decode and check a permit offline", kh_cmd_verify },
	{ "status", "check that the broker is ready", kh_cmd_status },
	{ "revoke", "revoke a permit by its jti", kh_cmd_revoke },
	{ "audit", "verify, show or replay the audit log", kh_cmd_audit },
	{ "oidc", "export the OIDC documents for the federation key",
	  kh_cmd_oidc },
	{ "backend", "list or test the backends, or print an ExternalId",
	  kh_cmd_backend },
	{ "confine", "show a confinement profile", kh_cmd_confine },
	{ "doctor", "check the installation and the running broker",
	  kh_cmd_doctor },
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static void print_help(void)
{
	fputs("Usage: keyhole COMMAND [OPTIONS]\n"
	      "       keyhole --help | --version\n"
	      "\n"
	      "Permit-gated secrets for AI agents: request and hold short-lived\n"
	      "permits, check them offline, and audit the decision log.\n"
	      "\n"
	      "Commands:\n",
	      stdout);
	for (size_t i = 0; i < COMMAND_COUNT; i++)
		printf("  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "Run 'keyhole COMMAND --help' for the options of a command.\n"
	      "\n"
	      "Exit status:\n"
	      "  0  success\n"
	      "  1  denied, or verification failed\n"
	      "  2  usage or config error\n"
	      "  3  broker unreachable, or system error\n"
	      "keyhole exec exits with the status of the command it runs, or\n"
	      "with 126 when the command cannot run and 127 when it is not found.\n"
	      "\n"
	      "Environment:\n"
	      "  " KH_SOCKET_ENV "    broker socket (default "
	      KH_SOCKET_DEFAULT ")\n"
	      "  KEYHOLE_PERMITS   the session's permit directory (set by "
	      "pam_keyhole)\n"
	      "  KEYHOLE_SECRETS   the session's secrets mount (set by "
	      "pam_keyhole); when\n"
	      "                    both are set, confine show and exec "
	      "--confine use them\n"
	      "                    unless --config is given\n",
	      stdout);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}

/* "keyhole help [COMMAND]" is the same as "keyhole [COMMAND] --help". */
static int run_help(int argc, char **argv)
{
	const struct command *command;
	char *help_argv[] = { NULL, "--help", NULL };

	if (argc < 3) {
		print_help();
		return KH_EXIT_OK;
	}
	command = find_command(argv[2]);
	if (!command)
		return kh_cli_usage_error(NULL, "unknown command: %s", argv[2]);
	help_argv[0] = argv[2];
	return command->run(2, help_argv);
}

/*
 * Catches output lost to a full disk or a closed pipe, which printf
 * alone would hide behind a success exit code.
 */
static int flush_output(int status)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return status;
	kh_cli_error("cannot write to standard output");
	return status == KH_EXIT_OK ? KH_EXIT_SYSTEM : status;
}

int main(int argc, char **argv)
{
	const struct command *command;

	if (argc < 2)
		return kh_cli_usage_error(NULL, "missing command");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		print_help();
		return KH_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("keyhole %s\n", KH_VERSION);
		return KH_EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0)
		return run_help(argc, argv);

	command = find_command(argv[1]);
	if (!command)
		return kh_cli_usage_error(NULL, "unknown command: %s", argv[1]);
	return flush_output(command->run(argc - 1, argv + 1));
}
