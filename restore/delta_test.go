package restore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
)

const testChunk = 64 << 10

// fakeBackup stores files (path → content; "dir/" ends directories, "->x" is a
// link to x) as a backup of the cluster with system identifier sysid.
func fakeBackup(t *testing.T, sysid uint64, files map[string]string, dbs ...repo.Database) (*repo.Repo, *repo.Manifest) {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Init(ctx, storagetest.NewMemory(), repo.InitOptions{ChunkSize: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	control := make([]byte, 8192)
	binary.LittleEndian.PutUint64(control, sysid)
	binary.LittleEndian.PutUint32(control[8:], 1300)
	files["global/"] = ""
	files[pgControl] = string(control)
	m := &repo.Manifest{ID: "20260101T000000Z", Cluster: "main", SystemIdentifier: fmt.Sprint(sysid), ChunkSize: testChunk, Databases: dbs}
	for p, c := range files {
		if oid, ok := tablespaceLink(p); ok {
			m.Tablespaces = append(m.Tablespaces, repo.Tablespace{OID: oid, Location: c[2:]})
		}
	}
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var bufs repo.ChunkBuffers
	for _, p := range sortedKeys(files) {
		content := files[p]
		switch {
		case strings.HasSuffix(p, "/"):
			m.Files = append(m.Files, repo.File{Path: strings.TrimSuffix(p, "/"), Type: repo.TypeDir, Mode: 0o700, MTime: mtime})
		case strings.HasPrefix(content, "->"):
			m.Files = append(m.Files, repo.File{Path: p, Type: repo.TypeSymlink, Mode: 0o777, Target: content[2:], MTime: mtime})
		default:
			f := repo.File{Path: p, Type: repo.TypeFile, Mode: 0o600, MTime: mtime, Size: int64(len(content))}
			for off := 0; off < len(content); off += testChunk {
				plain := []byte(content[off:min(off+testChunk, len(content))])
				id := r.ContentHash(plain)
				if _, err := r.PutChunk(ctx, id, plain, nil, &bufs); err != nil {
					t.Fatal(err)
				}
				f.Chunks = append(f.Chunks, id)
			}
			m.Files = append(m.Files, f)
		}
	}
	if err := r.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return r, m
}

// sortedKeys orders paths so that parents come first (as in a tar stream).
func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if strings.TrimSuffix(out[j], "/") < strings.TrimSuffix(out[i], "/") {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func restoreInto(t *testing.T, r *repo.Repo, dir string, o Options) (*Result, error) {
	t.Helper()
	o.Cluster, o.PGData, o.Jobs, o.UID, o.GID = "main", dir, 2, -1, -1
	return Run(context.Background(), []*repo.Repo{r}, o)
}

// tree lists a directory: path, and content or link target.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(&b, "%s -> %s\n", rel, l)
		case fi.Mode().IsRegular():
			c, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "%s %v %x\n", rel, fi.Mode().Perm(), c)
		default:
			fmt.Fprintf(&b, "%s/\n", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestDeltaRestore(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4*testChunk/16) // 4 chunks
	r, _ := fakeBackup(t, 42, map[string]string{
		"base/":                "",
		"base/1/":              "",
		"base/1/1259":          string(big),
		"base/1/2600":          "small",
		"PG_VERSION":           "15\n",
		"pg_wal/":              "",
		"link":                 "->elsewhere",
		"postgresql.auto.conf": "# auto\n",
	})
	dir := filepath.Join(t.TempDir(), "data")
	full, err := restoreInto(t, r, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := tree(t, dir)

	// Change one chunk of the big file, truncate the small one, add stale
	// entries, repoint the link, drop a file, and leave a stale postmaster.pid.
	f, _ := os.OpenFile(filepath.Join(dir, "base/1/1259"), os.O_RDWR, 0)
	f.WriteAt([]byte("changed"), 2*testChunk+100)
	f.Close()
	os.WriteFile(filepath.Join(dir, "base/1/2600"), []byte("sm"), 0o644)
	os.WriteFile(filepath.Join(dir, "pg_wal/000000010000000000000009"), []byte("old wal"), 0o600)
	os.MkdirAll(filepath.Join(dir, "base/16384/sub"), 0o700)
	os.Remove(filepath.Join(dir, "link"))
	os.Symlink("other", filepath.Join(dir, "link"))
	os.Remove(filepath.Join(dir, "PG_VERSION"))
	os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte("999999999\n"), 0o600)
	// WAL on another disk: the link stays, what is behind it is cleaned.
	walDir := filepath.Join(t.TempDir(), "wal")
	os.Rename(filepath.Join(dir, "pg_wal"), walDir)
	os.Symlink(walDir, filepath.Join(dir, "pg_wal"))

	res, err := restoreInto(t, r, dir, Options{Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "pg_wal")); err != nil || l != walDir {
		t.Fatalf("pg_wal link: %q %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(walDir, "000000010000000000000009")); !os.IsNotExist(err) {
		t.Fatalf("stale WAL behind the pg_wal link kept: %v", err)
	}
	os.Remove(filepath.Join(dir, "pg_wal"))
	os.Rename(walDir, filepath.Join(dir, "pg_wal"))
	if got := tree(t, dir); got != want {
		t.Fatalf("after delta restore:\n%s\nwant:\n%s", got, want)
	}
	// One chunk of the big file, the small file, PG_VERSION, pg_control.
	wantWritten := int64(testChunk + len("small") + len("15\n") + 8192)
	if !res.Delta || res.Written != wantWritten {
		t.Errorf("delta restore wrote %d bytes (delta %v), want %d; full restore wrote %d", res.Written, res.Delta, wantWritten, full.Written)
	}
	if res.Removed != 4 { // the WAL file, base/16384, the old link, postmaster.pid
		t.Errorf("removed %d entries, want 4", res.Removed)
	}
	if _, err := os.Stat(filepath.Join(dir, deltaMarker)); !os.IsNotExist(err) {
		t.Errorf("marker left behind: %v", err)
	}

	// size-time keeps files whose size and time match without reading them.
	res, err = restoreInto(t, r, dir, Options{Delta: true, DeltaCheck: DeltaSizeTime})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 8192 || res.Kept != full.Written-8192 {
		t.Errorf("size-time delta on an unchanged directory: wrote %d, kept %d; want 8192 (pg_control), %d", res.Written, res.Kept, full.Written-8192)
	}
}

func TestDeltaRefusals(t *testing.T) {
	r, _ := fakeBackup(t, 42, map[string]string{"PG_VERSION": "15\n"})
	other, _ := fakeBackup(t, 43, map[string]string{"PG_VERSION": "15\n"})
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := restoreInto(t, other, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	_, err := restoreInto(t, r, dir, Options{Delta: true})
	if err == nil || !strings.Contains(err.Error(), "system identifier 43") || !strings.Contains(err.Error(), "same cluster") {
		t.Fatalf("delta into another cluster: %v", err)
	}
	// A running server: postmaster.pid names this very process.
	sameDir := filepath.Join(t.TempDir(), "data")
	if _, err := restoreInto(t, r, sameDir, Options{}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sameDir, "postmaster.pid"), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o600)
	if _, err := restoreInto(t, r, sameDir, Options{Delta: true}); err == nil || !strings.Contains(err.Error(), "server is running") {
		t.Fatalf("delta over a running server: %v", err)
	}
	// Not a cluster at all.
	junk := t.TempDir()
	os.WriteFile(filepath.Join(junk, "x"), []byte("x"), 0o600)
	if _, err := restoreInto(t, r, junk, Options{Delta: true}); err == nil || !strings.Contains(err.Error(), "no PostgreSQL cluster") {
		t.Fatalf("delta into a directory without a cluster: %v", err)
	}
	if tree(t, dir) != before {
		t.Error("a refused delta restore changed the directory")
	}
	// Without --delta a non-empty directory is refused and the error names --delta.
	if _, err := restoreInto(t, r, sameDir, Options{}); err == nil || !strings.Contains(err.Error(), "--delta") {
		t.Fatalf("restore into a non-empty directory: %v", err)
	}
}

func TestDBInclude(t *testing.T) {
	r, m := fakeBackup(t, 42, map[string]string{
		"base/":                      "",
		"base/5/":                    "",
		"base/5/1259":                "system db",
		"base/16384/":                "",
		"base/16384/PG_VERSION":      "15\n",
		"base/16384/16385":           "keep me",
		"base/16400/":                "",
		"base/16400/PG_VERSION":      "15\n",
		"base/16400/16401":           "drop me",
		"base/16400/16401_fsm":       "fsm",
		"base/16400/pg_filenode.map": "map",
	}, repo.Database{OID: 5, Name: "postgres"}, repo.Database{OID: 16384, Name: "app"}, repo.Database{OID: 16400, Name: "other"})
	dir := filepath.Join(t.TempDir(), "data")
	res, err := restoreInto(t, r, dir, Options{DBInclude: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string { b, _ := os.ReadFile(filepath.Join(dir, p)); return string(b) }
	if read("base/16384/16385") != "keep me" || read("base/5/1259") != "system db" || read("base/16400/PG_VERSION") != "15\n" || read("base/16400/pg_filenode.map") != "map" {
		t.Error("an included database, a system database or a non-relation file was not restored")
	}
	if read("base/16400/16401") != string(make([]byte, 7)) || read("base/16400/16401_fsm") != string(make([]byte, 3)) {
		t.Error("a relation file of an excluded database was not written empty")
	}
	if res.Zeroed != 10 {
		t.Errorf("zeroed %d bytes, want 10", res.Zeroed)
	}
	_, err = restoreInto(t, r, filepath.Join(t.TempDir(), "d"), Options{DBInclude: []string{"nosuch"}})
	if err == nil || !strings.Contains(err.Error(), "app, other, postgres") {
		t.Errorf("unknown database: %v", err)
	}
	// Without recorded names, OIDs work.
	if ex, err := selectDatabases(&repo.Manifest{Files: m.Files}, []string{"16384"}); err != nil || !ex[16400] || ex[16384] || ex[5] {
		t.Errorf("by OID: %v %v", ex, err)
	}
}

// TestDeltaTablespace: the cluster's own tablespace is rewritten in place (a
// stale file in the backup's version directory goes, another major's directory
// stays); a non-empty tablespace directory the data directory does not link to
// is refused.
func TestDeltaTablespace(t *testing.T) {
	base := t.TempDir()
	ts := filepath.Join(base, "ts")
	r, _ := fakeBackup(t, 42, map[string]string{
		"pg_tblspc/":                         "",
		"pg_tblspc/16385":                    "->" + ts,
		"pg_tblspc/16385/PG_15_1/":           "",
		"pg_tblspc/16385/PG_15_1/5/":         "",
		"pg_tblspc/16385/PG_15_1/5/16386":    "tablespace data",
		"pg_tblspc/16385/PG_15_1/5/16386_vm": "vm",
	})
	dir := filepath.Join(base, "data")
	mustRun := func(o Options) *Result {
		t.Helper()
		res, err := restoreInto(t, r, dir, o)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	mustRun(Options{})
	os.WriteFile(filepath.Join(ts, "PG_15_1/5/16386"), []byte("tablespace DATA"), 0o600)
	os.WriteFile(filepath.Join(ts, "PG_15_1/5/99999"), []byte("stale"), 0o600)
	os.MkdirAll(filepath.Join(ts, "PG_16_2"), 0o700)
	res := mustRun(Options{Delta: true})
	if b, _ := os.ReadFile(filepath.Join(ts, "PG_15_1/5/16386")); string(b) != "tablespace data" {
		t.Errorf("tablespace file not rewritten: %q", b)
	}
	if _, err := os.Stat(filepath.Join(ts, "PG_15_1/5/99999")); !os.IsNotExist(err) {
		t.Error("stale tablespace file kept")
	}
	if _, err := os.Stat(filepath.Join(ts, "PG_16_2")); err != nil {
		t.Error("another major's tablespace directory removed")
	}
	if res.Written != int64(len("tablespace data")+8192) {
		t.Errorf("wrote %d bytes", res.Written)
	}

	// Moved elsewhere: a non-empty directory the cluster does not link to is refused.
	other := filepath.Join(base, "other")
	os.MkdirAll(other, 0o700)
	os.WriteFile(filepath.Join(other, "x"), nil, 0o600)
	_, err := restoreInto(t, r, dir, Options{Delta: true, TablespaceMap: map[uint32]string{16385: other}})
	if err == nil || !strings.Contains(err.Error(), "not the tablespace the data directory links to") {
		t.Fatalf("delta into a foreign tablespace directory: %v", err)
	}
	// Into an empty one it moves.
	moved := filepath.Join(base, "moved")
	mustRun(Options{Delta: true, TablespaceMap: map[uint32]string{16385: moved}})
	if l, _ := os.Readlink(filepath.Join(dir, "pg_tblspc/16385")); l != moved {
		t.Errorf("link points to %q, want %q", l, moved)
	}
	if b, _ := os.ReadFile(filepath.Join(moved, "PG_15_1/5/16386_vm")); string(b) != "vm" {
		t.Errorf("moved tablespace: %q", b)
	}
}
