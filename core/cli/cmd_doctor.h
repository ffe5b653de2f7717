/*
 * keyhole doctor: checks an installation and its running broker. Each
 * cmd_doctor_*.c file checks one area and reports every finding through
 * kh_doctor_pass or kh_doctor_problem, which print it and count it.
 */
#ifndef KEYHOLE_CMD_DOCTOR_H
#define KEYHOLE_CMD_DOCTOR_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "keyhole/config.h"
#include "keyhole/policy.h"

enum kh_doctor_status {
	KH_DOCTOR_PASS,
	KH_DOCTOR_WARN,
	KH_DOCTOR_FAIL,
};

struct kh_doctor {
	/* Options. */
	const char *config_path;
	const char *profile_dir; /* NULL for KH_CONFINE_DIR_DEFAULT */
	bool no_backends;
	uint64_t tail;

	/* Findings that later checks use. */
	struct kh_config *config;  /* NULL when the config did not load */
	struct kh_policy *policy;  /* NULL when the policy did not load */
	uid_t broker_uid;          /* owner of the socket, else our euid */
	bool dpr_time_known;
	uint64_t dpr_last_seq;
	int64_t dpr_last_time;     /* unix seconds of the newest record */

	/* Counts for the summary line. */
	unsigned int passed;
	unsigned int warnings;
	unsigned int failed;
	bool broken;               /* doctor itself ran out of memory */
};

/* Prints "pass  CHECK: FOUND" and counts it. */
void kh_doctor_pass(struct kh_doctor *d, const char *check, const char *fmt,
		    ...) __attribute__((format(printf, 3, 4)));

/*
 * Prints "warn  CHECK: FOUND" or "fail  CHECK: FOUND", then the fix on
 * a second line, "      fix: FIX", and counts it.
 */
void kh_doctor_problem(struct kh_doctor *d, enum kh_doctor_status status,
		       const char *check, const char *found,
		       const char *fix_fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Size of the buffers that callers format a finding into. */
#define KH_DOCTOR_TEXT_MAX (2 * PATH_MAX + 1024)

void kh_doctor_check_config(struct kh_doctor *d);
void kh_doctor_check_policy(struct kh_doctor *d);
void kh_doctor_check_keys(struct kh_doctor *d);
void kh_doctor_check_mount(struct kh_doctor *d);
void kh_doctor_check_socket(struct kh_doctor *d);
void kh_doctor_check_dpr(struct kh_doctor *d);
void kh_doctor_check_clock(struct kh_doctor *d);
void kh_doctor_check_backends(struct kh_doctor *d);
void kh_doctor_check_confinement(struct kh_doctor *d);

#endif
