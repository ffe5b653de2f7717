#!/bin/sh
# SIGKILL of keyholed in the middle of a stream of requests and opens.
#
# After the dead mount is detached and keyholed restarts on the same
# audit directory, the log still verifies and no single-use permit opens
# twice, because use counts are rebuilt from the log. A torn final line,
# as a crash inside write() leaves, is cut off and noted in a repair
# record, and the chain goes on.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support
dpr="$KH_AUDIT/dpr.jsonl"
pub="$KH_KEYS/audit.pub.jwk"

kh_test_secret crash_key sk_crash_
action='{"type":"tool_call","tool":"crash.read"}'
kh_write_policy "$(kh_agent_rule crash-read crash.read crash_key 300 1)"

# The load, run as the agent: request a permit and read the secret with
# it, at most COUNT times, and stop after three failed requests in a row
# (the broker is gone). Each line of LOG is "granted|refused PERMIT" or
# "no-permit".
cat >"$KH_TMP/load.sh" <<'SH'
keyhole=$1 socket=$2 secret=$3 log=$4 count=$5 action=$6
i=0
misses=0
while [ "$i" -lt "$count" ] && [ "$misses" -lt 3 ]; do
	i=$((i + 1))
	if permit=$("$keyhole" request --socket "$socket" --action "$action" 2>/dev/null); then
		misses=0
		if "$keyhole" exec --permit "$permit" -- sha256sum "$secret" >/dev/null 2>&1; then
			echo "granted $permit" >>"$log"
		else
			echo "refused $permit" >>"$log"
		fi
	else
		misses=$((misses + 1))
		echo "no-permit" >>"$log"
	fi
done
SH
load_log="$KH_TMP/load.log"
: >"$load_log"
chown "$KH_AGENT_USER" "$load_log"

probe_with() {
	kh_probe_with "$1" read "$secret_path"
}

verify_log() {
	"$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$pub" >"$out/verify.out" 2>&1
}

kh_start || kh_abort setup "keyholed did not start"

# A permit spent before the crash.
before=$(kh_agent_request --action "$action") || kh_abort permit_minted "no permit before the crash"
check_equal spent_before_crash "$(probe_with "$before")" "$secret_ok"

# Kill keyholed once the load has done some work.
as_agent sh "$KH_TMP/load.sh" "$KEYHOLE" "$KH_SOCKET" "$secret_path" \
	"$load_log" 200 "$action" &
load_pid=$!
load_started() {
	[ "$(wc -l <"$load_log")" -ge 10 ]
}
kh_wait_until 300 load_started || fail load_ran "the load did no work within 30 s"
kh_kill_daemon
load_running() {
	kill -0 "$load_pid" 2>/dev/null
}
load_stopped() {
	! load_running
}
if ! kh_wait_until 300 load_stopped; then
	fail load_stopped "the load still ran 30 s after the broker died"
	kill "$load_pid" 2>/dev/null
fi
wait "$load_pid" 2>/dev/null
check mount_detached_after_kill sh -c "! mountpoint -q '$KH_MOUNT'"

kh_start || kh_abort restart_after_kill "keyholed did not restart after SIGKILL"
pass restart_after_kill

check_equal spent_permit_still_spent "$(probe_with "$before")" "error EACCES"
check_equal spent_permit_reason "$(agent_reason "$secret_path")" "uses exhausted"

# Every permit whose open the log recorded as granted stays spent; the
# permits nearest the kill are the interesting ones.
tried=0
bad=0
grep '^granted \|^refused ' "$load_log" | cut -d' ' -f2 | tail -n 10 >"$KH_TMP/recent"
while read -r permit; do
	jti=$(basename "$permit")
	granted=$(kh_json count "$dpr" type=access jti="$jti" outcome=granted </dev/null)
	[ "$granted" -ge 1 ] || continue
	tried=$((tried + 1))
	result=$(probe_with "$permit" </dev/null)
	reason=$(agent_reason "$secret_path" </dev/null)
	if [ "$result" != "error EACCES" ] || [ "$reason" != "uses exhausted" ]; then
		fail load_permits_still_spent "permit $jti: $result, reason \"$reason\""
		bad=1
	fi
done <"$KH_TMP/recent"
if [ "$tried" -eq 0 ]; then
	fail load_permits_still_spent "the load logged no granted permit to retry"
elif [ "$bad" -eq 0 ]; then
	pass load_permits_still_spent
fi
check_equal at_most_one_grant_per_permit \
	"$(kh_json max-per "$dpr" jti type=access outcome=granted)" 1

kh_stop
verify_log
check_equal log_verifies_after_kill "$?" 0

# A torn final line, as a crash in the middle of write() leaves it.
repairs=$(kh_json count "$dpr" type=repair 2>/dev/null)
printf '{"action":{"type":"tool_call"' >>"$dpr"
kh_start || kh_abort restart_after_torn_tail "keyholed did not start on a torn log"
check_equal torn_tail_repair_record \
	"$(kh_json count "$dpr" type=repair)" "$((repairs + 1))"
check_equal spent_permit_spent_after_repair "$(probe_with "$before")" "error EACCES"
new=$(kh_agent_request --action "$action") || kh_abort permit_minted "no permit after the repair"
check_equal new_permit_after_repair "$(probe_with "$new")" "$secret_ok"
kh_stop
verify_log
check_equal log_verifies_after_repair "$?" 0

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
