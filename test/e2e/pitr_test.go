package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
)

// archiving is a cluster whose archive_command is pgward archive-push into repo.
type archiving struct {
	c     *pgtest.Cluster
	repo  string
	spool string
	work  string
}

func archiveSettings(repoDir, spool string) map[string]string {
	return map[string]string{
		"archive_mode":    "on",
		"archive_command": fmt.Sprintf("%s archive-push --repo %s --spool-path %s %%p", pgwardBin, repoDir, spool),
		"archive_timeout": "0",
		// No background transactions: tests place time targets between commits.
		"autovacuum": "off",
	}
}

func startArchiving(t *testing.T, major int) *archiving {
	work := pgtest.TempDir(t)
	a := &archiving{repo: filepath.Join(work, "repo"), spool: filepath.Join(work, "spool"), work: work}
	pgwardPG(t, nil, "init", "--repo", a.repo)
	a.c = pgtest.Start(t, major, pgtest.Options{Settings: archiveSettings(a.repo, a.spool)})
	return a
}

const eventsTable = "CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"

// startEvents starts an archiving cluster with an empty events table and takes a
// first backup of it.
func startEvents(t *testing.T, major int) *archiving {
	t.Helper()
	a := startArchiving(t, major)
	a.c.Exec(t, "postgres", eventsTable)
	a.backup(t)
	return a
}

// backup takes a backup (fast checkpoint) as the postgres OS user and returns its ID.
func (a *archiving) backup(t *testing.T) string {
	t.Helper()
	out := pgwardPG(t, nil, "backup", "--repo", a.repo, "--conn", a.c.ConnString("postgres"), "--checkpoint", "fast").stdout
	return strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
}

// switchAndWait forces a segment switch and waits until the archiver has
// archived it (pg_stat_archiver), so everything committed so far is in the
// repository.
func switchAndWait(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	var seg string
	c.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_switch_wal())", &seg)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var last string
		var failed int64
		c.QueryRow(t, "postgres", "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver", &last, &failed)
		if last >= seg && !strings.HasSuffix(last, ".history") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not archived after 60 s (last archived %q, %d failures)", seg, last, failed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// markTime returns the server's clock as a UTC target time, with a pause on
// each side so that commits before and after it are clearly apart.
func markTime(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	time.Sleep(1100 * time.Millisecond)
	var at string
	c.QueryRow(t, "postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'", &at)
	time.Sleep(1100 * time.Millisecond)
	return at
}

func insertRows(t *testing.T, c *pgtest.Cluster, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		c.Exec(t, "postgres", fmt.Sprintf("INSERT INTO events (id) VALUES (%d)", i))
	}
}

// rowIDs returns the ids in events, as "1-5,100-102" style ranges for readable failures.
func rowIDs(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	var s string
	c.QueryRow(t, "postgres", `SELECT coalesce(string_agg(r, ','), '') FROM (
		SELECT min(id) || '-' || max(id) AS r FROM (SELECT id, id - row_number() OVER (ORDER BY id) AS grp FROM events) x GROUP BY grp ORDER BY min(id)) y`, &s)
	return s
}

// restoreAndCount restores with args, starts the copy, and returns its rows.
func (a *archiving) restoreAndCount(t *testing.T, name string, settings map[string]string, args ...string) (string, *pgtest.Cluster) {
	t.Helper()
	target := filepath.Join(a.work, name)
	base := []string{"restore", "--repo", a.repo, "--pgdata", target}
	pgwardPG(t, nil, append(base, args...)...)
	dst := pgtest.StartDataDir(t, a.c.Major, target, settings, true)
	return rowIDs(t, dst), dst
}

// TestPITR: rows committed one transaction each around a time, an LSN, a xid
// and a restore point; each restore has exactly the rows before its target.
func TestPITR(t *testing.T) {
	for _, major := range pgtest.Versions() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testPITR(t, major)
		})
	}
}

func testPITR(t *testing.T, major int) {
	a := startEvents(t, major)
	c := a.c

	insertRows(t, c, 1, 5)
	at := markTime(t, c)
	insertRows(t, c, 6, 10)
	c.Exec(t, "postgres", "SELECT pg_create_restore_point('before_migration')")
	insertRows(t, c, 11, 15)
	var lsn string
	c.QueryRow(t, "postgres", "SELECT pg_current_wal_insert_lsn()::text", &lsn)
	insertRows(t, c, 16, 20)
	var xid string
	c.QueryRow(t, "postgres", "INSERT INTO events (id) VALUES (21) RETURNING txid_current()::text", &xid)
	insertRows(t, c, 22, 25)
	switchAndWait(t, c)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"time", []string{"--target-time", at}, "1-5"},
		{"name", []string{"--target-name", "before_migration"}, "1-10"},
		{"lsn", []string{"--target-lsn", lsn}, "1-15"},
		{"xid", []string{"--target-xid", xid}, "1-21"},
		{"xid-exclusive", []string{"--target-xid", xid, "--target-exclusive"}, "1-20"},
		{"immediate", []string{"--target-immediate"}, ""},
	}
	for _, tc := range cases {
		got, dst := a.restoreAndCount(t, "r-"+tc.name, nil, tc.args...)
		if got != tc.want {
			t.Errorf("restore to %s %v: rows %q, want %q", tc.name, tc.args, got, tc.want)
		}
		dst.Stop(t, "immediate")
	}

	// The primary is lost: restore with no target brings back every archived
	// transaction.
	insertRows(t, c, 26, 30)
	switchAndWait(t, c)
	c.Stop(t, "immediate")
	got, _ := a.restoreAndCount(t, "r-latest", nil)
	if got != "1-30" {
		t.Errorf("restore to the latest point: rows %q, want 1-30", got)
	}

	// Targets outside the window, and unparseable ones, are refused with the window.
	r := pgward(t, nil, "restore", "--repo", a.repo, "--pgdata", filepath.Join(a.work, "r-early"), "--target-time", "2001-01-01 00:00:00+00")
	if r.code == 0 || !strings.Contains(r.stderr, "recoverable window") {
		t.Errorf("target before the first backup: %s", r)
	}
	r = pgward(t, nil, "restore", "--repo", a.repo, "--pgdata", filepath.Join(a.work, "r-late"), "--target-time", time.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05+00"))
	if r.code == 0 || !strings.Contains(r.stderr, "recoverable window") {
		t.Errorf("target after the archive: %s", r)
	}
	failPgward(t, nil, []string{"not a timestamp"}, "restore", "--repo", a.repo, "--pgdata", filepath.Join(a.work, "r-bad"), "--target-time", "yesterday-ish")
	failPgward(t, nil, []string{"not an LSN"}, "restore", "--repo", a.repo, "--pgdata", filepath.Join(a.work, "r-bad"), "--target-lsn", "12345")
}

// TestTimelines: restore to a time, promote (timeline 2), write and archive
// there, back up on the new timeline, and restore to a point on it; a target
// on timeline 1 stays reachable.
func TestTimelines(t *testing.T) {
	a := startEvents(t, 15)
	c := a.c
	insertRows(t, c, 1, 5)
	t1 := markTime(t, c)
	insertRows(t, c, 6, 10)
	switchAndWait(t, c)
	c.Stop(t, "fast")

	// Restore to t1 with archiving on: the promoted copy is the new primary.
	got, p2 := a.restoreAndCount(t, "tl2", archiveSettings(a.repo, a.spool), "--target-time", t1)
	if got != "1-5" {
		t.Fatalf("restore to t1: rows %q, want 1-5", got)
	}
	var tli int
	p2.QueryRow(t, "postgres", "SELECT timeline_id FROM pg_control_checkpoint()", &tli)
	insertRows(t, p2, 100, 105)
	switchAndWait(t, p2)
	pgwardPG(t, nil, "backup", "--repo", a.repo, "--conn", p2.ConnString("postgres"), "--checkpoint", "fast")
	insertRows(t, p2, 106, 110)
	t2 := markTime(t, p2)
	insertRows(t, p2, 111, 115)
	switchAndWait(t, p2)
	if !walArchived(t, a, fmt.Sprintf("%08X.history", 2)) {
		t.Fatal("timeline 2 history file is not in the archive")
	}

	got, _ = a.restoreAndCount(t, "r-tl2", nil, "--target-time", t2)
	if got != "1-5,100-110" {
		t.Errorf("restore to t2 on the new timeline: rows %q, want 1-5,100-110", got)
	}
	// The old timeline's later rows are still reachable by following timeline 1.
	got, _ = a.restoreAndCount(t, "r-tl1", nil, "--backup", firstBackup(t, a), "--target-timeline", "1")
	if got != "1-10" {
		t.Errorf("restore along timeline 1: rows %q, want 1-10", got)
	}
	if tli != 2 {
		t.Errorf("promoted copy is on timeline %d, want 2", tli)
	}
}

func firstBackup(t *testing.T, a *archiving) string {
	out := mustPgward(t, nil, "list", "--repo", a.repo).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.Fields(lines[1])[2]
}

func walArchived(t *testing.T, a *archiving, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		r := pgward(t, nil, "archive-get", "--repo", a.repo, "--spool-path", "off", name, filepath.Join(a.work, "probe-"+name))
		if r.code == 0 {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}
