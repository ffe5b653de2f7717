/*
 * The 1password backend (type "1password"): a 1Password Connect server
 * with a Connect access token, the one stored credential this backend
 * needs. The token is read from a root-only file at each fetch
 * (token_file.h). A secret is one field of one item: GET
 * <connect_url>/v1/vaults/<vault_id>/items/<item_id> returns the item,
 * and the field whose id or label equals the configured "field" gives
 * the value.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyhole/backend_module.h"
#include "conf_check.h"
#include "http_reply.h"
#include "token_file.h"

struct onepassword_state {
	const struct kh_backend_host *host;
	json_t *conf;             /* deep copy: the strings below point into it */
	char token_file[PATH_MAX];
	char connect_url[CONF_URL_MAX];
	const char *vault_id;
	const json_t *items;
	struct kh_http_options http;
	char ca_file[PATH_MAX];
};

static const struct conf_key top_keys[] = {
	{ "token_file", JSON_STRING, true },
	{ "connect_url", JSON_STRING, true },
	{ "vault_id", JSON_STRING, true },
	{ "items", JSON_OBJECT, true },
};

static const struct conf_key item_keys[] = {
	{ "item_id", JSON_STRING, true },
	{ "field", JSON_STRING, true },
};

/* Checks "items": {"<name>": {"item_id": ..., "field": ...}}. */
static int parse_items(struct onepassword_state *st, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	const char *name;
	json_t *item;

	st->items = json_object_get(st->conf, "items");
	if (json_object_size(st->items) == 0) {
		host->err_set(err, "$.items: empty; map at least one secret "
				   "name to an item and field");
		return -EINVAL;
	}
	json_object_foreach((json_t *)st->items, name, item) {
		char where[CONF_ID_MAX + 32];
		char path[CONF_ID_MAX + 64];
		int r = conf_check_secret_name(host, "$.items", name, err);

		(void)snprintf(where, sizeof(where), "$.items.%s", name);
		if (r == 0)
			r = conf_check_keys(host, item, where, item_keys,
					    CONF_COUNT(item_keys), false, err);
		(void)snprintf(path, sizeof(path), "%s.item_id", where);
		if (r == 0)
			r = conf_check_id(host, path, conf_string(item,
								  "item_id", NULL),
					  "", 64, err);
		(void)snprintf(path, sizeof(path), "%s.field", where);
		if (r == 0 && json_string_length(json_object_get(item,
								 "field")) == 0) {
			host->err_set(err, "%s: empty; give the field's id or "
					   "label", path);
			r = -EINVAL;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_conf(struct onepassword_state *st, const char *base_dir,
		      struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	int r;

	st->vault_id = conf_string(st->conf, "vault_id", NULL);
	r = conf_check_id(host, "$.vault_id", st->vault_id, "", 64, err);
	if (r == 0)
		r = conf_url(host, "$.connect_url",
			     conf_string(st->conf, "connect_url", ""),
			     st->connect_url, sizeof(st->connect_url), err);
	if (r == 0)
		r = parse_items(st, err);
	if (r == 0)
		r = token_file_conf(host, st->conf, base_dir, st->token_file,
				    err);
	if (r < 0)
		return r;
	return host->http_options_parse(st->conf, base_dir, &st->http,
					st->ca_file, sizeof(st->ca_file), err);
}

static void onepassword_teardown(void *state)
{
	struct onepassword_state *st = state;

	if (!st)
		return;
	json_decref(st->conf);
	free(st);
}

static int onepassword_configure(const struct kh_backend_host *host,
				 const json_t *conf, const char *base_dir,
				 void **state, struct kh_err *err)
{
	struct onepassword_state *st = calloc(1, sizeof(*st));
	int r;

	*state = NULL;
	if (!st)
		return -ENOMEM;
	st->host = host;
	r = conf_begin(host, conf, top_keys, CONF_COUNT(top_keys),
		       CONF_NEEDS_HTTP, &st->conf, err);
	if (r == 0)
		r = parse_conf(st, base_dir, err);
	if (r < 0) {
		onepassword_teardown(st);
		return r;
	}
	*state = st;
	return 0;
}

static int onepassword_list(void *state, json_t **names, struct kh_err *err)
{
	const struct onepassword_state *st = state;

	(void)err;
	return conf_object_names(st->items, names);
}

/*
 * Finds the field whose id equals want, else the one whose label does.
 * Two fields with the same label make the choice ambiguous: that is an
 * error rather than a guess.
 */
static int pick_field(const json_t *fields, const char *want,
		      const json_t **out)
{
	const json_t *by_label = NULL;
	const json_t *field;
	size_t labelled = 0;
	size_t i;

	json_array_foreach(fields, i, field) {
		const char *id = json_string_value(json_object_get(field, "id"));
		const char *label = json_string_value(json_object_get(field,
								      "label"));

		if (id && strcmp(id, want) == 0) {
			*out = field;
			return 0;
		}
		if (label && strcmp(label, want) == 0) {
			by_label = field;
			labelled++;
		}
	}
	if (labelled > 1)
		return -EEXIST;
	*out = by_label;
	return by_label ? 0 : -ENOENT;
}

static int take_field(const struct onepassword_state *st, json_t *doc,
		      const char *want, const char *url,
		      struct kh_secret **out, struct kh_err *err)
{
	const json_t *fields = json_object_get(doc, "fields");
	const json_t *field = NULL;
	const json_t *value;
	int r;

	if (!json_is_array(fields))
		return reply_bad(st->host, err, "1Password Connect read", url,
				 doc ? "returned no fields array" :
				       "returned a body that is not JSON");
	r = pick_field(fields, want, &field);
	if (r == -EEXIST)
		return reply_bad(st->host, err, "1Password Connect read", url,
				 "returned several fields with that label; "
				 "configure the field's id instead");
	if (r < 0) {
		st->host->err_set(err, "not found: the item at %s has no field "
				       "with id or label \"%s\"", url, want);
		return KH_FETCH_NOT_FOUND;
	}
	value = json_object_get(field, "value");
	if (!json_is_string(value)) {
		st->host->err_set(err, "not found: field \"%s\" of the item at "
				       "%s has no value", want, url);
		return KH_FETCH_NOT_FOUND;
	}
	return reply_value(st->host, value, out);
}

static int onepassword_fetch(void *state, const char *name,
			     const struct kh_fetch_ctx *ctx,
			     struct kh_secret **out, struct kh_err *err)
{
	struct onepassword_state *st = state;
	const json_t *item = json_object_get(st->items, name);
	char url[CONF_URL_MAX];
	json_t *doc = NULL;
	int r;

	*out = NULL;
	if (!item)
		return reply_unknown(st->host, err, name);
	r = conf_format_url(st->host, err, url, "%s/v1/vaults/%s/items/%s",
			    st->connect_url, st->vault_id,
			    conf_string(item, "item_id", ""));
	if (r == 0)
		r = token_file_get_json(st->host, st->token_file, &st->http,
					url, ctx->deadline,
					"1Password Connect read", &doc, err);
	if (r == 0)
		r = take_field(st, doc, conf_string(item, "field", ""), url,
			       out, err);
	reply_free(st->host, doc);
	return r;
}

/* GET /v1/vaults/<vault_id>: checks the token and its access to the vault. */
static int onepassword_test(void *state, json_t *report, struct kh_err *err)
{
	struct onepassword_state *st = state;
	char url[CONF_URL_MAX];
	json_t *doc = NULL;
	int r;

	r = conf_format_url(st->host, err, url, "%s/v1/vaults/%s",
			    st->connect_url, st->vault_id);
	if (r == 0)
		r = token_file_get_json(st->host, st->token_file, &st->http,
					url, (int64_t)0,
					"1Password Connect vault check", &doc,
					err);
	if (r == 0)
		token_file_report(report, url, "ok: vault ",
				  json_string_value(json_object_get(doc,
								    "name")));
	reply_free(st->host, doc);
	return r;
}

const struct kh_backend_module kh_backend_module = {
	.abi_version = KH_BACKEND_ABI_VERSION,
	.type = "1password",
	.flags = KH_BACKEND_STATIC_CREDENTIAL,
	.configure = onepassword_configure,
	.list = onepassword_list,
	.fetch = onepassword_fetch,
	.test = onepassword_test,
	.describe = NULL,
	.permit_ended = NULL,
	.teardown = onepassword_teardown,
};
