#!/bin/sh
# Backends as modules, seen through the mount and the CLI. The file
# module serves "<name>#<field>" paths. A grant of a whole secret covers
# its fields, while a grant of one field covers only that field. A fetch
# failure reaches the agent and the DPR with its reason. `keyhole backend
# list | test | external-id` report on the configured backends.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support

password="pw-$(kh_random_hex)"
kh_secret db "{\"user\":\"app\",\"password\":\"$password\",\"port\":5432}"
kh_write_policy "$(kh_agent_rule whole db.whole db 60 10)" \
	"$(kh_agent_rule field db.field 'db#password' 60 10)"
kh_start || kh_abort setup "keyholed did not start"

db="$KH_MOUNT/local/db"
whole=$(kh_request_tool db.whole) || kh_abort setup "no permit for db.whole"
field=$(kh_request_tool db.field) || kh_abort setup "no permit for db.field"

# probe PERMIT PATH: what probe.py prints when the agent reads PATH.
probe() {
	kh_probe_with "$1" read "$2"
}

check_equal whole_grant_reads_field "$(probe "$whole" "$db#password")" \
	"$(kh_probe_output "$password")"
check_equal whole_grant_reads_other_field "$(probe "$whole" "$db#user")" \
	"$(kh_probe_output app)"
check_equal number_field_as_json "$(probe "$whole" "$db#port")" \
	"$(kh_probe_output 5432)"
check_equal field_grant_reads_its_field "$(probe "$field" "$db#password")" \
	"$(kh_probe_output "$password")"
check_equal field_grant_denies_other_field "$(probe "$field" "$db#user")" \
	"error EACCES"
check_equal field_grant_reason "$(agent_reason "$db#user")" \
	"secret not granted"
check_equal field_grant_denies_whole "$(probe "$field" "$db")" "error EACCES"

check_equal missing_field_denied "$(probe "$whole" "$db#nope")" "error EACCES"
check_equal missing_field_reason "$(agent_reason "$db#nope")" \
	"backend fetch failed: not found"
check_equal missing_field_dpr_record \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=access outcome=denied \
		secret='local/db#nope' reason='backend fetch failed: not found')" 1
check_equal field_path_in_dpr \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=access outcome=granted \
		secret='local/db#password')" 2

check_equal listing_shows_base_names "$(ls "$KH_MOUNT/local")" "db"
if grep -q "$password" "$KH_LOG" "$KH_AUDIT/dpr.jsonl" "$out"/*.err; then
	fail no_secret_in_logs "the password appears in a log"
else
	pass no_secret_in_logs
fi

list=$("$KEYHOLE" backend list --config "$KH_CONFIG" 2>&1)
check_equal backend_list "$(echo "$list" | tr -s ' ')" "local file"
"$KEYHOLE" backend test --config "$KH_CONFIG" local >"$out/test.out" 2>&1
check_equal backend_test_status "$?" 0
check_equal backend_test_output "$(tail -n 1 "$out/test.out")" \
	"backend local: ok"
"$KEYHOLE" backend external-id --config "$KH_CONFIG" local \
	>"$out/extid.out" 2>&1
check_equal external_id_none_status "$?" 2
check_equal external_id_none_message \
	"$(grep -c 'uses no ExternalId' "$out/extid.out")" 1
"$KEYHOLE" backend test --config "$KH_CONFIG" nosuch >"$out/nosuch.out" 2>&1
check_equal backend_test_unknown "$?" 2

"$KEYHOLED" --config "$KH_CONFIG" --check-config >"$out/check.out" 2>&1
check_equal check_config_loads_modules "$?" 0

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
