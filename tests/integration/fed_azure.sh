#!/bin/sh
# The azure backend end to end against the loopback Entra ID and Key
# Vault mock: the broker's RS256 JWT is the client assertion of a
# client_credentials request (checked against the app's federated
# credential: issuer, subject, audience, signature with jose), the
# agent reads the Key Vault secret with an unchanged cat, and an ES256
# assertion is rejected as Entra rejects it.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"
. "$KH_ROOT/tests/support/fed_lib.sh"

fed_setup

tenant=00000000-0000-4000-8000-0000000000aa
client=11111111-2222-4333-8444-555555555555
other=99999999-2222-4333-8444-555555555555
value="kv-$(kh_random_hex)"
cat >"$KH_TMP/azure.json" <<JSON
{
  "tenant_id": "$tenant",
  "jwks": "$FED_JWKS",
  "apps": {
    "$client": {"issuer": "$FED_ISSUER", "subject": "$FED_SUB",
                "audience": "api://AzureADTokenExchange"},
    "$other": {"issuer": "$FED_ISSUER", "subject": "keyhole:demo:prod:broker-test"}
  },
  "secrets": {"stripe-key": "$value"}
}
JSON
fed_mock_start azure "$KH_TMP/azure.json"
azure_url=$FED_URL

azure_backend() {
	cat <<JSON
{"type": "azure", "tenant_id": "$tenant", "client_id": "$1",
 "authority": "$azure_url", "vault_url": "$azure_url", "ca_file": "ca/ca.pem",
 "secrets": {"stripe": "stripe-key", "gone": "deleted-secret"}}
JSON
}
fed_add_backend azure "$(azure_backend "$client")"
fed_add_backend azure_other "$(azure_backend "$other")"
kh_write_policy \
	"$(fed_rule read-azure azure.read '"azure/stripe", "azure/gone"')" \
	"$(fed_rule read-other azure.other '"azure_other/stripe"')"
kh_start || kh_abort setup "keyholed did not start"

permit=$(kh_request_tool azure.read) || kh_abort permit "no permit for azure.read"
check_equal key_vault_read "$(fed_read "$permit" "$KH_MOUNT/azure/stripe")" "$value"
check_equal token_request_sent \
	"$(fed_mock_count "$azure_url" "POST /$tenant/oauth2/v2.0/token")" 1
check_equal secret_get_api_version \
	"$(fed_mock_count "$azure_url" "GET /secrets/stripe-key?api-version=7.4")" 1

check_equal missing_secret_eacces "$(fed_probe "$permit" "$KH_MOUNT/azure/gone")" \
	"error EACCES"
check_equal missing_secret_reason "$(agent_reason "$KH_MOUNT/azure/gone")" \
	"backend fetch failed: not found"
check_contains missing_secret_logged "$(cat "$KH_LOG")" "SecretNotFound"

# The other app's federated credential names another subject.
permit=$(kh_request_tool azure.other) || kh_abort permit "no permit for azure.other"
check_equal wrong_subject_eacces "$(fed_probe "$permit" "$KH_MOUNT/azure_other/stripe")" \
	"error EACCES"
check_equal wrong_subject_reason "$(agent_reason "$KH_MOUNT/azure_other/stripe")" \
	"backend fetch failed: auth refused"
check_contains wrong_subject_logged "$(cat "$KH_LOG")" "AADSTS70021"

"$KEYHOLE" backend test --config "$KH_CONFIG" azure >"$out/test.out" 2>&1
check_equal backend_test_status "$?" 0
check_contains backend_test_token "$(cat "$out/test.out")" "client_credentials"

# An ES256 federation key: its JWKS verifies the assertion, and the
# token endpoint still rejects it because Entra takes only RS256.
kh_stop
"$KEYHOLE" keygen --federation --alg ES256 --out "$KH_KEYS/federation-es.pem" \
	>"$out/keygen-es.out" 2>&1 || kh_abort es256 "keygen --alg ES256 failed"
"$KEYHOLE" oidc export --issuer "$FED_ISSUER" --dir "$KH_TMP/oidc" \
	--key "$KH_KEYS/federation-es.pem" >"$out/export-es.out" 2>&1 ||
	kh_abort es256 "oidc export of the ES256 key failed"
fed_config_edit "c['federation']['key'] = 'keys/federation-es.pem'"
kh_start || kh_abort es256 "keyholed did not restart with the ES256 key"
permit=$(kh_request_tool azure.read) || kh_abort permit "no permit after restart"
check_equal es256_assertion_eacces "$(fed_probe "$permit" "$KH_MOUNT/azure/stripe")" \
	"error EACCES"
check_equal es256_assertion_reason "$(agent_reason "$KH_MOUNT/azure/stripe")" \
	"backend fetch failed: auth refused"
check_contains es256_assertion_logged "$(cat "$KH_LOG")" \
	"auth refused: Entra ID token request at $azure_url/$tenant/oauth2/v2.0/token returned 401 invalid_client: AADSTS50027"

fed_no_leak log_has_no_secret "$value"
kh_check_daemon_log daemon_log_clean
