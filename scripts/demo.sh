#!/usr/bin/env bash
# make demo: a throwaway PostgreSQL cluster with some data is backed up to a local
# repository, restored into a new directory, started, and compared table by table.
# Everything lives in one temporary directory, removed at the end.
set -euo pipefail
PGWARD=$(readlink -f "${1:-bin/pgward}")
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/initdb" ] || { echo "demo: PostgreSQL 15 is not installed at $PGBIN (apt-get install postgresql-15)"; exit 1; }

WORK=$(mktemp -d /tmp/pgward-demo-XXXXXX)
chmod 755 "$WORK"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ]; then chown postgres: "$WORK"; fi
# pgward runs as the server's OS user, as a DBA runs it: the repository is then readable by
# the restore_command PostgreSQL runs (restore checks that before it writes anything).
install -m 755 "$PGWARD" "$WORK/pgward"
PGWARD=$WORK/pgward
SRC_PORT=$((20000 + RANDOM % 20000)); DST_PORT=$((SRC_PORT + 1))
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$WORK/restored" -m immediate stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$WORK/source" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "create a throwaway cluster on port $SRC_PORT"
as_pg "$PGBIN/initdb" -D "$WORK/source" -U postgres -A trust -k --no-sync -E UTF8 --locale=C >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/source" -l "$WORK/source.log" -w -o "-p $SRC_PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
"$PGBIN/pgbench" -h 127.0.0.1 -p "$SRC_PORT" -U postgres -i -q -s 10 postgres 2>&1 | tail -1
"$PGBIN/psql" -h 127.0.0.1 -p "$SRC_PORT" -U postgres -qc "CREATE TABLE notes AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 10000) g" postgres

step "pgward init --repo $WORK/repo"
as_pg "$PGWARD" init --repo "$WORK/repo"
step "pgward backup"
as_pg "$PGWARD" backup --repo "$WORK/repo" --conn "host=127.0.0.1 port=$SRC_PORT user=postgres" --checkpoint fast
step "pgward list"
as_pg "$PGWARD" list --repo "$WORK/repo"
step "pgward restore --pgdata $WORK/restored"
as_pg "$PGWARD" restore --repo "$WORK/repo" --pgdata "$WORK/restored"

step "start the restored cluster on port $DST_PORT"
as_pg "$PGBIN/pg_ctl" -D "$WORK/restored" -l "$WORK/restored.log" -w -t 120 -o "-p $DST_PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
for _ in $(seq 1 60); do
  [ "$("$PGBIN/psql" -h 127.0.0.1 -p "$DST_PORT" -U postgres -Atc 'SELECT pg_is_in_recovery()' postgres)" = f ] && break
  sleep 0.5
done

step "compare every table (ordered md5 of all rows)"
sums() {
  local port=$1 tbl
  for tbl in $("$PGBIN/psql" -h 127.0.0.1 -p "$SRC_PORT" -U postgres -Atc "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE relkind = 'r' AND nspname = 'public' ORDER BY 1" postgres); do
    printf '%s %s\n' "$tbl" "$("$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -Atc "SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM $tbl t" postgres)"
  done
}
sums "$SRC_PORT" > "$WORK/source.sums"
sums "$DST_PORT" > "$WORK/restored.sums"
paste -d' ' "$WORK/source.sums" <(cut -d' ' -f2 "$WORK/restored.sums") | awk '{ printf "  %-18s source %-44s restored %s\n", $1, $2, $3 }'
if cmp -s "$WORK/source.sums" "$WORK/restored.sums"; then
  echo; echo "demo: OK — the restored cluster has exactly the source's rows"
else
  echo; echo "demo: MISMATCH between source and restored cluster"; exit 1
fi
