/*
 * keyhole doctor: the config and the policy, loaded strictly with the
 * loaders keyholed uses, and the scope and grants of the policy.
 */
#include <stdio.h>
#include <string.h>

#include "cmd_doctor.h"

void kh_doctor_check_config(struct kh_doctor *d)
{
	struct kh_err err = { { 0 } };

	if (kh_config_load(d->config_path, &d->config, &err) < 0) {
		d->config = NULL;
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "config", err.msg,
				  "correct %s as the message says; keyholed "
				  "--check-config checks it again",
				  d->config_path);
		return;
	}
	kh_doctor_pass(d, "config", "%s loaded (tenant %s, env %s, backends: "
		       "%zu)", d->config->path, d->config->tenant,
		       d->config->env, json_object_size(d->config->backends));
}

/* Counts the rules of the parsed policy with effect "permit". */
static size_t count_permit_rules(const json_t *rules)
{
	const json_t *rule;
	size_t i, permits = 0;

	json_array_foreach(rules, i, rule) {
		const char *effect =
			json_string_value(json_object_get(rule, "effect"));

		if (effect && strcmp(effect, "permit") == 0)
			permits++;
	}
	return permits;
}

/* keyholed rejects a policy written for another tenant or env. */
static bool check_scope(struct kh_doctor *d)
{
	const char *tenant = kh_policy_tenant(d->policy);
	const char *env = kh_policy_env(d->policy);
	char found[KH_DOCTOR_TEXT_MAX];

	if (strcmp(tenant, d->config->tenant) == 0 &&
	    strcmp(env, d->config->env) == 0)
		return true;
	(void)snprintf(found, sizeof(found), "%s is for tenant \"%s\", env "
		       "\"%s\", but %s has tenant \"%s\", env \"%s\"",
		       d->config->policy, tenant, env, d->config->path,
		       d->config->tenant, d->config->env);
	kh_doctor_problem(d, KH_DOCTOR_FAIL, "policy", found,
			  "make tenant and env equal in both files");
	return false;
}

void kh_doctor_check_policy(struct kh_doctor *d)
{
	struct kh_err err = { { 0 } };
	const json_t *rules;
	size_t permits;

	if (kh_policy_load(d->config->policy, &d->policy, &err) < 0) {
		d->policy = NULL;
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "policy", err.msg,
				  "correct %s as the message says (see "
				  "keyhole-policy(5))", d->config->policy);
		return;
	}
	if (!check_scope(d))
		return;

	rules = json_object_get(kh_policy_json(d->policy), "rules");
	permits = count_permit_rules(rules);
	if (permits == 0) {
		char found[KH_DOCTOR_TEXT_MAX];

		(void)snprintf(found, sizeof(found), "%s has %zu rules and "
			       "none permits, so every request is denied",
			       d->config->policy, json_array_size(rules));
		kh_doctor_problem(d, KH_DOCTOR_WARN, "policy", found,
				  "add a permit rule for your agents to %s",
				  d->config->policy);
		return;
	}
	kh_doctor_pass(d, "policy", "%s: rules: %zu, permit rules: %zu (hP "
		       "%.12s)",
		       d->config->policy, json_array_size(rules), permits,
		       kh_policy_hash(d->policy));
}
