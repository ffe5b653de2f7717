#!/bin/sh
# Times reading a secret through the keyhole mount against reading the
# same bytes from a plain file, side by side in one run, and prints the
# ratio. Both sides run the same command under "keyhole exec" with the
# permit held, so the difference is the open() check: the /proc scan,
# permit verification, the durable DPR access record and the backend
# fetch. Nothing passes or fails on speed.
set -u
KH_SUITE=bench_open
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/.." && pwd)
. "$KH_ROOT/tests/lib.sh"

rounds=${KH_BENCH_ROUNDS:-5}
per_round=${KH_BENCH_OPENS:-40}

trap kh_cleanup EXIT INT TERM
[ "$(id -u)" -eq 0 ] || { echo "bench_open: run as root" >&2; exit 2; }
kh_setup || exit 1
kh_secret token "bench-secret-value"
plain="$KH_TMP/plain-token"
printf '%s' "bench-secret-value" >"$plain"
chmod 0444 "$plain"
uses=$((rounds * per_round + 1))
cat >"$KH_POLICY" <<JSON
{"tenant":"demo","env":"dev","max_ttl":3600,"rules":[
 {"id":"bench","effect":"permit","action":{"type":"exec","exe":"/usr/bin/cat"},
  "grant":{"secrets":["local/token"],"ttl":3600,"uses":$uses}}]}
JSON
kh_start || exit 1
secret="$KH_MOUNT/local/token"
permit=$("$KEYHOLE" request --socket "$KH_SOCKET" --exec -- cat "$secret") || exit 1

# time_ns FILE: nanoseconds for per_round reads of FILE with cat.
time_ns() {
	start=$(date +%s%N)
	i=0
	while [ "$i" -lt "$per_round" ]; do
		"$KEYHOLE" exec --permit "$permit" -- cat "$1" >/dev/null || return 1
		i=$((i + 1))
	done
	echo $(($(date +%s%N) - start))
}

# The permit stays held on the plain side too, so both sides pay for
# keyhole exec; only the gated side's argv matches the permit.
ratios=""
round=0
while [ "$round" -lt "$rounds" ]; do
	gated=$(time_ns "$secret") || { echo "bench_open: gated read failed" >&2; exit 1; }
	base=$(time_ns "$plain") || exit 1
	ratios="$ratios $(awk -v g="$gated" -v b="$base" 'BEGIN { printf "%.2f", g / b }')"
	round=$((round + 1))
done
median=$(printf '%s\n' $ratios | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
echo "bench_open: keyhole exec + cat, $per_round opens x $rounds rounds"
echo "secret via mount / plain file time ratio: ${median}x (rounds:$ratios)"
