#!/bin/sh
# Opens and reads from threads other than the holder's main thread.
#
# The FUSE request names the calling thread, not the process, so
# keyholed must resolve the thread group before it looks for permits
# and before it checks that a reader is the opener.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support

kh_test_secret thread_key sk_thread_
batch=4

kh_write_policy "$(kh_agent_rule thread-read thread.read thread_key 120 1)" \
	"$(kh_agent_rule batch-read batch.read thread_key 120 "$batch")"

kh_start || kh_abort setup "keyholed did not start"

# Where the open and the read happen, one single-use permit per case.
for case in thread:thread thread:main main:thread main:main; do
	open_in=${case%%:*}
	read_in=${case#*:}
	permit=$(kh_request_tool thread.read) ||
		kh_abort permit_minted "no permit for thread.read"
	check_equal "open_in_${open_in}_read_in_${read_in}" \
		"$(kh_probe_with "$permit" read "$secret_path" \
			--open-in "$open_in" --read-in "$read_in")" "$secret_ok"
done

# $batch threads open at once under one permit with $batch uses: each
# open spends exactly one use, so all succeed and one more is refused.
permit=$(kh_request_tool batch.read) || kh_abort permit_minted "no permit for batch.read"
expected=$(i=0; while [ "$i" -lt "$batch" ]; do
	echo "$secret_ok"
	i=$((i + 1))
done)
check_equal concurrent_thread_opens \
	"$(kh_probe_with "$permit" concurrent "$secret_path" "$batch")" "$expected"
check_equal open_past_uses_eacces \
	"$(kh_probe_with "$permit" read "$secret_path" --open-in thread)" "error EACCES"
check_equal open_past_uses_reason "$(agent_reason "$secret_path")" "uses exhausted"

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
