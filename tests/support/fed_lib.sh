# Shared set-up for the federation backend tests (tests/integration/
# fed_*.sh), sourced after tests/lib.sh. It makes a test CA, the
# broker's federation key and its exported JWKS, starts loopback mocks
# of the cloud services (tests/mocks/*.js) and adds backends to the
# keyhole.json that kh_setup wrote. fed_cleanup stops the mocks, then
# runs kh_cleanup.

FED_ISSUER=https://issuer.keyhole.test
FED_SUB="keyhole:demo:dev:broker-test"
FED_MOCK_PIDS=

fed_cleanup() {
	for pid in $FED_MOCK_PIDS; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	FED_MOCK_PIDS=
	kh_cleanup
}

# fed_setup: the start of every federation test. Runs kh_test_setup,
# then creates $FED_CA (ca.pem, server and wrong certificates), the
# federation key and $FED_JWKS, and points keyhole.json at them and at
# the modules in the build.
fed_setup() {
	kh_test_setup --support
	trap fed_cleanup EXIT INT TERM
	command -v node >/dev/null || kh_abort setup "node is not installed"
	FED_NPM=${KH_NPM_DIR:-$KH_ROOT/build/npm/node_modules}
	[ -d "$FED_NPM/jose" ] ||
		kh_abort setup "npm jose missing in $FED_NPM; run make deps"
	export KH_NPM_DIR="$FED_NPM"
	FED_CA="$KH_TMP/ca"
	sh "$KH_ROOT/tests/support/test_ca.sh" "$FED_CA" ||
		kh_abort setup "test_ca.sh failed"
	"$KEYHOLE" keygen --federation --out "$KH_KEYS/federation.pem" \
		>"$out/keygen.out" 2>&1 ||
		kh_abort setup "keygen --federation failed: $(cat "$out/keygen.out")"
	"$KEYHOLE" oidc export --issuer "$FED_ISSUER" --dir "$KH_TMP/oidc" \
		--key "$KH_KEYS/federation.pem" >"$out/export.out" 2>&1 ||
		kh_abort setup "oidc export failed: $(cat "$out/export.out")"
	FED_JWKS="$KH_TMP/oidc/jwks.json"
	fed_config_edit "
c['federation'] = {'issuer': '$FED_ISSUER', 'key': 'keys/federation.pem'}
c['backend_dir'] = '$KH_BUILD/backends'
"
}

# fed_config_edit PYTHON: runs PYTHON with c bound to keyhole.json's
# object, then writes it back.
fed_config_edit() {
	"$KH_PYTHON" -I -c "
import json, sys
path = sys.argv[1]
with open(path) as f:
    c = json.load(f)
$1
with open(path, 'w') as f:
    json.dump(c, f, indent=2)
" "$KH_CONFIG" || kh_abort setup "cannot edit $KH_CONFIG"
}

# fed_add_backend NAME JSON: adds backend NAME with config JSON.
fed_add_backend() {
	printf '%s' "$2" >"$KH_TMP/backend-$1.json"
	fed_config_edit "
with open('$KH_TMP/backend-$1.json') as f:
    c['backends']['$1'] = json.load(f)
"
}

# fed_mock_start NAME CONFIG [CERT]: starts tests/mocks/NAME.js with
# its CONFIG file, serving CERT ("server" or "wrong"); sets FED_PORT and
# FED_URL. The mock's output goes to $KH_TMP/NAME.mock.log. A mock
# started with "wrong" is reached as https://wrong-name.invalid:PORT
# with curl --resolve, the name its certificate is for.
fed_mock_start() {
	fed_port_file="$KH_TMP/$1.$$.$(date +%s%N).port"
	node "$KH_ROOT/tests/mocks/$1.js" "$2" "$FED_CA" "$fed_port_file" \
		"${3:-server}" >>"$KH_TMP/$1.mock.log" 2>&1 &
	FED_MOCK_PIDS="$FED_MOCK_PIDS $!"
	kh_wait_until 100 test -s "$fed_port_file" ||
		kh_abort setup "mock $1 did not start: $(tail -n 5 "$KH_TMP/$1.mock.log")"
	FED_PORT=$(cat "$fed_port_file")
	FED_URL="https://127.0.0.1:$FED_PORT"
}

# fed_mock_call URL [CURL ARGS...]: the test's own request to a mock
# (its /_mock/ control paths or an admin view), trusting the test CA.
fed_mock_call() {
	fed_call_url=$1
	shift
	curl -sS --cacert "$FED_CA/ca.pem" "$@" "$fed_call_url"
}

# fed_plan URL MATCH STEP...: scripts the next requests that match.
fed_plan() {
	fed_plan_url=$1
	fed_plan_match=$2
	shift 2
	fed_plan_steps=$(printf '%s\n' "$@" | "$KH_PYTHON" -I -c '
import json, sys
print(json.dumps([int(s) if s.isdigit() else s for s in sys.stdin.read().split()]))')
	fed_mock_call "$fed_plan_url/_mock/plan" -X POST \
		-d "{\"match\": \"$fed_plan_match\", \"steps\": $fed_plan_steps}" >/dev/null
}

# fed_mock_count URL TEXT: how many requests the mock saw whose
# "METHOD path" contains TEXT.
fed_mock_count() {
	fed_mock_call "$1/_mock/log" | "$KH_PYTHON" -I -c '
import json, sys
log = json.load(sys.stdin)
print(sum(1 for e in log if sys.argv[1] in e["method"] + " " + e["path"]))' "$2"
}

# fed_rule ID TOOL SECRETS [TTL]: a rule that permits the agent the
# tool_call TOOL and grants SECRETS (quoted "<backend>/<name>" strings
# separated by commas) for TTL seconds (default 120) and 20 opens.
fed_rule() {
	cat <<JSON
    {
      "id": "$1",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {"type": "tool_call", "tool": "$2"},
      "grant": {"secrets": [$3], "ttl": ${4:-120}, "uses": 20}
    }
JSON
}

# fed_read PERMIT PATH: the agent, holding PERMIT, reads PATH with an
# unchanged cat. Prints the content, or "error" when cat failed.
fed_read() {
	as_agent "$KEYHOLE" exec --permit "$1" -- cat "$2" 2>>"$out/cat.err" ||
		printf 'error'
}

# fed_probe PERMIT PATH: what probe.py prints when the agent holding
# PERMIT opens PATH ("error EACCES" for a denial).
fed_probe() {
	kh_probe_with "$1" read "$2"
}

# fed_no_leak NAME VALUE...: passes when no VALUE appears in keyholed's
# log.
fed_no_leak() {
	fed_leak_name=$1
	shift
	for fed_leak_value in "$@"; do
		if [ -n "$fed_leak_value" ] &&
			grep -qF -- "$fed_leak_value" "$KH_LOG"; then
			fail "$fed_leak_name" "keyholed's log contains a secret or token"
			return
		fi
	done
	pass "$fed_leak_name"
}
