#!/usr/bin/env bash
# Runs the whole emojicast test suite: installs what the tests need besides
# Go when it is missing (redis-server, a browser; needs root, as on CI),
# vets, then runs every test with the race detector, in shuffled order.
# This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
go vet ./...
go test -race -shuffle=on -timeout 20m ./...
