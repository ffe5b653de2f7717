/*
 * try_syscall: makes one system call and prints how it ended, for the
 * confinement escape tests (tests/integration/confine_escape.sh).
 *
 * Usage:
 *   try_syscall NAME              one call from the table below
 *   try_syscall list              the names in the table, one a line
 *   try_syscall ptrace-attach PID PTRACE_ATTACH, then detach
 *   try_syscall vm-readv PID ADDR process_vm_readv of 8 bytes at ADDR
 *   try_syscall pidfd-getfd PID FD
 *   try_syscall open PATH         open read-only and read one byte
 *   try_syscall tcp-connect PORT  connect to 127.0.0.1:PORT
 *   try_syscall pty-exec CMD...   start a session whose controlling
 *                                 terminal is a new pty on stdin, then
 *                                 exec CMD (for the tiocsti entry)
 *
 * Output: one line, "OK" when the call succeeded or the errno name
 * (EPERM, EBADF, ...) when it failed. Exit status 0 either way, so that
 * the caller tells a seccomp denial (EPERM) from a call that reached
 * the kernel (EBADF, EFAULT, EINVAL ...) by the output alone. A process
 * that the filter kills prints nothing and dies of SIGSYS. Exit status
 * 2 means bad usage or a failed set-up step, which stderr names.
 *
 * The denied calls get arguments that the kernel rejects with an errno
 * other than EPERM even for root: a bad fd, a NULL or unmapped pointer,
 * an invalid flag or command. So root without the filter gets EBADF and
 * the like, and a filter that lets a call through cannot make it do
 * anything: no mount, reboot, clock change or module load can happen.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/quota.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/io_uring.h>

#define EXIT_SETUP 2

/* An address in the unmapped first page: copy_from_user gives EFAULT. */
#define BAD_ADDR 1L

/* QCMD with a quota type past MAXQUOTAS: quotactl returns EINVAL. */
#define QUOTA_BAD_TYPE 99

/* ioctl takes a 32-bit command, so the kernel drops these high bits. A
 * filter that compares the whole 64-bit register would miss the call. */
#define IOCTL_HIGH_BITS (1L << 32)

/* i386 and x32 numbers of getpid. */
#define I386_NR_GETPID 20L
#define X32_SYSCALL_BIT 0x40000000L
#define X32_NR_GETPID (X32_SYSCALL_BIT | 39L)

/* kexec flags bit outside KEXEC_FLAGS and a segment count above
 * KEXEC_SEGMENT_MAX (16): both give EINVAL before anything is loaded. */
#define KEXEC_BAD_FLAG 0x8000L
#define KEXEC_TOO_MANY_SEGMENTS 1000L
#define KEXEC_FILE_BAD_FLAG 0x80000L

/* FSCONFIG_CMD_CREATE from <linux/mount.h>, which clashes with
 * <sys/mount.h> on glibc 2.36. */
#define FSCONFIG_CMD_CREATE_VALUE 6L

/* One entry of the table: a raw syscall with fixed arguments, or a
 * function for calls that need set-up. run returns the syscall's
 * result, -1 with errno set on failure. */
struct call {
	const char *name;
	long nr;
	long args[6];
	long (*run)(void);
};

static long call_raw(const struct call *entry)
{
	return syscall(entry->nr, entry->args[0], entry->args[1],
		       entry->args[2], entry->args[3], entry->args[4],
		       entry->args[5]);
}

/* Raw clone with flags that copy_process rejects (CLONE_NEWUSER with
 * CLONE_FS is EINVAL). Should a child start anyway, it leaves at once. */
static long clone_newuser(void)
{
	long rc = syscall(SYS_clone, (long)(CLONE_NEWUSER | CLONE_FS), 0L, 0L,
			  0L, 0L);

	if (rc == 0)
		_exit(0);
	if (rc > 0)
		(void)waitpid((pid_t)rc, NULL, __WALL);
	return rc;
}

static long read_dev_null(void)
{
	char byte;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	long rc;

	if (fd < 0)
		return -1;
	rc = read(fd, &byte, 1);
	close(fd);
	return rc;
}

static long make_socketpair(void)
{
	int fds[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		return -1;
	close(fds[0]);
	close(fds[1]);
	return 0;
}

static long make_inet_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* An ioctl that the filter must keep allowing: FIONREAD on a pipe. */
static long pipe_fionread(void)
{
	int fds[2];
	int count = 0;
	long rc;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	rc = ioctl(fds[0], FIONREAD, &count);
	close(fds[0]);
	close(fds[1]);
	return rc;
}

static long fork_and_wait(void)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(0);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void *thread_main(void *arg)
{
	return arg;
}

/* glibc tries clone3 first and falls back to clone on ENOSYS, so this
 * shows that the filter's ENOSYS for clone3 keeps threads working. */
static long start_thread(void)
{
	pthread_t thread;
	int rc = pthread_create(&thread, NULL, thread_main, NULL);

	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return pthread_join(thread, NULL) == 0 ? 0 : -1;
}

/* A real user namespace, which unprivileged users may create while
 * user.max_user_namespaces is above 0. The namespace ends with this
 * process. */
static long unshare_user(void)
{
	return syscall(SYS_unshare, (long)CLONE_NEWUSER);
}

/* A real io_uring instance with one entry, closed at once. */
static long io_uring_one(void)
{
	struct io_uring_params params;
	long fd;

	memset(&params, 0, sizeof(params));
	fd = syscall(SYS_io_uring_setup, 1L, &params);
	if (fd >= 0)
		close((int)fd);
	return fd;
}

/* Succeeds only when no_new_privs is set, as every profile sets it. */
static long no_new_privs_set(void)
{
	int rc = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);

	if (rc < 0)
		return -1;
	if (rc != 1) {
		errno = ENOTRECOVERABLE;
		return -1;
	}
	return 0;
}

/* TIOCSTI on stdin, which pty-exec makes the controlling terminal. The
 * kernel allows that to the terminal's own session without privileges
 * while dev.tty.legacy_tiocsti is 1. The byte lands in the pty's input
 * queue, which nobody reads. */
static long tiocsti_stdin(void)
{
	char byte = '\n';

	return ioctl(0, TIOCSTI, &byte);
}

#if defined(__x86_64__)
/* getpid through the i386 entry point. Registers r8-r11 are listed as
 * clobbered because older kernels did not preserve them on int 0x80. */
static long int80_getpid(void)
{
	long rc;

	__asm__ volatile("int $0x80"
			 : "=a"(rc)
			 : "a"(I386_NR_GETPID)
			 : "memory", "r8", "r9", "r10", "r11");
	rc = (int)rc;
	if (rc < 0 && rc > -4096) {
		errno = (int)-rc;
		return -1;
	}
	return rc;
}

static long x32_getpid(void)
{
	return syscall(X32_NR_GETPID);
}
#endif

static const struct call calls[] = {
	/* Debugging and memory access. */
	{ "ptrace", SYS_ptrace, { PTRACE_ATTACH, -1 }, NULL },
	{ "process_vm_readv", SYS_process_vm_readv, { 0, 0, 0, 0, 0, 1 }, NULL },
	{ "process_vm_writev", SYS_process_vm_writev, { 0, 0, 0, 0, 0, 1 }, NULL },
	{ "pidfd_getfd", SYS_pidfd_getfd, { -1, 0, 0 }, NULL },
	{ "kcmp", SYS_kcmp, { -1, -1, 0, 0, 0 }, NULL },
	{ "process_madvise", SYS_process_madvise, { -1, 0, 0, 0, 0 }, NULL },
	{ "perf_event_open", SYS_perf_event_open, { 0, 0, -1, -1, 0 }, NULL },
	{ "bpf", SYS_bpf, { -1, 0, 0 }, NULL },
	{ "userfaultfd", SYS_userfaultfd, { -1 }, NULL },

	/* The mount family. */
	{ "mount", SYS_mount, { 0, 0, 0, 0, 0 }, NULL },
	{ "umount2", SYS_umount2, { 0, 0 }, NULL },
	{ "fsopen", SYS_fsopen, { 0, 0 }, NULL },
	{ "fsconfig", SYS_fsconfig, { -1, FSCONFIG_CMD_CREATE_VALUE, 0, 0, 0 }, NULL },
	{ "fsmount", SYS_fsmount, { -1, 0, 0 }, NULL },
	{ "fspick", SYS_fspick, { -1, 0, 0 }, NULL },
	{ "move_mount", SYS_move_mount, { -1, 0, -1, 0, 0 }, NULL },
	{ "open_tree", SYS_open_tree, { -1, 0, 0 }, NULL },
	{ "mount_setattr", SYS_mount_setattr, { -1, 0, 0, 0, 0 }, NULL },
	{ "pivot_root", SYS_pivot_root, { 0, 0 }, NULL },

	/* Namespaces. CLONE_PARENT is not a valid unshare flag. */
	{ "unshare", SYS_unshare, { CLONE_NEWUSER | CLONE_PARENT }, NULL },
	{ "setns", SYS_setns, { -1, 0 }, NULL },
	{ "clone_newuser", 0, { 0 }, clone_newuser },
	{ "clone3", SYS_clone3, { 0, 0 }, NULL },

	{ "io_uring_setup", SYS_io_uring_setup, { 0, 0 }, NULL },
	{ "io_uring_enter", SYS_io_uring_enter, { -1, 0, 0, 0, 0, 0 }, NULL },
	{ "io_uring_register", SYS_io_uring_register, { -1, 0, 0, 0 }, NULL },

	/* The kernel keyring. keyctl has no command -1. */
	{ "keyctl", SYS_keyctl, { -1 }, NULL },
	{ "add_key", SYS_add_key, { 0, 0, 0, 0, 0 }, NULL },
	{ "request_key", SYS_request_key, { 0, 0, 0, 0 }, NULL },

	/* Kernel and module loading. */
	{ "kexec_load", SYS_kexec_load, { 0, KEXEC_TOO_MANY_SEGMENTS, 0, KEXEC_BAD_FLAG }, NULL },
	{ "kexec_file_load", SYS_kexec_file_load, { -1, -1, 0, 0, KEXEC_FILE_BAD_FLAG }, NULL },
	{ "init_module", SYS_init_module, { 0, 0, 0 }, NULL },
	{ "finit_module", SYS_finit_module, { -1, 0, 0 }, NULL },
	{ "delete_module", SYS_delete_module, { 0, 0 }, NULL },

#if defined(SYS_iopl) && defined(SYS_ioperm)
	/* Raw I/O: level 4 does not exist, and zero ports is EINVAL. */
	{ "iopl", SYS_iopl, { 4 }, NULL },
	{ "ioperm", SYS_ioperm, { 0, 0, 0 }, NULL },
#endif

	{ "open_by_handle_at", SYS_open_by_handle_at, { -1, 0, 0 }, NULL },
	{ "name_to_handle_at", SYS_name_to_handle_at, { -1, 0, 0, 0, 0 }, NULL },
	{ "personality", SYS_personality, { ADDR_NO_RANDOMIZE }, NULL },

	/* System administration. */
	{ "acct", SYS_acct, { BAD_ADDR }, NULL },
	{ "swapon", SYS_swapon, { 0, 0 }, NULL },
	{ "swapoff", SYS_swapoff, { 0 }, NULL },
	{ "reboot", SYS_reboot, { 0, 0, 0, 0 }, NULL },
	{ "settimeofday", SYS_settimeofday, { BAD_ADDR, 0 }, NULL },
	{ "clock_settime", SYS_clock_settime, { CLOCK_REALTIME, 0 }, NULL },
	{ "clock_adjtime", SYS_clock_adjtime, { CLOCK_REALTIME, 0 }, NULL },
	{ "adjtimex", SYS_adjtimex, { 0 }, NULL },
	{ "quotactl", SYS_quotactl, { QCMD(Q_GETQUOTA, QUOTA_BAD_TYPE), 0, 0, 0 }, NULL },
	{ "quotactl_fd", SYS_quotactl_fd, { -1, QCMD(Q_GETQUOTA, USRQUOTA), 0, 0 }, NULL },
	{ "syslog", SYS_syslog, { 99, 0, 0 }, NULL },

	/* Terminal injection, also with bits the kernel ignores. */
	{ "ioctl_tiocsti", SYS_ioctl, { -1, TIOCSTI, 0 }, NULL },
	{ "ioctl_tiocsti_high", SYS_ioctl, { -1, IOCTL_HIGH_BITS | TIOCSTI, 0 }, NULL },
	{ "ioctl_tioclinux", SYS_ioctl, { -1, TIOCLINUX, 0 }, NULL },
	{ "ioctl_tioclinux_high", SYS_ioctl, { -1, IOCTL_HIGH_BITS | TIOCLINUX, 0 }, NULL },

	/* Calls that must keep working under every profile. */
	{ "getpid", SYS_getpid, { 0 }, NULL },
	{ "personality_default", SYS_personality, { PER_LINUX }, NULL },
	{ "read_dev_null", 0, { 0 }, read_dev_null },
	{ "socketpair", 0, { 0 }, make_socketpair },
	{ "socket_inet", 0, { 0 }, make_inet_socket },
	{ "ioctl_fionread", 0, { 0 }, pipe_fionread },
	{ "fork", 0, { 0 }, fork_and_wait },
	{ "thread", 0, { 0 }, start_thread },
	{ "no_new_privs", 0, { 0 }, no_new_privs_set },

	/* Real calls for the targeted checks. tiocsti needs pty-exec. */
	{ "unshare-user", 0, { 0 }, unshare_user },
	{ "io-uring", 0, { 0 }, io_uring_one },
	{ "tiocsti", 0, { 0 }, tiocsti_stdin },

	/* Foreign ABIs, which the filter must kill. */
#if defined(__x86_64__)
	{ "int80", 0, { 0 }, int80_getpid },
	{ "x32", 0, { 0 }, x32_getpid },
#endif
};

#define CALL_COUNT (sizeof(calls) / sizeof(calls[0]))

static int print_result(long rc, int saved_errno)
{
	const char *name;

	if (rc >= 0) {
		puts("OK");
		return 0;
	}
	name = strerrorname_np(saved_errno);
	if (name)
		puts(name);
	else
		printf("errno%d\n", saved_errno);
	return 0;
}

static int usage(void)
{
	fputs("usage: try_syscall NAME | list | ptrace-attach PID | "
	      "vm-readv PID ADDR | pidfd-getfd PID FD | open PATH | "
	      "tcp-connect PORT | pty-exec CMD...\n", stderr);
	return EXIT_SETUP;
}

/* Parses text as a whole number in [min, max], decimal or 0x hex. */
static int parse_number(const char *text, long min, long max, long *out)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 0);
	if (errno != 0 || end == text || *end != '\0' || value < min ||
	    value > max) {
		fprintf(stderr, "try_syscall: invalid number \"%s\": expected "
			"%ld to %ld\n", text, min, max);
		return -1;
	}
	*out = value;
	return 0;
}

static int parse_address(const char *text, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(text, &end, 16);
	if (errno != 0 || end == text || *end != '\0') {
		fprintf(stderr, "try_syscall: invalid address \"%s\": expected "
			"hex digits\n", text);
		return -1;
	}
	return 0;
}

/* A successful attach stops the target, so wait for the stop and
 * detach at once. The exit of this process would also detach it. */
static int try_ptrace_attach(pid_t pid)
{
	long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
	int saved = errno;

	if (rc == 0) {
		(void)waitpid(pid, NULL, __WALL);
		(void)ptrace(PTRACE_DETACH, pid, NULL, NULL);
	}
	return print_result(rc, saved);
}

static int try_vm_readv(pid_t pid, unsigned long address)
{
	char buf[8];
	struct iovec local = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct iovec remote = { .iov_base = (void *)address,
				.iov_len = sizeof(buf) };
	long rc = syscall(SYS_process_vm_readv, (long)pid, &local, 1L, &remote,
			  1L, 0L);

	return print_result(rc, errno);
}

/* pidfd_open is not on the deny list, so a failure there is a set-up
 * failure. The result printed is that of pidfd_getfd. */
static int try_pidfd_getfd(pid_t pid, int target_fd)
{
	long pidfd = syscall(SYS_pidfd_open, (long)pid, 0L);
	long rc;

	if (pidfd < 0) {
		fprintf(stderr, "try_syscall: pidfd_open(%d) failed: %s\n",
			(int)pid, strerror(errno));
		return EXIT_SETUP;
	}
	rc = syscall(SYS_pidfd_getfd, pidfd, (long)target_fd, 0L);
	return print_result(rc, errno);
}

static int try_open(const char *path)
{
	char byte;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return print_result(-1, errno);
	if (read(fd, &byte, 1) < 0) {
		int saved = errno;

		close(fd);
		return print_result(-1, saved);
	}
	close(fd);
	return print_result(0, 0);
}

/* Connects to 127.0.0.1 only: the tests never send traffic elsewhere. */
static int try_tcp_connect(int port)
{
	struct sockaddr_in addr = {
		.sin_family = AF_INET,
		.sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc;
	int saved;

	if (fd < 0)
		return print_result(-1, errno);
	rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
	saved = errno;
	close(fd);
	return print_result(rc, saved);
}

/* Makes a new pty the controlling terminal of a new session and the
 * stdin of cmd. The master stays open across exec, so the terminal does
 * not hang up while cmd runs. */
static int pty_exec(char **cmd)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	const char *slave_name;
	int slave;

	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
	    !(slave_name = ptsname(master))) {
		perror("try_syscall: cannot create a pty");
		return EXIT_SETUP;
	}
	if (setsid() < 0) {
		perror("try_syscall: setsid failed (run from a process that "
		       "is not a process group leader)");
		return EXIT_SETUP;
	}
	slave = open(slave_name, O_RDWR);
	if (slave < 0 || dup2(slave, 0) < 0) {
		fprintf(stderr, "try_syscall: cannot open %s as stdin: %s\n",
			slave_name, strerror(errno));
		return EXIT_SETUP;
	}
	if (slave != 0)
		close(slave);
	execvp(cmd[0], cmd);
	fprintf(stderr, "try_syscall: cannot execute %s: %s\n", cmd[0],
		strerror(errno));
	return EXIT_SETUP;
}

static int run_named(const char *name)
{
	for (size_t i = 0; i < CALL_COUNT; i++) {
		const struct call *entry = &calls[i];
		long rc;

		if (strcmp(entry->name, name) != 0)
			continue;
		errno = 0;
		rc = entry->run ? entry->run() : call_raw(entry);
		return print_result(rc, errno);
	}
	fprintf(stderr, "try_syscall: unknown call \"%s\"; try_syscall list "
		"prints the known ones\n", name);
	return EXIT_SETUP;
}

static int list_calls(void)
{
	for (size_t i = 0; i < CALL_COUNT; i++)
		puts(calls[i].name);
	return 0;
}

/* Runs a mode that takes arguments, or returns -1 for any other word. */
static int run_mode(const char *mode, int argc, char **argv)
{
	long number = 0;
	long fd_number = 0;
	unsigned long address;

	if (strcmp(mode, "pty-exec") == 0)
		return argc >= 1 ? pty_exec(argv) : usage();
	if (strcmp(mode, "open") == 0)
		return argc == 1 ? try_open(argv[0]) : usage();
	if (strcmp(mode, "tcp-connect") == 0) {
		if (argc != 1 || parse_number(argv[0], 1, 65535, &number) < 0)
			return usage();
		return try_tcp_connect((int)number);
	}
	if (strcmp(mode, "ptrace-attach") == 0) {
		if (argc != 1 || parse_number(argv[0], 1, INT_MAX, &number) < 0)
			return usage();
		return try_ptrace_attach((pid_t)number);
	}
	if (strcmp(mode, "vm-readv") == 0) {
		if (argc != 2 || parse_number(argv[0], 1, INT_MAX, &number) < 0 ||
		    parse_address(argv[1], &address) < 0)
			return usage();
		return try_vm_readv((pid_t)number, address);
	}
	if (strcmp(mode, "pidfd-getfd") == 0) {
		if (argc != 2 || parse_number(argv[0], 1, INT_MAX, &number) < 0 ||
		    parse_number(argv[1], 0, INT_MAX, &fd_number) < 0)
			return usage();
		return try_pidfd_getfd((pid_t)number, (int)fd_number);
	}
	return -1;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc < 2)
		return usage();
	/* stdout may be a pipe: flush each line before a possible SIGSYS. */
	setvbuf(stdout, NULL, _IONBF, 0);

	rc = run_mode(argv[1], argc - 2, argv + 2);
	if (rc >= 0)
		return rc;
	if (argc != 2)
		return usage();
	if (strcmp(argv[1], "list") == 0)
		return list_calls();
	return run_named(argv[1]);
}
