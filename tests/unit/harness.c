/* Implementation of the unit-test harness declared in harness.h. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int case_failed;
static char first_failure[512];

void kh_test_fail(const char *file, int line, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);

	if (!case_failed)
		(void)snprintf(first_failure, sizeof(first_failure),
			       "%s:%d: %s", file, line, what);
	else
		fprintf(stderr, "  also %s:%d: %s\n", file, line, what);
	case_failed = 1;
}

int kh_test_main(const char *suite, const struct kh_test_case *cases,
		 size_t count)
{
	int failures = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < count; i++) {
		case_failed = 0;
		first_failure[0] = '\0';
		cases[i].run();
		if (case_failed) {
			printf("FAIL: %s/%s: %s\n", suite, cases[i].name,
			       first_failure);
			failures++;
		} else {
			printf("PASS: %s/%s\n", suite, cases[i].name);
		}
	}
	return failures ? 1 : 0;
}

const char *kh_test_data_dir(void)
{
	const char *dir = getenv("KH_TEST_DATA");

	return dir && *dir ? dir : "tests";
}

void kh_test_mkdtemp(char *buf, size_t size, const char *pattern)
{
	int n = snprintf(buf, size, "%s", pattern);

	if (n < 0 || (size_t)n >= size) {
		kh_test_fail(__FILE__, __LINE__, "mkdtemp: pattern %s longer "
			     "than %zu bytes", pattern, size - 1);
		buf[0] = '\0';
		return;
	}
	if (!mkdtemp(buf)) {
		kh_test_fail(__FILE__, __LINE__, "mkdtemp %s: %s", pattern,
			     strerror(errno));
		buf[0] = '\0';
	}
}

static int remove_entry(const char *path, const struct stat *st, int type,
			struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) < 0) {
		kh_test_fail(__FILE__, __LINE__, "remove %s: %s", path,
			     strerror(errno));
		return 1; /* stops the walk, already recorded */
	}
	return 0;
}

void kh_test_rmtree(const char *dir)
{
	if (!dir[0])
		return;
	if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		kh_test_fail(__FILE__, __LINE__, "removing %s: %s", dir,
			     strerror(errno));
}
