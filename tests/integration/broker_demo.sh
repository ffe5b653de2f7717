#!/bin/sh
# Every step of the demo as an assertion with the exact denial reason,
# plus the other reasons an open() of a secret can fail: no permit held,
# secret not granted, expired and revoked. Ends with the audit log
# verifying, then failing at the right seq after one byte is changed.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support

kh_report_setup || kh_abort setup "the report server did not start"
stripe="sk_test_$(kh_random_hex)"
kh_secret stripe_key "$stripe"
stripe_path="$KH_MOUNT/local/stripe_key"
report="quarterly report: 42 widgets shipped"

kh_write_policy "$(kh_demo_rules)" \
	"$(kh_agent_rule short-lived clock.tick stripe_key 1 1)"

kh_start || kh_abort setup "keyholed did not start"

charge='{"type":"tool_call","tool":"stripe.charge","params":{"amount":%d,"currency":"usd"}}'

# fetch PERMIT URL: curl, run by the agent holding PERMIT, prints the body.
fetch() {
	as_agent "$KEYHOLE" exec --permit "$1" -- \
		curl --netrc-file "$netrc" "$2" 2>>"$out/curl.err"
}

# 1-3: one single-use exec permit, as in the demo.
permit=$(kh_agent_request --exec -- curl --netrc-file "$netrc" "$url") ||
	kh_abort exec_permit_minted "no permit for the exact curl command line"
jti_fetch=$(basename "$permit")
check_equal exec_permit_fetches_report "$(fetch "$permit" "$url")" "$report"

body=$(fetch "$permit" "$url?other")
check_equal other_url_gets_no_report "${body:+body}" ""
check_equal other_url_action_mismatch "$(agent_reason "$netrc")" "action mismatch"

body=$(fetch "$permit" "$url")
check_equal second_use_gets_no_report "${body:+body}" ""
check_equal second_use_uses_exhausted "$(agent_reason "$netrc")" "uses exhausted"

check_equal fetch_has_one_granted_access \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=access jti="$jti_fetch" outcome=granted)" 1

# A denied open must not spend the use: mismatch first, then the right URL.
permit=$(kh_agent_request --exec -- curl --netrc-file "$netrc" "$url") ||
	kh_abort exec_permit_minted "no second permit for the curl command line"
fetch "$permit" "$url?other" >/dev/null
check_equal mismatch_first_action_mismatch "$(agent_reason "$netrc")" "action mismatch"
check_equal denied_open_spends_no_use "$(fetch "$permit" "$url")" "$report"

# 4: uid nobody holding the agent's permit. keyhole exec runs as root so
# that it can open the agent's 0400 permit; setpriv then drops to nobody
# and the descriptor stays open across both execs.
permit=$(kh_agent_request --exec -- curl --netrc-file "$netrc" "$url") ||
	kh_abort exec_permit_minted "no third permit for the curl command line"
body=$("$KEYHOLE" exec --permit "$permit" -- \
	setpriv --reuid "$KH_OTHER_USER" --regid nogroup --clear-groups -- \
	curl --netrc-file "$netrc" "$url" 2>>"$out/curl.err")
check_equal other_uid_gets_no_report "${body:+body}" ""
check_equal other_uid_subject_mismatch "$(other_reason "$netrc")" "subject mismatch"
check_equal agent_still_uses_permit "$(fetch "$permit" "$url")" "$report"

# 5: tool_call permits; policy decides on the declared parameters.
# shellcheck disable=SC2059
small=$(printf "$charge" 500)
# shellcheck disable=SC2059
large=$(printf "$charge" 50000)
permit=$(kh_agent_request --action "$small")
check charge_500_permitted test -f "$permit"
check_equal charge_500_permit_reads_key \
	"$(kh_probe_with "$permit" read "$stripe_path")" "$(kh_probe_output "$stripe")"

as_agent "$KEYHOLE" request --socket "$KH_SOCKET" --action "$large" \
	>"$out/large.out" 2>"$out/large.err"
check_equal charge_50000_exit_status "$?" 1
check_contains charge_50000_denied_by_rule "$(cat "$out/large.err")" deny-large-charges
check denial_log_names_rule grep -q "request denied: .* rule=deny-large-charges " "$KH_LOG"

# An action that no rule matches: the log line shows rule=- for the
# default deny.
as_agent "$KEYHOLE" request --socket "$KH_SOCKET" \
	--action '{"type":"tool_call","tool":"no.such.tool"}' \
	>"$out/unmatched.out" 2>"$out/unmatched.err"
check_equal unmatched_exit_status "$?" 1
check default_deny_logs_rule_dash grep -q "request denied: .* rule=- .*reason=no rule matched" "$KH_LOG"

# No permit held at all.
result=$(as_agent "$KH_PYTHON" -I "$KH_SUPPORT/probe.py" read "$stripe_path")
check_equal no_permit_open_eacces "$result" "error EACCES"
reason=$(agent_reason "$stripe_path")
check no_permit_has_reason test -n "$reason"

# A stripe permit does not grant the netrc.
permit=$(kh_agent_request --action "$small")
check_equal ungranted_secret_eacces "$(kh_probe_with "$permit" read "$netrc")" "error EACCES"
check_equal ungranted_secret_reason "$(agent_reason "$netrc")" "secret not granted"

# Expired: wait, in bounded steps, until the clock is past exp.
permit=$(kh_request_tool clock.tick)
exp=$(kh_json claim "$permit" exp)
past_exp() {
	[ "$(date +%s)" -gt "$exp" ]
}
kh_wait_until 50 past_exp || fail expired_wait "clock never passed exp $exp"
check_equal expired_permit_eacces "$(kh_probe_with "$permit" read "$stripe_path")" "error EACCES"
check_equal expired_permit_reason "$(agent_reason "$stripe_path")" "expired"

# Revoked: only the owner (or root) may revoke. A process that already
# holds the permit then fails to open the secret with "revoked", and the
# DPR has a revoke record.
permit=$(kh_agent_request --action "$small")
jti=$(basename "$permit")
check_equal permit_path_is_uid_jti "$(dirname "$permit")" "$KH_PERMITS/$KH_AGENT_UID"
check_equal permit_file_named_by_jti "$(kh_json claim "$permit" jti)" "$jti"
as_agent "$KEYHOLE" exec --permit "$permit" -- \
	"$KH_PYTHON" -I "$KH_SUPPORT/probe.py" read "$stripe_path" \
	--after "$KH_TMP/revoked" >"$out/revoked.out" 2>&1 &
holder=$!
holder_ready() {
	grep -q '^ready$' "$out/revoked.out"
}
kh_wait_until 200 holder_ready || fail revoke_holder_ready "the holder never started"

# A random jti starts with '-' about one time in 64, so it goes after
# --. Exit 1 is a denial, where a usage error would exit 2.
as_other "$KEYHOLE" revoke --socket "$KH_SOCKET" -- "$jti" >"$out/revoke.out" 2>&1
check_equal other_uid_revoke_denied "$?" 1
check_contains other_uid_revoke_reason "$(cat "$out/revoke.out")" "only the permit's owner"
as_agent "$KEYHOLE" revoke --socket "$KH_SOCKET" -- "$jti" >"$out/owner_revoke.out" 2>&1
status=$?
if [ "$status" -eq 0 ]; then
	pass owner_revokes
else
	fail owner_revokes "exit $status at $(date +%s): $(cat "$out/owner_revoke.out")"
fi
touch "$KH_TMP/revoked"
wait "$holder"
check_equal revoked_permit_eacces "$(tail -n 1 "$out/revoked.out")" "error EACCES"
check_equal revoked_permit_reason "$(agent_reason "$stripe_path")" "revoked"
check_equal revoke_record_in_dpr \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=revoke jti="$jti")" 1

# 6: the log verifies, and a changed byte is found at its record.
kh_stop
dpr="$KH_AUDIT/dpr.jsonl"
pub="$KH_KEYS/audit.pub.jwk"
"$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$pub" >"$out/verify.out" 2>&1
check_equal audit_verify_passes "$?" 0

cp "$dpr" "$KH_TMP/dpr.orig"
records=$(wc -l <"$dpr")
line=$((records / 2))
seq=$(kh_json field "$dpr" "$line" seq)
for key in sig time hash; do
	cp "$KH_TMP/dpr.orig" "$dpr"
	kh_json tamper "$dpr" "$line" "$key"
	if cmp -s "$dpr" "$KH_TMP/dpr.orig"; then
		fail "tampered_${key}_changed" "jsontool did not change line $line"
		continue
	fi
	result=$("$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$pub" 2>&1)
	check_equal "tampered_${key}_exit_status" "$?" 1
	check_contains "tampered_${key}_names_seq" "$result" "at seq $seq:"
done
cp "$KH_TMP/dpr.orig" "$dpr"
"$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$pub" >"$out/verify.out" 2>&1
check_equal restored_log_verifies "$?" 0

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
