/*
 * A minimal unit-test harness. Each test binary lists its cases in a
 * table and calls kh_test_main; every case prints one "PASS: name" or
 * "FAIL: name: why" line, which tests/run.sh counts.
 */
#ifndef KH_TEST_HARNESS_H
#define KH_TEST_HARNESS_H

#include <stdio.h>

struct kh_test_case {
	const char *name;
	void (*run)(void);
};

/* Records a failed check in the current case; the case goes on. */
void kh_test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Runs every case; returns 0 when all passed, 1 otherwise. */
int kh_test_main(const char *suite, const struct kh_test_case *cases,
		 size_t count);

/* Directory holding test data (tests/), from KH_TEST_DATA or "tests". */
const char *kh_test_data_dir(void);

/*
 * Creates a new directory from pattern, a mkdtemp template ending in
 * "XXXXXX", and writes its path into buf. On failure records it in the
 * current case and leaves buf empty.
 */
void kh_test_mkdtemp(char *buf, size_t size, const char *pattern);

/*
 * Removes dir and everything under it, without following symlinks.
 * Does nothing for an empty dir; records any failure in the current case.
 */
void kh_test_rmtree(const char *dir);

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond))                                               \
			kh_test_fail(__FILE__, __LINE__, "%s", #cond);     \
	} while (0)

#define CHECK_INT(actual, expected)                                        \
	do {                                                               \
		long long a_ = (long long)(actual);                        \
		long long e_ = (long long)(expected);                      \
		if (a_ != e_)                                              \
			kh_test_fail(__FILE__, __LINE__,                   \
				     "%s is %lld, expected %lld", #actual, \
				     a_, e_);                              \
	} while (0)

#define CHECK_STR(actual, expected)                                        \
	do {                                                               \
		const char *a_ = (actual);                                 \
		const char *e_ = (expected);                               \
		if (!a_ || !e_ || strcmp(a_, e_) != 0)                     \
			kh_test_fail(__FILE__, __LINE__,                   \
				     "%s is \"%s\", expected \"%s\"",      \
				     #actual, a_ ? a_ : "(null)",          \
				     e_ ? e_ : "(null)");                  \
	} while (0)

#define KH_TEST_RUN(suite, table)                                          \
	kh_test_main((suite), (table), sizeof(table) / sizeof((table)[0]))

#endif
