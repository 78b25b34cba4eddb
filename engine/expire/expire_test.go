package expire_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pgward/pgward/engine/expire"
	"github.com/pgward/pgward/engine/retention"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
	"github.com/pgward/pgward/wal"
)

const segSize = 16 << 20

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// fixture is a repository with manifests whose times lie in the past and a WAL archive of
// plain objects (expire judges WAL by name only).
type fixture struct {
	t   *testing.T
	r   *repo.Repo
	mem *storagetest.Memory
}

func newFixture(t *testing.T) *fixture {
	mem := storagetest.NewMemory()
	r, err := repo.Init(t.Context(), mem, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureIdentity(t.Context(), repo.Identity{Cluster: "main", SystemIdentifier: "1", PGMajor: 15, WALSegSize: segSize}); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, r: r, mem: mem}
}

// backup commits a manifest that stopped at stop and spans segments [seg, seg+1].
func (f *fixture) backup(stop time.Time, seg uint64) string {
	id := stop.UTC().Format("20060102T150405Z")
	m := &repo.Manifest{ID: id, Cluster: "main", Timeline: 1, StartTime: stop.Add(-time.Minute), StopTime: stop,
		StartLSN: wal.FormatLSN(seg*segSize + 40), StopLSN: wal.FormatLSN((seg+1)*segSize + 100)}
	if err := f.r.PutManifest(f.t.Context(), m); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) put(name string) {
	if err := f.mem.Put(f.t.Context(), name, bytes.NewReader([]byte("x")), 1); err != nil {
		f.t.Fatal(err)
	}
}

// segments archives segments [from, to] of timeline 1 with summaries.
func (f *fixture) segments(from, to uint64) {
	for s := from; s <= to; s++ {
		name := wal.SegmentName(1, s, segSize)
		f.put(repo.WALObjectName("main", name))
		f.put(fmt.Sprintf("clusters/main/wal-summary/%s/%s", name[:16], name))
	}
}

func (f *fixture) walLeft() []string {
	var names []string
	f.r.ListWALObjects(f.t.Context(), "main", func(o repo.WALObject) error {
		if o.Area == repo.WALFile {
			names = append(names, o.File)
		}
		return nil
	})
	return names
}

func (f *fixture) run(p retention.Policy, dry bool) *expire.Result {
	f.t.Helper()
	res, err := expire.Run(f.t.Context(), f.r, expire.Options{Cluster: "main", Policy: p, DryRun: dry, Now: now, Location: time.UTC})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

const day = 24 * time.Hour

// A window whose start falls between two backups keeps the older one as its base, and the
// WAL from that backup's start; everything before goes, history files stay.
func TestWindowBoundary(t *testing.T) {
	f := newFixture(t)
	var ids []string
	for i, age := range []time.Duration{40 * day, 30 * day, 20 * day, 10 * day, day} {
		ids = append(ids, f.backup(now.Add(-age), uint64(10+10*i)))
	}
	f.segments(5, 60)
	f.put(repo.WALObjectName("main", "00000002.history"))
	f.put(repo.WALObjectName("main", wal.SegmentName(1, 11, segSize)+".00000028.backup"))
	f.put(repo.WALObjectName("main", wal.SegmentName(1, 30, segSize)+".00000028.backup"))

	dry := f.run(retention.Policy{Within: 15 * day}, true)
	if !slices.Equal(dry.Expired, ids[:2]) {
		t.Fatalf("dry run expires %v, want %v", dry.Expired, ids[:2])
	}
	if left := f.walLeft(); len(left) != 56+3 {
		t.Fatalf("the dry run removed WAL: %d files left", len(left))
	}
	res := f.run(retention.Policy{Within: 15 * day}, false)
	if !slices.Equal(res.Expired, ids[:2]) {
		t.Fatalf("expired %v, want %v (the backup 20 days old is the base of a 15-day window)", res.Expired, ids[:2])
	}
	if want := wal.SegmentName(1, 30, segSize); res.WAL.KeptFrom != want {
		t.Fatalf("WAL kept from %s, want %s", res.WAL.KeptFrom, want)
	}
	left := f.walLeft()
	if left[0] != "00000002.history" && !slices.Contains(left, "00000002.history") {
		t.Fatalf("the history file went: %v", left)
	}
	for _, name := range left {
		n, _ := wal.ParseName(name)
		if n.Kind != wal.History && n.SegNo(segSize) < 30 {
			t.Errorf("%s is below the window and should be gone", name)
		}
	}
	if res.WAL.RemovedFiles != 2*25+1 || res.WAL.First != wal.SegmentName(1, 5, segSize) || res.WAL.Last != wal.SegmentName(1, 29, segSize) {
		t.Fatalf("WAL result %+v", res.WAL)
	}
	if got, _ := f.r.BackupIDs(t.Context(), "main"); !slices.Equal(got, ids[2:]) {
		t.Fatalf("backups left %v", got)
	}
}

// Calendar rules keep old backups whose WAL is kept only to their consistency point, while
// the recovery window of keep-last starts at its oldest backup.
func TestCalendarBackupsKeepOnlyTheirOwnWAL(t *testing.T) {
	f := newFixture(t)
	old := f.backup(time.Date(2026, 9, 15, 3, 0, 0, 0, time.UTC), 10)
	f.backup(time.Date(2026, 9, 20, 3, 0, 0, 0, time.UTC), 20)
	oct := f.backup(time.Date(2026, 10, 15, 3, 0, 0, 0, time.UTC), 30)
	recent := f.backup(now.Add(-day), 40)
	f.segments(10, 45)
	res := f.run(retention.Policy{Last: 1, Monthly: 3}, false)
	got, _ := f.r.BackupIDs(t.Context(), "main")
	if len(got) != 3 || got[0] == old || !slices.Contains(got, oct) || !slices.Contains(got, recent) {
		t.Fatalf("kept %v, expired %v", got, res.Expired)
	}
	left := f.walLeft()
	var kept []uint64
	for _, name := range left {
		n, _ := wal.ParseName(name)
		kept = append(kept, n.SegNo(segSize))
	}
	// 20-21 (Sep 20's consistency), 30-31 (Oct's), 40-45 (the window from the newest).
	if want := []uint64{20, 21, 30, 31, 40, 41, 42, 43, 44, 45}; !slices.Equal(kept, want) {
		t.Fatalf("WAL kept %v, want %v", kept, want)
	}
}

// Streamed partials go when the segment is archived whole or lies below the window, and
// only the newest of a segment stays otherwise; stale pins go; a pinned backup stays.
func TestPartialsAndPins(t *testing.T) {
	f := newFixture(t)
	a := f.backup(now.Add(-3*day), 10)
	f.backup(now.Add(-2*day), 20)
	f.backup(now.Add(-day), 30)
	f.segments(10, 32)
	partial := func(seg uint64, end uint64) string {
		name := fmt.Sprintf("clusters/main/wal-partial/%s/%016X", wal.SegmentName(1, seg, segSize), seg*segSize+end)
		f.put(name)
		return name
	}
	below := partial(5, 100)
	whole := partial(32, 200)
	older := partial(33, 100)
	newest := partial(33, 900)
	if _, err := f.r.PinBackup(t.Context(), "main", a, "keep me"); err != nil {
		t.Fatal(err)
	}
	gone := f.backup(now.Add(-100*day), 1)
	if _, err := f.r.PinBackup(t.Context(), "main", gone, ""); err != nil {
		t.Fatal(err)
	}
	f.r.DeleteManifest(t.Context(), "main", gone) // a backup removed by hand
	res := f.run(retention.Policy{Last: 1}, false)
	if len(res.Expired) != 1 || res.Expired[0] == a {
		t.Fatalf("expired %v; the pinned backup %s must stay", res.Expired, a)
	}
	for _, name := range []string{below, whole, older} {
		if _, err := f.mem.Stat(t.Context(), name); err == nil {
			t.Errorf("partial %s survived", name)
		}
	}
	if _, err := f.mem.Stat(t.Context(), newest); err != nil {
		t.Errorf("the newest partial of the segment in progress went: %v", err)
	}
	if !slices.Equal(res.StalePins, []string{gone}) {
		t.Errorf("stale pins %v", res.StalePins)
	}
	pins, _ := f.r.Pins(t.Context(), "main")
	if len(pins) != 1 || pins[a].Note != "keep me" {
		t.Errorf("pins left %v", pins)
	}
}

func TestNoRule(t *testing.T) {
	f := newFixture(t)
	f.backup(now.Add(-day), 10)
	if _, err := expire.Run(t.Context(), f.r, expire.Options{Cluster: "main"}); err == nil {
		t.Fatal("expire without a rule ran")
	}
}
