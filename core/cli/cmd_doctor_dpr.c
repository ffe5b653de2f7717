/*
 * keyhole doctor: the newest records of the decision log, verified
 * against the audit public key (kh_dpr_verify_tail). keyhole audit
 * verify checks the whole chain.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cmd_doctor.h"
#include "keyhole/dpr.h"
#include "keyhole/key.h"

/* Loads the audit public key beside the configured private key. */
static bool load_audit_public_key(struct kh_doctor *d, char *path,
				  size_t size, struct kh_key **key)
{
	char text[KH_DOCTOR_TEXT_MAX];
	struct kh_err err = { { 0 } };

	*key = NULL;
	if (kh_config_public_key_path(d->config->audit_key, path, size) < 0)
		kh_err_set(&err, "path too long");
	else if (kh_key_load(path, key, &err) == 0)
		return true;
	(void)snprintf(text, sizeof(text), "cannot load the audit public key "
		       "%s: %s", path, err.msg);
	kh_doctor_problem(d, KH_DOCTOR_FAIL, "dpr", text,
			  "restore the audit public key that keyhole keygen "
			  "wrote beside %s", d->config->audit_key);
	return false;
}

static void report_bad_record(struct kh_doctor *d, const char *key_path,
			      const struct kh_dpr_tail_report *report,
			      const char *reason)
{
	char text[KH_DOCTOR_TEXT_MAX];

	if (report->bad_seq)
		(void)snprintf(text, sizeof(text), "first bad record is seq "
			       "%llu (byte %llu of %s/" KH_DPR_FILE "): %s",
			       (unsigned long long)report->bad_seq,
			       (unsigned long long)report->bad_offset,
			       d->config->audit_dir, reason);
	else
		(void)snprintf(text, sizeof(text), "first bad record is at "
			       "byte %llu of %s/" KH_DPR_FILE ": %s",
			       (unsigned long long)report->bad_offset,
			       d->config->audit_dir, reason);
	kh_doctor_problem(d, KH_DOCTOR_FAIL, "dpr", text,
			  "keep the log as evidence and run keyhole audit "
			  "verify --dir %s --key %s for the whole log",
			  d->config->audit_dir, key_path);
}

/*
 * Verifies the tail with the current audit key and the retired ones,
 * because after "keyhole keygen --rotate" the tail can start under an
 * older key. A retired key that cannot be read counts as absent: the
 * tail then fails on it and names its kid.
 */
static int verify_tail(struct kh_doctor *d, struct kh_key *key,
		       struct kh_dpr_tail_report *report, struct kh_err *err)
{
	struct kh_key *keys[1 + KH_DPR_RETIRED_MAX];
	struct kh_err retired_err = { { 0 } };
	size_t count = 0;
	int r;

	keys[0] = key;
	if (kh_key_retired_load(d->config->audit_key, keys + 1,
				KH_DPR_RETIRED_MAX, &count, &retired_err) < 0)
		count = 0;
	r = kh_dpr_verify_tail_keys(d->config->audit_dir,
				    (const struct kh_key *const *)keys,
				    1 + count, d->tail, report, err);
	for (size_t i = 0; i < count; i++)
		kh_key_free(keys[1 + i]);
	return r;
}

void kh_doctor_check_dpr(struct kh_doctor *d)
{
	struct kh_dpr_tail_report report;
	char key_path[PATH_MAX], text[KH_DOCTOR_TEXT_MAX];
	struct kh_err err = { { 0 } };
	struct kh_key *key;
	int r;

	if (!load_audit_public_key(d, key_path, sizeof(key_path), &key))
		return;
	r = verify_tail(d, key, &report, &err);
	kh_key_free(key);

	if (report.records > 0) {
		d->dpr_time_known = true;
		d->dpr_last_seq = report.last_seq;
		d->dpr_last_time = report.last_time;
	}
	if (r == -ENOENT) {
		(void)snprintf(text, sizeof(text), "no log yet: %s", err.msg);
		kh_doctor_problem(d, KH_DOCTOR_WARN, "dpr", text,
				  "systemctl start keyholed, which creates the "
				  "log");
	} else if (r < 0) {
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "dpr", err.msg,
				  "run keyhole doctor as root, and check %s",
				  d->config->audit_dir);
	} else if (r == 1) {
		report_bad_record(d, key_path, &report, err.msg);
	} else if (report.records == 0) {
		kh_doctor_pass(d, "dpr", "%s/" KH_DPR_FILE " has no records yet",
			       d->config->audit_dir);
	} else {
		kh_doctor_pass(d, "dpr", "last %llu records verify (seq %llu "
			       "to %llu)", (unsigned long long)report.records,
			       (unsigned long long)report.first_seq,
			       (unsigned long long)report.last_seq);
	}
}
