package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/test/pgtest"
)

// TestSparseUpdates: repository format 2 stores a sparse update (one row on ~5% of
// pgbench_accounts' pages, spread over the whole table) as page deltas. A full
// backup, then two rounds of updates with a backup after each: every backup
// restores to its own content, and a point in time between them too; the second
// round stores a small fraction of what the full backup stored.
func TestSparseUpdates(t *testing.T) {
	for _, major := range []int{15, 17} {
		if !hasMajor(major) {
			continue
		}
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testSparseUpdates(t, major)
		})
	}
}

func hasMajor(major int) bool {
	for _, m := range pgtest.Versions() {
		if m == major {
			return true
		}
	}
	return false
}

func testSparseUpdates(t *testing.T, major int) {
	work := pgtest.TempDir(t)
	a := &archiving{repo: filepath.Join(work, "repo"), spool: filepath.Join(work, "spool"), work: work}
	pgwardPG(t, nil, "init", "--repo", a.repo)
	settings := archiveSettings(a.repo, a.spool)
	if major >= 17 {
		settings["summarize_wal"] = "on" // the later backups are INCREMENTAL
	}
	a.c = pgtest.Start(t, major, pgtest.Options{Settings: settings})
	c := a.c
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "5")
	c.Exec(t, "postgres", "CHECKPOINT")
	ids := []string{a.backup(t)}
	sums := []map[string]pgtest.TableSum{pgtest.Checksums(t, c)}
	var between string
	for round := 1; round <= 2; round++ {
		if round == 2 {
			between = markTime(t, c)
		}
		// One row on about every 1220th... every page of ~61 rows: ~5% of the pages.
		c.Exec(t, "postgres", fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid %% 1220 = %d", round))
		c.Exec(t, "postgres", "CHECKPOINT")
		if major >= 17 {
			// The summarizer must have caught up with the checkpoint for the
			// server to serve an incremental backup.
			c.Exec(t, "postgres", "SELECT pg_sleep(0.5)")
		}
		r := pgwardPG(t, nil, "backup", "--repo", a.repo, "--conn", c.ConnString("postgres"), "--checkpoint", "fast")
		if major >= 17 && !strings.Contains(r.stderr, "incremental backup: the server sends only the blocks that changed") {
			t.Errorf("round %d on PostgreSQL %d was not incremental:\n%s", round, major, r.stderr)
		}
		ids = append(ids, strings.TrimSpace(strings.SplitN(r.stdout, "\n", 2)[0]))
		sums = append(sums, pgtest.Checksums(t, c))
	}
	switchAndWait(t, c)

	var list struct {
		Backups []struct {
			ID     string `json:"id"`
			Stored int64  `json:"stored_bytes"`
			DB     int64  `json:"db_bytes"`
		} `json:"backups"`
	}
	if err := json.Unmarshal([]byte(mustPgward(t, nil, "list", "--json", "--repo", a.repo).stdout), &list); err != nil {
		t.Fatal(err)
	}
	full, second := list.Backups[0].Stored, list.Backups[2].Stored
	t.Logf("PostgreSQL %d: full backup stored %d bytes of %d; round 1 stored %d, round 2 stored %d (%.1f%% of the full backup)",
		major, full, list.Backups[0].DB, list.Backups[1].Stored, second, 100*float64(second)/float64(full))
	if second*4 > full {
		t.Errorf("round 2 stored %d bytes, more than a quarter of the full backup's %d: page deltas are not working", second, full)
	}

	for i, id := range ids {
		target := filepath.Join(a.work, "r-"+id)
		pgwardPG(t, nil, "restore", "--repo", a.repo, "--pgdata", target, "--backup", id, "--target-immediate")
		dst := pgtest.StartDataDir(t, major, target, nil, true)
		compareSums(t, sums[i], pgtest.Checksums(t, dst))
		dst.Stop(t, "immediate")
	}
	target := filepath.Join(a.work, "r-between")
	pgwardPG(t, nil, "restore", "--repo", a.repo, "--pgdata", target, "--target-time", between)
	dst := pgtest.StartDataDir(t, major, target, nil, true)
	compareSums(t, sums[1], pgtest.Checksums(t, dst))
	dst.Stop(t, "immediate")

	// A flipped byte in the packs (which hold the page deltas and digests) or in
	// the index is named, and the restore that needs it refuses.
	for _, kind := range []string{"packs", "index"} {
		files, _ := filepath.Glob(filepath.Join(a.repo, kind, "*", "*"))
		if len(files) == 0 {
			t.Fatalf("no %s in the repository", kind)
		}
		saved := map[string][]byte{}
		for _, f := range files {
			saved[f] = damageFile(t, f)
		}
		bad := filepath.Join(a.work, "r-bad-"+kind)
		failPgward(t, nil, []string{"corrupted object", strings.TrimSuffix(kind, "s")}, "restore", "--repo", a.repo, "--pgdata", bad, "--skip-restore-command-check")
		assertNotStartable(t, bad)
		for f, data := range saved {
			os.WriteFile(f, data, 0o600)
		}
	}
}

// TestFormat1Upgrade: a repository of format 1 (what releases before format 2
// write: every chunk its own object, no packs) keeps working, is upgraded in
// place, takes format-2 backups afterwards, and every backup, old and new,
// restores with its content.
func TestFormat1Upgrade(t *testing.T) {
	work := pgtest.TempDir(t)
	a := &archiving{repo: filepath.Join(work, "repo"), spool: filepath.Join(work, "spool"), work: work}
	pgwardPG(t, nil, "init", "--repo", a.repo, "--format", "1")
	a.c = pgtest.Start(t, 15, pgtest.Options{Settings: archiveSettings(a.repo, a.spool)})
	c := a.c
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "1")
	c.Exec(t, "postgres", eventsTable)
	old := a.backup(t)
	oldSums := pgtest.Checksums(t, c)
	if packs, _ := filepath.Glob(filepath.Join(a.repo, "packs", "*", "*")); len(packs) != 0 {
		t.Fatalf("a format-1 repository got %d packs", len(packs))
	}
	out := pgwardPG(t, nil, "upgrade", "--repo", a.repo).stdout
	if !strings.Contains(out, "from format 1 to 2") {
		t.Fatalf("upgrade: %s", out)
	}
	insertRows(t, c, 1, 10)
	c.Exec(t, "postgres", "UPDATE pgbench_accounts SET abalance = 1 WHERE aid % 500 = 0")
	newer := a.backup(t)
	newSums := pgtest.Checksums(t, c)
	if packs, _ := filepath.Glob(filepath.Join(a.repo, "packs", "*", "*")); len(packs) == 0 {
		t.Fatal("the upgraded repository wrote no packs")
	}
	insertRows(t, c, 11, 20)
	switchAndWait(t, c)
	c.Stop(t, "immediate")

	for _, tc := range []struct {
		id   string
		sums map[string]pgtest.TableSum
	}{{old, oldSums}, {newer, newSums}} {
		target := filepath.Join(work, "r-"+tc.id)
		pgwardPG(t, nil, "restore", "--repo", a.repo, "--pgdata", target, "--backup", tc.id, "--target-immediate")
		dst := pgtest.StartDataDir(t, 15, target, nil, true)
		compareSums(t, tc.sums, pgtest.Checksums(t, dst))
		dst.Stop(t, "immediate")
	}
	got, _ := a.restoreAndCount(t, "r-latest", nil, "--backup", old)
	if got != "1-20" {
		t.Errorf("the format-1 backup replayed to the latest point: rows %q, want 1-20", got)
	}
}
