#!/bin/sh
# The installed packages under systemd as PID 1: boots a Debian 12
# container with systemd-nspawn, installs keyhole and libpam-keyhole,
# and follows the admin's steps from docs/quickstart.md with the real
# unit: systemctl enable --now (Type=notify), a login through su with
# the pam-auth-update profile, a secret read by the agent through the
# mount, systemctl reload, journal priorities, and systemctl stop
# unmounting the mount. The unit's capability set, system call filter,
# device policy and namespace settings are applied by systemd here.
#
# Usage: tests/install/boot.sh DEB-DIR
#
# The base system comes from the same cached debootstrap tarball as
# run.sh. The container shares the host's network only for apt, which
# fetches systemd and the packages' dependencies from the machine's own
# mirror. Prints PASS:/FAIL: lines and "N passed, N failed". Run as root.
set -u
KI_HERE=$(CDPATH='' cd "$(dirname "$0")" && pwd)
KH_ROOT=$(CDPATH='' cd "$KI_HERE/../.." && pwd)
. "$KI_HERE/chroot.sh"
KI_PREFIX=boot
. "$KI_HERE/checks.sh"

KI_SUITE=${KI_SUITE:-bookworm}
KI_CACHE=${KI_CACHE:-$KH_ROOT/build/install-test}
KB_NSPAWN_PID=
KB_INIT=

# inside COMMAND...: runs COMMAND in the booted container's namespaces
# with a clean environment, as an admin's root shell there would.
inside() {
	nsenter -t "$KB_INIT" -a env -i PATH="$KI_APT_PATH" HOME=/root \
		LANG=C.UTF-8 TERM=dumb "$@"
}

# offline COMMAND...: runs COMMAND in the container's tree before boot.
offline() {
	systemd-nspawn -q --keep-unit --register=no -D "$KI_ROOT" --pipe \
		env -i PATH="$KI_APT_PATH" HOME=/root LANG=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}

# Stops the container: SIGTERM makes nspawn ask systemd to power off.
shutdown_container() {
	[ -n "$KB_NSPAWN_PID" ] || return 0
	kill -TERM "$KB_NSPAWN_PID" 2>/dev/null
	tries=0
	while kill -0 "$KB_NSPAWN_PID" 2>/dev/null && [ "$tries" -lt 300 ]; do
		sleep 0.1
		tries=$((tries + 1))
	done
	kill -KILL "$KB_NSPAWN_PID" 2>/dev/null
	wait "$KB_NSPAWN_PID" 2>/dev/null
	KB_NSPAWN_PID=
}

finish() {
	status=$?
	trap - EXIT INT TERM
	shutdown_container
	if [ -n "${KI_ROOT:-}" ] && ki_unmount_all; then
		pass mounts_removed
		rm -rf "$KI_WORK"
	elif [ -n "${KI_ROOT:-}" ]; then
		fail mounts_removed "still mounted: $(ki_mounts_below | tr '\n' ' ')"
	fi
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$status" -eq 0 ] && exit 0
	exit 1
}

# Waits until the container's systemd has finished booting.
wait_booted() {
	tries=0
	while [ "$tries" -lt 600 ]; do
		KB_INIT=$(pgrep -P "$KB_NSPAWN_PID" | head -n 1)
		if [ -n "$KB_INIT" ]; then
			state=$(inside systemctl is-system-running 2>/dev/null)
			case $state in
			running | degraded) return 0 ;;
			esac
		fi
		sleep 0.1
		tries=$((tries + 1))
	done
	return 1
}

# The package's config mounts at /run/keyhole/mnt/secrets, and
# /run/secrets is a symlink to it.
secrets_mounted() {
	inside awk '$5 == "/run/keyhole/mnt/secrets" && $9 == "fuse.keyhole" { found = 1 }
		END { exit !found }' /proc/self/mountinfo
}

login_ready() {
	grep -q '^ready$' "$KI_WORK/long.out"
}

[ "$(id -u)" -eq 0 ] || abort root "run as root"
[ $# -eq 1 ] || abort usage "usage: tests/install/boot.sh DEB-DIR"
command -v systemd-nspawn >/dev/null ||
	abort nspawn "systemd-nspawn not found: run make deps"
deb_dir=$(CDPATH='' cd "$1" && pwd) || abort debs "no directory $1"
KI_WORK=$(mktemp -d /tmp/keyhole-boot.XXXXXX)
KI_ROOT="$KI_WORK/root"
KI_MOUNTS="$KI_WORK/mounts"
: >"$KI_MOUNTS"
mkdir -p "$KI_ROOT"
trap finish EXIT
trap 'exit 1' INT TERM

# 1. The base system, systemd and the packages.
ki_bootstrap "$KI_WORK/bootstrap.log" ||
	abort bootstrap "no base system: $(tail -n 3 "$KI_WORK/bootstrap.log")"
cp "$deb_dir"/keyhole_*.deb "$deb_dir"/libpam-keyhole_*.deb "$KI_ROOT/root/" ||
	abort debs "no keyhole packages in $deb_dir: run make deb"
offline sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus libpam-systemd && apt-get install -y -qq /root/keyhole_*.deb /root/libpam-keyhole_*.deb' \
	>"$KI_WORK/apt.log" 2>&1 ||
	abort packages_installed "apt-get failed: $(tail -n 5 "$KI_WORK/apt.log")"
pass packages_installed
# policy-rc.d kept the installs from starting services; systemctl does
# not read it, but the booted system should look like a real one.
rm -f "$KI_ROOT/usr/sbin/policy-rc.d"

# 2. Boot, with the host's /dev/fuse as the container's. nspawn puts
# its own system call filter on the whole container. That filter lacks
# pidfd_getfd(2), which keyholed uses to check a caller's permit
# descriptors, so it is added here; the unit's own filter allows it.
systemd-nspawn -q --keep-unit --register=no -b --bind=/dev/fuse \
	--system-call-filter=pidfd_getfd \
	-D "$KI_ROOT" >"$KI_WORK/console.log" 2>&1 &
KB_NSPAWN_PID=$!
wait_booted || abort booted "systemd did not finish booting: $(tail -n 5 "$KI_WORK/console.log")"
pass booted
check_equal unit_disabled_after_install "$(inside systemctl is-enabled keyholed)" disabled

# 3. The quickstart's first policy and agent account.
printf 'machine reports.example.com login report password boot-%s\n' \
	"$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$KI_WORK/netrc"
inside install -m 0600 /dev/null /etc/keyhole/credstore/report.netrc
cp "$KI_WORK/netrc" "$KI_ROOT/etc/keyhole/credstore/report.netrc"
cat >"$KI_ROOT/etc/keyhole/policy.json" <<'JSON'
{
  "tenant": "default",
  "env": "prod",
  "max_ttl": 300,
  "rules": [
    {
      "id": "read-report-netrc",
      "effect": "permit",
      "agents": {"groups": ["keyhole-agents"]},
      "action": {"type": "exec", "exe": "/usr/bin/cat",
                 "argv": ["cat", "/run/secrets/local/report.netrc"]},
      "grant": {"secrets": ["local/report.netrc"], "ttl": 120, "uses": 1}
    }
  ]
}
JSON
inside keyholed --check-config >"$KI_WORK/check.log" 2>&1
check_equal check_config_passes "$?" 0

inside systemctl enable --now keyholed >"$KI_WORK/enable.log" 2>&1
check_equal enable_now_succeeds "$?" 0
check_equal service_active "$(inside systemctl is-active keyholed)" active
check_contains status_text_after_ready \
	"$(inside systemctl show -p StatusText --value keyholed)" "serving"
if secrets_mounted; then pass mount_visible_after_ready; else fail mount_visible_after_ready "no fuse.keyhole at /run/secrets"; fi
inside test -S /run/keyhole/broker.sock
check_equal socket_after_ready "$?" 0

inside keyhole doctor --no-backends >"$KI_WORK/doctor.out" 2>&1
check_equal doctor_passes "$?" 0

inside useradd -m -s /bin/sh -G keyhole-agents agent
inside pam-auth-update --enable keyhole >"$KI_WORK/pam.log" 2>&1
check_equal pam_profile_enabled "$?" 0

# 4. A login through su, with the PAM profile, reading the secret.
inside su -l agent -c 'P=$(keyhole request --exec -- cat /run/secrets/local/report.netrc) && keyhole exec --permit "$P" -- cat /run/secrets/local/report.netrc; grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; echo "session=$KEYHOLE_SESSION"' \
	>"$KI_WORK/login.out" 2>"$KI_WORK/login.err"
if [ "$(head -n 1 "$KI_WORK/login.out")" = "$(cat "$KI_WORK/netrc")" ]; then
	pass agent_reads_secret
else
	fail agent_reads_secret "$(cat "$KI_WORK/login.out" "$KI_WORK/login.err";
		inside journalctl -u keyholed --no-pager -o cat -p notice | tail -n 3)"
fi
check_contains login_confined "$(cat "$KI_WORK/login.out")" "NoNewPrivs:	1"
check_contains login_has_session "$(cat "$KI_WORK/login.out")" "session="
check_contains session_in_journal \
	"$(inside journalctl -u keyholed --no-pager -o cat)" "session opened"
# The confined su closes the session at logout, although the profile
# hides /etc/keyhole/pam_keyhole.conf from it by then.
check_contains session_closed_at_logout \
	"$(inside journalctl -u keyholed --no-pager -o cat)" "session closed"
check_contains pam_close_logged \
	"$(inside journalctl --no-pager -o cat -t su)" "closed for user agent"

# A read without a permit is a denial, logged at notice.
inside su -l agent -c 'cat /run/secrets/local/report.netrc' >/dev/null 2>&1
check_equal unpermitted_read_fails "$?" 1
check_contains denial_at_notice \
	"$(inside journalctl -u keyholed --no-pager -o cat -p notice)" "denied"

# A login confined before a restart reads the new mount: the profile's
# rule names /run/keyhole/mnt, which outlives the mount.
inside su -l agent -c 'read_once() { P=$(keyhole request --exec -- cat /run/secrets/local/report.netrc) && keyhole exec --permit "$P" -- cat /run/secrets/local/report.netrc; }; read_once; echo ready; while [ ! -e /tmp/keyhole-go ]; do sleep 0.1; done; read_once' \
	>"$KI_WORK/long.out" 2>"$KI_WORK/long.err" &
long_pid=$!
tries=0
while ! login_ready && [ "$tries" -lt 300 ]; do
	sleep 0.1
	tries=$((tries + 1))
done
inside systemctl restart keyholed
check_equal active_after_restart "$(inside systemctl is-active keyholed)" active
inside touch /tmp/keyhole-go
wait "$long_pid"
if [ "$(tail -n 1 "$KI_WORK/long.out")" = "$(cat "$KI_WORK/netrc")" ]; then
	pass login_reads_after_restart
else
	fail login_reads_after_restart "$(cat "$KI_WORK/long.out" "$KI_WORK/long.err")"
fi
check_equal secrets_symlink "$(inside readlink /run/secrets)" /run/keyhole/mnt/secrets

# 5. Reload, then stop: the mount goes with the service.
inside systemctl reload keyholed
check_equal reload_succeeds "$?" 0
check_equal active_after_reload "$(inside systemctl is-active keyholed)" active
check_contains reload_in_journal \
	"$(inside journalctl -u keyholed --no-pager -o cat)" "reloading /etc/keyhole/policy.json"
inside systemctl stop keyholed
check_equal stop_succeeds "$?" 0
if secrets_mounted; then fail unmounted_on_stop "fuse.keyhole still at /run/secrets"; else pass unmounted_on_stop; fi
check_contains stopped_in_journal \
	"$(inside journalctl -u keyholed --no-pager -o cat)" "stopping"
