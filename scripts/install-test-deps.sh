#!/usr/bin/env bash
# Installs what the test suite runs besides Go, when it is missing: the
# store and fleet tests start their own redis-server processes and build
# clusters with redis-cli; the browser tests drive Debian's Chromium and
# draw emojis with the Noto Color Emoji font; the CDN tests put nginx in
# front of emojicast, and Varnish (Debian's varnish, with varnishncsa) as
# the second edge and the stock cache; the JavaScript client's tests run on Node.js 20 or
# later; the alerting tests check deploy/prometheus with promtool and
# scrape a running emojicast with a real Prometheus (both from Debian's
# prometheus package); the container test builds the image with podman,
# the systemd test checks the units with systemd-analyze (Debian's
# systemd package); the Kotlin client's tests (clients/kotlin/build.sh)
# run on a JDK 17 with Debian's OkHttp and JUnit 5, and take the Kotlin
# compiler from npm (which comes with Node.js 20); the archive tests start
# their own PostgreSQL (Debian's postgresql, its binaries under
# /usr/lib/postgresql/<version>/bin). Needs root (or sudo)
# only when something is missing.
set -euo pipefail

# need PACKAGE CHECK...: PACKAGE is missing when the CHECK command fails.
missing=()
need() {
	local pkg=$1
	shift
	if ! "$@" >/dev/null 2>&1; then
		missing+=("$pkg")
	fi
}

need redis-server command -v redis-server
need redis-tools command -v redis-cli
need chromium command -v chromium
need fonts-noto-color-emoji test -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
# Debian puts nginx in /usr/sbin, which a user's PATH may lack.
need nginx test -x /usr/sbin/nginx
need varnish test -x /usr/sbin/varnishd
need nodejs command -v node
need prometheus command -v promtool
need podman command -v podman
need systemd test -x /usr/bin/systemd-analyze
need openjdk-17-jdk-headless command -v javac
need libokhttp-java test -e /usr/share/java/okhttp.jar
need junit5 test -e /usr/share/java/junit-platform-console-standalone.jar
need postgresql compgen -G '/usr/lib/postgresql/*/bin/initdb'

# node_new_enough fails, saying why, unless node is Node.js 20 or later.
node_new_enough() {
	local v
	v=$(node --version)
	v=${v#v}
	if ((${v%%.*} < 20)); then
		echo "the JavaScript client's tests need Node.js 20 or later, found $v (Debian 12 ships 18: install 20 from nodejs.org or NodeSource)" >&2
		return 1
	fi
}

if ((${#missing[@]} == 0)); then
	node_new_enough
	exit 0
fi
echo "installing test dependencies: ${missing[*]}" >&2
sudo=()
if [[ $(id -u) != 0 ]]; then
	sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# The tests start their own servers; a package must not start its service
# (nginx would take port 80, prometheus 9090). policy-rc.d is Debian's way
# to say so; add one for this install only, unless the machine has its own.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
	"${sudo[@]}" chmod +x "$policy"
	trap '"${sudo[@]}" rm -f "$policy"' EXIT
fi
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q "${missing[@]}"
node_new_enough
