/*
 * RFC 8785 (JSON Canonicalization Scheme) serialisation of jansson values,
 * validation of in-memory values, and SHA-256 digests of canonical bytes.
 * The tree walk that writes canonical bytes also validates them, so
 * kh_json_check and kh_canon_dump cannot disagree about what is valid.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keyhole/canon.h"
#include "json_path.h"

/*
 * jansson 2.14 stops parsing at 2048 nested levels (JSON_PARSER_MAX_DEPTH),
 * so every parsed value fits. A value built in memory gets the same limit,
 * which also stops the walk on a value that contains itself.
 */
#define MAX_DEPTH 2048

/* Returned by utf8_next for a byte that does not start a valid sequence. */
#define UTF8_INVALID 0xFFFFFFFFu

/* The position of a value inside the document, for error paths. */
struct frame {
	const struct frame *up;
	const char *key;	/* NULL for an array element */
	size_t key_len;
	size_t index;
};

/* A growing output buffer. Once allocated, data stays NUL-terminated. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

struct member {
	const char *key;
	size_t key_len;
	json_t *value;
};

static int buf_append(struct buf *b, const char *s, size_t n)
{
	size_t need;
	char *grown;

	if (!b)
		return 0;
	if (n > SIZE_MAX / 2 - b->len - 1)
		return -ENOMEM;
	need = b->len + n + 1;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < need)
			cap *= 2;
		grown = realloc(b->data, cap);
		if (!grown)
			return -ENOMEM;
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

/*
 * Decodes one UTF-8 sequence strictly (RFC 3629): overlong forms,
 * surrogates and values above U+10FFFF are invalid. Always consumes at
 * least one byte when len > 0, so callers make progress on bad input.
 */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	static const uint32_t min_value[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t n;
	uint32_t value;

	*cp = UTF8_INVALID;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		n = 2;
		value = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		n = 3;
		value = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		n = 4;
		value = s[0] & 0x07;
	} else {
		return 1;
	}
	if (len < n)
		return 1;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 1;
		value = (value << 6) | (s[i] & 0x3F);
	}
	if (value < min_value[n] || value > 0x10FFFF ||
	    (value >= 0xD800 && value <= 0xDFFF))
		return 1;
	*cp = value;
	return n;
}

static int utf8_is_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	uint32_t cp;

	while (i < len) {
		i += utf8_next(p + i, len - i, &cp);
		if (cp == UTF8_INVALID)
			return 0;
	}
	return 1;
}

/*
 * Maps a code point to a number whose order is the order of its UTF-16
 * code units: U+0000..U+D7FF, then the astral planes (their high
 * surrogates are D800..DBFF), then U+E000..U+FFFF. UTF-8 bytes sort
 * U+E000..U+FFFF before astral characters, which is why RFC 8785 key
 * order cannot be a byte comparison.
 */
static uint32_t utf16_rank(uint32_t cp)
{
	if (cp < 0xD800)
		return cp;
	if (cp >= 0x10000)
		return 0xD800 + (cp - 0x10000);
	return cp + 0x100000;
}

/* Compares two valid UTF-8 strings by their UTF-16 code units. */
static int compare_utf16(const char *a, size_t a_len, const char *b,
			 size_t b_len)
{
	const unsigned char *pa = (const unsigned char *)a;
	const unsigned char *pb = (const unsigned char *)b;
	size_t i = 0;
	size_t j = 0;

	while (i < a_len && j < b_len) {
		uint32_t ca;
		uint32_t cb;

		i += utf8_next(pa + i, a_len - i, &ca);
		j += utf8_next(pb + j, b_len - j, &cb);
		if (ca != cb)
			return utf16_rank(ca) < utf16_rank(cb) ? -1 : 1;
	}
	return (i < a_len) - (j < b_len);
}

static int compare_members(const void *a, const void *b)
{
	const struct member *ma = a;
	const struct member *mb = b;

	return compare_utf16(ma->key, ma->key_len, mb->key, mb->key_len);
}

/*
 * Appends s as a JSON string the RFC 8785 way: only '"', '\\' and
 * control characters are escaped, everything else is copied as UTF-8.
 */
static int write_string(struct buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t start = 0;
	int rc;

	rc = buf_append(out, "\"", 1);
	for (size_t i = 0; rc == 0 && i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7] = { '\\', 0 };
		size_t esc_len = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\t': esc[1] = 't'; break;
		case '\n': esc[1] = 'n'; break;
		case '\f': esc[1] = 'f'; break;
		case '\r': esc[1] = 'r'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xF];
			esc_len = 6;
			break;
		}
		rc = buf_append(out, s + start, i - start);
		if (rc == 0)
			rc = buf_append(out, esc, esc_len);
		start = i + 1;
	}
	if (rc == 0)
		rc = buf_append(out, s + start, len - start);
	if (rc == 0)
		rc = buf_append(out, "\"", 1);
	return rc;
}

/* Appends the steps from the root down to f. */
static void write_path(struct kh_json_path *path, const struct frame *f)
{
	if (!f)
		return;
	write_path(path, f->up);
	if (f->key)
		kh_json_path_key(path, f->key, f->key_len);
	else
		kh_json_path_index(path, f->index);
}

/* Sets err to "PATH: message". */
static int fail_at(struct kh_err *err, const struct frame *at, int rc,
		   const char *message)
{
	struct kh_json_path path;

	kh_json_path_init(&path);
	write_path(&path, at);
	kh_err_set(err, "%s: %s", kh_json_path_text(&path), message);
	kh_json_path_free(&path);
	return rc;
}

static int walk(const json_t *value, const struct frame *at, int depth,
		struct buf *out, struct kh_err *err);

static int walk_array(const json_t *array, const struct frame *at,
		      int depth, struct buf *out, struct kh_err *err)
{
	struct frame element = { .up = at };
	int rc;

	rc = buf_append(out, "[", 1);
	for (size_t i = 0; rc == 0 && i < json_array_size(array); i++) {
		element.index = i;
		if (i > 0)
			rc = buf_append(out, ",", 1);
		if (rc == 0)
			rc = walk(json_array_get(array, i), &element, depth + 1,
				  out, err);
	}
	if (rc == 0)
		rc = buf_append(out, "]", 1);
	return rc;
}

/* Collects the members of object and checks that their keys are UTF-8. */
static int collect_members(const json_t *object, const struct frame *at,
			   struct member **out, struct kh_err *err)
{
	struct member *members;
	size_t count = json_object_size(object);
	size_t i = 0;
	void *iter;

	*out = NULL;
	members = calloc(count ? count : 1, sizeof(*members));
	if (!members)
		return fail_at(err, at, -ENOMEM, "out of memory");
	iter = json_object_iter((json_t *)object);
	for (; iter && i < count; i++) {
		members[i].key = json_object_iter_key(iter);
		members[i].key_len = json_object_iter_key_len(iter);
		members[i].value = json_object_iter_value(iter);
		if (!utf8_is_valid(members[i].key, members[i].key_len)) {
			free(members);
			return fail_at(err, at, -EINVAL,
				       "an object key is not valid UTF-8; "
				       "JSON keys must be UTF-8 text");
		}
		iter = json_object_iter_next((json_t *)object, iter);
	}
	*out = members;
	return 0;
}

static int walk_object(const json_t *object, const struct frame *at,
		       int depth, struct buf *out, struct kh_err *err)
{
	struct frame member = { .up = at };
	struct member *members;
	size_t count = json_object_size(object);
	int rc;

	rc = collect_members(object, at, &members, err);
	if (rc < 0)
		return rc;

	/* Validation alone does not need the members in order. */
	if (out)
		qsort(members, count, sizeof(*members), compare_members);
	rc = buf_append(out, "{", 1);
	for (size_t i = 0; rc == 0 && i < count; i++) {
		member.key = members[i].key;
		member.key_len = members[i].key_len;
		if (i > 0)
			rc = buf_append(out, ",", 1);
		if (rc == 0)
			rc = write_string(out, members[i].key,
					  members[i].key_len);
		if (rc == 0)
			rc = buf_append(out, ":", 1);
		if (rc == 0)
			rc = walk(members[i].value, &member, depth + 1, out,
				  err);
	}
	if (rc == 0)
		rc = buf_append(out, "}", 1);
	free(members);
	return rc;
}

static int walk_scalar(const json_t *value, const struct frame *at,
		       struct buf *out, struct kh_err *err)
{
	char text[160];
	json_int_t n;

	switch (json_typeof(value)) {
	case JSON_NULL:
		return buf_append(out, "null", 4);
	case JSON_TRUE:
		return buf_append(out, "true", 4);
	case JSON_FALSE:
		return buf_append(out, "false", 5);
	case JSON_INTEGER:
		n = json_integer_value(value);
		if (n > KH_JSON_MAX_SAFE_INT || n < -KH_JSON_MAX_SAFE_INT) {
			(void)snprintf(text, sizeof(text),
				       "integer %" JSON_INTEGER_FORMAT
				       " is beyond +-2^53 and does not survive"
				       " a round trip through an IEEE double;"
				       " write it as a string",
				       n);
			return fail_at(err, at, -EINVAL, text);
		}
		(void)snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, n);
		return buf_append_str(out, text);
	case JSON_REAL:
		if (kh_canon_number(json_real_value(value), text) < 0)
			return fail_at(err, at, -EINVAL,
				       "NaN and Infinity are not valid JSON "
				       "numbers; use a finite number");
		return buf_append_str(out, text);
	case JSON_STRING:
		if (!utf8_is_valid(json_string_value(value),
				   json_string_length(value)))
			return fail_at(err, at, -EINVAL,
				       "string is not valid UTF-8; JSON "
				       "strings must be UTF-8 text");
		return write_string(out, json_string_value(value),
				    json_string_length(value));
	default:
		return fail_at(err, at, -EINVAL, "unknown jansson value type");
	}
}

/*
 * Validates value and, when out is not NULL, appends its canonical form.
 * Returns 0, -EINVAL with err naming the path, or -ENOMEM.
 */
static int walk(const json_t *value, const struct frame *at, int depth,
		struct buf *out, struct kh_err *err)
{
	int rc;

	if (!value)
		return fail_at(err, at, -EINVAL, "value is missing (NULL)");
	if ((json_is_array(value) || json_is_object(value)) &&
	    depth >= MAX_DEPTH)
		return fail_at(err, at, -EINVAL,
			       "nesting is deeper than 2048 levels, or the "
			       "value contains itself; flatten the document");

	if (json_is_array(value))
		rc = walk_array(value, at, depth, out, err);
	else if (json_is_object(value))
		rc = walk_object(value, at, depth, out, err);
	else
		rc = walk_scalar(value, at, out, err);

	if (rc == -ENOMEM && err && err->msg[0] == '\0')
		(void)fail_at(err, at, rc,
			      "out of memory while writing canonical JSON");
	return rc;
}

/* Significant decimal digits D and a point position n: value = 0.D * 10^n. */
struct decimal {
	char digits[20];
	int point;
};

/* Drops leading zeros (moving the point) and trailing zeros. */
static void decimal_trim(struct decimal *d)
{
	size_t lead = 0;
	size_t len = strlen(d->digits);

	while (lead < len && d->digits[lead] == '0')
		lead++;
	memmove(d->digits, d->digits + lead, len - lead + 1);
	d->point -= (int)lead;
	len -= lead;
	while (len > 0 && d->digits[len - 1] == '0')
		d->digits[--len] = '\0';
}

/* Reads printf "%.*e" output such as "1.2345e-07" into d, untrimmed. */
static void decimal_from_exp(const char *text, struct decimal *d)
{
	const char *p = text;
	size_t k = 0;

	for (; *p && *p != 'e'; p++) {
		if (*p >= '0' && *p <= '9' && k < sizeof(d->digits) - 1)
			d->digits[k++] = *p;
	}
	d->digits[k] = '\0';
	/* printf wrote the exponent of a finite double: within +-400. */
	d->point = (*p == 'e' ? (int)strtol(p + 1, NULL, 10) : 0) + 1;
}

static double decimal_value(const struct decimal *d)
{
	char text[48];

	if (d->digits[0] == '\0')
		return 0.0;
	(void)snprintf(text, sizeof(text), "0.%se%d", d->digits, d->point);
	return strtod(text, NULL);
}

/* Adds delta (+1 or -1) in the last digit of d. Returns -1 on zero. */
static int decimal_step(const struct decimal *d, int delta,
			struct decimal *out)
{
	size_t len = strlen(d->digits);
	size_t i = len;

	*out = *d;
	while (i > 0) {
		char *c = &out->digits[--i];

		if (delta > 0 && *c != '9') {
			(*c)++;
			return 0;
		}
		if (delta < 0 && *c != '0') {
			(*c)--;
			decimal_trim(out);
			return out->digits[0] ? 0 : -1;
		}
		*c = delta > 0 ? '0' : '9';
	}
	if (delta < 0)
		return -1;
	/* 999 + 1: the carry adds a leading digit. */
	memmove(out->digits + 1, out->digits, len + 1);
	out->digits[0] = '1';
	out->point++;
	return 0;
}

/*
 * Finds a p-digit decimal that reads back as v, preferring the nearest
 * one as ECMAScript Number::toString does. printf gives the nearest. Where
 * v is a power of two, its rounding interval is narrower below v than
 * above. The nearest p-digit decimal can then fall outside the interval
 * while its neighbour on the other side of v lies inside (2^-1017 is one
 * such value). Returns 1 when a decimal was found.
 */
static int decimal_at_precision(double v, int p, struct decimal *d)
{
	char text[48];
	struct decimal alt;

	(void)snprintf(text, sizeof(text), "%.*e", p - 1, v);
	decimal_from_exp(text, d);
	if (decimal_value(d) == v)
		return 1;
	for (int delta = -1; delta <= 1; delta += 2) {
		if (decimal_step(d, delta, &alt) == 0 &&
		    decimal_value(&alt) == v) {
			*d = alt;
			return 1;
		}
	}
	return 0;
}

/*
 * Finds the fewest significant digits that read back as v. A p-digit
 * decimal that reads back as v is also a (p+1)-digit one, so whether p
 * digits suffice is monotonic in p, and a binary search over 1..17 finds
 * the fewest. Seventeen digits always read back as the same double.
 */
static void shortest_decimal(double v, struct decimal *d)
{
	int low = 1;
	int high = 17;

	while (low < high) {
		int mid = (low + high) / 2;

		if (decimal_at_precision(v, mid, d))
			high = mid;
		else
			low = mid + 1;
	}
	(void)decimal_at_precision(v, low, d);
	decimal_trim(d);
}

static void put_zeros(char *buf, size_t *pos, int count)
{
	for (int i = 0; i < count; i++)
		buf[(*pos)++] = '0';
}

static void put_digits(char *buf, size_t *pos, const char *digits,
		       size_t count)
{
	memcpy(buf + *pos, digits, count);
	*pos += count;
}

/*
 * Lays out the digits per ECMA-262 Number::toString: plain notation for
 * 1e-7 < |v| < 1e21, exponent notation ("1e+21", "1.5e-7") outside it.
 * The maximum output length is 25 bytes: "-0.00000" plus 17 digits.
 */
int kh_canon_number(double value, char buf[32])
{
	struct decimal d;
	size_t pos = 0;
	size_t k;
	int n;

	buf[0] = '\0';
	if (!isfinite(value))
		return -EINVAL;
	if (value == 0.0) {
		/* -0 is written as "0" too. */
		memcpy(buf, "0", 2);
		return 0;
	}
	if (value < 0) {
		buf[pos++] = '-';
		value = -value;
	}

	shortest_decimal(value, &d);
	k = strlen(d.digits);
	n = d.point;
	if ((int)k <= n && n <= 21) {
		put_digits(buf, &pos, d.digits, k);
		put_zeros(buf, &pos, n - (int)k);
	} else if (n > 0 && n <= 21) {
		put_digits(buf, &pos, d.digits, (size_t)n);
		buf[pos++] = '.';
		put_digits(buf, &pos, d.digits + n, k - (size_t)n);
	} else if (n > -6 && n <= 0) {
		put_digits(buf, &pos, "0.", 2);
		put_zeros(buf, &pos, -n);
		put_digits(buf, &pos, d.digits, k);
	} else {
		put_digits(buf, &pos, d.digits, 1);
		if (k > 1) {
			buf[pos++] = '.';
			put_digits(buf, &pos, d.digits + 1, k - 1);
		}
		(void)snprintf(buf + pos, 32 - pos, "e%c%d",
			       n - 1 >= 0 ? '+' : '-', abs(n - 1));
		return 0;
	}
	buf[pos] = '\0';
	return 0;
}

int kh_json_check(const json_t *value, struct kh_err *err)
{
	kh_err_clear(err);
	return walk(value, NULL, 0, NULL, err);
}

int kh_canon_dump(const json_t *value, char **out, size_t *out_len,
		  struct kh_err *err)
{
	struct buf canon = { 0 };
	int rc;

	*out = NULL;
	if (out_len)
		*out_len = 0;
	kh_err_clear(err);

	rc = walk(value, NULL, 0, &canon, err);
	if (rc < 0)
		goto out;

	*out = canon.data;
	if (out_len)
		*out_len = canon.len;
	canon.data = NULL;
out:
	free(canon.data);
	return rc;
}

/*
 * libsodium 1.0.18 has one portable SHA-256 (crypto_hash/sha256/cp) and
 * no CPU-specific variant for sodium_init to select, so this works
 * without sodium_init.
 */
void kh_hash_bytes(const void *data, size_t len,
		   char hex[KH_HASH_HEX_LEN + 1])
{
	unsigned char digest[crypto_hash_sha256_BYTES];

	(void)crypto_hash_sha256(digest, data, len);
	(void)sodium_bin2hex(hex, KH_HASH_HEX_LEN + 1, digest, sizeof(digest));
}

int kh_hash(const json_t *value, char hex[KH_HASH_HEX_LEN + 1],
	    struct kh_err *err)
{
	char *canon = NULL;
	size_t len = 0;
	int rc;

	hex[0] = '\0';
	if (sodium_init() < 0) {
		kh_err_set(err, "libsodium failed to initialise (sodium_init)");
		return -EIO;
	}
	rc = kh_canon_dump(value, &canon, &len, err);
	if (rc < 0)
		goto out;
	kh_hash_bytes(canon, len, hex);
out:
	free(canon);
	return rc;
}

int kh_hash_is_valid(const char *s)
{
	size_t i;

	if (!s)
		return 0;
	for (i = 0; i < KH_HASH_HEX_LEN; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return s[i] == '\0';
}
