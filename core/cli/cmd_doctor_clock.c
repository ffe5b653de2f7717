/*
 * keyhole doctor: the clock. Permit expiry, rate windows and the DPR's
 * record times all use the wall clock, so a clock that drifts or runs
 * behind the log makes keyholed judge permits wrongly.
 */
#include <stdio.h>
#include <sys/timex.h>
#include <time.h>

#include "cli.h"
#include "cmd_doctor.h"

/* adjtimex with modes 0 only reads the state, which needs no privilege. */
static void check_sync(struct kh_doctor *d)
{
	struct timex tx = { .modes = 0 };
	int state = adjtimex(&tx);

	if (state < 0) {
		kh_doctor_problem(d, KH_DOCTOR_WARN, "clock sync",
				  "cannot read the kernel's clock state "
				  "(adjtimex failed)",
				  "check that an NTP client such as "
				  "systemd-timesyncd or chrony runs");
		return;
	}
	if (state == TIME_ERROR || (tx.status & STA_UNSYNC)) {
		kh_doctor_problem(d, KH_DOCTOR_WARN, "clock sync",
				  "the kernel reports the clock as not "
				  "synchronized (STA_UNSYNC)",
				  "enable systemd-timesyncd or chrony");
		return;
	}
	kh_doctor_pass(d, "clock sync", "synchronized (estimated error %ld "
		       "us)", (long)tx.esterror);
}

/* A clock behind the newest record would accept permits that expired. */
static void check_order(struct kh_doctor *d)
{
	char now_text[32], last_text[32], text[KH_DOCTOR_TEXT_MAX];
	time_t now = time(NULL);

	if (!d->dpr_time_known)
		return;
	kh_cli_format_time(now, now_text);
	kh_cli_format_time(d->dpr_last_time, last_text);
	if (now < d->dpr_last_time) {
		(void)snprintf(text, sizeof(text), "the clock reads %s, before "
			       "the newest DPR record (seq %llu, %s), so "
			       "permits would be judged wrong", now_text,
			       (unsigned long long)d->dpr_last_seq, last_text);
		kh_doctor_problem(d, KH_DOCTOR_FAIL, "clock order", text,
				  "set the clock right (enable "
				  "systemd-timesyncd or chrony), then "
				  "systemctl restart keyholed");
		return;
	}
	kh_doctor_pass(d, "clock order", "%s is after the newest DPR record "
		       "(seq %llu, %s)", now_text,
		       (unsigned long long)d->dpr_last_seq, last_text);
}

void kh_doctor_check_clock(struct kh_doctor *d)
{
	check_sync(d);
	check_order(d);
}
