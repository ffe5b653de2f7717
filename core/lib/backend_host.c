/*
 * The services table keyhole lends to each backend instance (struct
 * kh_backend_host): secure memory, error messages, debug lines, HTTP
 * and federation JWTs. Modules link nothing from libkeyhole, so this
 * table is their only way in.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_internal.h"
#include "keyhole/federation.h"
#include "keyhole/http.h"

/* One instance's copies of the strings the table points at. */
struct host_private {
	char backend_name[KH_BACKEND_NAME_MAX + 1];
	char *tenant;
	char *env;
	char *broker_id;
	char *issuer;
	char *sub;
	const struct kh_fed_key *fed_key;
};

/* Written once before backends open (kh_backend_set_debug_log). */
static void (*debug_log)(const char *line);

void kh_backend_set_debug_log(void (*log)(const char *line))
{
	debug_log = log;
}

static void host_debug(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void host_err_set(struct kh_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void host_debug(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!debug_log)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	debug_log(line);
}

static void host_err_set(struct kh_err *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/*
 * Signs a JWT for aud that lives at most KH_FED_JWT_MAX_LIFETIME seconds
 * and never past the permit's exp, so a token cannot outlive the permit
 * it serves.
 */
static int host_federation_jwt(const struct kh_backend_host *host,
			       const char *aud, const struct kh_fetch_ctx *ctx,
			       struct kh_secret **jwt, struct kh_err *err)
{
	const struct host_private *priv = host->host_private;
	struct kh_fed_claims claims = { 0 };
	int64_t now = (int64_t)time(NULL);

	*jwt = NULL;
	if (!priv->fed_key || !priv->issuer) {
		kh_err_set(err, "backend %s needs a federation key: add "
				"\"federation\": {\"issuer\", \"key\"} to "
				"keyhole.json (keyhole keygen --federation "
				"makes the key)", priv->backend_name);
		return -ENOKEY;
	}
	claims.lifetime = KH_FED_JWT_MAX_LIFETIME;
	if (ctx && ctx->deadline > 0) {
		if (ctx->deadline <= now) {
			kh_err_set(err, "%s: the permit expired before a "
					"federation token could be signed",
				   kh_backend_reason(KH_FETCH_TIMED_OUT));
			return KH_FETCH_TIMED_OUT;
		}
		if (ctx->deadline - now < claims.lifetime)
			claims.lifetime = ctx->deadline - now;
	}
	claims.iss = priv->issuer;
	claims.sub = priv->sub;
	claims.aud = aud;
	claims.permit_jti = ctx ? ctx->jti : NULL;
	claims.now = now;
	return kh_fed_jwt_sign(priv->fed_key, &claims, jwt, err);
}

/* Copies s, or "" for NULL. Returns NULL only when out of memory. */
static char *copy_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static void free_private(struct host_private *priv)
{
	if (!priv)
		return;
	free(priv->tenant);
	free(priv->env);
	free(priv->broker_id);
	free(priv->issuer);
	free(priv->sub);
	free(priv);
}

static int build_private(const char *name, const struct kh_backend_env *env,
			 struct host_private **out)
{
	struct host_private *priv = calloc(1, sizeof(*priv));

	*out = NULL;
	if (!priv)
		return -ENOMEM;
	(void)snprintf(priv->backend_name, sizeof(priv->backend_name), "%s",
		       name);
	priv->tenant = copy_or_empty(env->tenant);
	priv->env = copy_or_empty(env->env);
	priv->broker_id = copy_or_empty(env->broker_id);
	if (env->fed_issuer && env->fed_issuer[0])
		priv->issuer = strdup(env->fed_issuer);
	priv->fed_key = env->fed_key;
	if (!priv->tenant || !priv->env || !priv->broker_id ||
	    (env->fed_issuer && env->fed_issuer[0] && !priv->issuer) ||
	    asprintf(&priv->sub, "keyhole:%s:%s:%s", priv->tenant, priv->env,
		     priv->broker_id) < 0) {
		priv->sub = NULL;
		free_private(priv);
		return -ENOMEM;
	}
	*out = priv;
	return 0;
}

int kh_backend_host_new(const char *name, const struct kh_backend_env *env,
			struct kh_backend_host **out)
{
	struct kh_backend_host *host = NULL;
	struct host_private *priv = NULL;
	int r;

	*out = NULL;
	r = build_private(name, env, &priv);
	if (r < 0)
		return r;
	host = calloc(1, sizeof(*host));
	if (!host) {
		free_private(priv);
		return -ENOMEM;
	}
	host->abi_version = KH_BACKEND_ABI_VERSION;
	host->backend_name = priv->backend_name;
	host->tenant = priv->tenant;
	host->env = priv->env;
	host->broker_id = priv->broker_id;
	host->secret_new = kh_secret_new;
	host->secret_free = kh_secret_free;
	host->err_set = host_err_set;
	host->debug = host_debug;
	host->http = kh_http_perform;
	host->http_response_clear = kh_http_response_clear;
	host->http_options_parse = kh_http_options_parse;
	host->federation_jwt = host_federation_jwt;
	host->federation_issuer = priv->issuer;
	host->host_private = priv;
	host->fetch_reason = kh_backend_reason;
	host->http_status_error = kh_http_status_error;
	host->json_wipe = kh_backend_json_wipe;
	*out = host;
	return 0;
}

void kh_backend_host_free(struct kh_backend_host *host)
{
	if (!host)
		return;
	free_private(host->host_private);
	free(host);
}
