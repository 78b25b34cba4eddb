#!/usr/bin/env bash
# bench/profile.sh: CPU profiles of pgward's backup and restore pipelines, from the Go
# benchmarks (engine.BenchmarkBackup, restore.BenchmarkRestore) at zstd:3, --jobs 2, on a
# pgbench cluster of PGWARD_BENCH_SCALE (default 100, as bench/run.sh). Prints the hottest
# functions of each; the profiles and test binaries stay in the printed directory for
# `go tool pprof -http :8080 DIR/backup.test DIR/backup.prof`.
#
#   PGWARD_BENCH_SCALE  pgbench scale (default 100)
#   BENCH_PROFILE_DIR   where to write the profiles (default: a new directory under /tmp)
#   BENCH_PROFILE_TIMES iterations per benchmark (default 3)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PGWARD_BENCH_SCALE=${PGWARD_BENCH_SCALE:-100}
OUT=${BENCH_PROFILE_DIR:-$(mktemp -d /tmp/pgward-profile-XXXXXX)}
TIMES=${BENCH_PROFILE_TIMES:-3}
mkdir -p "$OUT"
cd "$ROOT"

echo "== backup: BenchmarkBackup/zstd:3/jobs=2, scale $PGWARD_BENCH_SCALE"
go test -run '^$' -bench 'BenchmarkBackup/zstd:3/jobs=2$' -benchtime "${TIMES}x" -timeout 60m \
  -cpuprofile "$OUT/backup.prof" -o "$OUT/backup.test" ./engine/ | grep -E '^(Benchmark|ok|FAIL)'
echo "== restore: BenchmarkRestore/zstd:3/jobs=2, scale $PGWARD_BENCH_SCALE"
go test -run '^$' -bench 'BenchmarkRestore/zstd:3/jobs=2$' -benchtime "${TIMES}x" -timeout 60m \
  -cpuprofile "$OUT/restore.prof" -o "$OUT/restore.test" ./restore/ | grep -E '^(Benchmark|ok|FAIL)'

# The restore benchmark takes its backups in setup: only samples under restore.Run count.
echo; echo "== backup profile: hottest functions (flat)"
go tool pprof -top -nodecount 20 "$OUT/backup.test" "$OUT/backup.prof" 2>/dev/null | sed -n '1,30p'
echo; echo "== restore profile (samples under restore.Run): hottest functions (flat)"
go tool pprof -top -nodecount 20 -focus 'pgward/restore\.' "$OUT/restore.test" "$OUT/restore.prof" 2>/dev/null | sed -n '1,30p'
echo; echo "profiles in $OUT"
