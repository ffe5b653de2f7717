#!/bin/sh
# Escape tests for keyhole exec --confine. Every call that the agent
# profile denies is made with a bad fd, pointer or flag (try_syscall):
# without confinement root gets the kernel's errno (EBADF, EFAULT,
# EINVAL ...), and under the filter root and the agent get EPERM. Calls
# that tools need keep working. Then, from a confined agent process, the
# ways around keyhole are tried against processes and files this test
# creates: ptrace of keyholed, memory and descriptors of the agent's own
# processes, keyholed's keys, credential files in the home directory, a
# TCP port outside the strict profile, a user namespace, io_uring and
# TIOCSTI.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support

# A call through a foreign ABI dies of SIGSYS, which would dump core.
# dash and bash both have ulimit -c.
# shellcheck disable=SC3045
ulimit -c 0
cd "$KH_TMP" || kh_abort setup "cannot enter $KH_TMP"

TRY="$KH_SUPPORT/try_syscall"
if ! cp "$KH_BUILD/tests/support/try_syscall" "$TRY" 2>>"$out/setup.err"; then
	kh_abort setup "no $KH_BUILD/tests/support/try_syscall: run make unit"
fi
chmod 0755 "$TRY"
killed_status=$((128 + $("$KH_PYTHON" -I -c 'import signal; print(int(signal.SIGSYS))')))

esc_pids=

escape_cleanup() {
	for pid in $esc_pids; do
		kill -KILL "$pid" 2>/dev/null
	done
	kh_cleanup
}
trap escape_cleanup EXIT
trap 'exit 1' INT TERM

# Profiles for the tests: the built-ins, plus the directory of
# try_syscall as an executable path, since Landlock allows execve only
# from the system directories.
profiles="$KH_TMP/confine.d"
mkdir -m 0755 "$profiles"

# write_profile NAME JSON
write_profile() {
	printf '%s\n' "$2" >"$profiles/$1.json" && chmod 0644 "$profiles/$1.json"
}

write_profile agent-try "{\"base\": \"agent\",
  \"filesystem\": {\"read_exec\": [\"$KH_SUPPORT\"]}}"
write_profile strict-try "{\"base\": \"strict\",
  \"filesystem\": {\"read_exec\": [\"$KH_SUPPORT\"]}}"

# confine PROFILE CMD...: keyhole exec --confine=PROFILE -- CMD, as the
# caller. Errors go to $out/confine.err.
confine() {
	confine_profile=$1
	shift
	"$KEYHOLE" exec --confine="$confine_profile" --profile-dir "$profiles" \
		--config "$KH_CONFIG" -- "$@" 2>>"$out/confine.err"
}

try_root() {
	"$TRY" "$@" 2>>"$out/try.err"
}

try_root_confined() {
	confine agent-try "$TRY" "$@"
}

try_agent() {
	as_agent "$TRY" "$@" 2>>"$out/try.err"
}

try_agent_confined() {
	as_agent "$KEYHOLE" exec --confine=agent-try --profile-dir "$profiles" \
		--config "$KH_CONFIG" -- "$TRY" "$@" 2>>"$out/confine.err"
}

# --- The syscall matrix -------------------------------------------------

# Denied with EPERM. Each gets arguments that the kernel rejects with
# another errno.
denied_calls="ptrace process_vm_readv process_vm_writev pidfd_getfd kcmp
process_madvise perf_event_open bpf userfaultfd
mount umount2 fsopen fsconfig fsmount fspick move_mount open_tree
mount_setattr pivot_root
unshare setns clone_newuser
io_uring_setup io_uring_enter io_uring_register
keyctl add_key request_key
kexec_load kexec_file_load init_module finit_module delete_module
iopl ioperm open_by_handle_at name_to_handle_at personality
acct swapon swapoff reboot settimeofday clock_settime clock_adjtime adjtimex
quotactl quotactl_fd syslog
ioctl_tiocsti ioctl_tiocsti_high ioctl_tioclinux ioctl_tioclinux_high"
# ENOSYS, so that glibc falls back to clone, whose flags seccomp can see.
enosys_calls="clone3"
allowed_calls="getpid personality_default read_dev_null socketpair
socket_inet ioctl_fionread fork thread"
# Calls through a foreign ABI, which the filter kills.
killed_calls="int80 x32"
# Checked one by one further down.
targeted_calls="no_new_privs unshare-user io-uring tiocsti"
# Only some architectures have these, and try_syscall lists only the
# calls this one has.
arch_calls="iopl ioperm int80 x32"

known=$(try_root list)
[ -n "$known" ] || kh_abort setup "try_syscall list printed nothing"

# in_list WORD LIST
in_list() {
	for word in $2; do
		[ "$word" = "$1" ] && return 0
	done
	return 1
}

# Each call that try_syscall can make is in exactly one table, so that
# adding one to try_syscall without a check fails here.
tables="$denied_calls $enosys_calls $allowed_calls $killed_calls $targeted_calls"
missing=
for name in $known; do
	in_list "$name" "$tables" || missing="$missing $name"
done
check_equal matrix_covers_try_syscall "${missing# }" ""

# arch_skip NAME: true when try_syscall has no such call on this machine.
arch_skip() {
	in_list "$1" "$arch_calls" && ! in_list "$1" "$known"
}

for name in $denied_calls; do
	arch_skip "$name" && continue
	result=$(try_root "$name")
	case $result in
	EPERM | "") fail "kernel_sees_$name" "unconfined root got \"$result\"; the arguments must reach the kernel" ;;
	*) pass "kernel_sees_$name" ;;
	esac
	check_equal "root_denied_$name" "$(try_root_confined "$name")" EPERM
	check_equal "agent_denied_$name" "$(try_agent_confined "$name")" EPERM
done

for name in $enosys_calls; do
	result=$(try_root "$name")
	case $result in
	EPERM | ENOSYS | "") fail "kernel_sees_$name" "unconfined root got \"$result\"" ;;
	*) pass "kernel_sees_$name" ;;
	esac
	check_equal "root_enosys_$name" "$(try_root_confined "$name")" ENOSYS
	check_equal "agent_enosys_$name" "$(try_agent_confined "$name")" ENOSYS
done

for name in $allowed_calls; do
	check_equal "unconfined_allows_$name" "$(try_root "$name")" OK
	check_equal "root_allowed_$name" "$(try_root_confined "$name")" OK
	check_equal "agent_allowed_$name" "$(try_agent_confined "$name")" OK
done

# check_killed NAME RUNNER CHECK: RUNNER NAME must die of SIGSYS.
check_killed() {
	result=$($2 "$1")
	status=$?
	if [ "$status" -eq "$killed_status" ]; then
		pass "$3"
	else
		fail "$3" "expected death by SIGSYS (status $killed_status), got status $status and \"$result\""
	fi
}

for name in $killed_calls; do
	arch_skip "$name" && continue
	result=$(try_root "$name")
	check_equal "unconfined_survives_$name" "$?:${result:+output}" "0:output"
	check_killed "$name" try_root_confined "root_killed_$name"
	check_killed "$name" try_agent_confined "agent_killed_$name"
done

check_equal unconfined_no_new_privs_unset "$(try_root no_new_privs)" ENOTRECOVERABLE
check_equal confined_no_new_privs_set "$(try_agent_confined no_new_privs)" OK

# --- Targeted checks ----------------------------------------------------

kh_test_secret held "held-"
kh_write_policy "$(kh_agent_rule hold-permit test.hold held 120 1)"
kh_start || kh_abort setup "keyholed did not start"

# A directory the agent can write its process ids to.
agent_dir="$KH_TMP/agent"
install -d -m 0700 -o "$KH_AGENT_UID" "$agent_dir"

# agent_start NAME CMD...: starts CMD as the agent in the background and
# sets $pid to its process id once CMD runs. CMD must exec in place (sh
# -c 'exec ...', sleep, keyhole exec), so the id stays the same.
agent_start() {
	pid_file="$agent_dir/$1.pid"
	shift
	# The inner shell expands $$, $0 and $@.
	# shellcheck disable=SC2016
	as_agent sh -c 'echo "$$" >"$0" && exec "$@"' "$pid_file" "$@" \
		2>>"$out/agent.err" &
	kh_wait_until 100 test -s "$pid_file" || return 1
	pid=$(cat "$pid_file")
	esc_pids="$esc_pids $pid"
}

# exec_done PID COMM: PID has finished its execs and runs COMM.
exec_done() {
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# ptrace: keyholed (root) is refused for any uid, so the same call is
# also made on a process of the agent's own, which the kernel would allow.
check_equal ptrace_keyholed_agent_denied \
	"$(try_agent_confined ptrace-attach "$KH_DAEMON_PID")" EPERM
check_equal ptrace_keyholed_root_denied \
	"$(try_root_confined ptrace-attach "$KH_DAEMON_PID")" EPERM

agent_start sleeper sleep 120 || kh_abort sleeper_started "the agent's sleep did not start"
sleeper=$pid
kh_wait_until 100 exec_done "$sleeper" sleep ||
	kh_abort sleeper_started "pid $sleeper never became sleep"
check_equal ptrace_same_uid_unconfined \
	"$(try_agent ptrace-attach "$sleeper")" OK
check_equal ptrace_same_uid_denied \
	"$(try_agent_confined ptrace-attach "$sleeper")" EPERM

# process_vm_readv reads the first 8 bytes of the sleeper's first mapping.
address=$(sed -n '1s/-.*//p' "/proc/$sleeper/maps")
check_equal vm_readv_same_uid_unconfined \
	"$(try_agent vm-readv "$sleeper" "$address")" OK
check_equal vm_readv_same_uid_denied \
	"$(try_agent_confined vm-readv "$sleeper" "$address")" EPERM

# pidfd_getfd: a sibling of the agent's holds a real permit open.
permit=$(kh_request_tool test.hold)
[ -f "$permit" ] || kh_abort permit_minted "no permit for test.hold: $(cat "$out/request.err")"
agent_start holder "$KEYHOLE" exec --permit "$permit" -- sleep 120 ||
	kh_abort holder_started "the permit holder did not start"
holder=$pid
kh_wait_until 100 exec_done "$holder" sleep ||
	kh_abort holder_started "pid $holder never became sleep"
permit_fd=
for link in "/proc/$holder/fd/"*; do
	[ "$(readlink "$link")" = "$permit" ] && permit_fd=${link##*/}
done
[ -n "$permit_fd" ] || kh_abort holder_holds_permit "pid $holder has no descriptor for $permit"
check_equal pidfd_getfd_sibling_unconfined \
	"$(try_agent pidfd-getfd "$holder" "$permit_fd")" OK
check_equal pidfd_getfd_sibling_denied \
	"$(try_agent_confined pidfd-getfd "$holder" "$permit_fd")" EPERM

# keyholed's keys, named by the test config (permit_key, audit_key).
for key in permit.jwk audit.jwk; do
	check_equal "key_${key%.jwk}_readable_by_root" "$(try_root open "$KH_KEYS/$key")" OK
	check_equal "key_${key%.jwk}_agent_denied" \
		"$(try_agent_confined open "$KH_KEYS/$key")" EACCES
done

check_equal unshare_user_unconfined "$(try_agent unshare-user)" OK
check_equal unshare_user_denied "$(try_agent_confined unshare-user)" EPERM

check_equal io_uring_unconfined "$(try_agent io-uring)" OK
check_equal io_uring_denied "$(try_agent_confined io-uring)" EPERM

# TIOCSTI on the controlling terminal, a pty that try_syscall creates.
# pty-exec runs a command, not a shell function, so the setpriv words
# of as_agent are split from one variable.
agent_setpriv="setpriv --reuid $KH_AGENT_USER --regid $KH_AGENT_USER --init-groups --"
# shellcheck disable=SC2086
check_equal tiocsti_unconfined \
	"$("$TRY" pty-exec $agent_setpriv "$TRY" tiocsti 2>>"$out/try.err")" OK
# shellcheck disable=SC2086
check_equal tiocsti_agent_denied \
	"$("$TRY" pty-exec $agent_setpriv "$KEYHOLE" exec --confine=agent-try \
		--profile-dir "$profiles" --config "$KH_CONFIG" -- "$TRY" tiocsti \
		2>>"$out/confine.err")" EPERM
check_equal tiocsti_root_denied \
	"$("$TRY" pty-exec "$KEYHOLE" exec --confine=agent-try \
		--profile-dir "$profiles" --config "$KH_CONFIG" -- "$TRY" tiocsti \
		2>>"$out/confine.err")" EPERM

# --- Credential files in a home directory (Landlock) --------------------

# daemon's home is /usr/sbin, so a temporary account gets a real home.
kh_make_user kh-esc
esc_user=$KH_USER
esc_home=$KH_USER_HOME

as_esc() {
	setpriv --reuid "$esc_user" --regid "$esc_user" --init-groups -- "$@"
}

mkdir -p "$esc_home/.aws" "$esc_home/.ssh" "$esc_home/.config/gcloud"
printf '[default]\naws_access_key_id = AKIAEXAMPLEEXAMPLE00\n' >"$esc_home/.aws/credentials"
printf 'not a real key\n' >"$esc_home/.ssh/id_ed25519"
printf 'not a real token\n' >"$esc_home/.config/gcloud/credentials.db"
printf 'notes of the agent\n' >"$esc_home/notes.txt"
chown -R "$esc_user:$esc_user" "$esc_home"
chmod 0600 "$esc_home/.aws/credentials" "$esc_home/.ssh/id_ed25519"

# confined_open_as_esc PATH: try_syscall open PATH, as the account,
# under agent-try.
confined_open_as_esc() {
	as_esc "$KEYHOLE" exec --confine=agent-try --profile-dir "$profiles" \
		--config "$KH_CONFIG" -- "$TRY" open "$1" 2>>"$out/confine.err"
}

# Each LABEL:PATH is a credential file that the agent profile excludes.
credential_files="aws:.aws/credentials ssh_key:.ssh/id_ed25519
gcloud:.config/gcloud/credentials.db"
for entry in $credential_files notes:notes.txt; do
	check_equal "home_unconfined_reads_${entry%%:*}" \
		"$(as_esc "$TRY" open "$esc_home/${entry#*:}" 2>>"$out/try.err")" OK
done
for entry in $credential_files; do
	check_equal "home_confined_denied_${entry%%:*}" \
		"$(confined_open_as_esc "$esc_home/${entry#*:}")" EACCES
done
check_equal home_confined_reads_notes \
	"$(confined_open_as_esc "$esc_home/notes.txt")" OK

# The built-in agent profile with a stock tool: cat prints the notes and
# fails on the credentials.
check_equal builtin_agent_cat_notes \
	"$(as_esc "$KEYHOLE" exec --confine --profile-dir "$profiles" \
		--config "$KH_CONFIG" -- cat "$esc_home/notes.txt" 2>>"$out/confine.err")" \
	"notes of the agent"
as_esc "$KEYHOLE" exec --confine --profile-dir "$profiles" --config "$KH_CONFIG" \
	-- cat "$esc_home/.aws/credentials" >"$out/cat.out" 2>"$out/cat.err"
check_equal builtin_agent_cat_aws_fails "$?:$(wc -c <"$out/cat.out")" "1:0"
check_contains builtin_agent_cat_aws_eacces "$(cat "$out/cat.err")" "Permission denied"

# The home directory comes from the account, not from $HOME, which the
# agent controls: HOME=/ must not open the whole file system.
check_equal home_env_ignored \
	"$(as_esc env HOME=/ "$KEYHOLE" exec --confine=agent-try \
		--profile-dir "$profiles" --config "$KH_CONFIG" -- \
		"$TRY" open "$esc_home/.aws/credentials" 2>>"$out/confine.err")" EACCES

# --- TCP connect under strict (seccomp and Landlock) --------------------

# listen NAME: starts a loopback listener and sets $port.
listen() {
	"$KH_PYTHON" -I "$KH_SUPPORT/loopback_server.py" tcp "$KH_TMP/$1.port" \
		2>>"$out/listener.err" &
	esc_pids="$esc_pids $!"
	kh_wait_until 100 test -s "$KH_TMP/$1.port" || return 1
	port=$(cat "$KH_TMP/$1.port")
}

listen allowed || kh_abort listener_started "the loopback listener did not start"
port_allowed=$port
listen other || kh_abort listener_started "the second loopback listener did not start"
port_other=$port
write_profile strict-port "{\"base\": \"strict\",
  \"network\": {\"tcp_connect\": [$port_allowed]},
  \"filesystem\": {\"read_exec\": [\"$KH_SUPPORT\"]}}"

try_agent_profile() {
	try_profile=$1
	shift
	as_agent "$KEYHOLE" exec --confine="$try_profile" --profile-dir "$profiles" \
		--config "$KH_CONFIG" -- "$TRY" "$@" 2>>"$out/confine.err"
}

check_equal tcp_unconfined_connects "$(try_agent tcp-connect "$port_other")" OK
check_equal tcp_agent_profile_connects \
	"$(try_agent_profile agent-try tcp-connect "$port_other")" OK
result=$(try_agent_profile strict-try tcp-connect "$port_other")
case $result in
EPERM | EACCES) pass tcp_strict_refused ;;
*) fail tcp_strict_refused "expected EPERM or EACCES, got \"$result\"" ;;
esac
check_equal tcp_strict_port_listed_connects \
	"$(try_agent_profile strict-port tcp-connect "$port_allowed")" OK
check_equal tcp_strict_port_other_refused \
	"$(try_agent_profile strict-port tcp-connect "$port_other")" EACCES

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
