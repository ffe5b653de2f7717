/*
 * keyholed logging: one line per event to stderr (the default, for
 * systemd's journal) or to syslog (LOG_DAEMON, ident "keyholed"). When
 * stderr is the journal, each line starts with its syslog priority.
 * Lines carry ids (jti, uid, pid, rule, seq), never a token or secret.
 *
 * Denials are rate-limited per (uid, topic), where the topic is the
 * secret path or the broker operation. Each pair gets at most
 * KD_DENIAL_BURST lines per KD_DENIAL_WINDOW seconds, and then one line with
 * the count of the lines suppressed, so a looping client cannot flood
 * the log.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"

#define DENIAL_SLOTS 256

struct denial_slot {
	uid_t uid;
	char topic[128];
	time_t window_start;
	unsigned int logged;
	unsigned long suppressed;
	bool used;
};

static enum kd_log_target log_target = KD_LOG_STDERR;
static bool log_debug;
static bool log_journal; /* stderr is a journald stream: prefix "<N>" */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct denial_slot denial_slots[DENIAL_SLOTS];

static const char *priority_name(int priority)
{
	switch (priority) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
		return "crit";
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

/*
 * Returns whether stderr is the journal stream that systemd set up for
 * this service. systemd exports the stream's device and inode as
 * JOURNAL_STREAM ("<dev>:<ino>"). Comparing them with fstat(2) rules
 * out a stderr that was redirected after the variable was inherited.
 */
static bool stderr_is_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int end = 0;

	if (!stream || sscanf(stream, "%llu:%llu%n", &dev, &ino, &end) != 2 ||
	    stream[end] != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void kd_log_open(enum kd_log_target target, bool debug)
{
	log_target = target;
	log_debug = debug;
	log_journal = target == KD_LOG_STDERR && stderr_is_journal();
	if (target == KD_LOG_SYSLOG)
		openlog("keyholed", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void kd_log_close(void)
{
	if (log_target == KD_LOG_SYSLOG)
		closelog();
}

static void log_line(int priority, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void log_line(int priority, const char *fmt, va_list ap)
{
	char line[1024];
	int saved_errno = errno;

	if (priority == LOG_DEBUG && !log_debug)
		return;
	if (vsnprintf(line, sizeof(line), fmt, ap) < 0)
		return;

	if (log_target == KD_LOG_SYSLOG) {
		syslog(priority, "%s", line);
	} else {
		pthread_mutex_lock(&log_lock);
		/* journald reads a leading "<N>" as the line's priority. */
		if (log_journal)
			fprintf(stderr, "<%d>", priority);
		fprintf(stderr, "keyholed: %s: %s\n", priority_name(priority),
			line);
		fflush(stderr);
		pthread_mutex_unlock(&log_lock);
	}
	errno = saved_errno;
}

void kd_log(int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(priority, fmt, ap);
	va_end(ap);
}

static unsigned long hash_key(uid_t uid, const char *topic)
{
	unsigned long h = 2166136261u ^ (unsigned long)uid;

	for (const char *p = topic; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h;
}

/*
 * Decides whether a denial for (uid, topic) may be logged now, and stores
 * in *flushed the count of lines suppressed in the window that just
 * closed, so the caller can report it. A slot collision evicts the older
 * key, which at worst logs a few extra lines.
 */
bool kd_log_denial_allowed(uid_t uid, const char *topic, time_t now,
			    unsigned long *flushed)
{
	struct denial_slot *slot;
	bool allowed;

	*flushed = 0;
	pthread_mutex_lock(&log_lock);
	slot = &denial_slots[hash_key(uid, topic) % DENIAL_SLOTS];
	if (!slot->used || slot->uid != uid ||
	    strncmp(slot->topic, topic, sizeof(slot->topic) - 1) != 0) {
		slot->used = true;
		slot->uid = uid;
		(void)snprintf(slot->topic, sizeof(slot->topic), "%s", topic);
		slot->window_start = now;
		slot->logged = 0;
		slot->suppressed = 0;
	}
	if (now - slot->window_start >= KD_DENIAL_WINDOW) {
		*flushed = slot->suppressed;
		slot->window_start = now;
		slot->logged = 0;
		slot->suppressed = 0;
	}
	allowed = slot->logged < KD_DENIAL_BURST;
	if (allowed)
		slot->logged++;
	else
		slot->suppressed++;
	pthread_mutex_unlock(&log_lock);
	return allowed;
}

void kd_log_denial(uid_t uid, const char *topic, const char *fmt, ...)
{
	unsigned long flushed;
	va_list ap;

	if (!kd_log_denial_allowed(uid, topic, time(NULL), &flushed))
		return;
	if (flushed > 0)
		kd_log(LOG_NOTICE,
		       "suppressed %lu repeated denials: uid=%u topic=%s in %d s",
		       flushed, (unsigned int)uid, topic, KD_DENIAL_WINDOW);
	va_start(ap, fmt);
	log_line(LOG_NOTICE, fmt, ap);
	va_end(ap);
}
