#!/bin/sh
# The config's admin_group: members of that group may revoke any
# permit, like root.
# - keyholed --check-config accepts an existing group and reports one
#   that does not exist, naming it and the fix;
# - a member revokes a permit of another uid, and the DPR revoke record
#   names the member's uid in by.uid;
# - a non-member is denied with a reason that names the group and how
#   to join it, and so is a member whose process dropped the group,
#   because membership comes from the kernel (SO_PEERGROUPS);
# - after the group is deleted, a SIGHUP reload leaves no admin group.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

admin_group="khadmin-$$"
made_group=

admin_cleanup() {
	kh_cleanup
	[ -n "$made_group" ] && groupdel "$admin_group" 2>/dev/null
}

kh_test_setup
trap admin_cleanup EXIT INT TERM

if getent group "$admin_group" >/dev/null; then
	kh_abort setup "group $admin_group exists already"
fi
groupadd "$admin_group" || kh_abort setup "groupadd $admin_group failed"
made_group=1
kh_make_user khadm -G "$admin_group"
admin_user=$KH_USER
admin_uid=$(id -u "$admin_user")

# as_admin COMMAND...: runs COMMAND as the member, with its groups.
as_admin() {
	setpriv --reuid "$admin_user" --regid "$admin_user" --init-groups -- "$@"
}

# as_admin_no_groups COMMAND...: the member with its supplementary
# groups dropped, as a process may do.
as_admin_no_groups() {
	setpriv --reuid "$admin_user" --regid "$admin_user" --clear-groups -- "$@"
}

# revoke_as NAME RUNNER JTI: runs keyhole revoke through RUNNER (as_admin,
# as_other, ...), with its output in $out/NAME.out; sets status.
revoke_as() {
	"$2" "$KEYHOLE" revoke --socket "$KH_SOCKET" -- "$3" >"$out/$1.out" 2>&1
	status=$?
}

sed "s|\"env\": \"dev\",|\"env\": \"dev\",\n  \"admin_group\": \"$admin_group\",|" \
	"$KH_CONFIG" >"$KH_TMP/config.new" && mv "$KH_TMP/config.new" "$KH_CONFIG"
kh_test_secret admin_key sk_admin_group_
kh_write_policy "$(kh_agent_rule admin-group admin.group admin_key 120 5)"

# --- --check-config.

"$KEYHOLED" --check-config --config "$KH_CONFIG" >"$out/check.out" 2>&1
check_equal check_config_group_exists "$?" 0
sed "s|\"admin_group\": \"$admin_group\"|\"admin_group\": \"$admin_group-missing\"|" \
	"$KH_CONFIG" >"$KH_TMP/missing-group.json"
"$KEYHOLED" --check-config --config "$KH_TMP/missing-group.json" \
	>"$out/missing.out" 2>&1
check_equal check_config_missing_status "$?" 2
check_contains check_config_missing_names_group "$(cat "$out/missing.out")" \
	"group \"$admin_group-missing\" not found"
check_contains check_config_missing_names_fix "$(cat "$out/missing.out")" \
	"groupadd --system $admin_group-missing"
sed 's|"admin_group": "[^"]*"|"admin_group": 7|' "$KH_CONFIG" \
	>"$KH_TMP/number-group.json"
"$KEYHOLED" --check-config --config "$KH_TMP/number-group.json" \
	>"$out/number.out" 2>&1
check_equal check_config_number_status "$?" 2
check_contains check_config_number_path "$(cat "$out/number.out")" '$.admin_group'

# A daemon whose admin_group does not exist does not start.
"$KEYHOLED" --config "$KH_TMP/missing-group.json" --stderr \
	>"$out/missing-start.out" 2>&1
check_equal start_missing_group_status "$?" 2
check_contains start_missing_group_reason "$(cat "$out/missing-start.out")" \
	"admin_group: group \"$admin_group-missing\" not found"

kh_start || kh_abort setup "keyholed did not start"

# --- A member revokes the agent's permit.

permit=$(kh_request_tool admin.group)
check permit_issued test -f "$permit"
jti=$(basename "$permit")
revoke_as member_revoke as_admin "$jti"
check_equal member_revokes "$status" 0
check revoked_file_removed test ! -e "$permit"
check_equal revoke_record_by_member \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=revoke jti="$jti" by.uid="$admin_uid")" 1
check_contains revoke_logged_by_member "$(cat "$KH_LOG")" \
	"permit revoked: jti=$jti uid=$KH_AGENT_UID by uid=$admin_uid"

# --- Non-members are denied.

permit=$(kh_request_tool admin.group)
jti=$(basename "$permit")
revoke_as other_revoke as_other "$jti"
check_equal non_member_denied_status "$status" 1
check_contains non_member_reason_names_group "$(cat "$out/other_revoke.out")" \
	"member of the admin_group \"$admin_group\""
check_contains non_member_reason_names_fix "$(cat "$out/other_revoke.out")" \
	"usermod -aG $admin_group USER"
revoke_as dropped_revoke as_admin_no_groups "$jti"
check_equal dropped_groups_denied "$status" 1
check permit_still_there test -f "$permit"
check_equal no_revoke_record_for_denials \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=revoke jti="$jti")" 0

# --- Deleting the group and reloading takes the right away.

groupdel "$admin_group" && made_group=
kill -HUP "$KH_DAEMON_PID"
group_error_logged() {
	grep -q "reload: admin_group: group \"$admin_group\" not found" "$KH_LOG"
}
if kh_wait_until 100 group_error_logged; then
	pass reload_logs_missing_group
else
	fail reload_logs_missing_group "no error about the deleted group in the log"
fi
revoke_as deleted_revoke as_admin "$jti"
check_equal deleted_group_denied "$status" 1
check_equal owner_still_revokes \
	"$(as_agent "$KEYHOLE" revoke --socket "$KH_SOCKET" -- "$jti" >/dev/null 2>&1; echo $?)" 0

kh_check_daemon_log no_sanitizer_reports
[ "$KH_FAILED" -eq 0 ]
