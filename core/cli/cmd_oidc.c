/*
 * keyhole oidc export: writes the OIDC discovery document and the JWKS
 * that verifiers of the broker's federation JWTs fetch from its issuer
 * URL. Any static web server can serve the directory it writes.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "keyhole/config.h"
#include "keyhole/federation.h"

static const char oidc_help[] =
	"Usage: keyhole oidc export --dir DIR [--issuer URL] [OPTIONS]\n"
	"\n"
	"Writes DIR/.well-known/openid-configuration and DIR/jwks.json for\n"
	"the broker's federation key. Serve DIR at the issuer URL over https,\n"
	"so that AWS STS, Vault and Entra ID can verify the broker's JWTs.\n"
	"jwks.json lists the current key and every key that 'keyhole keygen\n"
	"--federation --rotate' retired less than the overlap period ago.\n"
	"\n"
	"Options:\n"
	"  --dir DIR          output directory (created with mode 0755)\n"
	"  --issuer URL       https issuer URL; must equal the config's\n"
	"                     federation.issuer when the config sets one\n"
	"  --overlap SECONDS  how long a retired key stays published\n"
	"                     (default 86400)\n"
	"  --config FILE      keyhole.json to read the federation section from\n"
	"                     (default " KH_CONFIG_DEFAULT ")\n"
	"  --key PATH         federation private key; with it, no config is\n"
	"                     read unless --config is given\n"
	"  --retired-dir DIR  retired keys (default: the config's\n"
	"                     federation.retired_dir, else federation-retired\n"
	"                     beside the key)\n"
	"  -h, --help         show this help\n";

enum { OPT_DIR = 256, OPT_ISSUER, OPT_OVERLAP, OPT_CONFIG, OPT_KEY,
       OPT_RETIRED };

/* Maximum overlap: one year, in seconds. */
#define OVERLAP_MAX (366LL * 24 * 3600)

struct oidc_options {
	const char *dir;
	const char *issuer;
	const char *overlap;
	const char *config;
	const char *key;
	const char *retired_dir;
	char issuer_buf[512];
	char key_buf[PATH_MAX];
	char retired_buf[PATH_MAX];
};

static int set_oidc_option(int opt, void *data)
{
	struct oidc_options *opts = data;

	if (opt == OPT_DIR)
		opts->dir = optarg;
	else if (opt == OPT_ISSUER)
		opts->issuer = optarg;
	else if (opt == OPT_OVERLAP)
		opts->overlap = optarg;
	else if (opt == OPT_CONFIG)
		opts->config = optarg;
	else if (opt == OPT_KEY)
		opts->key = optarg;
	else if (opt == OPT_RETIRED)
		opts->retired_dir = optarg;
	return KH_EXIT_OK;
}

static int parse_export(int argc, char **argv, struct oidc_options *opts)
{
	static const struct option options[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "issuer", required_argument, NULL, OPT_ISSUER },
		{ "overlap", required_argument, NULL, OPT_OVERLAP },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "retired-dir", required_argument, NULL, OPT_RETIRED },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "oidc export",
		.help = oidc_help,
		.short_options = ":h",
		.options = options,
		.set = set_oidc_option,
		.reject_operands = true,
	};
	int rc;

	memset(opts, 0, sizeof(*opts));
	rc = kh_cli_parse_options(&parser, argc, argv, opts);
	if (rc != KH_EXIT_OK)
		return rc;
	if (!opts->dir || !*opts->dir)
		return kh_cli_usage_error("oidc export", "missing --dir");
	return KH_EXIT_OK;
}

/* Takes what the options leave open from the config's federation section. */
static int apply_config(struct oidc_options *opts)
{
	const char *path = opts->config ? opts->config : KH_CONFIG_DEFAULT;
	struct kh_config *config = NULL;
	struct kh_err err = { { 0 } };
	int rc = KH_EXIT_USAGE;

	if (kh_config_load(path, &config, &err) < 0) {
		kh_cli_error("oidc export: cannot load config: %s: pass --key "
			     "or --config", err.msg);
		return KH_EXIT_USAGE;
	}
	if (!config->fed_key[0]) {
		kh_cli_error("oidc export: %s has no \"federation\" section: "
			     "add {\"issuer\": URL, \"key\": PATH} or pass "
			     "--key and --issuer", config->path);
		goto out;
	}
	if (opts->issuer && config->fed_issuer[0] &&
	    strcmp(opts->issuer, config->fed_issuer) != 0) {
		kh_cli_error("oidc export: --issuer %s differs from the "
			     "config's federation.issuer %s, which the broker "
			     "puts in its JWTs: make them equal",
			     opts->issuer, config->fed_issuer);
		goto out;
	}
	(void)snprintf(opts->issuer_buf, sizeof(opts->issuer_buf), "%s",
		       config->fed_issuer);
	(void)snprintf(opts->key_buf, sizeof(opts->key_buf), "%s",
		       config->fed_key);
	(void)snprintf(opts->retired_buf, sizeof(opts->retired_buf), "%s",
		       config->fed_retired_dir);
	if (!opts->issuer && opts->issuer_buf[0])
		opts->issuer = opts->issuer_buf;
	if (!opts->key)
		opts->key = opts->key_buf;
	if (!opts->retired_dir && opts->retired_buf[0])
		opts->retired_dir = opts->retired_buf;
	rc = KH_EXIT_OK;
out:
	kh_config_free(config);
	return rc;
}

/* The retired directory without a config: federation-retired beside the key. */
static void default_retired(struct oidc_options *opts)
{
	const char *slash = strrchr(opts->key, '/');

	if (slash)
		(void)snprintf(opts->retired_buf, sizeof(opts->retired_buf),
			       "%.*s/federation-retired",
			       (int)(slash - opts->key), opts->key);
	else
		(void)snprintf(opts->retired_buf, sizeof(opts->retired_buf),
			       "federation-retired");
	opts->retired_dir = opts->retired_buf;
}

static int run_export(const struct oidc_options *opts, long long overlap)
{
	struct kh_err err = { { 0 } };
	struct kh_fed_key *key = NULL;
	int rc;

	rc = kh_fed_key_load(opts->key, &key, &err);
	if (rc < 0) {
		kh_cli_error("oidc export: cannot load the federation key: %s: "
			     "create one with 'keyhole keygen --federation'",
			     err.msg);
		return KH_EXIT_USAGE;
	}
	rc = kh_oidc_export(opts->issuer, key, opts->retired_dir, overlap,
			    time(NULL), opts->dir, &err);
	if (rc < 0) {
		kh_cli_error("oidc export: %s", err.msg);
		kh_fed_key_free(key);
		return rc == -EINVAL ? KH_EXIT_USAGE : KH_EXIT_SYSTEM;
	}
	printf("exported kid %s for %s to %s/.well-known/openid-configuration "
	       "and %s/jwks.json\n",
	       kh_fed_key_kid(key), opts->issuer, opts->dir, opts->dir);
	kh_fed_key_free(key);
	return KH_EXIT_OK;
}

static int cmd_oidc_export(int argc, char **argv)
{
	struct oidc_options opts;
	long long overlap = KH_FED_OVERLAP_DEFAULT;
	int rc;

	rc = parse_export(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	if (opts.overlap &&
	    kh_cli_parse_int(opts.overlap, 0, OVERLAP_MAX, &overlap) < 0)
		return kh_cli_usage_error("oidc export", "invalid --overlap "
					  "%s: give seconds from 0 to %lld",
					  opts.overlap, OVERLAP_MAX);
	if (!opts.key || opts.config) {
		rc = apply_config(&opts);
		if (rc != KH_EXIT_OK)
			return rc;
	}
	if (!opts.issuer || !*opts.issuer)
		return kh_cli_usage_error("oidc export", "missing --issuer, "
					  "and the config sets no "
					  "federation.issuer");
	if (!opts.retired_dir)
		default_retired(&opts);
	return run_export(&opts, overlap);
}

int kh_cmd_oidc(int argc, char **argv)
{
	if (argc < 2)
		return kh_cli_usage_error("oidc", "missing command");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(oidc_help, stdout);
		return KH_EXIT_OK;
	}
	if (strcmp(argv[1], "export") == 0)
		return cmd_oidc_export(argc - 1, argv + 1);
	return kh_cli_usage_error("oidc", "unknown command: %s", argv[1]);
}
