#!/usr/bin/env bash
# Runs scripts/test.sh RUNS times in a row (default 3) while a busy loop
# holds one of the machine's cores, and stops at the first failure: the
# check that the suite has no flakes on a loaded machine (issue 26). Each
# run's output goes to a log file in a temporary directory, whose path is
# printed; the last lines of a failed run are printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
logs=$(mktemp -d "${TMPDIR:-/tmp}/emojicast-test-busy-XXXXXX")

# One core busy: a shell loop that never sleeps, at normal priority.
bash -c 'while :; do :; done' &
busy=$!
trap 'kill $busy 2>/dev/null' EXIT

echo "logs in $logs; busy loop pid $busy" >&2
for i in $(seq 1 "$runs"); do
	start=$SECONDS
	if ! scripts/test.sh >"$logs/run-$i.log" 2>&1; then
		tail -n 60 "$logs/run-$i.log" >&2
		echo "run $i of $runs FAILED after $((SECONDS - start)) s (load average $(cut -d' ' -f1-3 /proc/loadavg)); log: $logs/run-$i.log" >&2
		exit 1
	fi
	echo "run $i of $runs passed in $((SECONDS - start)) s (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	grep '^scripts/test.sh: ' "$logs/run-$i.log" >&2 || true
done
