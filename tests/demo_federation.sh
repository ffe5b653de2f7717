#!/bin/sh
# make demo-federation: keyless backends, against loopback mocks.
#
# The broker gets its own OIDC identity (keyhole keygen --federation and
# keyhole oidc export). Then an agent reads two secrets with an
# unchanged cat through one permit: one from AWS Secrets Manager through
# AssumeRoleWithWebIdentity, and one from Vault KV through a JWT login.
# keyhole.json holds no credential for either. The cloud services are node mocks on
# 127.0.0.1 (tests/mocks), which check the broker's JWTs with jose
# against the exported JWKS; no request leaves the machine. The DPR log
# and what each mock saw are printed at the end.
set -u
KH_SUITE=demo-federation
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/.." && pwd)
. "$KH_ROOT/tests/lib.sh"
. "$KH_ROOT/tests/support/fed_lib.sh"

step() {
	printf '%s\n' "$*"
}

detail() {
	printf '     %s\n' "$*"
}

die() {
	printf 'demo failed: %s\n' "$*" >&2
	[ -f "${KH_LOG:-}" ] && tail -n 20 "$KH_LOG" >&2
	exit 1
}

# json_get FILE|- EXPR: prints the Python expression EXPR, evaluated
# with d bound to the JSON document in FILE (or stdin for -) and the
# json module at hand.
json_get() {
	"$KH_PYTHON" -I -c '
import json, sys
d = json.load(sys.stdin if sys.argv[1] == "-" else open(sys.argv[1]))
print(eval(sys.argv[2], {"d": d, "json": json}))' "$1" "$2"
}

[ "$(id -u)" -eq 0 ] || die "run the demo as root (it mounts FUSE and switches users)"

# fed_setup makes the temporary tree, the test CA for the mocks' TLS
# certificates, the federation key and the OIDC export, and sets the
# EXIT trap that stops the daemon and the mocks and removes the tree.
fed_setup
step "1. keyhole keygen --federation made the broker's signing key:"
detail "$(cat "$out/keygen.out")"
step "2. keyhole oidc export wrote the discovery document and the JWKS, to be served at $FED_ISSUER:"
detail "$(cat "$out/export.out")"
detail "jwks_uri: $(json_get "$KH_TMP/oidc/.well-known/openid-configuration" 'd["jwks_uri"]')"
detail "(the mocks below read jwks.json from its file; AWS, Vault and Entra fetch it from jwks_uri)"

# --- the mocks ---
account=123456789012
role_arn="arn:aws:iam::$account:role/keyhole-demo"
secret_arn="arn:aws:secretsmanager:us-east-1:$account:secret:demo/db-AbCdEf"
aws_value="aws-demo-value-$(kh_random_hex)"
vault_value="vault-demo-value-$(kh_random_hex)"
cat >"$KH_TMP/aws.json" <<JSON
{
  "region": "us-east-1",
  "issuer": "$FED_ISSUER",
  "audience": "sts.amazonaws.com",
  "jwks": "$FED_JWKS",
  "roles": {"$role_arn": {"web_identity": true, "subject": "$FED_SUB"}},
  "secrets": {"$secret_arn": {"string": "$aws_value"}}
}
JSON
fed_mock_start aws "$KH_TMP/aws.json"
aws_url=$FED_URL
step "3. started mock STS and Secrets Manager on 127.0.0.1:$FED_PORT - not AWS"

cat >"$KH_TMP/vault.json" <<JSON
{
  "issuer": "$FED_ISSUER",
  "jwks": "$FED_JWKS",
  "root_token": "demo-root-$(kh_random_hex)",
  "audit_log": "$KH_TMP/vault-audit.jsonl",
  "roles": {"keyhole": {"bound_audiences": ["vault"], "bound_subject": "$FED_SUB",
                        "token_ttl": 300}},
  "mounts": {"secret": {"type": "kv2",
                        "data": {"demo/db": {"password": "$vault_value"}}}}
}
JSON
fed_mock_start vault "$KH_TMP/vault.json"
vault_url=$FED_URL
step "   started mock Vault on 127.0.0.1:$FED_PORT - not HashiCorp Vault"

# --- keyhole.json and the policy ---
fed_add_backend aws "{\"type\": \"aws\", \"mode\": \"web_identity\",
 \"role_arn\": \"$role_arn\", \"region\": \"us-east-1\",
 \"secret_arns\": {\"db\": \"$secret_arn\"},
 \"sts_endpoint\": \"$aws_url\", \"endpoint\": \"$aws_url\",
 \"ca_file\": \"ca/ca.pem\"}"
fed_add_backend vault "{\"type\": \"vault\", \"addr\": \"$vault_url\",
 \"role\": \"keyhole\", \"ca_file\": \"ca/ca.pem\",
 \"secrets\": {\"db_password\": {\"mount\": \"secret\", \"path\": \"demo/db\",
                                 \"field\": \"password\"}}}"
kh_write_policy "$(fed_rule deploy demo.deploy '"aws/db", "vault/db_password"')"
step "4. keyhole.json names the backends by URL, role and path only:"
for part in '["backends"]["aws"]' '["backends"]["vault"]' '["federation"]'; do
	detail "$(json_get "$KH_CONFIG" "json.dumps(d$part)")"
done

kh_start || die "keyholed did not start"
step "5. keyholed is up: secrets at $KH_MOUNT"

# --- the agent reads through a permit ---
as_agent cat "$KH_MOUNT/aws/db" >/dev/null 2>&1 && die "cat without a permit was not denied"
step "6. the agent's cat of aws/db without a permit was denied: $(agent_reason "$KH_MOUNT/aws/db")"

permit=$(kh_request_tool demo.deploy) || die "no permit for demo.deploy"
jti=$(basename "$permit")
step "7. the agent holds permit $jti for demo.deploy, granting aws/db and vault/db_password"

value=$(fed_read "$permit" "$KH_MOUNT/aws/db")
[ "$value" = "$aws_value" ] || die "cat aws/db returned \"$value\""
step "8. AWS web identity: keyhole exec --permit ... -- cat $KH_MOUNT/aws/db printed: $value"
fed_mock_call "$aws_url/_aws/calls" >"$out/aws-calls.json" ||
	die "cannot read the AWS mock's call log"
sts='[c for c in d if c["service"] == "sts"][-1]'
sm='[c for c in d if c["service"] == "secretsmanager"][-1]'
detail "the mock STS got AssumeRoleWithWebIdentity with:"
detail "  RoleSessionName $(json_get "$out/aws-calls.json" "$sts[\"role_session_name\"]")"
detail "  DurationSeconds $(json_get "$out/aws-calls.json" "$sts[\"duration_seconds\"]")"
detail "  session policy Resource $(json_get "$out/aws-calls.json" \
	"json.loads($sts[\"policy\"])[\"Statement\"][0][\"Resource\"]")"
detail "  a JWT verified against jwks.json: alg $(json_get "$out/aws-calls.json" "$sts[\"alg\"]"), kid $(json_get "$out/aws-calls.json" "$sts[\"kid\"]")"
detail "    iss $(json_get "$out/aws-calls.json" "$sts[\"iss\"]")"
detail "    sub $(json_get "$out/aws-calls.json" "$sts[\"sub\"]")"
detail "    aud $(json_get "$out/aws-calls.json" "$sts[\"aud\"]")"
detail "    permit_jti $(json_get "$out/aws-calls.json" "$sts[\"permit_jti\"]")"
detail "the mock Secrets Manager checked SigV4 with the temporary key: $(json_get "$out/aws-calls.json" "$sm[\"result\"]")"

value=$(fed_read "$permit" "$KH_MOUNT/vault/db_password")
[ "$value" = "$vault_value" ] || die "cat vault/db_password returned \"$value\""
step "9. Vault JWT: keyhole exec --permit ... -- cat $KH_MOUNT/vault/db_password printed: $value"
login=$(grep '"type":"login"' "$KH_TMP/vault-audit.jsonl" | tail -n 1)
detail "the mock Vault logged in role $(printf '%s' "$login" | json_get - 'd["role"]') with a JWT verified against jwks.json:"
detail "    iss $(printf '%s' "$login" | json_get - 'd["iss"]')"
detail "    sub $(printf '%s' "$login" | json_get - 'd["sub"]')"
detail "    aud $(printf '%s' "$login" | json_get - 'd["aud"]')"
detail "    permit_jti $(printf '%s' "$login" | json_get - 'd["permit_jti"]')"
detail "requests the mock Vault saw: $(fed_mock_count "$vault_url" "POST /v1/auth/jwt/login") login," \
	"$(fed_mock_count "$vault_url" "GET /v1/secret/data/demo/db") KV v2 read," \
	"$(fed_mock_count "$vault_url" "POST /v1/auth/token/revoke-self") revoke-self of the login token"

# --- the DPR log ---
kh_stop
step "10. keyhole audit show --jti $jti: the decision and each read are DPR records:"
"$KEYHOLE" audit show --dir "$KH_AUDIT" --jti "$jti" >"$out/show.out" 2>&1 ||
	die "keyhole audit show failed: $(cat "$out/show.out")"
while IFS= read -r line; do
	detail "$line"
done <"$out/show.out"
result=$("$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$KH_KEYS/audit.pub.jwk" 2>&1) ||
	die "keyhole audit verify failed: $result"
step "11. keyhole audit verify: $result"
