#!/bin/sh
# docker-build-check.sh checks the sidecar image's binary where no container
# engine runs (CI): it runs the Dockerfile's `go build` line as written, checks
# that the result is a static, CGO-free binary, runs `--help`, and runs the
# image's CMD against a missing config. It also checks the Dockerfile keeps
# its promises: distroless or scratch, a non-root user, EXPOSEd ports,
# --allow-remote.
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}

fail() {
	echo "docker-build-check: $*" >&2
	exit 1
}

build=$(grep -E '^RUN CGO_ENABLED=0 .*go build ' Dockerfile) ||
	fail "no 'RUN CGO_ENABLED=0 … go build …' line in Dockerfile"
[ "$(printf '%s\n' "$build" | wc -l)" -eq 1 ] || fail "more than one go build line in Dockerfile"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
TARGETOS=linux
TARGETARCH=$($GO env GOARCH)
export TARGETOS TARGETARCH
# The line as the build stage runs it, with /out/ in a temporary directory
# and `go` as $GO.
cmd=$(printf '%s\n' "$build" | sed -e 's/^RUN //' -e "s#/out/#$out/#g" -e "s#go build#$GO build#")
echo "docker-build-check: $cmd"
sh -c "$cmd"
bin=$out/mcp-oauth-proxy
[ -x "$bin" ] || fail "the build line made no $bin"

# Static: built without cgo, and no ELF interpreter (dynamic loader).
$GO version -m "$bin" | grep -q 'CGO_ENABLED=0' || fail "binary was built with cgo"
if command -v readelf >/dev/null 2>&1; then
	if readelf -l "$bin" | grep -q 'INTERP'; then
		fail "binary is dynamically linked"
	fi
elif command -v ldd >/dev/null 2>&1; then
	if ldd "$bin" 2>&1 | grep -q '=>'; then
		fail "binary links shared libraries"
	fi
fi

"$bin" --help >/dev/null || fail "--help failed"
"$bin" serve --help | grep -q -- '--allow-remote' || fail "serve --help lacks --allow-remote"

# The image's CMD, without a mounted config: a clear error naming the file.
cmd_args=$(sed -n 's/^CMD \[\(.*\)\]$/\1/p' Dockerfile | tr -d '",')
[ -n "$cmd_args" ] || fail "no CMD [...] in Dockerfile"
case " $cmd_args " in
*" --allow-remote "*) ;;
*) fail "CMD does not bind with --allow-remote" ;;
esac
# shellcheck disable=SC2086 # the CMD's words
if err=$(XDG_RUNTIME_DIR=$out DBUS_SESSION_BUS_ADDRESS='' "$bin" $cmd_args 2>&1); then
	fail "the CMD succeeded without a config"
fi
printf '%s\n' "$err" | grep -q '/config/fastagent.config.yaml' ||
	fail "the CMD's error does not name the config file: $err"

# The runtime stage.
final=$(awk '/^FROM /{stage=""} {stage=stage $0 "\n"} END{printf "%s", stage}' Dockerfile)
printf '%s' "$final" | grep -Eq '^FROM (gcr\.io/distroless/static[^ ]*|scratch)' ||
	fail "the runtime stage is not distroless/static or scratch"
user=$(printf '%s' "$final" | sed -n 's/^USER //p' | tail -n1)
case "$user" in
"" | root | root:* | 0 | 0:*) fail "the runtime stage runs as root" ;;
*[!0-9:]*) fail "USER $user is not numeric: Kubernetes' runAsNonRoot cannot check a user name" ;;
esac
printf '%s' "$final" | grep -Eq '^EXPOSE [0-9]' || fail "the runtime stage EXPOSEs no port"

echo "docker-build-check: static binary OK ($($GO version -m "$bin" | sed -n 's/^.*\(GOARCH=[a-z0-9]*\).*/\1/p' | head -n1), user $user)"
