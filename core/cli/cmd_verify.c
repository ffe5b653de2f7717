/*
 * keyhole verify: decodes a permit with the permit public key and runs
 * the checks that need no broker state (signature, tenant, environment,
 * time and, on request, the action). Use counts, revocation and the
 * current policy version are the broker's to judge and are not checked.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "keyhole/action.h"
#include "keyhole/config.h"
#include "keyhole/key.h"
#include "keyhole/permit.h"

static const char verify_help[] =
	"Usage: keyhole verify [--config FILE] [--key PUB.jwk]\n"
	"                      [--action JSON|@FILE] PERMIT\n"
	"       keyhole verify [--config FILE] [--key PUB.jwk] --exec PERMIT\n"
	"                      -- CMD [ARGS...]\n"
	"\n"
	"Decodes PERMIT (a file, or - for standard input), prints its claims\n"
	"and ends with \"verdict: ok\" or \"verdict: REASON\". It checks the\n"
	"signature and the validity window, the tenant and environment when a\n"
	"config is loaded, and the action when --action or --exec is given.\n"
	"Use counts, revocation and the policy version are checked only by\n"
	"the broker.\n"
	"\n"
	"Options:\n"
	"  --config FILE   keyhole.json: gives the tenant, the environment and\n"
	"                  the permit key (permit_key with .jwk -> .pub.jwk);\n"
	"                  read from " KH_CONFIG_DEFAULT " when\n"
	"                  neither --config nor --key is given\n"
	"  --key PUB.jwk   permit public key (overrides the config's)\n"
	"  --action JSON   check that the permit is bound to this action;\n"
	"                  @FILE reads it from FILE\n"
	"  --exec          check that the permit is bound to the command line\n"
	"                  after --, resolved as keyhole request --exec does\n"
	"  -h, --help      show this help\n"
	"\n"
	"Exit status: 0 when the verdict is ok, 1 when it is not, 2 for a\n"
	"usage, config or key error.\n";

enum { OPT_CONFIG = 256, OPT_KEY, OPT_ACTION, OPT_EXEC };

struct verify_options {
	const char *config;
	const char *key;
	const char *action;
	bool exec;
	const char *permit;
	char **command;
};

static int set_verify_option(int opt, void *data)
{
	struct verify_options *opts = data;

	switch (opt) {
	case OPT_CONFIG:
		opts->config = optarg;
		break;
	case OPT_KEY:
		opts->key = optarg;
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

static int check_verify_args(int argc, char **argv,
			     struct verify_options *opts)
{
	if (argc - optind != 1)
		return kh_cli_usage_error("verify", "expected one PERMIT, got "
					  "%d arguments", argc - optind);
	opts->permit = argv[optind];
	if (opts->exec && opts->action)
		return kh_cli_usage_error("verify", "give at most one of "
					  "--action and --exec");
	if (opts->exec && (!opts->command || !opts->command[0]))
		return kh_cli_usage_error("verify", "missing command after "
					  "--exec PERMIT --");
	if (!opts->exec && opts->command)
		return kh_cli_usage_error("verify", "a command after -- needs "
					  "--exec");
	return KH_EXIT_OK;
}

static int parse_verify(int argc, char **argv, struct verify_options *opts)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "action", required_argument, NULL, OPT_ACTION },
		{ "exec", no_argument, NULL, OPT_EXEC },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "verify",
		.help = verify_help,
		.short_options = ":h",
		.options = options,
		.set = set_verify_option,
	};
	int rc;

	memset(opts, 0, sizeof(*opts));
	argc = kh_cli_split_command(argc, argv, &opts->command);
	rc = kh_cli_parse_options(&parser, argc, argv, opts);
	if (rc != KH_EXIT_OK)
		return rc;
	return check_verify_args(argc, argv, opts);
}

/* Everything the checks need, gathered before the permit is read. */
struct verify_inputs {
	struct kh_config *config;
	struct kh_key *key;
	char hA[KH_HASH_HEX_LEN + 1];
	bool has_action;
};

static int load_config_and_key(const struct verify_options *opts,
			       struct verify_inputs *in)
{
	struct kh_err err = { { 0 } };
	char path[PATH_MAX];
	const char *key_path = opts->key;
	const char *config_path = opts->config ? opts->config
					       : KH_CONFIG_DEFAULT;

	if (opts->config || !opts->key) {
		if (kh_config_load(config_path, &in->config, &err) < 0) {
			kh_cli_error("verify: cannot load config: %s%s", err.msg,
				     opts->config ? "" : ": pass --config FILE "
							 "or --key PUB.jwk");
			return KH_EXIT_USAGE;
		}
	}
	if (!key_path) {
		if (kh_config_public_key_path(in->config->permit_key, path,
					      sizeof(path)) < 0) {
			kh_cli_error("verify: no public key path for %s: pass "
				     "--key", in->config->permit_key);
			return KH_EXIT_USAGE;
		}
		key_path = path;
	}
	if (kh_key_load(key_path, &in->key, &err) < 0) {
		kh_cli_error("verify: cannot load permit key: %s", err.msg);
		return KH_EXIT_USAGE;
	}
	return KH_EXIT_OK;
}

static int load_action(const struct verify_options *opts,
		       struct verify_inputs *in)
{
	struct kh_err err = { { 0 } };
	json_t *action = NULL;
	int rc = 0;

	if (opts->exec)
		rc = kh_action_from_argv(opts->command, &action, &err);
	else if (opts->action)
		rc = kh_cli_parse_action(opts->action, &action, &err);
	if (rc == 0 && action)
		rc = kh_action_hash(action, in->hA, &err);
	json_decref(action);
	if (rc < 0) {
		kh_cli_error("verify: invalid action: %s", err.msg);
		return KH_EXIT_USAGE;
	}
	in->has_action = opts->exec || opts->action;
	return KH_EXIT_OK;
}

static void print_claims(const struct kh_permit *permit)
{
	size_t flags = JSON_INDENT(2) | JSON_SORT_KEYS;
	char *text = json_dumps(permit->claims, flags);
	char issued[32], expires[32];

	if (text)
		printf("%s\n", text);
	free(text);
	kh_cli_format_time(permit->iat, issued);
	kh_cli_format_time(permit->exp, expires);
	printf("issued: %s\nexpires: %s\n", issued, expires);
}

/* Lists the checks that ran, so that a skipped check is not taken as passed. */
static void print_checks(const struct verify_inputs *in)
{
	printf("checked: signature, time%s%s\n",
	       in->config ? ", tenant, env" : "",
	       in->has_action ? ", action" : "");
}

static enum kh_verdict check_permit(const char *token, size_t len,
				    const struct verify_inputs *in,
				    struct kh_err *err)
{
	struct kh_keyring ring = { .keys = { in->key }, .count = 1 };
	struct kh_permit permit = { 0 };
	/*
	 * Uses, the current policy and the opened secret are known only to
	 * the broker, so they are skipped here. print_checks lists what ran.
	 */
	struct kh_permit_expect expect = {
		.tenant = in->config ? in->config->tenant : NULL,
		.env = in->config ? in->config->env : NULL,
		.now = (int64_t)time(NULL),
		.uid = -1,
		.hA = in->has_action ? in->hA : NULL,
		.uses_spent = -1,
		.skip = KH_CHECK_UID | KH_CHECK_POLICY | KH_CHECK_USES |
			KH_CHECK_SECRET |
			(in->config ? 0 : KH_CHECK_TENANT | KH_CHECK_ENV) |
			(in->has_action ? 0 : KH_CHECK_ACTION),
	};
	enum kh_verdict verdict;

	verdict = kh_permit_decode(token, len, &ring, &permit, err);
	if (verdict != KH_VERDICT_OK)
		return verdict;
	print_claims(&permit);
	verdict = kh_permit_check_all(&permit, &expect, err);
	kh_permit_clear(&permit);
	return verdict;
}

static int verify_token(const struct verify_options *opts,
			const struct verify_inputs *in)
{
	struct kh_err err = { { 0 } };
	enum kh_verdict verdict = KH_VERDICT_MALFORMED;
	char *token = NULL;
	size_t len = 0;
	int rc;

	/* Room for a trailing newline after the longest valid token. */
	rc = kh_cli_read_file(opts->permit, KH_PERMIT_MAX + 2, &token, &len,
			      &err);
	if (rc < 0 && rc != -EFBIG) {
		kh_cli_error("verify: cannot read permit: %s", err.msg);
		return KH_EXIT_USAGE;
	}
	if (rc == 0)
		verdict = check_permit(token, len, in, &err);
	free(token);
	print_checks(in);
	printf("verdict: %s\n", kh_verdict_str(verdict));
	if (verdict == KH_VERDICT_OK)
		return KH_EXIT_OK;
	if (err.msg[0])
		kh_cli_error("verify: %s: %s", opts->permit, err.msg);
	return KH_EXIT_FAILED;
}

int kh_cmd_verify(int argc, char **argv)
{
	struct verify_options opts;
	struct verify_inputs in = { 0 };
	int rc;

	rc = parse_verify(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	rc = load_config_and_key(&opts, &in);
	if (rc == KH_EXIT_OK)
		rc = load_action(&opts, &in);
	if (rc == KH_EXIT_OK)
		rc = verify_token(&opts, &in);
	kh_key_free(in.key);
	kh_config_free(in.config);
	return rc;
}
