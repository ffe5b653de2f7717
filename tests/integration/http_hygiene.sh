#!/bin/sh
# The HTTP layer of the backends against a loopback HTTPS peer with a
# certificate from a test CA made here: statuses, bounded retries, the
# deadline, timeouts, the 1 MiB body cap, redirects that are not
# followed and certificate checks. The cases live in the test_http
# binary; this script provides the peer (tests/mocks/http_mock.js).
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/keyhole-http.XXXXXX")
mock_pid=

cleanup() {
	if [ -n "$mock_pid" ]; then
		kill "$mock_pid" 2>/dev/null
		wait "$mock_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

command -v node >/dev/null || kh_abort setup "node is not installed"
[ -x "$KH_BUILD/tests/test_http" ] ||
	kh_abort setup "$KH_BUILD/tests/test_http is missing; run make unit"
sh "$KH_ROOT/tests/support/test_ca.sh" "$work/ca" ||
	kh_abort setup "cannot make the test CA"

KH_NPM_DIR="$KH_ROOT/build/npm/node_modules" node \
	"$KH_ROOT/tests/mocks/http_mock.js" "$work/ca" "$work/port" \
	"$work/wrong_port" >"$work/mock.out" 2>"$work/mock.err" &
mock_pid=$!
kh_wait_until 100 test -s "$work/wrong_port" ||
	kh_abort setup "the HTTPS mock did not start: $(cat "$work/mock.err")"
kh_wait_until 100 test -s "$work/port" ||
	kh_abort setup "the HTTPS mock did not start: $(cat "$work/mock.err")"

KH_TEST_MOCK_PORT=$(cat "$work/port") \
KH_TEST_MOCK_WRONG_PORT=$(cat "$work/wrong_port") \
KH_TEST_CA="$work/ca/ca.pem" \
	"$KH_BUILD/tests/test_http" || KH_FAILED=1

# The keypair of the SigV4 case must not reach the peer in clear.
if grep -q "example-secret-key" "$work/mock.out" "$work/mock.err"; then
	fail mock_saw_no_secret_key "the secret key reached the mock's output"
else
	pass mock_saw_no_secret_key
fi
exit "$KH_FAILED"
