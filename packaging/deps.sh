#!/bin/sh
# Installs the Debian packages that building and testing keyhole need,
# running "apt-get update" once and only when something is missing.
# The npm package "canonicalize" (an independent RFC 8785 implementation
# used by the differential test) goes into build/npm.
set -eu

packages="gcc clang make pkg-config libsodium-dev libjansson-dev
libfuse3-dev fuse3 libcurl4-openssl-dev libssl-dev libseccomp-dev
libpam0g-dev curl python3 util-linux procps psmisc attr"

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
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

if [ ! -f build/npm/node_modules/canonicalize/package.json ]; then
	mkdir -p build/npm
	npm install --prefix build/npm --no-audit --no-fund --silent \
		canonicalize@2 >/dev/null
fi
