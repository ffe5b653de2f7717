/*
 * HTTP for backends, through libcurl, with one set of hygiene rules.
 * TLS verification is always on (with an optional CA file), redirects
 * are not followed, connect and total timeouts apply, and response
 * bodies are capped at KH_HTTP_BODY_MAX. A request makes at most
 * KH_HTTP_MAX_ATTEMPTS attempts, retried with exponential backoff and
 * jitter on 429, 5xx and timeouts, and never past the caller's
 * deadline. Response bodies land in sodium_malloc memory. keyhole wipes
 * its own copies of the request headers after the call; the body stays
 * the caller's to wipe.
 */
#ifndef KEYHOLE_HTTP_H
#define KEYHOLE_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyhole/backend.h"
#include "keyhole/error.h"

#define KH_HTTP_BODY_MAX (1024 * 1024)
#define KH_HTTP_MAX_ATTEMPTS 3
#define KH_HTTP_CONNECT_TIMEOUT_MS 5000
#define KH_HTTP_TOTAL_TIMEOUT_MS 10000
#define KH_HTTP_MAX_HEADERS 16

/* TLS and timeout settings a backend reads from its config. */
struct kh_http_options {
	const char *ca_file;      /* NULL: the system CA store */
	long connect_timeout_ms;  /* 0: KH_HTTP_CONNECT_TIMEOUT_MS */
	long total_timeout_ms;    /* per attempt; 0: KH_HTTP_TOTAL_TIMEOUT_MS */
	/*
	 * http:// or https:// proxy URL, or NULL for direct connections.
	 * The proxy environment variables (http_proxy, HTTPS_PROXY,
	 * ALL_PROXY, NO_PROXY) are ignored either way, and plain-HTTP
	 * requests (IMDS) never go through a proxy.
	 */
	const char *proxy;
};

struct kh_http_request {
	const char *method;       /* "GET", "POST", "PUT" or "DELETE" */
	const char *url;          /* https:// unless allow_plain_http */
	/* "Name: value" lines; NULL-terminated, at most KH_HTTP_MAX_HEADERS. */
	const char *const *headers;
	const void *body;         /* may be NULL */
	size_t body_len;
	/*
	 * CURLOPT_AWS_SIGV4 provider string ("aws:amz:us-east-1:sts") and
	 * the "ACCESS_KEY_ID:SECRET_ACCESS_KEY" pair to sign with, or NULL.
	 */
	const char *aws_sigv4;
	const char *aws_keypair;
	const struct kh_http_options *options;
	int64_t deadline;         /* unix seconds; 0: no deadline beyond timeouts */
	/* Only for the EC2 instance metadata service, which is plain HTTP. */
	bool allow_plain_http;
	/* Retry 429, 5xx and timeouts (off for non-idempotent calls). */
	bool retry;
};

struct kh_http_response {
	long status;
	struct kh_secret *body;   /* sodium_malloc; NUL-terminated past len */
	char content_type[128];
	unsigned attempts;
};

/*
 * Performs req. Returns 0 when the server replied (any status, which
 * the caller interprets), or a KH_FETCH_* value: KH_FETCH_TIMED_OUT,
 * KH_FETCH_TLS_FAILURE (certificate or name not verified),
 * KH_FETCH_UNREACHABLE, KH_FETCH_BAD_RESPONSE (body over the cap, or a
 * 3xx that was not followed), KH_FETCH_THROTTLED or
 * KH_FETCH_SERVER_ERROR when the retries ran out on 429 or 5xx.
 */
int kh_http_perform(const struct kh_http_request *req,
		    struct kh_http_response *resp, struct kh_err *err)
	__attribute__((warn_unused_result));

/* Wipes and frees the body and clears resp. */
void kh_http_response_clear(struct kh_http_response *resp);

/*
 * Maps a final HTTP status to a KH_FETCH_* value: 401 and 403 to
 * AUTH_REFUSED, 404 to NOT_FOUND, 429 to THROTTLED, 5xx to SERVER_ERROR,
 * other non-2xx to BAD_RESPONSE, and 2xx to 0.
 */
int kh_http_status_error(long status);

/*
 * Parses a backend config's "ca_file", "connect_timeout" and "timeout"
 * members (seconds, 1 to 60) and "proxy" (an http:// or https:// URL
 * without user name, password, path or query), if present, into opts.
 * ca_file is resolved against base_dir into ca_buf; opts->proxy points
 * into conf and stays valid as long as conf does.
 */
int kh_http_options_parse(const json_t *conf, const char *base_dir,
			  struct kh_http_options *opts, char *ca_buf,
			  size_t ca_size, struct kh_err *err);

#endif
