/*
 * keyhole backend list | test NAME | external-id NAME: looks at the
 * backends configured in keyhole.json without the broker. Each command
 * loads the modules itself, so it runs as the user keyholed runs as
 * (root): modules must be owned by root or the caller.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "keyhole/backend.h"
#include "keyhole/config.h"
#include "keyhole/federation.h"

static const char backend_help[] =
	"Usage: keyhole backend list [--config FILE]\n"
	"       keyhole backend test [--config FILE] NAME\n"
	"       keyhole backend external-id [--config FILE] NAME\n"
	"\n"
	"list         print each configured backend's name and type, and\n"
	"             mark the ones that hold a static credential\n"
	"test         run the backend's authentication round trip, which\n"
	"             fetches no secret, and print each step it checked\n"
	"external-id  print the ExternalId that an aws backend in\n"
	"             assume_role mode sends, for the role's trust policy\n"
	"\n"
	"Options:\n"
	"  --config FILE  read the config from FILE (default "
	KH_CONFIG_DEFAULT ")\n"
	"  -h, --help     show this help\n";

enum { OPT_CONFIG = 256 };

struct backend_options {
	const char *config;
	const char *name;
};

/* Everything a command needs: the config, the federation key, a backend. */
struct backend_session {
	struct kh_config *config;
	struct kh_fed_key *fed_key;
	struct kh_backend_env env;
};

static int set_backend_option(int opt, void *data)
{
	struct backend_options *opts = data;

	if (opt == OPT_CONFIG)
		opts->config = optarg;
	return KH_EXIT_OK;
}

/* Parses options; with_name requires exactly one NAME operand. */
static int parse_backend(const char *command, int argc, char **argv,
			 bool with_name, struct backend_options *opts)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kh_cli_parser parser = {
		.command = command,
		.help = backend_help,
		.short_options = ":h",
		.options = options,
		.set = set_backend_option,
		.reject_operands = !with_name,
	};
	int r;

	opts->config = KH_CONFIG_DEFAULT;
	opts->name = NULL;
	r = kh_cli_parse_options(&parser, argc, argv, opts);
	if (r != KH_EXIT_OK || !with_name)
		return r;
	if (optind != argc - 1)
		return kh_cli_usage_error(command, "expected one backend NAME");
	opts->name = argv[optind];
	return KH_EXIT_OK;
}

static void session_close(struct backend_session *s)
{
	kh_fed_key_free(s->fed_key);
	if (s->config)
		kh_config_free(s->config);
	memset(s, 0, sizeof(*s));
}

/*
 * Loads the config and, when it has a "federation" section, its key.
 * Returns KH_EXIT_OK or KH_EXIT_USAGE with err saying why.
 */
static int session_open(const char *path, struct backend_session *s,
			struct kh_err *err)
{
	memset(s, 0, sizeof(*s));
	if (kh_config_load(path, &s->config, err) < 0)
		return KH_EXIT_USAGE;
	if (s->config->fed_key[0] &&
	    kh_fed_key_load(s->config->fed_key, &s->fed_key, err) < 0) {
		kh_err_prefix(err, "federation.key");
		session_close(s);
		return KH_EXIT_USAGE;
	}
	s->env.backend_dir = s->config->backend_dir;
	s->env.tenant = s->config->tenant;
	s->env.env = s->config->env;
	s->env.broker_id = s->config->broker_id;
	s->env.fed_issuer = s->config->fed_issuer[0] ? s->config->fed_issuer :
						       NULL;
	s->env.fed_key = s->fed_key;
	return KH_EXIT_OK;
}

/* Opens the backend name. Returns KH_EXIT_USAGE with err saying why not. */
static int open_named(struct backend_session *s, const char *name,
		      struct kh_backend **out, struct kh_err *err)
{
	const json_t *conf = json_object_get(s->config->backends, name);

	if (!conf) {
		kh_err_set(err, "%s configures no backend \"%s\"; see keyhole "
			   "backend list", s->config->path, name);
		return KH_EXIT_USAGE;
	}
	if (kh_backend_open(name, conf, s->config->dir, &s->env, out,
			    err) < 0)
		return KH_EXIT_USAGE;
	return KH_EXIT_OK;
}

static int run_list(int argc, char **argv)
{
	struct backend_options opts;
	struct backend_session s;
	struct kh_err err = { { 0 } };
	const char *name;
	json_t *conf;
	int r, status = KH_EXIT_OK;

	r = parse_backend("backend list", argc, argv, false, &opts);
	if (r != KH_EXIT_OK)
		return r == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : r;
	r = session_open(opts.config, &s, &err);
	if (r != KH_EXIT_OK) {
		kh_cli_error("%s", err.msg);
		return r;
	}
	json_object_foreach(s.config->backends, name, conf) {
		struct kh_backend *backend = NULL;

		if (open_named(&s, name, &backend, &err) != KH_EXIT_OK) {
			kh_cli_error("%s", err.msg);
			status = KH_EXIT_USAGE;
			continue;
		}
		printf("%-20s %s%s\n", name, kh_backend_type(backend),
		       kh_backend_is_static(backend) ?
			       "  (static credential)" : "");
		kh_backend_close(backend);
	}
	session_close(&s);
	return status;
}

/* Prints each {"check", "result"} step of a test report. */
static void print_report(const json_t *report)
{
	const json_t *step;
	size_t i;

	json_array_foreach(report, i, step) {
		printf("  %s: %s\n",
		       json_string_value(json_object_get(step, "check")),
		       json_string_value(json_object_get(step, "result")));
	}
}

int kh_cli_backend_test(const char *config_path, const char *name,
			char type[KH_CLI_BACKEND_TYPE_MAX], json_t **report,
			struct kh_err *err)
{
	struct backend_session s;
	struct kh_backend *backend = NULL;
	int r;

	type[0] = '\0';
	*report = NULL;
	r = session_open(config_path, &s, err);
	if (r == KH_EXIT_OK)
		r = open_named(&s, name, &backend, err);
	if (r != KH_EXIT_OK)
		goto out;

	(void)snprintf(type, KH_CLI_BACKEND_TYPE_MAX, "%s",
		       kh_backend_type(backend));
	if (kh_backend_test(backend, report, err) < 0)
		r = KH_EXIT_FAILED;
out:
	kh_backend_close(backend);
	session_close(&s);
	return r;
}

static int run_test(int argc, char **argv)
{
	struct backend_options opts;
	struct kh_err err = { { 0 } };
	char type[KH_CLI_BACKEND_TYPE_MAX];
	json_t *report = NULL;
	int r;

	r = parse_backend("backend test", argc, argv, true, &opts);
	if (r != KH_EXIT_OK)
		return r == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : r;
	r = kh_cli_backend_test(opts.config, opts.name, type, &report, &err);
	if (r == KH_EXIT_USAGE) {
		kh_cli_error("%s", err.msg);
		return r;
	}

	printf("backend %s (type %s):\n", opts.name, type);
	print_report(report);
	if (r == KH_EXIT_FAILED)
		kh_cli_error("backend %s: test failed: %s", opts.name, err.msg);
	else
		printf("backend %s: ok\n", opts.name);
	json_decref(report);
	return r;
}

static int run_external_id(int argc, char **argv)
{
	struct backend_options opts;
	struct backend_session s;
	struct kh_backend *backend = NULL;
	struct kh_err err = { { 0 } };
	json_t *facts = NULL;
	const char *id;
	int r;

	r = parse_backend("backend external-id", argc, argv, true, &opts);
	if (r != KH_EXIT_OK)
		return r == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : r;
	r = session_open(opts.config, &s, &err);
	if (r == KH_EXIT_OK)
		r = open_named(&s, opts.name, &backend, &err);
	if (r != KH_EXIT_OK) {
		kh_cli_error("%s", err.msg);
		goto out;
	}

	facts = kh_backend_describe(backend);
	id = json_string_value(json_object_get(facts, "external_id"));
	if (!id) {
		kh_cli_error("backend %s (type %s) uses no ExternalId; only an "
			     "aws backend in assume_role mode has one",
			     opts.name, kh_backend_type(backend));
		r = KH_EXIT_USAGE;
		goto out;
	}
	printf("%s\n", id);
out:
	json_decref(facts);
	kh_backend_close(backend);
	session_close(&s);
	return r;
}

int kh_cmd_backend(int argc, char **argv)
{
	if (argc < 2)
		return kh_cli_usage_error("backend", "missing command");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(backend_help, stdout);
		return KH_EXIT_OK;
	}
	if (strcmp(argv[1], "list") == 0)
		return run_list(argc - 1, argv + 1);
	if (strcmp(argv[1], "test") == 0)
		return run_test(argc - 1, argv + 1);
	if (strcmp(argv[1], "external-id") == 0)
		return run_external_id(argc - 1, argv + 1);
	return kh_cli_usage_error("backend", "unknown command: %s", argv[1]);
}
