#!/bin/sh
# How a backend failure reaches the agent, through the doppler backend
# and its mock's scripted failures (/_mock/plan). The cases are 403,
# 404, 429 then success, 500 three times, a slow reply, an oversized
# body, malformed JSON, a redirect and a certificate for another name. Each failure
# must end in EACCES within a bounded time, with its specific reason in
# user.keyhole.reason and in a DPR access record, and with no token or
# secret in keyholed's log.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"
. "$KH_ROOT/tests/support/fed_lib.sh"

fed_setup

token="dp.st.prd.$(kh_random_hex)"
value="sk_live_$(kh_random_hex)"
install -d -m 0700 "$KH_TMP/tokens"
(umask 077 && printf '%s\n' "$token" >"$KH_TMP/tokens/doppler")
cat >"$KH_TMP/doppler.json" <<JSON
{
  "tokens": {"$token": {"project": "pay", "config": "prd"}},
  "secrets": {"pay": {"prd": {"STRIPE_KEY": {"raw": "$value", "computed": "$value"}}}}
}
JSON
fed_mock_start doppler "$KH_TMP/doppler.json"
url=$FED_URL
fed_mock_start doppler "$KH_TMP/doppler.json" wrong
wrong_url=$FED_URL

# A 1 s timeout per attempt keeps the slow case short.
doppler_backend() {
	cat <<JSON
{"type": "doppler", "token_file": "tokens/doppler", "api": "$1",
 "project": "pay", "config": "prd", "secrets": ["STRIPE_KEY"],
 "ca_file": "ca/ca.pem",
 "timeout": 1, "connect_timeout": 1}
JSON
}
fed_add_backend pay "$(doppler_backend "$url")"
fed_add_backend pay_tls "$(doppler_backend "$wrong_url")"
kh_write_policy "$(fed_rule read-pay pay.read '"pay/STRIPE_KEY", "pay_tls/STRIPE_KEY"')"
kh_start || kh_abort setup "keyholed did not start"

permit=$(kh_request_tool pay.read) || kh_abort permit "no permit for pay.read"
jti=$(basename "$permit")
path="$KH_MOUNT/pay/STRIPE_KEY"
dpr="$KH_AUDIT/dpr.jsonl"

# denied NAME PATH REASON: one open of PATH must fail with EACCES within
# 60 s, and REASON must be in the xattr and in a new DPR access record.
denied() {
	before=$(kh_json count "$dpr" type=access jti="$jti" \
		reason="backend fetch failed: $3")
	result=$(timeout 60 setpriv --reuid "$KH_AGENT_USER" \
		--regid "$KH_AGENT_USER" --init-groups -- \
		"$KEYHOLE" exec --permit "$permit" -- \
		"$KH_PYTHON" -I "$KH_SUPPORT/probe.py" read "$2" 2>>"$out/probe.err")
	status=$?
	if [ "$status" -eq 124 ]; then
		fail "$1_no_hang" "the open did not return within 60 s"
		return
	fi
	pass "$1_no_hang"
	check_equal "$1_eacces" "$result" "error EACCES"
	check_equal "$1_reason" "$(agent_reason "$2")" "backend fetch failed: $3"
	check_equal "$1_dpr_record" "$(kh_json count "$dpr" type=access jti="$jti" \
		reason="backend fetch failed: $3")" "$((before + 1))"
}

secret_calls() {
	fed_mock_count "$url" "GET /v3/configs/config/secret"
}

check_equal baseline_read "$(fed_read "$permit" "$path")" "$value"

fed_plan "$url" "GET /v3/configs" 403
denied status_403 "$path" "auth refused"

fed_plan "$url" "GET /v3/configs" 404
denied status_404 "$path" "not found"

calls=$(secret_calls)
fed_plan "$url" "GET /v3/configs" 429 ok
check_equal status_429_retried_read "$(fed_read "$permit" "$path")" "$value"
check_equal status_429_two_attempts "$(($(secret_calls) - calls))" 2

calls=$(secret_calls)
fed_plan "$url" "GET /v3/configs" 500 500 500
denied status_500_thrice "$path" "server error"
check_equal status_500_three_attempts "$(($(secret_calls) - calls))" 3

fed_plan "$url" "GET /v3/configs" slow slow slow
denied slow_reply "$path" "timed out"

fed_plan "$url" "GET /v3/configs" oversize
denied oversized_body "$path" "bad response"

fed_plan "$url" "GET /v3/configs" malformed
denied malformed_json "$path" "bad response"

calls=$(secret_calls)
fed_plan "$url" "GET /v3/configs" redirect
denied redirect_not_followed "$path" "bad response"
check_equal redirect_one_attempt "$(($(secret_calls) - calls))" 1

denied tls_name_mismatch "$KH_MOUNT/pay_tls/STRIPE_KEY" "TLS failure"
# The test itself reaches the mock under the name its certificate names.
wrong_log=$(fed_mock_call "https://wrong-name.invalid:$FED_PORT/_mock/log" \
	--resolve "wrong-name.invalid:$FED_PORT:127.0.0.1")
check_equal tls_mismatch_no_request "$wrong_log" "[]"

check_equal read_after_failures "$(fed_read "$permit" "$path")" "$value"
fed_no_leak log_has_no_secret "$token" "$value"
kh_check_daemon_log daemon_log_clean
