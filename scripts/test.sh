#!/usr/bin/env bash
# Runs the whole emojicast test suite: vet, then every test with the race
# detector, in shuffled order. This is the README's test command and what
# .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -race -shuffle=on -timeout 20m ./...
