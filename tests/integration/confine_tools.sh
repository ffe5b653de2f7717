#!/bin/sh
# Ordinary tools keep working under keyhole exec --confine=agent: sh,
# curl against a loopback server, python3, git in the home directory,
# and a legacy tool (cat) that reads its secret from the FUSE mount with
# a permit, unchanged. Each run first shows that it is confined.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup --support
cd "$KH_TMP" || kh_abort setup "cannot enter $KH_TMP"

tools_pids=

tools_cleanup() {
	for pid in $tools_pids; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	kh_cleanup
}
trap tools_cleanup EXIT
trap 'exit 1' INT TERM

# The agent here is a temporary account with a writable home under
# /home for git, because daemon's home is /usr/sbin.
kh_make_user kh-tools
tools_user=$KH_USER
tools_home=$KH_USER_HOME
KH_AGENT_USER=$tools_user

# An empty profile directory pins the built-in agent profile, whatever
# /etc/keyhole/confine.d holds on this machine.
profiles="$KH_TMP/confine.d"
mkdir -m 0755 "$profiles"

kh_test_secret legacy "legacy-"
kh_write_policy "$(kh_agent_rule legacy-read tool.legacy legacy 120 5)"
kh_start || kh_abort setup "keyholed did not start"

# agent_confined CMD...: CMD as the agent, with the environment of a
# login (HOME, USER, a minimal PATH), under the built-in agent profile.
agent_confined() {
	as_agent env -i HOME="$tools_home" USER="$tools_user" \
		PATH=/usr/bin:/bin LANG=C.UTF-8 \
		"$KEYHOLE" exec --confine=agent --profile-dir "$profiles" \
		--config "$KH_CONFIG" -- "$@" 2>>"$out/tools.err"
}

# Confinement is on: no_new_privs and a seccomp filter (mode 2).
status=$(agent_confined sh -c 'grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status' |
	tr -s '\t\n' ' ')
check_equal confined_status "$status" "NoNewPrivs: 1 Seccomp: 2 "

# sh: a pipeline, a subshell and an exit status.
check_equal sh_pipeline \
	"$(agent_confined sh -c 'printf "a\nb\nc\n" | grep -c . ; (exit 0)')" 3
agent_confined sh -c 'exit 7'
check_equal sh_exit_status "$?" 7

# curl against a loopback HTTP server that root runs.
mkdir -m 0755 "$KH_TMP/www"
printf 'hello from loopback\n' >"$KH_TMP/www/index.txt"
"$KH_PYTHON" -I "$KH_SUPPORT/loopback_server.py" http "$KH_TMP/http.port" \
	"$KH_TMP/www" 2>>"$out/http.err" &
tools_pids="$tools_pids $!"
kh_wait_until 100 test -s "$KH_TMP/http.port" ||
	kh_abort http_started "the loopback HTTP server did not start"
port=$(cat "$KH_TMP/http.port")
check_equal curl_loopback \
	"$(agent_confined curl -sS --fail "http://127.0.0.1:$port/index.txt")" \
	"hello from loopback"

# python3: threads, a subprocess and a temporary file.
script='
import subprocess, tempfile, threading
results = []
worker = threading.Thread(target=lambda: results.append("thread"))
worker.start()
worker.join()
results.append(subprocess.run(["sh", "-c", "echo child"], capture_output=True,
                              text=True, check=True).stdout.strip())
with tempfile.TemporaryFile() as handle:
    handle.write(b"tmp")
    handle.seek(0)
    results.append(handle.read().decode())
print(" ".join(results))
'
check_equal python3_runs "$(agent_confined "$KH_PYTHON" -I -c "$script")" \
	"thread child tmp"

# git: a repository with one commit in a work directory of the home.
# The directory exists before confinement. Landlock rules for the home
# are set on the entries present when the profile is applied, so that
# ~/.aws and the like can be left out. A new entry directly in the home
# is not reachable.
work="$tools_home/work"
install -d -m 0755 -o "$tools_user" -g "$tools_user" "$work"
agent_confined sh -c "
	set -e
	git init -q '$work/repo'
	cd '$work/repo'
	echo tracked >file.txt
	git add file.txt
	git -c user.name=Agent -c user.email=agent@example.invalid \
		commit -q -m 'first commit'
" >"$out/git.out"
check_equal git_commit_status "$?" 0
check_equal git_log \
	"$(agent_confined git -C "$work/repo" log --format=%s)" "first commit"

# A legacy tool reads its secret through the FUSE mount, unchanged,
# while confined. Without the permit the same read fails.
permit=$(kh_request_tool tool.legacy)
[ -f "$permit" ] || kh_abort permit_minted "no permit for tool.legacy: $(cat "$out/request.err")"
expected=$(printf '%s' "$secret" | sha256sum)
actual=$(as_agent env -i HOME="$tools_home" PATH=/usr/bin:/bin \
	"$KEYHOLE" exec --confine=agent --profile-dir "$profiles" \
	--config "$KH_CONFIG" --permit "$permit" -- cat "$secret_path" \
	2>>"$out/tools.err" | sha256sum)
check_equal legacy_cat_reads_secret "$actual" "$expected"
agent_confined cat "$secret_path" >/dev/null
check_equal legacy_cat_without_permit_fails "$?" 1

# Inside a pam_keyhole session the CLI takes {permits} and {secrets}
# from the KEYHOLE_* variables the module exported, not from defaults.
shown=$(KEYHOLE_PERMITS="/srv/kh-perm/$(id -u)" KEYHOLE_SECRETS=/srv/kh-sec \
	"$KEYHOLE" confine show agent --profile-dir "$profiles" 2>&1)
check_contains show_session_permits "$shown" "\"/srv/kh-perm/$(id -u)\""
check_contains show_session_secrets "$shown" '"/srv/kh-sec"'
shown=$(KEYHOLE_PERMITS=/srv/kh-perm/not-my-uid KEYHOLE_SECRETS=/srv/kh-sec \
	"$KEYHOLE" confine show agent --profile-dir "$profiles" 2>&1)
case $shown in
*kh-sec*) fail show_foreign_permits_ignored "took a KEYHOLE_PERMITS of another uid" ;;
*) pass show_foreign_permits_ignored ;;
esac

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"

