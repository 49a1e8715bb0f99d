#!/bin/sh
# Usage: scripts/with-secret-service.sh CMD [ARGS...]
#
# Runs CMD inside a private, headless Secret Service session: its own D-Bus
# session bus and its own unlocked gnome-keyring "login" keyring in a fresh
# temporary directory, so tests can use a real keychain without touching
# the user's. Sets MCP_OAUTH_PROXY_SECRET_SERVICE=1 for CMD, which enables
# the Secret Service integration tests. Exits with CMD's status. Removes
# the directory afterwards and ends any process still running in the
# session (the daemons normally exit with the bus on their own).
#
# Needs dbus-run-session, gnome-keyring-daemon and (for the interop tests)
# secret-tool: apt-get install gnome-keyring dbus libsecret-tools.
# Do not install dbus-x11: its dbus-launch lets go-keyring spawn stray buses.
#
# The steps are the measured reliable recipe (go-libs.md §2.5): unlock
# first, which creates the keyring from the password on stdin, then
# --start, which registers org.freedesktop.secrets on the bus. Relying on
# D-Bus activation instead races the first daemon and fails now and then.
# HOME stays untouched so Go's module and build caches stay where they are.
set -eu

if [ "$#" -eq 0 ]; then
	echo "usage: $0 CMD [ARGS...]" >&2
	exit 2
fi
for tool in dbus-run-session gnome-keyring-daemon; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$0: $tool not found; install gnome-keyring, dbus and libsecret-tools" >&2
		exit 127
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcp-oauth-proxy-secrets.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 700 "$tmp"
mkdir -m 700 "$tmp/data" "$tmp/runtime"

# The keyrings go to $XDG_DATA_HOME/keyrings, the daemon's control socket
# to $XDG_RUNTIME_DIR/keyring.
XDG_DATA_HOME=$tmp/data
XDG_RUNTIME_DIR=$tmp/runtime
MCP_OAUTH_PROXY_SECRET_SERVICE=1
export XDG_DATA_HOME XDG_RUNTIME_DIR MCP_OAUTH_PROXY_SECRET_SERVICE
unset DBUS_SESSION_BUS_ADDRESS GNOME_KEYRING_CONTROL

# session_pids prints the processes still running in this session: they
# carry its XDG_RUNTIME_DIR. The daemons normally exit with the bus, but a
# CMD may have started more; none must outlive the script.
session_pids() {
	for env in /proc/[0-9]*/environ; do
		pid=${env#/proc/}
		pid=${pid%/environ}
		if grep -qzxF "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR" "$env" 2>/dev/null; then
			echo "$pid"
		fi
	done
}

# With XDG_RUNTIME_DIR set, --unlock puts its control socket in
# $XDG_RUNTIME_DIR/keyring and prints nothing; the eval and export keep
# GNOME_KEYRING_CONTROL right should a version print it anyway.
status=0
dbus-run-session -- sh -c '
	set -e
	eval "$(printf "%s" "mcp-oauth-proxy-test" | gnome-keyring-daemon --unlock --components=secrets)"
	export GNOME_KEYRING_CONTROL
	gnome-keyring-daemon --start --components=secrets >/dev/null
	exec "$@"
' with-secret-service "$@" || status=$?

# Give the daemons up to 5 s to exit, then end the stragglers.
tries=0
while pids=$(session_pids) && [ -n "$pids" ]; do
	tries=$((tries + 1))
	if [ "$tries" -gt 50 ]; then
		echo "$0: ending leftover session processes: $(echo $pids)" >&2
		# shellcheck disable=SC2086 # one word per pid
		kill $pids 2>/dev/null || true
		break
	fi
	sleep 0.1
done
exit "$status"
