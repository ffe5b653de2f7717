#!/bin/sh
# Descriptors passed between real processes over SCM_RIGHTS.
#
# A permit descriptor is a capability within its uid: a process of the
# agent's uid that receives it may open the secret, while a process of
# another uid is refused with "subject mismatch". An open secret
# descriptor is not: every read checks that the reader's thread group is
# the opener's, so a receiver that holds no permit cannot read through it.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

trap kh_cleanup EXIT INT TERM

kh_require_root
kh_setup || kh_abort setup "kh_setup failed"
kh_support_copy || kh_abort setup "cannot copy tests/support"
out="$KH_TMP/out"
sockets="$KH_TMP/sockets"
mkdir -p "$out" "$sockets"
# Receivers of either uid bind their sockets here.
chmod 1777 "$sockets"

secret="sk_pass_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
kh_secret pass_key "$secret"
secret_path="$KH_MOUNT/local/pass_key"
secret_ok="ok sha256=$(printf '%s' "$secret" | sha256sum | cut -d' ' -f1) bytes=${#secret}"

cat >"$KH_POLICY" <<JSON
{
  "tenant": "demo",
  "env": "dev",
  "max_ttl": 300,
  "rules": [
    {
      "id": "pass-read",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {"type": "tool_call", "tool": "pass.read"},
      "grant": {"secrets": ["local/pass_key"], "ttl": 120, "uses": 1}
    }
  ]
}
JSON

kh_start || kh_abort setup "keyholed did not start"

request_permit() {
	as_agent "$KEYHOLE" request --socket "$KH_SOCKET" \
		--action '{"type":"tool_call","tool":"pass.read"}' 2>>"$out/request.err"
}

# run_as ACCOUNT COMMAND...: ACCOUNT is "agent" or "other".
run_as() {
	account=$1
	shift
	if [ "$account" = agent ]; then as_agent "$@"; else as_other "$@"; fi
}

# pass_fd NAME ACCOUNT RECV_MODE SEND_COMMAND...: starts the receiver as
# ACCOUNT, runs the sender and leaves their output in $out/NAME.recv and
# $out/NAME.send. Both sides bound their own waits (20 s each).
pass_fd() {
	name=$1
	account=$2
	mode=$3
	shift 3
	socket="$sockets/$name.sock"
	if [ "$mode" = --open ]; then
		run_as "$account" "$KH_PYTHON" -I "$KH_SUPPORT/fdpass.py" \
			recv "$socket" --open "$secret_path" \
			>"$out/$name.recv" 2>&1 &
	else
		run_as "$account" "$KH_PYTHON" -I "$KH_SUPPORT/fdpass.py" \
			recv "$socket" --read >"$out/$name.recv" 2>&1 &
	fi
	receiver=$!
	"$@" >"$out/$name.send" 2>&1
	wait "$receiver"
}

# Permit descriptors: the agent opens its permit file and sends the
# descriptor; the receiver keeps it open and opens the secret.
for account in agent other; do
	permit=$(request_permit) || kh_abort permit_minted "no permit for pass.read"
	pass_fd "permit_to_$account" "$account" --open \
		as_agent "$KH_PYTHON" -I "$KH_SUPPORT/fdpass.py" \
		send "$sockets/permit_to_$account.sock" "$permit"
	result=$(grep '^receiver:' "$out/permit_to_$account.recv")
	if [ "$account" = agent ]; then
		check_equal permit_fd_same_uid_reads "$result" "receiver: $secret_ok"
	else
		check_equal permit_fd_other_uid_eacces "$result" "receiver: error EACCES"
		check_equal permit_fd_other_uid_reason \
			"$(other_reason "$secret_path")" "subject mismatch"
	fi
done

# Secret descriptors: the agent, holding a permit, opens and reads the
# secret, sends the open descriptor, and reads again after the receiver
# tried. The receivers hold no permit.
for account in agent other; do
	permit=$(request_permit) || kh_abort permit_minted "no permit for pass.read"
	pass_fd "secret_to_$account" "$account" --read \
		as_agent "$KEYHOLE" exec --permit "$permit" -- \
		"$KH_PYTHON" -I "$KH_SUPPORT/fdpass.py" \
		send "$sockets/secret_to_$account.sock" "$secret_path" --read
	check_equal "secret_fd_to_${account}_opener_reads" \
		"$(grep '^sender before:' "$out/secret_to_$account.send")" \
		"sender before: $secret_ok"
	check_equal "secret_fd_to_${account}_receiver_eacces" \
		"$(grep '^receiver:' "$out/secret_to_$account.recv")" \
		"receiver: error EACCES"
	check_equal "secret_fd_to_${account}_opener_reads_after" \
		"$(grep '^sender after:' "$out/secret_to_$account.send")" \
		"sender after: $secret_ok"
done

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
