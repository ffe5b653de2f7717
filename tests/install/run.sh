#!/bin/sh
# make install-test: installs the built keyhole and libpam-keyhole
# packages into a fresh Debian chroot, the way an admin would, and
# follows them through first use, remove and purge.
#
# Usage: tests/install/run.sh DEB-DIR
#
# The chroot comes from debootstrap --variant=minbase against the
# machine's own apt mirror and is cached as a tarball in KI_CACHE
# (default build/install-test), keyed by suite, architecture and mirror,
# so only the first run downloads the base system. apt-get in the chroot
# fetches the packages' dependencies from the same mirror. Every mount
# the test makes is undone on exit, also after a failure, and the test
# checks /proc/self/mountinfo afterwards. Prints PASS:/FAIL: lines and
# "N passed, N failed"; exits non-zero on any failure. Run as root.
set -u
KI_HERE=$(CDPATH='' cd "$(dirname "$0")" && pwd)
KH_ROOT=$(CDPATH='' cd "$KI_HERE/../.." && pwd)
. "$KI_HERE/chroot.sh"
KI_PREFIX=install
. "$KI_HERE/checks.sh"

KI_SUITE=${KI_SUITE:-bookworm}
KI_CACHE=${KI_CACHE:-$KH_ROOT/build/install-test}
KI_AGENT=agent
KI_SECRET_NAME=install_token
KI_DAEMON_PID=
KI_FINISHED=no
KI_STARTED=$(date +%s)

# stop_daemon: SIGTERM, then SIGKILL if keyholed is still there after
# 10 s, so a hung broker cannot hang the test.
stop_daemon() {
	[ -n "$KI_DAEMON_PID" ] || return 0
	kill -TERM "$KI_DAEMON_PID" 2>/dev/null
	tries=0
	while kill -0 "$KI_DAEMON_PID" 2>/dev/null && [ "$tries" -lt 100 ]; do
		sleep 0.1
		tries=$((tries + 1))
	done
	if kill -0 "$KI_DAEMON_PID" 2>/dev/null; then
		echo "keyholed did not stop within 10 s of SIGTERM; killing it" >&2
		kill -KILL "$KI_DAEMON_PID" 2>/dev/null
	fi
	wait "$KI_DAEMON_PID" 2>/dev/null
	KI_DAEMON_PID=
}

# finish: the EXIT trap. Stops keyholed, undoes every mount, removes the
# chroot only when nothing is mounted below it any more, and prints the
# summary.
finish() {
	trap - EXIT INT TERM
	if [ "$KI_FINISHED" != yes ] && [ "$failed" -eq 0 ]; then
		fail run_complete "the test stopped before its last step"
	fi
	stop_daemon
	if [ -n "${KI_ROOT:-}" ]; then
		if ki_unmount_all; then
			pass mounts_removed
			rm -rf --one-file-system "$KI_WORK"
		else
			fail mounts_removed "still mounted, $KI_WORK left in place: $(ki_mounts_below | tr '\n' ' ')"
		fi
	fi
	echo "install-test: base system $([ "${KI_CACHE_HIT:-no}" = yes ] && echo "from $KI_TARBALL" || echo "from debootstrap"), $(($(date +%s) - KI_STARTED)) s wall time" >&2
	echo "$passed passed, $failed failed"
	# A trap's last status does not become the script's, so exit here.
	[ "$failed" -eq 0 ] && [ "$KI_FINISHED" = yes ] && exit 0
	exit 1
}

# as_agent COMMAND...: COMMAND in the chroot as the agent account.
as_agent() {
	ki_chroot setpriv --reuid "$KI_AGENT" --regid "$KI_AGENT" --init-groups -- "$@"
}

# find_deb NAME: the one NAME_*.deb in the package folder.
find_deb() {
	set -- "$KI_DEB_DIR/$1"_*.deb
	[ $# -eq 1 ] && [ -f "$1" ] && printf '%s\n' "$1"
}

# has_pam_line FILE: FILE below the chroot contains a pam_keyhole line.
has_pam_line() {
	grep -q 'pam_keyhole\.so' "$KI_ROOT$1"
}

# mode_owner PATH: "MODE UID GID" of PATH below the chroot.
mode_owner() {
	stat -c '%a %u %g' "$KI_ROOT$1" 2>&1
}

# json_field FILE EXPRESSION: evaluates a Python expression over the
# JSON document "doc" in FILE below the chroot.
json_field() {
	python3 -I -c 'import json, sys
doc = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$KI_ROOT$1" "$2"
}

# apply_tmpfiles: creates the "d" entries of the package's tmpfiles.d
# file, as systemd-tmpfiles does at boot, because the chroot has no systemd.
apply_tmpfiles() {
	conf="$KI_ROOT/usr/lib/tmpfiles.d/keyhole.conf"
	[ -f "$conf" ] || return 1
	awk '$1 == "d" { print $2, $3, $4, $5 }' "$conf" |
		while read -r path mode user group; do
			[ "$mode" = - ] && mode=0755
			[ "$user" = - ] && user=root
			[ "$group" = - ] && group=root
			ki_chroot install -d -m "$mode" -o "$user" -g "$group" "$path" ||
				exit 1
		done || return 1
	awk '$1 == "L" { print $2, $7 }' "$conf" |
		while read -r path target; do
			ki_chroot ln -sfn "$target" "$path" || exit 1
		done
}

# --- 1. base system and mounts ---------------------------------------

KI_DEB_DIR=${1:-}
[ "$(id -u)" -eq 0 ] || { echo "run as root: the test uses chroot and mount" >&2; exit 2; }
[ -n "$KI_DEB_DIR" ] || { echo "usage: $0 DEB-DIR" >&2; exit 2; }
trap finish EXIT
trap 'exit 1' INT TERM

keyhole_deb=$(find_deb keyhole) ||
	abort packages_found "need exactly one keyhole_*.deb in $KI_DEB_DIR; run make deb"
pam_deb=$(find_deb libpam-keyhole) ||
	abort packages_found "need exactly one libpam-keyhole_*.deb in $KI_DEB_DIR; run make deb"
pass packages_found

KI_WORK=$(mktemp -d "${TMPDIR:-/tmp}/keyhole-install.XXXXXX")
KI_WORK=$(CDPATH='' cd -P "$KI_WORK" && pwd)
case $KI_WORK in
*[[:space:]]*)
	# The mount bookkeeping splits mountinfo paths on white space.
	rmdir "$KI_WORK"
	abort work_dir "the temporary folder \"$KI_WORK\" contains white space: set TMPDIR"
	;;
esac
KI_ROOT="$KI_WORK/root"
KI_MOUNTS="$KI_WORK/mounts"
mkdir "$KI_ROOT"

ki_bootstrap "$KI_WORK/bootstrap.log" ||
	abort base_system "debootstrap or the cached tarball failed" "$KI_WORK/bootstrap.log"
pass base_system
check_equal chroot_sources "$(ki_suite_sources | wc -l)" \
	"$(grep -c '^deb ' "$KI_ROOT/etc/apt/sources.list")"

ki_mount_all || abort mounts_made "a mount in the chroot failed"
pass mounts_made

ki_chroot apt-get update >"$KI_WORK/apt.log" 2>&1 ||
	abort apt_update "apt-get update in the chroot failed" "$KI_WORK/apt.log"
pass apt_update

# --- 2. install --------------------------------------------------------

mkdir -p "$KI_ROOT/tmp/debs" "$KI_CACHE/archives"
cp "$keyhole_deb" "$pam_deb" "$KI_ROOT/tmp/debs/"
chmod 0755 "$KI_ROOT/tmp/debs"
chmod 0644 "$KI_ROOT/tmp/debs"/*.deb
keyhole_deb="/tmp/debs/$(basename "$keyhole_deb")"
pam_deb="/tmp/debs/$(basename "$pam_deb")"
# Dependencies downloaded by an earlier run are reused from the cache.
cp "$KI_CACHE/archives/"*.deb "$KI_ROOT/var/cache/apt/archives/" 2>/dev/null

ki_chroot apt-get install -y "$keyhole_deb" "$pam_deb" \
	>>"$KI_WORK/apt.log" 2>&1 ||
	abort apt_install "apt-get install of both packages failed" "$KI_WORK/apt.log"
pass apt_install
cp -n "$KI_ROOT/var/cache/apt/archives/"*.deb "$KI_CACHE/archives/" 2>/dev/null

version=$(ki_chroot dpkg-query -W -f='${Version}' keyhole)
upstream=${version%-*}
check_contains keyhole_version "$(ki_chroot keyhole --version 2>&1)" "$upstream"
check keyholed_check_config ki_chroot keyholed --check-config

# --- 3. what the packages put on the system -------------------------------

for key in permit audit; do
	check_equal "key_${key}_private" "$(mode_owner /etc/keyhole/keys/$key.jwk)" "600 0 0"
	check_equal "key_${key}_public" "$(mode_owner /etc/keyhole/keys/$key.pub.jwk)" "644 0 0"
done
check admin_group ki_chroot getent group keyhole-admin

conffiles=$(ki_chroot dpkg-query -W -f='${Conffiles}\n' keyhole)
for conffile in /etc/keyhole/keyhole.json /etc/keyhole/policy.json \
	"$KI_ROOT"/etc/keyhole/confine.d/*.json; do
	conffile=${conffile#"$KI_ROOT"}
	check_contains "conffile_$(basename "$conffile" .json)" "$conffiles" "$conffile "
done
case $conffiles in
*/etc/keyhole/confine.d/*) pass conffile_confine_d ;;
*) fail conffile_confine_d "no /etc/keyhole/confine.d profile among the conffiles: $conffiles" ;;
esac

for page in man1/keyhole.1 man8/keyholed.8 man8/pam_keyhole.8 \
	man5/keyhole.json.5 man5/keyhole-policy.5 man5/keyhole-confine.5; do
	if [ -f "$KI_ROOT/usr/share/man/$page.gz" ] || [ -f "$KI_ROOT/usr/share/man/$page" ]; then
		pass "man_${page#*/}"
	else
		fail "man_${page#*/}" "/usr/share/man/$page.gz is missing"
	fi
done

# A reinstall runs postinst again; it must keep the keys it made.
key_before=$(sha256sum <"$KI_ROOT/etc/keyhole/keys/permit.jwk")
ki_chroot apt-get install -y --reinstall "$keyhole_deb" >>"$KI_WORK/apt.log" 2>&1 ||
	fail reinstall "apt-get install --reinstall keyhole failed"
check_equal reinstall_keeps_keys "$(sha256sum <"$KI_ROOT/etc/keyhole/keys/permit.jwk")" "$key_before"

# --- 4. pam-auth-update --------------------------------------------------

if grep -qx keyhole "$KI_ROOT/var/lib/pam/seen" 2>/dev/null; then
	pass pam_profile_seen
else
	fail pam_profile_seen "postinst did not run pam-auth-update --package (keyhole not in /var/lib/pam/seen)"
fi
check pam_auth_update_package ki_chroot pam-auth-update --package
if has_pam_line /etc/pam.d/common-session; then
	fail pam_default_off "common-session has a pam_keyhole line before the admin enabled the profile"
else
	pass pam_default_off
fi
check pam_enable ki_chroot pam-auth-update --enable keyhole
for file in common-session common-session-noninteractive; do
	if has_pam_line "/etc/pam.d/$file"; then
		pass "pam_enabled_$file"
	else
		fail "pam_enabled_$file" "no pam_keyhole line in /etc/pam.d/$file after pam-auth-update --enable keyhole"
	fi
done
if grep pam_keyhole "$KI_ROOT/etc/pam.d/common-auth" "$KI_ROOT/etc/pam.d/common-account" \
	"$KI_ROOT/etc/pam.d/common-password" >/dev/null 2>&1; then
	fail pam_session_only "pam_keyhole appears outside the session stacks"
else
	pass pam_session_only
fi

# --- 5. first use: the README's walk-through with a file secret -----------

ki_chroot useradd --create-home --shell /bin/sh "$KI_AGENT" >>"$KI_WORK/apt.log" 2>&1 ||
	abort agent_user "useradd $KI_AGENT failed" "$KI_WORK/apt.log"
secret="install-test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
config=/etc/keyhole/keyhole.json
backend=$(json_field "$config" \
	'[n for n, b in doc["backends"].items() if b.get("type") == "file" and b.get("dir") == "/etc/keyhole/credstore"][0]') ||
	abort file_backend "the default config has no file backend on /etc/keyhole/credstore"
mount_dir=$(json_field "$config" 'doc.get("secrets_mount", "/run/secrets")')
secret_path="$mount_dir/$backend/$KI_SECRET_NAME"
(umask 077 && printf '%s' "$secret" >"$KI_ROOT/etc/keyhole/credstore/$KI_SECRET_NAME")

cat >"$KI_ROOT/etc/keyhole/policy.json" <<JSON
{
  "tenant": "$(json_field "$config" 'doc["tenant"]')",
  "env": "$(json_field "$config" 'doc["env"]')",
  "max_ttl": 300,
  "rules": [
    {
      "id": "install-test-read",
      "effect": "permit",
      "agents": {"users": ["$KI_AGENT"]},
      "action": {
        "type": "exec",
        "exe": "/usr/bin/cat",
        "argv": ["cat", "$secret_path"]
      },
      "grant": {"secrets": ["$backend/$KI_SECRET_NAME"], "ttl": 60, "uses": 1}
    }
  ]
}
JSON
check policy_check_config ki_chroot keyholed --check-config

apply_tmpfiles || abort tmpfiles "failed to apply /usr/lib/tmpfiles.d/keyhole.conf in the chroot"
ki_chroot_start "$KI_WORK/keyholed.log" /usr/sbin/keyholed
KI_DAEMON_PID=$KI_STARTED_PID
ki_chroot keyhole status --wait 20 >/dev/null 2>&1 ||
	abort keyholed_start "keyholed did not become ready" "$KI_WORK/keyholed.log"
pass keyholed_start

permit=$(as_agent keyhole request --exec -- cat "$secret_path" 2>"$KI_WORK/request.err") ||
	abort agent_request "no permit: $(cat "$KI_WORK/request.err")"
pass agent_request
check_equal agent_reads_secret \
	"$(as_agent keyhole exec --permit "$permit" -- cat "$secret_path" 2>/dev/null)" "$secret"
check_equal spent_permit_denied \
	"$(as_agent keyhole exec --permit "$permit" -- cat "$secret_path" 2>/dev/null)" ""

stop_daemon
if awk -v p="$KI_ROOT$mount_dir" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo; then
	fail keyholed_unmounts "$mount_dir is still mounted after SIGTERM"
else
	pass keyholed_unmounts
fi
check audit_verify ki_chroot keyhole audit verify --dir /var/lib/keyhole/audit \
	--key /etc/keyhole/keys/audit.pub.jwk

# --- 6. remove, then purge -------------------------------------------------

owned="$KI_WORK/owned"
ki_chroot dpkg -L keyhole libpam-keyhole >"$owned" ||
	abort dpkg_list "dpkg -L keyhole libpam-keyhole failed"
ki_chroot apt-get remove -y keyhole libpam-keyhole >>"$KI_WORK/apt.log" 2>&1 ||
	abort apt_remove "apt-get remove failed" "$KI_WORK/apt.log"
pass apt_remove

for file in common-session common-session-noninteractive; do
	if has_pam_line "/etc/pam.d/$file"; then
		fail "remove_pam_$file" "the pam_keyhole line is still in /etc/pam.d/$file"
	else
		pass "remove_pam_$file"
	fi
done
for path in /usr/bin/keyhole /usr/sbin/keyholed /lib/systemd/system/keyholed.service \
	/usr/share/pam-configs/keyhole; do
	if [ -e "$KI_ROOT$path" ]; then
		fail "remove_drops_$(basename "$path")" "$path is still there"
	else
		pass "remove_drops_$(basename "$path")"
	fi
done
for path in /etc/keyhole/keys/permit.jwk /etc/keyhole/keys/audit.jwk \
	/var/lib/keyhole/audit /etc/keyhole/keyhole.json /etc/keyhole/policy.json; do
	check "remove_keeps_$(basename "$path")" test -e "$KI_ROOT$path"
done

# postrm keeps a credstore that still contains secrets, so the admin
# deletes theirs first. Here that is the one secret the test stored.
rm -f "$KI_ROOT/etc/keyhole/credstore/$KI_SECRET_NAME"
# dpkg drops a removed package without conffiles from its database,
# and apt-get purge rejects a package that dpkg no longer lists, so only
# the packages still in state "rc" (removed, config files left) are
# purged.
purge=""
for package in keyhole libpam-keyhole; do
	state=$(ki_chroot dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null)
	[ "$package" = keyhole ] && check_equal remove_keyhole_state "$state" "rc "
	[ "$state" = "rc " ] && purge="$purge $package"
done
# shellcheck disable=SC2086
ki_chroot apt-get purge -y $purge >>"$KI_WORK/apt.log" 2>&1 ||
	abort apt_purge "apt-get purge$purge failed" "$KI_WORK/apt.log"
pass apt_purge
for package in keyhole libpam-keyhole; do
	state=$(ki_chroot dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null)
	case $state in
	"" | "un "*) pass "purge_forgets_$package" ;;
	*) fail "purge_forgets_$package" "dpkg still lists $package in state \"$state\"" ;;
	esac
done
for path in /etc/keyhole/keys /var/lib/keyhole/audit /etc/keyhole; do
	if [ -e "$KI_ROOT$path" ]; then
		fail "purge_drops_$(basename "$path")" "$path is still there"
	else
		pass "purge_drops_$(basename "$path")"
	fi
done

# A path the packages listed may remain only as a directory that another
# package owns or that still contains other packages' files.
leftover=""
while read -r path; do
	[ "$path" = /. ] && continue
	[ -e "$KI_ROOT$path" ] || [ -L "$KI_ROOT$path" ] || continue
	if [ -d "$KI_ROOT$path" ]; then
		[ -n "$(ls -A "$KI_ROOT$path")" ] && continue
		ki_chroot dpkg -S "$path" >/dev/null 2>&1 && continue
	fi
	leftover="$leftover $path"
done <"$owned"
check_equal purge_leaves_nothing "${leftover# }" ""

KI_FINISHED=yes
