/*
 * keyhole exec: opens permit files and replaces itself with a command
 * that inherits them. keyholed finds a permit by looking at the files
 * the reading process holds open, so the tool itself needs no change:
 * it only has to be started with the permit descriptors in place.
 * With --confine, a confinement profile is applied before the exec.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "keyhole/config.h"
#include "keyhole/confine.h"

static const char exec_help[] =
	"Usage: keyhole exec --permit PATH [--permit PATH]... -- CMD [ARGS...]\n"
	"       keyhole exec --confine[=PROFILE] [--permit PATH]... -- CMD "
	"[ARGS...]\n"
	"\n"
	"Opens each permit file read-only and without close-on-exec, then\n"
	"runs CMD in place of keyhole (execvp, so CMD is looked up in PATH).\n"
	"CMD holds the permits open while it reads from the secrets mount,\n"
	"which is what the broker checks. An exec permit matches only the\n"
	"exact command line it was requested for.\n"
	"\n"
	"With --confine, the confinement profile PROFILE (default agent) is\n"
	"applied after the permits are open and before CMD runs:\n"
	"no_new_privs, Landlock and seccomp, which CMD and all its children\n"
	"inherit. --permit is then optional. 'keyhole confine show PROFILE'\n"
	"prints what the profile allows.\n"
	"\n"
	"Options:\n"
	"  -p, --permit PATH      permit file to hold open (repeatable, at most 16)\n"
	"      --confine[=NAME]   apply confinement profile NAME (default agent)\n"
	"      --profile-dir DIR  profile directory (default\n"
	"                         " KH_CONFINE_DIR_DEFAULT ")\n"
	"      --config FILE      keyhole.json that sets permits_dir and\n"
	"                         secrets_mount (default " KH_CONFIG_DEFAULT ")\n"
	"  -v, --verbose          report the applied confinement on stderr\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: that of CMD once it runs; 2 when a permit cannot be\n"
	"opened, the profile is invalid or not found, or the usage is wrong;\n"
	"126 when the profile cannot be applied or CMD cannot be executed,\n"
	"and 127 when CMD is not found, as a shell does.\n";

#define MAX_PERMITS 16

/* The profile used by a bare --confine. */
#define DEFAULT_PROFILE "agent"

enum { OPT_CONFINE = 256, OPT_PROFILE_DIR, OPT_CONFIG };

struct exec_options {
	const char *permits[MAX_PERMITS];
	size_t permit_count;
	const char *profile; /* NULL without --confine */
	const char *profile_dir;
	const char *config;
	bool verbose;
	char **command;
};

static int set_exec_option(int opt, void *data)
{
	struct exec_options *opts = data;

	switch (opt) {
	case OPT_CONFINE:
		opts->profile = optarg ? optarg : DEFAULT_PROFILE;
		return KH_EXIT_OK;
	case OPT_PROFILE_DIR:
		opts->profile_dir = optarg;
		return KH_EXIT_OK;
	case OPT_CONFIG:
		opts->config = optarg;
		return KH_EXIT_OK;
	case 'v':
		opts->verbose = true;
		return KH_EXIT_OK;
	case 'p':
		break;
	default:
		return KH_EXIT_OK;
	}
	if (*optarg == '\0')
		return kh_cli_usage_error("exec", "empty --permit: give the "
					  "path that keyhole request printed");
	if (opts->permit_count == MAX_PERMITS)
		return kh_cli_usage_error("exec", "more than %d permits",
					  MAX_PERMITS);
	opts->permits[opts->permit_count++] = optarg;
	return KH_EXIT_OK;
}

static int check_exec_options(int argc, char **argv,
			      const struct exec_options *opts)
{
	if (optind < argc)
		return kh_cli_usage_error("exec", "unexpected argument before "
					  "--: %s", argv[optind]);
	if (!opts->profile && (opts->profile_dir || opts->config))
		return kh_cli_usage_error("exec", "--profile-dir and --config "
					  "need --confine");
	if (opts->permit_count == 0 && !opts->profile)
		return kh_cli_usage_error("exec", "missing --permit (or "
					  "--confine)");
	if (!opts->command[0])
		return kh_cli_usage_error("exec", "missing command: give it "
					  "after --");
	return KH_EXIT_OK;
}

static int parse_exec(int argc, char **argv, struct exec_options *opts)
{
	static const struct option options[] = {
		{ "permit", required_argument, NULL, 'p' },
		{ "confine", optional_argument, NULL, OPT_CONFINE },
		{ "profile-dir", required_argument, NULL, OPT_PROFILE_DIR },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "exec",
		.help = exec_help,
		.short_options = "+:p:vh",
		.options = options,
		.set = set_exec_option,
	};
	int rc;

	memset(opts, 0, sizeof(*opts));
	argc = kh_cli_split_command(argc, argv, &opts->command);
	rc = kh_cli_parse_options(&parser, argc, argv, opts);
	if (rc != KH_EXIT_OK)
		return rc;
	/* Without "--", CMD starts at the first word that is not an option. */
	if (!opts->command) {
		opts->command = argv + optind;
		optind = argc;
	}
	return check_exec_options(argc, argv, opts);
}

/*
 * Opens one permit so that it survives execve. O_NONBLOCK keeps a FIFO
 * planted at the path from hanging the open; only regular files are
 * accepted, since keyholed ignores anything else. The descriptor is
 * moved above 2 so that it cannot stand in for a closed stdin, stdout
 * or stderr of CMD.
 */
static int open_permit(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
	int high;

	if (fd < 0) {
		/* keyholed deletes the file of a permit it revokes. */
		int saved = errno;

		kh_cli_error("exec: cannot open permit: %s: %s: check the path "
			     "that keyhole request printed%s", path,
			     strerror(saved), saved == ENOENT ?
			     ", or the permit was revoked" : "");
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		kh_cli_error("exec: permit is not a regular file: %s: pass the "
			     "permit file that keyhole request printed", path);
		(void)close(fd);
		return -1;
	}
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (fd > STDERR_FILENO)
		return fd;
	high = fcntl(fd, F_DUPFD, STDERR_FILENO + 1);
	(void)close(fd);
	if (high < 0)
		kh_cli_error("exec: cannot move permit descriptor: %s: %s",
			     path, strerror(errno));
	return high;
}

/*
 * Applies the profile. The permits are already open: Landlock checks
 * paths when a file is opened, not descriptors that CMD inherits.
 */
static int confine(const struct exec_options *opts,
		   const struct kh_confine_profile *profile)
{
	struct kh_confine_report report;
	struct kh_err err = { "" };

	if (kh_confine_apply(profile, &report, &err) < 0) {
		kh_cli_error("exec: %s", err.msg);
		return KH_EXIT_CANNOT_EXEC;
	}
	if (report.note[0])
		kh_cli_error("exec: note: %s", report.note);
	if (opts->verbose)
		kh_cli_error("exec: confined by profile %s: Landlock ABI %d%s, "
			     "%zu seccomp rules%s", opts->profile,
			     report.landlock_abi, report.landlock_applied ?
			     "" : " (not applied)", report.seccomp_rules,
			     report.net_rules ? ", TCP port rules" : "");
	return KH_EXIT_OK;
}

static int load_profile(const struct exec_options *opts,
			struct kh_confine_profile **profile)
{
	*profile = NULL;
	if (!opts->profile)
		return KH_EXIT_OK;
	return kh_cli_confine_load("exec", opts->config, opts->profile_dir,
				   opts->profile, opts->verbose, profile);
}

int kh_cmd_exec(int argc, char **argv)
{
	struct kh_confine_profile *profile = NULL;
	struct exec_options opts;
	bool confined;
	int rc, saved;

	rc = parse_exec(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	rc = load_profile(&opts, &profile);
	if (rc != KH_EXIT_OK)
		return rc;

	/* The descriptors are meant to leak into CMD, so none is closed. */
	for (size_t i = 0; rc == KH_EXIT_OK && i < opts.permit_count; i++) {
		if (open_permit(opts.permits[i]) < 0)
			rc = KH_EXIT_USAGE;
	}
	confined = profile != NULL;
	if (rc == KH_EXIT_OK && confined)
		rc = confine(&opts, profile);
	kh_confine_free(profile);
	if (rc != KH_EXIT_OK)
		return rc;

	(void)fflush(stdout);
	execvp(opts.command[0], opts.command);
	saved = errno;
	if (saved == ENOENT) {
		kh_cli_error("exec: command not found: %s: check the name and "
			     "PATH", opts.command[0]);
		return KH_EXIT_NOT_FOUND;
	}
	kh_cli_error("exec: cannot execute: %s: %s%s", opts.command[0],
		     strerror(saved), confined && saved == EACCES ?
		     "; the confinement profile may not allow executing it" :
		     "");
	return KH_EXIT_CANNOT_EXEC;
}
