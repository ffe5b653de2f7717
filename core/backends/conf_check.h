/*
 * Strict parsing of a backend's config object, shared by the modules
 * in core/backends as static inline functions: each module is one
 * shared object built from one .c file, so shared code must live in a
 * header. Every error names the JSON path ("$.secrets.db.path") and
 * the fix.
 */
#ifndef KH_BACKENDS_CONF_CHECK_H
#define KH_BACKENDS_CONF_CHECK_H

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keyhole/backend_module.h"

/* Maximum length of a URL a module builds, in bytes with the NUL. */
#define CONF_URL_MAX 2048

/* Maximum length of an identifier such as a role, path or secret name. */
#define CONF_ID_MAX 255

struct conf_key {
	const char *name;
	json_type type;
	bool required;
};

/* Members every module accepts and passes to http_options_parse. */
static inline bool conf_is_http_key(const char *key)
{
	return strcmp(key, "ca_file") == 0 || strcmp(key, "timeout") == 0 ||
	       strcmp(key, "connect_timeout") == 0 ||
	       strcmp(key, "proxy") == 0;
}

static inline const char *conf_type_name(json_type type)
{
	switch (type) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	default:
		return "a value of another type";
	}
}

/*
 * Rejects unknown members, members of the wrong type, and missing
 * required ones. prefix is the path of obj ("$" or "$.secrets.db").
 */
static inline int conf_check_keys(const struct kh_backend_host *host,
				  const json_t *obj, const char *prefix,
				  const struct conf_key *keys, size_t count,
				  bool top_level, struct kh_err *err)
{
	const char *key;
	json_t *value;

	if (!json_is_object(obj)) {
		host->err_set(err, "%s: expected an object", prefix);
		return -EINVAL;
	}
	json_object_foreach((json_t *)obj, key, value) {
		size_t i;

		if (top_level && (strcmp(key, "type") == 0 ||
				  conf_is_http_key(key)))
			continue;
		for (i = 0; i < count && strcmp(keys[i].name, key) != 0; i++)
			;
		if (i == count) {
			host->err_set(err, "%s.%s: unknown key; remove it or "
					   "check its spelling", prefix, key);
			return -EINVAL;
		}
		if (json_typeof(value) != keys[i].type) {
			host->err_set(err, "%s.%s: expected %s", prefix, key,
				      conf_type_name(keys[i].type));
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < count; i++) {
		if (keys[i].required && !json_object_get(obj, keys[i].name)) {
			host->err_set(err, "%s: missing \"%s\"", prefix,
				      keys[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

/* Returns the string member key of obj, or fallback when it is absent. */
static inline const char *conf_string(const json_t *obj, const char *key,
				      const char *fallback)
{
	const json_t *value = json_object_get(obj, key);

	return value ? json_string_value(value) : fallback;
}

/*
 * Returns true when text is 1 to max bytes of ASCII letters, digits and
 * the characters in extra. Values that pass need no escaping in a URL
 * path, a query string, a form body or a JSON string, so the modules
 * insert them as they are.
 */
static inline bool conf_chars_ok(const char *text, const char *extra,
				 size_t max)
{
	size_t len = text ? strlen(text) : 0;

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (!strchr(extra, c))
			return false;
	}
	return true;
}

/*
 * Checks an identifier member (value may be NULL when absent and
 * optional). Reports the path, the allowed characters and the limit.
 */
static inline int conf_check_id(const struct kh_backend_host *host,
				const char *path, const char *value,
				const char *extra, size_t max,
				struct kh_err *err)
{
	if (conf_chars_ok(value, extra, max))
		return 0;
	host->err_set(err, "%s: \"%s\" is invalid; use 1 to %zu characters "
			   "from A-Z a-z 0-9%s%s", path, value ? value : "",
		      max, *extra ? " and " : "", extra);
	return -EINVAL;
}

/*
 * Checks a Vault-style path ("kv/app/db"): segments of [A-Za-z0-9_.-]
 * joined by single slashes, none of them "." or "..", so that the path
 * cannot climb out of the mount it is appended to.
 */
static inline int conf_check_path(const struct kh_backend_host *host,
				  const char *path, const char *value,
				  struct kh_err *err)
{
	const char *segment;

	if (conf_check_id(host, path, value, "_.-/", CONF_ID_MAX, err) < 0)
		return -EINVAL;
	segment = value;
	for (;;) {
		const char *slash = strchr(segment, '/');
		size_t len = slash ? (size_t)(slash - segment) : strlen(segment);

		if (len == 0 || (len == 1 && segment[0] == '.') ||
		    (len == 2 && segment[0] == '.' && segment[1] == '.')) {
			host->err_set(err, "%s: \"%s\" has an empty, \".\" or "
					   "\"..\" segment; write the path "
					   "without leading, trailing or "
					   "doubled slashes", path, value);
			return -EINVAL;
		}
		if (!slash)
			return 0;
		segment = slash + 1;
	}
}

/*
 * Copies an https:// base URL into out without its trailing slashes.
 * Spaces, control characters, quotes, '?' and '#' are rejected, so that
 * paths appended later cannot turn into a query or a second header, and
 * so is '@': a user name and password in the URL would put a credential
 * in keyhole.json and in error messages.
 */
static inline int conf_url(const struct kh_backend_host *host,
			   const char *path, const char *value, char *out,
			   size_t size, struct kh_err *err)
{
	size_t len = strlen(value);

	if (strncmp(value, "https://", 8) != 0 || len <= 8) {
		host->err_set(err, "%s: \"%s\" is not an https:// URL; the "
				   "backend only talks TLS", path, value);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c <= 0x20 || c >= 0x7f || strchr("\"'<>\\^`{|}?#@", c)) {
			host->err_set(err, "%s: the URL contains '%c' or a "
					   "control character; give a base "
					   "URL without a query or user "
					   "name", path,
				      c > 0x20 && c < 0x7f ? c : '?');
			return -EINVAL;
		}
	}
	while (len > 8 && value[len - 1] == '/')
		len--;
	if (len >= size) {
		host->err_set(err, "%s: URL longer than %zu bytes", path,
			      size - 1);
		return -ENAMETOOLONG;
	}
	memcpy(out, value, len);
	out[len] = '\0';
	return 0;
}

/* Formats into a CONF_URL_MAX buffer; a cut URL is an error, never sent. */
__attribute__((format(printf, 4, 5)))
static inline int conf_format_url(const struct kh_backend_host *host,
				  struct kh_err *err, char *out,
				  const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, CONF_URL_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= CONF_URL_MAX) {
		host->err_set(err, "request URL longer than %d bytes",
			      CONF_URL_MAX - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Secret names a module serves: they become file names in the mount. */
static inline int conf_check_secret_name(const struct kh_backend_host *host,
					 const char *prefix, const char *name,
					 struct kh_err *err)
{
	if (name[0] == '.' || !conf_chars_ok(name, "_.-", 128)) {
		host->err_set(err, "%s: secret name \"%s\" is invalid; use 1 "
				   "to 128 characters from A-Z a-z 0-9 _ . - "
				   "not starting with '.'", prefix, name);
		return -EINVAL;
	}
	return 0;
}


/* Number of entries in a conf_key table (or any array). */
#define CONF_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Host services a module needs, for conf_begin. */
#define CONF_NEEDS_HTTP (1u << 0)
#define CONF_NEEDS_FEDERATION (1u << 1)

/*
 * Starts a module's configure: checks that the host table offers the
 * services in needs (CONF_NEEDS_* bits), checks conf's top-level
 * members against keys, and deep-copies conf into *copy, so that the
 * strings the module keeps stay valid until its teardown.
 */
static inline int conf_begin(const struct kh_backend_host *host,
			     const json_t *conf, const struct conf_key *keys,
			     size_t count, unsigned needs, json_t **copy,
			     struct kh_err *err)
{
	bool http = host->http && host->http_options_parse &&
		    host->http_status_error && host->fetch_reason &&
		    host->json_wipe;
	bool federation = host->federation_jwt != NULL;
	int r;

	*copy = NULL;
	if (((needs & CONF_NEEDS_HTTP) && !http) ||
	    ((needs & CONF_NEEDS_FEDERATION) && !federation)) {
		host->err_set(err, "the host lacks %s services; rebuild "
				   "keyhole and its modules together",
			      needs & CONF_NEEDS_FEDERATION ?
			      "HTTP or federation" : "HTTP");
		return -ENOSYS;
	}
	r = conf_check_keys(host, conf, "$", keys, count, true, err);
	if (r < 0)
		return r;
	*copy = json_deep_copy(conf);
	return *copy ? 0 : -ENOMEM;
}

/* Lists the member names of obj as a new JSON array, for a module's list. */
static inline int conf_object_names(const json_t *obj, json_t **names)
{
	const char *name;
	json_t *value;
	json_t *array = json_array();

	*names = NULL;
	if (!array)
		return -ENOMEM;
	json_object_foreach((json_t *)obj, name, value) {
		if (json_array_append_new(array, json_string(name)) < 0) {
			json_decref(array);
			return -ENOMEM;
		}
	}
	*names = array;
	return 0;
}

#endif
