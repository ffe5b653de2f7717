/*
 * Service manager notifications through libsystemd's sd_notify, for a
 * Type=notify unit: READY=1 once the broker socket listens and the FUSE
 * mount is up, RELOADING=1 then READY=1 around a SIGHUP reload, and
 * STOPPING=1 at shut-down. sd_notify does nothing when NOTIFY_SOCKET is
 * unset, so keyholed run by hand or by the tests behaves the same.
 *
 * A failed notification is logged at debug level only: the service
 * manager then times the start-up out, which reports the problem where
 * the admin looks for it.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "daemon.h"

static void send_state(const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0)
		kd_log(LOG_DEBUG, "sd_notify failed: %s", strerror(-r));
}

void kd_notify_ready(const struct kd_daemon *d)
{
	char state[2 * PATH_MAX + 96];

	(void)snprintf(state, sizeof(state), "READY=1\nSTATUS=serving: "
		       "socket %s, mount %s", d->config->socket,
		       d->config->secrets_mount);
	send_state(state);
}

/*
 * systemd 253 and later expect MONOTONIC_USEC with RELOADING=1 to tell
 * this reload from an earlier one, and systemd 252 ignores the field.
 */
void kd_notify_reloading(void)
{
	struct timespec ts;
	char state[96];

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	(void)snprintf(state, sizeof(state), "RELOADING=1\nSTATUS=reloading "
		       "the policy\nMONOTONIC_USEC=%llu",
		       (unsigned long long)ts.tv_sec * 1000000ULL +
			       (unsigned long long)ts.tv_nsec / 1000ULL);
	send_state(state);
}

void kd_notify_stopping(const char *reason)
{
	char state[160];

	(void)snprintf(state, sizeof(state), "STOPPING=1\nSTATUS=stopping: %s",
		       reason);
	send_state(state);
}
