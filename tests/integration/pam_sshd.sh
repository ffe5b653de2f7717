#!/bin/sh
# One real login through pam_keyhole.so: Debian's sshd on a loopback
# port with a temporary config, host key and agent account. The agent
# logs in with a test key and runs a command that gets a permit, reads
# a secret through the FUSE mount and finds itself confined. After the
# logout, the session's permit is revoked.
#
# sshd has no option for its PAM service name: it passes the name it
# was started under (argv[0]'s last component) to pam_start. The test
# starts it through a symlink with a unique name and installs
# /etc/pam.d/<that name>, a copy of Debian's /etc/pam.d/sshd plus the
# pam_keyhole.so line. No existing system file changes, and the EXIT
# trap removes the service file, the account and /run/sshd when the test
# created it.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

SSHD=/usr/sbin/sshd
PAM_MODULE="$KH_BUILD/pam_keyhole.so"
TRY_SYSCALL="$KH_BUILD/tests/support/try_syscall"
# The pid keeps parallel runs apart.
agents_group="khagents$$"
service="keyhole-test-sshd-$$"
pam_file="/etc/pam.d/$service"
sshd_pid=
made_run_sshd=
made_group=

sshd_cleanup() {
	if [ -n "$sshd_pid" ]; then
		kill -TERM "$sshd_pid" 2>/dev/null
		wait "$sshd_pid" 2>/dev/null
	fi
	[ -f "$pam_file" ] && rm -f "$pam_file"
	# The logout has ended every process of the account by now.
	kh_remove_users
	[ -n "$made_group" ] && groupdel "$agents_group"
	[ -n "$made_run_sshd" ] && rmdir /run/sshd
	kh_cleanup
}

kh_test_setup --support
trap sshd_cleanup EXIT INT TERM

[ -x "$SSHD" ] || kh_abort setup "$SSHD not found: install openssh-server"
[ -f "$PAM_MODULE" ] || kh_abort setup "$PAM_MODULE not built: run make all"
[ -x "$TRY_SYSCALL" ] || kh_abort setup "$TRY_SYSCALL not built: run make unit"
[ -e "$pam_file" ] && kh_abort setup "$pam_file exists already"
if getent group "$agents_group" >/dev/null; then
	kh_abort setup "group $agents_group exists already"
fi

# The agent account, with a key it may log in with. The module matches
# it by group=, through a supplementary group.
ssh_dir="$KH_TMP/ssh"
mkdir -p "$ssh_dir" && chmod 0700 "$ssh_dir"
groupadd "$agents_group" || kh_abort setup "groupadd $agents_group failed"
made_group=1
kh_make_user khpam -G "$agents_group"
agent=$KH_USER
home=$KH_USER_HOME
agent_uid=$(id -u "$agent")
ssh-keygen -q -t ed25519 -N '' -C "$agent" -f "$ssh_dir/client_key" ||
	kh_abort setup "ssh-keygen failed for the client key"
ssh-keygen -q -t ed25519 -N '' -C host -f "$ssh_dir/host_key" ||
	kh_abort setup "ssh-keygen failed for the host key"
install -d -m 0700 -o "$agent" -g "$agent" "$home/.ssh"
install -m 0600 -o "$agent" -g "$agent" "$ssh_dir/client_key.pub" \
	"$home/.ssh/authorized_keys"
# A credential file that the agent owns but the agent profile leaves
# out of its Landlock rules.
install -d -m 0700 -o "$agent" -g "$agent" "$home/.aws"
printf '[default]\n' >"$home/.aws/credentials"
chown "$agent:$agent" "$home/.aws/credentials"

# The session's policy: the agent may request the tool_call sshd.read,
# which grants local/login_secret.
KH_AGENT_USER=$agent
kh_write_policy "$(kh_agent_rule login-read sshd.read login_secret 120 5)"
kh_test_secret login_secret "login-$(kh_random_hex)-"
kh_start || kh_abort setup "keyholed did not start"

# The built-in agent profile lets the session run programs only from
# the system directories. The test's programs live in the build tree and
# in $KH_TMP, so the test's profile adds those to it.
profile_dir="$KH_TMP/confine.d"
install -d -m 0755 "$profile_dir"
cat >"$profile_dir/sshd-test.json" <<JSON
{
  "base": "agent",
  "description": "agent, plus the test's build tree",
  "filesystem": {"read_exec": ["$KH_BUILD", "$KH_TMP/support"]}
}
JSON
chmod 0644 "$profile_dir/sshd-test.json"
cp "$TRY_SYSCALL" "$KH_TMP/support/try_syscall"

# The PAM service: Debian's sshd stack plus pam_keyhole.so at the end.
{
	cat /etc/pam.d/sshd
	printf 'session required %s group=%s socket=%s profile=sshd-test profile_dir=%s\n' \
		"$PAM_MODULE" "$agents_group" "$KH_SOCKET" "$profile_dir"
} >"$pam_file" || kh_abort setup "cannot write $pam_file"

if [ ! -d /run/sshd ]; then
	mkdir -m 0755 /run/sshd && made_run_sshd=1
fi

# sshd re-executes itself by its argv[0], so the symlink keeps the name.
ln -s "$SSHD" "$ssh_dir/$service"
port=$("$KH_PYTHON" -I -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
cat >"$ssh_dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $ssh_dir/host_key
PidFile $ssh_dir/sshd.pid
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
AllowUsers $agent
PermitRootLogin no
PrintMotd no
LogLevel VERBOSE
CONF
"$ssh_dir/$service" -t -f "$ssh_dir/sshd_config" ||
	kh_abort setup "sshd -t rejected the test config"
"$ssh_dir/$service" -D -f "$ssh_dir/sshd_config" -E "$ssh_dir/sshd.log" &
sshd_pid=$!

sshd_listening() {
	grep -q "Server listening on 127.0.0.1 port $port" "$ssh_dir/sshd.log" 2>/dev/null
}
kh_wait_until 100 sshd_listening ||
	kh_abort setup "sshd did not listen on 127.0.0.1:$port: $(tail -n 5 "$ssh_dir/sshd.log")"

# What the agent runs after login: its environment, a permit, the
# secret, and the confinement the session inherited.
# LeakSanitizer stops the process's threads with ptrace, which the
# agent profile denies, so a SANITIZE=1 keyhole runs without it here.
cat >"$KH_TMP/login.sh" <<SH
export ASAN_OPTIONS=detect_leaks=0
echo "session=\$KEYHOLE_SESSION"
echo "permits=\$KEYHOLE_PERMITS"
echo "secrets=\$KEYHOLE_SECRETS"
grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t'
echo "ptrace=\$($KH_TMP/support/try_syscall ptrace)"
echo "aws=\$($KH_TMP/support/try_syscall open \$HOME/.aws/credentials)"
permit=\$($KEYHOLE request --socket $KH_SOCKET \
	--action '{"type":"tool_call","tool":"sshd.read"}') || exit 1
echo "permit=\$permit"
cp "\$permit" $KH_TMP/agent/permit.copy
echo "secret=\$($KEYHOLE exec --permit "\$permit" -- cat $secret_path)"
SH
chmod 0644 "$KH_TMP/login.sh"
install -d -m 0700 -o "$agent" -g "$agent" "$KH_TMP/agent"

ssh -F /dev/null -i "$ssh_dir/client_key" -p "$port" \
	-o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
	-o UserKnownHostsFile="$ssh_dir/known_hosts" -o LogLevel=ERROR \
	"$agent@127.0.0.1" "sh $KH_TMP/login.sh" >"$out/login.out" 2>"$out/login.err"
status=$?
if [ "$status" -eq 0 ]; then
	pass login_exit_status
else
	fail login_exit_status "ssh exited with $status: $(tail -n 5 "$out/login.err")"
fi
login=$(cat "$out/login.out")

# field NAME: the value of the line NAME=... in the login's output.
field() {
	sed -n "s/^$1=//p" "$out/login.out" | head -n 1
}

session=$(field session)
case $session in
??????????????????????) pass login_has_session_id ;;
*) fail login_has_session_id "KEYHOLE_SESSION is \"$session\"; output: $login $(cat "$out/login.err")" ;;
esac
check_equal login_permits_env "$(field permits)" "$KH_PERMITS/$agent_uid"
check_equal login_secrets_env "$(field secrets)" "$KH_MOUNT"
check_contains login_seccomp_filter "$login" "Seccomp:2"
check_contains login_no_new_privs "$login" "NoNewPrivs:1"
check_equal login_ptrace_denied "$(field ptrace)" EPERM
check_equal login_aws_credentials_denied "$(field aws)" EACCES
check_equal login_reads_secret "$(field secret)" "$secret"

permit=$(field permit)
jti=$(basename "$permit")
check_equal permit_in_agent_dir "$(dirname "$permit")" "$KH_PERMITS/$agent_uid"
check_equal permit_bound_to_session "$(kh_json claim "$KH_TMP/agent/permit.copy" sid)" "$session"

# The logout closes the PAM session in sshd's privileged process, after
# the client has its exit status, so the revocation may come a moment
# later.
permit_gone() {
	[ -n "$jti" ] && [ ! -e "$permit" ]
}
kh_wait_until 100 permit_gone
check logout_removes_permit_file permit_gone
check_equal logout_revoke_record \
	"$(kh_json count "$KH_AUDIT/dpr.jsonl" type=revoke jti="$jti")" 1
check_contains keyholed_logged_close "$(cat "$KH_LOG")" \
	"session closed: session=$session uid=$agent_uid"

# The permit's text, used after the logout, opens nothing.
value=$(as_agent "$KEYHOLE" exec --permit "$KH_TMP/agent/permit.copy" -- \
	cat "$secret_path" 2>>"$out/after.err")
check_equal revoked_permit_reads_nothing "${value:+value}" ""
check_equal revoked_permit_reason "$(agent_reason "$secret_path")" revoked
if grep -q "PAM: pam_open_session\|PAM: pam_close_session" "$ssh_dir/sshd.log"; then
	fail sshd_pam_clean "sshd logged a PAM error: $(grep 'PAM:' "$ssh_dir/sshd.log")"
else
	pass sshd_pam_clean
fi

# A login with a pty: the confined monitor allocates it and records the
# login in utmp and wtmp.
ssh -tt -F /dev/null -i "$ssh_dir/client_key" -p "$port" \
	-o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
	-o UserKnownHostsFile="$ssh_dir/known_hosts" -o LogLevel=ERROR \
	"$agent@127.0.0.1" 'tty; grep "^Seccomp:" /proc/self/status' \
	</dev/null >"$out/pty.out" 2>"$out/pty.err"
check_equal pty_login_exit_status "$?" 0
pty=$(tr -d '\r\t' <"$out/pty.out")
check_contains pty_login_has_pts "$pty" /dev/pts/
check_contains pty_login_confined "$pty" Seccomp:2
errors=$(grep 'error:\|fatal:' "$ssh_dir/sshd.log")
check_equal sshd_logged_no_errors "$errors" ""

kh_stop
"$KEYHOLE" audit verify --dir "$KH_AUDIT" --key "$KH_KEYS/audit.pub.jwk" \
	>"$out/verify.out" 2>&1
check_equal audit_log_verifies "$?" 0
exit "$KH_FAILED"
