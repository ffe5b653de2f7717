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

kh_test_setup --support
sockets="$KH_TMP/sockets"
mkdir -p "$sockets"
# Receivers of either uid bind their sockets here.
chmod 1777 "$sockets"

kh_test_secret pass_key sk_pass_
kh_write_policy "$(kh_agent_rule pass-read pass.read pass_key 120 1)"

kh_start || kh_abort setup "keyholed did not start"

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
	permit=$(kh_request_tool pass.read) || kh_abort permit_minted "no permit for pass.read"
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
	permit=$(kh_request_tool pass.read) || kh_abort permit_minted "no permit for pass.read"
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
