#!/bin/sh
# keyholed under the limits of packaging/systemd/keyholed.service.
# systemd is not PID 1 on the test machines, so the test reads the unit
# file and applies the same limits itself. setpriv sets the capability
# bounding set and no_new_privs. tests/support/unit_filter applies
# SystemCallFilter (expanded with systemd-analyze syscall-filter),
# SystemCallErrorNumber, SystemCallArchitectures, RestrictAddressFamilies,
# MemoryDenyWriteExecute and LockPersonality. Under those limits the
# test drives the whole flow:
# - systemd-analyze verify accepts the unit;
# - READY=1 on NOTIFY_SOCKET comes after the broker socket and the FUSE
#   mount exist;
# - a permit request, a secret read through the mount from the file
#   backend and from a loopback Vault mock, and a revoke;
# - SIGHUP sends RELOADING=1 (with MONOTONIC_USEC) and then READY=1;
# - SIGTERM sends STOPPING=1, unmounts and exits 0;
# - keyholed opens no device but /dev/fuse and the pseudo devices that
#   DevicePolicy=closed allows, and execs nothing (no fusermount3);
# - with JOURNAL_STREAM naming stderr, log lines carry "<N>" priorities.
# KH_UNIT_FILE names another unit file to test, such as a copy with a
# setting removed, which must make the test fail.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"
. "$KH_ROOT/tests/support/fed_lib.sh"

unit=${KH_UNIT_FILE:-$KH_ROOT/packaging/systemd/keyholed.service}
filter="$KH_BUILD/tests/support/unit_filter"

fed_setup
[ -f "$unit" ] || kh_abort setup "$unit not found"
[ -x "$filter" ] || kh_abort setup "$filter not built: run make unit"
for tool in systemd-analyze strace setpriv; do
	command -v "$tool" >/dev/null || kh_abort setup "$tool is not installed"
done

# unit_value KEY: every value assigned to KEY in [Service], joined by
# spaces, as systemd merges repeated list settings.
unit_value() {
	awk -v key="$1" '
		/^\[/ { service = ($0 == "[Service]") }
		service && index($0, key "=") == 1 {
			value = value (value == "" ? "" : " ") substr($0, length(key) + 2)
		}
		END { print value }' "$unit"
}

# expand_filter ITEM...: the system call names of a SystemCallFilter
# list, with every @group expanded recursively, one a line.
expand_filter() {
	for item in "$@"; do
		case $item in
		@*)
			systemd-analyze syscall-filter "$item" >"$out/group.txt" ||
				kh_abort setup "systemd-analyze syscall-filter $item failed"
			# Entries are indented, and comments start with '#'.
			expand_filter $(awk 'NR > 1 && $1 !~ /^#/ { print $1 }' \
				"$out/group.txt")
			;;
		*) echo "$item" ;;
		esac
	done
}

# --- What the unit sets.

caps=$(unit_value CapabilityBoundingSet)
calls=$(unit_value SystemCallFilter)
call_errno=$(unit_value SystemCallErrorNumber)
families=$(unit_value RestrictAddressFamilies)
check_equal unit_type_notify "$(unit_value Type)" notify
check_equal unit_no_new_privileges "$(unit_value NoNewPrivileges)" yes
check_equal unit_native_arch "$(unit_value SystemCallArchitectures)" native
check_equal unit_mdwe "$(unit_value MemoryDenyWriteExecute)" yes
check_equal unit_device_policy "$(unit_value DevicePolicy)" closed
check_equal unit_device_allow "$(unit_value DeviceAllow)" "/dev/fuse rw"
# A private mount namespace would hide the FUSE mount from the host.
namespaced=$(grep -E '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|PrivateMounts|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|ReadOnlyPaths|ReadWritePaths|InaccessiblePaths|TemporaryFileSystem|BindPaths|BindReadOnlyPaths|RootDirectory|RootImage|MountAPIVFS)=' "$unit")
check_equal unit_no_mount_namespace "$namespaced" ""

# The flow below, not a list check, proves that the expansion is enough.
# shellcheck disable=SC2086
expand_filter $calls | sort -u >"$KH_TMP/syscalls"
check syscall_list_expanded test "$(wc -l <"$KH_TMP/syscalls")" -gt 100

# setpriv wants "-all,+sys_admin,..." for "CAP_SYS_ADMIN ...".
bounding="-all"
for cap in $caps; do
	bounding="$bounding,+$(printf '%s' "${cap#CAP_}" | tr 'A-Z' 'a-z')"
done
filter_families=$(printf '%s' "$families" | tr ' ' ',')
filter_errno=
[ -n "$call_errno" ] && filter_errno="--errno $call_errno"
personality=
[ "$(unit_value LockPersonality)" = yes ] && personality=--lock-personality

# --- systemd-analyze verify, on a copy whose ExecStart is this build's
# keyholed. The man pages of Documentation= need not be installed here.

mkdir -p "$KH_TMP/verify"
sed "s|^ExecStart=/usr/sbin/keyholed|ExecStart=$KEYHOLED|" "$unit" \
	>"$KH_TMP/verify/keyholed.service"
systemd-analyze verify --man=no "$KH_TMP/verify/keyholed.service" \
	>"$out/verify.out" 2>&1
check_equal verify_status "$?" 0
check_equal verify_output "$(cat "$out/verify.out")" ""

# --- Secrets: one in the file backend, one in the Vault mock.

kh_test_secret sandbox_key sk_sandbox_
vault_password="pw-$(kh_random_hex)"
cat >"$KH_TMP/vault.json" <<JSON
{
  "issuer": "$FED_ISSUER",
  "jwks": "$FED_JWKS",
  "root_token": "root-$(kh_random_hex)",
  "roles": {
    "keyhole": {"bound_audiences": ["vault"], "bound_subject": "$FED_SUB",
                "token_ttl": 300}
  },
  "mounts": {
    "secret": {"type": "kv2", "data": {"app/db": {"password": "$vault_password"}}}
  }
}
JSON
fed_mock_start vault "$KH_TMP/vault.json"
fed_add_backend vault "{\"type\": \"vault\", \"addr\": \"$FED_URL\",
 \"role\": \"keyhole\", \"ca_file\": \"ca/ca.pem\",
 \"secrets\": {\"db_password\": {\"path\": \"app/db\", \"field\": \"password\"}}}"
kh_write_policy "$(kh_agent_rule sandbox-read sandbox.read sandbox_key 120 5)" \
	"$(fed_rule sandbox-vault sandbox.vault '"vault/db_password"')"

# --- Start keyholed under the unit's limits, traced by strace, with a
# listener on NOTIFY_SOCKET.

notify_log="$KH_TMP/notify.log"
: >"$notify_log"
"$KH_PYTHON" -I "$KH_ROOT/tests/support/notify_listener.py" \
	"$KH_TMP/notify.sock" "$notify_log" "$KH_SOCKET" "$KH_MOUNT" \
	2>>"$out/notify.err" &
listener=$!
FED_MOCK_PIDS="$FED_MOCK_PIDS $listener"
kh_wait_until 100 test -S "$KH_TMP/notify.sock" ||
	kh_abort setup "the notify listener did not start: $(cat "$out/notify.err")"

# LeakSanitizer cannot run under ptrace, so a SANITIZE=1 build skips
# only the leak check here; the other broker tests run it.
# shellcheck disable=SC2086
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
NOTIFY_SOCKET="$KH_TMP/notify.sock" strace -f -qq -o "$KH_TMP/strace.out" \
	-e trace=execve,execveat,open,openat,openat2 -e signal=none \
	setpriv --no-new-privs --bounding-set "$bounding" -- \
	"$filter" --syscalls "$KH_TMP/syscalls" $filter_errno \
	--families "$filter_families" --mdwe $personality -- \
	"$KEYHOLED" --config "$KH_CONFIG" --stderr >>"$KH_LOG" 2>&1 &
tracer=$!

# The traced child execs setpriv, unit_filter and keyholed in turn, so
# its pid is keyholed's.
traced_child() {
	KH_DAEMON_PID=$(cat "/proc/$tracer/task/$tracer/children" 2>/dev/null |
		tr -d ' \n')
	[ -n "$KH_DAEMON_PID" ]
}
kh_wait_until 100 traced_child ||
	kh_abort start "keyholed did not start under the unit's limits: $(tail -n 3 "$KH_LOG")"

ready_count() {
	grep -c 'READY=1' "$notify_log"
}
ready_sent() {
	[ "$(ready_count)" -ge 1 ]
}
if ! kh_wait_until 300 ready_sent; then
	kill -TERM "$KH_DAEMON_PID" 2>/dev/null
	wait "$tracer"
	KH_DAEMON_PID=
	kh_abort ready_sent "no READY=1 from keyholed under the unit's limits: $(tail -n 5 "$KH_LOG")"
fi
ready=$(grep -m 1 'READY=1' "$notify_log")
check_contains ready_after_socket "$ready" "socket=yes"
check_contains ready_after_mount "$ready" "mount=yes"
check_contains ready_status "$ready" "STATUS=serving: socket $KH_SOCKET, mount $KH_MOUNT"
check_equal ready_is_first_state "$(head -n 1 "$notify_log")" "$ready"
"$KEYHOLE" status --socket "$KH_SOCKET" >"$out/status.out" 2>&1
check_equal status_after_ready "$?" 0

# --- A permit, secret reads through the mount, and a revoke.

permit=$(kh_request_tool sandbox.read)
if [ -f "$permit" ]; then
	pass permit_issued
else
	fail permit_issued "$(cat "$out/request.err"; tail -n 3 "$KH_LOG")"
fi
check_equal file_backend_read \
	"$(kh_probe_with "$permit" read "$secret_path")" "$secret_ok"
vault_permit=$(kh_request_tool sandbox.vault)
check vault_permit_issued test -f "$vault_permit"
check_equal vault_backend_read \
	"$(fed_read "$vault_permit" "$KH_MOUNT/vault/db_password")" "$vault_password"

jti=$(basename "$permit")
as_agent "$KEYHOLE" revoke --socket "$KH_SOCKET" -- "$jti" >"$out/revoke.out" 2>&1
check_equal owner_revokes "$?" 0
check revoked_permit_file_removed test ! -e "$permit"
check_equal revoke_record \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=revoke jti="$jti")" 1

# --- SIGHUP: RELOADING=1, then READY=1 again, with a changed policy.

kh_write_policy "$(kh_agent_rule sandbox-read sandbox.read sandbox_key 60 5)" \
	"$(fed_rule sandbox-vault sandbox.vault '"vault/db_password"')"
kill -HUP "$KH_DAEMON_PID"
ready_again() {
	[ "$(ready_count)" -ge 2 ]
}
kh_wait_until 100 ready_again || fail reload_ready "no second READY=1 after SIGHUP"
reloading_line=$(grep -n -m 1 'RELOADING=1' "$notify_log" | cut -d: -f1)
ready_line=$(grep -n 'READY=1' "$notify_log" | sed -n 2p | cut -d: -f1)
check reload_sends_reloading test -n "$reloading_line"
check reloading_before_ready test "${reloading_line:-9999}" -lt "${ready_line:-0}"
check_contains reloading_monotonic "$(grep -m 1 'RELOADING=1' "$notify_log")" \
	"MONOTONIC_USEC="
check_contains policy_reloaded "$(cat "$KH_LOG")" "policy reloaded:"

# --- SIGTERM: STOPPING=1, unmount, exit 0.

kill -TERM "$KH_DAEMON_PID"
wait "$tracer"
check_equal stop_exit_status "$?" 0
KH_DAEMON_PID=
check_contains stopping_sent "$(cat "$notify_log")" "STOPPING=1"
if kh_is_mounted "$KH_MOUNT"; then
	fail stop_unmounts "$KH_MOUNT is still mounted"
else
	pass stop_unmounts
fi
check_contains stopped_logged "$(cat "$KH_LOG")" "stopped: SIGTERM"

# A call that the filter or the bounding set denies fails with EPERM,
# which keyholed's log must not show.
check_equal no_eperm_in_log \
	"$(grep -c 'Operation not permitted' "$KH_LOG")" 0

# --- What strace saw: the programs executed and the devices opened.

execs=$(grep -E '(execve|execveat)\(' "$KH_TMP/strace.out" |
	grep -v 'resumed>' | sed 's/^[0-9]* *//; s/^[a-z]*("\([^"]*\)".*/\1/' |
	sort -u | tr '\n' ' ')
expected=$(printf '%s\n' "$(command -v setpriv)" "$filter" "$KEYHOLED" |
	sort -u | tr '\n' ' ')
check_equal execs_only_keyholed "$execs" "$expected"
check_equal no_fusermount "$(grep -c fusermount "$KH_TMP/strace.out")" 0

devices=$(grep -oE 'open(at|at2)?\([^"]*"/dev/[^"]*"' "$KH_TMP/strace.out" |
	sed 's/.*"\(\/dev\/[^"]*\)"/\1/' | sort -u)
bad_devices=
for device in $devices; do
	case $device in
	/dev/fuse | /dev/null | /dev/zero | /dev/full | /dev/random | \
		/dev/urandom | /dev/tty | /dev/ptmx) ;;
	*) bad_devices="$bad_devices $device" ;;
	esac
done
check_contains fuse_device_opened "$devices" /dev/fuse
check_equal only_allowed_devices "$bad_devices" ""

# --- Journal priorities: with JOURNAL_STREAM naming stderr's device and
# inode, each line starts with "<N>"; with another value it does not.

journal="$KH_TMP/journal.out"
: >"$journal"
stream=$(stat -c '%d:%i' "$journal")
JOURNAL_STREAM=$stream "$KEYHOLED" --config "$KH_TMP/missing.json" \
	2>>"$journal"
check_contains journal_notice_prefix "$(head -n 1 "$journal")" \
	"<5>keyholed: notice: starting"
check_contains journal_error_prefix "$(cat "$journal")" \
	"<3>keyholed: error: cannot start"
: >"$KH_TMP/plain.out"
JOURNAL_STREAM=$stream "$KEYHOLED" --config "$KH_TMP/missing.json" \
	2>>"$KH_TMP/plain.out"
check_contains journal_other_file_plain "$(head -n 1 "$KH_TMP/plain.out")" \
	"keyholed: notice: starting"
check_equal journal_other_file_no_prefix \
	"$(grep -c '^<' "$KH_TMP/plain.out")" 0

[ "$KH_FAILED" -eq 0 ]
