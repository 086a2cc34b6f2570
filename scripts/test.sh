#!/usr/bin/env bash
# Runs the whole emojicast test suite: installs what the tests need besides
# Go when it is missing (redis-server, a browser, nginx, podman,
# systemd-analyze; needs root, as on CI, which the container test needs
# too), checks formatting and vets, then runs
#   1. every package's own tests with the race detector, in shuffled order
#      (all but e2e);
#   2. the end-to-end tests (e2e), in shuffled order, without the race
#      detector in the test process: they start emojicast processes built
#      without it but for a named subset that exercises the fleet's
#      concurrency under faults (e2e.raceBuilt), which includes the
#      fault-injection soak (TestFaultSoak, about 2 minutes);
#   3. the allocation pins (tests named ...DoesNotAllocate) without it: the
#      race detector makes sync.Pool drop items, so a pin can only fail here;
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

# step NAME COMMAND...: runs the command and says how long it took.
step() {
	local name=$1 start=$SECONDS
	shift
	"$@"
	echo "scripts/test.sh: $name took $((SECONDS - start)) s" >&2
}
# Most tests wait on processes, sockets and clocks more than they compute:
# four packages, and six end-to-end tests, at once keep two cores busy.
step "packages (race)" go test -race -shuffle=on -p 4 -timeout 20m $(go list ./... | grep -v '/e2e$')
step "end to end" go test -shuffle=on -parallel 6 -timeout 30m ./e2e
step "allocation pins" go test -count=1 -run 'DoesNotAllocate$' ./...
step "benchmarks once" go test -count=1 -run '^$' -bench . -benchtime 1x -timeout 10m ./...
