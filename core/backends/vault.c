/*
 * The vault backend: HashiCorp Vault through its JWT auth method, so
 * the broker stores no Vault token. Each fetch logs in with a fresh
 * federation JWT (POST /v1/auth/<mount>/login {"role", "jwt"}), reads
 * one secret with the token it gets, and revokes that token right away
 * (revoke-self). KV v2 and KV v1 reads return the secret's data object
 * or one "field" of it.
 *
 * Dynamic secrets (GET /v1/<mount>/creds/<role>) are different: Vault
 * revokes every lease a token created when the token is revoked, so
 * revoke-self would destroy the credential just handed out. Their
 * login token is left to expire at its TTL, and the lease is revoked
 * with a fresh login token when the permit that fetched it ends
 * (permit_ended). The Vault role's token_ttl must therefore cover the
 * permit's lifetime.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyhole/backend_module.h"
#include "conf_check.h"
#include "http_reply.h"

/* Dynamic leases awaiting their permit's end, across all permits. */
#define VAULT_LEASES_MAX 4096

/* Lifetime of the login made to revoke leases, in seconds. */
#define VAULT_CLEANUP_SECONDS 60

enum vault_engine { ENGINE_KV2, ENGINE_KV1, ENGINE_DYNAMIC };

struct vault_secret {
	const char *name;
	enum vault_engine engine;
	const char *mount;
	const char *path;         /* the role for a dynamic secret */
	const char *field;        /* NULL: the whole data object */
};

struct vault_lease {
	char *jti;
	char *lease_id;
	struct vault_lease *next;
};

struct vault_state {
	const struct kh_backend_host *host;
	json_t *conf;             /* deep copy: the strings below point into it */
	char addr[CONF_URL_MAX];
	const char *auth_mount;
	const char *role;
	const char *audience;
	char ns_header[CONF_ID_MAX + 32];  /* empty without "namespace" */
	struct kh_http_options http;
	char ca_file[PATH_MAX];
	struct vault_secret *secrets;
	size_t count;

	pthread_mutex_t lock;     /* guards leases and lease_count */
	struct vault_lease *leases;
	size_t lease_count;
};

/* A login token and its header line, both in sodium_malloc memory. */
struct vault_session {
	struct kh_secret *token;
	struct kh_secret *header; /* "X-Vault-Token: <token>" */
};

static const struct conf_key top_keys[] = {
	{ "addr", JSON_STRING, true },
	{ "auth_mount", JSON_STRING, false },
	{ "role", JSON_STRING, true },
	{ "audience", JSON_STRING, false },
	{ "namespace", JSON_STRING, false },
	{ "secrets", JSON_OBJECT, true },
};

static const struct conf_key secret_keys[] = {
	{ "engine", JSON_STRING, false },
	{ "mount", JSON_STRING, false },
	{ "path", JSON_STRING, true },
	{ "field", JSON_STRING, false },
};

static int parse_engine(const struct kh_backend_host *host, const char *where,
			const char *value, enum vault_engine *out,
			struct kh_err *err)
{
	if (strcmp(value, "kv2") == 0)
		*out = ENGINE_KV2;
	else if (strcmp(value, "kv1") == 0)
		*out = ENGINE_KV1;
	else if (strcmp(value, "dynamic") == 0)
		*out = ENGINE_DYNAMIC;
	else {
		host->err_set(err, "%s.engine: \"%s\" is not \"kv2\", \"kv1\" "
				   "or \"dynamic\"", where, value);
		return -EINVAL;
	}
	return 0;
}

/* Parses one member of "secrets": {"engine", "mount", "path", "field"}. */
static int parse_secret(const struct kh_backend_host *host, const char *name,
			const json_t *conf, struct vault_secret *out,
			struct kh_err *err)
{
	char where[CONF_ID_MAX + 32];
	char item[CONF_ID_MAX + 64];
	int r;

	(void)snprintf(where, sizeof(where), "$.secrets.%s", name);
	r = conf_check_secret_name(host, "$.secrets", name, err);
	if (r == 0)
		r = conf_check_keys(host, conf, where, secret_keys,
				    CONF_COUNT(secret_keys), false, err);
	if (r == 0)
		r = parse_engine(host, where, conf_string(conf, "engine", "kv2"),
				 &out->engine, err);
	if (r < 0)
		return r;

	out->name = name;
	out->mount = conf_string(conf, "mount", "secret");
	out->path = conf_string(conf, "path", NULL);
	out->field = conf_string(conf, "field", NULL);
	(void)snprintf(item, sizeof(item), "%s.mount", where);
	r = conf_check_path(host, item, out->mount, err);
	(void)snprintf(item, sizeof(item), "%s.path", where);
	if (r == 0)
		r = conf_check_path(host, item, out->path, err);
	(void)snprintf(item, sizeof(item), "%s.field", where);
	if (r == 0 && out->field)
		r = conf_check_id(host, item, out->field, "_.-", CONF_ID_MAX,
				  err);
	return r;
}

static int parse_secrets(struct vault_state *st, struct kh_err *err)
{
	const json_t *secrets = json_object_get(st->conf, "secrets");
	const char *name;
	json_t *value;
	size_t i = 0;
	int r;

	st->count = json_object_size(secrets);
	if (st->count == 0) {
		st->host->err_set(err, "$.secrets: empty; name at least one "
				       "secret this backend serves");
		return -EINVAL;
	}
	st->secrets = calloc(st->count, sizeof(*st->secrets));
	if (!st->secrets)
		return -ENOMEM;
	json_object_foreach((json_t *)secrets, name, value) {
		r = parse_secret(st->host, name, value, &st->secrets[i++], err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Parses the top-level members other than "secrets". */
static int parse_connection(struct vault_state *st, const char *base_dir,
			    struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	const char *ns = conf_string(st->conf, "namespace", NULL);
	int r;

	r = conf_url(host, "$.addr", conf_string(st->conf, "addr", ""),
		     st->addr, sizeof(st->addr), err);
	if (r < 0)
		return r;
	st->auth_mount = conf_string(st->conf, "auth_mount", "jwt");
	st->role = conf_string(st->conf, "role", NULL);
	st->audience = conf_string(st->conf, "audience", "vault");
	r = conf_check_path(host, "$.auth_mount", st->auth_mount, err);
	if (r == 0)
		r = conf_check_id(host, "$.role", st->role, "_.-", CONF_ID_MAX,
				  err);
	if (r == 0)
		r = conf_check_id(host, "$.audience", st->audience,
				  "_.-:/", CONF_ID_MAX, err);
	if (r == 0 && ns) {
		r = conf_check_path(host, "$.namespace", ns, err);
		(void)snprintf(st->ns_header, sizeof(st->ns_header),
			       "X-Vault-Namespace: %s", ns);
	}
	if (r < 0)
		return r;
	return host->http_options_parse(st->conf, base_dir, &st->http,
					st->ca_file, sizeof(st->ca_file), err);
}

static void vault_teardown(void *state);

static int vault_configure(const struct kh_backend_host *host,
			   const json_t *conf, const char *base_dir,
			   void **state, struct kh_err *err)
{
	struct vault_state *st = calloc(1, sizeof(*st));
	int r;

	*state = NULL;
	if (!st)
		return -ENOMEM;
	st->host = host;
	r = pthread_mutex_init(&st->lock, NULL);
	if (r != 0) {
		free(st);
		return -r;
	}
	r = conf_begin(host, conf, top_keys, CONF_COUNT(top_keys),
		       CONF_NEEDS_HTTP | CONF_NEEDS_FEDERATION, &st->conf, err);
	if (r == 0)
		r = parse_connection(st, base_dir, err);
	if (r == 0)
		r = parse_secrets(st, err);
	if (r < 0) {
		vault_teardown(st);
		return r;
	}
	*state = st;
	return 0;
}

static int vault_list(void *state, json_t **names, struct kh_err *err)
{
	struct vault_state *st = state;
	json_t *array = json_array();

	(void)err;
	*names = NULL;
	if (!array)
		return -ENOMEM;
	for (size_t i = 0; i < st->count; i++) {
		if (json_array_append_new(array,
					  json_string(st->secrets[i].name)) < 0) {
			json_decref(array);
			return -ENOMEM;
		}
	}
	*names = array;
	return 0;
}

/* Sends one request to Vault with the namespace and token headers. */
static int vault_call(const struct vault_state *st, const char *method,
		      const char *url, const struct vault_session *session,
		      const void *body, size_t body_len, int64_t deadline,
		      struct kh_http_response *resp, struct kh_err *err)
{
	const char *headers[5];
	size_t n = 0;
	struct kh_http_request req = {
		.method = method,
		.url = url,
		.headers = headers,
		.body = body,
		.body_len = body_len,
		.options = &st->http,
		.deadline = deadline,
		.retry = true,
	};

	headers[n++] = "Accept: application/json";
	if (body)
		headers[n++] = "Content-Type: application/json";
	if (st->ns_header[0])
		headers[n++] = st->ns_header;
	if (session)
		headers[n++] = (const char *)session->header->data;
	headers[n] = NULL;
	return st->host->http(&req, resp, err);
}

static void session_clear(const struct kh_backend_host *host,
			  struct vault_session *session)
{
	host->secret_free(session->token);
	host->secret_free(session->header);
	session->token = NULL;
	session->header = NULL;
}

/* Reads auth.client_token out of a login reply into the session. */
static int take_token(const struct vault_state *st, json_t *doc,
		      const char *url, struct vault_session *session,
		      struct kh_err *err)
{
	int r;

	r = reply_take_string(st->host, json_object_get(doc, "auth"),
			      "client_token", &session->token);
	if (r == -ENOENT)
		return reply_bad(st->host, err, "vault login", url,
				 "returned no auth.client_token");
	if (r < 0)
		return r;
	return reply_header(st->host, "X-Vault-Token: ", session->token,
			    &session->header, err);
}

/* Builds {"role": ..., "jwt": ...} in sodium_malloc memory. */
static int login_body(const struct vault_state *st,
		      const struct kh_secret *jwt, struct kh_secret **body,
		      struct kh_err *err)
{
	size_t size = strlen(st->role) + jwt->len + 32;
	int n;
	int r;

	r = reply_check_jwt(st->host, jwt, err);
	if (r == 0)
		r = st->host->secret_new(size, body);
	if (r < 0)
		return r;
	n = snprintf((char *)(*body)->data, size, "{\"role\":\"%s\",\"jwt\":\"%s\"}",
		     st->role, (const char *)jwt->data);
	(*body)->len = (size_t)n;
	return 0;
}

/*
 * Logs in with a new federation JWT for ctx. Vault's JWT method
 * rejects a JWT (bad signature, audience, subject, expiry) with status
 * 400, so 400 counts as "auth refused" here.
 */
static int vault_login(const struct vault_state *st,
		       const struct kh_fetch_ctx *ctx,
		       struct vault_session *session, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	struct kh_http_response resp = { 0 };
	struct kh_secret *jwt = NULL;
	struct kh_secret *body = NULL;
	char url[CONF_URL_MAX];
	json_t *doc = NULL;
	int r;

	r = conf_format_url(host, err, url, "%s/v1/auth/%s/login", st->addr,
			    st->auth_mount);
	if (r == 0)
		r = host->federation_jwt(host, st->audience, ctx, &jwt, err);
	if (r == 0)
		r = login_body(st, jwt, &body, err);
	if (r == 0)
		r = vault_call(st, "POST", url, NULL, body->data, body->len,
			       ctx->deadline, &resp, err);
	if (r < 0)
		goto out;

	if (resp.status < 200 || resp.status >= 300) {
		r = reply_fail(host, err, resp.status == 400 ?
			       KH_FETCH_AUTH_REFUSED : 0, &resp, "vault login",
			       url, jwt);
		goto out;
	}
	doc = reply_json(&resp);
	r = doc ? take_token(st, doc, url, session, err) :
		  reply_bad(host, err, "vault login", url,
			    "returned a body that is not JSON");
out:
	if (r < 0)
		session_clear(host, session);
	reply_free(host, doc);
	host->http_response_clear(&resp);
	host->secret_free(body);
	host->secret_free(jwt);
	return r;
}

/*
 * Revokes the session's token. A failure is only logged: the fetch has
 * already succeeded, and the token dies at its TTL anyway.
 */
static int vault_revoke_self(const struct vault_state *st,
			     struct vault_session *session, int64_t deadline,
			     struct kh_err *err)
{
	struct kh_http_response resp = { 0 };
	char url[CONF_URL_MAX];
	int r;

	r = conf_format_url(st->host, err, url,
			    "%s/v1/auth/token/revoke-self", st->addr);
	if (r == 0)
		r = vault_call(st, "POST", url, session, "{}", 2, deadline,
			       &resp, err);
	if (r == 0 && (resp.status < 200 || resp.status >= 300))
		r = reply_fail(st->host, err, 0, &resp, "vault revoke-self",
			       url, session->token);
	if (r < 0)
		st->host->debug("backend %s: token revoke-self failed, so the "
				"token stays valid until its TTL ends: %s",
				st->host->backend_name, err ? err->msg : "");
	st->host->http_response_clear(&resp);
	session_clear(st->host, session);
	return r;
}

static int secret_url(const struct vault_state *st,
		      const struct vault_secret *sec, char *url,
		      struct kh_err *err)
{
	switch (sec->engine) {
	case ENGINE_KV2:
		return conf_format_url(st->host, err, url, "%s/v1/%s/data/%s",
				       st->addr, sec->mount, sec->path);
	case ENGINE_KV1:
		return conf_format_url(st->host, err, url, "%s/v1/%s/%s",
				       st->addr, sec->mount, sec->path);
	default:
		return conf_format_url(st->host, err, url, "%s/v1/%s/creds/%s",
				       st->addr, sec->mount, sec->path);
	}
}

/* Records lease_id for the permit jti, to be revoked when it ends. */
static int lease_add(struct vault_state *st, const char *jti,
		     const char *lease_id, struct kh_err *err)
{
	struct vault_lease *lease = calloc(1, sizeof(*lease));
	int r = 0;

	if (!lease)
		return -ENOMEM;
	lease->jti = strdup(jti);
	lease->lease_id = strdup(lease_id);
	pthread_mutex_lock(&st->lock);
	if (!lease->jti || !lease->lease_id) {
		r = -ENOMEM;
	} else if (st->lease_count >= VAULT_LEASES_MAX) {
		st->host->err_set(err, "%d dynamic leases await their permits' "
				       "end; try again when permits expire",
				  VAULT_LEASES_MAX);
		r = -EBUSY;
	} else {
		lease->next = st->leases;
		st->leases = lease;
		st->lease_count++;
		lease = NULL;
	}
	pthread_mutex_unlock(&st->lock);
	if (lease) {
		free(lease->jti);
		free(lease->lease_id);
		free(lease);
	}
	return r;
}

/* Keeps the lease of a dynamic secret. Lease ids are not secret. */
static int keep_lease(struct vault_state *st, const json_t *doc,
		      const struct kh_fetch_ctx *ctx, const char *url,
		      struct kh_err *err)
{
	const char *lease_id = json_string_value(json_object_get(doc,
								 "lease_id"));

	if (!conf_chars_ok(lease_id, "_.-/", 1024))
		return reply_bad(st->host, err, "vault read", url,
				 "returned no valid lease_id");
	if (!ctx->jti) {
		st->host->err_set(err, "a dynamic secret needs a permit jti to "
				       "revoke its lease later");
		return -EINVAL;
	}
	return lease_add(st, ctx->jti, lease_id, err);
}

/* Finds the data object of a read reply, or NULL. */
static json_t *secret_data(const struct vault_secret *sec, json_t *doc)
{
	json_t *data = json_object_get(doc, "data");

	if (sec->engine == ENGINE_KV2)
		data = json_object_get(data, "data");
	return json_is_object(data) ? data : NULL;
}

static int extract_secret(struct vault_state *st,
			  const struct vault_secret *sec, json_t *doc,
			  const char *url, struct kh_secret **out,
			  struct kh_err *err)
{
	json_t *data = secret_data(sec, doc);
	json_t *value = data;

	if (!data)
		return reply_bad(st->host, err, "vault read", url,
				 sec->engine == ENGINE_KV2 ?
				 "returned no data.data object" :
				 "returned no data object");
	if (sec->field) {
		value = json_object_get(data, sec->field);
		if (!value) {
			st->host->err_set(err, "not found: field \"%s\" is not "
					       "in the vault secret at %s",
					  sec->field, url);
			return KH_FETCH_NOT_FOUND;
		}
	}
	return reply_value(st->host, value, out);
}

/* Reads sec with the session's token into *out. */
static int vault_read(struct vault_state *st, const struct vault_secret *sec,
		      const struct vault_session *session,
		      const struct kh_fetch_ctx *ctx, struct kh_secret **out,
		      struct kh_err *err)
{
	struct kh_http_response resp = { 0 };
	char url[CONF_URL_MAX];
	json_t *doc = NULL;
	int r;

	r = secret_url(st, sec, url, err);
	if (r == 0)
		r = vault_call(st, "GET", url, session, NULL, 0, ctx->deadline,
			       &resp, err);
	if (r < 0)
		goto out;
	if (resp.status < 200 || resp.status >= 300) {
		r = reply_fail(st->host, err, 0, &resp, "vault read", url,
			       session->token);
		goto out;
	}
	doc = reply_json(&resp);
	if (!doc) {
		r = reply_bad(st->host, err, "vault read", url,
			      "returned a body that is not JSON");
		goto out;
	}
	r = extract_secret(st, sec, doc, url, out, err);
	if (r == 0 && sec->engine == ENGINE_DYNAMIC)
		r = keep_lease(st, doc, ctx, url, err);
	if (r < 0 && *out) {
		st->host->secret_free(*out);
		*out = NULL;
	}
out:
	reply_free(st->host, doc);
	st->host->http_response_clear(&resp);
	return r;
}

static const struct vault_secret *find_secret(const struct vault_state *st,
					      const char *name)
{
	for (size_t i = 0; i < st->count; i++) {
		if (strcmp(st->secrets[i].name, name) == 0)
			return &st->secrets[i];
	}
	return NULL;
}

static int vault_fetch(void *state, const char *name,
		       const struct kh_fetch_ctx *ctx, struct kh_secret **out,
		       struct kh_err *err)
{
	struct vault_state *st = state;
	const struct vault_secret *sec = find_secret(st, name);
	struct vault_session session = { 0 };
	struct kh_err revoke_err;
	int r;

	*out = NULL;
	if (!sec)
		return reply_unknown(st->host, err, name);
	r = vault_login(st, ctx, &session, err);
	if (r < 0)
		return r;
	r = vault_read(st, sec, &session, ctx, out, err);

	/* Revoking the token would revoke the dynamic lease with it. */
	if (sec->engine == ENGINE_DYNAMIC)
		session_clear(st->host, &session);
	else
		(void)vault_revoke_self(st, &session, ctx->deadline,
					&revoke_err);
	return r;
}

/* Revokes one lease with the session's token and logs a failure. */
static void revoke_lease(const struct vault_state *st,
			 const struct vault_session *session,
			 const char *lease_id, int64_t deadline)
{
	struct kh_http_response resp = { 0 };
	struct kh_err err = { { 0 } };
	char url[CONF_URL_MAX];
	char body[1100];
	int r;

	(void)snprintf(body, sizeof(body), "{\"lease_id\":\"%s\"}", lease_id);
	r = conf_format_url(st->host, &err, url, "%s/v1/sys/leases/revoke",
			    st->addr);
	if (r == 0)
		r = vault_call(st, "PUT", url, session, body, strlen(body),
			       deadline, &resp, &err);
	if (r == 0 && (resp.status < 200 || resp.status >= 300))
		r = reply_fail(st->host, &err, 0, &resp, "vault lease revoke",
			       url, session->token);
	if (r < 0)
		st->host->debug("backend %s: lease %s was not revoked and "
				"lives until its TTL ends: %s",
				st->host->backend_name, lease_id, err.msg);
	else
		st->host->debug("backend %s: revoked lease %s",
				st->host->backend_name, lease_id);
	st->host->http_response_clear(&resp);
}

/* Removes and returns the leases recorded for jti. */
static struct vault_lease *leases_take(struct vault_state *st, const char *jti)
{
	struct vault_lease *taken = NULL;
	struct vault_lease **link;

	pthread_mutex_lock(&st->lock);
	link = &st->leases;
	while (*link) {
		struct vault_lease *lease = *link;

		if (strcmp(lease->jti, jti) == 0) {
			*link = lease->next;
			lease->next = taken;
			taken = lease;
			st->lease_count--;
		} else {
			link = &lease->next;
		}
	}
	pthread_mutex_unlock(&st->lock);
	return taken;
}

static void leases_free(struct vault_lease *lease)
{
	while (lease) {
		struct vault_lease *next = lease->next;

		free(lease->jti);
		free(lease->lease_id);
		free(lease);
		lease = next;
	}
}

/* Revokes the dynamic leases fetched for the permit jti. */
static void vault_permit_ended(void *state, const char *jti)
{
	struct vault_state *st = state;
	struct vault_lease *leases = leases_take(st, jti);
	struct vault_session session = { 0 };
	struct kh_fetch_ctx ctx = { .jti = jti };
	struct kh_err err = { { 0 } };

	if (!leases)
		return;
	ctx.deadline = (int64_t)time(NULL) + VAULT_CLEANUP_SECONDS;
	if (vault_login(st, &ctx, &session, &err) < 0) {
		st->host->debug("backend %s: cannot log in to revoke the "
				"leases of permit %s, which live until their "
				"TTL ends: %s", st->host->backend_name, jti,
				err.msg);
		leases_free(leases);
		return;
	}
	for (struct vault_lease *l = leases; l; l = l->next)
		revoke_lease(st, &session, l->lease_id, ctx.deadline);
	(void)vault_revoke_self(st, &session, ctx.deadline, &err);
	leases_free(leases);
}

/* GET lookup-self: proves the token works and reports its TTL. */
static int vault_lookup_self(const struct vault_state *st,
			     const struct vault_session *session,
			     int64_t deadline, char *result, size_t size,
			     struct kh_err *err)
{
	struct kh_http_response resp = { 0 };
	char url[CONF_URL_MAX];
	json_t *doc = NULL;
	json_t *ttl;
	int r;

	r = conf_format_url(st->host, err, url,
			    "%s/v1/auth/token/lookup-self", st->addr);
	if (r == 0)
		r = vault_call(st, "GET", url, session, NULL, 0, deadline,
			       &resp, err);
	if (r == 0 && (resp.status < 200 || resp.status >= 300))
		r = reply_fail(st->host, err, 0, &resp, "vault lookup-self",
			       url, session->token);
	if (r == 0) {
		doc = reply_json(&resp);
		ttl = json_object_get(json_object_get(doc, "data"), "ttl");
		if (json_is_integer(ttl))
			(void)snprintf(result, size, "ok: token TTL %lld s",
				       (long long)json_integer_value(ttl));
		else
			r = reply_bad(st->host, err, "vault lookup-self", url,
				      "returned no data.ttl");
	}
	reply_free(st->host, doc);
	st->host->http_response_clear(&resp);
	return r;
}

/* Login, lookup-self and revoke-self: the round trip, with no secret read. */
static int vault_test(void *state, json_t *report, struct kh_err *err)
{
	struct vault_state *st = state;
	struct vault_session session = { 0 };
	struct kh_fetch_ctx ctx = { .jti = NULL };
	char check[CONF_URL_MAX + 64];
	char result[128];
	int r;

	ctx.deadline = (int64_t)time(NULL) + VAULT_CLEANUP_SECONDS;
	(void)snprintf(check, sizeof(check), "login at %s/v1/auth/%s/login as "
		       "role %s with a JWT for audience %s", st->addr,
		       st->auth_mount, st->role, st->audience);
	r = vault_login(st, &ctx, &session, err);
	if (r < 0)
		return r;
	(void)reply_report(report, check, "ok: got a token");

	r = vault_lookup_self(st, &session, ctx.deadline, result,
			      sizeof(result), err);
	if (r < 0) {
		struct kh_err ignored;

		(void)vault_revoke_self(st, &session, ctx.deadline, &ignored);
		return r;
	}
	(void)reply_report(report, "token lookup-self", result);

	r = vault_revoke_self(st, &session, ctx.deadline, err);
	if (r < 0)
		return r;
	(void)reply_report(report, "token revoke-self", "ok: token revoked");
	return 0;
}

static void vault_teardown(void *state)
{
	struct vault_state *st = state;

	if (!st)
		return;
	/* NOTE: leases still held here expire at their Vault TTL. */
	leases_free(st->leases);
	pthread_mutex_destroy(&st->lock);
	free(st->secrets);
	json_decref(st->conf);
	free(st);
}

const struct kh_backend_module kh_backend_module = {
	.abi_version = KH_BACKEND_ABI_VERSION,
	.type = "vault",
	.flags = 0,
	.configure = vault_configure,
	.list = vault_list,
	.fetch = vault_fetch,
	.test = vault_test,
	.describe = NULL,
	.permit_ended = vault_permit_ended,
	.teardown = vault_teardown,
};
