# PASS:/FAIL: reporting for tests/install/run.sh and boot.sh (POSIX sh,
# sourced). The caller sets KI_PREFIX ("install" or "boot") and
# KI_WORK, and prints "$passed passed, $failed failed" at the end.

passed=0
failed=0

pass() {
	echo "PASS: $KI_PREFIX/$1"
	passed=$((passed + 1))
}

fail() {
	echo "FAIL: $KI_PREFIX/$1: $2"
	failed=$((failed + 1))
}

# check NAME COMMAND...: passes when COMMAND exits 0. A failure shows
# the last lines of the command's output.
check() {
	name=$1
	shift
	if "$@" >"$KI_WORK/check.out" 2>&1; then
		pass "$name"
	else
		fail "$name" "$* failed: $(tail -n 3 "$KI_WORK/check.out" | tr '\n' ' ')"
	fi
}

check_equal() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		fail "$1" "expected \"$3\", got \"$2\""
	fi
}

# check_contains NAME TEXT EXPECTED: passes when TEXT contains EXPECTED.
# A failure shows the last lines of TEXT.
check_contains() {
	case $2 in
	*"$3"*) pass "$1" ;;
	*) fail "$1" "expected \"$3\" in: $(printf '%s' "$2" | tail -n 5)" ;;
	esac
}

# abort NAME WHY [LOG]: a failure that leaves nothing else to test. Shows
# the end of LOG and exits, and the caller's EXIT trap cleans up.
abort() {
	fail "$1" "$2"
	if [ -n "${3:-}" ] && [ -f "$3" ]; then
		echo "--- last 30 lines of $(basename "$3") ---" >&2
		tail -n 30 "$3" >&2
	fi
	exit 1
}
