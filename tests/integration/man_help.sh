#!/bin/sh
# Checks the built man pages against the programs they describe:
#
# - every page renders with man --warnings and matches its scdoc source;
# - each long option that a --help lists (keyhole, each keyhole command
#   and subcommand, keygen --federation, keyholed) is documented for that
#   command in its page, and each option that a page documents appears
#   in that command's --help;
# - every keyhole.json key is documented in keyhole.json(5), and every
#   pam_keyhole argument in pam_keyhole(8).
#
# Pages are read as the roff that scdoc writes. A term of a definition
# list is the text line right before ".RS 4", so "\fB--dir\fR \fIDIR\fR"
# documents --dir. keyhole.1 has one ".SS keyhole COMMAND" subsection per
# command under COMMANDS; -h and --help, which every command takes, are
# documented once in its OPTIONS section.
#
# The config keys come from the code, not from the docs: keyholed
# --check-config on a config with an unknown key prints the allowed keys
# from core/lib/config.c, and a config with each of those keys must not
# be rejected for an unknown key. Backend keys come from the key tables
# in core/backends/*.c, and the PAM arguments from pam/pam_args.c.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

man_dir="$KH_BUILD/man"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/keyhole-man_help.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
export LC_ALL=C.UTF-8 MANWIDTH=80

# terms PAGE SECTION [SUBSECTION]: the definition-list terms of SECTION,
# of its SUBSECTION only, or with SUBSECTION "-" only those before the
# first subsection.
terms() {
	awk -v want_sh="$2" -v want_ss="${3:-}" '
		/^\.SH / { sh = substr($0, 5); ss = ""; prev = ""; next }
		/^\.SS / { ss = substr($0, 5); prev = ""; next }
		/^\.RS 4$/ && prev != "" && prev !~ /^\./ && sh == want_sh &&
		    (want_ss == "" || (want_ss == "-" && ss == "") ||
		     ss == want_ss) { print prev }
		{ prev = $0 }
	' "$1"
}

# term_options: the long options in bold in the terms on stdin.
term_options() {
	grep -o '\\fB--[a-z][a-z0-9-]*' | sed 's/^\\fB//' | sort -u
}

# help_options: the long options that start an option line of a --help
# text on stdin. Continuation lines are indented further and skipped.
help_options() {
	sed -n 's/^ \{1,6\}\(-[a-zA-Z], \{1,\}\)\{0,1\}\(--[a-z][a-z0-9-]*\).*/\2/p' |
		sort -u
}

# all_options: every long option mentioned anywhere on stdin.
all_options() {
	grep -o -- '--[a-z][a-z0-9-]*' | sort -u
}

# missing LIST_A LIST_B: the words of file LIST_A that LIST_B lacks.
missing() {
	comm -23 "$1" "$2" | tr '\n' ' ' | sed 's/ $//'
}

# compare NAME WANTED HAVE WHAT: passes when every line of WANTED is in
# HAVE, else names the missing ones.
compare() {
	gaps=$(missing "$2" "$3")
	if [ ! -s "$2" ]; then
		fail "$1" "found nothing to compare: $4"
	elif [ -n "$gaps" ]; then
		fail "$1" "$4: $gaps"
	else
		pass "$1"
	fi
}

check_pages() {
	for page in keyhole.1 keyholed.8 pam_keyhole.8 keyhole.json.5 \
		keyhole-policy.5 keyhole-confine.5; do
		built="$man_dir/$page"
		if [ ! -f "$built" ]; then
			fail "page $page" "$built is missing: run make man"
			continue
		fi
		man --warnings -l "$built" 2>"$tmp/warn" >/dev/null
		if [ -s "$tmp/warn" ]; then
			fail "page $page" "man --warnings: $(head -n 3 "$tmp/warn")"
			continue
		fi
		# The .TH line carries the build date.
		scdoc <"$KH_ROOT/docs/man/$page.scd" | grep -v '^\.TH ' \
			>"$tmp/fresh"
		grep -v '^\.TH ' "$built" >"$tmp/built"
		if ! cmp -s "$tmp/fresh" "$tmp/built"; then
			fail "page $page" "$built is older than its source: run make man"
			continue
		fi
		pass "page $page"
	done
}

# command_paths: "keygen", "audit verify", ... from the usage lines of
# each command in keyhole --help, plus keygen --federation, whose own
# --help lists its options.
command_paths() {
	"$KEYHOLE" --help | awk '/^Commands:/ { on = 1; next }
		on && /^$/ { exit } on { print $1 }' >"$tmp/commands"
	while read -r command; do
		"$KEYHOLE" "$command" --help | awk '/^$/ { exit }
			{ sub(/^Usage:/, ""); path = ""
			  for (i = 1; i <= NF; i++) {
				if (i == 1 && $i == "keyhole") continue
				if ($i !~ /^[a-z][a-z-]*$/) break
				path = path (path == "" ? "" : " ") $i
			  }
			  if ($1 == "keyhole" && path != "") print path }'
	done <"$tmp/commands"
	echo "keygen --federation"
}

# check_command PATH...: one keyhole command against its subsection.
check_command() {
	name="keyhole $*"
	if ! "$KEYHOLE" "$@" --help >"$tmp/help" 2>"$tmp/err"; then
		fail "$name" "--help failed: $(head -n 1 "$tmp/err")"
		return
	fi
	terms "$man_dir/keyhole.1" COMMANDS "$name" >"$tmp/terms"
	if ! grep -qx "\.SS $name" "$man_dir/keyhole.1"; then
		fail "$name" "keyhole(1) has no subsection \"$name\""
		return
	fi
	help_options <"$tmp/help" | grep -vx -- --help >"$tmp/wanted"
	term_options <"$tmp/terms" >"$tmp/documented"
	gaps=$(missing "$tmp/wanted" "$tmp/documented")
	if [ -n "$gaps" ]; then
		fail "$name" "not in keyhole(1): $gaps"
		return
	fi

	all_options <"$tmp/help" >"$tmp/mentioned"
	gaps=$(missing "$tmp/documented" "$tmp/mentioned")
	if [ -n "$gaps" ]; then
		fail "$name" "not in its --help: $gaps"
		return
	fi
	pass "$name"
}

check_keyhole() {
	command_paths | sort -u >"$tmp/paths"
	while read -r path; do
		check_command $path
	done <"$tmp/paths"

	# Fails on a subsection for a command that --help does not list.
	sed -n 's/^\.SS keyhole //p' "$man_dir/keyhole.1" | sort -u \
		>"$tmp/sections"
	compare "keyhole subsections" "$tmp/sections" "$tmp/paths" \
		"keyhole(1) documents commands that keyhole --help does not list"

	"$KEYHOLE" --help >"$tmp/help"
	awk '/^$/ { exit } { print }' "$tmp/help" | all_options >"$tmp/wanted"
	terms "$man_dir/keyhole.1" OPTIONS | term_options >"$tmp/documented"
	compare "keyhole options" "$tmp/wanted" "$tmp/documented" \
		"keyhole --help options not in keyhole(1) OPTIONS"
	all_options <"$tmp/help" >"$tmp/mentioned"
	compare "keyhole options reverse" "$tmp/documented" "$tmp/mentioned" \
		"keyhole(1) OPTIONS not in keyhole --help"
}

check_keyholed() {
	"$KEYHOLED" --help >"$tmp/help" 2>&1 ||
		fail "keyholed help" "keyholed --help failed"
	help_options <"$tmp/help" >"$tmp/wanted"
	terms "$man_dir/keyholed.8" OPTIONS | term_options >"$tmp/documented"
	compare "keyholed options" "$tmp/wanted" "$tmp/documented" \
		"keyholed --help options not in keyholed(8)"
	all_options <"$tmp/help" >"$tmp/mentioned"
	compare "keyholed options reverse" "$tmp/documented" "$tmp/mentioned" \
		"keyholed(8) options not in keyholed --help"
}

# allowed_keys JSON: the "allowed keys: a, b" list that keyholed prints
# for the unknown key zz_probe in JSON.
allowed_keys() {
	printf '%s\n' "$1" >"$tmp/probe.json"
	"$KEYHOLED" --check-config --config "$tmp/probe.json" 2>&1 |
		sed -n 's/.*zz_probe.*allowed keys: //p' | head -n 1 |
		tr ',' '\n' | tr -d ' ' | sed '/^$/d' | sort -u
}

# term_keys PAGE SECTION [SUBSECTION]: keys documented as "\fBkey\fR".
term_keys() {
	terms "$@" | sed -n 's/^\\fB\([a-z0-9_]*\)\\fR.*/\1/p' | sort -u
}

check_config_keys() {
	allowed_keys '{"zz_probe": 1}' >"$tmp/keys"
	if [ "$(wc -l <"$tmp/keys")" -lt 10 ]; then
		fail "config keys listed" "keyholed --check-config listed" \
			"$(wc -l <"$tmp/keys") keys: $(tr '\n' ' ' <"$tmp/keys")"
		return
	fi
	rejected=""
	while read -r key; do
		printf '{"%s": 0}\n' "$key" >"$tmp/one.json"
		if "$KEYHOLED" --check-config --config "$tmp/one.json" 2>&1 |
			grep -q "unknown key \"$key\""; then
			rejected="$rejected $key"
		fi
	done <"$tmp/keys"
	if [ -n "$rejected" ]; then
		fail "config keys listed" "listed but rejected:$rejected"
	else
		pass "config keys listed"
	fi
	term_keys "$man_dir/keyhole.json.5" KEYS >"$tmp/documented"
	compare "config keys" "$tmp/keys" "$tmp/documented" \
		"keyhole.json keys not in keyhole.json(5) KEYS"
	compare "config keys reverse" "$tmp/documented" "$tmp/keys" \
		"keyhole.json(5) KEYS that config.c does not accept"

	allowed_keys '{"federation": {"zz_probe": 1}}' >"$tmp/keys"
	term_keys "$man_dir/keyhole.json.5" FEDERATION >"$tmp/documented"
	compare "federation keys" "$tmp/keys" "$tmp/documented" \
		"federation keys not in keyhole.json(5) FEDERATION"
}

# backend_keys FILE: the keys of one module's conf_key tables, or of the
# strcmp(key, ...) checks of the file backend, which has no table.
backend_keys() {
	{
		sed -n 's/.*{ "\([a-z_]*\)", JSON_[A-Z]*, \(true\|false\) }.*/\1/p' "$1"
		sed -n 's/.*strcmp(key, "\([a-z_]*\)").*/\1/p' "$1"
	} | grep -vx type | sort -u
}

check_backend_keys() {
	conf_check="$KH_ROOT/core/backends/conf_check.h"
	sed -n '/conf_is_http_key/,/^}/p' "$conf_check" |
		grep -o 'strcmp(key, "[a-z_]*")' |
		sed 's/.*"\(.*\)")/\1/' | sort -u >"$tmp/keys"
	term_keys "$man_dir/keyhole.json.5" BACKENDS - >"$tmp/documented"
	compare "backend http keys" "$tmp/keys" "$tmp/documented" \
		"keys of every HTTP backend not in keyhole.json(5) BACKENDS"

	for source in "$KH_ROOT"/core/backends/*.c; do
		type=$(basename "$source" .c)
		backend_keys "$source" >"$tmp/keys"
		term_keys "$man_dir/keyhole.json.5" BACKENDS "type $type" \
			>"$tmp/documented"
		compare "backend $type keys" "$tmp/keys" "$tmp/documented" \
			"keys of $source not in keyhole.json(5) \"type $type\""
	done
}

# pam_arguments: NAME= for each value_of(arg, "NAME") and the flag words
# compared with strcmp(arg, ...) in pam/pam_args.c.
pam_arguments() {
	{
		sed -n 's/.*value_of(arg, "\([a-z_]*\)").*/\1=/p' \
			"$KH_ROOT/pam/pam_args.c"
		sed -n 's/.*strcmp(arg, "\([a-z_]*\)").*/\1/p' \
			"$KH_ROOT/pam/pam_args.c"
	} | sort -u
}

check_pam_arguments() {
	pam_arguments >"$tmp/args"
	terms "$man_dir/pam_keyhole.8" OPTIONS |
		grep -o '\\fB[a-z_]*=\{0,1\}' | sed 's/^\\fB//' | sort -u \
		>"$tmp/documented"
	compare "pam arguments" "$tmp/args" "$tmp/documented" \
		"pam_args.c arguments not in pam_keyhole(8) OPTIONS"
	compare "pam arguments reverse" "$tmp/documented" "$tmp/args" \
		"pam_keyhole(8) OPTIONS that pam_args.c does not parse"
}

check_pages
if [ -f "$man_dir/keyhole.1" ]; then
	check_keyhole
	check_keyholed
	check_config_keys
	check_backend_keys
	check_pam_arguments
fi
exit "$KH_FAILED"
