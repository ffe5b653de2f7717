/*
 * OIDC discovery documents for the broker's federation key: the files
 * that AWS STS, Vault and Entra ID fetch from the issuer URL to verify
 * the broker's JWTs. A rotated key stays in jwks.json for an overlap
 * period, so that tokens signed just before the rotation still verify
 * and verifiers that cache the JWKS see the new key before it is used.
 *
 * A retired key is stored in retired_dir as "<kid>.json" containing
 * {"jwk": PUBLIC_JWK, "retired_at": UNIX_SECONDS}.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fed_internal.h"
#include "keyfile.h"
#include "keyhole/canon.h"
#include "keyhole/federation.h"

/* Maximum issuer URL length, in bytes (config.c stores 511). */
#define ISSUER_MAX 511

/* Largest retired-key file read, in bytes. An RSA 8192 JWK is ~1.5 KiB. */
#define RETIRED_FILE_MAX 8192

/* Most retired keys published at once; more means rotation is looping. */
#define RETIRED_MAX 64

/*
 * Checks an issuer URL the way verifiers compare it: byte for byte
 * against the "iss" claim, and with "/.well-known/openid-configuration"
 * appended. AWS and Entra ID fetch only https URLs.
 */
static int check_issuer(const char *issuer, struct kh_err *err)
{
	size_t len = issuer ? strlen(issuer) : 0;

	if (len <= strlen("https://") || strncmp(issuer, "https://", 8) != 0 ||
	    len > ISSUER_MAX) {
		kh_err_set(err, "issuer \"%.80s\" is invalid; it must be an "
				"https:// URL of at most %d bytes",
			   issuer ? issuer : "", ISSUER_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)issuer[i];

		if (c <= ' ' || c >= 0x7f || c == '?' || c == '#') {
			kh_err_set(err, "issuer \"%.80s\" is invalid; it must "
					"not contain spaces, a query or a "
					"fragment", issuer);
			return -EINVAL;
		}
	}
	if (issuer[len - 1] == '/') {
		kh_err_set(err, "issuer \"%.80s\" ends with '/'; remove it, "
				"because verifiers compare the iss claim byte "
				"for byte", issuer);
		return -EINVAL;
	}
	return 0;
}

/*
 * Creates dir with mode 0755 unless it exists as a directory. The mode
 * is set again after mkdir(2) because a umask such as 077 would leave a
 * directory that the web server serving it cannot enter.
 */
static int ensure_dir(const char *dir, struct kh_err *err)
{
	struct stat st;

	if (mkdir(dir, 0755) == 0) {
		int rc = chmod(dir, 0755) == 0 ? 0 : -errno;

		if (rc < 0)
			kh_err_set(err, "%s: cannot set mode 0755: %s", dir,
				   strerror(-rc));
		return rc;
	}
	if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (errno == EEXIST) {
		kh_err_set(err, "%s: exists and is not a directory", dir);
		return -ENOTDIR;
	}
	kh_err_set(err, "%s: cannot create directory: %s", dir,
		   strerror(errno));
	return -errno;
}

/*
 * Replaces path with value as pretty JSON, mode 0644, through a
 * temporary file and rename(2), so a web server serving dir never reads
 * half a document.
 */
static int replace_json_file(const char *path, const json_t *value,
			     struct kh_err *err)
{
	char tmp[PATH_MAX];
	char *text = NULL;
	int n;
	int rc;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		kh_err_set(err, "%s: path is too long", path);
		return -ENAMETOOLONG;
	}
	text = json_dumps(value, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text) {
		kh_err_set(err, "%s: out of memory", path);
		return -ENOMEM;
	}

	/* A stale temporary file from an interrupted export is ours. */
	(void)unlink(tmp);
	rc = kh_keyfile_write(tmp, text, strlen(text), 0644, err);
	if (rc == 0 && rename(tmp, path) < 0) {
		rc = -errno;
		kh_err_set(err, "%s: cannot rename into place: %s", path,
			   strerror(-rc));
		(void)unlink(tmp);
	}
	free(text);
	return rc;
}

/* Checks a parsed retired-key record whose file name gave kid. */
static int check_retired(const json_t *record, const char *kid,
			 struct kh_err *err)
{
	const json_t *jwk = json_object_get(record, "jwk");
	const json_t *at = json_object_get(record, "retired_at");
	const json_t *stated;
	char computed[KH_KID_LEN + 1];
	int rc;

	if (!json_is_object(record) || json_object_size(record) != 2 ||
	    !jwk || !json_is_integer(at) || json_integer_value(at) < 0) {
		kh_err_set(err, "expected {\"jwk\": PUBLIC_JWK, "
				"\"retired_at\": UNIX_SECONDS}");
		return -EINVAL;
	}
	rc = kh_fed_jwk_check_public(jwk, err);
	if (rc == 0)
		rc = kh_fed_jwk_thumbprint(jwk, computed, err);
	if (rc < 0)
		return rc;

	stated = json_object_get(jwk, "kid");
	if (strcmp(computed, kid) != 0 ||
	    (stated && strcmp(json_string_value(stated), computed) != 0)) {
		kh_err_set(err, "key thumbprint %s does not match the file "
				"name or the JWK \"kid\"", computed);
		return -EINVAL;
	}
	return 0;
}

/*
 * Loads one retired key file, named "<kid>.json", and appends its JWK to
 * keys when it was retired less than overlap seconds before now.
 */
static int add_retired(const char *dir, const char *file, int64_t overlap,
		       int64_t now, json_t *keys, struct kh_err *err)
{
	char path[PATH_MAX];
	char kid[KH_KID_LEN + 1];
	size_t kid_len = strlen(file) - strlen(".json");
	json_t *record = NULL;
	int n;
	int rc;

	n = snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (n < 0 || (size_t)n >= sizeof(path) || kid_len != KH_KID_LEN) {
		kh_err_set(err, "%s/%s: not a retired key file name "
				"(\"<kid>.json\")", dir, file);
		return -EINVAL;
	}
	memcpy(kid, file, kid_len);
	kid[kid_len] = '\0';

	rc = kh_json_load_file(path, &record, err);
	if (rc < 0)
		return rc;
	rc = check_retired(record, kid, err);
	if (rc < 0) {
		kh_err_prefix(err, "%s", path);
		goto out;
	}
	if (now - json_integer_value(json_object_get(record, "retired_at")) <
		    overlap &&
	    json_array_append(keys, json_object_get(record, "jwk")) != 0) {
		kh_err_set(err, "out of memory building jwks.json");
		rc = -ENOMEM;
	}
out:
	json_decref(record);
	return rc;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collects the "*.json" names in dir, sorted, so jwks.json is stable. */
static int list_retired(const char *dir, char ***names, size_t *count,
			struct kh_err *err)
{
	DIR *d = opendir(dir);
	struct dirent *entry;
	int rc = 0;

	*names = NULL;
	*count = 0;
	if (!d && errno == ENOENT)
		return 0;
	if (!d) {
		kh_err_set(err, "%s: cannot open: %s", dir, strerror(errno));
		return -errno;
	}
	*names = calloc(RETIRED_MAX, sizeof(**names));
	if (!*names) {
		rc = -ENOMEM;
		goto out;
	}
	while ((entry = readdir(d)) != NULL) {
		size_t len = strlen(entry->d_name);

		if (entry->d_name[0] == '.' || len <= strlen(".json") ||
		    strcmp(entry->d_name + len - 5, ".json") != 0)
			continue;
		if (*count == RETIRED_MAX) {
			kh_err_set(err, "%s: more than %d retired keys; remove "
					"the ones past their overlap", dir,
				   RETIRED_MAX);
			rc = -E2BIG;
			goto out;
		}
		(*names)[*count] = strdup(entry->d_name);
		if (!(*names)[(*count)++]) {
			rc = -ENOMEM;
			goto out;
		}
	}
	qsort(*names, *count, sizeof(**names), compare_names);
out:
	if (rc == -ENOMEM)
		kh_err_set(err, "%s: out of memory listing retired keys", dir);
	closedir(d);
	return rc;
}

static void free_names(char **names, size_t count)
{
	for (size_t i = 0; names && i < count; i++)
		free(names[i]);
	free(names);
}

/* Builds {"keys": [current, retired keys still inside the overlap]}. */
static int build_jwks(const struct kh_fed_key *current,
		      const char *retired_dir, int64_t overlap, int64_t now,
		      json_t **out, struct kh_err *err)
{
	json_t *keys = json_array();
	char **names = NULL;
	size_t count = 0;
	int rc;

	*out = NULL;
	if (!keys || json_array_append_new(keys,
					   kh_fed_key_public_jwk(current))) {
		kh_err_set(err, "out of memory building jwks.json");
		json_decref(keys);
		return -ENOMEM;
	}
	rc = retired_dir ? list_retired(retired_dir, &names, &count, err) : 0;
	for (size_t i = 0; rc == 0 && i < count; i++) {
		/* The current key's own record, if any, is already listed. */
		if (strncmp(names[i], current->kid, KH_KID_LEN) == 0)
			continue;
		rc = add_retired(retired_dir, names[i], overlap, now, keys,
				 err);
	}
	free_names(names, count);
	if (rc == 0) {
		*out = json_pack("{s:o}", "keys", keys);
		keys = NULL;
		rc = *out ? 0 : -ENOMEM;
	}
	json_decref(keys);
	return rc;
}

/* Builds the discovery document (OpenID Connect Discovery 1.0, 3). */
static json_t *build_discovery(const char *issuer, const json_t *jwks)
{
	json_t *algs = json_array();
	json_t *doc;
	json_t *jwk;
	size_t i;
	char *jwks_uri = NULL;

	json_array_foreach(json_object_get(jwks, "keys"), i, jwk) {
		const char *alg = json_string_value(json_object_get(jwk,
								    "alg"));
		bool seen = false;
		size_t j;
		json_t *have;

		json_array_foreach(algs, j, have)
			seen = seen || (alg && strcmp(alg,
						      json_string_value(have)) ==
						       0);
		if (alg && !seen)
			(void)json_array_append_new(algs, json_string(alg));
	}
	if (asprintf(&jwks_uri, "%s/jwks.json", issuer) < 0) {
		json_decref(algs);
		return NULL;
	}
	doc = json_pack("{s:s, s:s, s:[s], s:[s], s:o, s:[sssssss]}",
			"issuer", issuer, "jwks_uri", jwks_uri,
			"response_types_supported", "id_token",
			"subject_types_supported", "public",
			"id_token_signing_alg_values_supported", algs,
			"claims_supported", "iss", "sub", "aud", "iat", "exp",
			"jti", "permit_jti");
	free(jwks_uri);
	return doc;
}

int kh_oidc_export(const char *issuer, const struct kh_fed_key *current,
		   const char *retired_dir, int64_t overlap, int64_t now,
		   const char *dir, struct kh_err *err)
{
	char path[PATH_MAX];
	json_t *jwks = NULL;
	json_t *doc = NULL;
	int rc;

	if (!current || !dir) {
		kh_err_set(err, "exporting needs the current key and a "
				"directory");
		return -EINVAL;
	}
	rc = check_issuer(issuer, err);
	if (rc < 0)
		return rc;
	if (overlap < 0) {
		kh_err_set(err, "overlap %lld is negative; give seconds >= 0",
			   (long long)overlap);
		return -EINVAL;
	}
	if (strlen(dir) > PATH_MAX - sizeof("/.well-known/openid-configuration")) {
		kh_err_set(err, "%s: path is too long", dir);
		return -ENAMETOOLONG;
	}

	rc = build_jwks(current, retired_dir, overlap, now, &jwks, err);
	if (rc < 0)
		goto out;
	doc = build_discovery(issuer, jwks);
	if (!doc) {
		kh_err_set(err, "out of memory building the discovery document");
		rc = -ENOMEM;
		goto out;
	}

	(void)snprintf(path, sizeof(path), "%s/.well-known", dir);
	rc = ensure_dir(dir, err);
	if (rc == 0)
		rc = ensure_dir(path, err);
	if (rc < 0)
		goto out;
	(void)snprintf(path, sizeof(path), "%s/jwks.json", dir);
	rc = replace_json_file(path, jwks, err);
	if (rc < 0)
		goto out;
	(void)snprintf(path, sizeof(path), "%s/.well-known/openid-configuration",
		       dir);
	rc = replace_json_file(path, doc, err);
out:
	json_decref(doc);
	json_decref(jwks);
	return rc;
}

int kh_fed_key_retire(const struct kh_fed_key *key, const char *retired_dir,
		      int64_t now, struct kh_err *err)
{
	char path[PATH_MAX];
	json_t *record = NULL;
	char *text = NULL;
	int n;
	int rc;

	if (!key || !retired_dir) {
		kh_err_set(err, "retiring a key needs the key and retired_dir");
		return -EINVAL;
	}
	n = snprintf(path, sizeof(path), "%s/%s.json", retired_dir, key->kid);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		kh_err_set(err, "%s: path is too long", retired_dir);
		return -ENAMETOOLONG;
	}
	rc = ensure_dir(retired_dir, err);
	if (rc < 0)
		return rc;

	record = json_pack("{s:o, s:I}", "jwk", kh_fed_key_public_jwk(key),
			   "retired_at", (json_int_t)now);
	text = record ? json_dumps(record, JSON_SORT_KEYS) : NULL;
	if (!text) {
		kh_err_set(err, "out of memory building the retired key record");
		rc = -ENOMEM;
		goto out;
	}
	rc = kh_keyfile_write(path, text, strlen(text), 0644, err);
out:
	free(text);
	json_decref(record);
	return rc;
}
