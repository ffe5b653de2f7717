#!/bin/sh
# keyhole doctor against a real keyholed: every check passes on a
# healthy setup, then one thing at a time is broken and exactly its
# check turns to fail (or warn), with exit status 1 for a failure.
# Not covered: the "clock sync" warning cannot be forced without
# changing the host's clock, so the test only requires that line to be
# pass or warn. The "clock order" failure would need a log record from
# the future, which only keyholed can sign.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup

kh_write_policy "$(kh_agent_rule doctor-tool doctor.tool doctor_key 60 1)"
kh_secret doctor_key "doctor-$(kh_random_hex)"
kh_start || kh_abort setup "keyholed did not start"

# Three decision records, so that the tail has records to verify.
for i in 1 2 3; do
	kh_request_tool doctor.tool >/dev/null ||
		kh_abort setup "request $i was not permitted"
done

# doctor NAME [OPTION...]: runs keyhole doctor on the test config into
# $out/NAME.out and sets status to its exit status.
doctor() {
	name=$1
	shift
	"$KEYHOLE" doctor --config "$KH_CONFIG" "$@" >"$out/$name.out" \
		2>"$out/$name.err"
	status=$?
}

# failed_checks NAME: the check names of the fail lines, space-separated.
failed_checks() {
	sed -n 's/^fail  \([^:]*\):.*/\1/p' "$out/$1.out" | tr '\n' ' ' |
		sed 's/ $//'
}

# line_of NAME CHECK: the output line of CHECK and the line after it.
line_of() {
	grep -A1 "^[a-z]*  $2:" "$out/$1.out"
}

# 1: a healthy setup.
doctor healthy
check_equal healthy_exit_status "$status" 0
check_equal healthy_no_failure "$(failed_checks healthy)" ""
for check in config policy socket permits_dir "permit key" \
	"permit public key" "audit key" "audit public key" \
	"retired audit keys" mount dpr \
	"clock order" "backend local" seccomp "confine agent" \
	"confine strict"; do
	check_contains "healthy_passes_$(echo "$check" | tr ' ' _)" \
		"$(line_of healthy "$check")" "pass  $check:"
done
check_contains healthy_dpr_counts_records "$(line_of healthy dpr)" \
	"seq 1 to "
check_contains healthy_summary "$(tail -n 1 "$out/healthy.out")" \
	" warnings, 0 failed"
case $(line_of healthy "clock sync") in
"pass  clock sync:"* | "warn  clock sync:"*) pass clock_sync_reported ;;
*) fail clock_sync_reported "no clock sync line: $(cat "$out/healthy.out")" ;;
esac

# Doctor prints paths, modes and kids, never the private keys' "d".
leak=
for key in permit audit; do
	d=$(sed -n 's/.*"d":"\([^"]*\)".*/\1/p' "$KH_KEYS/$key.jwk")
	[ -n "$d" ] || kh_abort setup "no d member in $key.jwk"
	if grep -qF "$d" "$out/healthy.out" "$out/healthy.err"; then
		leak="$leak $key"
	fi
done
check_equal healthy_prints_no_key_material "$leak" ""

# 2: --no-backends skips the round trips with a warning.
doctor no_backends --no-backends
check_equal no_backends_exit_status "$status" 0
check_contains no_backends_warns "$(line_of no_backends backends)" \
	"warn  backends: skipped"

# 3: a private key readable by others.
chmod 0644 "$KH_KEYS/permit.jwk"
doctor key_mode
chmod 0600 "$KH_KEYS/permit.jwk"
check_equal key_mode_exit_status "$status" 1
check_equal key_mode_only_key_fails "$(failed_checks key_mode)" "permit key"
check_contains key_mode_names_mode "$(line_of key_mode "permit key")" \
	"has mode 0644"
check_contains key_mode_gives_fix "$(line_of key_mode "permit key")" \
	"fix: chmod 0600 $KH_KEYS/permit.jwk"

# 4: a private key reached through a symbolic link.
mv "$KH_KEYS/audit.jwk" "$KH_KEYS/audit.real.jwk"
ln -s audit.real.jwk "$KH_KEYS/audit.jwk"
doctor key_link
rm "$KH_KEYS/audit.jwk"
mv "$KH_KEYS/audit.real.jwk" "$KH_KEYS/audit.jwk"
check_equal key_link_exit_status "$status" 1
check_equal key_link_only_key_fails "$(failed_checks key_link)" "audit key"
check_contains key_link_says_link "$(line_of key_link "audit key")" \
	"symbolic link"

# 5: one record in the tail changed after it was signed.
dpr="$KH_AUDIT/dpr.jsonl"
cp "$dpr" "$out/dpr.backup"
records=$(wc -l <"$dpr")
kh_json tamper "$dpr" 3 reason
doctor tampered
tampered_status=$status
doctor tampered_short_tail --tail $((records - 3))
cat "$out/dpr.backup" >"$dpr"
check_equal tampered_exit_status "$tampered_status" 1
check_equal short_tail_exit_status "$status" 0
check_equal tampered_only_dpr_fails "$(failed_checks tampered)" dpr
check_contains tampered_names_seq "$(line_of tampered dpr)" \
	"first bad record is seq 3 "
check_contains tampered_gives_fix "$(line_of tampered dpr)" \
	"fix: keep the log as evidence and run keyhole audit verify"
check_contains tail_excludes_tampered "$(line_of tampered_short_tail dpr)" \
	"pass  dpr: last $((records - 3)) records verify (seq 4 to $records)"
doctor restored
check_equal restored_log_passes "$(failed_checks restored)" ""

# 6: a policy with a syntax error, reported with its line.
cp "$KH_POLICY" "$out/policy.backup"
printf '{\n  "tenant": "demo",\n  "env": "dev",,\n' >"$KH_POLICY"
doctor policy_syntax
cp "$out/policy.backup" "$KH_POLICY"
check_equal policy_syntax_exit_status "$status" 1
check_equal policy_syntax_only_policy_fails "$(failed_checks policy_syntax)" \
	policy
check_contains policy_syntax_names_line "$(line_of policy_syntax policy)" \
	"fail  policy: $KH_POLICY: invalid JSON: \$ (line 3,"

# 7: a backend whose type has no module.
cp "$KH_CONFIG" "$out/config.backup"
sed 's|"local": {"type": "file", "dir": "credstore"}|&,\n    "bogus": {"type": "nosuchtype"}|' \
	"$out/config.backup" >"$KH_CONFIG"
doctor backend_type
cp "$out/config.backup" "$KH_CONFIG"
check_equal backend_type_exit_status "$status" 1
check_equal backend_type_only_backend_fails "$(failed_checks backend_type)" \
	"backend bogus"
check_contains backend_type_names_module "$(line_of backend_type "backend bogus")" \
	nosuchtype
check_contains backend_type_local_passes "$(line_of backend_type "backend local")" \
	"pass  backend local:"

# 8: usage errors exit 2 and run no check.
doctor tail_zero --tail 0
check_equal tail_zero_exit_status "$status" 2
doctor operand extra
check_equal operand_exit_status "$status" 2
check_equal usage_prints_no_check "$(cat "$out/tail_zero.out" "$out/operand.out")" ""

# 9: a config that does not exist.
"$KEYHOLE" doctor --config "$KH_TMP/missing.json" >"$out/missing.out" 2>&1
check_equal missing_config_exit_status "$?" 1
check_equal missing_config_fails_config "$(failed_checks missing)" config

# 10: the broker stopped: socket and mount fail, files still pass.
kh_stop
doctor stopped
check_equal stopped_exit_status "$status" 1
check_equal stopped_fails_socket_and_mount "$(failed_checks stopped)" \
	"socket mount"
check_contains stopped_socket_fix "$(line_of stopped socket)" \
	"fix: systemctl start keyholed"
check_contains stopped_mount_fix "$(line_of stopped mount)" \
	"fix: systemctl start keyholed"
check_contains stopped_dpr_passes "$(line_of stopped dpr)" "pass  dpr:"

# A SANITIZE=1 build reports leaks and undefined behaviour on stderr.
if grep -l 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' \
	"$out"/*.err >"$out/sanitizer.list" 2>/dev/null; then
	fail doctor_sanitizer_clean "reports in: $(cat "$out/sanitizer.list")"
else
	pass doctor_sanitizer_clean
fi

exit "$KH_FAILED"
