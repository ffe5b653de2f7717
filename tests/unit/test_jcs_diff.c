/*
 * Differential test of kh_json_parse + kh_canon_dump against the npm
 * package "canonicalize". tests/jcs/gen.js writes seeded random JSON
 * documents together with canonicalize's output, and every document must
 * come out of libkeyhole byte for byte the same. Node and the package are
 * installed by "make deps"; without them the cases fail.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "keyhole/canon.h"

extern char **environ;

/* Maximum number of mismatching documents printed in full per case. */
#define MAX_REPORTED 3

struct generator {
	pid_t pid;
	FILE *out;
};

static int generator_start(struct generator *gen, const char *profile,
			   const char *seed, const char *count)
{
	char script[4096];
	char *argv[] = { "node", script, "--profile", (char *)profile,
			 "--seed", (char *)seed, "--count", (char *)count,
			 NULL };
	posix_spawn_file_actions_t actions;
	int pipefd[2];
	int rc;

	(void)snprintf(script, sizeof(script), "%s/jcs/gen.js",
		       kh_test_data_dir());
	if (pipe(pipefd) < 0)
		return -errno;

	rc = posix_spawn_file_actions_init(&actions);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
	if (rc == 0)
		rc = posix_spawn_file_actions_addclose(&actions, pipefd[0]);
	if (rc == 0)
		rc = posix_spawnp(&gen->pid, "node", &actions, NULL, argv,
				  environ);
	(void)posix_spawn_file_actions_destroy(&actions);
	(void)close(pipefd[1]);
	if (rc != 0) {
		(void)close(pipefd[0]);
		return -rc;
	}

	gen->out = fdopen(pipefd[0], "r");
	if (!gen->out) {
		rc = -errno;
		(void)close(pipefd[0]);
		(void)kill(gen->pid, SIGKILL);
		(void)waitpid(gen->pid, NULL, 0);
		return rc;
	}
	return 0;
}

/* Returns the generator's exit status, or -1 when it did not exit. */
static int generator_finish(struct generator *gen)
{
	int status;

	(void)fclose(gen->out);
	if (waitpid(gen->pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static void report_mismatch(long index, const char *input,
			    const char *expected, const char *actual)
{
	fprintf(stderr, "document %ld differs\n  input:     %s\n"
		"  expected:  %s\n  libkeyhole: %s\n",
		index, input, expected, actual ? actual : "(rejected)");
}

/*
 * Checks one generated line. Returns 1 when libkeyhole agrees with
 * canonicalize, 0 otherwise.
 */
static int check_document(const char *line, long index)
{
	struct kh_err err;
	json_error_t jerr;
	json_t *record;
	json_t *doc = NULL;
	const char *input;
	const char *expected;
	char *actual = NULL;
	size_t expected_len;
	size_t actual_len = 0;
	int same = 0;

	record = json_loads(line, JSON_ALLOW_NUL, &jerr);
	input = json_string_value(json_object_get(record, "input"));
	expected = json_string_value(json_object_get(record, "canonical"));
	if (!input || !expected) {
		fprintf(stderr, "document %ld: generator line is not "
			"{\"input\",\"canonical\"}: %s\n", index, jerr.text);
		goto out;
	}
	expected_len = json_string_length(json_object_get(record,
							  "canonical"));

	if (kh_json_parse(input, json_string_length(json_object_get(
					 record, "input")),
			  &doc, &err) < 0) {
		fprintf(stderr, "document %ld: %s\n", index, err.msg);
	} else if (kh_canon_dump(doc, &actual, &actual_len, &err) < 0) {
		fprintf(stderr, "document %ld: %s\n", index, err.msg);
	} else {
		same = actual_len == expected_len &&
		       memcmp(actual, expected, actual_len) == 0;
	}
	if (!same && index >= 0)
		report_mismatch(index, input, expected, actual);
out:
	free(actual);
	json_decref(doc);
	json_decref(record);
	return same;
}

/*
 * Runs the generator and compares every document. expected_count guards
 * against a generator that dies early and so compares nothing.
 */
static void run_profile(const char *profile, const char *seed,
			const char *count, long expected_count)
{
	struct generator gen;
	char *line = NULL;
	size_t cap = 0;
	long documents = 0;
	long mismatches = 0;
	int status;
	int rc;

	rc = generator_start(&gen, profile, seed, count);
	if (rc < 0) {
		kh_test_fail(__FILE__, __LINE__,
			     "cannot run node tests/jcs/gen.js: %s; install "
			     "node with \"make deps\"",
			     strerror(-rc));
		return;
	}
	while (getline(&line, &cap, gen.out) > 0) {
		long index = mismatches < MAX_REPORTED ? documents : -1;

		if (!check_document(line, index))
			mismatches++;
		documents++;
	}
	free(line);
	status = generator_finish(&gen);

	if (status != 0)
		kh_test_fail(__FILE__, __LINE__,
			     "tests/jcs/gen.js exited with status %d; its "
			     "message is on stderr",
			     status);
	CHECK_INT(documents, expected_count);
	CHECK_INT(mismatches, 0);
}

static void test_mixed_documents(void)
{
	run_profile("mixed", "1", "2000", 2000);
}

static void test_number_spellings(void)
{
	run_profile("numbers", "2", "2000", 2000);
}

static void test_unicode_member_names(void)
{
	run_profile("keys", "3", "500", 500);
}

static void test_powers_of_two(void)
{
	/* Every exponent from -1074 to 1023. */
	run_profile("powers", "0", "0", 2098);
}

static const struct kh_test_case cases[] = {
	{ "mixed documents", test_mixed_documents },
	{ "number spellings", test_number_spellings },
	{ "unicode member names", test_unicode_member_names },
	{ "powers of two", test_powers_of_two },
};

int main(void)
{
	return KH_TEST_RUN("jcs_diff", cases);
}
