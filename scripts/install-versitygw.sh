#!/usr/bin/env bash
# install-versitygw.sh — installs versitygw, the S3-compatible server that the S3 tests
# (test/s3test) start on 127.0.0.1, into <repo>/.cache/bin. Idempotent and non-interactive:
# it does nothing when the binary there is already the pinned version.
#
# The version is pinned so every machine tests against the same server behaviour (for
# example whether conditional writes with If-None-Match are honoured). Building from source
# takes about 2m40s on a cold module cache, about 10 s warm.
set -euo pipefail

step() { printf 'install-versitygw: %s\n' "$*"; }
die() { printf 'install-versitygw: error: %s\n' "$*" >&2; exit 1; }

module=github.com/versity/versitygw
version=${PGWARD_VERSITYGW_VERSION:-v1.8.0}
root=$(cd "$(dirname "$0")/.." && pwd -P)
bindir="$root/.cache/bin"
bin="$bindir/versitygw"

command -v go >/dev/null || die "go is needed to build versitygw (https://go.dev/dl/)"

# installed_version prints the main module version recorded in the binary by the Go
# toolchain, which is exact, unlike parsing the program's own --version text.
installed_version() {
	go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "'"$module"'" { print $3; exit }'
}

if [ -x "$bin" ]; then
	have=$(installed_version "$bin" || true)
	if [ "$have" = "$version" ]; then
		step "versitygw $version already in $bin"
		exit 0
	fi
	step "found versitygw ${have:-of unknown version} in $bin, want $version: reinstalling"
fi

mkdir -p "$bindir"
# Two runs at once (make test in two shells) must not build into the same file together.
exec 9>"$bindir/.install-versitygw.lock"
flock 9
have=$(installed_version "$bin" || true)
if [ -x "$bin" ] && [ "$have" = "$version" ]; then
	step "versitygw $version installed meanwhile by another run"
	exit 0
fi

step "go install $module/cmd/versitygw@$version into $bindir (about 2-3 minutes when cold)"
GOBIN="$bindir" GOFLAGS= go install "$module/cmd/versitygw@$version" ||
	die "go install $module/cmd/versitygw@$version failed"

have=$(installed_version "$bin" || true)
[ "$have" = "$version" ] || die "after install $bin reports version '${have}', want $version"
step "versitygw $version installed in $bin"
