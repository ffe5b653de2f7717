/*
 * keyhole.json: a strict JSON object. Every key is known, every value
 * has one type, and relative paths resolve against the realpath of the
 * directory that contains the config file, so that keyholed and the CLI
 * see the same files whatever their working directory.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhole/backend.h"
#include "keyhole/canon.h"
#include "keyhole/config.h"

enum field_kind {
	FIELD_STRING,
	FIELD_PATH, /* resolved against the config directory */
};

/* One string member of struct kh_config. A NULL fallback marks it required. */
struct field {
	const char *key;
	enum field_kind kind;
	size_t offset;
	size_t size;
	const char *fallback;
};

#define FIELD(name, kind, fallback)                                        \
	{ #name, kind, offsetof(struct kh_config, name),                   \
	  sizeof(((struct kh_config *)0)->name), fallback }

static const struct field fields[] = {
	FIELD(tenant, FIELD_STRING, NULL),
	FIELD(env, FIELD_STRING, NULL),
	FIELD(broker_id, FIELD_STRING, NULL),
	FIELD(permit_key, FIELD_PATH, NULL),
	FIELD(audit_key, FIELD_PATH, NULL),
	FIELD(policy, FIELD_PATH, NULL),
	FIELD(audit_dir, FIELD_PATH, NULL),
	FIELD(socket, FIELD_PATH, KH_SOCKET_DEFAULT),
	FIELD(permits_dir, FIELD_PATH, KH_PERMITS_DEFAULT),
	FIELD(secrets_mount, FIELD_PATH, KH_SECRETS_DEFAULT),
};

#define FIELD_COUNT (sizeof(fields) / sizeof(fields[0]))

static const char known_keys[] =
	"tenant, env, broker_id, permit_key, audit_key, policy, audit_dir, "
	"socket, permits_dir, secrets_mount, on_policy_change, backends";

static int is_known_key(const char *key)
{
	for (size_t i = 0; i < FIELD_COUNT; i++) {
		if (strcmp(fields[i].key, key) == 0)
			return 1;
	}
	return strcmp(key, "on_policy_change") == 0 ||
	       strcmp(key, "backends") == 0;
}

/*
 * Fills config->dir with the realpath of the directory containing path and
 * config->path with that directory plus the file's base name.
 */
static int resolve_location(const char *path, struct kh_config *config,
			    struct kh_err *err)
{
	const char *slash = strrchr(path, '/');
	char parent[PATH_MAX];
	char real[PATH_MAX];
	const char *base = slash ? slash + 1 : path;
	int n;

	if (!slash)
		n = snprintf(parent, sizeof(parent), ".");
	else if (slash == path)
		n = snprintf(parent, sizeof(parent), "/");
	else
		n = snprintf(parent, sizeof(parent), "%.*s",
			     (int)(slash - path), path);
	if (n < 0 || (size_t)n >= sizeof(parent) || base[0] == '\0') {
		kh_err_set(err, "%s: not a path to a config file", path);
		return -EINVAL;
	}
	if (!realpath(parent, real)) {
		int r = -errno;

		kh_err_set(err, "%s: cannot resolve directory %s: %s", path,
			   parent, strerror(-r));
		return r;
	}

	n = snprintf(config->dir, sizeof(config->dir), "%s", real);
	if (n >= 0 && (size_t)n < sizeof(config->dir))
		n = snprintf(config->path, sizeof(config->path), "%s%s%s",
			     real, strcmp(real, "/") == 0 ? "" : "/", base);
	if (n < 0 || (size_t)n >= sizeof(config->path)) {
		kh_err_set(err, "%s: path is longer than %d bytes", path,
			   PATH_MAX - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Returns a string value, or NULL after filling err for a bad one. */
static const char *string_value(const json_t *value, const char *key,
				struct kh_err *err)
{
	const char *s = json_string_value(value);

	if (!s) {
		kh_err_set(err, "$.%s: expected a string", key);
		return NULL;
	}
	if (s[0] == '\0' || strlen(s) != json_string_length(value)) {
		kh_err_set(err, "$.%s: expected a non-empty string without "
				"NUL characters",
			   key);
		return NULL;
	}
	return s;
}

/* Stores one string or path field, using its default when absent. */
static int load_field(const json_t *root, const struct field *field,
		      struct kh_config *config, struct kh_err *err)
{
	const json_t *value = json_object_get(root, field->key);
	char *dest = (char *)config + field->offset;
	const char *s = field->fallback;
	int n;

	if (value) {
		s = string_value(value, field->key, err);
		if (!s)
			return -EINVAL;
	} else if (!s) {
		kh_err_set(err, "$.%s: missing required key", field->key);
		return -EINVAL;
	}

	if (field->kind == FIELD_PATH && s[0] != '/')
		n = snprintf(dest, field->size, "%s/%s", config->dir, s);
	else
		n = snprintf(dest, field->size, "%s", s);
	if (n < 0 || (size_t)n >= field->size) {
		kh_err_set(err, "$.%s: value is longer than %zu bytes",
			   field->key, field->size - 1);
		return -ENAMETOOLONG;
	}
	return 0;
}

static int load_policy_change(const json_t *root, struct kh_config *config,
			      struct kh_err *err)
{
	const json_t *value = json_object_get(root, "on_policy_change");
	const char *s;

	config->on_policy_change = KH_POLICY_CHANGE_REJECT;
	if (!value)
		return 0;
	s = json_string_value(value);
	if (s && strcmp(s, "reject") == 0)
		return 0;
	if (s && strcmp(s, "honor") == 0) {
		config->on_policy_change = KH_POLICY_CHANGE_HONOR;
		return 0;
	}
	kh_err_set(err, "$.on_policy_change: expected \"reject\" or "
			"\"honor\"");
	return -EINVAL;
}

/*
 * Checks the shape of "backends": names and a "type" string. Each
 * backend's own keys are checked by kh_backend_open.
 */
static int load_backends(const json_t *root, struct kh_config *config,
			 struct kh_err *err)
{
	json_t *backends = json_object_get(root, "backends");
	const char *name;
	json_t *conf;

	if (!backends) {
		config->backends = json_object();
		return config->backends ? 0 : -ENOMEM;
	}
	if (!json_is_object(backends)) {
		kh_err_set(err, "$.backends: expected an object of "
				"name: {\"type\": ...}");
		return -EINVAL;
	}
	json_object_foreach(backends, name, conf) {
		if (!kh_backend_name_is_valid(name)) {
			kh_err_set(err, "$.backends.%s: invalid backend name; "
					"use 1 to %d characters from "
					"A-Z a-z 0-9 _ -",
				   name, KH_BACKEND_NAME_MAX);
			return -EINVAL;
		}
		if (!json_is_object(conf) ||
		    !json_is_string(json_object_get(conf, "type"))) {
			kh_err_set(err, "$.backends.%s: expected an object "
					"with a string \"type\"",
				   name);
			return -EINVAL;
		}
	}
	config->backends = json_incref(backends);
	return 0;
}

static int load_members(const json_t *root, struct kh_config *config,
			struct kh_err *err)
{
	const char *key;
	json_t *value;
	int r;

	if (!json_is_object(root)) {
		kh_err_set(err, "$: expected a JSON object");
		return -EINVAL;
	}
	json_object_foreach((json_t *)root, key, value) {
		if (!is_known_key(key)) {
			kh_err_set(err, "$.%s: unknown key; known keys are %s",
				   key, known_keys);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < FIELD_COUNT; i++) {
		r = load_field(root, &fields[i], config, err);
		if (r < 0)
			return r;
	}
	r = load_policy_change(root, config, err);
	if (r < 0)
		return r;
	return load_backends(root, config, err);
}

int kh_config_load(const char *path, struct kh_config **out,
		   struct kh_err *err)
{
	struct kh_config *config = NULL;
	json_t *root = NULL;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!path || path[0] == '\0') {
		kh_err_set(err, "config path is empty; pass --config FILE");
		return -EINVAL;
	}

	config = calloc(1, sizeof(*config));
	if (!config)
		return -ENOMEM;

	r = resolve_location(path, config, err);
	if (r < 0)
		goto out;
	r = kh_json_load_file(config->path, &root, err);
	if (r < 0)
		goto out;
	r = load_members(root, config, err);
	if (r < 0) {
		kh_err_prefix(err, "%s", config->path);
		goto out;
	}

	*out = config;
	config = NULL;
out:
	json_decref(root);
	kh_config_free(config);
	return r;
}

void kh_config_free(struct kh_config *config)
{
	if (!config)
		return;
	json_decref(config->backends);
	free(config);
}

int kh_config_public_key_path(const char *private_path, char *out,
			      size_t size)
{
	static const char suffix[] = ".jwk";
	size_t len;
	size_t stem;
	int n;

	if (!private_path || !out || size == 0)
		return -EINVAL;
	out[0] = '\0';
	len = strlen(private_path);
	if (len == 0)
		return -EINVAL;

	stem = len;
	if (len >= sizeof(suffix) - 1 &&
	    strcmp(private_path + len - (sizeof(suffix) - 1), suffix) == 0)
		stem = len - (sizeof(suffix) - 1);
	n = snprintf(out, size, "%.*s.pub.jwk", (int)stem, private_path);
	if (n < 0 || (size_t)n >= size) {
		out[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}
