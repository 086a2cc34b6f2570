#!/usr/bin/env bash
# Installs redis-server and redis-cli (Debian's redis-server and
# redis-tools) when either is missing; the tests start their own servers.
set -euo pipefail
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "redis-server and redis-cli are needed by the tests: install them (apt-get install redis-server redis-tools) or run as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends redis-server redis-tools
# The package starts a server on 6379; the tests do not use it.
