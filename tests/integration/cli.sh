#!/bin/sh
# Tests of the keyhole CLI that need no running keyholed. They cover help
# and usage errors with their exit codes, keygen, offline permit
# verification, and exec. The audit commands run on a log that the
# test_cli_fixtures helper writes through the library. The socket client
# talks to a small mock broker on a unix socket in the temporary directory.
# Prints one "PASS: cli/name" or "FAIL: cli/name: why" line per check.
set -u

build=${KH_BUILD:-build}
keyhole="$build/keyhole"
fixtures_bin="$build/tests/test_cli_fixtures"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/keyhole-cli.XXXXXX") || exit 1
mock_pid=""
failures=0

cleanup() {
	if [ -n "$mock_pid" ]; then
		kill "$mock_pid" 2>/dev/null
		wait "$mock_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

pass() { echo "PASS: cli/$1"; }
fail() {
	echo "FAIL: cli/$1: $2"
	failures=$((failures + 1))
}

# run CMD...: runs CMD with stdout in $tmp/out and stderr in $tmp/err.
run() {
	"$@" >"$tmp/out" 2>"$tmp/err"
	status=$?
}

# expect NAME CODE PATTERN CMD...: CMD must exit with CODE and, unless
# PATTERN is empty, print a line matching the extended regex PATTERN on
# stdout or stderr.
expect() {
	name=$1 code=$2 pattern=$3
	shift 3
	run "$@"
	if [ "$status" -ne "$code" ]; then
		fail "$name" "exit $status, expected $code; stderr: $(head -c 300 "$tmp/err")"
	elif [ -n "$pattern" ] &&
		! cat "$tmp/out" "$tmp/err" | grep -Eq -- "$pattern"; then
		fail "$name" "no line matches '$pattern'; output: $(cat "$tmp/out" "$tmp/err" | head -c 300)"
	else
		pass "$name"
	fi
}

# check NAME CONDITION...: passes when the test command CONDITION holds.
check() {
	name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name" "not true: $*"; fi
}

file_mode() { stat -c %a "$1"; }

# The mode checks of keygen below expect the usual umask.
umask 022

if [ ! -x "$keyhole" ]; then
	fail "setup" "$keyhole not built; run make"
	exit 1
fi

# --- help and usage ------------------------------------------------------

expect "help" 0 "^Exit status:" "$keyhole" --help
expect "version" 0 "^keyhole [0-9]" "$keyhole" --version
expect "help command" 0 "^Usage: keyhole verify" "$keyhole" help verify
for cmd in keygen request exec verify status revoke audit; do
	expect "$cmd help" 0 "^Usage: keyhole $cmd" "$keyhole" "$cmd" --help
done
for cmd in verify show replay; do
	expect "audit $cmd help" 0 "^Usage: keyhole audit $cmd" \
		"$keyhole" audit "$cmd" --help
done

expect "no command" 2 "missing command" "$keyhole"
expect "unknown command" 2 "unknown command: frobnicate" \
	"$keyhole" frobnicate
for cmd in keygen request exec verify status revoke; do
	expect "$cmd unknown option" 2 "unknown option: --bogus" \
		"$keyhole" "$cmd" --bogus
done
expect "audit unknown command" 2 "unknown command: frob" \
	"$keyhole" audit frob
expect "audit show unknown option" 2 "unknown option" \
	"$keyhole" audit show --bogus
expect "keygen missing dir" 2 "missing --dir" "$keyhole" keygen
expect "keygen dir needs value" 2 "needs a value: --dir" \
	"$keyhole" keygen --dir
expect "exec missing permit" 2 "missing --permit" "$keyhole" exec -- true
expect "exec missing command" 2 "missing command" \
	"$keyhole" exec --permit /dev/null --
expect "request action and exec" 2 "exactly one of" \
	"$keyhole" request --action '{}' --exec -- true
expect "request neither" 2 "exactly one of" "$keyhole" request
expect "request invalid action" 2 "invalid action" \
	"$keyhole" request --action '{"type":"tool_call"}'
expect "request duplicate key" 2 "invalid action" \
	"$keyhole" request --action '{"type":"tool_call","tool":"a","tool":"b"}'
expect "revoke missing jti" 2 "expected one JTI" "$keyhole" revoke
expect "revoke invalid jti" 2 "invalid jti" "$keyhole" revoke not-a-jti
# A jti is base64url, so one in 64 starts with '-'. Before "--" it is
# read as options, and a leading "-h" would even print the help.
for dashed in -aOzEJRTByYHfDq6b6CWpg -hOzEJRTByYHfDq6b6CWpg \
	--zEJRTByYHfDq6b6CWpgA; do
	expect "revoke dashed jti $dashed" 2 \
		"unknown option: $dashed: a jti that starts with '-' goes after --" \
		"$keyhole" revoke "$dashed"
done
expect "revoke help shows --" 0 "keyhole revoke -- " "$keyhole" revoke --help
# $cmd is left unquoted so that "audit show" splits into two words.
for cmd in keygen status "audit verify" "audit show" "audit replay"; do
	expect "$cmd unexpected argument" 2 "unexpected argument: extra" \
		"$keyhole" $cmd extra
done
expect "audit show unknown type" 2 \
	"invalid --type: bogus: give one of decision, access, revoke, policy_load, start, stop, repair" \
	"$keyhole" audit show --dir "$tmp" --type bogus
expect "exec empty permit" 2 "empty --permit" \
	"$keyhole" exec --permit "" -- true
expect "status invalid wait" 2 "invalid --wait" \
	"$keyhole" status --wait soon
expect "verify missing permit" 2 "expected one PERMIT" \
	"$keyhole" verify --key /dev/null
expect "audit verify missing key" 2 "missing --key" \
	"$keyhole" audit verify --dir "$tmp"
expect "audit replay missing policy" 2 "missing --policy" \
	"$keyhole" audit replay --dir "$tmp"
expect "audit replay invalid seq" 2 "invalid --seq" \
	"$keyhole" audit replay --dir "$tmp" --policy x --seq 0

# --- keygen --------------------------------------------------------------

keys="$tmp/keys"
expect "keygen writes keys" 0 "^audit kid: [A-Za-z0-9_-]{43} " \
	"$keyhole" keygen --dir "$keys"
check "keygen prints permit kid" \
	grep -Eq "^permit kid: [A-Za-z0-9_-]{43} " "$tmp/out"
check "keygen dir mode 0755" [ "$(file_mode "$keys")" = 755 ]
for key in permit audit; do
	check "keygen $key.jwk mode 0600" \
		[ "$(file_mode "$keys/$key.jwk")" = 600 ]
	check "keygen $key.pub.jwk mode 0644" \
		[ "$(file_mode "$keys/$key.pub.jwk")" = 644 ]
done
check "keygen public key has no d" \
	sh -c "! grep -q '\"d\"' '$keys/permit.pub.jwk'"
cksum "$keys"/*.jwk >"$tmp/keys.sum"
expect "keygen refuses overwrite" 2 "key file exists: .*permit.jwk" \
	"$keyhole" keygen --dir "$keys"
cksum "$keys"/*.jwk >"$tmp/keys.sum2"
check "keygen overwrite leaves keys" cmp -s "$tmp/keys.sum" "$tmp/keys.sum2"
: >"$tmp/plain-file"
mkdir "$tmp/partial" && : >"$tmp/partial/audit.pub.jwk"
expect "keygen refuses partial set" 2 "key file exists: .*audit.pub.jwk" \
	"$keyhole" keygen --dir "$tmp/partial"
check "keygen partial writes nothing" [ ! -e "$tmp/partial/permit.jwk" ]
expect "keygen dir is a file" 2 "not a directory" \
	"$keyhole" keygen --dir "$tmp/plain-file"
expect "keygen missing parent" 2 "cannot create directory" \
	"$keyhole" keygen --dir "$tmp/no/such/dir"
mkdir "$tmp/private-keys" && chmod 0700 "$tmp/private-keys"
expect "keygen existing dir" 0 "^audit kid: " \
	"$keyhole" keygen --dir "$tmp/private-keys"
check "keygen keeps existing dir mode" \
	[ "$(file_mode "$tmp/private-keys")" = 700 ]

# --- fixtures: permits and a DPR log written by the library -------------

if [ ! -x "$fixtures_bin" ]; then
	fail "fixtures" "$fixtures_bin not built; run make unit"
	exit 1
fi
if ! KH_CLI_FIXTURES="$keys" "$fixtures_bin" >"$tmp/fixtures.out" 2>&1; then
	fail "fixtures" "$(grep -v '^PASS' "$tmp/fixtures.out" | head -c 400)"
	exit 1
fi
pass "fixtures"

cat >"$tmp/keyhole.json" <<EOF
{"tenant":"acme","env":"test","broker_id":"fixture-broker",
 "permit_key":"keys/permit.jwk","audit_key":"keys/audit.jwk",
 "policy":"keys/policy.json","audit_dir":"keys/audit"}
EOF
sed 's/"acme"/"other"/' "$tmp/keyhole.json" >"$tmp/other-tenant.json"
sed 's/"test"/"prod"/' "$tmp/keyhole.json" >"$tmp/other-env.json"

# --- verify --------------------------------------------------------------

pub="$keys/permit.pub.jwk"
expect "verify ok with key" 0 "^verdict: ok$" \
	"$keyhole" verify --key "$pub" "$keys/permit.jwt"
check "verify prints claims" grep -q '"rule": "small-charges"' "$tmp/out"
check "verify key only skips tenant" grep -q '^checked: signature, time$' \
	"$tmp/out"
expect "verify ok with config" 0 "^checked: signature, time, tenant, env$" \
	"$keyhole" verify --config "$tmp/keyhole.json" "$keys/permit.jwt"
expect "verify stdin" 0 "^verdict: ok$" \
	sh -c "'$keyhole' verify --key '$pub' - <'$keys/permit.jwt'"
expect "verify wrong tenant" 1 "^verdict: wrong tenant$" \
	"$keyhole" verify --config "$tmp/other-tenant.json" "$keys/permit.jwt"
expect "verify wrong env" 1 "^verdict: wrong environment$" \
	"$keyhole" verify --config "$tmp/other-env.json" "$keys/permit.jwt"
expect "verify expired" 1 "^verdict: expired$" \
	"$keyhole" verify --key "$pub" "$keys/expired.jwt"
expect "verify unknown kid" 1 "^verdict: unknown kid$" \
	"$keyhole" verify --key "$keys/audit.pub.jwk" "$keys/permit.jwt"
: >"$tmp/empty.jwt"
expect "verify empty permit" 1 "^verdict: malformed$" \
	"$keyhole" verify --key "$pub" "$tmp/empty.jwt"
expect "verify missing permit file" 2 "cannot read permit" \
	"$keyhole" verify --key "$pub" "$tmp/none.jwt"
expect "verify missing key file" 2 "cannot load permit key" \
	"$keyhole" verify --key "$tmp/none.jwk" "$keys/permit.jwt"

# Flip the tenth character of the signature: still valid base64url.
token=$(cat "$keys/permit.jwt")
sig=${token##*.}
c=$(printf %s "$sig" | cut -c10)
if [ "$c" = A ]; then r=B; else r=A; fi
printf '%s.%s%s%s' "${token%.*}" "$(printf %s "$sig" | cut -c1-9)" "$r" \
	"$(printf %s "$sig" | cut -c11-)" >"$tmp/tampered.jwt"
expect "verify tampered signature" 1 "^verdict: bad signature$" \
	"$keyhole" verify --key "$pub" "$tmp/tampered.jwt"

charge='{"type":"tool_call","tool":"stripe.charge","params":{"amount":500,"currency":"usd"}}'
other='{"type":"tool_call","tool":"stripe.charge","params":{"amount":501,"currency":"usd"}}'
expect "verify action match" 0 "^checked: .*action$" \
	"$keyhole" verify --key "$pub" --action "$charge" "$keys/permit.jwt"
printf '%s\n' "$charge" >"$tmp/charge.json"
expect "verify action from file" 0 "^verdict: ok$" \
	"$keyhole" verify --key "$pub" --action "@$tmp/charge.json" \
	"$keys/permit.jwt"
expect "verify action mismatch" 1 "^verdict: action mismatch$" \
	"$keyhole" verify --key "$pub" --action "$other" "$keys/permit.jwt"
expect "verify exec match" 0 "^verdict: ok$" \
	"$keyhole" verify --key "$pub" --exec "$keys/exec.jwt" -- echo hello
expect "verify exec mismatch" 1 "^verdict: action mismatch$" \
	"$keyhole" verify --key "$pub" --exec "$keys/exec.jwt" -- echo bye
expect "verify command needs exec" 2 "needs --exec" \
	"$keyhole" verify --key "$pub" "$keys/exec.jwt" -- echo hello

# --- audit verify, show, replay -----------------------------------------

audit="$keys/audit"
apub="$keys/audit.pub.jwk"
expect "audit verify ok" 0 "^ok: 5 records verified$" \
	"$keyhole" audit verify --dir "$audit" --key "$apub"
expect "audit verify wrong key" 1 "^FAILED at seq 1: " \
	"$keyhole" audit verify --dir "$audit" --key "$pub"
expect "audit verify missing dir" 2 "cannot read log" \
	"$keyhole" audit verify --dir "$tmp/nowhere" --key "$apub"

# One byte changed in record 3: its hash no longer recomputes.
cp -r "$audit" "$tmp/flipped"
sed '3s/"time":1/"time":2/' "$audit/dpr.jsonl" >"$tmp/flipped/dpr.jsonl"
check "audit flip changed one line" \
	[ "$(cmp -l "$audit/dpr.jsonl" "$tmp/flipped/dpr.jsonl" | wc -l)" -eq 1 ]
expect "audit verify flipped byte" 1 "^FAILED at seq 3: hash mismatch$" \
	"$keyhole" audit verify --dir "$tmp/flipped" --key "$apub"

# Record 4 removed: the record after seq 3 carries seq 5.
cp -r "$audit" "$tmp/dropped"
sed '4d' "$audit/dpr.jsonl" >"$tmp/dropped/dpr.jsonl"
expect "audit verify dropped record" 1 "^FAILED at seq 4: expected seq 4 but found 5$" \
	"$keyhole" audit verify --dir "$tmp/dropped" --key "$apub"

expect "audit show" 0 "^2 [0-9T:-]+Z decision effect=permit rule=small-charges" \
	"$keyhole" audit show --dir "$audit"
check "audit show one line per record" [ "$(wc -l <"$tmp/out")" -eq 5 ]
check "audit show policy load" grep -Eq '^1 .* policy_load hP=[0-9a-f]{64}$' \
	"$tmp/out"
check "audit show deny reason" \
	grep -Eq '^3 .* decision effect=deny rule=deny-large-charges uid=[0-9]+ reason="' \
	"$tmp/out"
check "audit show access" \
	grep -Eq '^4 .* access outcome=granted secret=local/stripe_key jti=[A-Za-z0-9_-]{22} uid=' \
	"$tmp/out"
# The revoke reason contains quotes and a newline: escaped, on one line.
check "audit show revoke by uid" \
	grep -Eq 'revoke jti=[A-Za-z0-9_-]{22} by_uid=[0-9]+ reason=' "$tmp/out"
check "audit show escaped reason text" \
	grep -Fq 'reason="fixture \"revoke\"\x0aseq=9 forged"' "$tmp/out"
jti=$(sed -n 's/^2 .* jti=\([A-Za-z0-9_-]*\).*/\1/p' "$tmp/out")
expect "audit show by type" 0 "decision" \
	"$keyhole" audit show --dir "$audit" --type decision
check "audit show type filter" [ "$(wc -l <"$tmp/out")" -eq 2 ]
expect "audit show by jti" 0 "revoke" \
	"$keyhole" audit show --dir "$audit" --jti "$jti"
check "audit show jti filter" [ "$(wc -l <"$tmp/out")" -eq 3 ]
expect "audit show json" 0 "" "$keyhole" audit show --dir "$audit" --json
check "audit show json is the log" cmp -s "$tmp/out" "$audit/dpr.jsonl"
expect "audit show from config" 0 "" \
	"$keyhole" audit show --config "$tmp/keyhole.json" --type revoke
check "audit show config dir" [ "$(wc -l <"$tmp/out")" -eq 1 ]

expect "audit replay same policy" 0 "^2 decisions replayed: 2 same, 0 differ" \
	"$keyhole" audit replay --dir "$audit" --policy "$keys/policy.json"
check "audit replay permit line" \
	grep -q '^seq 2: permit (rule small-charges) -> permit (rule small-charges): same$' \
	"$tmp/out"
expect "audit replay strict policy" 1 "^seq 2: .* -> deny \(rule deny-large-charges\): DIFFERS$" \
	"$keyhole" audit replay --dir "$audit" --policy "$keys/policy-strict.json"
check "audit replay counts" \
	grep -q '^2 decisions replayed: 1 same, 1 differ, 0 failed$' "$tmp/out"
expect "audit replay one seq" 0 "^1 decisions replayed: 1 same" \
	"$keyhole" audit replay --dir "$audit" \
	--policy "$keys/policy-strict.json" --seq 3
expect "audit replay not a decision" 2 "no decision record with seq 1" \
	"$keyhole" audit replay --dir "$audit" --policy "$keys/policy.json" \
	--seq 1
expect "audit replay archived policy" 0 "2 same" \
	sh -c "'$keyhole' audit replay --dir '$audit' --policy '$audit'/policies/*.json"

# A default deny (rule "") shows its stored reason, which names the rate
# limit, for the original and the replayed decision alike.
limited="$keys/audit-limited"
limit_reason=$(sed -n 2p "$limited/dpr.jsonl" |
	python3 -c 'import json, sys; print(json.load(sys.stdin)["reason"])')
case $limit_reason in
*"rate limit reached (1 per 60 s)"*) pass "audit limited reason names limit" ;;
*) fail "audit limited reason names limit" "reason: $limit_reason" ;;
esac
expect "audit replay default deny" 0 "" \
	"$keyhole" audit replay --dir "$limited" \
	--policy "$keys/policy-limited.json"
check "audit replay deny reason" grep -Fqx \
	"seq 2: deny ($limit_reason) -> deny ($limit_reason): same" "$tmp/out"
expect "audit replay lifted limit" 1 "" \
	"$keyhole" audit replay --dir "$limited" --policy "$keys/policy.json"
check "audit replay lifted limit line" grep -Fqx \
	"seq 2: deny ($limit_reason) -> permit (rule small-charges): DIFFERS" \
	"$tmp/out"

# --- exec ----------------------------------------------------------------

permit="$keys/permit.jwt"
expect "exec holds permit" 0 "$permit" "$keyhole" exec --permit "$permit" \
	-- sh -c 'ls -l /proc/$$/fd/'
expect "exec holds two permits" 0 "" "$keyhole" exec --permit "$permit" \
	--permit "$keys/exec.jwt" \
	-- sh -c 'ls -l /proc/$$/fd/'
check "exec second permit held" grep -q "exec.jwt" "$tmp/out"
expect "exec without --" 0 "^hello$" \
	"$keyhole" exec --permit "$permit" echo hello
expect "exec passes exit status" 7 "" \
	"$keyhole" exec --permit "$permit" -- sh -c 'exit 7'
# With stdin closed the permit must not take fd 0, which CMD would read.
expect "exec keeps stdin closed" 0 "^closed$" sh -c \
	"'$keyhole' exec --permit '$permit' -- sh -c 'readlink /proc/\$\$/fd/0 || echo closed' <&-"
expect "exec command not found" 127 "command not found: no-such-cmd-kh" \
	"$keyhole" exec --permit "$permit" -- no-such-cmd-kh
: >"$tmp/not-executable"
expect "exec cannot execute" 126 "cannot execute" \
	"$keyhole" exec --permit "$permit" -- "$tmp/not-executable"
expect "exec missing permit file" 2 \
	"cannot open permit: .*none.jwt: No such file or directory: .*or the permit was revoked$" \
	"$keyhole" exec --permit "$tmp/none.jwt" -- true
expect "exec permit is a directory" 2 "not a regular file" \
	"$keyhole" exec --permit "$tmp" -- true

# --- broker client against a mock broker ---------------------------------

sock="$tmp/broker.sock"
expect "status unreachable" 3 "broker unreachable" \
	"$keyhole" status --socket "$sock"
expect "request unreachable" 3 "broker unreachable" \
	"$keyhole" request --socket "$sock" --action "$charge"
expect "revoke unreachable" 3 "broker unreachable" \
	"$keyhole" revoke --socket "$sock" AAAAAAAAAAAAAAAAAAAAAA

# The mock replies like keyholed: charges up to 10000 are permitted.
# It records every request line and stops by itself after 120 s.
cat >"$tmp/mock.py" <<'EOF'
import json, os, socket, sys
path, log = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path + ".tmp")
os.rename(path + ".tmp", path)
srv.listen(8)
srv.settimeout(120)
while True:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    with conn:
        line = conn.makefile("rb").readline()
        with open(log, "ab") as f:
            f.write(line)
        req = json.loads(line)
        op = req.get("op")
        if op == "status":
            reply = {"ok": True, "ready": True, "version": "0.1.0",
                     "tenant": "acme", "env": "test", "hP": "0" * 64}
        elif op == "revoke" and req["jti"] == "A" * 22:
            reply = {"ok": True, "jti": req["jti"], "seq": 9}
        elif op == "revoke":
            reply = {"ok": False, "error": "not_found",
                     "reason": "no unexpired permit has this jti"}
        elif req["action"].get("params", {}).get("amount", 0) > 10000:
            reply = {"ok": False, "error": "denied",
                     "reason": "amount above limit",
                     "rule": "deny-large-charges", "seq": 8}
        else:
            reply = {"ok": True, "effect": "permit", "jti": "B" * 22,
                     "path": "/run/permits/1000/" + "B" * 22,
                     "exp": 1, "rule": "small-charges", "hA": "1" * 64,
                     "seq": 7}
        conn.sendall(json.dumps(reply).encode() + b"\n")
EOF
# status --wait must ride out the time the mock takes to bind.
python3 "$tmp/mock.py" "$sock" "$tmp/requests.log" &
mock_pid=$!
expect "status wait ready" 0 "^tenant: acme$" \
	"$keyhole" status --socket "$sock" --wait 30
expect "status json" 0 '"ready":true' \
	"$keyhole" status --socket "$sock" --json
expect "status from env" 0 "^ready$" \
	env KEYHOLE_SOCKET="$sock" "$keyhole" status
expect "request permit" 0 "^/run/permits/1000/B{22}$" \
	"$keyhole" request --socket "$sock" --action "$charge"
check "request sends op and action" grep -q \
	'"op": *"request"' "$tmp/requests.log"
expect "request json" 0 '^\{.*"path":"/run/permits/1000/B{22}".*\}$' \
	"$keyhole" request --socket "$sock" --json --action "@$tmp/charge.json"
big='{"type":"tool_call","tool":"stripe.charge","params":{"amount":50000}}'
expect "request denied" 1 "^denied: amount above limit$" \
	"$keyhole" request --socket "$sock" --action "$big"
expect "request exec" 0 "^/run/permits/" \
	"$keyhole" request --socket "$sock" --exec -- echo hello
check "request exec resolves exe" grep -Eq '"exe":"/[^"]*/echo"' \
	"$tmp/requests.log"
check "request exec keeps argv" grep -q '"argv":\["echo","hello"\]' \
	"$tmp/requests.log"
expect "revoke ok" 0 "^revoked A{22}$" \
	"$keyhole" revoke --socket "$sock" AAAAAAAAAAAAAAAAAAAAAA
expect "revoke unknown jti" 2 "not_found" \
	"$keyhole" revoke --socket "$sock" CCCCCCCCCCCCCCCCCCCCCA
expect "revoke dashed jti after --" 2 "not_found" \
	"$keyhole" revoke --socket "$sock" -- -aOzEJRTByYHfDq6b6CWpg
check "revoke sends dashed jti" grep -q \
	'"jti": *"-aOzEJRTByYHfDq6b6CWpg"' "$tmp/requests.log"

# A broker with no free connection slot replies busy and closes without
# reading the request, as keyholed does. A request larger than the socket
# buffer makes the client's send fail with EPIPE or ECONNRESET every
# time, while the reply waits to be read. The mock serves at most 20
# connections and stops by itself after 60 s.
busy_sock="$tmp/busy.sock"
cat >"$tmp/busy.py" <<'EOF'
import json, os, socket, sys
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path + ".tmp")
os.rename(path + ".tmp", path)
srv.listen(8)
srv.settimeout(60)
reply = {"ok": False, "error": "busy",
         "reason": "all 64 connection slots are in use: retry later"}
for _ in range(20):
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    conn.sendall(json.dumps(reply).encode() + b"\n")
    conn.close()
EOF
python3 -c 'import json; print(json.dumps({"type": "tool_call",
	"tool": "stripe.charge", "params": {"memo": "x" * 1048576}}))' \
	>"$tmp/large.json"
python3 "$tmp/busy.py" "$busy_sock" &
busy_pid=$!
# Waits up to 10 s for the mock to bind; status --wait would keep
# retrying a busy broker instead.
tries=0
while [ ! -S "$busy_sock" ] && [ "$tries" -lt 100 ]; do
	sleep 0.1
	tries=$((tries + 1))
done
busy_reason="broker busy: all 64 connection slots are in use: retry later$"
expect "status busy" 3 "^keyhole: status: $busy_reason" \
	"$keyhole" status --socket "$busy_sock"
expect "request busy unread" 3 "^keyhole: request: $busy_reason" \
	"$keyhole" request --socket "$busy_sock" --action "@$tmp/large.json"
kill "$busy_pid" 2>/dev/null
wait "$busy_pid" 2>/dev/null

[ "$failures" -eq 0 ]
