/*
 * Tests for strict JSON parsing and RFC 8785 canonical form: the vector
 * files under tests/vectors/jcs (format in their README.md), number
 * formatting against IEEE 754 bit patterns, UTF-16 key order, error paths
 * and the SHA-256 helpers.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "keyhole/canon.h"

/* The vector directory contains at least this many vectors of each kind. */
#define MIN_ACCEPT_VECTORS 20
#define MIN_REJECT_VECTORS 15

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Reads a whole file. Returns NULL when it is missing. */
static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	long size;

	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		data = malloc((size_t)size + 1);
		if (data && fread(data, 1, (size_t)size, f) == (size_t)size) {
			data[size] = '\0';
			*len = (size_t)size;
		} else {
			free(data);
			data = NULL;
		}
	}
	(void)fclose(f);
	return data;
}

static char *read_vector_file(const char *dir, const char *name,
			      size_t *len)
{
	char path[1024];

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	return read_all(path, len);
}

/* Cuts a trailing newline, for one-line files such as sha256. */
static void chomp(char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n > 0 && s[n - 1] == '\n')
		s[n - 1] = '\0';
}

static void check_accept_vector(const char *name, const char *dir,
				const char *input, size_t input_len)
{
	struct kh_err err;
	json_t *value = NULL;
	char *want = NULL;
	char *want_hash = NULL;
	char *canon = NULL;
	char hash[KH_HASH_HEX_LEN + 1];
	char bytes_hash[KH_HASH_HEX_LEN + 1];
	size_t want_len;
	size_t canon_len = 0;
	size_t hash_len;

	want = read_vector_file(dir, "canonical.json", &want_len);
	want_hash = read_vector_file(dir, "sha256", &hash_len);
	chomp(want_hash);
	if (!want_hash) {
		kh_test_fail(__FILE__, __LINE__, "%s: sha256 missing", name);
		goto out;
	}
	if (kh_json_parse(input, input_len, &value, &err) < 0) {
		kh_test_fail(__FILE__, __LINE__, "%s: rejected: %s", name,
			     err.msg);
		goto out;
	}
	if (kh_canon_dump(value, &canon, &canon_len, &err) < 0) {
		kh_test_fail(__FILE__, __LINE__, "%s: dump failed: %s", name,
			     err.msg);
		goto out;
	}
	if (canon_len != want_len || memcmp(canon, want, want_len) != 0)
		kh_test_fail(__FILE__, __LINE__, "%s: canonical form is %s",
			     name, canon);
	if (kh_hash(value, hash, &err) < 0)
		kh_test_fail(__FILE__, __LINE__, "%s: kh_hash: %s", name,
			     err.msg);
	else if (strcmp(hash, want_hash) != 0)
		kh_test_fail(__FILE__, __LINE__, "%s: kh_hash is %s", name,
			     hash);
	kh_hash_bytes(want, want_len, bytes_hash);
	if (strcmp(bytes_hash, want_hash) != 0)
		kh_test_fail(__FILE__, __LINE__, "%s: kh_hash_bytes is %s",
			     name, bytes_hash);
out:
	json_decref(value);
	free(canon);
	free(want);
	free(want_hash);
}

/*
 * The reject file contains the expected JSON path and, optionally, a second
 * line "line N". The message must read "invalid JSON: PATH" followed by
 * ':' or ' ', so "$.a" does not match "$.ab".
 */
static void check_reject_vector(const char *name, const char *dir,
				const char *input, size_t input_len)
{
	struct kh_err err;
	json_t *value = (json_t *)1;
	char *expect;
	char *line;
	char prefix[300];
	char line_text[64];
	size_t len;
	int rc;

	expect = read_vector_file(dir, "reject", &len);
	line = expect ? strchr(expect, '\n') : NULL;
	if (line)
		*line++ = '\0';
	chomp(line);

	rc = kh_json_parse(input, input_len, &value, &err);
	(void)snprintf(prefix, sizeof(prefix), "invalid JSON: %s",
		       expect ? expect : "?");
	if (rc != -EINVAL || value) {
		kh_test_fail(__FILE__, __LINE__, "%s: kh_json_parse "
			     "returned %d, expected -EINVAL", name, rc);
	} else if (!starts_with(err.msg, prefix) ||
		   (err.msg[strlen(prefix)] != ':' &&
		    err.msg[strlen(prefix)] != ' ')) {
		kh_test_fail(__FILE__, __LINE__, "%s: message \"%s\" does "
			     "not start with \"%s\"", name, err.msg, prefix);
	} else if (line && *line) {
		(void)snprintf(line_text, sizeof(line_text), "(%s,", line);
		if (!strstr(err.msg, line_text))
			kh_test_fail(__FILE__, __LINE__, "%s: message \"%s\" "
				     "lacks \"%s\"", name, err.msg, line_text);
	}
	free(expect);
}

static void test_vector_files(void)
{
	char root[512];
	char dir[1024];
	struct dirent *entry;
	int accepted = 0;
	int rejected = 0;
	DIR *d;

	(void)snprintf(root, sizeof(root), "%s/vectors/jcs",
		       kh_test_data_dir());
	d = opendir(root);
	CHECK(d != NULL);
	if (!d)
		return;
	while ((entry = readdir(d))) {
		char *input;
		char *canonical;
		size_t input_len;
		size_t unused;

		if (entry->d_name[0] == '.')
			continue;
		(void)snprintf(dir, sizeof(dir), "%s/%s", root, entry->d_name);
		input = read_vector_file(dir, "input.json", &input_len);
		if (!input)
			continue;
		canonical = read_vector_file(dir, "canonical.json", &unused);
		if (canonical) {
			check_accept_vector(entry->d_name, dir, input,
					    input_len);
			accepted++;
		} else {
			check_reject_vector(entry->d_name, dir, input,
					    input_len);
			rejected++;
		}
		free(canonical);
		free(input);
	}
	(void)closedir(d);
	CHECK(accepted >= MIN_ACCEPT_VECTORS);
	CHECK(rejected >= MIN_REJECT_VECTORS);
}

static double from_bits(uint64_t bits)
{
	double d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

/*
 * IEEE 754 bit patterns and their ECMAScript form. The first 24 rows
 * are the finite samples of RFC 8785 Appendix B.
 */
static const struct {
	uint64_t bits;
	const char *text;
} number_table[] = {
	{ 0x0000000000000000, "0" },
	{ 0x8000000000000000, "0" },
	{ 0x0000000000000001, "5e-324" },
	{ 0x8000000000000001, "-5e-324" },
	{ 0x7fefffffffffffff, "1.7976931348623157e+308" },
	{ 0xffefffffffffffff, "-1.7976931348623157e+308" },
	{ 0x4340000000000000, "9007199254740992" },
	{ 0xc340000000000000, "-9007199254740992" },
	{ 0x4430000000000000, "295147905179352830000" },
	{ 0x44b52d02c7e14af5, "9.999999999999997e+22" },
	{ 0x44b52d02c7e14af6, "1e+23" },
	{ 0x44b52d02c7e14af7, "1.0000000000000001e+23" },
	{ 0x444b1ae4d6e2ef4e, "999999999999999700000" },
	{ 0x444b1ae4d6e2ef4f, "999999999999999900000" },
	{ 0x444b1ae4d6e2ef50, "1e+21" },
	{ 0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7" },
	{ 0x3eb0c6f7a0b5ed8d, "0.000001" },
	{ 0x41b3de4355555553, "333333333.3333332" },
	{ 0x41b3de4355555554, "333333333.33333325" },
	{ 0x41b3de4355555555, "333333333.3333333" },
	{ 0x41b3de4355555556, "333333333.3333334" },
	{ 0x41b3de4355555557, "333333333.33333343" },
	{ 0xbecbf647612f3696, "-0.0000033333333333333333" },
	{ 0x43143ff3c1cb0959, "1424953923781206.2" },
	/* Exponent form starts below 1e-6: 1e-7 is the first such value. */
	{ 0x3e7ad7f29abcaf48, "1e-7" },
	{ 0x3ff0000000000000, "1" },
	{ 0x3ff8000000000000, "1.5" },
	{ 0x4415af1d78b58c40, "100000000000000000000" },
	{ 0x3fb999999999999a, "0.1" },
	{ 0x0010000000000000, "2.2250738585072014e-308" },
	/* 2^-1017: the nearest 16-digit decimal does not read back as it. */
	{ 0x0060000000000000, "7.120236347223045e-307" },
};

static void test_number_table(void)
{
	char buf[32];
	size_t count = sizeof(number_table) / sizeof(number_table[0]);

	for (size_t i = 0; i < count; i++) {
		CHECK_INT(kh_canon_number(from_bits(number_table[i].bits), buf),
			  0);
		CHECK_STR(buf, number_table[i].text);
	}
}

static void test_non_finite_numbers_rejected(void)
{
	const double values[] = { NAN, INFINITY, -INFINITY };
	char buf[32];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		memcpy(buf, "junk", 5);
		CHECK_INT(kh_canon_number(values[i], buf), -EINVAL);
		CHECK_STR(buf, "");
	}
}

/* Member names given as JSON text, in the order RFC 8785 requires. */
static const struct {
	const char *first;
	const char *second;
} key_order_table[] = {
	{ "", "a" },
	{ "a", "ab" },
	{ "B", "a" },
	{ "1.5", "10" },
	{ "e\\u0301", "\\u00e9" },
	/* UTF-8 bytes would order these two the other way round. */
	{ "\\ud83d\\ude00", "\\ue000" },
	{ "\\ud800\\udc00", "\\uffff" },
	{ "\\udbff\\udfff", "\\ufb33" },
	{ "\\ud7ff", "\\ud800\\udc00" },
	{ "\\ud83d\\ude00", "\\ud83d\\ude01" },
	{ "\\ud83d\\ude00", "\\ud83d\\ude00a" },
};

static void test_key_order_utf16(void)
{
	size_t count = sizeof(key_order_table) / sizeof(key_order_table[0]);

	for (size_t i = 0; i < count; i++) {
		struct kh_err err;
		char text[128];
		char want[128];
		char *got = NULL;
		json_t *value = NULL;
		json_t *first = NULL;
		char *first_text = NULL;

		/* Written second-first, so sorting has to swap them. */
		(void)snprintf(text, sizeof(text), "{\"%s\":2,\"%s\":1}",
			       key_order_table[i].second,
			       key_order_table[i].first);
		(void)snprintf(want, sizeof(want), "\"%s\"",
			       key_order_table[i].first);
		CHECK_INT(kh_json_parse(text, strlen(text), &value, &err), 0);
		CHECK_INT(kh_canon_dump(value, &got, NULL, &err), 0);

		/* The first member in the output must be the first key. */
		CHECK_INT(kh_json_parse(want, strlen(want), &first, &err), 0);
		CHECK_INT(kh_canon_dump(first, &first_text, NULL, &err), 0);
		if (got && first_text &&
		    (strncmp(got + 1, first_text, strlen(first_text)) != 0 ||
		     got[1 + strlen(first_text)] != ':'))
			kh_test_fail(__FILE__, __LINE__,
				     "order of {%s, %s}: got %s", want,
				     key_order_table[i].second, got);
		free(got);
		free(first_text);
		json_decref(value);
		json_decref(first);
	}
}

/* Inputs and the exact start of the error message they must produce. */
static const struct {
	const char *input;
	const char *message;
} error_table[] = {
	{ "{\"a\":\n{\"b\":\n[1,\n tru]}}",
	  "invalid JSON: $.a.b[1] (line 4, column 4): invalid token" },
	{ "{\"a b\":{\"c\":1,\"c\":2}}",
	  "invalid JSON: $[\"a b\"].c (line 1, column 17): duplicate object "
	  "key; each key may appear only once in an object" },
	{ "[[], {}, [0, {\"x\": [1, \"\\ud800\"]}]]",
	  "invalid JSON: $[2][1].x[1] (line 1, column 31): invalid Unicode "
	  "'\\uD800'; a \\uD800-\\uDFFF escape must be half of a surrogate "
	  "pair" },
	{ "{\"k\": 1} {",
	  "invalid JSON: $ (line 1, column 10): end of file expected; remove "
	  "what follows the JSON value" },
	{ "{\"k\": [9007199254740993]}",
	  "invalid JSON: $.k[0]: integer 9007199254740993 is beyond +-2^53" },
	{ "{\"a\": {\"b\\u0000\": 1}}",
	  "invalid JSON: $.a[\"b\\u0000\"] (line 1, column 16): NUL byte in "
	  "object key not supported; object keys cannot contain U+0000" },
	{ "{\"0123456789012345678901234567890123456789012345678901234567890123"
	  "456789 \": {\"x\":1,\"x\":2}}",
	  "invalid JSON: $[\"0123456789012345678901234567890123456789012345678"
	  "901234567890123...\"].x" },
	{ "{\"a\": [1, 2}", "invalid JSON: $.a[1] (line 1, column 12): ']' "
	  "expected" },
	{ "{\"a\": [{}, [1,]]}", "invalid JSON: $.a[1][1] (line 1, column 15): "
	  "unexpected token" },
	{ "{\"a\": 1,}", "invalid JSON: $ (line 1, column 9): string or '}' "
	  "expected" },
	{ "[1]]", "invalid JSON: $ (line 1, column 4): end of file expected" },
	{ "", "invalid JSON: $ (line 1, column 0): unexpected token near end "
	      "of file" },
};

static void test_error_messages(void)
{
	size_t count = sizeof(error_table) / sizeof(error_table[0]);

	for (size_t i = 0; i < count; i++) {
		struct kh_err err;
		json_t *value = NULL;
		const char *want = error_table[i].message;

		CHECK_INT(kh_json_parse(error_table[i].input,
					strlen(error_table[i].input), &value,
					&err),
			  -EINVAL);
		CHECK(value == NULL);
		if (!starts_with(err.msg, want))
			kh_test_fail(__FILE__, __LINE__,
				     "message is \"%s\", expected to start "
				     "with \"%s\"",
				     err.msg, want);
	}
}

/* jansson quotes the source near an error, and that text may be a secret. */
static void test_error_omits_source_text(void)
{
	const char *inputs[] = {
		"{\"d\": \"hunter2-secret",
		"{\"d\": hunter2secret}",
		"{\"d\": \"hunter2-secret\"} hunter2secret",
	};

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct kh_err err;
		json_t *value = NULL;

		CHECK_INT(kh_json_parse(inputs[i], strlen(inputs[i]), &value,
					&err),
			  -EINVAL);
		CHECK(strstr(err.msg, "hunter2") == NULL);
	}
}

/* Builds [[[...]]] with depth arrays, as JSON text. */
static char *nested_arrays_text(size_t depth)
{
	char *text = malloc(2 * depth + 1);

	if (!text)
		return NULL;
	memset(text, '[', depth);
	memset(text + depth, ']', depth);
	text[2 * depth] = '\0';
	return text;
}

static void test_nesting_limit(void)
{
	struct kh_err err;
	json_t *value = NULL;
	json_t *inner;
	char *text = nested_arrays_text(2048);
	char *canon = NULL;
	size_t len = 0;

	/* jansson 2.14 parses 2048 levels, and canonical form keeps them. */
	CHECK(text != NULL);
	CHECK_INT(kh_json_parse(text, text ? strlen(text) : 0, &value, &err),
		  0);
	CHECK_INT(kh_canon_dump(value, &canon, &len, &err), 0);
	CHECK_STR(canon, text);
	free(canon);
	free(text);

	/* One more level built in memory is rejected with its path. */
	inner = value;
	while (json_array_size(inner) > 0)
		inner = json_array_get(inner, 0);
	CHECK_INT(json_array_append_new(inner, json_array()), 0);
	canon = (char *)1;
	CHECK_INT(kh_canon_dump(value, &canon, &len, &err), -EINVAL);
	CHECK(canon == NULL);
	CHECK_INT(len, 0);
	/* The long path keeps its start and end, and the reason survives. */
	CHECK(starts_with(err.msg, "$[0][0][0]"));
	CHECK(strstr(err.msg, "...[0][0]") != NULL);
	CHECK(strstr(err.msg, "[0]: nesting is deeper than 2048") != NULL);
	json_decref(value);

	text = nested_arrays_text(2049);
	value = (json_t *)1;
	CHECK_INT(kh_json_parse(text, text ? strlen(text) : 0, &value, &err),
		  -EINVAL);
	CHECK(value == NULL);
	free(text);
}

/* A value that contains itself must end in an error, not a crash. */
static void test_cycle_rejected(void)
{
	struct kh_err err;
	json_t *outer = json_array();
	json_t *inner = json_array();
	char *canon = NULL;

	CHECK_INT(json_array_append(outer, inner), 0);
	CHECK_INT(json_array_append(inner, outer), 0);
	CHECK_INT(kh_canon_dump(outer, &canon, NULL, &err), -EINVAL);
	CHECK(canon == NULL);
	CHECK_INT(kh_json_check(outer, &err), -EINVAL);
	/* Break the cycle so that both arrays are freed. */
	CHECK_INT(json_array_clear(inner), 0);
	json_decref(inner);
	json_decref(outer);
}

static void test_check_in_memory_values(void)
{
	struct kh_err err;
	json_t *doc = json_object();
	json_t *list = json_array();
	json_t *bad_key = json_object();

	CHECK_INT(json_object_set_new(doc, "list", list), 0);
	CHECK_INT(json_array_append_new(list, json_integer(1)), 0);
	CHECK_INT(kh_json_check(doc, &err), 0);

	CHECK_INT(json_array_append_new(
			  list, json_integer(KH_JSON_MAX_SAFE_INT + 1)),
		  0);
	CHECK_INT(kh_json_check(doc, &err), -EINVAL);
	CHECK(starts_with(err.msg, "$.list[1]: integer 9007199254740993"));

	CHECK_INT(json_array_set_new(list, 1,
				     json_integer(-KH_JSON_MAX_SAFE_INT)),
		  0);
	CHECK_INT(kh_json_check(doc, &err), 0);

	CHECK_INT(json_array_append_new(list, json_stringn_nocheck("\xff", 1)),
		  0);
	CHECK_INT(kh_json_check(doc, &err), -EINVAL);
	CHECK(starts_with(err.msg, "$.list[2]: string is not valid UTF-8"));
	CHECK_INT(json_array_remove(list, 2), 0);

	CHECK_INT(json_object_set_new_nocheck(bad_key, "\xc0\xaf", json_null()),
		  0);
	CHECK_INT(json_object_set_new(doc, "map", bad_key), 0);
	CHECK_INT(kh_json_check(doc, &err), -EINVAL);
	CHECK(starts_with(err.msg, "$.map: an object key is not valid UTF-8"));

	CHECK_INT(kh_json_check(NULL, &err), -EINVAL);
	json_decref(doc);

	/* A member name that is not an identifier is quoted and escaped. */
	doc = json_pack("{s:{s:I}}", "a b", "q\"\n", (json_int_t)1 << 60);
	CHECK_INT(kh_json_check(doc, &err), -EINVAL);
	CHECK(starts_with(err.msg, "$[\"a b\"][\"q\\\"\\u000a\"]: integer"));
	json_decref(doc);
}

/*
 * Byte strings put into jansson without its UTF-8 check, and whether
 * RFC 3629 allows them.
 */
static const struct {
	const char *bytes;
	int valid;
} utf8_table[] = {
	{ "plain", 1 },
	{ "\xc2\x80", 1 },			/* U+0080 */
	{ "\xef\xbf\xbf", 1 },		/* U+FFFF */
	{ "\xf0\x9f\x98\x80", 1 },		/* U+1F600 */
	{ "\xf4\x8f\xbf\xbf", 1 },		/* U+10FFFF */
	{ "\xff", 0 },
	{ "\x80", 0 },			/* continuation byte alone */
	{ "\xc0\xaf", 0 },			/* overlong '/' */
	{ "\xe0\x80\xaf", 0 },		/* overlong '/' */
	{ "\xed\xa0\x80", 0 },		/* surrogate U+D800 */
	{ "\xed\xbf\xbf", 0 },		/* surrogate U+DFFF */
	{ "\xf4\x90\x80\x80", 0 },		/* U+110000 */
	{ "\xe2\x82", 0 },			/* truncated */
	{ "a\xf0\x9f\x98", 0 },		/* truncated at the end */
};

static void test_utf8_validation(void)
{
	size_t count = sizeof(utf8_table) / sizeof(utf8_table[0]);

	for (size_t i = 0; i < count; i++) {
		struct kh_err err;
		const char *bytes = utf8_table[i].bytes;
		json_t *string = json_stringn_nocheck(bytes, strlen(bytes));
		json_t *object = json_object();
		int want = utf8_table[i].valid ? 0 : -EINVAL;

		CHECK_INT(kh_json_check(string, &err), want);
		CHECK_INT(json_object_setn_new_nocheck(object, bytes,
						       strlen(bytes),
						       json_true()),
			  0);
		CHECK_INT(kh_json_check(object, &err), want);
		json_decref(string);
		json_decref(object);
	}
}

static void test_outputs_cleared_on_failure(void)
{
	struct kh_err err;
	json_t *value = json_pack("{s:I}", "n", (json_int_t)1 << 60);
	json_t *parsed = (json_t *)1;
	char *canon = (char *)1;
	size_t len = 7;
	char hex[KH_HASH_HEX_LEN + 1] = "junk";

	CHECK_INT(kh_canon_dump(value, &canon, &len, &err), -EINVAL);
	CHECK(canon == NULL);
	CHECK_INT(len, 0);
	CHECK_INT(kh_hash(value, hex, &err), -EINVAL);
	CHECK_STR(hex, "");
	CHECK_INT(kh_json_parse("[1,", 3, &parsed, &err), -EINVAL);
	CHECK(parsed == NULL);
	CHECK_INT(kh_json_parse(NULL, 0, &parsed, &err), -EINVAL);
	json_decref(value);
}

static void test_nul_in_string_kept(void)
{
	struct kh_err err;
	const char *text = "[\"a\\u0000b\"]";
	json_t *value = NULL;
	char *canon = NULL;
	size_t len = 0;

	CHECK_INT(kh_json_parse(text, strlen(text), &value, &err), 0);
	CHECK_INT(json_string_length(json_array_get(value, 0)), 3);
	CHECK_INT(kh_canon_dump(value, &canon, &len, &err), 0);
	CHECK_INT(len, strlen(text));
	CHECK_STR(canon, text);
	free(canon);
	json_decref(value);
}

static void test_hash_known_answers(void)
{
	struct kh_err err;
	char hex[KH_HASH_HEX_LEN + 1];
	json_t *value = json_pack("{s:i,s:s}", "b", 1, "a", "x");

	/* FIPS 180-2 examples. */
	kh_hash_bytes("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410"
		       "ff61f20015ad");
	kh_hash_bytes("", 0, hex);
	CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495"
		       "991b7852b855");

	/* kh_hash covers the canonical bytes {"a":"x","b":1}. */
	CHECK_INT(kh_hash(value, hex, &err), 0);
	CHECK_STR(hex, "cdab067e9f3beb32d1252cfd63e492592fecbf591b0d08cadb24"
		       "bb17f3864246");
	json_decref(value);
}

static const struct {
	const char *text;
	int valid;
} hash_format_table[] = {
	{ "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	  1 },
	{ "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
	  0 },
	{ "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
	  0 },
	{ "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550",
	  0 },
	{ "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	  0 },
	{ "", 0 },
	{ NULL, 0 },
};

static void test_hash_format(void)
{
	size_t count = sizeof(hash_format_table) / sizeof(hash_format_table[0]);

	for (size_t i = 0; i < count; i++)
		CHECK_INT(kh_hash_is_valid(hash_format_table[i].text),
			  hash_format_table[i].valid);
}

static void test_load_file_names_file(void)
{
	char dir[] = "/tmp/keyhole-canon.XXXXXX";
	char path[256];
	struct kh_err err;
	json_t *value = (json_t *)1;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	(void)snprintf(path, sizeof(path), "%s/missing.json", dir);
	CHECK_INT(kh_json_load_file(path, &value, &err), -ENOENT);
	CHECK(value == NULL);
	CHECK(starts_with(err.msg, path));

	(void)snprintf(path, sizeof(path), "%s/policy.json", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("{\n  \"rules\": [\n    {\"id\": \"a\", \"id\": \"b\"}\n"
		      "  ]\n}\n", f);
		(void)fclose(f);
	}
	CHECK_INT(kh_json_load_file(path, &value, &err), -EINVAL);
	CHECK(starts_with(err.msg, path));
	CHECK(strstr(err.msg, ": invalid JSON: $.rules[0].id (line 3,") !=
	      NULL);

	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("{\"rules\": []}\n", f);
		(void)fclose(f);
	}
	CHECK_INT(kh_json_load_file(path, &value, &err), 0);
	CHECK(json_is_array(json_object_get(value, "rules")));
	json_decref(value);

	(void)unlink(path);
	(void)rmdir(dir);
}

static const struct kh_test_case cases[] = {
	{ "vector files", test_vector_files },
	{ "number table", test_number_table },
	{ "non-finite numbers rejected", test_non_finite_numbers_rejected },
	{ "key order utf16", test_key_order_utf16 },
	{ "error messages", test_error_messages },
	{ "error omits source text", test_error_omits_source_text },
	{ "nesting limit", test_nesting_limit },
	{ "cycle rejected", test_cycle_rejected },
	{ "check in-memory values", test_check_in_memory_values },
	{ "utf8 validation", test_utf8_validation },
	{ "outputs cleared on failure", test_outputs_cleared_on_failure },
	{ "nul in string kept", test_nul_in_string_kept },
	{ "hash known answers", test_hash_known_answers },
	{ "hash format", test_hash_format },
	{ "load file names file", test_load_file_names_file },
};

int main(void)
{
	return KH_TEST_RUN("canon", cases);
}
