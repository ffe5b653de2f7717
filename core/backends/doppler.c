/*
 * The doppler backend: Doppler's v3 API with a service token, the one
 * stored credential this backend needs (Doppler has no workload
 * identity federation for reading secrets). The token is read from a
 * root-only file at each fetch (token_file.h) and sent as a bearer
 * token to GET /v3/configs/config/secret?project=&config=&name=; the
 * secret is the reply's value.computed, or value.raw when Doppler did
 * not compute it.
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

/* Doppler secret names: upper-case letters, digits and underscores. */
#define DOPPLER_NAME_MAX 128

struct doppler_state {
	const struct kh_backend_host *host;
	json_t *conf;             /* deep copy: the strings below point into it */
	char token_file[PATH_MAX];
	char api[CONF_URL_MAX];
	const char *project;
	const char *config;
	const json_t *secrets;    /* the names served, which the mount lists */
	struct kh_http_options http;
	char ca_file[PATH_MAX];
};

static const struct conf_key top_keys[] = {
	{ "token_file", JSON_STRING, true },
	{ "api", JSON_STRING, false },
	{ "project", JSON_STRING, true },
	{ "config", JSON_STRING, true },
	{ "secrets", JSON_ARRAY, true },
};

static bool name_ok(const char *name)
{
	return conf_chars_ok(name, "_", DOPPLER_NAME_MAX);
}

static int parse_secrets(struct doppler_state *st, struct kh_err *err)
{
	const json_t *value;
	size_t i;

	st->secrets = json_object_get(st->conf, "secrets");
	if (json_array_size(st->secrets) == 0) {
		st->host->err_set(err, "$.secrets: empty; list the Doppler "
				       "secret names this backend serves");
		return -EINVAL;
	}
	json_array_foreach(st->secrets, i, value) {
		if (!name_ok(json_string_value(value))) {
			st->host->err_set(err, "$.secrets[%zu]: expected a "
					       "Doppler secret name of A-Z a-z "
					       "0-9 _", i);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_conf(struct doppler_state *st, const char *base_dir,
		      struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	int r;

	st->project = conf_string(st->conf, "project", NULL);
	st->config = conf_string(st->conf, "config", NULL);
	r = conf_check_id(host, "$.project", st->project, "_.-", 128, err);
	if (r == 0)
		r = conf_check_id(host, "$.config", st->config, "_.-", 128, err);
	if (r == 0)
		r = conf_url(host, "$.api", conf_string(st->conf, "api",
							"https://api.doppler.com"),
			     st->api, sizeof(st->api), err);
	if (r == 0)
		r = parse_secrets(st, err);
	if (r == 0)
		r = token_file_conf(host, st->conf, base_dir, st->token_file,
				    err);
	if (r < 0)
		return r;
	return host->http_options_parse(st->conf, base_dir, &st->http,
					st->ca_file, sizeof(st->ca_file), err);
}

static void doppler_teardown(void *state)
{
	struct doppler_state *st = state;

	if (!st)
		return;
	json_decref(st->conf);
	free(st);
}

static int doppler_configure(const struct kh_backend_host *host,
			     const json_t *conf, const char *base_dir,
			     void **state, struct kh_err *err)
{
	struct doppler_state *st = calloc(1, sizeof(*st));
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
		doppler_teardown(st);
		return r;
	}
	*state = st;
	return 0;
}

static int doppler_list(void *state, json_t **names, struct kh_err *err)
{
	struct doppler_state *st = state;

	(void)err;
	*names = json_deep_copy(st->secrets);
	return *names ? 0 : -ENOMEM;
}

static bool name_served(const struct doppler_state *st, const char *name)
{
	const json_t *value;
	size_t i;

	json_array_foreach(st->secrets, i, value) {
		if (strcmp(json_string_value(value), name) == 0)
			return true;
	}
	return false;
}

/* Picks value.computed, else value.raw, out of a secret reply. */
static int take_value(const struct doppler_state *st, json_t *doc,
		      const char *url, struct kh_secret **out,
		      struct kh_err *err)
{
	json_t *value = json_object_get(doc, "value");
	json_t *text = json_object_get(value, "computed");

	if (!json_is_string(text))
		text = json_object_get(value, "raw");
	if (!json_is_string(text))
		return reply_bad(st->host, err, "Doppler read", url,
				 doc ? "returned no value.computed or "
				       "value.raw string" :
				       "returned a body that is not JSON");
	return reply_value(st->host, text, out);
}

static int doppler_fetch(void *state, const char *name,
			 const struct kh_fetch_ctx *ctx,
			 struct kh_secret **out, struct kh_err *err)
{
	struct doppler_state *st = state;
	char url[CONF_URL_MAX];
	json_t *doc = NULL;
	int r;

	*out = NULL;
	if (!name_served(st, name))
		return reply_unknown(st->host, err, name);
	r = conf_format_url(st->host, err, url, "%s/v3/configs/config/secret"
			    "?project=%s&config=%s&name=%s", st->api,
			    st->project, st->config, name);
	if (r == 0)
		r = token_file_get_json(st->host, st->token_file, &st->http,
					url, ctx->deadline, "Doppler read",
					&doc, err);
	if (r == 0)
		r = take_value(st, doc, url, out, err);
	reply_free(st->host, doc);
	return r;
}

/* GET /v3/me: checks the token and names the workplace it belongs to. */
static int doppler_test(void *state, json_t *report, struct kh_err *err)
{
	struct doppler_state *st = state;
	char url[CONF_URL_MAX];
	json_t *doc = NULL;
	int r;

	r = conf_format_url(st->host, err, url, "%s/v3/me", st->api);
	if (r == 0)
		r = token_file_get_json(st->host, st->token_file, &st->http,
					url, (int64_t)0, "Doppler token check",
					&doc, err);
	if (r == 0)
		token_file_report(report, url, "ok: token of type ",
				  json_string_value(json_object_get(doc,
								    "type")));
	reply_free(st->host, doc);
	return r;
}

const struct kh_backend_module kh_backend_module = {
	.abi_version = KH_BACKEND_ABI_VERSION,
	.type = "doppler",
	.flags = KH_BACKEND_STATIC_CREDENTIAL,
	.configure = doppler_configure,
	.list = doppler_list,
	.fetch = doppler_fetch,
	.test = doppler_test,
	.describe = NULL,
	.permit_ended = NULL,
	.teardown = doppler_teardown,
};
