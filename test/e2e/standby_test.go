package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
)

// TestStandby: a standby restored with --standby streams from the primary
// (pg_stat_replication shows it) and follows its rows; a backup taken from that
// standby, checked against the primary, restores to the primary's latest
// archived point with the primary's content. --backup-standby on refuses a
// primary at --conn, and prefer backs up the primary instead.
func TestStandby(t *testing.T) {
	for _, major := range pgtest.EdgeVersions() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testStandby(t, major)
		})
	}
}

func testStandby(t *testing.T, major int) {
	a := startArchiving(t, major)
	p := a.c
	p.Exec(t, "postgres", eventsTable)
	insertRows(t, p, 1, 10)
	a.backup(t)

	sdir := filepath.Join(a.work, "standby")
	r := pgwardPG(t, nil, "restore", "--repo", a.repo, "--pgdata", sdir, "--standby",
		"--primary-conninfo", p.ConnString("postgres")+" application_name=restored_standby")
	if _, err := os.Stat(filepath.Join(sdir, "standby.signal")); err != nil || !strings.Contains(r.stdout, "starts as a standby") {
		t.Fatalf("no standby.signal (%v): %s", err, r)
	}
	if _, err := os.Stat(filepath.Join(sdir, "recovery.signal")); err == nil {
		t.Fatal("a standby restore wrote recovery.signal")
	}
	s := pgtest.StartDataDir(t, major, sdir, nil, false)
	waitFor(t, "the standby streams from the primary", func() bool {
		var n int
		p.QueryRow(t, "postgres", "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'restored_standby' AND state = 'streaming'", &n)
		return n == 1
	})
	insertRows(t, p, 11, 20)
	waitFor(t, "the standby has the primary's rows 1-20", func() bool { return rowIDs(t, s) == "1-20" })

	// A backup of the standby, checked against its primary.
	failPgward(t, nil, []string{"not in recovery", "--backup-standby prefer"},
		"backup", "--repo", a.repo, "--conn", p.ConnString("postgres"), "--backup-standby", "on", "--primary-conn", p.ConnString("postgres"))
	fallback := runPgward(t, true, nil, "backup", "--repo", a.repo, "--conn", p.ConnString("postgres"), "--backup-standby", "prefer", "--primary-conn", p.ConnString("postgres"), "--checkpoint", "fast")
	if fallback.code != 0 || !strings.Contains(fallback.stderr, "backing up the primary") {
		t.Fatalf("--backup-standby prefer with no usable standby: %s", fallback)
	}
	out := pgwardPG(t, nil, "backup", "--repo", a.repo, "--conn", s.ConnString("postgres"), "--backup-standby", "on",
		"--primary-conn", p.ConnString("postgres"), "--checkpoint", "fast")
	if !strings.Contains(out.stderr, "backing up the standby") {
		t.Errorf("backup from the standby does not say so: %s", out)
	}
	fromStandby := strings.TrimSpace(strings.SplitN(out.stdout, "\n", 2)[0])

	insertRows(t, p, 21, 30)
	switchAndWait(t, p)
	want := pgtest.Checksums(t, p)
	got, dst := a.restoreAndCount(t, "from-standby", nil, "--backup", fromStandby)
	if got != "1-30" {
		t.Errorf("backup from the standby restored to the latest point: rows %q, want 1-30", got)
	}
	compareSums(t, want, pgtest.Checksums(t, dst))
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, time.Minute, what, cond)
}
