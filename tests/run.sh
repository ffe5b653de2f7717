#!/bin/sh
# Runs every unit test binary and integration script, then prints
# "N passed, N failed". Each test prints "PASS: name" or "FAIL: name: why".
# A binary or script that exits non-zero without printing a FAIL line
# counts as one failure, so a crash cannot pass silently.
set -u

build=${KH_BUILD:-build}
export KH_BUILD="$build" KH_TEST_DATA="${KH_TEST_DATA:-tests}"
# Unit tests load backend modules from the build, not from BACKENDDIR.
export KH_TEST_BACKEND_DIR="${KH_TEST_BACKEND_DIR:-$(cd "$build" && pwd)/backends}"
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/keyhole-tests.XXXXXX")
passed=0
failed=0

run_one() {
	name=$1
	shift
	out="$log_dir/$(basename "$name").out"
	"$@" >"$out" 2>"$out.err"
	status=$?
	cat "$out"
	p=$(grep -c '^PASS: ' "$out")
	f=$(grep -c '^FAIL: ' "$out")
	if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: $name: exited with status $status"
		f=1
	fi
	if [ "$f" -ne 0 ] || [ "$status" -ne 0 ]; then
		echo "--- stderr of $name (last 40 lines) ---"
		tail -n 40 "$out.err"
	fi
	passed=$((passed + p))
	failed=$((failed + f))
}

for bin in "$build"/tests/test_*; do
	[ -x "$bin" ] || continue
	run_one "$(basename "$bin")" "$bin"
done

for script in tests/integration/*.sh; do
	[ -f "$script" ] || continue
	run_one "$(basename "$script" .sh)" sh "$script"
done

rm -rf "$log_dir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
