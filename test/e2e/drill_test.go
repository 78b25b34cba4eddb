package e2e

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/local"
	"github.com/pgward/pgward/test/pgtest"
)

// drillJSON is 'drill --json'.
type drillJSON struct {
	Backup   string  `json:"backup"`
	Target   string  `json:"target"`
	OK       bool    `json:"ok"`
	Error    string  `json:"error"`
	RTO      float64 `json:"rto_seconds"`
	Restore  float64 `json:"restore_seconds"`
	Replay   float64 `json:"replay_seconds"`
	Accept   float64 `json:"accept_seconds"`
	WALBytes int64   `json:"wal_bytes_replayed"`
	Checks   struct {
		Databases int   `json:"databases"`
		Tables    int   `json:"tables"`
		Rows      int64 `json:"rows"`
		Amcheck   bool  `json:"amcheck"`
		Indexes   int   `json:"indexes_checked"`
	} `json:"checks"`
}

func runDrill(t *testing.T, a *archiving, major int, args ...string) (drillJSON, result) {
	t.Helper()
	r := pgward(t, nil, append([]string{"drill", "--json", "--repo", a.repo, "--pg-bin", pgtest.BinDir(t, major), "--scratch-dir", a.work}, args...)...)
	var d drillJSON
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("drill --json: %v\n%s", err, r)
	}
	return d, r
}

// TestDrill: a drill restores the latest backup, replays the archived WAL, promotes and
// reads every table; its RTO parts add up to the total; a drill to a random point works;
// a drill of a backup with a corrupt chunk fails, is recorded as failed, and leaves no
// scratch directory or server behind.
func TestDrill(t *testing.T) {
	a := startEvents(t, 15)
	c := a.c
	c.Pgbench(t, "postgres", "-i", "-q", "-s", "2")
	insertRows(t, c, 1, 20)
	a.backup(t)
	insertRows(t, c, 21, 40)
	c.Pgbench(t, "postgres", "-n", "-t", "200")
	switchAndWait(t, c)

	d, r := runDrill(t, a, 15)
	if r.code != 0 || !d.OK {
		t.Fatalf("drill failed: %s", r)
	}
	sum := d.Restore + d.Replay + d.Accept
	if d.RTO <= 0 || math.Abs(sum-d.RTO) > 0.05*d.RTO {
		t.Errorf("RTO %.3f s, its parts add up to %.3f s", d.RTO, sum)
	}
	if d.WALBytes <= 0 || d.Checks.Databases < 2 || d.Checks.Tables < 5 || d.Checks.Rows < 200000 {
		t.Errorf("drill checked too little: %+v", d)
	}
	t.Logf("drill: RTO %.2f s = restore %.2f + replay %.2f (%d bytes) + accept %.3f; %+v", d.RTO, d.Restore, d.Replay, d.WALBytes, d.Accept, d.Checks)

	rd, r := runDrill(t, a, 15, "--target-time", "random")
	if r.code != 0 || !rd.OK || rd.Target == "" {
		t.Fatalf("drill to a random point: %s", r)
	}

	// A corrupt chunk of the backup: the drill fails, says which object, and is recorded.
	chunk := largestChunk(t, a.repo)
	saved := damageFile(t, chunk)
	defer os.WriteFile(chunk, saved, 0o600)
	bad, r := runDrill(t, a, 15)
	if r.code == 0 || bad.OK || !strings.Contains(bad.Error, "corrupted object") {
		t.Fatalf("drill of a corrupt backup: %s", r)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(a.work, "pgward-drill-*")); len(leftovers) != 0 {
		t.Errorf("scratch directories left behind: %v", leftovers)
	}
	records := drillRecords(t, a.repo)
	if len(records) != 3 || records[0].OK || !records[1].OK || !records[2].OK || records[0].Error == "" {
		t.Fatalf("drill records %+v; want 3, the newest failed", records)
	}
}

// drillRecords reads the drill records of cluster main, newest first.
func drillRecords(t *testing.T, repoDir string) []repo.DrillRecord {
	t.Helper()
	st, err := local.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := r.DrillRecords(t.Context(), "main", 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
