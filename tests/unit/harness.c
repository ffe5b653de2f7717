/* Implementation of the unit-test harness declared in harness.h. */
#include <stdarg.h>
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
