#!/bin/sh
# Installs what `make test` needs on a fresh Debian/Ubuntu machine, and only
# what is missing: a Secret Service (gnome-keyring) on a private D-Bus
# session, secret-tool and Python keyring for the interop tests, npm for
# the conformance suite, and Chromium for the status page's browser tests.
set -eu

missing=""
command -v dbus-run-session >/dev/null 2>&1 || missing="$missing dbus"
command -v gnome-keyring-daemon >/dev/null 2>&1 || missing="$missing gnome-keyring"
command -v secret-tool >/dev/null 2>&1 || missing="$missing libsecret-tools"
# Python keyring, the peer fast-agent uses, for the interop tests; Debian
# installs it for /usr/bin/python3.
/usr/bin/python3 -c 'import keyring.backends.SecretService' >/dev/null 2>&1 || missing="$missing python3-keyring"
# npm installs the conformance suite (and its Node 22) from the lockfile.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
# The browser tests drive headless Chromium (/usr/bin/chromium).
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"

if [ -n "$missing" ]; then
	echo "install-test-deps: installing$missing" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# dbus-x11 is deliberately not installed: with it, go-keyring would
	# spawn dbus-launch and leak daemons (see store's package doc).
	$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
