/*
 * keyhole confine show: prints the effective confinement profile, with
 * paths expanded for the calling user. This file also contains the
 * steps that keyhole exec --confine shares: the path variables and
 * profile loading.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "keyhole/config.h"
#include "keyhole/confine.h"

static const char confine_help[] =
	"Usage: keyhole confine show NAME [--profile-dir DIR] [--config FILE]\n"
	"\n"
	"  show  print the effective confinement profile NAME as JSON\n"
	"\n"
	"Run 'keyhole confine show --help' for its options.\n";

static const char show_help[] =
	"Usage: keyhole confine show NAME [--profile-dir DIR] [--config FILE]\n"
	"\n"
	"Prints the confinement profile NAME as keyhole exec --confine and\n"
	"pam_keyhole apply it for the calling user: DIR/NAME.json when that\n"
	"file exists, else the built-in profile NAME (agent or strict). Paths\n"
	"are expanded (~, {uid}, {permits}, {secrets}) and lists sorted; a\n"
	"path whose variable is unset is left out.\n"
	"\n"
	"Options:\n"
	"  --profile-dir DIR  profile directory (default " KH_CONFINE_DIR_DEFAULT ")\n"
	"  --config FILE      take permits_dir and secrets_mount from this\n"
	"                     keyhole.json (default: $KEYHOLE_PERMITS and\n"
	"                     $KEYHOLE_SECRETS when both are set, else\n"
	"                     " KH_CONFIG_DEFAULT ")\n"
	"  -v, --verbose      say when the default config cannot be read\n"
	"  -h, --help         show this help\n"
	"\n"
	"Exit status: 0 when the profile loads; 2 when it is invalid or not\n"
	"found, or the usage is wrong.\n";

enum { OPT_PROFILE_DIR = 256, OPT_CONFIG };

struct show_options {
	const char *profile_dir;
	const char *config;
	bool verbose;
};

/* The values of a confinement profile's path variables, with storage. */
struct confine_vars {
	struct kh_confine_vars vars; /* points into the buffers below */
	char home[PATH_MAX];
	char permits_dir[PATH_MAX];
	char secrets_mount[PATH_MAX];
};

/* Copies the config's paths, or the defaults when there is no config. */
static int copy_paths(struct confine_vars *out, const char *permits,
		      const char *secrets)
{
	int a = snprintf(out->permits_dir, sizeof(out->permits_dir), "%s",
			 permits);
	int b = snprintf(out->secrets_mount, sizeof(out->secrets_mount), "%s",
			 secrets);

	if (a < 0 || (size_t)a >= sizeof(out->permits_dir) || b < 0 ||
	    (size_t)b >= sizeof(out->secrets_mount))
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Takes the paths from KEYHOLE_PERMITS and KEYHOLE_SECRETS, which
 * pam_keyhole exports from keyholed's reply inside an agent session.
 * KEYHOLE_PERMITS is permits_dir/<uid>; the profile wants permits_dir.
 * Returns false when either is unset or not of that form.
 */
static bool session_paths(uid_t uid, struct confine_vars *out)
{
	const char *permits = getenv("KEYHOLE_PERMITS");
	const char *secrets = getenv("KEYHOLE_SECRETS");
	const char *slash;
	char suffix[32];

	if (!permits || !secrets || permits[0] != '/' || secrets[0] != '/')
		return false;
	(void)snprintf(suffix, sizeof(suffix), "/%u", (unsigned)uid);
	slash = strrchr(permits, '/');
	if (slash == permits || strcmp(slash, suffix) != 0)
		return false;
	if ((size_t)(slash - permits) >= sizeof(out->permits_dir) ||
	    strlen(secrets) >= sizeof(out->secrets_mount))
		return false;
	memcpy(out->permits_dir, permits, (size_t)(slash - permits));
	out->permits_dir[slash - permits] = '\0';
	memcpy(out->secrets_mount, secrets, strlen(secrets) + 1);
	return true;
}

static int load_config_paths(const char *command, const char *config_path,
			     bool verbose, struct confine_vars *out)
{
	struct kh_config *config = NULL;
	struct kh_err err = { "" };
	int rc;

	/* Inside a session, the paths from the broker's reply take precedence. */
	if (!config_path && session_paths(out->vars.uid, out))
		return KH_EXIT_OK;
	rc = kh_config_load(config_path ? config_path : KH_CONFIG_DEFAULT,
			    &config, &err);
	if (rc < 0 && config_path) {
		kh_cli_error("%s: %s", command, err.msg);
		return KH_EXIT_USAGE;
	}
	if (rc < 0) {
		/* An agent account may not be able to read the config. */
		if (verbose)
			kh_cli_error("%s: note: using the default permits_dir "
				     "and secrets_mount (%s)", command,
				     err.msg);
		rc = copy_paths(out, KH_PERMITS_DEFAULT, KH_SECRETS_DEFAULT);
	} else {
		rc = copy_paths(out, config->permits_dir,
				config->secrets_mount);
		kh_config_free(config);
	}
	if (rc < 0) {
		kh_cli_error("%s: permits_dir or secrets_mount is too long",
			     command);
		return KH_EXIT_USAGE;
	}
	return KH_EXIT_OK;
}

/*
 * Fills out for the calling user. Returns KH_EXIT_OK, or KH_EXIT_USAGE
 * after printing why config_path cannot be loaded.
 */
static int fill_vars(const char *command, const char *config_path,
		     bool verbose, struct confine_vars *out)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int rc;

	memset(out, 0, sizeof(*out));
	out->vars.uid = getuid();
	rc = getpwuid_r(out->vars.uid, &pw, buf, sizeof(buf), &found);
	/* Without a passwd entry or an absolute home, "~" rules are dropped. */
	if (rc == 0 && found && found->pw_dir && found->pw_dir[0] == '/' &&
	    strlen(found->pw_dir) < sizeof(out->home)) {
		memcpy(out->home, found->pw_dir, strlen(found->pw_dir) + 1);
		out->vars.home = out->home;
	} else if (verbose) {
		kh_cli_error("%s: note: uid %u has no usable home directory; "
			     "rules under \"~\" are left out", command,
			     (unsigned)out->vars.uid);
	}

	rc = load_config_paths(command, config_path, verbose, out);
	out->vars.permits_dir = out->permits_dir;
	out->vars.secrets_mount = out->secrets_mount;
	return rc;
}

int kh_cli_confine_load(const char *command, const char *config_path,
			const char *profile_dir, const char *name, bool verbose,
			struct kh_confine_profile **out)
{
	struct confine_vars vars;
	struct kh_err err = { "" };
	int rc;

	*out = NULL;
	rc = fill_vars(command, config_path, verbose, &vars);
	if (rc != KH_EXIT_OK)
		return rc;

	rc = kh_confine_load(profile_dir, name, &vars.vars, out, &err);
	if (rc == 0)
		return KH_EXIT_OK;
	kh_cli_error("%s: %s", command, err.msg);
	return rc == -ENOMEM ? KH_EXIT_SYSTEM : KH_EXIT_USAGE;
}

static int set_show_option(int opt, void *data)
{
	struct show_options *opts = data;

	if (opt == OPT_PROFILE_DIR)
		opts->profile_dir = optarg;
	else if (opt == OPT_CONFIG)
		opts->config = optarg;
	else if (opt == 'v')
		opts->verbose = true;
	return KH_EXIT_OK;
}

static int parse_show(int argc, char **argv, struct show_options *opts,
		      const char **name)
{
	static const struct option options[] = {
		{ "profile-dir", required_argument, NULL, OPT_PROFILE_DIR },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "confine show",
		.help = show_help,
		.short_options = ":vh",
		.options = options,
		.set = set_show_option,
	};
	int rc;

	memset(opts, 0, sizeof(*opts));
	rc = kh_cli_parse_options(&parser, argc, argv, opts);
	if (rc != KH_EXIT_OK)
		return rc;
	if (optind >= argc)
		return kh_cli_usage_error("confine show", "missing profile "
					  "name, such as agent or strict");
	if (optind + 1 < argc)
		return kh_cli_usage_error("confine show", "unexpected "
					  "argument: %s", argv[optind + 1]);
	*name = argv[optind];
	return KH_EXIT_OK;
}

static int run_show(int argc, char **argv)
{
	struct kh_confine_profile *profile = NULL;
	struct show_options opts;
	const char *name = NULL;
	json_t *value;
	char *text;
	int rc;

	rc = parse_show(argc, argv, &opts, &name);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	rc = kh_cli_confine_load("confine show", opts.config,
				 opts.profile_dir, name, opts.verbose, &profile);
	if (rc != KH_EXIT_OK)
		return rc;

	value = kh_confine_to_json(profile);
	text = value ? json_dumps(value, JSON_INDENT(2) | JSON_SORT_KEYS) :
		       NULL;
	if (text)
		printf("%s\n", text);
	else
		kh_cli_error("confine show: out of memory");
	free(text);
	json_decref(value);
	kh_confine_free(profile);
	return text ? KH_EXIT_OK : KH_EXIT_SYSTEM;
}

int kh_cmd_confine(int argc, char **argv)
{
	if (argc < 2)
		return kh_cli_usage_error("confine", "missing command");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(confine_help, stdout);
		return KH_EXIT_OK;
	}
	if (strcmp(argv[1], "show") == 0)
		return run_show(argc - 1, argv + 1);
	return kh_cli_usage_error("confine", "unknown command: %s", argv[1]);
}
