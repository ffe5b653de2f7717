/*
 * keyholed --check-config: checks the config, both keys, the policy and
 * every backend, and prints every error found rather than stopping at
 * the first. Also the check, shared with start-up and reload, that each
 * secret a policy grants belongs to a configured backend.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon.h"
#include "keyhole/federation.h"

/* Counts of what --check-config printed. */
struct check_report {
	int errors;
	int warnings;
};

static void print_error(const char *message, void *ctx)
{
	struct check_report *report = ctx;

	fprintf(stderr, "keyholed: %s\n", message);
	report->errors++;
}

/*
 * Copies the backend part of a "<backend>/<name>" secret into out.
 * Returns false when there is none or it is too long to be a name.
 */
static bool secret_backend(const char *secret, char *out, size_t size)
{
	const char *slash = strchr(secret, '/');
	size_t len = slash ? (size_t)(slash - secret) : strlen(secret);

	if (len == 0 || len >= size)
		return false;
	memcpy(out, secret, len);
	out[len] = '\0';
	return true;
}

/* Reports each secret of one rule's grant whose backend is unknown. */
static int check_rule_grant(const struct kh_config *config, size_t index,
			    const json_t *rule, kh_err_report_fn report,
			    void *ctx)
{
	const json_t *secrets, *value;
	const char *id = json_string_value(json_object_get(rule, "id"));
	char backend[KH_BACKEND_NAME_MAX + 1], message[2 * PATH_MAX + 512];
	int count = 0;
	size_t i;

	secrets = json_object_get(json_object_get(rule, "grant"), "secrets");
	json_array_foreach(secrets, i, value) {
		const char *secret = json_string_value(value);

		backend[0] = '\0';
		if (!secret || (secret_backend(secret, backend,
					       sizeof(backend)) &&
				json_object_get(config->backends, backend)))
			continue;
		(void)snprintf(message, sizeof(message),
			       "%s: $.rules[%zu].grant.secrets[%zu]: rule "
			       "\"%s\" grants \"%s\", but %s configures no "
			       "backend \"%s\": add it under \"backends\" or "
			       "fix the secret name", config->policy, index, i, id ? id : "?", secret, config->path,
			       backend);
		if (report)
			report(message, ctx);
		count++;
	}
	return count;
}

/* The policy was loaded from config->policy, which messages name. */
int kd_check_grant_backends(const struct kh_config *config,
			    const struct kh_policy *policy,
			    kh_err_report_fn report, void *ctx)
{
	const json_t *rules, *rule;
	int count = 0;
	size_t i;

	rules = json_object_get(kh_policy_json(policy), "rules");
	json_array_foreach(rules, i, rule)
		count += check_rule_grant(config, i, rule, report, ctx);
	return count;
}

/* Checks one key and prints what is wrong with it, leaving *out NULL. */
static void check_key(const char *config_key, const char *path,
		      struct kh_key **out, struct check_report *report)
{
	struct kh_err err = { { 0 } };

	if (kd_daemon_load_key(config_key, path, out, &err) < 0)
		print_error(err.msg, report);
}

static void check_keys(const struct kh_config *config,
		       struct check_report *report)
{
	struct kh_key *permit_key = NULL, *audit_key = NULL;
	struct kh_err err = { { 0 } };

	check_key("permit_key", config->permit_key, &permit_key, report);
	check_key("audit_key", config->audit_key, &audit_key, report);
	if (permit_key && audit_key &&
	    kd_daemon_check_keys_differ(config, permit_key, audit_key,
					&err) < 0)
		print_error(err.msg, report);
	kh_key_free(permit_key);
	kh_key_free(audit_key);
}

static void check_admin_group(const struct kh_config *config,
			      struct check_report *report)
{
	struct kh_err err = { { 0 } };
	gid_t gid;

	if (config->admin_group[0] == '\0')
		return;
	if (kd_admin_group_resolve(config->admin_group, &gid, &err) < 0)
		print_error(err.msg, report);
}

/*
 * keyholed creates audit_dir itself but not its parent, so a missing
 * parent would pass here and fail at start-up.
 */
static void check_audit_parent(const struct kh_config *config,
			       struct check_report *report)
{
	char parent[PATH_MAX];
	char message[PATH_MAX + 160];
	char *slash;
	struct stat st;

	if (snprintf(parent, sizeof(parent), "%s", config->audit_dir) >=
	    (int)sizeof(parent))
		return;
	slash = strrchr(parent, '/');
	if (!slash)
		return;
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(parent, &st) == 0 && S_ISDIR(st.st_mode))
		return;
	/* A message cut at the buffer end still names the config file. */
	if (snprintf(message, sizeof(message),
		     "%s: audit_dir %s: parent directory %s does not exist; "
		     "create it (install -d -m 0755 %s)", config->path,
		     config->audit_dir, parent, parent) < 0)
		return;
	print_error(message, report);
}

/* A "<name>#<field>" grant is listed when its base name is. */
static bool name_listed(const json_t *names, const char *secret)
{
	char name[1024];
	const char *field;
	const json_t *value;
	size_t i;

	if (kh_backend_split_field(secret, name, sizeof(name), &field) < 0)
		return false;
	json_array_foreach(names, i, value) {
		const char *listed = json_string_value(value);

		if (listed && strcmp(listed, name) == 0)
			return true;
	}
	return false;
}

/*
 * Warns about each secret that policy grants from backend but that the
 * backend's list does not contain: the permit would be minted and its
 * use denied at fetch. A warning only, because a secret may be added to
 * the backend after the policy.
 */
static void warn_unlisted(const struct kh_config *config,
			  const struct kh_policy *policy,
			  struct kh_backend *backend,
			  struct check_report *report)
{
	const json_t *rules, *rule, *value;
	struct kh_err err = { { 0 } };
	json_t *names = NULL;
	size_t prefix = strlen(backend->name), i, j;

	if (kh_backend_list(backend, &names, &err) < 0) {
		fprintf(stderr, "keyholed: warning: backend %s: cannot list "
			"its secrets, so grants of it are not checked: %s\n",
			backend->name, err.msg);
		report->warnings++;
		return;
	}
	rules = json_object_get(kh_policy_json(policy), "rules");
	json_array_foreach(rules, i, rule) {
		const json_t *secrets = json_object_get(
			json_object_get(rule, "grant"), "secrets");

		json_array_foreach(secrets, j, value) {
			const char *secret = json_string_value(value);

			if (!secret || strncmp(secret, backend->name, prefix) != 0 ||
			    secret[prefix] != '/' ||
			    name_listed(names, secret + prefix + 1))
				continue;
			fprintf(stderr, "keyholed: warning: %s: $.rules[%zu]."
				"grant.secrets[%zu]: backend %s has no secret "
				"\"%s\" yet, so a permit for it would be "
				"denied at use: add the secret or fix the "
				"name\n", config->policy, i, j, backend->name,
				secret + prefix + 1);
			report->warnings++;
		}
	}
	json_decref(names);
}

/* Opens every backend and warns about granted secrets it lacks. */
static void check_backends(const struct kh_config *config,
			   const struct kh_policy *policy,
			   struct check_report *report)
{
	struct kh_fed_key *fed_key = NULL;
	struct kh_backend_env env;
	struct kh_err err = { { 0 } };
	const char *name;
	json_t *conf;

	if (kd_daemon_load_fed_key(config, &fed_key, &err) < 0)
		print_error(err.msg, report);
	kd_daemon_backend_env(config, fed_key, &env);
	json_object_foreach(config->backends, name, conf) {
		struct kh_backend *backend = NULL;

		kh_err_clear(&err);
		if (kh_backend_open(name, conf, config->dir, &env, &backend,
				    &err) < 0) {
			print_error(err.msg, report);
			continue;
		}
		if (policy)
			warn_unlisted(config, policy, backend, report);
		kh_backend_close(backend);
	}
	kh_fed_key_free(fed_key);
}

/*
 * Checks the policy file: every schema error first, and only for a
 * policy that parses, its tenant, env and granted backends. Returns the
 * parsed policy, or NULL when it has errors.
 */
static struct kh_policy *check_policy(const struct kh_config *config,
				      struct check_report *report)
{
	struct kh_policy *policy = NULL;
	struct kh_err err = { { 0 } };

	if (kh_policy_check_file(config->policy, print_error, report) != 0)
		return NULL;
	if (kh_policy_load(config->policy, &policy, &err) < 0) {
		print_error(err.msg, report);
		return NULL;
	}
	if (kd_daemon_check_scope(config, policy, &err) < 0)
		print_error(err.msg, report);
	(void)kd_check_grant_backends(config, policy, print_error, report);
	return policy;
}

/*
 * Implements --check-config and returns the process exit status: 0 for
 * a valid config and policy, 2 otherwise. A config with errors stops
 * the check there, because the policy path and keys come from it.
 */
int kd_daemon_check_config(const char *config_path)
{
	struct check_report report = { 0, 0 };
	struct kh_config *config = NULL;
	struct kh_policy *policy = NULL;
	struct kh_err err = { { 0 } };

	if (kh_config_check(config_path, print_error, &report) != 0 ||
	    report.errors > 0) {
		fprintf(stderr, "keyholed: %d error%s in %s\n",
			report.errors ? report.errors : 1,
			report.errors == 1 ? "" : "s", config_path);
		return 2;
	}
	if (kh_config_load(config_path, &config, &err) < 0) {
		print_error(err.msg, &report);
		fprintf(stderr, "keyholed: 1 error in %s\n", config_path);
		return 2;
	}
	check_keys(config, &report);
	check_admin_group(config, &report);
	check_audit_parent(config, &report);
	policy = check_policy(config, &report);
	check_backends(config, policy, &report);

	if (report.errors == 0)
		printf("%s: valid (policy hP=%s)%s\n", config->path,
		       kh_policy_hash(policy),
		       report.warnings ? ", with warnings" : "");
	else
		fprintf(stderr, "keyholed: %d error%s in %s and %s\n",
			report.errors, report.errors == 1 ? "" : "s",
			config->path, config->policy);
	if (policy)
		kh_policy_free(policy);
	kh_config_free(config);
	return report.errors == 0 ? 0 : 2;
}
