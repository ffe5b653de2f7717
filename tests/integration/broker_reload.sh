#!/bin/sh
# Policy reload with SIGHUP.
#
# With the default on_policy_change "reject", a permit minted under the
# old policy is refused with "issued under another policy version" once
# a changed policy is loaded, while new permits work; every load leaves a
# policy_load record with its hP and an archived policies/<hP>.json. A
# policy that does not parse is rejected and the old one stays in force.
# With "honor", old permits stay valid until they expire.
#
# hP is computed here independently of libkeyhole (jsontool.py
# canonical-hash), so the policies keep to ASCII keys and integers.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support
dpr="$KH_AUDIT/dpr.jsonl"

kh_test_secret reload_key sk_reload_

# write_policy TTL: the policy, varied by the grant's ttl so that each
# version has its own hP.
write_policy() {
	kh_write_policy "$(kh_agent_rule reload-read reload.read reload_key "$1" 2)"
}

probe_with() {
	kh_probe_with "$1" read "$secret_path"
}

policy_loads() {
	kh_json count "$dpr" type=policy_load "$@"
}

loaded() {
	[ "$(policy_loads hP="$1")" -ge 1 ]
}

# reload_to NAME HASH: sends SIGHUP and waits, at most 10 s, for the
# policy_load record of HASH.
reload_to() {
	kill -HUP "$KH_DAEMON_PID"
	if kh_wait_until 100 loaded "$2"; then
		pass "$1"
	else
		fail "$1" "no policy_load record with hP $2 within 10 s of SIGHUP"
	fi
}

write_policy 120
kh_start || kh_abort setup "keyholed did not start"
hp1=$(kh_json canonical-hash "$KH_POLICY")

check_equal first_load_recorded "$(policy_loads hP="$hp1")" 1
check first_policy_archived test -f "$KH_AUDIT/policies/$hp1.json"
old=$(kh_request_tool reload.read) || kh_abort permit_minted "no permit under the first policy"
check_equal old_permit_has_first_hp "$(kh_json claim "$old" hP)" "$hp1"
check_equal old_permit_works_before "$(probe_with "$old")" "$secret_ok"

write_policy 90
hp2=$(kh_json canonical-hash "$KH_POLICY")
reload_to reload_recorded "$hp2"
check second_policy_archived test -f "$KH_AUDIT/policies/$hp2.json"
check_equal archive_hash_matches_name \
	"$(kh_json canonical-hash "$KH_AUDIT/policies/$hp2.json")" "$hp2"

check_equal old_permit_refused "$(probe_with "$old")" "error EACCES"
check_equal old_permit_reason "$(agent_reason "$secret_path")" \
	"issued under another policy version"
new=$(kh_request_tool reload.read) || kh_abort permit_minted "no permit under the second policy"
check_equal new_permit_has_second_hp "$(kh_json claim "$new" hP)" "$hp2"
check_equal new_permit_works "$(probe_with "$new")" "$secret_ok"

# A policy that does not parse: keyholed --check-config rejects it, and
# a reload keeps the second policy in force.
cp "$KH_POLICY" "$KH_TMP/policy.good"
printf '{"tenant": "demo", "rules": [\n' >"$KH_POLICY"
if "$KEYHOLED" --check-config --config "$KH_CONFIG" >"$out/check.out" 2>&1; then
	fail check_config_rejects_broken "keyholed --check-config accepted a truncated policy"
else
	pass check_config_rejects_broken
fi
loads=$(policy_loads)
log_lines=$(wc -l <"$KH_LOG")
kill -HUP "$KH_DAEMON_PID"
# keyholed logs the rejected reload; wait for that line, at most 5 s,
# and go on either way: what counts is the state afterwards.
log_grew() {
	[ "$(wc -l <"$KH_LOG")" -gt "$log_lines" ]
}
kh_wait_until 50 log_grew || echo "note: keyholed logged nothing after SIGHUP" >&2
check broken_reload_daemon_alive kill -0 "$KH_DAEMON_PID"
permit=$(kh_request_tool reload.read)
check_equal broken_reload_keeps_policy "$(kh_json claim "$permit" hP)" "$hp2"
check_equal broken_reload_not_recorded "$(policy_loads)" "$loads"
cp "$KH_TMP/policy.good" "$KH_POLICY"
"$KEYHOLED" --check-config --config "$KH_CONFIG" >"$out/check.out" 2>&1
check_equal check_config_accepts_good "$?" 0

# on_policy_change "honor": old permits stay valid across a reload.
kh_stop
sed -i 's/^  "env": "dev",$/&\n  "on_policy_change": "honor",/' "$KH_CONFIG"
kh_start || kh_abort honor_start "keyholed did not start with on_policy_change honor"
old=$(kh_request_tool reload.read) || kh_abort permit_minted "no permit in honor mode"
check_equal honor_permit_has_second_hp "$(kh_json claim "$old" hP)" "$hp2"
write_policy 60
hp3=$(kh_json canonical-hash "$KH_POLICY")
reload_to honor_reload_recorded "$hp3"
check_equal honor_old_permit_works "$(probe_with "$old")" "$secret_ok"
new=$(kh_request_tool reload.read) || kh_abort permit_minted "no permit after the honor reload"
check_equal honor_new_permit_has_third_hp "$(kh_json claim "$new" hP)" "$hp3"

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
