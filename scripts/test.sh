#!/usr/bin/env bash
# Runs the whole emojicast test suite: vet, then every test with the race
# detector, in shuffled order. This is the README's test command and what
# .ci/run calls. Tests start their own redis-server processes, so Redis is
# installed first when it is missing (needs root, as on CI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-redis.sh
go vet ./...
go test -race -shuffle=on -timeout 20m ./...
