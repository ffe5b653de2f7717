/*
 * Argument and input handling shared by the keyhole subcommands: error
 * output, option parsing, "--" splitting, file and --action reading.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "keyhole/action.h"
#include "keyhole/canon.h"
#include "keyhole/permit.h"

void kh_cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("keyhole: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int kh_cli_usage_error(const char *command, const char *fmt, ...)
{
	va_list ap;

	fputs("keyhole: ", stderr);
	if (command)
		fprintf(stderr, "%s: ", command);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": run 'keyhole%s%s --help' for usage\n",
		command ? " " : "", command ? command : "");
	return KH_EXIT_USAGE;
}

int kh_cli_option_error(const char *command, int opt, char **argv)
{
	const char *word = argv[optind - 1];

	if (opt == ':')
		return kh_cli_usage_error(command, "option needs a value: %s",
					  word);
	if (optopt && strncmp(word, "--", 2) != 0)
		return kh_cli_usage_error(command, "unknown option: -%c",
					  optopt);
	return kh_cli_usage_error(command, "unknown option: %s", word);
}

/* Matches "--name" and the abbreviations getopt_long accepts for it. */
static bool takes_value(const struct option *options, const char *word)
{
	size_t len = strlen(word);

	if (strncmp(word, "--", 2) != 0 || len == 2 || strchr(word, '='))
		return false;
	for (const struct option *o = options; o->name; o++) {
		if (o->has_arg == required_argument &&
		    strncmp(o->name, word + 2, len - 2) == 0)
			return true;
	}
	return false;
}

/*
 * Finds a word before "--" that is a jti starting with '-'. getopt would
 * read it as options: most fail as unknown, but "-h..." would print the
 * help and exit 0 without acting on the jti. The word after a long
 * option that takes a value is that value, so it is skipped.
 */
static const char *find_dashed_jti(const struct kh_cli_parser *parser,
				   int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (argv[i][0] == '-' && kh_permit_jti_is_valid(argv[i]))
			return argv[i];
		if (takes_value(parser->options, argv[i]))
			i++;
	}
	return NULL;
}

int kh_cli_parse_options(const struct kh_cli_parser *parser, int argc,
			 char **argv, void *opts)
{
	const char *jti = NULL;
	int rc = KH_EXIT_OK;

	if (parser->jti_operand)
		jti = find_dashed_jti(parser, argc, argv);
	if (jti)
		return kh_cli_usage_error(parser->command, "unknown option: "
					  "%s: a jti that starts with '-' "
					  "goes after --, as in 'keyhole %s "
					  "-- %s'", jti, parser->command, jti);
	optind = 0;
	while (rc == KH_EXIT_OK) {
		int opt = getopt_long(argc, argv, parser->short_options,
				      parser->options, NULL);

		if (opt == -1)
			break;
		if (opt == 'h') {
			fputs(parser->help, stdout);
			return KH_CLI_HELP_SHOWN;
		}
		if (opt == '?' || opt == ':')
			rc = kh_cli_option_error(parser->command, opt, argv);
		else
			rc = parser->set(opt, opts);
	}
	if (rc == KH_EXIT_OK && parser->reject_operands && optind < argc)
		return kh_cli_usage_error(parser->command,
					  "unexpected argument: %s",
					  argv[optind]);
	return rc;
}

int kh_cli_split_command(int argc, char **argv, char ***command)
{
	*command = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			argv[i] = NULL;
			*command = argv + i + 1;
			return i;
		}
	}
	return argc;
}

static int read_all(int fd, size_t max, char **out, size_t *len)
{
	size_t size = 4096, used = 0;
	char *buf = malloc(size);
	ssize_t n;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (used == size - 1) {
			char *bigger;

			if (size > max) {
				rc = -EFBIG;
				goto out;
			}
			size *= 2;
			bigger = realloc(buf, size);
			if (!bigger) {
				rc = -ENOMEM;
				goto out;
			}
			buf = bigger;
		}
		n = read(fd, buf + used, size - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	if (used > max)
		rc = -EFBIG;
out:
	if (rc < 0) {
		free(buf);
		return rc;
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	return 0;
}

int kh_cli_read_file(const char *path, size_t max, char **out, size_t *len,
		     struct kh_err *err)
{
	int stdin_input = strcmp(path, "-") == 0;
	int fd = stdin_input ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	const char *name = stdin_input ? "standard input" : path;
	int rc;

	*out = NULL;
	*len = 0;
	if (fd < 0) {
		rc = -errno;
		kh_err_set(err, "%s: %s", name, strerror(-rc));
		return rc;
	}
	rc = read_all(fd, max, out, len);
	if (rc == -EFBIG)
		kh_err_set(err, "%s: larger than %zu bytes", name, max);
	else if (rc < 0)
		kh_err_set(err, "%s: read failed: %s", name, strerror(-rc));
	if (!stdin_input)
		(void)close(fd);
	return rc;
}

int kh_cli_parse_action(const char *arg, json_t **out, struct kh_err *err)
{
	json_t *action = NULL;
	int rc;

	*out = NULL;
	if (arg[0] == '@')
		rc = kh_json_load_file(arg + 1, &action, err);
	else
		rc = kh_json_parse(arg, strlen(arg), &action, err);
	if (rc < 0)
		goto out;
	rc = kh_action_validate(action, err);
	if (rc < 0)
		goto out;
	*out = action;
	action = NULL;
out:
	json_decref(action);
	return rc;
}

void kh_cli_print_json_line(const json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);

	if (text)
		printf("%s\n", text);
	free(text);
}

int kh_cli_log_read_error(const char *command, const char *dir, int rc,
			  const struct kh_err *err)
{
	kh_cli_error("%s: cannot read log: %s: %s", command, dir,
		     err->msg[0] ? err->msg : strerror(rc < 0 ? -rc : EIO));
	return rc == -ENOENT ? KH_EXIT_USAGE : KH_EXIT_SYSTEM;
}

int kh_cli_parse_int(const char *text, long long min, long long max,
		     long long *out)
{
	char *end = NULL;
	long long value;

	*out = 0;
	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return -EINVAL;
	if (value < min || value > max)
		return -EINVAL;
	*out = value;
	return 0;
}

void kh_cli_format_time(int64_t seconds, char buf[32])
{
	time_t t = (time_t)seconds;
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(buf, 32, "%lld", (long long)seconds);
}
