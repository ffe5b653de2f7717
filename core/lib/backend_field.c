/*
 * "<name>#<field>" selection: a secret path may name one member of a
 * JSON object secret. The module fetches the whole secret by its base
 * name, and only the member's value leaves this file.
 */
#include <errno.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "backend_internal.h"
#include "keyhole/canon.h"

int kh_backend_split_field(const char *secret, char *base, size_t base_size,
			   const char **field)
{
	const char *hash = strchr(secret, '#');
	size_t len = hash ? (size_t)(hash - secret) : strlen(secret);

	*field = NULL;
	if (len == 0 || (hash && hash[1] == '\0'))
		return -EINVAL;
	if (len >= base_size)
		return -ENAMETOOLONG;
	memcpy(base, secret, len);
	base[len] = '\0';
	*field = hash ? hash + 1 : NULL;
	return 0;
}

void kh_backend_json_wipe(json_t *value)
{
	const char *key;
	json_t *member;
	size_t i;

	if (json_is_string(value)) {
		sodium_memzero((char *)json_string_value(value),
			       json_string_length(value));
	} else if (json_is_object(value)) {
		json_object_foreach(value, key, member)
			kh_backend_json_wipe(member);
	} else if (json_is_array(value)) {
		json_array_foreach(value, i, member)
			kh_backend_json_wipe(member);
	}
}

/* Copies len bytes of text into a new secret. */
static int copy_secret(const char *text, size_t len, struct kh_secret **out)
{
	int r = kh_secret_new(len, out);

	if (r == 0 && len > 0)
		memcpy((*out)->data, text, len);
	return r;
}

/* Copies member's value: a string as is, anything else as compact JSON. */
static int copy_member(const json_t *member, struct kh_secret **out)
{
	char *text;
	size_t len;
	int r;

	if (json_is_string(member))
		return copy_secret(json_string_value(member),
				   json_string_length(member), out);
	text = json_dumps(member, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	r = copy_secret(text, len, out);
	sodium_memzero(text, len);
	free(text);
	return r;
}

int kh_backend_select_field(struct kh_secret **secret, const char *name,
			    const char *field, struct kh_err *err)
{
	struct kh_err parse_err = { { 0 } };
	struct kh_secret *selected = NULL;
	json_t *root = NULL;
	const json_t *member;
	int r;

	/* The parser's message may quote a byte of the secret, so it is dropped. */
	r = kh_json_parse((const char *)(*secret)->data, (*secret)->len, &root,
			  &parse_err);
	sodium_memzero(&parse_err, sizeof(parse_err));
	if (r == -ENOMEM)
		return r;
	if (r < 0 || !json_is_object(root)) {
		kh_err_set(err, "%s: secret \"%.128s\" is not a JSON object, so "
				"its field \"%.64s\" cannot be selected; read "
				"it without \"#%.64s\"",
			   kh_backend_reason(KH_FETCH_BAD_RESPONSE), name, field,
			   field);
		r = KH_FETCH_BAD_RESPONSE;
		goto out;
	}
	member = json_object_get(root, field);
	if (!member) {
		kh_err_set(err, "%s: secret \"%.128s\" has no field \"%.64s\"",
			   kh_backend_reason(KH_FETCH_NOT_FOUND), name, field);
		r = KH_FETCH_NOT_FOUND;
		goto out;
	}
	r = copy_member(member, &selected);
	if (r < 0)
		goto out;

	kh_secret_free(*secret);
	*secret = selected;
out:
	if (root) {
		kh_backend_json_wipe(root);
		json_decref(root);
	}
	return r;
}

int kh_backend_fetch(struct kh_backend *backend, const char *name,
		     const struct kh_fetch_ctx *ctx, struct kh_secret **out,
		     struct kh_err *err)
{
	char base[1024];
	const char *field = NULL;
	struct kh_secret *secret = NULL;
	int r;

	if (!backend || !name || !out)
		return -EINVAL;
	*out = NULL;
	r = kh_backend_split_field(name, base, sizeof(base), &field);
	if (r < 0) {
		kh_err_set(err, "secret name \"%.128s\" is invalid; use "
				"\"<name>\" or \"<name>#<field>\"", name);
		return r;
	}

	r = backend->module->fetch(backend->state, base, ctx, &secret, err);
	if (r == 0 && !secret) {
		kh_err_set(err, "%s: module %s returned no secret",
			   kh_backend_reason(KH_FETCH_BAD_RESPONSE),
			   backend->module->type);
		r = KH_FETCH_BAD_RESPONSE;
	}
	if (r == 0 && field)
		r = kh_backend_select_field(&secret, base, field, err);
	if (r < 0) {
		kh_secret_free(secret);
		return r;
	}
	*out = secret;
	return 0;
}
