package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
)

// The tests in this file prove that a restore never stops short in silence:
// PostgreSQL ends recovery and promotes when restore_command exits with a status up
// to 125, so every way of losing archived WAL must either stop the server with an
// error or be refused by restore before it writes anything.

// walObject is where a local repository keeps an archived WAL file.
func walObject(repoDir, name string) string {
	return filepath.Join(repoDir, "clusters", "main", "wal", name[:16], name)
}

// damageFile damages a file in its middle (damage) and returns its old content.
func damageFile(t *testing.T, path string) []byte {
	t.Helper()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), orig...)
	damage(bad, len(bad)/2)
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	return orig
}

// damage inverts 8 bytes of b from at (fewer at its end). One flipped bit does not
// prove that damage is found: a zstd frame has bits its decoder never reads, and
// 0.25-0.5 % of the single-bit flips of a compressed WAL segment decode to the same
// bytes (nothing was damaged; a test that flipped one failed about once in a
// hundred runs). Of 35,000 eight-byte changes, one at every third byte of such a
// frame, none went unnoticed.
func damage(b []byte, at int) {
	for i := at; i < min(at+8, len(b)); i++ {
		b[i] ^= 0xff
	}
}

// threeSegments inserts rows in three groups, each in its own archived segment,
// and returns the three segments' names.
func threeSegments(t *testing.T, c *pgtest.Cluster) [3]string {
	t.Helper()
	var segs [3]string
	for i := range 3 {
		insertRows(t, c, i*10+1, i*10+10)
		c.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())", &segs[i])
		switchAndWait(t, c)
	}
	return segs
}

// stopsInRecovery starts a restored data directory and checks that recovery stops
// with an error naming want, without promoting.
func stopsInRecovery(t *testing.T, major int, dataDir string, want ...string) *pgtest.Cluster {
	t.Helper()
	dst := pgtest.StartRecovery(t, major, dataDir, nil)
	if !dst.WaitExit(2 * time.Minute) {
		t.Fatalf("the server is still running: recovery did not stop on the bad WAL\n%s", dst.Log())
	}
	log := dst.Log()
	if strings.Contains(log, "selected new timeline") || strings.Contains(log, "archive recovery complete") {
		t.Fatalf("the server promoted instead of stopping:\n%s", log)
	}
	for _, w := range append(want, "FATAL") {
		if !strings.Contains(log, w) {
			t.Fatalf("the server log does not mention %q:\n%s", w, log)
		}
	}
	return dst
}

// TestRecoveryStopsOnCorruptWAL: a flipped byte in a middle segment stops recovery
// with the object named; repaired, the same data directory recovers every row.
// archive-get exits 1 quietly only for a file no repository has. (The oldest and
// newest majors: what it checks is pgward's, not the server's.)
func TestRecoveryStopsOnCorruptWAL(t *testing.T) {
	for _, major := range pgtest.EdgeVersions() {
		t.Run(fmt.Sprintf("pg%d", major), func(t *testing.T) {
			t.Parallel()
			testRecoveryStopsOnCorruptWAL(t, major)
		})
	}
}

func testRecoveryStopsOnCorruptWAL(t *testing.T, major int) {
	a := startEvents(t, major)
	c := a.c
	segs := threeSegments(t, c)
	c.Stop(t, "immediate")

	probe := filepath.Join(a.work, "probe")
	r := pgward(t, nil, "archive-get", "--repo", a.repo, "--spool-path", "off", "0000000100000000000000FE", probe)
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("archive-get of a file that is not archived: want exit 1 and no output, got %s", r)
	}
	r = pgward(t, nil, "archive-get", "--repo", filepath.Join(a.work, "nosuch"), "--spool-path", "off", segs[1], probe)
	if r.code != 200 {
		t.Errorf("archive-get from a missing repository: want exit 200, got %s", r)
	}
	r = pgward(t, nil, "archive-get", "--repo", a.repo, "--no-such-flag", segs[1], probe)
	if r.code != 200 {
		t.Errorf("archive-get with a bad option: want exit 200, got %s", r)
	}

	obj := walObject(a.repo, segs[1])
	orig := damageFile(t, obj)
	r = pgward(t, nil, "archive-get", "--repo", a.repo, "--spool-path", "off", segs[1], probe)
	if r.code != 200 || !strings.Contains(r.stderr, "corrupted object") || !strings.Contains(r.stderr, segs[1]) {
		t.Fatalf("archive-get of a corrupt segment: want exit 200 naming it, got %s", r)
	}

	target := filepath.Join(a.work, "restored")
	pgwardPG(t, nil, "restore", "--repo", a.repo, "--pgdata", target)
	dst := stopsInRecovery(t, major, target, segs[1], "corrupted object")

	// Repaired, the same directory goes on where it stopped.
	if err := os.WriteFile(obj, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.ChownToPostgres(t, obj)
	dst.Start(t)
	dst.WaitPromoted(t)
	if got := rowIDs(t, dst); got != "1-30" {
		t.Errorf("after repairing the segment: rows %q, want 1-30", got)
	}
}

// TestRecoveryStopsWithoutPassphrase: the passphrase file made unreadable after the
// restore stops recovery; readable again, it completes.
func TestRecoveryStopsWithoutPassphrase(t *testing.T) {
	work := pgtest.TempDir(t)
	repoDir, spool := filepath.Join(work, "repo"), filepath.Join(work, "spool")
	pass := filepath.Join(work, "passphrase")
	if err := os.WriteFile(pass, []byte("s3cret passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.ChownToPostgres(t, pass)
	pgwardPG(t, nil, "init", "--repo", repoDir, "--encrypt", "--passphrase-file", pass)
	settings := archiveSettings(repoDir, spool)
	settings["archive_command"] = fmt.Sprintf("%s archive-push --repo %s --passphrase-file %s --spool-path %s %%p", pgwardBin, repoDir, pass, spool)
	c := pgtest.Start(t, 15, pgtest.Options{Settings: settings})
	c.Exec(t, "postgres", eventsTable)
	pgwardPG(t, nil, "backup", "--repo", repoDir, "--passphrase-file", pass, "--conn", c.ConnString("postgres"), "--checkpoint", "fast")
	threeSegments(t, c)
	c.Stop(t, "immediate")

	target := filepath.Join(work, "restored")
	pgwardPG(t, nil, "restore", "--repo", repoDir, "--passphrase-file", pass, "--pgdata", target)
	if err := os.Chmod(pass, 0); err != nil {
		t.Fatal(err)
	}
	dst := stopsInRecovery(t, 15, target, "passphrase")
	if err := os.Chmod(pass, 0o600); err != nil {
		t.Fatal(err)
	}
	dst.Start(t)
	dst.WaitPromoted(t)
	if got := rowIDs(t, dst); got != "1-30" {
		t.Errorf("with the passphrase readable again: rows %q, want 1-30", got)
	}
}

// listJSONOut is the part of 'list --json' these tests read.
type listJSONOut struct {
	Backups []struct {
		ID string `json:"id"`
	} `json:"backups"`
	Clusters []struct {
		Timelines []struct {
			Timeline uint32 `json:"timeline"`
			Parent   uint32 `json:"parent"`
			ForkLSN  string `json:"fork_lsn"`
			Partial  *struct {
				Segment string `json:"segment"`
				EndLSN  string `json:"end_lsn"`
			} `json:"partial"`
			Gaps []struct {
				First string `json:"first"`
				Count int    `json:"count"`
			} `json:"gaps"`
		} `json:"timelines"`
		Windows []struct {
			Timeline uint32 `json:"timeline"`
			Gap      *struct {
				First string `json:"first"`
			} `json:"gap"`
		} `json:"windows"`
		Damaged []struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		} `json:"damaged"`
	} `json:"clusters"`
}

func listJSON(t *testing.T, env []string, args ...string) listJSONOut {
	t.Helper()
	var out listJSONOut
	r := mustPgward(t, env, append([]string{"list", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	return out
}

// TestArchiveGap: a deleted middle segment shows in list (text and JSON) and makes
// a latest-point restore refuse, naming it; a target before the gap restores
// exactly, and --stop-at-gap recovers up to the gap.
func TestArchiveGap(t *testing.T) {
	a := startEvents(t, 15)
	c := a.c
	insertRows(t, c, 1, 5)
	at := markTime(t, c)
	insertRows(t, c, 6, 10)
	switchAndWait(t, c)
	insertRows(t, c, 11, 20)
	var gap string
	c.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_current_wal_lsn())", &gap)
	switchAndWait(t, c)
	insertRows(t, c, 21, 30)
	switchAndWait(t, c)
	c.Stop(t, "immediate")
	if err := os.Remove(walObject(a.repo, gap)); err != nil {
		t.Fatal(err)
	}

	text := mustPgward(t, nil, "list", "--repo", a.repo).stdout
	if !strings.Contains(text, "GAP: "+gap+" missing") || !strings.Contains(text, "recovery stops there: "+gap+" missing") {
		t.Errorf("list does not show the gap at %s:\n%s", gap, text)
	}
	l := listJSON(t, nil, "--repo", a.repo)
	if len(l.Clusters) != 1 || len(l.Clusters[0].Timelines) != 1 || len(l.Clusters[0].Timelines[0].Gaps) != 1 ||
		l.Clusters[0].Timelines[0].Gaps[0].First != gap || len(l.Clusters[0].Windows) != 1 ||
		l.Clusters[0].Windows[0].Gap == nil || l.Clusters[0].Windows[0].Gap.First != gap {
		t.Errorf("list --json does not carry the gap at %s: %+v", gap, l)
	}

	refused := filepath.Join(a.work, "r-latest")
	failPgward(t, nil, []string{"would stop short", "missing " + gap, "--stop-at-gap"}, "restore", "--repo", a.repo, "--pgdata", refused)
	if _, err := os.Stat(refused); !os.IsNotExist(err) {
		t.Errorf("a refused restore created %s", refused)
	}
	failPgward(t, nil, []string{"cannot be reached", "missing " + gap}, "restore", "--repo", a.repo, "--pgdata", refused,
		"--target-time", time.Now().Add(time.Second).UTC().Format("2006-01-02 15:04:05+00"))

	got, dst := a.restoreAndCount(t, "r-before-gap", nil, "--target-time", at)
	if got != "1-5" {
		t.Errorf("restore to a time before the gap: rows %q, want 1-5", got)
	}
	dst.Stop(t, "immediate")
	got, _ = a.restoreAndCount(t, "r-stop-at-gap", nil, "--stop-at-gap")
	if got != "1-10" {
		t.Errorf("restore --stop-at-gap: rows %q, want 1-10", got)
	}
}

// TestRestoredCopyDoesNotArchive: a restored copy of a cluster whose configuration
// archives into the repository gets archive_mode = off and adds nothing to the
// repository when it promotes and writes; with --archive-mode preserve it archives
// its new timeline.
func TestRestoredCopyDoesNotArchive(t *testing.T) {
	work := pgtest.TempDir(t)
	a := &archiving{repo: filepath.Join(work, "repo"), spool: filepath.Join(work, "spool"), work: work}
	pgwardPG(t, nil, "init", "--repo", a.repo)
	c := pgtest.Start(t, 15, pgtest.Options{})
	a.c = c
	// In the data directory, as in production: the restored copy inherits it.
	for k, v := range archiveSettings(a.repo, a.spool) {
		c.Exec(t, "postgres", fmt.Sprintf("ALTER SYSTEM SET %s = '%s'", k, strings.ReplaceAll(v, "'", "''")))
	}
	c.Restart(t)
	c.Exec(t, "postgres", eventsTable)
	a.backup(t)
	insertRows(t, c, 1, 10)
	switchAndWait(t, c)
	c.Stop(t, "fast")
	before := dirTree(t, filepath.Join(a.repo, "clusters"))

	target := filepath.Join(work, "copy")
	out := pgwardPG(t, nil, "restore", "--repo", a.repo, "--pgdata", target).stdout
	if !strings.Contains(out, "archiving is off in the restored cluster") {
		t.Errorf("restore does not say that archiving is off:\n%s", out)
	}
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	var mode string
	dst.QueryRow(t, "postgres", "SHOW archive_mode", &mode)
	if mode != "off" {
		t.Errorf("restored copy runs with archive_mode %s, want off", mode)
	}
	insertRows(t, dst, 100, 110)
	dst.Exec(t, "postgres", "SELECT pg_switch_wal()")
	dst.Exec(t, "postgres", "CHECKPOINT")
	time.Sleep(2 * time.Second)
	if after := dirTree(t, filepath.Join(a.repo, "clusters")); after != before {
		t.Errorf("the restored copy wrote into the repository:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	dst.Stop(t, "fast")

	got, dr := a.restoreAndCount(t, "dr", nil, "--archive-mode", "preserve")
	if got != "1-10" {
		t.Errorf("restore --archive-mode preserve: rows %q, want 1-10", got)
	}
	dr.QueryRow(t, "postgres", "SHOW archive_mode", &mode)
	if mode != "on" || !walArchived(t, a, "00000002.history") {
		t.Errorf("with --archive-mode preserve the promoted copy should archive its timeline (archive_mode %s)", mode)
	}
}

// TestTimelineForkedBeforeBackup: a copy promoted from an old backup archives its
// timeline 2 into production's repository; production goes on on timeline 1 and
// takes a newer backup. Restoring that backup to the latest point follows timeline 1
// (timeline 2 forked before it) and has production's rows; the old backup follows
// timeline 2, with a warning that timeline 1 has WAL it leaves behind.
func TestTimelineForkedBeforeBackup(t *testing.T) {
	a := startEvents(t, 15)
	c := a.c
	old := firstBackup(t, a)
	insertRows(t, c, 1, 5)
	t1 := markTime(t, c)
	insertRows(t, c, 6, 10)
	switchAndWait(t, c)

	got, cp := a.restoreAndCount(t, "copy", archiveSettings(a.repo, a.spool), "--target-time", t1, "--archive-mode", "preserve")
	if got != "1-5" {
		t.Fatalf("copy restored to t1: rows %q, want 1-5", got)
	}
	insertRows(t, cp, 100, 105)
	switchAndWait(t, cp)
	cp.Stop(t, "fast")
	if !walArchived(t, a, "00000002.history") {
		t.Fatal("the copy's timeline 2 is not in the archive")
	}

	insertRows(t, c, 11, 15)
	a.backup(t)
	insertRows(t, c, 16, 20)
	switchAndWait(t, c)
	c.Stop(t, "immediate")

	got, _ = a.restoreAndCount(t, "latest", nil)
	if got != "1-20" {
		t.Errorf("latest restore of production: rows %q, want 1-20", got)
	}
	text := mustPgward(t, nil, "list", "--repo", a.repo).stdout
	if !strings.Contains(text, "timeline 1:") || !strings.Contains(text, "timeline 2 (forked from timeline 1 at") {
		t.Errorf("list does not show both timelines:\n%s", text)
	}
	l := listJSON(t, nil, "--repo", a.repo)
	if tl := l.Clusters[0].Timelines; len(tl) != 2 || tl[1].Timeline != 2 || tl[1].Parent != 1 || tl[1].ForkLSN == "" {
		t.Errorf("list --json timelines: %+v", tl)
	}

	target := filepath.Join(a.work, "old")
	r := pgwardPG(t, nil, "restore", "--repo", a.repo, "--pgdata", target, "--backup", old)
	if !strings.Contains(r.stderr, "recovering along timeline 2") || !strings.Contains(r.stderr, "timeline 1 also has WAL after") {
		t.Errorf("restore of the old backup should follow timeline 2 and warn about timeline 1:\n%s", r.stderr)
	}
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	if got := rowIDs(t, dst); got != "1-5,100-105" {
		t.Errorf("old backup along timeline 2: rows %q, want 1-5,100-105", got)
	}
}

// TestEnvironmentPassphraseRefused: with the passphrase only in this shell's
// environment the restore_command could not open the repository; restore says so
// in one sentence and writes nothing.
func TestEnvironmentPassphraseRefused(t *testing.T) {
	work := pgtest.TempDir(t)
	repoDir := filepath.Join(work, "repo")
	env := []string{"PGWARD_PASSPHRASE=only in my shell"}
	pgwardPG(t, env, "init", "--repo", repoDir, "--encrypt")
	c := pgtest.Start(t, 15, pgtest.Options{})
	pgwardPG(t, env, "backup", "--repo", repoDir, "--conn", c.ConnString("postgres"), "--checkpoint", "fast")
	target := filepath.Join(work, "restored")
	r := failPgward(t, env, []string{"restore_command fails when PostgreSQL runs it", "no passphrase", "--passphrase-file"},
		"restore", "--repo", repoDir, "--pgdata", target)
	if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n > 1 {
		t.Errorf("want one sentence, got %d lines:\n%s", n+1, r.stderr)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a refused restore left %s behind", target)
	}
}

// TestDamagedManifest: a corrupted newest manifest is listed as damaged beside the
// others, and a default restore uses the previous backup and replays to the latest
// point.
func TestDamagedManifest(t *testing.T) {
	a := startEvents(t, 15)
	c := a.c
	insertRows(t, c, 1, 10)
	newest := a.backup(t)
	insertRows(t, c, 11, 20)
	switchAndWait(t, c)
	c.Stop(t, "immediate")
	damageFile(t, filepath.Join(a.repo, "clusters", "main", "backups", newest))

	text := mustPgward(t, nil, "list", "--repo", a.repo).stdout
	if !strings.Contains(text, "DAMAGED backup "+newest) || strings.Count(text, " main ") < 1 {
		t.Errorf("list does not name the damaged backup %s:\n%s", newest, text)
	}
	l := listJSON(t, nil, "--repo", a.repo)
	if len(l.Backups) != 1 || len(l.Clusters[0].Damaged) != 1 || l.Clusters[0].Damaged[0].ID != newest {
		t.Errorf("list --json: %+v", l)
	}
	target := filepath.Join(a.work, "restored")
	r := pgwardPG(t, nil, "restore", "--repo", a.repo, "--pgdata", target)
	if !strings.Contains(r.stderr, newest+" is damaged") {
		t.Errorf("restore does not warn about the damaged backup:\n%s", r.stderr)
	}
	dst := pgtest.StartDataDir(t, 15, target, nil, true)
	if got := rowIDs(t, dst); got != "1-20" {
		t.Errorf("restore from the previous backup: rows %q, want 1-20", got)
	}
}

// TestTargetTimeAfterLastCommit: the archive's newest segment was written after the
// last commit (a checkpoint and a switch, no transaction). A target time between the
// two cannot be reached by PostgreSQL and is refused up front; one before the last
// commit is reached.
func TestTargetTimeAfterLastCommit(t *testing.T) {
	a := startEvents(t, 15)
	c := a.c
	insertRows(t, c, 1, 5)
	before := markTime(t, c)
	insertRows(t, c, 6, 10)
	after := markTime(t, c)
	c.Exec(t, "postgres", "CHECKPOINT")
	switchAndWait(t, c)
	c.Stop(t, "immediate")

	failPgward(t, nil, []string{"cannot be reached", "last transaction ended at"},
		"restore", "--repo", a.repo, "--pgdata", filepath.Join(a.work, "r-after"), "--target-time", after)
	got, _ := a.restoreAndCount(t, "r-before", nil, "--target-time", before)
	if got != "1-5" {
		t.Errorf("restore to a time before the last commit: rows %q, want 1-5", got)
	}
}
