/*
 * HTTP for backend modules through libcurl, with one set of hygiene
 * rules (see keyhole/http.h): TLS always verified, no redirects, connect
 * and total timeouts, a capped response body in sodium_malloc memory,
 * and bounded retries with backoff that stay inside the deadline.
 *
 * Each call uses its own easy handle, so calls from several threads
 * never share curl state. Messages name the method, the URL without its
 * query string and the status, never a header or body.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "keyhole/http.h"
#include "keyhole/keyhole.h"

/* First backoff delay and the largest Retry-After honoured, in ms. */
#define BACKOFF_BASE_MS 200
#define RETRY_AFTER_MAX_MS 5000

/* Initial size of a response body buffer; it doubles up to the cap. */
#define BODY_INITIAL 16384

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void init_curl(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A response body being received, in sodium_malloc memory. */
struct body {
	struct kh_secret *buf; /* capacity buf->len, plus one for the NUL */
	size_t used;
	bool over_cap;
};

/* One call: the request, its printable URL and the handle's pieces. */
struct call {
	const struct kh_http_request *req;
	char url_shown[256];     /* scheme://host/path, without the query */
	struct curl_slist *headers;
	char curl_error[CURL_ERROR_SIZE];
	struct body body;
	long connect_ms;
	long total_ms;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before req's deadline, or INT64_MAX without one. */
static int64_t time_left_ms(const struct kh_http_request *req)
{
	if (req->deadline <= 0)
		return INT64_MAX;
	return req->deadline * 1000 - now_ms();
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Allocates a secret of cap bytes plus a NUL. kh_secret_new cannot,
 * because a body of KH_HTTP_BODY_MAX plus the NUL is over KH_SECRET_MAX;
 * kh_secret_free frees it like any other.
 */
static struct kh_secret *body_alloc(size_t cap)
{
	struct kh_secret *secret = calloc(1, sizeof(*secret));

	if (!secret)
		return NULL;
	secret->data = sodium_malloc(cap + 1);
	if (!secret->data) {
		free(secret);
		return NULL;
	}
	secret->len = cap;
	return secret;
}

/* Grows the body buffer to hold need bytes plus a NUL. */
static int body_reserve(struct body *body, size_t need)
{
	struct kh_secret *bigger;
	size_t cap = body->buf ? body->buf->len : 0;

	if (body->buf && need <= cap)
		return 0;
	if (cap == 0)
		cap = BODY_INITIAL;
	while (cap < need)
		cap *= 2;
	if (cap > KH_HTTP_BODY_MAX)
		cap = KH_HTTP_BODY_MAX;
	bigger = body_alloc(cap);
	if (!bigger)
		return -ENOMEM;
	if (body->buf && body->used)
		memcpy(bigger->data, body->buf->data, body->used);
	kh_secret_free(body->buf);
	body->buf = bigger;
	return 0;
}

static void body_clear(struct body *body)
{
	kh_secret_free(body->buf);
	memset(body, 0, sizeof(*body));
}

/* CURLOPT_WRITEFUNCTION: a short count makes curl abort the transfer. */
static size_t write_body(char *data, size_t size, size_t count, void *opaque)
{
	struct body *body = opaque;
	size_t n = size * count;

	if (n > KH_HTTP_BODY_MAX - body->used) {
		body->over_cap = true;
		return 0;
	}
	if (body_reserve(body, body->used + n) < 0)
		return 0;
	memcpy(body->buf->data + body->used, data, n);
	body->used += n;
	return n;
}

/* Copies the URL up to its query or fragment, for messages. */
static void describe_url(const char *url, char *out, size_t size)
{
	size_t len = strcspn(url, "?#");

	if (len >= size)
		len = size - 1;
	memcpy(out, url, len);
	out[len] = '\0';
}

static int check_request(const struct kh_http_request *req,
			 struct kh_err *err)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "DELETE" };
	bool known = false;
	size_t count = 0;

	if (!req->method || !req->url) {
		kh_err_set(err, "HTTP request without a method or URL");
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		known = known || strcmp(req->method, methods[i]) == 0;
	if (!known) {
		kh_err_set(err, "HTTP method \"%.16s\" is not supported; use "
				"GET, POST, PUT or DELETE", req->method);
		return -EINVAL;
	}
	if (strncmp(req->url, "https://", 8) != 0 &&
	    !(req->allow_plain_http && strncmp(req->url, "http://", 7) == 0)) {
		char shown[129];

		describe_url(req->url, shown, sizeof(shown));
		kh_err_set(err, "URL %s is not https://; keyhole sends backend "
				"requests only over TLS", shown);
		return -EINVAL;
	}
	while (req->headers && req->headers[count])
		count++;
	if (count > KH_HTTP_MAX_HEADERS) {
		kh_err_set(err, "HTTP request has %zu headers, more than %d",
			   count, KH_HTTP_MAX_HEADERS);
		return -EINVAL;
	}
	return 0;
}

/* Wipes keyhole's copies of the header lines, which may hold tokens. */
static void free_headers(struct curl_slist *headers)
{
	for (struct curl_slist *h = headers; h; h = h->next)
		sodium_memzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

static int build_headers(struct call *call)
{
	const char *const *line = call->req->headers;
	struct curl_slist *next;

	/*
	 * No "Expect: 100-continue" round trip before a POST body. Not for
	 * SigV4: curl 7.88 signs every header in this list, so an empty
	 * "Expect:" that is never sent would break the signature.
	 */
	if (!call->req->aws_sigv4) {
		call->headers = curl_slist_append(NULL, "Expect:");
		if (!call->headers)
			return -ENOMEM;
	}
	for (; line && *line; line++) {
		next = curl_slist_append(call->headers, *line);
		if (!next)
			return -ENOMEM;
		call->headers = next;
	}
	return 0;
}

static long option_or(long value, long fallback)
{
	return value > 0 ? value : fallback;
}

/* Sets what every attempt shares: URL, TLS, protocols, method, body. */
static CURLcode set_common(CURL *curl, struct call *call)
{
	const struct kh_http_request *req = call->req;
	const struct kh_http_options *opts = req->options;
	CURLcode c = CURLE_OK;

#define SET(opt, val)                                                    \
	do {                                                             \
		if (c == CURLE_OK)                                       \
			c = curl_easy_setopt(curl, opt, val);            \
	} while (0)
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_PROTOCOLS_STR, req->allow_plain_http ? "http,https" :
							   "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (opts && opts->ca_file)
		SET(CURLOPT_CAINFO, opts->ca_file);
	/*
	 * An empty CURLOPT_PROXY and CURLOPT_NOPROXY make curl ignore the
	 * daemon's proxy environment: only the backend config picks a
	 * proxy. IMDS, the one plain-HTTP peer, is link-local and must never
	 * be reached through a proxy, which would return the proxy host's
	 * own instance credentials.
	 */
	SET(CURLOPT_PROXY, opts && opts->proxy && !req->allow_plain_http ?
				   opts->proxy : "");
	SET(CURLOPT_NOPROXY, "");
	if (opts && opts->proxy && opts->ca_file)
		SET(CURLOPT_PROXY_CAINFO, opts->ca_file);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_USERAGENT, "keyhole/" KH_VERSION);
	SET(CURLOPT_HTTPHEADER, call->headers);
	SET(CURLOPT_ERRORBUFFER, call->curl_error);
	SET(CURLOPT_WRITEFUNCTION, write_body);
	SET(CURLOPT_WRITEDATA, &call->body);
	if (strcmp(req->method, "POST") == 0)
		SET(CURLOPT_POST, 1L);
	else if (strcmp(req->method, "GET") != 0)
		SET(CURLOPT_CUSTOMREQUEST, req->method);
	if (req->body || strcmp(req->method, "POST") == 0) {
		/* POSTFIELDS is not copied: curl reads the caller's buffer. */
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
	}
	if (req->aws_sigv4 && req->aws_keypair) {
		SET(CURLOPT_AWS_SIGV4, req->aws_sigv4);
		SET(CURLOPT_USERPWD, req->aws_keypair);
	}
#undef SET
	return c;
}

/* Maps a curl failure of one attempt to a KH_FETCH_* value. */
static int transport_error(CURLcode c, const struct body *body)
{
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		return KH_FETCH_TIMED_OUT;
	case CURLE_WRITE_ERROR:
		return body->over_cap ? KH_FETCH_BAD_RESPONSE : -ENOMEM;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_USE_SSL_FAILED:
		return KH_FETCH_TLS_FAILURE;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return KH_FETCH_UNREACHABLE;
	}
}

int kh_http_status_error(long status)
{
	if (status >= 200 && status < 300)
		return 0;
	if (status == 401 || status == 403)
		return KH_FETCH_AUTH_REFUSED;
	if (status == 404)
		return KH_FETCH_NOT_FOUND;
	if (status == 429)
		return KH_FETCH_THROTTLED;
	if (status >= 500 && status < 600)
		return KH_FETCH_SERVER_ERROR;
	return KH_FETCH_BAD_RESPONSE;
}

static bool status_is_retryable(long status)
{
	return status == 429 || (status >= 500 && status < 600);
}

/* Result of one attempt: a status, or a transport error. */
struct attempt {
	int error;          /* 0 or a KH_FETCH_* / -errno value */
	long status;
	bool redirect;      /* a 3xx, which is never followed */
	int64_t retry_after_ms;
};

/* Runs one attempt with timeouts cut to the time left. */
static void perform_once(CURL *curl, struct call *call, int64_t left_ms,
			 struct attempt *out)
{
	long total = call->total_ms;
	long connect = call->connect_ms;
	curl_off_t retry_after = 0;
	CURLcode c;

	memset(out, 0, sizeof(*out));
	if (left_ms < total)
		total = (long)left_ms;
	if (connect > total)
		connect = total;
	body_clear(&call->body);
	call->curl_error[0] = '\0';
	c = curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total);
	if (c == CURLE_OK)
		c = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect);
	if (c == CURLE_OK)
		c = curl_easy_perform(curl);
	if (c != CURLE_OK) {
		out->error = transport_error(c, &call->body);
		return;
	}
	(void)curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
	if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after) ==
		    CURLE_OK && retry_after > 0)
		out->retry_after_ms = (int64_t)retry_after * 1000;
	if (out->status >= 300 && out->status < 400) {
		out->redirect = true;
		out->error = KH_FETCH_BAD_RESPONSE;
	}
}

/*
 * Returns the pause before attempt number next (2 or 3): exponential
 * backoff with full jitter added, or a small Retry-After when longer.
 */
static int64_t backoff_ms(unsigned next, int64_t retry_after_ms)
{
	uint32_t base = BACKOFF_BASE_MS << (next - 2);
	int64_t pause = base + randombytes_uniform(base);

	if (retry_after_ms > pause && retry_after_ms <= RETRY_AFTER_MAX_MS)
		pause = retry_after_ms;
	return pause;
}

static bool attempt_is_retryable(const struct attempt *a)
{
	if (a->error == KH_FETCH_TIMED_OUT)
		return true;
	return a->error == 0 && status_is_retryable(a->status);
}

/* Formats the failure of the last attempt into err. */
static void report_failure(const struct call *call, const struct attempt *a,
			   unsigned attempts, struct kh_err *err)
{
	const char *method = call->req->method;
	const char *plural = attempts == 1 ? "" : "s";

	if (call->body.over_cap) {
		kh_err_set(err, "%s: %s %s sent a body over %d bytes",
			   kh_backend_reason(a->error), method, call->url_shown,
			   KH_HTTP_BODY_MAX);
	} else if (a->redirect) {
		kh_err_set(err, "%s: %s %s returned %ld, a redirect, which "
				"keyhole does not follow",
			   kh_backend_reason(a->error), method, call->url_shown,
			   a->status);
	} else if (a->error == 0) {
		kh_err_set(err, "%s: %s %s returned %ld after %u attempt%s",
			   kh_backend_reason(kh_http_status_error(a->status)),
			   method, call->url_shown, a->status, attempts, plural);
	} else {
		kh_err_set(err, "%s: %s %s failed after %u attempt%s: %s",
			   kh_backend_reason(a->error), method, call->url_shown,
			   attempts, plural,
			   call->curl_error[0] ? call->curl_error :
						 strerror(-a->error));
	}
}

/*
 * Runs attempts until one succeeds, fails for good, or the next pause
 * would end past the deadline. Returns 0 with the last attempt in *last
 * when the server sent a final status.
 */
static int run_attempts(CURL *curl, struct call *call, struct attempt *last,
			unsigned *attempts)
{
	const struct kh_http_request *req = call->req;
	unsigned max = req->retry ? KH_HTTP_MAX_ATTEMPTS : 1;
	int64_t left, pause;

	for (*attempts = 1;; (*attempts)++) {
		left = time_left_ms(req);
		if (left <= 0) {
			memset(last, 0, sizeof(*last));
			last->error = KH_FETCH_TIMED_OUT;
			(void)snprintf(call->curl_error,
				       sizeof(call->curl_error),
				       "the deadline passed");
			return last->error;
		}
		perform_once(curl, call, left, last);
		if (*attempts >= max || !attempt_is_retryable(last))
			break;

		pause = backoff_ms(*attempts + 1, last->retry_after_ms);

		if (pause >= time_left_ms(req))
			break;
		sleep_ms(pause);
	}
	if (last->error)
		return last->error;
	if (status_is_retryable(last->status))
		return kh_http_status_error(last->status);
	return 0;
}

static void fill_response(CURL *curl, struct call *call, unsigned attempts,
			  long status, struct kh_http_response *resp)
{
	const char *type = NULL;

	resp->status = status;
	resp->attempts = attempts;
	if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type) ==
		    CURLE_OK && type)
		(void)snprintf(resp->content_type, sizeof(resp->content_type),
			       "%s", type);
	if (!call->body.buf && body_reserve(&call->body, 0) < 0)
		return;
	call->body.buf->data[call->body.used] = '\0';
	call->body.buf->len = call->body.used;
	resp->body = call->body.buf;
	call->body.buf = NULL;
}

static int start_call(struct call *call, const struct kh_http_request *req,
		      CURL **curl, struct kh_err *err)
{
	const struct kh_http_options *opts = req->options;
	int r;

	call->req = req;
	describe_url(req->url, call->url_shown, sizeof(call->url_shown));
	call->connect_ms = option_or(opts ? opts->connect_timeout_ms : 0,
				     KH_HTTP_CONNECT_TIMEOUT_MS);
	call->total_ms = option_or(opts ? opts->total_timeout_ms : 0,
				   KH_HTTP_TOTAL_TIMEOUT_MS);
	(void)pthread_once(&curl_once, init_curl);
	if (curl_init_result != CURLE_OK || sodium_init() < 0) {
		kh_err_set(err, "cannot initialise libcurl or libsodium");
		return -EIO;
	}
	r = build_headers(call);
	if (r < 0)
		return r;
	*curl = curl_easy_init();
	if (!*curl)
		return -ENOMEM;
	if (set_common(*curl, call) != CURLE_OK) {
		kh_err_set(err, "cannot set up the request to %s: %s",
			   call->url_shown, curl_easy_strerror(CURLE_FAILED_INIT));
		return -EIO;
	}
	return 0;
}

int kh_http_perform(const struct kh_http_request *req,
		    struct kh_http_response *resp, struct kh_err *err)
{
	struct call call;
	struct attempt last = { 0 };
	unsigned attempts = 0;
	CURL *curl = NULL;
	int r;

	if (!req || !resp)
		return -EINVAL;
	memset(resp, 0, sizeof(*resp));
	memset(&call, 0, sizeof(call));
	r = check_request(req, err);
	if (r == 0)
		r = start_call(&call, req, &curl, err);
	if (r < 0)
		goto out;

	r = run_attempts(curl, &call, &last, &attempts);
	if (r < 0)
		report_failure(&call, &last, attempts, err);
	if (last.status > 0)
		fill_response(curl, &call, attempts, last.status, resp);
	resp->attempts = attempts;
out:
	if (curl)
		curl_easy_cleanup(curl);
	free_headers(call.headers);
	body_clear(&call.body);
	return r;
}

void kh_http_response_clear(struct kh_http_response *resp)
{
	if (!resp)
		return;
	kh_secret_free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

/* Reads conf[key] as whole seconds in 1..60 into *ms, if present. */
static int parse_timeout(const json_t *conf, const char *key, long *ms,
			 struct kh_err *err)
{
	const json_t *value = json_object_get(conf, key);
	json_int_t seconds;

	if (!value)
		return 0;
	seconds = json_is_integer(value) ? json_integer_value(value) : 0;
	if (seconds < 1 || seconds > 60) {
		kh_err_set(err, "$.%s: expected whole seconds from 1 to 60",
			   key);
		return -EINVAL;
	}
	*ms = (long)seconds * 1000;
	return 0;
}

static int parse_ca_file(const json_t *conf, const char *base_dir,
			 char *ca_buf, size_t ca_size, struct kh_err *err)
{
	const json_t *value = json_object_get(conf, "ca_file");
	const char *path;
	int n;

	if (!value)
		return 0;
	path = json_string_value(value);
	if (!path || !path[0] || strlen(path) != json_string_length(value)) {
		kh_err_set(err, "$.ca_file: expected the path of a PEM file "
				"of CA certificates");
		return -EINVAL;
	}
	if (path[0] == '/' || !base_dir)
		n = snprintf(ca_buf, ca_size, "%s", path);
	else
		n = snprintf(ca_buf, ca_size, "%s/%s", base_dir, path);
	if (n < 0 || (size_t)n >= ca_size) {
		kh_err_set(err, "$.ca_file: path is too long");
		return -ENAMETOOLONG;
	}
	return 1;
}

/* Returns true when part of url is set (curl reports it as present). */
static bool url_has(CURLU *url, CURLUPart part)
{
	char *value = NULL;
	bool present = curl_url_get(url, part, &value, 0) == CURLUE_OK &&
		       value && value[0];

	curl_free(value);
	return present;
}

/*
 * Checks an http:// or https:// proxy URL with curl's own parser, so
 * that keyhole and curl read the same URL. User names and passwords are
 * rejected because keyhole.json contains no credentials.
 */
static bool proxy_url_ok(const char *text)
{
	CURLU *url = curl_url();
	char *scheme = NULL;
	char *path = NULL;
	bool ok;

	if (!url)
		return false;
	ok = curl_url_set(url, CURLUPART_URL, text, 0) == CURLUE_OK &&
	     curl_url_get(url, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	     (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
	     url_has(url, CURLUPART_HOST) && !url_has(url, CURLUPART_USER) &&
	     !url_has(url, CURLUPART_PASSWORD) &&
	     !url_has(url, CURLUPART_QUERY) &&
	     !url_has(url, CURLUPART_FRAGMENT) &&
	     curl_url_get(url, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
	     strcmp(path, "/") == 0;
	curl_free(scheme);
	curl_free(path);
	curl_url_cleanup(url);
	return ok;
}

static int parse_proxy(const json_t *conf, const char **proxy,
		       struct kh_err *err)
{
	const json_t *value = json_object_get(conf, "proxy");
	const char *text;

	if (!value)
		return 0;
	text = json_string_value(value);
	if (!text || strlen(text) != json_string_length(value) ||
	    strlen(text) > 1024 || strpbrk(text, " \t\r\n") ||
	    !proxy_url_ok(text)) {
		kh_err_set(err, "$.proxy: expected an http:// or https:// "
				"proxy URL such as \"http://proxy.example:3128\", "
				"without user name, password, path or query");
		return -EINVAL;
	}
	*proxy = text;
	return 0;
}

int kh_http_options_parse(const json_t *conf, const char *base_dir,
			  struct kh_http_options *opts, char *ca_buf,
			  size_t ca_size, struct kh_err *err)
{
	int r;

	if (!opts || !ca_buf || ca_size == 0)
		return -EINVAL;
	memset(opts, 0, sizeof(*opts));
	ca_buf[0] = '\0';
	r = parse_ca_file(conf, base_dir, ca_buf, ca_size, err);
	if (r < 0)
		return r;
	if (r > 0)
		opts->ca_file = ca_buf;
	r = parse_timeout(conf, "connect_timeout", &opts->connect_timeout_ms,
			  err);
	if (r == 0)
		r = parse_timeout(conf, "timeout", &opts->total_timeout_ms, err);
	if (r == 0)
		r = parse_proxy(conf, &opts->proxy, err);
	return r;
}
