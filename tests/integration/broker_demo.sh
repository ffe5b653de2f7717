#!/bin/sh
# Every step of the demo as an assertion with the exact denial reason,
# plus the other reasons an open() of a secret can fail: no permit held,
# secret not granted, expired and revoked. Ends with the audit log
# verifying, then failing at the right seq after one byte is changed.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

trap kh_cleanup EXIT INT TERM

kh_require_root
kh_setup || kh_abort setup "kh_setup failed"
kh_support_copy || kh_abort setup "cannot copy tests/support"
out="$KH_TMP/out"
mkdir -p "$out"

password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
stripe="sk_test_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
kh_http_start report "$password" || kh_abort setup "the report server did not start"
kh_secret report.netrc "machine 127.0.0.1 login report password $password"
kh_secret stripe_key "$stripe"
netrc="$KH_MOUNT/local/report.netrc"
stripe_path="$KH_MOUNT/local/stripe_key"
url="http://127.0.0.1:$KH_HTTP_PORT/report"
report="quarterly report: 42 widgets shipped"
stripe_sum=$(printf '%s' "$stripe" | sha256sum | cut -d' ' -f1)

cat >"$KH_POLICY" <<JSON
{
  "tenant": "demo",
  "env": "dev",
  "max_ttl": 300,
  "rules": [
    {
      "id": "deny-large-charges",
      "effect": "deny",
      "action": {"type": "tool_call", "tool": "stripe.charge"},
      "when": [{"path": "action.params.amount", "op": ">", "value": 10000}]
    },
    {
      "id": "fetch-report",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {
        "type": "exec",
        "exe": "/usr/bin/curl",
        "argv": ["curl", "--netrc-file", "$netrc", "http://127.0.0.1:*/**"]
      },
      "grant": {"secrets": ["local/report.netrc"], "ttl": 120, "uses": 1}
    },
    {
      "id": "small-charges",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {"type": "tool_call", "tool": "stripe.*"},
      "limits": {"rate": {"count": 10, "per": 60}},
      "grant": {"secrets": ["local/stripe_key"], "ttl": 60, "uses": 1}
    },
    {
      "id": "short-lived",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {"type": "tool_call", "tool": "clock.tick"},
      "grant": {"secrets": ["local/stripe_key"], "ttl": 1, "uses": 1}
    }
  ]
}
JSON

kh_start || kh_abort setup "keyholed did not start"

charge='{"type":"tool_call","tool":"stripe.charge","params":{"amount":%d,"currency":"usd"}}'

# request_exec CMD ARGS...: the agent's permit for this exact command line.
request_exec() {
	as_agent "$KEYHOLE" request --socket "$KH_SOCKET" --exec -- "$@" \
		2>>"$out/request.err"
}

# request_tool JSON: the agent's permit for a tool_call action.
request_tool() {
	as_agent "$KEYHOLE" request --socket "$KH_SOCKET" --action "$1" \
		2>>"$out/request.err"
}

# fetch PERMIT URL: curl, run by the agent holding PERMIT, prints the body.
fetch() {
	as_agent "$KEYHOLE" exec --permit "$1" -- \
		curl --netrc-file "$netrc" "$2" 2>>"$out/curl.err"
}

# probe_with PERMIT PATH: the agent, holding PERMIT, opens and reads PATH.
probe_with() {
	as_agent "$KEYHOLE" exec --permit "$1" -- \
		"$KH_PYTHON" -I "$KH_SUPPORT/probe.py" read "$2" 2>>"$out/probe.err"
}

# 1-3: one single-use exec permit, as in the demo.
permit=$(request_exec curl --netrc-file "$netrc" "$url") ||
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
permit=$(request_exec curl --netrc-file "$netrc" "$url") ||
	kh_abort exec_permit_minted "no second permit for the curl command line"
fetch "$permit" "$url?other" >/dev/null
check_equal mismatch_first_action_mismatch "$(agent_reason "$netrc")" "action mismatch"
check_equal denied_open_spends_no_use "$(fetch "$permit" "$url")" "$report"

# 4: uid nobody holding the agent's permit. keyhole exec runs as root so
# that it can open the agent's 0400 permit; setpriv then drops to nobody
# and the descriptor stays open across both execs.
permit=$(request_exec curl --netrc-file "$netrc" "$url") ||
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
permit=$(request_tool "$small")
check charge_500_permitted test -f "$permit"
check_equal charge_500_permit_reads_key \
	"$(probe_with "$permit" "$stripe_path")" "ok sha256=$stripe_sum bytes=${#stripe}"

as_agent "$KEYHOLE" request --socket "$KH_SOCKET" --action "$large" \
	>"$out/large.out" 2>"$out/large.err"
check_equal charge_50000_exit_status "$?" 1
check_contains charge_50000_denied_by_rule "$(cat "$out/large.err")" deny-large-charges

# No permit held at all.
result=$(as_agent "$KH_PYTHON" -I "$KH_SUPPORT/probe.py" read "$stripe_path")
check_equal no_permit_open_eacces "$result" "error EACCES"
reason=$(agent_reason "$stripe_path")
check no_permit_has_reason test -n "$reason"

# A stripe permit does not grant the netrc.
permit=$(request_tool "$small")
check_equal ungranted_secret_eacces "$(probe_with "$permit" "$netrc")" "error EACCES"
check_equal ungranted_secret_reason "$(agent_reason "$netrc")" "secret not granted"

# Expired: wait, in bounded steps, until the clock is past exp.
permit=$(request_tool '{"type":"tool_call","tool":"clock.tick"}')
exp=$(kh_json claim "$permit" exp)
past_exp() {
	[ "$(date +%s)" -gt "$exp" ]
}
kh_wait_until 50 past_exp || fail expired_wait "clock never passed exp $exp"
check_equal expired_permit_eacces "$(probe_with "$permit" "$stripe_path")" "error EACCES"
check_equal expired_permit_reason "$(agent_reason "$stripe_path")" "expired"

# Revoked: only the owner (or root) may revoke. A process that already
# holds the permit then fails to open the secret with "revoked", and the
# DPR has a revoke record.
permit=$(request_tool "$small")
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
if as_other "$KEYHOLE" revoke --socket "$KH_SOCKET" "$jti" >"$out/revoke.out" 2>&1; then
	fail other_uid_cannot_revoke "uid $KH_OTHER_UID revoked the agent's permit"
else
	pass other_uid_cannot_revoke
fi
as_agent "$KEYHOLE" revoke --socket "$KH_SOCKET" "$jti" >>"$out/revoke.out" 2>&1
check_equal owner_revokes "$?" 0
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
