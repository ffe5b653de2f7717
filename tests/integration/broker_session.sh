#!/bin/sh
# Login sessions registered the way pam_keyhole.so registers them, and
# the permits bound to them.
#
# A root leader process (session_client.py leader) opens a session for
# the agent and runs commands as its children. Permits minted inside the
# session carry its "sid" and work only inside it. Closing the session,
# or the leader's exit, revokes them. /proc/self/sessionid is unset
# here, so membership goes through the parent chain.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support
# Leaders left running by a failed step must not outlive the test.
leader_pids=""
session_cleanup() {
	for pid in $leader_pids; do
		kill "$pid" 2>/dev/null
	done
	kh_cleanup
}
trap session_cleanup EXIT INT TERM
dpr="$KH_AUDIT/dpr.jsonl"
client="$KH_SUPPORT/session_client.py"
agent_run="setpriv --reuid $KH_AGENT_USER --regid $KH_AGENT_USER --init-groups --"

kh_test_secret session_key sk_session_
kh_write_policy "$(kh_agent_rule session-read session.read session_key 120 10)"
kh_start || kh_abort setup "keyholed did not start"

# session_send JSON: sends one request as root and prints the reply.
session_send() {
	"$KH_PYTHON" -I "$client" send "$KH_SOCKET" "$1"
}

# leader_start NAME: starts a session leader for the agent in
# $KH_TMP/NAME and waits for its session_open reply. Sets leader_pid,
# leader_dir and session (the id, "" when the open failed).
leader_start() {
	leader_dir="$KH_TMP/$1"
	mkdir -p "$leader_dir"
	"$KH_PYTHON" -I "$client" leader "$KH_SOCKET" "$KH_AGENT_UID" sshd \
		"$leader_dir" 2>>"$out/leader.err" &
	leader_pid=$!
	leader_pids="$leader_pids $leader_pid"
	kh_wait_until 100 test -s "$leader_dir/session.json"
	session=$(kh_json_get "$leader_dir/session.json" session)
}

# kh_json_get FILE KEY: one member of a JSON object file, "" if absent.
kh_json_get() {
	"$KH_PYTHON" -I -c 'import json, sys
value = json.load(open(sys.argv[1])).get(sys.argv[2], "")
print(value if isinstance(value, str) else json.dumps(value))' "$1" "$2"
}

# in_session_start DIR SCRIPT: has the leader in DIR run SCRIPT with
# /bin/sh as its child. Sets n to the command's number.
in_session_start() {
	n=$(($(cat "$1/count" 2>/dev/null || echo 0) + 1))
	echo "$n" >"$1/count"
	printf '%s\n' "$2" >"$1/cmd.$n.tmp" && mv "$1/cmd.$n.tmp" "$1/cmd.$n"
}

# in_session DIR SCRIPT: in_session_start, then waits for the command
# (20 s at most) and returns its status.
in_session() {
	in_session_start "$1" "$2"
	kh_wait_until 200 test -f "$1/rc.$n" || return 1
	return "$(cat "$1/rc.$n")"
}

# session_request DIR FILE: the agent, inside the session, requests a
# permit for session.read and writes its path to FILE.
session_request() {
	in_session "$1" "$agent_run $KEYHOLE request --socket $KH_SOCKET \
--action '{\"type\":\"tool_call\",\"tool\":\"session.read\"}' >$2 2>>$out/request.err"
}

# session_probe DIR PERMIT FILE: the agent, inside the session, keeps
# PERMIT open and reads the secret. probe.py's line goes to FILE.
session_probe() {
	in_session "$1" "$agent_run $KEYHOLE exec --permit $2 -- \
$KH_PYTHON -I $KH_SUPPORT/probe.py read $secret_path >$3 2>>$out/probe.err"
}

# leader_gone: the leader process has exited and been reaped.
leader_gone() {
	! kill -0 "$leader_pid" 2>/dev/null
}

# Only root may open or close sessions.
reply=$(as_agent "$KH_PYTHON" -I "$client" send "$KH_SOCKET" \
	"{\"op\":\"session_open\",\"uid\":$KH_AGENT_UID,\"service\":\"sshd\"}")
check_contains open_by_agent_denied "$reply" '"error":"denied"'
check_contains open_by_agent_reason "$reply" "session_open is sent by pam_keyhole.so as root"
reply=$(as_agent "$KH_PYTHON" -I "$client" send "$KH_SOCKET" \
	'{"op":"session_close","session":"AAAAAAAAAAAAAAAAAAAAAA"}')
check_contains close_by_agent_denied "$reply" '"error":"denied"'
check_contains denial_logged "$(cat "$KH_LOG")" "session_open denied: uid=$KH_AGENT_UID"

# Malformed requests are invalid, and an unknown session is not found.
reply=$(session_send '{"op":"session_open","uid":4000000000,"service":"sshd"}')
check_contains open_unknown_uid_invalid "$reply" '"error":"invalid"'
reply=$(session_send "{\"op\":\"session_open\",\"uid\":$KH_AGENT_UID,\"service\":\"a\\nb\"}")
check_contains open_bad_service_invalid "$reply" '$.service'
reply=$(session_send "{\"op\":\"session_open\",\"uid\":$KH_AGENT_UID,\"service\":\"sshd\",\"pid\":1}")
check_contains open_unknown_key_invalid "$reply" '$.pid: unknown key'
reply=$(session_send "{\"op\":\"session_close\",\"session\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"uid\":$KH_AGENT_UID}")
check_contains close_unknown_not_found "$reply" '"error":"not_found"'
reply=$(session_send '{"op":"session_close","session":"AAAAAAAAAAAAAAAAAAAAAA"}')
check_contains close_without_uid_invalid "$reply" '$.uid'
reply=$(session_send "{\"op\":\"session_close\",\"session\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"uid\":$KH_AGENT_UID,\"reason\":\"bye\"}")
check_contains close_bad_reason_invalid "$reply" '$.reason'

# A session opens, and its permits directory exists for the agent.
[ -e "$KH_PERMITS/$KH_AGENT_UID" ] && fail permits_dir_absent_before "already exists"
leader_start lead1
session1=$session
lead1=$leader_dir
lead1_pid=$leader_pid
check_equal open_session_id_length "${#session1}" 22
check_equal open_reply_permits "$(kh_json_get "$lead1/session.json" permits)" \
	"$KH_PERMITS/$KH_AGENT_UID"
check_equal open_reply_permits_dir "$(kh_json_get "$lead1/session.json" permits_dir)" \
	"$KH_PERMITS"
check_equal open_reply_secrets "$(kh_json_get "$lead1/session.json" secrets)" "$KH_MOUNT"
check_equal permits_dir_owner_mode \
	"$(stat -c '%u %a' "$KH_PERMITS/$KH_AGENT_UID" 2>&1)" "$KH_AGENT_UID 700"
check_equal open_record_written \
	"$(kh_json count "$dpr" type=session_open session="$session1" leader.pid="$lead1_pid")" 1
check_contains open_logged "$(cat "$KH_LOG")" "session opened: session=$session1 uid=$KH_AGENT_UID leader=$lead1_pid service=sshd"

# Inside the session: the permit carries the sid and reads the secret.
session_request "$lead1" "$out/permit1" || fail inside_request "request failed"
permit1=$(cat "$out/permit1")
jti1=$(basename "$permit1")
check_equal inside_permit_has_sid "$(kh_json claim "$permit1" sid)" "$session1"
check_equal decision_record_has_sid \
	"$(kh_json count "$dpr" type=decision jti="$jti1" sid="$session1")" 1
session_probe "$lead1" "$permit1" "$out/probe1"
check_equal inside_reads_secret "$(cat "$out/probe1")" "$secret_ok"

# Outside the session the same permit is refused with the session reason.
check_equal outside_denied "$(kh_probe_with "$permit1" read "$secret_path")" \
	"error EACCES"
check_equal outside_reason "$(agent_reason "$secret_path")" \
	"permit is bound to another session"
check_equal outside_access_record "$(kh_json count "$dpr" type=access jti="$jti1" \
	outcome=denied reason="permit is bound to another session")" 1

# A permit minted outside every session has no sid and works anywhere.
permit0=$(kh_request_tool session.read)
check_equal outside_permit_no_sid "$(kh_json claim "$permit0" sid 2>/dev/null)" ""
check_equal outside_permit_reads "$(kh_probe_with "$permit0" read "$secret_path")" \
	"$secret_ok"

# A restart keeps a session whose leader still runs.
kh_stop
kh_start || kh_abort restart "keyholed did not restart"
check_contains restart_restored_log "$(cat "$KH_LOG")" "session restored: session=$session1"
session_probe "$lead1" "$permit1" "$out/probe1b"
check_equal restart_inside_reads "$(cat "$out/probe1b")" "$secret_ok"

# session_close revokes the session's permits. A process of the session
# that holds the permit open reads nothing afterwards.
in_session_start "$lead1" "$agent_run $KEYHOLE exec --permit $permit1 -- \
$KH_PYTHON -I $KH_SUPPORT/probe.py read $secret_path --after $KH_TMP/closed \
>$out/probe1c 2>>$out/probe.err"
kh_wait_until 100 grep -qs ready "$out/probe1c" || fail holder_ready "holder not ready"
# The uid must be the session's: an id alone closes nothing.
reply=$(session_send "{\"op\":\"session_close\",\"session\":\"$session1\",\"uid\":0}")
check_contains close_other_uid_not_found "$reply" '"error":"not_found"'
check_contains close_other_uid_logged "$(cat "$KH_LOG")" \
	"session_close of session $session1 denied: it belongs to uid $KH_AGENT_UID"
reply=$(session_send "{\"op\":\"session_close\",\"session\":\"$session1\",\"uid\":$KH_AGENT_UID}")
check_equal close_reply "$reply" '{"ok":true,"revoked":1}'
touch "$KH_TMP/closed"
kh_wait_until 100 grep -qs error "$out/probe1c"
check_equal close_holder_denied "$(tail -n 1 "$out/probe1c")" "error EACCES"
check_equal close_holder_reason "$(agent_reason "$secret_path")" "revoked"
[ -e "$permit1" ] && fail close_permit_file_removed "$permit1 still exists" ||
	pass close_permit_file_removed
check_equal close_revoke_record \
	"$(kh_json count "$dpr" type=revoke jti="$jti1" reason="session closed")" 1
check_equal close_session_record \
	"$(kh_json count "$dpr" type=session_close session="$session1" reason="session closed" revoked=1)" 1
check_contains close_logged "$(cat "$KH_LOG")" "session closed: session=$session1"
check_equal outside_permit_survives "$(kh_probe_with "$permit0" read "$secret_path")" \
	"$secret_ok"
reply=$(session_send "{\"op\":\"session_close\",\"session\":\"$session1\",\"uid\":$KH_AGENT_UID}")
check_contains close_twice_not_found "$reply" '"error":"not_found"'
touch "$lead1/exit"

# The leader's exit ends the session at the next clean-up pass, which
# runs every 10 s.
leader_start lead2
session2=$session
session_request "$leader_dir" "$out/permit2" || fail exit_request "request failed"
permit2=$(cat "$out/permit2")
check_equal exit_permit_has_sid "$(kh_json claim "$permit2" sid)" "$session2"
touch "$leader_dir/exit"
kh_wait_until 100 leader_gone || fail exit_leader_gone "leader still runs"
if kh_wait_until 400 test ! -e "$permit2"; then
	pass exit_permit_file_removed
else
	fail exit_permit_file_removed "$permit2 still exists 40 s after the leader exited"
fi
check_equal exit_revoke_record "$(kh_json count "$dpr" type=revoke \
	jti="$(basename "$permit2")" reason="session leader exited")" 1
check_equal exit_session_record "$(kh_json count "$dpr" type=session_close \
	session="$session2" reason="session leader exited" revoked=1)" 1

# A restart drops a session whose leader exited while keyholed was down.
leader_start lead3
session3=$session
session_request "$leader_dir" "$out/permit3" || fail down_request "request failed"
permit3=$(cat "$out/permit3")
kh_stop
touch "$leader_dir/exit"
kh_wait_until 100 leader_gone || fail down_leader_gone "leader still runs"
kh_start || kh_abort restart "keyholed did not restart"
[ -e "$permit3" ] && fail down_permit_file_removed "$permit3 still exists" ||
	pass down_permit_file_removed
check_equal down_revoke_record "$(kh_json count "$dpr" type=revoke \
	jti="$(basename "$permit3")" reason="session leader exited")" 1
check_equal down_session_record "$(kh_json count "$dpr" type=session_close \
	session="$session3" reason="session leader exited")" 1
reply=$(session_send "{\"op\":\"session_close\",\"session\":\"$session3\",\"uid\":$KH_AGENT_UID}")
check_contains down_session_not_found "$reply" '"error":"not_found"'

wait "$lead1_pid" 2>/dev/null
kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
