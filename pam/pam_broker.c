/*
 * The module's client for keyholed's session_open and session_close
 * operations, over the bounded line protocol of keyhole/broker.h, and
 * the checks on their replies.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "keyhole/broker.h"
#include "pam_internal.h"

/*
 * Sends request and returns the reply object in *reply. The module runs
 * as root and turns the reply into environment variables and Landlock
 * rules, so the broker must run as root too. A reply with "ok": false
 * becomes -EACCES, with keyholed's error and reason in err.
 */
static int call_broker(const char *path, const json_t *request,
		       json_t **reply, struct kh_err *err)
{
	/* keyholed's replies are a few hundred bytes; longer is invalid. */
	static const struct kh_broker_opts opts = {
		.timeout_ms = KH_PAM_TIMEOUT_MS,
		.max_reply = 8192,
		.flags = KH_BROKER_REQUIRE_ROOT_PEER,
	};
	const char *error, *reason;
	json_t *parsed;
	int rc;

	*reply = NULL;
	rc = kh_broker_call(path, request, &opts, &parsed, err);
	if (rc < 0)
		return rc;
	if (json_is_true(json_object_get(parsed, "ok"))) {
		*reply = parsed;
		return 0;
	}

	error = json_string_value(json_object_get(parsed, "error"));
	reason = json_string_value(json_object_get(parsed, "reason"));
	kh_err_set(err, "keyholed rejected the request: %s: %s",
		   error ? error : "no error given",
		   reason ? reason : "no reason given");
	json_decref(parsed);
	return -EACCES;
}

bool kh_pam_session_id_valid(const char *id)
{
	size_t len = strlen(id);

	if (len != KH_PAM_SESSION_ID_LEN)
		return false;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789-_") == len;
}

/* Rejects every member of reply that is not in names (NULL-terminated). */
static int check_members(const json_t *reply, const char *const *names,
			 struct kh_err *err)
{
	const char *key;
	json_t *value;

	json_object_foreach((json_t *)reply, key, value) {
		size_t i = 0;

		while (names[i] && strcmp(names[i], key) != 0)
			i++;
		if (!names[i]) {
			/* Only a plain name goes into the log line. */
			bool plain = strspn(key, "abcdefghijklmnopqrstuvwxyz"
					    "_0123456789") == strlen(key);

			kh_err_set(err, "invalid reply: unknown member %s%s",
				   plain ? "$." : "", plain ? key : "");
			return -EPROTO;
		}
	}
	return 0;
}

/*
 * Copies the absolute path at reply.name into out. Control characters
 * are rejected because the value becomes an environment variable and a
 * log line.
 */
static int copy_path(const json_t *reply, const char *name, char *out,
		     size_t size, struct kh_err *err)
{
	const char *value = json_string_value(json_object_get(reply, name));

	if (!value || value[0] != '/' || strlen(value) >= size) {
		kh_err_set(err, "invalid reply: $.%s must be an absolute path "
			   "shorter than %zu bytes", name, size);
		return -EPROTO;
	}
	for (const char *p = value; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			kh_err_set(err, "invalid reply: $.%s contains a "
				   "control character", name);
			return -EPROTO;
		}
	}
	memcpy(out, value, strlen(value) + 1);
	return 0;
}

static int parse_open_reply(const json_t *reply, uid_t uid,
			    struct kh_pam_session *out, struct kh_err *err)
{
	static const char *const names[] = {
		"ok", "session", "permits", "permits_dir", "secrets", NULL
	};
	const char *id = json_string_value(json_object_get(reply, "session"));
	char expected[PATH_MAX];
	int rc;

	rc = check_members(reply, names, err);
	if (rc < 0)
		return rc;
	if (!id || !kh_pam_session_id_valid(id)) {
		kh_err_set(err, "invalid reply: $.session must be %d "
			   "base64url characters", KH_PAM_SESSION_ID_LEN);
		return -EPROTO;
	}
	memcpy(out->id, id, KH_PAM_SESSION_ID_LEN + 1);

	if (copy_path(reply, "permits", out->permits, sizeof(out->permits),
		      err) < 0 ||
	    copy_path(reply, "permits_dir", out->permits_dir,
		      sizeof(out->permits_dir), err) < 0 ||
	    copy_path(reply, "secrets", out->secrets, sizeof(out->secrets),
		      err) < 0)
		return -EPROTO;

	/* The session's permits live in permits_dir/<uid>, nowhere else. */
	rc = snprintf(expected, sizeof(expected), "%s/%u", out->permits_dir,
		      (unsigned)uid);
	if (rc < 0 || (size_t)rc >= sizeof(expected) ||
	    strcmp(expected, out->permits) != 0) {
		kh_err_set(err, "invalid reply: $.permits is \"%s\", "
			   "expected \"%s/%u\"", out->permits,
			   out->permits_dir, (unsigned)uid);
		return -EPROTO;
	}
	return 0;
}

int kh_pam_session_open(const char *socket_path, uid_t uid,
			const char *service, const char *tty,
			struct kh_pam_session *out, struct kh_err *err)
{
	json_t *request, *reply = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	request = json_pack("{s:s, s:I, s:s}", "op", "session_open", "uid",
			    (json_int_t)uid, "service", service);
	if (!request) {
		kh_err_set(err, "cannot encode the request: PAM_SERVICE is "
			   "not valid UTF-8, or out of memory");
		return -EINVAL;
	}
	if (tty && json_object_set_new(request, "tty", json_string(tty)) < 0) {
		kh_err_set(err, "PAM_TTY is not valid UTF-8");
		rc = -EINVAL;
		goto out;
	}

	rc = call_broker(socket_path, request, &reply, err);
	if (rc < 0)
		goto out;
	rc = parse_open_reply(reply, uid, out, err);
out:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	json_decref(request);
	json_decref(reply);
	return rc;
}

int kh_pam_session_close(const char *socket_path, const char *id,
			 uid_t uid, bool refused, long long *revoked,
			 struct kh_err *err)
{
	static const char *const names[] = { "ok", "revoked", NULL };
	json_t *request, *reply = NULL, *count;
	int rc;

	*revoked = 0;
	request = json_pack("{s:s, s:s, s:I, s:s}", "op", "session_close",
			    "session", id, "uid", (json_int_t)uid, "reason",
			    refused ? "login_refused" : "logout");
	if (!request) {
		kh_err_set(err, "out of memory");
		return -ENOMEM;
	}

	rc = call_broker(socket_path, request, &reply, err);
	if (rc < 0)
		goto out;
	rc = check_members(reply, names, err);
	if (rc < 0)
		goto out;
	count = json_object_get(reply, "revoked");
	if (!json_is_integer(count) || json_integer_value(count) < 0) {
		kh_err_set(err, "invalid reply: $.revoked must be a "
			   "non-negative integer");
		rc = -EPROTO;
		goto out;
	}
	*revoked = (long long)json_integer_value(count);
out:
	json_decref(request);
	json_decref(reply);
	return rc;
}
