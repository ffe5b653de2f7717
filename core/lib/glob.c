/*
 * Globs for policy matching, with the syntax of fnmatch(3) without flags
 * (see policy.h). It is implemented here rather than taken from libc
 * because glibc's fnmatch depends on the process locale. Here characters
 * are UTF-8 code points and classes are ASCII-only, so an auditor who
 * replays a decision elsewhere gets the same result.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keyhole/policy.h"

/*
 * Decodes the code point at s (n > 0 bytes left) into *cp and returns
 * its length. A byte that does not start a valid sequence counts as one
 * code point of its own value, so matching always advances.
 */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t value;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		value = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		value = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		value = s[0] & 0x07;
	} else {
		*cp = s[0];
		return 1;
	}
	if (len > n) {
		*cp = s[0];
		return 1;
	}
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*cp = s[0];
			return 1;
		}
		value = (value << 6) | (s[i] & 0x3f);
	}
	*cp = value;
	return len;
}

/* Returns 1 or 0 for a known ASCII class name, -1 for an unknown one. */
static int class_match(const char *name, size_t len, uint32_t c)
{
	static const struct {
		const char *name;
		const char *members;
	} classes[] = {
		{ "alpha", "AZaz" },   { "digit", "09" },
		{ "alnum", "AZaz09" }, { "upper", "AZ" },
		{ "lower", "az" },     { "xdigit", "AFaf09" },
		{ "space", "\t\r  " }, { "blank", "\t\t  " },
		{ "punct", "!/:@[`{~" }, { "print", " ~" },
		{ "graph", "!~" },     { "cntrl", "\x01\x1f\x7f\x7f" },
	};

	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		const char *m = classes[i].members;

		if (strlen(classes[i].name) != len ||
		    memcmp(classes[i].name, name, len) != 0)
			continue;
		/*
		 * members lists inclusive ranges as pairs of bytes. cntrl
		 * leaves out NUL, which never reaches a match because
		 * subjects containing it are rejected.
		 */
		for (; m[0] && m[1]; m += 2) {
			unsigned char low = (unsigned char)m[0];
			unsigned char high = (unsigned char)m[1];

			if (c >= low && c <= high)
				return 1;
		}
		return 0;
	}
	return -1;
}

/*
 * Reads one bracket element (a character, an escaped character or a
 * class) at *p. Sets *cp for a character, or *in_class to the class
 * result for c. Returns 0, or -1 when the element is malformed.
 */
static int bracket_element(const char **p, uint32_t c, uint32_t *cp,
			   int *in_class)
{
	const unsigned char *s = (const unsigned char *)*p;

	*in_class = -1;
	if (s[0] == '[' && s[1] == ':') {
		const char *name = (const char *)s + 2;
		const char *close = strstr(name, ":]");
		int hit;

		if (!close)
			return -1;
		hit = class_match(name, (size_t)(close - name), c);
		if (hit < 0)
			return -1;
		*in_class = hit;
		*p = close + 2;
		return 0;
	}
	if (s[0] == '\\') {
		if (s[1] == '\0')
			return -1;
		s++;
	}
	*p = (const char *)s + utf8_next(s, strlen((const char *)s), cp);
	return 0;
}

/*
 * Matches code point c against the bracket expression whose '[' is at
 * p. Sets *end past the closing ']'. Returns 1 or 0, or -1 when the
 * expression is malformed (no closing ']', trailing backslash, unknown
 * class).
 */
static int bracket_match(const char *p, uint32_t c, const char **end)
{
	bool negate = false;
	bool hit = false;
	bool first = true;

	p++;
	if (*p == '!' || *p == '^') {
		negate = true;
		p++;
	}
	for (;;) {
		uint32_t low = 0;
		uint32_t high;
		int in_class;

		if (*p == '\0')
			return -1;
		/* A ']' right after the opening (and negation) is literal. */
		if (*p == ']' && !first)
			break;
		first = false;
		if (bracket_element(&p, c, &low, &in_class) < 0)
			return -1;
		if (in_class >= 0) {
			hit = hit || in_class;
			continue;
		}
		high = low;
		if (p[0] == '-' && p[1] != ']' && p[1] != '\0') {
			p++;
			if (bracket_element(&p, c, &high, &in_class) < 0 ||
			    in_class >= 0 || high < low)
				return -1;
		}
		if (c >= low && c <= high)
			hit = true;
	}
	*end = p + 1;
	return hit != negate;
}

/*
 * Matches the single pattern element at *p against the code point at
 * *s (n bytes left), advancing both on a hit. Returns 1, 0 or -1 for a
 * malformed pattern. p must not point at '*' or the end.
 */
static int match_one(const char **p, const unsigned char **s, size_t n)
{
	const char *pat = *p;
	uint32_t c;
	size_t clen;
	int hit;

	if (n == 0)
		return 0;
	clen = utf8_next(*s, n, &c);
	if (*pat == '?') {
		*p = pat + 1;
		*s += clen;
		return 1;
	}
	if (*pat == '[') {
		const char *end;

		hit = bracket_match(pat, c, &end);
		if (hit == 1) {
			*p = end;
			*s += clen;
		}
		return hit;
	}
	if (*pat == '\\') {
		pat++;
		if (*pat == '\0')
			return -1;
	}
	{
		uint32_t want;
		size_t wlen = utf8_next((const unsigned char *)pat,
					strlen(pat), &want);

		if (want != c || wlen != clen ||
		    memcmp(pat, *s, clen) != 0)
			return 0;
		*p = pat + wlen;
		*s += clen;
	}
	return 1;
}

/*
 * Classic wildcard matching with one backtrack point: on a mismatch
 * after a '*', retry with the '*' swallowing one more code point. This
 * is exact for globs because '*' is the only variable-length element,
 * and it runs in O(pattern * subject) time at worst.
 */
static int glob_match_n(const char *pattern, const unsigned char *s,
			size_t n)
{
	const unsigned char *end = s + n;
	const char *p = pattern;
	const char *star_p = NULL;
	const unsigned char *star_s = NULL;

	while (s < end || *p == '*') {
		int hit;

		if (*p == '*') {
			while (*p == '*')
				p++;
			star_p = p;
			star_s = s;
			continue;
		}
		hit = *p ? match_one(&p, &s, (size_t)(end - s)) : 0;
		if (hit < 0)
			return -EINVAL;
		if (hit)
			continue;
		if (!star_p || star_s >= end)
			return 0;
		{
			uint32_t skipped;

			star_s += utf8_next(star_s, (size_t)(end - star_s),
					    &skipped);
		}
		p = star_p;
		s = star_s;
	}
	return *p == '\0';
}

int kh_glob_validate(const char *pattern, struct kh_err *err)
{
	const char *p = pattern;

	if (!pattern || !*pattern) {
		kh_err_set(err, "glob is empty; use \"*\" to match anything");
		return -EINVAL;
	}
	while (*p) {
		if (*p == '\\') {
			if (p[1] == '\0') {
				kh_err_set(err,
					   "glob \"%s\" ends with a lone "
					   "backslash; escape it as \"\\\\\"",
					   pattern);
				return -EINVAL;
			}
			p += 2;
		} else if (*p == '[') {
			const char *end;

			if (bracket_match(p, 0, &end) < 0) {
				kh_err_set(err,
					   "glob \"%s\": bracket expression at "
					   "offset %td is not closed or has a "
					   "bad range or class; close it with "
					   "']' or escape the '[' as \"\\[\"",
					   pattern, p - pattern);
				return -EINVAL;
			}
			p = end;
		} else {
			p++;
		}
	}
	return 0;
}

int kh_glob_match(const char *pattern, const char *subject, size_t len)
{
	if (!pattern || !subject || kh_glob_validate(pattern, NULL) < 0)
		return -EINVAL;
	/* A NUL inside the subject would hide its tail from the pattern. */
	if (memchr(subject, '\0', len))
		return -EINVAL;
	return glob_match_n(pattern, (const unsigned char *)subject, len);
}

static int match_json_string(const json_t *glob, const json_t *value)
{
	if (!json_is_string(glob) || !json_is_string(value))
		return -EINVAL;
	return kh_glob_match(json_string_value(glob),
			     json_string_value(value),
			     json_string_length(value));
}

int kh_glob_match_argv(const json_t *globs, const json_t *argv)
{
	size_t nglobs;
	size_t nargs;
	bool rest;

	if (!json_is_array(globs) || !json_is_array(argv))
		return -EINVAL;
	nglobs = json_array_size(globs);
	nargs = json_array_size(argv);
	rest = nglobs > 0 &&
	       json_is_string(json_array_get(globs, nglobs - 1)) &&
	       strcmp(json_string_value(json_array_get(globs, nglobs - 1)),
		      "**") == 0;
	if (rest)
		nglobs--;
	if (rest ? nargs < nglobs : nargs != nglobs)
		return 0;

	for (size_t i = 0; i < nglobs; i++) {
		int hit = match_json_string(json_array_get(globs, i),
					    json_array_get(argv, i));

		if (hit <= 0)
			return hit;
	}
	/* The arguments that "**" swallows must still be strings. */
	for (size_t i = nglobs; i < nargs; i++)
		if (!json_is_string(json_array_get(argv, i)))
			return -EINVAL;
	return 1;
}
