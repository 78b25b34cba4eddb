#!/usr/bin/env bash
# remote.sh — backup and restore throughput and peak memory of pgward with each kind of
# repository: a local directory, S3 (versitygw), Azure (Azurite), GCS (fake-gcs-server) and
# SFTP (OpenSSH's sshd), every server on 127.0.0.1, one PostgreSQL 15 cluster.
#
# The method is scripts/bench-s3.sh's: every backup goes into a fresh, empty repository (so
# deduplication never flatters a figure) and is restored into a fresh directory (not
# started). Throughput is the backup's db_bytes (list --json) over the command's wall time;
# peak memory is the command's maximum resident set (/usr/bin/time -f %M). Each kind runs
# REPS times, kinds interleaved; the table shows medians with the range.
#
# pgbench data compresses about twentyfold; NOISE_MB adds a table of that many MiB of random
# bytes so that the upload and download paths carry real traffic.
#
# Usage: bench/remote.sh     (SCALE=20 NOISE_MB=128 REPS=3 JOBS=2 KINDS="local s3 azure gcs sftp")
# Needs: root, PostgreSQL 15 from Debian, make test-deps (the servers), /usr/bin/time.
set -euo pipefail

scale=${SCALE:-20}
noise_mb=${NOISE_MB:-128}
reps=${REPS:-3}
jobs=${JOBS:-2}
kinds=${KINDS:-"local s3 azure gcs sftp"}
pgbin=${PGBIN:-/usr/lib/postgresql/15/bin}
root=$(cd "$(dirname "$0")/.." && pwd -P)
cache="$root/.cache"

die() { printf 'bench-remote: error: %s\n' "$*" >&2; exit 1; }
step() { printf 'bench-remote: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as the postgres user; sshd needs root)"
[ -x "$pgbin/initdb" ] || die "PostgreSQL 15 not found in $pgbin (apt-get install postgresql-15)"
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install time)"
for f in "$cache/bin/versitygw" "$cache/bin/fake-gcs-server" "$cache/azurite/node_modules/azurite/dist/src/blob/main.js" /usr/sbin/sshd; do
	[ -e "$f" ] || die "$f is missing: run make test-deps"
done

work=$(mktemp -d /tmp/pgward-bench-remote.XXXXXX)
chmod 755 "$work"
pg_started=
pids=()
cleanup() {
	[ -n "$pg_started" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	die "nothing listens on port $1"
}

step "building pgward"
(cd "$root" && go build -o "$work/pgward" ./cmd/pgward)
pgward="$work/pgward"

step "starting PostgreSQL 15 and loading pgbench scale $scale + $noise_mb MiB of random bytes"
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
	runuser -u postgres -- "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -q -c \
		"CREATE TABLE noise AS SELECT g, decode(string_agg(md5(random()::text), ''), 'hex') AS b
		   FROM generate_series(1, $noise_mb * 1024) g, generate_series(1, 64) k GROUP BY g; CHECKPOINT" postgres
fi

# The servers, each on its own port, credentials in the environment as users would give them.
declare -A flags
if [[ " $kinds " == *" s3 "* ]]; then
	step "starting versitygw"
	mkdir -p "$work/s3/bench"
	port=$(free_port)
	export AWS_ACCESS_KEY_ID="bench$RANDOM$RANDOM" AWS_SECRET_ACCESS_KEY="secret$RANDOM$RANDOM$RANDOM" AWS_REGION=us-east-1
	export AWS_EC2_METADATA_DISABLED=true
	ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
		"$cache/bin/versitygw" --port "127.0.0.1:$port" --region us-east-1 --quiet posix "$work/s3" >"$work/vgw.log" 2>&1 &
	pids+=($!)
	wait_port "$port"
	flags[s3]="--s3-endpoint http://127.0.0.1:$port --s3-path-style"
fi
if [[ " $kinds " == *" azure "* ]]; then
	step "starting azurite"
	mkdir -p "$work/azurite"
	port=$(free_port)
	export AZURE_STORAGE_ACCOUNT=bench AZURE_STORAGE_KEY=$(head -c 32 /dev/urandom | base64)
	AZURITE_ACCOUNTS="$AZURE_STORAGE_ACCOUNT:$AZURE_STORAGE_KEY" node "$cache/azurite/node_modules/azurite/dist/src/blob/main.js" \
		--blobHost 127.0.0.1 --blobPort "$port" --location "$work/azurite" --silent --disableTelemetry \
		--skipApiVersionCheck --disableProductStyleUrl >"$work/azurite.log" 2>&1 &
	pids+=($!)
	wait_port "$port"
	flags[azure]="--azure-endpoint http://127.0.0.1:$port/$AZURE_STORAGE_ACCOUNT"
fi
if [[ " $kinds " == *" gcs "* ]]; then
	step "starting fake-gcs-server"
	port=$(free_port)
	export GOOGLE_CLOUD_PROJECT=bench
	"$cache/bin/fake-gcs-server" -scheme http -host 127.0.0.1 -port "$port" -backend filesystem \
		-filesystem-root "$work/gcs" -public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" \
		-log-level error >"$work/gcs.log" 2>&1 &
	pids+=($!)
	wait_port "$port"
	flags[gcs]="--gcs-endpoint http://127.0.0.1:$port/storage/v1/"
fi
if [[ " $kinds " == *" sftp "* ]]; then
	step "starting sshd"
	mkdir -p "$work/ssh" "$work/sftp" /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host" && ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/id"
	cp "$work/ssh/id.pub" "$work/ssh/authorized_keys"
	port=$(free_port)
	cat >"$work/ssh/sshd_config" <<-EOF
		Port $port
		ListenAddress 127.0.0.1
		HostKey $work/ssh/host
		PidFile none
		AuthorizedKeysFile $work/ssh/authorized_keys
		StrictModes no
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		AllowUsers root
		Subsystem sftp internal-sftp
		LogLevel ERROR
	EOF
	/usr/sbin/sshd -D -e -f "$work/ssh/sshd_config" >"$work/sshd.log" 2>&1 &
	pids+=($!)
	wait_port "$port"
	echo "[127.0.0.1]:$port $(cut -d' ' -f1-2 "$work/ssh/host.pub")" >"$work/ssh/known_hosts"
	export SSH_AUTH_SOCK=
	flags[sftp]="--sftp-identity-file $work/ssh/id --sftp-known-hosts $work/ssh/known_hosts"
	sftp_url="sftp://root@127.0.0.1:$port$work/sftp"
fi

# timed CMD...: runs CMD, prints "seconds max_rss_kib" on stdout.
timed() {
	/usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; die "failed: $*"; }
	cat "$work/time"
}

results="$work/results.tsv"
run=0
for rep in $(seq "$reps"); do
	for kind in $kinds; do
		run=$((run + 1))
		case $kind in
		local) repo=(--repo "$work/repo-$run") ;;
		s3) repo=(--repo "s3://bench/run-$run") ;;
		azure) repo=(--repo "azure://bench/run-$run") ;;
		gcs) repo=(--repo "gs://bench-$run/pg") ;;
		sftp) repo=(--repo "$sftp_url/run-$run") ;;
		*) die "unknown kind $kind" ;;
		esac
		# shellcheck disable=SC2206
		repo+=(${flags[$kind]:-})
		"$pgward" init "${repo[@]}" >/dev/null
		read -r bsec bkib < <(timed "$pgward" backup "${repo[@]}" --conn "$conn" --checkpoint fast --jobs "$jobs")
		read -r bytes stored < <("$pgward" list "${repo[@]}" --json |
			python3 -c 'import json,sys; b=json.load(sys.stdin)["backups"][0]; print(b["db_bytes"], b["stored_bytes"])')
		read -r rsec rkib < <(timed "$pgward" restore "${repo[@]}" --pgdata "$work/restored" --jobs "$jobs" --skip-restore-command-check)
		rm -rf "$work/restored" "$work/repo-$run"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$rep" "$bytes" "$bsec" "$bkib" "$rsec" "$rkib" "$stored" >>"$results"
		step "rep $rep $kind: backup ${bsec}s ${bkib}KiB, restore ${rsec}s ${rkib}KiB ($bytes bytes, $stored stored)"
	done
done

printf '# raw: kind rep db_bytes backup_s backup_maxrss_kib restore_s restore_maxrss_kib stored_bytes\n'
cat "$results"
printf '\n| repository | backup MiB/s | backup peak RSS | restore MiB/s | restore peak RSS |\n|---|---|---|---|---|\n'
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
names = {"local": "local", "s3": "S3 (versitygw)", "azure": "Azure (Azurite)", "gcs": "GCS (fake-gcs-server)", "sftp": "SFTP (OpenSSH)"}
kinds = []
for r in rows:
    if r[0] not in kinds:
        kinds.append(r[0])
for k in kinds:
    rs = [r for r in rows if r[0] == k]
    mib = lambda r: int(r[2]) / 2**20
    def fmt(f):
        v = sorted(f(r) for r in rs)
        return f"{statistics.median(v):.0f} [{v[0]:.0f}–{v[-1]:.0f}]"
    print(f"| {names[k]} | {fmt(lambda r: mib(r) / float(r[3]))} | {statistics.median(int(r[4]) for r in rs) / 1024:.0f} MiB | "
          f"{fmt(lambda r: mib(r) / float(r[5]))} | {statistics.median(int(r[6]) for r in rs) / 1024:.0f} MiB |")
EOF
