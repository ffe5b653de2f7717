/*
 * keyhole.json: a strict JSON object. Every key is known, every value
 * has one type, and relative paths resolve against the realpath of the
 * directory that contains the config file, so that keyholed and the CLI
 * see the same files whatever their working directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyhole/backend.h"
#include "keyhole/canon.h"
#include "keyhole/config.h"
#include "json_path.h"
#include "textfile.h"

/* Largest config file read, in bytes; keyhole.json is a few hundred. */
#define CONFIG_MAX_BYTES (1024 * 1024)

/* Maximum length of a config value quoted in an error message, in bytes. */

/* The fix that the error for a missing config names. */
#define CONFIG_FIX                                                         \
	"create it from the example keyhole.json in "                      \
	"share/doc/keyhole/examples (described in docs/config.md) or "     \
	"pass --config FILE"

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
	const char *meaning; /* named when the key is missing */
};

#define FIELD(name, kind, fallback, meaning)                               \
	{ #name, kind, offsetof(struct kh_config, name),                   \
	  sizeof(((struct kh_config *)0)->name), fallback, meaning }

static const struct field fields[] = {
	FIELD(tenant, FIELD_STRING, NULL, "the tenant named in permits"),
	FIELD(env, FIELD_STRING, NULL, "the environment, such as \"prod\""),
	FIELD(broker_id, FIELD_STRING, NULL, "the iss claim of permits"),
	FIELD(permit_key, FIELD_PATH, NULL,
	      "the private JWK that signs permits"),
	FIELD(audit_key, FIELD_PATH, NULL,
	      "the private JWK that signs audit records"),
	FIELD(policy, FIELD_PATH, NULL, "the policy file"),
	FIELD(audit_dir, FIELD_PATH, NULL, "the audit log directory"),
	FIELD(socket, FIELD_PATH, KH_SOCKET_DEFAULT, NULL),
	FIELD(permits_dir, FIELD_PATH, KH_PERMITS_DEFAULT, NULL),
	FIELD(secrets_mount, FIELD_PATH, KH_SECRETS_DEFAULT, NULL),
	FIELD(backend_dir, FIELD_PATH, KH_BACKEND_DIR, NULL),
	FIELD(admin_group, FIELD_STRING, "", NULL),
};

#define FIELD_COUNT (sizeof(fields) / sizeof(fields[0]))

static const char known_keys[] =
	"tenant, env, broker_id, permit_key, audit_key, policy, audit_dir, "
	"socket, permits_dir, secrets_mount, backend_dir, on_policy_change, "
	"backends, federation, admin_group";

/*
 * Loader state. With report set, every error goes to report and loading
 * goes on; without it, the first error fills err and sets the result.
 */
struct loader {
	const char *origin; /* the resolved config path */
	const char *text;
	size_t len;
	kh_err_report_fn report;
	void *ctx;
	struct kh_err *err;
	int errors;
	int first_rc;
};

/* Counts one error and passes its message on; returns rc. */
static int record(struct loader *ld, int rc, const struct kh_err *message)
{
	if (ld->errors++ == 0)
		ld->first_rc = rc;
	if (ld->report)
		ld->report(message->msg, ld->ctx);
	else if (ld->errors == 1 && ld->err)
		*ld->err = *message;
	return rc;
}

static void ignore_report(const char *message, void *ctx)
{
	(void)message;
	(void)ctx;
}

/*
 * Records an error at the path $.key (or $.key.name, or $ when key is
 * NULL) as "<origin>:<line>: <path>: <what>". Returns rc.
 */
__attribute__((format(printf, 5, 6)))
static int fail(struct loader *ld, int rc, const char *key, const char *name,
		const char *fmt, ...)
{
	struct kh_json_step steps[2] = { { key, 0 }, { name, 0 } };
	size_t depth = 0;
	char what[384];
	char where[256];
	struct kh_err message;
	unsigned line;
	va_list ap;

	if (key)
		depth = name ? 2 : 1;
	if (!ld->report && ld->errors > 0) {
		ld->errors++;
		return rc;
	}
	va_start(ap, fmt);
	(void)vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	kh_json_path_format(steps, depth, where, sizeof(where));
	line = kh_json_path_line(ld->text, ld->len, steps, depth);
	if (line)
		kh_err_set(&message, "%s:%u: %s: %s", ld->origin, line, where,
			   what);
	else
		kh_err_set(&message, "%s: %s: %s", ld->origin, where, what);
	return record(ld, rc, &message);
}


static int is_known_key(const char *key)
{
	for (size_t i = 0; i < FIELD_COUNT; i++) {
		if (strcmp(fields[i].key, key) == 0)
			return 1;
	}
	return strcmp(key, "on_policy_change") == 0 ||
	       strcmp(key, "backends") == 0 ||
	       strcmp(key, "federation") == 0;
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
		kh_err_set(err, "%s: not a path to a config file; pass "
			   "--config FILE", path);
		return -EINVAL;
	}
	if (!realpath(parent, real)) {
		int r = -errno;

		if (r == -ENOENT)
			kh_err_set(err, "%s: config not found, because "
				   "directory %s does not exist; " CONFIG_FIX,
				   path, parent);
		else
			kh_err_set(err, "%s: cannot resolve directory %s: %s",
				   path, parent, strerror(-r));
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

static int read_config(const char *path, char **text, size_t *len,
		       struct kh_err *err)
{
	int rc = kh_textfile_read(path, CONFIG_MAX_BYTES, "config", text, len,
				  err);

	if (rc == -ENOENT)
		kh_err_set(err, "%s: config not found; " CONFIG_FIX, path);
	return rc;
}

/* Returns a string value, or NULL after reporting a bad one. */
static const char *string_value(struct loader *ld, const json_t *value,
				const char *key)
{
	const char *s = json_string_value(value);

	if (!s) {
		(void)fail(ld, -EINVAL, key, NULL, "expected a string, not %s",
			   kh_json_type_name(value));
		return NULL;
	}
	if (s[0] == '\0' || strlen(s) != json_string_length(value)) {
		(void)fail(ld, -EINVAL, key, NULL, "expected a non-empty "
			   "string without NUL characters");
		return NULL;
	}
	return s;
}

/* Stores one string or path field, using its default when absent. */
static void load_field(struct loader *ld, const json_t *root,
		       const struct field *field, struct kh_config *config)
{
	const json_t *value = json_object_get(root, field->key);
	char *dest = (char *)config + field->offset;
	const char *s = field->fallback;
	int n;

	if (value) {
		s = string_value(ld, value, field->key);
		if (!s)
			return;
	} else if (!s) {
		(void)fail(ld, -EINVAL, NULL, NULL, "missing required key "
			   "\"%s\" (%s)", field->key, field->meaning);
		return;
	}

	if (field->kind == FIELD_PATH && s[0] != '/')
		n = snprintf(dest, field->size, "%s/%s", config->dir, s);
	else
		n = snprintf(dest, field->size, "%s", s);
	if (n < 0 || (size_t)n >= field->size) {
		dest[0] = '\0';
		(void)fail(ld, -ENAMETOOLONG, field->key, NULL, "value is "
			   "longer than %zu bytes", field->size - 1);
	}
}

static void load_policy_change(struct loader *ld, const json_t *root,
			       struct kh_config *config)
{
	static const char allowed[] =
		"expected \"reject\" (the default: permits minted under an "
		"older policy are refused) or \"honor\" (they stay valid "
		"until they expire)";
	const json_t *value = json_object_get(root, "on_policy_change");
	const char *s = json_string_value(value);

	config->on_policy_change = KH_POLICY_CHANGE_REJECT;
	if (!value || (s && strcmp(s, "reject") == 0))
		return;
	if (s && strcmp(s, "honor") == 0) {
		config->on_policy_change = KH_POLICY_CHANGE_HONOR;
		return;
	}
	if (s)
		(void)fail(ld, -EINVAL, "on_policy_change", NULL, "\"%.*s\" is "
			   "not allowed; %s", kh_quote_length(s), s, allowed);
	else
		(void)fail(ld, -EINVAL, "on_policy_change", NULL, "%s is not "
			   "allowed; %s", kh_json_type_name(value), allowed);
}

/*
 * Checks the shape of "backends": names and a "type" string. Each
 * backend's own keys are checked by kh_backend_open.
 */
static void load_backends(struct loader *ld, const json_t *root,
			  struct kh_config *config)
{
	json_t *backends = json_object_get(root, "backends");
	int errors = ld->errors;
	const char *name;
	json_t *conf;

	if (!backends) {
		config->backends = json_object();
		if (!config->backends)
			(void)fail(ld, -ENOMEM, NULL, NULL, "out of memory");
		return;
	}
	if (!json_is_object(backends)) {
		(void)fail(ld, -EINVAL, "backends", NULL, "expected an object "
			   "of name: {\"type\": ...}, not %s",
			   kh_json_type_name(backends));
		return;
	}
	json_object_foreach(backends, name, conf) {
		if (!kh_backend_name_is_valid(name))
			(void)fail(ld, -EINVAL, "backends", name, "invalid "
				   "backend name; use 1 to %d characters from "
				   "A-Z a-z 0-9 _ -", KH_BACKEND_NAME_MAX);
		else if (!json_is_object(conf) ||
			 !json_is_string(json_object_get(conf, "type")))
			(void)fail(ld, -EINVAL, "backends", name, "expected "
				   "an object with a string \"type\", such as "
				   "{\"type\": \"file\"}");
	}
	if (ld->errors == errors)
		config->backends = json_incref(backends);
}

/* Copies a federation path member, resolved against the config directory. */
static void load_federation_path(struct loader *ld, const json_t *value,
				 const char *name, const struct kh_config *config,
				 char *dest, size_t size)
{
	const char *s = json_string_value(value);
	int n;

	if (!s || s[0] == '\0' || strlen(s) != json_string_length(value)) {
		(void)fail(ld, -EINVAL, "federation", name, "expected a "
			   "non-empty path string");
		return;
	}
	if (s[0] == '/')
		n = snprintf(dest, size, "%s", s);
	else
		n = snprintf(dest, size, "%s/%s", config->dir, s);
	if (n < 0 || (size_t)n >= size) {
		dest[0] = '\0';
		(void)fail(ld, -ENAMETOOLONG, "federation", name, "value is "
			   "longer than %zu bytes", size - 1);
	}
}

/*
 * Sets retired_dir to "federation-retired" in the key's directory, the
 * place keyhole keygen --federation and oidc export use when they run
 * without a config, so that all of them find the same retired keys.
 */
static void default_retired_dir(struct kh_config *config)
{
	const char *slash = strrchr(config->fed_key, '/');
	int dir_len = slash ? (int)(slash - config->fed_key) : 0;

	config->fed_retired_dir[0] = '\0';
	if (!slash || dir_len > PATH_MAX - 32)
		return;
	(void)snprintf(config->fed_retired_dir, sizeof(config->fed_retired_dir),
		       "%.*s/federation-retired", dir_len, config->fed_key);
}

/*
 * Loads the optional "federation" object: {"issuer": "https://...",
 * "key": PATH, "retired_dir": PATH}. retired_dir defaults to
 * "federation-retired" beside the key.
 */
static void load_federation(struct loader *ld, const json_t *root,
			    struct kh_config *config)
{
	const json_t *fed = json_object_get(root, "federation");
	const json_t *issuer;
	const char *key;
	json_t *value;

	if (!fed)
		return;
	if (!json_is_object(fed)) {
		(void)fail(ld, -EINVAL, "federation", NULL, "expected an object "
			   "{\"issuer\": URL, \"key\": PATH}, not %s",
			   kh_json_type_name(fed));
		return;
	}
	json_object_foreach((json_t *)fed, key, value) {
		if (strcmp(key, "issuer") != 0 && strcmp(key, "key") != 0 &&
		    strcmp(key, "retired_dir") != 0)
			(void)fail(ld, -EINVAL, "federation", key, "unknown key; "
				   "allowed keys: issuer, key, retired_dir");
	}

	issuer = json_object_get(fed, "issuer");
	if (!json_is_string(issuer) ||
	    strncmp(json_string_value(issuer), "https://", 8) != 0 ||
	    json_string_length(issuer) >= sizeof(config->fed_issuer) ||
	    strlen(json_string_value(issuer)) != json_string_length(issuer))
		(void)fail(ld, -EINVAL, "federation", "issuer", "expected the "
			   "https:// URL where openid-configuration is served "
			   "(at most %zu bytes)", sizeof(config->fed_issuer) - 1);
	else
		snprintf(config->fed_issuer, sizeof(config->fed_issuer), "%s",
			 json_string_value(issuer));

	if (!json_object_get(fed, "key"))
		(void)fail(ld, -EINVAL, "federation", NULL, "missing \"key\": "
			   "the PEM file that keyhole keygen --federation wrote");
	else
		load_federation_path(ld, json_object_get(fed, "key"), "key",
				     config, config->fed_key,
				     sizeof(config->fed_key));

	value = json_object_get(fed, "retired_dir");
	if (value)
		load_federation_path(ld, value, "retired_dir", config,
				     config->fed_retired_dir,
				     sizeof(config->fed_retired_dir));
	else
		default_retired_dir(config);
}

/* Loads every member, reporting each error; returns the first error's rc. */
static int load_members(struct loader *ld, const json_t *root,
			struct kh_config *config)
{
	const char *key;
	json_t *value;

	if (!json_is_object(root))
		return fail(ld, -EINVAL, NULL, NULL, "expected a JSON object "
			    "such as {\"tenant\": ..., \"policy\": ...}, not "
			    "%s", kh_json_type_name(root));
	json_object_foreach((json_t *)root, key, value) {
		if (!is_known_key(key))
			(void)fail(ld, -EINVAL, key, NULL, "unknown key \"%s\"; "
				   "allowed keys: %s", key, known_keys);
	}
	for (size_t i = 0; i < FIELD_COUNT; i++)
		load_field(ld, root, &fields[i], config);
	load_policy_change(ld, root, config);
	load_backends(ld, root, config);
	load_federation(ld, root, config);
	return ld->errors ? ld->first_rc : 0;
}

/*
 * Resolves, reads and loads the config at path. System errors (the
 * file or its directory cannot be read) fill sys_err and return -errno;
 * JSON and schema errors go through ld.
 */
static int load_config(struct loader *ld, const char *path,
		       struct kh_config **out, struct kh_err *sys_err)
{
	struct kh_config *config = NULL;
	json_t *root = NULL;
	char *text = NULL;
	struct kh_err syntax = { "" };
	int r;

	*out = NULL;
	if (!path || path[0] == '\0') {
		kh_err_set(sys_err, "config path is empty; pass --config FILE");
		return -EINVAL;
	}
	config = calloc(1, sizeof(*config));
	if (!config) {
		kh_err_set(sys_err, "%s: out of memory", path);
		return -ENOMEM;
	}
	r = resolve_location(path, config, sys_err);
	if (r == 0)
		r = read_config(config->path, &text, &ld->len, sys_err);
	if (r < 0)
		goto out;
	ld->origin = config->path;
	ld->text = text;
	r = kh_json_parse(text, ld->len, &root, &syntax);
	if (r < 0) {
		kh_err_prefix(&syntax, "%s", config->path);
		(void)record(ld, r, &syntax);
		goto out;
	}
	r = load_members(ld, root, config);
	if (r < 0)
		goto out;
	*out = config;
	config = NULL;
out:
	json_decref(root);
	free(text);
	kh_config_free(config);
	return r;
}

int kh_config_load(const char *path, struct kh_config **out,
		   struct kh_err *err)
{
	struct loader ld = { .err = err };

	if (!out)
		return -EINVAL;
	return load_config(&ld, path, out, err);
}

int kh_config_check(const char *path, kh_err_report_fn report, void *ctx)
{
	struct loader ld = { .report = report ? report : ignore_report,
			     .ctx = ctx };
	struct kh_config *config = NULL;
	struct kh_err err = { "" };
	int r = load_config(&ld, path, &config, &err);

	kh_config_free(config);
	if (ld.errors > 0)
		return ld.errors;
	if (r < 0 && report)
		report(err.msg, ctx);
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
