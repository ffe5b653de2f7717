#!/bin/sh
# make demo: the whole permit flow on real input, in a temporary tree.
#
# An unchanged curl reads its netrc credential from the keyhole mount,
# but only while it holds a permit minted for exactly its command line.
# Every step lands in the signed DPR log, which is verified at the end.
# The agent is the stock "daemon" account and the outsider is "nobody".
set -u
KH_SUITE=demo
. "$(dirname "$0")/lib.sh"

trap kh_cleanup EXIT INT TERM

step() {
	printf '%s\n' "$*"
}

die() {
	printf 'demo failed: %s\n' "$*" >&2
	[ -f "${KH_LOG:-}" ] && tail -n 20 "$KH_LOG" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run the demo as root (it mounts FUSE and switches users)"

kh_setup || die "set-up failed"
kh_report_setup || die "the report server did not start"
kh_secret stripe_key "sk_demo_$(kh_random_hex)"

# The policy (kh_demo_rules in lib.sh) denies charges above 10000. It
# lets the agent fetch the report with curl and make smaller charges.
kh_write_policy "$(kh_demo_rules)"

kh_start || die "keyholed did not start"
step "keyholed is up: secrets at $KH_MOUNT, permits in $KH_PERMITS, audit log in $KH_AUDIT"

# fetch: runs exactly the command line the permit was minted for, with
# the permit file held open; prints the report body, empty when denied.
fetch() {
	as_agent "$KEYHOLE" exec --permit "$1" -- \
		curl --netrc-file "$netrc" "$2" 2>/dev/null
}

# 1. An exec permit for exactly this curl command line lets it fetch.
permit=$(as_agent "$KEYHOLE" request --socket "$KH_SOCKET" \
	--exec -- curl --netrc-file "$netrc" "$url") ||
	die "no permit for the report fetch"
body=$(fetch "$permit" "$url")
case $body in
*"quarterly report"*) ;;
*) die "curl could not fetch the report with its permit" ;;
esac
step "1. curl with an exec permit for its exact command line fetched: $body"

# 2. The same permit with another URL: the kernel-reported argv differs.
body=$(fetch "$permit" "$url?other")
[ -z "$body" ] || die "curl with another URL was not denied"
reason=$(as_agent getfattr --only-values -n user.keyhole.reason "$netrc" 2>/dev/null)
step "2. the same permit with another URL was denied: $reason"

# 3. The permit granted one use, and step 1 spent it.
body=$(fetch "$permit" "$url")
[ -z "$body" ] || die "a second use of a single-use permit was not denied"
reason=$(as_agent getfattr --only-values -n user.keyhole.reason "$netrc" 2>/dev/null)
step "3. a second use of the single-use permit was denied: $reason"

# 4. uid nobody holding the agent's permit fd is not its subject.
permit=$(as_agent "$KEYHOLE" request --socket "$KH_SOCKET" \
	--exec -- curl --netrc-file "$netrc" "$url") ||
	die "no second permit for the report fetch"
# root hands the agent's permit fd to a curl running as the outsider.
body=$("$KEYHOLE" exec --permit "$permit" -- \
	setpriv --reuid "$KH_OTHER_USER" --regid nogroup --clear-groups -- \
	curl --netrc-file "$netrc" "$url" 2>/dev/null)
[ -z "$body" ] || die "uid $KH_OTHER_USER was not denied"
reason=$(as_other getfattr --only-values -n user.keyhole.reason "$netrc" 2>/dev/null)
step "4. uid $KH_OTHER_USER holding a copy of the permit was denied: $reason"

# 5. tool_call permits: policy decides on the declared parameters.
charge='{"type":"tool_call","tool":"stripe.charge","params":{"amount":%d,"currency":"usd"}}'
# shellcheck disable=SC2059
small=$(printf "$charge" 500)
# shellcheck disable=SC2059
large=$(printf "$charge" 50000)
as_agent "$KEYHOLE" request --socket "$KH_SOCKET" --action "$small" >/dev/null ||
	die "the 500 charge was not permitted"
out=$(as_agent "$KEYHOLE" request --socket "$KH_SOCKET" --action "$large" 2>&1) &&
	die "the 50000 charge was permitted"
step "5. stripe.charge of 500 was permitted; 50000 was ${out#denied: }"

# 6. The log verifies, and one flipped byte is found at its record.
kh_stop
"$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$KH_KEYS/audit.pub.jwk" >/dev/null ||
	die "the audit log did not verify"
records=$(wc -l <"$KH_AUDIT/dpr.jsonl")
line=$((records / 2))
# Flip the first digit of that record's "time" value.
prefix=$(head -n $((line - 1)) "$KH_AUDIT/dpr.jsonl" | wc -c)
column=$(sed -n "${line}p" "$KH_AUDIT/dpr.jsonl" | grep -bo '"time":[0-9]' | head -n 1 | cut -d: -f1)
offset=$((prefix + column + 7))
digit=$(dd if="$KH_AUDIT/dpr.jsonl" bs=1 skip="$offset" count=1 2>/dev/null)
printf '%s' $(((digit + 1) % 10)) |
	dd of="$KH_AUDIT/dpr.jsonl" bs=1 seek="$offset" conv=notrunc 2>/dev/null
result=$("$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$KH_KEYS/audit.pub.jwk" 2>&1) &&
	die "the tampered log verified"
step "6. keyhole audit verify passed on $records records; after one byte of record $line was flipped: $result"
