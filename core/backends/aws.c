/*
 * The aws backend: AWS Secrets Manager read with temporary credentials
 * that STS issues at the moment a permit is used, so keyhole.json holds
 * only ARNs. Two ways to get them:
 *
 *   web_identity  AssumeRoleWithWebIdentity with a federation JWT that
 *                 the broker signs; no AWS credential exists anywhere.
 *   assume_role   AssumeRole with the tenant's ExternalId, signed with
 *                 the host's ambient identity (environment variables or
 *                 IMDSv2), for brokers that run inside AWS.
 *
 * Each request carries an inline session policy that allows
 * secretsmanager:GetSecretValue on exactly the granted secret's ARN, so
 * the temporary credentials can read nothing else even though the role
 * may allow more. Kind "aws_credentials" hands those scoped credentials
 * themselves to the agent as a shared-credentials file named
 * "credentials", scoped to every ARN this backend lists.
 *
 * Requests to STS (for assume_role) and Secrets Manager are signed by
 * libcurl's CURLOPT_AWS_SIGV4 inside host->http. Every key and token
 * lives in sodium_malloc memory and is wiped when the fetch returns.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyhole/backend_module.h"
#include "aws_sts.h"
#include "conf_check.h"
#include "http_reply.h"

#define STS_VERSION "2011-06-15"

/*
 * Lifetime requested for temporary credentials, in seconds: STS's
 * minimum. NOTE: credentials handed out by kind aws_credentials stay
 * valid this long even when the permit that fetched them ends sooner.
 */
#define AWS_DURATION_SECONDS "900"

#define IMDS_DEFAULT "http://169.254.169.254"
/* Lifetime of an IMDSv2 session token, in seconds: one fetch needs a few. */
#define IMDS_TOKEN_TTL "60"

#define ARN_MAX 2048
#define EXTERNAL_ID_MAX 1224
/* RoleSessionName: [\w+=,.@-]{2,64} (STS API reference). */
#define SESSION_NAME_MAX 64
#define SESSION_NAME_CHARS "_+=,.@-"
#define ERROR_CODE_MAX 128

/* Seconds a `keyhole backend test` round trip may take. */
#define TEST_SECONDS 60

/* First backoff after a throttled reply, in milliseconds; doubles. */
#define THROTTLE_BACKOFF_MS 200

enum aws_mode { MODE_WEB_IDENTITY, MODE_ASSUME_ROLE };
enum aws_kind { KIND_SECRETS_MANAGER, KIND_AWS_CREDENTIALS };

struct aws_secret {
	const char *name;
	const char *arn;
};

struct aws_state {
	const struct kh_backend_host *host;
	json_t *conf;             /* deep copy: the strings below point into it */
	enum aws_mode mode;
	enum aws_kind kind;
	const char *role_arn;
	const char *region;
	const char *audience;
	char external_id[EXTERNAL_ID_MAX + 1];
	char sts_url[CONF_URL_MAX];
	char sm_url[CONF_URL_MAX];
	char imds_url[CONF_URL_MAX];
	char sts_sigv4[96];       /* "aws:amz:<region>:sts" */
	char sm_sigv4[96];        /* "aws:amz:<region>:secretsmanager" */
	struct kh_http_options http;
	char ca_file[PATH_MAX];
	struct aws_secret *secrets;
	size_t count;
};

/* An AWS error reply: STS's <Code> or the JSON protocol's "__type". */
struct aws_error {
	char code[ERROR_CODE_MAX];
	char message[REPLY_SUMMARY_MAX + 1];
};

static const struct conf_key top_keys[] = {
	{ "mode", JSON_STRING, true },
	{ "role_arn", JSON_STRING, true },
	{ "region", JSON_STRING, true },
	{ "secret_arns", JSON_OBJECT, true },
	{ "kind", JSON_STRING, false },
	{ "audience", JSON_STRING, false },
	{ "sts_endpoint", JSON_STRING, false },
	{ "endpoint", JSON_STRING, false },
	{ "imds_endpoint", JSON_STRING, false },
	{ "external_id", JSON_STRING, false },
};

/* ---- configuration ---- */

/*
 * Checks "arn:<partition>:<service>:<region>:<account>:<resource>":
 * partition aws*, a 12-digit account, and a resource that starts with
 * resource_prefix. IAM ARNs have an empty region, others need one.
 */
static int check_arn(const struct kh_backend_host *host, const char *path,
		     const char *arn, const char *service,
		     const char *resource_prefix, struct kh_err *err)
{
	char expected[64];
	const char *p = arn;
	const char *account;
	bool ok = conf_chars_ok(arn, ":/_+=,.@-", ARN_MAX) &&
		  strncmp(arn, "arn:aws", 7) == 0;

	(void)snprintf(expected, sizeof(expected), ":%s:", service);
	p = ok ? strchr(arn + 4, ':') : NULL;
	ok = p && strncmp(p, expected, strlen(expected)) == 0;
	if (ok) {
		const char *region_end = strchr(p + strlen(expected), ':');
		bool global = strcmp(service, "iam") == 0;

		ok = region_end &&
		     (global ? region_end == p + strlen(expected)
			     : region_end > p + strlen(expected));
		account = region_end ? region_end + 1 : NULL;
		ok = ok && strspn(account, "0123456789") == 12 &&
		     account[12] == ':' &&
		     strncmp(account + 13, resource_prefix,
			     strlen(resource_prefix)) == 0 &&
		     account[13 + strlen(resource_prefix)] != '\0';
	}
	if (!ok) {
		host->err_set(err, "%s: \"%.200s\" is not an ARN of the form "
				   "arn:aws:%s:%s:<12-digit account>:%s<name>",
			      path, arn, service,
			      strcmp(service, "iam") == 0 ? "" : "<region>",
			      resource_prefix);
		return -EINVAL;
	}
	return 0;
}

/* Parses "secret_arns": {name: ARN}, the names this backend serves. */
static int parse_secrets(struct aws_state *st, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	const json_t *arns = json_object_get(st->conf, "secret_arns");
	const char *name;
	json_t *value;
	char where[CONF_ID_MAX + 32];

	if (json_object_size(arns) == 0) {
		host->err_set(err, "$.secret_arns: add at least one "
				   "{\"<name>\": \"arn:aws:secretsmanager:...\"}");
		return -EINVAL;
	}
	st->secrets = calloc(json_object_size(arns), sizeof(*st->secrets));
	if (!st->secrets)
		return -ENOMEM;
	json_object_foreach((json_t *)arns, name, value) {
		(void)snprintf(where, sizeof(where), "$.secret_arns.%.128s",
			       name);
		if (conf_check_secret_name(host, "$.secret_arns", name, err) < 0)
			return -EINVAL;
		if (st->kind == KIND_AWS_CREDENTIALS &&
		    strcmp(name, "credentials") == 0) {
			host->err_set(err, "%s: the name \"credentials\" is "
					   "taken by kind aws_credentials; "
					   "rename the secret", where);
			return -EINVAL;
		}
		if (!json_is_string(value)) {
			host->err_set(err, "%s: expected an ARN string", where);
			return -EINVAL;
		}
		if (check_arn(host, where, json_string_value(value),
			      "secretsmanager", "secret:", err) < 0)
			return -EINVAL;
		st->secrets[st->count].name = name;
		st->secrets[st->count].arn = json_string_value(value);
		st->count++;
	}
	return 0;
}

static int parse_mode_kind(struct aws_state *st, struct kh_err *err)
{
	const char *mode = conf_string(st->conf, "mode", "");
	const char *kind = conf_string(st->conf, "kind", "secrets_manager");

	if (strcmp(mode, "web_identity") == 0)
		st->mode = MODE_WEB_IDENTITY;
	else if (strcmp(mode, "assume_role") == 0)
		st->mode = MODE_ASSUME_ROLE;
	else {
		st->host->err_set(err, "$.mode: \"%.64s\" is not "
				       "\"web_identity\" or \"assume_role\"",
				  mode);
		return -EINVAL;
	}
	if (strcmp(kind, "secrets_manager") == 0)
		st->kind = KIND_SECRETS_MANAGER;
	else if (strcmp(kind, "aws_credentials") == 0)
		st->kind = KIND_AWS_CREDENTIALS;
	else {
		st->host->err_set(err, "$.kind: \"%.64s\" is not "
				       "\"secrets_manager\" or "
				       "\"aws_credentials\"", kind);
		return -EINVAL;
	}
	return 0;
}

/*
 * Copies an IMDS base URL. The real endpoint is plain http on a
 * link-local address, so http:// is allowed here and nowhere else.
 */
static int parse_imds_url(struct aws_state *st, struct kh_err *err)
{
	const char *value = conf_string(st->conf, "imds_endpoint",
					IMDS_DEFAULT);
	char https[CONF_URL_MAX];
	int n;

	if (strncmp(value, "http://", 7) != 0)
		return conf_url(st->host, "$.imds_endpoint", value,
				st->imds_url, sizeof(st->imds_url), err);

	/* Reuse conf_url's checks on the same URL written as https. */
	n = snprintf(https, sizeof(https), "https://%s", value + 7);
	if (n < 0 || (size_t)n >= sizeof(https) ||
	    conf_url(st->host, "$.imds_endpoint", https, st->imds_url,
		     sizeof(st->imds_url), err) < 0) {
		if (n < 0 || (size_t)n >= sizeof(https))
			st->host->err_set(err, "$.imds_endpoint: URL too long");
		return -EINVAL;
	}
	memmove(st->imds_url + 7, st->imds_url + 8, strlen(st->imds_url + 8) + 1);
	memcpy(st->imds_url, "http://", 7);
	return 0;
}

/* Sets the STS, Secrets Manager and IMDS URLs, defaulting to the region's. */
static int parse_endpoints(struct aws_state *st, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	char fallback[CONF_URL_MAX];
	int r;

	(void)snprintf(fallback, sizeof(fallback),
		       "https://sts.%s.amazonaws.com", st->region);
	r = conf_url(host, "$.sts_endpoint",
		     conf_string(st->conf, "sts_endpoint", fallback),
		     st->sts_url, sizeof(st->sts_url), err);
	if (r < 0)
		return r;
	(void)snprintf(fallback, sizeof(fallback),
		       "https://secretsmanager.%s.amazonaws.com", st->region);
	r = conf_url(host, "$.endpoint",
		     conf_string(st->conf, "endpoint", fallback), st->sm_url,
		     sizeof(st->sm_url), err);
	if (r < 0)
		return r;
	(void)snprintf(st->sts_sigv4, sizeof(st->sts_sigv4), "aws:amz:%s:sts",
		       st->region);
	(void)snprintf(st->sm_sigv4, sizeof(st->sm_sigv4),
		       "aws:amz:%s:secretsmanager", st->region);
	return st->mode == MODE_ASSUME_ROLE ? parse_imds_url(st, err) : 0;
}

/*
 * Derives the ExternalId the customer's trust policy must require:
 * "keyhole-" and 32 hex digits of SHA-256 over the JSON array [tenant,
 * env, broker_id, backend name]. It is stable for one backend of one
 * broker and differs between tenants, which is what defeats a confused
 * deputy. The array keeps "a:b" + "c" apart from "a" + "b:c".
 */
static int derive_external_id(struct aws_state *st, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	unsigned char digest[crypto_hash_sha256_BYTES];
	char hex[33];
	json_t *parts;
	char *text;

	parts = json_pack("[ssss]", host->tenant ? host->tenant : "",
			  host->env ? host->env : "",
			  host->broker_id ? host->broker_id : "",
			  host->backend_name ? host->backend_name : "");
	text = parts ? json_dumps(parts, JSON_COMPACT) : NULL;
	json_decref(parts);
	if (!text) {
		host->err_set(err, "out of memory deriving the ExternalId");
		return -ENOMEM;
	}
	crypto_hash_sha256(digest, (const unsigned char *)text, strlen(text));
	free(text);
	sodium_bin2hex(hex, sizeof(hex), digest, 16);
	(void)snprintf(st->external_id, sizeof(st->external_id), "keyhole-%s",
		       hex);
	return 0;
}

static int parse_identity(struct aws_state *st, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	const char *external_id = conf_string(st->conf, "external_id", NULL);
	int r;

	st->role_arn = conf_string(st->conf, "role_arn", "");
	st->region = conf_string(st->conf, "region", "");
	st->audience = conf_string(st->conf, "audience", "sts.amazonaws.com");
	r = check_arn(host, "$.role_arn", st->role_arn, "iam", "role/", err);
	if (r == 0)
		r = conf_check_id(host, "$.region", st->region, "-", 32, err);
	if (r == 0)
		r = conf_check_id(host, "$.audience", st->audience, "_.-:/",
				  CONF_ID_MAX, err);
	if (r == 0 && external_id) {
		r = conf_check_id(host, "$.external_id", external_id,
				  "_+=,.@:/-", EXTERNAL_ID_MAX, err);
		if (r == 0 && strlen(external_id) < 2) {
			host->err_set(err, "$.external_id: use at least 2 "
					   "characters");
			r = -EINVAL;
		}
		(void)snprintf(st->external_id, sizeof(st->external_id), "%s",
			       external_id);
	} else if (r == 0) {
		r = derive_external_id(st, err);
	}
	if (r == 0 && st->mode == MODE_WEB_IDENTITY &&
	    !host->federation_issuer) {
		host->err_set(err, "$.mode: web_identity needs the broker's "
				   "federation key: add \"federation\": "
				   "{\"issuer\", \"key\"} to keyhole.json "
				   "(keyhole keygen --federation makes the key)");
		r = -EINVAL;
	}
	return r;
}

static void aws_teardown(void *state)
{
	struct aws_state *st = state;

	if (!st)
		return;
	free(st->secrets);
	json_decref(st->conf);
	free(st);
}

static int aws_configure(const struct kh_backend_host *host,
			 const json_t *conf, const char *base_dir,
			 void **state, struct kh_err *err)
{
	struct aws_state *st = calloc(1, sizeof(*st));
	int r;

	*state = NULL;
	if (!st)
		return -ENOMEM;
	st->host = host;
	r = conf_begin(host, conf, top_keys, CONF_COUNT(top_keys),
		       CONF_NEEDS_HTTP | CONF_NEEDS_FEDERATION, &st->conf, err);
	if (r == 0)
		r = parse_mode_kind(st, err);
	if (r == 0)
		r = parse_identity(st, err);
	if (r == 0)
		r = parse_endpoints(st, err);
	if (r == 0)
		r = parse_secrets(st, err);
	if (r == 0)
		r = host->http_options_parse(st->conf, base_dir, &st->http,
					     st->ca_file, sizeof(st->ca_file),
					     err);
	if (r < 0) {
		aws_teardown(st);
		return r;
	}
	*state = st;
	return 0;
}

static int aws_list(void *state, json_t **names, struct kh_err *err)
{
	const struct aws_state *st = state;
	json_t *array = json_array();

	(void)err;
	*names = NULL;
	if (!array)
		return -ENOMEM;
	for (size_t i = 0; i < st->count; i++) {
		if (json_array_append_new(array,
					  json_string(st->secrets[i].name)) < 0)
			goto fail;
	}
	if (st->kind == KIND_AWS_CREDENTIALS &&
	    json_array_append_new(array, json_string("credentials")) < 0)
		goto fail;
	*names = array;
	return 0;
fail:
	json_decref(array);
	return -ENOMEM;
}

static json_t *aws_describe(void *state)
{
	const struct aws_state *st = state;

	return json_pack("{s:s, s:s}", "external_id", st->external_id, "mode",
			 st->mode == MODE_WEB_IDENTITY ? "web_identity"
						       : "assume_role");
}

/* ---- request building ---- */

struct form_field {
	const char *name;
	const char *value;
	size_t len;
};

static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
	       c == '~';
}

/*
 * Writes fields as an application/x-www-form-urlencoded body into
 * sodium_malloc memory, because one field may be a JWT. Percent-encodes
 * everything outside RFC 3986's unreserved set.
 */
static int form_build(const struct kh_backend_host *host,
		      const struct form_field *fields, size_t count,
		      struct kh_secret **out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t need = 1;
	size_t pos = 0;
	int r;

	for (size_t i = 0; i < count; i++) {
		need += strlen(fields[i].name) + 2;
		for (size_t j = 0; j < fields[i].len; j++)
			need += is_unreserved((unsigned char)fields[i].value[j])
					? 1
					: 3;
	}
	r = host->secret_new(need, out);
	if (r < 0)
		return r;
	for (size_t i = 0; i < count; i++) {
		char *p = (char *)(*out)->data;
		size_t name_len = strlen(fields[i].name);

		if (i)
			p[pos++] = '&';
		memcpy(p + pos, fields[i].name, name_len);
		pos += name_len;
		p[pos++] = '=';
		for (size_t j = 0; j < fields[i].len; j++) {
			unsigned char c = (unsigned char)fields[i].value[j];

			if (is_unreserved(c)) {
				p[pos++] = (char)c;
				continue;
			}
			p[pos++] = '%';
			p[pos++] = hex[c >> 4];
			p[pos++] = hex[c & 0x0f];
		}
	}
	(*out)->data[pos] = '\0';
	(*out)->len = pos;
	return 0;
}

/*
 * Builds the inline session policy: GetSecretValue on only's ARN, or on
 * every listed ARN when only is NULL (aws_credentials and test). The
 * effective permissions are the intersection of this and the role's.
 */
static char *session_policy(const struct aws_state *st,
			    const struct aws_secret *only)
{
	json_t *resources = json_array();
	json_t *doc;
	char *text;

	for (size_t i = 0; resources && i < st->count; i++) {
		if (!only || only == &st->secrets[i])
			(void)json_array_append_new(
				resources, json_string(st->secrets[i].arn));
	}
	doc = json_pack("{s:s, s:[{s:s, s:s, s:o}]}", "Version", "2012-10-17",
			"Statement", "Effect", "Allow", "Action",
			"secretsmanager:GetSecretValue", "Resource", resources);
	text = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(doc);
	return text;
}

/*
 * RoleSessionName "keyhole-<permit jti>", so that CloudTrail entries
 * point back to the permit's decision record. A jti is base64url, which
 * STS accepts as is; any other byte becomes '_'. Without a permit
 * (keyhole backend test) the name is "keyhole-test-<random>".
 */
static void session_name(const struct kh_fetch_ctx *ctx,
			 char out[SESSION_NAME_MAX + 1])
{
	const char *jti = ctx ? ctx->jti : NULL;
	size_t pos;

	if (!jti || !*jti) {
		unsigned char random[8];
		char hex[17];

		randombytes_buf(random, sizeof(random));
		sodium_bin2hex(hex, sizeof(hex), random, sizeof(random));
		(void)snprintf(out, SESSION_NAME_MAX + 1, "keyhole-test-%s",
			       hex);
		return;
	}
	pos = (size_t)snprintf(out, SESSION_NAME_MAX + 1, "keyhole-");
	for (; *jti && pos < SESSION_NAME_MAX; jti++) {
		char c = *jti;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') ||
			  (c && strchr(SESSION_NAME_CHARS, c));

		out[pos++] = ok ? c : '_';
	}
	out[pos] = '\0';
}

/*
 * Builds the SigV4 material for libcurl: "ACCESS_KEY_ID:SECRET" for
 * CURLOPT_USERPWD, and the "X-Amz-Security-Token: ..." header line when
 * the credentials are temporary.
 */
static int signing_material(const struct kh_backend_host *host,
			    const struct sts_creds *creds,
			    struct kh_secret **keypair,
			    struct kh_secret **token_header, struct kh_err *err)
{
	size_t id_len = creds->access_key_id->len;
	size_t key_len = creds->secret_access_key->len;
	int r;

	*keypair = NULL;
	*token_header = NULL;
	r = host->secret_new(id_len + 1 + key_len + 1, keypair);
	if (r < 0)
		return r;
	memcpy((*keypair)->data, creds->access_key_id->data, id_len);
	(*keypair)->data[id_len] = ':';
	memcpy((*keypair)->data + id_len + 1, creds->secret_access_key->data,
	       key_len);
	(*keypair)->data[id_len + 1 + key_len] = '\0';
	(*keypair)->len = id_len + 1 + key_len;
	if (!creds->session_token)
		return 0;
	r = reply_header(host, "X-Amz-Security-Token: ", creds->session_token,
			 token_header, err);
	if (r < 0) {
		host->secret_free(*keypair);
		*keypair = NULL;
	}
	return r;
}

/* ---- sending and error replies ---- */

static void json_error(const struct kh_backend_host *host,
		       const struct kh_http_response *resp,
		       struct aws_error *e)
{
	json_t *doc = reply_json(resp);
	const char *type = json_string_value(json_object_get(doc, "__type"));
	const char *message = json_string_value(json_object_get(doc,
								"message"));

	if (!message)
		message = json_string_value(json_object_get(doc, "Message"));
	/* "__type" may carry a namespace: "com.amazonaws...#Name". */
	if (type && strchr(type, '#'))
		type = strchr(type, '#') + 1;
	if (type && conf_chars_ok(type, ".", sizeof(e->code) - 1))
		(void)snprintf(e->code, sizeof(e->code), "%s", type);
	reply_append(e->message, sizeof(e->message), message);
	reply_free(host, doc);
}

static void parse_error(const struct kh_backend_host *host,
			const struct kh_http_response *resp, bool xml,
			struct aws_error *e)
{
	memset(e, 0, sizeof(*e));
	if (!resp->body)
		return;
	if (xml)
		sts_parse_error((const char *)resp->body->data, resp->body->len,
				e->code, sizeof(e->code), e->message,
				sizeof(e->message));
	else
		json_error(host, resp, e);
}

/* AWS error codes of STS and the JSON protocol, and their reasons. */
static const struct {
	const char *code;
	int reason;
} error_map[] = {
	{ "AccessDenied", KH_FETCH_AUTH_REFUSED },
	{ "AccessDeniedException", KH_FETCH_AUTH_REFUSED },
	{ "InvalidIdentityToken", KH_FETCH_AUTH_REFUSED },
	{ "IDPRejectedClaim", KH_FETCH_AUTH_REFUSED },
	{ "IDPCommunicationError", KH_FETCH_AUTH_REFUSED },
	{ "ExpiredToken", KH_FETCH_AUTH_REFUSED },
	{ "ExpiredTokenException", KH_FETCH_AUTH_REFUSED },
	{ "InvalidClientTokenId", KH_FETCH_AUTH_REFUSED },
	{ "SignatureDoesNotMatch", KH_FETCH_AUTH_REFUSED },
	{ "InvalidSignatureException", KH_FETCH_AUTH_REFUSED },
	{ "IncompleteSignature", KH_FETCH_AUTH_REFUSED },
	{ "MissingAuthenticationToken", KH_FETCH_AUTH_REFUSED },
	{ "UnrecognizedClientException", KH_FETCH_AUTH_REFUSED },
	{ "RegionDisabledException", KH_FETCH_AUTH_REFUSED },
	/* KMS refused to decrypt the secret for this role. */
	{ "DecryptionFailure", KH_FETCH_AUTH_REFUSED },
	{ "ResourceNotFoundException", KH_FETCH_NOT_FOUND },
	{ "Throttling", KH_FETCH_THROTTLED },
	{ "ThrottlingException", KH_FETCH_THROTTLED },
	{ "TooManyRequestsException", KH_FETCH_THROTTLED },
	{ "RequestLimitExceeded", KH_FETCH_THROTTLED },
	{ "InternalServiceError", KH_FETCH_SERVER_ERROR },
	{ "InternalFailure", KH_FETCH_SERVER_ERROR },
	{ "ServiceUnavailable", KH_FETCH_SERVER_ERROR },
};

/* AWS names the error in the body; the status is only a fallback. */
static int error_reason(const struct kh_backend_host *host,
			const struct aws_error *e, long status)
{
	for (size_t i = 0; i < CONF_COUNT(error_map); i++) {
		if (strcmp(e->code, error_map[i].code) == 0)
			return error_map[i].reason;
	}
	status = host->http_status_error(status);
	return status ? (int)status : KH_FETCH_BAD_RESPONSE;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Sleeps before retry number attempt, with exponential backoff and
 * jitter. Returns false, without sleeping, when the retry would end
 * past deadline (unix seconds; 0 for none).
 */
static bool backoff(int64_t deadline, unsigned attempt)
{
	int64_t delay = ((int64_t)THROTTLE_BACKOFF_MS << (attempt - 1)) +
			randombytes_uniform(THROTTLE_BACKOFF_MS);
	struct timespec ts = { .tv_sec = delay / 1000,
			       .tv_nsec = (long)(delay % 1000) * 1000000 };

	if (deadline > 0 && now_ms() + delay >= deadline * 1000)
		return false;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return true;
}

/*
 * Sends req. host->http already retries 429, 5xx and timeouts; AWS
 * also throttles with a 400 whose body names the error (Throttling,
 * ThrottlingException), which is retried here, within the same bounds:
 * the attempts host->http made count against KH_HTTP_MAX_ATTEMPTS, and
 * each retry made here is a single attempt.
 * Returns 0 with *e filled for a non-2xx reply, or host->http's error.
 */
static int aws_send(const struct aws_state *st,
		    const struct kh_http_request *req, bool xml,
		    const char *what, struct kh_http_response *resp,
		    struct aws_error *e, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	struct kh_http_request once = *req;
	unsigned used = 0;

	for (;;) {
		int r = host->http(&once, resp, err);

		used += resp->attempts;
		memset(e, 0, sizeof(*e));
		if (r < 0 || (resp->status >= 200 && resp->status < 300))
			return r;
		parse_error(host, resp, xml, e);
		if (resp->status != 400 ||
		    error_reason(host, e, resp->status) != KH_FETCH_THROTTLED ||
		    used >= KH_HTTP_MAX_ATTEMPTS ||
		    !backoff(req->deadline, used))
			return 0;
		host->debug("backend %s: %s throttled (%s), retry %u",
			    host->backend_name, what, e->code, used);
		host->http_response_clear(resp);
		once.retry = false;
	}
}

/*
 * Sets err for an AWS error reply and returns its KH_FETCH_* value:
 * "auth refused: sts AssumeRole at URL returned 403 AccessDenied: ...".
 * A reply that echoes credential (may be NULL) is not quoted.
 */
static int aws_fail(const struct aws_state *st, struct kh_err *err,
		    const char *what, const char *url,
		    const struct kh_http_response *resp,
		    const struct aws_error *e,
		    const struct kh_secret *credential)
{
	int reason = error_reason(st->host, e, resp->status);
	const char *message = e->message;

	if (credential && credential->len > 0 && resp->body &&
	    memmem(resp->body->data, resp->body->len, credential->data,
		   credential->len))
		message = "(message withheld: it echoes the credential)";
	st->host->err_set(err, "%s: %s at %s returned %ld%s%s%s%s",
			  st->host->fetch_reason(reason), what, url,
			  resp->status, e->code[0] ? " " : "", e->code,
			  message[0] ? ": " : "", message);
	return reason;
}

/* ---- STS ---- */

/*
 * Calls STS action with the form fields and parses the credentials.
 * signer (may be NULL) signs the request with SigV4; credential (may be
 * NULL) is kept out of error messages.
 */
static int sts_call(const struct aws_state *st, const char *action,
		    const struct form_field *fields, size_t count,
		    const struct sts_creds *signer,
		    const struct kh_secret *credential, int64_t deadline,
		    struct sts_creds *out, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	struct kh_secret *body = NULL;
	struct kh_secret *keypair = NULL;
	struct kh_secret *token_header = NULL;
	struct kh_http_response resp = { 0 };
	struct aws_error e;
	const char *headers[3] = {
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8",
		NULL, NULL
	};
	char what[64];
	char url[CONF_URL_MAX];
	struct kh_http_request req = {
		.method = "POST",
		.url = url,
		.headers = headers,
		.options = &st->http,
		.deadline = deadline,
		.retry = true,
	};
	int r;

	(void)snprintf(what, sizeof(what), "sts %s", action);
	r = conf_format_url(host, err, url, "%s/", st->sts_url);
	if (r == 0)
		r = form_build(host, fields, count, &body);
	if (r == 0 && signer)
		r = signing_material(host, signer, &keypair, &token_header, err);
	if (r < 0)
		goto out;
	if (token_header)
		headers[1] = (const char *)token_header->data;
	req.body = body->data;
	req.body_len = body->len;
	if (signer) {
		req.aws_sigv4 = st->sts_sigv4;
		req.aws_keypair = (const char *)keypair->data;
	}

	r = aws_send(st, &req, true, what, &resp, &e, err);
	if (r < 0)
		goto out;
	if (resp.status < 200 || resp.status >= 300) {
		r = aws_fail(st, err, what, url, &resp, &e, credential);
		goto out;
	}
	r = sts_parse_credentials(host, action, (const char *)resp.body->data,
				  resp.body->len, out);
	if (r == -EBADMSG)
		r = reply_bad(host, err, what, url, "did not return exactly "
			      "one valid set of Credentials");
out:
	host->http_response_clear(&resp);
	host->secret_free(body);
	host->secret_free(keypair);
	host->secret_free(token_header);
	return r;
}

static int web_identity(const struct aws_state *st,
			const struct kh_fetch_ctx *ctx, const char *policy,
			const char *name, struct sts_creds *out,
			json_t *report, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	struct kh_secret *jwt = NULL;
	char result[CONF_ID_MAX + 64];
	int r;

	r = host->federation_jwt(host, st->audience, ctx, &jwt, err);
	if (r < 0)
		return r;
	(void)snprintf(result, sizeof(result), "signed for audience %s",
		       st->audience);
	r = reply_report(report, "federation token", result);
	if (r == 0) {
		const struct form_field fields[] = {
			{ "Action", "AssumeRoleWithWebIdentity", 25 },
			{ "Version", STS_VERSION, strlen(STS_VERSION) },
			{ "RoleArn", st->role_arn, strlen(st->role_arn) },
			{ "RoleSessionName", name, strlen(name) },
			{ "WebIdentityToken", (const char *)jwt->data,
			  jwt->len },
			{ "DurationSeconds", AWS_DURATION_SECONDS,
			  strlen(AWS_DURATION_SECONDS) },
			{ "Policy", policy, strlen(policy) },
		};

		r = sts_call(st, "AssumeRoleWithWebIdentity", fields,
			     CONF_COUNT(fields), NULL, jwt, ctx->deadline, out,
			     err);
	}
	host->secret_free(jwt);
	return r;
}

/* ---- ambient credentials: environment or IMDSv2 ---- */

static int copy_env(const struct kh_backend_host *host, const char *value,
		    struct kh_secret **out)
{
	return reply_copy(host, value, strlen(value), out);
}

/*
 * Reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
 * Returns 1 when they are set, 0 when AWS_ACCESS_KEY_ID is not.
 */
static int ambient_from_env(const struct kh_backend_host *host,
			    struct sts_creds *out, struct kh_err *err)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID");
	const char *key = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");
	int r;

	if (!id || !*id)
		return 0;
	if (!key || !*key) {
		host->err_set(err, "auth refused: AWS_ACCESS_KEY_ID is set "
				   "but AWS_SECRET_ACCESS_KEY is not");
		return KH_FETCH_AUTH_REFUSED;
	}
	r = copy_env(host, id, &out->access_key_id);
	if (r == 0)
		r = copy_env(host, key, &out->secret_access_key);
	if (r == 0 && token && *token)
		r = copy_env(host, token, &out->session_token);
	return r < 0 ? r : 1;
}

/* One request to the instance metadata service. */
static int imds_call(const struct aws_state *st, const char *method,
		     const char *path, const char *header, int64_t deadline,
		     struct kh_http_response *resp, const char *what,
		     struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	const char *headers[2] = { header, NULL };
	char url[CONF_URL_MAX];
	struct kh_http_request req = {
		.method = method,
		.url = url,
		.headers = headers,
		.body = strcmp(method, "PUT") == 0 ? "" : NULL,
		.body_len = 0,
		.options = &st->http,
		.deadline = deadline,
		.allow_plain_http = true,
		.retry = true,
	};
	int r;

	r = conf_format_url(host, err, url, "%s%s", st->imds_url, path);
	if (r == 0)
		r = host->http(&req, resp, err);
	if (r == 0 && (resp->status < 200 || resp->status >= 300))
		r = reply_fail(host, err, 0, resp, what, url, NULL);
	if (r == 0 && (!resp->body || resp->body->len == 0))
		r = reply_bad(host, err, what, url, "returned an empty body");
	return r;
}

/* Checks that a metadata reply is one line of [A-Za-z0-9] and extra. */
static bool imds_text_ok(const struct kh_secret *body, const char *extra,
			 size_t max)
{
	if (body->len == 0 || body->len > max)
		return false;
	for (size_t i = 0; i < body->len; i++) {
		char c = (char)body->data[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || (c && strchr(extra, c))))
			return false;
	}
	return true;
}

/* Takes the instance credentials document's members into out. */
static int imds_parse_creds(const struct kh_backend_host *host,
			    const struct kh_http_response *resp,
			    struct sts_creds *out)
{
	json_t *doc = reply_json(resp);
	const char *code = json_string_value(json_object_get(doc, "Code"));
	const char *expiry = json_string_value(json_object_get(doc,
							       "Expiration"));
	int r = -EBADMSG;

	if (!json_is_object(doc) || !code || strcmp(code, "Success") != 0)
		goto out;
	if (reply_take_string(host, doc, "AccessKeyId",
			      &out->access_key_id) < 0 ||
	    reply_take_string(host, doc, "SecretAccessKey",
			      &out->secret_access_key) < 0 ||
	    reply_take_string(host, doc, "Token", &out->session_token) < 0)
		goto out;
	(void)snprintf(out->expiration, sizeof(out->expiration), "%s",
		       expiry ? expiry : "");
	r = 0;
out:
	reply_free(host, doc);
	if (r < 0)
		sts_creds_clear(host, out);
	return r;
}

/*
 * IMDSv2: a session token from PUT /latest/api/token, then the role
 * name and that role's credentials, each GET carrying the token.
 */
static int ambient_from_imds(const struct aws_state *st, int64_t deadline,
			     struct sts_creds *out, char *role,
			     size_t role_size, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	static const char role_path[] =
		"/latest/meta-data/iam/security-credentials/";
	struct kh_http_response resp = { 0 };
	struct kh_secret *token_header = NULL;
	char path[sizeof(role_path) + 130];
	int r;

	r = imds_call(st, "PUT", "/latest/api/token",
		      "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL,
		      deadline, &resp, "IMDSv2 token", err);
	if (r == 0 && !imds_text_ok(resp.body, "+/=_-", 1024))
		r = reply_bad(host, err, "IMDSv2 token", st->imds_url,
			      "is not a token");
	if (r == 0)
		r = reply_header(host, "X-aws-ec2-metadata-token: ", resp.body,
				 &token_header, err);
	host->http_response_clear(&resp);
	if (r < 0)
		return r;

	r = imds_call(st, "GET", role_path, (const char *)token_header->data,
		      deadline, &resp, "IMDSv2 role", err);
	/* Only the first line names the role attached to the instance. */
	if (r == 0) {
		size_t line = strcspn((const char *)resp.body->data, "\n");

		resp.body->len = line;
		if (!imds_text_ok(resp.body, SESSION_NAME_CHARS, 128))
			r = reply_bad(host, err, "IMDSv2 role", st->imds_url,
				      "is not an IAM role name");
		else
			(void)snprintf(role, role_size, "%.*s", (int)line,
				       (const char *)resp.body->data);
	}
	host->http_response_clear(&resp);

	if (r == 0) {
		(void)snprintf(path, sizeof(path), "%s%s", role_path, role);
		r = imds_call(st, "GET", path,
			      (const char *)token_header->data, deadline,
			      &resp, "IMDSv2 credentials", err);
	}
	if (r == 0 && imds_parse_creds(host, &resp, out) < 0)
		r = reply_bad(host, err, "IMDSv2 credentials", st->imds_url,
			      "is not a Success document with AccessKeyId, "
			      "SecretAccessKey and Token");
	host->http_response_clear(&resp);
	host->secret_free(token_header);
	return r;
}

static int ambient_credentials(const struct aws_state *st, int64_t deadline,
			       struct sts_creds *out, json_t *report,
			       struct kh_err *err)
{
	char role[130] = "";
	char result[CONF_URL_MAX + 200];
	int r;

	memset(out, 0, sizeof(*out));
	r = ambient_from_env(st->host, out, err);
	if (r > 0)
		return reply_report(report, "ambient credentials",
				    "from the environment (AWS_ACCESS_KEY_ID)");
	if (r == 0)
		r = ambient_from_imds(st, deadline, out, role, sizeof(role),
				      err);
	if (r < 0) {
		sts_creds_clear(st->host, out);
		return r;
	}
	(void)snprintf(result, sizeof(result),
		       "from IMDSv2 at %s, instance role %s", st->imds_url,
		       role);
	return reply_report(report, "ambient credentials", result);
}

static int assume_role(const struct aws_state *st,
		       const struct kh_fetch_ctx *ctx, const char *policy,
		       const char *name, struct sts_creds *out, json_t *report,
		       struct kh_err *err)
{
	struct sts_creds ambient = { 0 };
	const struct form_field fields[] = {
		{ "Action", "AssumeRole", 10 },
		{ "Version", STS_VERSION, strlen(STS_VERSION) },
		{ "RoleArn", st->role_arn, strlen(st->role_arn) },
		{ "RoleSessionName", name, strlen(name) },
		{ "ExternalId", st->external_id, strlen(st->external_id) },
		{ "DurationSeconds", AWS_DURATION_SECONDS,
		  strlen(AWS_DURATION_SECONDS) },
		{ "Policy", policy, strlen(policy) },
	};
	int r;

	r = ambient_credentials(st, ctx->deadline, &ambient, report, err);
	if (r == 0)
		r = sts_call(st, "AssumeRole", fields, CONF_COUNT(fields),
			     &ambient, ambient.secret_access_key,
			     ctx->deadline, out, err);
	sts_creds_clear(st->host, &ambient);
	return r;
}

/* Gets temporary credentials limited to policy, reporting each step. */
static int temporary_credentials(const struct aws_state *st,
				 const struct kh_fetch_ctx *ctx,
				 const char *policy, struct sts_creds *out,
				 json_t *report, struct kh_err *err)
{
	char name[SESSION_NAME_MAX + 1];
	char check[CONF_URL_MAX + 64];
	char result[512];
	int r;

	memset(out, 0, sizeof(*out));
	session_name(ctx, name);
	if (st->mode == MODE_WEB_IDENTITY)
		r = web_identity(st, ctx, policy, name, out, report, err);
	else
		r = assume_role(st, ctx, policy, name, out, report, err);
	if (r < 0)
		return r;

	(void)snprintf(check, sizeof(check), "sts %s at %s",
		       st->mode == MODE_WEB_IDENTITY
			       ? "AssumeRoleWithWebIdentity"
			       : "AssumeRole",
		       st->sts_url);
	(void)snprintf(result, sizeof(result),
		       "temporary credentials for %.200s, session %s, "
		       "expiring %s", st->role_arn, name, out->expiration);
	return reply_report(report, check, result);
}

/* ---- Secrets Manager ---- */

/* Decodes SecretBinary (standard base64 with padding) into a secret. */
static int decode_binary(const struct kh_backend_host *host,
			 const json_t *value, struct kh_secret **out)
{
	size_t text_len = json_string_length(value);
	size_t bin_len = 0;
	int r;

	r = host->secret_new(text_len / 4 * 3 + 3, out);
	if (r < 0)
		return r;
	if (sodium_base642bin((*out)->data, text_len / 4 * 3 + 3,
			      json_string_value(value), text_len, NULL,
			      &bin_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		host->secret_free(*out);
		*out = NULL;
		return -EBADMSG;
	}
	(*out)->len = bin_len;
	return 0;
}

/* Takes SecretString or SecretBinary, whichever the reply has. */
static int take_secret_value(const struct kh_backend_host *host,
			     const struct kh_http_response *resp,
			     struct kh_secret **out)
{
	json_t *doc = reply_json(resp);
	const json_t *text = json_object_get(doc, "SecretString");
	const json_t *binary = json_object_get(doc, "SecretBinary");
	int r = -EBADMSG;

	if (json_is_string(text) && !binary)
		r = reply_copy(host, json_string_value(text),
			       json_string_length(text), out);
	else if (json_is_string(binary) && !text)
		r = decode_binary(host, binary, out);
	reply_free(host, doc);
	return r;
}

static int get_secret_value(const struct aws_state *st,
			    const struct aws_secret *sec,
			    const struct sts_creds *temp, int64_t deadline,
			    struct kh_secret **out, struct kh_err *err)
{
	const struct kh_backend_host *host = st->host;
	static const char what[] = "secretsmanager GetSecretValue";
	struct kh_secret *keypair = NULL;
	struct kh_secret *token_header = NULL;
	struct kh_http_response resp = { 0 };
	struct aws_error e;
	const char *headers[4] = {
		"Content-Type: application/x-amz-json-1.1",
		"X-Amz-Target: secretsmanager.GetSecretValue", NULL, NULL
	};
	char url[CONF_URL_MAX];
	json_t *body_doc = json_pack("{s:s}", "SecretId", sec->arn);
	char *body = body_doc ? json_dumps(body_doc, JSON_COMPACT) : NULL;
	struct kh_http_request req = {
		.method = "POST",
		.url = url,
		.headers = headers,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.aws_sigv4 = st->sm_sigv4,
		.options = &st->http,
		.deadline = deadline,
		.retry = true,
	};
	int r = body ? 0 : -ENOMEM;

	if (r == 0)
		r = conf_format_url(host, err, url, "%s/", st->sm_url);
	if (r == 0)
		r = signing_material(host, temp, &keypair, &token_header, err);
	if (r < 0)
		goto out;
	headers[2] = token_header ? (const char *)token_header->data : NULL;
	req.aws_keypair = (const char *)keypair->data;

	r = aws_send(st, &req, false, what, &resp, &e, err);
	if (r == 0 && (resp.status < 200 || resp.status >= 300))
		r = aws_fail(st, err, what, url, &resp, &e, NULL);
	else if (r == 0 && take_secret_value(host, &resp, out) < 0)
		r = reply_bad(host, err, what, url, "has neither a string "
			      "SecretString nor a base64 SecretBinary");
out:
	host->http_response_clear(&resp);
	host->secret_free(keypair);
	host->secret_free(token_header);
	free(body);
	json_decref(body_doc);
	return r;
}

/* Formats temp as an AWS shared credentials file, in sodium_malloc memory. */
static int credentials_file(const struct kh_backend_host *host,
			    const struct sts_creds *temp,
			    struct kh_secret **out)
{
	static const char fmt[] = "[default]\n"
				  "aws_access_key_id=%s\n"
				  "aws_secret_access_key=%s\n"
				  "aws_session_token=%s\n";
	size_t need = sizeof(fmt) + temp->access_key_id->len +
		      temp->secret_access_key->len +
		      temp->session_token->len;
	int n;
	int r;

	r = host->secret_new(need, out);
	if (r < 0)
		return r;
	n = snprintf((char *)(*out)->data, need, fmt,
		     (const char *)temp->access_key_id->data,
		     (const char *)temp->secret_access_key->data,
		     (const char *)temp->session_token->data);
	if (n < 0 || (size_t)n >= need) {
		host->secret_free(*out);
		*out = NULL;
		return -EOVERFLOW;
	}
	(*out)->len = (size_t)n;
	return 0;
}

static const struct aws_secret *find_secret(const struct aws_state *st,
					    const char *name)
{
	for (size_t i = 0; i < st->count; i++) {
		if (strcmp(st->secrets[i].name, name) == 0)
			return &st->secrets[i];
	}
	return NULL;
}

static int aws_fetch(void *state, const char *name,
		     const struct kh_fetch_ctx *ctx, struct kh_secret **out,
		     struct kh_err *err)
{
	const struct aws_state *st = state;
	const struct kh_backend_host *host = st->host;
	const struct aws_secret *sec = find_secret(st, name);
	bool as_file = !sec && st->kind == KIND_AWS_CREDENTIALS &&
		       strcmp(name, "credentials") == 0;
	struct kh_fetch_ctx none = { 0 };
	struct sts_creds temp = { 0 };
	char *policy;
	int r;

	*out = NULL;
	if (!sec && !as_file) {
		host->err_set(err, "not found: backend %s lists no secret "
				   "named \"%.128s\" in secret_arns",
			      host->backend_name, name);
		return KH_FETCH_NOT_FOUND;
	}
	policy = session_policy(st, sec);
	if (!policy)
		return -ENOMEM;

	r = temporary_credentials(st, ctx ? ctx : &none, policy, &temp, NULL,
				  err);
	if (r == 0 && as_file)
		r = credentials_file(host, &temp, out);
	else if (r == 0)
		r = get_secret_value(st, sec, &temp, ctx ? ctx->deadline : 0,
				     out, err);
	sts_creds_clear(host, &temp);
	free(policy);
	return r;
}

static int aws_test(void *state, json_t *report, struct kh_err *err)
{
	const struct aws_state *st = state;
	struct kh_fetch_ctx ctx = { .jti = NULL };
	struct sts_creds temp = { 0 };
	char *policy = session_policy(st, NULL);
	int r;

	if (!policy)
		return -ENOMEM;
	ctx.deadline = (int64_t)time(NULL) + TEST_SECONDS;
	r = temporary_credentials(st, &ctx, policy, &temp, report, err);
	if (r == 0)
		r = reply_report(report, "secrets manager",
				 "not contacted: the test fetches no secret");
	sts_creds_clear(st->host, &temp);
	free(policy);
	return r;
}

const struct kh_backend_module kh_backend_module = {
	.abi_version = KH_BACKEND_ABI_VERSION,
	.type = "aws",
	.flags = 0,
	.configure = aws_configure,
	.list = aws_list,
	.fetch = aws_fetch,
	.test = aws_test,
	.describe = aws_describe,
	.permit_ended = NULL,
	.teardown = aws_teardown,
};
