#!/bin/sh
# The two backends that hold a stored service token, doppler and
# 1password, end to end against their loopback mocks. The agent reads
# secrets with an unchanged cat. The token file is read at each fetch,
# so a rotated token works without a restart, and a wrong token ends in
# "auth refused". A token file that group or others can read stops the
# broker from starting, with a message naming the file, its mode and
# the fix.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"
. "$KH_ROOT/tests/support/fed_lib.sh"

fed_setup

doppler_token="dp.st.dev.$(kh_random_hex)"
connect_token="ops_$(kh_random_hex)"
db_url="postgres://app:$(kh_random_hex)@db/app"
op_password="op-$(kh_random_hex)"
op_api_key="key-$(kh_random_hex)"
vault_id=vaulttestaaaaaaaaaaaaaaaaa
item_id=itemtestbbbbbbbbbbbbbbbbbb

install -d -m 0700 "$KH_TMP/tokens"
(umask 077 && printf '%s\n' "$doppler_token" >"$KH_TMP/tokens/doppler" &&
	printf '%s' "$connect_token" >"$KH_TMP/tokens/1password" &&
	printf 'dp.st.dev.wrong\n' >"$KH_TMP/tokens/wrong")

cat >"$KH_TMP/doppler.json" <<JSON
{
  "tokens": {"$doppler_token": {"project": "backend", "config": "prd"}},
  "secrets": {"backend": {"prd": {
    "DATABASE_URL": {"raw": "\${DB_URL}", "computed": "$db_url"}
  }}}
}
JSON
cat >"$KH_TMP/onepassword.json" <<JSON
{
  "tokens": {"$connect_token": ["$vault_id"]},
  "vaults": {"$vault_id": {"name": "Agents", "items": {"$item_id": {
    "title": "payments", "fields": [
      {"id": "username", "type": "STRING", "purpose": "USERNAME", "label": "username", "value": "svc"},
      {"id": "password", "type": "CONCEALED", "purpose": "PASSWORD", "label": "password", "value": "$op_password"},
      {"id": "k3yfield", "type": "CONCEALED", "label": "api key", "value": "$op_api_key"}
    ]}}}}
}
JSON
fed_mock_start doppler "$KH_TMP/doppler.json"
doppler_url=$FED_URL
fed_mock_start onepassword "$KH_TMP/onepassword.json"
connect_url=$FED_URL

doppler_backend() {
	cat <<JSON
{"type": "doppler", "token_file": "$1", "api": "$doppler_url",
 "project": "backend", "config": "prd", "secrets": ["DATABASE_URL"],
 "ca_file": "ca/ca.pem"}
JSON
}
fed_add_backend doppler "$(doppler_backend tokens/doppler)"
fed_add_backend doppler_wrong "$(doppler_backend tokens/wrong)"
fed_add_backend onepass "{\"type\": \"1password\", \"token_file\": \"tokens/1password\",
 \"connect_url\": \"$connect_url\", \"vault_id\": \"$vault_id\", \"ca_file\": \"ca/ca.pem\",
 \"items\": {\"payments\": {\"item_id\": \"$item_id\", \"field\": \"password\"},
             \"payments_api\": {\"item_id\": \"$item_id\", \"field\": \"api key\"},
             \"payments_otp\": {\"item_id\": \"$item_id\", \"field\": \"otp\"}}}"
kh_write_policy \
	"$(fed_rule read-static static.read '"doppler/DATABASE_URL", "doppler_wrong/DATABASE_URL", "onepass/payments", "onepass/payments_api", "onepass/payments_otp"')"

# A token file that others can read stops the broker before it starts.
chmod 0644 "$KH_TMP/tokens/doppler"
"$KEYHOLED" --check-config --config "$KH_CONFIG" >"$out/check.out" 2>&1
check_equal open_token_file_rejected "$?" 2
check_contains open_token_file_message "$(cat "$out/check.out")" \
	"$KH_TMP/tokens/doppler has mode 0644"
check_contains open_token_file_fix "$(cat "$out/check.out")" "chmod 600"
chmod 0600 "$KH_TMP/tokens/doppler"

# A user name and password in a backend URL would put a credential in
# keyhole.json, so the URL is rejected before the broker starts.
"$KH_PYTHON" -I - "$KH_CONFIG" "$KH_TMP/userinfo.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["backends"]["doppler"]["api"] = "https://user:pw@127.0.0.1:1"
json.dump(config, open(sys.argv[2], "w"))
PY
"$KEYHOLED" --check-config --config "$KH_TMP/userinfo.json" >"$out/userinfo.out" 2>&1
check_equal url_userinfo_rejected "$?" 2
check_contains url_userinfo_message "$(cat "$out/userinfo.out")" \
	"without a query or user name"
rm -f "$KH_TMP/userinfo.json"

kh_start || kh_abort setup "keyholed did not start"
permit=$(kh_request_tool static.read) || kh_abort permit "no permit for static.read"

check_equal doppler_computed_read "$(fed_read "$permit" "$KH_MOUNT/doppler/DATABASE_URL")" \
	"$db_url"
check_equal onepassword_label_read "$(fed_read "$permit" "$KH_MOUNT/onepass/payments")" \
	"$op_password"
check_equal onepassword_spaced_label_read \
	"$(fed_read "$permit" "$KH_MOUNT/onepass/payments_api")" "$op_api_key"
check_equal onepassword_missing_field_eacces \
	"$(fed_probe "$permit" "$KH_MOUNT/onepass/payments_otp")" "error EACCES"
check_equal onepassword_missing_field_reason \
	"$(agent_reason "$KH_MOUNT/onepass/payments_otp")" "backend fetch failed: not found"

check_equal doppler_wrong_token_eacces \
	"$(fed_probe "$permit" "$KH_MOUNT/doppler_wrong/DATABASE_URL")" "error EACCES"
check_equal doppler_wrong_token_reason \
	"$(agent_reason "$KH_MOUNT/doppler_wrong/DATABASE_URL")" "backend fetch failed: auth refused"
check_contains doppler_wrong_token_logged "$(cat "$KH_LOG")" \
	"auth refused: Doppler read at $doppler_url/v3/configs/config/secret?project=backend&config=prd&name=DATABASE_URL returned 401 Invalid Auth token"

# The token is read at each fetch: a replaced file takes effect at once.
(umask 077 && printf 'ops_revoked\n' >"$KH_TMP/tokens/1password.new") &&
	mv "$KH_TMP/tokens/1password.new" "$KH_TMP/tokens/1password"
check_equal rotated_out_token_eacces "$(fed_probe "$permit" "$KH_MOUNT/onepass/payments")" \
	"error EACCES"
(umask 077 && printf '%s\n' "$connect_token" >"$KH_TMP/tokens/1password.new") &&
	mv "$KH_TMP/tokens/1password.new" "$KH_TMP/tokens/1password"
check_equal rotated_in_token_read "$(fed_read "$permit" "$KH_MOUNT/onepass/payments")" \
	"$op_password"

# The mode is checked at each fetch too.
chmod 0640 "$KH_TMP/tokens/1password"
check_equal loosened_token_file_eacces "$(fed_probe "$permit" "$KH_MOUNT/onepass/payments")" \
	"error EACCES"
chmod 0600 "$KH_TMP/tokens/1password"

"$KEYHOLE" backend list --config "$KH_CONFIG" >"$out/list.out" 2>&1
check_equal backend_list_status "$?" 0
check_contains backend_list_marks_doppler "$(grep '^doppler ' "$out/list.out")" \
	"static credential"
check_contains backend_list_marks_1password "$(grep '^onepass ' "$out/list.out")" \
	"static credential"
"$KEYHOLE" backend test --config "$KH_CONFIG" onepass >"$out/test.out" 2>&1
check_equal backend_test_status "$?" 0
check_contains backend_test_vault "$(cat "$out/test.out")" "ok: vault Agents"

fed_no_leak log_has_no_secret "$doppler_token" "$connect_token" "$db_url" \
	"$op_password" "$op_api_key"
kh_check_daemon_log daemon_log_clean
