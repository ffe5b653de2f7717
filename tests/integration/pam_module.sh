#!/bin/sh
# pam_keyhole.so under pam_wrapper, which reads service files from a
# temporary directory instead of /etc/pam.d and prints pam_syslog lines
# on stderr. pamtester checks the return codes; tests/support/pam_session
# also prints the PAM environment and the confinement that
# pam_open_session left on the process. The agent is the stock account
# "daemon", the outsider "nobody".
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

PAM_MODULE="$KH_BUILD/pam_keyhole.so"
PAM_SESSION="$KH_BUILD/tests/support/pam_session"
PAM_WRAPPER_LIB=libpam_wrapper.so

kh_test_setup
[ -f "$PAM_MODULE" ] || kh_abort setup "$PAM_MODULE not built: run make all"
[ -x "$PAM_SESSION" ] || kh_abort setup "$PAM_SESSION not built: run make unit"
command -v pamtester >/dev/null || kh_abort setup "pamtester not found: run make deps"

kh_write_policy "$(kh_agent_rule pam-test pam.test pam_secret 60 1)"
kh_start || kh_abort setup "keyholed did not start"

services="$KH_TMP/pam.d"
mkdir -p "$services"

# service NAME ARGS...: a service whose session stack is pam_keyhole.so
# with ARGS, required.
service() {
	name=$1
	shift
	echo "session required $PAM_MODULE $*" >"$services/$name"
}

# ignore_service NAME ARGS...: a stack that succeeds only when the
# module returns PAM_IGNORE. A stack of modules that all ignore fails,
# so PAM_IGNORE skips pam_deny and pam_permit decides. Any other result
# stops the stack: success as PAM_PERM_DENIED (6), an error as itself.
ignore_service() {
	name=$1
	shift
	cat >"$services/$name" <<PAM
session [ignore=1 default=die] $PAM_MODULE $*
session required pam_deny.so
session required pam_permit.so
PAM
}

# wrapped COMMAND...: runs COMMAND under pam_wrapper with the test's
# services; pam_syslog lines go to stderr.
wrapped() {
	LD_PRELOAD=$PAM_WRAPPER_LIB PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$services" PAM_WRAPPER_DEBUGLEVEL=2 "$@"
}

# session SERVICE USER TAG: runs pam_session; its output goes to
# $out/TAG.out and the module's log lines to $out/TAG.log.
session() {
	wrapped "$PAM_SESSION" "$1" "$2" >"$out/$3.out" 2>"$out/$3.log"
}

# out_line TAG PREFIX: the rest of the first line of $out/TAG.out that
# starts with PREFIX.
out_line() {
	sed -n "s/^$2//p" "$out/$1.out" | head -n 1 | tr -d '\t'
}

log_of() {
	grep 'SYSLOG' "$out/$1.log"
}

# 1. Exported symbols: the two entry points and nothing of libkeyhole.
symbols=$(nm -D --defined-only "$PAM_MODULE" | awk '{ print $3 }' | sort | tr '\n' ' ')
check_equal exports_only_entry_points "$symbols" "pam_sm_close_session pam_sm_open_session "
dlsym=$("$KH_PYTHON" -I - "$PAM_MODULE" <<'PY'
import ctypes
import sys

lib = ctypes.CDLL(sys.argv[1])
for name in ("pam_sm_open_session", "pam_sm_close_session",
             "kh_confine_apply", "kh_json_parse", "kh_pam_args_parse"):
    print(name, "found" if hasattr(lib, name) else "missing")
PY
)
check_contains dlsym_open_session "$dlsym" "pam_sm_open_session found"
check_contains dlsym_close_session "$dlsym" "pam_sm_close_session found"
check_contains dlsym_hides_confine "$dlsym" "kh_confine_apply missing"
check_contains dlsym_hides_json "$dlsym" "kh_json_parse missing"
check_contains dlsym_hides_internal "$dlsym" "kh_pam_args_parse missing"

# 2. The agent: registered, exported, confined, then closed.
service agent user=daemon socket="$KH_SOCKET"
session agent daemon agent
check_equal agent_exit_status "$?" 0
check_equal agent_open_success "$(out_line agent 'open_session: ')" "0 Success"
session_id=$(out_line agent 'env: KEYHOLE_SESSION=')
case $session_id in
??????????????????????) pass agent_session_id ;;
*) fail agent_session_id "KEYHOLE_SESSION is \"$session_id\"" ;;
esac
check_equal agent_permits_env "$(out_line agent 'env: KEYHOLE_PERMITS=')" \
	"$KH_PERMITS/$KH_AGENT_UID"
check_equal agent_secrets_env "$(out_line agent 'env: KEYHOLE_SECRETS=')" "$KH_MOUNT"
check_equal agent_socket_env "$(out_line agent 'env: KEYHOLE_SOCKET=')" "$KH_SOCKET"
check agent_permits_dir_created test -d "$KH_PERMITS/$KH_AGENT_UID"
check_equal agent_seccomp_filter "$(out_line agent 'Seccomp:')" 2
check_equal agent_no_new_privs "$(out_line agent 'NoNewPrivs:')" 1
check_equal agent_ptrace_denied "$(out_line agent 'ptrace_attach: ')" EPERM
check_equal agent_landlock_shadow "$(out_line agent 'open_shadow: ')" EACCES
check_equal agent_close_success "$(out_line agent 'close_session: ')" "0 Success"
check_contains agent_logs_open "$(log_of agent)" \
	"session $session_id opened for user daemon (uid $KH_AGENT_UID), service agent"
check_contains agent_logs_profile "$(log_of agent)" "profile agent: no_new_privs, seccomp"
check_contains agent_logs_close "$(log_of agent)" \
	"session $session_id closed for user daemon (uid $KH_AGENT_UID), service agent: 0 permits revoked"
check_contains keyholed_logs_close "$(cat "$KH_LOG")" "session closed: session=$session_id"

wrapped pamtester -v agent daemon open_session close_session \
	>"$out/pamtester.out" 2>&1
check_equal pamtester_agent_succeeds "$?" 0

# Called twice on one handle, open_session registers one session, so
# that close_session closes all that was opened.
opened_before=$(grep -c 'session opened: ' "$KH_LOG")
wrapped pamtester -v agent daemon open_session open_session close_session \
	>"$out/pamtester_twice.out" 2>&1
check_equal pamtester_open_twice_succeeds "$?" 0
check_equal open_twice_registers_once "$(grep -c 'session opened: ' "$KH_LOG")" \
	$((opened_before + 1))
check_contains open_twice_warns "$(cat "$out/pamtester_twice.out")" \
	"is already open in this PAM handle, not registering another"

# 3. group= matches the primary group too; profile=none skips confinement.
service by_group group=daemon profile=none socket="$KH_SOCKET"
session by_group daemon by_group
check_equal group_open_success "$(out_line by_group 'open_session: ')" "0 Success"
check_equal group_exports_env "$(out_line by_group 'env: KEYHOLE_SECRETS=')" "$KH_MOUNT"
check_equal profile_none_no_seccomp "$(out_line by_group 'Seccomp:')" 0
check_equal profile_none_ptrace_reaches_kernel "$(out_line by_group 'ptrace_attach: ')" ESRCH
check_contains profile_none_logged "$(log_of by_group)" "none (profile=none)"

# 4. Not an agent: PAM_IGNORE, nothing exported, nothing confined.
ignore_service outsider user=daemon group=daemon socket="$KH_SOCKET" debug
session outsider nobody outsider
check_equal outsider_ignored "$(out_line outsider 'open_session: ')" "0 Success"
check_equal outsider_no_env "$(grep -c '^env: ' "$out/outsider.out")" 0
check_equal outsider_no_seccomp "$(out_line outsider 'Seccomp:')" 0
check_contains outsider_debug_line "$(log_of outsider)" \
	"user nobody is not an agent account, ignoring"
# The same stack with an agent fails, so the check above can fail.
session outsider daemon outsider_agent
check_equal ignore_stack_rejects_agent "$(out_line outsider_agent 'open_session: ')" \
	"6 Permission denied"
check_contains agent_debug_line "$(log_of outsider_agent)" \
	"user daemon (uid $KH_AGENT_UID) is an agent account"
wrapped pamtester -v outsider nobody open_session close_session \
	>"$out/pamtester_outsider.out" 2>&1
check_equal pamtester_outsider_succeeds "$?" 0

# 5. An unknown argument is logged and ignored; an invalid value fails.
service unknown_arg user=daemon socket="$KH_SOCKET" colour=blue
session unknown_arg daemon unknown_arg
check_equal unknown_arg_open_success "$(out_line unknown_arg 'open_session: ')" "0 Success"
check_contains unknown_arg_warning "$(log_of unknown_arg)" \
	'SYSLOG(4): unknown argument "colour=blue", ignoring'

service bad_fail user=daemon socket="$KH_SOCKET" fail=sometimes
session bad_fail daemon bad_fail
check_equal bad_value_session_err "$(out_line bad_fail 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"
check_contains bad_value_logged "$(log_of bad_fail)" \
	"SYSLOG(3): fail=sometimes is invalid: use fail=closed or fail=open"

service no_selector socket="$KH_SOCKET"
session no_selector daemon no_selector
check_equal no_selector_session_err "$(out_line no_selector 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"
check_contains no_selector_logged "$(log_of no_selector)" "no user= or group= argument"

# 6. A profile that does not exist: the session fails and keyholed
# closes the registration again.
service bad_profile user=daemon socket="$KH_SOCKET" profile=missing-profile \
	profile_dir="$KH_TMP/confine.d"
opened_before=$(grep -c 'session opened: ' "$KH_LOG")
closed_before=$(grep -c 'session closed: ' "$KH_LOG")
session bad_profile daemon bad_profile
check_equal bad_profile_registered "$(grep -c 'session opened: ' "$KH_LOG")" \
	$((opened_before + 1))
check_equal bad_profile_closed_again "$(grep -c 'session closed: ' "$KH_LOG")" \
	$((closed_before + 1))
check_contains bad_profile_login_refused "$(grep 'session closed: ' "$KH_LOG" | tail -n 1)" \
	"reason=login refused"
check_equal bad_profile_session_err "$(out_line bad_profile 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"
check_equal bad_profile_no_env "$(grep -c '^env: ' "$out/bad_profile.out")" 0
check_contains bad_profile_logged "$(log_of bad_profile)" \
	'loading confinement profile "missing-profile" failed'

# 7. A socket served by another uid than root is not keyholed.
fake_dir="$KH_TMP/fake"
install -d -m 0755 -o "$KH_OTHER_USER" "$fake_dir"
# Its reply is valid, so only the owner check can reject it.
as_other "$KH_PYTHON" -I - "$fake_dir/broker.sock" "$KH_AGENT_UID" \
	2>"$out/fake.err" <<'PY' &
import json
import socket
import sys

server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(sys.argv[1])
server.listen(1)
server.settimeout(20)
conn, _ = server.accept()
conn.recv(4096)
reply = {"ok": True, "session": "A" * 22, "permits": "/tmp/" + sys.argv[2],
         "permits_dir": "/tmp", "secrets": "/tmp"}
conn.sendall(json.dumps(reply).encode() + b"\n")
PY
fake_pid=$!
kh_wait_until 100 test -S "$fake_dir/broker.sock"
service fake user=daemon socket="$fake_dir/broker.sock"
session fake daemon fake
check_equal fake_broker_session_err "$(out_line fake 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"
check_contains fake_broker_logged "$(log_of fake)" \
	"runs as uid $KH_OTHER_UID, not root"
kill "$fake_pid" 2>/dev/null
wait "$fake_pid" 2>/dev/null

# 8. The config file: settings from conf=FILE, overridden by the line.
conf="$KH_TMP/pam_keyhole.conf"
cat >"$conf" <<CONF
# agents of this test
user = daemon
socket = $KH_SOCKET
CONF
chmod 0644 "$conf"
service conf_agent conf="$conf"
session conf_agent daemon conf_agent
check_equal conf_agent_success "$(out_line conf_agent 'open_session: ')" "0 Success"
check_equal conf_agent_socket "$(out_line conf_agent 'env: KEYHOLE_SOCKET=')" "$KH_SOCKET"

ignore_service conf_override conf="$conf" user=nobody
wrapped pamtester -v conf_override daemon open_session \
	>"$out/conf_override.out" 2>&1
check_equal conf_line_accounts_override "$?" 0

printf 'user = daemon\nsocket = %s\ncolour = blue\n' "$KH_SOCKET" >"$KH_TMP/bad.conf"
service conf_unknown conf="$KH_TMP/bad.conf"
session conf_unknown daemon conf_unknown
check_equal conf_unknown_key_fails "$(out_line conf_unknown 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"
check_contains conf_unknown_key_logged "$(log_of conf_unknown)" \
	"$KH_TMP/bad.conf:3: unknown key \"colour\""

cp "$conf" "$KH_TMP/writable.conf"
chmod 0664 "$KH_TMP/writable.conf"
service conf_writable conf="$KH_TMP/writable.conf"
session conf_writable daemon conf_writable
check_equal conf_group_writable_fails "$(out_line conf_writable 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"
check_contains conf_group_writable_logged "$(log_of conf_writable)" \
	"must be owned by root and not group- or world-writable"

# CRLF line ends, "key=value" without spaces and no newline at the end.
printf '# agents\r\nuser=daemon\r\n\r\nsocket=%s' "$KH_SOCKET" >"$KH_TMP/crlf.conf"
service conf_crlf conf="$KH_TMP/crlf.conf"
session conf_crlf daemon conf_crlf
check_equal conf_crlf_success "$(out_line conf_crlf 'open_session: ')" "0 Success"
check_equal conf_crlf_socket "$(out_line conf_crlf 'env: KEYHOLE_SOCKET=')" "$KH_SOCKET"

printf 'user = daemon\nsocket = %s\nsocket = /run/other.sock\n' "$KH_SOCKET" \
	>"$KH_TMP/twice.conf"
service conf_twice conf="$KH_TMP/twice.conf"
session conf_twice daemon conf_twice
check_equal conf_duplicate_key_fails "$(out_line conf_twice 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"
check_contains conf_duplicate_key_logged "$(log_of conf_twice)" \
	"socket= given more than once"

# A NUL byte must not hide the lines after it.
printf 'socket = %s\nfail = closed\0\nuser = daemon\n' "$KH_SOCKET" \
	>"$KH_TMP/nul.conf"
service conf_nul conf="$KH_TMP/nul.conf"
session conf_nul daemon conf_nul
check_equal conf_nul_fails "$(out_line conf_nul 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"
check_contains conf_nul_logged "$(log_of conf_nul)" \
	"$KH_TMP/nul.conf:2: contains a NUL byte"

service conf_missing conf="$KH_TMP/missing.conf" user=daemon
session conf_missing daemon conf_missing
check_equal conf_missing_explicit_fails "$(out_line conf_missing 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"

# The profile hides the config file from the confined login, as the
# agent profile hides /etc/keyhole, and /etc/passwd, as a useradd that
# replaces the file after the login does. close_session must still
# close with the settings and the account that open_session read.
mkdir -p "$KH_TMP/hidden" "$KH_TMP/hide.d"
printf 'user = daemon\nsocket = %s\nprofile = hideconf\nprofile_dir = %s\n' \
	"$KH_SOCKET" "$KH_TMP/hide.d" >"$KH_TMP/hidden/pam.conf"
printf '{"base": "agent", "filesystem": {"exclude": ["%s", "/etc/passwd"]}}\n' \
	"$KH_TMP/hidden" >"$KH_TMP/hide.d/hideconf.json"
chmod 0644 "$KH_TMP/hidden/pam.conf" "$KH_TMP/hide.d/hideconf.json"
service conf_hidden conf="$KH_TMP/hidden/pam.conf"
closed_before=$(grep -c 'session closed: ' "$KH_LOG")
PAM_SESSION_PROBE="$KH_TMP/hidden/pam.conf" session conf_hidden daemon conf_hidden
check_equal conf_hidden_opens "$(out_line conf_hidden 'open_session: ')" "0 Success"
check_equal conf_hidden_conf_unreadable "$(out_line conf_hidden 'open_conf: ')" EACCES
check_equal conf_hidden_closes "$(out_line conf_hidden 'close_session: ')" "0 Success"
check_equal conf_hidden_session_closed "$(grep -c 'session closed: ' "$KH_LOG")" \
	$((closed_before + 1))

# 9. The broker is down: fail closed by default, open with fail=open.
kh_stop
session agent daemon down
check_equal broker_down_session_err "$(out_line down 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"
check_contains broker_down_logged "$(log_of down)" \
	"session_open for user daemon (uid $KH_AGENT_UID) failed: $KH_SOCKET: connect failed"
wrapped pamtester -v agent daemon open_session >"$out/pamtester_down.out" 2>&1
check_equal pamtester_broker_down_fails "$?" 1

service fail_open user=daemon socket="$KH_SOCKET" fail=open
session fail_open daemon fail_open
check_equal fail_open_success "$(out_line fail_open 'open_session: ')" "0 Success"
check_equal fail_open_no_env "$(grep -c '^env: ' "$out/fail_open.out")" 0
check_contains fail_open_warning "$(log_of fail_open)" \
	"SYSLOG(4): fail=open: session_open failed, continuing without keyhole"
check_equal fail_open_close_success "$(out_line fail_open 'close_session: ')" "0 Success"
# A session that fail=open let in without keyhole has nothing to close:
# the close logs nothing more.
check_equal fail_open_logs_at_open_only \
	"$(log_of fail_open | grep -v _pam_init_handlers | grep -c 'SYSLOG')" 2
wrapped pamtester -v fail_open daemon open_session close_session \
	>"$out/pamtester_fail_open.out" 2>&1
check_equal pamtester_fail_open_succeeds "$?" 0

# 10. fail= from the file applies when the line has none; the line wins.
printf 'user = daemon\nsocket = %s\nfail = open\n' "$KH_SOCKET" >"$KH_TMP/open.conf"
service conf_open conf="$KH_TMP/open.conf"
session conf_open daemon conf_open
check_equal conf_fail_open_success "$(out_line conf_open 'open_session: ')" "0 Success"
service conf_closed conf="$KH_TMP/open.conf" fail=closed
session conf_closed daemon conf_closed
check_equal conf_line_fail_closed_wins "$(out_line conf_closed 'open_session: ')" \
	"14 Cannot make/remove an entry for the specified session"

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
