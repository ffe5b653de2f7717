#!/bin/sh
# Runs every benchmark binary that "make bench" built into $KH_BUILD/bench.
# The benchmarks print time ratios only, and nothing here passes or fails
# on speed. A benchmark that exits non-zero (a document failed to serialise)
# fails the run.
set -u

build=${KH_BUILD:-build}
status=0
found=0

for bin in "$build"/bench/*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	found=1
	"$bin" || status=1
done

# Shell benchmarks drive the real daemon and need root for the mount.
for script in "$(dirname "$0")"/*.sh; do
	[ "$(basename "$script")" = run.sh ] && continue
	found=1
	sh "$script" || status=1
done

if [ "$found" -eq 0 ]; then
	echo "bench: no benchmark binaries in $build/bench; run \"make bench\"" >&2
	exit 1
fi
exit "$status"
