/*
 * Backend registry: maps a "type" from keyhole.json to its ops and
 * configures named instances. Built-in backends live in a static table,
 * and the daemon reaches any backend only through struct kh_backend_ops.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhole/backend.h"

static const struct kh_backend_ops *const builtin_backends[] = {
	&kh_backend_file,
};

#define BUILTIN_COUNT (sizeof(builtin_backends) / sizeof(builtin_backends[0]))

const struct kh_backend_ops *kh_backend_find(const char *type)
{
	if (!type)
		return NULL;
	for (size_t i = 0; i < BUILTIN_COUNT; i++) {
		if (strcmp(builtin_backends[i]->type, type) == 0)
			return builtin_backends[i];
	}
	return NULL;
}

int kh_backend_name_is_valid(const char *name)
{
	size_t len;

	if (!name)
		return 0;
	len = strlen(name);
	if (len == 0 || len > KH_BACKEND_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Lists the known types as "a, b" for error messages. */
static void format_known_types(char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < BUILTIN_COUNT && used < size; i++) {
		int n = snprintf(buf + used, size - used, "%s%s",
				 i ? ", " : "", builtin_backends[i]->type);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* Finds the ops for conf's "type", or explains why there are none. */
static int lookup_type(const json_t *conf, const struct kh_backend_ops **ops,
		       struct kh_err *err)
{
	const json_t *type = json_object_get(conf, "type");
	char known[256];

	if (!json_is_string(type)) {
		kh_err_set(err, "$.type: missing or not a string; set \"type\" "
				"to a backend type such as \"file\"");
		return -EINVAL;
	}
	*ops = kh_backend_find(json_string_value(type));
	if (!*ops) {
		format_known_types(known, sizeof(known));
		kh_err_set(err, "$.type: unknown backend type \"%s\"; "
				"known types: %s",
			   json_string_value(type), known);
		return -EINVAL;
	}
	return 0;
}

int kh_backend_open(const char *name, const json_t *conf,
		    const char *base_dir, struct kh_backend **out,
		    struct kh_err *err)
{
	const struct kh_backend_ops *ops = NULL;
	struct kh_backend *backend = NULL;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!kh_backend_name_is_valid(name)) {
		kh_err_set(err, "backend name \"%s\" is invalid; use 1 to %d "
				"characters from A-Z a-z 0-9 _ -",
			   name ? name : "(null)", KH_BACKEND_NAME_MAX);
		return -EINVAL;
	}
	if (!json_is_object(conf)) {
		kh_err_set(err, "backend %s: expected a JSON object", name);
		return -EINVAL;
	}

	r = lookup_type(conf, &ops, err);
	if (r < 0)
		goto out;

	backend = calloc(1, sizeof(*backend));
	if (!backend) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(backend->name, name, strlen(name) + 1);
	backend->ops = ops;

	r = ops->configure(conf, base_dir, &backend->state, err);
	if (r < 0)
		goto out;

	*out = backend;
	backend = NULL;
out:
	if (r < 0)
		kh_err_prefix(err, "backend %s", name);
	free(backend);
	return r;
}

void kh_backend_close(struct kh_backend *backend)
{
	if (!backend)
		return;
	if (backend->ops && backend->ops->teardown)
		backend->ops->teardown(backend->state);
	free(backend);
}
