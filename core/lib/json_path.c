/* JSON paths for error messages; see json_path.h. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json_path.h"

/* Maximum length of a member name in a path, in bytes. */
#define KEY_MAX 64

/* Maximum length of a path, and how much of its start a cut keeps. */
#define SHOWN_MAX 200
#define SHOWN_HEAD 60

static void append(struct kh_json_path *path, const char *s, size_t n)
{
	char *grown;
	size_t cap;

	if (path->failed)
		return;
	if (path->len + n + 1 > path->cap) {
		cap = path->cap ? path->cap : 64;
		while (cap < path->len + n + 1)
			cap *= 2;
		grown = realloc(path->data, cap);
		if (!grown) {
			/* Fall back to the root rather than a half path. */
			path->failed = 1;
			return;
		}
		path->data = grown;
		path->cap = cap;
	}
	memcpy(path->data + path->len, s, n);
	path->len += n;
	path->data[path->len] = '\0';
}

static int is_continuation(char c)
{
	return ((unsigned char)c & 0xC0) == 0x80;
}

static int is_step_start(char c)
{
	return c == '[' || c == '.';
}

static int is_identifier(const char *s, size_t len)
{
	if (len == 0 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') ||
			  (s[0] >= 'a' && s[0] <= 'z')))
		return 0;
	for (size_t i = 1; i < len; i++) {
		char c = s[i];

		if (!(c == '_' || (c >= '0' && c <= '9') ||
		      (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
			return 0;
	}
	return 1;
}

/* Cuts len to at most KEY_MAX bytes, at a UTF-8 character boundary. */
static size_t kept_key_length(const char *key, size_t len)
{
	if (len <= KEY_MAX)
		return len;
	len = KEY_MAX;
	while (len > 0 && is_continuation(key[len]))
		len--;
	return len;
}

void kh_json_path_init(struct kh_json_path *path)
{
	*path = (struct kh_json_path){ 0 };
	append(path, "$", 1);
}

void kh_json_path_index(struct kh_json_path *path, size_t index)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "[%zu]", index);

	if (n > 0 && (size_t)n < sizeof(text))
		append(path, text, (size_t)n);
}

void kh_json_path_key(struct kh_json_path *path, const char *key,
		      size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t kept = kept_key_length(key, len);

	if (is_identifier(key, len)) {
		append(path, ".", 1);
		append(path, key, len);
		return;
	}
	append(path, "[\"", 2);
	for (size_t i = 0; i < kept; i++) {
		unsigned char c = (unsigned char)key[i];
		char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF] };

		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			append(path, esc, 2);
		} else if (c < 0x20) {
			append(path, esc, sizeof(esc));
		} else {
			append(path, key + i, 1);
		}
	}
	append(path, kept < len ? "...\"]" : "\"]", kept < len ? 5 : 2);
}

void kh_json_path_key_source(struct kh_json_path *path, const char *key,
			     size_t len)
{
	size_t kept = kept_key_length(key, len);

	if (is_identifier(key, len)) {
		append(path, ".", 1);
		append(path, key, len);
		return;
	}
	/* Do not cut the name inside an escape such as \u00e9. */
	for (size_t i = 0; i < kept; i++) {
		if (key[i] == '\\' && i + 1 < len) {
			size_t end = i + (key[i + 1] == 'u' ? 6 : 2);

			if (end > kept) {
				kept = i;
				break;
			}
			i = end - 1;
		}
	}
	append(path, "[\"", 2);
	append(path, key, kept);
	append(path, kept < len ? "...\"]" : "\"]", kept < len ? 5 : 2);
}

const char *kh_json_path_text(struct kh_json_path *path)
{
	size_t head = SHOWN_HEAD;
	size_t tail;

	if (path->failed || !path->data)
		return "$";
	if (path->len <= SHOWN_MAX)
		return path->data;

	/*
	 * Keep the outermost and the innermost steps, cut where a step
	 * starts. A '[' or '.' inside a quoted key can pass for a step
	 * start, which only shifts the cut.
	 */
	while (head > 1 && !is_step_start(path->data[head]))
		head--;
	tail = path->len - (SHOWN_MAX - head - 3);
	while (tail < path->len && !is_step_start(path->data[tail]))
		tail++;
	memcpy(path->data + head, "...", 3);
	memmove(path->data + head + 3, path->data + tail,
		path->len - tail + 1);
	path->len = head + 3 + (path->len - tail);
	return path->data;
}

void kh_json_path_free(struct kh_json_path *path)
{
	free(path->data);
	*path = (struct kh_json_path){ 0 };
}

void kh_json_path_format(const struct kh_json_step *steps, size_t depth,
			 char *buf, size_t size)
{
	struct kh_json_path path;

	kh_json_path_init(&path);
	for (size_t i = 0; i < depth; i++) {
		if (steps[i].key)
			kh_json_path_key(&path, steps[i].key,
					 strlen(steps[i].key));
		else
			kh_json_path_index(&path, steps[i].index);
	}
	(void)snprintf(buf, size, "%s", kh_json_path_text(&path));
	kh_json_path_free(&path);
}

static void skip_ws(const char *text, size_t len, size_t *pos)
{
	while (*pos < len && text[*pos] && strchr(" \t\r\n", text[*pos]))
		(*pos)++;
}

static void skip_string(const char *text, size_t len, size_t *pos)
{
	for ((*pos)++; *pos < len && text[*pos] != '"'; (*pos)++)
		if (text[*pos] == '\\')
			(*pos)++;
	(*pos)++;
}

static void skip_value(const char *text, size_t len, size_t *pos)
{
	int depth = 0;

	if (*pos < len && text[*pos] == '"') {
		skip_string(text, len, pos);
		return;
	}
	while (*pos < len) {
		char c = text[*pos];

		if (c == '"') {
			skip_string(text, len, pos);
			continue;
		}
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return;
			if (--depth == 0) {
				(*pos)++;
				return;
			}
		} else if (depth == 0 && c && strchr(", \t\r\n", c)) {
			return;
		}
		(*pos)++;
	}
}

/* Compares the string token text[start..end) (with quotes) to key. */
static bool token_is_key(const char *text, size_t start, size_t end,
			 const char *key)
{
	json_t *decoded;
	bool same;

	if (!memchr(text + start, '\\', end - start))
		return end - start - 2 == strlen(key) &&
		       memcmp(text + start + 1, key, end - start - 2) == 0;
	/* Escaped keys are decoded by jansson rather than by hand. */
	decoded = json_loadb(text + start, end - start, JSON_DECODE_ANY, NULL);
	same = json_is_string(decoded) &&
	       strcmp(json_string_value(decoded), key) == 0;
	json_decref(decoded);
	return same;
}

static bool find_member(const char *text, size_t len, size_t *pos,
			const char *key)
{
	if (*pos >= len || text[*pos] != '{')
		return false;
	(*pos)++;
	for (;;) {
		size_t start;
		bool hit;

		skip_ws(text, len, pos);
		if (*pos >= len || text[*pos] != '"')
			return false;
		start = *pos;
		skip_string(text, len, pos);
		hit = *pos <= len && token_is_key(text, start, *pos, key);
		skip_ws(text, len, pos);
		if (*pos >= len || text[*pos] != ':')
			return false;
		(*pos)++;
		skip_ws(text, len, pos);
		if (hit)
			return true;
		skip_value(text, len, pos);
		skip_ws(text, len, pos);
		if (*pos >= len || text[*pos] != ',')
			return false;
		(*pos)++;
	}
}

static bool find_element(const char *text, size_t len, size_t *pos,
			 size_t index)
{
	if (*pos >= len || text[*pos] != '[')
		return false;
	(*pos)++;
	for (size_t i = 0; i < index; i++) {
		skip_ws(text, len, pos);
		skip_value(text, len, pos);
		skip_ws(text, len, pos);
		if (*pos >= len || text[*pos] != ',')
			return false;
		(*pos)++;
	}
	skip_ws(text, len, pos);
	return *pos < len && text[*pos] != ']';
}

unsigned kh_json_path_line(const char *text, size_t len,
			   const struct kh_json_step *steps, size_t depth)
{
	size_t pos = 0;
	unsigned line = 1;

	if (!text)
		return 0;
	skip_ws(text, len, &pos);
	for (size_t i = 0; i < depth; i++) {
		bool found = steps[i].key ?
			find_member(text, len, &pos, steps[i].key) :
			find_element(text, len, &pos, steps[i].index);

		if (!found)
			return 0;
	}
	for (size_t i = 0; i < pos && i < len; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

const char *kh_json_type_name(const json_t *value)
{
	switch (json_typeof(value)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

int kh_quote_length(const char *s)
{
	size_t max = 64;
	size_t len = strnlen(s, max + 1);

	if (len > max) {
		len = max;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	return (int)len;
}
