#!/bin/sh
# Builds the RPM packages with "make rpm", whose %check runs the unit
# tests. Then it checks what each package ships: the runtime files in
# the RPM distributions' paths, the config files as %config(noreplace),
# the directory modes, and no headers or static library. It checks that
# the scriptlets have the systemd macros expanded. Last, it installs
# both packages into a private root with --noscripts and erases them, to
# check that the keys, the audit log and an edited config stay.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

# The sanitizer run builds the same packages from the same sources, so
# only the plain run builds them.
if [ "${SANITIZE:-0}" = 1 ]; then
	echo "SKIP: pkg_rpm: built by the plain run"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/keyhole-pkg_rpm.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# Below KH_BUILD, so that runs with different build dirs do not clash.
rpm_build="$KH_BUILD/pkg-rpm"
rpm_dir="$rpm_build/rpm"
version=$(sed -n 's/.*KH_VERSION "\(.*\)".*/\1/p' \
	"$KH_ROOT/core/include/keyhole/keyhole.h")
arch=$(rpm --eval '%{_arch}')

# The paths the spec installs to, read from rpm the way "make rpm" sets
# it up: with the stand-in systemd macros where rpm has none.
load=""
if [ -z "$(rpm --eval '%{?_unitdir}')" ]; then
	load="--load $KH_ROOT/packaging/rpm/macros.debian-host"
fi
rpm_eval() {
	rpm $load --eval "$1"
}
libdir=$(rpm_eval '%{_libdir}')
unitdir=$(rpm_eval '%{_unitdir}')
tmpfilesdir=$(rpm_eval '%{_tmpfilesdir}')
sysusersdir=$(rpm_eval '%{_sysusersdir}')
mandir=$(rpm_eval '%{_mandir}')

start=$(date +%s)
if make -C "$KH_ROOT" --no-print-directory BUILD="$rpm_build" rpm \
	>"$work/build.log" 2>&1; then
	pass rpm_builds
else
	fail rpm_builds "make rpm failed; the end of its output follows"
	tail -n 30 "$work/build.log"
	exit 1
fi
echo "pkg_rpm: make rpm took $(($(date +%s) - start)) s"

keyhole_rpm="$rpm_dir/keyhole-$version-1.$arch.rpm"
pam_rpm="$rpm_dir/keyhole-pam-$version-1.$arch.rpm"
src_rpm="$rpm_dir/keyhole-$version-1.src.rpm"
for file in "$keyhole_rpm" "$pam_rpm" "$src_rpm"; do
	check "output_$(basename "$file")" test -s "$file"
done

# %check ran the unit tests, and none failed.
if grep -q '^+ echo build/tests/test_key$' "$work/build.log" &&
	! grep -q '^FAIL: ' "$work/build.log"; then
	pass check_ran_unit_tests
else
	fail check_ran_unit_tests "the log of %check shows no test_key run or a FAIL line"
fi

# Each line of a .files list is "FLAGS MODE PATH". FLAGS are rpm's
# file flags: c for %config, n for noreplace, d for %doc, l for %license.
file_list() {
	rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILENAMES}\n]' \
		"$1" 2>/dev/null | sed 's/^ /- /'
}
file_list "$keyhole_rpm" >"$work/keyhole.files"
file_list "$pam_rpm" >"$work/pam.files"

# ships LIST PATH...: passes when the package file list LIST has each PATH.
ships() {
	list=$1
	shift
	for path in "$@"; do
		if awk -v path="$path" '$3 == path { found = 1 } END { exit !found }' \
			"$list"; then
			pass "ships_$path"
		else
			fail "ships_$path" "$path is not in $(basename "$list" .files)"
		fi
	done
}

ships "$work/keyhole.files" /usr/bin/keyhole /usr/sbin/keyholed \
	"$unitdir/keyholed.service" "$tmpfilesdir/keyhole.conf" \
	"$sysusersdir/keyhole.conf" \
	/etc/keyhole/keyhole.json /etc/keyhole/policy.json

for src in "$KH_ROOT"/core/backends/*.c; do
	ships "$work/keyhole.files" \
		"$libdir/keyhole/backends/kh_backend_$(basename "$src" .c).so"
done

ships "$work/pam.files" "$libdir/security/pam_keyhole.so"

# Each man page source NAME.SECTION.scd becomes a page, in keyhole-pam
# for the PAM module and in keyhole for the rest. brp-compress gzips it
# where the build host's rpm runs it (Fedora), and leaves it alone where
# not (Debian's rpm).
for src in "$KH_ROOT"/docs/man/*.scd; do
	[ -f "$src" ] || continue
	page=$(basename "$src" .scd)
	path="$mandir/man${page##*.}/$page"
	case $page in
	pam_keyhole.*) list="$work/pam.files" ;;
	*) list="$work/keyhole.files" ;;
	esac
	if grep -qE " $path(\\.gz)?\$" "$list"; then
		pass "ships_$path"
	else
		fail "ships_$path" "$path is not in $(basename "$list" .files)"
	fi
done

# The pam-auth-update profile is Debian's, so no RPM ships it.
check no_pam_auth_update_profile sh -c \
	"! grep -q '/pam-configs/' '$work/keyhole.files' '$work/pam.files'"

# config_files RPM: the package's config files as "FLAGS PATH", sorted.
config_files() {
	rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$1" 2>/dev/null |
		awk 'NF == 2 && $1 ~ /c/' | sort
}

expected="cn /etc/keyhole/keyhole.json
cn /etc/keyhole/policy.json"
for profile in "$KH_ROOT"/packaging/confine.d/*.json; do
	expected="$expected
cn /etc/keyhole/confine.d/$(basename "$profile")"
done
check_equal keyhole_config_noreplace "$(config_files "$keyhole_rpm")" \
	"$(printf '%s\n' "$expected" | sort)"
check_equal keyhole_configfiles \
	"$(rpm -qp --configfiles "$keyhole_rpm" 2>/dev/null | sort)" \
	"$(printf '%s\n' "$expected" | sed 's/^cn //' | sort)"

expected=""
if [ -f "$KH_ROOT/packaging/etc/pam_keyhole.conf" ]; then
	expected="cn /etc/keyhole/pam_keyhole.conf"
fi
check_equal pam_config_noreplace "$(config_files "$pam_rpm")" "$expected"

# has_mode MODE PATH: the keyhole package owns PATH with mode MODE.
has_mode() {
	if awk -v mode="$1" -v path="$2" \
		'$2 == mode && $3 == path { found = 1 } END { exit !found }' \
		"$work/keyhole.files"; then
		pass "mode_$2"
	else
		fail "mode_$2" "expected $1, got: $(grep " $2\$" "$work/keyhole.files")"
	fi
}

# Agents and auditors read the public keys. The store of the file
# backend and the audit log give group and others no access.
has_mode drwxr-xr-x /etc/keyhole/keys
has_mode drwx------ /etc/keyhole/credstore
has_mode drwx------ /var/lib/keyhole/audit

# libkeyhole is private to the keyhole package: its ABI is not stable.
if grep -hE ' /usr/include/|\.a$|\.h$|\.pc$' "$work/keyhole.files" \
	"$work/pam.files" >"$work/dev.files"; then
	fail no_development_files "packages ship $(tr '\n' ' ' <"$work/dev.files")"
else
	pass no_development_files
fi

rpm -qp --scripts "$keyhole_rpm" >"$work/scripts" 2>/dev/null

# script_of NAME: the body of one scriptlet in $work/scripts, NAME as
# rpm prints it (preinstall, postinstall, preuninstall, postuninstall).
script_of() {
	awk -v name="$1" '
		/^[a-z]+ scriptlet \(using / { on = ($1 == name); next }
		on { print }' "$work/scripts"
}

if grep -n '%' "$work/scripts" >"$work/literal"; then
	fail scripts_expanded "unexpanded macros in the scriptlets: $(cat "$work/literal")"
else
	pass scripts_expanded
fi
check_contains post_presets_unit "$(script_of postinstall)" keyholed.service
check_contains post_creates_tmpfiles "$(script_of postinstall)" \
	keyhole.conf
check_contains post_makes_keys "$(script_of postinstall)" \
	'keyhole keygen --dir "$keys"'
check_contains preun_stops_unit "$(script_of preuninstall)" keyholed.service
check_contains postun_restarts_unit "$(script_of postuninstall)" restart
check_contains postun_names_unit "$(script_of postuninstall)" keyholed.service
check_contains pre_adds_admin_group "$(script_of preinstall)" keyhole-admin
check_equal pam_has_no_scripts "$(rpm -qp --scripts "$pam_rpm" 2>/dev/null)" ""

check_equal src_rpm_contents "$(rpm -qpl "$src_rpm" 2>/dev/null | sort)" \
	"keyhole-$version.tar.gz
keyhole.spec"

# Install into a private root without scriptlets, which would run
# systemctl and groupadd. Keys and an audit record appear the way %post
# and keyholed make them, and the admin edits the config. Erasing must
# then keep the keys, the audit log and the edited config.
root="$work/root"
mkdir "$root"
rpm --root "$root" --initdb 2>/dev/null
if rpm --root "$root" -i --nodeps --noscripts "$keyhole_rpm" "$pam_rpm" \
	>"$work/install.log" 2>&1; then
	pass install_into_root
else
	fail install_into_root "rpm -i failed: $(cat "$work/install.log")"
fi

# The paths the Makefile compiled in are those of the package.
check_contains keyhole_version "$("$root/usr/bin/keyhole" --version 2>&1)" \
	"$version"
check backend_dir_compiled_in \
	grep -qF "$libdir/keyhole/backends" "$root/usr/sbin/keyholed"

"$root/usr/bin/keyhole" keygen --dir "$root/etc/keyhole/keys" >/dev/null
echo '{"seq": 0}' >"$root/var/lib/keyhole/audit/test.dpr"
echo ' ' >>"$root/etc/keyhole/policy.json"

if rpm --root "$root" -e --nodeps --noscripts keyhole-pam keyhole \
	>"$work/erase.log" 2>&1; then
	pass erase_from_root
else
	fail erase_from_root "rpm -e failed: $(cat "$work/erase.log")"
fi
check erase_keeps_keys test -s "$root/etc/keyhole/keys/permit.jwk"
check erase_keeps_audit test -s "$root/var/lib/keyhole/audit/test.dpr"
check erase_saves_edited_policy test -s "$root/etc/keyhole/policy.json.rpmsave"
check erase_removes_binaries test ! -e "$root/usr/sbin/keyholed"
check erase_removes_config test ! -e "$root/etc/keyhole/keyhole.json"
check erase_removes_module test ! -e "$root$libdir/security/pam_keyhole.so"

exit "$KH_FAILED"
