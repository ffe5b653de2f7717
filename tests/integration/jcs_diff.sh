#!/bin/sh
# Checks the expected bytes of every accepting JCS vector under
# tests/vectors/jcs against an independent implementation: the npm package
# "canonicalize" must turn input.json into exactly canonical.json, and
# sha256sum must print the digest stored in sha256. The unit test
# test_canon then checks libkeyhole against the same files. Vectors that expect
# a rejection are skipped here, because JSON.parse accepts duplicate keys
# and unsafe integers that libkeyhole rejects on purpose.
set -u

data=${KH_TEST_DATA:-tests}
vectors="$data/vectors/jcs"
gen="$data/jcs/gen.js"

if ! command -v node >/dev/null 2>&1; then
	echo "FAIL: jcs_diff: node not found; install it with \"make deps\""
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/keyhole-jcs.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

checked=0
failed=0
for dir in "$vectors"/*/; do
	name=$(basename "$dir")
	[ -f "$dir/canonical.json" ] || continue
	checked=$((checked + 1))

	if ! node "$gen" --canonicalize "$dir/input.json" >"$tmp/out" 2>"$tmp/err"; then
		echo "FAIL: jcs_diff/vector $name: canonicalize failed: $(head -n 3 "$tmp/err")"
		failed=$((failed + 1))
		continue
	fi
	if ! cmp -s "$tmp/out" "$dir/canonical.json"; then
		echo "FAIL: jcs_diff/vector $name: canonicalize wrote $(cat "$tmp/out"), which differs from canonical.json"
		failed=$((failed + 1))
		continue
	fi

	want=$(cat "$dir/sha256")
	got=$(sha256sum "$dir/canonical.json" | cut -d ' ' -f 1)
	if [ "$got" != "$want" ]; then
		echo "FAIL: jcs_diff/vector $name: sha256sum is $got, the vector says $want"
		failed=$((failed + 1))
		continue
	fi
	echo "PASS: jcs_diff/vector $name"
done

if [ "$checked" -eq 0 ]; then
	echo "FAIL: jcs_diff: no vectors with canonical.json under $vectors"
	exit 1
fi
[ "$failed" -eq 0 ]
