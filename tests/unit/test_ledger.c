/*
 * The ledger: rate and budget windows, pruning, uses, revocations and
 * minting decisions, reservations made before an audit record is
 * written, a rebuild by replaying the same events (as keyholed does from
 * the DPR log after a restart), and 100k-entry volumes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "keyhole/ledger.h"

#define NOW 1700000000
#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static struct kh_ledger *new_ledger(void)
{
	struct kh_ledger *ledger = NULL;

	CHECK_INT(kh_ledger_new(&ledger), 0);
	return ledger;
}

/* Mints for rule "r", uid 1000 at NOW - age, with amount age + 1. */
static const int64_t mint_ages[] = { 120, 61, 60, 59, 30, 1, 0 };

static struct kh_ledger *ledger_with_mints(void)
{
	struct kh_ledger *ledger = new_ledger();

	for (size_t i = 0; ledger && i < sizeof(mint_ages) / sizeof(mint_ages[0]);
	     i++)
		CHECK_INT(kh_ledger_note_mint(ledger, "r", 1000,
					      NOW - mint_ages[i],
					      (double)(mint_ages[i] + 1)), 0);
	return ledger;
}

static void rate_window_table(void)
{
	/* The window is (now - per, now]: an event exactly per ago is out. */
	static const struct {
		int64_t now;
		int64_t per;
		uint64_t rate;
		double budget;
	} cases[] = {
		{ NOW, 60, 4, 60 + 31 + 2 + 1 },
		{ NOW, 61, 5, 61 + 60 + 31 + 2 + 1 },
		{ NOW, 1, 1, 1 },
		{ NOW, 3600, 7, 121 + 62 + 61 + 60 + 31 + 2 + 1 },
		{ NOW - 1, 60, 4, 61 + 60 + 31 + 2 },
		{ NOW - 200, 60, 0, 0 },
		{ NOW, 0, 0, 0 },
		{ NOW, -5, 0, 0 },
	};
	struct kh_ledger *ledger = ledger_with_mints();

	for (size_t i = 0; ledger && i < sizeof(cases) / sizeof(cases[0]);
	     i++) {
		uint64_t rate = kh_ledger_rate(ledger, "r", 1000, cases[i].now,
					       cases[i].per);
		double budget = kh_ledger_budget(ledger, "r", 1000,
						 cases[i].now, cases[i].per);

		if (rate != cases[i].rate)
			kh_test_fail(__FILE__, __LINE__, "case %zu: rate %llu, "
				     "expected %llu", i,
				     (unsigned long long)rate,
				     (unsigned long long)cases[i].rate);
		if (budget != cases[i].budget)
			kh_test_fail(__FILE__, __LINE__, "case %zu: budget %g, "
				     "expected %g", i, budget,
				     cases[i].budget);
	}
	kh_ledger_free(ledger);
}

static void counts_per_rule_and_uid(void)
{
	struct kh_ledger *ledger = ledger_with_mints();

	if (!ledger)
		return;
	CHECK_INT(kh_ledger_rate(ledger, "r", 1001, NOW, 3600), 0);
	CHECK_INT(kh_ledger_rate(ledger, "other", 1000, NOW, 3600), 0);
	CHECK_INT(kh_ledger_note_mint(ledger, "other", 1000, NOW, 5), 0);
	CHECK_INT(kh_ledger_rate(ledger, "other", 1000, NOW, 3600), 1);
	CHECK_INT(kh_ledger_rate(ledger, "r", 1000, NOW, 3600), 7);
	kh_ledger_free(ledger);
}

static void out_of_order_mints(void)
{
	struct kh_ledger *ledger = new_ledger();

	if (!ledger)
		return;
	/* A clock stepped back must still give the same windows. */
	CHECK_INT(kh_ledger_note_mint(ledger, "r", 5, NOW, 1), 0);
	CHECK_INT(kh_ledger_note_mint(ledger, "r", 5, NOW - 100, 10), 0);
	CHECK_INT(kh_ledger_note_mint(ledger, "r", 5, NOW - 10, 100), 0);
	CHECK_INT(kh_ledger_rate(ledger, "r", 5, NOW, 50), 2);
	CHECK(kh_ledger_budget(ledger, "r", 5, NOW, 50) == 101);
	CHECK(kh_ledger_budget(ledger, "r", 5, NOW - 10, 91) == 110);
	kh_ledger_free(ledger);
}

static void prune_drops_old_mints(void)
{
	struct kh_ledger *ledger = ledger_with_mints();

	if (!ledger)
		return;
	CHECK_INT(kh_ledger_note_mint(ledger, "gone", 1000, NOW - 500, 1), 0);
	kh_ledger_prune(ledger, NOW, 60);
	/* Events at NOW-120, NOW-61 and NOW-60 are outside every window. */
	CHECK_INT(kh_ledger_rate(ledger, "r", 1000, NOW, 3600), 4);
	CHECK(kh_ledger_budget(ledger, "r", 1000, NOW, 3600) == 60 + 31 + 2 + 1);
	CHECK_INT(kh_ledger_rate(ledger, "r", 1000, NOW, 60), 4);
	CHECK_INT(kh_ledger_rate(ledger, "gone", 1000, NOW, 3600), 0);
	/* New events after a prune land in the kept series. */
	CHECK_INT(kh_ledger_note_mint(ledger, "r", 1000, NOW + 1, 7), 0);
	CHECK_INT(kh_ledger_rate(ledger, "r", 1000, NOW + 1, 61), 5);
	kh_ledger_prune(ledger, NOW + 1000, 0);
	CHECK_INT(kh_ledger_rate(ledger, "r", 1000, NOW + 1000, 3600), 0);
	kh_ledger_free(ledger);
}

static void uses_count_and_prune(void)
{
	struct kh_ledger *ledger = new_ledger();

	if (!ledger)
		return;
	CHECK_INT(kh_ledger_uses(ledger, "j1"), 0);
	CHECK_INT(kh_ledger_note_use(ledger, "j1", NOW + 60), 1);
	CHECK_INT(kh_ledger_note_use(ledger, "j1", NOW + 60), 2);
	CHECK_INT(kh_ledger_note_use(ledger, "j2", NOW + 10), 1);
	CHECK_INT(kh_ledger_uses(ledger, "j1"), 2);
	CHECK_INT(kh_ledger_uses(ledger, "j2"), 1);
	/* j2 expires at NOW + 10: kept at that second, dropped after it. */
	kh_ledger_prune(ledger, NOW + 10, 0);
	CHECK_INT(kh_ledger_uses(ledger, "j2"), 1);
	kh_ledger_prune(ledger, NOW + 11, 0);
	CHECK_INT(kh_ledger_uses(ledger, "j2"), 0);
	CHECK_INT(kh_ledger_uses(ledger, "j1"), 2);
	kh_ledger_free(ledger);
}

static void revocation_until_exp(void)
{
	struct kh_ledger *ledger = new_ledger();

	if (!ledger)
		return;
	CHECK(!kh_ledger_is_revoked(ledger, "j1"));
	CHECK_INT(kh_ledger_note_revoke(ledger, "j1", NOW + 30), 0);
	CHECK(kh_ledger_is_revoked(ledger, "j1"));
	CHECK(!kh_ledger_is_revoked(ledger, "j2"));
	/* A use recorded with an earlier exp must not shorten the entry. */
	CHECK_INT(kh_ledger_note_use(ledger, "j1", NOW + 5), 1);
	kh_ledger_prune(ledger, NOW + 20, 0);
	CHECK(kh_ledger_is_revoked(ledger, "j1"));
	kh_ledger_prune(ledger, NOW + 31, 0);
	CHECK(!kh_ledger_is_revoked(ledger, "j1"));
	CHECK_INT(kh_ledger_note_revoke(NULL, "j1", NOW), -EINVAL);
	kh_ledger_free(ledger);
}

static void decision_lookup(void)
{
	struct kh_ledger *ledger = new_ledger();
	uint64_t seq = 99;
	char hash[65] = "x";

	if (!ledger)
		return;
	CHECK_INT(kh_ledger_find_decision(ledger, "j1", &seq, hash), -ENOENT);
	CHECK_INT(seq, 0);
	CHECK_STR(hash, "");
	CHECK_INT(kh_ledger_note_decision(ledger, "j1", NOW + 60, 7, HASH_A), 0);
	CHECK_INT(kh_ledger_find_decision(ledger, "j1", &seq, hash), 0);
	CHECK_INT(seq, 7);
	CHECK_STR(hash, HASH_A);
	/* A use of a jti keeps its decision; an unknown jti has none. */
	CHECK_INT(kh_ledger_note_use(ledger, "j1", NOW + 60), 1);
	CHECK_INT(kh_ledger_find_decision(ledger, "j1", &seq, hash), 0);
	CHECK_INT(kh_ledger_note_use(ledger, "j2", NOW + 60), 1);
	CHECK_INT(kh_ledger_find_decision(ledger, "j2", &seq, hash), -ENOENT);
	CHECK_INT(kh_ledger_note_decision(ledger, "j3", NOW, 1, "short"),
		  -EINVAL);
	kh_ledger_prune(ledger, NOW + 61, 0);
	CHECK_INT(kh_ledger_find_decision(ledger, "j1", &seq, hash), -ENOENT);
	kh_ledger_free(ledger);
}

/* Replays one event stream into a ledger, as a DPR replay would. */
static void replay(struct kh_ledger *ledger)
{
	for (int i = 0; i < 50; i++) {
		char jti[32];

		(void)snprintf(jti, sizeof(jti), "jti-%d", i);
		CHECK_INT(kh_ledger_note_mint(ledger, i % 2 ? "a" : "b", 1000,
					      NOW - 100 + i, i * 1.5), 0);
		CHECK_INT(kh_ledger_note_decision(ledger, jti, NOW + i, i + 1,
						  HASH_A), 0);
		if (i % 3 == 0)
			(void)kh_ledger_note_use(ledger, jti, NOW + i);
		if (i % 7 == 0)
			CHECK_INT(kh_ledger_note_revoke(ledger, jti, NOW + i),
				  0);
	}
}

static void rebuild_gives_same_counts(void)
{
	struct kh_ledger *before = new_ledger();
	struct kh_ledger *after = new_ledger();

	if (!before || !after)
		goto out;
	replay(before);
	replay(after);
	for (int i = 0; i < 50; i++) {
		char jti[32];

		(void)snprintf(jti, sizeof(jti), "jti-%d", i);
		CHECK_INT(kh_ledger_uses(after, jti), kh_ledger_uses(before, jti));
		CHECK_INT(kh_ledger_uses(after, jti), i % 3 == 0);
		CHECK_INT(kh_ledger_is_revoked(after, jti), i % 7 == 0);
	}
	for (int64_t per = 1; per <= 200; per += 13) {
		CHECK_INT(kh_ledger_rate(after, "a", 1000, NOW, per),
			  kh_ledger_rate(before, "a", 1000, NOW, per));
		CHECK(kh_ledger_budget(after, "b", 1000, NOW, per) ==
		      kh_ledger_budget(before, "b", 1000, NOW, per));
	}
	CHECK_INT(kh_ledger_rate(after, "a", 1000, NOW, 100), 25);
out:
	kh_ledger_free(before);
	kh_ledger_free(after);
}

/* 100k jtis and 100k mints: counts stay exact through growth and prune. */
static void large_volume(void)
{
	enum { N = 100000 };
	struct kh_ledger *ledger = new_ledger();
	size_t wrong = 0;

	if (!ledger)
		return;
	for (int i = 0; i < N; i++) {
		char jti[32];

		(void)snprintf(jti, sizeof(jti), "jti-%d", i);
		uint32_t total = 0;

		if (kh_ledger_count_use(ledger, jti, NOW + i, &total) != 0 ||
		    total != 1)
			wrong++;
		if (kh_ledger_note_mint(ledger, "bulk", (uid_t)(i % 10), NOW + i,
					1) != 0)
			wrong++;
	}
	CHECK_INT(wrong, 0);
	CHECK_INT(kh_ledger_rate(ledger, "bulk", 3, NOW + N, N), N / 10);
	CHECK(kh_ledger_budget(ledger, "bulk", 3, NOW + N, N) == N / 10);
	kh_ledger_prune(ledger, NOW + N / 2, N / 4);
	for (int i = 0; i < N; i += 997) {
		char jti[32];

		(void)snprintf(jti, sizeof(jti), "jti-%d", i);
		if (kh_ledger_uses(ledger, jti) != (i >= N / 2 ? 1u : 0u))
			wrong++;
	}
	CHECK_INT(wrong, 0);
	/* uid 0 minted at NOW + 0, 10, ...; those up to NOW + N/4 are gone. */
	CHECK_INT(kh_ledger_rate(ledger, "bulk", 0, NOW + N, 2 * N), 7499);
	kh_ledger_free(ledger);
}

/* A reservation changes no count until the note that uses it. */
static void reserve_then_count(void)
{
	struct kh_ledger *ledger = new_ledger();
	char hash[65];
	uint64_t seq;
	uint32_t total = 99;

	if (!ledger)
		return;
	CHECK_INT(kh_ledger_reserve_jti(ledger, "j1", NOW + 60), 0);
	CHECK_INT(kh_ledger_uses(ledger, "j1"), 0);
	CHECK(!kh_ledger_is_revoked(ledger, "j1"));
	CHECK_INT(kh_ledger_find_decision(ledger, "j1", &seq, hash), -ENOENT);
	CHECK_INT(kh_ledger_count_use(ledger, "j1", NOW + 60, &total), 0);
	CHECK_INT(total, 1);
	CHECK_INT(kh_ledger_reserve_jti(ledger, "j1", NOW + 60), 0);
	CHECK_INT(kh_ledger_uses(ledger, "j1"), 1);
	CHECK_INT(kh_ledger_count_use(ledger, "j1", NOW + 60, &total), 0);
	CHECK_INT(total, 2);

	/* 20 mints cross the first growth of a series (16 events). */
	for (int i = 0; i < 20; i++) {
		CHECK_INT(kh_ledger_reserve_mint(ledger, "r", 1000), 0);
		CHECK_INT(kh_ledger_rate(ledger, "r", 1000, NOW, 3600), i);
		CHECK_INT(kh_ledger_note_mint(ledger, "r", 1000, NOW - i, 1),
			  0);
	}
	CHECK_INT(kh_ledger_rate(ledger, "r", 1000, NOW, 3600), 20);

	/* Unused reservations read as nothing and are pruned. */
	CHECK_INT(kh_ledger_reserve_mint(ledger, "unused", 7), 0);
	CHECK_INT(kh_ledger_rate(ledger, "unused", 7, NOW, 3600), 0);
	CHECK_INT(kh_ledger_reserve_jti(ledger, "j2", NOW + 10), 0);
	kh_ledger_prune(ledger, NOW + 11, 3600);
	CHECK_INT(kh_ledger_uses(ledger, "j2"), 0);
	CHECK_INT(kh_ledger_rate(ledger, "unused", 7, NOW, 3600), 0);
	CHECK_INT(kh_ledger_uses(ledger, "j1"), 2);
	kh_ledger_free(ledger);
}

/* A use that cannot be counted is an error, never a silent zero. */
static void count_use_reports_failure(void)
{
	struct kh_ledger *ledger = new_ledger();
	char long_rule[300];
	uint32_t total = 99;

	if (!ledger)
		return;
	CHECK_INT(kh_ledger_count_use(NULL, "j", NOW, &total), -EINVAL);
	CHECK_INT(total, 0);
	total = 99;
	CHECK_INT(kh_ledger_count_use(ledger, NULL, NOW, &total), -EINVAL);
	CHECK_INT(total, 0);
	CHECK_INT(kh_ledger_note_use(NULL, "j", NOW), 0);
	CHECK_INT(kh_ledger_note_use(ledger, "j", NOW), 1);
	CHECK_INT(kh_ledger_reserve_jti(NULL, "j", NOW), -EINVAL);
	CHECK_INT(kh_ledger_reserve_jti(ledger, NULL, NOW), -EINVAL);
	CHECK_INT(kh_ledger_reserve_mint(NULL, "r", 1), -EINVAL);
	CHECK_INT(kh_ledger_reserve_mint(ledger, NULL, 1), -EINVAL);
	memset(long_rule, 'r', sizeof(long_rule) - 1);
	long_rule[sizeof(long_rule) - 1] = '\0';
	CHECK_INT(kh_ledger_reserve_mint(ledger, long_rule, 1),
		  -ENAMETOOLONG);
	CHECK_INT(kh_ledger_note_mint(ledger, long_rule, 1, NOW, 1),
		  -ENAMETOOLONG);
	kh_ledger_free(ledger);
}

static void null_ledger_reads_zero(void)
{
	CHECK_INT(kh_ledger_rate(NULL, "r", 1, NOW, 60), 0);
	CHECK(kh_ledger_budget(NULL, "r", 1, NOW, 60) == 0);
	CHECK_INT(kh_ledger_uses(NULL, "j"), 0);
	CHECK(!kh_ledger_is_revoked(NULL, "j"));
	CHECK_INT(kh_ledger_note_mint(NULL, "r", 1, NOW, 1), -EINVAL);
	kh_ledger_prune(NULL, NOW, 60);
	kh_ledger_free(NULL);
}

static const struct kh_test_case cases[] = {
	{ "rate window table", rate_window_table },
	{ "counts per rule and uid", counts_per_rule_and_uid },
	{ "out of order mints", out_of_order_mints },
	{ "prune drops old mints", prune_drops_old_mints },
	{ "uses count and prune", uses_count_and_prune },
	{ "revocation until exp", revocation_until_exp },
	{ "decision lookup", decision_lookup },
	{ "rebuild gives same counts", rebuild_gives_same_counts },
	{ "reserve then count", reserve_then_count },
	{ "count use reports failure", count_use_reports_failure },
	{ "large volume", large_volume },
	{ "null ledger reads zero", null_ledger_reads_zero },
};

int main(void)
{
	return KH_TEST_RUN("ledger", cases);
}
