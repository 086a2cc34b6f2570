#!/usr/bin/env bash
# Runs the whole emojicast test suite: installs what the tests need besides
# Go when it is missing (redis-server, a browser, nginx, podman,
# systemd-analyze; needs root, as on CI, which the container test needs
# too), checks formatting and vets, then runs
#   1. every test with the race detector, in shuffled order;
#   2. the allocation pins (tests named ...DoesNotAllocate) without it: the
#      race detector makes sync.Pool drop items, so a pin can only fail here;
#   3. the fault-injection soak (TestFaultSoak, one round of faults on a
#      fleet and a Redis Cluster, about 2 minutes), in a step of its own
#      without the race detector in the test process (its emojicast
#      processes have it; the race pass skips it);
#   4. every benchmark once, so none rots unnoticed.
# This is the README's test command and what .ci/run calls. For a quick
# loop while developing: go test -short ./...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n $unformatted ]]; then
	echo "gofmt would change these files:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
# the diagnostics build (benchmarks/README.md, "Where a connected viewer's bytes go")
go vet -tags memstats ./cmd/emojicast
go test -race -shuffle=on -timeout 40m ./...
go test -count=1 -run 'DoesNotAllocate$' ./...
go test -count=1 -v -run '^TestFaultSoak$' -timeout 10m ./e2e
go test -count=1 -run '^$' -bench . -benchtime 1x -timeout 10m ./...
