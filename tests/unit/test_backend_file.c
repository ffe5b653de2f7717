/*
 * The file backend module, loaded from the build: configuration checks
 * on the store directory, listing, fetching into secure memory, and the
 * names and file types a fetch must reject.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_dir.h"
#include "harness.h"
#include "keyhole/backend.h"

/* A fresh 0700 store under /tmp, removed by remove_store. */
static char store[64];

static void make_store(void)
{
	(void)snprintf(store, sizeof(store), "/tmp/kh-test-backend.XXXXXX");
	if (!mkdtemp(store))
		kh_test_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	CHECK_INT(chmod(store, 0700), 0);
}

static void remove_store(void)
{
	char cmd[PATH_MAX + 16];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", store);
	CHECK_INT(system(cmd), 0);
}

/* Writes text to a file in the store. */
static void put_file(const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s", store, name);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT(fputs(text, f) >= 0, 1);
	CHECK_INT(fclose(f), 0);
}

static char *store_path(const char *name)
{
	static char path[PATH_MAX];

	(void)snprintf(path, sizeof(path), "%s/%s", store, name);
	return path;
}

/* Opens a file backend on dir, or records a failure and returns NULL. */
static struct kh_backend *open_store_at(const char *dir)
{
	struct kh_backend *backend = NULL;
	struct kh_err err = { "" };
	json_t *conf = json_pack("{s:s, s:s}", "type", "file", "dir", dir);
	int r = kh_backend_open("local", conf, "/", kh_test_backend_env(),
				    &backend, &err);

	if (r != 0)
		kh_test_fail(__FILE__, __LINE__, "open: %d %s", r, err.msg);
	json_decref(conf);
	return backend;
}

static struct kh_backend *open_store(void)
{
	return open_store_at(store);
}

/* The module declares its type and has no static credential. */
static void test_module_type(void)
{
	struct kh_backend *backend;

	make_store();
	backend = open_store();
	if (backend) {
		CHECK_STR(kh_backend_type(backend), "file");
		CHECK(!kh_backend_is_static(backend));
	}
	kh_backend_close(backend);
	remove_store();
}

static void test_backend_names(void)
{
	static const struct {
		const char *name;
		int valid;
	} cases[] = {
		{ "local", 1 },
		{ "A-z_09", 1 },
		{ "x", 1 },
		{ "", 0 },
		{ "has space", 0 },
		{ "a/b", 0 },
		{ "a.b", 0 },
		{ "\xc3\xa9", 0 },
		{ "0123456789012345678901234567890123456789012345678901234567890"
		  "12", 1 },
		{ "0123456789012345678901234567890123456789012345678901234567890"
		  "123", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (kh_backend_name_is_valid(cases[i].name) != cases[i].valid)
			kh_test_fail(__FILE__, __LINE__, "name \"%s\": "
				     "expected valid=%d",
				     cases[i].name, cases[i].valid);
	}
	CHECK_INT(kh_backend_name_is_valid(NULL), 0);
}

/* Bad configurations: each must fail with its errno and a telling message. */
static void test_open_rejects(void)
{
	static const struct {
		const char *name;
		const char *conf;
		int expected;
		const char *message;
	} cases[] = {
		{ "local", "{\"dir\":\"@\"}", -EINVAL, "$.type" },
		{ "local", "{\"type\":7,\"dir\":\"@\"}", -EINVAL, "$.type" },
		{ "local", "{\"type\":\"nosuch\"}", -ENOENT,
		  "no module for backend type \"nosuch\"" },
		{ "bad name", "{\"type\":\"file\"}", -EINVAL,
		  "backend name \"bad name\" is invalid" },
		{ "local", "[]", -EINVAL, "expected a JSON object" },
		{ "local", "{\"type\":\"file\",\"dir\":\"@\",\"mode\":1}",
		  -EINVAL, "backend local: $.mode: unknown key" },
		{ "local", "{\"type\":\"file\",\"dir\":5}", -EINVAL,
		  "$.dir: expected a non-empty path string" },
		{ "local", "{\"type\":\"file\",\"dir\":\"\"}", -EINVAL,
		  "$.dir: expected a non-empty path string" },
		{ "local", "{\"type\":\"file\",\"dir\":\"@/missing\"}", -ENOENT,
		  "does not exist; create it with \"install -d -m 0700" },
		{ "local", "{\"type\":\"file\",\"dir\":\"@/plain\"}", -ENOTDIR,
		  "cannot open directory" },
	};

	make_store();
	put_file("plain", "x");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kh_backend *backend = (struct kh_backend *)1;
		struct kh_err err = { "" };
		char text[PATH_MAX * 2];
		const char *at = strchr(cases[i].conf, '@');
		json_t *conf;
		int r;

		/* '@' in a case stands for the store directory. */
		if (at)
			(void)snprintf(text, sizeof(text), "%.*s%s%s",
				       (int)(at - cases[i].conf), cases[i].conf,
				       store, at + 1);
		else
			(void)snprintf(text, sizeof(text), "%s", cases[i].conf);
		conf = json_loads(text, 0, NULL);
		CHECK(conf != NULL);
		r = kh_backend_open(cases[i].name, conf, "/",
				    kh_test_backend_env(), &backend, &err);
		if (r != cases[i].expected || backend != NULL ||
		    !strstr(err.msg, cases[i].message))
			kh_test_fail(__FILE__, __LINE__, "case %zu: r=%d "
				     "err=\"%s\", expected %d and \"%s\"",
				     i, r, err.msg, cases[i].expected,
				     cases[i].message);
		json_decref(conf);
	}
	remove_store();
}

/* A store that others can enter, or that another user owns, is rejected. */
static void test_open_rejects_loose_dir(void)
{
	static const struct {
		mode_t mode;
		uid_t owner;
		const char *message;
	} cases[] = {
		{ 0750, 0, "run \"chmod 0700 " },
		{ 0701, 0, "run \"chmod 0700 " },
		{ 0700, 65534, "is owned by uid 65534; run \"chown root " },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kh_backend *backend = NULL;
		struct kh_err err = { "" };
		json_t *conf;
		int r;

		make_store();
		CHECK_INT(chmod(store, cases[i].mode), 0);
		CHECK_INT(chown(store, cases[i].owner, (gid_t)-1), 0);
		conf = json_pack("{s:s, s:s}", "type", "file", "dir", store);
		r = kh_backend_open("local", conf, "/", kh_test_backend_env(),
				    &backend, &err);
		if (r != -EPERM || !strstr(err.msg, cases[i].message))
			kh_test_fail(__FILE__, __LINE__, "case %zu: r=%d "
				     "err=\"%s\"",
				     i, r, err.msg);
		CHECK(backend == NULL);
		json_decref(conf);
		remove_store();
	}
}

/* A relative dir resolves against base_dir, the config's directory. */
static void test_relative_dir(void)
{
	struct kh_backend *backend = NULL;
	struct kh_err err = { "" };
	struct kh_secret *secret = NULL;
	json_t *conf;
	int r;

	make_store();
	CHECK_INT(mkdir(store_path("credstore"), 0700), 0);
	put_file("credstore/token", "abc");
	conf = json_pack("{s:s, s:s}", "type", "file", "dir", "credstore");
	r = kh_backend_open("local", conf, store, kh_test_backend_env(),
				    &backend, &err);
	CHECK_INT(r, 0);
	if (backend) {
		r = kh_backend_fetch(backend, "token", NULL, &secret,
					&err);
		CHECK_INT(r, 0);
		CHECK(secret != NULL);
		if (secret) {
			CHECK_INT(secret->len, 3);
			CHECK(memcmp(secret->data, "abc", 3) == 0);
		}
	}
	kh_secret_free(secret);
	kh_backend_close(backend);
	json_decref(conf);
	remove_store();
}

/*
 * list gives regular, non-hidden files only, sorted by name. A name with
 * '#' is left out, because "<name>#<field>" selects a JSON field.
 */
static void test_list_regular_files(void)
{
	struct kh_backend *backend;
	struct kh_err err = { "" };
	json_t *names = NULL;
	json_t *expected;

	/* Created out of order, so a sorted result cannot come by chance. */
	make_store();
	put_file("zeta", "1");
	put_file("alpha", "2");
	put_file("mu", "3");
	put_file("beta", "4");
	put_file(".hidden", "5");
	put_file("has#hash", "6");
	CHECK_INT(mkdir(store_path("subdir"), 0700), 0);
	CHECK_INT(symlink("alpha", store_path("link")), 0);
	CHECK_INT(mkfifo(store_path("pipe"), 0600), 0);

	backend = open_store();
	if (backend) {
		CHECK_INT(kh_backend_list(backend, &names, &err), 0);
		expected = json_pack("[s,s,s,s]", "alpha", "beta", "mu",
				     "zeta");
		CHECK(json_equal(names, expected));
		json_decref(expected);
	}
	json_decref(names);
	kh_backend_close(backend);
	remove_store();
}

/* fetch returns the exact bytes, including NULs and an empty file. */
static void test_fetch_contents(void)
{
	static const unsigned char binary[] = { 'a', 0, 'b', '\n', 0xff };
	struct kh_backend *backend;
	struct kh_err err = { "" };
	struct kh_secret *secret = NULL;
	struct kh_fetch_ctx ctx = { "jti-1", 0 };
	int fd;

	make_store();
	fd = open(store_path("binary"), O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0);
	CHECK_INT(write(fd, binary, sizeof(binary)), sizeof(binary));
	close(fd);
	put_file("empty", "");

	backend = open_store();
	if (backend) {
		CHECK_INT(kh_backend_fetch(backend, "binary", &ctx,
					      &secret, &err), 0);
		CHECK(secret != NULL);
		if (secret) {
			CHECK_INT(secret->len, sizeof(binary));
			CHECK(memcmp(secret->data, binary, sizeof(binary)) == 0);
		}
		kh_secret_free(secret);
		secret = NULL;

		CHECK_INT(kh_backend_fetch(backend, "empty", &ctx,
					      &secret, &err), 0);
		CHECK(secret != NULL);
		if (secret) {
			CHECK_INT(secret->len, 0);
			CHECK(secret->data != NULL);
		}
		kh_secret_free(secret);
	}
	kh_backend_close(backend);
	remove_store();
}

/* Names that are not a single path component never reach openat. */
static void test_fetch_bad_names(void)
{
	static const struct {
		const char *name;
		int expected;
	} cases[] = {
		{ "", -EINVAL },
		{ ".", -EINVAL },
		{ "..", -EINVAL },
		{ "../outside", -EINVAL },
		{ "sub/inner", -EINVAL },
		{ "/etc/passwd", -EINVAL },
		{ "missing", -ENOENT },
		{ "#field", -EINVAL },
		{ "name#", -EINVAL },
	};
	struct kh_backend *backend;

	/* The backend serves store/cs, so "../outside" names a real file. */
	make_store();
	CHECK_INT(mkdir(store_path("cs"), 0700), 0);
	CHECK_INT(mkdir(store_path("cs/sub"), 0700), 0);
	put_file("cs/sub/inner", "nested");
	put_file("outside", "outside");
	backend = open_store_at(store_path("cs"));
	for (size_t i = 0; backend && i < sizeof(cases) / sizeof(cases[0]);
	     i++) {
		struct kh_secret *secret = (struct kh_secret *)1;
		struct kh_err err = { "" };
		int r = kh_backend_fetch(backend, cases[i].name,
					    NULL, &secret, &err);

		if (r != cases[i].expected || secret != NULL || !err.msg[0])
			kh_test_fail(__FILE__, __LINE__, "name \"%s\": r=%d, "
				     "expected %d (err \"%s\")",
				     cases[i].name, r, cases[i].expected,
				     err.msg);
	}
	kh_backend_close(backend);
	remove_store();
}

/* Symlinks, FIFOs, directories and oversized files are rejected. */
static void test_fetch_bad_files(void)
{
	static const struct {
		const char *name;
		int expected;
		const char *message;
	} cases[] = {
		{ "link", -ELOOP, "is a symbolic link" },
		{ "pipe", -EINVAL, "is not a regular file" },
		{ "subdir", -EINVAL, "is not a regular file" },
		{ "huge", -EFBIG, "above the limit of 1048576 bytes" },
	};
	struct kh_backend *backend;

	make_store();
	put_file("target", "secret");
	CHECK_INT(symlink("target", store_path("link")), 0);
	CHECK_INT(mkfifo(store_path("pipe"), 0600), 0);
	CHECK_INT(mkdir(store_path("subdir"), 0700), 0);
	put_file("huge", "");
	CHECK_INT(truncate(store_path("huge"), KH_SECRET_MAX + 1), 0);

	backend = open_store();
	for (size_t i = 0; backend && i < sizeof(cases) / sizeof(cases[0]);
	     i++) {
		struct kh_secret *secret = NULL;
		struct kh_err err = { "" };
		int r = kh_backend_fetch(backend, cases[i].name,
					    NULL, &secret, &err);

		if (r != cases[i].expected || secret != NULL ||
		    !strstr(err.msg, cases[i].message))
			kh_test_fail(__FILE__, __LINE__, "%s: r=%d err=\"%s\"",
				     cases[i].name, r, err.msg);
	}
	kh_backend_close(backend);
	remove_store();
}

/* A file of exactly KH_SECRET_MAX bytes is still served. */
static void test_fetch_max_size(void)
{
	struct kh_backend *backend;
	struct kh_secret *secret = NULL;
	struct kh_err err = { "" };

	make_store();
	put_file("max", "");
	CHECK_INT(truncate(store_path("max"), KH_SECRET_MAX), 0);
	backend = open_store();
	if (backend) {
		CHECK_INT(kh_backend_fetch(backend, "max", NULL,
					      &secret, &err), 0);
		CHECK(secret != NULL);
		if (secret)
			CHECK_INT(secret->len, KH_SECRET_MAX);
	}
	kh_secret_free(secret);
	kh_backend_close(backend);
	remove_store();
}

/* test rechecks the directory, so a later chmod shows up. */
static void test_health_check(void)
{
	struct kh_backend *backend;
	struct kh_err err = { "" };
	json_t *report = NULL;

	make_store();
	backend = open_store();
	if (backend) {
		CHECK_INT(kh_backend_test(backend, &report, &err), 0);
		CHECK_INT(json_array_size(report), 1);
		CHECK(strstr(json_string_value(json_object_get(
			      json_array_get(report, 0), "result")), "ok") != NULL);
		json_decref(report);
		CHECK_INT(chmod(store, 0755), 0);
		CHECK_INT(kh_backend_test(backend, &report, &err), -EPERM);
		CHECK(strstr(err.msg, "chmod 0700") != NULL);
		CHECK_STR(json_string_value(json_object_get(
				  json_array_get(report, 0), "result")),
			  "failed");
		json_decref(report);
	}
	kh_backend_close(backend);
	remove_store();
}

static void test_secret_buffers(void)
{
	struct kh_secret *secret = (struct kh_secret *)1;

	CHECK_INT(kh_secret_new(0, &secret), 0);
	CHECK(secret != NULL);
	if (secret) {
		CHECK(secret->data != NULL);
		CHECK_INT(secret->len, 0);
	}
	kh_secret_free(secret);

	CHECK_INT(kh_secret_new(32, &secret), 0);
	CHECK(secret != NULL);
	if (secret) {
		CHECK(secret->data != NULL);
		CHECK_INT(secret->len, 32);
		memset(secret->data, 0xaa, secret->len);
	}
	kh_secret_free(secret);

	secret = (struct kh_secret *)1;
	CHECK_INT(kh_secret_new(KH_SECRET_MAX + 1, &secret), -EFBIG);
	CHECK(secret == NULL);
	kh_secret_free(NULL);
}

static const struct kh_test_case cases[] = {
	{ "module type", test_module_type },
	{ "backend names", test_backend_names },
	{ "open rejects bad conf", test_open_rejects },
	{ "open rejects loose dir", test_open_rejects_loose_dir },
	{ "relative dir", test_relative_dir },
	{ "list regular files", test_list_regular_files },
	{ "fetch contents", test_fetch_contents },
	{ "fetch bad names", test_fetch_bad_names },
	{ "fetch bad files", test_fetch_bad_files },
	{ "fetch max size", test_fetch_max_size },
	{ "health check", test_health_check },
	{ "secret buffers", test_secret_buffers },
};

int main(void)
{
	return KH_TEST_RUN("backend_file", cases);
}
