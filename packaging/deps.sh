#!/bin/sh
# Installs the Debian packages that building and testing keyhole need,
# running "apt-get update" once and only when something is missing.
# npm packages used only by tests (canonicalize, aws4, jose) go into
# build/npm.
set -eu

packages="gcc clang make pkg-config libsodium-dev libjansson-dev
libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev libseccomp-dev
libpam0g-dev curl python3 util-linux procps psmisc attr openssl git
libpam-wrapper pamtester openssh-server openssh-client libsystemd-dev
systemd strace scdoc man-db debhelper dpkg-dev fakeroot lintian rpm
debootstrap systemd-container"

# Node.js may come from another vendor's package that bundles npm and
# conflicts with Debian's npm, so these two are checked by command.
node_packages=""
command -v node >/dev/null 2>&1 || node_packages="nodejs"
command -v npm >/dev/null 2>&1 || node_packages="$node_packages npm"

missing=""
for pkg in $packages $node_packages; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
		grep -q 'install ok installed'; then
		missing="$missing $pkg"
	fi
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing packages:$missing; run 'make deps' as root" >&2
		exit 2
	fi
	echo "deps: installing$missing"
	apt-get update -qq
	# openssh-server's postinst would start a system sshd on port 22.
	# The tests start their own on loopback, so a policy-rc.d that denies
	# service starts is in place during the install only.
	policy_rc=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy_rc=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
		chmod 0755 "$policy_rc"
	fi
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
	[ -z "$policy_rc" ] || rm -f "$policy_rc"
fi

# aws4 and jose check the broker's SigV4 signatures and JWTs in the
# loopback mocks, independently of libcurl and OpenSSL.
for npm_pkg in canonicalize@2 aws4@1 jose@5; do
	name=${npm_pkg%@*}
	if [ ! -f "build/npm/node_modules/$name/package.json" ]; then
		mkdir -p build/npm
		npm install --prefix build/npm --no-audit --no-fund --silent \
			"$npm_pkg" >/dev/null
	fi
done
