/*
 * Pieces shared by the subcommands of the keyhole command-line tool.
 * Each subcommand gets argv starting at its own name and returns an
 * exit code from enum kh_exit.
 */
#ifndef KEYHOLE_CLI_H
#define KEYHOLE_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyhole/confine.h"
#include "keyhole/error.h"

/* Exit codes, as listed by keyhole --help. */
enum kh_exit {
	KH_EXIT_OK = 0,
	KH_EXIT_FAILED = 1, /* denied, or verification failed */
	KH_EXIT_USAGE = 2,  /* usage or config error */
	KH_EXIT_SYSTEM = 3, /* broker unreachable, or system error */
};

/* Returned by option parsers after printing --help; the command exits 0. */
#define KH_CLI_HELP_SHOWN (-1)

/* Exit codes of keyhole exec when CMD cannot run, as a shell uses them. */
#define KH_EXIT_CANNOT_EXEC 126
#define KH_EXIT_NOT_FOUND 127

/* Environment variable that overrides the default broker socket. */
#define KH_SOCKET_ENV "KEYHOLE_SOCKET"

/* Time one broker round trip may take before the client gives up. */
#define KH_CLIENT_TIMEOUT_MS 30000

/* Largest broker response line accepted, in bytes. */
#define KH_CLIENT_MAX_RESPONSE (64 * 1024)

int kh_cmd_keygen(int argc, char **argv);
/* keyhole keygen --federation, which kh_cmd_keygen hands over to. */
int kh_cmd_keygen_federation(int argc, char **argv);
int kh_cmd_oidc(int argc, char **argv);
int kh_cmd_backend(int argc, char **argv);
int kh_cmd_request(int argc, char **argv);
int kh_cmd_revoke(int argc, char **argv);
int kh_cmd_exec(int argc, char **argv);
int kh_cmd_verify(int argc, char **argv);
int kh_cmd_status(int argc, char **argv);
int kh_cmd_audit(int argc, char **argv);
int kh_cmd_audit_verify(int argc, char **argv);
int kh_cmd_audit_show(int argc, char **argv);
int kh_cmd_audit_replay(int argc, char **argv);
int kh_cmd_confine(int argc, char **argv);
int kh_cmd_doctor(int argc, char **argv);

/* Prints "keyhole: " and the formatted message to stderr. */
void kh_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Reports a usage error of command ("keygen", "audit show") on stderr,
 * with a pointer to its --help. Returns KH_EXIT_USAGE.
 */
int kh_cli_usage_error(const char *command, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Reports the getopt_long error that just happened (unknown option or
 * missing argument; the option string must start with ':'). Returns
 * KH_EXIT_USAGE.
 */
int kh_cli_option_error(const char *command, int opt, char **argv);

/*
 * The options of one subcommand, for kh_cli_parse_options. set stores
 * one option other than --help into opts, reading its value from
 * optarg, and returns KH_EXIT_OK or the exit code of a usage error.
 */
struct kh_cli_parser {
	const char *command; /* as named in messages: "audit show" */
	const char *help;    /* printed for -h and --help */
	/* getopt string: starts with ':', or "+:" to stop at the first operand */
	const char *short_options;
	const struct option *options; /* --help has val 'h', a zero entry ends it */
	int (*set)(int opt, void *opts);
	bool reject_operands; /* a word after the options is a usage error */
	/*
	 * The operand is a jti, which starts with '-' once in 64: such a
	 * word before "--" is reported with the advice to put it after
	 * "--", instead of being parsed as options.
	 */
	bool jti_operand;
};

/*
 * Runs getopt_long over argv, from argv[1], and passes each option to
 * parser->set. Prints the help and returns KH_CLI_HELP_SHOWN for -h or
 * --help. Reports an unknown option, a missing value and, with
 * reject_operands, a leftover word. Otherwise returns KH_EXIT_OK with
 * optind at the first operand.
 */
int kh_cli_parse_options(const struct kh_cli_parser *parser, int argc,
			 char **argv, void *opts);

/*
 * Splits argv at the first "--": argv[index] becomes NULL, and the
 * words after it (NULL-terminated, possibly none) go to *command.
 * Returns the number of words before "--", or argc when there is none
 * (then *command is NULL).
 */
int kh_cli_split_command(int argc, char **argv, char ***command);

/*
 * Reads a whole file, or standard input when path is "-", into a
 * NUL-terminated malloc'd buffer of at most max bytes. Returns -EFBIG
 * when the input is larger.
 */
int kh_cli_read_file(const char *path, size_t max, char **out, size_t *len,
		     struct kh_err *err);

/*
 * Parses the value of an --action option: inline JSON, or "@FILE" for
 * a file, parsed strictly and checked with kh_action_validate.
 */
int kh_cli_parse_action(const char *arg, json_t **out, struct kh_err *err);

/* Prints value as one compact JSON line with sorted keys. */
void kh_cli_print_json_line(const json_t *value);

/*
 * Reports a failed kh_dpr_foreach over the log in dir for command.
 * Returns the exit code: KH_EXIT_USAGE when the log does not exist,
 * else KH_EXIT_SYSTEM.
 */
int kh_cli_log_read_error(const char *command, const char *dir, int rc,
			  const struct kh_err *err);

/* Parses a decimal integer in [min, max]. Returns -EINVAL otherwise. */
int kh_cli_parse_int(const char *text, long long min, long long max,
		     long long *out);

/* CLOCK_MONOTONIC in milliseconds, for deadlines. */
int64_t kh_cli_now_ms(void);

/* Formats unix seconds as ISO 8601 UTC ("2024-05-01T12:00:00Z"). */
void kh_cli_format_time(int64_t seconds, char buf[32]);

/*
 * Loads confinement profile name from profile_dir (NULL for the
 * default) for the calling user: uid from getuid(), home from the
 * password database, permits_dir and secrets_mount from config_path.
 * When config_path is NULL and the default config cannot be read, the
 * compiled-in defaults are used, with a note only when verbose is set.
 * Prints any error for command. Returns KH_EXIT_OK, KH_EXIT_USAGE for
 * a config_path that cannot be loaded or an invalid or missing profile,
 * or KH_EXIT_SYSTEM.
 */
int kh_cli_confine_load(const char *command, const char *config_path,
			const char *profile_dir, const char *name, bool verbose,
			struct kh_confine_profile **out);

/* Size of the type buffer that kh_cli_backend_test fills. */
#define KH_CLI_BACKEND_TYPE_MAX 64

/*
 * Loads the config at config_path (and its federation key), opens the
 * backend name and runs its authentication round trip, which fetches no
 * secret: what keyhole backend test and keyhole doctor report. Fills
 * type once the backend is open ("" before) and *report with the steps
 * checked (new reference, or NULL). Returns KH_EXIT_OK, KH_EXIT_USAGE
 * when the config or the backend cannot be opened, or KH_EXIT_FAILED
 * when the round trip failed. err then gives the reason.
 */
int kh_cli_backend_test(const char *config_path, const char *name,
			char type[KH_CLI_BACKEND_TYPE_MAX], json_t **report,
			struct kh_err *err);

/* Returns the option when given, else $KEYHOLE_SOCKET, else the default. */
const char *kh_client_socket_path(const char *option);

/*
 * Runs kh_broker_call with the CLI's limits (KH_CLIENT_TIMEOUT_MS,
 * KH_CLIENT_MAX_RESPONSE): one JSON line to the broker's unix socket,
 * one JSON object back into *response (new reference). Returns -errno
 * from connect (-ENOENT, -ECONNREFUSED, -EACCES) or send, -ETIMEDOUT,
 * or -EPROTO for a response that is not one JSON object with a boolean
 * "ok".
 */
int kh_client_call(const char *socket_path, const json_t *request,
		   json_t **response, struct kh_err *err);

/*
 * Runs one round trip for command and prints any failure. Returns
 * KH_EXIT_OK when the broker replied "ok":true. Otherwise returns the
 * exit code for the error: "denied" 1, "invalid" or "not_found" 2,
 * unreachable, "busy" or "internal" 3. *response is set whenever a reply
 * came.
 */
int kh_client_run(const char *command, const char *socket_path,
		  const json_t *request, json_t **response);

/*
 * Prints the failure in a broker reply with "ok":false, taking its
 * "error" and "reason" members. Returns the exit code that
 * kh_client_run uses for it: "denied" 1, "invalid" or "not_found" 2,
 * anything else ("busy", "internal") 3.
 */
int kh_client_report_error(const char *command, const json_t *response);

#endif
