/*
 * The DPR log: append and verify, and the exact hash and signature
 * coverage. Each verification failure (tamper, reorder, deletion, torn
 * tail, wrong key) gets a forged input. Also tail repair, ledger replay
 * across a reopen, failed writes that must leave the chain valid, and
 * policy archiving.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "keyhole/dpr.h"

static char work[64];
static char audit[128];
static struct kh_key *audit_key;

/* Creates a work dir and a fresh audit key. The log goes to work/audit. */
static void setup(void)
{
	struct kh_err err = { "" };

	(void)snprintf(work, sizeof(work), "/tmp/kh-test-dpr.XXXXXX");
	if (!mkdtemp(work))
		kh_test_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	(void)snprintf(audit, sizeof(audit), "%s/audit", work);
	if (kh_key_generate(&audit_key, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "keygen: %s", err.msg);
}

static void teardown(void)
{
	char cmd[128];

	kh_key_free(audit_key);
	audit_key = NULL;
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
	CHECK_INT(system(cmd), 0);
}

static const char *log_path(void)
{
	static char path[256];

	(void)snprintf(path, sizeof(path), "%s/%s", audit, KH_DPR_FILE);
	return path;
}

/* Reads the whole log into a buffer that the caller frees. */
static char *read_log(size_t *len)
{
	FILE *f = fopen(log_path(), "rb");
	char *buf = NULL;
	long size;

	*len = 0;
	if (!f) {
		kh_test_fail(__FILE__, __LINE__, "open log: %s", strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		buf = calloc(1, (size_t)size + 1);
		if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size)
			*len = (size_t)size;
	}
	fclose(f);
	return buf;
}

static void write_log(const char *data, size_t len)
{
	FILE *f = fopen(log_path(), "wb");

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT(fwrite(data, 1, len, f), len);
	CHECK_INT(fclose(f), 0);
}

static off_t log_size(void)
{
	struct stat st;

	if (stat(log_path(), &st) < 0)
		return -1;
	return st.st_size;
}

/* Offset of line number n (from 1) in buf, or -1. */
static long line_start(const char *buf, size_t len, int n)
{
	size_t pos = 0;

	for (int line = 1; line < n; line++) {
		const char *nl = memchr(buf + pos, '\n', len - pos);

		if (!nl)
			return -1;
		pos = (size_t)(nl - buf) + 1;
	}
	return pos <= len ? (long)pos : -1;
}

static long line_length(const char *buf, size_t len, int n)
{
	long start = line_start(buf, len, n);
	const char *nl;

	if (start < 0)
		return -1;
	nl = memchr(buf + start, '\n', len - (size_t)start);
	return nl ? (long)(nl - (buf + start)) + 1 : (long)len - start;
}

/* One sample record of each kind keyholed writes. */
static json_t *sample_fields(int i, const char **type)
{
	static const char *const types[] = {
		"start", "policy_load", "decision", "access", "revoke", "stop",
	};
	int64_t exp = (int64_t)time(NULL) + 600;

	*type = types[i % 6];
	switch (i % 6) {
	case 0:
		return json_pack("{s:s, s:s, s:i}", "broker_id", "b1",
				 "version", "0.1.0", "pid", 42);
	case 1:
		return json_pack("{s:s, s:s, s:s, s:s}", "hP",
				 "1111111111111111111111111111111111111111111111"
				 "111111111111111111",
				 "path", "/etc/keyhole/policy.json", "tenant",
				 "acme", "env", "prod");
	case 2:
		return json_pack("{s:s, s:s, s:s, s:{s:i, s:i, s:s},"
				 " s:{s:s, s:s}, s:s, s:I, s:i}",
				 "effect", "permit", "rule", "charge", "reason",
				 "rule charge matched", "agent", "uid", 1000,
				 "pid", 77, "exe", "/usr/bin/agent", "action",
				 "type", "tool_call", "tool", "stripe.charge",
				 "jti", "sample-jti", "exp", (json_int_t)exp,
				 "amount", 5);
	case 3:
		return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I}", "jti",
				 "sample-jti", "backend", "local", "secret",
				 "local/report.netrc", "outcome", "granted",
				 "reason", "permit valid", "uses", 1, "exp",
				 (json_int_t)exp);
	case 4:
		return json_pack("{s:s, s:I, s:{s:i}, s:s}", "jti",
				 "sample-jti", "exp", (json_int_t)exp, "by",
				 "uid", 0, "reason", "operator request");
	default:
		return json_pack("{s:s}", "reason", "SIGTERM");
	}
}

/*
 * Opens the log (no ledger), appends count sample records after the
 * first existing records, and closes it.
 */
static void write_samples_after(int existing, int count)
{
	struct kh_dpr *dpr = NULL;
	struct kh_err err = { "" };
	int r = kh_dpr_open(audit, audit_key, NULL, &dpr, &err);

	if (r != 0) {
		kh_test_fail(__FILE__, __LINE__, "open: %d %s", r, err.msg);
		return;
	}
	for (int i = 0; i < count; i++) {
		const char *type;
		json_t *fields = sample_fields(i, &type);
		uint64_t seq = 0;

		r = kh_dpr_append(dpr, type, fields, &seq, NULL, &err);
		if (r != 0 || seq != (uint64_t)(existing + i + 1))
			kh_test_fail(__FILE__, __LINE__, "append %d: r=%d "
				     "seq=%llu %s",
				     i, r, (unsigned long long)seq, err.msg);
		json_decref(fields);
	}
	kh_dpr_close(dpr);
}

static void write_samples(int count)
{
	write_samples_after(0, count);
}

/* Runs kh_dpr_verify with audit_key and returns its result. */
static int verify_log(struct kh_dpr_report *report, struct kh_err *err)
{
	return kh_dpr_verify(audit, audit_key, report, err);
}

static void test_append_verify(void)
{
	struct kh_dpr_report report;
	struct kh_err err = { "" };
	struct stat st;
	char *buf;
	size_t len;

	setup();
	write_samples(6);
	CHECK_INT(verify_log(&report, &err), 0);
	CHECK_INT(report.records, 6);
	CHECK_INT(report.bad_seq, 0);

	CHECK_INT(stat(audit, &st), 0);
	CHECK_INT(st.st_mode & 07777, 0700);
	CHECK_INT(stat(log_path(), &st), 0);
	CHECK_INT(st.st_mode & 07777, 0600);

	buf = read_log(&len);
	CHECK(buf != NULL);
	CHECK(len > 0);
	if (buf && len > 0)
		CHECK(buf[len - 1] == '\n');
	CHECK(line_start(buf, len, 7) == (long)len);
	free(buf);

	/* Reopening continues the chain instead of starting over. */
	write_samples_after(6, 2);
	CHECK_INT(verify_log(&report, &err), 0);
	CHECK_INT(report.records, 8);
	teardown();
}

/*
 * Recomputes hash and sig of one record by hand: hash covers every
 * member except hash and sig (kid included), sig signs the hex digits.
 */
static void test_hash_coverage(void)
{
	struct kh_err err = { "" };
	json_t *record = NULL;
	json_t *body = NULL;
	char hash[KH_HASH_HEX_LEN + 1];
	unsigned char sig[crypto_sign_BYTES];
	size_t sig_len = 0;
	char *buf;
	size_t len;
	long first;

	setup();
	write_samples(2);
	buf = read_log(&len);
	first = buf ? line_length(buf, len, 1) : -1;
	CHECK(first > 0);
	if (first > 0)
		CHECK_INT(kh_json_parse(buf, (size_t)first - 1, &record, &err),
			  0);
	if (record) {
		CHECK_INT(json_integer_value(json_object_get(record, "v")), 1);
		CHECK_INT(json_integer_value(json_object_get(record, "seq")), 1);
		CHECK_STR(json_string_value(json_object_get(record, "prev")),
			  "000000000000000000000000000000000000000000000000000"
			  "0000000000000");
		CHECK_STR(json_string_value(json_object_get(record, "kid")),
			  audit_key->kid);
		CHECK_STR(json_string_value(json_object_get(record, "type")),
			  "start");
		CHECK(json_is_integer(json_object_get(record, "time")));

		body = json_copy(record);
		CHECK_INT(json_object_del(body, "hash"), 0);
		CHECK_INT(json_object_del(body, "sig"), 0);
		CHECK(json_object_get(body, "kid") != NULL);
		CHECK_INT(kh_hash(body, hash, &err), 0);
		CHECK_STR(json_string_value(json_object_get(record, "hash")),
			  hash);

		CHECK_INT(sodium_base642bin(
				  sig, sizeof(sig),
				  json_string_value(json_object_get(record, "sig")),
				  strlen(json_string_value(
					  json_object_get(record, "sig"))),
				  NULL, &sig_len, NULL,
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING),
			  0);
		CHECK_INT(sig_len, crypto_sign_BYTES);
		CHECK_INT(crypto_sign_verify_detached(
				  sig, (const unsigned char *)hash,
				  KH_HASH_HEX_LEN, audit_key->public_key),
			  0);
	}
	json_decref(body);
	json_decref(record);
	free(buf);
	teardown();
}

/* Replaces the first occurrence of from in line n by to (same length). */
static void replace_in_line(char *buf, size_t len, int n, const char *from,
			    const char *to)
{
	long start = line_start(buf, len, n);
	long size = line_length(buf, len, n);
	char *hit = NULL;

	if (start >= 0 && size > 0)
		hit = memmem(buf + start, (size_t)size, from, strlen(from));
	if (!hit || strlen(from) != strlen(to)) {
		kh_test_fail(__FILE__, __LINE__, "\"%s\" not in line %d", from,
			     n);
		return;
	}
	memcpy(hit, to, strlen(to));
}

/* Moves the hex digit after key's opening quote in line n to another. */
static void flip_member_digit(char *buf, size_t len, int n, const char *key)
{
	char pattern[32];
	long start = line_start(buf, len, n);
	long size = line_length(buf, len, n);
	char *hit;

	(void)snprintf(pattern, sizeof(pattern), "\"%s\":\"", key);
	hit = start >= 0 ? memmem(buf + start, (size_t)size, pattern,
				  strlen(pattern))
			 : NULL;
	if (!hit) {
		kh_test_fail(__FILE__, __LINE__, "%s not in line %d", key, n);
		return;
	}
	hit += strlen(pattern) + 10;
	*hit = *hit == 'a' ? 'b' : 'a';
}

static void tamper_reason(char *buf, size_t *len)
{
	replace_in_line(buf, *len, 3, "matched", "matchet");
}

static void tamper_hash(char *buf, size_t *len)
{
	flip_member_digit(buf, *len, 3, "hash");
}

static void tamper_prev(char *buf, size_t *len)
{
	flip_member_digit(buf, *len, 3, "prev");
}

static void tamper_sig(char *buf, size_t *len)
{
	flip_member_digit(buf, *len, 3, "sig");
}

static void tamper_version(char *buf, size_t *len)
{
	replace_in_line(buf, *len, 3, "\"v\":1", "\"v\":2");
}

static void tamper_kid(char *buf, size_t *len)
{
	flip_member_digit(buf, *len, 3, "kid");
}

static void tamper_not_json(char *buf, size_t *len)
{
	buf[line_start(buf, *len, 3)] = 'x';
}

/* Valid JSON with the same members, but not in canonical form. */
static void tamper_whitespace(char *buf, size_t *len)
{
	long start = line_start(buf, *len, 3);

	memmove(buf + start + 2, buf + start + 1, *len - (size_t)start - 1);
	buf[start + 1] = ' ';
	(*len)++;
}

static void swap_lines_2_3(char *buf, size_t *len)
{
	long a = line_start(buf, *len, 2);
	long a_len = line_length(buf, *len, 2);
	long b_len = line_length(buf, *len, 3);
	char *copy = malloc((size_t)a_len);

	memcpy(copy, buf + a, (size_t)a_len);
	memmove(buf + a, buf + a + a_len, (size_t)b_len);
	memcpy(buf + a + b_len, copy, (size_t)a_len);
	free(copy);
}

static void delete_line_3(char *buf, size_t *len)
{
	long start = line_start(buf, *len, 3);
	long size = line_length(buf, *len, 3);

	memmove(buf + start, buf + start + size,
		*len - (size_t)(start + size));
	*len -= (size_t)size;
}

static void insert_empty_line_3(char *buf, size_t *len)
{
	long start = line_start(buf, *len, 3);

	memmove(buf + start + 1, buf + start, *len - (size_t)start);
	buf[start] = '\n';
	(*len)++;
}

/*
 * Rewrites record 3 with a new reason, a correct hash, the audit kid
 * and a valid signature from another key: only the key itself is
 * missing from the forgery.
 */
static void forge_resigned(char *buf, size_t *len)
{
	long start = line_start(buf, *len, 3);
	long size = line_length(buf, *len, 3);
	size_t rest_len = *len - (size_t)(start + size);
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char sig[crypto_sign_BYTES];
	char sig_text[128];
	char hash[KH_HASH_HEX_LEN + 1];
	json_t *record = NULL;
	char *text = NULL;
	size_t text_len = 0;
	char *rest = NULL;

	if (kh_json_parse(buf + start, (size_t)size - 1, &record, NULL) != 0)
		return;
	json_object_set_new(record, "reason", json_string("forged"));
	json_object_del(record, "hash");
	json_object_del(record, "sig");
	if (kh_hash(record, hash, NULL) != 0)
		goto out;
	crypto_sign_keypair(pk, sk);
	crypto_sign_detached(sig, NULL, (const unsigned char *)hash,
			     KH_HASH_HEX_LEN, sk);
	sodium_bin2base64(sig_text, sizeof(sig_text), sig, sizeof(sig),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	json_object_set_new(record, "hash", json_string(hash));
	json_object_set_new(record, "sig", json_string(sig_text));
	if (kh_canon_dump(record, &text, &text_len, NULL) != 0)
		goto out;

	rest = malloc(rest_len + 1);
	memcpy(rest, buf + start + size, rest_len);
	memcpy(buf + start, text, text_len);
	buf[start + (long)text_len] = '\n';
	memcpy(buf + start + (long)text_len + 1, rest, rest_len);
	*len = (size_t)start + text_len + 1 + rest_len;
out:
	free(rest);
	free(text);
	json_decref(record);
}

static void truncate_last_line(char *buf, size_t *len)
{
	*len = (size_t)line_start(buf, *len, 6) + 20;
	(void)buf;
}

/*
 * Each forged log must fail verification at the named seq and line with
 * the given reason, and kh_dpr_open must reject it, except a torn final
 * line, which open repairs.
 */
static void test_forgeries(void)
{
	static const struct {
		const char *name;
		void (*forge)(char *buf, size_t *len);
		uint64_t bad_seq;
		uint64_t bad_line;
		const char *message;
		int open_result;
	} cases[] = {
		{ "flip byte in reason", tamper_reason, 3, 3,
		  "seq 3: hash mismatch", -EBADMSG },
		{ "flip stored hash", tamper_hash, 3, 3,
		  "seq 3: hash mismatch", -EBADMSG },
		{ "flip prev", tamper_prev, 3, 3,
		  "seq 3: prev does not match seq 2", -EBADMSG },
		{ "flip sig", tamper_sig, 3, 3, "seq 3: bad signature",
		  -EBADMSG },
		{ "change version", tamper_version, 3, 3,
		  "seq 3: unsupported record version", -EBADMSG },
		{ "change kid", tamper_kid, 3, 3, "seq 3: hash mismatch",
		  -EBADMSG },
		{ "resigned with other key", forge_resigned, 3, 3,
		  "seq 3: bad signature", -EBADMSG },
		{ "not json", tamper_not_json, 3, 3,
		  "line 3: not canonical JSON", -EBADMSG },
		{ "not canonical", tamper_whitespace, 3, 3,
		  "line 3: not canonical JSON", -EBADMSG },
		{ "empty line", insert_empty_line_3, 3, 3,
		  "line 3: not canonical JSON", -EBADMSG },
		{ "reorder", swap_lines_2_3, 2, 2,
		  "seq 2: expected seq 2 but found 3", -EBADMSG },
		{ "delete", delete_line_3, 3, 3,
		  "seq 3: expected seq 3 but found 4", -EBADMSG },
		{ "torn tail", truncate_last_line, 6, 6,
		  "line 6: torn final line", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kh_dpr_report report;
		struct kh_err err = { "" };
		struct kh_dpr *dpr = NULL;
		char *buf;
		size_t len;
		int r;

		setup();
		write_samples(6);
		buf = read_log(&len);
		if (!buf) {
			teardown();
			continue;
		}
		buf = realloc(buf, len + 4096);
		cases[i].forge(buf, &len);
		write_log(buf, len);
		free(buf);

		r = verify_log(&report, &err);
		if (r != 1 || report.bad_seq != cases[i].bad_seq ||
		    report.bad_line != cases[i].bad_line ||
		    report.records != cases[i].bad_seq - 1 ||
		    !strstr(err.msg, cases[i].message))
			kh_test_fail(__FILE__, __LINE__, "%s: verify r=%d "
				     "bad_seq=%llu bad_line=%llu err=\"%s\"",
				     cases[i].name, r,
				     (unsigned long long)report.bad_seq,
				     (unsigned long long)report.bad_line,
				     err.msg);

		err.msg[0] = '\0';
		r = kh_dpr_open(audit, audit_key, NULL, &dpr, &err);
		if (r != cases[i].open_result ||
		    (r < 0 && !strstr(err.msg, cases[i].message)))
			kh_test_fail(__FILE__, __LINE__, "%s: open r=%d "
				     "err=\"%s\"",
				     cases[i].name, r, err.msg);
		kh_dpr_close(dpr);
		teardown();
	}
}

/*
 * A pinned key that is not the audit key fails at seq 1: by kid, and by
 * signature when only the kid is copied.
 */
static void test_wrong_key(void)
{
	struct kh_dpr_report report;
	struct kh_err err = { "" };
	struct kh_key *other = NULL;
	struct kh_key impostor;

	setup();
	write_samples(3);
	CHECK_INT(kh_key_generate(&other, &err), 0);
	if (other) {
		CHECK_INT(kh_dpr_verify(audit, other, &report, &err), 1);
		CHECK_INT(report.bad_seq, 1);
		CHECK(strstr(err.msg, "seq 1: signed with kid") != NULL);

		/* Another key's bytes under the audit key's kid. */
		memset(&impostor, 0, sizeof(impostor));
		memcpy(impostor.public_key, other->public_key,
		       sizeof(impostor.public_key));
		memcpy(impostor.kid, audit_key->kid, sizeof(impostor.kid));
		CHECK_INT(kh_dpr_verify(audit, &impostor, &report, &err), 1);
		CHECK_INT(report.bad_seq, 1);
		CHECK(strstr(err.msg, "seq 1: bad signature") != NULL);
	}
	kh_key_free(other);
	teardown();
}

/* The pinned key can come from the public JWK that keygen writes. */
static void test_verify_public_jwk(void)
{
	struct kh_dpr_report report;
	struct kh_err err = { "" };
	struct kh_key *pinned = NULL;
	char private_path[128];
	char public_path[128];

	setup();
	write_samples(4);
	(void)snprintf(private_path, sizeof(private_path), "%s/audit.jwk",
		       work);
	(void)snprintf(public_path, sizeof(public_path), "%s/audit.pub.jwk",
		       work);
	CHECK_INT(kh_key_save(audit_key, private_path, public_path, &err), 0);
	CHECK_INT(kh_key_load(public_path, &pinned, &err), 0);
	if (pinned) {
		CHECK(pinned->secret == NULL);
		CHECK_INT(kh_dpr_verify(audit, pinned, &report, &err), 0);
		CHECK_INT(report.records, 4);
	}
	kh_key_free(pinned);
	teardown();
}

/*
 * Torn tails that kh_dpr_open cuts off: the cut byte count goes into a
 * repair record and the chain verifies afterwards. A case without tail
 * drops the newline of the fifth, final record instead.
 */
static void test_torn_tail_repair(void)
{
	static const struct {
		const char *name;
		const char *tail;
		size_t tail_len;
	} cases[] = {
		{ "half a record", "{\"hash\":\"00", 11 },
		{ "garbage with newline", "{\"v\":1,\n", 8 },
		{ "nul bytes", "\0\0\0\0", 4 },
		{ "record without newline", NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kh_dpr_report report;
		struct kh_err err = { "" };
		struct kh_dpr *dpr = NULL;
		json_t *last = NULL;
		uint64_t records;
		long expected_cut;
		long at;
		char *buf;
		size_t len;
		int r;

		setup();
		write_samples(5);
		buf = read_log(&len);
		if (!buf) {
			teardown();
			continue;
		}
		if (cases[i].tail) {
			buf = realloc(buf, len + cases[i].tail_len);
			memcpy(buf + len, cases[i].tail, cases[i].tail_len);
			len += cases[i].tail_len;
			expected_cut = (long)cases[i].tail_len;
			records = 6;
		} else {
			len--;
			expected_cut = line_length(buf, len, 5);
			records = 5;
		}
		write_log(buf, len);
		free(buf);

		r = kh_dpr_open(audit, audit_key, NULL, &dpr, &err);
		if (r != 0)
			kh_test_fail(__FILE__, __LINE__, "%s: open r=%d %s",
				     cases[i].name, r, err.msg);
		kh_dpr_close(dpr);

		r = verify_log(&report, &err);
		if (r != 0 || report.records != records)
			kh_test_fail(__FILE__, __LINE__, "%s: verify r=%d "
				     "records=%llu %s",
				     cases[i].name, r,
				     (unsigned long long)report.records,
				     err.msg);

		buf = read_log(&len);
		at = buf ? line_start(buf, len, (int)records) : -1;
		if (at >= 0)
			CHECK_INT(kh_json_parse(buf + at, len - (size_t)at - 1,
						&last, &err), 0);
		CHECK_STR(json_string_value(json_object_get(last, "type")),
			  "repair");
		CHECK_INT(json_integer_value(json_object_get(last, "cut_bytes")),
			  expected_cut);
		json_decref(last);
		free(buf);
		teardown();
	}
}

/* A bad record before the last line is not a torn tail: no repair. */
static void test_bad_middle_not_repaired(void)
{
	struct kh_err err = { "" };
	struct kh_dpr *dpr = NULL;
	char *buf;
	size_t len;
	off_t before;

	setup();
	write_samples(4);
	buf = read_log(&len);
	if (buf) {
		buf[line_start(buf, len, 2) + 3] = '\x01';
		write_log(buf, len);
	}
	before = log_size();
	CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &dpr, &err), -EBADMSG);
	CHECK(dpr == NULL);
	CHECK(strstr(err.msg, "line 2: not canonical JSON") != NULL);
	CHECK(strstr(err.msg, KH_DPR_FILE) != NULL);
	CHECK_INT(log_size(), before);
	free(buf);
	teardown();
}

/* Appends fields of type and returns the record's seq, checking success. */
static uint64_t append_ok(struct kh_dpr *dpr, const char *type,
			  json_t *fields, char hash[KH_HASH_HEX_LEN + 1])
{
	struct kh_err err = { "" };
	uint64_t seq = 0;
	int r = kh_dpr_append(dpr, type, fields, &seq, hash, &err);

	if (r != 0)
		kh_test_fail(__FILE__, __LINE__, "append %s: %d %s", type, r,
			     err.msg);
	json_decref(fields);
	return seq;
}

static json_t *decision(const char *effect, const char *rule, int uid,
			const char *jti, int64_t exp, double amount)
{
	return json_pack("{s:s, s:s, s:s, s:{s:i, s:i, s:s}, s:o, s:o, s:f}",
			 "effect", effect, "rule", rule, "reason", "test",
			 "agent", "uid", uid, "pid", 1, "exe", "/bin/true",
			 "jti", jti ? json_string(jti) : json_null(), "exp",
			 jti ? json_integer(exp) : json_null(), "amount",
			 amount);
}

static json_t *access_record(const char *jti, int64_t exp,
			     const char *outcome)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "jti", jti,
			 "backend", "local", "secret", "local/token",
			 "outcome", outcome, "reason", "test", "exp",
			 (json_int_t)exp);
}

/*
 * Counters survive a restart: a fresh ledger filled by kh_dpr_open
 * contains the mints, budget, uses, revocations and decision links.
 */
static void test_replay_counters(void)
{
	struct kh_ledger *ledger = NULL;
	struct kh_dpr *dpr = NULL;
	struct kh_err err = { "" };
	char hash_one[KH_HASH_HEX_LEN + 1] = "";
	char found[65] = "";
	uint64_t seq_one = 0;
	uint64_t seq = 0;
	int64_t now = (int64_t)time(NULL);
	int64_t exp = now + 600;

	setup();
	CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &dpr, &err), 0);
	if (dpr) {
		seq_one = append_ok(dpr, "decision",
				    decision("permit", "charge", 1000, "jti-one",
					     exp, 500),
				    hash_one);
		append_ok(dpr, "access",
			  access_record("jti-one", exp, "granted"), NULL);
		append_ok(dpr, "access",
			  access_record("jti-one", exp, "denied"), NULL);
		append_ok(dpr, "decision",
			  decision("permit", "charge", 1000, "jti-two", exp,
				   250.5),
			  NULL);
		append_ok(dpr, "access",
			  access_record("jti-two", exp, "granted"), NULL);
		append_ok(dpr, "access",
			  access_record("jti-two", exp, "granted"), NULL);
		append_ok(dpr, "decision",
			  decision("deny", "", 1000, NULL, 0, 0), NULL);
		append_ok(dpr, "decision",
			  decision("permit", "charge", 2000, "jti-three", exp,
				   1),
			  NULL);
		append_ok(dpr, "revoke",
			  json_pack("{s:s, s:I, s:{s:i}, s:s}", "jti",
				    "jti-three", "exp", (json_int_t)exp, "by",
				    "uid", 0, "reason", "test"),
			  NULL);
	}
	kh_dpr_close(dpr);
	dpr = NULL;

	CHECK_INT(kh_ledger_new(&ledger), 0);
	CHECK_INT(kh_dpr_open(audit, audit_key, ledger, &dpr, &err), 0);
	if (ledger && dpr) {
		CHECK_INT(kh_ledger_rate(ledger, "charge", 1000, now + 1, 3600),
			  2);
		CHECK_INT(kh_ledger_rate(ledger, "charge", 2000, now + 1, 3600),
			  1);
		CHECK(kh_ledger_budget(ledger, "charge", 1000, now + 1, 3600) ==
		      750.5);
		CHECK_INT(kh_ledger_uses(ledger, "jti-one"), 1);
		CHECK_INT(kh_ledger_uses(ledger, "jti-two"), 2);
		CHECK_INT(kh_ledger_uses(ledger, "jti-three"), 0);
		CHECK(!kh_ledger_is_revoked(ledger, "jti-one"));
		CHECK(kh_ledger_is_revoked(ledger, "jti-three"));
		CHECK_INT(kh_ledger_find_decision(ledger, "jti-one", &seq,
						  found), 0);
		CHECK_INT(seq, seq_one);
		CHECK_STR(found, hash_one);
	}
	kh_dpr_close(dpr);
	kh_ledger_free(ledger);
	teardown();
}

/*
 * A signed record that the ledger cannot use stops the start: each case
 * lacks one member that replay needs.
 */
static void test_replay_rejects_incomplete(void)
{
	static const struct {
		const char *type;
		const char *fields;
		const char *message;
	} cases[] = {
		{ "decision",
		  "{\"effect\":\"permit\",\"rule\":\"r\",\"agent\":{\"uid\":1},"
		  "\"jti\":\"j\",\"exp\":1}",
		  "seq 1: permit decision lacks a rule string, an agent.uid "
		  "or an amount" },
		{ "decision",
		  "{\"effect\":\"permit\",\"rule\":\"r\",\"agent\":{},"
		  "\"jti\":\"j\",\"exp\":1,\"amount\":0}",
		  "seq 1: permit decision lacks" },
		{ "decision",
		  "{\"effect\":\"permit\",\"rule\":\"r\",\"agent\":{\"uid\":-1},"
		  "\"jti\":\"j\",\"exp\":1,\"amount\":0}",
		  "seq 1: permit decision lacks" },
		{ "decision",
		  "{\"effect\":\"permit\",\"agent\":{\"uid\":1},"
		  "\"jti\":\"j\",\"exp\":1,\"amount\":0}",
		  "seq 1: permit decision lacks" },
		{ "decision",
		  "{\"effect\":\"permit\",\"rule\":\"r\",\"agent\":{\"uid\":1},"
		  "\"jti\":null,\"exp\":1,\"amount\":0}",
		  "seq 1: decision record has no jti string or no integer exp" },
		{ "decision",
		  "{\"effect\":\"permit\",\"rule\":\"r\",\"agent\":{\"uid\":1},"
		  "\"jti\":\"j\",\"exp\":null,\"amount\":0}",
		  "seq 1: decision record has no jti string or no integer exp" },
		{ "access", "{\"outcome\":\"granted\",\"exp\":1}",
		  "seq 1: access record has no jti string" },
		{ "revoke", "{\"jti\":\"j\"}",
		  "seq 1: revoke record has no jti string or no integer exp" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kh_ledger *ledger = NULL;
		struct kh_dpr *dpr = NULL;
		struct kh_err err = { "" };
		int r;

		setup();
		CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &dpr, &err), 0);
		if (dpr)
			append_ok(dpr, cases[i].type,
				  json_loads(cases[i].fields, 0, NULL), NULL);
		kh_dpr_close(dpr);
		dpr = NULL;

		CHECK_INT(kh_ledger_new(&ledger), 0);
		r = kh_dpr_open(audit, audit_key, ledger, &dpr, &err);
		if (r != -EBADMSG || dpr != NULL ||
		    !strstr(err.msg, cases[i].message))
			kh_test_fail(__FILE__, __LINE__, "case %zu: r=%d "
				     "err=\"%s\"",
				     i, r, err.msg);
		kh_dpr_close(dpr);
		kh_ledger_free(ledger);
		teardown();
	}
}

/*
 * A write that hits RLIMIT_FSIZE fails (EFBIG): the partial line is cut
 * back off, seq does not advance, and the next append continues a
 * valid chain. limit_extra is how far past the current end the limit
 * sits: 0 fails the first write, a small number forces a short write.
 */
static void test_failed_write_rolls_back(void)
{
	static const struct {
		const char *name;
		rlim_t limit_extra;
		const char *written;
	} cases[] = {
		{ "no room at all", 0, "(0 of " },
		{ "short write", 25, "(25 of " },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kh_dpr_report report;
		struct kh_dpr *dpr = NULL;
		struct kh_err err = { "" };
		struct rlimit saved;
		struct rlimit limited;
		char hash[KH_HASH_HEX_LEN + 1] = "x";
		uint64_t seq = 99;
		off_t before;
		json_t *fields;
		int r;

		setup();
		CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &dpr, &err), 0);
		if (!dpr) {
			teardown();
			continue;
		}
		append_ok(dpr, "start", json_pack("{s:s}", "broker_id", "b"),
			  NULL);
		append_ok(dpr, "stop", json_pack("{s:s}", "reason", "x"), NULL);
		before = log_size();

		/* SIGXFSZ would kill the test, so ignore it and let write return EFBIG. */
		CHECK(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
		CHECK_INT(getrlimit(RLIMIT_FSIZE, &saved), 0);
		limited = saved;
		limited.rlim_cur = (rlim_t)before + cases[i].limit_extra;
		CHECK_INT(setrlimit(RLIMIT_FSIZE, &limited), 0);
		fields = json_pack("{s:s}", "reason", "will not fit");
		r = kh_dpr_append(dpr, "stop", fields, &seq, hash, &err);
		CHECK_INT(setrlimit(RLIMIT_FSIZE, &saved), 0);
		(void)signal(SIGXFSZ, SIG_DFL);
		json_decref(fields);

		if (r != -EFBIG || seq != 0 || hash[0] != '\0' ||
		    !strstr(err.msg, "cannot write to dpr.jsonl") ||
		    !strstr(err.msg, cases[i].written))
			kh_test_fail(__FILE__, __LINE__, "%s: r=%d seq=%llu "
				     "err=\"%s\"",
				     cases[i].name, r, (unsigned long long)seq,
				     err.msg);
		CHECK_INT(log_size(), before);

		seq = append_ok(dpr, "stop",
				json_pack("{s:s}", "reason", "fits"), NULL);
		CHECK_INT(seq, 3);
		kh_dpr_close(dpr);
		CHECK_INT(verify_log(&report, &err), 0);
		CHECK_INT(report.records, 3);
		teardown();
	}
}

/* Rejected arguments leave the chain where it was. */
static void test_append_rejects(void)
{
	static const struct {
		const char *type;
		const char *fields;
		const char *message;
	} cases[] = {
		{ "stop", "{\"seq\":5}", "must not contain \"seq\"" },
		{ "stop", "{\"sig\":\"x\"}", "must not contain \"sig\"" },
		{ "stop", "{\"kid\":\"x\"}", "must not contain \"kid\"" },
		{ "stop", "[1]", "fields must be a JSON object" },
		{ "Stop", "{}", "record type \"Stop\" is invalid" },
		{ "", "{}", "record type \"\" is invalid" },
		{ "stop", "{\"n\":9007199254740993}", "" },
	};
	struct kh_dpr_report report;
	struct kh_dpr *dpr = NULL;
	struct kh_err err = { "" };

	setup();
	CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &dpr, &err), 0);
	for (size_t i = 0; dpr && i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *fields = json_loads(cases[i].fields, JSON_DECODE_ANY,
					    NULL);
		uint64_t seq = 7;
		int r;

		err.msg[0] = '\0';
		r = kh_dpr_append(dpr, cases[i].type, fields, &seq, NULL, &err);
		if (r != -EINVAL || seq != 0 ||
		    !strstr(err.msg, cases[i].message))
			kh_test_fail(__FILE__, __LINE__, "case %zu: r=%d "
				     "err=\"%s\"",
				     i, r, err.msg);
		json_decref(fields);
	}
	if (dpr) {
		CHECK_INT(kh_dpr_append(NULL, "stop", NULL, NULL, NULL, &err),
			  -EINVAL);
		CHECK_INT(append_ok(dpr, "stop", json_object(), NULL), 1);
	}
	kh_dpr_close(dpr);
	CHECK_INT(verify_log(&report, &err), 0);
	CHECK_INT(report.records, 1);
	teardown();
}

/*
 * The log is locked while open: a second opener fails with -EBUSY, and
 * once the first closes, the next opener continues the chain.
 */
static void test_open_is_exclusive(void)
{
	struct kh_dpr *first = NULL;
	struct kh_dpr *second = NULL;
	struct kh_err err = { "" };

	setup();
	CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &first, &err), 0);
	CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &second, &err), -EBUSY);
	CHECK(second == NULL);
	CHECK(strstr(err.msg, "locked by another process") != NULL);
	if (first)
		append_ok(first, "start", json_object(), NULL);
	kh_dpr_close(first);

	CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &second, &err), 0);
	if (second)
		CHECK_INT(append_ok(second, "stop", json_object(), NULL), 2);
	kh_dpr_close(second);
	teardown();
}

static void test_open_rejects(void)
{
	struct kh_dpr *dpr = (struct kh_dpr *)1;
	struct kh_err err = { "" };
	struct kh_key public_only;

	setup();
	memset(&public_only, 0, sizeof(public_only));
	memcpy(public_only.public_key, audit_key->public_key,
	       sizeof(public_only.public_key));
	memcpy(public_only.kid, audit_key->kid, sizeof(public_only.kid));
	CHECK_INT(kh_dpr_open(audit, &public_only, NULL, &dpr, &err), -EINVAL);
	CHECK(dpr == NULL);
	CHECK(strstr(err.msg, "private audit key") != NULL);

	/* The log must be a regular file, never reached through a symlink. */
	CHECK_INT(mkdir(audit, 0700), 0);
	CHECK_INT(symlink("/dev/null", log_path()), 0);
	CHECK(kh_dpr_open(audit, audit_key, NULL, &dpr, &err) < 0);
	CHECK(dpr == NULL);
	teardown();
}

struct append_thread {
	struct kh_dpr *dpr;
	int failures;
};

static void *append_many(void *arg)
{
	struct append_thread *t = arg;

	for (int i = 0; i < 25; i++) {
		json_t *fields = json_pack("{s:i}", "i", i);
		struct kh_err err;

		if (kh_dpr_append(t->dpr, "stop", fields, NULL, NULL, &err))
			t->failures++;
		json_decref(fields);
	}
	return NULL;
}

/* Appends from four threads interleave into one valid chain. */
static void test_concurrent_appends(void)
{
	struct append_thread threads[4];
	pthread_t ids[4];
	struct kh_dpr_report report;
	struct kh_dpr *dpr = NULL;
	struct kh_err err = { "" };

	setup();
	CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &dpr, &err), 0);
	for (int i = 0; dpr && i < 4; i++) {
		threads[i].dpr = dpr;
		threads[i].failures = 0;
		CHECK_INT(pthread_create(&ids[i], NULL, append_many,
					 &threads[i]), 0);
	}
	for (int i = 0; dpr && i < 4; i++) {
		CHECK_INT(pthread_join(ids[i], NULL), 0);
		CHECK_INT(threads[i].failures, 0);
	}
	kh_dpr_close(dpr);
	CHECK_INT(verify_log(&report, &err), 0);
	CHECK_INT(report.records, 100);
	teardown();
}

static int count_records(const json_t *record, void *ctx)
{
	int *count = ctx;

	(*count)++;
	if (json_integer_value(json_object_get(record, "seq")) != *count)
		return -ERANGE;
	return 0;
}

static int stop_at_three(const json_t *record, void *ctx)
{
	(void)ctx;
	return json_integer_value(json_object_get(record, "seq")) == 3 ? 42
								       : 0;
}

static void test_foreach(void)
{
	struct kh_err err = { "" };
	struct kh_dpr_report report;
	char *buf;
	size_t len;
	int count = 0;

	setup();
	write_samples(5);
	CHECK_INT(kh_dpr_foreach(audit, count_records, &count, &err), 0);
	CHECK_INT(count, 5);
	CHECK_INT(kh_dpr_foreach(audit, stop_at_three, NULL, &err), 42);

	/* A final line still being written is not a record yet. */
	buf = read_log(&len);
	if (buf) {
		buf = realloc(buf, len + 16);
		memcpy(buf + len, "{\"v\":1,\"seq\"", 12);
		write_log(buf, len + 12);
	}
	count = 0;
	CHECK_INT(kh_dpr_foreach(audit, count_records, &count, &err), 0);
	CHECK_INT(count, 5);
	free(buf);

	CHECK_INT(kh_dpr_verify(work, audit_key, &report, &err), -ENOENT);
	CHECK_INT(kh_dpr_foreach(work, count_records, &count, &err), -ENOENT);
	teardown();
}

static void test_archive_policy(void)
{
	static const char text[] =
		"{\"tenant\":\"acme\", \"env\":\"prod\", \"max_ttl\":60, "
		"\"rules\":[]}";
	struct kh_policy *policy = NULL;
	struct kh_dpr *dpr = NULL;
	struct kh_err err = { "" };
	char path[256];
	char hash[KH_HASH_HEX_LEN + 1];
	char content[256] = "";
	struct stat before;
	struct stat after;
	FILE *f;
	size_t n = 0;

	setup();
	CHECK_INT(kh_policy_parse(text, strlen(text), "test", &policy, &err),
		  0);
	CHECK_INT(kh_dpr_open(audit, audit_key, NULL, &dpr, &err), 0);
	if (!policy || !dpr)
		goto out;
	CHECK_INT(kh_dpr_archive_policy(dpr, policy, &err), 0);

	(void)snprintf(path, sizeof(path), "%s/policies/%s.json", audit,
		       kh_policy_hash(policy));
	f = fopen(path, "r");
	CHECK(f != NULL);
	if (f) {
		n = fread(content, 1, sizeof(content) - 1, f);
		fclose(f);
	}
	CHECK_STR(content, "{\"env\":\"prod\",\"max_ttl\":60,\"rules\":[],"
			   "\"tenant\":\"acme\"}");
	kh_hash_bytes(content, n, hash);
	CHECK_STR(hash, kh_policy_hash(policy));

	/* A second archive of the same policy leaves the file alone. */
	CHECK_INT(stat(path, &before), 0);
	CHECK_INT(kh_dpr_archive_policy(dpr, policy, &err), 0);
	CHECK_INT(stat(path, &after), 0);
	CHECK_INT(after.st_ino, before.st_ino);

	/* A damaged archive is rewritten. */
	f = fopen(path, "w");
	if (f) {
		fputs("{}", f);
		fclose(f);
	}
	CHECK_INT(kh_dpr_archive_policy(dpr, policy, &err), 0);
	f = fopen(path, "r");
	memset(content, 0, sizeof(content));
	if (f) {
		n = fread(content, 1, sizeof(content) - 1, f);
		fclose(f);
	}
	kh_hash_bytes(content, n, hash);
	CHECK_STR(hash, kh_policy_hash(policy));
out:
	kh_dpr_close(dpr);
	kh_policy_free(policy);
	teardown();
}

static const struct kh_test_case cases[] = {
	{ "append verify", test_append_verify },
	{ "hash coverage", test_hash_coverage },
	{ "forgeries", test_forgeries },
	{ "wrong key", test_wrong_key },
	{ "verify public jwk", test_verify_public_jwk },
	{ "torn tail repair", test_torn_tail_repair },
	{ "bad middle not repaired", test_bad_middle_not_repaired },
	{ "replay counters", test_replay_counters },
	{ "replay rejects incomplete", test_replay_rejects_incomplete },
	{ "failed write rolls back", test_failed_write_rolls_back },
	{ "append rejects", test_append_rejects },
	{ "open is exclusive", test_open_is_exclusive },
	{ "open rejects", test_open_rejects },
	{ "concurrent appends", test_concurrent_appends },
	{ "foreach", test_foreach },
	{ "archive policy", test_archive_policy },
};

int main(void)
{
	return KH_TEST_RUN("dpr", cases);
}
