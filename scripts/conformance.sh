#!/usr/bin/env bash
# Runs the official MCP conformance suite (client mode, pinned in
# test/conformance/package-lock.json) against mcp-oauth-proxy: every scenario
# of `--suite auth` and `--suite backcompat`. The suite's client command is
# internal/conformance/client, which puts the proxy in front of each scenario's
# server and drives it with an OAuth-unaware MCP client.
#
# Each scenario runs on its own (`--scenario`), not as `--suite`, because only
# the single-scenario verdict counts a client that fails or times out; suite
# mode scores the recorded checks alone.
#
# Environment:
#   CONFORMANCE_SCENARIOS  space-separated scenarios to run instead of all
#   CONFORMANCE_JOBS       scenarios run at once (default 4)
#   CONFORMANCE_OUT        results directory (default .artifacts/conformance;
#                          its auth/ is emptied first)
#   GO                     go command (default go)
#
# Needs npm (any Node version) for `npm ci`; the lockfile brings Node 22 for
# linux-x64. Elsewhere, put a Node >= 22 first on PATH.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
suite_dir=$root/test/conformance
out=${CONFORMANCE_OUT:-$root/.artifacts/conformance}
jobs=${CONFORMANCE_JOBS:-4}
go=${GO:-go}

# The two suites as of @modelcontextprotocol/conformance 0.1.16 (checked
# against `conformance list --client` below); revisit when bumping it.
auth_suite=(
	auth/metadata-default
	auth/metadata-var1
	auth/metadata-var2
	auth/metadata-var3
	auth/basic-cimd
	auth/scope-from-www-authenticate
	auth/scope-from-scopes-supported
	auth/scope-omitted-when-undefined
	auth/scope-step-up
	auth/scope-retry-limit
	auth/token-endpoint-auth-basic
	auth/token-endpoint-auth-post
	auth/token-endpoint-auth-none
	auth/pre-registration
)
backcompat_suite=(
	auth/2025-03-26-oauth-metadata-backcompat
	auth/2025-03-26-oauth-endpoint-fallback
)

die() {
	echo "conformance: $*" >&2
	exit 1
}

# npm ci only when node_modules is missing or stale: the stamp is a copy of
# the lockfile it was installed from (npm ci deletes node_modules first).
stamp=$suite_dir/node_modules/.installed-package-lock.json
if ! cmp -s "$suite_dir/package-lock.json" "$stamp"; then
	command -v npm >/dev/null 2>&1 || die "npm not found; install Node.js and npm (e.g. apt-get install npm)"
	echo "conformance: npm ci in test/conformance" >&2
	(cd "$suite_dir" && npm ci --no-audit --no-fund --loglevel=error)
	cp "$suite_dir/package-lock.json" "$stamp"
fi

# node_modules/.bin holds the suite's CLI and, on linux-x64, Node 22.
export PATH=$suite_dir/node_modules/.bin:$PATH
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' ||
	die "the suite needs Node >= 22, found $(node --version) at $(command -v node)"

bin=$(mktemp -d "${TMPDIR:-/tmp}/conformance-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
(cd "$root" &&
	"$go" build -o "$bin/mcp-oauth-proxy" ./cmd/mcp-oauth-proxy &&
	"$go" build -o "$bin/conformance-client" ./internal/conformance/client)
export MCP_OAUTH_PROXY_BIN=$bin/mcp-oauth-proxy

if [ -n "${CONFORMANCE_SCENARIOS:-}" ]; then
	read -r -a selected <<<"$CONFORMANCE_SCENARIOS"
else
	selected=("${auth_suite[@]}" "${backcompat_suite[@]}")
fi
known=$(conformance list --client)
for s in "${selected[@]}"; do
	grep -qF -- "- $s [" <<<"$known" || die "unknown scenario $s (see: conformance list --client)"
done

# Every result lives under $out/auth/ (scenario names start with auth/).
rm -rf "$out/auth"
mkdir -p "$out"

# run_one runs a scenario; its output goes to $out/<scenario>.log, its exit
# status to $out/<scenario>.rc, the suite's files to $out/<scenario>-<time>/.
run_one() {
	local s=$1 log=$out/$1.log rc=0
	mkdir -p "$(dirname "$log")"
	# The suite joins --command and the server URL with spaces and runs the
	# result with sh -c, hence the inner quotes.
	conformance client --scenario "$s" --command "'$bin/conformance-client'" \
		-o "$out" >"$log" 2>&1 || rc=$?
	echo "$rc" >"$out/$s.rc"
}

echo "conformance: running ${#selected[@]} scenarios, $jobs at a time; results in $out" >&2
for s in "${selected[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n || true
	done
	run_one "$s" &
done
wait

strip() { sed 's/\x1b\[[0-9;]*m//g' "$@"; }

# Full logs of failed scenarios first, then the summaries.
failed=0
for s in "${selected[@]}"; do
	if [ "$(cat "$out/$s.rc")" != 0 ]; then
		failed=$((failed + 1))
		echo "=== $s: FAILED (exit $(cat "$out/$s.rc")); log $out/$s.log"
		strip "$out/$s.log"
		echo
	fi
done

summary() {
	local name=$1 s line mark note header=
	shift
	for s in "$@"; do
		[ -f "$out/$s.rc" ] || continue
		[ -n "$header" ] || { header=1; echo "=== $name ==="; }
		line=$(strip "$out/$s.log" | grep -m1 '^Passed: ' || echo "no results")
		mark="✓" note=" (allowed by the scenario)"
		[ "$(cat "$out/$s.rc")" = 0 ] || mark="✗" note=
		echo "$mark $s: $line"
		strip "$out/$s.log" | grep -E '^Client (exited|timed out)' | sed "s/^/    /; s/\$/$note/" || true
	done
}
summary "auth suite" "${auth_suite[@]}"
summary "backcompat suite" "${backcompat_suite[@]}"
extra=()
for s in "${selected[@]}"; do
	[[ " ${auth_suite[*]} ${backcompat_suite[*]} " == *" $s "* ]] || extra+=("$s")
done
[ "${#extra[@]}" -eq 0 ] || summary "other scenarios" "${extra[@]}"

echo
if [ "$failed" -ne 0 ]; then
	echo "conformance: $failed of ${#selected[@]} scenarios FAILED"
	exit 1
fi
echo "conformance: all ${#selected[@]} scenarios passed"
