/*
 * Rebuilding the ledger from the DPR log on start, so that use counts,
 * rate and budget windows and revocations survive a restart. Only
 * records that passed kh_dpr_check_line reach this file.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "dpr_internal.h"

/* The record members the ledger needs, read from one record. */
struct replay_fields {
	uint64_t seq;
	const char *hash;
	int64_t time;
	const char *jti;
	int64_t exp;
};

/* Reads a string member, or NULL when it is absent or not a string. */
static const char *get_string(const json_t *object, const char *key)
{
	return json_string_value(json_object_get(object, key));
}

/* Reads an integer member into *out, or returns -EBADMSG without one. */
static int get_integer(const json_t *object, const char *key,
		       int64_t *out)
{
	const json_t *value = json_object_get(object, key);

	if (!json_is_integer(value))
		return -EBADMSG;
	*out = json_integer_value(value);
	return 0;
}

/* Reads seq, hash, time, and the jti and exp of the permit involved. */
static int read_common(const json_t *record, struct replay_fields *f,
		       struct kh_err *err)
{
	int64_t seq = 0;

	memset(f, 0, sizeof(*f));
	(void)get_integer(record, "seq", &seq);
	f->seq = (uint64_t)seq;
	f->hash = get_string(record, "hash");
	(void)get_integer(record, "time", &f->time);

	f->jti = get_string(record, "jti");
	if (!f->jti || f->jti[0] == '\0' ||
	    get_integer(record, "exp", &f->exp) < 0) {
		kh_err_set(err, "seq %" PRIu64 ": %s record has no jti string "
				"or no integer exp",
			   f->seq, get_string(record, "type"));
		return -EBADMSG;
	}
	return 0;
}

/* A permit decision counts one mint and names the record behind jti. */
static int replay_decision(struct kh_ledger *ledger, const json_t *record,
			   struct kh_err *err)
{
	const char *effect = get_string(record, "effect");
	const char *rule = get_string(record, "rule");
	const json_t *amount = json_object_get(record, "amount");
	struct replay_fields f;
	int64_t uid = -1;
	int r;

	if (!effect || strcmp(effect, "permit") != 0)
		return 0;
	r = read_common(record, &f, err);
	if (r < 0)
		return r;
	if (!rule ||
	    get_integer(json_object_get(record, "agent"), "uid", &uid) < 0 ||
	    uid < 0 || uid >= (int64_t)UINT32_MAX || !json_is_number(amount)) {
		kh_err_set(err, "seq %" PRIu64 ": permit decision lacks a "
				"rule string, an agent.uid or an amount",
			   f.seq);
		return -EBADMSG;
	}

	r = kh_ledger_note_mint(ledger, rule, (uid_t)uid, f.time,
				json_number_value(amount));
	if (r == 0)
		r = kh_ledger_note_decision(ledger, f.jti, f.exp, f.seq,
					    f.hash);
	if (r < 0)
		kh_err_set(err, "seq %" PRIu64 ": cannot add the decision to "
				"the ledger: %s",
			   f.seq, strerror(-r));
	return r;
}

/* A granted access consumed one use of its permit. */
static int replay_access(struct kh_ledger *ledger, const json_t *record,
			 struct kh_err *err)
{
	const char *outcome = get_string(record, "outcome");
	struct replay_fields f;
	int r;

	if (!outcome || strcmp(outcome, "granted") != 0)
		return 0;
	r = read_common(record, &f, err);
	if (r < 0)
		return r;
	/* A recorded use always brings the total to 1 or more. */
	if (kh_ledger_note_use(ledger, f.jti, f.exp) == 0) {
		kh_err_set(err, "seq %" PRIu64 ": cannot add the use to the "
				"ledger",
			   f.seq);
		return -ENOMEM;
	}
	return 0;
}

static int replay_revoke(struct kh_ledger *ledger, const json_t *record,
			 struct kh_err *err)
{
	struct replay_fields f;
	int r;

	r = read_common(record, &f, err);
	if (r < 0)
		return r;
	r = kh_ledger_note_revoke(ledger, f.jti, f.exp);
	if (r < 0)
		kh_err_set(err, "seq %" PRIu64 ": cannot add the revocation "
				"to the ledger: %s",
			   f.seq, strerror(-r));
	return r;
}

int kh_dpr_replay(struct kh_ledger *ledger, const json_t *record,
		  struct kh_err *err)
{
	const char *type = get_string(record, "type");

	if (!ledger || !type)
		return -EINVAL;
	if (strcmp(type, "decision") == 0)
		return replay_decision(ledger, record, err);
	if (strcmp(type, "access") == 0)
		return replay_access(ledger, record, err);
	if (strcmp(type, "revoke") == 0)
		return replay_revoke(ledger, record, err);
	return 0;
}
