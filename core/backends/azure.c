/*
 * The azure backend: Azure Key Vault through Entra ID workload
 * identity federation, so the broker stores no client secret or
 * certificate. Each fetch sends a fresh federation JWT as the client
 * assertion of an OAuth 2.0 client_credentials request to
 * <authority>/<tenant_id>/oauth2/v2.0/token for the Key Vault scope,
 * then reads the secret with GET <vault_url>/secrets/<name>
 * ?api-version=7.4 and the returned bearer token. The access token is
 * used once and wiped; Entra offers no way to revoke it early, so it
 * stays valid on Entra's side until its expires_in runs out.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyhole/backend_module.h"
#include "conf_check.h"
#include "http_reply.h"

#define AZURE_SCOPE_FORM "https%3A%2F%2Fvault.azure.net%2F.default"
#define AZURE_ASSERTION_TYPE_FORM \
	"urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
#define AZURE_API_VERSION "7.4"

/* Lifetime bound of the federation JWT a test round trip signs, seconds. */
#define AZURE_TEST_SECONDS 60

struct azure_state {
	const struct kh_backend_host *host;
	json_t *conf;             /* deep copy: the strings below point into it */
	const char *tenant_id;
	const char *client_id;
	const char *audience;
	char authority[CONF_URL_MAX];
	char vault_url[CONF_URL_MAX];
	char token_url[CONF_URL_MAX];
	struct kh_http_options http;
	char ca_file[PATH_MAX];
};

static const struct conf_key top_keys[] = {
	{ "tenant_id", JSON_STRING, true },
	{ "client_id", JSON_STRING, true },
	{ "vault_url", JSON_STRING, true },
	{ "authority", JSON_STRING, false },
	{ "audience", JSON_STRING, false },
	{ "secrets", JSON_OBJECT, true },
};

/*
 * Checks "secrets": {"<name>": "<Key Vault secret name>"}. Key Vault
 * names are 1 to 127 letters, digits and dashes.
 */
static int parse_secrets(const struct azure_state *st, struct kh_err *err)
{
	const json_t *secrets = json_object_get(st->conf, "secrets");
	const char *name;
	json_t *value;

	if (json_object_size(secrets) == 0) {
		st->host->err_set(err, "$.secrets: empty; map at least one "
				       "secret name to its Key Vault name");
		return -EINVAL;
	}
	json_object_foreach((json_t *)secrets, name, value) {
		char where[CONF_ID_MAX + 32];
		int r = conf_check_secret_name(st->host, "$.secrets", name, err);

		if (r < 0)
			return r;
		(void)snprintf(where, sizeof(where), "$.secrets.%s", name);
		if (!json_is_string(value)) {
			st->host->err_set(err, "%s: expected the secret's name "
					       "in Key Vault as a string", where);
			return -EINVAL;
		}
		r = conf_check_id(st->host, where, json_string_value(value),
				  "-", 127, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_conf(struct azure_state *st, const char *base_dir,
		      struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	int r;

	st->tenant_id = conf_string(st->conf, "tenant_id", NULL);
	st->client_id = conf_string(st->conf, "client_id", NULL);
	st->audience = conf_string(st->conf, "audience",
				   "api://AzureADTokenExchange");
	r = conf_check_id(host, "$.tenant_id", st->tenant_id, ".-", 128, err);
	if (r == 0)
		r = conf_check_id(host, "$.client_id", st->client_id, "-", 128,
				  err);
	if (r == 0)
		r = conf_check_id(host, "$.audience", st->audience, "_.-:/",
				  CONF_ID_MAX, err);
	if (r == 0)
		r = conf_url(host, "$.authority",
			     conf_string(st->conf, "authority",
					 "https://login.microsoftonline.com"),
			     st->authority, sizeof(st->authority), err);
	if (r == 0)
		r = conf_url(host, "$.vault_url",
			     conf_string(st->conf, "vault_url", ""),
			     st->vault_url, sizeof(st->vault_url), err);
	if (r == 0)
		r = conf_format_url(host, err, st->token_url,
				    "%s/%s/oauth2/v2.0/token", st->authority,
				    st->tenant_id);
	if (r == 0)
		r = parse_secrets(st, err);
	if (r < 0)
		return r;
	return host->http_options_parse(st->conf, base_dir, &st->http,
					st->ca_file, sizeof(st->ca_file), err);
}

static void azure_teardown(void *state)
{
	struct azure_state *st = state;

	if (!st)
		return;
	json_decref(st->conf);
	free(st);
}

static int azure_configure(const struct kh_backend_host *host,
			   const json_t *conf, const char *base_dir,
			   void **state, struct kh_err *err)
{
	struct azure_state *st = calloc(1, sizeof(*st));
	int r;

	*state = NULL;
	if (!st)
		return -ENOMEM;
	st->host = host;
	r = conf_begin(host, conf, top_keys, CONF_COUNT(top_keys),
		       CONF_NEEDS_HTTP | CONF_NEEDS_FEDERATION, &st->conf, err);
	if (r == 0)
		r = parse_conf(st, base_dir, err);
	if (r < 0) {
		azure_teardown(st);
		return r;
	}
	*state = st;
	return 0;
}

static int azure_list(void *state, json_t **names, struct kh_err *err)
{
	const struct azure_state *st = state;

	(void)err;
	return conf_object_names(json_object_get(st->conf, "secrets"), names);
}

/* Builds the client_credentials form body in sodium_malloc memory. */
static int token_form(const struct azure_state *st,
		      const struct kh_secret *jwt, struct kh_secret **body,
		      struct kh_err *err)
{
	size_t size = strlen(st->client_id) + jwt->len + 256;
	int n;
	int r;

	r = reply_check_jwt(st->host, jwt, err);
	if (r == 0)
		r = st->host->secret_new(size, body);
	if (r < 0)
		return r;
	n = snprintf((char *)(*body)->data, size,
		     "grant_type=client_credentials&client_id=%s&scope=%s"
		     "&client_assertion_type=%s&client_assertion=%s",
		     st->client_id, AZURE_SCOPE_FORM,
		     AZURE_ASSERTION_TYPE_FORM, (const char *)jwt->data);
	(*body)->len = (size_t)n;
	return 0;
}

/*
 * Every OAuth error Entra ID returns from the token endpoint
 * (invalid_client, invalid_grant, unauthorized_client, invalid_scope,
 * invalid_request with an AADSTS code) means the assertion or the app
 * registration was not accepted, so all count as "auth refused".
 */
static int token_error(const struct azure_state *st,
		       const struct kh_http_response *resp,
		       const struct kh_secret *jwt, struct kh_err *err)
{
	json_t *doc = reply_json(resp);
	bool oauth_error = json_is_string(json_object_get(doc, "error"));
	int code = 0;

	reply_free(st->host, doc);
	if (oauth_error && (resp->status == 400 || resp->status == 401))
		code = KH_FETCH_AUTH_REFUSED;
	return reply_fail(st->host, err, code, resp, "Entra ID token request",
			  st->token_url, jwt);
}

/* Exchanges a federation JWT for a Key Vault access token. */
static int azure_token(const struct azure_state *st,
		       const struct kh_fetch_ctx *ctx,
		       struct kh_secret **access_token, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	const char *headers[] = {
		"Accept: application/json",
		"Content-Type: application/x-www-form-urlencoded",
		NULL,
	};
	struct kh_http_request req = {
		.method = "POST",
		.url = st->token_url,
		.headers = headers,
		.options = &st->http,
		.deadline = ctx->deadline,
		.retry = true,
	};
	struct kh_http_response resp = { 0 };
	struct kh_secret *jwt = NULL;
	struct kh_secret *body = NULL;
	json_t *doc = NULL;
	int r;

	r = host->federation_jwt(host, st->audience, ctx, &jwt, err);
	if (r == 0)
		r = token_form(st, jwt, &body, err);
	if (r < 0)
		goto out;
	req.body = body->data;
	req.body_len = body->len;
	r = host->http(&req, &resp, err);
	if (r < 0)
		goto out;
	if (resp.status != 200) {
		r = token_error(st, &resp, jwt, err);
		goto out;
	}
	doc = reply_json(&resp);
	r = reply_take_string(host, doc, "access_token", access_token);
	if (r == -ENOENT)
		r = reply_bad(host, err, "Entra ID token request",
			      st->token_url, "returned no access_token");
out:
	reply_free(host, doc);
	host->http_response_clear(&resp);
	host->secret_free(body);
	host->secret_free(jwt);
	return r;
}

/* GET <vault_url>/secrets/<kv_name>?api-version=7.4, returning "value". */
static int azure_get_secret(const struct azure_state *st, const char *kv_name,
			    const struct kh_secret *access_token,
			    const struct kh_fetch_ctx *ctx,
			    struct kh_secret **out, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	char url[CONF_URL_MAX];
	json_t *doc = NULL;
	json_t *value;
	int r;

	r = conf_format_url(host, err, url, "%s/secrets/%s?api-version="
			    AZURE_API_VERSION, st->vault_url, kv_name);
	if (r == 0)
		r = reply_get_json(host, &st->http, url, ctx->deadline,
				   access_token, "Key Vault read", &doc, err);
	if (r < 0)
		goto out;
	value = json_object_get(doc, "value");
	r = json_is_string(value) ? reply_value(host, value, out) :
		reply_bad(host, err, "Key Vault read", url,
			  doc ? "returned no \"value\" string" :
				"returned a body that is not JSON");
out:
	reply_free(host, doc);
	return r;
}

static int azure_fetch(void *state, const char *name,
		       const struct kh_fetch_ctx *ctx, struct kh_secret **out,
		       struct kh_err *err)
{
	struct azure_state *st = state;
	const char *kv_name = json_string_value(json_object_get(
		json_object_get(st->conf, "secrets"), name));
	struct kh_secret *access_token = NULL;
	int r;

	*out = NULL;
	if (!kv_name)
		return reply_unknown(st->host, err, name);
	r = azure_token(st, ctx, &access_token, err);
	if (r == 0)
		r = azure_get_secret(st, kv_name, access_token, ctx, out, err);
	st->host->secret_free(access_token);
	return r;
}

/* The token request alone: proves the federated credential works. */
static int azure_test(void *state, json_t *report, struct kh_err *err)
{
	struct azure_state *st = state;
	struct kh_fetch_ctx ctx = { .jti = NULL };
	struct kh_secret *access_token = NULL;
	char check[CONF_URL_MAX + 256];
	int r;

	ctx.deadline = (int64_t)time(NULL) + AZURE_TEST_SECONDS;
	(void)snprintf(check, sizeof(check), "client_credentials at %s for "
		       "client %s with a JWT for audience %s", st->token_url,
		       st->client_id, st->audience);
	r = azure_token(st, &ctx, &access_token, err);
	st->host->secret_free(access_token);
	if (r < 0)
		return r;
	(void)reply_report(report, check, "ok: got a Key Vault access token");
	return 0;
}

const struct kh_backend_module kh_backend_module = {
	.abi_version = KH_BACKEND_ABI_VERSION,
	.type = "azure",
	.flags = 0,
	.configure = azure_configure,
	.list = azure_list,
	.fetch = azure_fetch,
	.test = azure_test,
	.describe = NULL,
	.permit_ended = NULL,
	.teardown = azure_teardown,
};
