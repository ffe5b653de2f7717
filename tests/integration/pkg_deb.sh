#!/bin/sh
# Builds the Debian packages with "make deb" (unit tests skipped with
# DEB_BUILD_OPTIONS=nocheck), runs lintian on them, and checks what each
# package ships: the runtime files, the conffiles, no headers or static
# library, and the hardening of every ELF file.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

# The sanitizer run builds the same packages from the same sources, so
# only the plain run builds them.
if [ "${SANITIZE:-0}" = 1 ]; then
	echo "SKIP: pkg_deb: built by the plain run"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/keyhole-pkg_deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# Below KH_BUILD, so that runs with different build dirs do not clash.
deb_build="$KH_BUILD/pkg-deb"
deb_dir="$deb_build/deb"
version=$(sed -n 's/.*KH_VERSION "\(.*\)".*/\1/p' \
	"$KH_ROOT/core/include/keyhole/keyhole.h")
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

start=$(date +%s)
if DEB_BUILD_OPTIONS="nocheck parallel=2" \
	make -C "$KH_ROOT" --no-print-directory BUILD="$deb_build" deb \
	>"$work/build.log" 2>&1; then
	pass deb_builds
else
	fail deb_builds "make deb failed; the end of its output follows"
	tail -n 30 "$work/build.log"
	exit 1
fi
echo "pkg_deb: make deb took $(($(date +%s) - start)) s"

keyhole_deb="$deb_dir/keyhole_${version}_$arch.deb"
pam_deb="$deb_dir/libpam-keyhole_${version}_$arch.deb"
changes="$deb_dir/keyhole_${version}_$arch.changes"
for file in "$keyhole_deb" "$pam_deb" "$changes" \
	"$deb_dir/keyhole_${version}_$arch.buildinfo"; do
	check "output_$(basename "$file")" test -s "$file"
done

# lintian exits non-zero on an error, warning or info tag. Info tags are
# honoured too, so each one is fixed or overridden with a comment that
# gives the reason.
if lintian --fail-on error,warning,info --display-info "$changes" \
	>"$work/lintian.log" 2>&1; then
	pass lintian_clean
else
	fail lintian_clean "lintian reported tags; its output follows"
	grep -v '^running with root privileges' "$work/lintian.log"
fi

dpkg-deb -c "$keyhole_deb" | awk '{print $6}' | sed 's|^\./|/|' \
	>"$work/keyhole.files"
dpkg-deb -c "$pam_deb" | awk '{print $6}' | sed 's|^\./|/|' \
	>"$work/pam.files"

# ships LIST PATH...: passes when the package file list LIST has each PATH.
ships() {
	list=$1
	shift
	for path in "$@"; do
		if grep -qxF "$path" "$list"; then
			pass "ships_$path"
		else
			fail "ships_$path" "$path is not in $(basename "$list" .files)"
		fi
	done
}

ships "$work/keyhole.files" /usr/bin/keyhole /usr/sbin/keyholed \
	/lib/systemd/system/keyholed.service \
	/usr/lib/tmpfiles.d/keyhole.conf \
	/etc/keyhole/keyhole.json /etc/keyhole/policy.json

for src in "$KH_ROOT"/core/backends/*.c; do
	name=$(basename "$src" .c)
	ships "$work/keyhole.files" \
		"/usr/lib/$multiarch/keyhole/backends/kh_backend_$name.so"
done

ships "$work/pam.files" "/usr/lib/$multiarch/security/pam_keyhole.so" \
	/usr/share/pam-configs/keyhole

# Each man page source NAME.SECTION.scd becomes a compressed page, in
# libpam-keyhole for the PAM module and in keyhole for the rest.
for src in "$KH_ROOT"/docs/man/*.scd; do
	[ -f "$src" ] || continue
	page=$(basename "$src" .scd)
	path="/usr/share/man/man${page##*.}/$page.gz"
	case $page in
	pam_keyhole.*) ships "$work/pam.files" "$path" ;;
	*) ships "$work/keyhole.files" "$path" ;;
	esac
done

# conffiles_of DEB: the package's conffiles, one a line, sorted.
conffiles_of() {
	dpkg-deb --ctrl-tarfile "$1" | tar -xOf - ./conffiles 2>/dev/null |
		sort
}

expected="/etc/keyhole/keyhole.json
/etc/keyhole/policy.json"
for profile in "$KH_ROOT"/packaging/confine.d/*.json; do
	expected="$expected
/etc/keyhole/confine.d/$(basename "$profile")"
done
check_equal keyhole_conffiles "$(conffiles_of "$keyhole_deb")" \
	"$(printf '%s\n' "$expected" | sort)"

# The profile's module line has no arguments, so the agent accounts come
# from this file.
check_equal pam_conffiles "$(conffiles_of "$pam_deb")" \
	/etc/keyhole/pam_keyhole.conf

# libkeyhole is private to the keyhole package: its ABI is not stable.
if grep -hE '^/usr/include/|\.a$|\.h$|\.pc$' "$work/keyhole.files" \
	"$work/pam.files" >"$work/dev.files"; then
	fail no_development_files "packages ship $(tr '\n' ' ' <"$work/dev.files")"
else
	pass no_development_files
fi

mkdir "$work/root"
dpkg-deb -x "$keyhole_deb" "$work/root"
dpkg-deb -x "$pam_deb" "$work/root"

# pam_auth_update ARG...: runs pam-auth-update on a scratch root that
# starts as a copy of this machine's PAM files, with the package's
# profile added. pam-auth-update also writes the debconf database, so a
# private mount namespace puts a copy of /var/cache/debconf in its place.
pam_root="$work/pam-root"
mkdir -p "$pam_root/etc" "$pam_root/var/lib" "$pam_root/usr/share"
cp -a /etc/pam.d "$pam_root/etc/"
cp -a /var/lib/pam "$pam_root/var/lib/"
cp -a /usr/share/pam-configs "$pam_root/usr/share/"
cp "$work/root/usr/share/pam-configs/keyhole" \
	"$pam_root/usr/share/pam-configs/"
cp -a /var/cache/debconf "$work/debconf"
pam_auth_update() {
	DEBIAN_FRONTEND=noninteractive unshare -m --propagation private \
		sh -c 'mount --bind "$1" /var/cache/debconf && shift &&
			exec pam-auth-update "$@"' \
		sh "$work/debconf" --root "$pam_root" "$@" \
		>>"$work/pam-auth-update.log" 2>&1
}

# The module line, as pam-auth-update writes it into a common-* file.
keyhole_line='^session[[:space:]]+required[[:space:]]+pam_keyhole\.so[[:space:]]*$'
pam_d="$pam_root/etc/pam.d"

check pam_auth_update_package pam_auth_update --package
if grep -q pam_keyhole "$pam_d"/common-*; then
	fail pam_profile_default_off "pam-auth-update --package enabled it"
else
	pass pam_profile_default_off
fi

check pam_auth_update_enable pam_auth_update --enable keyhole
check pam_profile_interactive grep -qE "$keyhole_line" "$pam_d/common-session"
# pam-auth-update 1.5.2 treats any Session-Interactive-Only field, "no"
# included, as "yes", so the profile must not have the field at all.
check pam_profile_noninteractive \
	grep -qE "$keyhole_line" "$pam_d/common-session-noninteractive"
if grep -q pam_keyhole "$pam_d/common-auth" "$pam_d/common-account" \
	"$pam_d/common-password"; then
	fail pam_profile_session_only "the module is in an auth, account or password stack"
else
	pass pam_profile_session_only
fi
# pam_keyhole confines the process, so pam_systemd, which calls logind
# over D-Bus, has to run before it.
if grep -q pam_systemd "$pam_d/common-session"; then
	check_equal pam_profile_after_systemd \
		"$(grep -oE 'pam_(systemd|keyhole)' "$pam_d/common-session" |
			tr '\n' ' ')" "pam_systemd pam_keyhole "
fi

check pam_auth_update_remove pam_auth_update --package --remove keyhole
if grep -q pam_keyhole "$pam_d"/common-*; then
	fail pam_profile_removed "the module line is still in $(grep -l pam_keyhole "$pam_d"/common-* | tr '\n' ' ')"
else
	pass pam_profile_removed
fi

# elf_has FILE PATTERN: whether the file header, program headers or
# dynamic section of FILE, as readelf prints them, match the extended
# regex PATTERN.
elf_has() {
	readelf -d -l -h -W "$1" 2>/dev/null | grep -qE "$2"
}

# hardening FILE KIND: checks in the ELF file itself what hardening=+all
# promises. KIND is "executable" or "library", and only an executable
# must be PIE.
hardening() {
	file=$1
	rel=${file#"$work/root"}
	label=$(basename "$file")

	if elf_has "$file" 'GNU_RELRO'; then
		pass "relro_$label"
	else
		fail "relro_$label" "$rel has no GNU_RELRO segment"
	fi
	if elf_has "$file" '\(BIND_NOW\)|Flags:.* NOW'; then
		pass "bind_now_$label"
	else
		fail "bind_now_$label" "$rel is not linked with -z now"
	fi
	if elf_has "$file" 'GNU_STACK.* RWE '; then
		fail "nx_stack_$label" "$rel has an executable stack"
	else
		pass "nx_stack_$label"
	fi
	if elf_has "$file" '\((RPATH|RUNPATH)\)'; then
		fail "no_rpath_$label" "$rel has an RPATH or RUNPATH"
	else
		pass "no_rpath_$label"
	fi
	if readelf --dyn-syms -W "$file" | grep -q '__stack_chk_fail'; then
		pass "stack_protector_$label"
	else
		fail "stack_protector_$label" "$rel calls no __stack_chk_fail"
	fi
	if [ "$2" = executable ]; then
		if elf_has "$file" 'Type: +DYN' &&
			elf_has "$file" 'FLAGS_1.*PIE'; then
			pass "pie_$label"
		else
			fail "pie_$label" "$rel is not a position-independent executable"
		fi
	fi
}

# _FORTIFY_SOURCE replaces calls such as memcpy and snprintf with their
# checked __*_chk forms where the compiler cannot prove the size.
fortified() {
	if readelf --dyn-syms -W "$1" | grep -v __stack_chk_fail |
		grep -q '__[a-z_]*_chk'; then
		pass "fortify_$(basename "$1")"
	else
		fail "fortify_$(basename "$1")" \
			"${1#"$work/root"} calls no __*_chk function"
	fi
}

hardening "$work/root/usr/bin/keyhole" executable
hardening "$work/root/usr/sbin/keyholed" executable
hardening "$work/root/usr/lib/$multiarch/security/pam_keyhole.so" library
for module in "$work/root/usr/lib/$multiarch/keyhole/backends/"*.so; do
	hardening "$module" library
done
fortified "$work/root/usr/bin/keyhole"
fortified "$work/root/usr/sbin/keyholed"

exit "$KH_FAILED"
