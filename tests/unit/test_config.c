/*
 * keyhole.json loading: required keys, defaults, relative paths, the
 * on_policy_change switch, the backends shape, and the error message
 * for every kind of bad input.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "keyhole/config.h"

static char work[64];

/* The required keys with relative paths, as a JSON fragment. */
#define REQUIRED                                                           \
	"\"tenant\":\"acme\",\"env\":\"prod\",\"broker_id\":\"b1\","       \
	"\"permit_key\":\"keys/permit.jwk\","                              \
	"\"audit_key\":\"keys/audit.jwk\",\"policy\":\"policy.json\","     \
	"\"audit_dir\":\"audit\""

static void make_work(void)
{
	kh_test_mkdtemp(work, sizeof(work), "/tmp/kh-test-config.XXXXXX");
}

static void remove_work(void)
{
	kh_test_rmtree(work);
}

/* Writes text to work/name and returns its path (static buffer). */
static const char *write_config(const char *name, const char *text)
{
	static char path[PATH_MAX];
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s", work, name) >=
	    (int)sizeof(path))
		kh_test_fail(__FILE__, __LINE__, "path too long");
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		CHECK(fputs(text, f) >= 0);
		CHECK_INT(fclose(f), 0);
	}
	return path;
}

/* Builds "<work>/<rest>" for comparisons. */
static const char *in_work(const char *rest)
{
	static char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", work, rest) >=
	    (int)sizeof(path))
		kh_test_fail(__FILE__, __LINE__, "path too long");
	return path;
}

static void test_load_minimal(void)
{
	struct kh_config *config = NULL;
	struct kh_err err = { "" };
	const char *path;
	int r;

	make_work();
	path = write_config("keyhole.json", "{" REQUIRED "}");
	r = kh_config_load(path, &config, &err);
	CHECK_INT(r, 0);
	if (config) {
		CHECK_STR(config->path, in_work("keyhole.json"));
		CHECK_STR(config->dir, work);
		CHECK_STR(config->tenant, "acme");
		CHECK_STR(config->env, "prod");
		CHECK_STR(config->broker_id, "b1");
		CHECK_STR(config->permit_key, in_work("keys/permit.jwk"));
		CHECK_STR(config->audit_key, in_work("keys/audit.jwk"));
		CHECK_STR(config->policy, in_work("policy.json"));
		CHECK_STR(config->audit_dir, in_work("audit"));
		CHECK_STR(config->socket, KH_SOCKET_DEFAULT);
		CHECK_STR(config->permits_dir, KH_PERMITS_DEFAULT);
		CHECK_STR(config->secrets_mount, KH_SECRETS_DEFAULT);
		CHECK_INT(config->on_policy_change, KH_POLICY_CHANGE_REJECT);
		CHECK_STR(config->admin_group, "");
		CHECK(json_is_object(config->backends));
		CHECK_INT(json_object_size(config->backends), 0);
	}
	kh_config_free(config);
	remove_work();
}

static void test_load_every_key(void)
{
	struct kh_config *config = NULL;
	struct kh_err err = { "" };
	const char *path;
	int r;

	make_work();
	path = write_config(
		"full.json",
		"{" REQUIRED ",\"socket\":\"/run/kh/s.sock\","
		"\"permits_dir\":\"permits\",\"secrets_mount\":\"/mnt/secrets\","
		"\"on_policy_change\":\"honor\",\"admin_group\":\"keyhole-admin\","
		"\"backends\":{\"local\":{\"type\":\"file\",\"dir\":\"cs\"},"
		"\"vault-1\":{\"type\":\"vault\",\"addr\":\"x\"}}}");
	r = kh_config_load(path, &config, &err);
	CHECK_INT(r, 0);
	if (config) {
		CHECK_STR(config->socket, "/run/kh/s.sock");
		CHECK_STR(config->permits_dir, in_work("permits"));
		CHECK_STR(config->secrets_mount, "/mnt/secrets");
		CHECK_INT(config->on_policy_change, KH_POLICY_CHANGE_HONOR);
		CHECK_STR(config->admin_group, "keyhole-admin");
		CHECK_INT(json_object_size(config->backends), 2);
		CHECK_STR(json_string_value(json_object_get(
				  json_object_get(config->backends, "local"),
				  "dir")),
			  "cs");
	}
	kh_config_free(config);
	remove_work();
}

/*
 * A relative config path and a symlinked directory both resolve to the
 * realpath of the directory that contains the file.
 */
static void test_relative_config_path(void)
{
	struct kh_config *config = NULL;
	struct kh_err err = { "" };
	char old_cwd[PATH_MAX];
	char link_path[PATH_MAX];

	make_work();
	CHECK_INT(mkdir(in_work("etc"), 0755), 0);
	(void)write_config("etc/keyhole.json", "{" REQUIRED "}");
	(void)snprintf(link_path, sizeof(link_path), "%s", in_work("link"));
	CHECK_INT(symlink("etc", link_path), 0);
	CHECK(getcwd(old_cwd, sizeof(old_cwd)) != NULL);
	CHECK_INT(chdir(work), 0);

	CHECK_INT(kh_config_load("link/keyhole.json", &config, &err), 0);
	if (config) {
		CHECK_STR(config->dir, in_work("etc"));
		CHECK_STR(config->path, in_work("etc/keyhole.json"));
		CHECK_STR(config->policy, in_work("etc/policy.json"));
	}
	kh_config_free(config);
	config = NULL;

	CHECK_INT(chdir("etc"), 0);
	CHECK_INT(kh_config_load("keyhole.json", &config, &err), 0);
	if (config)
		CHECK_STR(config->audit_dir, in_work("etc/audit"));
	kh_config_free(config);

	CHECK_INT(chdir(old_cwd), 0);
	remove_work();
}

/* Every rejected document, with the JSON path its error must name. */
static void test_load_rejects(void)
{
	static const struct {
		const char *text;
		const char *message;
	} cases[] = {
		{ "[]", "$: expected a JSON object" },
		{ "{" REQUIRED ",\"colour\":1}",
		  "config.json:1: $.colour: unknown key \"colour\"; allowed keys: "
		  "tenant" },
		{ "{\"env\":\"prod\",\"broker_id\":\"b\",\"permit_key\":\"k\","
		  "\"audit_key\":\"a\",\"policy\":\"p\",\"audit_dir\":\"d\"}",
		  "config.json:1: $: missing required key \"tenant\"" },
		{ "{\"tenant\":\"t\",\"env\":\"prod\",\"broker_id\":\"b\","
		  "\"permit_key\":\"k\",\"audit_key\":\"a\",\"policy\":\"p\"}",
		  "config.json:1: $: missing required key \"audit_dir\" (the "
		  "audit log directory)" },
		{ "{" REQUIRED ",\"socket\":5}", "$.socket: expected a string" },
		{ "{" REQUIRED ",\"socket\":null}",
		  "$.socket: expected a string" },
		{ "{" REQUIRED ",\"admin_group\":7}",
		  "$.admin_group: expected a string, not a number" },
		{ "{" REQUIRED ",\"admin_group\":\"\"}",
		  "$.admin_group: expected a non-empty string" },
		{ "{" REQUIRED ",\"permits_dir\":\"\"}",
		  "$.permits_dir: expected a non-empty string" },
		{ "{" REQUIRED ",\"socket\":\"a\\u0000b\"}",
		  "$.socket: expected a non-empty string without NUL" },
		{ "{" REQUIRED ",\"on_policy_change\":\"ignore\"}",
		  "$.on_policy_change: \"ignore\" is not allowed; expected "
		  "\"reject\" (the default" },
		{ "{" REQUIRED ",\"on_policy_change\":true}",
		  "$.on_policy_change: a boolean is not allowed; expected "
		  "\"reject\"" },
		{ "{" REQUIRED ",\"backends\":[]}",
		  "$.backends: expected an object" },
		{ "{" REQUIRED ",\"backends\":{\"a b\":{\"type\":\"file\"}}}",
		  "$.backends[\"a b\"]: invalid backend name" },
		{ "{" REQUIRED ",\"backends\":{\"\":{\"type\":\"file\"}}}",
		  "$.backends[\"\"]: invalid backend name" },
		{ "{" REQUIRED ",\"backends\":{\"local\":{\"dir\":\"x\"}}}",
		  "$.backends.local: expected an object with a string \"type\"" },
		{ "{" REQUIRED ",\"backends\":{\"local\":\"file\"}}",
		  "$.backends.local: expected an object with a string \"type\"" },
		{ "{" REQUIRED ",\"tenant\":\"again\"}", "tenant" },
		{ "{" REQUIRED "", "config.json" },
	};

	make_work();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kh_config *config = (struct kh_config *)1;
		struct kh_err err = { "" };
		const char *path = write_config("config.json", cases[i].text);
		int r = kh_config_load(path, &config, &err);

		if (r >= 0 || config != NULL ||
		    !strstr(err.msg, cases[i].message) ||
		    !strstr(err.msg, "config.json"))
			kh_test_fail(__FILE__, __LINE__, "case %zu: r=%d "
				     "err=\"%s\", expected \"%s\"",
				     i, r, err.msg, cases[i].message);
	}
	remove_work();
}

/* A value longer than its field is rejected, not cut short. */
static void test_load_rejects_long_values(void)
{
	struct kh_config *config = (struct kh_config *)1;
	struct kh_err err = { "" };
	char text[8192];
	char long_env[100];

	memset(long_env, 'e', sizeof(long_env) - 1);
	long_env[sizeof(long_env) - 1] = '\0';
	make_work();
	(void)snprintf(text, sizeof(text),
		       "{\"tenant\":\"t\",\"env\":\"%s\",\"broker_id\":\"b\","
		       "\"permit_key\":\"k\",\"audit_key\":\"a\","
		       "\"policy\":\"p\",\"audit_dir\":\"d\"}",
		       long_env);
	CHECK_INT(kh_config_load(write_config("c.json", text), &config, &err),
		  -ENAMETOOLONG);
	CHECK(config == NULL);
	CHECK(strstr(err.msg, "$.env: value is longer than 63 bytes") != NULL);
	remove_work();
}

static void test_load_missing_file(void)
{
	struct kh_config *config = (struct kh_config *)1;
	struct kh_err err = { "" };

	CHECK(kh_config_load("/nonexistent-kh-dir/keyhole.json", &config,
			     &err) < 0);
	CHECK(config == NULL);
	CHECK(strstr(err.msg, "/nonexistent-kh-dir") != NULL);

	config = (struct kh_config *)1;
	CHECK_INT(kh_config_load("", &config, &err), -EINVAL);
	CHECK(config == NULL);

	make_work();
	config = (struct kh_config *)1;
	CHECK(kh_config_load(in_work("absent.json"), &config, &err) < 0);
	CHECK(config == NULL);
	CHECK(strstr(err.msg, "absent.json") != NULL);
	remove_work();
}

/* Messages collected from a check, in the order they were reported. */
struct reports {
	char messages[8][512];
	size_t count;
};

static void collect(const char *message, void *ctx)
{
	struct reports *r = ctx;

	if (r->count < 8)
		(void)snprintf(r->messages[r->count], sizeof(r->messages[0]),
			       "%s", message);
	r->count++;
}

/* Independent errors, each on its own line. */
static const char many_errors[] =
	"{\n"
	"\"tenant\": \"acme\",\n"
	"\"env\": 5,\n"
	"\"colour\": 1,\n"
	"\"broker_id\": \"b\",\n"
	"\"permit_key\": \"k\", \"audit_key\": \"a\", \"policy\": \"p\",\n"
	"\"on_policy_change\": \"ignore\",\n"
	"\"backends\": {\"a b\": {\"type\": \"file\"},\n"
	"\"ok\": {\"dir\": 1}}\n"
	"}\n";

static const char *const many_expected[] = {
	("config.json:4: $.colour: unknown key \"colour\"; allowed keys: tenant, "
	 "env, broker_id, permit_key, audit_key, policy, audit_dir, socket, "
	 "permits_dir, secrets_mount, backend_dir, on_policy_change, backends, "
	 "federation"),
	"config.json:3: $.env: expected a string, not a number",
	"config.json:1: $: missing required key \"audit_dir\"",
	("config.json:7: $.on_policy_change: \"ignore\" is not allowed; expected "
	 "\"reject\" (the default: permits minted under an older policy are "
	 "refused) or \"honor\" (they stay valid until they expire)"),
	"config.json:8: $.backends[\"a b\"]: invalid backend name",
	("config.json:9: $.backends.ok: expected an object with a string "
	 "\"type\""),
};

static void test_check_reports_every_error(void)
{
	struct reports r = { .count = 0 };
	size_t want = sizeof(many_expected) / sizeof(many_expected[0]);
	struct kh_config *config = (struct kh_config *)1;
	struct kh_err err = { "" };
	const char *path;

	make_work();
	path = write_config("config.json", many_errors);
	CHECK_INT(kh_config_check(path, collect, &r), (long long)want);
	CHECK_INT(r.count, (long long)want);
	for (size_t i = 0; i < want && i < r.count; i++)
		if (!strstr(r.messages[i], many_expected[i]) ||
		    strncmp(r.messages[i], work, strlen(work)) != 0)
			kh_test_fail(__FILE__, __LINE__, "message %zu is \"%s\", "
				     "expected \"%s\" after the directory",
				     i, r.messages[i], many_expected[i]);

	/* kh_config_load stops at the first of them. */
	CHECK_INT(kh_config_load(path, &config, &err), -EINVAL);
	CHECK(config == NULL);
	CHECK(r.count > 0);
	CHECK_STR(err.msg, r.messages[0]);
	remove_work();
}

static void test_check_valid_and_syntax(void)
{
	struct reports r = { .count = 0 };

	make_work();
	CHECK_INT(kh_config_check(write_config("ok.json", "{" REQUIRED "}"),
				  collect, &r), 0);
	CHECK_INT(r.count, 0);
	CHECK_INT(kh_config_check(write_config("bad.json", "{" REQUIRED ",}"),
				  collect, &r), 1);
	CHECK_INT(r.count, 1);
	CHECK(strstr(r.messages[0], "bad.json: invalid JSON") != NULL);
	CHECK_INT(kh_config_check(in_work("bad.json"), NULL, NULL), 1);
	remove_work();
}

/* A missing config, or a missing directory for it, names the fix. */
static void test_check_missing_names_fix(void)
{
	struct reports r = { .count = 0 };
	struct kh_config *config = (struct kh_config *)1;
	struct kh_err err = { "" };

	CHECK_INT(kh_config_check("/nonexistent-kh-dir/keyhole.json", collect,
				  &r), -ENOENT);
	CHECK_INT(r.count, 1);
	CHECK(strstr(r.messages[0], "/nonexistent-kh-dir/keyhole.json: config "
		     "not found, because directory /nonexistent-kh-dir does "
		     "not exist; create it from the example") != NULL);
	CHECK(strstr(r.messages[0], "or pass --config FILE") != NULL);

	make_work();
	CHECK_INT(kh_config_load(in_work("absent.json"), &config, &err),
		  -ENOENT);
	CHECK(config == NULL);
	CHECK(strstr(err.msg, "absent.json: config not found; create it from "
		     "the example keyhole.json") != NULL);
	CHECK(strstr(err.msg, "or pass --config FILE") != NULL);
	remove_work();
}

static void test_public_key_path(void)
{
	static const struct {
		const char *private_path;
		const char *expected;
	} cases[] = {
		{ "/etc/keyhole/permit.jwk", "/etc/keyhole/permit.pub.jwk" },
		{ "audit.jwk", "audit.pub.jwk" },
		{ "/k/key", "/k/key.pub.jwk" },
		{ ".jwk", ".pub.jwk" },
		{ "a.json", "a.json.pub.jwk" },
	};
	char out[PATH_MAX];
	char small[12];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_INT(kh_config_public_key_path(cases[i].private_path, out,
						    sizeof(out)), 0);
		CHECK_STR(out, cases[i].expected);
	}
	CHECK_INT(kh_config_public_key_path("/long/name.jwk", small,
					    sizeof(small)), -ENAMETOOLONG);
	CHECK_STR(small, "");
	CHECK_INT(kh_config_public_key_path("", out, sizeof(out)), -EINVAL);
	CHECK_INT(kh_config_public_key_path(NULL, out, sizeof(out)), -EINVAL);
}

static const struct kh_test_case cases[] = {
	{ "load minimal", test_load_minimal },
	{ "load every key", test_load_every_key },
	{ "relative config path", test_relative_config_path },
	{ "load rejects bad input", test_load_rejects },
	{ "load rejects long values", test_load_rejects_long_values },
	{ "load missing file", test_load_missing_file },
	{ "public key path", test_public_key_path },
	{ "check reports every error", test_check_reports_every_error },
	{ "check valid and syntax", test_check_valid_and_syntax },
	{ "check missing names fix", test_check_missing_names_fix },
};

int main(void)
{
	return KH_TEST_RUN("config", cases);
}
