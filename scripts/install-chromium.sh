#!/usr/bin/env bash
# install-chromium.sh — installs headless Chromium, which the daemon's end-to-end test
# (test/e2e, TestDaemonFleet) uses to load the status page as a browser does. Idempotent
# and non-interactive: it does nothing when a chromium binary is on PATH. It installs
# Debian's `chromium` package (as root, through apt-get; nothing is cached in the repository).
set -euo pipefail

step() { printf 'install-chromium: %s\n' "$*"; }
die() { printf 'install-chromium: error: %s\n' "$*" >&2; exit 1; }

for b in chromium chromium-browser; do
	if command -v "$b" >/dev/null; then
		step "$b present at $(command -v "$b")"
		exit 0
	fi
done
[ "$(id -u)" -eq 0 ] || die "chromium is missing and installing it needs root: apt-get install chromium"
step "apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
step "apt-get install -y chromium"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null ||
	die "apt-get install chromium failed"
command -v chromium >/dev/null || die "the chromium package installed no chromium binary"
step "chromium $(chromium --version 2>/dev/null || echo '(version unknown)') installed"
