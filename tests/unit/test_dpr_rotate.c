/*
 * Audit key rotation: retiring key files, and the DPR chain's hand-over
 * from an old audit key to a new one with a "key_rotate" record that
 * the old key signs. Verification from the first key follows the
 * hand-overs, and nothing else can switch keys.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"
#include "keyhole/dpr.h"

static char work[64];
static char audit[128];

static void setup(void)
{
	(void)snprintf(work, sizeof(work), "/tmp/kh-test-rotate.XXXXXX");
	if (!mkdtemp(work))
		kh_test_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	(void)snprintf(audit, sizeof(audit), "%s/audit", work);
}

static void teardown(void)
{
	char cmd[128];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
	CHECK_INT(system(cmd), 0);
}

static struct kh_key *new_key(void)
{
	struct kh_err err = { "" };
	struct kh_key *key = NULL;

	if (kh_key_generate(&key, &err) != 0)
		kh_test_fail(__FILE__, __LINE__, "keygen: %s", err.msg);
	return key;
}

/* A public-only copy of key, as a verifier or keyholed would load it. */
static struct kh_key *public_copy(const struct kh_key *key)
{
	struct kh_err err = { "" };
	struct kh_key *copy = NULL;
	json_t *jwk = NULL;

	CHECK_INT(kh_key_public_jwk(key, &jwk), 0);
	CHECK_INT(kh_key_from_public_jwk(jwk, &copy, &err), 0);
	json_decref(jwk);
	return copy;
}

/* Opens the log with key and retired, appends count records, closes. */
static int append_with(const struct kh_key *key, const struct kh_key **retired,
		       size_t n_retired, int count)
{
	struct kh_err err = { "" };
	struct kh_dpr *dpr = NULL;
	int r;

	r = kh_dpr_open_keys(audit, key, retired, n_retired, NULL, &dpr,
			     &err);
	if (r != 0)
		return r;
	for (int i = 0; i < count && r == 0; i++) {
		json_t *fields = json_pack("{s:i}", "n", i);

		r = kh_dpr_append(dpr, "stop", fields, NULL, NULL, &err);
		json_decref(fields);
	}
	kh_dpr_close(dpr);
	return r;
}

/* Returns the value of member of record seq as a string, or "". */
static const char *member_of(int seq, const char *member)
{
	static char value[256];
	char path[256], line[4096];
	FILE *f;

	value[0] = '\0';
	(void)snprintf(path, sizeof(path), "%s/%s", audit, KH_DPR_FILE);
	f = fopen(path, "r");
	for (int n = 1; f && fgets(line, sizeof(line), f); n++) {
		json_t *record;

		if (n != seq)
			continue;
		record = json_loads(line, 0, NULL);
		if (json_is_string(json_object_get(record, member)))
			(void)snprintf(value, sizeof(value), "%s",
				       json_string_value(
					       json_object_get(record, member)));
		json_decref(record);
	}
	if (f)
		fclose(f);
	return value;
}

static void test_hand_over(void)
{
	struct kh_key *old = NULL, *next = NULL;
	const struct kh_key *retired[1];
	struct kh_dpr_report report;
	struct kh_err err = { "" };

	setup();
	old = new_key();
	next = new_key();
	CHECK_INT(append_with(old, NULL, 0, 3), 0);
	retired[0] = old;
	CHECK_INT(append_with(next, retired, 1, 1), 0);

	CHECK_STR(member_of(4, "type"), "key_rotate");
	CHECK_STR(member_of(4, "kid"), old->kid);
	CHECK_STR(member_of(5, "kid"), next->kid);
	CHECK_INT(kh_dpr_verify(audit, old, &report, &err), 0);
	CHECK_INT((int)report.records, 5);
	CHECK_INT((int)report.rotations, 1);
	CHECK_INT(kh_dpr_verify(audit, next, &report, &err), 1);
	CHECK_INT((int)report.bad_seq, 1);
	kh_key_free(old);
	kh_key_free(next);
	teardown();
}

static void test_reopen_needs_first_public(void)
{
	struct kh_key *old = NULL, *next = NULL, *old_pub = NULL;
	const struct kh_key *retired[1];
	struct kh_dpr_report report;
	struct kh_err err = { "" };

	setup();
	old = new_key();
	next = new_key();
	CHECK_INT(append_with(old, NULL, 0, 1), 0);
	retired[0] = old;
	CHECK_INT(append_with(next, retired, 1, 0), 0);

	old_pub = public_copy(old);
	retired[0] = old_pub;
	CHECK_INT(append_with(next, retired, 1, 1), 0);
	CHECK_STR(member_of(3, "type"), "stop");
	CHECK_STR(member_of(4, "type"), "");
	CHECK_INT(append_with(next, NULL, 0, 0), -EBADMSG);
	CHECK_INT(kh_dpr_verify(audit, old_pub, &report, &err), 0);
	CHECK_INT((int)report.rotations, 1);
	kh_key_free(old);
	kh_key_free(old_pub);
	kh_key_free(next);
	teardown();
}

static void test_needs_old_private(void)
{
	struct kh_key *old = NULL, *next = NULL, *old_pub = NULL;
	const struct kh_key *retired[1];
	struct kh_err err = { "" };
	struct kh_dpr *dpr = NULL;

	setup();
	old = new_key();
	next = new_key();
	CHECK_INT(append_with(old, NULL, 0, 2), 0);
	old_pub = public_copy(old);
	retired[0] = old_pub;
	CHECK_INT(kh_dpr_open_keys(audit, next, retired, 1, NULL, &dpr, &err),
		  -EKEYREJECTED);
	CHECK(strstr(err.msg, "keygen --rotate") != NULL);
	CHECK(dpr == NULL);
	CHECK_INT(append_with(next, NULL, 0, 0), -EBADMSG);
	kh_key_free(old);
	kh_key_free(old_pub);
	kh_key_free(next);
	teardown();
}

static void test_two_rotations(void)
{
	struct kh_key *a = new_key(), *b = new_key(), *c = new_key();
	const struct kh_key *retired[2];
	struct kh_dpr_report report;
	struct kh_err err = { "" };

	setup();
	CHECK_INT(append_with(a, NULL, 0, 1), 0);
	retired[0] = a;
	CHECK_INT(append_with(b, retired, 1, 1), 0);
	retired[1] = b;
	CHECK_INT(append_with(c, retired, 2, 1), 0);
	CHECK_INT(kh_dpr_verify(audit, a, &report, &err), 0);
	CHECK_INT((int)report.records, 5);
	CHECK_INT((int)report.rotations, 2);
	kh_key_free(a);
	kh_key_free(b);
	kh_key_free(c);
	teardown();
}

/*
 * A retired key that did not sign seq 1 gives no way into the chain:
 * only the chain's own key can sign the record that switches keys.
 */
static void test_unknown_first_key(void)
{
	struct kh_key *old = new_key(), *mallory = new_key();
	const struct kh_key *retired[1] = { mallory };
	struct kh_dpr_report report;
	struct kh_err err = { "" };
	struct kh_dpr *dpr = NULL;

	setup();
	CHECK_INT(append_with(old, NULL, 0, 1), 0);
	CHECK_INT(kh_dpr_open_keys(audit, mallory, retired, 1, NULL, &dpr,
				   &err), -EBADMSG);
	CHECK(strstr(err.msg, "seq 1: signed with kid") != NULL);
	CHECK_INT(kh_dpr_verify(audit, old, &report, &err), 0);
	kh_key_free(old);
	kh_key_free(mallory);
	teardown();
}

static void test_retire_files(void)
{
	char dir[128], path[256], pub[256];
	struct kh_key *key = new_key(), *loaded[4];
	struct kh_err err = { "" };
	struct stat st;
	size_t count = 0;

	setup();
	(void)snprintf(dir, sizeof(dir), "%s/keys", work);
	CHECK_INT(mkdir(dir, 0755), 0);
	(void)snprintf(path, sizeof(path), "%s/audit.jwk", dir);
	(void)snprintf(pub, sizeof(pub), "%s/audit.pub.jwk", dir);
	CHECK_INT(kh_key_save(key, path, pub, &err), 0);
	CHECK_INT(kh_key_retire(dir, "audit", true, &err), 0);
	CHECK(access(path, F_OK) < 0);
	CHECK(access(pub, F_OK) < 0);
	(void)snprintf(path, sizeof(path), "%s/retired", dir);
	CHECK_INT(lstat(path, &st), 0);
	CHECK_INT((int)(st.st_mode & 07777), 0700);

	(void)snprintf(path, sizeof(path), "%s/audit.jwk", dir);
	CHECK_INT(kh_key_retired_load(path, loaded, 4, &count, &err), 0);
	CHECK_INT((int)count, 1);
	if (count == 1) {
		CHECK_STR(loaded[0]->kid, key->kid);
		CHECK(loaded[0]->secret != NULL);
		kh_key_free(loaded[0]);
	}
	CHECK_INT(kh_key_retired_prune(path, &err), 1);
	CHECK_INT(kh_key_retired_load(path, loaded, 4, &count, &err), 0);
	CHECK_INT((int)count, 1);
	if (count == 1) {
		CHECK(loaded[0]->secret == NULL);
		kh_key_free(loaded[0]);
	}
	CHECK_INT(kh_key_retire(dir, "audit", true, &err), -ENOENT);
	kh_key_free(key);
	teardown();
}

/*
 * Tails that start at the key_rotate record (signed by the old key) and
 * just after it (signed by the new key), as keyhole doctor checks them.
 */
static void test_tail_at_rotation(void)
{
	struct kh_key *old = NULL, *next = NULL, *old_pub, *next_pub;
	const struct kh_key *retired[1], *keys[2], *only_old[1];
	struct kh_dpr_tail_report report;
	struct kh_err err = { "" };

	setup();
	old = new_key();
	next = new_key();
	CHECK_INT(append_with(old, NULL, 0, 3), 0);
	retired[0] = old;
	CHECK_INT(append_with(next, retired, 1, 2), 0);
	CHECK_STR(member_of(4, "type"), "key_rotate");
	old_pub = public_copy(old);
	next_pub = public_copy(next);
	keys[0] = next_pub;
	keys[1] = old_pub;

	CHECK_INT(kh_dpr_verify_tail_keys(audit, keys, 2, 3, &report, &err), 0);
	CHECK_INT((int)report.first_seq, 4);
	CHECK_INT((int)report.last_seq, 6);
	CHECK_INT(kh_dpr_verify_tail_keys(audit, keys, 2, 2, &report, &err), 0);
	CHECK_INT((int)report.first_seq, 5);
	CHECK_INT((int)report.records, 2);

	/* The new key's records do not verify with the old key alone. */
	only_old[0] = old_pub;
	CHECK_INT(kh_dpr_verify_tail_keys(audit, only_old, 1, 2, &report,
					  &err), 1);
	CHECK_INT((int)report.bad_seq, 5);
	CHECK_INT(kh_dpr_verify_tail_keys(audit, only_old, 1, 3, &report,
					  &err), 0);
	kh_key_free(old_pub);
	kh_key_free(next_pub);
	kh_key_free(old);
	kh_key_free(next);
	teardown();
}

/*
 * A key planted in the retired dir would be trusted for seq 1 of the
 * log. A group-writable retired dir or a symbolic link is rejected.
 */
static void test_retired_dir_checked(void)
{
	char dir[128], path[256], pub[256], retired[256], elsewhere[256];
	struct kh_key *key = new_key(), *loaded[4];
	struct kh_err err = { "" };
	size_t count = 0;

	setup();
	(void)snprintf(dir, sizeof(dir), "%s/keys", work);
	CHECK_INT(mkdir(dir, 0755), 0);
	(void)snprintf(path, sizeof(path), "%s/audit.jwk", dir);
	(void)snprintf(pub, sizeof(pub), "%s/audit.pub.jwk", dir);
	(void)snprintf(retired, sizeof(retired), "%s/retired", dir);
	CHECK_INT(kh_key_save(key, path, pub, &err), 0);
	CHECK_INT(kh_key_retire(dir, "audit", true, &err), 0);

	CHECK_INT(chmod(retired, 0777), 0);
	CHECK_INT(kh_key_retired_load(path, loaded, 4, &count, &err), -EPERM);
	CHECK_INT((int)count, 0);
	CHECK(strstr(err.msg, "has mode 0777") != NULL);
	CHECK_INT(kh_key_save(key, path, pub, &err), 0);
	CHECK_INT(kh_key_retire(dir, "audit", true, &err), -EPERM);
	CHECK(access(path, F_OK) == 0);
	CHECK_INT(chmod(retired, 0700), 0);

	(void)snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", work);
	CHECK_INT(rename(retired, elsewhere), 0);
	CHECK_INT(symlink(elsewhere, retired), 0);
	err.msg[0] = '\0';
	CHECK(kh_key_retired_load(path, loaded, 4, &count, &err) < 0);
	CHECK_INT((int)count, 0);
	CHECK(strstr(err.msg, "symbolic link") != NULL);
	CHECK(kh_key_retire(dir, "audit", true, &err) < 0);
	CHECK(access(path, F_OK) == 0);
	kh_key_free(key);
	teardown();
}

static const struct kh_test_case cases[] = {
	{ "hand over", test_hand_over },
	{ "reopen needs first public", test_reopen_needs_first_public },
	{ "needs old private", test_needs_old_private },
	{ "two rotations", test_two_rotations },
	{ "unknown first key", test_unknown_first_key },
	{ "retire files", test_retire_files },
	{ "retired dir checked", test_retired_dir_checked },
	{ "tail at rotation", test_tail_at_rotation },
};

int main(void)
{
	return KH_TEST_RUN("dpr_rotate", cases);
}
