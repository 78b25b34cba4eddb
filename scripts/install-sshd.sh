#!/usr/bin/env bash
# install-sshd.sh — makes sure OpenSSH's sshd (Debian package openssh-server) is installed,
# for the SFTP tests (test/sshtest), which start their own sshd on 127.0.0.1 with a throwaway
# host key and config; the system's sshd service is neither configured nor started here.
# Idempotent and non-interactive; installing needs root.
set -euo pipefail

step() { printf 'install-sshd: %s\n' "$*"; }
die() { printf 'install-sshd: error: %s\n' "$*" >&2; exit 1; }

if [ -x /usr/sbin/sshd ] && [ -x /usr/lib/openssh/sftp-server ] && command -v ssh-keygen >/dev/null; then
	step "sshd present: $(/usr/sbin/sshd -V 2>&1 | head -n1 || true)"
	exit 0
fi
[ "$(id -u)" -eq 0 ] || die "/usr/sbin/sshd is missing and installing it needs root: apt-get install openssh-server"
# The package would start the system's sshd on port 22: tell invoke-rc.d not to (policy-rc.d
# exit 101), for the length of this install only.
policy=/usr/sbin/policy-rc.d
made_policy=false
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	made_policy=true
fi
cleanup() { if $made_policy; then rm -f "$policy"; fi; }
trap cleanup EXIT
step "apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
step "apt-get install -y openssh-server"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-server openssh-client >/dev/null ||
	die "apt-get install openssh-server failed"
[ -x /usr/sbin/sshd ] || die "openssh-server installed but /usr/sbin/sshd is missing"
step "sshd installed: $(/usr/sbin/sshd -V 2>&1 | head -n1 || true)"
