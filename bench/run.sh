#!/usr/bin/env bash
# bench/run.sh (make bench): pgward side by side with pgBackRest and pg_basebackup on one
# PostgreSQL 15 cluster, with equal settings (codec and level, --jobs = process-max, local
# repositories on the same disk), each measurement repeated BENCH_REPS times with the tools
# alternating so that noise from other work on the machine hits all of them.
#
#   BENCH_SCALE   pgbench scale (default 100, about 1.5 GB; the whole data set is ~1.4x that)
#   BENCH_REPS    runs per measurement, the median is reported (default 3)
#   BENCH_SEGMENTS  WAL segments for the archive-push/get rows (default 64; 32 below scale 100)
#   BENCH_PITR_MIB  WAL replayed by the PITR row (default 1024 at scale >= 100, less below)
#   BENCH_DIR     parent of the work directory (default /tmp); everything is removed at the end
#   BENCH_KEEP=1  keep the work directory
#   BENCH_DOC     update docs/benchmarks.md: auto (only at the default scale), 1, 0
#
# What runs, in order (docs/benchmarks.md explains why each choice is fair):
#   1. full backups, zstd:3 and lz4 x jobs 1 and 2, into fresh pgward repositories and as
#      pgBackRest --type=full; pg_basebackup -Ft -Z client-zstd:3 as the protocol reference
#   2. after each 5% change: pgward's next (deduplicated, logically full) backup vs pgBackRest
#      incr and diff
#   3. restore of the latest backup into a new directory, then start until promoted
#   4. PITR: ~BENCH_PITR_MIB of WAL archived after the backups, restore to a time after it
#   5. archive-push of BENCH_SEGMENTS real segments, one call at a time as PostgreSQL's archiver
#      makes them, into fresh repositories; archive-get of the same, in order
# The source cluster archives every WAL file to both tools' main repositories throughout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCALE=${BENCH_SCALE:-100}
REPS=${BENCH_REPS:-3}
SEGMENTS=${BENCH_SEGMENTS:-$([ "$SCALE" -lt 100 ] && echo 32 || echo 64)}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ -z "${BENCH_PITR_MIB:-}" ]; then
  BENCH_PITR_MIB=$((SCALE * 1024 / 100))
  [ "$BENCH_PITR_MIB" -lt 128 ] && BENCH_PITR_MIB=128
  [ "$BENCH_PITR_MIB" -gt 1024 ] && BENCH_PITR_MIB=1024
fi
PITR_MIB=$BENCH_PITR_MIB
DOC=${BENCH_DOC:-auto}
[ "$DOC" = auto ] && { [ "$SCALE" = 100 ] && DOC=1 || DOC=0; }
BEGAN=$(date +%s)

log() { printf '[%s] %s\n' "$(date +%T)" "$*"; }
die() { printf '[%s] bench: %s\n' "$(date +%T)" "$*" >&2; exit 1; }

# ---------------------------------------------------------------- requirements
[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 is not installed at $PGBIN (apt-get install postgresql-15)"
if ! command -v pgbackrest >/dev/null; then
  [ "$(id -u)" = 0 ] || die "pgbackrest is not installed and we are not root to install it"
  log "installing pgBackRest (apt-get install pgbackrest)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q pgbackrest >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q pgbackrest >/dev/null; }
fi
if [ "$(id -u)" = 0 ]; then
  PGUSER_OS=postgres
  id postgres >/dev/null 2>&1 || die "there is no postgres OS user to run PostgreSQL and pgBackRest as"
  as_pg() { runuser -u postgres -- "$@"; }
  USEROPT=(-user postgres)
else
  PGUSER_OS=$(id -un)
  as_pg() { "$@"; }
  USEROPT=()
fi

# ---------------------------------------------------------------- work directory
mkdir -p "${BENCH_DIR:-/tmp}"
W=$(mktemp -d "${BENCH_DIR:-/tmp}/pgward-bench-XXXXXX")
chmod 755 "$W"
mkdir -p "$W/bin" "$W/logs" "$W/sock" "$W/pgbr/log" "$W/pgbr/lock" "$W/pgbr/spool" "$W/stage"
[ "$(id -u)" = 0 ] && chown -R "$PGUSER_OS:" "$W"
LOGS=$W/logs
RESULTS=$W/results.tsv
: >"$RESULTS"
DATA=$W/pg/data
SOCK=$W/sock
RESTORED=""
LOADS=() # 1-minute load average before each measurement: how busy the shared machine was

cleanup() {
  local rc=$?
  if [ -n "$RESTORED" ]; then as_pg "$PGBIN/pg_ctl" -D "$RESTORED" -m immediate stop >/dev/null 2>&1 || true; fi
  as_pg "$PGBIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
  if [ "${BENCH_KEEP:-0}" = 1 ] || { [ $rc != 0 ] && [ "${BENCH_KEEP_ON_ERROR:-0}" = 1 ]; }; then
    log "work directory kept: $W"
  else
    # A detached pgward prefetcher may still be writing below $W for a moment.
    rm -rf "$W" 2>/dev/null || { sleep 2; rm -rf "$W" || true; }
  fi
}
trap cleanup EXIT

free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null; then
      echo "$p"; return
    fi
  done
  return 1
}
PORT=$(free_port)
RPORT=$((PORT + 1))
CONN="host=127.0.0.1 port=$PORT user=postgres"

# ---------------------------------------------------------------- binaries
log "building pgward and benchtool into $W/bin"
VERSION=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo dev)
(cd "$ROOT" && go build -ldflags "-X main.version=$VERSION" -o "$W/bin/pgward" ./cmd/pgward && go build -o "$W/bin/benchtool" ./bench/cmd/benchtool)
PGWARD=$W/bin/pgward
BT=$W/bin/benchtool

# ---------------------------------------------------------------- helpers
sql() { "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -X -v ON_ERROR_STOP=1 -Atqc "$1" postgres; }
rsql() { "$PGBIN/psql" -h "$SOCK" -p "$RPORT" -U postgres -X -v ON_ERROR_STOP=1 -Atqc "$1" postgres; }
du_b() { # apparent bytes of the paths that exist
  local p have=()
  for p in "$@"; do [ -e "$p" ] && have+=("$p"); done
  [ ${#have[@]} = 0 ] && { echo 0; return; }
  du -sbc "${have[@]}" | tail -1 | cut -f1
}
logname() { echo "$LOGS/$(echo "$1" | tr '/:' '__').log"; }

# measure ID -- CMD...: runs CMD as the PostgreSQL OS user, sets WALL and RSS (KiB).
measure() {
  local id=$1 out; shift; [ "$1" = -- ] && shift
  LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
  out=$("$BT" run "${USEROPT[@]}" -dir "$W" -log "$(logname "$id")" -- "$@") || die "$id failed; see $(logname "$id")"
  read -r WALL RSS <<<"$out"
}
# record ID REP WALL RSS BYTES STORED (-1: not applicable)
record() {
  echo "$1 $2 $3 $4 $5 $6" >>"$RESULTS"
  log "  $1 #$2: ${3}s, peak RSS $(($4 / 1024)) MiB$([ "$6" -ge 0 ] && echo ", stored $(($6 / 1048576)) MiB")"
}
fadd() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + b }'; }

# start_restored DIR: start a restored directory on RPORT, wait until promoted; sets UP.
start_restored() {
  RESTORED=$1
  UP=$("$BT" start-wait "${USEROPT[@]}" -dir "$W" -log "$LOGS/start.log" -pgbin "$PGBIN" -pgdata "$1" -port "$RPORT" -sock "$SOCK" -o "-c archive_mode=off") ||
    die "the restored cluster in $1 did not come up; see $1.log"
}
stop_restored() {
  as_pg "$PGBIN/pg_ctl" -D "$RESTORED" -m immediate stop >/dev/null 2>&1 || true
  discard "$RESTORED" "$RESTORED.log"
  RESTORED=""
}
fresh_dir() { discard "$1"; as_pg mkdir -m 700 "$1"; }

# Removing what a measurement left behind. On ext4 without a journal (this machine's root file
# system) the inode allocator skips inodes freed in the last 60-360 s, checking each one it
# passes: right after thousands of files are deleted, creating a file next to them costs
# ~0.5 ms of kernel CPU instead of ~20 us, and the next tool's restore or backup would pay for
# the previous one's clean-up. So until the trash is emptied (between sections, where no
# comparison follows at once) removed directories are only renamed into it, while the disk
# has room for them (the data directory 3 times over plus 8 GiB); then they are deleted.
TRASH=$W/trash
mkdir -p "$TRASH"
discard() {
  local p
  for p in "$@"; do
    [ -e "$p" ] || continue
    if [ "$(df --output=avail -B1 "$W" | tail -1)" -gt $((${DB_BYTES:-0} * 3 + 8 * 1073741824)) ]; then
      mv "$p" "$TRASH/$(basename "$p").$RANDOM$RANDOM"
    else
      rm -rf "$p"
    fi
  done
}
empty_trash() { rm -rf "$TRASH"; mkdir -p "$TRASH"; }

# ---------------------------------------------------------------- source cluster
log "creating a PostgreSQL 15 cluster on port $PORT (work directory $W)"
as_pg mkdir -p "$W/pg"
as_pg "$PGBIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C >"$LOGS/initdb.log"
# pgBackRest refuses to back up unless archive_command contains "pgbackrest": the name says it.
ARCHIVE_SH=$W/bin/archive-to-pgbackrest-and-pgward.sh
cat >"$ARCHIVE_SH" <<EOF
#!/bin/sh
# archive_command of the source cluster: every WAL file into both tools' main repositories
# (pgBackRest first: its backup waits for its last segment), and into the stage while it is on.
set -e
pgbackrest --config=$W/pgbr/main.conf --stanza=bench archive-push "\$1"
$PGWARD archive-push --repo $W/repo-pgward --compress zstd:3 --spool-path $W/spool-archiver "\$1"
if [ -e $W/stage.on ]; then cp "\$1" "$W/stage/.\$2" && mv "$W/stage/.\$2" "$W/stage/\$2"; fi
EOF
chmod 755 "$ARCHIVE_SH"
as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
wal_level = replica
max_wal_senders = 10
archive_mode = on
archive_command = '$ARCHIVE_SH %p %f'
shared_buffers = 256MB
max_wal_size = 2GB
checkpoint_timeout = 30min
autovacuum = off
EOF
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$W/pg/server.log" -w start >/dev/null

# pgward: one TOML for the spool (restore_command carries --config, so recovery uses it too).
echo "spool-path = \"$W/spool-pgward\"" >"$W/pgward.toml"
chmod 644 "$W/pgward.toml"
as_pg "$PGWARD" init --repo "$W/repo-pgward" >>"$LOGS/init.log"
# pgBackRest: the same codec and level; backups override type, codec and process-max.
cat >"$W/pgbr/main.conf" <<EOF
[global]
repo1-path=$W/repo-pgbr
repo1-retention-full=9999
compress-type=zst
compress-level=3
process-max=2
start-fast=y
archive-timeout=600
log-path=$W/pgbr/log
lock-path=$W/pgbr/lock
spool-path=$W/pgbr/spool
log-level-console=warn
log-level-stderr=warn
log-level-file=off

[bench]
pg1-path=$DATA
pg1-port=$PORT
pg1-socket-path=$SOCK
pg1-user=postgres
EOF
chmod 644 "$W/pgbr/main.conf"
PGBR=(pgbackrest --config="$W/pgbr/main.conf" --stanza=bench)
as_pg "${PGBR[@]}" stanza-create >>"$LOGS/init.log"

# ---------------------------------------------------------------- data set
log "loading the data set: pgbench scale $SCALE, an append-only table, 1000 small tables"
"$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -q -s "$SCALE" postgres >"$LOGS/pgbench-init.log" 2>&1
EV_ROWS=$((SCALE * 40000))
sql "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, at timestamptz NOT NULL DEFAULT now(), kind int NOT NULL, payload text NOT NULL)"
sql "INSERT INTO events (at, kind, payload) SELECT now() - g * interval '1 second', g % 17, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, $EV_ROWS) g"
for b in $(seq 0 9); do
  sql "DO \$\$ BEGIN FOR i IN $((b * 100 + 1))..$((b * 100 + 100)) LOOP
         EXECUTE format('CREATE TABLE small_%s (id int PRIMARY KEY, v text NOT NULL)', lpad(i::text, 4, '0'));
         EXECUTE format('INSERT INTO small_%s SELECT g, md5((g * %s)::text) FROM generate_series(1, 100) g', lpad(i::text, 4, '0'), i);
       END LOOP; END \$\$"
done
sql "VACUUM ANALYZE" && sql "CHECKPOINT"
db_bytes() { du -sb --exclude=pg_wal "$DATA" | cut -f1; }
DB_BYTES=$(db_bytes)
DB_BYTES_INITIAL=$DB_BYTES
log "data directory without pg_wal: $((DB_BYTES / 1048576)) MiB"

# Alternation: in rep r, tool lists rotate by r so that no tool always runs first.
rotate() { local r=$1; shift; local a=("$@") n=$#; local i; for i in $(seq 0 $((n - 1))); do echo "${a[$(((i + r) % n))]}"; done; }

# ---------------------------------------------------------------- 1. full backups
pgward_full() { # codec-id codec jobs rep
  local id="full/$1/j$3/pgward" r=$W/full-pgward
  discard "$r"; as_pg "$PGWARD" init --repo "$r" >>"$LOGS/init.log"
  measure "$id" -- "$PGWARD" backup --repo "$r" --conn "$CONN" --checkpoint fast --compress "$2" --jobs "$3"
  record "$id" "$4" "$WALL" "$RSS" "$DB_BYTES" "$(du_b "$r/chunks" "$r/clusters/main/backups")"
  discard "$r"
}
pgbr_full() { # codec-id pgbr-codec jobs rep
  local id="full/$1/j$3/pgbackrest" before
  before=$(du_b "$W/repo-pgbr/backup")
  measure "$id" -- "${PGBR[@]}" --type=full --compress-type="$2" --process-max="$3" backup
  record "$id" "$4" "$WALL" "$RSS" "$DB_BYTES" "$(($(du_b "$W/repo-pgbr/backup") - before))"
}
basebackup() { # rep
  local id="full/zstd3/j1/pg_basebackup" d=$W/basebackup
  discard "$d"
  measure "$id" -- "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$d" -Ft -c fast -Z client-zstd:3 -X stream
  record "$id" "$1" "$WALL" "$RSS" "$DB_BYTES" "$(du_b "$d")"
  discard "$d"
}
log "1. full backups"
for rep in $(seq 1 "$REPS"); do
  for cfg in "zstd3 zstd:3 zst" "lz4 lz4 lz4"; do
    read -r cid pcodec bcodec <<<"$cfg"
    for jobs in 1 2; do
      for tool in $(rotate "$((rep + jobs))" pgward pgbackrest); do
        case $tool in
          pgward) pgward_full "$cid" "$pcodec" "$jobs" "$rep" ;;
          pgbackrest) pgbr_full "$cid" "$bcodec" "$jobs" "$rep" ;;
        esac
      done
    done
  done
  basebackup "$rep"
done
# pgBackRest's earlier fulls stay (an expire would delete thousands of files right before
# the next measurements, see discard); its incr and diff below follow its newest full.

# ---------------------------------------------------------------- 2. backup after a 5% change
# The change: a contiguous 5% of pgbench_accounts (a hot range, as in most OLTP tables;
# uniformly scattered updates touch every page, and then every tool copies the whole table),
# 5% more rows in the append-only table, 50 of the 1000 small tables rewritten. VACUUM and a
# checkpoint follow, so every tool sees the same files.
change5() { # rep
  local n=$((SCALE * 100000)) slice lo
  slice=$((n / 20)); lo=$(((($1 * 7) % 20) * slice + 1))
  sql "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN $lo AND $((lo + slice - 1))"
  sql "INSERT INTO events (kind, payload) SELECT g % 17, md5(random()::text) || md5(random()::text) FROM generate_series(1, $((EV_ROWS / 20))) g"
  sql "DO \$\$ BEGIN FOR i IN 1..50 LOOP
         EXECUTE format('UPDATE small_%s SET v = md5(v)', lpad((((i * 20 + $1 * 3) % 1000) + 1)::text, 4, '0'));
       END LOOP; END \$\$"
  sql "VACUUM" && sql "CHECKPOINT"
}
pgward_main_backup() { # id rep (id "" = not recorded)
  local before
  before=$(du_b "$W/repo-pgward/chunks" "$W/repo-pgward/clusters/main/backups")
  measure "${1:-base/pgward}" -- "$PGWARD" backup --repo "$W/repo-pgward" --conn "$CONN" --checkpoint fast --compress zstd:3 --jobs 2
  [ -n "$1" ] && record "$1" "$2" "$WALL" "$RSS" "$DB_BYTES" "$(($(du_b "$W/repo-pgward/chunks" "$W/repo-pgward/clusters/main/backups") - before))"
  return 0
}
pgbr_backup() { # type id rep
  local before
  before=$(du_b "$W/repo-pgbr/backup")
  measure "${2:-base/pgbackrest}" -- "${PGBR[@]}" --type="$1" --compress-type=zst --process-max=2 backup
  [ -n "$2" ] && record "$2" "$3" "$WALL" "$RSS" "$DB_BYTES" "$(($(du_b "$W/repo-pgbr/backup") - before))"
  return 0
}
log "2. backups after a 5% change (bases: one full backup with each tool)"
pgward_main_backup "" 0
pgbr_backup full "" 0
for rep in $(seq 1 "$REPS"); do
  change5 "$rep"
  DB_BYTES=$(db_bytes)
  # incr always runs before diff, so that every incr covers exactly one change.
  case $((rep % 3)) in
    1) order="pgward incr diff" ;;
    2) order="incr diff pgward" ;;
    0) order="incr pgward diff" ;;
  esac
  for t in $order; do
    case $t in
      pgward) pgward_main_backup change/pgward "$rep" ;;
      incr) pgbr_backup incr change/pgbackrest-incr "$rep" ;;
      diff) pgbr_backup diff change/pgbackrest-diff "$rep" ;;
    esac
  done
done
CHECKSUM=$(sql "SELECT sum(abalance) || ':' || (SELECT count(*) FROM events) FROM pgbench_accounts")

# ---------------------------------------------------------------- 3. restore latest
log "3. restore of the latest backup + start until promoted"
restore_one() { # tool jobs rep
  local t=$W/restored id="j$2/$1"
  fresh_dir "$t"
  rm -rf "$W/spool-pgward"
  case $1 in
    pgward) measure "restorefiles/$id" -- "$PGWARD" restore --config "$W/pgward.toml" --repo "$W/repo-pgward" --pgdata "$t" --jobs "$2" ;;
    pgbackrest) measure "restorefiles/$id" -- "${PGBR[@]}" --pg1-path="$t" --process-max="$2" restore ;;
  esac
  local files=$WALL rss=$RSS
  record "restorefiles/$id" "$3" "$files" "$rss" "$DB_BYTES" -1
  start_restored "$t"
  record "restore/$id" "$3" "$(fadd "$files" "$UP")" "$rss" "$DB_BYTES" -1
  if [ "$3" = 1 ]; then
    [ "$(rsql "SELECT sum(abalance) || ':' || (SELECT count(*) FROM events) FROM pgbench_accounts")" = "$CHECKSUM" ] ||
      die "the cluster restored by $1 does not have the source's data"
  fi
  stop_restored
}
for jobs in 1 2; do
  for rep in $(seq 1 "$REPS"); do
    for tool in $(rotate "$rep" pgward pgbackrest); do restore_one "$tool" "$jobs" "$rep"; done
  done
done

# ---------------------------------------------------------------- 4. PITR
# WAL after the latest backups, from a pgbench mix (TPC-B-like, plus batches appended to
# the append-only table so that a GiB of WAL takes minutes, not hours); the target is a
# time after it, and one commit after the target lets recovery see that it got there.
empty_trash
log "4. PITR: archiving ${PITR_MIB} MiB of WAL, then restore to a time after it"
cat >"$W/append.sql" <<'EOF'
INSERT INTO events (kind, payload) SELECT 99, md5(random()::text) || md5(random()::text) FROM generate_series(1, 1000);
EOF
chmod 644 "$W/append.sql"
gen_wal() { # MiB: generate at least this much WAL (in rounds of pgbench -T 1..5: ~100 MiB/s here)
  local start secs; start=$(sql "SELECT pg_current_wal_lsn()")
  secs=$(($1 / 200)); [ "$secs" -lt 1 ] && secs=1; [ "$secs" -gt 5 ] && secs=5
  while [ "$(sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$start') >= $1 * 1048576::numeric")" = f ]; do
    PGOPTIONS="-c synchronous_commit=off" "$PGBIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -c 2 -j 2 -T "$secs" \
      -b tpcb-like@4 -f "$W/append.sql@1" postgres >>"$LOGS/pgbench-wal.log" 2>&1
  done
}
wait_archived() { # wait until the archiver has done everything up to the current segment
  local seg; seg=$(sql "SELECT pg_walfile_name(pg_current_wal_lsn())")
  sql "SELECT pg_switch_wal()" >/dev/null
  for _ in $(seq 1 3600); do
    [ "$(sql "SELECT coalesce(last_archived_wal >= '$seg', false) FROM pg_stat_archiver")" = t ] && return
    sleep 0.5
  done
  die "WAL archiving did not catch up with $seg"
}
touch "$W/stage.on"
PITR_START=$(sql "SELECT pg_current_wal_lsn()")
gen_wal "$PITR_MIB"
TARGET=$(sql "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
PITR_BYTES=$(sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$PITR_START')::bigint")
sleep 0.2
sql "CREATE TABLE pitr_after (at timestamptz DEFAULT now()); INSERT INTO pitr_after DEFAULT VALUES"
# WAL for the archive rows comes from this same load (after the target when the PITR part
# is shorter than the archive rows need).
extra=$(((SEGMENTS + 2) * 16 - PITR_BYTES / 1048576))
[ "$extra" -gt 0 ] && gen_wal "$extra"
wait_archived
rm -f "$W/stage.on"
log "  target $TARGET after $((PITR_BYTES / 1048576)) MiB of WAL"
cat >"$W/pgbr/async.conf" <<EOF
$(sed 's/^\[global\]$/[global]\narchive-async=y/' "$W/pgbr/main.conf")
EOF
chmod 644 "$W/pgbr/async.conf"
pitr_one() { # variant rep
  local t=$W/restored id="pitr/$1"
  fresh_dir "$t"
  rm -rf "$W/spool-pgward"
  case $1 in
    pgward) measure "$id" -- "$PGWARD" restore --config "$W/pgward.toml" --repo "$W/repo-pgward" --pgdata "$t" --jobs 2 --target-time "$TARGET" ;;
    pgbackrest-sync) measure "$id" -- "${PGBR[@]}" --pg1-path="$t" --process-max=2 --type=time --target="$TARGET" --target-action=promote restore ;;
    pgbackrest-async) rm -rf "$W/pgbr/spool/archive"
      measure "$id" -- pgbackrest --config="$W/pgbr/async.conf" --stanza=bench --pg1-path="$t" --process-max=2 --type=time --target="$TARGET" --target-action=promote restore ;;
  esac
  local files=$WALL rss=$RSS
  start_restored "$t"
  record "$id" "$2" "$(fadd "$files" "$UP")" "$rss" "$PITR_BYTES" -1
  [ "$(rsql "SELECT (SELECT count(*) FROM pg_class WHERE relname = 'pitr_after') = 0 AND (SELECT count(*) FROM events WHERE kind = 99) > 0")" = t ] ||
    die "the cluster recovered by $1 did not stop at the target time"
  stop_restored
}
for rep in $(seq 1 "$REPS"); do
  for v in $(rotate "$rep" pgward pgbackrest-sync pgbackrest-async); do pitr_one "$v" "$rep"; done
done

# ---------------------------------------------------------------- 5. archive-push and archive-get
log "5. archive-push and archive-get of $SEGMENTS segments"
find "$W/stage" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' -printf '%f\n' | sort | tail -n "$SEGMENTS" >"$W/segments.txt"
SEG_BYTES=$(($(wc -l <"$W/segments.txt") * 16 * 1048576))
# A stand-in data directory, as PostgreSQL runs its archive and restore commands in one:
# pg_control for pgBackRest's checks, pg_wal with the segments and their .ready files.
SIM=$W/walsim
as_pg mkdir -p "$SIM/global" "$SIM/pg_wal/archive_status"
as_pg cp "$DATA/global/pg_control" "$SIM/global/"
while read -r s; do as_pg cp "$W/stage/$s" "$SIM/pg_wal/$s"; done <"$W/segments.txt"
ready_all() { as_pg find "$SIM/pg_wal/archive_status" -type f -delete; while read -r s; do as_pg touch "$SIM/pg_wal/archive_status/$s.ready"; done <"$W/segments.txt"; }
APGW=$W/arch-pgward APGBR=$W/arch-pgbr
fresh_pgward_arch() { rm -rf "$APGW" "$W/arch-spool"; as_pg "$PGWARD" init --repo "$APGW" >>"$LOGS/init.log"; }
fresh_pgbr_arch() {
  rm -rf "$APGBR" "$W/arch-spool-pgbr"
  as_pg "${PGBR[@]}" --repo1-path="$APGBR" stanza-create >>"$LOGS/init.log"
}
loop() { # push-loop|get-loop id rep stored-path -- command
  local kind=$1 id=$2 rep=$3 stored=$4 out; shift 5
  LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
  out=$("$BT" "$kind" "${USEROPT[@]}" -dir "$SIM" -segs "$W/segments.txt" -verify "$W/stage" -log "$(logname "$id")" -- "$1") ||
    die "$id failed; see $(logname "$id")"
  read -r WALL RSS <<<"$out"
  record "$id" "$rep" "$WALL" "$RSS" "$SEG_BYTES" "$([ -n "$stored" ] && du_b "$stored" || echo -1)"
}
PGBR_SIM="pgbackrest --config=$W/pgbr/main.conf --stanza=bench --repo1-path=$APGBR --pg1-path=$SIM"
for rep in $(seq 1 "$REPS"); do
  for v in $(rotate "$rep" pgward-ahead4 pgbackrest-sync pgward-ahead0 pgbackrest-async); do
    ready_all
    case $v in
      pgward-ahead*) fresh_pgward_arch
        loop push-loop "push/$v" "$rep" "$APGW/clusters/main/wal" -- "$PGWARD archive-push --repo $APGW --compress zstd:3 --push-ahead ${v#pgward-ahead} --spool-path $W/arch-spool %p" ;;
      pgbackrest-sync) fresh_pgbr_arch
        loop push-loop "push/$v" "$rep" "$APGBR/archive" -- "$PGBR_SIM archive-push %p" ;;
      pgbackrest-async) fresh_pgbr_arch
        loop push-loop "push/$v" "$rep" "$APGBR/archive" -- "$PGBR_SIM --archive-async --spool-path=$W/arch-spool-pgbr --process-max=2 archive-push %p" ;;
    esac
  done
done
# archive-get reads the repositories the last push round left (every segment, both tools).
[ -d "$APGW" ] && [ -d "$APGBR" ] || die "archive repositories missing"
for rep in $(seq 1 "$REPS"); do
  for v in $(rotate "$rep" pgward-prefetch8 pgbackrest-sync pgward-prefetch0 pgbackrest-async); do
    # pgward's prefetcher runs detached and may still be writing into its spool: let it
    # finish (it holds the spool's lock while it works) before the spool is removed.
    [ -d "$W/get-spool" ] && flock -w 30 "$(ls -d "$W"/get-spool/*/get 2>/dev/null | head -1)/.lock" true 2>/dev/null || true
    rm -rf "$W/get-spool" "$W/get-spool-pgbr" 2>/dev/null || { sleep 2; rm -rf "$W/get-spool" "$W/get-spool-pgbr"; }
    case $v in
      pgward-prefetch*) loop get-loop "get/$v" "$rep" "" -- "$PGWARD archive-get --repo $APGW --prefetch ${v#pgward-prefetch} --spool-path $W/get-spool %f %p" ;;
      pgbackrest-sync) loop get-loop "get/$v" "$rep" "" -- "$PGBR_SIM archive-get %f \"%p\"" ;;
      pgbackrest-async) loop get-loop "get/$v" "$rep" "" -- "$PGBR_SIM --archive-async --spool-path=$W/get-spool-pgbr --process-max=2 archive-get %f \"%p\"" ;;
    esac
  done
done

# ---------------------------------------------------------------- report
ELAPSED=$(($(date +%s) - BEGAN))
cores=$(nproc)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
dev=$(df --output=source "$W" | tail -1)
fstype=$(df --output=fstype "$W" | tail -1)
rota=$(lsblk -ndo ROTA "$dev" 2>/dev/null | head -1 | tr -d ' ' || true)
case $rota in 0) rota=", non-rotational" ;; 1) rota=", reported rotational" ;; *) rota="" ;; esac
disk="$dev ($fstype$rota, $(df -h --output=size "$W" | tail -1 | tr -d ' '))"
cat >"$W/meta.txt" <<EOF
scale=$SCALE
reps=$REPS
segments=$(wc -l <"$W/segments.txt")
db_mib=$((DB_BYTES_INITIAL / 1048576))
db_mib_changed=$((DB_BYTES / 1048576))
load=$(printf '%s\n' "${LOADS[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "median %.1f, max %.1f", v[int((NR + 1) / 2)], v[NR] }')
pitr_wal_mib=$((PITR_BYTES / 1048576))
date=$(date -u +%Y-%m-%d), whole run $((ELAPSED / 60)) min
machine=$cores cores ($cpu), $mem RAM, disk $disk, Linux $(uname -r)
versions=pgward $VERSION ($(go version | awk '{print $3}')), pgBackRest $(pgbackrest version | awk '{print $2}'), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') and its pg_basebackup
EOF
"$BT" report -results "$RESULTS" -meta "$W/meta.txt" >"$W/report.md"
echo
cat "$W/report.md"
if [ "$DOC" = 1 ]; then
  "$BT" splice -file "$ROOT/docs/benchmarks.md" -block "$W/report.md"
  cp "$RESULTS" "$ROOT/bench/results-scale$SCALE.tsv"
  cp "$W/meta.txt" "$ROOT/bench/results-scale$SCALE.meta"
  log "docs/benchmarks.md updated (raw runs in bench/results-scale$SCALE.tsv)"
fi
log "done in $((ELAPSED / 60)) min $((ELAPSED % 60)) s"
