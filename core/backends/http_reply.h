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
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keyhole/backend_module.h"

/* Maximum length of remote error text quoted in a message, in bytes. */
#define REPLY_SUMMARY_MAX 200

/*
 * Wording of a KH_FETCH_* value, the same as kh_backend_reason gives:
 * a module cannot call libkeyhole, and each message it sets must start
 * with this wording.
 */
static inline const char *reply_reason(int code)
{
	switch (code) {
	case KH_FETCH_AUTH_REFUSED:
		return "auth refused";
	case KH_FETCH_NOT_FOUND:
		return "not found";
	case KH_FETCH_THROTTLED:
		return "throttled";
	case KH_FETCH_TIMED_OUT:
		return "timed out";
	case KH_FETCH_TLS_FAILURE:
		return "TLS failure";
	case KH_FETCH_BAD_RESPONSE:
		return "bad response";
	case KH_FETCH_UNREACHABLE:
		return "unreachable";
	case KH_FETCH_SERVER_ERROR:
		return "server error";
	default:
		return "backend error";
	}
}

/* Maps a final non-2xx status as kh_http_status_error does. */
static inline int reply_status_error(long status)
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
 * Zeroes every string value in value, so that the copies jansson made
 * of tokens and secrets are wiped before json_decref frees them.
 * Object keys are left alone: they name fields and hold no secret.
 */
static inline void reply_wipe(json_t *value)
{
	const char *key;
	json_t *member;
	size_t i;

	if (json_is_string(value)) {
		sodium_memzero((char *)json_string_value(value),
			       json_string_length(value));
	} else if (json_is_object(value)) {
		json_object_foreach(value, key, member)
			reply_wipe(member);
	} else if (json_is_array(value)) {
		json_array_foreach(value, i, member)
			reply_wipe(member);
	}
}

/* Wipes and frees a document parsed by reply_json, or does nothing for NULL. */
static inline void reply_free(json_t *doc)
{
	reply_wipe(doc);
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
static inline void reply_summary(const struct kh_http_response *resp,
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
	reply_free(doc);
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
		code = reply_status_error(resp->status);
	if (code == 0)
		code = KH_FETCH_BAD_RESPONSE;
	reply_summary(resp, credential, summary, sizeof(summary));
	host->err_set(err, "%s: %s at %s returned %ld%s%s", reply_reason(code),
		      what, url, resp->status, summary[0] ? " " : "", summary);
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

#endif
