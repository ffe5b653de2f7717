/*
 * keyholed: the keyhole broker. It mints permits over a unix socket and
 * serves secrets through a FUSE mount to processes that hold one.
 *
 * Threads: main runs the FUSE loop. One thread waits for signals with
 * sigtimedwait, and the signals are blocked everywhere else, so no work
 * happens in a signal handler. Between signals it runs the periodic
 * clean-up of expired permits, which also ends the login sessions whose
 * leader process has exited. The broker has an accept thread and one
 * thread per connection, and libfuse starts its own workers.
 *
 * Start-up order: core dumps off, config, keys, policy, DPR log (with a
 * "start" and a "policy_load" record), backends, permits_dir, socket,
 * mount, then "ready" (and READY=1 to systemd). Shut-down: STOPPING=1,
 * stop accepting, unmount, "stop".
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon.h"

/* Exit statuses, the same as the keyhole CLI's. */
#define EXIT_USAGE 2
#define EXIT_SYSTEM 3

struct options {
	const char *config;
	bool check_config;
	enum kd_log_target log_target;
	bool debug;
};

/*
 * Interrupts the FUSE loop's wait in the main thread, so that the loop
 * checks the fuse_exit flag. Every other thread keeps it blocked.
 */
#define WAKE_SIGNAL SIGUSR1

/* Shared by the signal thread and main; guards the stop hand-over. */
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static bool loop_done;
static pthread_t main_thread;
static char stop_reason[64] = "mount ended";

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: keyholed [OPTION]...\n"
		"Run the keyhole broker in the foreground: mint permits on the "
		"broker socket\nand serve secrets on the FUSE mount.\n\n"
		"  --config FILE    read the config from FILE (default %s)\n"
		"  --foreground     run in the foreground (always the case; "
		"accepted for\n                   service managers)\n"
		"  --check-config   validate config, keys, policy and backends,"
		" print every\n                   error, exit 0 if valid or 2 "
		"if not\n"
		"  --stderr         log to standard error (the default)\n"
		"  --syslog         log to syslog (facility daemon)\n"
		"  --debug          log debug messages too\n"
		"  --help           show this help and exit\n"
		"  --version        show the version and exit\n\n"
		"SIGHUP reloads the policy; SIGTERM or SIGINT unmounts and "
		"stops.\n\n"
		"Exit status:\n"
		"  0  stopped cleanly, or --check-config found no error\n"
		"  2  usage, config, key, policy or audit log error\n"
		"  3  socket, mount or other system error\n", KH_CONFIG_DEFAULT);
}

/* Returns -1 to go on, or the exit status to leave with. */
static int parse_options(int argc, char **argv, struct options *opts)
{
	enum { OPT_CONFIG = 256, OPT_FOREGROUND, OPT_CHECK, OPT_SYSLOG,
	       OPT_STDERR, OPT_DEBUG, OPT_HELP, OPT_VERSION };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "foreground", no_argument, NULL, OPT_FOREGROUND },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "syslog", no_argument, NULL, OPT_SYSLOG },
		{ "stderr", no_argument, NULL, OPT_STDERR },
		{ "debug", no_argument, NULL, OPT_DEBUG },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opts->config = KH_CONFIG_DEFAULT;
	for (;;) {
		c = getopt_long(argc, argv, "", longopts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case OPT_CONFIG:
			opts->config = optarg;
			break;
		case OPT_FOREGROUND:
			break;
		case OPT_CHECK:
			opts->check_config = true;
			break;
		case OPT_SYSLOG:
			opts->log_target = KD_LOG_SYSLOG;
			break;
		case OPT_STDERR:
			opts->log_target = KD_LOG_STDERR;
			break;
		case OPT_DEBUG:
			opts->debug = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("keyholed %s\n", KH_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "keyholed: unexpected argument \"%s\"; see "
			"keyholed --help\n", argv[optind]);
		return EXIT_USAGE;
	}
	return -1;
}

/*
 * Turns core dumps off before any key or secret is in memory: a dump
 * of this process would hold the signing keys and fetched secrets.
 */
static int disable_core_dumps(void)
{
	struct rlimit none = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ||
	    setrlimit(RLIMIT_CORE, &none) < 0) {
		fprintf(stderr, "keyholed: cannot disable core dumps: %s\n",
			strerror(errno));
		return -errno;
	}
	return 0;
}

static void signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
}

static void on_wake_signal(int sig)
{
	(void)sig;
}

static bool loop_has_ended(void)
{
	bool done;

	pthread_mutex_lock(&stop_lock);
	done = loop_done;
	pthread_mutex_unlock(&stop_lock);
	return done;
}

/*
 * Ends the FUSE loop: sets libfuse's exit flag, then interrupts the main
 * thread until the loop has returned (it may not be waiting yet when
 * the first signal arrives).
 */
static void request_stop(struct kd_daemon *d, const char *reason)
{
	const struct timespec pause = { .tv_sec = 0, .tv_nsec = 100000000 };

	pthread_mutex_lock(&stop_lock);
	if (!loop_done) {
		(void)snprintf(stop_reason, sizeof(stop_reason), "%s", reason);
		kd_log(LOG_NOTICE, "stopping: %s", reason);
		kd_fs_stop(d);
	}
	pthread_mutex_unlock(&stop_lock);
	while (!loop_has_ended()) {
		pthread_kill(main_thread, WAKE_SIGNAL);
		nanosleep(&pause, NULL);
	}
}

/* Runs a SIGHUP reload unless shut-down has begun. */
static void reload_policy(struct kd_daemon *d, pid_t sender)
{
	struct kh_err err = { { 0 } };

	pthread_mutex_lock(&stop_lock);
	if (!loop_done) {
		kd_log(LOG_INFO, "SIGHUP from pid=%d: reloading %s",
		       (int)sender, d->config->policy);
		kd_notify_reloading();
		if (kd_daemon_reload(d, &err) < 0)
			kd_log(LOG_ERR, "policy reload failed, keeping the "
			       "current policy: %s", err.msg);
		/* A failed reload still serves the old policy: ready again. */
		kd_notify_ready(d);
	}
	pthread_mutex_unlock(&stop_lock);
}

/*
 * Runs a clean-up pass when no broker request has run one lately, so
 * that expired permit files go even while the broker is idle.
 */
static void prune_idle(struct kd_daemon *d)
{
	pthread_mutex_lock(&stop_lock);
	if (!loop_done) {
		pthread_mutex_lock(&d->lock);
		kd_daemon_prune_locked(d, (int64_t)time(NULL));
		pthread_mutex_unlock(&d->lock);
	}
	pthread_mutex_unlock(&stop_lock);
}

static void *signal_main(void *arg)
{
	const struct timespec tick = { .tv_sec = KD_PRUNE_INTERVAL };
	struct kd_daemon *d = arg;
	sigset_t set;

	signal_set(&set);
	for (;;) {
		siginfo_t info;
		int sig = sigtimedwait(&set, &info, &tick);

		if (sig < 0 && errno == EAGAIN)
			prune_idle(d);
		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			reload_policy(d, info.si_pid);
			continue;
		}
		request_stop(d, sig == SIGTERM ? "SIGTERM" : "SIGINT");
		return NULL;
	}
}

static int start_signal_thread(struct kd_daemon *d, struct kh_err *err)
{
	pthread_t thread;
	int r;

	r = pthread_create(&thread, NULL, signal_main, d);
	if (r != 0) {
		kh_err_set(err, "cannot start the signal thread: %s",
			   strerror(r));
		return -r;
	}
	pthread_detach(thread);
	return 0;
}

static void append_stop(struct kd_daemon *d, const char *reason)
{
	json_t *fields;

	if (!d->dpr)
		return;
	fields = json_pack("{s:s}", "reason", reason);
	pthread_mutex_lock(&d->lock);
	if (fields)
		(void)kd_daemon_append(d, "stop", fields, NULL, NULL, NULL);
	pthread_mutex_unlock(&d->lock);
	json_decref(fields);
}

/* Socket, mount, signal thread and accept thread, in that order. */
static int start_serving(struct kd_daemon *d, struct kh_err *err)
{
	int r;

	r = kd_broker_listen(d, err);
	if (r == 0)
		r = kd_fs_mount(d, err);
	if (r == 0)
		r = start_signal_thread(d, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&d->lock);
	d->ready = true;
	kd_log(LOG_NOTICE, "ready: broker_id=%s socket=%s mount=%s hP=%s "
	       "seq=%llu", d->config->broker_id, d->config->socket,
	       d->config->secrets_mount, kh_policy_hash(d->policy),
	       (unsigned long long)d->last_seq);
	pthread_mutex_unlock(&d->lock);
	r = kd_broker_start(d, err);
	if (r == 0)
		kd_notify_ready(d);
	return r;
}

static void shut_down(struct kd_daemon *d, const char *reason)
{
	kd_notify_stopping(reason);
	kd_broker_stop(d);
	kd_fs_unmount(d);
	append_stop(d, reason);
	kd_daemon_unload(d);
	pthread_mutex_destroy(&d->lock);
}

/* No SA_RESTART: the signal must interrupt the loop's wait. */
static int install_wake_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake_signal;
	sigemptyset(&sa.sa_mask);
	return sigaction(WAKE_SIGNAL, &sa, NULL);
}

static int run(const struct options *opts)
{
	struct kd_daemon d;
	struct kh_err err = { { 0 } };
	sigset_t set;
	int r;

	memset(&d, 0, sizeof(d));
	pthread_mutex_init(&d.lock, NULL);
	signal_set(&set);
	sigaddset(&set, WAKE_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	main_thread = pthread_self();
	if (install_wake_handler() < 0) {
		kd_log(LOG_ERR, "cannot install the %s handler: %m",
		       "SIGUSR1");
		return EXIT_SYSTEM;
	}

	kd_log(LOG_NOTICE, "starting keyholed %s, config %s", KH_VERSION,
	       opts->config);
	r = kd_daemon_load(&d, opts->config, &err);
	if (r < 0) {
		kd_log(LOG_ERR, "cannot start: %s", err.msg);
		shut_down(&d, "start-up failed");
		return EXIT_USAGE;
	}
	r = start_serving(&d, &err);
	if (r < 0) {
		kd_log(LOG_ERR, "cannot start: %s", err.msg);
		shut_down(&d, "start-up failed");
		return EXIT_SYSTEM;
	}

	/* Only this thread, and the workers libfuse starts from it, get it. */
	sigemptyset(&set);
	sigaddset(&set, WAKE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	r = kd_fs_loop(&d);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_mutex_lock(&stop_lock);
	loop_done = true;
	pthread_mutex_unlock(&stop_lock);
	if (r != 0)
		kd_log(LOG_ERR, "FUSE loop ended with error %d", r);
	shut_down(&d, stop_reason);
	kd_log(LOG_NOTICE, "stopped: %s", stop_reason);
	return r == 0 ? 0 : EXIT_SYSTEM;
}

int main(int argc, char **argv)
{
	struct options opts = { .log_target = KD_LOG_STDERR };
	int r;

	if (disable_core_dumps() < 0)
		return EXIT_SYSTEM;
	r = parse_options(argc, argv, &opts);
	if (r >= 0)
		return r;
	if (sodium_init() < 0) {
		fprintf(stderr, "keyholed: cannot initialise libsodium\n");
		return EXIT_SYSTEM;
	}
	if (opts.check_config)
		return kd_daemon_check_config(opts.config);

	kd_log_open(opts.log_target, opts.debug);
	r = run(&opts);
	kd_log_close();
	return r;
}
