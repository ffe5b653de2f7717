#!/bin/sh
# Rotating the permit and audit keys with "keyhole keygen --rotate" and
# a restart of a real keyholed. A key_rotate record that the old key
# signs hands the DPR log over to the new audit key, and the retired
# private keys are deleted. The whole log still verifies against the
# first audit key. Permits signed by the old permit key stop working,
# and new ones work.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support
kh_test_secret rotate_secret rotate-
kh_write_policy "$(kh_agent_rule rotate-test rotate.test rotate_secret 120 5)"
path=$secret_path
cp "$KH_KEYS/audit.pub.jwk" "$KH_TMP/first-audit.pub.jwk"
first_kid=$(kh_json field "$KH_KEYS/audit.pub.jwk" 1 kid)

kh_start || kh_abort setup "keyholed did not start"
old_permit=$(kh_request_tool rotate.test)
check_equal old_permit_reads_before \
	"$(kh_probe_with "$old_permit" read "$path")" "$(kh_probe_output "$secret")"

# Rotating while keyholed runs only moves files: the running broker
# keeps signing with the keys it loaded until it restarts.
"$KEYHOLE" keygen --rotate --dir "$KH_KEYS" >"$out/rotate.out" 2>&1
check_equal rotate_exit_status "$?" 0
check_contains rotate_says_restart "$(cat "$out/rotate.out")" "restart keyholed"
new_kid=$(sed -n 's/^audit kid: \([^ ]*\) .*/\1/p' "$out/rotate.out")
check rotate_new_audit_kid test -n "$new_kid"
check retired_audit_private test -f "$KH_KEYS/retired/audit-$first_kid.jwk"
check retired_audit_public test -f "$KH_KEYS/retired/audit-$first_kid.pub.jwk"
check_equal retired_dir_mode "$(stat -c %a "$KH_KEYS/retired")" 700
check_equal retired_permit_private_gone \
	"$(ls "$KH_KEYS/retired" | grep -c '^permit-.*[^b]\.jwk$')" 0
"$KEYHOLE" doctor --config "$KH_CONFIG" --no-backends >"$out/doctor_pending.out" 2>&1
check_contains doctor_warns_restart_pending \
	"$(grep 'retired audit keys' "$out/doctor_pending.out")" "warn"

kh_stop
kh_start || kh_abort restart "keyholed did not restart after the rotation"
check_contains handover_logged "$(cat "$KH_LOG")" \
	"audit log signed by audit key $new_kid from now on"
check retired_private_deleted test ! -e "$KH_KEYS/retired/audit-$first_kid.jwk"
check retired_public_kept test -f "$KH_KEYS/retired/audit-$first_kid.pub.jwk"

rotate_record=$("$KEYHOLE" audit show --dir "$KH_AUDIT" --type key_rotate --json)
check_contains rotate_record_signed_by_old "$rotate_record" "\"kid\":\"$first_kid\""
check_contains rotate_record_names_new "$rotate_record" "\"kid\":\"$new_kid\""

# The old permit's key is gone; a new permit works.
check_equal old_permit_rejected "$(kh_probe_with "$old_permit" read "$path")" "error EACCES"
new_permit=$(kh_request_tool rotate.test)
check_equal new_permit_reads \
	"$(kh_probe_with "$new_permit" read "$path")" "$(kh_probe_output "$secret")"

kh_stop
"$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$KH_TMP/first-audit.pub.jwk" \
	>"$out/verify.out" 2>&1
check_equal verify_from_first_key "$?" 0
check_contains verify_counts_rotation "$(cat "$out/verify.out")" "1 key rotation(s)"
"$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$KH_KEYS/audit.pub.jwk" \
	>"$out/verify_new.out" 2>&1
check_equal verify_from_new_key_fails "$?" 1
check_contains verify_hints_first_key "$(cat "$out/verify_new.out")" \
	"verify with --key $KH_KEYS/retired/audit-$first_kid.pub.jwk"

# A third restart neither hands over again nor needs the old private key.
kh_start || kh_abort restart "keyholed did not start a third time"
check_equal one_rotate_record \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=key_rotate)" 1

# keyhole doctor checks a tail that starts under the old key.
"$KEYHOLE" doctor --config "$KH_CONFIG" --no-backends >"$out/doctor.out" 2>&1
check_contains doctor_tail_across_rotation "$(grep ' dpr:' "$out/doctor.out")" "pass"

# start_must_fail NAME: starts keyholed, logging to $out/NAME.log, and
# sets status to its exit status, or to "running" after stopping a
# keyholed that did not exit by itself.
start_must_fail() {
	"$KEYHOLED" --config "$KH_CONFIG" --stderr >"$out/$1.log" 2>&1 &
	pid=$!
	if kh_wait_until 100 sh -c "! kill -0 $pid 2>/dev/null"; then
		wait "$pid"
		status=$?
	else
		kill "$pid"
		wait "$pid"
		status=running
	fi
}

# Without the retired public key, the log's first record has no key.
kh_stop
mv "$KH_KEYS/retired" "$KH_TMP/retired.away"
start_must_fail no_retired
check_equal start_without_first_key_fails "$status" 2
check_contains start_without_first_key_says_kid "$(cat "$out/no_retired.log")" \
	"seq 1: signed with kid $first_kid"
mv "$KH_TMP/retired.away" "$KH_KEYS/retired"

# A key planted in a world-writable retired dir would be trusted for the
# log's first record, so keyholed does not start and doctor fails.
chmod 0777 "$KH_KEYS/retired"
start_must_fail open_retired
check_equal start_with_open_retired_fails "$status" 2
check_contains start_with_open_retired_says_mode \
	"$(cat "$out/open_retired.log")" "retired has mode 0777"
"$KEYHOLE" doctor --config "$KH_CONFIG" --no-backends \
	>"$out/doctor_open_retired.out" 2>&1
check_equal doctor_open_retired_exit_status "$?" 1
check_contains doctor_open_retired_fails \
	"$(grep '^fail  retired audit keys:' "$out/doctor_open_retired.out")" \
	"retired has mode 0777"
chmod 0700 "$KH_KEYS/retired"

kh_start || kh_abort restart "keyholed did not start with the keys back"
"$KEYHOLE" doctor --config "$KH_CONFIG" --no-backends \
	>"$out/doctor_retired.out" 2>&1
check_contains doctor_counts_retired \
	"$(grep 'retired audit keys:' "$out/doctor_retired.out")" \
	"pass  retired audit keys: 1 retired, none waiting for a restart"
kh_check_daemon_log daemon_log_clean

# Running an interrupted rotation again finishes it. First case: the
# permit key was retired (both its files are gone) and the audit key not.
stopped="$KH_TMP/stopped"
"$KEYHOLE" keygen --dir "$stopped" >/dev/null 2>&1 ||
	kh_abort stopped_rotation "keygen failed"
stopped_kid=$(kh_json field "$stopped/audit.pub.jwk" 1 kid)
rm "$stopped/permit.jwk" "$stopped/permit.pub.jwk"
"$KEYHOLE" keygen --rotate --dir "$stopped" >"$out/stopped.out" 2>&1
check_equal rerun_after_permit_retired "$?" 0
check audit_retired_on_rerun test -f "$stopped/retired/audit-$stopped_kid.jwk"
check new_keys_on_rerun test -f "$stopped/permit.jwk" -a -f "$stopped/audit.jwk"

# Second case: both keys were retired and only the new permit key was
# written.
rm "$stopped/audit.jwk" "$stopped/audit.pub.jwk"
"$KEYHOLE" keygen --rotate --dir "$stopped" >"$out/stopped2.out" 2>&1
check_equal rerun_after_new_permit_key "$?" 0
check old_audit_kept_on_rerun test -f "$stopped/retired/audit-$stopped_kid.jwk"
check new_audit_on_rerun test -f "$stopped/audit.jwk" -a -f "$stopped/audit.pub.jwk"

# Without any key there is nothing to rotate.
rm -f "$stopped"/*.jwk
"$KEYHOLE" keygen --rotate --dir "$stopped" >"$out/nothing.out" 2>&1
check_equal rotate_nothing_status "$?" 2
check_contains rotate_nothing_says_why "$(cat "$out/nothing.out")" "no keys in"
exit "$KH_FAILED"
