#!/usr/bin/env bash
# bench-s3.sh — backup and restore throughput and peak memory of pgward with a local
# repository and with an S3 repository (versitygw on 127.0.0.1), at several --jobs.
#
# Every backup goes into a fresh, empty repository (a new directory, or a new prefix in the
# bucket), so deduplication against an earlier run never flatters a figure; every restore
# reads that backup back into a fresh directory. Throughput is the backup's db_bytes (from
# list --json) over the command's wall time; peak memory is the command's maximum resident
# set (/usr/bin/time -f %M). Each configuration runs REPS times; the table shows medians.
#
# pgbench data compresses about tenfold, so little crosses the wire to S3; NOISE_MB adds a
# table of that many MiB of random (incompressible) bytes to measure the upload path too.
#
# Usage: scripts/bench-s3.sh            (SCALE=30 REPS=3 JOBS="1 2 4" NOISE_MB=0 by default)
# Needs: root, PostgreSQL 15 from Debian, .cache/bin/versitygw (scripts/install-versitygw.sh).
set -euo pipefail

scale=${SCALE:-30}
reps=${REPS:-3}
noise_mb=${NOISE_MB:-0}
jobs_list=${JOBS:-"1 2 4"}
pgbin=${PGBIN:-/usr/lib/postgresql/15/bin}
root=$(cd "$(dirname "$0")/.." && pwd -P)
vgw="$root/.cache/bin/versitygw"

die() { printf 'bench-s3: error: %s\n' "$*" >&2; exit 1; }
step() { printf 'bench-s3: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as the postgres user)"
[ -x "$vgw" ] || die "versitygw is not installed: run scripts/install-versitygw.sh"
[ -x "$pgbin/initdb" ] || die "PostgreSQL 15 not found in $pgbin (apt-get install postgresql-15)"
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install time)"

work=$(mktemp -d /tmp/pgward-bench-s3.XXXXXX)
chmod 755 "$work"
pg_started=
vgw_pid=
cleanup() {
	[ -n "$pg_started" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
	[ -n "$vgw_pid" ] && kill "$vgw_pid" 2>/dev/null && wait "$vgw_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

step "building pgward"
(cd "$root" && go build -o "$work/pgward" ./cmd/pgward)
pgward="$work/pgward"

step "starting PostgreSQL 15 and loading pgbench scale $scale"
mkdir -p "$work/pg"
chown postgres:postgres "$work/pg"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
pgport=$(free_port)
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o \
	"-p $pgport -k $work/pg -c listen_addresses=127.0.0.1 -c wal_level=replica -c max_wal_senders=10 -c fsync=off" start >/dev/null
pg_started=1
runuser -u postgres -- "$pgbin/pgbench" -h 127.0.0.1 -p "$pgport" -U postgres -i -q -s "$scale" postgres >/dev/null 2>&1
conn="host=127.0.0.1 port=$pgport user=postgres dbname=postgres"
if [ "$noise_mb" -gt 0 ]; then
	step "adding $noise_mb MiB of random bytes"
	runuser -u postgres -- "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -q -c \
		"CREATE TABLE noise AS SELECT g, decode(string_agg(md5(random()::text), ''), 'hex') AS b
		   FROM generate_series(1, $noise_mb * 1024) g, generate_series(1, 64) k GROUP BY g; CHECKPOINT" postgres
fi

step "starting versitygw"
mkdir -p "$work/s3"
s3port=$(free_port)
export AWS_ACCESS_KEY_ID="bench$RANDOM$RANDOM" AWS_SECRET_ACCESS_KEY="secret$RANDOM$RANDOM$RANDOM" AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
	"$vgw" --port "127.0.0.1:$s3port" --region us-east-1 --quiet posix "$work/s3" >"$work/vgw.log" 2>&1 &
vgw_pid=$!
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$s3port/" && break
	sleep 0.1
done
s3flags=(--s3-endpoint "http://127.0.0.1:$s3port" --s3-path-style)

# timed CMD...: runs CMD, prints "seconds max_rss_kib" on stdout.
timed() {
	/usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; die "failed: $*"; }
	cat "$work/time"
}

results="$work/results.tsv"
run=0
for rep in $(seq "$reps"); do
	for backend in local s3; do
		for jobs in $jobs_list; do
			run=$((run + 1))
			if [ "$backend" = local ]; then
				repo=(--repo "$work/repo-$run")
			else
				repo=(--repo "s3://bench/run-$run" "${s3flags[@]}")
			fi
			"$pgward" init "${repo[@]}" >/dev/null
			read -r bsec bkib < <(timed "$pgward" backup "${repo[@]}" --conn "$conn" --checkpoint fast --jobs "$jobs")
			read -r bytes stored < <("$pgward" list "${repo[@]}" --json |
				python3 -c 'import json,sys; b=json.load(sys.stdin)[0]; print(b["db_bytes"], b["stored_bytes"])')
			read -r rsec rkib < <(timed "$pgward" restore "${repo[@]}" --pgdata "$work/restored" --jobs "$jobs")
			rm -rf "$work/restored" "$work/repo-$run"
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$jobs" "$rep" "$bytes" "$bsec" "$bkib" "$rsec" "$rkib" "$stored" >>"$results"
			step "rep $rep $backend jobs=$jobs: backup ${bsec}s ${bkib}KiB, restore ${rsec}s ${rkib}KiB ($bytes bytes, $stored stored)"
		done
	done
done

printf '# raw: backend jobs rep db_bytes backup_s backup_maxrss_kib restore_s restore_maxrss_kib stored_bytes\n'
cat "$results"
printf '\n| repository | --jobs | backup MiB/s | backup peak RSS MiB | restore MiB/s | restore peak RSS MiB |\n|---|---|---|---|---|---|\n'
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
keys = []
for r in rows:
    if (r[0], r[1]) not in keys:
        keys.append((r[0], r[1]))
for b, j in keys:
    rs = [r for r in rows if (r[0], r[1]) == (b, j)]
    med = lambda f: statistics.median(f(r) for r in rs)
    mib = lambda r: int(r[3]) / 2**20
    print(f"| {'S3 (versitygw)' if b == 's3' else 'local'} | {j} | {med(lambda r: mib(r) / float(r[4])):.0f} | "
          f"{med(lambda r: int(r[5]) / 1024):.0f} | {med(lambda r: mib(r) / float(r[6])):.0f} | {med(lambda r: int(r[7]) / 1024):.0f} |")
EOF
