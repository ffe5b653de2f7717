#!/bin/sh
# What a restart of keyholed does to processes confined before it.
# Landlock ties a rule to an inode, and a restarted keyholed mounts a
# new file system. When the mount point is the only entry of its
# directory, profiles put the {secrets} rule on that directory, and a
# process confined before the restart reads the new mount. When the
# directory contains anything else, the rule names the mount itself, and
# the process is cut off until it is confined again. The mount lives
# under /run here, because the agent profile already allows all of
# /tmp, which would hide the difference.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support
# LeakSanitizer needs ptrace, which the profiles deny, so the sanitized
# keyhole commands inside the confinement run without it.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
anchor=$(mktemp -d /run/keyhole-restart.XXXXXX) || kh_abort setup "mktemp in /run failed"
chmod 0755 "$anchor"
mkdir -m 0755 "$anchor/mnt"
cleanup_anchor() {
	kh_cleanup
	if ! kh_is_mounted "$anchor/mnt"; then
		rm -rf "$anchor"
	fi
}
trap cleanup_anchor EXIT INT TERM
sed -i "s|\"secrets_mount\": \"$KH_MOUNT\"|\"secrets_mount\": \"$anchor/mnt\"|" "$KH_CONFIG"
KH_MOUNT="$anchor/mnt"

# The agent profile runs programs only from the system directories and
# /tmp, so the test's profile adds the build tree to the agent profile.
# Its {secrets} rule stays the agent's.
profiles="$KH_TMP/confine.d"
mkdir -m 0755 "$profiles"
cat >"$profiles/restart-test.json" <<JSON
{
  "base": "agent",
  "description": "agent, plus the test's build tree",
  "filesystem": {"read_exec": ["$KH_BUILD"]}
}
JSON
chmod 0644 "$profiles/restart-test.json"

kh_test_secret restart_secret "restart-"
kh_write_policy "$(kh_agent_rule restart-read tool.restart restart_secret 120 5)"
kh_start || kh_abort setup "keyholed did not start"

# confined_reader PROFILE TAG: the agent, confined with PROFILE, reads
# the secret with a fresh permit, prints "ready", waits until
# $out/TAG.go exists, then does the same again. Output goes to
# $out/TAG.out.
confined_reader() {
	as_agent "$KEYHOLE" exec --confine="$1" --profile-dir "$profiles" \
		--config "$KH_CONFIG" -- sh -c '
		read_once() {
			permit=$("$0" request --socket "$1" --action "{\"type\":\"tool_call\",\"tool\":\"tool.restart\"}") &&
				"$0" exec --permit "$permit" -- "$2" -I "$3" read "$4"
		}
		read_once "$@"
		echo ready
		while [ ! -e "$5" ]; do sleep 0.1; done
		read_once "$@"
		' "$KEYHOLE" "$KH_SOCKET" "$KH_PYTHON" "$KH_SUPPORT/probe.py" \
		"$secret_path" "$out/$2.go" >"$out/$2.out" 2>"$out/$2.err" &
}

secret_path="$KH_MOUNT/local/restart_secret"
secret_ok=$(kh_probe_output "$secret")
ready() {
	grep -q '^ready$' "$out/$1.out"
}

# reader_check NAME TAG LINE EXPECTED: like check_equal, and on failure
# shows what the confined reader TAG wrote to stderr.
reader_check() {
	if [ "$3" = "$4" ]; then
		pass "$1"
	else
		fail "$1" "expected \"$4\", got \"$3\"; stderr: $(cat "$out/$2.err")"
	fi
}

rule_paths() {
	as_agent "$KEYHOLE" confine show restart-test --profile-dir "$profiles" \
		--config "$KH_CONFIG"
}

doctor_layout() {
	"$KEYHOLE" doctor --config "$KH_CONFIG" --no-backends 2>&1 |
		grep '^[a-z]*  mount layout:' | cut -c1-4
}

# Another entry beside the mount point: the rule names the mount.
touch "$anchor/other"
check_contains shared_rule_on_mount "$(rule_paths)" "\"$anchor/mnt\""
check_equal doctor_warns_shared_layout "$(doctor_layout)" warn
confined_reader restart-test shared
shared_pid=$!
kh_wait_until 200 ready shared || fail shared_ready "$(cat "$out/shared.err")"
rm "$anchor/other"

# The mount point alone in its directory: the rule names the directory.
check_contains alone_rule_on_parent "$(rule_paths)" "\"$anchor\""
check_equal doctor_passes_alone_layout "$(doctor_layout)" pass
confined_reader restart-test alone
alone_pid=$!
kh_wait_until 200 ready alone || fail alone_ready "$(cat "$out/alone.err")"
reader_check shared_reads_before shared "$(head -n 1 "$out/shared.out")" "$secret_ok"
reader_check alone_reads_before alone "$(head -n 1 "$out/alone.out")" "$secret_ok"

kh_stop
kh_start || kh_abort restart "keyholed did not restart"
touch "$out/shared.go" "$out/alone.go"
wait "$shared_pid"
wait "$alone_pid"
reader_check shared_cut_off_after_restart shared "$(tail -n 1 "$out/shared.out")" "error EACCES"
reader_check alone_reads_after_restart alone "$(tail -n 1 "$out/alone.out")" "$secret_ok"

kh_check_daemon_log daemon_log_clean

# Before keyholed first creates the directory, the layout is not shared.
rmdir "$anchor/mnt" "$anchor"
check_equal doctor_passes_missing_layout "$(doctor_layout)" pass
exit "$KH_FAILED"
