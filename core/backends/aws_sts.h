/*
 * Reading AWS STS replies for the aws backend. STS replies in XML
 * (Query API). The reply's structure is fixed and small, so instead of
 * an XML library the parser takes exactly the elements it needs and
 * rejects the document unless each occurs exactly once in its place and
 * has the character set AWS documents for it. The values it keeps are
 * copied into sodium_malloc memory.
 */
#ifndef KH_BACKENDS_AWS_STS_H
#define KH_BACKENDS_AWS_STS_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "keyhole/backend_module.h"

/* Maximum session token length accepted, in bytes. AWS documents no limit. */
#define STS_TOKEN_MAX 16384

/* Temporary (or ambient) AWS credentials in sodium_malloc memory. */
struct sts_creds {
	struct kh_secret *access_key_id;
	struct kh_secret *secret_access_key;
	struct kh_secret *session_token;  /* NULL for long-term keys */
	char expiration[32];              /* ISO 8601, or "" */
};

static inline void sts_creds_clear(const struct kh_backend_host *host,
				   struct sts_creds *creds)
{
	host->secret_free(creds->access_key_id);
	host->secret_free(creds->secret_access_key);
	host->secret_free(creds->session_token);
	memset(creds, 0, sizeof(*creds));
}

/* A byte range of the reply. */
struct xml_span {
	const char *start;
	const char *end;
};

/*
 * Finds the content of the only <name>...</name> inside span. Returns
 * -ENOENT when the element is absent and -EBADMSG when it occurs more
 * than once, has attributes or is not closed.
 */
static inline int xml_child(const struct xml_span *span, const char *name,
			    struct xml_span *out)
{
	char open[64];
	char close[64];
	const char *at;
	const char *again;
	const char *stop;
	size_t open_len;

	if (snprintf(open, sizeof(open), "<%s>", name) >= (int)sizeof(open) ||
	    snprintf(close, sizeof(close), "</%s>", name) >= (int)sizeof(close))
		return -EBADMSG;
	open_len = strlen(open);
	at = memmem(span->start, (size_t)(span->end - span->start), open,
		    open_len);
	if (!at)
		return -ENOENT;
	stop = memmem(at + open_len, (size_t)(span->end - at - open_len), close,
		      strlen(close));
	if (!stop)
		return -EBADMSG;
	again = memmem(stop, (size_t)(span->end - stop), open, open_len);
	if (again)
		return -EBADMSG;
	out->start = at + open_len;
	out->end = stop;
	return 0;
}

/* Returns true when every byte of span is in [A-Za-z0-9] or extra. */
static inline bool xml_chars_ok(const struct xml_span *span, const char *extra,
				size_t min, size_t max)
{
	size_t len = (size_t)(span->end - span->start);

	if (len < min || len > max)
		return false;
	for (const char *p = span->start; p < span->end; p++) {
		char c = *p;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (c == '\0' || !strchr(extra, c))
			return false;
	}
	return true;
}

/* Checks "YYYY-MM-DDTHH:MM:SS" with optional fraction and "Z". */
static inline bool xml_time_ok(const struct xml_span *span)
{
	static const char pattern[] = "dddd-dd-ddTdd:dd:dd";
	size_t len = (size_t)(span->end - span->start);
	const char *p = span->start;

	if (len < sizeof(pattern) || len > 31 || span->end[-1] != 'Z')
		return false;
	for (size_t i = 0; i + 1 < sizeof(pattern); i++) {
		bool digit = p[i] >= '0' && p[i] <= '9';

		if (pattern[i] == 'd' ? !digit : p[i] != pattern[i])
			return false;
	}
	/* An optional fraction: '.' and at least one digit before 'Z'. */
	p += sizeof(pattern) - 1;
	if (p == span->end - 1)
		return true;
	if (*p != '.' || p + 1 == span->end - 1)
		return false;
	for (p++; p < span->end - 1; p++) {
		if (*p < '0' || *p > '9')
			return false;
	}
	return true;
}

/*
 * Locates the document element <root ...>...</root> that fills the
 * whole reply, after an optional XML declaration and whitespace.
 */
static inline int xml_root(const char *body, size_t len, const char *root,
			   struct xml_span *out)
{
	const char *p = body;
	const char *end = body + len;
	char close[96];
	size_t root_len = strlen(root);
	size_t close_len;

	if (memchr(body, '\0', len) ||
	    snprintf(close, sizeof(close), "</%s>", root) >= (int)sizeof(close))
		return -EBADMSG;
	close_len = strlen(close);
	while (p < end && strchr(" \t\r\n", *p))
		p++;
	if (end - p > 5 && memcmp(p, "<?xml", 5) == 0) {
		const char *decl_end = memmem(p, (size_t)(end - p), "?>", 2);

		if (!decl_end)
			return -EBADMSG;
		p = decl_end + 2;
		while (p < end && strchr(" \t\r\n", *p))
			p++;
	}
	while (end > p && strchr(" \t\r\n", end[-1]))
		end--;
	if ((size_t)(end - p) < 1 + root_len + close_len || *p != '<' ||
	    memcmp(p + 1, root, root_len) != 0 ||
	    !strchr(" >", p[1 + root_len]) ||
	    memcmp(end - close_len, close, close_len) != 0)
		return -ENOENT;
	p = memchr(p, '>', (size_t)(end - p));
	if (!p || p >= end - close_len)
		return -EBADMSG;
	out->start = p + 1;
	out->end = end - close_len;
	return 0;
}

static inline int xml_copy(const struct kh_backend_host *host,
			   const struct xml_span *span, struct kh_secret **out)
{
	size_t len = (size_t)(span->end - span->start);
	int r = host->secret_new(len + 1, out);

	if (r < 0)
		return r;
	memcpy((*out)->data, span->start, len);
	(*out)->data[len] = '\0';
	(*out)->len = len;
	return 0;
}

/*
 * Parses a successful <action>Response into creds: its
 * <action>Result/Credentials contains AccessKeyId, SecretAccessKey,
 * SessionToken and Expiration. Returns -EBADMSG for anything else.
 */
static inline int sts_parse_credentials(const struct kh_backend_host *host,
					const char *action, const char *body,
					size_t len, struct sts_creds *creds)
{
	char name[64];
	struct xml_span root, result, cred, key, secret, token, expiry;
	int r;

	memset(creds, 0, sizeof(*creds));
	(void)snprintf(name, sizeof(name), "%sResponse", action);
	if (xml_root(body, len, name, &root) < 0)
		return -EBADMSG;
	(void)snprintf(name, sizeof(name), "%sResult", action);
	if (xml_child(&root, name, &result) < 0 ||
	    xml_child(&result, "Credentials", &cred) < 0 ||
	    xml_child(&cred, "AccessKeyId", &key) < 0 ||
	    xml_child(&cred, "SecretAccessKey", &secret) < 0 ||
	    xml_child(&cred, "SessionToken", &token) < 0 ||
	    xml_child(&cred, "Expiration", &expiry) < 0)
		return -EBADMSG;
	if (!xml_chars_ok(&key, "", 16, 128) ||
	    !xml_chars_ok(&secret, "+/=", 16, 256) ||
	    !xml_chars_ok(&token, "+/=", 1, STS_TOKEN_MAX) ||
	    !xml_time_ok(&expiry))
		return -EBADMSG;

	r = xml_copy(host, &key, &creds->access_key_id);
	if (r == 0)
		r = xml_copy(host, &secret, &creds->secret_access_key);
	if (r == 0)
		r = xml_copy(host, &token, &creds->session_token);
	if (r < 0) {
		sts_creds_clear(host, creds);
		return r;
	}
	memcpy(creds->expiration, expiry.start,
	       (size_t)(expiry.end - expiry.start));
	creds->expiration[expiry.end - expiry.start] = '\0';
	return 0;
}

/*
 * Reads <ErrorResponse><Error><Code> and <Message> of an STS error
 * reply into code and message, as printable ASCII. Either stays ""
 * when the reply does not have that shape.
 */
static inline void sts_parse_error(const char *body, size_t len, char *code,
				   size_t code_size, char *message,
				   size_t message_size)
{
	struct xml_span root, error, c, m;

	code[0] = '\0';
	message[0] = '\0';
	if (!body || xml_root(body, len, "ErrorResponse", &root) < 0 ||
	    xml_child(&root, "Error", &error) < 0)
		return;
	if (xml_child(&error, "Code", &c) == 0 &&
	    xml_chars_ok(&c, ".", 1, code_size - 1)) {
		memcpy(code, c.start, (size_t)(c.end - c.start));
		code[c.end - c.start] = '\0';
	}
	if (xml_child(&error, "Message", &m) == 0) {
		size_t n = 0;

		for (const char *p = m.start; p < m.end && n + 1 < message_size;
		     p++)
			message[n++] = *p >= 0x20 && *p < 0x7f ? *p : '?';
		message[n] = '\0';
	}
}

#endif
