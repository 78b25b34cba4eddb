#!/usr/bin/env bash
# install-fake-gcs-server.sh — installs fake-gcs-server, the Google Cloud Storage emulator
# that the GCS tests (test/gcstest) start on 127.0.0.1, into <repo>/.cache/bin. Built from
# its Go module with the machine's Go; idempotent and non-interactive: it does nothing when
# the binary there is already the pinned version.
set -euo pipefail

step() { printf 'install-fake-gcs-server: %s\n' "$*"; }
die() { printf 'install-fake-gcs-server: error: %s\n' "$*" >&2; exit 1; }

module=github.com/fsouza/fake-gcs-server
version=${PGWARD_FAKE_GCS_VERSION:-v1.56.1}
root=$(cd "$(dirname "$0")/.." && pwd -P)
bindir="$root/.cache/bin"
bin="$bindir/fake-gcs-server"

command -v go >/dev/null || die "go is needed to build fake-gcs-server (https://go.dev/dl/)"

installed_version() {
	go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "'"$module"'" { print $3; exit }'
}

if [ -x "$bin" ] && [ "$(installed_version "$bin" || true)" = "$version" ]; then
	step "fake-gcs-server $version already in $bin"
	exit 0
fi
mkdir -p "$bindir"
exec 9>"$bindir/.install-fake-gcs-server.lock"
flock 9
if [ -x "$bin" ] && [ "$(installed_version "$bin" || true)" = "$version" ]; then
	step "fake-gcs-server $version installed meanwhile by another run"
	exit 0
fi
step "go install $module@$version into $bindir (a minute or two when cold)"
GOBIN="$bindir" GOFLAGS= go install "$module@$version" || die "go install $module@$version failed"
have=$(installed_version "$bin" || true)
[ "$have" = "$version" ] || die "after install $bin reports version '${have}', want $version"
step "fake-gcs-server $version installed in $bin"
