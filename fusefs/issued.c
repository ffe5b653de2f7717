/*
 * The permits this broker issued that have not expired yet: jti ->
 * owner uid, exp, the type of the action the permit was minted for and
 * the session it is bound to.
 *
 * The claim set carries only hA, so at use time the broker cannot tell
 * an exec permit from a tool_call permit by the token alone. This index
 * keeps the type from the decision record; it is filled at mint time
 * and rebuilt from the DPR log at start-up. Revoke uses the owner uid,
 * and the end of a session revokes every permit bound to it.
 * Not thread-safe: callers hold the daemon lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

#define ISSUED_BUCKETS 1024

struct issued_node {
	struct issued_node *next;
	char jti[KH_JTI_LEN + 1];
	struct kd_issued_entry entry;
};

struct kd_issued {
	struct issued_node *buckets[ISSUED_BUCKETS];
};

static size_t bucket_of(const char *jti)
{
	unsigned long h = 5381;

	for (const char *p = jti; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return h % ISSUED_BUCKETS;
}

int kd_issued_new(struct kd_issued **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void kd_issued_free(struct kd_issued *issued)
{
	if (!issued)
		return;
	for (size_t i = 0; i < ISSUED_BUCKETS; i++) {
		struct issued_node *n = issued->buckets[i];

		while (n) {
			struct issued_node *next = n->next;

			free(n);
			n = next;
		}
	}
	free(issued);
}

int kd_issued_add(struct kd_issued *issued, const char *jti, uid_t uid,
		  int64_t exp, enum kd_action_kind kind, const char *sid)
{
	struct issued_node *n;
	size_t b;

	if (!kh_permit_jti_is_valid(jti) ||
	    (sid && !kh_permit_jti_is_valid(sid)))
		return -EINVAL;
	b = bucket_of(jti);
	for (n = issued->buckets[b]; n; n = n->next) {
		if (strcmp(n->jti, jti) == 0)
			break;
	}
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n)
			return -ENOMEM;
		(void)snprintf(n->jti, sizeof(n->jti), "%s", jti);
		n->next = issued->buckets[b];
		issued->buckets[b] = n;
	}
	n->entry.uid = uid;
	n->entry.exp = exp;
	n->entry.kind = kind;
	(void)snprintf(n->entry.sid, sizeof(n->entry.sid), "%s",
		       sid ? sid : "");
	return 0;
}

/* Drops the entry for jti, if any; undoes a kd_issued_add. */
void kd_issued_remove(struct kd_issued *issued, const char *jti)
{
	struct issued_node **link;

	if (!kh_permit_jti_is_valid(jti))
		return;
	for (link = &issued->buckets[bucket_of(jti)]; *link;
	     link = &(*link)->next) {
		struct issued_node *n = *link;

		if (strcmp(n->jti, jti) == 0) {
			*link = n->next;
			free(n);
			return;
		}
	}
}

/* Copies the entry for jti into out; -ENOENT when unknown or pruned. */
int kd_issued_find(const struct kd_issued *issued, const char *jti,
		   struct kd_issued_entry *out)
{
	memset(out, 0, sizeof(*out));
	for (const struct issued_node *n = issued->buckets[bucket_of(jti)]; n;
	     n = n->next) {
		if (strcmp(n->jti, jti) == 0) {
			*out = n->entry;
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * Drops at most max permits that expired before now, calling fn (when
 * not NULL) for each one before it goes, so that the caller can remove
 * its permit file. An expired permit can never be used again. Returns
 * the number dropped; entries past max wait for the next call.
 */
size_t kd_issued_prune(struct kd_issued *issued, int64_t now, size_t max,
		       kd_issued_fn fn, void *ctx)
{
	size_t dropped = 0;

	for (size_t i = 0; i < ISSUED_BUCKETS && dropped < max; i++) {
		struct issued_node **link = &issued->buckets[i];

		while (*link && dropped < max) {
			struct issued_node *n = *link;

			if (n->entry.exp >= now) {
				link = &n->next;
				continue;
			}
			if (fn)
				fn(n->jti, &n->entry, ctx);
			*link = n->next;
			free(n);
			dropped++;
		}
	}
	return dropped;
}

void kd_issued_foreach(const struct kd_issued *issued, kd_issued_fn fn,
		       void *ctx)
{
	for (size_t i = 0; i < ISSUED_BUCKETS; i++) {
		for (const struct issued_node *n = issued->buckets[i]; n;
		     n = n->next)
			fn(n->jti, &n->entry, ctx);
	}
}

struct replay_ctx {
	struct kd_issued *issued;
	struct kh_ledger *ledger;
	int64_t now;
	int error;
};

static int replay_decision(struct replay_ctx *ctx, const json_t *record)
{
	const char *jti = json_string_value(json_object_get(record, "jti"));
	const char *sid = json_string_value(json_object_get(record, "sid"));
	const char *type, *hash;
	json_int_t uid, exp, seq;
	uint64_t known_seq;
	char known_hash[KH_HASH_HEX_LEN + 1];
	int r;

	exp = json_integer_value(json_object_get(record, "exp"));
	if (!jti || exp < ctx->now)
		return 0;
	uid = json_integer_value(
		json_object_get(json_object_get(record, "agent"), "uid"));
	type = json_string_value(
		json_object_get(json_object_get(record, "action"), "type"));
	r = kd_issued_add(ctx->issued, jti, (uid_t)uid, exp,
			  type && strcmp(type, "tool_call") == 0 ?
				  KD_ACTION_TOOL_CALL : KD_ACTION_EXEC, sid);
	if (r < 0)
		return r == -EINVAL ? 0 : r;

	/* Access records point back at the decision that minted the jti. */
	if (kh_ledger_find_decision(ctx->ledger, jti, &known_seq,
				    known_hash) == 0)
		return 0;
	seq = json_integer_value(json_object_get(record, "seq"));
	hash = json_string_value(json_object_get(record, "hash"));
	if (seq <= 0 || !hash)
		return 0;
	return kh_ledger_note_decision(ctx->ledger, jti, exp, (uint64_t)seq,
				       hash);
}

static int replay_record(const json_t *record, void *opaque)
{
	struct replay_ctx *ctx = opaque;
	const char *type = json_string_value(json_object_get(record, "type"));
	const char *effect;

	if (!type || strcmp(type, "decision") != 0)
		return 0;
	effect = json_string_value(json_object_get(record, "effect"));
	if (!effect || strcmp(effect, "permit") != 0)
		return 0;
	ctx->error = replay_decision(ctx, record);
	return ctx->error;
}

/*
 * Rebuilds the index from the decision records in audit_dir, skipping
 * permits that expired before now. Call after kh_dpr_open has checked
 * the chain.
 */
int kd_issued_replay(struct kd_issued *issued, struct kh_ledger *ledger,
		     const char *audit_dir, int64_t now, struct kh_err *err)
{
	struct replay_ctx ctx = {
		.issued = issued, .ledger = ledger, .now = now, .error = 0,
	};
	int r;

	r = kh_dpr_foreach(audit_dir, replay_record, &ctx, err);
	if (r != 0 && ctx.error != 0) {
		kh_err_set(err, "cannot rebuild the permit index from %s: %s",
			   audit_dir, strerror(-ctx.error));
		return ctx.error;
	}
	return r < 0 ? r : 0;
}
