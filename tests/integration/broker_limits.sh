#!/bin/sh
# Rate and budget limits survive a restart of keyholed, because the
# counters are rebuilt from the DPR log, and they are counted per rule
# and agent.
set -u
KH_ROOT=$(CDPATH='' cd "$(dirname "$0")/../.." && pwd)
. "$KH_ROOT/tests/lib.sh"

kh_test_setup

kh_secret crm_key "crm_$(kh_random_hex)"

kh_write_policy '    {
      "id": "limited-lookups",
      "effect": "permit",
      "action": {"type": "tool_call", "tool": "crm.lookup"},
      "limits": {"rate": {"count": 2, "per": 3600}},
      "grant": {"secrets": ["local/crm_key"], "ttl": 60}
    },
    {
      "id": "budgeted-refunds",
      "effect": "permit",
      "action": {"type": "tool_call", "tool": "crm.refund"},
      "limits": {"budget": {"path": "action.params.amount", "max": 1000, "per": 3600}},
      "grant": {"secrets": ["local/crm_key"], "ttl": 60}
    }'

lookup='{"type":"tool_call","tool":"crm.lookup"}'
refund='{"type":"tool_call","tool":"crm.refund","params":{"amount":%d}}'

# request NAME ACCOUNT ACTION: requests a permit as "agent" or "other",
# leaves stdout and stderr in $out/NAME.out and $out/NAME.err, and
# returns the exit status of keyhole request.
request() {
	if [ "$2" = agent ]; then
		as_agent "$KEYHOLE" request --socket "$KH_SOCKET" --action "$3" \
			>"$out/$1.out" 2>"$out/$1.err"
	else
		as_other "$KEYHOLE" request --socket "$KH_SOCKET" --action "$3" \
			>"$out/$1.out" 2>"$out/$1.err"
	fi
}

# expect_permit NAME ACCOUNT ACTION
expect_permit() {
	if request "$@"; then
		pass "$1"
	else
		fail "$1" "denied: $(cat "$out/$1.err")"
	fi
}

# expect_denial NAME ACCOUNT ACTION WORD: exit status 1 and WORD (any
# case) in the reason.
expect_denial() {
	request "$1" "$2" "$3"
	status=$?
	if [ "$status" -ne 1 ]; then
		fail "$1" "expected exit status 1, got $status: $(cat "$out/$1.err")"
	elif grep -qi -- "$4" "$out/$1.err"; then
		pass "$1"
	else
		fail "$1" "expected \"$4\" in: $(cat "$out/$1.err")"
	fi
}

kh_start || kh_abort setup "keyholed did not start"

expect_permit first_lookup agent "$lookup"
expect_permit second_lookup agent "$lookup"
# shellcheck disable=SC2059
expect_permit refund_600 agent "$(printf "$refund" 600)"

kh_stop
kh_start || kh_abort restart "keyholed did not restart"

expect_denial third_lookup_after_restart agent "$lookup" rate
# shellcheck disable=SC2059
expect_denial refund_over_budget_after_restart agent "$(printf "$refund" 600)" budget
# shellcheck disable=SC2059
expect_permit refund_within_budget_after_restart agent "$(printf "$refund" 300)"
expect_permit other_agent_own_rate other "$lookup"

kh_check_daemon_log daemon_log_clean
exit "$KH_FAILED"
