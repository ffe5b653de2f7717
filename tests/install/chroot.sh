# Chroot plumbing for tests/install/run.sh (POSIX sh, sourced).
#
# ki_bootstrap builds a minbase Debian chroot in $KI_ROOT from the
# machine's own apt mirror, or unpacks it from the cached tarball.
# ki_mount_all mounts /proc, /sys, a minimal /dev, /run and /tmp in it,
# and ki_unmount_all undoes every mount below $KI_ROOT, the broker's
# FUSE mount included. The caller sets KI_ROOT (an absolute path without
# symlinks), KI_CACHE (the cache folder) and KI_SUITE.

KI_APT_PATH=/usr/sbin:/usr/bin:/sbin:/bin
KI_KEYRING=${KI_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

# ki_chroot COMMAND...: runs COMMAND in the chroot as root with a clean
# environment, so nothing of the caller's shell leaks into the packages'
# maintainer scripts.
ki_chroot() {
	env -i PATH="$KI_APT_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb \
		DEBIAN_FRONTEND=noninteractive chroot "$KI_ROOT" "$@"
}

# ki_chroot_start LOG COMMAND...: starts COMMAND in the chroot in the
# background, with its output in LOG, and sets KI_STARTED_PID. env execs
# chroot, which execs COMMAND, so the pid is COMMAND's own and a signal
# sent to it reaches COMMAND, not a wrapping subshell.
ki_chroot_start() {
	start_log=$1
	shift
	env -i PATH="$KI_APT_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb \
		chroot "$KI_ROOT" "$@" >"$start_log" 2>&1 &
	KI_STARTED_PID=$!
}

# ki_host_sources: prints "URI SUITE COMPONENTS" for every "deb" entry of
# the machine's apt sources, in both the one-line format (sources.list,
# *.list) and the deb822 format (*.sources). Disabled entries are skipped.
ki_host_sources() {
	for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$file" ] || continue
		# Drop the "[ option=value ... ]" block, then keep deb lines.
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$file" |
			awk '$1 == "deb" && NF >= 4 {
				components = $4
				for (i = 5; i <= NF; i++) components = components "," $i
				print $2, $3, components
			}'
	done
	for file in /etc/apt/sources.list.d/*.sources; do
		[ -f "$file" ] || continue
		awk '
		function flush(  n, uris, suites, i, j) {
			if (types ~ /(^| )deb( |$)/ && enabled != "no") {
				n = split(uri_field, uris, " ")
				split(suite_field, suites, " ")
				for (i = 1; i <= n; i++)
					for (j = 1; j in suites; j++)
						print uris[i], suites[j], component_field
			}
			types = uri_field = suite_field = component_field = ""
			enabled = ""
		}
		/^#/ { next }
		/^[ \t]*$/ { flush(); next }
		{
			key = tolower($1)
			value = $0
			sub(/^[^:]*:[ \t]*/, "", value)
			if (key == "types:") types = value
			else if (key == "uris:") uri_field = value
			else if (key == "suites:") suite_field = value
			else if (key == "components:") {
				gsub(/[ \t]+/, ",", value)
				component_field = value
			} else if (key == "enabled:") enabled = tolower(value)
		}
		END { flush() }' "$file"
	done
}

# ki_suite_sources: the host entries for KI_SUITE and its companion
# suites (bookworm-updates, bookworm-security, bookworm/updates).
ki_suite_sources() {
	ki_host_sources | awk -v suite="$KI_SUITE" '
		$2 == suite || index($2, suite "-") == 1 || index($2, suite "/") == 1'
}

# ki_mirror: the mirror URI that carries KI_SUITE itself. KI_MIRROR in
# the environment overrides it.
ki_mirror() {
	if [ -n "${KI_MIRROR:-}" ]; then
		printf '%s\n' "$KI_MIRROR"
		return 0
	fi
	ki_host_sources | awk -v suite="$KI_SUITE" '$2 == suite { print $1; exit }'
}

# ki_cache_name MIRROR: the cache key. A tarball is reused only for the
# same suite, architecture, variant and mirror.
ki_cache_name() {
	hash=$(printf '%s' "$1" | sha256sum | cut -c1-16)
	printf 'base-%s-%s-minbase-%s\n' "$KI_SUITE" "$(dpkg --print-architecture)" "$hash"
}

# ki_write_apt_config: the chroot's apt sources are the host's entries
# for the suite, and it takes over the host's Check-Valid-Until and
# Check-Date settings, because a snapshot mirror serves Release files
# whose Valid-Until has passed.
ki_write_apt_config() {
	ki_suite_sources |
		awk '{ components = $3; gsub(/,/, " ", components)
		       print "deb", $1, $2, components }' >"$KI_ROOT/etc/apt/sources.list" ||
		return 1
	apt-config dump |
		grep -E '^Acquire::Check-(Valid-Until|Date) ' \
			>"$KI_ROOT/etc/apt/apt.conf.d/90keyhole-install-test"
	# There is no init system in the chroot, so policy-rc.d rejects every
	# service start.
	printf '#!/bin/sh\nexit 101\n' >"$KI_ROOT/usr/sbin/policy-rc.d" &&
		chmod 0755 "$KI_ROOT/usr/sbin/policy-rc.d"
}

# ki_bootstrap LOG: unpacks the cached base system into KI_ROOT, or runs
# debootstrap and caches the result. Sets KI_CACHE_HIT to yes or no.
ki_bootstrap() {
	log=$1
	mirror=$(ki_mirror)
	if [ -z "$mirror" ]; then
		echo "no apt source for suite $KI_SUITE in /etc/apt; set KI_MIRROR" >&2
		return 1
	fi
	KI_TARBALL="$KI_CACHE/$(ki_cache_name "$mirror").tar"
	mkdir -p "$KI_CACHE" || return 1
	if [ -s "$KI_TARBALL" ]; then
		KI_CACHE_HIT=yes
		tar -xpf "$KI_TARBALL" -C "$KI_ROOT" --numeric-owner >>"$log" 2>&1 ||
			return 1
	else
		KI_CACHE_HIT=no
		# Named explicitly because debootstrap without a keyring only
		# warns and installs unverified packages.
		if [ ! -f "$KI_KEYRING" ]; then
			echo "$KI_KEYRING is missing: install debian-archive-keyring" >&2
			return 1
		fi
		debootstrap --variant=minbase --keyring="$KI_KEYRING" \
			"$KI_SUITE" "$KI_ROOT" "$mirror" >>"$log" 2>&1 || return 1
		# Write to a temporary name so an interrupted run leaves no
		# truncated tarball behind for the next one to trust.
		tar -cpf "$KI_TARBALL.part" -C "$KI_ROOT" --numeric-owner \
			--one-file-system . >>"$log" 2>&1 &&
			mv "$KI_TARBALL.part" "$KI_TARBALL" || return 1
	fi
	cp /etc/resolv.conf "$KI_ROOT/etc/resolv.conf" 2>/dev/null
	ki_write_apt_config
}

# ki_mount TYPE-OR-BIND SOURCE TARGET [OPTIONS]: one mount, recorded in
# $KI_MOUNTS so that ki_unmount_all can undo it even when mountinfo
# reading fails.
ki_mount() {
	if [ "$1" = bind ]; then
		mount --bind "$2" "$3" || return 1
		# The remount changes the flags of this bind mount only, not
		# those of the host's /dev.
		mount -o remount,bind,nosuid,noexec "$3" || return 1
	else
		mount -t "$1" -o "${4:-defaults}" "$2" "$3" || return 1
	fi
	printf '%s\n' "$3" >>"$KI_MOUNTS"
}

# ki_mount_all: the kernel filesystems and a minimal /dev. /dev/fuse is
# there for keyholed's mount, the rest for apt and the shells.
ki_mount_all() {
	: >"$KI_MOUNTS"
	ki_mount proc proc "$KI_ROOT/proc" nosuid,nodev,noexec || return 1
	ki_mount sysfs sysfs "$KI_ROOT/sys" ro,nosuid,nodev,noexec || return 1
	ki_mount tmpfs tmpfs "$KI_ROOT/dev" mode=0755,nosuid,noexec,size=64k || return 1
	for node in null zero urandom random fuse; do
		: >"$KI_ROOT/dev/$node" || return 1
		ki_mount bind "/dev/$node" "$KI_ROOT/dev/$node" || return 1
	done
	ln -s /proc/self/fd "$KI_ROOT/dev/fd"
	ln -s /proc/self/fd/0 "$KI_ROOT/dev/stdin"
	ln -s /proc/self/fd/1 "$KI_ROOT/dev/stdout"
	ln -s /proc/self/fd/2 "$KI_ROOT/dev/stderr"
	ki_mount tmpfs tmpfs "$KI_ROOT/run" mode=0755,nosuid,nodev || return 1
	ki_mount tmpfs tmpfs "$KI_ROOT/tmp" mode=1777,nosuid,nodev || return 1
}

# ki_mounts_below: every mount point at or below KI_ROOT, deepest (most
# recently mounted) first. mountinfo escapes a space as \040, and
# run.sh rejects a KI_ROOT with white space, so a prefix match is exact.
ki_mounts_below() {
	awk -v root="$KI_ROOT" '
		$5 == root || index($5, root "/") == 1 { points[++n] = $5 }
		END { for (i = n; i >= 1; i--) print points[i] }' /proc/self/mountinfo
}

# ki_unmount_all: unmounts everything below KI_ROOT, recorded or not
# (keyholed's FUSE mount is not recorded), lazily when a normal unmount
# fails. Returns 1 when a mount is still there afterwards.
ki_unmount_all() {
	for point in $(ki_mounts_below); do
		umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null
	done
	if [ -n "${KI_MOUNTS:-}" ] && [ -f "$KI_MOUNTS" ]; then
		for point in $(sed '1!G;h;$!d' "$KI_MOUNTS"); do
			if awk -v p="$point" '$5 == p { found = 1 } END { exit !found }' \
				/proc/self/mountinfo; then
				umount -l "$point" 2>/dev/null
			fi
		done
	fi
	[ -z "$(ki_mounts_below)" ]
}
