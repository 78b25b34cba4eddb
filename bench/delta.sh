#!/usr/bin/env bash
# bench/delta.sh (make bench-delta): what a delta restore costs against a full restore
# (docs/benchmarks.md, "Delta restore"). A PostgreSQL 15 cluster (pgbench, fillfactor 50, so an
# update keeps the new row version on its page) is backed up; 5% of the rows, a contiguous
# range, are updated; the server is stopped. The backup is then restored three ways: in full
# into an empty directory, and with --delta (hash, then size-time) into copies of the changed
# data directory; finally --delta into the directory the full restore wrote (nothing changed).
#
#   BENCH_SCALE  pgbench scale (default 50: ~1.3 GB with fillfactor 50)
#   BENCH_DIR    parent of the work directory (default /tmp); removed at the end
#
# zstd:3, --jobs 2, one run each. The repository is local, and, when versitygw is installed
# (scripts/install-versitygw.sh), also an S3 repository on 127.0.0.1 for the full restore and the
# delta restore (hash). The existing files are in the page cache (the copies were just made), as
# they are for a delta restore soon after a failure.
set -euo pipefail

SCALE=${BENCH_SCALE:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
PG15=/usr/lib/postgresql/15/bin

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ -x "$PG15/initdb" ] || die "PostgreSQL 15 is not installed at $PG15"
if [ "$(id -u)" = 0 ]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi

W=$(mktemp -d "${BENCH_DIR:-/tmp}/pgward-delta-XXXXXX")
chmod 755 "$W"
[ "$(id -u)" = 0 ] && chown postgres "$W"
VGW=$ROOT/.cache/bin/versitygw
VGW_PID=
cleanup() {
	[ -f "$W/data/postmaster.pid" ] && as_pg "$PG15/pg_ctl" -D "$W/data" -m immediate stop >/dev/null 2>&1 || true
	[ -n "$VGW_PID" ] && kill "$VGW_PID" 2>/dev/null && wait "$VGW_PID" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
(cd "$ROOT" && go build -o "$W/pgward" ./cmd/pgward)
PGWARD=$W/pgward
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sql() { "$PG15/psql" -h 127.0.0.1 -p "$PORT" -U postgres -X -v ON_ERROR_STOP=1 -Atqc "$1" postgres; }

# timed CMD...: runs CMD as postgres, keeps its stdout in OUT and its wall time in T.
timed() {
	local start end
	start=$(date +%s.%N)
	OUT=$(as_pg "$@") || die "failed: $*"
	end=$(date +%s.%N)
	T=$(python3 -c "print(f'{$end-$start:.1f}')")
}
REPORT=()
report() { REPORT+=("$*"); log "$*"; }

log "PostgreSQL 15, pgbench scale $SCALE, fillfactor 50"
as_pg "$PG15/initdb" -D "$W/data" -U postgres -A trust --locale=C >/dev/null
{ echo "port = $PORT"; echo "listen_addresses = '127.0.0.1'"; echo "unix_socket_directories = '$W'"
  echo "wal_level = replica"; echo "max_wal_senders = 10"; echo "shared_buffers = 256MB"; echo "max_wal_size = 4GB"
  echo "autovacuum = off"; } | as_pg tee -a "$W/data/postgresql.conf" >/dev/null
as_pg "$PG15/pg_ctl" -D "$W/data" -l "$W/log" -w start >/dev/null
"$PG15/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -q -s "$SCALE" --fillfactor=50 postgres >/dev/null 2>&1
sql "VACUUM ANALYZE"; sql "CHECKPOINT"
REPOS=(local)
S3REPO=()
if [ -x "$VGW" ]; then
	mkdir -p "$W/s3"; chown postgres "$W/s3" 2>/dev/null || true
	S3PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	export AWS_ACCESS_KEY_ID="bench$RANDOM$RANDOM" AWS_SECRET_ACCESS_KEY="secret$RANDOM$RANDOM$RANDOM" AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
	ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
		"$VGW" --port "127.0.0.1:$S3PORT" --region us-east-1 --quiet posix "$W/s3" >"$W/vgw.log" 2>&1 &
	VGW_PID=$!
	for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$S3PORT/" && break; sleep 0.1; done
	S3REPO=(--repo "s3://bench/delta" --s3-endpoint "http://127.0.0.1:$S3PORT" --s3-path-style)
	REPOS+=(s3)
fi
repo_args() { if [ "$1" = s3 ]; then echo "${S3REPO[@]}"; else echo --repo "$W/repo"; fi; }
for r in "${REPOS[@]}"; do
	# shellcheck disable=SC2046
	as_pg "$PGWARD" init $(repo_args "$r") >/dev/null
	# shellcheck disable=SC2046
	as_pg "$PGWARD" backup $(repo_args "$r") --conn "host=127.0.0.1 port=$PORT user=postgres" --checkpoint fast --jobs 2 >/dev/null 2>&1
done
DB=$(as_pg "$PGWARD" list --json --repo "$W/repo" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][-1]["db_bytes"])')
ROWS=$((SCALE * 100000 / 20))
sql "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= $ROWS"
sql "CHECKPOINT"
as_pg "$PG15/pg_ctl" -D "$W/data" -m fast -w stop >/dev/null
as_pg cp -a "$W/data" "$W/copy-hash"
as_pg cp -a "$W/data" "$W/copy-sizetime"
[ -n "$VGW_PID" ] && as_pg cp -a "$W/data" "$W/copy-s3"
sync
report "data directory $(python3 -c "print(f'{$DB/1048576:.0f}')") MiB; $ROWS of $((SCALE * 100000)) pgbench_accounts rows updated (5%)"

restore() { timed "$PGWARD" restore --repo "$W/repo" --jobs 2 --target-immediate "$@"; }
restore_s3() { timed "$PGWARD" restore "${S3REPO[@]}" --jobs 2 --target-immediate "$@"; }
summary() { grep -Eo '(: .* in [0-9.]+m?s|: .* written in [0-9.]+m?s)' <<<"$OUT" | head -1 | sed 's/^: //'; }

restore --pgdata "$W/full"
report "full restore into an empty directory: ${T}s ($(summary))"
restore --pgdata "$W/copy-hash" --delta
report "delta restore (hash) into the changed directory: ${T}s ($(summary))"
restore --pgdata "$W/copy-sizetime" --delta --delta-check size-time
report "delta restore (size-time) into the changed directory: ${T}s ($(summary))"
rm -rf "$W/copy-hash" "$W/copy-sizetime"
restore --pgdata "$W/full" --delta
report "delta restore (hash) into the directory the full restore wrote: ${T}s ($(summary))"
restore --pgdata "$W/full" --delta --delta-check size-time
report "delta restore (size-time) into the directory the full restore wrote: ${T}s ($(summary))"
if [ -n "$VGW_PID" ]; then
	restore_s3 --pgdata "$W/full-s3"
	report "S3 repository: full restore into an empty directory: ${T}s ($(summary))"
	rm -rf "$W/full-s3"
	restore_s3 --pgdata "$W/copy-s3" --delta
	report "S3 repository: delta restore (hash) into the changed directory: ${T}s ($(summary))"
fi

printf '\n== delta restore, scale %s (%s) ==\n' "$SCALE" "$(date -u +%F)"
printf '%s\n' "${REPORT[@]}"
