/*
 * Reading a remote service's reply, shared by the modules in
 * core/backends as static inline functions (a module is built from
 * one .c file). Credentials and secrets parsed out of a reply are
 * copied into sodium_malloc memory, and every string of the parsed
 * document is zeroed before jansson frees it.
 */
#ifndef KH_BACKENDS_HTTP_REPLY_H
#define KH_BACKENDS_HTTP_REPLY_H

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keyhole/backend_module.h"
#include "conf_check.h"

/* Maximum length of remote error text quoted in a message, in bytes. */
#define REPLY_SUMMARY_MAX 200

/*
 * Parses the body as JSON, rejecting duplicate keys. jansson's error
 * text is dropped because it can quote the body, which may hold a
 * secret. Returns NULL for an empty or invalid body.
 */
static inline json_t *reply_json(const struct kh_http_response *resp)
{
	json_error_t jerr;

	if (!resp->body || resp->body->len == 0)
		return NULL;
	return json_loadb((const char *)resp->body->data, resp->body->len,
			  JSON_REJECT_DUPLICATES, &jerr);
}

/*
 * Wipes every string of a document parsed by reply_json, then frees it.
 * Does nothing for NULL.
 */
static inline void reply_free(const struct kh_backend_host *host, json_t *doc)
{
	if (!doc)
		return;
	host->json_wipe(doc);
	json_decref(doc);
}

/* Appends text to buf as printable ASCII, '?' for anything else. */
static inline void reply_append(char *buf, size_t size, const char *text)
{
	size_t used = strlen(buf);

	for (; text && *text && used + 1 < size; text++) {
		unsigned char c = (unsigned char)*text;

		if (c == '\n' || c == '\r')
			break;
		buf[used++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[used] = '\0';
}

/*
 * Picks the error text out of the shapes these services use:
 * {"errors": ["..."]} (Vault), {"error": "...", "error_description":
 * "..."} (Entra ID), {"error": {"code", "message"}} (Key Vault),
 * {"messages": ["..."]} (Doppler) and {"message": "..."} (1Password
 * Connect).
 */
static inline void reply_pick_error(const json_t *doc, char *buf, size_t size)
{
	const json_t *error = json_object_get(doc, "error");
	const json_t *list = json_object_get(doc, "errors");

	if (!list)
		list = json_object_get(doc, "messages");
	if (json_is_array(list)) {
		reply_append(buf, size, json_string_value(json_array_get(list, 0)));
	} else if (json_is_string(error)) {
		reply_append(buf, size, json_string_value(error));
		reply_append(buf, size, ": ");
		reply_append(buf, size, json_string_value(
			json_object_get(doc, "error_description")));
	} else if (json_is_object(error)) {
		reply_append(buf, size, json_string_value(
			json_object_get(error, "code")));
		reply_append(buf, size, ": ");
		reply_append(buf, size, json_string_value(
			json_object_get(error, "message")));
	} else {
		reply_append(buf, size, json_string_value(
			json_object_get(doc, "message")));
	}
}

/*
 * Writes a one-line summary of an error reply into buf. A reply that
 * echoes the credential the request carried (credential may be NULL)
 * is never quoted, so that no message or log line can contain it.
 */
static inline void reply_summary(const struct kh_backend_host *host,
				 const struct kh_http_response *resp,
				 const struct kh_secret *credential, char *buf,
				 size_t size)
{
	json_t *doc;

	buf[0] = '\0';
	if (!resp->body || resp->body->len == 0)
		return;
	if (credential && credential->len > 0 &&
	    memmem(resp->body->data, resp->body->len, credential->data,
		   credential->len)) {
		reply_append(buf, size, "(reply withheld: it echoes the "
					"credential)");
		return;
	}
	doc = reply_json(resp);
	if (json_is_object(doc))
		reply_pick_error(doc, buf, size);
	reply_free(host, doc);
}

/*
 * Sets err for a reply with a non-2xx status and returns its KH_FETCH_*
 * value: "auth refused: vault login at URL returned 403 permission
 * denied". code 0 means "map the status".
 */
static inline int reply_fail(const struct kh_backend_host *host,
			     struct kh_err *err, int code,
			     const struct kh_http_response *resp,
			     const char *what, const char *url,
			     const struct kh_secret *credential)
{
	char summary[REPLY_SUMMARY_MAX + 1];

	if (code == 0)
		code = host->http_status_error(resp->status);
	if (code == 0)
		code = KH_FETCH_BAD_RESPONSE;
	reply_summary(host, resp, credential, summary, sizeof(summary));
	host->err_set(err, "%s: %s at %s returned %ld%s%s",
		      host->fetch_reason(code), what, url, resp->status,
		      summary[0] ? " " : "", summary);
	return code;
}

/* Sets err for a 2xx reply that lacks what it should carry. */
static inline int reply_bad(const struct kh_backend_host *host,
			    struct kh_err *err, const char *what,
			    const char *url, const char *problem)
{
	host->err_set(err, "bad response: %s at %s %s", what, url, problem);
	return KH_FETCH_BAD_RESPONSE;
}

/* Copies len bytes into a new secret, NUL-terminated past len. */
static inline int reply_copy(const struct kh_backend_host *host,
			     const void *data, size_t len,
			     struct kh_secret **out)
{
	int r = host->secret_new(len + 1, out);

	if (r < 0)
		return r;
	memcpy((*out)->data, data, len);
	(*out)->data[len] = '\0';
	(*out)->len = len;
	return 0;
}

/*
 * Stores value as a fetched secret: a string as its bytes, any other
 * value as compact JSON with sorted keys, written straight into
 * sodium_malloc memory.
 */
static inline int reply_value(const struct kh_backend_host *host,
			      const json_t *value, struct kh_secret **out)
{
	const size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
	size_t len;
	int r;

	if (json_is_string(value))
		return reply_copy(host, json_string_value(value),
				  json_string_length(value), out);
	len = json_dumpb(value, NULL, 0, flags);
	if (len == 0)
		return -ENOMEM;
	r = host->secret_new(len, out);
	if (r < 0)
		return r;
	if (json_dumpb(value, (char *)(*out)->data, len, flags) != len) {
		host->secret_free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * Builds the header line prefix + token ("Authorization: Bearer ...")
 * in sodium_malloc memory. A token byte outside printable ASCII is
 * rejected, because CR or LF would start a second header.
 */
static inline int reply_header(const struct kh_backend_host *host,
			       const char *prefix,
			       const struct kh_secret *token,
			       struct kh_secret **out, struct kh_err *err)
{
	size_t plen = strlen(prefix);
	int r;

	for (size_t i = 0; i < token->len; i++) {
		if (token->data[i] <= 0x20 || token->data[i] >= 0x7f) {
			host->err_set(err, "bad response: the token contains "
					   "a byte outside printable ASCII");
			return KH_FETCH_BAD_RESPONSE;
		}
	}
	r = host->secret_new(plen + token->len + 1, out);
	if (r < 0)
		return r;
	memcpy((*out)->data, prefix, plen);
	memcpy((*out)->data + plen, token->data, token->len);
	(*out)->data[plen + token->len] = '\0';
	(*out)->len = plen + token->len;
	return 0;
}

/*
 * Copies the string member key of doc into a new secret; reply_free
 * later wipes jansson's copy. Returns -ENOENT when it is missing or
 * empty.
 */
static inline int reply_take_string(const struct kh_backend_host *host,
				    json_t *doc, const char *key,
				    struct kh_secret **out)
{
	json_t *value = json_object_get(doc, key);

	if (!json_is_string(value) || json_string_length(value) == 0)
		return -ENOENT;
	return reply_copy(host, json_string_value(value),
			  json_string_length(value), out);
}


/* Sets err for a secret name the backend does not serve. */
static inline int reply_unknown(const struct kh_backend_host *host,
				struct kh_err *err, const char *name)
{
	host->err_set(err, "not found: backend %s serves no secret \"%s\"",
		      host->backend_name, name);
	return KH_FETCH_NOT_FOUND;
}

/*
 * Appends one {"check", "result"} step to a test report; a NULL report
 * is skipped. Returns 0 or -ENOMEM.
 */
static inline int reply_report(json_t *report, const char *check,
			       const char *result)
{
	if (!report)
		return 0;
	return json_array_append_new(report, json_pack("{s:s, s:s}", "check",
						       check, "result", result))
		       ? -ENOMEM
		       : 0;
}

/*
 * Checks that a federation JWT is base64url and dots only, so that it
 * goes into a form body or a JSON string without escaping.
 */
static inline int reply_check_jwt(const struct kh_backend_host *host,
				  const struct kh_secret *jwt,
				  struct kh_err *err)
{
	if (!conf_chars_ok((const char *)jwt->data, "-_.", jwt->len)) {
		host->err_set(err, "federation JWT has unexpected characters");
		return -EINVAL;
	}
	return 0;
}

/*
 * Sends GET url with token as the bearer token and parses a 200 reply
 * into *doc (NULL when the body is not JSON; free it with reply_free).
 * Any other status sets err through reply_fail with what naming the
 * call ("Doppler read").
 */
static inline int reply_get_json(const struct kh_backend_host *host,
				 const struct kh_http_options *options,
				 const char *url, int64_t deadline,
				 const struct kh_secret *token,
				 const char *what, json_t **doc,
				 struct kh_err *err)
{
	struct kh_http_response resp = { 0 };
	struct kh_secret *auth = NULL;
	int r;

	*doc = NULL;
	r = reply_header(host, "Authorization: Bearer ", token, &auth, err);
	if (r == 0) {
		const char *headers[] = { "Accept: application/json",
					  (const char *)auth->data, NULL };
		struct kh_http_request req = {
			.method = "GET", .url = url, .headers = headers,
			.options = options, .deadline = deadline,
			.retry = true,
		};

		r = host->http(&req, &resp, err);
	}
	if (r == 0 && resp.status != 200)
		r = reply_fail(host, err, 0, &resp, what, url, token);
	if (r == 0)
		*doc = reply_json(&resp);
	host->http_response_clear(&resp);
	host->secret_free(auth);
	return r;
}

#endif
