/*
 * keyhole exec: opens permit files and replaces itself with a command
 * that inherits them. keyholed finds a permit by looking at the files
 * the reading process holds open, so the tool itself needs no change:
 * it only has to be started with the permit descriptors in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char exec_help[] =
	"Usage: keyhole exec --permit PATH [--permit PATH]... -- CMD [ARGS...]\n"
	"\n"
	"Opens each permit file read-only and without close-on-exec, then\n"
	"runs CMD in place of keyhole (execvp, so CMD is looked up in PATH).\n"
	"CMD holds the permits open while it reads from the secrets mount,\n"
	"which is what the broker checks. An exec permit matches only the\n"
	"exact command line it was requested for.\n"
	"\n"
	"Options:\n"
	"  -p, --permit PATH  permit file to hold open (repeatable, at most 16)\n"
	"  -h, --help         show this help\n"
	"\n"
	"Exit status: that of CMD once it runs; 2 when a permit cannot be\n"
	"opened or the usage is wrong; 126 when CMD cannot be executed and\n"
	"127 when it is not found, as a shell does.\n";

#define MAX_PERMITS 16

struct exec_options {
	const char *permits[MAX_PERMITS];
	size_t permit_count;
	char **command;
};

static int set_exec_option(int opt, void *data)
{
	struct exec_options *opts = data;

	if (opt != 'p')
		return KH_EXIT_OK;
	if (*optarg == '\0')
		return kh_cli_usage_error("exec", "empty --permit: give the "
					  "path that keyhole request printed");
	if (opts->permit_count == MAX_PERMITS)
		return kh_cli_usage_error("exec", "more than %d permits",
					  MAX_PERMITS);
	opts->permits[opts->permit_count++] = optarg;
	return KH_EXIT_OK;
}

static int parse_exec(int argc, char **argv, struct exec_options *opts)
{
	static const struct option options[] = {
		{ "permit", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "exec",
		.help = exec_help,
		.short_options = "+:p:h",
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
	if (!opts->command)
		opts->command = argv + optind;
	else if (optind < argc)
		return kh_cli_usage_error("exec", "unexpected argument before "
					  "--: %s", argv[optind]);
	if (opts->permit_count == 0)
		return kh_cli_usage_error("exec", "missing --permit");
	if (!opts->command[0])
		return kh_cli_usage_error("exec", "missing command: give it "
					  "after --");
	return KH_EXIT_OK;
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

int kh_cmd_exec(int argc, char **argv)
{
	struct exec_options opts;
	int rc, saved;

	rc = parse_exec(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;

	/* The descriptors are meant to leak into CMD, so none is closed. */
	for (size_t i = 0; i < opts.permit_count; i++) {
		if (open_permit(opts.permits[i]) < 0)
			return KH_EXIT_USAGE;
	}
	(void)fflush(stdout);
	execvp(opts.command[0], opts.command);
	saved = errno;
	if (saved == ENOENT) {
		kh_cli_error("exec: command not found: %s: check the name and "
			     "PATH", opts.command[0]);
		return KH_EXIT_NOT_FOUND;
	}
	kh_cli_error("exec: cannot execute: %s: %s", opts.command[0],
		     strerror(saved));
	return KH_EXIT_CANNOT_EXEC;
}
