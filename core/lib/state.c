/*
 * The evaluation state: the facts a decision consulted besides the
 * policy and the action. It is written into the DPR record and hashed
 * as hS, so that a decision can be replayed from the log alone.
 */
#include <errno.h>
#include <string.h>

#include "keyhole/ledger.h"
#include "keyhole/policy.h"

/* Adds {"rate":n,"budget":x} for one rule, listing only its limits. */
static int add_counters(json_t *counters, const json_t *rule,
			const struct kh_ledger *ledger, uid_t uid, int64_t now)
{
	const char *id = json_string_value(json_object_get(rule, "id"));
	const json_t *limits = json_object_get(rule, "limits");
	const json_t *rate = json_object_get(limits, "rate");
	const json_t *budget = json_object_get(limits, "budget");
	json_t *entry = json_object();

	if (!entry)
		return -ENOMEM;
	if (rate) {
		int64_t per = json_integer_value(json_object_get(rate, "per"));
		uint64_t n = kh_ledger_rate(ledger, id, uid, now, per);

		if (json_object_set_new(entry, "rate",
					json_integer((json_int_t)n)) < 0)
			goto fail;
	}
	if (budget) {
		int64_t per = json_integer_value(json_object_get(budget,
								 "per"));
		double spent = kh_ledger_budget(ledger, id, uid, now, per);

		if (json_object_set_new(entry, "budget", json_real(spent)) < 0)
			goto fail;
	}
	return json_object_set_new(counters, id, entry) < 0 ? -ENOMEM : 0;
fail:
	json_decref(entry);
	return -ENOMEM;
}

static json_t *agent_json(const struct kh_agent *agent)
{
	json_t *groups = json_array();

	for (size_t i = 0; groups && i < agent->group_count; i++) {
		if (json_array_append_new(groups,
					  json_string(agent->groups[i])) < 0) {
			json_decref(groups);
			return NULL;
		}
	}
	return json_pack("{s:I,s:s,s:o}", "uid", (json_int_t)agent->uid,
			 "user", agent->user, "groups", groups);
}

int kh_state_build(const struct kh_policy *policy,
		   const struct kh_ledger *ledger,
		   const struct kh_agent *agent, int64_t now,
		   json_t **state, struct kh_err *err)
{
	json_t *counters = json_object();
	json_t *doc = NULL;
	const json_t *rule;
	size_t i;
	int rc = 0;

	*state = NULL;
	if (!counters) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(json_object_get(kh_policy_json(policy), "rules"), i,
			   rule) {
		if (!json_object_get(rule, "limits"))
			continue;
		rc = add_counters(counters, rule, ledger, agent->uid, now);
		if (rc)
			goto out;
	}
	/* json_pack takes the agent object even when it is NULL. */
	doc = json_pack("{s:o,s:I,s:O}", "agent", agent_json(agent), "time",
			(json_int_t)now, "counters", counters);
	if (!doc) {
		rc = -EINVAL;
		kh_err_set(err, "building the state for uid %u failed; the "
			   "user and group names must be valid UTF-8",
			   (unsigned)agent->uid);
		goto out;
	}
	*state = doc;
out:
	if (rc == -ENOMEM)
		kh_err_set(err, "out of memory building the evaluation state");
	json_decref(counters);
	return rc;
}
