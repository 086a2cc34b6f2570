#!/usr/bin/env bash
# Redis commands per send for sharing the per-user and per-address send
# limits across the push fleet (store/redis_limits.lua), measured: a
# redis-server on a free port, NODES emojicast serve processes on it, and
# one benchmarks/loadgen per process whose SENDERS users send to that
# process alone (as behind the edge's hashed push upstream), at three
# paces of the per-user limit (10 taps/s):
#
#   fifth  one send a second of 1-3 taps (2 taps/s, 20% of the limit)
#   plan   one send a second of 1-5 taps (3 taps/s, 30%: the capacity
#          plan's 3.14 taps a send, once a second)
#   near   two sends a second of 1-8 taps (9 taps/s, 90%)
#
# The exchange script runs one GET and one SET per key exchanged, and no
# other script runs GET, so limit commands = 2 x GETs (the EVALSHA that
# carries them, one per shard and node and round, is not counted).
#
# Usage: benchmarks/limits/run.sh        (from the repository root)
#   EMOJICAST=/path/to/emojicast  the binary to measure (default: built
#                                 from this tree)
#   NODES=3 SENDERS=200 DURATION=10s
# Heavy: run it under the machine's load-test lock if it has one.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${NODES:-3}
SENDERS=${SENDERS:-200}
DURATION=${DURATION:-10s}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if [[ -z ${EMOJICAST:-} ]]; then
	EMOJICAST=$work/emojicast
	go build -o "$EMOJICAST" ./cmd/emojicast
fi
go build -o "$work/loadgen" ./benchmarks/loadgen

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

rport=$(freeport)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$rport" ping >/dev/null 2>&1; do sleep 0.1; done

# The generators send from one address: the per-address limits are lifted
# (their keys then stay far inside them), so the figures are the per-user
# limit's. A real client address sending a viewer's taps is far inside
# its 50 sends/s too.
LOAD="--max-conns-per-ip 20000 --ip-send-rate 1000000 --ip-send-burst 1000000 --ip-weight-rate 1000000 --ip-weight-burst 1000000 --ip-comment-rate 1000000 --ip-comment-burst 1000000 --ip-watch-rate 1000000 --ip-watch-burst 1000000 --ip-poll-rate 1000000 --ip-poll-burst 1000000 --ip-viewers 1000000"
ports=()
for i in $(seq "$NODES"); do
	port=$(freeport)
	# shellcheck disable=SC2086
	"$EMOJICAST" serve --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$rport" --log-level warn $LOAD >"$work/node$i.log" 2>&1 &
	pids+=($!)
	ports+=("$port")
done
for port in "${ports[@]}"; do
	until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
done

gets() { redis-cli -p "$rport" info commandstats | sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p' | grep . || echo 0; }

run=$(date +%s)
printf '%-6s %6s %8s %9s %12s %14s\n' pace nodes sends taps/s 429s "limit cmds/send"
for pace in fifth:1s:3 plan:1s:5 near:500ms:8; do
	IFS=: read -r name every maxcount <<<"$pace"
	before=$(gets)
	lg=()
	for i in "${!ports[@]}"; do
		"$work/loadgen" -addr "127.0.0.1:${ports[$i]}" -viewers 1 -senders "$SENDERS" \
			-send-every "$every" -max-count "$maxcount" -warmup 1s -duration "$DURATION" -drain 2s \
			-ceiling 0 -stream "lim-$run-$name-$i" -user-prefix "r$run$name$i-" -json >"$work/$name-$i.json" &
		lg+=($!)
	done
	for p in "${lg[@]}"; do wait "$p"; done
	after=$(gets)
	jq -rs --arg name "$name" --argjson nodes "$NODES" --argjson gets $((after - before)) '
		(map(.clients.sends) | add) as $sends
		| (map(.clients.taps_per_sec) | add) as $taps
		| (map(.clients.rate_limited) | add) as $limited
		| "\($name)\t\($nodes)\t\($sends)\t\($taps | floor)\t\($limited)\t\(2 * $gets / $sends * 1000 | round / 1000)"' \
		"$work/$name"-*.json | xargs printf '%-6s %6s %8s %9s %12s %14s\n'
done
