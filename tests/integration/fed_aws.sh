#!/bin/sh
# The aws backend end to end against the loopback STS, Secrets Manager
# and IMDSv2 mock (tests/mocks/aws.js). The mock verifies the broker's
# JWTs with jose against the exported JWKS and its SigV4 signatures with
# aws4, an implementation other than curl's. Covered: web identity into
# Secrets Manager (SecretString and SecretBinary), and assume_role with
# the ExternalId through the IMDS mock. An unchanged tool reads the
# aws_credentials kind through AWS_SHARED_CREDENTIALS_FILE, and the
# session policy limits what those credentials read. Failures: wrong
# ExternalId, missing secret, throttling then success. Key rotation
# keeps the old kid published.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"
. "$KH_ROOT/tests/support/fed_lib.sh"

fed_setup

account=123456789012
arn_prefix="arn:aws:secretsmanager:us-east-1:$account:secret"
arn_db="$arn_prefix:app/db-AbCdEf"
arn_bin="$arn_prefix:app/bin-GhIjKl"
arn_api="$arn_prefix:app/api-MnOpQr"
arn_other="$arn_prefix:other-StUvWx"
arn_missing="$arn_prefix:missing-YzAbCd"
role_web="arn:aws:iam::$account:role/keyhole-web"
role_assume="arn:aws:iam::$account:role/keyhole-assume"

db_value="db-$(kh_random_hex)"
api_value="api-$(kh_random_hex)"
other_value="other-$(kh_random_hex)"
bin_value="bin-$(kh_random_hex)"
bin_b64=$(printf '%s' "$bin_value" | base64 -w0)
imds_key_id="AKIAIMDS$(kh_random_hex | tr 'a-f' 'A-F' | cut -c1-12)"
imds_secret="imds-$(kh_random_hex)"
imds_token="imdstoken$(kh_random_hex)"

# aws_backend MODE ROLE KIND ARNS [EXTRA]: one backend's JSON.
aws_backend() {
	cat <<JSON
{"type": "aws", "mode": "$1", "role_arn": "$2", "region": "us-east-1",
 "kind": "$3", "secret_arns": {$4},
 "sts_endpoint": "${sts_url:-https://127.0.0.1:1}",
 "endpoint": "${sts_url:-https://127.0.0.1:1}",
 "imds_endpoint": "${imds_url:-http://127.0.0.1:1}",
 ${5:-} "ca_file": "ca/ca.pem"}
JSON
}

add_backends() {
	fed_add_backend aws "$(aws_backend web_identity "$role_web" secrets_manager \
		"\"db\": \"$arn_db\", \"bin\": \"$arn_bin\", \"missing\": \"$arn_missing\"")"
	fed_add_backend aws_role "$(aws_backend assume_role "$role_assume" secrets_manager \
		"\"db\": \"$arn_db\"")"
	fed_add_backend aws_badext "$(aws_backend assume_role "$role_assume" secrets_manager \
		"\"db\": \"$arn_db\"" '"external_id": "keyhole-not-the-tenants-id",')"
	fed_add_backend aws_creds "$(aws_backend web_identity "$role_web" aws_credentials \
		"\"db\": \"$arn_db\", \"api\": \"$arn_api\"")"
}

# The ExternalId comes from the broker's identity and the backend name,
# so the customer's trust policy (here the mock's role) is written from
# what `keyhole backend external-id` prints.
add_backends
external_id=$("$KEYHOLE" backend external-id --config "$KH_CONFIG" aws_role 2>"$out/extid.err")
check_contains external_id_printed "$external_id" "keyhole-"
check_equal external_id_stable \
	"$("$KEYHOLE" backend external-id --config "$KH_CONFIG" aws_role 2>/dev/null)" \
	"$external_id"
other_id=$("$KEYHOLE" backend external-id --config "$KH_CONFIG" aws_badext 2>/dev/null)
check_equal external_id_override "$other_id" keyhole-not-the-tenants-id

cat >"$KH_TMP/aws.json" <<JSON
{
  "region": "us-east-1",
  "issuer": "$FED_ISSUER",
  "audience": "sts.amazonaws.com",
  "jwks": "$FED_JWKS",
  "roles": {
    "$role_web": {"web_identity": true, "subject": "$FED_SUB"},
    "$role_assume": {"external_id": "$external_id"}
  },
  "imds": {"role": "keyhole-host", "access_key_id": "$imds_key_id",
           "secret_access_key": "$imds_secret", "token": "$imds_token"},
  "secrets": {
    "$arn_db": {"string": "$db_value"},
    "$arn_bin": {"binary": "$bin_b64"},
    "$arn_api": {"string": "$api_value"},
    "$arn_other": {"string": "$other_value"}
  }
}
JSON
fed_mock_start aws "$KH_TMP/aws.json"
sts_url=$FED_URL
imds_url="http://127.0.0.1:$(cat "$fed_port_file.imds")"
add_backends

kh_write_policy \
	"$(fed_rule read-aws aws.read '"aws/db", "aws/bin", "aws/missing"')" \
	"$(fed_rule read-role aws.role '"aws_role/db", "aws_badext/db"')" \
	"$(fed_rule read-creds aws.creds '"aws_creds/credentials"')"
kh_start || kh_abort setup "keyholed did not start"

calls() {
	fed_mock_call "$sts_url/_aws/calls"
}

# last_call SERVICE FIELD: FIELD of the mock's last call to SERVICE.
last_call() {
	calls | "$KH_PYTHON" -I -c '
import json, sys
calls = [c for c in json.load(sys.stdin) if c["service"] == sys.argv[1]]
print(calls[-1].get(sys.argv[2]) if calls else "")' "$1" "$2"
}

# --- web identity into Secrets Manager ---
permit=$(kh_request_tool aws.read) || kh_abort permit "no permit for aws.read"
jti=$(basename "$permit")
check_equal web_identity_string "$(fed_read "$permit" "$KH_MOUNT/aws/db")" "$db_value"
check_equal web_identity_session_name "$(last_call sts role_session_name)" \
	"$(printf 'keyhole-%s' "$jti" | cut -c1-64)"
check_equal web_identity_permit_jti "$(last_call sts permit_jti)" "$jti"
check_equal web_identity_duration "$(last_call sts duration_seconds)" 900
check_equal web_identity_unsigned "$(last_call sts signed)" False
check_equal session_policy_one_arn "$(last_call sts policy | "$KH_PYTHON" -I -c '
import json, sys
print(json.load(sys.stdin)["Statement"][0]["Resource"])')" "['$arn_db']"
check_equal secrets_manager_signed_read "$(last_call secretsmanager result)" ok
check_equal web_identity_binary "$(fed_read "$permit" "$KH_MOUNT/aws/bin")" "$bin_value"
check_equal jwt_kid_is_current "$(last_call sts kid)" \
	"$("$KH_PYTHON" -I -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][0]["kid"])' "$FED_JWKS")"

# --- failures ---
check_equal missing_secret_eacces "$(fed_probe "$permit" "$KH_MOUNT/aws/missing")" \
	"error EACCES"
check_equal missing_secret_reason "$(agent_reason "$KH_MOUNT/aws/missing")" \
	"backend fetch failed: not found"
check_equal missing_secret_mock_reply "$(last_call secretsmanager result)" \
	ResourceNotFoundException

fed_mock_call "$sts_url/_aws/throttle" -X POST \
	-d "{\"arn\": \"$arn_db\", \"count\": 1}" >/dev/null
check_equal throttled_then_read "$(fed_read "$permit" "$KH_MOUNT/aws/db")" "$db_value"
check_equal throttled_seen "$(calls | "$KH_PYTHON" -I -c '
import json, sys
print([c.get("result") for c in json.load(sys.stdin)
       if c["service"] == "secretsmanager"][-2:])')" "['ThrottlingException', 'ok']"

# A 400 ThrottlingException that follows the HTTP layer's own retries of
# 5xx counts against the same bound of 3 attempts.
sm_attempts() {
	fed_mock_call "$sts_url/_mock/log" | "$KH_PYTHON" -I -c '
import json, sys
print(sum(1 for e in json.load(sys.stdin)
          if e["target"] == "secretsmanager.GetSecretValue"))'
}
before=$(sm_attempts)
fed_plan "$sts_url" secretsmanager.GetSecretValue 500 500 400
check_equal mixed_throttle_eacces "$(fed_probe "$permit" "$KH_MOUNT/aws/db")" \
	"error EACCES"
check_equal mixed_throttle_reason "$(agent_reason "$KH_MOUNT/aws/db")" \
	"backend fetch failed: throttled"
check_equal mixed_throttle_three_attempts "$(($(sm_attempts) - before))" 3

# --- assume_role: ambient identity from IMDSv2, ExternalId, SigV4 ---
permit=$(kh_request_tool aws.role) || kh_abort permit "no permit for aws.role"
check_equal assume_role_read "$(fed_read "$permit" "$KH_MOUNT/aws_role/db")" "$db_value"
check_equal assume_role_external_id "$(last_call sts external_id)" "$external_id"
check_equal assume_role_signed "$(last_call sts signed)" True
check_equal assume_role_result "$(last_call sts result)" ok
check_equal imds_token_first "$(calls | "$KH_PYTHON" -I -c '
import json, sys
print([c["method"] for c in json.load(sys.stdin) if c["service"] == "imds"][:3])')" \
	"['PUT', 'GET', 'GET']"

check_equal wrong_external_id_eacces "$(fed_probe "$permit" "$KH_MOUNT/aws_badext/db")" \
	"error EACCES"
check_equal wrong_external_id_reason "$(agent_reason "$KH_MOUNT/aws_badext/db")" \
	"backend fetch failed: auth refused"
check_contains wrong_external_id_logged "$(cat "$KH_LOG")" \
	"auth refused: sts AssumeRole at $sts_url/ returned 403 AccessDenied"

"$KEYHOLE" backend test --config "$KH_CONFIG" aws_role >"$out/test.out" 2>&1
check_equal backend_test_status "$?" 0
check_contains backend_test_imds "$(cat "$out/test.out")" "from IMDSv2 at $imds_url"
check_contains backend_test_sts "$(cat "$out/test.out")" "sts AssumeRole at"
check_equal backend_test_no_secret_read "$(last_call secretsmanager result)" ok

# --- aws_credentials: an unchanged tool reads the shared credentials file ---
permit=$(kh_request_tool aws.creds) || kh_abort permit "no permit for aws.creds"
as_agent "$KEYHOLE" exec --permit "$permit" -- env \
	AWS_SHARED_CREDENTIALS_FILE="$KH_MOUNT/aws_creds/credentials" \
	"$KH_PYTHON" -I -c '
import configparser, os
c = configparser.ConfigParser()
c.read_file(open(os.environ["AWS_SHARED_CREDENTIALS_FILE"]))
d = c["default"]
print(d["aws_access_key_id"], d["aws_secret_access_key"], d["aws_session_token"])
' >"$out/creds.out" 2>>"$out/creds.err"
read -r tmp_key tmp_secret tmp_token <"$out/creds.out"
check_contains credentials_file_read "$tmp_key" ASIA
check_equal credentials_policy_arns "$(last_call sts policy | "$KH_PYTHON" -I -c '
import json, sys
print(sorted(json.load(sys.stdin)["Statement"][0]["Resource"]))')" \
	"$("$KH_PYTHON" -I -c 'import sys; print(sorted(sys.argv[1:]))' "$arn_db" "$arn_api")"

# curl signs with its own SigV4; the mock checks it with aws4.
get_secret() {
	curl -sS --cacert "$FED_CA/ca.pem" --aws-sigv4 "aws:amz:us-east-1:secretsmanager" \
		--user "$tmp_key:$tmp_secret" -H "X-Amz-Security-Token: $tmp_token" \
		-H "X-Amz-Target: secretsmanager.GetSecretValue" \
		-H "Content-Type: application/x-amz-json-1.1" \
		-d "{\"SecretId\": \"$1\"}" "$sts_url/" |
		"$KH_PYTHON" -I -c 'import json,sys; d=json.load(sys.stdin); print(d.get("SecretString", d.get("__type")))'
}
check_equal credentials_read_granted "$(get_secret "$arn_api")" "$api_value"
check_equal credentials_scoped_to_grant "$(get_secret "$arn_other")" AccessDeniedException

# --- rotation: the old kid stays published and the new key works ---
old_kid=$(last_call sts kid)
kh_stop
"$KEYHOLE" keygen --federation --rotate --out "$KH_KEYS/federation.pem" \
	>"$out/rotate.out" 2>&1
check_equal rotate_status "$?" 0
"$KEYHOLE" oidc export --issuer "$FED_ISSUER" --dir "$KH_TMP/oidc" \
	--key "$KH_KEYS/federation.pem" >"$out/export2.out" 2>&1
kids=$("$KH_PYTHON" -I -c '
import json, sys
print(" ".join(k["kid"] for k in json.load(open(sys.argv[1]))["keys"]))' "$FED_JWKS")
check_contains rotated_old_kid_published "$kids" "$old_kid"
new_kid=${kids%% *}
[ "$new_kid" != "$old_kid" ] && pass rotated_new_kid_first ||
	fail rotated_new_kid_first "jwks.json starts with the old kid $old_kid"
kh_start || kh_abort setup "keyholed did not restart after rotation"
permit=$(kh_request_tool aws.read) || kh_abort permit "no permit for aws.read"
check_equal rotated_key_read "$(fed_read "$permit" "$KH_MOUNT/aws/db")" "$db_value"
check_equal rotated_key_kid "$(last_call sts kid)" "$new_kid"

fed_no_leak log_has_no_secret "$db_value" "$bin_value" "$api_value" \
	"$imds_secret" "$imds_token" "$tmp_secret" "$tmp_token" "eyJ"
kh_check_daemon_log daemon_log_clean
