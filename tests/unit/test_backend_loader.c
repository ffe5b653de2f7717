/*
 * The backend module loader: the file, ownership, ABI version and type
 * checks a module must pass before keyhole runs it, the module cache,
 * the fetch failure wording, and "<name>#<field>" selection.
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
#include "keyhole/backend_module.h"

/*
 * A fresh directory for modules, inside the build tree so that a /tmp
 * mounted noexec cannot break dlopen. remove_dir deletes it.
 */
static char dir[PATH_MAX];

static void make_dir(void)
{
	(void)snprintf(dir, sizeof(dir), "%s/../tests/kh-loader.XXXXXX",
		       kh_test_backend_dir());
	if (!mkdtemp(dir))
		kh_test_fail(__FILE__, __LINE__, "mkdtemp %s: %s", dir,
			     strerror(errno));
}

static void remove_dir(void)
{
	char cmd[PATH_MAX + 16];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_INT(system(cmd), 0);
}

static char *dir_path(const char *name)
{
	static char path[2 * PATH_MAX];

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

/* Copies the built file module into dir under the name of type. */
static void install_file_module(const char *type, mode_t mode)
{
	char cmd[3 * PATH_MAX];

	(void)snprintf(cmd, sizeof(cmd),
		       "install -m %o '%s/kh_backend_file.so' "
		       "'%s/kh_backend_%s.so'",
		       (unsigned)mode, kh_test_backend_dir(), dir, type);
	CHECK_INT(system(cmd), 0);
}

/* Creates dir/name with text and mode. */
static void put_file(const char *name, const char *text, mode_t mode)
{
	int fd = open(dir_path(name), O_WRONLY | O_CREAT | O_EXCL, mode);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_INT(write(fd, text, strlen(text)), (long long)strlen(text));
	close(fd);
}

/*
 * Opens a backend of type from module_dir, with dir as its store, and
 * checks the result against expected and a part of the message.
 */
static void expect_open(const char *module_dir, const char *type,
			int expected, const char *message)
{
	struct kh_backend_env env = { .backend_dir = module_dir };
	struct kh_backend *backend = (struct kh_backend *)1;
	struct kh_err err = { "" };
	json_t *conf = json_pack("{s:s, s:s}", "type", type, "dir", dir);
	int r = kh_backend_open("b1", conf, "/", &env, &backend, &err);

	if (r != expected || (r < 0 && backend != NULL) ||
	    !strstr(err.msg, message))
		kh_test_fail(__FILE__, __LINE__, "type %s: r=%d err=\"%s\", "
			     "expected %d and \"%s\"", type, r, err.msg,
			     expected, message);
	if (r == 0)
		kh_backend_close(backend);
	json_decref(conf);
}

/* The test modules are built into $BUILD/tests/modules. */
static const char *test_module_dir(void)
{
	static char path[PATH_MAX];

	(void)snprintf(path, sizeof(path), "%s/../tests/modules",
		       kh_test_backend_dir());
	return path;
}

static void test_version_mismatch(void)
{
	char message[PATH_MAX + 128];

	make_dir();
	CHECK_INT(chmod(dir, 0700), 0);
	(void)snprintf(message, sizeof(message),
		       "%s/kh_backend_abi2.so has backend ABI version %d, but "
		       "this keyhole expects version %d", test_module_dir(),
		       KH_BACKEND_ABI_VERSION + 1, KH_BACKEND_ABI_VERSION);
	expect_open(test_module_dir(), "abi2", -EPROTO, message);
	remove_dir();
}

static void test_wrong_type(void)
{
	make_dir();
	CHECK_INT(chmod(dir, 0700), 0);
	install_file_module("other", 0755);
	expect_open(dir, "other", -EINVAL,
		    "declares type \"file\" but its file name is for type "
		    "\"other\"");
	remove_dir();
}

static void test_incomplete_modules(void)
{
	make_dir();
	CHECK_INT(chmod(dir, 0700), 0);
	expect_open(test_module_dir(), "noops", -EINVAL,
		    "leaves a required function of its descriptor NULL");
	expect_open(test_module_dir(), "nosymbol", -ENOEXEC,
		    "does not export the symbol \"kh_backend_module\"");
	remove_dir();
}

/* A module that others could change never runs. */
static void test_unsafe_mode(void)
{
	static const struct {
		mode_t mode;
		uid_t owner;
		const char *message;
	} cases[] = {
		{ 0775, 0, "which lets group or others change it" },
		{ 0757, 0, "which lets group or others change it" },
		{ 0755, 65534, "is owned by uid 65534" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_dir();
		CHECK_INT(chmod(dir, 0700), 0);
		install_file_module("file", cases[i].mode);
		CHECK_INT(chmod(dir_path("kh_backend_file.so"), cases[i].mode),
			  0);
		CHECK_INT(chown(dir_path("kh_backend_file.so"), cases[i].owner,
				(gid_t)-1), 0);
		expect_open(dir, "file", -EPERM, cases[i].message);
		remove_dir();
	}
}

static void test_missing_and_links(void)
{
	make_dir();
	CHECK_INT(chmod(dir, 0700), 0);
	expect_open(dir, "absent", -ENOENT,
		    "no module for backend type \"absent\"");
	expect_open(dir, "../file", -EINVAL, "is not a valid backend type");
	expect_open(dir, "File", -EINVAL, "is not a valid backend type");

	install_file_module("real", 0755);
	CHECK_INT(symlink("kh_backend_real.so", dir_path("kh_backend_file.so")),
		  0);
	expect_open(dir, "file", -ELOOP, "is a symbolic link");

	/* A file that is no shared object fails in dlopen, with its name. */
	put_file("kh_backend_junk.so", "not elf", 0644);
	expect_open(dir, "junk", -ENOEXEC, "cannot load module");
	remove_dir();
}

/* One module file is loaded once, whatever the number of instances. */
static void test_module_cache(void)
{
	struct kh_backend *a = NULL, *b = NULL;
	struct kh_err err = { "" };
	json_t *conf;

	make_dir();
	CHECK_INT(chmod(dir, 0700), 0);
	conf = json_pack("{s:s, s:s}", "type", "file", "dir", dir);
	CHECK_INT(kh_backend_open("a", conf, "/", kh_test_backend_env(), &a,
				  &err), 0);
	CHECK_INT(kh_backend_open("b", conf, "/", kh_test_backend_env(), &b,
				  &err), 0);
	if (a && b) {
		CHECK(a->module == b->module);
		CHECK(a->host != b->host);
		CHECK_STR(a->host->backend_name, "a");
		CHECK_STR(b->host->backend_name, "b");
	}
	if (a) {
		json_t *facts = kh_backend_describe(a);

		CHECK(json_is_object(facts));
		CHECK_INT(json_object_size(facts), 0);
		json_decref(facts);
	}
	kh_backend_close(a);
	kh_backend_close(b);
	json_decref(conf);
	remove_dir();
}

static void test_reason_wording(void)
{
	CHECK_STR(kh_backend_reason(KH_FETCH_AUTH_REFUSED), "auth refused");
	CHECK_STR(kh_backend_reason(KH_FETCH_NOT_FOUND), "not found");
	CHECK_STR(kh_backend_reason(KH_FETCH_THROTTLED), "throttled");
	CHECK_STR(kh_backend_reason(KH_FETCH_TIMED_OUT), "timed out");
	CHECK_STR(kh_backend_reason(KH_FETCH_TLS_FAILURE), "TLS failure");
	CHECK_STR(kh_backend_reason(KH_FETCH_BAD_RESPONSE), "bad response");
	CHECK_STR(kh_backend_reason(KH_FETCH_UNREACHABLE), "unreachable");
	CHECK_STR(kh_backend_reason(KH_FETCH_SERVER_ERROR), "server error");
	CHECK_STR(kh_backend_reason(-ENOMEM), "backend error");
}

static void test_split_field(void)
{
	static const struct {
		const char *secret;
		int expected;
		const char *base;
		const char *field;
	} cases[] = {
		{ "db", 0, "db", NULL },
		{ "db#password", 0, "db", "password" },
		{ "db#a#b", 0, "db", "a#b" },
		{ "#password", -EINVAL, NULL, NULL },
		{ "db#", -EINVAL, NULL, NULL },
		{ "", -EINVAL, NULL, NULL },
		{ "0123456789#f", -ENAMETOOLONG, NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char base[8];
		const char *field = "unset";
		int r = kh_backend_split_field(cases[i].secret, base,
					       sizeof(base), &field);

		CHECK_INT(r, cases[i].expected);
		if (r != 0)
			continue;
		CHECK_STR(base, cases[i].base);
		if (cases[i].field)
			CHECK_STR(field, cases[i].field);
		else
			CHECK(field == NULL);
	}
}

/* "#field" picks one member; failures carry the fetch reason wording. */
static void test_field_selection(void)
{
	static const struct {
		const char *name;
		int expected;
		const char *value;   /* or the start of the message */
	} cases[] = {
		{ "db#password", 0, "s3cr\xc3\xa9t" },
		{ "db#port", 0, "5432" },
		{ "db#nested", 0, "{\"a\":[1,true,null]}" },
		{ "db#empty", 0, "" },
		{ "db", 0, NULL },
		{ "db#missing", KH_FETCH_NOT_FOUND,
		  "not found: secret \"db\" has no field \"missing\"" },
		{ "plain#x", KH_FETCH_BAD_RESPONSE,
		  "bad response: secret \"plain\" is not a JSON object" },
		{ "list#x", KH_FETCH_BAD_RESPONSE,
		  "bad response: secret \"list\" is not a JSON object" },
		{ "dup#a", KH_FETCH_BAD_RESPONSE,
		  "bad response: secret \"dup\" is not a JSON object" },
		{ "absent#x", KH_FETCH_NOT_FOUND, "not found: secret" },
	};
	static const char db[] = "{\"password\":\"s3cr\xc3\xa9t\",\"port\":5432,"
				 "\"nested\":{\"a\":[1,true,null]},"
				 "\"empty\":\"\"}";
	struct kh_backend *backend = NULL;
	struct kh_err err = { "" };
	json_t *conf;

	make_dir();
	CHECK_INT(chmod(dir, 0700), 0);
	put_file("db", db, 0600);
	put_file("plain", "hunter2-not-json", 0600);
	put_file("list", "[1,2]", 0600);
	put_file("dup", "{\"a\":\"1\",\"a\":\"2\"}", 0600);
	conf = json_pack("{s:s, s:s}", "type", "file", "dir", dir);
	CHECK_INT(kh_backend_open("local", conf, "/", kh_test_backend_env(),
				  &backend, &err), 0);
	for (size_t i = 0; backend && i < sizeof(cases) / sizeof(cases[0]);
	     i++) {
		struct kh_fetch_ctx ctx = { "jti-field", 0 };
		struct kh_secret *secret = NULL;
		const char *want = cases[i].value ? cases[i].value : db;
		int r;

		kh_err_clear(&err);
		r = kh_backend_fetch(backend, cases[i].name, &ctx, &secret,
				     &err);
		CHECK_INT(r, cases[i].expected);
		if (r == 0 && secret) {
			CHECK_INT(secret->len, (long long)strlen(want));
			CHECK(memcmp(secret->data, want, secret->len) == 0);
		} else if (strncmp(err.msg, want, strlen(want)) != 0) {
			kh_test_fail(__FILE__, __LINE__, "%s: err \"%s\", "
				     "expected it to start with \"%s\"",
				     cases[i].name, err.msg, want);
		}
		/* No part of a secret that failed to parse is reported. */
		CHECK(strstr(err.msg, "hunter2") == NULL);
		kh_secret_free(secret);
	}
	kh_backend_close(backend);
	json_decref(conf);
	remove_dir();
}

static const struct kh_test_case cases[] = {
	{ "version mismatch", test_version_mismatch },
	{ "wrong type", test_wrong_type },
	{ "incomplete modules", test_incomplete_modules },
	{ "unsafe mode", test_unsafe_mode },
	{ "missing and links", test_missing_and_links },
	{ "module cache", test_module_cache },
	{ "reason wording", test_reason_wording },
	{ "split field", test_split_field },
	{ "field selection", test_field_selection },
};

int main(void)
{
	return KH_TEST_RUN("backend_loader", cases);
}
