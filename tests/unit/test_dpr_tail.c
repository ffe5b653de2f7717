/*
 * kh_dpr_verify_tail: verifies only the newest records of a DPR log,
 * finds a forged or missing record inside the tail, names its seq and
 * byte offset, and ignores damage that lies before the tail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "keyhole/dpr.h"

static char work[64];
static char audit[128];
static char path[256];
static struct kh_key *audit_key;

static void setup(void)
{
	struct kh_err err = { "" };

	kh_test_mkdtemp(work, sizeof(work), "/tmp/kh-test-dpr-tail.XXXXXX");
	(void)snprintf(audit, sizeof(audit), "%s/audit", work);
	(void)snprintf(path, sizeof(path), "%s/%s", audit, KH_DPR_FILE);
	if (kh_key_generate(&audit_key, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "keygen: %s", err.msg);
}

static void teardown(void)
{
	kh_key_free(audit_key);
	audit_key = NULL;
	kh_test_rmtree(work);
}

/* Appends count "stop" records with reasons "reason 1", "reason 2"... */
static void write_records(int count)
{
	struct kh_err err = { "" };
	struct kh_dpr *dpr = NULL;
	char reason[32];

	if (kh_dpr_open(audit, audit_key, NULL, &dpr, &err) != 0) {
		kh_test_fail(__FILE__, __LINE__, "open: %s", err.msg);
		return;
	}
	for (int i = 1; i <= count; i++) {
		json_t *fields;

		(void)snprintf(reason, sizeof(reason), "reason %d", i);
		fields = json_pack("{s:s}", "reason", reason);
		if (kh_dpr_append(dpr, "stop", fields, NULL, NULL, &err) != 0)
			kh_test_fail(__FILE__, __LINE__, "append %d: %s", i,
				     err.msg);
		json_decref(fields);
	}
	kh_dpr_close(dpr);
}

/* Reads the whole log into a buffer that the caller frees. */
static char *read_log(size_t *len)
{
	char *buf = NULL;
	FILE *file = fopen(path, "rb");
	long size;

	*len = 0;
	if (!file || fseek(file, 0, SEEK_END) != 0 || (size = ftell(file)) < 0 ||
	    fseek(file, 0, SEEK_SET) != 0 ||
	    !(buf = malloc((size_t)size + 1)) ||
	    fread(buf, 1, (size_t)size, file) != (size_t)size) {
		kh_test_fail(__FILE__, __LINE__, "cannot read %s", path);
		free(buf);
		buf = NULL;
	} else {
		*len = (size_t)size;
	}
	if (file)
		(void)fclose(file);
	return buf;
}

static void write_log(const char *buf, size_t len)
{
	FILE *file = fopen(path, "wb");

	if (!file || fwrite(buf, 1, len, file) != len)
		kh_test_fail(__FILE__, __LINE__, "cannot write %s", path);
	if (file)
		(void)fclose(file);
}

/* Byte offset where line n (from 1) starts, or -1. */
static long line_start(const char *buf, size_t len, int n)
{
	size_t pos = 0;

	for (int line = 1; line < n; line++) {
		const char *nl = memchr(buf + pos, '\n', len - pos);

		if (!nl)
			return -1;
		pos = (size_t)(nl - buf) + 1;
	}
	return pos < len ? (long)pos : -1;
}

/*
 * Changes "reason N" on line n to "reasoX N", keeping the length, so
 * the line stays canonical JSON and only hash and sig can tell.
 */
static long forge_line(int n)
{
	size_t len;
	char *buf = read_log(&len);
	long start = buf ? line_start(buf, len, n) : -1;
	char *spot = start >= 0 ? strstr(buf + start, "\"reason ") : NULL;

	if (!spot) {
		kh_test_fail(__FILE__, __LINE__, "line %d has no reason", n);
		free(buf);
		return -1;
	}
	spot[6] = 'X';
	write_log(buf, len);
	free(buf);
	return start;
}

/* Removes line n (from 1), which breaks seq and prev after it. */
static void drop_line(int n)
{
	size_t len;
	char *buf = read_log(&len);
	long start = buf ? line_start(buf, len, n) : -1;
	long next = buf ? line_start(buf, len, n + 1) : -1;

	if (start < 0 || next < 0) {
		kh_test_fail(__FILE__, __LINE__, "no line %d", n);
		free(buf);
		return;
	}
	memmove(buf + start, buf + next, len - (size_t)next);
	write_log(buf, len - (size_t)(next - start));
	free(buf);
}

static int verify_tail(uint64_t count, struct kh_dpr_tail_report *report,
		       struct kh_err *err)
{
	return kh_dpr_verify_tail(audit, audit_key, count, report, err);
}

/* Which records a tail of each length covers in a log of 10. */
static void test_tail_lengths(void)
{
	static const struct {
		uint64_t count;
		uint64_t records;
		uint64_t first_seq;
	} cases[] = {
		{ 1, 1, 10 }, { 3, 3, 8 }, { 10, 10, 1 }, { 1000, 10, 1 },
	};
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };
	int64_t before = (int64_t)time(NULL);

	setup();
	write_records(10);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(verify_tail(cases[i].count, &report, &err), 0);
		CHECK_INT(report.records, cases[i].records);
		CHECK_INT(report.first_seq, cases[i].first_seq);
		CHECK_INT(report.last_seq, 10);
		CHECK_INT(report.bad_seq, 0);
		CHECK(report.last_time >= before);
		CHECK(report.last_time <= (int64_t)time(NULL));
	}
	teardown();
}

/* 400 records span several 16 KiB blocks of the backward scan. */
static void test_tail_across_blocks(void)
{
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };

	setup();
	write_records(400);
	CHECK_INT(verify_tail(333, &report, &err), 0);
	CHECK_INT(report.records, 333);
	CHECK_INT(report.first_seq, 68);
	CHECK_INT(report.last_seq, 400);
	teardown();
}

static void test_empty_log(void)
{
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };

	setup();
	write_records(0);
	CHECK_INT(verify_tail(5, &report, &err), 0);
	CHECK_INT(report.records, 0);
	CHECK_INT(report.first_seq, 0);
	teardown();
}

/* A forged record in the tail fails at its seq, wherever it sits. */
static void test_forged_record_in_tail(void)
{
	static const int forged[] = { 6, 8, 10 };
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };

	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
		long offset;

		setup();
		write_records(10);
		offset = forge_line(forged[i]);
		CHECK_INT(verify_tail(5, &report, &err), 1);
		CHECK_INT(report.bad_seq, forged[i]);
		CHECK_INT(report.bad_offset, offset);
		CHECK_INT(report.records, forged[i] - 6);
		CHECK(strstr(err.msg, "hash mismatch") != NULL);
		teardown();
	}
}

static void test_forged_record_before_tail(void)
{
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };

	setup();
	write_records(10);
	(void)forge_line(5);
	CHECK_INT(verify_tail(5, &report, &err), 0);
	CHECK_INT(report.records, 5);
	CHECK_INT(verify_tail(6, &report, &err), 1);
	CHECK_INT(report.bad_seq, 5);
	teardown();
}

/* A deleted record breaks the link: seq 8 is followed by seq 10. */
static void test_missing_record(void)
{
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };

	setup();
	write_records(10);
	drop_line(9);
	CHECK_INT(verify_tail(5, &report, &err), 1);
	CHECK_INT(report.bad_seq, 9);
	CHECK(strstr(err.msg, "expected seq 9 but found 10") != NULL);
	teardown();
}

static void test_wrong_key(void)
{
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };
	struct kh_key *other = NULL;

	setup();
	write_records(3);
	CHECK_INT(kh_key_generate(&other, &err), 0);
	CHECK_INT(kh_dpr_verify_tail(audit, other, 3, &report, &err), 1);
	CHECK_INT(report.bad_seq, 1);
	CHECK(strstr(err.msg, "kid") != NULL);
	kh_key_free(other);
	teardown();
}

/* An append in progress (no newline yet) is not judged. */
static void test_partial_final_line(void)
{
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };
	FILE *file;

	setup();
	write_records(4);
	file = fopen(path, "ab");
	CHECK(file != NULL);
	if (file) {
		CHECK(fputs("{\"half\":", file) >= 0);
		(void)fclose(file);
	}
	CHECK_INT(verify_tail(2, &report, &err), 0);
	CHECK_INT(report.records, 2);
	CHECK_INT(report.first_seq, 3);
	CHECK_INT(report.last_seq, 4);
	teardown();
}

static void test_rejects(void)
{
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };

	setup();
	CHECK_INT(verify_tail(5, &report, &err), -ENOENT);
	CHECK(strstr(err.msg, audit) != NULL);
	write_records(1);
	CHECK_INT(verify_tail(0, &report, &err), -EINVAL);
	CHECK_INT(kh_dpr_verify_tail(audit, audit_key, 1, NULL, &err),
		  -EINVAL);
	CHECK_INT(kh_dpr_verify_tail(NULL, audit_key, 1, &report, &err),
		  -EINVAL);
	teardown();
}

static const struct kh_test_case cases[] = {
	{ "tail lengths", test_tail_lengths },
	{ "tail across blocks", test_tail_across_blocks },
	{ "empty log", test_empty_log },
	{ "forged record in tail", test_forged_record_in_tail },
	{ "forged record before tail", test_forged_record_before_tail },
	{ "missing record", test_missing_record },
	{ "wrong key", test_wrong_key },
	{ "partial final line", test_partial_final_line },
	{ "rejects", test_rejects },
};

int main(void)
{
	return KH_TEST_RUN("dpr_tail", cases);
}
