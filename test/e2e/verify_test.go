package e2e

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/test/pgtest"
)

// verifyOut is the part of 'verify --json' the tests read.
type verifyOut []struct {
	OK     bool `json:"ok"`
	Counts struct {
		Backups        int `json:"backups"`
		Chunks         int `json:"chunks"`
		Objects        int `json:"objects"`
		ObjectsRead    int `json:"objects_read"`
		ObjectsSkipped int `json:"objects_skipped"`
	} `json:"counts"`
	BytesRead int64 `json:"bytes_read"`
	Problems  []struct {
		Object  string   `json:"object"`
		Kind    string   `json:"kind"`
		Backups []string `json:"backups"`
		Error   string   `json:"error"`
	} `json:"problems"`
}

// verifyJSON runs verify --json as the postgres OS user (who owns the repository) and
// checks its exit status: 0 when wantOK, 2 otherwise.
func verifyJSON(t *testing.T, repoDir string, wantOK bool, args ...string) verifyOut {
	t.Helper()
	r := runPgward(t, true, nil, append([]string{"verify", "--json", "--repo", repoDir}, args...)...)
	if (r.code == 0) != wantOK || (r.code != 0 && r.code != 3) {
		t.Fatalf("verify %v: %s", args, r)
	}
	var out verifyOut
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("verify --json: %v\n%s", err, r)
	}
	return out
}

// dataObjects lists the objects of a local repository that verify reads as data (every
// object but the config, manifests, index objects, identities, locks and its own).
func dataObjects(t *testing.T, repoDir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(repoDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return err
		}
		rel, _ := filepath.Rel(repoDir, p)
		parts := strings.Split(rel, "/")
		switch {
		case parts[0] == "chunks" || parts[0] == "packs":
			out[rel] = true
		case parts[0] == "clusters" && len(parts) > 3 && (parts[2] == "wal" || parts[2] == "wal-summary" || parts[2] == "wal-partial" || parts[2] == "pins"):
			out[rel] = true
		case parts[0] == "clusters" && len(parts) == 4 && parts[2] == "wal": // history files
			out[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func firstFile(t *testing.T, dir string) string {
	t.Helper()
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && found == "" && !strings.HasPrefix(d.Name(), ".tmp-") {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no file under %s", dir)
	}
	return found
}

// TestVerify: a format-2 repository with packs, page deltas, WAL and a pin passes
// 'verify --all --read-data'; 'info' shows sizes that add up and the last verify; the
// ledger makes a second '--read-data-subset 0%' read nothing and, after a new backup,
// exactly the new objects; then a flipped byte in every kind of object, a deleted chunk and
// a deleted WAL segment are each found and named (with the backups they hurt), and the
// repository verifies again once repaired.
func TestVerify(t *testing.T) {
	a := startArchiving(t, 15)
	c := a.c
	c.Exec(t, "postgres", eventsTable)
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "2")
	c.Exec(t, "postgres", "CHECKPOINT")
	first := a.backup(t)
	// A whole chunk of the first backup (the later ones add their own, e.g. of their WAL,
	// so the first chunk object by name may not be the first backup's).
	firstChunk := ""
	for o := range dataObjects(t, a.repo) {
		if strings.HasPrefix(o, "chunks/") && (firstChunk == "" || o < firstChunk) {
			firstChunk = o
		}
	}
	if firstChunk == "" {
		t.Fatal("the first backup wrote no whole chunk object")
	}
	firstChunk = filepath.Join(a.repo, firstChunk)
	c.Exec(t, "postgres", "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 1220 = 1")
	c.Exec(t, "postgres", "CHECKPOINT")
	second := a.backup(t)
	pgwardPG(t, nil, "pin", first, "--note", "before the upgrade", "--repo", a.repo)
	segs := threeSegments(t, c)

	if deltas, _ := filepath.Glob(filepath.Join(a.repo, "packs", "*", "*")); len(deltas) == 0 {
		t.Fatal("the repository has no packs")
	}
	full := verifyJSON(t, a.repo, true, "--all", "--read-data")
	if !full[0].OK || full[0].Counts.Backups != 2 || full[0].Counts.ObjectsRead != full[0].Counts.Objects || full[0].BytesRead == 0 {
		t.Fatalf("verify --all --read-data of a sound repository: %+v", full[0])
	}
	t.Logf("verify --all --read-data: %d objects, %d bytes, %d chunks", full[0].Counts.ObjectsRead, full[0].BytesRead, full[0].Counts.Chunks)

	checkInfo(t, a.repo, first, second)

	// Incremental: everything is in the ledger, so nothing is read again.
	again := verifyJSON(t, a.repo, true, "--read-data-subset", "0%")
	if again[0].Counts.ObjectsRead != 0 || again[0].Counts.ObjectsSkipped == 0 {
		t.Fatalf("a second --read-data-subset 0%% read %d objects (skipped %d)", again[0].Counts.ObjectsRead, again[0].Counts.ObjectsSkipped)
	}
	before := dataObjects(t, a.repo)
	c.Exec(t, "postgres", "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 1220 = 2")
	c.Exec(t, "postgres", "CHECKPOINT")
	third := a.backup(t)
	switchAndWait(t, c)
	c.Stop(t, "fast")
	var added []string
	for o := range dataObjects(t, a.repo) {
		if !before[o] {
			added = append(added, o)
		}
	}
	inc := verifyJSON(t, a.repo, true, "--all", "--read-data-subset", "0%")
	if inc[0].Counts.ObjectsRead != len(added) || len(added) == 0 {
		t.Fatalf("after backup %s, --read-data-subset 0%% read %d objects; %d are new: %v", third, inc[0].Counts.ObjectsRead, len(added), added)
	}
	t.Logf("after a new backup the incremental run read %d new objects (%d bytes) and skipped %d", len(added), inc[0].BytesRead, inc[0].Counts.ObjectsSkipped)

	rel := func(p string) string { r, _ := filepath.Rel(a.repo, p); return r }
	type damageCase struct {
		name, kind string
		path       string
		remove     bool
		at         int    // where to flip; 0: the middle
		hurts      string // a backup the problem must name
	}
	mainDir := filepath.Join(a.repo, "clusters", "main")
	cases := []damageCase{
		{name: "whole chunk", kind: "chunk", path: firstChunk, hurts: first},
		{name: "pack entry", kind: "pack-entry", path: firstFile(t, filepath.Join(a.repo, "packs"))},
		{name: "index", kind: "index", path: firstFile(t, filepath.Join(a.repo, "index"))},
		{name: "manifest", kind: "manifest", path: filepath.Join(mainDir, "backups", second), hurts: second},
		// A WAL segment is mostly zeros, which zstd stores as a few bytes of framing, where a
		// flipped bit may change nothing the object decodes to (harmless, and not reported:
		// verify checks content); this flip lands in the first block, the records.
		{name: "WAL segment", kind: "wal", path: walObject(a.repo, segs[0]), at: 120},
		{name: "WAL summary", kind: "wal-summary", path: filepath.Join(mainDir, "wal-summary", segs[0][:16], segs[0])},
		{name: "pin", kind: "pin", path: filepath.Join(mainDir, "pins", first), hurts: first},
		{name: "deleted chunk", kind: "missing-chunk", path: firstChunk, remove: true, hurts: first},
		{name: "deleted WAL segment", kind: "wal-gap", path: walObject(a.repo, segs[1]), remove: true},
	}
	for _, d := range cases {
		saved, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case d.remove:
			os.Remove(d.path)
		case d.at > 0:
			bad := append([]byte(nil), saved...)
			damage(bad, d.at)
			os.WriteFile(d.path, bad, 0o600)
		default:
			damageFile(t, d.path)
		}
		r := runPgward(t, true, nil, "verify", "--all", "--read-data", "--repo", a.repo)
		if r.code != 3 || !strings.Contains(r.stderr, "verify found") {
			t.Errorf("%s: verify exits %d: %s", d.name, r.code, r)
		}
		line := ""
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.Contains(l, "PROBLEM "+d.kind+" "+rel(d.path)) {
				line = l
			}
		}
		if line == "" || (d.hurts != "" && !strings.Contains(line, "main/"+d.hurts)) {
			t.Errorf("%s: no problem line names %s %s (and backup %q):\n%s", d.name, d.kind, rel(d.path), d.hurts, r.stdout)
		} else {
			t.Logf("%s: %s", d.name, line)
		}
		if d.remove && d.kind == "missing-chunk" {
			// The structure check alone finds it.
			if s := verifyJSON(t, a.repo, false); len(s[0].Problems) == 0 {
				t.Errorf("verify without --read-data passed with chunk %s deleted", rel(d.path))
			}
		}
		if err := os.WriteFile(d.path, saved, 0o600); err != nil {
			t.Fatal(err)
		}
		pgtest.ChownToPostgres(t, d.path)
	}
	if ok := verifyJSON(t, a.repo, true, "--all", "--read-data"); !ok[0].OK {
		t.Fatalf("the repaired repository does not verify: %+v", ok[0].Problems)
	}
}

// checkInfo reads 'info --json' and checks that the sizes add up, the pin and the last
// verify show.
func checkInfo(t *testing.T, repoDir, first, second string) {
	t.Helper()
	var out []struct {
		Format            int    `json:"format"`
		Encryption        string `json:"encryption"`
		ContentBytes      int64  `json:"content_bytes"`
		UnreferencedBytes int64  `json:"unreferenced_bytes"`
		LastVerify        *struct {
			OK   bool   `json:"ok"`
			Mode string `json:"mode"`
		} `json:"last_verify"`
		Clusters []struct {
			Cluster         string  `json:"cluster"`
			DBBytes         int64   `json:"db_bytes"`
			ReferencedBytes int64   `json:"referenced_bytes"`
			UniqueBytes     int64   `json:"unique_bytes"`
			DedupRatio      float64 `json:"dedup_ratio"`
			Windows         []any   `json:"windows"`
			Backups         []struct {
				ID              string `json:"id"`
				DBBytes         int64  `json:"db_bytes"`
				ReferencedBytes int64  `json:"referenced_bytes"`
				UniqueBytes     int64  `json:"unique_bytes"`
				Pinned          bool   `json:"pinned"`
				PinNote         string `json:"pin_note"`
			} `json:"backups"`
		} `json:"clusters"`
	}
	r := mustPgward(t, nil, "info", "--json", "--repo", repoDir)
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 || len(out[0].Clusters) != 1 {
		t.Fatalf("info --json: %v\n%s", err, r.stdout)
	}
	rep, c := out[0], out[0].Clusters[0]
	if rep.Format != 2 || rep.Encryption != "none" || rep.LastVerify == nil || !rep.LastVerify.OK || rep.LastVerify.Mode != "read-data" {
		t.Errorf("info: format %d, encryption %s, last verify %+v", rep.Format, rep.Encryption, rep.LastVerify)
	}
	if len(c.Backups) != 2 || c.Backups[0].ID != first || c.Backups[1].ID != second || len(c.Windows) == 0 {
		t.Fatalf("info: cluster %+v", c)
	}
	var unique int64
	for _, b := range c.Backups {
		if b.UniqueBytes <= 0 || b.UniqueBytes > b.ReferencedBytes || b.ReferencedBytes > c.ReferencedBytes {
			t.Errorf("info: backup %s needs %d bytes, %d of them alone (cluster %d)", b.ID, b.ReferencedBytes, b.UniqueBytes, c.ReferencedBytes)
		}
		unique += b.UniqueBytes
	}
	// The second backup stores its changes as page deltas over the first's chunks, which it
	// therefore needs too: what both need is most of the cluster's stored bytes, and what
	// only the second needs about what it added.
	if unique != c.UniqueBytes || c.ReferencedBytes-unique < c.ReferencedBytes/2 || c.DedupRatio <= 1 || rep.UnreferencedBytes != 0 {
		t.Errorf("info: unique %d+%d=%d (cluster %d), referenced %d, dedup %.2f, unreferenced %d", c.Backups[0].UniqueBytes, c.Backups[1].UniqueBytes,
			unique, c.UniqueBytes, c.ReferencedBytes, c.DedupRatio, rep.UnreferencedBytes)
	}
	if !c.Backups[0].Pinned || c.Backups[0].PinNote != "before the upgrade" || c.Backups[1].Pinned {
		t.Errorf("info: pins %+v", c.Backups)
	}
	t.Logf("info: %s", mustPgward(t, nil, "info", "--repo", repoDir).stdout)
}
