#!/usr/bin/env bash
# bench/s3-restore.sh (make bench-s3-restore): restore from an S3 repository, pgward against
# pgBackRest, from the same S3-compatible server (versitygw on 127.0.0.1, over TLS with a
# throwaway certificate, as a real object store is reached) — the "restore from S3" target of
# repository format 2 (docs/benchmarks.md).
#
# One PostgreSQL 15 cluster with pgbench SCALE; one full backup by each tool (zstd:3, jobs /
# process-max JOBS) into the same bucket under different prefixes; then REPS restores by each
# tool, alternating, into a fresh directory (not started). The medians are printed, with
# the peak RSS of each restore.
#
# versitygw closes every connection after one request unless started with --keep-alive, so
# each GET would pay a TCP and TLS handshake that a real object store (AWS S3, MinIO) does
# not charge; KEEPALIVE=1 (the default) starts it with keep-alive, KEEPALIVE=0 without.
#
# Usage: bench/s3-restore.sh    (SCALE=30 REPS=5 JOBS=2 KEEPALIVE=1; HOLD=1 waits for Enter before
# cleaning up, and prints how to run pgward against the server in the meantime)
# Needs: root, PostgreSQL 15 from Debian, openssl, pgbackrest (installed with apt-get if missing), .cache/bin/versitygw
# (scripts/install-versitygw.sh), /usr/bin/time.
set -euo pipefail

scale=${SCALE:-30}
reps=${REPS:-5}
jobs=${JOBS:-2}
pgbin=${PGBIN:-/usr/lib/postgresql/15/bin}
root=$(cd "$(dirname "$0")/.." && pwd -P)
vgw="$root/.cache/bin/versitygw"

die() { printf 's3-restore: error: %s\n' "$*" >&2; exit 1; }
step() { printf 's3-restore: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as the postgres user)"
[ -x "$vgw" ] || die "versitygw is not installed: run scripts/install-versitygw.sh"
[ -x "$pgbin/initdb" ] || die "PostgreSQL 15 not found in $pgbin (apt-get install postgresql-15)"
if ! command -v pgbackrest >/dev/null; then
	step "installing pgBackRest (apt-get install pgbackrest)"
	{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbackrest || { apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbackrest; }; } >/dev/null 2>&1 || die "apt-get install pgbackrest failed"
fi
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install time)"

work=$(mktemp -d /tmp/pgward-s3-restore.XXXXXX)
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

step "starting versitygw over TLS"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$work/tls.key" -out "$work/tls.crt" >/dev/null 2>&1
chmod 644 "$work/tls.key" "$work/tls.crt"
mkdir -p "$work/s3"
s3port=$(free_port)
export AWS_ACCESS_KEY_ID="bench$RANDOM$RANDOM" AWS_SECRET_ACCESS_KEY="secret$RANDOM$RANDOM$RANDOM" AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CA_BUNDLE="$work/tls.crt"
ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
	"$vgw" --port "127.0.0.1:$s3port" $([ "${KEEPALIVE:-1}" = 1 ] && echo --keep-alive) --cert "$work/tls.crt" --key "$work/tls.key" --region us-east-1 --quiet \
	posix "$work/s3" >"$work/vgw.log" 2>&1 &
vgw_pid=$!
for _ in $(seq 100); do
	curl -sk -o /dev/null "https://127.0.0.1:$s3port/" && break
	sleep 0.1
done
repo=(--repo "s3://bench/pgward" --s3-endpoint "https://127.0.0.1:$s3port" --s3-path-style)

step "starting PostgreSQL 15 and loading pgbench scale $scale"
mkdir -p "$work/pg" "$work/pgbr/log" "$work/pgbr/spool"
chown -R postgres:postgres "$work/pg" "$work/pgbr"
cat >"$work/pgbr/pgbackrest.conf" <<EOF
[global]
repo1-type=s3
repo1-path=/pgbackrest
repo1-s3-bucket=bench
repo1-s3-endpoint=127.0.0.1
repo1-storage-port=$s3port
repo1-storage-verify-tls=n
repo1-s3-uri-style=path
repo1-s3-region=us-east-1
repo1-s3-key=$AWS_ACCESS_KEY_ID
repo1-s3-key-secret=$AWS_SECRET_ACCESS_KEY
log-path=$work/pgbr/log
spool-path=$work/pgbr/spool
lock-path=$work/pgbr
compress-type=zst
compress-level=3
process-max=$jobs
log-level-console=warn
start-fast=y

[bench]
pg1-path=$work/pg/data
pg1-port=PGPORT
pg1-socket-path=$work/pg
EOF
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >/dev/null
pgport=$(free_port)
sed -i "s/PGPORT/$pgport/" "$work/pgbr/pgbackrest.conf"
chmod 644 "$work/pgbr/pgbackrest.conf"
pgbr=(pgbackrest --config="$work/pgbr/pgbackrest.conf" --stanza=bench)
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -o \
	"-p $pgport -k $work/pg -c listen_addresses=127.0.0.1 -c wal_level=replica -c max_wal_senders=10 -c archive_mode=on -c archive_command='pgbackrest --config=$work/pgbr/pgbackrest.conf --stanza=bench archive-push %p'" start >/dev/null
pg_started=1
runuser -u postgres -- "$pgbin/pgbench" -h 127.0.0.1 -p "$pgport" -U postgres -i -q -s "$scale" postgres >/dev/null 2>&1
conn="host=127.0.0.1 port=$pgport user=postgres dbname=postgres"

step "backups"
"$pgward" init "${repo[@]}" >/dev/null
"$pgward" backup "${repo[@]}" --conn "$conn" --checkpoint fast --jobs "$jobs" >/dev/null 2>&1 || die "pgward backup failed"
runuser -u postgres -- "${pgbr[@]}" stanza-create >/dev/null || die "pgbackrest stanza-create failed"
runuser -u postgres -- "${pgbr[@]}" --type=full backup >/dev/null || die "pgbackrest backup failed"

restore() {
	rm -rf "$work/restored"
	mkdir -p "$work/restored"
	chown postgres:postgres "$work/restored"
	chmod 700 "$work/restored"
	case $1 in
	pgward) /usr/bin/time -f '%e %M' -o "$work/time" "$pgward" restore "${repo[@]}" --pgdata "$work/restored" \
		--jobs "$jobs" --skip-restore-command-check >/dev/null 2>"$work/err" || { cat "$work/err" >&2; die "pgward restore failed"; } ;;
	pgbackrest) /usr/bin/time -f '%e %M' -o "$work/time" runuser -u postgres -- "${pgbr[@]}" --pg1-path="$work/restored" \
		restore >/dev/null 2>"$work/err" || { cat "$work/err" >&2; die "pgbackrest restore failed"; } ;;
	esac
	cat "$work/time"
}

results="$work/results.tsv"
for rep in $(seq "$reps"); do
	order="pgward pgbackrest"
	[ $((rep % 2)) = 0 ] && order="pgbackrest pgward"
	for tool in $order; do
		read -r sec kib < <(restore "$tool")
		printf '%s\t%s\t%s\n' "$tool" "$sec" "$kib" >>"$results"
		step "rep $rep $tool: ${sec}s, peak RSS ${kib} KiB"
	done
done
if [ "${HOLD:-}" = 1 ]; then
	printf 'export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=us-east-1 AWS_CA_BUNDLE=%s\n%s restore %s --pgdata DIR --jobs %s --skip-restore-command-check\n' \
		"$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_CA_BUNDLE" "$pgward" "${repo[*]}" "$jobs" >"$work/hold"
	step "holding: see $work/hold; press Enter to clean up"
	read -r _
fi
size=$(du -sb "$work/restored" | cut -f1)
python3 - "$results" "$size" "$scale" "$jobs" "${KEEPALIVE:-1}" <<'EOF'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
med = {t: statistics.median(float(r[1]) for r in rows if r[0] == t) for t in ("pgward", "pgbackrest")}
rss = {t: statistics.median(int(r[2]) for r in rows if r[0] == t) / 1024 for t in ("pgward", "pgbackrest")}
rng = {t: (min(float(r[1]) for r in rows if r[0] == t), max(float(r[1]) for r in rows if r[0] == t)) for t in med}
print(f"restore from S3 over TLS (versitygw keep-alive {sys.argv[5]}), pgbench scale {sys.argv[3]} ({int(sys.argv[2]) / 2**20:.0f} MiB restored), jobs/process-max {sys.argv[4]}, median of {len(rows) // 2}:")
for t in med:
    print(f"  {t:<10} {med[t]:.2f} s [{rng[t][0]:.2f}-{rng[t][1]:.2f}], peak RSS {rss[t]:.0f} MiB")
print(f"  ratio pgward/pgbackrest: {med['pgward'] / med['pgbackrest']:.2f}x (target <= 0.6)")
EOF
