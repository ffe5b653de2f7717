/*
 * The HTTP layer for backends. Without a mock it checks what needs no
 * peer: status mapping, option parsing and the requests it rejects
 * before connecting. tests/integration/http_hygiene.sh runs it again
 * against tests/mocks/http_mock.js (KH_TEST_MOCK_PORT, ..._WRONG_PORT
 * and KH_TEST_CA set) for the cases that need a TLS peer: statuses,
 * retries, timeouts, the body cap, redirects and certificate checks.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "keyhole/http.h"

/* ---- offline cases ---- */

static void test_status_mapping(void)
{
	static const struct {
		long status;
		int expected;
	} cases[] = {
		{ 200, 0 },
		{ 204, 0 },
		{ 301, KH_FETCH_BAD_RESPONSE },
		{ 400, KH_FETCH_BAD_RESPONSE },
		{ 401, KH_FETCH_AUTH_REFUSED },
		{ 403, KH_FETCH_AUTH_REFUSED },
		{ 404, KH_FETCH_NOT_FOUND },
		{ 429, KH_FETCH_THROTTLED },
		{ 500, KH_FETCH_SERVER_ERROR },
		{ 503, KH_FETCH_SERVER_ERROR },
		{ 0, KH_FETCH_BAD_RESPONSE },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(kh_http_status_error(cases[i].status),
			  cases[i].expected);
}

static void test_options_parse(void)
{
	static const struct {
		const char *conf;
		int expected;
		const char *message;
	} bad[] = {
		{ "{\"timeout\":0}", -EINVAL, "$.timeout: expected whole seconds" },
		{ "{\"timeout\":61}", -EINVAL, "$.timeout" },
		{ "{\"connect_timeout\":\"5\"}", -EINVAL, "$.connect_timeout" },
		{ "{\"ca_file\":\"\"}", -EINVAL, "$.ca_file" },
		{ "{\"ca_file\":7}", -EINVAL, "$.ca_file" },
		{ "{\"proxy\":7}", -EINVAL, "$.proxy: expected an http://" },
		{ "{\"proxy\":\"\"}", -EINVAL, "$.proxy" },
		{ "{\"proxy\":\"socks5://127.0.0.1:1080\"}", -EINVAL, "$.proxy" },
		{ "{\"proxy\":\"http://user:pw@proxy.test:3128\"}", -EINVAL,
		  "without user name, password" },
		{ "{\"proxy\":\"http://proxy.test:3128/path\"}", -EINVAL,
		  "$.proxy" },
		{ "{\"proxy\":\"http://proxy.test:3128/?a=b\"}", -EINVAL,
		  "$.proxy" },
		{ "{\"proxy\":\"http://proxy.test :3128\"}", -EINVAL, "$.proxy" },
		{ "{\"proxy\":\"proxy.test:3128\"}", -EINVAL, "$.proxy" },
	};
	struct kh_http_options opts;
	struct kh_err err = { "" };
	char ca[PATH_MAX];
	json_t *conf;

	conf = json_pack("{s:s, s:i, s:i}", "ca_file", "ca.pem",
			 "connect_timeout", 2, "timeout", 7);
	CHECK_INT(kh_http_options_parse(conf, "/etc/keyhole", &opts, ca,
					sizeof(ca), &err), 0);
	CHECK_STR(opts.ca_file, "/etc/keyhole/ca.pem");
	CHECK_INT(opts.connect_timeout_ms, 2000);
	CHECK_INT(opts.total_timeout_ms, 7000);
	json_decref(conf);

	conf = json_object();
	CHECK_INT(kh_http_options_parse(conf, "/x", &opts, ca, sizeof(ca),
					&err), 0);
	CHECK(opts.ca_file == NULL);
	CHECK(opts.proxy == NULL);
	CHECK_INT(opts.total_timeout_ms, 0);
	json_decref(conf);

	conf = json_pack("{s:s}", "proxy", "https://proxy.test:3128/");
	CHECK_INT(kh_http_options_parse(conf, "/x", &opts, ca, sizeof(ca),
					&err), 0);
	CHECK_STR(opts.proxy, "https://proxy.test:3128/");
	json_decref(conf);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		conf = json_loads(bad[i].conf, 0, NULL);
		kh_err_clear(&err);
		CHECK_INT(kh_http_options_parse(conf, "/x", &opts, ca,
						sizeof(ca), &err),
			  bad[i].expected);
		if (!strstr(err.msg, bad[i].message))
			kh_test_fail(__FILE__, __LINE__, "%s: err \"%s\"",
				     bad[i].conf, err.msg);
		json_decref(conf);
	}
}

/* Requests that must fail before any connection is made. */
static void test_rejected_requests(void)
{
	static const char *const many[KH_HTTP_MAX_HEADERS + 2] = {
		"A: 1", "A: 2", "A: 3", "A: 4", "A: 5", "A: 6", "A: 7", "A: 8",
		"A: 9", "A: 10", "A: 11", "A: 12", "A: 13", "A: 14", "A: 15",
		"A: 16", "A: 17", NULL,
	};
	static const struct {
		const char *method;
		const char *url;
		const char *const *headers;
		int64_t deadline;
		int expected;
		const char *message;
	} cases[] = {
		{ "GET", "http://127.0.0.1:1/x", NULL, 0, -EINVAL,
		  "is not https://" },
		{ "GET", "ftp://127.0.0.1:1/x", NULL, 0, -EINVAL,
		  "is not https://" },
		{ "PATCH", "https://127.0.0.1:1/x", NULL, 0, -EINVAL,
		  "HTTP method \"PATCH\" is not supported" },
		{ "GET", "https://127.0.0.1:1/x", many, 0, -EINVAL,
		  "has 17 headers, more than 16" },
		{ "GET", "https://127.0.0.1:1/x?token=abc", NULL, 1,
		  KH_FETCH_TIMED_OUT, "timed out: GET https://127.0.0.1:1/x " },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kh_http_request req = {
			.method = cases[i].method,
			.url = cases[i].url,
			.headers = cases[i].headers,
			.deadline = cases[i].deadline,
			.retry = true,
		};
		struct kh_http_response resp;
		struct kh_err err = { "" };
		int r = kh_http_perform(&req, &resp, &err);

		CHECK_INT(r, cases[i].expected);
		CHECK(resp.body == NULL);
		if (!strstr(err.msg, cases[i].message))
			kh_test_fail(__FILE__, __LINE__, "case %zu: err \"%s\"",
				     i, err.msg);
		/* The query string may carry a token: never in a message. */
		CHECK(strstr(err.msg, "token=") == NULL ||
		      cases[i].expected == -EINVAL);
		kh_http_response_clear(&resp);
	}
}

static const struct kh_test_case offline_cases[] = {
	{ "status mapping", test_status_mapping },
	{ "options parse", test_options_parse },
	{ "rejected requests", test_rejected_requests },
};

/* ---- cases against tests/mocks/http_mock.js ---- */

static const char *mock_port;
static const char *wrong_port;
static const char *ca_file;

struct call {
	const char *method;
	const char *path;
	const char *port;         /* NULL: mock_port */
	const char *const *headers;
	const char *body;
	const char *aws_sigv4;
	const char *aws_keypair;
	long total_timeout_ms;
	const char *proxy;
	int64_t deadline;
	bool retry;
	bool system_ca;           /* leave ca_file unset */
};

static int run(const struct call *c, struct kh_http_response *resp,
	       struct kh_err *err)
{
	struct kh_http_options opts = {
		.ca_file = c->system_ca ? NULL : ca_file,
		.total_timeout_ms = c->total_timeout_ms,
		.proxy = c->proxy,
	};
	char url[256];
	struct kh_http_request req = {
		.method = c->method,
		.url = url,
		.headers = c->headers,
		.body = c->body,
		.body_len = c->body ? strlen(c->body) : 0,
		.aws_sigv4 = c->aws_sigv4,
		.aws_keypair = c->aws_keypair,
		.options = &opts,
		.deadline = c->deadline,
		.retry = c->retry,
	};

	(void)snprintf(url, sizeof(url), "https://127.0.0.1:%s%s",
		       c->port ? c->port : mock_port, c->path);
	kh_err_clear(err);
	return kh_http_perform(&req, resp, err);
}

/* Sends a control request and returns the reply (new reference). */
static json_t *control(const char *method, const char *path,
		       const char *body)
{
	struct call c = { .method = method, .path = path, .body = body };
	struct kh_http_response resp;
	struct kh_err err = { "" };
	json_t *reply = NULL;

	if (run(&c, &resp, &err) != 0 || resp.status != 200)
		kh_test_fail(__FILE__, __LINE__, "control %s %s: %s", method,
			     path, err.msg);
	else
		reply = json_loadb((const char *)resp.body->data,
				   resp.body->len, 0, NULL);
	kh_http_response_clear(&resp);
	return reply;
}

static void reset_mock(void)
{
	json_decref(control("POST", "/_mock/reset", ""));
}

static void plan(const char *match, const char *steps)
{
	char body[256];

	(void)snprintf(body, sizeof(body), "{\"match\":\"%s\",\"steps\":%s}",
		       match, steps);
	json_decref(control("POST", "/_mock/plan", body));
}

/* Counts the requests the mock saw for path. */
static int seen(const char *path)
{
	json_t *log = control("GET", "/_mock/log", NULL);
	const json_t *entry;
	int count = 0;
	size_t i;

	json_array_foreach(log, i, entry) {
		const char *p = json_string_value(json_object_get(entry,
								  "path"));

		count += p && strcmp(p, path) == 0;
	}
	json_decref(log);
	return count;
}

static bool starts_with(const char *text, const char *prefix)
{
	return strncmp(text, prefix, strlen(prefix)) == 0;
}

static void test_ok(void)
{
	struct call c = { .method = "GET", .path = "/ok", .retry = true };
	struct kh_http_response resp;
	struct kh_err err = { "" };

	reset_mock();
	CHECK_INT(run(&c, &resp, &err), 0);
	CHECK_INT(resp.status, 200);
	CHECK_INT(resp.attempts, 1);
	CHECK_STR(resp.content_type, "application/json");
	CHECK(resp.body != NULL);
	if (resp.body) {
		CHECK_STR((const char *)resp.body->data, "{\"ok\":true}");
		CHECK_INT(resp.body->len, 11);
	}
	kh_http_response_clear(&resp);
}

/*
 * Proxy variables in keyholed's environment are ignored: each one points
 * at a closed loopback port, and the request still reaches the mock. A
 * proxy set in the options is used, so the same closed port fails it.
 */
static void test_proxy_environment_ignored(void)
{
	static const char *const names[] = {
		"http_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY",
		"all_proxy",
	};
	struct call c = { .method = "GET", .path = "/ok" };
	struct kh_http_response resp;
	struct kh_err err = { "" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK_INT(setenv(names[i], "http://127.0.0.1:1", 1), 0);
	CHECK_INT(setenv("NO_PROXY", "", 1), 0);
	reset_mock();
	CHECK_INT(run(&c, &resp, &err), 0);
	CHECK_INT(resp.status, 200);
	kh_http_response_clear(&resp);

	c.proxy = "http://127.0.0.1:1";
	CHECK_INT(run(&c, &resp, &err), KH_FETCH_UNREACHABLE);
	if (!strstr(err.msg, "unreachable: GET https://127.0.0.1:"))
		kh_test_fail(__FILE__, __LINE__, "err \"%s\"", err.msg);
	kh_http_response_clear(&resp);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		CHECK_INT(unsetenv(names[i]), 0);
	CHECK_INT(unsetenv("NO_PROXY"), 0);
}

/* A 401, 403 or 404 is returned as is, for the caller to map. */
static void test_refusal_statuses(void)
{
	static const struct {
		const char *steps;
		long status;
		int mapped;
	} cases[] = {
		{ "[403]", 403, KH_FETCH_AUTH_REFUSED },
		{ "[401]", 401, KH_FETCH_AUTH_REFUSED },
		{ "[404]", 404, KH_FETCH_NOT_FOUND },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct call c = { .method = "GET", .path = "/ok",
				  .retry = true };
		struct kh_http_response resp;
		struct kh_err err = { "" };

		reset_mock();
		plan("GET /ok", cases[i].steps);
		CHECK_INT(run(&c, &resp, &err), 0);
		CHECK_INT(resp.status, cases[i].status);
		CHECK_INT(resp.attempts, 1);
		CHECK_INT(kh_http_status_error(resp.status), cases[i].mapped);
		CHECK(resp.body != NULL);
		if (resp.body)
			CHECK(strstr((const char *)resp.body->data,
				     "\"error\"") != NULL);
		kh_http_response_clear(&resp);
	}
}

static void test_retry_then_success(void)
{
	struct call c = { .method = "GET", .path = "/ok", .retry = true,
			  .deadline = (int64_t)time(NULL) + 30 };
	struct kh_http_response resp;
	struct kh_err err = { "" };

	reset_mock();
	plan("GET /ok", "[429, \"ok\"]");
	CHECK_INT(run(&c, &resp, &err), 0);
	CHECK_INT(resp.status, 200);
	CHECK_INT(resp.attempts, 2);
	CHECK_INT(seen("/ok"), 2);
	kh_http_response_clear(&resp);
}

static void test_server_errors_give_up(void)
{
	char prefix[128];
	struct call c = { .method = "GET", .path = "/ok", .retry = true,
			  .deadline = (int64_t)time(NULL) + 30 };
	struct kh_http_response resp;
	struct kh_err err = { "" };

	reset_mock();
	plan("GET /ok", "[500, 502, 503, \"ok\"]");
	CHECK_INT(run(&c, &resp, &err), KH_FETCH_SERVER_ERROR);
	CHECK_INT(resp.attempts, 3);
	CHECK_INT(resp.status, 503);
	CHECK_INT(seen("/ok"), 3);
	CHECK((int64_t)time(NULL) <= c.deadline);
	(void)snprintf(prefix, sizeof(prefix), "server error: GET "
		       "https://127.0.0.1:%s/ok returned 503 after 3 "
		       "attempts", mock_port);
	CHECK_STR(err.msg, prefix);
	kh_http_response_clear(&resp);

	/* A call that must not be repeated makes one attempt only. */
	reset_mock();
	plan("GET /ok", "[429]");
	c.retry = false;
	CHECK_INT(run(&c, &resp, &err), KH_FETCH_THROTTLED);
	CHECK_INT(resp.attempts, 1);
	CHECK(starts_with(err.msg, "throttled: "));
	kh_http_response_clear(&resp);
}

/* A retry pause that would end past the deadline is not taken. */
static void test_deadline_bounds_retries(void)
{
	struct call c = { .method = "GET", .path = "/ok", .retry = true,
			  .deadline = (int64_t)time(NULL) + 1 };
	struct kh_http_response resp;
	struct kh_err err = { "" };

	reset_mock();
	/* Retry-After: 1 on each 429 makes every pause reach the deadline. */
	plan("GET /ok", "[429, 429, 429]");
	CHECK_INT(run(&c, &resp, &err), KH_FETCH_THROTTLED);
	CHECK(resp.attempts < 3);
	kh_http_response_clear(&resp);
}

static void test_slow_times_out(void)
{
	struct call c = { .method = "GET", .path = "/ok",
			  .total_timeout_ms = 1000 };
	struct kh_http_response resp;
	struct kh_err err = { "" };

	reset_mock();
	plan("GET /ok", "[\"slow\"]");
	CHECK_INT(run(&c, &resp, &err), KH_FETCH_TIMED_OUT);
	CHECK_INT(resp.attempts, 1);
	CHECK(resp.body == NULL);
	CHECK(starts_with(err.msg, "timed out: GET https://127.0.0.1:"));
	kh_http_response_clear(&resp);
}

static void test_body_cap(void)
{
	struct call c = { .method = "GET", .path = "/ok", .retry = true };
	struct kh_http_response resp;
	struct kh_err err = { "" };

	reset_mock();
	plan("GET /ok", "[\"oversize\"]");
	CHECK_INT(run(&c, &resp, &err), KH_FETCH_BAD_RESPONSE);
	CHECK_INT(resp.attempts, 1);
	CHECK(resp.body == NULL);
	CHECK(strstr(err.msg, "sent a body over 1048576 bytes") != NULL);
	kh_http_response_clear(&resp);

	/* Exactly the cap is still accepted. */
	c.path = "/max";
	CHECK_INT(run(&c, &resp, &err), 0);
	CHECK(resp.body != NULL);
	if (resp.body)
		CHECK_INT(resp.body->len, KH_HTTP_BODY_MAX);
	kh_http_response_clear(&resp);
}

static void test_redirect_not_followed(void)
{
	struct call c = { .method = "GET", .path = "/ok", .retry = true };
	struct kh_http_response resp;
	struct kh_err err = { "" };

	reset_mock();
	plan("GET /ok", "[\"redirect\"]");
	CHECK_INT(run(&c, &resp, &err), KH_FETCH_BAD_RESPONSE);
	CHECK_INT(resp.status, 307);
	CHECK(strstr(err.msg, "a redirect, which keyhole does not follow"));
	kh_http_response_clear(&resp);

	c.path = "/redirect-self";
	CHECK_INT(run(&c, &resp, &err), KH_FETCH_BAD_RESPONSE);
	CHECK_INT(resp.status, 302);
	CHECK_INT(seen("/redirect-self"), 1);
	CHECK_INT(seen("/landed"), 0);
	kh_http_response_clear(&resp);
}

static void test_tls_checks(void)
{
	struct call wrong = { .method = "GET", .path = "/ok",
			      .port = NULL, .retry = true };
	struct call system_ca = { .method = "GET", .path = "/ok",
				  .retry = true, .system_ca = true };
	struct kh_http_response resp;
	struct kh_err err = { "" };

	/* The test CA signed it, but for another name. */
	wrong.port = wrong_port;
	CHECK_INT(run(&wrong, &resp, &err), KH_FETCH_TLS_FAILURE);
	CHECK_INT(resp.attempts, 1);
	CHECK(starts_with(err.msg, "TLS failure: GET https://127.0.0.1:"));
	kh_http_response_clear(&resp);

	/* The right name, but from a CA the system store does not hold. */
	CHECK_INT(run(&system_ca, &resp, &err), KH_FETCH_TLS_FAILURE);
	kh_http_response_clear(&resp);
}

static void test_request_contents(void)
{
	static const char *const headers[] = { "X-Test: yes",
					       "Content-Type: application/json",
					       NULL };
	struct call c = { .method = "POST", .path = "/echo",
			  .headers = headers, .body = "{\"k\":\"v\"}" };
	struct kh_http_response resp;
	struct kh_err err = { "" };
	json_t *echo = NULL;

	reset_mock();
	CHECK_INT(run(&c, &resp, &err), 0);
	if (resp.body)
		echo = json_loads((const char *)resp.body->data, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(echo, "method")), "POST");
	CHECK_STR(json_string_value(json_object_get(echo, "body")),
		  "{\"k\":\"v\"}");
	CHECK_STR(json_string_value(json_object_get(echo, "test")), "yes");
	CHECK(json_is_null(json_object_get(echo, "expect")));
	json_decref(echo);
	kh_http_response_clear(&resp);
}

/* curl signs with SigV4 when asked; the AWS mocks verify it fully. */
static void test_sigv4_signed(void)
{
	struct call c = { .method = "POST", .path = "/echo", .body = "{}",
			  .aws_sigv4 = "aws:amz:us-east-1:secretsmanager",
			  .aws_keypair = "AKIDEXAMPLE:example-secret-key" };
	struct kh_http_response resp;
	struct kh_err err = { "" };
	const char *auth;
	json_t *echo = NULL;

	reset_mock();
	CHECK_INT(run(&c, &resp, &err), 0);
	if (resp.body)
		echo = json_loads((const char *)resp.body->data, 0, NULL);
	auth = json_string_value(json_object_get(echo, "authorization"));
	CHECK(auth != NULL);
	if (!auth)
		auth = "";
	CHECK(starts_with(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
	CHECK(strstr(auth, "/us-east-1/secretsmanager/aws4_request") != NULL);
	CHECK(strstr(auth, "example-secret-key") == NULL);
	CHECK(json_is_string(json_object_get(echo, "amzDate")));
	json_decref(echo);
	kh_http_response_clear(&resp);
}

static const struct kh_test_case mock_cases[] = {
	{ "ok", test_ok },
	{ "refusal statuses", test_refusal_statuses },
	{ "retry then success", test_retry_then_success },
	{ "server errors give up", test_server_errors_give_up },
	{ "deadline bounds retries", test_deadline_bounds_retries },
	{ "slow times out", test_slow_times_out },
	{ "body cap", test_body_cap },
	{ "redirect not followed", test_redirect_not_followed },
	{ "tls checks", test_tls_checks },
	{ "request contents", test_request_contents },
	{ "sigv4 signed", test_sigv4_signed },
	{ "proxy environment ignored", test_proxy_environment_ignored },
};

int main(void)
{
	mock_port = getenv("KH_TEST_MOCK_PORT");
	wrong_port = getenv("KH_TEST_MOCK_WRONG_PORT");
	ca_file = getenv("KH_TEST_CA");
	if (mock_port && wrong_port && ca_file)
		return KH_TEST_RUN("http_mock", mock_cases);
	return KH_TEST_RUN("http", offline_cases);
}
