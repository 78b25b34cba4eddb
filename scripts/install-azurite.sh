#!/usr/bin/env bash
# install-azurite.sh — installs Azurite, Microsoft's Azure Storage emulator (npm package
# `azurite`), that the Azure tests (test/azuritetest) start on 127.0.0.1, into
# <repo>/.cache/azurite. Idempotent and non-interactive: it does nothing when the pinned
# version is already there. Needs node and npm (apt-get install -y nodejs npm).
set -euo pipefail

step() { printf 'install-azurite: %s\n' "$*"; }
die() { printf 'install-azurite: error: %s\n' "$*" >&2; exit 1; }

version=${PGWARD_AZURITE_VERSION:-3.37.0}
root=$(cd "$(dirname "$0")/.." && pwd -P)
prefix="$root/.cache/azurite"
pkg="$prefix/node_modules/azurite"

have() { sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json" 2>/dev/null | head -n1; }

if [ "$(have || true)" = "$version" ] && [ -f "$pkg/dist/src/blob/main.js" ]; then
	step "azurite $version already in $prefix"
	exit 0
fi
command -v npm >/dev/null || die "npm is needed to install azurite (apt-get install -y nodejs npm)"
mkdir -p "$prefix"
exec 9>"$prefix/.install-azurite.lock"
flock 9
if [ "$(have || true)" != "$version" ] || [ ! -f "$pkg/dist/src/blob/main.js" ]; then
	step "npm install azurite@$version into $prefix"
	npm install --no-audit --no-fund --loglevel=error --prefix "$prefix" "azurite@$version" >/dev/null ||
		die "npm install azurite@$version failed"
fi
[ -f "$pkg/dist/src/blob/main.js" ] || die "azurite $version has no dist/src/blob/main.js in $pkg"
step "azurite $version in $prefix ($(node --version))"
