/*
 * The ledger: counters that decisions consult and that survive restarts
 * because keyholed rebuilds them from the DPR log. It tracks permits
 * minted per (rule, uid) with time and budget amount (for rate and
 * budget limits), uses consumed per jti, and revoked jtis. Entries for
 * expired permits and for events older than a rule's window are pruned.
 * Not thread-safe: keyholed serialises access with its own lock. The
 * read functions accept a NULL ledger and then return 0 or false.
 */
#ifndef KEYHOLE_LEDGER_H
#define KEYHOLE_LEDGER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct kh_ledger;

/* Creates an empty ledger; -ENOMEM, or -EIO when sodium_init fails. */
int kh_ledger_new(struct kh_ledger **out);
/* Frees the ledger; accepts NULL. */
void kh_ledger_free(struct kh_ledger *ledger);

/*
 * Reserve before logging, count after. A caller that must not fail
 * between writing an audit record and counting it calls a
 * kh_ledger_reserve_* function first, then appends the record. The
 * matching kh_ledger_note_* or kh_ledger_count_use call after that does
 * not allocate, so it cannot fail for lack of memory. A reservation that
 * is never used changes no count.
 */

/*
 * Makes room for one kh_ledger_note_mint of (rule, uid). Returns 0,
 * -EINVAL, -ENAMETOOLONG (rule too long) or -ENOMEM.
 */
int kh_ledger_reserve_mint(struct kh_ledger *ledger, const char *rule,
			   uid_t uid);

/*
 * Creates the entry of jti (expiring at exp) if it is missing, so that
 * kh_ledger_count_use, kh_ledger_note_revoke and kh_ledger_note_decision
 * for jti do not allocate. Returns 0, -EINVAL or -ENOMEM.
 */
int kh_ledger_reserve_jti(struct kh_ledger *ledger, const char *jti,
			  int64_t exp);

/*
 * Records a permit decision for (rule, uid) at time. amount is the
 * budget amount charged, 0 when the rule has no budget. Events may
 * arrive out of time order. Returns 0, -EINVAL, -ENAMETOOLONG or
 * -ENOMEM.
 */
int kh_ledger_note_mint(struct kh_ledger *ledger, const char *rule,
			uid_t uid, int64_t time, double amount);

/* Number of mints for (rule, uid) with time in (now - per, now]. */
uint64_t kh_ledger_rate(const struct kh_ledger *ledger, const char *rule,
			uid_t uid, int64_t now, int64_t per);

/* Sum of amounts for (rule, uid) with time in (now - per, now]. */
double kh_ledger_budget(const struct kh_ledger *ledger, const char *rule,
			uid_t uid, int64_t now, int64_t per);

/*
 * Counts one use of jti (expiring at exp) and stores the new total in
 * *total. Returns 0, -EINVAL or -ENOMEM; on failure no use is counted
 * and *total is 0, so the caller must deny what the use was for.
 */
int kh_ledger_count_use(struct kh_ledger *ledger, const char *jti,
			int64_t exp, uint32_t *total)
	__attribute__((warn_unused_result));

/*
 * Older form of kh_ledger_count_use: returns the new total, which is at
 * least 1, or 0 when the use could not be counted.
 */
uint32_t kh_ledger_note_use(struct kh_ledger *ledger, const char *jti,
			    int64_t exp);

/* Uses consumed so far by jti. */
uint32_t kh_ledger_uses(const struct kh_ledger *ledger, const char *jti);

/* Marks jti revoked until exp. Returns 0, -EINVAL or -ENOMEM. */
int kh_ledger_note_revoke(struct kh_ledger *ledger, const char *jti,
			  int64_t exp);

bool kh_ledger_is_revoked(const struct kh_ledger *ledger, const char *jti);

/*
 * Remembers which decision record minted jti (its seq and hash), so that
 * access records can point back to it. Pruned with the jti's uses.
 */
int kh_ledger_note_decision(struct kh_ledger *ledger, const char *jti,
			    int64_t exp, uint64_t seq, const char *hash);

/* Looks up the decision that minted jti; -ENOENT when unknown. */
int kh_ledger_find_decision(const struct kh_ledger *ledger, const char *jti,
			    uint64_t *seq, char hash[65]);

/*
 * Drops uses and revocations of permits that expired before now, and
 * mint events older than now - max_window.
 */
void kh_ledger_prune(struct kh_ledger *ledger, int64_t now,
		     int64_t max_window);

#endif
