package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/test/pgtest"
)

// completedSegments makes the cluster finish n segments and returns their paths
// in pg_wal.
func completedSegments(t *testing.T, c *pgtest.Cluster, n int) []string {
	t.Helper()
	c.Exec(t, "postgres", "CREATE TABLE IF NOT EXISTS filler (v text)")
	var out []string
	for i := 0; i < n; i++ {
		c.Exec(t, "postgres", "INSERT INTO filler SELECT md5(g::text) FROM generate_series(1, 1000) g")
		var seg string
		c.QueryRow(t, "postgres", "SELECT pg_walfile_name(pg_switch_wal())", &seg)
		out = append(out, filepath.Join(c.DataDir, "pg_wal", seg))
	}
	return out
}

// TestArchivePushGet: idempotent push, loud conflicts that change nothing,
// refusal of other clusters' and non-WAL files, exact round trips, quiet
// "not found", and a named error for a corrupt object.
func TestArchivePushGet(t *testing.T) {
	work := pgtest.TempDir(t)
	c := pgtest.Start(t, 15, pgtest.Options{})
	other := pgtest.Start(t, 15, pgtest.Options{})
	repoDir := filepath.Join(work, "repo")
	mustPgward(t, nil, "init", "--repo", repoDir)
	segs := completedSegments(t, c, 3)
	seg := segs[0]
	name := filepath.Base(seg)
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	push := func(path string, extra ...string) result {
		return pgward(t, nil, append([]string{"archive-push", "--repo", repoDir, "--spool-path", "off", path}, extra...)...)
	}

	if r := push(seg); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	if r := push(seg); r.code != 0 {
		t.Fatalf("identical re-push must succeed: %s", r)
	}
	// Different bytes under the same name: refused, stored copy unchanged.
	alt := filepath.Join(work, "alt")
	os.Mkdir(alt, 0o700)
	changed := append([]byte{}, orig...)
	changed[len(changed)/2] ^= 0xff
	os.WriteFile(filepath.Join(alt, name), changed, 0o600)
	if r := push(filepath.Join(alt, name)); r.code == 0 || !strings.Contains(r.stderr, "different file is already archived") {
		t.Fatalf("conflicting push: %s", r)
	}
	got := filepath.Join(work, "got")
	mustPgward(t, nil, "archive-get", "--repo", repoDir, "--spool-path", "off", name, got)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, orig) {
		t.Fatal("archive-get did not return the originally archived bytes")
	}

	// Another cluster's segment under this cluster's name.
	oseg := completedSegments(t, other, 1)[0]
	if r := push(oseg); r.code == 0 || !strings.Contains(r.stderr, "system identifier") {
		t.Fatalf("other cluster's segment: %s", r)
	}
	// Truncated, not WAL, and not a WAL name.
	os.WriteFile(filepath.Join(alt, filepath.Base(segs[1])), orig[:8192], 0o600)
	if r := push(filepath.Join(alt, filepath.Base(segs[1]))); r.code == 0 {
		t.Fatalf("truncated segment accepted: %s", r)
	}
	junk := bytes.Repeat([]byte("not wal "), len(orig)/8)
	os.WriteFile(filepath.Join(alt, filepath.Base(segs[2])), junk, 0o600)
	if r := push(filepath.Join(alt, filepath.Base(segs[2]))); r.code == 0 {
		t.Fatalf("junk accepted: %s", r)
	}
	os.WriteFile(filepath.Join(alt, "notes.txt"), []byte("hello"), 0o600)
	if r := push(filepath.Join(alt, "notes.txt")); r.code == 0 || !strings.Contains(r.stderr, "WAL") {
		t.Fatalf("non-WAL file accepted: %s", r)
	}
	// A missing repository: non-zero, nothing created.
	if r := pgward(t, nil, "archive-push", "--repo", filepath.Join(work, "gone"), seg); r.code == 0 {
		t.Fatalf("push to a missing repository succeeded: %s", r)
	}

	// Missing file: exit 1, quietly.
	r := pgward(t, nil, "archive-get", "--repo", repoDir, "--spool-path", "off", "0000000100000000000000FF", filepath.Join(work, "nope"))
	if r.code != 1 || r.stderr != "" {
		t.Fatalf("missing segment: want exit 1 and no output, got %s", r)
	}
	if _, err := os.Stat(filepath.Join(work, "nope")); !os.IsNotExist(err) {
		t.Fatal("archive-get of a missing segment created the destination")
	}
	objectOf := func(name string) string {
		var obj string
		filepath.Walk(filepath.Join(repoDir, "clusters", "main", "wal"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && filepath.Base(p) == name {
				obj = p
			}
			return nil
		})
		return obj
	}
	// A sound object under another segment's name (a storage mix-up): its
	// page address gives it away; PostgreSQL would take it for the end of WAL.
	if r := push(segs[1]); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	swapped := objectOf(filepath.Base(segs[1]))
	b, _ := os.ReadFile(objectOf(name))
	os.Chmod(swapped, 0o600)
	os.WriteFile(swapped, b, 0o600)
	r = pgward(t, nil, "archive-get", "--repo", repoDir, "--spool-path", "off", filepath.Base(segs[1]), filepath.Join(work, "swapped"))
	if r.code == 0 || r.code == 1 || !strings.Contains(r.stderr, "corrupted") || !strings.Contains(r.stderr, "its header says the segment starts at") {
		t.Fatalf("segment under another segment's name: %s", r)
	}
	if _, err := os.Stat(filepath.Join(work, "swapped")); !os.IsNotExist(err) {
		t.Fatal("archive-get of a misplaced segment wrote the destination")
	}

	// Corrupt object: non-zero, names it, destination not written.
	obj := objectOf(name)
	b, _ = os.ReadFile(obj)
	damage(b, len(b)-100)
	os.WriteFile(obj, b, 0o600)
	r = pgward(t, nil, "archive-get", "--repo", repoDir, "--spool-path", "off", name, filepath.Join(work, "bad"))
	if r.code == 0 || r.code == 1 || !strings.Contains(r.stderr, name) || !strings.Contains(r.stderr, "corrupted") {
		t.Fatalf("corrupt object: %s", r)
	}
	if _, err := os.Stat(filepath.Join(work, "bad")); !os.IsNotExist(err) {
		t.Fatal("archive-get of a corrupt object wrote the destination")
	}
}

// TestArchiveEncrypted: a wrong passphrase in archive-get is an error, not
// "not found".
func TestArchiveEncrypted(t *testing.T) {
	work := pgtest.TempDir(t)
	c := pgtest.Start(t, 15, pgtest.Options{})
	repoDir := filepath.Join(work, "repo")
	good := []string{"PGWARD_PASSPHRASE=right"}
	mustPgward(t, good, "init", "--repo", repoDir, "--encrypt")
	seg := completedSegments(t, c, 1)[0]
	mustPgward(t, good, "archive-push", "--repo", repoDir, seg)
	failPgward(t, []string{"PGWARD_PASSPHRASE=wrong"}, []string{"wrong passphrase"}, "archive-get", "--repo", repoDir, filepath.Base(seg), filepath.Join(work, "x"))
	mustPgward(t, good, "archive-get", "--repo", repoDir, "--spool-path", "off", filepath.Base(seg), filepath.Join(work, "x"))
}

// TestPushAheadAndPrefetch: with several segments ready, one archive-push call
// archives the next ones too, and the following calls find them done; a
// prefetching archive-get serves later segments from the spool.
func TestPushAheadAndPrefetch(t *testing.T) {
	work := pgtest.TempDir(t)
	repoDir := filepath.Join(work, "repo")
	pgwardPG(t, nil, "init", "--repo", repoDir)
	// archive_command fails, so segments pile up as .ready.
	c := pgtest.Start(t, 15, pgtest.Options{Settings: map[string]string{"archive_mode": "on", "archive_command": "false"}})
	segs := completedSegments(t, c, 5)
	spool := filepath.Join(work, "spool")
	pgwardPG(t, nil, "archive-push", "--repo", repoDir, "--spool-path", spool, "--push-ahead", "4", segs[0])
	for _, s := range segs {
		r := pgward(t, nil, "archive-get", "--repo", repoDir, "--spool-path", "off", filepath.Base(s), filepath.Join(work, "probe"))
		if r.code != 0 {
			t.Fatalf("%s not archived by push-ahead: %s", filepath.Base(s), r)
		}
	}
	r := runPgward(t, true, nil, "archive-push", "--repo", repoDir, "--spool-path", spool, "--log-level", "debug", segs[1])
	if r.code != 0 || !strings.Contains(r.stderr, "already pushed ahead") {
		t.Fatalf("second push did not use the push-ahead marker: %s", r)
	}

	// Prefetch: the first get starts a background fetch of the following segments.
	gspool := filepath.Join(work, "gspool")
	dest := filepath.Join(work, "dest")
	os.Mkdir(dest, 0o700)
	pgtest.ChownToPostgres(t, dest)
	pgwardPG(t, nil, "archive-get", "--repo", repoDir, "--spool-path", gspool, filepath.Base(segs[0]), filepath.Join(dest, "first"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := runPgward(t, true, nil, "archive-get", "--repo", repoDir, "--spool-path", gspool, "--log-level", "debug", filepath.Base(segs[3]), filepath.Join(dest, "fourth"))
		if r.code != 0 {
			t.Fatalf("get: %s", r)
		}
		if fromSpool(t, gspool) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("prefetcher never filled the spool")
		}
		time.Sleep(100 * time.Millisecond)
	}
	want, _ := os.ReadFile(segs[3])
	if got, _ := os.ReadFile(filepath.Join(dest, "fourth")); !bytes.Equal(got, want) {
		t.Fatal("segment served from the spool differs from the original")
	}
}

// fromSpool reports whether the spool holds prefetched segments.
func fromSpool(t *testing.T, spool string) bool {
	found := false
	filepath.Walk(spool, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && len(fi.Name()) == 24 && strings.Contains(p, string(filepath.Separator)+"get"+string(filepath.Separator)) {
			found = true
		}
		return nil
	})
	return found
}
