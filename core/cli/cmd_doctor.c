/*
 * keyhole doctor: runs every check of an installation in order and
 * prints one line per finding, then a summary. The checks reuse the
 * loaders that keyholed runs, so doctor judges the files exactly as the
 * broker will.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_doctor.h"
#include "keyhole/confine.h"

static const char doctor_help[] =
	"Usage: keyhole doctor [--config FILE] [--no-backends] [--tail N]\n"
	"                      [--profile-dir DIR]\n"
	"\n"
	"Checks the config and policy, the key files, the secrets mount, the\n"
	"broker socket, the clock, each backend, the kernel's confinement\n"
	"support and the tail of the decision log. Prints one line per check,\n"
	"marked pass, warn or fail, with the fix under each warn and fail,\n"
	"then a summary. Run it as root, the user keyholed runs as.\n"
	"\n"
	"Options:\n"
	"  --config FILE      read the config from FILE (default\n"
	"                     " KH_CONFIG_DEFAULT ")\n"
	"  --no-backends      skip the backend round trips (reported as warn)\n"
	"  --tail N           verify the last N records of the decision log\n"
	"                     (1 to 100000000, default 1000)\n"
	"  --profile-dir DIR  confinement profile directory (default\n"
	"                     " KH_CONFINE_DIR_DEFAULT ")\n"
	"  -h, --help         show this help\n"
	"\n"
	"Exit status:\n"
	"  0  no check failed (warnings allowed)\n"
	"  1  a check failed\n"
	"  2  usage error\n"
	"  3  doctor itself could not run\n";

#define TAIL_DEFAULT 1000
#define TAIL_MAX 100000000

enum { OPT_CONFIG = 256, OPT_NO_BACKENDS, OPT_TAIL, OPT_PROFILE_DIR };

static int set_doctor_option(int opt, void *data)
{
	struct kh_doctor *d = data;
	long long tail;

	switch (opt) {
	case OPT_CONFIG:
		d->config_path = optarg;
		break;
	case OPT_NO_BACKENDS:
		d->no_backends = true;
		break;
	case OPT_TAIL:
		if (kh_cli_parse_int(optarg, 1, TAIL_MAX, &tail) < 0)
			return kh_cli_usage_error("doctor", "invalid --tail: %s: "
						  "give a record count from 1 "
						  "to %d", optarg, TAIL_MAX);
		d->tail = (uint64_t)tail;
		break;
	case OPT_PROFILE_DIR:
		d->profile_dir = optarg;
		break;
	}
	return KH_EXIT_OK;
}

static int parse_doctor(int argc, char **argv, struct kh_doctor *d)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "no-backends", no_argument, NULL, OPT_NO_BACKENDS },
		{ "tail", required_argument, NULL, OPT_TAIL },
		{ "profile-dir", required_argument, NULL, OPT_PROFILE_DIR },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "doctor",
		.help = doctor_help,
		.short_options = ":h",
		.options = options,
		.set = set_doctor_option,
		.reject_operands = true,
	};

	memset(d, 0, sizeof(*d));
	d->config_path = KH_CONFIG_DEFAULT;
	d->tail = TAIL_DEFAULT;
	d->broker_uid = geteuid();
	return kh_cli_parse_options(&parser, argc, argv, d);
}

void kh_doctor_pass(struct kh_doctor *d, const char *check, const char *fmt,
		    ...)
{
	va_list ap;

	printf("pass  %s: ", check);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	d->passed++;
}

void kh_doctor_problem(struct kh_doctor *d, enum kh_doctor_status status,
		       const char *check, const char *found,
		       const char *fix_fmt, ...)
{
	va_list ap;

	printf("%s  %s: %s\n      fix: ",
	       status == KH_DOCTOR_FAIL ? "fail" : "warn", check, found);
	va_start(ap, fix_fmt);
	vprintf(fix_fmt, ap);
	va_end(ap);
	putchar('\n');
	if (status == KH_DOCTOR_FAIL)
		d->failed++;
	else
		d->warnings++;
}

/*
 * Runs the checks that need a loaded config only when it loaded. The
 * socket check comes before the key check, which accepts keys owned by
 * the socket's owner, and the DPR check before the clock check, which
 * compares the time with the newest record.
 */
static void run_checks(struct kh_doctor *d)
{
	kh_doctor_check_config(d);
	if (d->config) {
		kh_doctor_check_policy(d);
		kh_doctor_check_socket(d);
		kh_doctor_check_keys(d);
		kh_doctor_check_mount(d);
		kh_doctor_check_dpr(d);
	}
	kh_doctor_check_clock(d);
	if (d->config)
		kh_doctor_check_backends(d);
	kh_doctor_check_confinement(d);
}

int kh_cmd_doctor(int argc, char **argv)
{
	struct kh_doctor d;
	int rc;

	rc = parse_doctor(argc, argv, &d);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;

	run_checks(&d);
	printf("%u passed, %u warnings, %u failed\n", d.passed, d.warnings,
	       d.failed);

	kh_policy_free(d.policy);
	kh_config_free(d.config);
	if (d.broken)
		return KH_EXIT_SYSTEM;
	return d.failed ? KH_EXIT_FAILED : KH_EXIT_OK;
}
