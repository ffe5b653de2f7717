#!/bin/sh
# The broker reads a caller's exe and process tree from /proc by the
# pid that SO_PEERCRED recorded at connect time. If that process has
# exited, the pid may belong to another process by now, so a request
# sent on its connection by another process is denied. A request from
# a connection whose connecting process is still alive is served.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support
kh_secret token "peer-test-secret"
kh_write_policy "$(kh_agent_rule read-token token.read token 120 5)"
kh_start || kh_abort setup "keyholed did not start"

client="$KH_SUPPORT/handoff_client.py"
request='{"op":"request","action":{"type":"tool_call","tool":"token.read"}}'

as_agent "$KH_PYTHON" -I "$client" "$KH_SOCKET" "$request" stay \
	>"$out/stay.out" 2>&1
check_contains alive_peer_served "$(cat "$out/stay.out")" '"ok":true'

as_agent "$KH_PYTHON" -I "$client" "$KH_SOCKET" "$request" exit \
	>"$out/exit.out" 2>&1
kh_wait_until 200 grep -qs '"ok"' "$out/exit.out"
check_contains exited_peer_denied "$(cat "$out/exit.out")" '"error":"denied"'
check_contains exited_peer_reason "$(cat "$out/exit.out")" \
	"the calling process exited before its request was served"
check_contains exited_peer_logged "$(cat "$KH_LOG")" \
	"the caller exited before its request was served"
