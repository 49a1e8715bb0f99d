#!/bin/sh
# Usage: bench/run.sh [HARNESS FLAGS...]   (make bench)
#
# Measures the proxy against no proxy and against nginx on this machine and
# prints one Markdown report (BENCHMARKS.md explains it). Installs wrk and
# nginx from Debian when missing, and what the keychain needs (the real
# binary is measured with its token in a private Secret Service session),
# builds the programs under bench/ and the binary, and runs bench/harness.
# Every process it starts is stopped before it exits. Flags go to the
# harness, e.g. -rounds 3 -duration 5s -streams 10000 -only throughput.
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}

missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
if [ -n "$missing" ]; then
	echo "bench: installing$missing" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	# The package would start nginx as a service on port 80 where services
	# can start; the harness runs its own. policy-rc.d forbids the start.
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod 755 "$policy"
	fi
	status=0
	{ $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null; } || status=$?
	[ -z "$policy" ] || $sudo rm -f "$policy"
	[ "$status" -eq 0 ] || exit "$status"
fi
PATH=$PATH:/usr/sbin
export PATH
scripts/install-test-deps.sh

bin=$(mktemp -d "${TMPDIR:-/tmp}/mcp-oauth-proxy-bench-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
for p in upstream proxy ssefan stackprobe harness; do
	$GO build -o "$bin/$p" "./bench/$p"
done
$GO build -o "$bin/mcp-oauth-proxy" ./cmd/mcp-oauth-proxy

# Each proxied stream holds two sockets; the fan-out needs thousands.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
scripts/with-secret-service.sh "$bin/harness" -bin "$bin" -script bench/post.lua "$@"
