package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pgward/pgward/test/pgtest"
)

// TestDeltaRestore: a cluster backed up, 5% of its rows changed, backed up
// again and stopped; a delta restore of the first backup into its own data
// directory rewrites a small part of it and the server starts with the first
// backup's rows, and a delta restore of the second (page deltas in the
// repository; INCREMENTAL on 17+) brings the second's back. A running server
// and another cluster's directory are refused, unchanged.
func TestDeltaRestore(t *testing.T) {
	for _, major := range pgtest.EdgeVersions() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testDeltaRestore(t, major)
		})
	}
}

func testDeltaRestore(t *testing.T, major int) {
	work := pgtest.TempDir(t)
	repoDir := filepath.Join(work, "repo")
	// Small chunks, so that a 5% change of a small cluster is many chunks.
	pgwardPG(t, nil, "init", "--repo", repoDir, "--chunk-size-kib", "256")
	settings := map[string]string{}
	if major >= 17 {
		settings["summarize_wal"] = "on"
	}
	c := pgtest.Start(t, major, pgtest.Options{Checksums: true, Settings: settings})
	// Fillfactor 50: an updated row's new version stays on its page, so
	// updating 5% of the rows changes about 5% of the pages.
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "4", "--fillfactor", "50")
	// A small table updated sparsely: the second backup stores its chunks as
	// page deltas, which the second delta restore rebuilds.
	c.Exec(t, "postgres", "CREATE TABLE sparse WITH (fillfactor = 50) AS SELECT g, md5(g::text) AS v FROM generate_series(1, 20000) g")
	conn := c.ConnString("postgres")
	backup := func() result {
		return pgwardPG(t, nil, "backup", "--repo", repoDir, "--conn", conn, "--checkpoint", "fast")
	}
	id := func(r result) string { return strings.TrimSpace(strings.SplitN(r.stdout, "\n", 2)[0]) }
	b1 := id(backup())
	want1 := pgtest.Checksums(t, c)
	c.Exec(t, "postgres", `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 20000;
		UPDATE sparse SET v = upper(v) WHERE g % 500 = 0; CHECKPOINT`)
	r2 := backup()
	if major >= 17 && !strings.Contains(r2.stderr, "incremental backup") {
		t.Errorf("the second backup on PostgreSQL %d is not INCREMENTAL: %s", major, r2)
	}
	b2 := id(r2)
	want2 := pgtest.Checksums(t, c)

	restoreDelta := func(args ...string) result {
		return pgwardPG(t, nil, append([]string{"restore", "--repo", repoDir, "--pgdata", c.DataDir, "--delta", "--target-immediate"}, args...)...)
	}
	failPgward(t, nil, []string{"a server is running on " + c.DataDir}, "restore", "--repo", repoDir, "--pgdata", c.DataDir, "--delta")
	c.Stop(t, "fast")

	r := restoreDelta("--backup", b1)
	written, walWritten, kept := deltaBytes(t, r.stdout)
	total := backupBytes(t, repoDir, b1)
	t.Logf("PostgreSQL %d: delta restore after a 5%% change rewrote %d of %d bytes (%.1f%%; %.1f%% without the backup's %d bytes of WAL), found %d equal",
		major, written, total, 100*float64(written)/float64(total), 100*float64(written-walWritten)/float64(total-walWritten), walWritten, kept)
	if written-walWritten > total/10 || kept < total/2 {
		t.Errorf("delta restore after a 5%% change rewrote %d (%d WAL) and kept %d of %d bytes", written, walWritten, kept, total)
	}
	dst := pgtest.StartDataDir(t, major, c.DataDir, nil, true)
	compareSums(t, want1, pgtest.Checksums(t, dst))
	dst.Stop(t, "fast")
	pgtest.VerifyPageChecksums(t, c.DataDir)

	// Forward again, to the backup stored as page deltas, with the cheap check.
	restoreDelta("--backup", b2, "--delta-check", "size-time")
	dst = pgtest.StartDataDir(t, major, c.DataDir, nil, true)
	compareSums(t, want2, pgtest.Checksums(t, dst))
	dst.Stop(t, "fast")

	other := pgtest.Start(t, major, pgtest.Options{})
	other.Stop(t, "fast")
	before := dirTree(t, other.DataDir)
	failPgward(t, nil, []string{"system identifier", "only rewrites a data directory of the same cluster"},
		"restore", "--repo", repoDir, "--pgdata", other.DataDir, "--delta")
	if dirTree(t, other.DataDir) != before {
		t.Error("a refused delta restore changed the other cluster's directory")
	}
}

var deltaLine = regexp.MustCompile(`: ([0-9.]+ [KMGT]?i?B) rewritten \(([0-9.]+ [KMGT]?i?B) of it the WAL the backup carries\), ([0-9.]+ [KMGT]?i?B) already equal`)

// deltaBytes reads the bytes rewritten (WAL among them) and kept from a delta
// restore's summary.
func deltaBytes(t *testing.T, out string) (written, wal, kept int64) {
	t.Helper()
	m := deltaLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no delta restore summary in:\n%s", out)
	}
	return parseHuman(t, m[1]), parseHuman(t, m[2]), parseHuman(t, m[3])
}

// parseHuman reads a size as pgward prints it ("12.3 MiB", "512 B").
func parseHuman(t *testing.T, s string) int64 {
	t.Helper()
	num, unit, _ := strings.Cut(s, " ")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		t.Fatalf("size %q: %v", s, err)
	}
	shift := map[string]uint{"B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[unit]
	return int64(f * float64(int64(1)<<shift))
}

// backupBytes is a backup's db_bytes from list --json.
func backupBytes(t *testing.T, repoDir, id string) int64 {
	t.Helper()
	for _, b := range listBackups(t, nil, "--repo", repoDir) {
		if b["id"] == id {
			return int64(b["db_bytes"].(float64))
		}
	}
	t.Fatalf("backup %s not listed", id)
	return 0
}
