#!/bin/sh
# Times the cost of the built-in "agent" confinement profile, side by
# side in one run, and prints two ratios: starting a command under
# "keyhole exec --confine" against "keyhole exec" without it (profile
# load, Landlock rules, seccomp filter), and a run of 100,000 one-byte
# read/write pairs by dd with and without the profile (the filter's cost
# per syscall). Nothing passes or fails on speed.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/.." && pwd)
build=${KH_BUILD:-build}
case $build in /*) ;; *) build="$KH_ROOT/$build" ;; esac
keyhole="$build/keyhole"
rounds=${KH_BENCH_ROUNDS:-5}
starts=${KH_BENCH_STARTS:-40}

[ -x "$keyhole" ] || { echo "bench_confine: $keyhole missing; run make" >&2; exit 1; }
work=$(mktemp -d /tmp/kh-bench-confine.XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
# keyhole exec without --confine needs a file to hold; any regular file does.
printf 'placeholder\n' >"$work/held"

# run_ns N CMD...: nanoseconds for N runs of CMD.
run_ns() {
	count=$1
	shift
	start=$(date +%s%N)
	i=0
	while [ "$i" -lt "$count" ]; do
		"$@" >/dev/null 2>&1 || return 1
		i=$((i + 1))
	done
	echo $(($(date +%s%N) - start))
}

median() {
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

dd_args="if=/dev/zero of=/dev/null bs=1 count=100000"
start_ratios=""
dd_ratios=""
round=0
while [ "$round" -lt "$rounds" ]; do
	confined=$(run_ns "$starts" "$keyhole" exec --confine -- /bin/true) ||
		{ echo "bench_confine: confined start failed" >&2; exit 1; }
	plain=$(run_ns "$starts" "$keyhole" exec --permit "$work/held" -- /bin/true) || exit 1
	start_ratios="$start_ratios $(ratio "$confined" "$plain")"

	# shellcheck disable=SC2086
	confined=$(run_ns 1 "$keyhole" exec --confine -- dd $dd_args) || exit 1
	# shellcheck disable=SC2086
	plain=$(run_ns 1 "$keyhole" exec --permit "$work/held" -- dd $dd_args) || exit 1
	dd_ratios="$dd_ratios $(ratio "$confined" "$plain")"
	round=$((round + 1))
done

# shellcheck disable=SC2086
echo "bench_confine: agent profile, median of $rounds rounds"
# shellcheck disable=SC2086
echo "start of /bin/true, confined / unconfined time ratio: $(median $start_ratios)x (rounds:$start_ratios)"
# shellcheck disable=SC2086
echo "dd 100,000 read+write pairs, confined / unconfined time ratio: $(median $dd_ratios)x (rounds:$dd_ratios)"
