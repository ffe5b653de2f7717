#!/bin/sh
# Limits that keep one caller from hurting others, and checks that keep
# a caller from faking what keyholed reads about it:
# - the broker socket caps connections per uid and closes a request line
#   that is not complete 10 s after its first byte;
# - an exec permit is refused to a caller in another user namespace,
#   where prctl(PR_SET_MM) could fake /proc/<pid>/exe and cmdline;
# - files on the permits filesystem that are not permits never push a
#   real permit out of the open() check, and too many held files or
#   permits fail closed;
# - keyholed refuses one key used as both permit_key and audit_key.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup

kh_test_secret review_key sk_review_
dpr="$KH_AUDIT/dpr.jsonl"

kh_write_policy "$(kh_agent_rule review-tool review.read review_key 120 1)" \
	"    {
      \"id\": \"review-cat\",
      \"effect\": \"permit\",
      \"agents\": {\"users\": [\"$KH_AGENT_USER\"]},
      \"action\": {
        \"type\": \"exec\",
        \"exe\": \"/usr/bin/cat\",
        \"argv\": [\"cat\", \"$secret_path\"]
      },
      \"grant\": {\"secrets\": [\"local/review_key\"], \"ttl\": 120, \"uses\": 1}
    }"

# slow_clients.py SOCKET COUNT: opens COUNT connections and sends one
# byte of a request line on each. It prints "busy N REASON" once the
# connections over the per-uid cap have their reply (at most 8 s), then
# sends one more byte per second on the others until the broker closes
# them (at most 30 s), and prints "held H closed C timed_out T".
cat >"$KH_TMP/slow_clients.py" <<'PY'
import json, select, socket, sys, time

path, count, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"{")
    conns.append(s)

def read_reply(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()

busy, reason = [], ""
deadline = time.monotonic() + 8
while len(busy) < count - cap and time.monotonic() < deadline:
    waiting = [s for s in conns if s not in busy]
    ready, _, _ = select.select(waiting, [], [], 0.2)
    for s in ready:
        reply = read_reply(s)
        busy.append(s)
        if '"busy"' in reply:
            reason = json.loads(reply).get("reason", "")
print("busy %d %s" % (len(busy), reason), flush=True)

held = [s for s in conns if s not in busy]
closed, timed_out = [], 0
deadline = time.monotonic() + 30
while len(closed) < len(held) and time.monotonic() < deadline:
    for s in held:
        if s in closed:
            continue
        ready, _, _ = select.select([s], [], [], 0)
        if ready:
            reply = read_reply(s)
            closed.append(s)
            timed_out += "not complete within" in reply
            continue
        try:
            s.sendall(b" ")
        except OSError:
            closed.append(s)
    time.sleep(1)
print("held %d closed %d timed_out %d" % (len(held), len(closed), timed_out),
      flush=True)
PY

# hold_files.py junk DIR COUNT -- CMD...: creates COUNT small files that
# are not permits in DIR and execs CMD with them open.
# hold_files.py open FILE... -- CMD...: execs CMD with each FILE open.
cat >"$KH_TMP/hold_files.py" <<'PY'
import os, sys

split = sys.argv.index("--")
args, cmd = sys.argv[1:split], sys.argv[split + 1:]
if args[0] == "junk":
    for i in range(int(args[2])):
        fd = os.open(os.path.join(args[1], "junk%d" % i),
                     os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"not a permit\n")
        os.set_inheritable(fd, True)
else:
    for name in args[1:]:
        os.set_inheritable(os.open(name, os.O_RDONLY), True)
os.execvp(cmd[0], cmd)
PY
chmod 0644 "$KH_TMP/slow_clients.py" "$KH_TMP/hold_files.py"

kh_start || kh_abort setup "keyholed did not start"

# --- Connection limits: nobody floods the socket, the agent is served.

as_other "$KH_PYTHON" -I "$KH_TMP/slow_clients.py" "$KH_SOCKET" 40 4 \
	>"$out/slow.out" 2>"$out/slow.err" &
slow_pid=$!
kh_wait_until 100 grep -q '^busy ' "$out/slow.out" ||
	fail over_cap_replies_arrive "no busy line: $(cat "$out/slow.err")"
busy_line=$(grep '^busy ' "$out/slow.out")
check_equal over_cap_connections_get_busy "$(echo "$busy_line" | cut -d' ' -f2)" 36
check_contains busy_reason_names_cap "$busy_line" "maximum per uid"

as_agent "$KEYHOLE" status --socket "$KH_SOCKET" >"$out/status.out" 2>&1
check_equal agent_status_while_flooded "$?" 0
permit=$(kh_request_tool review.read)
check agent_request_while_flooded test -f "$permit"

wait "$slow_pid"
check_equal slow_lines_closed_at_deadline \
	"$(grep '^held ' "$out/slow.out")" "held 4 closed 4 timed_out 4"
check_contains busy_logged_with_uid \
	"$(grep 'rejecting a connection' "$KH_LOG")" "uid=$KH_OTHER_UID"
check_contains slow_line_logged_with_uid \
	"$(grep 'request line incomplete' "$KH_LOG")" "uid=$KH_OTHER_UID"

# --- Exec permits and user namespaces.

# cat_with PERMIT [unshare]: cat, run by the agent holding PERMIT,
# prints the secret; with "unshare" it runs in a new user namespace.
cat_with() {
	if [ "${2:-}" = unshare ]; then
		as_agent "$KEYHOLE" exec --permit "$1" -- \
			unshare --user --map-current-user \
			cat "$secret_path" 2>>"$out/cat.err"
	else
		as_agent "$KEYHOLE" exec --permit "$1" -- \
			cat "$secret_path" 2>>"$out/cat.err"
	fi
}

if as_agent unshare --user --map-current-user true 2>/dev/null; then
	permit=$(kh_agent_request --exec -- cat "$secret_path") ||
		kh_abort exec_permit_minted "no permit for cat $secret_path"
	body=$(cat_with "$permit" unshare)
	check_equal userns_exec_gets_no_secret "${body:+body}" ""
	check_equal userns_exec_reason "$(agent_reason "$secret_path")" \
		"caller is in another user namespace"
	check_equal userns_denial_in_dpr "$(kh_json count "$dpr" type=access \
		outcome=denied "reason=caller is in another user namespace")" 1
	check_equal same_userns_exec_gets_secret "$(cat_with "$permit")" "$secret"

	permit=$(kh_request_tool review.read)
	check_equal userns_tool_call_gets_secret \
		"$(cat_with "$permit" unshare)" "$secret"
else
	fail userns_available "unshare --user fails for $KH_AGENT_USER; enable unprivileged user namespaces"
fi

# --- Files on the permits filesystem that are not permits.

junk="$KH_TMP/junk"
install -d -o "$KH_AGENT_USER" -m 0700 "$junk"

# hold_then_cat ARGS...: the agent runs hold_files.py ARGS with cat
# "$secret_path" appended, so ARGS ends with "--" and any command that
# goes before cat.
hold_then_cat() {
	as_agent "$KH_PYTHON" -I "$KH_TMP/hold_files.py" "$@" \
		cat "$secret_path" 2>>"$out/cat.err"
}

permit=$(kh_request_tool review.read)
check_equal junk_files_leave_permit_found \
	"$(hold_then_cat junk "$junk" 20 -- "$KEYHOLE" exec --permit "$permit" --)" \
	"$secret"

permit=$(kh_request_tool review.read)
body=$(hold_then_cat junk "$junk" 257 -- "$KEYHOLE" exec --permit "$permit" --)
check_equal too_many_files_get_no_secret "${body:+body}" ""
check_contains too_many_files_reason "$(agent_reason "$secret_path")" \
	"more than 256 files on the permits filesystem"

permits=""
i=0
while [ "$i" -lt 17 ]; do
	p=$(kh_request_tool review.read) || kh_abort permits_minted "request $i failed"
	permits="$permits $p"
	i=$((i + 1))
done
# shellcheck disable=SC2086
body=$(hold_then_cat open $permits --)
check_equal seventeen_permits_get_no_secret "${body:+body}" ""
check_contains seventeen_permits_reason "$(agent_reason "$secret_path")" \
	"more than 16 permits held open"
# shellcheck disable=SC2086
set -- $permits
shift
check_equal sixteen_permits_get_secret "$(hold_then_cat open "$@" --)" "$secret"

# --- One key for both permits and the audit log.

sed 's|"audit_key": "keys/audit.jwk"|"audit_key": "keys/permit.jwk"|' \
	"$KH_CONFIG" >"$KH_TMP/same-key.json"
"$KEYHOLED" --config "$KH_TMP/same-key.json" --check-config \
	>"$out/same-key.out" 2>"$out/same-key.err"
check_equal same_key_check_config_status "$?" 2
check_contains same_key_check_config_names_both "$(cat "$out/same-key.err")" \
	"permit_key $KH_KEYS/permit.jwk and audit_key $KH_KEYS/permit.jwk are the same key"
check_contains same_key_check_config_fix "$(cat "$out/same-key.err")" "keyhole keygen"
timeout 20 "$KEYHOLED" --config "$KH_TMP/same-key.json" --stderr \
	>"$out/same-key-start.out" 2>"$out/same-key-start.err"
check_equal same_key_start_status "$?" 2
check_contains same_key_start_reason "$(cat "$out/same-key-start.err")" \
	"are the same key"

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
