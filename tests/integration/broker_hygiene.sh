#!/bin/sh
# Security invariants around the secrets themselves.
#
# No secret byte reaches a log: after a run of granted and denied
# accesses, no file keyholed, the CLI, the report server or this test
# wrote contains any test secret. Nothing reaches the page cache: while
# the holder still has the secret open after reading it, cachestat(2)
# finds no cached page behind its descriptor, although the same check
# finds the pages of an ordinary file read the same way. Also checked: the mount options,
# that entries are read-only with size 0, and the modes and owners of
# permit files and of the audit log.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support

kh_report_setup || kh_abort setup "the report server did not start"
stripe="sk_test_$(kh_random_hex)"
kh_secret stripe_key "$stripe"
stripe_path="$KH_MOUNT/local/stripe_key"
stripe_ok=$(kh_probe_output "$stripe")
# What the secrets look like on the wire and in transit: the password,
# the Basic credential curl sends, and the stripe key with its hex form.
basic=$(printf 'report:%s' "$password" | base64 | tr -d '\n')
stripe_hex=$(printf '%s' "$stripe" | od -An -tx1 | tr -d ' \n')

kh_write_policy "$(kh_fetch_report_rule)" \
	"$(kh_agent_rule read-key stripe.read stripe_key 120 1)"

kh_start || kh_abort setup "keyholed did not start"

# cached_pages NAME PERMIT PATH: the agent opens and reads PATH, holding
# PERMIT when one is given, and keeps it open. Root then counts the
# cached pages behind the agent's descriptor. The holder prints its own
# pid because the shell's $! is the pid of a subshell. Prints the holder's result
# line and then "cached=N".
cached_pages() {
	flag="$KH_TMP/$1.done"
	if [ -n "$2" ]; then
		as_agent "$KEYHOLE" exec --permit "$2" -- \
			"$KH_PYTHON" -I "$KH_SUPPORT/probe.py" hold "$3" --after "$flag" \
			>"$out/$1.hold" 2>&1 &
	else
		as_agent "$KH_PYTHON" -I "$KH_SUPPORT/probe.py" hold "$3" --after "$flag" \
			>"$out/$1.hold" 2>&1 &
	fi
	holder=$!
	holding() {
		grep -q '^ok .* fd=[0-9]*$\|^error ' "$out/$1.hold"
	}
	kh_wait_until 200 holding "$1"
	line=$(head -n 1 "$out/$1.hold")
	echo "${line% pid=*}"
	case $line in
	*" fd="*)
		fd=${line##* fd=}
		pid=${line##* pid=}
		"$KH_PYTHON" -I "$KH_SUPPORT/probe.py" cachestat "${pid%% *}" "$fd" 2>&1
		;;
	esac
	touch "$flag"
	wait "$holder"
}

# Page cache: the holder reads the secret and keeps it open while root
# counts its cached pages. The control reads an ordinary file with
# the same content the same way; it must show cached pages, or the
# check could not fail.
permit=$(kh_request_tool stripe.read) || kh_abort permit_minted "no permit for stripe.read"
check_equal secret_not_in_page_cache "$(cached_pages secret "$permit" "$stripe_path")" \
	"$stripe_ok
cached=0"
printf '%s' "$stripe" >"$KH_TMP/ordinary"
chown "$KH_AGENT_USER" "$KH_TMP/ordinary"
chmod 0600 "$KH_TMP/ordinary"
control=$(cached_pages ordinary "" "$KH_TMP/ordinary")
rm -f "$KH_TMP/ordinary"
case $control in
*"cached=0") fail page_cache_check_control "an ordinary file showed no cached page: $control" ;;
"$stripe_ok
cached="[1-9]*) pass page_cache_check_control ;;
*) fail page_cache_check_control "the check failed on an ordinary file: $control" ;;
esac

# Traffic that writes logs: a granted fetch, a denied one, a denied
# open without a permit, and the CLI's views of the permit and the log.
permit=$(kh_agent_request --exec -- curl --netrc-file "$netrc" "$url") ||
	kh_abort permit_minted "no permit for the curl command line"
as_agent "$KEYHOLE" exec --permit "$permit" -- \
	curl --netrc-file "$netrc" "$url" >"$out/fetch.out" 2>"$out/fetch.err"
check_equal fetch_with_permit "$(cat "$out/fetch.out")" "quarterly report: 42 widgets shipped"
as_agent "$KEYHOLE" exec --permit "$permit" -- \
	curl --netrc-file "$netrc" "$url?again" >"$out/refetch.out" 2>"$out/refetch.err"
as_agent "$KH_PYTHON" -I "$KH_SUPPORT/probe.py" read "$stripe_path" >"$out/nopermit.out" 2>&1
check_equal open_without_permit "$(cat "$out/nopermit.out")" "error EACCES"
"$KEYHOLE" verify --config "$KH_CONFIG" "$permit" >"$out/verify.out" 2>&1
"$KEYHOLE" audit show --dir "$KH_AUDIT" >"$out/show.out" 2>&1
"$KEYHOLE" audit show --dir "$KH_AUDIT" --json >"$out/show.json" 2>&1

# Mount options and the shape of entries.
options=$(findmnt -n -o FSTYPE,OPTIONS --mountpoint "$KH_MOUNT")
for option in ro nosuid nodev noexec default_permissions allow_other; do
	case ",${options#* }," in
	*",$option,"*) pass "mount_option_$option" ;;
	*) fail "mount_option_$option" "not in: $options" ;;
	esac
done
check_contains mount_is_fuse "${options%% *}" fuse
check_equal secret_entry_size_zero "$(as_agent stat -c %s "$stripe_path")" 0
if as_agent sh -c "printf x >>'$stripe_path'" 2>/dev/null; then
	fail secret_entry_read_only "the agent appended to $stripe_path"
else
	pass secret_entry_read_only
fi

# Permit files: created 0400 and owned by the agent, in a 0700 directory
# that the agent owns; the audit log is root's alone.
check_equal permit_file_mode "$(stat -c '%a %u' "$permit")" "400 $KH_AGENT_UID"
check_equal permit_dir_mode "$(stat -c '%a %u' "$(dirname "$permit")")" "700 $KH_AGENT_UID"
check_equal dpr_file_mode "$(stat -c '%a %u' "$KH_AUDIT/dpr.jsonl")" "600 0"
check_equal audit_dir_mode "$(stat -c '%a %u' "$KH_AUDIT")" "700 0"

# Logs: stop keyholed so that everything it buffered is written.
kh_stop
kill "$KH_HTTP_PID" 2>/dev/null
wait "$KH_HTTP_PID" 2>/dev/null
KH_HTTP_PID=
check keyholed_log_not_empty test -s "$KH_LOG"
check dpr_log_not_empty test -s "$KH_AUDIT/dpr.jsonl"
check http_log_not_empty test -s "$KH_TMP/http.log"

# The credstore and the server's password file hold the secrets by
# design; every other file under the tree is a log, an output or state.
scan() {
	grep -rlF --exclude-dir=credstore --exclude=http.password -e "$1" "$KH_TMP"
}
# The scan must find a secret planted in an output file, or it proves
# nothing.
printf 'planted %s\n' "$stripe" >"$out/planted"
check_equal scan_finds_planted_secret "$(scan "$stripe")" "$out/planted"
rm -f "$out/planted"
for pair in "password:$password" "basic:$basic" "stripe:$stripe" \
	"stripe_hex:$stripe_hex"; do
	name=${pair%%:*}
	found=$(scan "${pair#*:}")
	if [ -n "$found" ]; then
		fail "no_${name}_in_logs" "found in: $(echo "$found" | tr '\n' ' ')"
	else
		pass "no_${name}_in_logs"
	fi
done
kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
