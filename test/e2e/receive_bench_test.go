package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
	"github.com/pgward/pgward/wal"
)

// BenchmarkReceive runs pgbench at full speed (4 clients, 15 s) against a
// PostgreSQL 15 primary three ways: no receiver, wal-receive asynchronous, and
// wal-receive synchronous (listed in synchronous_standby_names). It reports
// tps, mean commit latency, the WAL rate the receiver kept up with, and how far
// behind it was when the load stopped.
func BenchmarkReceive(b *testing.B) {
	for _, load := range []string{"tpcb", "bulk"} {
		for _, mode := range []string{"none", "async", "sync"} {
			b.Run(load+"/"+mode, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					benchReceive(b, load, mode)
				}
			})
		}
	}
}

var pgbenchTPS = regexp.MustCompile(`tps = ([0-9.]+)`)
var pgbenchLat = regexp.MustCompile(`latency average = ([0-9.]+) ms`)

func benchReceive(b *testing.B, load, mode string) {
	b.StopTimer()
	work := pgtest.TempDir(b)
	repoDir := filepath.Join(work, "repo")
	settings := map[string]string{"max_wal_size": "4GB", "checkpoint_timeout": "30min"}
	if mode == "sync" {
		settings["synchronous_standby_names"] = "pgward"
	}
	c := pgtest.Start(b, 15, pgtest.Options{Settings: settings})
	var rcv *receiver
	if mode != "none" {
		pgwardPG(b, nil, "init", "--repo", repoDir)
		args := []string{"--repo", repoDir, "--conn", c.ConnString("postgres"), "--slot", "pgward", "--create-slot", "--spool-path", filepath.Join(work, "spool")}
		if mode == "sync" {
			args = append(args, "--synchronous")
		}
		rcv = startReceiverTB(b, args...)
		waitStreamingTB(b, c, mode == "sync")
	}
	c.Pgbench(b, "postgres", "-i", "-q", "-s", "10")
	var startLSN string
	c.QueryRow(b, "postgres", "SELECT pg_current_wal_lsn()::text", &startLSN)
	b.StartTimer()
	began := time.Now()
	// The benchmark's clock is pgbench's run; the metrics are what matters.
	args := []string{"-c", "4", "-j", "2", "-T", "15", "-n"}
	if load == "bulk" {
		// WAL-heavy: each transaction writes ~600 kB of WAL.
		script := filepath.Join(work, "bulk.sql")
		os.WriteFile(script, []byte("INSERT INTO bulk SELECT g, repeat('x', 500) FROM generate_series(1, 1000) g;\n"), 0o644)
		c.Exec(b, "postgres", "CREATE UNLOGGED TABLE IF NOT EXISTS dummy (); CREATE TABLE bulk (id int, v text)")
		args = append(args, "-f", script)
	}
	out := c.Pgbench(b, "postgres", args...)
	elapsed := time.Since(began)
	b.StopTimer()
	var endLSN string
	c.QueryRow(b, "postgres", "SELECT pg_current_wal_lsn()::text", &endLSN)
	s, _ := wal.ParseLSN(startLSN)
	e, _ := wal.ParseLSN(endLSN)
	b.ReportMetric(float64(e-s)/elapsed.Seconds()/1e6, "WAL-MB/s")
	if m := pgbenchTPS.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		b.ReportMetric(v, "tps")
	}
	if m := pgbenchLat.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		b.ReportMetric(v, "ms/commit")
	}
	if rcv != nil {
		var lag int64
		c.QueryRow(b, "postgres", "SELECT coalesce(pg_current_wal_lsn() - flush_lsn, 0)::bigint FROM pg_stat_replication WHERE application_name = 'pgward'", &lag)
		b.ReportMetric(float64(lag)/1e6, "lag-MB")
		rcv.cmd.Process.Kill()
	}
	b.Logf("%s/%s: %s", load, mode, pgbenchTPS.Find(out))
}
