package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
)

// expireJSON is the part of 'expire --json' the tests read.
type expireJSON struct {
	Repository string   `json:"repository"`
	Expired    []string `json:"expired"`
	Backups    []struct {
		ID      string   `json:"id"`
		Keep    bool     `json:"keep"`
		Reasons []string `json:"reasons"`
	} `json:"backups"`
	WAL struct {
		KeptFrom     string `json:"kept_from"`
		RemovedFiles int    `json:"removed_files"`
		RemovedBytes int64  `json:"removed_bytes"`
	} `json:"wal"`
	Sweep struct {
		DeletedChunks int    `json:"deleted_chunks"`
		DeletedPacks  int    `json:"deleted_packs"`
		Skipped       string `json:"skipped"`
		FreedBytes    int64  `json:"freed_bytes"`
	} `json:"sweep"`
	FreedBytes int64 `json:"freed_bytes"`
}

func expireRun(t *testing.T, args ...string) []expireJSON {
	t.Helper()
	r := pgwardPG(t, nil, append([]string{"expire", "--json"}, args...)...)
	var out []expireJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("expire --json: %v\n%s", err, r)
	}
	return out
}

// storedBytes is what a local repository's content store holds: chunks, packs, index.
func storedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, sub := range []string{"chunks", "packs", "index"} {
		filepath.Walk(filepath.Join(dir, sub), func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
			return nil
		})
	}
	return n
}

func backupIDs(t *testing.T, repoDir string) []string {
	t.Helper()
	var ids []string
	for _, b := range listBackups(t, nil, "--repo", repoDir) {
		ids = append(ids, b["id"].(string))
	}
	return ids
}

// TestExpire: four backups with changes between them, the first two holding a table
// dropped later. expire --keep-last 2 --dry-run changes nothing and predicts what the real
// run frees; the real run leaves two backups, frees what only the others used and the WAL
// before the recovery window, and both remaining backups restore with their content; a point
// in time inside the window is reached. A pinned backup survives a policy that would remove
// it, and goes once unpinned.
func TestExpire(t *testing.T) {
	a := startEvents(t, 15)
	c := a.c
	b1 := backupIDs(t, a.repo)[0]
	// 8 MB of hashes that do not deduplicate against anything later.
	c.Exec(t, "postgres", "CREATE TABLE scratch AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 100000) g")
	insertRows(t, c, 1, 10)
	b2 := a.backup(t)
	c.Exec(t, "postgres", "DROP TABLE scratch")
	insertRows(t, c, 11, 20)
	c.Exec(t, "postgres", "CHECKPOINT")
	b3 := a.backup(t)
	sums3 := pgtest.Checksums(t, c)
	insertRows(t, c, 21, 30)
	mark := markTime(t, c)
	insertRows(t, c, 31, 40)
	b4 := a.backup(t)
	sums4 := pgtest.Checksums(t, c)
	insertRows(t, c, 41, 50)
	switchAndWait(t, c)
	if ids := backupIDs(t, a.repo); !slices.Equal(ids, []string{b1, b2, b3, b4}) {
		t.Fatalf("backups %v", ids)
	}
	before := storedBytes(t, a.repo)
	walBefore := len(archivedSegments(t, a.repo))

	dry := expireRun(t, "--repo", a.repo, "--keep-last", "2", "--dry-run")
	if len(dry) != 1 || !slices.Equal(dry[0].Expired, []string{b1, b2}) || dry[0].FreedBytes <= 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	if got := storedBytes(t, a.repo); got != before || len(backupIDs(t, a.repo)) != 4 {
		t.Fatalf("the dry run changed the repository: %d → %d bytes", before, got)
	}

	res := expireRun(t, "--repo", a.repo, "--keep-last", "2")[0]
	if !slices.Equal(res.Expired, []string{b1, b2}) || res.Sweep.Skipped != "" {
		t.Fatalf("expire: %+v", res)
	}
	after := storedBytes(t, a.repo)
	t.Logf("content store %d → %d bytes (freed %d, predicted %d, of which WAL %d in %d files); WAL segments %d → %d",
		before, after, res.FreedBytes, dry[0].FreedBytes, res.WAL.RemovedBytes, res.WAL.RemovedFiles, walBefore, len(archivedSegments(t, a.repo)))
	if before-after < 2<<20 {
		t.Errorf("expire freed only %d bytes of chunks; the dropped table alone held several MB", before-after)
	}
	if res.Sweep.FreedBytes != dry[0].Sweep.FreedBytes {
		t.Errorf("the dry run predicted %d bytes of garbage, the sweep freed %d", dry[0].Sweep.FreedBytes, res.Sweep.FreedBytes)
	}
	if res.WAL.RemovedFiles == 0 || res.WAL.KeptFrom == "" {
		t.Errorf("no WAL removed below the window: %+v", res.WAL)
	}
	for _, seg := range archivedSegments(t, a.repo) {
		if seg[8:] < res.WAL.KeptFrom[8:] {
			t.Errorf("segment %s is below the recovery window, which starts at %s", seg, res.WAL.KeptFrom)
		}
	}
	if ids := backupIDs(t, a.repo); !slices.Equal(ids, []string{b3, b4}) {
		t.Fatalf("left %v, want %s and %s", ids, b3, b4)
	}
	for i, want := range []map[string]pgtest.TableSum{sums3, sums4} {
		id := []string{b3, b4}[i]
		target := filepath.Join(a.work, "r-"+id)
		pgwardPG(t, nil, "restore", "--repo", a.repo, "--pgdata", target, "--backup", id, "--target-immediate")
		dst := pgtest.StartDataDir(t, 15, target, nil, true)
		compareSums(t, want, pgtest.Checksums(t, dst))
		dst.Stop(t, "immediate")
	}
	if got, _ := a.restoreAndCount(t, "r-pitr", nil, "--target-time", mark); got != "1-30" {
		t.Fatalf("PITR inside the kept window: rows %s, want 1-30", got)
	}
	pgwardPG(t, nil, "verify", "--repo", a.repo, "--all", "--read-data")
	// A second expire finds nothing more.
	if again := expireRun(t, "--repo", a.repo, "--keep-last", "2")[0]; len(again.Expired) != 0 || again.Sweep.DeletedChunks+again.Sweep.DeletedPacks != 0 {
		t.Fatalf("second expire: %+v", again)
	}

	// Pins: b3 pinned survives keep-last 1 (b4 goes), and goes once unpinned.
	insertRows(t, c, 51, 60)
	b5 := a.backup(t)
	pgwardPG(t, nil, "pin", "--repo", a.repo, b3, "--note", "before the upgrade")
	res = expireRun(t, "--repo", a.repo, "--keep-last", "1")[0]
	if !slices.Equal(res.Expired, []string{b4}) {
		t.Fatalf("with %s pinned, keep-last 1 expired %v, want only %s", b3, res.Expired, b4)
	}
	for _, b := range res.Backups {
		if b.ID == b3 && !slices.Contains(b.Reasons, "pinned") {
			t.Fatalf("%s kept for %v, not for its pin", b3, b.Reasons)
		}
	}
	pgwardPG(t, nil, "unpin", "--repo", a.repo, b3)
	res = expireRun(t, "--repo", a.repo, "--keep-last", "1")[0]
	if !slices.Equal(res.Expired, []string{b3}) || !slices.Equal(backupIDs(t, a.repo), []string{b5}) {
		t.Fatalf("after unpin: expired %v, left %v", res.Expired, backupIDs(t, a.repo))
	}
	got, _ := a.restoreAndCount(t, "r-last", nil)
	if got != "1-60" {
		t.Fatalf("restore of the last backup: rows %s, want 1-60", got)
	}
	// A policy in the config file, per cluster, runs after every backup of that cluster.
	cfg := filepath.Join(a.work, "pgward.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("repo = %q\n[cluster.main]\nkeep-last = 1\n", a.repo)), 0o644); err != nil {
		t.Fatal(err)
	}
	insertRows(t, c, 61, 70)
	r := pgwardPG(t, nil, "backup", "--config", cfg, "--conn", c.ConnString("postgres"), "--checkpoint", "fast")
	b6 := strings.TrimSpace(strings.SplitN(r.stdout, "\n", 2)[0])
	if ids := backupIDs(t, a.repo); !slices.Equal(ids, []string{b6}) || !strings.Contains(r.stderr, "retention applied after the backup") {
		t.Fatalf("after a backup with keep-last = 1 in the config: backups %v\n%s", ids, r.stderr)
	}
	// Without a terminal, progress is logged, with the previous backup's size as the
	// total (the server's estimate, a pass over every file, is asked for on a terminal).
	if m := regexp.MustCompile(`backup progress" bytes=\d+ total_bytes=(\d+) .*percent=`).FindStringSubmatch(r.stderr); m == nil || m[1] == "0" {
		t.Errorf("no progress line with a total in the backup's log:\n%s", r.stderr)
	}
	// Bad input: no rule, and pinning a backup that does not exist.
	failPgward(t, nil, []string{"no retention rule given"}, "expire", "--repo", a.repo)
	failPgward(t, nil, []string{"is in no repository"}, "pin", "--repo", a.repo, "20200101T000000Z")
}

// TestExpireWhileWriting: expire runs while a backup and archive-push write, and a backup
// starts while expire holds the repository; every one succeeds, nothing any kept backup
// needs is gone, and the backups restore.
func TestExpireWhileWriting(t *testing.T) {
	a := startEvents(t, 15)
	testExpireWhileWriting(t, &writingTarget{c: a.c, work: a.work, repo: []string{"--repo", a.repo},
		locked: func() bool {
			locks, _ := filepath.Glob(filepath.Join(a.repo, "locks", ".repository", "*"))
			return len(locks) > 0
		}})
}

// writingTarget is a repository with an archiving cluster that has an events table and a
// first backup.
type writingTarget struct {
	env  []string
	repo []string // --repo and the location's options
	c    *pgtest.Cluster
	work string
	// locked reports whether a repository lock is visible.
	locked func() bool
}

// run runs pgward as the postgres OS user with the repository options.
func (w *writingTarget) run(t *testing.T, args ...string) result {
	t.Helper()
	return runPgward(t, true, w.env, argv(args, w.repo)...)
}

func (w *writingTarget) must(t *testing.T, args ...string) result {
	t.Helper()
	r := w.run(t, args...)
	if r.code != 0 {
		t.Fatalf("pgward %s failed: %s", strings.Join(args, " "), r)
	}
	return r
}

func (w *writingTarget) backup(t *testing.T, extra ...string) result {
	t.Helper()
	return w.run(t, argv([]string{"backup", "--conn", w.c.ConnString("postgres"), "--checkpoint", "fast"}, extra)...)
}

func (w *writingTarget) restoreRows(t *testing.T, name string, args ...string) string {
	t.Helper()
	target := filepath.Join(w.work, name)
	w.must(t, argv([]string{"restore", "--pgdata", target}, args)...)
	dst := pgtest.StartDataDir(t, w.c.Major, target, nil, true)
	defer dst.Stop(t, "immediate")
	return rowIDs(t, dst)
}

func testExpireWhileWriting(t *testing.T, w *writingTarget) {
	c := w.c
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "5")
	insertRows(t, c, 1, 10)
	first := w.backup(t)
	if first.code != 0 {
		t.Fatal(first)
	}
	old := strings.TrimSpace(strings.SplitN(first.stdout, "\n", 2)[0])
	// A slow backup (its rate limited) while writes are archived and expire runs.
	var wg sync.WaitGroup
	var slow result
	wg.Add(1)
	go func() {
		defer wg.Done()
		slow = w.backup(t, "--max-rate", "4096")
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !w.locked() {
		if time.Now().After(deadline) {
			t.Fatal("no repository lock of the running backup after 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Pgbench(t, "postgres", "-n", "-t", "300", "-c", "2")
	insertRows(t, c, 11, 20)
	var res []expireJSON
	r := w.must(t, "expire", "--json", "--keep-last", "1", "--lock-wait", "1s")
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res) != 1 {
		t.Fatalf("expire --json: %v\n%s", err, r)
	}
	if !strings.Contains(res[0].Sweep.Skipped, "backup of main") {
		t.Errorf("the sweep ran beside a running backup: %+v", res[0].Sweep)
	}
	wg.Wait()
	if slow.code != 0 {
		t.Fatalf("the backup that ran during expire failed: %s", slow)
	}
	// Now the other way round: expire holds the exclusive lock (a long settle delay keeps it
	// in its sweep), a backup starts meanwhile and waits for it.
	insertRows(t, c, 21, 30)
	var sweep result
	wg.Add(1)
	go func() {
		defer wg.Done()
		sweep = w.run(t, "expire", "--json", "--keep-last", "1", "--lock-settle", "4s")
	}()
	time.Sleep(time.Second)
	lateRun := w.backup(t)
	wg.Wait()
	if sweep.code != 0 || lateRun.code != 0 {
		t.Fatalf("expire and a backup started during its sweep: %s\n%s", sweep, lateRun)
	}
	late := strings.TrimSpace(strings.SplitN(lateRun.stdout, "\n", 2)[0])
	if !strings.Contains(lateRun.stderr, "waiting for the repository lock") {
		t.Errorf("the backup started during the sweep did not say it waited for it:\n%s", lateRun.stderr)
	}
	var sr []expireJSON
	json.Unmarshal([]byte(sweep.stdout), &sr)
	if len(sr) != 1 || sr[0].Sweep.Skipped != "" || !slices.Contains(sr[0].Expired, old) {
		t.Fatalf("expire with a backup starting during its sweep: %s (first expire %+v)", sweep.stdout, res[0])
	}
	insertRows(t, c, 31, 40)
	switchAndWait(t, c)
	if got := w.restoreRows(t, "r-latest"); got != "1-40" {
		t.Fatalf("restore after concurrent expire: rows %s, want 1-40", got)
	}
	if got := w.restoreRows(t, "r-late", "--backup", late, "--target-immediate"); got != "1-30" {
		t.Fatalf("the backup taken during the sweep restores rows %s, want 1-30", got)
	}
	w.must(t, "verify", "--all", "--read-data")
}
