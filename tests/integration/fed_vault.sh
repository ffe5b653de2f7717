#!/bin/sh
# The vault backend end to end against the loopback Vault mock. The
# broker logs in with its federation JWT, which the mock checks with
# jose against the exported JWKS, the role's bound audience and
# subject, and the namespace header. The agent reads KV v2 and KV v1
# secrets with an unchanged cat, and the login token is dead right
# after each fetch. A dynamic secret's lease lives until its permit
# expires or is revoked.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"
. "$KH_ROOT/tests/support/fed_lib.sh"

fed_setup

password="pw-$(kh_random_hex)"
api_token="tok-$(kh_random_hex)"
root_token="root-$(kh_random_hex)"
cat >"$KH_TMP/vault.json" <<JSON
{
  "issuer": "$FED_ISSUER",
  "jwks": "$FED_JWKS",
  "root_token": "$root_token",
  "namespace": "team-a",
  "audit_log": "$KH_TMP/vault-audit.jsonl",
  "roles": {
    "keyhole": {"bound_audiences": ["vault"], "bound_subject": "$FED_SUB",
                "token_ttl": 300}
  },
  "mounts": {
    "secret": {"type": "kv2", "data": {"app/db": {"username": "app", "password": "$password"}}},
    "kv": {"type": "kv1", "data": {"app/api": {"token": "$api_token"}}},
    "database": {"type": "database", "roles": {"readonly": {"ttl": 600}}}
  }
}
JSON
fed_mock_start vault "$KH_TMP/vault.json"
vault_url=$FED_URL

vault_backend() {
	cat <<JSON
{"type": "vault", "addr": "$vault_url", "role": "keyhole", $1
 "ca_file": "ca/ca.pem",
 "secrets": {
   "db": {"engine": "kv2", "mount": "secret", "path": "app/db"},
   "db_password": {"path": "app/db", "field": "password"},
   "api": {"engine": "kv1", "mount": "kv", "path": "app/api", "field": "token"},
   "dbcreds": {"engine": "dynamic", "mount": "database", "path": "readonly"}
 }}
JSON
}
fed_add_backend vault "$(vault_backend '"namespace": "team-a",')"
fed_add_backend vault_nons "$(vault_backend '')"
fed_add_backend vault_aud "$(vault_backend '"namespace": "team-a", "audience": "other",')"
kh_write_policy \
	"$(fed_rule read-vault vault.read '"vault/db", "vault/db_password", "vault/api"')" \
	"$(fed_rule read-dynamic vault.dynamic '"vault/dbcreds"' 2)" \
	"$(fed_rule read-dynamic-long vault.dynamic_long '"vault/dbcreds"')" \
	"$(fed_rule read-nons vault.nons '"vault_nons/db_password"')" \
	"$(fed_rule read-aud vault.aud '"vault_aud/db_password"')"
kh_start || kh_abort setup "keyholed did not start"

# Vault, like the mock, returns the live token accessors to an admin.
live_tokens() {
	fed_mock_call "$vault_url/v1/auth/token/accessors?list=true" \
		-H "X-Vault-Token: $root_token" -H "X-Vault-Namespace: team-a" |
		"$KH_PYTHON" -I -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["keys"]))'
}

lease_alive() {
	status=$(fed_mock_call "$vault_url/v1/sys/leases/lookup" -o /dev/null \
		-w '%{http_code}' -X PUT -H "X-Vault-Token: $root_token" \
		-H "X-Vault-Namespace: team-a" -d "{\"lease_id\": \"$1\"}")
	[ "$status" = 200 ]
}

lease_gone() {
	! lease_alive "$1"
}

permit=$(kh_request_tool vault.read) || kh_abort permit "no permit for vault.read"
jti=$(basename "$permit")

check_equal kv2_object_read "$(fed_read "$permit" "$KH_MOUNT/vault/db")" \
	"{\"password\":\"$password\",\"username\":\"app\"}"
check_equal kv2_field_read "$(fed_read "$permit" "$KH_MOUNT/vault/db_password")" \
	"$password"
check_equal kv2_hash_field_read "$(fed_read "$permit" "$KH_MOUNT/vault/db#username")" app
check_equal kv1_field_read "$(fed_read "$permit" "$KH_MOUNT/vault/api")" "$api_token"
check_equal login_per_fetch "$(fed_mock_count "$vault_url" "POST /v1/auth/jwt/login")" 4
check_equal revoke_self_per_fetch \
	"$(fed_mock_count "$vault_url" "POST /v1/auth/token/revoke-self")" 4
check_equal tokens_dead_after_fetch "$(live_tokens)" 0
check_equal login_jwt_names_permit \
	"$(kh_json count "$KH_TMP/vault-audit.jsonl" type=login permit_jti="$jti")" 4

# Dynamic: the lease outlives the fetch and ends with the permit. Its
# login token cannot be revoked without revoking the lease too, so it
# stays alive until its TTL; the login made to revoke the lease is
# revoked.
permit=$(kh_request_tool vault.dynamic) || kh_abort permit "no permit for vault.dynamic"
exp=$(kh_json claim "$permit" exp)
creds=$(fed_read "$permit" "$KH_MOUNT/vault/dbcreds")
check_contains dynamic_creds_read "$creds" '"username":"v-jwt-readonly-'
lease=$(tail -n 1 "$KH_TMP/vault-audit.jsonl" | "$KH_PYTHON" -I -c \
	'import json,sys; print(json.load(sys.stdin).get("lease_id", ""))')
check dynamic_lease_alive_after_fetch lease_alive "$lease"
check_equal dynamic_login_token_kept "$(live_tokens)" 1
past_exp() {
	[ "$(date +%s)" -gt "$exp" ]
}
kh_wait_until 100 past_exp || fail dynamic_permit_expired "clock never passed exp $exp"
# The broker's clean-up pass runs every 10 s.
if kh_wait_until 300 lease_gone "$lease"; then
	pass dynamic_lease_revoked_at_expiry
else
	fail dynamic_lease_revoked_at_expiry "lease $lease alive 30 s after exp"
fi
check_equal cleanup_login_revoked "$(live_tokens)" 1
check_equal lease_revoke_request_sent \
	"$(fed_mock_count "$vault_url" "PUT /v1/sys/leases/revoke")" 1

# Failures: wrong namespace and wrong audience.
permit=$(kh_request_tool vault.nons) || kh_abort permit "no permit for vault.nons"
check_equal no_namespace_eacces "$(fed_probe "$permit" "$KH_MOUNT/vault_nons/db_password")" \
	"error EACCES"
check_equal no_namespace_reason "$(agent_reason "$KH_MOUNT/vault_nons/db_password")" \
	"backend fetch failed: not found"
permit=$(kh_request_tool vault.aud) || kh_abort permit "no permit for vault.aud"
check_equal wrong_audience_eacces "$(fed_probe "$permit" "$KH_MOUNT/vault_aud/db_password")" \
	"error EACCES"
check_equal wrong_audience_reason "$(agent_reason "$KH_MOUNT/vault_aud/db_password")" \
	"backend fetch failed: auth refused"
check_contains wrong_audience_logged "$(cat "$KH_LOG")" \
	"auth refused: vault login at $vault_url/v1/auth/jwt/login returned 400"

# The authentication round trip of `keyhole backend test`.
"$KEYHOLE" backend test --config "$KH_CONFIG" vault >"$out/test.out" 2>&1
check_equal backend_test_status "$?" 0
check_contains backend_test_lookup "$(cat "$out/test.out")" "token lookup-self"
check_equal backend_test_token_revoked "$(live_tokens)" 1

# Revocation ends a dynamic lease at once, long before the permit's exp.
permit=$(kh_request_tool vault.dynamic_long) ||
	kh_abort permit "no permit for vault.dynamic_long"
jti=$(basename "$permit")
exp=$(kh_json claim "$permit" exp)
creds=$(fed_read "$permit" "$KH_MOUNT/vault/dbcreds")
check_contains revoked_dynamic_creds_read "$creds" '"username":"v-jwt-readonly-'
lease=$(tail -n 1 "$KH_TMP/vault-audit.jsonl" | "$KH_PYTHON" -I -c \
	'import json,sys; print(json.load(sys.stdin).get("lease_id", ""))')
check revoked_dynamic_lease_alive lease_alive "$lease"
as_agent "$KEYHOLE" revoke --socket "$KH_SOCKET" -- "$jti" >"$out/revoke.out" 2>&1
status=$?
if [ "$status" -eq 0 ]; then
	pass revoke_dynamic_permit
else
	fail revoke_dynamic_permit "exit $status at $(date +%s), exp $exp: $(cat "$out/revoke.out")"
fi
if kh_wait_until 100 lease_gone "$lease"; then
	pass dynamic_lease_revoked_at_revoke
else
	fail dynamic_lease_revoked_at_revoke "lease $lease alive 10 s after keyhole revoke"
fi
[ "$(date +%s)" -lt "$exp" ] && pass revoked_before_exp ||
	fail revoked_before_exp "the permit expired before the check; its exp is $exp"
check_equal revoke_lease_request_sent \
	"$(fed_mock_count "$vault_url" "PUT /v1/sys/leases/revoke")" 2

fed_no_leak log_has_no_secret "$password" "$api_token" "hvs." "$root_token"
kh_check_daemon_log daemon_log_clean
