/*
 * keyhole audit: offline tools for the DPR log. verify checks the hash
 * chain and signatures against a pinned public key; show prints records
 * one per line; replay (cmd_replay.c) re-evaluates decisions.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "keyhole/canon.h"
#include "keyhole/config.h"
#include "keyhole/dpr.h"
#include "keyhole/key.h"

static const char audit_help[] =
	"Usage: keyhole audit verify --dir DIR --key PUB.jwk\n"
	"       keyhole audit show [--dir DIR | --config FILE] [--jti JTI]\n"
	"                          [--type TYPE] [--json]\n"
	"       keyhole audit replay --dir DIR --policy FILE [--seq N]\n"
	"\n"
	"Works on the decision log " KH_DPR_FILE " in an audit directory.\n"
	"  verify  check every hash link and signature; name the first bad seq\n"
	"  show    print the records, one line each\n"
	"  replay  re-evaluate decisions against a policy and compare\n"
	"\n"
	"Run 'keyhole audit COMMAND --help' for the options of a command.\n";

static const char verify_help[] =
	"Usage: keyhole audit verify --dir DIR --key PUB.jwk\n"
	"\n"
	"Checks the whole log in DIR against the pinned audit public key:\n"
	"each line is canonical JSON, seq increases by one, each prev is the\n"
	"hash of the record before, each hash recomputes, and each signature\n"
	"verifies. PUB.jwk is the key that signed seq 1; after a key_rotate\n"
	"record, which that key signs, the key it names signs the rest.\n"
	"Prints \"ok: N records verified\" (with the number of key\n"
	"rotations, if any), or \"FAILED at seq N: REASON\" for the first\n"
	"bad record and exits 1.\n"
	"\n"
	"Options:\n"
	"  --dir DIR       audit directory (holds " KH_DPR_FILE ")\n"
	"  --key PUB.jwk   audit public key, e.g. audit.pub.jwk from keygen\n"
	"  -h, --help      show this help\n";

static const char show_help[] =
	"Usage: keyhole audit show [--dir DIR | --config FILE] [--jti JTI]\n"
	"                          [--type TYPE] [--json]\n"
	"\n"
	"Prints one line per record: seq, time (UTC), type and its key fields\n"
	"(effect, rule, reason, jti, outcome, secret, uid). This does not\n"
	"verify the log; run keyhole audit verify for that.\n"
	"\n"
	"Options:\n"
	"  --dir DIR       audit directory (holds " KH_DPR_FILE ")\n"
	"  --config FILE   take audit_dir from this keyhole.json (default\n"
	"                  " KH_CONFIG_DEFAULT " when --dir is absent)\n"
	"  --jti JTI       only records about this permit\n"
	"  --type TYPE     only records of this type (decision, access,\n"
	"                  revoke, policy_load, start, stop, repair,\n"
	"                  session_open, session_close, key_rotate)\n"
	"  --json          print the records as their canonical JSON lines\n"
	"  -h, --help      show this help\n";

enum { OPT_DIR = 256, OPT_KEY, OPT_CONFIG, OPT_JTI, OPT_TYPE, OPT_JSON };

int kh_cmd_audit(int argc, char **argv)
{
	if (argc < 2)
		return kh_cli_usage_error("audit", "missing command");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(audit_help, stdout);
		return KH_EXIT_OK;
	}
	if (strcmp(argv[1], "verify") == 0)
		return kh_cmd_audit_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return kh_cmd_audit_show(argc - 1, argv + 1);
	if (strcmp(argv[1], "replay") == 0)
		return kh_cmd_audit_replay(argc - 1, argv + 1);
	return kh_cli_usage_error("audit", "unknown command: %s", argv[1]);
}

struct verify_options {
	const char *dir;
	const char *key;
};

static int set_verify_option(int opt, void *data)
{
	struct verify_options *opts = data;

	if (opt == OPT_DIR)
		opts->dir = optarg;
	else if (opt == OPT_KEY)
		opts->key = optarg;
	return KH_EXIT_OK;
}

static int parse_audit_verify(int argc, char **argv,
			      struct verify_options *opts)
{
	static const struct option options[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "audit verify",
		.help = verify_help,
		.short_options = ":h",
		.options = options,
		.set = set_verify_option,
		.reject_operands = true,
	};
	int rc;

	memset(opts, 0, sizeof(*opts));
	rc = kh_cli_parse_options(&parser, argc, argv, opts);
	if (rc != KH_EXIT_OK)
		return rc;
	if (!opts->dir || !opts->key)
		return kh_cli_usage_error("audit verify", "missing %s",
					  opts->dir ? "--key" : "--dir");
	return KH_EXIT_OK;
}

/*
 * Drops a leading "seq N: " or "line N: " from the library's reason,
 * since the FAILED line already names that place.
 */
static const char *strip_place(const char *reason, const char *place)
{
	size_t len = strlen(place);

	if (strncmp(reason, place, len) == 0 &&
	    strncmp(reason + len, ": ", 2) == 0)
		return reason + len + 2;
	return reason;
}

static void print_verify_failure(const struct kh_dpr_report *report,
				 const char *reason)
{
	char place[48];

	if (report->bad_seq)
		(void)snprintf(place, sizeof(place), "seq %llu",
			       (unsigned long long)report->bad_seq);
	else
		(void)snprintf(place, sizeof(place), "line %llu",
			       (unsigned long long)report->bad_line);
	printf("FAILED at %s: %s\n", place, strip_place(reason, place));
}

/* Copies the kid of the log's first record into ctx and stops. */
static int first_kid(const json_t *record, void *ctx)
{
	const char *kid = json_string_value(json_object_get(record, "kid"));

	if (kid && strlen(kid) == KH_KID_LEN)
		memcpy(ctx, kid, KH_KID_LEN + 1);
	return 1;
}

/*
 * Prints the path of the log's first audit key when it is in the
 * retired directory beside key_path. After a key rotation the current
 * key cannot check seq 1, and the auditor needs the first key to pin.
 */
static void hint_first_key(const char *dir, const char *key_path)
{
	char kid[KH_KID_LEN + 1] = "", path[PATH_MAX];
	const char *slash = strrchr(key_path, '/');
	struct kh_err err = { { 0 } };
	int n;

	if (kh_dpr_foreach(dir, first_kid, kid, &err) < 0 || !kid[0])
		return;
	n = slash ? snprintf(path, sizeof(path), "%.*s/retired/audit-%s.pub.jwk",
			     (int)(slash - key_path), key_path, kid)
		  : snprintf(path, sizeof(path), "retired/audit-%s.pub.jwk",
			     kid);
	if (n < 0 || (size_t)n >= sizeof(path) || access(path, R_OK) != 0)
		return;
	printf("hint: the log starts with audit key %s, which keyhole keygen "
	       "--rotate retired; verify with --key %s\n", kid, path);
}

int kh_cmd_audit_verify(int argc, char **argv)
{
	struct kh_err err = { { 0 } };
	struct kh_dpr_report report = { 0 };
	struct kh_key *key = NULL;
	struct verify_options opts;
	int rc;

	rc = parse_audit_verify(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	if (kh_key_load(opts.key, &key, &err) < 0) {
		kh_cli_error("audit verify: cannot load audit key: %s",
			     err.msg);
		return KH_EXIT_USAGE;
	}
	rc = kh_dpr_verify(opts.dir, key, &report, &err);
	if (rc == 0) {
		if (report.rotations > 0)
			printf("ok: %llu records verified, %llu key "
			       "rotation(s)\n",
			       (unsigned long long)report.records,
			       (unsigned long long)report.rotations);
		else
			printf("ok: %llu records verified\n",
			       (unsigned long long)report.records);
		rc = KH_EXIT_OK;
	} else if (rc == 1) {
		print_verify_failure(&report, err.msg);
		if (report.bad_seq == 1)
			hint_first_key(opts.dir, opts.key);
		rc = KH_EXIT_FAILED;
	} else {
		kh_cli_error("audit verify: cannot read log: %s: %s", opts.dir,
			     err.msg);
		rc = rc == -ENOENT ? KH_EXIT_USAGE : KH_EXIT_SYSTEM;
	}
	kh_key_free(key);
	return rc;
}

/* The record types of keyhole/dpr.h, as --type accepts them. */
static const char *const record_types[] = {
	"decision", "access", "revoke", "policy_load", "start", "stop",
	"repair", "session_open", "session_close", "key_rotate",
};

#define RECORD_TYPE_COUNT (sizeof(record_types) / sizeof(record_types[0]))

struct show_options {
	const char *dir;
	const char *config;
	const char *jti;
	const char *type;
	bool json;
	char config_dir[PATH_MAX];
};

static bool is_record_type(const char *type)
{
	for (size_t i = 0; i < RECORD_TYPE_COUNT; i++) {
		if (strcmp(type, record_types[i]) == 0)
			return true;
	}
	return false;
}

/*
 * Reports an unknown --type, which would otherwise match no record and
 * print nothing, as if the log had none of that type.
 */
static int reject_type(const char *type)
{
	char list[128] = "";
	size_t used = 0;

	for (size_t i = 0; i < RECORD_TYPE_COUNT; i++) {
		int n = snprintf(list + used, sizeof(list) - used, "%s%s",
				 i ? ", " : "", record_types[i]);

		if (n < 0 || (size_t)n >= sizeof(list) - used)
			break;
		used += (size_t)n;
	}
	return kh_cli_usage_error("audit show", "invalid --type: %s: give "
				  "one of %s", type, list);
}

static int set_show_option(int opt, void *data)
{
	struct show_options *opts = data;

	switch (opt) {
	case OPT_DIR:
		opts->dir = optarg;
		break;
	case OPT_CONFIG:
		opts->config = optarg;
		break;
	case OPT_JTI:
		opts->jti = optarg;
		break;
	case OPT_TYPE:
		if (!is_record_type(optarg))
			return reject_type(optarg);
		opts->type = optarg;
		break;
	case OPT_JSON:
		opts->json = true;
		break;
	}
	return KH_EXIT_OK;
}

static int parse_show(int argc, char **argv, struct show_options *opts)
{
	static const struct option options[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "jti", required_argument, NULL, OPT_JTI },
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct kh_cli_parser parser = {
		.command = "audit show",
		.help = show_help,
		.short_options = ":h",
		.options = options,
		.set = set_show_option,
		.reject_operands = true,
	};
	int rc;

	memset(opts, 0, sizeof(*opts));
	rc = kh_cli_parse_options(&parser, argc, argv, opts);
	if (rc != KH_EXIT_OK)
		return rc;
	if (opts->dir && opts->config)
		return kh_cli_usage_error("audit show", "give at most one of "
					  "--dir and --config");
	return KH_EXIT_OK;
}

/* Takes audit_dir from the config when --dir is absent. */
static int resolve_show_dir(struct show_options *opts)
{
	struct kh_err err = { { 0 } };
	struct kh_config *config = NULL;
	const char *path = opts->config ? opts->config : KH_CONFIG_DEFAULT;

	if (opts->dir)
		return KH_EXIT_OK;
	if (kh_config_load(path, &config, &err) < 0) {
		kh_cli_error("audit show: cannot load config: %s: pass --dir or "
			     "--config", err.msg);
		return KH_EXIT_USAGE;
	}
	(void)snprintf(opts->config_dir, sizeof(opts->config_dir), "%s",
		       config->audit_dir);
	opts->dir = opts->config_dir;
	kh_config_free(config);
	return KH_EXIT_OK;
}

/*
 * Prints text in double quotes, with a backslash before each '"' and
 * backslash, and control characters as \xNN. A reason quoting an argv
 * element then stays one field for grep and awk, and an argv holding a
 * newline cannot print what looks like a second record.
 */
static void print_quoted(const char *text)
{
	putchar('"');
	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		if (*c < 0x20 || *c == 0x7f)
			printf("\\x%02x", *c);
		else if (*c == '"' || *c == '\\')
			printf("\\%c", *c);
		else
			putchar(*c);
	}
	putchar('"');
}

static bool needs_quotes(const char *text)
{
	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		if (*c <= 0x20 || *c == 0x7f || *c == '"' || *c == '=' ||
		    *c == '\\')
			return true;
	}
	return false;
}

/*
 * Prints a string or integer value as key=value, quoting strings that
 * contain spaces, quotes, backslashes, '=' or control characters.
 * Absent, null and empty values print nothing.
 */
static void print_field(const char *key, const json_t *value)
{
	const char *text = json_string_value(value);

	if (text && *text == '\0')
		return;
	if (text && needs_quotes(text)) {
		printf(" %s=", key);
		print_quoted(text);
	} else if (text)
		printf(" %s=%s", key, text);
	else if (json_is_integer(value))
		printf(" %s=%lld", key, (long long)json_integer_value(value));
}

static void print_time(const json_t *time_value)
{
	char buf[32];

	if (json_is_integer(time_value)) {
		kh_cli_format_time(json_integer_value(time_value), buf);
		printf(" %s", buf);
	} else if (json_is_string(time_value)) {
		printf(" %s", json_string_value(time_value));
	} else {
		printf(" -");
	}
}

static void print_record_line(const json_t *record)
{
	static const char *const keys[] = { "effect", "outcome", "rule",
					    "secret", "jti",     "session",
					    "sid",    "hP" };
	/* Decision and access records nest the uid they are about. */
	static const char *const holders[] = { "agent", "reader" };
	const char *type = json_string_value(json_object_get(record, "type"));

	printf("%lld", (long long)json_integer_value(
			       json_object_get(record, "seq")));
	print_time(json_object_get(record, "time"));
	printf(" %s", type ? type : "-");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		/* Most records carry hP; only a policy load is about it. */
		if (strcmp(keys[i], "hP") == 0 &&
		    (!type || strcmp(type, "policy_load") != 0))
			continue;
		print_field(keys[i], json_object_get(record, keys[i]));
	}
	print_field("uid", json_object_get(record, "uid"));
	for (size_t i = 0; i < sizeof(holders) / sizeof(holders[0]); i++) {
		const json_t *holder = json_object_get(record, holders[i]);

		print_field("uid", json_object_get(holder, "uid"));
	}
	/* A revoke names who revoked, not whose permit it was. */
	print_field("by_uid", json_object_get(json_object_get(record, "by"),
					      "uid"));
	print_field("reason", json_object_get(record, "reason"));
	putchar('\n');
}

static int show_record(const json_t *record, void *ctx)
{
	const struct show_options *opts = ctx;
	const char *type = json_string_value(json_object_get(record, "type"));
	const char *jti = json_string_value(json_object_get(record, "jti"));
	char *line = NULL;

	if (opts->type && (!type || strcmp(type, opts->type) != 0))
		return 0;
	if (opts->jti && (!jti || strcmp(jti, opts->jti) != 0))
		return 0;
	if (!opts->json) {
		print_record_line(record);
		return 0;
	}
	if (kh_canon_dump(record, &line, NULL, NULL) < 0)
		return -ENOMEM;
	printf("%s\n", line);
	free(line);
	return 0;
}

int kh_cmd_audit_show(int argc, char **argv)
{
	struct kh_err err = { { 0 } };
	struct show_options opts;
	int rc;

	rc = parse_show(argc, argv, &opts);
	if (rc != KH_EXIT_OK)
		return rc == KH_CLI_HELP_SHOWN ? KH_EXIT_OK : rc;
	rc = resolve_show_dir(&opts);
	if (rc != KH_EXIT_OK)
		return rc;
	rc = kh_dpr_foreach(opts.dir, show_record, &opts, &err);
	if (rc == 0)
		return KH_EXIT_OK;
	return kh_cli_log_read_error("audit show", opts.dir, rc, &err);
}
