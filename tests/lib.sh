# Shared set-up for the demo and the integration tests (POSIX sh).
#
# kh_setup creates a private temporary tree with keys, a credstore, a
# config and a policy. kh_start runs keyholed on it with its FUSE mount
# inside the tree, and kh_cleanup stops everything and removes the tree. The
# caller sets a trap on kh_cleanup so that a failure still cleans up.

KH_BUILD=${KH_BUILD:-build}
# Scripts one level deeper than tests/ (tests/integration) set KH_ROOT
# before sourcing this file.
KH_ROOT=${KH_ROOT:-$(CDPATH='' cd "$(dirname "$0")/.." && pwd)}
case $KH_BUILD in
/*) ;;
*) KH_BUILD="$KH_ROOT/$KH_BUILD" ;;
esac
KEYHOLE="$KH_BUILD/keyhole"
KEYHOLED="$KH_BUILD/keyholed"
KH_SUITE=${KH_SUITE:-$(basename "$0" .sh)}
KH_FAILED=0

# The agent and the outsider are stock Debian accounts, so no test has
# to add users to the machine.
KH_AGENT_USER=daemon
KH_AGENT_UID=$(id -u daemon)
KH_OTHER_USER=nobody
KH_OTHER_UID=$(id -u nobody)

pass() {
	echo "PASS: $KH_SUITE/$1"
}

fail() {
	echo "FAIL: $KH_SUITE/$1: $2"
	KH_FAILED=1
}

# check NAME COMMAND...: passes when COMMAND exits 0.
check() {
	name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi
}

# as_agent COMMAND...: runs COMMAND as the agent account.
as_agent() {
	setpriv --reuid "$KH_AGENT_USER" --regid "$KH_AGENT_USER" \
		--init-groups -- "$@"
}

as_other() {
	setpriv --reuid "$KH_OTHER_USER" --regid nogroup --clear-groups -- "$@"
}

# reason_of PATH: the caller's last denial reason for a secret path.
reason_of() {
	getfattr --only-values -n user.keyhole.reason "$1" 2>/dev/null
}

kh_setup() {
	KH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/keyhole-$KH_SUITE.XXXXXX")
	chmod 0755 "$KH_TMP"
	KH_KEYS="$KH_TMP/keys"
	KH_CREDSTORE="$KH_TMP/credstore"
	KH_AUDIT="$KH_TMP/audit"
	KH_PERMITS="$KH_TMP/permits"
	KH_MOUNT="$KH_TMP/secrets"
	KH_SOCKET="$KH_TMP/run/broker.sock"
	KH_CONFIG="$KH_TMP/keyhole.json"
	KH_POLICY="$KH_TMP/policy.json"
	KH_LOG="$KH_TMP/keyholed.log"
	mkdir -p "$KH_TMP/run" "$KH_PERMITS" "$KH_MOUNT"
	install -d -m 0700 "$KH_CREDSTORE"
	"$KEYHOLE" keygen --dir "$KH_KEYS" >/dev/null || return 1
	cat >"$KH_CONFIG" <<JSON
{
  "tenant": "demo",
  "env": "dev",
  "broker_id": "broker-test",
  "permit_key": "keys/permit.jwk",
  "audit_key": "keys/audit.jwk",
  "policy": "policy.json",
  "audit_dir": "audit",
  "socket": "$KH_SOCKET",
  "permits_dir": "$KH_PERMITS",
  "secrets_mount": "$KH_MOUNT",
  "backend_dir": "$KH_BUILD/backends",
  "backends": {
    "local": {"type": "file", "dir": "credstore"}
  }
}
JSON
}

# kh_secret NAME VALUE: stores one credential in the file backend.
kh_secret() {
	(umask 077 && printf '%s' "$2" >"$KH_CREDSTORE/$1")
}

# kh_random_hex: 12 random bytes as 24 hex digits, the variable part of
# a test secret.
kh_random_hex() {
	head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# kh_write_policy RULE...: writes $KH_POLICY for tenant demo and env dev
# with these rules in order. A RULE is the text of one JSON rule object,
# or of several separated by commas.
kh_write_policy() {
	rules=$1
	shift
	for rule in "$@"; do
		rules="$rules,
$rule"
	done
	cat >"$KH_POLICY" <<JSON
{
  "tenant": "demo",
  "env": "dev",
  "max_ttl": 300,
  "rules": [
$rules
  ]
}
JSON
}

# kh_agent_rule ID TOOL SECRET TTL USES: the text of a rule that permits
# the agent the tool_call TOOL and grants local/SECRET for TTL seconds
# and USES opens.
kh_agent_rule() {
	cat <<JSON
    {
      "id": "$1",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {"type": "tool_call", "tool": "$2"},
      "grant": {"secrets": ["local/$3"], "ttl": $4, "uses": $5}
    }
JSON
}

# kh_report_setup: starts the report server with a random password and
# stores its netrc as local/report.netrc. Sets password, netrc (the path
# of the netrc in the mount) and url (the report on the server).
kh_report_setup() {
	password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	kh_http_start report "$password" || return 1
	kh_secret report.netrc "machine 127.0.0.1 login report password $password"
	netrc="$KH_MOUNT/local/report.netrc"
	url="http://127.0.0.1:$KH_HTTP_PORT/report"
}

# kh_fetch_report_rule: the text of a rule that permits the agent to run
# curl --netrc-file $netrc on any http://127.0.0.1 URL, granting the
# netrc for one open within 120 s.
kh_fetch_report_rule() {
	cat <<JSON
    {
      "id": "fetch-report",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {
        "type": "exec",
        "exe": "/usr/bin/curl",
        "argv": ["curl", "--netrc-file", "$netrc", "http://127.0.0.1:*/**"]
      },
      "grant": {"secrets": ["local/report.netrc"], "ttl": 120, "uses": 1}
    }
JSON
}

# kh_demo_rules: the text of the demo's rules. A stripe.charge above
# 10000 is denied, the agent may fetch the report, and the agent may make
# other stripe calls, at most 10 a minute, each granting local/stripe_key.
kh_demo_rules() {
	cat <<JSON
    {
      "id": "deny-large-charges",
      "effect": "deny",
      "action": {"type": "tool_call", "tool": "stripe.charge"},
      "when": [{"path": "action.params.amount", "op": ">", "value": 10000}]
    },
$(kh_fetch_report_rule),
    {
      "id": "small-charges",
      "effect": "permit",
      "agents": {"users": ["$KH_AGENT_USER"]},
      "action": {"type": "tool_call", "tool": "stripe.*"},
      "limits": {"rate": {"count": 10, "per": 60}},
      "grant": {"secrets": ["local/stripe_key"], "ttl": 60, "uses": 1}
    }
JSON
}

kh_start() {
	"$KEYHOLED" --config "$KH_CONFIG" --stderr >>"$KH_LOG" 2>&1 &
	KH_DAEMON_PID=$!
	if ! "$KEYHOLE" status --socket "$KH_SOCKET" --wait 20 >/dev/null; then
		echo "keyholed did not become ready; its log follows" >&2
		tail -n 30 "$KH_LOG" >&2
		return 1
	fi
}

kh_stop() {
	if [ -n "${KH_DAEMON_PID:-}" ]; then
		kill -TERM "$KH_DAEMON_PID" 2>/dev/null
		# A keyholed that hangs on SIGTERM must not hang the test run.
		if ! kh_wait_until 100 kh_daemon_gone; then
			echo "keyholed did not stop within 10 s of SIGTERM; killing it" >&2
			kill -KILL "$KH_DAEMON_PID" 2>/dev/null
			kh_wait_until 20 kh_daemon_gone || kh_force_unmount "$KH_MOUNT"
		fi
		wait "$KH_DAEMON_PID" 2>/dev/null
		KH_DAEMON_PID=
	fi
	if [ -n "${KH_MOUNT:-}" ] && kh_is_mounted "$KH_MOUNT"; then
		fusermount3 -u "$KH_MOUNT" 2>/dev/null || kh_force_unmount "$KH_MOUNT"
	fi
}

# kh_daemon_gone: keyholed has exited. A zombie counts once its last
# thread is gone, because then only its exit status is left for wait. A
# zombie with a thread stuck in a FUSE request has not exited.
kh_daemon_gone() {
	proc="/proc/$KH_DAEMON_PID"
	[ -d "$proc" ] || return 0
	rest=$(sed 's/.*) //' "$proc/stat" 2>/dev/null) || return 0
	[ "${rest%% *}" = Z ] && [ "$(ls "$proc/task" 2>/dev/null | wc -l)" -le 1 ]
}

# kh_is_mounted PATH: reads /proc/self/mountinfo, because stat() on a
# FUSE mount whose daemon hangs blocks for good.
kh_is_mounted() {
	awk -v path="$1" '$5 == path { found = 1 } END { exit !found }' \
		/proc/self/mountinfo
}

# kh_force_unmount PATH: a forced unmount aborts the FUSE connection, so
# every request still waiting on it fails, even one from the daemon's
# own threads, and the daemon can exit. Then the mount is detached. -c
# skips path canonicalisation, which would stat the hung mount.
kh_force_unmount() {
	umount -f -c "$1" 2>/dev/null
	umount -l -c "$1" 2>/dev/null
}

kh_cleanup() {
	kh_stop
	kh_remove_users
	if [ -n "${KH_HTTP_PID:-}" ]; then
		kill "$KH_HTTP_PID" 2>/dev/null
		wait "$KH_HTTP_PID" 2>/dev/null
	fi
	[ -n "${KH_TMP:-}" ] && rm -rf "$KH_TMP"
}

# kh_http_start USER PASSWORD: the Basic-auth report server on loopback;
# sets KH_HTTP_PORT.
kh_http_start() {
	printf '%s\n' "$2" >"$KH_TMP/http.password"
	chmod 0600 "$KH_TMP/http.password"
	python3 "$KH_ROOT/tests/support/basic_auth_server.py" \
		"$KH_TMP/http.port" "$1" "$KH_TMP/http.password" \
		2>>"$KH_TMP/http.log" &
	KH_HTTP_PID=$!
	tries=0
	while [ ! -s "$KH_TMP/http.port" ] && [ "$tries" -lt 100 ]; do
		sleep 0.1
		tries=$((tries + 1))
	done
	KH_HTTP_PORT=$(cat "$KH_TMP/http.port" 2>/dev/null)
	[ -n "$KH_HTTP_PORT" ]
}

# Helpers for the integration tests (tests/integration/broker_*.sh).

# Helper scripts run under the agent and outsider accounts, so they need
# the system interpreter: a per-user one (pyenv, a venv) may sit in a
# directory those accounts cannot read. -I keeps the caller's PYTHON*
# variables and user site-packages out.
if [ -x /usr/bin/python3 ]; then
	KH_PYTHON=/usr/bin/python3
else
	KH_PYTHON=$(command -v python3)
fi

# agent_reason PATH, other_reason PATH: the last denial reason of the
# agent (or the outsider) for a secret path.
agent_reason() {
	as_agent getfattr --only-values -n user.keyhole.reason "$1" 2>/dev/null
}

other_reason() {
	as_other getfattr --only-values -n user.keyhole.reason "$1" 2>/dev/null
}

# check_contains NAME TEXT EXPECTED: passes when TEXT contains EXPECTED.
check_contains() {
	case $2 in
	*"$3"*) pass "$1" ;;
	*) fail "$1" "expected \"$3\" in: $2" ;;
	esac
}

# check_equal NAME ACTUAL EXPECTED
check_equal() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		fail "$1" "expected \"$3\", got \"$2\""
	fi
}

# kh_wait_until TENTHS COMMAND...: runs COMMAND every 0.1 s until it
# succeeds, at most TENTHS times; fails when it never did.
kh_wait_until() {
	limit=$1
	shift
	tries=0
	while ! "$@"; do
		tries=$((tries + 1))
		[ "$tries" -ge "$limit" ] && return 1
		sleep 0.1
	done
}

# kh_support_copy: copies tests/support into the temporary tree and sets
# KH_SUPPORT, so the agent and the outsider can read the helpers whatever
# the permissions of the checkout.
kh_support_copy() {
	KH_SUPPORT="$KH_TMP/support"
	mkdir -p "$KH_SUPPORT" &&
		cp "$KH_ROOT"/tests/support/*.py "$KH_SUPPORT/" &&
		chmod 0755 "$KH_SUPPORT" && chmod 0644 "$KH_SUPPORT"/*.py
}

# kh_json ARGS...: tests/support/jsontool.py, run as the caller (root).
kh_json() {
	"$KH_PYTHON" -I "$KH_ROOT/tests/support/jsontool.py" "$@"
}

# kh_kill_daemon: kills keyholed with SIGKILL, as a crash would, and
# lazily detaches its dead FUSE mount so that a new keyholed can mount.
kh_kill_daemon() {
	if [ -n "${KH_DAEMON_PID:-}" ]; then
		kill -KILL "$KH_DAEMON_PID" 2>/dev/null
		kh_wait_until 20 kh_daemon_gone || kh_force_unmount "$KH_MOUNT"
		wait "$KH_DAEMON_PID" 2>/dev/null
		KH_DAEMON_PID=
	fi
	if kh_is_mounted "$KH_MOUNT"; then
		fusermount3 -u -z "$KH_MOUNT" 2>/dev/null || umount -l -c "$KH_MOUNT"
	fi
}

# kh_abort NAME WHY: reports a failure that leaves nothing else to test
# and exits; the EXIT trap still cleans up.
kh_abort() {
	fail "$1" "$2"
	[ -f "${KH_LOG:-}" ] && tail -n 20 "$KH_LOG" >&2
	exit 1
}

# kh_require_root: the integration tests mount FUSE and switch users.
kh_require_root() {
	[ "$(id -u)" -eq 0 ] ||
		kh_abort setup "run as root: the test mounts FUSE and switches users"
}

# kh_test_setup [--support]: the start of every broker test. Sets the
# cleanup trap, requires root, runs kh_setup and creates $out for the
# output of commands. With --support it also runs kh_support_copy. Aborts
# the test when a step fails.
kh_test_setup() {
	trap kh_cleanup EXIT INT TERM
	kh_require_root
	kh_setup || kh_abort setup "kh_setup failed"
	if [ "${1:-}" = --support ]; then
		kh_support_copy || kh_abort setup "cannot copy tests/support"
	fi
	out="$KH_TMP/out"
	mkdir -p "$out"
}

# kh_make_user PREFIX [USERADD-OPTION...]: adds the temporary account
# PREFIX-<pid>, with its own group, sh as its shell and a home under
# /home (a home under /tmp would be readable through the agent profile's
# /tmp rule). Sets KH_USER and KH_USER_HOME. kh_cleanup removes the
# account and its home again. Aborts the test when the account exists
# already or useradd fails. useradd allows names of 32 characters.
kh_make_user() {
	KH_USER="$1-$$"
	shift
	KH_USER_HOME="/home/$KH_USER"
	if getent passwd "$KH_USER" >/dev/null; then
		kh_abort setup "account $KH_USER exists already"
	fi
	useradd --create-home --home-dir "$KH_USER_HOME" --shell /bin/sh \
		--user-group "$@" "$KH_USER" >>"$out/useradd.err" 2>&1 ||
		kh_abort setup "useradd $KH_USER failed: $(cat "$out/useradd.err")"
	KH_MADE_USERS="${KH_MADE_USERS:-} $KH_USER"
}

# kh_remove_users: removes the accounts kh_make_user added, with their
# homes. userdel fails while a process of the account is left, so the
# caller ends those first.
kh_remove_users() {
	for made_user in ${KH_MADE_USERS:-}; do
		if ! userdel --remove "$made_user" 2>"$KH_TMP/userdel.err"; then
			echo "userdel $made_user failed: $(cat "$KH_TMP/userdel.err")" >&2
		fi
	done
	KH_MADE_USERS=
}

# kh_probe_output VALUE: what probe.py prints after reading a secret
# with this value.
kh_probe_output() {
	printf 'ok sha256=%s bytes=%s' \
		"$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)" "${#1}"
}

# kh_test_secret NAME PREFIX: stores PREFIX and random hex digits as the
# secret local/NAME. Sets secret (the value), secret_path (its file in
# the mount) and secret_ok (what probe.py prints after reading it).
kh_test_secret() {
	secret="$2$(kh_random_hex)"
	kh_secret "$1" "$secret"
	secret_path="$KH_MOUNT/local/$1"
	secret_ok=$(kh_probe_output "$secret")
}

# kh_agent_request ARGS...: runs keyhole request as the agent with ARGS
# such as --action JSON or --exec -- CMD... It prints the permit path and
# appends errors to $out/request.err.
kh_agent_request() {
	as_agent "$KEYHOLE" request --socket "$KH_SOCKET" "$@" 2>>"$out/request.err"
}

# kh_request_tool TOOL: the agent's permit for the tool_call TOOL with
# no parameters.
kh_request_tool() {
	kh_agent_request --action "{\"type\":\"tool_call\",\"tool\":\"$1\"}"
}

# kh_probe_with PERMIT ARGS...: the agent, holding PERMIT, runs probe.py
# with ARGS. Errors go to $out/probe.err.
kh_probe_with() {
	probe_permit=$1
	shift
	as_agent "$KEYHOLE" exec --permit "$probe_permit" -- \
		"$KH_PYTHON" -I "$KH_SUPPORT/probe.py" "$@" 2>>"$out/probe.err"
}

# kh_check_daemon_log NAME: stops keyholed, then fails NAME when its log
# has an AddressSanitizer, LeakSanitizer or UBSan report (a SANITIZE=1
# build writes them to stderr, which kh_start sends to the log).
kh_check_daemon_log() {
	kh_stop
	if grep -q 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' \
		"$KH_LOG" 2>/dev/null; then
		fail "$1" "sanitizer report in $KH_LOG: $(grep -m 1 'ERROR\|runtime error' "$KH_LOG")"
	else
		pass "$1"
	fi
}
