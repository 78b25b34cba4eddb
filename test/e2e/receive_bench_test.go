package e2e

import (
	"fmt"
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
	for _, mode := range []string{"none", "async", "sync"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				benchReceive(b, mode)
			}
		})
	}
}

var pgbenchTPS = regexp.MustCompile(`tps = ([0-9.]+)`)
var pgbenchLat = regexp.MustCompile(`latency average = ([0-9.]+) ms`)

func benchReceive(b *testing.B, mode string) {
	b.StopTimer()
	work := pgtest.TempDir(b)
	repoDir := filepath.Join(work, "repo")
	t := &testing.T{}
	_ = t
	settings := map[string]string{"max_wal_size": "4GB", "checkpoint_timeout": "30min"}
	if mode == "sync" {
		settings["synchronous_standby_names"] = "pgward"
	}
	c := pgtest.Start(b, 15, pgtest.Options{Settings: settings})
	c.Pgbench(b, "postgres", "-i", "-q", "-s", "10")
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
	var startLSN string
	c.QueryRow(b, "postgres", "SELECT pg_current_wal_lsn()::text", &startLSN)
	b.StartTimer()
	began := time.Now()
	out := c.Pgbench(b, "postgres", "-c", "4", "-j", "2", "-T", "15", "-n")
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
	_ = fmt.Sprint
}
