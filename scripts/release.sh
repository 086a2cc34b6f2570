#!/usr/bin/env bash
# Builds emojicast's release binaries: static (CGO_ENABLED=0), one per
# target, named emojicast-VERSION-OS-ARCH, plus SHA256SUMS, into OUT.
# The build is reproducible: the same source, version and Go toolchain
# give byte-identical binaries on any machine and in any directory
# (-trimpath; no build IDs, timestamps or VCS stamps: the commit goes in
# through -ldflags), so anyone can rebuild a release and compare its sums.
#
#   scripts/release.sh                     # every target, into dist/
#   VERSION=v1.2.0 OUT=/tmp/rel TARGETS=linux/amd64 scripts/release.sh
#
# VERSION defaults to `git describe --tags --always --dirty`, COMMIT to
# `git rev-parse HEAD`; TARGETS to linux/amd64 linux/arm64 darwin/arm64.
# `emojicast version` prints them; /metrics exports them as
# emojicast_build_info.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo unknown)}
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
out=${OUT:-dist}
targets=${TARGETS:-linux/amd64 linux/arm64 darwin/arm64}

if [[ ! $version =~ ^[A-Za-z0-9._+-]+$ ]]; then
	echo "release.sh: VERSION $version: use letters, digits and . _ + - only" >&2
	exit 2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

names=()
for target in $targets; do
	os=${target%/*}
	arch=${target#*/}
	name=emojicast-$version-$os-$arch
	echo "building $name" >&2
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOFLAGS= go build \
		-trimpath -buildvcs=false \
		-ldflags "-s -w -buildid= -X main.version=$version -X main.commit=$commit" \
		-o "$out/$name" ./cmd/emojicast
	names+=("$name")
done

cd "$out"
if command -v sha256sum >/dev/null; then
	sha256sum "${names[@]}" >SHA256SUMS
else
	shasum -a 256 "${names[@]}" >SHA256SUMS # macOS
fi
cat SHA256SUMS
