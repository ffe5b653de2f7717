/*
 * Strict JSON parsing on top of jansson. jansson reports a syntax error
 * with a line, column and byte position but no JSON path. To name the
 * member being read, a path tracker rescans the text up to that position
 * and follows only brackets, commas, colons and strings.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyhole/canon.h"
#include "json_path.h"

/*
 * JSON_DECODE_ANY: RFC 8259 allows any value as a JSON text.
 * JSON_ALLOW_NUL: "\u0000" is valid in strings, but jansson still rejects
 * it in object keys.
 */
#define PARSE_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY)

/*
 * Maximum file size kh_json_load_file reads. It stops a path that names
 * a device such as /dev/zero from exhausting memory.
 */
#define MAX_FILE_SIZE (64u << 20)

/* An open object or array seen by the path tracker. */
struct scope {
	char kind;		/* '{' or '[' */
	int want_key;		/* object: the next string is a member name */
	size_t index;		/* array: index of the current element */
	const char *key;	/* object: current key as written, or NULL */
	size_t key_len;
};

struct tracker {
	struct scope *scopes;
	size_t depth;
	size_t cap;
};

static int tracker_push(struct tracker *t, char kind)
{
	if (t->depth == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct scope *grown;

		grown = realloc(t->scopes, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		t->scopes = grown;
		t->cap = cap;
	}
	t->scopes[t->depth++] = (struct scope){
		.kind = kind,
		.want_key = kind == '{',
	};
	return 0;
}

/* Returns the index of the closing quote of the string opening at i. */
static size_t string_end(const char *text, size_t i, size_t limit)
{
	for (i++; i < limit && text[i] != '"'; i++) {
		if (text[i] == '\\')
			i++;
	}
	return i < limit ? i : limit;
}

/*
 * Follows the structure of text[0, limit) and leaves in t the containers
 * that are still open at limit. The text is known to be valid up to
 * about limit, because jansson stopped there.
 */
static int tracker_scan(struct tracker *t, const char *text, size_t limit)
{
	struct scope *top;

	for (size_t i = 0; i < limit; i++) {
		top = t->depth ? &t->scopes[t->depth - 1] : NULL;
		switch (text[i]) {
		case '{':
		case '[':
			if (tracker_push(t, text[i]) < 0)
				return -ENOMEM;
			break;
		case '}':
		case ']':
			/*
			 * A bracket jansson stopped on, as in [1,], is the bad
			 * token and still inside its container.
			 */
			if (i + 1 == limit)
				break;
			/* Whatever follows the closed root is trailing data. */
			if (t->depth && --t->depth == 0)
				return 0;
			break;
		case ',':
			if (top && top->kind == '[')
				top->index++;
			else if (top) {
				top->want_key = 1;
				top->key = NULL;
			}
			break;
		case ':':
			if (top)
				top->want_key = 0;
			break;
		case '"': {
			size_t end = string_end(text, i, limit);

			/* A key cut off by the error stays unnamed. */
			if (top && top->kind == '{' && top->want_key) {
				top->key = end < limit ? text + i + 1 : NULL;
				top->key_len = end - i - 1;
			}
			i = end;
			break;
		}
		default:
			break;
		}
	}
	return 0;
}

/* Builds the JSON path of the value being read at byte position limit. */
static void locate_path(const char *text, size_t limit,
			struct kh_json_path *path)
{
	struct tracker t = { 0 };

	kh_json_path_init(path);
	if (tracker_scan(&t, text, limit) == 0) {
		for (size_t i = 0; i < t.depth; i++) {
			const struct scope *s = &t.scopes[i];

			if (s->kind == '[')
				kh_json_path_index(path, s->index);
			else if (s->key)
				kh_json_path_key_source(path, s->key,
							s->key_len);
		}
	}
	free(t.scopes);
}

static const char *hint_for(const json_error_t *jerr)
{
	switch (json_error_code(jerr)) {
	case json_error_duplicate_key:
		return "; each key may appear only once in an object";
	case json_error_invalid_utf8:
		return "; the text must be valid UTF-8";
	case json_error_end_of_input_expected:
		return "; remove what follows the JSON value";
	case json_error_numeric_overflow:
		return "; integers must be within +-2^53 and other "
		       "numbers must fit in an IEEE double";
	case json_error_null_byte_in_key:
		return "; object keys cannot contain U+0000";
	case json_error_stack_overflow:
		return "; nest at most 2048 levels";
	default:
		break;
	}
	if (strncmp(jerr->text, "invalid Unicode", 15) == 0)
		return "; a \\uD800-\\uDFFF escape must be half of a "
		       "surrogate pair";
	return "";
}

static void report_syntax_error(const char *text, size_t len,
				const json_error_t *jerr, struct kh_err *err)
{
	struct kh_json_path path;
	char what[JSON_ERROR_TEXT_LENGTH];
	char *near;
	size_t limit = jerr->position > 0 ? (size_t)jerr->position : 0;

	/*
	 * jansson appends "near '<source text>'", which can quote part of a
	 * private key or secret in a malformed file. The line and column
	 * locate the error without it.
	 */
	(void)snprintf(what, sizeof(what), "%s", jerr->text);
	near = strstr(what, " near '");
	if (near)
		*near = '\0';

	locate_path(text, limit < len ? limit : len, &path);
	kh_err_set(err, "invalid JSON: %s (line %d, column %d): %s%s",
		   kh_json_path_text(&path), jerr->line, jerr->column, what,
		   hint_for(jerr));
	kh_json_path_free(&path);
}

int kh_json_parse(const char *text, size_t len, json_t **out,
		  struct kh_err *err)
{
	json_error_t jerr;
	json_t *value;
	int rc;

	*out = NULL;
	kh_err_clear(err);
	if (!text) {
		kh_err_set(err, "no JSON text given (NULL)");
		return -EINVAL;
	}

	value = json_loadb(text, len, PARSE_FLAGS, &jerr);
	if (!value) {
		if (json_error_code(&jerr) == json_error_out_of_memory) {
			kh_err_set(err, "out of memory while parsing JSON");
			return -ENOMEM;
		}
		report_syntax_error(text, len, &jerr, err);
		return -EINVAL;
	}

	/* Unsafe integers and the like are only visible in the tree. */
	rc = kh_json_check(value, err);
	if (rc < 0) {
		kh_err_prefix(err, "invalid JSON");
		json_decref(value);
		return rc;
	}
	*out = value;
	return 0;
}

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
static int read_file(const char *path, char **out, size_t *out_len,
		     struct kh_err *err)
{
	char *data = NULL;
	size_t len = 0;
	size_t cap = 0;
	ssize_t n;
	int fd;
	int rc = 0;

	*out = NULL;
	*out_len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		kh_err_set(err, "cannot open: %s; check the path and its "
			   "permissions", strerror(-rc));
		return rc;
	}

	for (;;) {
		if (len + 1 >= cap) {
			char *grown;

			cap = cap ? cap * 2 : 4096;
			if (cap > MAX_FILE_SIZE) {
				rc = -EFBIG;
				kh_err_set(err, "file is larger than 64 MiB; "
					   "check that the path names a JSON "
					   "document");
				goto out;
			}
			grown = realloc(data, cap);
			if (!grown) {
				rc = -ENOMEM;
				kh_err_set(err, "out of memory reading the file");
				goto out;
			}
			data = grown;
		}
		n = read(fd, data + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			kh_err_set(err, "read failed: %s", strerror(-rc));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	data[len] = '\0';
	*out = data;
	*out_len = len;
	data = NULL;
out:
	free(data);
	(void)close(fd);
	return rc;
}

int kh_json_load_file(const char *path, json_t **out, struct kh_err *err)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	kh_err_clear(err);
	if (!path) {
		kh_err_set(err, "no JSON file name given (NULL)");
		return -EINVAL;
	}

	rc = read_file(path, &text, &len, err);
	if (rc == 0)
		rc = kh_json_parse(text, len, out, err);
	if (rc < 0)
		kh_err_prefix(err, "%s", path);
	free(text);
	return rc;
}
