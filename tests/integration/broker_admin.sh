#!/bin/sh
# What keyholed reports to an administrator, and the permit files it
# removes:
# - keyholed --check-config prints every error in the config, and every
#   error in the policy, each on its own line, then a summary;
# - a grant of a secret whose backend is not configured fails
#   --check-config, start-up and a SIGHUP reload;
# - a missing key file names the command that creates the keys;
# - a spent permit's file stays until it expires, and its holder gets
#   "uses exhausted";
# - an expired permit's file is removed, and a process that still holds
#   it gets "expired", not a complaint about the file;
# - at start-up, files named like a jti that no live permit has are
#   removed, and links are left alone.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup

kh_test_secret admin_key sk_admin_
kh_write_policy "$(kh_agent_rule admin-once admin.once admin_key 120 1)" \
	"$(kh_agent_rule admin-short admin.short admin_key 2 5)"

# check_config NAME CONFIG: runs keyholed --check-config on CONFIG, with
# its standard error in $out/NAME.err, and sets status.
check_config() {
	"$KEYHOLED" --check-config --config "$2" >"$out/$1.out" 2>"$out/$1.err"
	status=$?
}

# error_lines NAME: how many "keyholed: " lines $out/NAME.err has, not
# counting the summary.
error_lines() {
	grep '^keyholed: ' "$out/$1.err" | grep -vc ' errors\? in '
}

# --- --check-config on a valid set-up.

check_config valid "$KH_CONFIG"
check_equal valid_status "$status" 0
check_contains valid_output "$(cat "$out/valid.out")" "valid (policy hP="

# --- A config with three errors: all of them are listed.

sed -e 's|"tenant": "demo"|"tenant": 7|' \
	-e 's|"env": "dev"|"env": "dev", "colour": "blue"|' \
	-e 's|"broker_id": "broker-test",|"broker_id": "broker-test", "spare": 1,|' \
	"$KH_CONFIG" >"$KH_TMP/bad-config.json"
check_config bad_config "$KH_TMP/bad-config.json"
check_equal bad_config_status "$status" 2
errors=$(cat "$out/bad_config.err")
check_contains bad_config_tenant "$errors" '$.tenant'
check_contains bad_config_colour "$errors" '$.colour'
check_contains bad_config_spare "$errors" '$.spare'
check_equal bad_config_lines "$(error_lines bad_config)" 3
check_contains bad_config_summary "$errors" \
	"keyholed: 3 errors in $KH_TMP/bad-config.json"

# --- An audit_dir whose parent is missing fails the check, not only the
# start.

sed -e 's|"audit_dir": "audit"|"audit_dir": "no-such-parent/audit"|' \
	"$KH_CONFIG" >"$KH_TMP/no-audit-parent.json"
check_config no_audit_parent "$KH_TMP/no-audit-parent.json"
check_equal no_audit_parent_status "$status" 2
check_contains no_audit_parent_message "$(cat "$out/no_audit_parent.err")" \
	"parent directory $KH_TMP/no-such-parent does not exist"

# --- A policy with three errors: all of them are listed.

cp "$KH_POLICY" "$KH_TMP/policy.good"
cat >"$KH_POLICY" <<'JSON'
{
  "tenant": "demo",
  "env": "dev",
  "max_ttl": 60,
  "owner": "ops",
  "rules": [
    {
      "id": "too-long",
      "effect": "permit",
      "action": {"type": "tool_call", "tool": "a.b"},
      "grant": {"secrets": ["local/admin_key"], "ttl": 600}
    },
    {
      "id": "odd-effect",
      "effect": "maybe",
      "action": {"type": "tool_call", "tool": "c.d"}
    }
  ]
}
JSON
check_config bad_policy "$KH_CONFIG"
check_equal bad_policy_status "$status" 2
errors=$(cat "$out/bad_policy.err")
check_contains bad_policy_owner "$errors" '$.owner'
check_contains bad_policy_ttl "$errors" '$.rules[0].grant.ttl'
check_contains bad_policy_effect "$errors" '$.rules[1].effect'
check_equal bad_policy_lines "$(error_lines bad_policy)" 3
check_contains bad_policy_summary "$errors" \
	"keyholed: 3 errors in $KH_CONFIG and $KH_POLICY"

# --- A grant of a backend that is not configured.

kh_write_policy "$(kh_agent_rule admin-once admin.once admin_key 120 1)" \
	'    {
      "id": "from-vault",
      "effect": "permit",
      "action": {"type": "tool_call", "tool": "vault.read"},
      "grant": {"secrets": ["local/admin_key", "vault/x"]}
    }'
cp "$KH_POLICY" "$KH_TMP/policy.vault"
check_config vault "$KH_CONFIG"
check_equal unknown_backend_status "$status" 2
errors=$(cat "$out/vault.err")
check_contains unknown_backend_path "$errors" \
	"$KH_POLICY: \$.rules[1].grant.secrets[1]: rule \"from-vault\" grants \"vault/x\""
check_contains unknown_backend_summary "$errors" "keyholed: 1 error in"
timeout 20 "$KEYHOLED" --config "$KH_CONFIG" --stderr \
	>"$out/vault-start.out" 2>"$out/vault-start.err"
check_equal unknown_backend_start_status "$?" 2
check_contains unknown_backend_start_reason "$(cat "$out/vault-start.err")" \
	"grants \"vault/x\""

# A granted secret that the backend does not list is only a warning.
kh_write_policy "$(kh_agent_rule admin-once admin.once no_such_key 120 1)"
check_config unlisted "$KH_CONFIG"
check_equal unlisted_secret_status "$status" 0
check_contains unlisted_secret_warning "$(cat "$out/unlisted.err")" \
	'keyholed: warning:'
check_contains unlisted_secret_name "$(cat "$out/unlisted.err")" \
	'"no_such_key"'

# --- A missing key file names keyhole keygen.

sed 's|"permit_key": "keys/permit.jwk"|"permit_key": "keys/nosuch.jwk"|' \
	"$KH_CONFIG" >"$KH_TMP/no-key.json"
check_config no_key "$KH_TMP/no-key.json"
check_equal missing_key_status "$status" 2
check_contains missing_key_names_file "$(cat "$out/no_key.err")" \
	"keyholed: permit_key: $KH_KEYS/nosuch.jwk"
check_contains missing_key_fix "$(cat "$out/no_key.err")" \
	"create the keys with: keyhole keygen --dir DIR"

# --- Start the broker on the good policy.

cp "$KH_TMP/policy.good" "$KH_POLICY"
kh_start || kh_abort start "keyholed did not start"
permit_dir="$KH_PERMITS/$KH_AGENT_UID"

# A reload onto a grant of an unknown backend keeps the old policy.
loads_before=$(kh_json count "$KH_AUDIT/dpr.jsonl" type=policy_load)
cp "$KH_TMP/policy.vault" "$KH_POLICY"
kill -HUP "$KH_DAEMON_PID"
reload_logged() {
	grep -q 'policy reload failed.*grants "vault/x"' "$KH_LOG"
}
check reload_rejects_unknown_backend kh_wait_until 100 reload_logged
check_equal reload_keeps_policy \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=policy_load)" "$loads_before"
cp "$KH_TMP/policy.good" "$KH_POLICY"

# --- A spent permit's file stays until it expires; its holder gets
# "uses exhausted".

# hold_and_open PERMIT WAIT [first]: the agent keeps PERMIT open in a
# shell that opens the secret (only with "first"). The shell then waits
# at most WAIT tenths of a second for the permit file to go, opens the
# secret again and prints one word per step.
hold_and_open() {
	as_agent "$KEYHOLE" exec --permit "$1" -- sh -c '
		if [ -n "$4" ]; then
			if cat "$1" >/dev/null 2>&1; then echo first-ok; else echo first-denied; fi
		fi
		i=0
		while [ -e "$2" ] && [ "$i" -lt "$3" ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if [ -e "$2" ]; then echo file-kept; else echo file-gone; fi
		if cat "$1" >/dev/null 2>&1; then echo again-ok; else echo again-denied; fi
	' sh "$secret_path" "$1" "$2" "${3:-}"
}

permit=$(kh_request_tool admin.once) || kh_abort spent_permit "request failed"
steps=$(hold_and_open "$permit" 0 first | tr '\n' ' ')
check_equal spent_permit_steps "$steps" "first-ok file-kept again-denied "
check_equal spent_permit_reason "$(agent_reason "$secret_path")" "uses exhausted"

# --- An expired permit's file goes at the next clean-up pass (every
# 10 s); its holder still gets "expired".

permit=$(kh_request_tool admin.short) || kh_abort expired_permit "request failed"
steps=$(hold_and_open "$permit" 300 | tr '\n' ' ')
check_equal expired_permit_steps "$steps" "file-gone again-denied "
check_equal expired_permit_reason "$(agent_reason "$secret_path")" "expired"

# --- At start-up, files whose jti no permit has are removed; links stay.

kh_stop
stray=AAAAAAAAAAAAAAAAAAAAAA
linked=BBBBBBBBBBBBBBBBBBBBBA
as_agent sh -c "echo stray >'$permit_dir/$stray' && ln -s '$KH_TMP/policy.good' '$permit_dir/$linked'"
kh_start || kh_abort restart "keyholed did not restart"
check startup_removes_stray test ! -e "$permit_dir/$stray"
check startup_keeps_link test -L "$permit_dir/$linked"
check startup_keeps_link_target test -f "$KH_TMP/policy.good"

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
