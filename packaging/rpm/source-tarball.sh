#!/bin/sh
# source-tarball.sh OUT VERSION: writes Source0 of keyhole.spec, a .tar.gz
# of the work tree with every path under keyhole-VERSION/.
#
# It packs the files git tracks plus the untracked files that .gitignore
# does not exclude, as they are on disk, so a tree with uncommitted
# changes builds what is checked out. Tracked files deleted from the
# work tree are left out. Owners and group and other write bits are
# dropped, because test_confine rejects group-writable profiles and a
# root rpmbuild extracts the tar with its stored modes.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 OUT VERSION" >&2
	exit 2
fi
out=$1
version=$2

top=$(git rev-parse --show-toplevel 2>/dev/null) || {
	echo "$0: not in a git work tree; run make rpm from a keyhole checkout" >&2
	exit 1
}
cd "$top"

list=$(mktemp "${TMPDIR:-/tmp}/keyhole-tarball.XXXXXX")
trap 'rm -f "$list"' EXIT

# NUL-separated, so that no file name can split into two entries.
git ls-files -z --cached --others --exclude-standard |
	xargs -0 sh -c 'for f; do if [ -f "$f" ]; then printf "%s\0" "$f"; fi; done' sh \
	>"$list"

tar --create --gzip --file "$out" --null --files-from "$list" \
	--owner=0 --group=0 --numeric-owner --mode=go-w \
	--transform "s,^,keyhole-$version/,"
