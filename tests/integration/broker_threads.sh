#!/bin/sh
# Opens and reads from threads other than the holder's main thread.
#
# The FUSE request names the calling thread, not the process, so
# keyholed must resolve the thread group before it looks for permits
# and before it checks that a reader is the opener.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

trap kh_cleanup EXIT INT TERM

kh_require_root
kh_setup || kh_abort setup "kh_setup failed"
kh_support_copy || kh_abort setup "cannot copy tests/support"
out="$KH_TMP/out"
mkdir -p "$out"

secret="sk_thread_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
kh_secret thread_key "$secret"
secret_path="$KH_MOUNT/local/thread_key"
secret_ok="ok sha256=$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1) bytes=${#secret}"
batch=4

cat >"$KH_POLICY" <<JSON
{
  "tenant": "demo",
  "env": "dev",
  "max_ttl": 300,
  "rules": [
    {
      "id": "thread-read",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {"type": "tool_call", "tool": "thread.read"},
      "grant": {"secrets": ["local/thread_key"], "ttl": 120, "uses": 1}
    },
    {
      "id": "batch-read",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {"type": "tool_call", "tool": "batch.read"},
      "grant": {"secrets": ["local/thread_key"], "ttl": 120, "uses": $batch}
    }
  ]
}
JSON

kh_start || kh_abort setup "keyholed did not start"

request_permit() {
	as_agent "$KEYHOLE" request --socket "$KH_SOCKET" \
		--action "{\"type\":\"tool_call\",\"tool\":\"$1\"}" 2>>"$out/request.err"
}

# probe_with PERMIT ARGS...: the agent, holding PERMIT, runs probe.py.
probe_with() {
	permit=$1
	shift
	as_agent "$KEYHOLE" exec --permit "$permit" -- \
		"$KH_PYTHON" -I "$KH_SUPPORT/probe.py" "$@" 2>>"$out/probe.err"
}

# Where the open and the read happen, one single-use permit per case.
for case in thread:thread thread:main main:thread main:main; do
	open_in=${case%%:*}
	read_in=${case#*:}
	permit=$(request_permit thread.read) ||
		kh_abort permit_minted "no permit for thread.read"
	check_equal "open_in_${open_in}_read_in_${read_in}" \
		"$(probe_with "$permit" read "$secret_path" \
			--open-in "$open_in" --read-in "$read_in")" "$secret_ok"
done

# $batch threads open at once under one permit with $batch uses: each
# open spends exactly one use, so all succeed and one more is refused.
permit=$(request_permit batch.read) || kh_abort permit_minted "no permit for batch.read"
expected=$(i=0; while [ "$i" -lt "$batch" ]; do
	echo "$secret_ok"
	i=$((i + 1))
done)
check_equal concurrent_thread_opens \
	"$(probe_with "$permit" concurrent "$secret_path" "$batch")" "$expected"
check_equal open_past_uses_eacces \
	"$(probe_with "$permit" read "$secret_path" --open-in thread)" "error EACCES"
check_equal open_past_uses_reason "$(agent_reason "$secret_path")" "uses exhausted"

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
